"""Examples of mixed length (issue 28): padded per micro-batch, sdpa runs masked; packed (TRL, padding-free), each
micro-batch one flattened sequence. The mask's memory from its mechanism, held against the runs of
``data/packing/`` (the emitted TRL script, H100); the plan packs where it costs less, and the file says so."""

from __future__ import annotations

import json
import math
import pathlib
import random
import statistics
import sys

import pytest

from conftest import invoke, jsonl
from ftdecide.core.config import TrainConfig
from ftdecide.core.estimator import estimate_memory, memory_model
from ftdecide.files.catalog import resolve_model

ROOT = pathlib.Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "benchmarks"))
import fit_packing  # noqa: E402

GIB = 2**30


def _peak(model: str, collation: str, gc: bool, batch: int = 4, seq: int = 2048) -> float:
    cfg = TrainConfig(method="lora", trainer="trl", batch_size=batch, seq_len=seq, gradient_checkpointing=gc, collation=collation)
    return estimate_memory(resolve_model(model), cfg).peak_allocated_gib


@pytest.mark.parametrize("gc", [True, False])
def test_the_mask_is_a_boolean_and_a_bias_per_layer_saved(gc):
    """sdpa's mask: 1 B per query x key pair, built once, and the 2 B bias its masked kernel saves in every layer
    without checkpointing, in one with it: pairs of each sequence when padded, of the whole micro-batch when packed.
    Beside it, the keys and values transformers repeats to every query head for the masked kernel: 2 x (2,048 -
    1,024) bf16 values per token saved by every layer without checkpointing; with it, by the layer recomputed."""
    arch = resolve_model("qwen3-0.6b")
    per_pair = 1 + 2 * (1 if gc else arch.num_layers)
    cfg = TrainConfig(method="lora", trainer="trl", batch_size=4, seq_len=2048, gradient_checkpointing=gc)
    per_token = 2 * 2 * (2048 - 1024) * (memory_model(arch, cfg).recompute if gc else arch.num_layers)
    filled = _peak("qwen3-0.6b", "filled", gc)
    kv = per_token * 4 * 2048 / GIB
    assert _peak("qwen3-0.6b", "padded", gc) - filled == pytest.approx(per_pair * 4 * 2048**2 / GIB + kv, rel=1e-9)
    assert _peak("qwen3-0.6b", "packed", gc) - filled == pytest.approx(per_pair * (4 * 2048) ** 2 / GIB + kv, rel=1e-9)


def test_eager_attention_takes_no_sdpa_mask():
    # gemma-2 attends eagerly: the mask is added to its scores, which its own terms count
    assert _peak("gemma-2-2b", "padded", False) == _peak("gemma-2-2b", "filled", False)


def _runs():
    return fit_packing.load()


# the whole epochs after the fit set (fit_packing.FIT_GRIDS: packing_a and _b), in no fit of the time model's constants
HELD_OUT = ("packing_c:", "packing_d:", "packing_e:", "packing_g:")


@pytest.mark.parametrize("rec", _runs(), ids=lambda r: r["id"])
def test_each_measured_run_is_within_the_bounds(rec):
    """Peaks of the padded and packed runs (32): never under by more than 2.5% (packing_b:4, Llama-3.2-1B LoRA padded,
    -2.1%, run 2026-12-07 after every term was set), over by at most 7.5% (Qwen3-0.6B, the smallest model, padded:
    +7.4%; Llama-3.2-1B full fine-tuning, +15% when these runs came in, is +2.1% / +2.4% with the terms as they
    stand)."""
    assert -0.025 <= fit_packing.peak_error(rec) <= 0.075


def test_packed_step_time_is_modelled_from_the_masked_kernel():
    """The packed runs of packing_a and _b (five whole epochs, three fixed-step segments), every step at its recorded
    shape: every pair of the flattened micro-batch at the masked kernel's utilisation, a flattened length new to the
    run paying its share of cuDNN's host time, and the run's warm-up (the three fitted on the whole epochs of
    packing_a and _b, benchmarks/fit_packing.py --fit). All eight within -7% / +10%, a median of 3.4% (-11% / +8%, 3.8%
    before the LoRA family's step time was refitted, 2026-12-07). Without the host term two fall to -14% and -13%;
    without the warm-up seven of the eight are under, by up to 45% (a 4-step segment)."""
    from dataclasses import replace

    from ftdecide.core.calibration import DEFAULT

    packed = [r for r in _runs() if r.get("packing") and r["id"].startswith(fit_packing.FIT_GRIDS)]
    assert len(packed) == 8
    assert all(-0.07 <= fit_packing.time_error(r) <= 0.10 for r in packed)
    assert statistics.median(abs(fit_packing.time_error(r)) for r in packed) == pytest.approx(0.034, abs=0.002)
    without = replace(DEFAULT, step=replace(DEFAULT.step, masked_new_fwd_ms=0.0, masked_new_bwd_ms=0.0))
    assert sorted(fit_packing.time_error(r, without) for r in packed)[:2] == pytest.approx([-0.137, -0.125], abs=0.002)
    cold = replace(DEFAULT, step=replace(DEFAULT.step, masked_warmup_s=0.0))
    assert sum(fit_packing.time_error(r, cold) < -0.02 for r in packed) == 7
    assert min(fit_packing.time_error(r, cold) for r in packed) == pytest.approx(-0.449, abs=0.002)


def test_padded_step_time_pays_cudnn_host_time_for_each_new_length():
    """The padded whole epochs of packing_a and _b, each micro-batch at its own length, where a length new to the run
    pays its share of cuDNN's host time: the two chat runs (215 new lengths in 248 micro-batches) go from -38% without
    it to -1% and -19%; the bimodal ones (16 new lengths in 123 micro-batches, most cut at 2,048; and packing_b:6, 144
    in 150) to +13% and +6%. Over the nine whole epochs of packing_a and _b, padded and packed (the fit set): a median
    of 6.1%, 8.0% without the warm-up (4.4% and 12.1% before the LoRA family's step time was refitted, 2026-12-07:
    ``fit_packing.py --fit`` now finds the host share 0.8 for 0.7, the fit set at 5.2%, the sixteen held out at 4.4%;
    not adopted)."""
    from dataclasses import replace

    from ftdecide.core.calibration import DEFAULT

    whole = [r for r in _runs() if r.get("examples") and r["id"].startswith(fit_packing.FIT_GRIDS)]
    padded = {r["id"]: r for r in whole if not r.get("packing")}
    assert sorted(padded) == ["packing_a:1", "packing_a:3", "packing_b:4", "packing_b:6"]
    without = replace(DEFAULT, step=replace(DEFAULT.step, masked_new_fwd_ms=0.0, masked_new_bwd_ms=0.0))
    for name in ("packing_a:1", "packing_b:4"):
        assert fit_packing.time_error(padded[name], without) < -0.37
        assert abs(fit_packing.time_error(padded[name])) <= 0.19
    assert abs(fit_packing.time_error(padded["packing_a:3"])) <= 0.13
    assert abs(fit_packing.time_error(padded["packing_b:6"])) <= 0.07
    assert len(whole) == 9
    assert statistics.median(abs(fit_packing.time_error(r)) for r in whole) == pytest.approx(0.061, abs=0.002)
    cold = replace(DEFAULT, step=replace(DEFAULT.step, masked_warmup_s=0.0))
    assert statistics.median(abs(fit_packing.time_error(r, cold)) for r in whole) == pytest.approx(0.080, abs=0.002)


def test_new_length_host_time_counts_every_masked_call():
    from ftdecide.core.calibration import DEFAULT
    from ftdecide.core.collation import new_length_host_seconds
    from ftdecide.core.config import TrainConfig
    from ftdecide.files.catalog import resolve_model

    arch = resolve_model("qwen3-0.6b")  # 28 layers
    padded = TrainConfig(method="lora", collation="padded", gradient_checkpointing=True)
    # forward, checkpointing's second forward (4.42 ms each), backward (9.02 ms), of which a step pays 0.7
    assert new_length_host_seconds(arch, padded, DEFAULT) == pytest.approx(0.7 * (56 * 4.42 + 28 * 9.02) / 1e3)
    nogc = padded.model_copy(update={"gradient_checkpointing": False})
    assert new_length_host_seconds(arch, nogc, DEFAULT) == pytest.approx(0.7 * (28 * 4.42 + 28 * 9.02) / 1e3)
    # a packed micro-batch is one flattened sequence of a length new or not the same way; one length needs no mask
    packed = padded.model_copy(update={"collation": "packed"})
    assert new_length_host_seconds(arch, packed, DEFAULT) == new_length_host_seconds(arch, padded, DEFAULT)
    assert new_length_host_seconds(arch, padded.model_copy(update={"collation": "filled"}), DEFAULT) == 0.0


def test_the_share_of_new_lengths_is_the_expected_distinct_count():
    from ftdecide.files.dataset import DataStats

    # micro-batches of 1: each example its own length; two lengths, half each. Every example read: the epoch is
    # these four shuffled again, two distinct lengths in four micro-batches
    stats = DataStats("x", examples=4, lengths=(100, 100, 200, 200), every=1, counted_by="t", exact_tokens=True, formats=("text",))
    assert stats.new_length_share(2048, 1) == pytest.approx(2 / 4)
    # a hundred times the examples: still two lengths
    many = DataStats("x", examples=400, lengths=(100, 100, 200, 200), every=100, counted_by="t", exact_tokens=True, formats=("text",))
    assert many.new_length_share(2048, 1) == pytest.approx(2 * (1 - 0.5**400) / 400)
    # cut at the sequence length: one length left
    assert stats.new_length_share(64, 1) == pytest.approx(1 / 4)


def test_packed_lengths_come_from_a_best_fit_decreasing_packing():
    from ftdecide.files.dataset import DataStats

    # rows of 2,048: 1,500 | 1,500 | 600 open three rows (548, 548, 1,448 left); each 500 takes the best fit, a
    # 548 (48 left); the 100 the 1,448: rows of 2,000, 2,000 and 700 tokens
    stats = DataStats(
        "x", examples=6, lengths=(100, 500, 500, 600, 1500, 1500), every=1, counted_by="t", exact_tokens=True, formats=("text",)
    )
    assert sorted(stats._packed_row_lengths(2048)) == [700, 2000, 2000]
    assert stats.packed_new_length_share(2048, 1) == pytest.approx(2 / 3)  # micro-batches of one row: 2 lengths in 3
    assert stats.packed_new_length_share(2048, 3) == 1.0  # one micro-batch of all three


def test_the_planned_share_of_new_lengths_is_the_runs():
    """The share of an epoch's micro-batches whose length is new, planned from the runs' own examples (word counts
    plus the end-of-sequence token), against what each whole-epoch run recorded: padded within 0.02 (packing_d:1 and
    :2, 0.91 against 0.93), packed within 0.13 (the packing is simulated, its micro-batches shuffled once)."""
    import tempfile

    import trainer_runs

    for r in (r for r in _runs() if r.get("examples")):
        with tempfile.TemporaryDirectory() as d:
            words = trainer_runs.write_data(pathlib.Path(d) / "t.jsonl", r["examples"], r["seq"], r["lengths"], seed=r.get("seed", 0))
        stats = fit_packing.examples_data(words)
        share = stats.packed_new_length_share if r.get("packing") else stats.new_length_share
        seen = r["padded_tokens"]
        assert share(r["seq"], r["batch"]) == pytest.approx(len(set(seen)) / len(seen), abs=0.13 if r.get("packing") else 0.021)


def _chat(path, n=3000, seed=0):
    rng = random.Random(seed)
    words = [f"w{i}" for i in range(500)]
    with open(path, "w", encoding="utf-8") as fh:
        for _ in range(n):
            k = max(8, round(rng.lognormvariate(math.log(300), 0.8)))
            fh.write(json.dumps({"text": " ".join(rng.choice(words) for _ in range(k))}) + "\n")
    return str(path)


def _rec(data: str, *argv: str):
    r = invoke(["recommend", "--model", "llama-3.2-1b", "--gpu", "h100", "--dataset", data, *argv])
    assert r.exit_code == 0, r.output
    return json.loads(r.stdout) if "json" in argv else r.stdout


def test_a_plan_of_short_examples_packs_and_its_file_says_so(tmp_path):
    data = _chat(tmp_path / "chat.jsonl")
    doc = _rec(data, "--format", "json")
    hours = doc["data"]["time_hours"]
    assert doc["data"]["collation"] == "packed" and hours["packed"] < hours["padded"]
    assert doc["recommendation"]["time_hours"] == pytest.approx(hours["packed"], abs=1e-3)
    (plan,) = [c for c in doc["candidates"] if c["method"] == doc["recommendation"]["method"]]
    assert any("examples packed into rows of 2,048 tokens" in n and "holds about" in n for n in plan["notes"])
    text = _rec(data, "--emit", "trl")
    assert "packing=True" in text and f"per_device_train_batch_size={doc['recommendation']['micro_batch_size']}," in text
    # asked not to: padded, and the file does not pack
    off = _rec(data, "--no-packing", "--format", "json")
    assert off["data"]["collation"] == "padded" and off["data"]["time_hours"] == {"padded": hours["padded"]}
    assert (
        "packing="
        not in invoke(["recommend", "--model", "llama-3.2-1b", "--gpu", "h100", "--dataset", data, "--no-packing", "--emit", "trl"]).stdout
    )
    # a trainer that does not pack is never planned packed
    hf = json.loads(
        invoke(["recommend", "--model", "llama-3.2-1b", "--gpu", "h100", "--dataset", data, "--trainer", "hf", "--format", "json"]).stdout
    )
    assert hf["data"]["collation"] == "padded"


@pytest.mark.parametrize(
    "argv, said",
    [
        pytest.param(["--trainer", "hf"], "trainer: with packing on, transformers Trainer cannot pack", id="trainer"),
        pytest.param(["--emit", "llamafactory"], "--emit llamafactory with --packing: LLaMA-Factory cannot pack", id="emit"),
    ],
)
def test_packing_where_it_cannot_run_is_one_line(argv, said):
    r = invoke(["recommend", "--model", "llama-3.2-1b", "--gpu", "h100", "--packing", *argv])
    assert r.exit_code == 2 and said in r.stderr and len(r.stderr.strip().splitlines()) == 1


def test_soft_prompts_are_never_packed():
    doc = json.loads(invoke(["recommend", "--model", "llama-3.2-1b", "--gpu", "h100", "--packing", "--format", "json"]).stdout)
    prompt = next(c for c in doc["candidates"] if c["method"] == "prompt")
    assert not prompt["fits"] and any("virtual tokens before each row" in n for n in prompt["notes"])


def test_a_scenario_file_that_packs_under_a_trainer_that_cannot_names_the_line(tmp_path):
    sc = tmp_path / "s.yaml"
    sc.write_text("model: llama-3.2-1b\npacking: true\ntrainer: hf\n")
    r = invoke(["recommend", "--scenario", str(sc)])
    assert r.exit_code == 2 and f"{sc}:3: trainer: with packing on" in r.stderr and len(r.stderr.strip().splitlines()) == 1


def test_the_probe_refuses_a_packed_plan(tmp_path):
    """The probe's loop runs examples of the full sequence: a packed plan is the emitted TRL file's to measure."""
    data = _chat(tmp_path / "chat.jsonl", n=500)
    plan = tmp_path / "plan.json"
    plan.write_text(json.dumps(_rec(data, "--packing", "--format", "json")))
    r = invoke(["probe", "--from-json", str(plan)])
    assert r.exit_code == 2 and "the probe's loop does not" in r.stderr and len(r.stderr.strip().splitlines()) == 1


@pytest.mark.parametrize(
    "model, collation, per_token",
    [
        # grouped-query attention, masked: 2 x (query width - key/value width) bf16 values per token per layer
        pytest.param("tinyllama-1.1b", "padded", 2 * 2 * (2048 - 256), id="gqa-padded"),
        pytest.param("tinyllama-1.1b", "packed", 2 * 2 * (2048 - 256), id="gqa-packed"),
        pytest.param("tinyllama-1.1b", "filled", 0, id="gqa-unmasked-flash-takes-the-groups"),
        pytest.param("llama-2-7b", "padded", 0, id="mha-nothing-to-repeat"),
        pytest.param("gemma-2-2b", "padded", 0, id="eager-repeats-either-way-in-its-own-terms"),
    ],
)
def test_the_masked_kernel_saves_the_repeated_keys_and_values(model, collation, per_token):
    from ftdecide.core.collation import repeated_kv_bytes

    cfg = TrainConfig(method="lora", trainer="trl", collation=collation)
    assert repeated_kv_bytes(resolve_model(model), cfg) == per_token


@pytest.mark.parametrize("packing", [True, False], ids=["packed", "padded"])
def test_the_plans_time_for_its_data_is_its_epoch_seconds(tmp_path, packing):
    """The time ``recommend --dataset`` plans for the user's data is :func:`sizing.data_epoch_seconds` of the plan's
    configuration, once an epoch (one GPU), and the run's warm-up: the functions ``fit_packing.py --plan`` scores
    against measured epochs are the plan's own."""
    from ftdecide.core.calibration import DEFAULT
    from ftdecide.core.throughput import link_gbs
    from ftdecide.decide.recommend import Scenario, recommend
    from ftdecide.decide.sizing import data_epoch_seconds
    from ftdecide.files.catalog import resolve_gpu
    from ftdecide.files.dataset import read_dataset

    data = read_dataset(_chat(tmp_path / "chat.jsonl"))
    sc = Scenario(model="llama-3.2-1b", gpu="h100", dataset_size=data.examples, packing=packing).model_copy(update={"data": data})
    res = recommend(sc)
    plan, epochs = res.chosen, res.plan.epochs
    assert plan.config.packing is packing
    gpu = resolve_gpu("h100")
    seconds = data_epoch_seconds(
        resolve_model("llama-3.2-1b"), plan.config, gpu, DEFAULT, link_gbs(gpu, 1), plan.config.gradient_accumulation, data, epochs
    )
    # and the run's warm-up, once (core.collation.warmup_seconds: 8 s where sdpa runs masked)
    assert plan.time_hours == pytest.approx((epochs * seconds + 8.0) / 3600, rel=1e-12)
    # the other collation's time is another figure: the test would see the wrong one
    other = data_epoch_seconds(
        resolve_model("llama-3.2-1b"),
        plan.config.model_copy(update={"collation": "padded" if packing else "packed"}),
        gpu,
        DEFAULT,
        link_gbs(gpu, 1),
        plan.config.gradient_accumulation,
        data,
        epochs,
    )
    assert abs(other / seconds - 1) > 0.05


def test_the_plans_epoch_time_from_the_runs_examples():
    """``fit_packing.py --plan``: the plan's time for each whole-epoch run from its examples alone (its words, and the
    end-of-text token), at the run's configuration, with the run's warm-up, against the whole measured epoch, its
    first steps included. The twenty-five whole epochs: a median of 5.0%, -20.8% (packing_g:4, OLMo-2-1B padded chat) /
    +15.6% (packing_c:2, padded docs); the nine of packing_a and _b the constants were fitted on, 6.2% (6.1%, -21.9% /
    +14.4% and 4.9% before the LoRA family's step time was refitted, 2026-12-07)."""
    whole = [r for r in _runs() if r.get("examples")]
    errs = {r["id"]: fit_packing.plan_error(r) for r in whole}
    assert len(errs) == 25
    assert statistics.median(abs(e) for e in errs.values()) == pytest.approx(0.050, abs=0.002)
    assert min(errs.values()) == pytest.approx(-0.208, abs=0.002) and max(errs.values()) == pytest.approx(0.156, abs=0.002)
    assert min(errs, key=errs.get) == "packing_g:4" and max(errs, key=errs.get) == "packing_c:2"
    earlier = [e for k, e in errs.items() if k.startswith(fit_packing.FIT_GRIDS)]
    assert statistics.median(abs(e) for e in earlier) == pytest.approx(0.062, abs=0.002)


def _lora_time_before_its_refit():
    """The shipped model with the LoRA family's step time as it stood until 2026-12-07 (utilisations 0.586, 0.539 and
    0.353, no ``lora_io_bytes``), when every packing grid was planned."""
    from ftdecide.core.calibration import DEFAULT

    return DEFAULT.with_util({"lora": 0.586, "qlora": 0.539, "dora": 0.353}).with_constants(lora_io_bytes=0.0)


def _model_before_the_warmup():
    """The time model as it stood when packing_d, _e and _g were planned (``planned_s`` of packing_d and _e,
    ``planned_s_before`` of packing_g): every profiled host millisecond, the masked kernel at 0.15, no warm-up."""
    from dataclasses import replace

    then = _lora_time_before_its_refit()
    return replace(then, step=replace(then.step, masked_new_share=1.0, masked_attn_util=0.15, masked_warmup_s=0.0))


def _grid(name: str) -> list[dict]:
    return jsonl(ROOT / "data" / "grids" / f"{name}.jsonl")


@pytest.mark.parametrize(
    "grid, errors",
    [
        # four padded epochs at 16, 28, 28 and 36 layers: llama-3.2-1b, qwen2.5-1.5b, llama-3.2-3b, qwen3-4b
        pytest.param(
            "packing_d",
            {"planned_s": (-0.089, 0.166, 0.098, 0.076), "planned_s_per_length": (0.109, 0.031, -0.024, -0.116)},
            id="packing_d",
        ),
        # three packed (llama-3.2-3b docs, qwen2.5-1.5b chat, llama-3.2-1b bimodal), one padded (qwen2.5-3b docs)
        pytest.param(
            "packing_e",
            {
                "planned_s": (-0.116, -0.118, -0.204, 0.038),
                "planned_s_mix": (-0.142, -0.138, -0.196, -0.124),
                "planned_s_per_length": (-0.166, -0.157, -0.192, -0.176),
            },
            id="packing_e",
        ),
    ],
)
def test_the_plans_written_before_the_runs(grid, errors):
    """data/grids/packing_d.jsonl and packing_e.jsonl (one H100, 2026-12-07, fourteenth session, each run alone): each
    line carries the plan's epoch time written before it ran: ``planned_s`` the shipped model (a new length's cuDNN host
    time per masked call of every attention layer), and the forms it was tested against: a constant 0.40 s a new length
    (``planned_s_per_length``), 0.2 s + 0.4 x the per-layer time (``planned_s_mix``, packing_e only). The model as it
    stood then still computes what the grid says, and each form's error against the whole measured epoch is what it
    was. (The model changed after these runs: the warm-up and the host share, fitted on packing_a and _b.)"""
    then = _model_before_the_warmup()
    lines = _grid(grid)
    runs = {r["id"]: r for r in _runs() if r["id"].startswith(grid + ":")}
    assert sorted(runs) == [f"{grid}:{i}" for i in range(1, len(lines) + 1)]
    for i, line in enumerate(lines, 1):
        run = runs[f"{grid}:{i}"]
        assert fit_packing.planned_seconds(run, then) == pytest.approx(line["planned_s"], abs=0.06)
        for form, errs in errors.items():
            assert line[form] / sum(run["step_s"]) - 1 == pytest.approx(errs[i - 1], abs=0.001)
        assert -0.01 <= fit_packing.peak_error(run) <= 0.03


def test_the_held_out_errors_the_output_quotes_are_the_records():
    """``recommend --dataset`` quotes how far its epoch time was from the held-out runs, per collation
    (``core.collation.HELD_OUT_EPOCH_ERRORS``, the JSON's ``data.time_measured``): recomputed here from the records,
    so a run added to a held-out grid fails this until the quoted figures follow it."""
    from ftdecide.core.collation import HELD_OUT_EPOCH_ERRORS

    errs: dict[str, list[float]] = {}
    for r in (r for r in _runs() if r["id"].startswith(HELD_OUT) and r.get("examples")):
        errs.setdefault("packed" if r.get("packing") else "padded", []).append(fit_packing.plan_error(r))
    assert sorted(errs) == sorted(HELD_OUT_EPOCH_ERRORS)
    for k, e in errs.items():
        quoted = HELD_OUT_EPOCH_ERRORS[k]
        assert quoted["runs"] == len(e)
        assert quoted["median_abs_error"] == pytest.approx(statistics.median(abs(x) for x in e), abs=0.0005)
        assert (quoted["min"], quoted["max"]) == pytest.approx((min(e), max(e)), abs=0.0005)


@pytest.mark.parametrize("argv, sized", [((), ["padded", "packed"]), (("--no-packing",), ["padded"]), (("--packing",), ["packed"])])
def test_the_output_quotes_the_held_out_error_of_each_collation_sized(tmp_path, argv, sized):
    from ftdecide.core.collation import HELD_OUT_EPOCH_ERRORS

    data = _chat(tmp_path / "chat.jsonl")
    doc = _rec(data, *argv, "--format", "json")
    assert doc["schema_version"] == "1.5"
    assert sorted(doc["data"]["time_hours"]) == sorted(sized) == sorted(doc["data"]["time_measured"])
    assert doc["data"]["time_measured"] == {k: HELD_OUT_EPOCH_ERRORS[k] for k in sized}
    text = " ".join(_rec(data, *argv).split())
    for k in sized:
        m = HELD_OUT_EPOCH_ERRORS[k]
        assert f"{m['median_abs_error']:.1%} off {k} ({m['runs']} runs, planned {m['min']:+.1%} to {m['max']:+.1%}" in text
    assert ("every one ran longer" in text) == any(HELD_OUT_EPOCH_ERRORS[k]["max"] < 0 for k in sized)


def test_the_plan_packs_where_the_runs_were_faster_packed():
    """Four data sets were each run padded and packed (a whole epoch each way, one H100): packing was faster for the
    two chat sets and the bimodal set on Qwen3-1.7B (1.7x, 2.4x, 1.6x), slower for the bimodal set under Llama-3.2-1B
    full fine-tuning at 8 x 2,048 (81 s against 64 s). The plan's epoch time from the examples picks the faster one in
    each pair: that is the choice ``recommend --dataset`` makes between them."""
    pairs: dict = {}
    for r in (r for r in _runs() if r.get("examples")):
        key = (r["model"], r["method"], r["lengths"], r["examples"], r.get("seed", 0))
        pairs.setdefault(key, {})["packed" if r.get("packing") else "padded"] = r
    both = [p for p in pairs.values() if len(p) == 2]
    assert len(both) == 4
    chose = [fit_packing.planned_seconds(p["packed"]) < fit_packing.planned_seconds(p["padded"]) for p in both]
    faster = [sum(p["packed"]["step_s"]) < sum(p["padded"]["step_s"]) for p in both]
    assert chose == faster and sorted(faster) == [False, True, True, True]


def test_the_sixteen_later_epochs_against_the_constants_of_the_first_nine():
    """The sixteen whole epochs run after packing_a and _b (packing_c, _d, _e, _g), none of them in the fit of the
    time model's constants (the warm-up measured, the host share and the masked kernel's utilisation fitted, on
    packing_a and _b): the plan from their examples is a median of 4.9% off the whole measured epoch, within the
    issue's 10%. The padded eight 4.5%; the packed eight 5.1%, every one still longer than planned (8.1%, 5.0% and
    8.8% before the LoRA family's step time was refitted on the probe loop's runs, 2026-12-07)."""
    held = [r for r in _runs() if r["id"].startswith(HELD_OUT) and r.get("examples")]
    errs = {r["id"]: fit_packing.plan_error(r) for r in held}
    assert len(errs) == 16
    assert statistics.median(abs(e) for e in errs.values()) == pytest.approx(0.049, abs=0.002)
    packed = [errs[r["id"]] for r in held if r.get("packing")]
    padded = [errs[r["id"]] for r in held if not r.get("packing")]
    assert len(packed) == len(padded) == 8 and max(packed) < 0
    assert statistics.median(abs(e) for e in packed) == pytest.approx(0.051, abs=0.002)
    assert statistics.median(abs(e) for e in padded) == pytest.approx(0.045, abs=0.002)


def test_packing_g_planned_before_it_ran():
    """data/grids/packing_g.jsonl (one H100, 2026-12-07, fifteenth session, each run alone): five whole epochs, three
    on models no earlier epoch had (Phi-3-mini, Qwen2.5-0.5B, OLMo-2-1B; packing_f:4 profiled the last after), each
    line's ``planned_s`` written by the shipped model before it ran (``planned_s_before`` by the model before the
    warm-up and the host share). The shipped model with the LoRA family's step time before its refit still computes
    what the grid says; against the whole measured epochs it is a median of 8.1% off (-16.0%, -8.1%, -4.8%, -21.9%,
    -6.1%: within the issue's 10%, every one under), the model before 7.9% (-16.4%, -7.9%, -2.3%, -13.7%, +4.2%). The
    shipped model since that refit: 5.1% (-10.8%, -5.1%, -0.4%, -20.8%, -4.1%). Peaks within +3%."""
    before, then = _model_before_the_warmup(), _lora_time_before_its_refit()
    lines = _grid("packing_g")
    runs = {r["id"]: r for r in _runs() if r["id"].startswith("packing_g:")}
    assert sorted(runs) == [f"packing_g:{i}" for i in range(1, len(lines) + 1)] and len(lines) == 5
    shipped, old, now = [], [], []
    for i, line in enumerate(lines, 1):
        run = runs[f"packing_g:{i}"]
        assert fit_packing.planned_seconds(run, then) == pytest.approx(line["planned_s"], abs=0.06)
        assert fit_packing.planned_seconds(run, before) == pytest.approx(line["planned_s_before"], abs=0.06)
        now.append(fit_packing.plan_error(run))
        shipped.append(line["planned_s"] / sum(run["step_s"]) - 1)
        old.append(line["planned_s_before"] / sum(run["step_s"]) - 1)
        assert 0 <= fit_packing.peak_error(run) <= 0.03
    assert shipped == pytest.approx([-0.160, -0.082, -0.048, -0.219, -0.061], abs=0.001)
    assert old == pytest.approx([-0.164, -0.079, -0.023, -0.137, 0.042], abs=0.001)
    assert statistics.median(abs(e) for e in shipped) <= 0.10
    assert now == pytest.approx([-0.108, -0.051, -0.004, -0.208, -0.041], abs=0.001)


def test_packing_c_at_its_recorded_shapes():
    """data/grids/packing_c.jsonl: three whole epochs written before the packed host term and run after it, each alone
    (one H100, 2026-12-07, thirteenth session), then a median of 34.5% off at their recorded shapes (steps after the
    first): packing_c:1 (Llama-3.2-1B packed chat, 12 steps) -36.6%, its steps still warming up; packing_c:2
    (Qwen3-0.6B padded docs, 139 new lengths in 149 micro-batches) +34.5%; packing_c:3 (packed bimodal) -6.6%. With
    the warm-up and the host share (fitted on packing_a and _b), every step counted: -12.5%, +13.7%, -9.4%; since the
    LoRA family's step time was refitted (2026-12-07), -9.1%, +14.9%, -5.3%. Peaks within +7%."""
    held = {r["id"]: r for r in _runs() if r["id"].startswith("packing_c:")}
    assert sorted(held) == ["packing_c:1", "packing_c:2", "packing_c:3"]
    errs = {k: fit_packing.time_error(r) for k, r in held.items()}
    assert errs["packing_c:1"] == pytest.approx(-0.091, abs=0.002)
    assert errs["packing_c:2"] == pytest.approx(0.149, abs=0.002)
    assert errs["packing_c:3"] == pytest.approx(-0.053, abs=0.002)
    assert all(0 <= fit_packing.peak_error(r) <= 0.07 for r in held.values())
