import statistics

import pytest
from hypothesis import given, settings, strategies as st

from ftdecide import methods
from ftdecide.files import catalog
from ftdecide.core.calibration import DEFAULT as CAL
from ftdecide.core.estimator import CUDA_CONTEXT_GIB, GIB, TrainConfig, estimate_memory, memory_model, weight_bytes
from ftdecide.optimizers import optimizer_bytes
from ftdecide.files.hfconfig import arch_from_hf_config
from ftdecide.probe.records import config_from_record as cfg_of
from ftdecide.core import estimator
from ftdecide.core.throughput import kernels_per_step, step_seconds


def test_weights_by_method_hand_computed():
    a = catalog.resolve_model("llama-3.1-8b")
    n = 8_030_261_248
    assert weight_bytes(a, TrainConfig(method="full"), 0) == 2 * n
    assert weight_bytes(a, TrainConfig(method="full", precision="mixed"), 0) == 4 * n
    assert weight_bytes(a, TrainConfig(method="lora"), 41_943_040) == 2 * n + 4 * 41_943_040
    q = 32 * (4096 * 4096 * 2 + 4096 * 1024 * 2 + 3 * 4096 * 14336)  # every linear of the 32 layers
    assert a.quantizable_params() == q
    expected = q * 0.5 + q / 64 * (1 + 4 / 256) + (n - q) * 4 + 41_943_040 * 4
    assert weight_bytes(a, TrainConfig(method="qlora"), 41_943_040) == pytest.approx(expected)


def test_optimizer_states_hand_computed():
    a = catalog.resolve_model("qwen2.5-0.5b")
    n = a.total_params()
    assert optimizer_bytes(a, TrainConfig(method="full"), n, 2.0, ()) == 4 * n  # fused AdamW keeps bf16 states
    assert optimizer_bytes(a, TrainConfig(method="full", optimizer="sgd"), n, 2.0, ()) == 0
    small = 24 * (2 * 896 + 896 + 128 + 128) + 896  # norms and q/k/v biases: < 4096 values each, fp32 states
    big = n - small
    assert optimizer_bytes(a, TrainConfig(method="full", optimizer="adamw8bit"), n, 2.0, ()) == pytest.approx(
        big * (2 + 8 / 256) + small * 8
    )


def test_required_adds_context_and_headroom():
    e = estimate_memory(catalog.resolve_model("llama-3.1-8b"), TrainConfig(method="lora"))
    logits_block = 128256 * 2048 * 4 / GIB  # fp32 logits of one 2048-token sequence
    assert e.required_gib == pytest.approx(
        e.peak_allocated_gib * (1 + CAL.allocator_headroom) + CUDA_CONTEXT_GIB + CAL.logits_block_headroom * logits_block
    )
    assert sum(e.breakdown.values()) == pytest.approx(e.peak_allocated_gib)


def test_lora_trainable_params_equal_peft_counts(runs):
    """LoRA, QLoRA and DoRA (its magnitude vectors too): the trainable count peft reported on the device."""
    seen = 0
    for d in runs:
        if not cfg_of(d).method_spec.adapter:
            continue
        a = arch_from_hf_config(d["hf_config"], d["arch"])
        assert estimate_memory(a, cfg_of(d)).trainable_params == d["trainable_params"], d
        seen += 1
    assert seen > 150


def test_sharding_divides_states_and_adds_the_layers_in_flight():
    """Over N GPUs each holds 1/N of the weights; what FSDP2 holds unsharded comes by moment: in forward
    fsdp_fwd_layers decoder layers in bf16; in backward fsdp_bwd_layers more (and fsdp_grad_layers of
    gradients where the base trains); at the end of backward fsdp_root_grad times the root's gradients in bf16
    and the reduce dtype (bf16 here: 4 B per parameter) and fsdp_end_layers layers' parameters and gradients.
    A frozen base takes the emitted launch's layout (fsdp_frozen_layers, and the head's unit in forward)."""
    a = catalog.resolve_model("llama-3.1-70b")
    one = estimate_memory(a, TrainConfig(method="full", seq_len=1024))
    cfg = TrainConfig(method="full", seq_len=1024, gpus=8)
    eight = estimate_memory(a, cfg)
    root = 2 * 128256 * 8192  # Llama-3.1-70B: untied embeddings and head
    layer = (a.total_params() - root) / 80
    assert eight.breakdown["weights"] == pytest.approx(one.breakdown["weights"] / 8)
    assert any("FSDP" in n for n in eight.notes)
    mm = memory_model(a, cfg)
    assert mm.gathered == pytest.approx(CAL.fsdp_fwd_layers * 2 * layer)
    assert mm.bwd_gathered == pytest.approx(CAL.fsdp_bwd_layers * 2 * layer + CAL.fsdp_grad_layers * 2 * layer)
    assert mm.end_gathered == pytest.approx(CAL.fsdp_root_grad * 4 * root + CAL.fsdp_end_layers * 4 * layer)
    p = mm.phases(1024, 1, True)
    assert p["end"] == pytest.approx(mm.grads + mm.end_gathered + p["recompute"])
    assert mm.fwd_gathered == 0.0
    lora = memory_model(a, TrainConfig(method="lora", seq_len=1024, gpus=8))
    # a frozen base, as accelerate shards it: layers gathered through the step, and in forward the head's own
    # unit (the head and the final norm, bf16), which no gradient follows
    assert lora.gathered == pytest.approx(CAL.fsdp_frozen_layers * 2 * layer)
    assert lora.bwd_gathered == 0.0
    assert lora.fwd_gathered == pytest.approx(2 * (128256 * 8192 + 8192))
    assert lora.end_gathered == pytest.approx(CAL.fsdp_end_layers * 2 * layer)
    p = lora.phases(1024, 1, True)
    assert p["forward"] >= p["act"] + p["logits"] + lora.gathered + lora.fwd_gathered
    assert p["backward"] >= p["act"] + p["logits"] + lora.gathered and p["end"] < p["forward"]
    # tied: the unit is the embedding the head shares (Llama-3.2-1B: 128256 x 2048)
    small = catalog.resolve_model("llama-3.2-1b")
    tied = memory_model(small, TrainConfig(method="lora", seq_len=1024, gpus=2))
    assert tied.fwd_gathered == pytest.approx(2 * (128256 * 2048 + 2048))
    # and where it trains, that embedding is gathered through the whole step, beside the layers in flight
    unit = 2 * (128256 * 2048 + 2048)
    full = memory_model(small, TrainConfig(method="full", seq_len=1024, gpus=2))
    one_layer = (small.total_params() - 128256 * 2048) / 16
    assert full.gathered == pytest.approx(CAL.fsdp_fwd_layers * 2 * one_layer + unit) and full.fwd_gathered == 0.0


def _errors(rows):
    out = []
    for d in rows:
        if d["status"] == "ok":
            e = estimate_memory(arch_from_hf_config(d["hf_config"], d["arch"]), cfg_of(d))
            out.append(e.peak_allocated_gib / d["peak_alloc_gib"] - 1)
    return out


def test_calibration_file_error_bound_and_ooms():
    from conftest import load_runs

    calib = [d for d in load_runs() if d.get("src") == "calibration"]
    if not calib:
        pytest.skip("shared/calibration is not beside this checkout")
    errs = _errors(calib)
    assert statistics.median(abs(e) for e in errs) <= 0.10
    for d in calib:
        if d["status"] == "oom":
            e = estimate_memory(arch_from_hf_config(d["hf_config"], d["arch"]), cfg_of(d))
            assert e.required_gib > 80 * 1e9 / GIB, d


def test_all_measured_runs_error_bounds(runs):
    errs = _errors(runs)
    assert len(errs) >= 300
    assert statistics.median(abs(e) for e in errs) <= 0.10
    # not every run: a step bound by the CPU's kernel launches takes 20-43 us per kernel depending on the
    # host the device tool lent (docs/accuracy.md), which the model cannot know
    assert sum(abs(e) <= 0.25 for e in errs) / len(errs) >= 0.90


def test_kernel_counts_against_profiled_steps(runs):
    """Kernels per step from the architecture against what torch.profiler counted (44 profiled steps)."""
    errs = [
        kernels_per_step(arch_from_hf_config(d["hf_config"], d["arch"]), cfg_of(d)) / d["profile"]["kernels"] - 1
        for d in runs
        if "profile" in d
    ]
    assert len(errs) >= 40
    assert statistics.median(abs(e) for e in errs) <= 0.05
    assert max(abs(e) for e in errs) <= 0.20


def test_kernel_count_hand_computed():
    """llama-3.1-8b LoRA on q and v, checkpointing on: 32 layers x 3 passes x (layer + 2 adapters) + fixed."""
    k = CAL.kernels
    a = catalog.resolve_model("llama-3.1-8b")
    n = kernels_per_step(a, TrainConfig(method="lora", lora_targets="qv", gradient_checkpointing=True))
    assert n == pytest.approx(k.fixed + 32 * 3 * (k.layer_pass + 2 * k.adapter_pass))
    full = kernels_per_step(a, TrainConfig(method="full", optimizer="adafactor", gradient_checkpointing=False))
    assert full == pytest.approx(k.fixed + 32 * 2 * k.layer_pass + 32 * k.full_layer + k.adafactor_tensor * a.param_tensors())


@settings(max_examples=60, deadline=None)
@given(
    st.sampled_from(["qwen2.5-0.5b", "llama-3.1-8b", "gemma-2-2b", "phi-3-mini", "qwen1.5-moe-a2.7b"]),
    st.sampled_from(list(methods.names())),
    st.integers(16, 8192),
    st.integers(1, 16),
    st.booleans(),
)
def test_step_time_combines_gpu_and_cpu(model, method, seq, batch, gc):
    """The step is at least its longer stream and at most both in series; more tokens never make it shorter."""
    a = catalog.resolve_model(model)
    cfg = TrainConfig(method=method, seq_len=seq, batch_size=batch, gradient_checkpointing=gc)
    s = step_seconds(a, cfg, 989.0, 3350.0)
    gpu = s["matmul"] + s["memory"]
    assert max(gpu, s["launch"]) <= s["total"] * (1 + 1e-12) and s["total"] <= (gpu + s["launch"]) * (1 + 1e-12)
    more = step_seconds(a, TrainConfig(method=method, seq_len=seq, batch_size=batch + 1, gradient_checkpointing=gc), 989.0, 3350.0)
    assert more["total"] >= s["total"]


@pytest.mark.parametrize(
    "method, targets, gc", [("lora", "all-linear", True), ("qlora", "all-linear", False), ("dora", "attn", True), ("lora", "qv", False)]
)
def test_each_adapted_linear_moves_its_widths_in_step_time(method, targets, gc):
    """Beside each adapted linear, every pass (2, 3 with checkpointing) runs memory-bound kernels over its input and
    output per token: ``lora_io_bytes`` per value. Llama-3.2-1B (hidden 2,048, 8 key-value heads of 64, MLP 8,192):
    q and o 2,048 + 2,048, k and v 2,048 + 512, gate and up 2,048 + 8,192, down 8,192 + 2,048; 16 layers."""
    a = catalog.resolve_model("llama-3.2-1b")
    cfg = TrainConfig(method=method, lora_targets=targets, seq_len=1024, batch_size=4, gradient_checkpointing=gc)
    mods = cfg.method_spec.adapted_modules(a, cfg)
    widths = {"q_proj": 4096, "k_proj": 2560, "v_proj": 2560, "o_proj": 4096, "gate_proj": 10240, "up_proj": 10240, "down_proj": 10240}
    expected = CAL.lora_io_bytes * sum(widths[m] for m in mods) * 16 * (3 if gc else 2) * 4096
    assert cfg.method_spec.step_traffic_bytes(a, cfg, mods, CAL) == pytest.approx(expected)
    without = step_seconds(a, cfg, 989.0, 3350.0, CAL.with_constants(lora_io_bytes=0.0))
    assert step_seconds(a, cfg, 989.0, 3350.0)["memory"] - without["memory"] == pytest.approx(expected / 3350e9)


def test_qlora_saves_every_4bit_linear_input():
    """bitsandbytes saves the bf16 input of each 4-bit linear, adapted or not: QLoRA on the MLP of
    llama-3.1-8b keeps 2 B x (q, k, v: 3 x 4096; o: 4096; gate, up: 2 x 4096; down: 14336) per token
    and layer more than the same layer without that term."""
    a = catalog.resolve_model("llama-3.1-8b")
    cfg = TrainConfig(method="qlora", lora_targets="mlp")
    mods = a.resolve_targets("mlp")
    with_term = estimator._layer_terms(a, cfg, mods, CAL)[0]
    without = estimator._layer_terms(a, cfg, mods, CAL.with_constants(qlora_input_bytes=0.0))[0]
    assert with_term - without == pytest.approx(2 * (3 * 4096 + 4096 + 2 * 4096 + 14336))


small_models = st.sampled_from(["qwen2.5-0.5b", "llama-3.2-1b", "gemma-2-2b", "mistral-7b", "phi-3-mini", "qwen1.5-moe-a2.7b"])


@settings(max_examples=60, deadline=None)
@given(small_models, st.sampled_from(list(methods.names())), st.integers(16, 8192), st.integers(1, 16), st.booleans(), st.integers(1, 128))
def test_monotone_and_finite(model, method, seq, batch, gc, rank):
    a = catalog.resolve_model(model)
    gc = gc and methods.get(method).supports_checkpointing  # prefix tuning trains without it
    base = dict(method=method, seq_len=seq, batch_size=batch, gradient_checkpointing=gc, lora_rank=rank, virtual_tokens=min(20, seq))
    e = estimate_memory(a, TrainConfig(**base))
    assert e.peak_allocated_gib > 0 and e.peak_allocated_gib == e.peak_allocated_gib
    assert all(v >= 0 for v in e.breakdown.values())
    assert estimate_memory(a, TrainConfig(**{**base, "seq_len": seq * 2})).peak_allocated_gib >= e.peak_allocated_gib
    assert estimate_memory(a, TrainConfig(**{**base, "batch_size": batch + 1})).peak_allocated_gib >= e.peak_allocated_gib
    assert estimate_memory(a, TrainConfig(**{**base, "lora_rank": rank * 2})).peak_allocated_gib >= e.peak_allocated_gib


@settings(max_examples=40, deadline=None)
@given(small_models, st.integers(128, 8192), st.integers(1, 8), st.booleans())
def test_qlora_le_lora_le_full(model, seq, batch, gc):
    a = catalog.resolve_model(model)
    est = {
        m: estimate_memory(a, TrainConfig(method=m, seq_len=seq, batch_size=batch, gradient_checkpointing=gc))
        for m in ("full", "lora", "qlora")
    }
    static = {m: e.breakdown["weights"] + e.breakdown["optimizer"] for m, e in est.items()}
    # Weights and optimizer states always order QLoRA <= LoRA <= full for the same shape.
    assert static["lora"] <= static["full"]
    if a.quantizable_params() > 0.8 * a.total_params():
        assert static["qlora"] <= static["lora"]
    # The peak orders the same way while the static part dominates. (With long sequences and no
    # checkpointing it need not: QLoRA saves each linear's input and an fp32 residual stream - measured:
    # Qwen2.5-0.5B, 1024x4 tokens, 17.29 GiB QLoRA vs 14.52 GiB LoRA.)
    if gc and seq * batch <= 4096:
        p = {m: e.peak_allocated_gib for m, e in est.items()}
        assert p["lora"] <= p["full"] + 1e-6
        if a.quantizable_params() > 0.8 * a.total_params():
            assert p["qlora"] <= p["lora"] + 1e-6


def test_dora_measured_runs_within_the_lora_bounds(runs):
    """DoRA (49 runs on an H200, data/measurements/h200_dora_2026-11-29.jsonl, and one held out in
    h200_multigpu_single_2026-11-29.jsonl): peak memory median error <= 3%, no under-estimate worse than
    -7% (the held-out Mistral-7B run is -6.7%; the 49 fitted runs stay above -5%), and fits/OOM agreement
    on every run against its own card; tokens/s median <= 10% at the H200's catalog figures."""
    from ftdecide.files.catalog import resolve_gpu
    from ftdecide.core.throughput import tokens_per_second

    dora = [d for d in runs if d["method"] == "dora"]
    assert len(dora) >= 45
    errs = _errors(dora)
    assert statistics.median(abs(e) for e in errs) <= 0.03
    assert min(errs) >= -0.07
    assert min(_errors([d for d in dora if "note" not in d])) >= -0.05
    for d in dora:
        e = estimate_memory(arch_from_hf_config(d["hf_config"], d["arch"]), cfg_of(d))
        assert (e.required_gib <= d["software"]["gpu_total_gib"]) == (d["status"] == "ok"), d
    h200 = resolve_gpu("h200")
    t = [
        tokens_per_second(arch_from_hf_config(d["hf_config"], d["arch"]), cfg_of(d), h200.bf16_tflops, h200.memory_bandwidth_gbs)
        / d["tokens_per_s"]
        - 1
        for d in dora
        if d["status"] == "ok"
    ]
    assert statistics.median(abs(e) for e in t) <= 0.10
    assert sum(abs(e) <= 0.25 for e in t) / len(t) >= 0.85


def test_dora_costs_more_than_lora_and_mostly_without_checkpointing():
    """The magnitude's kept results add up over every layer without checkpointing; with it one layer's."""
    a = catalog.resolve_model("llama-3.1-8b")
    # measured: llama-3.2-1b 1024x4 without checkpointing 16.76 GiB LoRA, 24.32 DoRA; qwen2.5-1.5b 2048x2
    # with it 10.45 and 10.46
    for gc, low, high in ((True, -0.02, 0.10), (False, 0.40, 1.50)):
        lora = estimate_memory(a, TrainConfig(method="lora", seq_len=1024, batch_size=2, gradient_checkpointing=gc)).peak_allocated_gib
        dora = estimate_memory(a, TrainConfig(method="dora", seq_len=1024, batch_size=2, gradient_checkpointing=gc)).peak_allocated_gib
        assert low <= dora / lora - 1 <= high, (gc, lora, dora)
