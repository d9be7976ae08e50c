"""`ftdecide probe` without a GPU: its input handling, records and comparison, with the runner mocked.

The GPU path itself runs on the device tool (benchmarks/device_probe.sh); CI has no torch."""

import json

import pytest

from ftdecide.files import catalog
from ftdecide.core.throughput import tokens_per_second
from conftest import invoke
from ftdecide.core.estimator import TrainConfig, estimate_memory
from ftdecide.files.hfconfig import arch_from_hf_config, hf_config
from ftdecide.probe import runner
from ftdecide.probe.records import compare, config_from_record, record_from_config


@pytest.mark.parametrize("name", [a.name for a in catalog.models()])
def test_hf_config_round_trip_keeps_the_architecture(name):
    a = catalog.resolve_model(name)
    b = arch_from_hf_config(hf_config(a), name)
    assert (b.total_params(), b.linear_shapes(), b.attention) == (a.total_params(), a.linear_shapes(), a.attention)


@pytest.mark.parametrize(
    "cfg",
    [
        TrainConfig(method="full", precision="mixed", optimizer="adamw8bit", seq_len=512, batch_size=4, gradient_checkpointing=False),
        TrainConfig(method="qlora", lora_rank=64, lora_targets="qv", lora_dropout=0.0, seq_len=4096),
        TrainConfig(method="lora", optimizer="sgd"),
    ],
)
def test_record_round_trip(cfg):
    a = catalog.resolve_model("qwen2.5-0.5b")
    rec = record_from_config(a, cfg)
    back = config_from_record(rec)
    for f in ("method", "optimizer", "seq_len", "batch_size", "gradient_checkpointing"):
        assert getattr(back, f) == getattr(cfg, f)
    if cfg.method == "full":
        assert rec["method"] == "full_mixed" and back.precision == "mixed"
    else:
        assert (back.lora_rank, back.lora_targets, back.lora_dropout) == (cfg.lora_rank, cfg.lora_targets, cfg.lora_dropout)


def test_compare_reports_error_against_measurement():
    a = catalog.resolve_model("llama-3.2-1b")
    cfg = TrainConfig(method="qlora", seq_len=2048, batch_size=2)
    est = estimate_memory(a, cfg)
    rec = {**record_from_config(a, cfg), "status": "ok", "peak_alloc_gib": est.peak_allocated_gib / 1.25, "tokens_per_s": 1000.0}
    c = compare(rec, 989.0, 3350.0)
    assert c["error"]["peak_allocated"] == pytest.approx(0.25, abs=1e-3)
    assert c["error"]["fits_agree"] is True
    assert c["error"]["tokens_per_s"] == pytest.approx(c["estimate"]["tokens_per_s"] / 1000.0 - 1, abs=1e-3)
    oom = compare({**rec, "status": "oom"})
    assert oom["error"] == {"fits_agree": False}  # 'fits' predicted, yet it ran out of memory


def _one_line_exit_2(res):
    assert res.exit_code == 2, res.output
    lines = [ln for ln in res.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("ftdecide: error:"), res.stderr
    assert res.stdout == ""
    return lines[0]


def test_probe_without_the_extra_says_so(monkeypatch):
    import importlib.util

    monkeypatch.setattr(importlib.util, "find_spec", lambda name: None)
    line = _one_line_exit_2(invoke(["probe", "--model", "qwen2.5-0.5b"]))
    assert "pip install 'ftdecide[probe]'" in line and "torch" in line


@pytest.mark.parametrize(
    "args,needle",
    [
        ([], "exactly one of"),
        (["--model", "qwen2.5-0.5b", "--grid", "x.jsonl"], "exactly one of"),
        (["--model", "no-such-model"], "unknown model"),
        (["--model", "qwen2.5-0.5b", "--lora-rank", "5000"], "exceeds"),
        (["--model", "qwen2.5-0.5b", "--seq-len", "0"], "seq-len"),
        (["--grid", "missing.jsonl"], "missing.jsonl"),
        (["--from-json", "missing.json"], "missing.json"),
    ],
)
def test_probe_bad_input_is_one_line(args, needle, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    line = _one_line_exit_2(invoke(["probe", *args]))
    assert needle in line.lower()


def test_probe_grid_reports_the_line_of_a_bad_record(tmp_path):
    a = catalog.resolve_model("qwen2.5-0.5b")
    good = json.dumps(record_from_config(a, TrainConfig()))
    bad = json.dumps({"arch": "x", "hf_config": {"model_type": "llama"}, "method": "lora", "seq": 1, "batch": 1, "gc": True})
    p = tmp_path / "g.jsonl"
    p.write_text(good + "\n\n" + bad + "\n")
    line = _one_line_exit_2(invoke(["probe", "--grid", str(p)]))
    assert f"{p}:3:" in line and "missing" in line


def _fake_grid(records, out=None):
    for r in records:
        a, cfg = arch_from_hf_config(r["hf_config"], r["arch"]), config_from_record(r)
        peak = estimate_memory(a, cfg).peak_allocated_gib
        yield {
            **r,
            "status": "ok",
            "peak_alloc_gib": peak * 1.1,
            "peak_reserved_gib": peak * 1.2,
            "cuda_context_gib": 0.5,
            "tokens_per_s": 5000.0,
            "software": {"gpu": "NVIDIA H100 80GB HBM3", "gpu_total_gib": 79.18},
        }


def test_probe_grid_appends_json_lines_with_estimates(tmp_path, monkeypatch):
    monkeypatch.setattr(runner, "unavailable", lambda methods: None)
    monkeypatch.setattr(runner, "run_grid", _fake_grid)
    a = catalog.resolve_model("llama-3.2-1b")
    recs = [record_from_config(a, TrainConfig(method=m, seq_len=1024)) for m in ("full", "lora", "qlora")]
    grid = tmp_path / "grid.jsonl"
    grid.write_text("".join(json.dumps(r) + "\n" for r in recs))
    out = tmp_path / "results.jsonl"
    out.write_text('{"earlier": true}\n')
    for _ in range(2):
        res = invoke(["probe", "--grid", str(grid), "--out", str(out)])
        assert res.exit_code == 0, res.output
    lines = [json.loads(ln) for ln in out.read_text().splitlines()]
    assert len(lines) == 1 + 2 * 3 and lines[0] == {"earlier": True}
    for r in lines[1:]:
        assert r["error"]["peak_allocated"] == pytest.approx(1 / 1.1 - 1, abs=1e-3)
        # the H100's figures were found from the device name: the catalog's h100 (SXM) throughput
        h100 = catalog.resolve_gpu("h100")
        arch, cfg = arch_from_hf_config(r["hf_config"], r["arch"]), config_from_record(r)
        expected = tokens_per_second(arch, cfg, h100.bf16_tflops, h100.memory_bandwidth_gbs)
        assert r["estimate"]["tokens_per_s"] == round(expected, 1)


def test_probe_from_recommendation_json(tmp_path, monkeypatch):
    monkeypatch.setattr(runner, "unavailable", lambda methods: None)
    seen = []
    monkeypatch.setattr(runner, "run_grid", lambda recs, out=None: (seen.extend(recs), _fake_grid(recs))[1])
    rec = invoke(["recommend", "--model", "qwen2.5-1.5b", "--gpu", "h100", "--seq-len", "1024", "--format", "json"])
    doc = json.loads(rec.stdout)
    p = tmp_path / "rec.json"
    p.write_text(rec.stdout)
    res = invoke(["probe", "--from-json", str(p), "--format", "json"])
    assert res.exit_code == 0, res.output
    out = json.loads(res.stdout)
    plan = doc["recommendation"]
    assert seen[0]["method"] in (plan["method"], "full_bf16") and seen[0]["batch"] == plan["micro_batch_size"]
    assert out["seq"] == 1024 and out["gc"] == plan["gradient_checkpointing"]


def test_probe_table_shows_measured_and_estimate(monkeypatch):
    monkeypatch.setattr(runner, "unavailable", lambda methods: None)
    monkeypatch.setattr(runner, "run_grid", _fake_grid)
    res = invoke(["probe", "--model", "qwen2.5-0.5b", "--seq-len", "512"])
    assert res.exit_code == 0, res.output
    assert "peak allocated GiB" in res.stdout and "-9.1%" in res.stdout and "tokens/s" in res.stdout


@pytest.mark.parametrize("cuda", [False, True])
def test_host_info_names_the_cpu_and_times_dispatch_only_with_a_gpu(monkeypatch, cuda):
    """host_info with a stand-in torch: the CPU is always named; the dispatch micro-benchmark
    (microseconds per op, the median of 5 timed loops of 2000 launches) only runs on a CUDA device."""
    import sys
    import types

    calls = []

    class T:
        def add_(self, v):
            calls.append(v)

    fake = types.SimpleNamespace(cuda=types.SimpleNamespace(is_available=lambda: cuda, synchronize=lambda: None), zeros=lambda *a, **k: T())
    monkeypatch.setitem(sys.modules, "torch", fake)
    info = runner.host_info()
    assert isinstance(info["cpu"], str) and info["cpu"]
    if cuda:
        assert len(calls) == 500 + 5 * 2000 and info["host_launch_us"] > 0
    else:
        assert "host_launch_us" not in info and calls == []


def test_scaleout_records_parse_and_stay_apart_from_the_single_gpu_data():
    """FSDP2 runs measured as rank 0 under the fake process group (data/scaleout/, issue 10's first data):
    each names its world size, which becomes the configuration's GPU count; the single-GPU accuracy data
    (data/measurements/) does not include them."""
    import pathlib

    from ftdecide.probe.records import read_records

    root = pathlib.Path(__file__).resolve().parent.parent / "data"
    rows = [json.loads(line) for line in (root / "scaleout" / "h200_fsdp_fake_2026-11-29.jsonl").read_text().splitlines()]
    assert len(rows) == 30 and all(r["fake_process_group"] and r["strategy"] == "fsdp" for r in rows)
    assert {config_from_record(r).gpus for r in rows} == {r["world_size"] for r in rows} == {2, 4, 8, 16, 32, 64}
    assert [r["status"] for r in rows].count("error") == 1  # bitsandbytes' 8-bit AdamW cannot step DTensors
    assert not any(r.get("world_size") for r in read_records(root / "measurements"))


def test_ddp_is_refused_where_only_the_fake_process_group_could_run_it(monkeypatch):
    """DDP over 2 GPUs on a machine with 1: torch's fake group cannot run DDP (measured: its reducer's
    hook gets no tensor back), so the probe says what it needs instead of recording an error."""
    import sys
    import types

    from ftdecide.core.errors import InputError
    from ftdecide.probe import session

    fake_torch = types.SimpleNamespace(cuda=types.SimpleNamespace(device_count=lambda: 1))
    monkeypatch.setitem(sys.modules, "torch", fake_torch)
    rec = record_from_config(catalog.resolve_model("qwen2.5-0.5b"), TrainConfig(method="lora", gpus=2, strategy="ddp"))
    with pytest.raises(InputError, match="DDP over 2 GPUs needs 2 GPUs on this machine \\(it has 1\\)"):
        list(session._measured([rec]))


@pytest.mark.parametrize("strategy", ["zero2", "zero3", "fsdp", "ddp"])
def test_probe_takes_every_measured_strategy(strategy):
    """The probe's own refusal is gone for the ZeRO stages: without torch, what stops it is the extra."""
    r = invoke(["probe", "--model", "qwen2.5-0.5b", "--method", "lora", "--gpus", "2", "--strategy", strategy])
    if runner.unavailable([{"method": "lora"}]) is None:
        pytest.skip("torch is installed here: the probe would run")
    assert r.exit_code == 2 and "probe needs" in r.stderr and "does not measure" not in r.stderr
