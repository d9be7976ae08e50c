"""Time of one training step, and tokens per second: pure arithmetic, no I/O.

A step is modelled as the sum of what bounds its parts on the GPU:

``matmul``
    training FLOPs (:func:`train_flops_per_token` x tokens) at ``util`` of the card's dense bf16 peak.
    ``util`` is per method (:data:`UTIL`): the tensor-core efficiency of the big matrix products.
``memory``
    memory-bound kernels (norms, rotary embeddings, activation functions, dropout, LoRA's adds, casts,
    the loss) at the card's bandwidth: ``k_act`` passes over the bytes of one fully materialised layer per
    token (the estimator's own figure; 1.5 x with checkpointing, which redoes the forward), ``k_logits``
    passes over the fp32 logits, ``k_eager`` over the s x s scores of eager attention, and ``k_state``
    passes over the weights and optimizer states of full fine-tuning (the optimizer step reads and
    writes all of them).
``launch``
    fixed per-kernel costs that do not shrink with fewer tokens: per layer, per LoRA adapter, per
    4-bit linear and pass (QLoRA dequantises every linear in forward, backward and recompute), per
    MoE expert (transformers loops over experts), and per parameter tensor for the optimizers that loop
    over tensors (Adafactor, SGD, AdamW8bit).

The constants were fitted (``benchmarks/fit_throughput.py``, log-error least squares) on the measured
steps of the runs in ``data/measurements`` (H100 SXM); ``benchmarks/accuracy.py`` reports the error.
Figures for other GPUs scale by their datasheet peak and bandwidth, which assumes the same kernel
efficiency; multi-GPU runs are assumed to scale linearly (no communication time).
"""

from __future__ import annotations

from dataclasses import dataclass

from .arch import Arch
from .estimator import TrainConfig, memory_model

# Tensor-core utilisation of the matrix products, per method (fitted, H100). Full fine-tuning's big
# bf16 GEMMs run near the practical peak; LoRA and QLoRA lose some to the small adapter products and to
# bitsandbytes' dequantised GEMMs; fp32 master weights add casts that the memory term does not see.
UTIL = {"full_bf16": 0.80, "full_mixed": 0.80, "lora": 0.616, "qlora": 0.664}


@dataclass(frozen=True)
class StepConstants:
    k_act: float = 16.108  # passes over one materialised layer's bytes per token
    k_logits: float = 7.715  # passes over the fp32 logits (bf16 logits, upcast, log-softmax, its backward)
    k_eager: float = 13.681  # passes over eager attention's bf16 scores
    k_state: float = 3.896  # passes over full fine-tuning's weights and optimizer states
    layer_ms: float = 1.284  # per decoder layer and step
    adapter_ms: float = 0.211  # per LoRA adapter and step
    qlinear_ms: float = 0.107  # per 4-bit linear and pass
    expert_ms: float = 0.052  # per MoE expert and layer
    # Optimizers that loop over parameter tensors: transformers' Adafactor (in Python, about 10 kernels
    # per tensor): the median of 6 measured runs (0.24-0.82 ms; data/grids/optimizers.jsonl); torch SGD
    # (foreach, not fused): one measured run; bitsandbytes' AdamW8bit (one kernel launch per tensor from
    # Python): the median of its 19 measured runs, which the fused-AdamW model had all predicted too fast.
    adafactor_tensor_ms: float = 0.56
    sgd_tensor_ms: float = 0.21
    adamw8bit_tensor_ms: float = 0.16


STEP = StepConstants()


def train_flops_per_token(arch: Arch, method: str, seq_len: int, gc: bool) -> float:
    """Training FLOPs per token: 6N for full FT (forward 2N, backward 4N), 4N for LoRA/QLoRA (frozen
    weights need no weight gradient), +2N when checkpointing recomputes the forward, plus causal
    attention (about 6 * layers * seq * q_dim). N counts active parameters (MoE: routed experts)."""
    n = arch.active_params()
    f = (6.0 if method == "full" else 4.0) * n + (2.0 * n if gc else 0.0)
    return f + 6.0 * arch.num_layers * seq_len * arch.q_dim


def util_key(cfg: TrainConfig) -> str:
    if cfg.method == "full":
        return "full_mixed" if cfg.precision == "mixed" else "full_bf16"
    return cfg.method


def step_seconds(arch: Arch, cfg: TrainConfig, tflops: float, bandwidth_gbs: float, k: StepConstants = STEP) -> dict[str, float]:
    """Seconds of one micro-batch step of ``cfg`` on a GPU of ``tflops`` dense bf16 TFLOPS and
    ``bandwidth_gbs`` GB/s, by part (``matmul``, ``memory``, ``launch``) and ``total``."""
    tokens = cfg.seq_len * cfg.batch_size
    gc = cfg.gradient_checkpointing
    flops = train_flops_per_token(arch, cfg.method, cfg.seq_len, gc) * tokens
    matmul = flops / (tflops * 1e12 * UTIL[util_key(cfg)])
    mods: tuple[str, ...] = arch.resolve_targets(cfg.lora_targets) if cfg.method != "full" else ()
    mm = memory_model(arch, cfg)
    traffic = k.k_act * mm.layer_bytes(cfg.seq_len) * arch.num_layers * tokens * (1.5 if gc else 1.0)
    traffic += k.k_logits * 4.0 * arch.vocab_size * tokens
    if arch.attention == "eager":
        traffic += k.k_eager * 2.0 * arch.num_layers * arch.num_heads * cfg.seq_len * tokens
    if cfg.method == "full":
        traffic += k.k_state * (mm.weights + mm.opt_gpu)
    memory = traffic / (bandwidth_gbs * 1e9)
    L = arch.num_layers
    ms = L * k.layer_ms + len(mods) * L * k.adapter_ms
    if cfg.method == "qlora":
        linears = sum(n for _, _, n in arch.linear_shapes().values()) * L
        ms += k.qlinear_ms * linears * (3 if gc else 2)
    if arch.is_moe:
        ms += k.expert_ms * arch.num_experts * L
    per_tensor = {"adafactor": k.adafactor_tensor_ms, "sgd": k.sgd_tensor_ms, "adamw8bit": k.adamw8bit_tensor_ms}.get(cfg.optimizer, 0.0)
    ms += per_tensor * (arch.param_tensors() if cfg.method == "full" else 2 * len(mods) * L)
    launch = ms / 1e3
    return {"matmul": matmul, "memory": memory, "launch": launch, "total": matmul + memory + launch}


def tokens_per_second(arch: Arch, cfg: TrainConfig, tflops: float, bandwidth_gbs: float) -> float:
    """Training tokens per second of one GPU (see :func:`step_seconds`)."""
    return cfg.seq_len * cfg.batch_size / step_seconds(arch, cfg, tflops, bandwidth_gbs)["total"]
