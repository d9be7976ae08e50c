"""The families of 2025: each read as transformers 5.17 builds it, counted exactly, adapted as peft 0.21 adapts
it, and emitted so that the emitted file runs.

The expected counts are data: ``data/counts/families_*.jsonl`` hold, per config of
``data/families/configs/``, ``sum(p.numel())`` of ``AutoModelForCausalLM.from_config`` on the meta device
and the trainable count of a LoRA r=16 adapter over peft's ``all-linear`` (text-only where a vision tower
loads), written by ``benchmarks/family_counts.py``. Where torch, transformers and peft are installed, the
last test builds the configs again and compares."""

from __future__ import annotations

import json
import statistics
import pathlib

import pytest
from conftest import invoke, jsonl
from hypothesis import given, settings, strategies as st

from ftdecide.cli import main
from ftdecide.core.errors import InputError
from ftdecide.emit import emit_config
from ftdecide.files import catalog
from ftdecide.files.hfconfig import arch_from_hf_config, hf_config, reduce_layers
from ftdecide.core.config import TrainConfig
from ftdecide.methods.lora import model_default_options, peft_target_parameters

ROOT = pathlib.Path(__file__).resolve().parent.parent
CONFIGS = ROOT / "data" / "families" / "configs"
RECORDS = [
    json.loads(x)
    for path in sorted((ROOT / "data" / "counts").glob("families_*.jsonl"))
    for x in path.read_text().splitlines()
    if x.strip()
]
BUILT = [r for r in RECORDS if "params" in r]


def _config(name: str) -> dict:
    return json.loads((CONFIGS / f"{name}.json").read_text())


def test_the_records_cover_every_family_the_issue_names():
    families = {r["model_type"] for r in RECORDS}
    assert families >= {"qwen3_moe", "gemma3", "gemma3_text", "gpt_oss", "llama4", "deepseek_v3", "olmo2", "granite", "smollm3"}
    assert families >= {"glm4_moe", "mistral3", "qwen3"}
    assert families >= {"qwen3_5", "qwen3_5_moe", "qwen3_next"}  # the Gated DeltaNet hybrids (2026-12-07)


@pytest.mark.parametrize("rec", BUILT, ids=lambda r: r["name"])
def test_parameter_count_equals_transformers_build(rec):
    arch = arch_from_hf_config(_config(rec["name"]), rec["name"])
    assert arch.total_params() == rec["params"]


@pytest.mark.parametrize("rec", BUILT, ids=lambda r: r["name"])
def test_all_linear_lora_count_equals_peft(rec):
    """peft 0.21's all-linear: the fused experts where it wraps them (twice the rank on gate_up_proj), the
    router where it is an nn.Linear, no dense MLP on DeepSeek-V3 and GLM-4.5, the text model only under a
    vision tower (what ftdecide emits there)."""
    arch = arch_from_hf_config(_config(rec["name"]), rec["name"])
    want = (rec.get("lora_text_only") or rec["lora_all_linear"])["trainable_r16"]
    if not arch.router_adaptable:
        # Llama 4's router, which peft wraps but whose wrapper fails in the first forward: ftdecide names the rest
        assert any(w.endswith(".router") for w in rec["lora_all_linear"]["wrapped"])
        want -= 16 * (arch.hidden_size + arch.num_experts) * arch.moe_layers
    assert arch.lora_params(16, arch.resolve_targets("all-linear")) == want


@pytest.mark.parametrize("rec", BUILT, ids=lambda r: r["name"])
def test_dropout_is_refused_exactly_where_peft_refuses_it(rec):
    arch = arch_from_hf_config(_config(rec["name"]), rec["name"])
    refused = "lora_error_dropout_0.05" in rec
    assert arch.adapts_fused_experts(arch.resolve_targets("all-linear")) == refused
    if refused:
        assert "ParamWrapper" in rec["lora_error_dropout_0.05"]


@pytest.mark.parametrize("model_type", ["mistral3", "mistral4"])
def test_a_family_no_causal_lm_class_builds_is_refused_with_its_reason(model_type):
    (rec,) = [r for r in RECORDS if r["model_type"] == model_type]
    assert "AutoModelForCausalLM" in rec["error"]  # what transformers said
    with pytest.raises(InputError, match=f"^{rec['name']}: {model_type} .*AutoModelForCausalLM"):
        arch_from_hf_config(_config(rec["name"]), rec["name"])


@pytest.mark.parametrize(
    "name, layers", [("deepseek-v3", 2), ("glm-4.5-air", 3), ("gemma-3-4b", 8), ("qwen3-30b-a3b", 4), ("llama-4-scout-17b-16e", 2)]
)
def test_a_smaller_copy_keeps_the_mix_of_layers(name, layers):
    arch = catalog.resolve_model(name)
    small = arch_from_hf_config(reduce_layers(hf_config(arch), layers), name)
    assert small.num_layers == layers
    assert 0 <= small.dense_layers < layers or not arch.dense_layers
    assert small.dense_layers == min(arch.dense_layers, layers - 1)
    # the per-layer structure is the same: the count falls by whole layers
    per_layer = (arch.total_params() - arch.vision_params - small.total_params() + small.vision_params) / (arch.num_layers - layers)
    if not arch.dense_layers:
        assert per_layer == int(per_layer)


def _emitted(model: str, method: str = "lora", **opts) -> str:
    arch = catalog.resolve_model(model)
    cfg = TrainConfig(method=method, **model_default_options(arch, method, opts))
    return emit_config("trl", arch, cfg, accum=2, held_out=0, dataset_size=1000, gpu_name="h100")


def test_emitted_lora_on_fused_experts_trains_without_dropout():
    text = _emitted("qwen3-30b-a3b")
    assert "lora_dropout=0.0," in text and 'target_modules="all-linear"' in text
    assert "lora_dropout=0.05," in _emitted("gpt-oss-20b")


def test_emitted_lora_under_a_vision_tower_targets_the_text_model():
    text = _emitted("gemma-3-4b")
    assert "target_modules='.*language_model.*\\\\.(q_proj|k_proj|v_proj|o_proj|gate_proj|up_proj|down_proj)'" in text
    assert 'target_modules="all-linear"' in _emitted("gemma-3-1b")


def test_gpt_oss_is_sized_and_emitted_with_eager_attention():
    arch = catalog.resolve_model("gpt-oss-20b")
    assert arch.attention == "eager"
    assert "attn_implementation='eager'" in _emitted("gpt-oss-20b")


def test_explicit_dropout_on_fused_experts_is_one_line_and_exit_2(capsys):
    assert main(["estimate", "--model", "qwen3-30b-a3b", "--lora-dropout", "0.05"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "ParamWrapper" in err[0] and "dropout 0" in err[0]
    assert main(["estimate", "--model", "qwen3-30b-a3b", "--lora-targets", "attn", "--lora-dropout", "0.05"]) == 0


def test_models_filters_by_family_and_the_readme_table_is_the_catalog(capsys):
    assert main(["models", "--family", "qwen3_moe", "--format", "json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert {r["name"] for r in rows} == {"qwen3-30b-a3b", "qwen3-235b-a22b"}
    a3b = next(r for r in rows if r["name"] == "qwen3-30b-a3b")
    assert a3b["experts"] == "8/128" and round(a3b["active_params"] / 1e9, 2) == 3.35
    assert main(["models", "--family", "nope"]) == 2
    assert "families:" in capsys.readouterr().err
    assert main(["models", "--format", "markdown"]) == 0
    table = capsys.readouterr().out
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    begin, end = "<!-- models:begin -->\n", "<!-- models:end -->"
    assert readme[readme.index(begin) + len(begin) : readme.index(end)] == table  # regenerate: ftdecide models --format markdown


def test_transformers_builds_the_same_counts():
    """Where torch, transformers and peft are installed: build every config on the meta device again."""
    pytest.importorskip("torch")
    pytest.importorskip("transformers")
    pytest.importorskip("peft")
    import sys

    sys.path.insert(0, str(ROOT / "benchmarks"))
    import family_counts

    for rec in BUILT[:6]:
        again = family_counts.record(rec["name"], _config(rec["name"]))
        assert again["params"] == rec["params"]


# --- measured: the emitted TRL script on the families' models (data/trainers/h100_families_2026-12-06.jsonl) ---
RUNS = ROOT / "data" / "trainers" / "h100_families_2026-12-06.jsonl"


def _runs(grid: str) -> list[dict]:
    return [r for r in jsonl(RUNS) if r["status"] == "ok" and r["id"].startswith(grid)]


def _error(rec: dict) -> float:
    from ftdecide.core.estimator import estimate_memory
    from ftdecide.probe.records import arch_of_trainer_record, config_from_trainer_record

    est = estimate_memory(arch_of_trainer_record(rec), config_from_trainer_record(rec))
    return est.peak_allocated_gib / rec["peak_train_alloc_gib"] - 1


def test_the_families_first_grid_is_within_the_bounds_it_was_fitted_on():
    """families_a (23 runs: Qwen3 dense and MoE, Gemma 3, gpt-oss, OLMo 2, Granite, SmolLM3, Ministral,
    Mixtral, GLM-4.5-Air) set the q/k-norm and gpt-oss attention constants: a median of 2.4% then, 2.7% with the
    two terms the second grid set, worst -5.0% / +7.3%."""
    import statistics

    errs = [_error(r) for r in _runs("families_a")]
    assert len(errs) >= 23
    assert statistics.median(abs(e) for e in errs) <= 0.03 and min(errs) >= -0.051 and max(errs) <= 0.08


def _plan(model: str, gpu: str):
    from ftdecide.decide.recommend import recommend
    from ftdecide.decide.scenario import Scenario

    return recommend(Scenario(model=model, gpu=gpu))


def test_gpt_oss_20b_on_an_h100_is_a_lora_plan_whose_terms_were_measured():
    """The plan: LoRA (the experts unadapted), eager attention. Its terms hold on gpt-oss-20b's 8- and
    4-layer copies and the whole model as run by the emitted script (checkpointed and not, LoRA and QLoRA,
    1,024 to 4,096 tokens a sequence), never under by more than 1.5% nor over by more than 3%."""
    res = _plan("gpt-oss-20b", "h100")
    assert res.plan.method == "lora" and res.plan.candidate.fits
    cfg = res.plan.candidate.config
    assert cfg.gradient_checkpointing and res.plan.candidate.required_gib <= 0.95 * res.gpu.memory_gib
    measured = [r for r in _runs("families_") if r["model"] == "gpt-oss-20b" and r["trainer"] == "trl" and r["method"] in ("lora", "qlora")]
    assert len(measured) == 8 and all(-0.015 <= _error(r) <= 0.03 for r in measured)
    said = " ".join(m.message for m in res.plan.reasons)
    assert "not the MLP of every expert" in said


def test_qwen3_30b_a3b_does_not_fit_an_rtx_4090_because_its_experts_stay_bf16():
    """QLoRA quantizes nn.Linear only: the fused experts (95% of the weights) stay bf16, 57 GB, more than a
    24 GB card holds. The terms hold on the 8-layer copy, measured (checkpointed: QLoRA and LoRA over the experts
    +4.3% and +3.3%, over since the routed copies' term (ROUTED_COPY_BYTES), which took the runs without
    checkpointing from -5.0% and -7.7% to +1.6% and -0.7%; LoRA of attention alone -1.8%)."""
    res = _plan("qwen3-30b-a3b", "rtx-4090")
    assert res.plan.candidate is None
    arch = catalog.resolve_model("qwen3-30b-a3b")
    experts = arch.moe_layers * arch.num_experts * arch.expert_params()
    assert experts / arch.total_params() > 0.94 and experts * 2 / 2**30 > res.gpu.memory_gib
    measured = [r for r in _runs("families_a") if r["model"] == "qwen3-30b-a3b" and r.get("layers") == 8]
    assert {r["method"] for r in measured} == {"lora", "qlora"}
    assert all(-0.02 <= _error(r) <= 0.045 for r in measured)
    assert any(a.kind == "gpu" for a in res.alternatives)


def test_the_second_grid_which_set_two_terms():
    """families_b (20 runs) was run as the held-out grid and missed: a median of 5.5%, worst -18.5% (Gemma-3-1B
    LoRA at 8 x 4096 with checkpointing) and -10.8% (gpt-oss-20b at 4 x 4096). Its allocator traces set two
    terms (TRL's LoRA recompute of down_proj's input, gpt-oss's checkpointed sink attention), so it is no
    longer held out: a median of 4.9%, worst -10.2% / +11.6%; with the routed copies' term (set on the runs of
    MoE LoRA without checkpointing, families_a:15 and families_b:9) 4.1%, worst -10.2% / +11.8%; with Gemma 3's
    sliding-window mask (from the mechanism, not fitted) 3.7%, worst -7.6% / +11.8%; with full fine-tuning's q width
    and its trained q/k norms (read from code, not fitted: Qwen3-0.6B full, -7.6% to +2.2%) 2.4%, worst -6.5% /
    +11.8%."""
    errs = [_error(r) for r in _runs("families_b")]
    assert len(errs) == 20
    assert statistics.median(abs(e) for e in errs) <= 0.025 and min(errs) >= -0.066 and max(errs) <= 0.118
    (full,) = [r for r in _runs("families_b") if r["model"] == "qwen3-0.6b" and r["method"] == "full"]
    assert 0.0 < _error(full) < 0.03  # its allocator trace's 1.03 GiB of layers more, now counted


@pytest.mark.parametrize("method, trained", [("full", 2.0), ("lora", 0.0)])
@pytest.mark.parametrize("gc", [True, False])
def test_trained_qk_norms_keep_their_bf16_input(method, trained, gc):
    """Where the q/k norms' weights train, ``weight * x.to(bf16)`` keeps x for the weight's gradient: 2 B more per q
    and k value in every layer that saves (all of them without checkpointing, the recomputed one with)."""
    from ftdecide.core.calibration import DEFAULT
    from ftdecide.core.estimator import memory_model

    a = catalog.resolve_model("qwen3-0.6b")
    cfg = TrainConfig(method=method, seq_len=1024, batch_size=4, gradient_checkpointing=gc)
    on, off = (memory_model(a, cfg, cal) for cal in (DEFAULT, DEFAULT.with_constants(qk_norm_trained_bytes=0.0)))
    per_layer = trained * (a.q_dim + a.kv_dim) * 4096
    layers = on.recompute if gc else a.num_layers
    assert a.qk_norm == "head" and (a.q_dim, a.kv_dim) == (2048, 1024)
    assert on.phases(1024, 4, gc)["backward"] - off.phases(1024, 4, gc)["backward"] == pytest.approx(per_layer * layers, rel=1e-12)


def test_full_fine_tuning_counts_q_apart_from_hidden():
    """sdpa's q and output and o_proj's input, 2 B a q value each: a model whose q is twice its hidden size saves
    6 B x hidden more a layer per token than the same model with q as wide as its hidden size."""
    from ftdecide.core.estimator import memory_model

    a = catalog.resolve_model("qwen3-0.6b")
    narrow = a.model_copy(update={"num_heads": 8})
    assert (a.q_dim, narrow.q_dim) == (2 * a.hidden_size, a.hidden_size)
    cfg = TrainConfig(method="full", seq_len=1024, batch_size=4)
    wide, thin = memory_model(a, cfg), memory_model(narrow, cfg)
    qk = 4.0 * a.hidden_size  # the q/k norms' 2 + 2 B a q value
    assert wide.layer_base - thin.layer_base == pytest.approx(6.0 * a.hidden_size + qk, rel=1e-12)


def test_the_families_held_out_runs():
    """families_c (18 runs), written and run after every constant was set: the issue's bounds (a median of
    3%, no under-estimate past -5%) hold: a median of 1.4%, worst -1.9% / +12.8% (Gemma-3-4B QLoRA, over); with
    Gemma 3's sliding-window mask term (a later mechanism, which adds 0.05 GiB to that run) -1.7% / +13.5%."""
    errs = [_error(r) for r in _runs("families_c")]
    assert len(errs) == 18
    assert statistics.median(abs(e) for e in errs) <= 0.03 and min(errs) >= -0.05 and max(errs) <= 0.136


def test_the_plan_for_gpt_oss_20b_on_an_h100_was_run_whole():
    """The recommended configuration, run with the emitted TRL script on the whole random-weight gpt-oss-20b
    (24 layers, 39 GiB of bf16 weights): 58.45 GiB measured, the plan's peak 0-3% over it."""
    res = _plan("gpt-oss-20b", "h100")
    cfg = res.plan.candidate.config
    (run,) = [r for r in _runs("families_b") if r["model"] == "gpt-oss-20b" and not r.get("layers")]
    assert (cfg.batch_size, cfg.seq_len, cfg.gradient_checkpointing) == (run["batch"], run["seq"], run["gc"])
    assert 0 <= res.plan.candidate.estimate.peak_allocated_gib / run["peak_train_alloc_gib"] - 1 <= 0.03


def test_trl_refuses_llama_4_with_what_stopped_it(capsys):
    assert main(["recommend", "--model", "llama-4-scout", "--gpu", "h100"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "last_hidden_state" in err[0] and "--trainer hf" in err[0]
    assert main(["recommend", "--model", "llama-4-scout", "--gpu", "h100", "--trainer", "hf", "--format", "json"]) == 0
    capsys.readouterr()
    for argv in (["estimate"], ["fit", "--gpu", "h100"]):
        assert main([*argv, "--model", "llama-4-scout"]) == 2
        assert "last_hidden_state" in capsys.readouterr().err


def test_a_moe_plan_warns_that_its_time_was_measured_slower():
    """The MoE family runs trained alone took 0.9-2.5x the step time the model counts under TRL, and 1.2-1.8x (LoRA)
    and 3.1-7.2x (QLoRA) under the transformers Trainer (python benchmarks/fit_trainers.py --time): the warning states
    those ranges, read here from the runs; a dense plan says nothing of it."""
    import sys

    sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent.parent / "benchmarks"))
    import fit_trainers

    runs = [r for r in fit_trainers.alone(fit_trainers.load()) if fit_trainers.arch_of_trainer_record(r).is_moe]

    def span(trainer: str, methods: tuple[str, ...]) -> str:
        ratios = [1 + fit_trainers.time_error(r)[2] for r in runs if r["trainer"] == trainer and r["method"] in methods]
        return f"{min(ratios):.1f}-{max(ratios):.1f}x"

    (said,) = [m.message for m in _plan("qwen3-30b-a3b", "h100").warnings if m.rule == "moe-time"]
    assert f"TRL script ran {span('trl', ('lora', 'qlora', 'full'))} that" in said
    assert f"Trainer's {span('hf', ('lora',))} with LoRA and {span('hf', ('qlora',))} with QLoRA" in said
    assert "moe-time" not in {m.rule for m in _plan("qwen3-8b", "h100").warnings}


@pytest.mark.parametrize(
    "cfg, said",
    [
        ({"model_type": "gemma3", "text_config": "x"}, "'text_config' must be an object"),
        ({"model_type": "gemma3", "text_config": {}, "vision_config": {"patch_size": 0}}, "vision_config 'patch_size'"),
        ({"model_type": "gemma3", "text_config": {}, "vision_config": {"hidden_size": True}}, "vision_config 'hidden_size'"),
        ({"model_type": "gemma3", "text_config": {}, "vision_config": [1]}, "'vision_config' must be an object"),
        ({**json.loads((CONFIGS / "qwen3-30b-a3b.json").read_text()), "mlp_only_layers": "0,1"}, "'mlp_only_layers' must be a list"),
        ({**json.loads((CONFIGS / "deepseek-v3.json").read_text()), "first_k_dense_replace": -1}, "'first_k_dense_replace'"),
        ({**json.loads((CONFIGS / "deepseek-v3.json").read_text()), "kv_lora_rank": "512"}, "'kv_lora_rank'"),
        (
            {"model_type": "llama4", "text_config": {**_config("llama-4-scout-17b-16e")["text_config"], "moe_layers": [True]}},
            "'moe_layers' must be a list",
        ),
        ({"model_type": "mistral3"}, "AutoModelForCausalLM does not build"),
    ],
    ids=["text-config", "patch-0", "bool", "vision-list", "mlp-only", "dense-negative", "rank-text", "moe-layers", "mistral3"],
)
def test_a_bad_family_config_is_one_line_naming_the_field(cfg, said):
    with pytest.raises(InputError, match=None) as e:
        arch_from_hf_config(cfg, "config.json")
    assert said in str(e.value) and str(e.value).startswith("config.json")


@pytest.mark.parametrize("name", ["qwen3-30b-a3b", "llama-4-scout-17b-16e", "deepseek-v3", "gemma4-e2b-shape", "gemma4-moe-shape"])
def test_a_trillion_layers_is_refused_before_the_layers_are_walked(name):
    """Found by the property below: the MoE layer count walked 2**40 layers (a hang, or a MemoryError)."""
    cfg = _config(name)
    (cfg.get("text_config") or cfg)["num_hidden_layers"] = 2**40
    with pytest.raises(InputError, match="num_hidden_layers"):
        arch_from_hf_config(cfg, "config.json")


_ODD = [0, -1, 1, 3, 2**40, True, None, "12", 1.5, [], [0, 1], {}, {"a": 1}]
_KEYS = sorted(
    {
        k
        for p in CONFIGS.glob("*.json")
        for part in (json.loads(p.read_text()), json.loads(p.read_text()).get("text_config") or {})
        for k in part
        if not k.startswith("_")
    }
    | {"text_config", "vision_config", "audio_config"}
)


@settings(max_examples=400, deadline=None)
@given(
    name=st.sampled_from(sorted(p.stem for p in CONFIGS.glob("*.json"))),
    key=st.sampled_from(_KEYS),
    value=st.sampled_from(_ODD),
    nested=st.booleans(),
)
def test_any_odd_value_in_a_family_config_is_sized_or_one_input_error(name, key, value, nested):
    """Whatever one field of a real config holds (in a wrapper, its text_config's too): an architecture whose
    estimate is finite, or an InputError; never another exception."""
    from ftdecide.core.estimator import estimate_memory

    cfg = _config(name)
    target = cfg["text_config"] if nested and isinstance(cfg.get("text_config"), dict) else cfg
    target[key] = value
    try:
        arch = arch_from_hf_config(cfg, "config.json")
    except InputError:
        return
    opts = model_default_options(arch, "lora", {})
    try:
        est = estimate_memory(arch, TrainConfig(method="lora", seq_len=256, **opts))
    except InputError:
        return
    assert est.peak_allocated_gib > 0 and est.peak_allocated_gib < float("inf")


FUSED = [r for r in BUILT if "lora_target_parameters" in r]


@pytest.mark.parametrize("rec", FUSED, ids=lambda r: r["name"])
def test_the_experts_target_counts_as_peft_target_parameters(rec):
    """peft 0.21's LoraConfig(target_parameters=[the fused experts' two parameters]): the experts at the rank
    (not twice it on gate_up_proj, as all-linear's wrapper puts it)."""
    arch = arch_from_hf_config(_config(rec["name"]), rec["name"])
    mods = arch.resolve_targets("experts")
    assert mods == ("experts.gate_up_proj", "experts.down_proj")
    assert sorted(peft_target_parameters(arch, list(mods))) == rec["lora_target_parameters"]["parameters"]
    want = rec["lora_target_parameters"]["trainable_r16"]
    assert arch.lora_params(16, mods) == want
    # beside all-linear: what all-linear adapts but its own wrap of the experts, and the experts at the rank
    both = arch.resolve_targets("all-linear,experts")
    modules = tuple(m for m in arch.resolve_targets("all-linear") if not m.startswith("experts["))
    assert arch.lora_params(16, both) == arch.lora_params(16, modules) + want


def test_the_experts_target_is_emitted_as_target_parameters_and_refused_where_it_cannot_run(capsys):
    text = _emitted("gpt-oss-20b", lora_targets="all-linear,experts")
    assert "target_parameters=['mlp.experts.gate_up_proj', 'mlp.experts.down_proj']" in text and "lora_dropout=0.0," in text
    assert "target_parameters=['feed_forward.experts.gate_up_proj'" in _emitted("llama-4-scout-17b-16e", lora_targets="experts")
    # down_proj alone is the dense or shared MLP's, never the experts' parameter of that name
    assert catalog.resolve_model("qwen1.5-moe-a2.7b").resolve_targets("down_proj") == ("down_proj",)
    assert main(["estimate", "--model", "gpt-oss-20b", "--method", "dora", "--lora-targets", "experts"]) == 2
    assert "refuses DoRA" in capsys.readouterr().err
    assert main(["estimate", "--model", "gpt-oss-20b", "--lora-targets", "experts", "--lora-dropout", "0.05"]) == 2
    assert "ParamWrapper" in capsys.readouterr().err


def test_all_linear_in_a_list_names_the_experts_as_parameters():
    """'all-linear,experts' on a family whose all-linear reaches the experts: emitted as module names plus
    target_parameters (peft refuses 'experts' among target_modules), so the experts count at the rank, once."""
    arch = catalog.resolve_model("qwen3-30b-a3b")
    mods = arch.resolve_targets("all-linear,experts")
    assert not any(m.startswith("experts[") for m in mods) and mods.count("experts.gate_up_proj") == 1
    text = _emitted("qwen3-30b-a3b", lora_targets="all-linear,experts")
    assert "'experts'" not in text.split("target_modules=", 1)[1].split("\n", 1)[0]
    assert "target_parameters=['mlp.experts.gate_up_proj', 'mlp.experts.down_proj']" in text


def test_the_readme_lists_every_model_type_read():
    """The README's list of the config.json model types `--model` reads is the reader's own table, and the
    ones it refuses follow."""
    from ftdecide.files.hfconfig import FAMILIES, REFUSED

    readme = (pathlib.Path(__file__).resolve().parent.parent / "README.md").read_text()
    start = readme.index("a path to a `config.json` or a folder holding one")
    listed, refused = readme[start : readme.index(")", start)].split("(", 1)[1].replace("\n", " ").split(";")
    assert sorted(x.strip() for x in listed.split(",")) == sorted(FAMILIES)
    assert sorted(t for t in refused.replace(",", " ").split() if "_" in t or t[-1].isdigit()) == sorted(REFUSED)


def test_every_family_record_is_whole():
    """One record per model_type (files/families.py): a text family names its decoder layer and its configuration
    class's defaults; a wrapper names a text family, which holds the rest."""
    from ftdecide.files.families import FAMILIES

    for mt, f in FAMILIES.items():
        if f.wraps:
            assert not f.decoder_layer and not f.defaults and not FAMILIES[f.wraps].wraps, mt
            continue
        assert f.decoder_layer.endswith("DecoderLayer") and {"kv", "head_dim", "tie"} <= set(f.defaults), mt
        assert f.attention in ("sdpa", "eager") and f.norms in (2, 4), mt


@pytest.mark.parametrize("targets, gc, folded", [("all-linear", True, 3), ("all-linear", False, 3), ("attn", True, 0)])
def test_lora_over_fused_experts_costs_its_folded_copies_in_step_time(targets, gc, folded):
    """peft folds each adapted expert parameter (W + s*B@A over all 128 experts of Qwen3-30B-A3B's 48 MoE layers)
    in every forward and builds its whole gradient in backward: 4 B a value per fold (two with checkpointing) and
    4 B for the gradient, and the routed tokens' weight-gradient FLOPs (8 of 128 experts a token). Beside them, the
    adapters of the attention's linears move ``lora_io_bytes`` per input and output value per token and pass."""
    from ftdecide.core.calibration import DEFAULT
    from ftdecide.core.config import TrainConfig

    arch = catalog.resolve_model("qwen3-30b-a3b")
    cfg = TrainConfig(method="lora", lora_targets=targets, lora_dropout=0.0, gradient_checkpointing=gc)
    mods = cfg.method_spec.adapted_modules(arch, cfg)
    values = folded * 128 * 2048 * 768 * 48  # gate_up (2 x 768) and down (768) of every expert, every layer
    # q (2048 -> 32 x 128), k and v (2048 -> 4 x 128), o (4096 -> 2048), and all-linear's router (2048 -> 128): inputs
    # and outputs, 48 layers
    widths = (2048 + 4096) + 2 * (2048 + 512) + (4096 + 2048) + (2048 + 128 if folded else 0)
    adapters = DEFAULT.lora_io_bytes * widths * 48 * (3 if gc else 2) * cfg.seq_len * cfg.batch_size
    traffic = cfg.method_spec.step_traffic_bytes(arch, cfg, mods, DEFAULT)
    assert traffic == pytest.approx(values * (4.0 * (2 if gc else 1) + 4.0) + adapters)
    assert cfg.method_spec.extra_flops_per_token(arch, cfg, mods) == pytest.approx(2.0 * 8 / 128 * values)


def test_the_harness_writes_an_mxfp4_checkpoint_that_loads_de_quantized(tmp_path):
    """benchmarks/trainer_runs.py's ``as_mxfp4`` ships a gpt-oss checkpoint as openai/gpt-oss-* is (expert stacks as
    MXFP4 blocks and scales, quantization_config): transformers loads it de-quantized to bf16 where the kernels
    package is missing, with every parameter of the bf16 model, which is what the plan sizes."""
    torch = pytest.importorskip("torch")
    transformers = pytest.importorskip("transformers")
    import sys

    sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent.parent / "benchmarks"))
    import trainer_runs

    cfg = transformers.GptOssConfig(
        vocab_size=512, hidden_size=128, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4,
        num_key_value_heads=2, head_dim=32, num_local_experts=4, num_experts_per_tok=2,
        layer_types=["sliding_attention", "full_attention"],
    )  # fmt: skip
    model = transformers.AutoModelForCausalLM.from_config(cfg, dtype=torch.bfloat16)
    model.save_pretrained(tmp_path)
    trainer_runs.as_mxfp4(tmp_path)
    assert json.loads((tmp_path / "config.json").read_text())["quantization_config"]["quant_method"] == "mxfp4"
    loaded = transformers.AutoModelForCausalLM.from_pretrained(tmp_path, dtype=torch.bfloat16)
    experts = loaded.model.layers[0].mlp.experts
    assert (
        experts.gate_up_proj.dtype == torch.bfloat16 and experts.gate_up_proj.shape == model.model.layers[0].mlp.experts.gate_up_proj.shape
    )
    assert sum(p.numel() for p in loaded.parameters()) == sum(p.numel() for p in model.parameters())
    assert 0 < float(experts.down_proj.float().abs().max()) <= 6 * 2**-5
    # what the emitted files load it with, and why QLoRA of it is refused
    emitted = transformers.AutoModelForCausalLM.from_pretrained(
        tmp_path, quantization_config=transformers.Mxfp4Config(dequantize=True), dtype=torch.bfloat16
    )
    assert emitted.model.layers[0].mlp.experts.gate_up_proj.dtype == torch.bfloat16
    with pytest.raises(ValueError, match="quantized with Mxfp4Config but you are passing a BitsAndBytesConfig"):
        transformers.AutoModelForCausalLM.from_pretrained(
            tmp_path, quantization_config=transformers.BitsAndBytesConfig(load_in_4bit=True), dtype=torch.bfloat16
        )


@pytest.mark.parametrize("kind", ["trl", "hf", "peft"])
def test_gpt_oss_is_emitted_to_load_its_mxfp4_checkpoint_de_quantized(kind):
    """openai/gpt-oss-* ship their experts in MXFP4 (config.json's quantization_config): the emitted file loads them
    with Mxfp4Config(dequantize=True), the bf16 weights the plan sizes, whether or not the machine has the kernels
    that would keep them in MXFP4; a model that ships bf16 loads as before."""
    assert catalog.resolve_model("gpt-oss-20b").checkpoint_quant == "mxfp4"
    text = invoke(["recommend", "--model", "gpt-oss-20b", "--gpu", "h100", "--emit", kind]).stdout
    assert "dequantize_config = Mxfp4Config(dequantize=True)" in text and "quantization_config=dequantize_config" in text
    assert "Mxfp4Config\n" in text.split("from transformers import ", 1)[1].split("\n", 1)[0] + "\n"
    plain = invoke(["recommend", "--model", "llama-3.1-8b", "--gpu", "h100", "--emit", kind]).stdout
    assert "Mxfp4Config" not in plain and "quantization_config=bnb_config" in plain


def test_axolotl_loads_gpt_oss_de_quantized_as_its_own_example_does():
    text = invoke(["recommend", "--model", "gpt-oss-20b", "--gpu", "h100", "--emit", "axolotl"]).stdout
    assert "model_quantization_config: Mxfp4Config" in text and "dequantize: true" in text


def test_qlora_of_a_checkpoint_shipped_quantized_is_refused():
    """transformers refuses a BitsAndBytesConfig for a checkpoint that ships MXFP4 or fp8: QLoRA of gpt-oss or
    DeepSeek-V3 is sized but never the plan, and asked for, it is one line."""
    r = invoke(["estimate", "--model", "gpt-oss-20b", "--method", "qlora"])
    assert r.exit_code == 2 and "ships mxfp4 weights" in r.stderr and len(r.stderr.strip().splitlines()) == 1
    doc = json.loads(invoke(["recommend", "--model", "gpt-oss-20b", "--gpu", "h200", "--format", "json"]).stdout)
    (q,) = [c for c in doc["candidates"] if c["method"] == "qlora"]
    assert not q["fits"] and doc["recommendation"]["method"] != "qlora"
    assert catalog.resolve_model("deepseek-v3").checkpoint_quant == "fp8"


def test_a_config_json_says_how_its_checkpoint_ships(tmp_path):
    from ftdecide.files.hfconfig import arch_from_hf_config, hf_config

    cfg = hf_config(catalog.resolve_model("gpt-oss-20b"))
    assert "quantization_config" not in cfg  # the random-weight builds are bf16
    assert arch_from_hf_config(cfg).checkpoint_quant == ""
    assert arch_from_hf_config(dict(cfg, quantization_config={"quant_method": "mxfp4"})).checkpoint_quant == "mxfp4"
    assert arch_from_hf_config(dict(cfg, quantization_config={"quant_method": "gptq"})).checkpoint_quant == ""


@pytest.mark.parametrize(
    "name, spec, modules",
    [
        pytest.param("apertus-defaults", "mlp", ("up_proj", "down_proj"), id="plain MLP: no gate_proj"),
        pytest.param("apertus-defaults", "all-linear", ("q_proj", "k_proj", "v_proj", "o_proj", "up_proj", "down_proj"), id="apertus all"),
        pytest.param("glm4-defaults", "mlp", ("gate_up_proj", "down_proj"), id="glm4 fused gate_up"),
        pytest.param("glm4-defaults", "q_proj,gate_proj", ("q_proj", "gate_up_proj"), id="glm4 q apart, gate fused"),
        pytest.param("llama-3.1-8b-ref", "mlp", ("gate_proj", "up_proj", "down_proj"), id="gated MLP unchanged"),
    ],
)
def test_a_target_set_names_the_modules_the_architecture_has(name, spec, modules):
    assert arch_from_hf_config(_config(name), name).resolve_targets(spec) == modules


def test_a_module_the_architecture_lacks_is_still_one_error_naming_it():
    with pytest.raises(InputError, match="'gate_proj' not in apertus-defaults; its linear modules are q_proj"):
        arch_from_hf_config(_config("apertus-defaults"), "apertus-defaults").resolve_targets("gate_proj,up_proj")


@pytest.mark.parametrize("gc", [True, False])
def test_gemma3_sliding_layers_hold_their_mask_from_their_window_on(gc):
    """Gemma-3-1B: 22 of 26 layers slide over 512 keys. From 512 tokens on, 512 included, sdpa runs them with a mask
    (transformers 5.17 skips it only while the keys are fewer than the window): transformers' boolean one (1 B a
    query x key pair) and the bias sdpa's masked kernel saves, in every sliding layer without checkpointing (2 B a
    pair each), in the one recomputed with it."""
    from ftdecide.core.calibration import DEFAULT
    from ftdecide.core.estimator import memory_model

    arch = catalog.resolve_model("gemma-3-1b")
    assert (arch.sliding_window, arch.sliding_layers) == (512, 22)
    cfg = TrainConfig(method="lora", trainer="trl", gradient_checkpointing=gc, **model_default_options(arch, "lora", {}))
    mm = memory_model(arch, cfg)
    per_pair = DEFAULT.sdpa_mask_bytes + DEFAULT.sdpa_bias_bytes * (1 if gc else 22)
    assert mm.sliding == (512, DEFAULT.sdpa_mask_bytes + DEFAULT.sdpa_bias_bytes, DEFAULT.sdpa_mask_bytes + DEFAULT.sdpa_bias_bytes * 22)
    for seq, b, masked in ((511, 8, False), (512, 8, True), (4096, 8, True)):
        plain = memory_model(arch.model_copy(update={"sliding_window": 0, "sliding_layers": 0}), cfg).phases(seq, b, gc)["act"]
        assert mm.phases(seq, b, gc)["act"] - plain == pytest.approx(per_pair * b * seq * seq if masked else 0.0)


_MISTRAL = dict(
    model_type="mistral", hidden_size=4096, intermediate_size=14336, num_hidden_layers=32, num_attention_heads=32, vocab_size=32000
)


@pytest.mark.parametrize(
    "cfg, window",
    [
        pytest.param(_MISTRAL, 4096, id="mistral-no-key"),  # MistralConfig's default: Mistral-7B-v0.1's window
        pytest.param({**_MISTRAL, "sliding_window": None}, 0, id="mistral-null"),  # Mistral-7B-v0.3, Mistral Small 3
        pytest.param({**_MISTRAL, "sliding_window": 32768}, 32768, id="ministral"),
        pytest.param({**_MISTRAL, "model_type": "phi3"}, 0, id="phi3-no-key"),
        pytest.param({**_MISTRAL, "model_type": "phi3", "sliding_window": 2047}, 2047, id="phi-3-mini-4k"),
        pytest.param({**_MISTRAL, "model_type": "mixtral"}, 0, id="mixtral-no-key"),
    ],
)
def test_a_family_whose_every_layer_slides_reads_its_window_as_transformers_does(cfg, window):
    """Mistral, Phi-3 and Mixtral slide every layer over ``sliding_window`` keys or none (transformers 5.17's
    create_sliding_window_causal_mask wherever the config's window is not None): a config.json without the key takes
    its class's default (MistralConfig 4,096; Phi3Config and MixtralConfig none). The config written back names the
    window, None included, so that the model built from it has the window sized, not MistralConfig's default."""
    arch = arch_from_hf_config(dict(cfg), "config.json")
    assert (arch.sliding_window, arch.sliding_layers) == (window, 32 if window else 0)
    written = hf_config(arch)
    assert written["sliding_window"] == (window or None) and "layer_types" not in written
    assert arch_from_hf_config(written, "config.json") == arch.model_copy(update={"name": "config.json"})


@pytest.mark.parametrize("model, window", [("mistral-7b", 4096), ("mistral-7b-v0.3", 0), ("phi-3-mini", 2047), ("ministral-8b", 32768)])
def test_the_catalog_windows_are_their_config_jsons(model, window):
    arch = catalog.resolve_model(model)
    assert (arch.sliding_window, arch.sliding_layers) == (window, arch.num_layers if window else 0)


def test_runs_made_before_the_window_was_written_are_sized_with_their_class_default():
    """Until 2026-12-07 the harness built each model from a config that named no window, so each ran its class's
    default: a finished record without ``sliding_window`` is sized so (Phi-3-mini without its 2,047, Ministral-8B
    with MistralConfig's 4,096); a line about to run, and a record that names its window, as the catalog has it."""
    from ftdecide.probe.records import arch_of_trainer_record

    def window(d):
        return arch_of_trainer_record(d).sliding_window

    assert window({"model": "phi-3-mini", "status": "ok"}) == 0 and window({"model": "phi-3-mini"}) == 2047
    assert window({"model": "ministral-8b", "status": "ok"}) == 4096 and window({"model": "ministral-8b"}) == 32768
    assert window({"model": "phi-3-mini", "status": "ok", "sliding_window": 2047}) == 2047
    assert window({"model": "mistral-7b-v0.3", "status": "ok", "layers": 4}) == 4096
    assert arch_of_trainer_record({"model": "mistral-7b-v0.3", "status": "ok", "layers": 4}).sliding_layers == 4


@pytest.mark.parametrize("seq, masked", [(2048, False), (4095, False), (4096, True), (8192, True)])
def test_a_sliding_window_runs_the_masked_kernel_from_the_window_on_in_step_time(seq, masked):
    """Mistral-7B-v0.1's 32 layers slide over 4,096 keys: from 4,096 tokens on, sdpa runs each with a mask, so the
    masked kernel over every query x key pair (12 FLOPs a pair per query width) at ``masked_attn_util`` takes the
    place of flash attention's causal half (6) at ``attn_util``; nothing else in the step moves. Measured under TRL
    (trainer_trl_timing:11 and :12, 2 x 4,096 against 4 x 2,048): 1.18x the time per token."""
    from ftdecide.core.calibration import DEFAULT
    from ftdecide.core.throughput import step_seconds

    arch = catalog.resolve_model("mistral-7b")
    plain = arch.model_copy(update={"sliding_window": 0, "sliding_layers": 0})
    cfg = TrainConfig(method="lora", seq_len=seq, batch_size=8192 // seq, gradient_checkpointing=True)
    s, p = step_seconds(arch, cfg, 989, 3350), step_seconds(plain, cfg, 989, 3350)
    k, tokens, peak = DEFAULT.step, 8192, 989e12
    flash = 6.0 * 32 * seq * arch.q_dim * tokens / (peak * k.attn_util)
    masked_kernel = 12.0 * 32 * seq * arch.q_dim * tokens / (peak * k.masked_attn_util)
    assert s["matmul"] - p["matmul"] == pytest.approx((masked_kernel - flash) * k.recompute_attention if masked else 0.0)
    assert (s["memory"], s["launch"]) == (p["memory"], p["launch"])


@pytest.mark.parametrize(
    "key, value, said",
    [
        ("sliding_window_pattern", 0, "'sliding_window_pattern' must be a positive whole number"),
        ("layer_types", ["sliding_attention"], "'layer_types' must name"),
        ("layer_types", "sliding_attention", "'layer_types' must name"),
        ("sliding_window", -4, "'sliding_window' must be a positive whole number"),
    ],
)
def test_a_bad_sliding_layout_is_one_input_error(key, value, said):
    cfg = _config("gemma-3-1b")
    cfg[key] = value
    with pytest.raises(InputError, match=said):
        arch_from_hf_config(cfg, "config.json")


# --- Gated DeltaNet hybrids (Qwen3.5, Qwen3.5-MoE, Qwen3-Next), 2026-12-07 ---------------------------------------


def test_a_linear_attention_mixer_saves_what_the_pytorch_path_saves():
    """Qwen3.5-9B's widths (hidden 4,096; 16 key heads and 32 value heads of 128): 10 x 4,096 + 8 x 2,048 + 32 x
    4,096 + 34 x 4,096 + 1,318 x 32 + 4 x 32 x 128 x 128 / 64 bytes a token (benchmarks/linear_attention_trace.py)."""
    from ftdecide.core import hybrid

    arch = arch_from_hf_config(_config("qwen3_5-defaults"), "q")
    assert (arch.linear_layers, arch.attention_layers, arch.attn_gate) == (24, 8, True)
    assert hybrid.mixer_bytes(arch) == 40960 + 16384 + 131072 + 139264 + 42176 + 32768
    assert hybrid.gate_bytes(arch) == 2 * 4096 + 8 * 4096 + 2 * 1024
    plain = arch.model_copy(update={"linear_layers": 0, "attn_gate": False})
    from ftdecide.core.calibration import DEFAULT

    assert hybrid.layer_terms(plain, DEFAULT.act("lora"), 0.0) == (0.0, 0.0)


def test_without_checkpointing_a_hybrid_holds_more_than_its_layers_as_attention_would():
    from ftdecide.core.estimator import TrainConfig, estimate_memory

    arch = arch_from_hf_config(_config("qwen3_5-defaults"), "q")
    # without checkpointing every linear-attention layer holds its chunks' fp32 tensors: more than an attention layer
    cfg = TrainConfig(method="lora", seq_len=1024, batch_size=1, gradient_checkpointing=False, trainer="trl")
    as_attention = arch.model_copy(update={"linear_layers": 0, "attn_gate": False})
    assert estimate_memory(arch, cfg).peak_allocated_gib > estimate_memory(as_attention, cfg).peak_allocated_gib + 2


def test_prefix_tuning_is_refused_on_a_hybrid():
    from ftdecide import methods

    arch = arch_from_hf_config(_config("qwen3_5-small"), "q")
    assert "prefix" in methods.get("prefix").unsupported(arch)
    assert methods.get("prefix").unsupported(arch_from_hf_config(_config("qwen3-0.6b"), "q")) is None


HYBRID = ROOT / "data" / "trainers" / "h100_hybrid_2026-12-07.jsonl"


@pytest.mark.parametrize("rec", jsonl(HYBRID), ids=lambda r: r["id"])
def test_hybrid_runs_planned_before_they_ran(rec):
    """The emitted TRL script on random Qwen3.5 / Qwen3-Next copies (H100, 2026-12-07), each plan written in
    data/grids/hybrid_a.jsonl before it ran. Five are within -2.5% / +3.5% of that plan, unchanged since. The
    three 0.5B runs built their model untied (the harness wrote the tie flag where Qwen3.5's causal-LM class
    does not read it): the parameters on the GPU are the untied count, and the same estimator, sizing the model
    that ran, is within those bounds too (nothing was fitted on them)."""
    import sys

    sys.path.insert(0, str(ROOT / "benchmarks"))
    from fit_trainers import error
    from ftdecide.probe.records import arch_of_trainer_record

    if rec.get("tie") is False:
        ran, planned = arch_of_trainer_record(rec), arch_of_trainer_record({**rec, "tie": None})
        assert planned.tie_embeddings and not ran.tie_embeddings
        assert ran.total_params() - planned.total_params() == 248320 * 1024
        lora = 0 if rec["method"] == "full" else 5345280  # r=16 all-linear, fp32
        assert rec["params_on_gpu_gib"] * 2**30 == ran.total_params() * 2 + lora * 4
    else:
        assert error(rec) == pytest.approx(rec["planned_gib"] / rec["peak_train_alloc_gib"] - 1, abs=0.001)
    assert -0.025 <= error(rec) <= 0.035


HYBRID_B = ROOT / "data" / "trainers" / "h100_hybrid_b_2026-12-07.jsonl"


def test_the_tied_hybrid_runs_planned_before_they_ran():
    """The 0.5B Qwen3.5 shape built tied as planned (the reader's fix), 8 runs planned in data/grids/hybrid_b.jsonl
    before they ran (H100, 2026-12-07): the parameters on the GPU are the tied count, and the plans held, unchanged
    since but one: full fine-tuning at 4 x 2,048, +2.6% as planned, +1.7% since full fine-tuning's q width is read apart
    from the hidden size (sdpa's q and output sit in the attention layers only). A median 1.6%, within -4.8% / +22.2%
    (DoRA's checkpointed recompute over, as on the other families)."""
    import statistics
    import sys

    sys.path.insert(0, str(ROOT / "benchmarks"))
    from fit_trainers import error
    from ftdecide.probe.records import arch_of_trainer_record

    recs = jsonl(HYBRID_B)
    assert len(recs) == 8 and all(r["status"] == "ok" for r in recs)
    moved = []
    for r in recs:
        assert arch_of_trainer_record(r).tie_embeddings
        planned = r["planned_gib"] / r["peak_train_alloc_gib"] - 1
        if error(r) != pytest.approx(planned, abs=0.001):
            moved.append((r["method"], r["seq"], r["batch"], round(error(r) - planned, 3)))
    assert moved == [("full", 2048, 4, -0.009)]
    errs = [error(r) for r in recs]
    assert -0.05 <= min(errs) and max(errs) <= 0.23
    assert statistics.median(abs(e) for e in errs) == pytest.approx(0.016, abs=0.002)


def _tied(cfg: dict, top, text) -> dict:
    """A wrapper config with ``tie_word_embeddings`` at its top level and in its text config as given (None: absent)."""
    for part, flag in ((cfg, top), (cfg["text_config"], text)):
        part.pop("tie_word_embeddings", None)
        if flag is not None:
            part["tie_word_embeddings"] = flag
    return cfg


@pytest.mark.parametrize(
    "name, top, text, tied",
    [
        # what AutoModelForCausalLM.from_config builds (transformers 5.17, measured on the meta device): Gemma 3's
        # class reads the wrapper's flag; Llama 4's and Qwen3.5's read the text config's, whatever the wrapper says
        ("gemma-3-4b", True, None, True),
        ("gemma-3-4b", False, True, False),
        ("gemma-3-4b", True, False, True),
        ("gemma-3-4b", None, None, True),
        ("llama-4-scout-17b-16e", True, None, False),
        ("llama-4-scout-17b-16e", False, True, True),
        ("llama-4-scout-17b-16e", None, None, False),
        ("qwen3_5-small", True, None, False),
        ("qwen3_5-small", False, True, True),
        ("qwen3_5-small", True, False, False),
        ("qwen3_5-small", None, None, False),
    ],
)
def test_a_wrapper_ties_its_head_where_its_causal_lm_class_reads_the_flag(name, top, text, tied):
    arch = arch_from_hf_config(_tied(_config(name), top, text), name)
    assert arch.tie_embeddings is tied
    # the config the device harness builds from says the same to every class
    again = hf_config(arch)
    assert again["tie_word_embeddings"] is tied and again["text_config"]["tie_word_embeddings"] is tied
    assert arch_from_hf_config(again, name).tie_embeddings is tied


def test_a_wrappers_note_is_its_own():
    notes = {n: arch_from_hf_config(_config(n), n).note for n in ("gemma-3-4b", "llama-4-scout-17b-16e", "qwen3_5-small")}
    assert notes["gemma-3-4b"].startswith("Gemma 3's vision tower loads with the model")
    assert notes["llama-4-scout-17b-16e"].startswith("Llama 4's causal-LM class loads the text model only")
    assert notes["qwen3_5-small"].startswith("Qwen3.5's causal-LM class loads the text model only")
    assert "Llama 4" not in notes["qwen3_5-small"]


def test_transformers_ties_the_wrappers_as_read():
    """Where torch and transformers are installed: the reader's tie for every wrapper config and every placement
    of the flag equals what transformers builds, and so does the inverse config's."""
    torch = pytest.importorskip("torch")
    transformers = pytest.importorskip("transformers")
    for path in sorted(CONFIGS.glob("*.json")):
        base = json.loads(path.read_text())
        base.pop("_src", None)
        if "text_config" not in base or base["model_type"] == "mistral3":
            continue
        for top in (True, False, None):
            for text in (True, False, None):
                cfg = _tied(json.loads(json.dumps(base)), top, text)
                arch = arch_from_hf_config(json.loads(json.dumps(cfg)), path.name)
                for built_from in (cfg, hf_config(arch)):
                    small = reduce_layers(built_from, 2)
                    config = transformers.AutoConfig.for_model(small.pop("model_type"), **small)
                    with torch.device("meta"):
                        m = transformers.AutoModelForCausalLM.from_config(config)
                    tied = m.get_input_embeddings().weight is m.get_output_embeddings().weight
                    assert tied is arch.tie_embeddings, (path.name, top, text)


def test_recommend_on_a_hybrid_config_says_how_its_linear_attention_was_sized():
    path = str(CONFIGS / "qwen3_5-defaults.json")
    r = invoke(["recommend", "--model", path, "--gpu", "rtx-4090", "--format", "json"])
    assert r.exit_code == 0, r.stderr
    out = r.stdout
    rec = json.loads(out)
    (lora,) = [c for c in rec["candidates"] if c["method"] == "lora"]
    assert "Gated DeltaNet" in json.dumps(lora) and "within -2.2%/+3.4%" in out
    (prefix,) = [c for c in rec["candidates"] if c["method"] == "prefix"]
    assert "prefix tuning fails" in json.dumps(prefix)
