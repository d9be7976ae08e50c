"""Time of one training step, and tokens per second: pure arithmetic, no I/O.

A step is two streams that run side by side: the GPU executes kernels while the CPU (Python, autograd,
the dispatcher) launches the next ones. Whichever is longer bounds the step:

``gpu``
    ``matmul``: the linear layers' training FLOPs (:func:`train_flops_per_token` x tokens, less
    attention) at ``util`` of the card's dense bf16 peak, per method (:data:`UTIL`): the tensor-core
    efficiency of the big matrix products; and causal attention's FLOPs at ``attn_util`` (flash
    attention's backward runs well below the GEMMs' efficiency; recomputed once more with
    checkpointing). ``memory``: the memory-bound kernels (norms, rotary embeddings, activation
    functions, dropout, LoRA's adds, casts, the loss) at the card's bandwidth: ``k_act`` passes over
    the bytes of one fully materialised layer per token (the estimator's own figure; 1.5 x with
    checkpointing, which redoes the forward), ``k_logits`` passes over the fp32 logits, ``k_eager``
    over the s x s scores of eager attention, ``k_fused`` over the outputs of fused projections (Phi-3's
    qkv_proj and gate_up_proj: chunk() leaves strided halves, whose elementwise kernels run unvectorised),
    ``k_state`` passes over the weights and optimizer states of full fine-tuning, and ``k_8bit`` for
    bitsandbytes' 8-bit AdamW kernel per trainable parameter.
``cpu``
    the kernels the step launches (:func:`kernels_per_step`, counted from the architecture) at
    ``kernel_us`` each, plus the Python loop per parameter tensor of the optimizers that have one
    (bitsandbytes' AdamW8bit, torch's SGD). Small models, short sequences, many LoRA adapters, MoE
    expert loops and 4-bit linears make the CPU the bound: profiled steps of such runs keep the GPU
    busy for a third of the step or less (``benchmarks/device_diagnose.py``).

The two combine as ``(gpu^p + cpu^p)^(1/p)``: ``p`` = 1 would add them (no overlap), a large ``p``
takes the larger (perfect overlap); the fitted value sits between, since synchronisations (the loss,
the optimizer) drain the launch queue a few times per step.

Kernel counts were fitted to the kernels torch.profiler recorded in 62 profiled steps (the records
with a ``profile`` in ``data/measurements``), which do not depend on the host; the time constants
were fitted (``benchmarks/fit_throughput.py``, log-error least squares) on the measured steps of the
runs in ``data/measurements`` (H100 SXM); ``benchmarks/accuracy.py`` reports the error. Figures for
other GPUs scale by their datasheet peak and bandwidth, which assumes the same kernel efficiency and a
host CPU like the ones measured (20-43 us per launched kernel on the device hosts; a CPU-bound step
moves with the host by as much); multi-GPU runs are assumed to scale
linearly (no communication time).
"""

from __future__ import annotations

from dataclasses import dataclass

from .arch import Arch
from .estimator import TrainConfig, memory_model

# Tensor-core utilisation of the matrix products, per method (fitted, H100). Full fine-tuning's big
# bf16 GEMMs run near the practical peak; LoRA and QLoRA lose some to the small adapter products and to
# bitsandbytes' dequantised GEMMs; fp32 master weights add casts that the memory term does not see.
UTIL = {"full_bf16": 0.80, "full_mixed": 0.79, "lora": 0.586, "qlora": 0.539}


@dataclass(frozen=True)
class KernelCounts:
    """Kernels launched per step (forward, backward, optimizer), by what launches them. A pass is one
    run over a layer: forward and backward make 2, checkpointing's recompute a third."""

    layer_pass: float = 47.84  # norms, projections, rotary, attention, MLP, residual adds
    eager_layer_pass: float = 23.96  # eager attention's extra ops (softcap, mask, softmax, dropout)
    adapter_pass: float = 10.68  # one LoRA adapter: dropout, A, B, scale, add
    qlinear_pass: float = 4.72  # one 4-bit linear: dequantise, matmul
    expert_pass: float = 1.01  # one MoE expert in transformers' loop over experts
    full_layer: float = 34.13  # full fine-tuning's weight gradients and casts
    adafactor_tensor: float = 24.11  # transformers' Adafactor: its Python loop of factored updates per tensor
    fixed: float = 309.92  # embeddings, loss, logits, fused AdamW's multi-tensor kernels


@dataclass(frozen=True)
class StepConstants:
    k_act: float = 13.428  # passes over one materialised layer's bytes per token
    k_logits: float = 6.952  # passes over the fp32 logits (bf16 logits, upcast, log-softmax, its backward)
    k_eager: float = 6.6  # passes over eager attention's bf16 scores
    k_state: float = 1.358  # passes over full fine-tuning's weights and optimizer states
    k_fused: float = 25.331  # passes over the halves of fused projections (Phi-3), which chunk() leaves strided
    attn_util: float = 0.328  # tensor-core utilisation of flash attention's products
    # bitsandbytes' blockwise 8-bit AdamW kernel runs far below the card's bandwidth (profiled: 108 ms for
    # Phi-3-mini's 3.8B fp32 weights, about 95 B/parameter at 3.35 TB/s): its cost per trainable
    # parameter of full fine-tuning, in passes over 4 bytes
    k_8bit: float = 30.641
    kernel_us: float = 24.935  # CPU time per launched kernel
    overlap_p: float = 2.022  # how GPU and CPU time combine (see the module docstring)
    # Python loops per parameter tensor beyond the kernels: bitsandbytes' AdamW8bit (one launch and its
    # bookkeeping per tensor), torch SGD (foreach, not fused; one measured run).
    adamw8bit_tensor_ms: float = 0.011
    sgd_tensor_ms: float = 0.21


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


KERNELS = KernelCounts()


def kernels_per_step(arch: Arch, cfg: TrainConfig, kc: KernelCounts = KERNELS) -> float:
    """Kernels one training step launches (forward, backward and optimizer), counted from the layers,
    adapters, 4-bit linears, experts and parameter tensors of ``cfg`` on ``arch``."""
    return _kernels(arch, cfg, _adapted(arch, cfg), kc)


def _adapted(arch: Arch, cfg: TrainConfig) -> tuple[str, ...]:
    return arch.resolve_targets(cfg.lora_targets) if cfg.method != "full" else ()


def _kernels(arch: Arch, cfg: TrainConfig, mods: tuple[str, ...], kc: KernelCounts) -> float:
    L = arch.num_layers
    passes = 3 if cfg.gradient_checkpointing else 2
    per_layer = kc.layer_pass + len(mods) * kc.adapter_pass
    if arch.attention == "eager":
        per_layer += kc.eager_layer_pass
    if cfg.method == "qlora":
        per_layer += kc.qlinear_pass * sum(n for _, _, n in arch.linear_shapes().values())
    if arch.is_moe:
        per_layer += kc.expert_pass * arch.num_experts
    n = kc.fixed + L * passes * per_layer
    if cfg.method == "full":
        n += kc.full_layer * L
    if cfg.optimizer == "adafactor":
        n += kc.adafactor_tensor * _trainable_tensors(arch, cfg, mods)
    return n


def _trainable_tensors(arch: Arch, cfg: TrainConfig, mods: tuple[str, ...]) -> int:
    return arch.param_tensors() if cfg.method == "full" else 2 * len(mods) * arch.num_layers


def step_seconds(arch: Arch, cfg: TrainConfig, tflops: float, bandwidth_gbs: float, k: StepConstants = STEP,
                 kc: KernelCounts = KERNELS) -> dict[str, float]:
    """Seconds of one micro-batch step of ``cfg`` on a GPU of ``tflops`` dense bf16 TFLOPS and
    ``bandwidth_gbs`` GB/s, by part: ``matmul`` and ``memory`` (GPU), ``launch`` (CPU), and ``total``."""
    tokens = cfg.seq_len * cfg.batch_size
    gc = cfg.gradient_checkpointing
    recompute = 1.5 if gc else 1.0  # checkpointing runs the forward (a third of forward + backward) again
    peak = tflops * 1e12
    attn = 6.0 * arch.num_layers * cfg.seq_len * arch.q_dim * tokens  # the attention share of train_flops_per_token
    linear = train_flops_per_token(arch, cfg.method, cfg.seq_len, gc) * tokens - attn
    matmul = linear / (peak * UTIL[util_key(cfg)]) + attn * (4.0 / 3.0 if gc else 1.0) / (peak * k.attn_util)
    mm = memory_model(arch, cfg)
    traffic = k.k_act * mm.layer_bytes(cfg.seq_len) * arch.num_layers * tokens * recompute
    traffic += k.k_logits * 4.0 * arch.vocab_size * tokens
    if arch.attention == "eager":
        traffic += k.k_eager * 2.0 * arch.num_layers * arch.num_heads * cfg.seq_len * tokens
    if arch.fused_qkv:
        shapes = arch.linear_shapes()
        fused_out = shapes["qkv_proj"][1] + (shapes["gate_up_proj"][1] if "gate_up_proj" in shapes else 0)
        traffic += k.k_fused * 2.0 * fused_out * arch.num_layers * tokens * recompute
    if cfg.method == "full":
        traffic += k.k_state * (mm.weights + mm.opt_gpu)
        if cfg.optimizer == "adamw8bit":
            traffic += k.k_8bit * 4.0 * mm.trainable_params
    memory = traffic / (bandwidth_gbs * 1e9)
    mods = _adapted(arch, cfg)
    launch = _kernels(arch, cfg, mods, kc) * k.kernel_us / 1e6
    per_tensor = {"sgd": k.sgd_tensor_ms, "adamw8bit": k.adamw8bit_tensor_ms}.get(cfg.optimizer, 0.0)
    launch += per_tensor * _trainable_tensors(arch, cfg, mods) / 1e3
    p = k.overlap_p
    gpu = matmul + memory
    return {"matmul": matmul, "memory": memory, "launch": launch, "total": (gpu ** p + launch ** p) ** (1.0 / p)}


def tokens_per_second(arch: Arch, cfg: TrainConfig, tflops: float, bandwidth_gbs: float) -> float:
    """Training tokens per second of one GPU (see :func:`step_seconds`)."""
    return cfg.seq_len * cfg.batch_size / step_seconds(arch, cfg, tflops, bandwidth_gbs)["total"]
