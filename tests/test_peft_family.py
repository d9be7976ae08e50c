"""IA3, prompt tuning and prefix tuning; the Liger, activation-offload and paged-optimizer levers: their
parameter counts against peft's own, their memory against the H200 runs of
data/measurements/h200_peft_levers_2026-11-29.jsonl, and the command line, rules and emitters."""

import ast
import dataclasses
import json
import pathlib
import statistics
import sys

import pytest
from hypothesis import given, settings, strategies as st

from conftest import invoke
from ftdecide.files import catalog
from ftdecide import methods
from ftdecide.emit import emit
from ftdecide.core.estimator import TrainConfig, estimate_memory, memory_model
from ftdecide.files.hfconfig import arch_from_hf_config
from ftdecide.probe.records import arch_from_record, config_from_record
from ftdecide.decide.recommend import Scenario, recommend

ROOT = pathlib.Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "benchmarks"))
from make_grid import ARCH  # noqa: E402

LEVER = {
    "liger": lambda d: bool(d.get("liger")),
    "offload": lambda d: bool(d.get("offload_act")),
    "paged": lambda d: d.get("optim", "").startswith("paged_"),
}


def _peft_counts():
    rows = [json.loads(line) for line in (ROOT / "data" / "counts" / "peft_trainable_2026-11-29.jsonl").read_text().splitlines()]
    return [pytest.param(d, id=f"{d['arch']}-{d['method']}") for d in rows if "peft" in d]


@pytest.mark.parametrize("rec", _peft_counts())
def test_trainable_parameters_equal_peft(rec):
    """peft's get_nb_trainable_parameters() with peft's defaults (IA3Config's modules for the family,
    20 virtual tokens), recorded on the device for 16 architectures; ftdecide counts the same."""
    arch = arch_from_hf_config(ARCH[rec["arch"]], rec["arch"])
    cfg = TrainConfig(method=rec["method"], virtual_tokens=rec["vt"])
    spec = cfg.method_spec
    assert spec.trainable_params(arch, cfg, spec.adapted_modules(arch, cfg)) == rec["peft"]


def test_peft_has_no_ia3_default_for_phi3_and_ftdecide_names_its_modules():
    rec = next(
        json.loads(line)
        for line in (ROOT / "data" / "counts" / "peft_trainable_2026-11-29.jsonl").open()
        if '"phi3_mini", "method": "ia3"' in line
    )
    assert "Please specify `target_modules`" in rec["peft_error"]
    arch = catalog.resolve_model("phi-3-mini")
    assert methods.get("ia3").settings(arch, TrainConfig(method="ia3")) == {
        "target_modules": ["qkv_proj", "down_proj"],
        "feedforward_modules": ["down_proj"],
    }


def _errors(rows):
    return [estimate_memory(arch_from_record(d), config_from_record(d)).peak_allocated_gib / d["peak_alloc_gib"] - 1 for d in rows]


@pytest.mark.parametrize("method", ["ia3", "prompt", "prefix"])
def test_new_methods_within_the_lora_bounds(runs, method):
    """Median <= 3%, no under-estimate worse than -5%, fits/OOM agreement, on the runs without a lever;
    the measured trainable parameters equal ftdecide's."""
    rows = [d for d in runs if d["method"] == method and not any(f(d) for f in LEVER.values())]
    assert len(rows) >= 6
    errs = _errors(rows)
    assert statistics.median(abs(e) for e in errs) <= 0.03 and min(errs) >= -0.05, errs
    for d in rows:
        e = estimate_memory(arch_from_record(d), config_from_record(d))
        assert (e.required_gib <= d["software"]["gpu_total_gib"]) == (d["status"] == "ok")
        assert e.trainable_params == d["trainable_params"]


@pytest.mark.parametrize("lever, median", [("liger", 0.03), ("offload", 0.03), ("paged", 0.03)])
def test_levers_within_the_lora_bounds(runs, lever, median):
    rows = [d for d in runs if LEVER[lever](d)]
    assert len(rows) >= 8
    errs = _errors(rows)
    assert statistics.median(abs(e) for e in errs) <= median and min(errs) >= -0.05, (lever, errs)


def test_liger_small_model_large_vocabulary():
    """The issue's case: Qwen2.5-0.5B full fine-tuning at 2048x4 with checkpointing. Measured 4.15 GiB with
    Liger (16.8 GiB without); the estimate said 17 GiB before Liger was modelled."""
    a = catalog.resolve_model("qwen2.5-0.5b")
    cfg = TrainConfig(method="full", seq_len=2048, batch_size=4)
    liger = estimate_memory(a, cfg.model_copy(update={"liger": True})).peak_allocated_gib
    plain = estimate_memory(a, cfg).peak_allocated_gib
    assert liger == pytest.approx(4.15, rel=0.05) and plain == pytest.approx(16.8, rel=0.05)


@settings(max_examples=40, deadline=None)
@given(
    st.sampled_from(["qwen2.5-0.5b", "llama-3.2-1b", "mistral-7b", "gemma-2-2b"]),
    st.sampled_from(["full", "lora", "qlora", "ia3"]),
    st.integers(64, 8192),
    st.integers(1, 8),
    st.booleans(),
)
def test_offload_never_costs_memory(model, method, seq, batch, gc):
    a = catalog.resolve_model(model)
    cfg = TrainConfig(method=method, seq_len=seq, batch_size=batch, gradient_checkpointing=gc)
    off = estimate_memory(a, cfg.model_copy(update={"offload_activations": True})).peak_allocated_gib
    assert off <= estimate_memory(a, cfg).peak_allocated_gib + 1e-9


def test_paged_optimizer_states_leave_the_peak():
    """bitsandbytes' paged states live in CUDA managed memory: the allocator's peak lacks them (measured:
    Llama-3.2-1B full bf16, paged 8-bit AdamW, 8.59 GiB), and the note says how much they are."""
    a = catalog.resolve_model("llama-3.2-1b")
    cfg = TrainConfig(method="full", optimizer="paged_adamw_8bit", seq_len=1024, batch_size=4)
    e = estimate_memory(a, cfg)
    eight = estimate_memory(a, cfg.model_copy(update={"optimizer": "adamw8bit"}))
    assert e.breakdown["optimizer"] < 0.001  # the norms' states: too small to page
    assert f"{eight.breakdown['optimizer']:.2f} GiB of its states live in CUDA managed memory" in " ".join(e.notes)


def test_prompt_tokens_cost_what_as_many_real_tokens_cost():
    """Prompt tuning's virtual tokens go through every layer and the loss: its peak at seq s with n virtual
    tokens is the frozen model's at s + n."""
    a = catalog.resolve_model("llama-3.2-1b")
    mm = memory_model(a, TrainConfig(method="prompt", virtual_tokens=100))
    plain = dataclasses.replace(mm, extra_tokens=0)
    for gc in (True, False):
        assert mm.peak_bytes(1024, 2, gc)[0] == plain.peak_bytes(1124, 2, gc)[0]


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--method", "prompt", "--lora-rank", "8"], "prompt tuning takes no --lora-rank (its options: --virtual-tokens)"),
        (["--method", "lora", "--virtual-tokens", "8"], "LoRA takes no --virtual-tokens (its options: --lora-rank, --lora-targets"),
        (["--method", "full", "--ia3-targets", "k_proj"], "full fine-tuning takes no --ia3-targets (it has no options of its own)"),
        (["--method", "prompt", "--virtual-tokens", "4096", "--seq-len", "1024"], "4096 virtual tokens is more than the sequence"),
        (["--method", "prefix", "--gradient-checkpointing"], "prefix tuning does not train with gradient checkpointing"),
        (["--method", "ia3", "--ia3-targets", "w_proj"], "IA3 target(s) 'w_proj' not in"),
    ],
)
def test_method_options_are_checked(argv, message):
    r = invoke(["estimate", "--model", "llama-3.1-8b", *argv])
    assert r.exit_code == 2 and r.stdout == ""
    assert r.stderr.startswith("ftdecide: error: " + message) and r.stderr.count("\n") == 1, r.stderr


def test_liger_on_an_architecture_it_does_not_patch():
    r = invoke(["recommend", "--model", "qwen1.5-moe-a2.7b", "--liger"])
    assert r.exit_code == 2 and "Liger kernel does not patch qwen1.5-moe-a2.7b (model_type 'qwen2_moe')" in r.stderr


def test_a_lever_that_closes_the_gap_is_named_with_its_figure():
    """LoRA misses a 12 GiB card by 0.2 GiB at 4096 tokens; the rule names --liger and its figure, which is
    the estimate with Liger at micro-batch 1."""
    from ftdecide.core.calibration import DEFAULT
    from ftdecide.decide.recommend import _recommend

    sc = Scenario(model="qwen2.5-1.5b", gpu_memory=12, seq_len=4096, trainer="loop")  # the loop's full logits
    res = _recommend(sc, None, DEFAULT)  # as asked, before a switch is made the plan
    (w,) = [w for w in res.warnings if w.rule == "lever-liger-lora"]
    a = catalog.resolve_model("qwen2.5-1.5b")
    lora = next(c for c in res.candidates if c.method == "lora")
    # the candidate's own configuration (its LoRA shape, the loop, micro-batch 1) with Liger on
    assert lora.config.batch_size == 1 and lora.config.trainer == "loop"
    liger = estimate_memory(a, lora.config.model_copy(update={"liger": True})).required_gib
    # against what a plan may use (12 GiB less the 5% margin), not the raw card
    # the rules see figures rounded to 0.01 GiB (rulenames), which the message then prints to 0.1
    said = f"with --liger {round(liger, 2):.1f} GiB, fits"
    assert w.message == f"LoRA: {round(lora.required_gib, 2):.1f} GiB > the {12.0 * 0.95:.1f} GiB a plan may use; {said}"
    assert not lora.fits and liger <= 12.0
    # nothing fits as asked, and Liger changes how it runs, not what it learns: the plan switches it on
    switched = recommend(sc)
    assert switched.plan.feasible and switched.scenario.liger and switched.plan.reasons[0].rule == "switch"


def _calls(tree):
    out = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name):
            out[node.func.id] = {k.arg: ast.literal_eval(k.value) for k in node.keywords if isinstance(k.value, ast.Constant | ast.List)}
    return out


def _plan(**fields):
    return recommend(Scenario(**fields))


def test_trl_and_peft_emit_ia3_and_prompt_tuning():
    ia3 = _plan(model="llama-3.1-8b", gpu="a100-80gb", dataset_size=400, task="classification")
    assert ia3.plan.method == "ia3"
    for kind in ("peft", "trl"):
        c = _calls(ast.parse(emit(kind, ia3)))["IA3Config"]
        assert c == {"target_modules": ["k_proj", "v_proj", "down_proj"], "feedforward_modules": ["down_proj"], "task_type": "CAUSAL_LM"}
    prompt = _plan(model="qwen2.5-14b", gpu="a100-80gb", task="style", quality="prototype", virtual_tokens=32)
    assert prompt.plan.method == "prompt" and prompt.plan.method_settings == {"virtual_tokens": 32}
    assert _calls(ast.parse(emit("trl", prompt)))["PromptTuningConfig"] == {"num_virtual_tokens": 32, "task_type": "CAUSAL_LM"}


@pytest.mark.parametrize("kind, trainer", [("axolotl", "axolotl"), ("llamafactory", "LLaMA-Factory")])
def test_trainers_without_the_method_refuse_in_one_line(kind, trainer):
    r = invoke(
        ["recommend", "--model", "llama-3.1-8b", "--gpu", "a100-80gb", "--dataset-size", "400", "--task", "classification", "--emit", kind]
    )
    assert r.exit_code == 2 and r.stderr == f"ftdecide: error: {trainer} has no IA3: use --emit peft or --emit trl\n"


def test_levers_reach_every_trainer_in_its_own_keys():
    res = _plan(model="llama-3.1-8b", gpu="rtx-4090", liger=True, optimizer="paged_adamw_8bit")
    sft = _calls(ast.parse(emit("trl", res)))["SFTConfig"]
    assert sft["use_liger_kernel"] is True and sft["optim"] == "paged_adamw_8bit"
    import yaml

    ax = yaml.safe_load(emit("axolotl", res))
    assert ax["plugins"] == ["axolotl.integrations.liger.LigerPlugin"] and ax["liger_fused_linear_cross_entropy"] is True
    assert ax["optimizer"] == "paged_adamw_8bit"
    lf = yaml.safe_load(emit("llamafactory", res))
    assert lf["enable_liger_kernel"] is True and lf["optim"] == "paged_adamw_8bit"
    off = _plan(model="llama-3.1-8b", gpu="rtx-4090", offload_activations=True)
    assert _calls(ast.parse(emit("trl", off)))["SFTConfig"]["activation_offloading"] is True
    assert yaml.safe_load(emit("axolotl", off))["activation_offloading"] is True
    r = invoke(["recommend", "--model", "llama-3.1-8b", "--gpu", "rtx-4090", "--offload-activations", "--emit", "llamafactory"])
    assert r.exit_code == 2 and "LLaMA-Factory has no activation offloading: use --emit trl or --emit axolotl" in r.stderr


def test_houlsby_adapter_parameters_as_the_adapters_library_builds_them():
    """Two bottlenecks per layer, each Linear(h, h/r) and Linear(h/r, h) with biases: Llama-3.2-1B
    (h 2048, 16 layers) at r 16 has 2 x 16 x (2 x 2048 x 128 + 128 + 2048) parameters."""
    a = catalog.resolve_model("llama-3.2-1b")
    for r, b in ((16, 128), (64, 32)):
        e = estimate_memory(a, TrainConfig(method="adapter", adapter_reduction=r))
        assert e.trainable_params == 2 * 16 * (2 * 2048 * b + b + 2048)
        assert "not yet measured on a GPU" not in " ".join(e.notes)


def test_houlsby_adapters_against_their_runs(runs):
    """The 7 runs of the adapters library on an H200 (4 models, reduction 16 and 64, checkpointing on and
    off): the trainable count the library reported, and the peak within 1% (median under 1%)."""
    runs = [d for d in runs if d["src"] == "h200_houlsby_2026-11-30.jsonl"]
    assert len(runs) == 7 and {d["gc"] for d in runs} == {True, False} and all(d["status"] == "ok" for d in runs)
    errs = []
    for d in runs:
        e = estimate_memory(arch_from_record(d), config_from_record(d))
        assert e.trainable_params == d["trainable_params"]
        errs.append(e.peak_allocated_gib / d["peak_alloc_gib"] - 1)
    assert statistics.median(abs(x) for x in errs) <= 0.01 and max(abs(x) for x in errs) <= 0.01


def test_houlsby_adapters_refused_where_the_library_lacks_the_model():
    r = invoke(["estimate", "--model", "phi-3-mini", "--method", "adapter"])
    assert r.exit_code == 2 and "has no Houlsby adapters for phi-3-mini (model_type 'phi3')" in r.stderr
    res = recommend(Scenario(model="phi-3-mini", gpu="a100-80gb"))
    assert not next(c for c in res.candidates if c.method == "adapter").fits


def test_houlsby_adapters_only_when_a_team_asks_and_then_with_the_latency_warning(tmp_path):
    default = recommend(Scenario(model="llama-3.1-8b", gpu="a100-80gb"))
    assert "adapter-latency" in default.rules_fired and default.plan.method != "adapter"
    team = tmp_path / "adapters.yaml"
    team.write_text(
        'version: 1\ndisable: [adapter-latency]\nrules:\n  - id: want-adapters\n    when: "true"\n    priority: 90\n    prefer: adapter\n'
    )
    res = recommend(Scenario(model="llama-3.1-8b", gpu="a100-80gb", rules=(str(team),)))
    assert res.plan.method == "adapter" and res.plan.method_settings == {"adapter_config": "double_seq_bn", "reduction_factor": 16}
    assert [w.rule for w in res.warnings if "inference latency" in w.message] == ["serving"]
    r = invoke(["recommend", "--model", "llama-3.1-8b", "--gpu", "a100-80gb", "--rules", team, "--emit", "trl"])
    assert r.exit_code == 2 and r.stderr.startswith("ftdecide: error: TRL (through peft) has no Houlsby adapters: use the adapters library")


def test_lever_step_times_against_their_runs(runs):
    """The lever timing runs on an H200 (data/measurements/h200_lever_timing_2026-11-30.jsonl): with Liger
    (3 runs) tokens/s within 18% (10% before the LoRA family's step time was refitted, 2026-12-07: Qwen2.5-0.5B LoRA,
    launch-bound, went from -9.6% to -17.6%, the model now slow); with activation offload (2 runs) within 16% (the
    run without checkpointing is bound by the host link, 45 GB/s; the checkpointed one hides its transfers and is 16%
    slower than predicted: an offload cost per step that is not modelled)."""
    from ftdecide.core.throughput import step_seconds

    h200 = catalog.resolve_gpu("h200")
    errs: dict[str, list[float]] = {"liger": [], "offload_act": [], "none": []}
    for d in (d for d in runs if d["src"] == "h200_lever_timing_2026-11-30.jsonl"):
        arch, cfg = arch_from_record(d), config_from_record(d)
        st = step_seconds(arch, cfg, h200.bf16_tflops, h200.memory_bandwidth_gbs)
        lever = "liger" if d.get("liger") else "offload_act" if d.get("offload_act") else "none"
        errs[lever].append(d["seq"] * d["batch"] / st["total"] / d["tokens_per_s"] - 1)
    assert len(errs["liger"]) == 3 and max(abs(e) for e in errs["liger"]) <= 0.18
    assert len(errs["offload_act"]) == 2 and max(abs(e) for e in errs["offload_act"]) <= 0.16


def test_houlsby_and_prefix_step_times_alone_on_their_gpu(runs):
    """The Houlsby and prefix-tuning configurations timed again, each alone on its GPU
    (data/measurements/h200_alone_timing_2026-11-30.jsonl; their memory runs shared one GPU): prefix tuning's
    tokens/s, predicted with no term fitted to it, within a median 10% and 12% at worst; Houlsby's, with its
    kernels per adapter pass fitted to these 7 runs (the adapters library's Python composition counted as
    launches), within a median 5% and 25% at worst. The peaks are the earlier runs' (a peak is per process)."""
    from ftdecide.core.throughput import step_seconds

    h200 = catalog.resolve_gpu("h200")
    alone = [d for d in runs if d["src"] == "h200_alone_timing_2026-11-30.jsonl"]
    shared = {
        (d["arch"], d["method"], d["seq"], d["batch"], d["gc"], d.get("reduction"), d.get("vt")): d
        for d in runs
        if d.get("concurrent_runs", 1) > 1 and d["method"] in ("adapter", "prefix")
    }
    errs: dict[str, list[float]] = {"adapter": [], "prefix": []}
    for d in alone:
        assert "concurrent_runs" not in d and d["status"] == "ok"
        twin = shared[(d["arch"], d["method"], d["seq"], d["batch"], d["gc"], d.get("reduction"), d.get("vt"))]
        assert abs(twin["peak_alloc_gib"] - d["peak_alloc_gib"]) <= 0.25
        st = step_seconds(arch_from_record(d), config_from_record(d), h200.bf16_tflops, h200.memory_bandwidth_gbs)
        errs[d["method"]].append(d["seq"] * d["batch"] / st["total"] / d["tokens_per_s"] - 1)
    assert len(errs["adapter"]) == 7 and len(errs["prefix"]) == 6
    assert statistics.median(abs(e) for e in errs["prefix"]) <= 0.10 and max(abs(e) for e in errs["prefix"]) <= 0.12
    assert statistics.median(abs(e) for e in errs["adapter"]) <= 0.05 and max(abs(e) for e in errs["adapter"]) <= 0.25


def test_levers_held_out(runs):
    """13 lever runs on configurations the lever terms never saw (data/measurements/h200_lever_heldout_*, each
    alone on an H200). Memory: Liger's 8 within -1.0% / +9.8% with nothing refitted (-0.8% / +5.8% since its layer
    terms come from the kernels' code); activation offload's 6
    within -5.6% with its kept-layer count, within -1.8% / +2.3% once what stays on the GPU became a share of
    the layers (chosen on the 13 earlier runs; the shares now are chosen on 26 runs: -1.1% / +3.6% here).
    Step time: Liger's 8 within a median 13%, all predicted no faster than measured +4.2% (+4% before the LoRA family's
    step time was refitted, 2026-12-07); offload's 6 within a median 17%, the checkpointed LoRA and QLoRA ones 30-45%
    slower than predicted (39-57% before that refit; 5-8 ms per layer that no term holds)."""
    from ftdecide.core.throughput import step_seconds

    h200 = catalog.resolve_gpu("h200")
    held = [d for d in runs if d["src"] == "h200_lever_heldout_2026-11-30.jsonl"]
    assert len(held) == 13 and all(d["status"] == "ok" for d in held)
    mem = {k: [e for d, e in zip(held, _errors(held), strict=True) if LEVER[k](d)] for k in ("liger", "offload")}
    assert len(mem["liger"]) == 8 and min(mem["liger"]) >= -0.011 and max(mem["liger"]) <= 0.06
    assert len(mem["offload"]) == 6 and min(mem["offload"]) >= -0.02 and max(mem["offload"]) <= 0.04
    t = {"liger": [], "offload": []}
    for d in held:
        st = step_seconds(arch_from_record(d), config_from_record(d), h200.bf16_tflops, h200.memory_bandwidth_gbs)
        e = d["seq"] * d["batch"] / st["total"] / d["tokens_per_s"] - 1
        for k in t:
            if LEVER[k](d):
                t[k].append(e)
    assert statistics.median(abs(e) for e in t["liger"]) <= 0.13 and max(t["liger"]) <= 0.042
    assert statistics.median(abs(e) for e in t["offload"]) <= 0.17 and max(abs(e) for e in t["offload"]) <= 0.46


def test_offload_keeps_a_share_of_the_layers():
    """Mistral-7B LoRA without checkpointing, offloaded: a share of its 32 layers' saved bytes stays on the GPU
    (0.135; 0.226 where the base trains), and the peak holds that share of one step's saved activations."""
    from ftdecide.core.calibration import DEFAULT

    a = catalog.resolve_model("mistral-7b")
    cfg = TrainConfig(method="lora", seq_len=2048, batch_size=2, gradient_checkpointing=False, offload_activations=True)
    mm = memory_model(a, cfg)
    assert mm.kept_layers == pytest.approx(DEFAULT.offload_kept_share * 32) == pytest.approx(4.32)
    assert memory_model(a, cfg.model_copy(update={"method": "full"})).kept_layers == pytest.approx(0.226 * 32)
    plain = memory_model(a, cfg.model_copy(update={"offload_activations": False}))
    saved = mm.layer_bytes(2048) * 32 * 4096
    assert plain.phases(2048, 2, False)["act"] - mm.phases(2048, 2, False)["act"] == pytest.approx(saved * (1 - 0.135))


def test_offload_without_checkpointing_on_seven_more_models(runs):
    """Activation offload without checkpointing on 7 more configurations (Qwen2.5-0.5B/1.5B/7B, Llama-3.2-3B,
    Phi-3-mini, TinyLlama, Llama-3.1-8B QLoRA; h200_offload_heldout_*): held out from the shares chosen on 19
    runs (0.12, 0.24) they came within a median 2.6%, -5.6% / +2.7%; the shares were then chosen on all 26.
    Now within -3.1% / +5.0%, none under the -5% bound (Qwen2.5-7B and Llama-3.1-8B QLoRA the over-estimates)."""
    rows = [d for d in runs if d["src"] == "h200_offload_heldout_2026-11-30.jsonl"]
    errs = _errors(rows)
    assert len(rows) == 7 and min(errs) >= -0.035 and max(errs) <= 0.051


def test_no_module_compares_a_lever_name():
    """The estimator, sizing, alternatives, rule names and emitters iterate the lever registry; only the
    levers package names them."""
    from conftest import name_comparisons
    from ftdecide import levers

    assert name_comparisons(set(levers.names()), skip=lambda path: "levers" in path.parts) == []
    assert {lv.name for lv in levers.all_levers() if lv.cheap_switch} == {"liger", "offload_activations"}


@pytest.mark.parametrize(
    "method, per_norm",
    [
        pytest.param("lora", 2.0, id="frozen-norms-no-fp32-copy"),
        pytest.param("full", 4.0, id="trained-norms-and-their-normalised-input"),
    ],
)
def test_liger_layer_terms_are_its_kernels(method, per_norm):
    """Liger's RMSNorm saves no fp32 copy of its input (2 B per hidden value per norm), nor, where the weight trains,
    the normalised input its gradient needs (2 B more); its SwiGLU recomputes the activation (2 B per MLP value)."""
    from ftdecide.core.estimator import memory_model

    a = catalog.resolve_model("llama-3.2-1b")
    cfg = TrainConfig(method=method, seq_len=1024, gradient_checkpointing=False)
    saved = memory_model(a, cfg).layer_base - memory_model(a, cfg.model_copy(update={"liger": True})).layer_base
    assert saved == pytest.approx(per_norm * a.norms_per_layer * a.hidden_size + 2.0 * a.intermediate_size)
