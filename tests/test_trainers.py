"""Trainers as units: each one's sizing against its own emitted file run as is (data/trainers/), the
interface (--trainer, trainer:, --emit KIND sizes for KIND's trainer), and the guards."""

from __future__ import annotations

import json
import os
import re
import statistics
import sys

import pytest

from conftest import ROOT, estimate_doc as est, invoke, jsonl, name_comparisons, recommend_doc as doc

sys.path.insert(0, str(ROOT / "benchmarks"))

from ftdecide import trainers  # noqa: E402
from ftdecide.files.catalog import resolve_model  # noqa: E402
from ftdecide.core.estimator import TrainConfig, estimate_memory  # noqa: E402
from ftdecide.decide.recommend import Scenario, recommend  # noqa: E402

import fit_trainers  # noqa: E402  (benchmarks/: the held-out split and the error, one home)


# --- the registry -----------------------------------------------------------------------------------
TRAINERS = [
    # name, loss, k-bit preparation, bytes per adapter parameter over a 4-bit base, the --emit kind, measured
    pytest.param("trl", "chunked", False, 2.0, "trl", True, id="trl"),
    pytest.param("hf", "logits", True, 4.0, "hf", True, id="hf"),
    pytest.param("loop", "logits", True, 4.0, "peft", True, id="loop"),
    pytest.param("axolotl", "logits", True, 4.0, "axolotl", False, id="axolotl"),
    pytest.param("llamafactory", "logits", True, 4.0, "llamafactory", False, id="llamafactory"),
]


@pytest.mark.parametrize("name, loss, kbit, adapter_bytes, emit, measured", TRAINERS)
def test_each_trainer_declares_what_moves_its_memory(name, loss, kbit, adapter_bytes, emit, measured):
    t = trainers.get(name)
    assert (t.loss, t.kbit_prepare, t.quantized_adapter_bytes, t.emit, t.measured) == (loss, kbit, adapter_bytes, emit, measured)
    assert trainers.for_emit(emit) is t
    # an unmeasured trainer says which measured one it is sized as, in its basis and the table's stack line
    if not measured:
        assert trainers.get(t.wraps).measured and "not measured" in t.basis


def test_every_trainer_is_in_the_table_and_the_default_is_trl():
    assert sorted(trainers.names()) == sorted(p.values[0] for p in TRAINERS)
    assert trainers.DEFAULT == "trl" and Scenario(model="llama-3.1-8b").trainer == "trl"
    assert trainers.for_emit("accelerate") is None  # a launch config runs whatever script it launches


def test_no_module_compares_a_trainer_name():
    """The estimator, emitters and commands ask the trainer; only the trainers package names them."""
    assert name_comparisons(set(trainers.names()), skip=lambda path: "trainers" in path.parts) == []


# --- the memory terms, by hand ------------------------------------------------------------------------
def test_qlora_under_trl_keeps_a_bf16_base_and_bf16_adapters():
    """TRL runs no k-bit preparation (embeddings, norms and head stay bf16) and casts the adapters to bf16:
    Llama-3.2-1B's 0.26 B non-quantized parameters at 2 B instead of 4 B, its adapters at 2 B."""
    a = resolve_model("llama-3.2-1b")
    loop = estimate_memory(a, TrainConfig(method="qlora", trainer="loop"))
    trl = estimate_memory(a, TrainConfig(method="qlora", trainer="trl"))
    rest = a.total_params() - a.quantizable_params()
    adapters = trl.trainable_params
    assert (loop.breakdown["weights"] - trl.breakdown["weights"]) * 2**30 == pytest.approx(2.0 * rest + 2.0 * adapters)


def test_the_fused_head_holds_no_logits():
    """The loop holds fp32 logits (4 B x vocab per token); TRL's fused head a tile of at most 4,096 tokens
    x 32,768 vocabulary entries in bf16, whatever the tokens: more tokens add per-token terms only."""
    a = resolve_model("qwen2.5-0.5b")
    for tokens in (8192, 16384):
        loop = estimate_memory(a, TrainConfig(method="lora", seq_len=tokens, trainer="loop"))
        trl = estimate_memory(a, TrainConfig(method="lora", seq_len=tokens, trainer="trl"))
        assert loop.breakdown["logits"] * 2**30 == pytest.approx(4.0 * a.vocab_size * tokens, rel=0.01)
        assert trl.breakdown["logits"] * 2**30 < 0.01 * loop.breakdown["logits"] * 2**30
    cal = fit_trainers.DEFAULT
    assert cal.chunk_saved_h * a.hidden_size < 4.0 * a.vocab_size / 100


def test_accumulation_holds_every_gradient_in_a_trainer_not_in_the_loop():
    """Full fine-tuning with 2 micro-batches a step: the second one's forward runs with the first one's
    gradients held (2 B per parameter); the loop steps every micro-batch."""
    from ftdecide.core.estimator import memory_model

    a = resolve_model("llama-3.2-1b")
    one = memory_model(a, TrainConfig(method="full", trainer="hf", gradient_accumulation=1)).phases(2048, 1, True)
    two = memory_model(a, TrainConfig(method="full", trainer="hf", gradient_accumulation=2)).phases(2048, 1, True)
    for moment in ("forward", "backward"):
        assert two[moment] - one[moment] == 2.0 * a.total_params()
    assert two["end"] == one["end"]  # the step itself holds every gradient either way
    loop = [estimate_memory(a, TrainConfig(method="full", trainer="loop", gradient_accumulation=n)) for n in (1, 2)]
    assert loop[0].peak_allocated_gib == loop[1].peak_allocated_gib


# --- measured: each trainer's emitted file run as is ------------------------------------------------------
BOUNDS = [
    # trainer, runs at least, held-out median at most, held-out worst under-estimate at least (the bounds, 3%
    # and -5%; as measured 2026-12-07: TRL 208 runs, held out 43: 1.6% / -4.6%, hf 43, held out 7: 0.8% / -1.6%)
    pytest.param("trl", 200, 0.03, -0.05, id="trl"),
    pytest.param("hf", 30, 0.02, -0.05, id="hf"),
]


@pytest.mark.parametrize("trainer, runs, median, worst", BOUNDS)
def test_each_measured_trainer_against_its_held_out_runs(trainer, runs, median, worst):
    recs = fit_trainers.load(trainer)
    assert len(recs) >= runs
    out = [fit_trainers.error(r) for r in recs if fit_trainers.held_out(r)]
    assert len(out) >= len(recs) // 10
    assert statistics.median(abs(e) for e in out) <= median and min(out) >= worst


def test_the_loop_overstates_what_trl_runs():
    """The product's defect the trainer unit fixes: sized as the loop, TRL's runs are over-planned by a
    median of tens of percent; sized as TRL, within a few."""
    recs = [r for r in fit_trainers.load("trl") if not r.get("liger")]
    as_loop = [fit_trainers.error({**r, "trainer": "loop", "accum": 1}) for r in recs]
    as_trl = [fit_trainers.error(r) for r in recs]
    assert statistics.median(as_loop) > 0.3 and statistics.median(abs(e) for e in as_trl) < 0.04


def test_every_run_trained_the_tokens_it_was_given():
    """A tokenizer that collapsed the text measures nothing: every full-length run's micro-batches held
    micro-batch x sequence tokens, and every run trained its steps."""
    for rec in fit_trainers.load():
        assert rec["global_step"] == rec.get("steps", 3)
        assert len(rec["padded_tokens"]) == rec["global_step"] * rec["accum"]
        if rec.get("lengths", "full") == "full":
            assert set(rec["padded_tokens"]) == {rec["batch"] * rec["seq"]} == set(rec["real_tokens"])
        else:
            assert max(rec["padded_tokens"]) <= rec["batch"] * rec["seq"]
            # padded per micro-batch: below the padded shape wherever a micro-batch holds several examples
            assert (sum(rec["real_tokens"]) < sum(rec["padded_tokens"])) == (rec["batch"] > 1)


# --- the interface ----------------------------------------------------------------------------------------
def test_recommend_equals_estimate_with_the_same_trainer():
    """The plan's figure is `estimate --trainer trl` of the plan's configuration, to the hundredth of a GiB."""
    d = doc("--model", "llama-3.1-8b", "--gpu", "rtx-4090")
    r = d["recommendation"]
    assert r["trainer"]["name"] == "trl" and d["scenario"]["trainer"] == "trl" and r["config"]["trainer"] == "trl"
    c = next(c for c in d["candidates"] if c["method"] == r["method"])
    e = est(
        "--model", "llama-3.1-8b", "--method", r["method"], "--seq-len", str(d["scenario"]["seq_len"]),
        "--batch-size", str(r["micro_batch_size"]), "--trainer", "trl",
        "--gradient-accumulation", str(r["gradient_accumulation_steps"]),
        "--lora-rank", str(r["lora"]["rank"]), "--lora-targets", r["lora"]["targets"],
    )  # fmt: skip
    assert round(e["required_gib"], 2) == round(c["memory"]["required_gib"], 2)


def test_the_plans_config_round_trips_through_estimate_from_json(tmp_path):
    """IA3 with Liger on 2 H100s: recommendation.config sized again is the same plan (GPUs, strategy, levers, trainer)."""
    d = doc("--model", "qwen2.5-7b", "--gpu", "h100", "--gpus", "2", "--liger", "--dataset-size", "300", "--task", "classification")
    r = d["recommendation"]
    assert r["method"] == "ia3"
    path = tmp_path / "rec.json"
    path.write_text(json.dumps(d))
    e = est("--from-json", str(path))
    assert e["config"] == r["config"] and (e["config"]["gpus"], e["config"]["liger"]) == (2, True)
    c = next(c for c in d["candidates"] if c["method"] == "ia3")
    assert round(e["peak_allocated_gib"], 2) == round(c["memory"]["peak_allocated_gib"], 2)


def test_a_four_gpu_plan_round_trips(tmp_path):
    d = doc("--model", "llama-3.1-70b", "--gpu", "h100", "--gpus", "4", "--dataset-size", "20000")
    path = tmp_path / "rec.json"
    path.write_text(json.dumps(d))
    e = est("--from-json", str(path))
    c = next(c for c in d["candidates"] if c["method"] == d["recommendation"]["method"])
    assert e["config"]["gpus"] == 4 and e["config"]["strategy"] == c["strategy"]
    assert round(e["required_gib"], 2) == round(c["memory"]["required_gib"], 2)


def test_emit_sizes_for_the_trainer_that_runs_the_file():
    """--emit axolotl sizes for axolotl (the hf trainer's terms): full fine-tuning holds its gradients
    across micro-batches there, so its micro-batch can differ from TRL's plan; the header names the trainer."""
    args = ("--model", "llama-3.2-1b", "--gpu", "l4", "--dataset-size", "50000", "--task", "domain")
    as_axolotl = doc(*args, "--trainer", "axolotl")
    assert as_axolotl["recommendation"]["trainer"]["measured"] is False
    r = invoke(["recommend", *args, "--emit", "axolotl"])
    assert r.exit_code == 0
    assert f"micro_batch_size: {as_axolotl['recommendation']['micro_batch_size']}" in r.stdout
    assert "trainer axolotl (axolotl 0.19" in r.stdout
    trl = invoke(["recommend", *args, "--emit", "trl"]).stdout
    assert "trainer TRL SFTTrainer (trl 1.16" in trl


def test_a_trainer_that_disagrees_with_the_emitted_file_is_refused():
    r = invoke(["recommend", "--model", "llama-3.2-1b", "--gpu", "l4", "--trainer", "hf", "--emit", "trl"])
    assert r.exit_code == 2 and r.stdout == ""
    assert r.stderr.count("\n") == 1 and "--emit trl writes a file for the trl trainer" in r.stderr


@pytest.mark.parametrize(
    "argv", [["estimate", "--model", "llama-3.2-1b"], ["recommend", "--model", "llama-3.2-1b"], ["fit", "--model", "llama-3.2-1b"]]
)
def test_an_unknown_trainer_is_one_line(argv):
    r = invoke([*argv, "--trainer", "unsloth"])
    assert r.exit_code == 2 and r.stdout == "" and r.stderr.count("\n") == 1
    assert "unknown trainer 'unsloth'" in r.stderr and "trl" in r.stderr


def test_scenario_files_and_batch_take_a_trainer(tmp_path):
    f = tmp_path / "s.yaml"
    f.write_text("scenarios:\n  - {name: a, model: llama-3.2-1b, gpu: l4}\n  - {name: b, model: llama-3.2-1b, gpu: l4, trainer: hf}\n")
    r = invoke(["batch", str(f), "--trainer", "loop"])
    assert r.exit_code == 0, r.output
    got = {x["name"]: x["recommendation"]["trainer"]["name"] for x in json.loads(r.stdout)["results"]}
    assert got == {"a": "loop", "b": "hf"}  # a scenario's own trainer wins over --trainer
    r = invoke(["batch", str(f)])
    assert {x["name"]: x["scenario"]["trainer"] for x in json.loads(r.stdout)["results"]} == {"a": "trl", "b": "hf"}


def test_the_table_names_the_trainer_and_its_versions():
    out = invoke(["recommend", "--model", "llama-3.1-8b", "--gpu", "rtx-4090"]).stdout
    assert "figures for TRL SFTTrainer (trl 1.16, transformers 5.17" in out
    out = invoke(["recommend", "--model", "llama-3.1-8b", "--gpu", "rtx-4090", "--trainer", "llamafactory"]).stdout
    assert "not measured: sized as the hf trainer" in " ".join(out.split())


def test_trl_plans_fit_more_than_the_loop_on_a_24gb_card():
    """The issue's case: Llama-3.1-8B QLoRA on an RTX 4090. Sized as TRL, a larger micro-batch fits than
    sized as the loop (measured: TRL peaked at 7.9 GiB where the loop's plan said 16.8)."""
    sc = dict(model="llama-3.1-8b", gpu="rtx-4090")
    trl = recommend(Scenario(**sc, trainer="trl")).candidate("qlora")
    loop = recommend(Scenario(**sc, trainer="loop")).candidate("qlora")
    assert trl.fits and loop.fits and trl.micro_batch_size > loop.micro_batch_size


# --- invariants (hypothesis) --------------------------------------------------------------------------------
from hypothesis import HealthCheck, given, settings, strategies as st  # noqa: E402


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    model=st.sampled_from(["llama-3.2-1b", "qwen2.5-7b", "gemma-2-2b", "mistral-7b", "llama-3.1-70b"]),
    gpu=st.sampled_from(["rtx-4090", "l4", "a100-80gb", "h100", "v100-32gb"]),
    gpus=st.sampled_from([1, 2, 4]),
    trainer=st.sampled_from(sorted(trainers.names())),
    seq_len=st.sampled_from([512, 2048, 8192]),
    liger=st.booleans(),
)
def test_every_candidate_is_the_estimate_of_its_own_config(model, gpu, gpus, trainer, seq_len, liger):
    """Whatever was sized before in this process (searches are remembered across scenarios), each
    candidate's memory is exactly ``estimate_memory`` of the configuration it states, with the scenario's
    trainer and the accumulation its micro-batch needs; and a plan never takes a candidate that does not fit."""
    from ftdecide import levers
    from ftdecide.decide.results import accumulation_steps

    arch = resolve_model(model)
    liger = liger and levers.get("liger").problem(arch) is None
    res = recommend(Scenario(model=model, gpu=gpu, gpus=gpus, trainer=trainer, seq_len=seq_len, liger=liger))
    for c in res.candidates:
        assert c.config.trainer == trainer
        assert c.config.gradient_accumulation == accumulation_steps(c.micro_batch_size, gpus)
        assert estimate_memory(arch, c.config).required_gib == c.required_gib
    if res.plan.feasible:
        assert res.chosen.fits and res.chosen.required_gib <= res.gpu.memory_gib


def test_both_timing_grids_are_within_the_step_time_target():
    """The timing grids of the emitted TRL and transformers Trainer files (each run alone on one H100, 6 steps; 13 and 8
    runs), against the step-time model, whose constants none of them set: the LoRA family's were refitted on the probe
    loop's runs alone (benchmarks/fit_throughput.py --adapters), each trainer's 4-bit step factor on its other runs
    (benchmarks/fit_trainers.py --kbit). A median of 3.2% and 3.6% (hf's 15: the 8 of the twentieth session, 3.8%, and
    7 run in the twenty-first after the model was set), within the issue's 10% (10.2% and 11.6% before that session).
    Left: Qwen2.5-1.5B full fine-tuning, -12% to -17%; Llama-3.2-3B LoRA without checkpointing under hf, +17%."""
    for trainer, median, low, high in (("trl", 0.032, -0.167, 0.049), ("hf", 0.036, -0.119, 0.170)):
        runs = [r for r in fit_trainers.alone(fit_trainers.load(trainer)) if r["id"].startswith(f"trainer_{trainer}_timing:")]
        errs = [fit_trainers.time_error(r)[2] for r in runs]
        assert len(errs) == {"trl": 13, "hf": 15}[trainer]
        assert statistics.median(abs(e) for e in errs) == pytest.approx(median, abs=0.001) and median <= 0.10
        assert (min(errs), max(errs)) == pytest.approx((low, high), abs=0.001)
    worst = [r for r in fit_trainers.alone(fit_trainers.load("trl")) if fit_trainers.time_error(r)[2] < -0.15 and "timing" in r["id"]]
    assert sorted({(r["model"], r["method"]) for r in worst}) == [("qwen2.5-1.5b", "full")]


def test_the_grids_planned_this_session_as_they_ran():
    """Planned by the twenty-first session's model before any ran (benchmarks/plan_grid.py), run on one H100 the same
    evening, each run alone. data/grids/trainer_trl_timing_b.jsonl (10 TRL runs testing that session's mechanisms):
    tokens/s a median 6.4% off the plan, -5.4% / +22.6% (DoRA fast in the model; Gemma-3-1B +18%; 8-bit AdamW over 8
    micro-batches +14%); peaks 2.6%, -2.6% / +7.1%. Phi-3-mini's 2,047-token window: 11.1% fewer tokens a second at
    2,048 than at 1,024 (planned 13.6%). hf timing lines 9-15 (the 16th was not reached), planned again: 2.4%, -5.1%
    / +17.0% (the first plan, by the model before the session: 11.4%, -12.8% / +29.0%); peaks 0.9%."""
    b = {r["id"]: r for r in fit_trainers.alone(fit_trainers.load("trl")) if r["id"].startswith("trainer_trl_timing_b:")}
    assert len(b) == 10
    tps = {k: fit_trainers.time_error(r)[0] for k, r in b.items()}
    errs = [r["planned_tps_h100"] / tps[k] - 1 for k, r in b.items()]
    assert statistics.median(abs(e) for e in errs) == pytest.approx(0.064, abs=0.001)
    assert (min(errs), max(errs)) == pytest.approx((-0.054, 0.226), abs=0.001)
    peaks = [r["planned_gib"] / r["peak_train_alloc_gib"] - 1 for r in b.values()]
    assert statistics.median(abs(e) for e in peaks) == pytest.approx(0.026, abs=0.001) and min(peaks) > -0.03
    assert 1 - tps["trainer_trl_timing_b:1"] / tps["trainer_trl_timing_b:2"] == pytest.approx(0.111, abs=0.001)
    hf = [r for r in fit_trainers.alone(fit_trainers.load("hf")) if r["id"].startswith("trainer_hf_timing:") and "planned_tps_h100_2" in r]
    assert len(hf) == 7
    second = [r["planned_tps_h100_2"] / fit_trainers.time_error(r)[0] - 1 for r in hf]
    first = [r["planned_tps_h100"] / fit_trainers.time_error(r)[0] - 1 for r in hf]
    assert statistics.median(abs(e) for e in second) == pytest.approx(0.025, abs=0.001)
    assert statistics.median(abs(e) for e in first) == pytest.approx(0.114, abs=0.001)
    assert statistics.median(abs(r["planned_gib_2"] / r["peak_train_alloc_gib"] - 1) for r in hf) < 0.01


def test_the_hf_timing_grid_as_planned_before_it_ran():
    """data/grids/trainer_hf_timing.jsonl: the emitted transformers Trainer file, timed alone over 6 steps on one H100
    (2026-12-07), each line's tokens/s written before any ran. 8 of its 16 lines ran before the call's deadline. Against
    that plan: a median 11.6%, -12.1% / +20.5%, above the issue's 10%. The model is fast for LoRA and QLoRA (+6% to
    +21%) and slow for full fine-tuning (-4%, -12%), as on TRL's timing grid. The step is TRL's to within 5% on the
    same shape, except QLoRA: 1.42x TRL's on Llama-3.2-3B, where hf's file runs peft's k-bit preparation (fp32
    embeddings, norms, head and adapters) and TRL's does not; the step-time model has no trainer term for it. Their
    peaks are within the bounds: a median 0.8%, -1.7% / +1.1%."""
    runs = [
        r for r in fit_trainers.alone(fit_trainers.load("hf")) if r["id"].startswith("trainer_hf_timing:") and "planned_tps_h100_2" not in r
    ]
    assert len(runs) == 8 and all(len(r["step_s"]) == 6 and r["gpu"].startswith("NVIDIA H100") for r in runs)
    errs = [r["planned_tps_h100"] / fit_trainers.time_error(r)[0] - 1 for r in runs]
    assert statistics.median(abs(e) for e in errs) == pytest.approx(0.116, abs=0.001)
    assert min(errs) == pytest.approx(-0.121, abs=0.001) and max(errs) == pytest.approx(0.205, abs=0.001)
    # the model today (test_both_timing_grids_are_within_the_step_time_target): the optimizer's share of a micro-batch
    # under accumulation, the LoRA family's step time refitted on the probe loop's runs alone, hf's 4-bit step factor
    # fitted on its other runs
    today = [fit_trainers.time_error(r)[2] for r in runs]
    assert statistics.median(abs(e) for e in today) < statistics.median(abs(e) for e in errs) / 2
    trl = {
        (r["model"], r["method"], r["seq"], r["batch"]): r for r in fit_trainers.load("trl") if r["id"].startswith("trainer_trl_timing:")
    }
    ratio = {
        (r["model"], r["method"]): statistics.median(r["step_s"][1:]) / statistics.median(trl[k]["step_s"][1:])
        for r in runs
        if (k := (r["model"], r["method"], r["seq"], r["batch"])) in trl
    }
    assert len(ratio) == 7 and ratio.pop(("llama-3.2-3b", "qlora")) == pytest.approx(1.42, abs=0.01)
    assert all(0.99 <= v <= 1.06 for v in ratio.values())
    # the probe loop prepares a 4-bit base as hf does: on the one shape both ran (Llama-3.1-8B QLoRA, 4 x 2048,
    # checkpointed, rank 16), hf's micro-batch takes the loop's time to 2%
    loop = [
        d
        for d in fit_trainers.read_records(ROOT / "data" / "measurements")
        if d.get("arch") == "llama31_8b"
        and d["method"] == "qlora"
        and (d["seq"], d["batch"], d.get("r"), d["gc"]) == (2048, 4, 16, True)
        and d.get("optim") == "adamw"
        and d.get("status") == "ok"
        and d["software"]["gpu"].startswith("NVIDIA H100")
    ]
    hf8b = next(r for r in runs if (r["model"], r["method"]) == ("llama-3.1-8b", "qlora"))
    assert len(loop) == 1
    assert statistics.median(hf8b["step_s"][1:]) / hf8b["accum"] / statistics.median(loop[0]["step_s"][1:]) == pytest.approx(
        1.018, abs=0.005
    )
    # their peaks, out of sample too (no memory constant moved): a median 0.8%, -1.7% / +1.1%
    mem = [fit_trainers.error(r) for r in runs]
    assert statistics.median(abs(e) for e in mem) == pytest.approx(0.008, abs=0.001) and -0.018 <= min(mem) and max(mem) <= 0.012


def test_the_runs_made_after_the_constants_were_set():
    """The third TRL grid and the timing grid (7B-14B among them) ran after every trainer constant was set
    and moved none: their error is out of sample (measured: median 1.6%, worst -7.9% / +10.7%; 1.3%, -3.0% / +10.7%
    since two terms read in code, not fitted: the masked kernel's repeated keys and values, Liger's layer kernels)."""
    late = [r for r in fit_trainers.load("trl") if r["id"].startswith(("trainer_trl_c:", "trainer_trl_timing:"))]
    assert len(late) >= 50 and {"qwen2.5-14b", "qwen2.5-7b", "llama-3.1-8b", "mistral-7b"} <= {r["model"] for r in late}
    errs = [fit_trainers.error(r) for r in late]
    assert statistics.median(abs(e) for e in errs) <= 0.02 and min(errs) >= -0.05 and max(errs) <= 0.11


def test_the_fit_verdicts_and_the_edge_grid():
    """The fit verdict a recommendation turns on: is the plan's ``required_gib`` within the card? Away from the edge,
    every emitted run and launch that trained (the ones chosen to fit: 283 on one GPU then, 87 sharded, and the 17 run
    on 2026-12-07) has a plan within its card, none refused though it fits; the nearest, TRL's Phi-3-mini full
    fine-tuning without checkpointing, fills 89% of it.

    data/grids/trainer_trl_edge.jsonl is the edge (one H100, each line planned before it ran): 4 plans within the card
    at 96-99% of it, 4 refused at 101-104%. Two trained and six ran out of memory. The plan got 4 of 8 right (the
    first, and three refused that ran out). Wrong: Qwen2.5-1.5B IA3 (12 x 2048) and DoRA (6 x 2048), and Llama-3.2-3B
    QLoRA (8 x 2048), all without checkpointing, ran out where the plan fits; Gemma-2-2B DoRA (3 x 2048) trained at
    71.4 GiB where the plan (80.9 GiB, Gemma 2 without checkpointing 10-13% over) refused it. Its eager attention, read in
    transformers' code since (trainers/__init__.py), plans it at 70.8 GiB: within the card, -0.8%. The harness's own
    process held 612 MiB of the card through those runs (its CUDA context from building the model), which a user's run
    does not.

    data/grids/trainer_trl_edge_b.jsonl ran those lines again with the model built in a child process (2026-12-08, one
    H100; lines 2, 3 and 6 before the call's limit): no other process on the card. QLoRA trained (75.85 GiB, the plan
    +1.2%): its first failure was the harness's. IA3 and DoRA ran out again, each having allocated more than its
    planned peak: IA3 76.52 GiB asking 0.41 more (plan 76.60: at least 0.4% under), DoRA 77.32 asking 0.21 more (plan
    75.14: at least 3.1% under). Within the -5% bound, but at 97-99% of the card a plan's verdict turns on less than
    that: every edge plan asks more than the 95% of the card recommend lets a plan use (its safety margin), so none of
    them is ever recommended (Gemma-2's, at 91% now, is no longer one)."""
    from ftdecide.core.policy import SAFETY_MARGIN

    runs = fit_trainers.load() + fit_trainers.sharded()
    away = [r for r in runs if not r["id"].startswith("trainer_trl_edge")]
    assert len(away) >= 387 and fit_trainers.disagreements(away) == []

    def filled(r):
        return (
            estimate_memory(fit_trainers.arch_of_trainer_record(r), fit_trainers.config(r)).required_gib / fit_trainers.gpu_of(r).memory_gib
        )

    nearest = max(away, key=filled)
    assert nearest["id"] == "trainer_trl_c:8" and filled(nearest) == pytest.approx(0.890, abs=0.001)
    every = fit_trainers.load() + fit_trainers.load(status="oom")
    edge = [r for r in every if r["id"].startswith("trainer_trl_edge:")]
    assert len(edge) == 8 and sum(r["status"] == "ok" for r in edge) == 2
    wrong = {r["id"]: why for r, why in fit_trainers.disagreements(edge)}
    assert wrong == {
        "trainer_trl_edge:2": "fits, ran out",
        "trainer_trl_edge:3": "fits, ran out",
        "trainer_trl_edge:6": "fits, ran out",
    }
    assert all("Process" in r["raised"] and "has 612.00 MiB memory in use" in r["raised"] for r in edge if r["status"] == "oom")
    again = {r["id"].split(":")[1]: r for r in every if r["id"].startswith("trainer_trl_edge_b:")}
    assert (
        sorted(again) == ["2", "3", "6"]
        and again["3"]["status"] == "ok"
        and fit_trainers.error(again["3"]) == pytest.approx(0.012, abs=0.001)
    )
    for line, at_least in (("2", -0.004), ("6", -0.031)):
        r = again[line]
        held, asked = (
            float(x)
            for x in re.search(r"Tried to allocate ([\d.]+) MiB.*? ([\d.]+) GiB is allocated by PyTorch", r["raised"]).groups()[::-1]
        )
        plan = estimate_memory(fit_trainers.arch_of_trainer_record(r), fit_trainers.config(r)).peak_allocated_gib
        assert (
            r["status"] == "oom" and "Process" not in r["raised"] and plan / (held + asked / 1024) - 1 == pytest.approx(at_least, abs=0.001)
        )
    assert {r["id"] for r, _ in fit_trainers.disagreements(list(again.values()))} == {"trainer_trl_edge_b:2", "trainer_trl_edge_b:6"}
    below = {r["id"]: round(filled(r), 3) for r in edge + list(again.values()) if filled(r) <= 1 - SAFETY_MARGIN}
    assert below == {"trainer_trl_edge:7": 0.913}  # Gemma-2 DoRA, no longer an edge plan


@pytest.mark.parametrize("margin, ia3, dora", [(None, 11, 5), ("0", 12, 6), ("0.1", 10, 5)])
def test_fit_keeps_recommends_margin_free_by_default(margin, ia3, dora):
    """``fit``'s largest micro-batch keeps --safety-margin of the card free, recommend's 5% unless told: without it, its
    answers for Qwen2.5-1.5B at 2,048 without checkpointing on an H100 were IA3's 12 and DoRA's 6, the two edge runs
    that ran out of memory (test_the_fit_verdicts_and_the_edge_grid). Each answer is the largest whose plan is within
    the share of the card, the next one not."""
    argv = ["fit", "--model", "qwen2.5-1.5b", "--gpu", "h100", "--seq-len", "2048", "--format", "json"]
    out = json.loads(invoke(argv + (["--safety-margin", margin] if margin else [])).stdout)
    share = 1 - float(margin or 0.05)
    assert out["safety_margin"] == pytest.approx(1 - share)
    rows = {r["method"]: r for r in out["rows"] if not r["gradient_checkpointing"]}
    assert (rows["ia3"]["max_micro_batch"], rows["dora"]["max_micro_batch"]) == (ia3, dora)

    def required(method, n):
        cfg = TrainConfig(method=method, trainer="trl", seq_len=2048, gradient_checkpointing=False, batch_size=n)
        return estimate_memory(resolve_model("qwen2.5-1.5b"), cfg).required_gib

    for method, b in (("ia3", ia3), ("dora", dora)):
        assert required(method, b) <= 79.6 * share < required(method, b + 1)


def test_sharded_launches_within_the_sharded_bounds():
    """The emitted TRL file and accelerate config of FSDP2 and FSDP1 plans, launched as rank 0 of 2-8 GPUs under the
    fake process group (data/sharded_trainers/), of what is emitted today (two offloaded FSDP1 launches that loaded
    the base on the GPU are superseded): 87 launches, a median 1.3%, -5.5% / +9.0%. The median bound holds; three
    launches in sample are past the worst under: Llama-3.1-8B QLoRA under FSDP1 over 2 (-5.5%, loaded on the GPU),
    TinyLlama LoRA and IA3 over 2 with checkpointing (-5.4% each); the 18 held out are within it
    (test_the_held_out_grids_j_and_k_meet_the_sharded_bounds). The worst over is DoRA (+6% to +9% on 4 of 6); Gemma-2-2B
    LoRA over 2 without checkpointing, +10.4% before its eager attention was read in transformers' code, is -0.5%."""
    runs = fit_trainers.sharded()
    errs = [fit_trainers.error(r) for r in runs]
    assert len(runs) == 87 and {"full", "lora", "dora", "ia3", "qlora"} <= {r["method"] for r in runs}
    assert statistics.median(abs(e) for e in errs) == pytest.approx(0.0131, abs=0.001)
    assert min(errs) == pytest.approx(-0.055, abs=0.001) and max(errs) == pytest.approx(0.090, abs=0.001)
    past = sorted(r["id"] for r, e in zip(runs, errs, strict=True) if e < -0.05)
    assert past == ["fsdp1_a:1", "sharded_trl_d:2", "sharded_trl_g:6"]


def test_the_held_out_grid_i_as_planned_twice_before_it_ran():
    """data/grids/sharded_trl_i.jsonl: 11 launches of what users run over 2-8 GPUs (LoRA with and without
    checkpointing, full fine-tuning, FSDP1 QLoRA, DoRA, IA3), each planned twice before any ran (committed in that
    order): ``planned_gib`` by the model of the seventeenth session, ``planned_gib_b`` by today's (no per-layer TRL
    excess under FSDP2 and FSDP1, as their traces show; IA3's checkpointed term refitted). 10 ran on one H100 (line 7,
    an offloaded 7B loaded in host memory, was left out for time). As written: the first a median 5.2%, -3.8% /
    +12.6%; the second 3.7%, -6.0% / +10.9%. Neither meets both bounds; the second was kept for its median (the
    first was biased high over all 69 launches, a median 3.2%), so the choice was made with these launches in view.
    Today's plans are the second's, but for full fine-tuning, whose FSDP2 layout moved in the nineteenth session (with
    these launches in view: Llama-3.2-1B over 4 +10.9% -> +0.5%, Qwen2.5-0.5B over 2 +8.3% -> -1.2%), and FSDP1's
    checkpointed step (its traced recompute and two backward moments: Qwen2.5-7B QLoRA over 4 +4.0% -> +1.4%), and IA3's
    checkpointed backward under FSDP2 (three MLP-wide blocks, as traced: Qwen2.5-1.5B over 4 -6.0% -> -2.0%), and Gemma 2's
    eager attention as transformers writes it (twenty-second session: Gemma-2-2B LoRA over 4 +0.8% -> +0.9%)."""
    held = [r for r in fit_trainers.sharded() if r["id"].startswith("sharded_trl_i:")]
    assert len(held) == 10 and all("planned_gib" in r and "planned_gib_b" in r for r in held)
    for key, med, lo, hi in (("planned_gib", 0.052, -0.038, 0.126), ("planned_gib_b", 0.037, -0.060, 0.109)):
        written = [r[key] / r["peak_train_alloc_gib"] - 1 for r in held]
        assert statistics.median(abs(e) for e in written) == pytest.approx(med, abs=0.001), key
        assert min(written) == pytest.approx(lo, abs=0.001) and max(written) == pytest.approx(hi, abs=0.001), key
    for r in held:
        assert r["padded_tokens"] == [r["batch"] * r["seq"]] * len(r["padded_tokens"]), r["id"]
        est = estimate_memory(fit_trainers.arch_of_trainer_record(r), fit_trainers.config(r))
        gemma2 = fit_trainers.arch_of_trainer_record(r).attention == "eager"
        moved = r["method"] == "full" or r["strategy"] == "fsdp1" or (r["method"] == "ia3" and r["gc"]) or gemma2
        assert (round(est.peak_allocated_gib, 2) == r["planned_gib_b"]) != moved, r["id"]
    full = sorted(fit_trainers.error(r) for r in held if r["method"] == "full")
    assert full == pytest.approx([-0.012, 0.005], abs=0.001)
    assert fit_trainers.error(next(r for r in held if r["method"] == "ia3")) == pytest.approx(-0.020, abs=0.001)


def test_sharded_launches_held_out_of_the_adapter_moments():
    """data/grids/sharded_trl_f.jsonl: eight FSDP2 adapter launches (LoRA, DoRA, IA3; tied and untied; 2-8 GPUs; with
    and without checkpointing), each plan written in the grid before any ran (one H100, 2026-12-07: seven in the
    thirteenth session, line 8, Qwen3-8B LoRA over 4 without checkpointing, in the fifteenth). As written: a median
    4.1% over, -3.6% / +11.4%; the overs were the checkpointed 7-8B adapters (Qwen2.5-7B LoRA over 4 +8.1%,
    Mistral-7B over 8 +10.7%, Llama-3.1-8B DoRA over 4 +11.4%). Today, with the layers in flight counted by moment
    (these launches in view: no longer held out), 3.7%, -4.0% / +8.5%; without TRL's per-layer excess under FSDP2
    (eighteenth session, as the traces show) 1.8%, -4.0% / +6.7%; with IA3's checkpointed backward as traced
    (nineteenth) 1.6%."""
    held = [r for r in fit_trainers.sharded() if r["id"].startswith("sharded_trl_f:")]
    assert len(held) == 8 and all("planned_gib" in r for r in held)
    planned = [r["planned_gib"] / r["peak_train_alloc_gib"] - 1 for r in held]
    assert statistics.median(abs(e) for e in planned) == pytest.approx(0.041, abs=0.001)
    assert min(planned) == pytest.approx(-0.036, abs=0.001) and max(planned) == pytest.approx(0.114, abs=0.001)
    today = [fit_trainers.error(r) for r in held]
    assert statistics.median(abs(e) for e in today) == pytest.approx(0.016, abs=0.001)
    assert min(today) == pytest.approx(-0.040, abs=0.001) and max(today) == pytest.approx(0.067, abs=0.001)


def test_the_held_out_launches_as_planned_before_they_ran():
    """data/grids/sharded_trl_g.jsonl (6 FSDP2 adapter launches, planned in the sixteenth session) and
    sharded_trl_h.jsonl (6 IA3 launches over FSDP2 and 3 offloaded FSDP1 launches loaded in host memory, planned in the
    seventeenth after g had run), each plan written before any of its grid ran (g on one H200, h on one H100). As
    written: a median 5.7%, -7.0% / +24.1%, past both bounds. g's IA3 launches were -5.7% and +10.5%, which the IA3
    terms under a bf16 engine then answered (no longer held out for them); h's plans are today's to the hundredth of
    a GiB where checkpointing is off (with it, today's plans drop TRL's per-layer excess under FSDP2 and FSDP1, as the
    traces show, and IA3's checkpointed term was refitted), and h's FSDP1 starts (the root unit flattened) were within
    0.3% of the moment they size."""
    held = [r for r in fit_trainers.sharded() if r["id"].startswith(("sharded_trl_g:", "sharded_trl_h:"))]
    assert len(held) == 15
    written = [r["planned_gib"] / r["peak_train_alloc_gib"] - 1 for r in held]
    assert statistics.median(abs(e) for e in written) == pytest.approx(0.057, abs=0.001)
    assert min(written) == pytest.approx(-0.070, abs=0.001) and max(written) == pytest.approx(0.241, abs=0.001)
    for r in held:
        if r["id"].startswith("sharded_trl_h:") and not r["gc"]:
            est = estimate_memory(fit_trainers.arch_of_trainer_record(r), fit_trainers.config(r))
            assert round(est.peak_allocated_gib, 2) == r["planned_gib"], r["id"]
        if "planned_start_gib" in r:
            assert r["alloc_before_train_gib"] < 0.001
            assert r["planned_start_gib"] == pytest.approx(r["peak_prepare_alloc_gib"], rel=0.005), r["id"]


def test_the_held_out_grids_j_and_k_meet_the_sharded_bounds():
    """data/grids/sharded_trl_j.jsonl (10 launches: Gemma-2-2B IA3 and LoRA, small-model IA3 and LoRA with
    checkpointing, full fine-tuning, DoRA, FSDP1 QLoRA) was planned twice before any ran: ``planned_gib`` by the
    eighteenth session's model, ``planned_gib_b`` by the nineteenth's (lines 3, 6 and 8 moved: IA3's checkpointed
    backward, full fine-tuning's FSDP2 layout, FSDP1's checkpointed step). data/grids/sharded_trl_k.jsonl (8 more, every
    method but DoRA) was planned by the nineteenth's after j ran, before any of k ran. Both ran on one H100 as rank 0 of
    2-4 GPUs (data/sharded_trainers/h100_trl_fake_heldout_{j,k}_2026-12-07.jsonl). As written: j by the eighteenth
    session's model a median 3.3%, -7.4% / +10.4%; j by the nineteenth's 1.7%, -4.4% / +10.4%; k 0.9%, -2.4% / +2.3%;
    the 18 by the model kept 1.4%, -4.4% / +10.4%: within the sharded bounds (a median of 3%, no under-estimate past
    -5%). Each plan the model kept is today's estimate to the hundredth of a GiB but Gemma-2-2B LoRA's without
    checkpointing (its eager attention read in transformers' code in the twenty-second session, these in view: +10.4% ->
    -0.5%; the checkpointed IA3 launch moved by less, -0.6% -> -0.5%), and every run trained the tokens it was asked
    for."""
    runs = {r["id"]: r for r in fit_trainers.sharded()}
    j = [runs[f"sharded_trl_j:{i}"] for i in range(1, 11)]
    k = [runs[f"sharded_trl_k:{i}"] for i in range(1, 9)]
    assert [i + 1 for i, r in enumerate(j) if r["planned_gib"] != r["planned_gib_b"]] == [3, 6, 8]
    kept = [(r, fit_trainers.kept_plan(r)) for r in j + k]
    assert {r["id"] for r, _ in kept} == {r["id"] for r in runs.values() if r["id"].startswith(fit_trainers.HELD_OUT_GRIDS)}

    def written(pairs):
        errs = [plan / r["peak_train_alloc_gib"] - 1 for r, plan in pairs]
        return round(statistics.median(abs(e) for e in errs), 3), round(min(errs), 3), round(max(errs), 3)

    assert written([(r, r["planned_gib"]) for r in j]) == (0.033, -0.074, 0.104)
    assert written([(r, r["planned_gib_b"]) for r in j]) == (0.017, -0.044, 0.104)
    assert written([(r, r["planned_gib"]) for r in k]) == (0.009, -0.024, 0.023)
    med, lo, hi = written(kept)
    assert (med, lo, hi) == (0.014, -0.044, 0.104) and med <= 0.03 and lo >= -0.05
    for r, plan in kept:
        assert r["padded_tokens"] == [r["batch"] * r["seq"]] * len(r["padded_tokens"]), r["id"]
        est = estimate_memory(fit_trainers.arch_of_trainer_record(r), fit_trainers.config(r))
        moved = fit_trainers.arch_of_trainer_record(r).attention == "eager" and not r["gc"]
        assert (round(est.peak_allocated_gib, 2) == plan) != moved and est.peak_phase == r["planned_phase"], r["id"]
    today = [fit_trainers.error(r) for r in j + k]
    assert (round(statistics.median(abs(e) for e in today), 3), round(min(today), 3), round(max(today), 3)) == (0.012, -0.045, 0.084)


def _traces(name: str) -> list[dict]:
    """The lines of a trace file in data/traces/ (launches run again with the allocator's history)."""
    return jsonl(ROOT / "data" / "traces" / name)


@pytest.mark.parametrize("strategy", ["fsdp", "fsdp1"])
def test_sharded_checkpointed_inputs_are_two_bytes_a_hidden_value_as_traced(strategy):
    """Every checkpointed FSDP2 and FSDP1 launch traced at a backward peak (data/traces/) holds the checkpointed inputs of
    the layers before the one recomputed at 1.87-1.95 B per hidden value per token per layer of the whole model (2 B each
    of L - 1 layers): nothing per layer beside them. So under these strategies the plan keeps 2 B a layer's input (the
    variant's ``g``) and not TRL's per-layer excess fitted on one GPU (``fused_head_gc_h``), which one GPU keeps."""
    import ast

    from ftdecide.core.estimator import memory_model

    seen = {}
    for path in sorted((ROOT / "data" / "traces").glob("*.jsonl")):
        for t in jsonl(path):
            if t.get("status") != "ok" or not t.get("gc") or t.get("strategy") != strategy or "peak_by_frame" not in t:
                continue
            frames = t["peak_by_frame"] if isinstance(t["peak_by_frame"], list) else ast.literal_eval(t["peak_by_frame"])
            arch = fit_trainers.arch_of_trainer_record(t)
            held = sum(v for k, v in frames if "checkpoint.py:512" in k) * 2**30
            if arch.is_moe or not any("recompute_fn" in k for k, _ in frames):
                continue  # an MoE launch peaks in forward, between layers (traced; its own test)
            seen[t["id"]] = held / (t["batch"] * t["seq"] * arch.hidden_size * arch.num_layers)
    assert len(seen) >= 3 and all(1.85 < v < 1.95 for v in seen.values()), seen
    arch = resolve_model("llama-3.2-3b")
    on = dict(method="lora" if strategy == "fsdp" else "qlora", trainer="trl", seq_len=2048, batch_size=2, gradient_checkpointing=True)
    one = memory_model(arch, TrainConfig(**on)).stored_gc
    sharded = memory_model(arch, TrainConfig(**on, strategy=strategy, gpus=2)).stored_gc
    per_layer = arch.hidden_size * arch.num_layers
    assert sharded == pytest.approx(2.0 * per_layer) and one == pytest.approx(sharded + 0.5 * per_layer)


def test_the_gemma2_ia3_launch_peaks_early_in_forward_with_two_head_sized_blocks():
    """data/grids/sharded_trace_e.jsonl line 1 (data/traces/h100_sharded_fsdp2_e_2026-12-07.jsonl): sharded_trl_h:5
    again, Gemma-2-2B IA3 over 2 GPUs, checkpointed, 2 x 1024, with the allocator's history (the other four lines did not
    run: the device time ran out). It peaked at 5.01 GiB as the first run did, not in backward but in forward, in the
    backbone's call from TRL's fused forward: beside its shards (2.44 GiB), two blocks the size of its tied head (256,000
    x 2,304 in bf16, 1.10 GiB each), one decoder layer and the inputs saved so far, nothing recomputed. The plan now has
    that moment (``fsdp.early_bytes``: the tied unit twice and a layer, without what the layers saved by then: a lower
    bound), which sets its peak: -7.3% became -4.6%. A model whose head is untied, or small beside its layers, never
    peaks there."""
    from ftdecide.core.estimator import memory_model
    from ftdecide.strategies.fsdp import early_bytes, in_flight_units, tail_bytes

    (t,) = _traces("h100_sharded_fsdp2_e_2026-12-07.jsonl")
    first = next(r for r in fit_trainers.sharded() if r["id"] == t["of"])
    assert t["id"] == "sharded_trace_e:1" and t["peak_train_alloc_gib"] == pytest.approx(first["peak_train_alloc_gib"], abs=0.01)
    frames = dict(t["peak_by_frame"])
    arch, cfg = fit_trainers.arch_of_trainer_record(t), fit_trainers.config(t)
    head = arch.vocab_size * arch.hidden_size * 2 / 2**30
    assert frames["/tmp/site/trl/trainer/utils.py:1616 _fused_forward"] == pytest.approx(2 * head, abs=0.05)
    assert sorted(b for b, where in t["peak_blocks"] if "_fused_forward" in where)[-2:] == pytest.approx([head, head], abs=0.001)
    assert not any("recompute_fn" in k for k in frames)
    assert early_bytes(arch, cfg) == pytest.approx(2 * tail_bytes(arch, cfg) + in_flight_units(arch, cfg)[0])
    est = estimate_memory(arch, cfg)
    assert est.peak_phase == "forward" and est.breakdown["overhead"] * 2**30 == pytest.approx(early_bytes(arch, cfg))
    assert fit_trainers.error(first) == pytest.approx(-0.046, abs=0.001)
    # none for an untied head, another trainer's loss, or a trained base; and no other launch peaks there
    untied = resolve_model("llama-3.1-8b")
    assert early_bytes(untied, cfg) == 0.0 and memory_model(untied, cfg).early_gathered == 0.0
    assert early_bytes(arch, cfg.model_copy(update={"trainer": "hf"})) == 0.0
    assert early_bytes(arch, cfg.model_copy(update={"method": "full"})) == 0.0
    others = [r for r in fit_trainers.sharded() if r["id"] != t["of"]]
    for r in others:
        c = fit_trainers.config(r)
        p = memory_model(fit_trainers.arch_of_trainer_record(r), c).phases(c.seq_len, c.batch_size, c.gradient_checkpointing)
        assert not (p["early"] and p["forward"] >= max(p["backward"], p["end"])), r["id"]


def test_the_checkpointed_7b_adapter_launch_traced():
    """data/grids/sharded_trace_c.jsonl line 1 (data/traces/h100_sharded_fsdp2_c_2026-12-07.jsonl): sharded_trl_f:1
    again, Qwen2.5-7B LoRA over 4 GPUs, checkpointed, 2 x 2048, with the allocator's history; it peaked at 6.79 GiB as
    the first run did, in the last layer's recompute. Where the plan's 0.55 GiB over comes from: the checkpointed
    inputs are 2 B a hidden value of each token in each of the 27 layers before the last (0.74 GiB), where the TRL model
    keeps 2.5 B (``fused_head_gc_h``: 0.19 GiB more), and FSDP2's gathered weights (no Python frame) are 1.00 GiB, 2.3
    of its 0.434 GiB decoder layers, where the plan holds 3.0 (``fsdp_frozen_layers``: 0.30 GiB more). The trace of
    Qwen3-8B over 8 showed the same two (2.4 layers). Line 2 (Llama-3.1-8B DoRA over 4) stopped in its first backward
    with the history on (torch's ``SystemError`` from ``run_backward``), where its untraced run had finished: its line
    holds the error, and no peak."""
    from ftdecide.core.estimator import memory_model
    from ftdecide.strategies.fsdp import layer_params

    lines = _traces("h100_sharded_fsdp2_c_2026-12-07.jsonl")
    ok = [t for t in lines if t["status"] == "ok"]
    assert [t["id"] for t in lines] == ["sharded_trace_c:1", "sharded_trace_c:2"] and [t["id"] for t in ok] == ["sharded_trace_c:1"]
    t = ok[0]
    first = next(r for r in fit_trainers.sharded() if r["id"] == "sharded_trl_f:1")
    assert t["peak_train_alloc_gib"] == pytest.approx(first["peak_train_alloc_gib"], abs=0.01)
    frames = dict(t["peak_by_frame"])
    assert "torch/utils/checkpoint.py:1607 recompute_fn" in frames
    arch = resolve_model(t["model"])
    tokens = t["batch"] * t["seq"]
    inputs = frames["torch/utils/checkpoint.py:512 checkpoint"] * 2**30 / (arch.hidden_size * tokens * (arch.num_layers - 1))
    assert inputs == pytest.approx(2.0, abs=0.01)
    layer = layer_params(arch) * 2 / 2**30
    assert frames["(no python frame)"] / layer == pytest.approx(2.31, abs=0.01)
    cfg = TrainConfig(method="lora", trainer="trl", strategy="fsdp", gpus=4, seq_len=2048, batch_size=2, gradient_checkpointing=True)
    # the plan holds 2.5 (fsdp_fused_bwd_layers: these 2.3 and Qwen3-8B's 2.4, the next half up)
    assert memory_model(arch, cfg).bwd_gathered / 2**30 == pytest.approx(2.5 * layer)


def test_the_moe_adapter_launch_peaks_in_forward_between_layers():
    """data/grids/sharded_trace_d.jsonl (data/traces/h100_sharded_fsdp2_d_2026-12-07.jsonl): line 1 is sharded_trl_e:1
    again (Qwen3-30B-A3B at 8 layers, LoRA on attention over 4 GPUs, checkpointed) with the allocator's history. It
    peaked in forward, not backward: beside its shards (2.62 GiB, loaded in main), 3.05 of its 1.16 GiB decoder layers
    gathered inside a checkpointed layer's forward, and nothing of the loss or of backward. The plan's moment between
    two layers (``fsdp_fused_fwd_layers``, 3.0 layers beside what the layers saved) now sets its peak, within 1% of the
    run; without it, the backward's 2.5 layers would leave the plan 6.7% under. Line 2, Llama-3.2-1B IA3 over 2, peaked in backward with
    its tied head (0.49 GiB) held by TRL's fused forward, as the other tied launches did."""
    from ftdecide.core.estimator import memory_model
    from ftdecide.strategies.fsdp import layer_params

    moe, ia3 = _traces("h100_sharded_fsdp2_d_2026-12-07.jsonl")
    assert (moe["id"], ia3["id"]) == ("sharded_trace_d:1", "sharded_trace_d:2")
    first = next(r for r in fit_trainers.sharded() if r["id"] == moe["of"])
    assert moe["peak_train_alloc_gib"] == pytest.approx(first["peak_train_alloc_gib"], abs=0.01)
    frames = dict(moe["peak_by_frame"])
    assert not any(("recompute_fn" in k or "compute_loss" in k) and v > 0.001 for k, v in frames.items())
    arch = fit_trainers.arch_of_trainer_record(moe)
    layer = layer_params(arch) * 2 / 2**30
    assert frames["torch/utils/checkpoint.py:512 checkpoint"] / layer == pytest.approx(3.05, abs=0.01)
    m = memory_model(arch, fit_trainers.config(moe))
    assert m.mid_gathered / 2**30 == pytest.approx(3 * layer) and m.bwd_gathered / 2**30 == pytest.approx(2.5 * layer)
    p = m.phases(moe["seq"], moe["batch"], True)
    assert p["between"] and p["forward"] > p["backward"]
    assert fit_trainers.error(first) == pytest.approx(-0.010, abs=0.001)
    assert fit_trainers.error(first, fit_trainers.DEFAULT.with_constants(fsdp_fused_fwd_layers=0.0)) == pytest.approx(-0.067, abs=0.001)
    assert any("_fused_forward" in where and b == pytest.approx(0.489, abs=0.001) for b, where in ia3["peak_blocks"])


def test_sharded_held_out_launches_were_planned_before_they_ran():
    """The 13 launches of data/grids/sharded_trl_d.jsonl had their plans written in the grid before they ran
    (planned_gib): against the measured peaks a median 4.3% over, -2.1% / +18.5%. The adapters' moved with the traces
    of three other launches (the loss's backward and the last layer's recompute two moments; TRL's fused head holding
    a tied weight to the end of backward, an untied one not): the 13 were then a median 2.7%, -1.2% / +15.6%, and with
    the layers in flight counted by moment (sixteenth session) 1.8%, -1.2% / +15.6%, and with IA3's scaled product in
    bf16 under FSDP2 (seventeenth) 1.3%, and without TRL's per-layer excess of checkpointed steps under FSDP2
    (eighteenth) 1.2%, -5.4% / +13.2% (TinyLlama LoRA over 2 with checkpointing), and with full fine-tuning's FSDP2
    layout under TRL's fused head taken from its traces (nineteenth) 1.2%, -5.4% / +2.3%. These changes were made with
    these launches' errors in view: they are no longer held out for them."""
    held = [r for r in fit_trainers.sharded() if "planned_gib" in r and r["id"].startswith("sharded_trl_d:")]
    assert len(held) == 13
    errs = [r["planned_gib"] / r["peak_train_alloc_gib"] - 1 for r in held]
    assert statistics.median(errs) == pytest.approx(0.043, abs=0.001)
    assert min(errs) == pytest.approx(-0.021, abs=0.001) and max(errs) == pytest.approx(0.185, abs=0.001)
    today = [fit_trainers.error(r) for r in held]
    assert statistics.median(abs(e) for e in today) == pytest.approx(0.012, abs=0.001)
    assert min(today) == pytest.approx(-0.054, abs=0.001) and max(today) == pytest.approx(0.023, abs=0.001)


def test_fsdp2_adapter_moments_follow_the_traces():
    """Under TRL's fused head and FSDP2 over a frozen base, a tied model's head unit (its embedding) is held through
    forward and backward, an untied one's at the loss only; the loss's backward and the recompute are two moments
    (data/traces/h100_sharded_fsdp2_b_2026-12-07.jsonl: Llama-3.2-1B and Qwen2.5-1.5B, both tied, peaked in the
    recompute with the 0.49 and 0.43 GiB head weights TRL's fused forward took still held, the loss's tile freed);
    and the decoder layers in flight are backward's (each is resharded after its forward): none at the loss."""
    from ftdecide.core.estimator import memory_model
    from ftdecide.strategies.fsdp import layer_params, tail_bytes

    traces = _traces("h100_sharded_fsdp2_b_2026-12-07.jsonl")
    for t in traces:
        head = max(b for b, where in t["peak_blocks"] if "_fused_forward" in where)
        arch = resolve_model(t["model"])
        assert arch.tie_embeddings and head == pytest.approx(arch.vocab_size * arch.hidden_size * 2 / 2**30, abs=0.001)
        assert any("recompute_fn" in where for where, _ in t["peak_by_frame"])
    cfg = TrainConfig(method="lora", trainer="trl", strategy="fsdp", gpus=2, seq_len=2048, batch_size=4, gradient_checkpointing=True)
    tied, untied = resolve_model("llama-3.2-1b"), resolve_model("llama-3.1-8b")
    mt, mu = memory_model(tied, cfg), memory_model(untied, cfg)
    assert mt.loss_apart and mu.loss_apart
    # 2.5 decoder layers gathered in backward, 3 between layers in forward (bf16); the tied head's unit through the step
    for m, arch in ((mt, tied), (mu, untied)):
        assert m.bwd_gathered == pytest.approx(2.5 * layer_params(arch) * 2)
        assert m.mid_gathered == pytest.approx(3 * layer_params(arch) * 2)
    assert mt.gathered == pytest.approx(tail_bytes(tied, cfg)) and mt.fwd_gathered == 0.0
    assert mu.gathered == 0.0 and mu.fwd_gathered == pytest.approx(tail_bytes(untied, cfg))
    loop = memory_model(tied, cfg.model_copy(update={"trainer": "loop"}))
    assert not loop.loss_apart


def test_fsdp1_launches_within_bounds_and_their_plans_were_written_before_they_ran():
    """FSDP1 over a 4-bit base (data/grids/fsdp1_a.jsonl), launched as rank 0 of 2-8 GPUs: the 7 launches without
    offload were -2.1% / +10.7% as written before they ran; the two without checkpointing are today's plan still, the
    five with it are lower now (no per-layer TRL excess under FSDP1, as its traces show; the loss's backward and the
    recompute two moments, the recompute at its traced 1.2 layers): -5.5% / +1.8%. All 9 loaded
    the base on the GPU: rank 0 held the whole 4-bit model when training started (within 0.03 GiB of the single-GPU
    plan's weights). The 2 offloaded ones ran 7% and 31% over their plans then; an offloaded FSDP1 plan now loads the
    base in host memory, so they ran what is no longer emitted (superseded, out of the sharded set)."""
    from ftdecide.probe.records import read_records

    runs = [r for r in read_records(fit_trainers.SHARDED) if r["id"].startswith("fsdp1_a:")]
    assert len(runs) == 9 and {r["strategy"] for r in runs} == {"fsdp1"}
    for r in runs:
        whole = estimate_memory(resolve_model(r["model"]), TrainConfig(method="qlora", trainer="trl")).breakdown["weights"]
        assert r["alloc_before_train_gib"] == pytest.approx(whole, abs=0.03), r["id"]
        assert fit_trainers.superseded(r) == bool(r.get("offload_params")), r["id"]
        if r.get("offload_params"):
            assert r["planned_gib"] / r["peak_train_alloc_gib"] - 1 < -0.05
        else:
            written = r["planned_gib"] / r["peak_train_alloc_gib"] - 1
            assert (fit_trainers.error(r) < written - 0.015) if r["gc"] else fit_trainers.error(r) == pytest.approx(written, abs=0.002)
            assert -0.056 < fit_trainers.error(r) < 0.019


def test_fsdp1_checkpointed_step_is_sized_as_traced():
    """The checkpointed FSDP1 launches traced under TRL (TinyLlama QLoRA over 2, loaded in host memory; Llama-3.2-3B
    over 2; and, after the term was set, TinyLlama over 4 and Llama-3.2-3B over 2 offloaded) peak while the last layer
    is recomputed, with none of the fused loss's backward beyond 0.04 GiB held, and the recompute's frames (the layer's
    own, its dropout copies and masks, the MLP's activation, bitsandbytes' dequantized weight) hold 1.20-1.22 layers of
    LoRA's activations: so the plan takes the two moments apart and the recompute at ``fsdp1_recompute`` (1.2), not the
    0.91 fitted on one GPU."""
    from ftdecide.core.estimator import memory_model

    keys = ("recompute_fn", "dropout", "silu", "_dequant")
    lines = [t for t in _traces("h200_fsdp1_cpu_load_b_2026-12-07.jsonl") + _traces("h100_fsdp1_diag_2026-12-07.jsonl") if t["gc"]]
    # and the two traced after the term was set (TinyLlama over 4 and Llama-3.2-3B over 2, offloaded)
    lines += [t for t in _traces("h100_sharded_f_2026-12-07.jsonl") if t.get("strategy") == "fsdp1"]
    assert {t["model"] for t in lines} == {"tinyllama-1.1b", "llama-3.2-3b"} and len({t["id"] for t in lines}) == 6
    for t in lines:
        cfg = fit_trainers.config(t)
        m = memory_model(fit_trainers.arch_of_trainer_record(t), cfg)
        frames = dict(t["peak_by_frame"])
        held = sum(g for w, g in frames.items() if any(k in w for k in keys))
        assert held / (m.layer_base * cfg.seq_len * cfg.batch_size / 2**30) == pytest.approx(1.21, abs=0.02), t["id"]
        assert sum(g for w, g in frames.items() if "chunked_logprob" in w) < 0.04
        assert m.recompute == 1.2 and m.loss_apart
    lora_one_gpu = memory_model(resolve_model("tinyllama-1.1b"), TrainConfig(method="qlora", trainer="trl"))
    assert lora_one_gpu.recompute == pytest.approx(0.91) and not lora_one_gpu.loss_apart


def test_ia3_checkpointed_backward_holds_three_mlp_wide_blocks_under_fsdp2():
    """Three of the four IA3 launches traced over FSDP2 with checkpointing (Llama-3.2-1B over 2, Llama-3.2-3B over 4,
    TinyLlama over 2) hold exactly three blocks of tokens x intermediate x 2 B with no Python frame at their peak,
    whatever their MLP's width beside the hidden size (4, 2.7, 2.75); Mistral-7B over 8 holds six, and its plan with three
    is +2.0%. So IA3's term under a bf16 engine is three such blocks a token (it had been 24 B a hidden value, equal only
    where the MLP is 4 wide). One GPU keeps the method's own fit: no such term."""
    from ftdecide.core.estimator import memory_model

    traces = {
        t["id"]: t
        for name in ("h100_sharded_fsdp2_d_2026-12-07.jsonl", "h100_sharded_fsdp2_h_2026-12-07.jsonl", "h100_sharded_f_2026-12-07.jsonl")
        for t in _traces(name)
    }
    counts = {}
    for tid in ("sharded_trace_d:2", "sharded_trl_h:2", "sharded_trace_e:5", "sharded_trace_e:2"):
        t = traces[tid]
        arch, cfg = fit_trainers.arch_of_trainer_record(t), fit_trainers.config(t)
        block = cfg.seq_len * cfg.batch_size * arch.intermediate_size * 2 / 2**30
        counts[t["model"]] = sum(
            1 for b, where in t["peak_blocks"] if where == "(no python frame)" and b == pytest.approx(block, abs=0.0006)
        )
        assert memory_model(arch, cfg).recompute_extra == 3 * 2.0 * arch.intermediate_size
    assert counts == {"llama-3.2-1b": 3, "llama-3.2-3b": 3, "tinyllama-1.1b": 3, "mistral-7b": 6}
    one = memory_model(resolve_model("tinyllama-1.1b"), TrainConfig(method="ia3", trainer="trl"))
    assert one.recompute_extra == 0.0


def test_fsdp1_loaded_in_host_memory_starts_with_its_root_unit_flattened():
    """The emitted FSDP1 launch with the parameters offloaded and the 4-bit base loaded and quantized in host memory
    (``device_map={"": "cpu"}``, set by the harness in data/grids/fsdp1_b.jsonl, emitted since): nothing is on the GPU
    when training starts, and the trainer's FSDP1 wrapping peaks with the root unit moved there (embeddings and head,
    bf16), its flat copy and its shard, beside the quantization constants (traced, TinyLlama over 2: blocks of 0.244
    GiB and 3 x 0.122 GiB). That moment, ``cpu_load_start``, is within 0.6% of the 3 traced launches (untied, over 2)."""
    from ftdecide.strategies.fsdp1 import cpu_load_start

    lines = _traces("h100_fsdp1_cpu_load_2026-12-07.jsonl") + _traces("h200_fsdp1_cpu_load_b_2026-12-07.jsonl")[:1]
    assert [t["id"] for t in lines] == ["fsdp1_b:1", "fsdp1_b:4", "fsdp1_b:4"]
    for t in lines:
        assert t["status"] == "ok" and t["offload_params"] and t["load"] == "cpu" and t["alloc_before_train_gib"] < 0.001
        start = cpu_load_start(fit_trainers.arch_of_trainer_record(t), fit_trainers.config(t)) / 2**30
        assert start == pytest.approx(t["peak_prepare_alloc_gib"], rel=0.006), t["id"]
    blocks = sorted((b for b, frame in lines[2]["prepare_trace"]["peak_blocks"] if b > 0.1), reverse=True)
    assert blocks == [0.2441, 0.1221, 0.1221, 0.1221]


# A term only TRL's checkpointed LoRA runs showed: lora_gc_down_in bytes per value of down_proj's adapted input,
# once per token (the recomputed layer), declared by TRL alone.
@pytest.mark.parametrize(
    "trainer, targets, gc, per_token",
    [
        pytest.param("trl", "all-linear", True, 4.0 * 8192, id="trl-ckpt"),
        pytest.param("trl", "all-linear", False, 0.0, id="trl-no-ckpt"),
        pytest.param("trl", "attn", True, 0.0, id="trl-attn-only"),
        pytest.param("hf", "all-linear", True, 0.0, id="hf"),
        pytest.param("loop", "all-linear", True, 0.0, id="loop"),
    ],
)
def test_trl_lora_recompute_term_is_its_own(trainer, targets, gc, per_token):
    from ftdecide.core.calibration import DEFAULT

    a = resolve_model("llama-3.2-1b")  # intermediate 8192
    cfg = TrainConfig(method="lora", trainer=trainer, lora_targets=targets, gradient_checkpointing=gc, seq_len=2048, batch_size=4)
    with_term = estimate_memory(a, cfg).peak_allocated_gib
    without = estimate_memory(a, cfg, DEFAULT.with_constants(lora_gc_down_in=0.0)).peak_allocated_gib
    assert with_term - without == pytest.approx(per_token * 2048 * 4 / 2**30, abs=1e-9)
    # QLoRA and DoRA, LoRA's family, fit their own recompute terms
    for method in ("qlora", "dora"):
        other = cfg.model_copy(update={"method": method})
        assert (
            estimate_memory(a, other).peak_allocated_gib
            == estimate_memory(a, other, DEFAULT.with_constants(lora_gc_down_in=0.0)).peak_allocated_gib
        )


@pytest.mark.parametrize(
    "trainer, saved, built",
    [
        pytest.param("trl", 8.0, 4.0, id="trl: as transformers writes it"),
        pytest.param("hf", 8.0, 4.0, id="hf: as transformers writes it"),
        pytest.param("loop", 0.28, 0.0, id="loop: its own fitted constant"),
    ],
)
def test_gemma2_eager_attention_as_transformers_writes_it(trainer, saved, built):
    """Gemma 2's softcapped eager attention (transformers 5.17, gemma2.eager_attention_forward) saves 8 B per head per
    key position per token in every layer under the trainers (tanh's bf16 scores, softmax's fp32 output, the bf16
    probabilities) and builds 4 B more in the layer being differentiated; the loop keeps its fitted 0.28. The step
    time's traffic for those scores stays what it was fitted with (``eager_traffic_bytes``), whatever the memory
    model's split."""
    from ftdecide.core.calibration import DEFAULT
    from ftdecide.core.estimator import memory_model
    from ftdecide.core.throughput import tokens_per_second

    a = resolve_model("gemma-2-2b")
    cfg = TrainConfig(method="lora", trainer=trainer, seq_len=2048, batch_size=2)
    mm = memory_model(a, cfg)
    assert (mm.layer_eager, mm.eager_bwd) == (pytest.approx(saved * a.num_heads), pytest.approx(built * a.num_heads))

    def tps(**constants):
        return tokens_per_second(a, cfg, 989.0, 3350.0, DEFAULT.with_constants(**constants))

    assert tps(eager_saved_bytes=12.28) == pytest.approx(tps(), rel=1e-12)
    assert (tps(eager_traffic_bytes=20.0) < tps()) == (trainer != "loop")


def test_gpt_oss_checkpointed_sink_attention_term():
    """sink_eager_gc bytes per head, key position and token in backward, with checkpointing only."""
    from ftdecide.core.calibration import DEFAULT
    from ftdecide.core.estimator import memory_model

    a = resolve_model("gpt-oss-20b")
    cfg = TrainConfig(method="lora", seq_len=1024, batch_size=2)
    for gc in (True, False):
        on, off = (
            memory_model(a, cfg, cal).phases(1024, 2, gc)["backward"] for cal in (DEFAULT, DEFAULT.with_constants(sink_eager_gc=0.0))
        )
        assert on - off == pytest.approx(1.2 * a.num_heads * 1024 * 2048 if gc else 0.0, rel=1e-12)


def _harness():
    sys.path.insert(0, str(ROOT / "benchmarks"))
    import trainer_runs

    return trainer_runs


@pytest.mark.parametrize(
    "method, autocast",
    [
        pytest.param("full", False, id="pure bf16 full: accelerate's FSDP2 would upcast it under autocast"),
        pytest.param("lora", True, id="lora: only the adapters train, as measured with autocast"),
    ],
)
def test_a_sharded_grid_line_runs_the_emitted_launch_of_its_plan(method, autocast):
    """A grid line with ``gpus`` and ``strategy`` (benchmarks/trainer_runs.py) is the plan of that many GPUs: its
    accelerate config and its TRL file are what ``recommend --emit`` writes for it, and its record sizes it so."""
    import yaml

    runs = _harness()
    line = {"model": "llama-3.2-1b", "trainer": "trl", "method": method, "seq": 1024, "batch": 2, "gc": True, "optim": "adamw"}
    line.update(accum=2, gpus=4, strategy="fsdp", id="t:1")
    if method == "lora":
        line.update(r=16, targets="all-linear", dropout=0.05)
    cfg = runs.config_of(line)
    assert (cfg.gpus, cfg.strategy_spec.label) == (4, "FSDP2")
    acc = yaml.safe_load(runs.emitted("accelerate", line))
    assert acc["distributed_type"] == "FSDP" and acc["num_processes"] == 4 and acc["fsdp_config"]["fsdp_version"] == 2
    assert acc["mixed_precision"] == ("bf16" if autocast else "no")
    script = runs.script_for(line, ROOT / "model")
    assert f"    bf16={autocast}," in script and "fsdp='full_shard'" in script and "max_steps=" in script


def test_the_harness_builds_each_model_in_a_child_process(monkeypatch, tmp_path):
    """benchmarks/trainer_runs.py builds a line's checkpoint in a process of its own (``--build DIR``, the line on
    stdin), so the harness holds no CUDA context of its own while the runs it starts measure the card (on
    2026-12-07 it held 612 MiB through the edge grid)."""
    import io

    runs = _harness()
    line = {"model": "qwen2.5-0.5b", "trainer": "trl", "method": "lora", "seq": 512, "batch": 2, "gc": True}
    calls, built = [], []

    def child(cmd, input, text, check):  # the child, run here: its argv and its stdin
        calls.append(cmd)
        monkeypatch.setattr(sys, "argv", cmd[1:])
        monkeypatch.setattr(sys, "stdin", io.StringIO(input))
        runs.main()

    def build_here(got, out):
        built.append((got, out))
        (out / "model.safetensors").write_bytes(bytes(3 * 2**20))

    monkeypatch.setattr(runs.subprocess, "run", child)
    monkeypatch.setattr(runs, "build_here", build_here)
    assert runs.build_model(line, tmp_path) == 3 / 1024
    assert calls == [[sys.executable, runs.__file__, "--build", str(tmp_path)]] and built == [(line, tmp_path)]


def test_the_launch_harness_makes_its_process_rank_0_of_n_under_the_fake_group(monkeypatch):
    """``FTD_FAKE_WORLD=N`` (benchmarks/launch_peak.py): whatever backend the launcher asks for, the process group is
    torch's fake one of N ranks, and the environment says rank 0 of N, as accelerate reads it."""
    pytest.importorskip("torch")
    import torch.distributed as dist

    sys.path.insert(0, str(ROOT / "benchmarks"))
    import launch_peak

    for key in ("WORLD_SIZE", "LOCAL_WORLD_SIZE", "RANK", "LOCAL_RANK"):
        monkeypatch.setenv(key, "")  # so that the test's end restores them, whatever _fake_world sets
    monkeypatch.setenv("FTD_FAKE_WORLD", "4")
    monkeypatch.setattr(dist, "init_process_group", dist.init_process_group)  # restored after the test
    launch_peak._fake_world()
    try:
        dist.init_process_group(backend="nccl")
        assert (dist.get_backend(), dist.get_world_size(), dist.get_rank()) == ("fake", 4, 0)
        assert launch_peak.info["fake_world"] == 4
    finally:
        dist.destroy_process_group()
    assert (os.environ["WORLD_SIZE"], os.environ["RANK"], os.environ["LOCAL_RANK"]) == ("4", "0", "0")


@pytest.mark.parametrize(
    "method, optimizer, trainer, extra_on_gpu",
    [
        # the embedding (128,256 x 2,048, tied to the head) keeps fp32 states: 8 B a value for bitsandbytes' 2 + 8/256
        pytest.param("full", "adamw8bit", "hf", 128256 * 2048 * (8.0 - 2.0 - 8.0 / 256), id="hf-full-8bit"),
        pytest.param("full", "adamw8bit", "trl", 128256 * 2048 * (8.0 - 2.0 - 8.0 / 256), id="trl-full-8bit"),
        pytest.param("full", "adamw8bit", "loop", 0.0, id="loop-builds-bnb-as-shipped"),
        pytest.param("full", "adamw", "hf", 0.0, id="torch-adamw-has-no-8bit-states"),
        pytest.param("lora", "adamw8bit", "hf", 0.0, id="frozen-embedding-no-states"),
        # paged: the embedding's states are paged with the rest, outside the peak
        pytest.param("full", "paged_adamw_8bit", "hf", 0.0, id="paged-outside-the-peak"),
    ],
)
def test_transformers_keeps_a_trained_embeddings_8bit_states_in_fp32(method, optimizer, trainer, extra_on_gpu):
    """transformers' Trainer.create_optimizer registers every nn.Embedding for 32-bit states with bitsandbytes' 8-bit
    optimizers (the hf run of Llama-3.2-1B full fine-tuning with 8-bit AdamW was -9.6% without it: +0.4% with)."""
    from ftdecide.core.estimator import memory_model

    a = resolve_model("llama-3.2-1b")
    cfg = TrainConfig(method=method, optimizer=optimizer, trainer=trainer, seq_len=1024)
    plain = trainers.get(trainer).fp32_state_matrices(a, cfg) == ()
    as_shipped = memory_model(a, cfg.model_copy(update={"trainer": "loop"})).opt_gpu
    assert memory_model(a, cfg).opt_gpu - as_shipped == pytest.approx(extra_on_gpu)
    assert plain == (not trainers.get(trainer).fp32_embedding_states or not cfg.method_spec.trains_base)


def test_qlora_weights_are_what_the_trainer_loaded():
    """Every TRL QLoRA run's allocation before its first step (the 4-bit base, its bf16 remainder and the adapters)
    within 0.035 GiB of the plan's weights, Gemma 3's among them: bitsandbytes quantizes its vision tower's linear
    layers too (they had been counted in bf16: 0.58 GiB over at 4B, 0.18 GiB at the 12B's 8-layer copy)."""
    runs = [r for r in fit_trainers.load("trl") if r["method"] == "qlora" and r.get("alloc_before_train_gib")]
    assert len(runs) >= 40 and any(fit_trainers.arch_of_trainer_record(r).vision_linear for r in runs)
    for r in runs:
        weights = estimate_memory(fit_trainers.arch_of_trainer_record(r), fit_trainers.config(r)).breakdown["weights"]
        assert abs(weights - r["alloc_before_train_gib"]) <= 0.035, r["id"]


def test_fused_head_backward_and_layers_backward_are_two_moments():
    """TRL's fused head frees its tiles and the head's fp32 gradient before the last layer is recomputed: the
    larger of the two moments counts, beside what both hold (Llama-3.2-1B full fine-tuning at 4 x 2048,
    checkpointed: the loss's 1.48 GiB against the recompute's 1.01), on one GPU and under FSDP2 alike. The head's fp32
    gradient is whole under FSDP2 (0.98 GiB, not a quarter of it over 4): the kernel is handed the gathered weight.
    Traced (data/traces/h100_sharded_fsdp2_2026-12-07.jsonl, full fine-tuning over FSDP2): Llama-3.2-1B over 4 at
    2 x 1024 peaked in the loss's backward with that whole fp32 block and no decoder layer's recompute, TinyLlama over 2
    at 4 x 2048 in the recompute with no block of the loss's beyond 0.04 GiB."""
    from ftdecide.core.estimator import memory_model

    a = resolve_model("llama-3.2-1b")
    cfg = TrainConfig(method="full", trainer="trl", seq_len=2048, batch_size=4, gradient_checkpointing=True, gradient_accumulation=2)
    fixed = []
    for world in (1, 4):
        mm = memory_model(a, cfg.model_copy(update={"gpus": world, "strategy": "fsdp" if world > 1 else "auto"}))
        p = mm.phases(2048, 4, True)
        both = p["act"] + p["logits"] + mm.head_grad + mm.accum_grads + mm.gathered + mm.bwd_gathered
        loss = mm.logits_bwd * p["tokens"] + p["tile"] + mm.loss_bwd_fixed
        layers = p["recompute"] + p["eager_bwd"]
        assert loss > layers > 0
        assert p["backward"] == pytest.approx(both + loss)
        fixed.append(mm.loss_bwd_fixed)
    assert fixed[0] == fixed[1] == a.vocab_size * a.hidden_size * 4
    one = memory_model(a, cfg).phases(2048, 4, True)
    assert (one["tile"] + memory_model(a, cfg).loss_bwd_fixed) / 2**30 == pytest.approx(0.25 + 0.98, abs=0.01)
    traces = {t["id"]: t for t in _traces("h100_sharded_fsdp2_2026-12-07.jsonl")}
    at_loss, at_layers = traces["sharded_trace_a:1"], traces["sharded_trace_a:2"]
    frames = {where for where, gib in at_loss["peak_by_frame"] if gib > 0}
    assert not any("recompute_fn" in w for w in frames)
    assert max(b for b, where in at_loss["peak_blocks"] if "chunked_logprob" in where) == pytest.approx(fixed[0] / 2**30, abs=0.001)
    assert any("recompute_fn" in where for where, gib in at_layers["peak_by_frame"] if gib > 0.1)
    assert max(gib for where, gib in at_layers["peak_by_frame"] if "chunked_logprob" in where) < 0.04


def test_the_fsdp2_basis_quotes_the_launches_as_they_stand():
    """What ``recommend`` prints of FSDP2's accuracy (its ``basis``) is the launches' figures today, recomputed from
    data/sharded_trainers/: full fine-tuning in bf16 and the adapters, each count, median |error| and range (the
    text had kept the figures of 10 and 14 launches after 21 adapter launches and the tied models' full runs came in)."""
    import re

    from ftdecide import strategies

    basis = strategies.get("fsdp").basis
    groups: dict[str, list[float]] = {"full fine-tuning in bf16": [], "adapters": []}
    for r in fit_trainers.sharded():
        c = fit_trainers.config(r)
        if c.strategy != "fsdp" or (c.method_spec.trains_base and c.precision != "bf16"):
            continue
        groups["full fine-tuning in bf16" if c.method_spec.trains_base else "adapters"].append(fit_trainers.error(r))
    for name, errs in groups.items():
        pattern = re.escape(name) + r"[^:]*: (\d+) launches, median ([\d.]+)%, ([-+][\d.]+)% / ([-+][\d.]+)%"
        n, med, lo, hi = re.search(pattern, basis).groups()
        assert int(n) == len(errs)
        assert float(med) == pytest.approx(100 * statistics.median(abs(e) for e in errs), abs=0.05)
        assert (float(lo), float(hi)) == pytest.approx((100 * min(errs), 100 * max(errs)), abs=0.05)
    # FSDP1 over a 4-bit base: every launch
    errs = [fit_trainers.error(r) for r in fit_trainers.sharded() if fit_trainers.config(r).strategy == "fsdp1"]
    n, lo, hi = re.search(r"(\d+) launches: ([-+][\d.]+)% / ([-+][\d.]+)%", strategies.get("fsdp1").basis).groups()
    assert int(n) == len(errs) and (float(lo), float(hi)) == pytest.approx((100 * min(errs), 100 * max(errs)), abs=0.05)
