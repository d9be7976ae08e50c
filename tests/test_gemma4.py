"""Gemma 4 read as transformers 5.17 builds it (core/gemma4.py, files/gemma4_config.py): layers of two attention
geometries, key-value sharing, per-layer inputs, experts beside the MLP, and the towers of its wrapper.

Whole-model counts against transformers' own build are in test_families.py (the records of
``data/counts/families_gemma4_2026-12-07.jsonl``); here the shapes are checked against hand arithmetic."""

from __future__ import annotations

import json
import pathlib

import pytest
from conftest import invoke, jsonl

from ftdecide.core.errors import InputError
from ftdecide.files.hfconfig import arch_from_hf_config, hf_config, reduce_layers

CONFIGS = pathlib.Path(__file__).resolve().parent.parent / "data" / "families" / "configs"
GEMMA4 = ["gemma4-defaults", "gemma4-31b-shape", "gemma4-e2b-shape", "gemma4-moe-shape"]


def _arch(name: str):
    return arch_from_hf_config(json.loads((CONFIGS / f"{name}.json").read_text()), name)


def test_a_two_layer_model_counted_by_hand():
    # layer 0 sliding (head width 8, one key-value head): q and o 16x16, k and v 16x8, q and k norms 8 each, MLP
    # 3x16x32, four norms of 16: 2,384; layer 1, the last, made full (head width 16): q and o 16x32, k and v 16x16,
    # norms 16 each, the same MLP and norms: 3,168; the tied embedding 100x16 and the final norm. transformers 5.17
    # builds 7,168 parameters from this config (Gemma4ForCausalLM on the meta device)
    cfg = {
        "model_type": "gemma4_text",
        "hidden_size": 16,
        "intermediate_size": 32,
        "num_hidden_layers": 2,
        "num_attention_heads": 2,
        "num_key_value_heads": 1,
        "head_dim": 8,
        "global_head_dim": 16,
        "vocab_size": 100,
        "hidden_size_per_layer_input": 0,
    }
    arch = arch_from_hf_config(cfg)
    assert (arch.sliding_layers, arch.num_layers - arch.sliding_layers) == (1, 1)
    assert arch.total_params() == 2384 + 3168 + 1600 + 16 == 7168


def test_the_31b_shape_averages_its_two_kinds_of_layer():
    a = _arch("gemma4-31b-shape")
    shapes = a.linear_shapes()
    # 50 sliding layers (32 heads of 256, 16 key-value heads), 10 full (heads of 512, 4 key-value heads, keys as values)
    q = 32 * (50 * 256 + 10 * 512) / 60
    assert shapes["q_proj"] == pytest.approx((5376, q, 1.0))
    assert shapes["k_proj"] == pytest.approx((5376, (50 * 16 * 256 + 10 * 4 * 512) / 60, 1.0))
    assert shapes["v_proj"] == pytest.approx((5376, 16 * 256, 50 / 60))  # the full layers have none
    assert shapes["o_proj"] == pytest.approx((q, 5376, 1.0))
    assert a.q_dim == pytest.approx(q)


def test_the_e2b_shape_shares_keys_and_widens_the_shared_layers_mlp():
    a = _arch("gemma4-e2b-shape")
    # 35 layers, every fifth full; the last 20 (layers 15-34) take earlier layers' keys: 4 of them full
    assert (a.sliding_layers, a.kv_shared_layers, a.kv_shared_global) == (28, 20, 4)
    shapes = a.linear_shapes()
    assert shapes["k_proj"] == pytest.approx((1536, (12 * 256 + 3 * 512) / 15, 15 / 35))
    assert shapes["gate_proj"] == pytest.approx((1536, 6144 * (35 + 20) / 35, 1.0))
    # per-layer inputs: a gate and a projection per layer, and the model's one projection onto all 35 x 256
    assert shapes["per_layer_model_projection"] == pytest.approx((1536, 35 * 256, 1 / 35))
    assert round(35 * 1536 * 35 * 256 / 35) == 1536 * 35 * 256


def test_the_moe_shape_runs_experts_beside_its_mlp():
    a = _arch("gemma4-moe-shape")
    assert a.is_moe and a.mlp_beside_experts and a.moe_layers == 30 and a.dense_layers == 0
    shapes = a.linear_shapes()
    assert {"gate_proj", "up_proj", "down_proj", "router.proj"} <= set(shapes)
    assert shapes["router.proj"] == (2816, 128, 1)
    # peft's all-linear adapts the router's projection, not the fused experts (as peft 0.21 wraps it)
    assert "router.proj" in a.resolve_targets("all-linear")
    assert not a.adapts_fused_experts(a.resolve_targets("all-linear"))


@pytest.mark.parametrize("name", GEMMA4)
def test_the_inverse_config_reads_back_to_the_same_model(name):
    a = _arch(name)
    b = arch_from_hf_config(hf_config(a), name)
    assert b.model_dump(exclude={"source"}) == a.model_dump(exclude={"source"})


@pytest.mark.parametrize("layers", [2, 7, 8, 12])
def test_a_smaller_copy_keeps_sources_for_its_shared_layers(layers):
    small = arch_from_hf_config(reduce_layers(hf_config(_arch("gemma4-e2b-shape")), layers))
    assert small.num_layers == layers
    # six layers of their own at least (transformers looks for each shared layer's source among them)
    assert small.kv_shared_layers == min(round(20 * layers / 35), max(0, layers - 6))


@pytest.mark.parametrize(
    "extra, said",
    [
        ({"enable_moe_block": True}, "needs num_experts, top_k_experts and moe_intermediate_size"),
        ({"num_kv_shared_layers": 40}, "'num_kv_shared_layers' 40 is more than num_hidden_layers 30"),
        ({"layer_types": ["full_attention"] * 3}, "'layer_types' must name"),
        ({"attention_k_eq_v": "yes"}, "'attention_k_eq_v' must be true or false"),
        ({"hidden_size_per_layer_input": -1}, "'hidden_size_per_layer_input' must be a whole number"),
    ],
)
def test_a_bad_gemma4_key_is_one_line_and_exit_2(tmp_path, extra, said):
    cfg = {"model_type": "gemma4", "text_config": extra}
    (tmp_path / "config.json").write_text(json.dumps(cfg))
    r = invoke(["estimate", "--model", str(tmp_path)])
    assert r.exit_code == 2 and said in r.stderr and len(r.stderr.strip().splitlines()) == 1
    with pytest.raises(InputError):
        arch_from_hf_config(cfg)


def test_a_tower_config_is_counted_and_its_bad_field_named():
    base = json.loads((CONFIGS / "gemma4-e2b-shape.json").read_text())
    no_towers = arch_from_hf_config({k: v for k, v in base.items() if not k.endswith("_config") or k == "text_config"})
    with_towers = _arch("gemma4-e2b-shape")
    assert with_towers.vision_params > 0 and with_towers.total_params() == no_towers.total_params() + with_towers.vision_params
    with pytest.raises(InputError, match="audio_config 'hidden_size' must be a positive whole number"):
        arch_from_hf_config({**base, "audio_config": {"hidden_size": 0}})


def test_what_a_gemma4_layer_saves_beyond_a_gemma3_one():
    """The CPU trace's terms (benchmarks/gemma4_trace.py) on the E2B-like shape: the value norm's fp32 input (4 B per
    key-value value, 307.2 on average: 28 layers of 1 x 256, 7 of 1 x 512), the per-layer inputs' 4 B per hidden and
    6 per input value under a frozen base (10 and 8 where it trains); outside the layers, their fp32 norm over all 35
    x 256 values (and the projection's input where the base trains)."""
    from ftdecide.core import gemma4

    a = _arch("gemma4-e2b-shape")
    assert gemma4.layer_bytes(a, False) == pytest.approx(4 * 307.2 + 4 * 1536 + 6 * 256)
    assert gemma4.layer_bytes(a, True) == pytest.approx(4 * 307.2 + 10 * 1536 + 8 * 256)
    assert gemma4.model_bytes(a, False) == 4 * 35 * 256
    assert gemma4.model_bytes(a, True) == 2 * 1536 + 8 * 35 * 256
    moe = _arch("gemma4-moe-shape")  # three norms and the router's in fp32, a bf16 copy per routed token, fp32 scores
    assert gemma4.layer_bytes(moe, False) == pytest.approx(4 * moe.kv_dim + 16 * 2816 + 2 * 2816 * 8 + 4 * 128)
    assert gemma4.layer_bytes(_arch("gemma4-moe-shape").model_copy(update={"global_head_dim": 0}), False) == 0.0


RUNS = pathlib.Path(__file__).resolve().parent.parent / "data" / "trainers" / "h100_gemma4_2026-12-07.jsonl"


def test_the_gemma4_runs_planned_before_they_ran():
    """The emitted TRL script on random Gemma 4 copies (H100, 2026-12-07; data/grids/gemma4_a.jsonl, each plan written
    before it ran). Planned with the other families' terms at the averaged widths, the six adapter runs were under by
    4.4-8.1%. With the trace's terms (taken on the CPU) and a checkpointed step's recompute at the widest layer, as the
    hybrids' is (neither fitted on these runs): within -5.1% / +1.2%. With sdpa's math kernel on the full-attention
    layers (read in torch's dispatch, not fitted; :func:`gemma4.math_attention`): -3.6% / +3.4%, a median 1.5%. The
    two full fine-tuning runs are over."""
    import sys

    sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent.parent / "benchmarks"))
    from fit_trainers import error

    recs = jsonl(RUNS)
    assert len(recs) == 8 and all(r["status"] == "ok" for r in recs)
    for r in recs:
        planned = r["planned_gib"] / r["peak_train_alloc_gib"] - 1
        if r["method"] == "full":
            assert 0.0 <= error(r) <= 0.20
        else:
            assert -0.082 <= planned <= -0.044 and planned < error(r)
            assert -0.037 <= error(r) <= 0.035
    adapters = [abs(error(r)) for r in recs if r["method"] != "full"]
    assert sorted(adapters)[2] <= 0.004 and max(adapters) <= 0.037


@pytest.mark.parametrize(
    "update, collation, per_token, per_key",
    [
        # every full-attention layer: 3 x 32 heads x 512 x 2 B, and 32 heads x 2 B a key, over the share of them
        pytest.param({}, "filled", 3 * 32 * 512 * 2.0, 32 * 2.0, id="grouped-wide-unmasked"),
        pytest.param({}, "padded", 0.0, 0.0, id="masked: transformers repeats, memory-efficient kernel"),
        pytest.param({"global_head_dim": 256}, "filled", 0.0, 0.0, id="flash takes 256"),
        pytest.param({"global_kv_heads": 32}, "filled", 0.0, 0.0, id="not grouped: memory-efficient kernel"),
    ],
)
def test_wide_grouped_heads_run_on_sdpas_math_kernel(update, collation, per_token, per_key):
    from ftdecide.core import gemma4
    from ftdecide.core.config import TrainConfig

    a = _arch("gemma4-31b-shape").model_copy(update=update)
    share = (a.num_layers - a.sliding_layers) / a.num_layers
    cfg = TrainConfig(method="lora", trainer="trl", batch_size=2, seq_len=1024, gradient_checkpointing=False, collation=collation)
    from ftdecide.core.collation import masked_sdpa

    assert gemma4.math_attention(a, masked_sdpa(a, cfg)) == pytest.approx((share * per_token, share * per_key))


def test_the_math_kernel_is_what_the_31b_like_run_missed():
    """gemma4_a:6 (the 31B-like shape at 8 layers, 2 of them full attention, LoRA 2 x 1024 without checkpointing) was
    0.635 GiB under: the math kernel's saved tensors in its two full layers are 2 x (2 x 32 x 1024^2 x 2 B of
    probabilities + 3 x 2048 tokens x 32 x 512 x 2 B of queries, keys and values) = 0.625 GiB, what the term adds.
    Its sliding layers' mask at 1,024 tokens, its window (masked from the window on, the window included), takes
    0.026 GiB of the 0.635."""
    import sys

    sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent.parent / "benchmarks"))
    from fit_trainers import config

    from ftdecide.core import gemma4
    from ftdecide.core.estimator import estimate_memory
    from ftdecide.probe.records import arch_of_trainer_record

    (r,) = [json.loads(x) for x in RUNS.read_text().splitlines() if '"gemma4_a:6"' in x]
    from ftdecide.core.calibration import DEFAULT

    arch, cfg = arch_of_trainer_record(r), config(r)
    with_term = estimate_memory(arch, cfg).peak_allocated_gib
    orig = gemma4.math_attention
    try:
        gemma4.math_attention = lambda a, masked: (0.0, 0.0)
        # a calibration object of its own: sizing remembers estimates per architecture and calibration object
        without = estimate_memory(arch, cfg, DEFAULT.with_constants()).peak_allocated_gib
    finally:
        gemma4.math_attention = orig
    assert with_term - without == pytest.approx(2 * (2 * 32 * 1024**2 * 2 + 3 * 2048 * 32 * 512 * 2) / 2**30, rel=1e-6)
    assert r["peak_train_alloc_gib"] - without == pytest.approx(0.609, abs=0.005)


def test_a_checkpointed_recompute_peaks_at_the_widest_layer():
    from ftdecide.core import gemma4

    a = _arch("gemma4-e2b-shape")
    w = gemma4.widest(a)
    # every layer a full-attention one with its own keys, the MLP twice as wide as the shared layers have it
    assert (w.sliding_layers, w.kv_shared_layers, w.intermediate_size) == (0, 0, 2 * 6144)
    assert w.q_dim == 8 * 512 and w.kv_dim == 1 * 512
    assert gemma4.widest(_arch("gemma4-31b-shape")).intermediate_size == 21504  # no sharing: no wider MLP
    assert gemma4.widest(w) is None  # layers all alike
    assert gemma4.widest_excess(w, (), 0.0, lambda arch, mods: 1.0) == 0.0
