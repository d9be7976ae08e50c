"""Peak GPU memory of one fine-tuning configuration: pure arithmetic, no I/O.

The estimate models what ``torch.cuda.max_memory_allocated()`` reports over a few training steps of the
Hugging Face stack (the recipe of ``shared/calibration/README.md``: transformers + sdpa attention, bf16
autocast, fused AdamW or bitsandbytes AdamW8bit, peft LoRA with fp32 adapters, QLoRA through
``prepare_model_for_kbit_training``), then adds what the card must hold beyond it.

All sizes are bytes inside the functions and GiB (2**30 bytes) in :class:`MemoryEstimate`.

Terms (each is a key of ``MemoryEstimate.breakdown``)
-----------------------------------------------------
``weights``
    full bf16: 2 B/param; full mixed: 4 B/param (fp32 master weights); LoRA: 2 B/param for the frozen
    base plus 4 B/param for the fp32 adapters; QLoRA: 0.5 B/param for every quantized linear (NF4), plus
    its quantization constants (one 8-bit absmax per 64 weights and one fp32 per 256 absmax with double
    quantization, 4 B per 64 weights without), plus 4 B/param for every other parameter (embeddings,
    norms, head: ``prepare_model_for_kbit_training`` casts them to fp32), plus the adapters.
``gradients``
    one gradient per trainable parameter in its dtype (bf16: 2 B, fp32: 4 B). With ``set_to_none`` the
    gradients live only from backward to ``zero_grad``, so they enter the peak through the phases below.
``optimizer``
    AdamW: two states in the parameter dtype (fused AdamW keeps bf16 states for bf16 parameters);
    AdamW8bit: 2 B/param plus an fp32 absmax per 256 values for tensors of >= 4096 values (bitsandbytes'
    ``min_8bit_size``), fp32 states for smaller ones; SGD without momentum: none; Adafactor: factored
    second moments, 4 B per row and per column of every matrix.
``activations``
    what autograd saves during the forward pass, per token. Without checkpointing, per layer
    ``a_h*h + a_q*q_dim + a_kv*kv_dim + a_i*i`` bytes (i: the MLP width a token passes through; MoE: its
    routed experts and the shared expert), plus ``a_e*heads*seq`` where attention runs eagerly (Gemma 2's
    softcapping: the s x s probabilities), plus for LoRA with dropout > 0 a dropout copy and mask of
    every targeted module's input (3 B per input value), or with dropout 0 the inputs of targeted
    o_proj/down_proj, which a frozen layer would not otherwise keep. With gradient checkpointing, each
    layer keeps only its input (``g*h``: 2 B in bf16, about 4 B where the residual stream is fp32: mixed
    precision and QLoRA's fp32 embeddings), and backward recomputes one layer at a time. The
    coefficients (bytes per value) were fitted by least squares (saved bytes after forward, then the
    phase peaks, under-estimates weighted 3x) on the measured runs in
    ``data/measurements`` and are stated in :data:`COEF`.
``logits``
    the loss upcasts the logits to fp32 and log-softmax keeps its fp32 output: 4 B x vocab per token
    (Gemma 2's final softcapping keeps 2 more); while the loss is computed the bf16 and fp32 copies
    coexist, and its backward holds fp32 gradients of the same size.
``overhead``
    transient buffers of the phase that sets the peak (the loss, the first gradients of backward, the
    one recomputed layer, Adafactor's fp32 work on its largest tensor), so that ``peak_allocated`` is the
    true maximum of the step.

``required_gib`` adds the CUDA context (``CUDA_CONTEXT_GIB``) and the caching allocator's fragmentation
(``ALLOCATOR_HEADROOM`` of the peak plus ``LOGITS_BLOCK_HEADROOM`` of the fp32 logits block), which the
card must have free beyond the peak allocation.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from .arch import Arch

GIB = 2**30
CUDA_CONTEXT_GIB = 0.75  # CUDA context + cuBLAS workspaces, torch 2.11 on an H100: total - free - reserved after a step (ftdecide probe)
# The caching allocator's reserved-but-unusable memory when the card is nearly full: a share of the peak
# (size rounding, partly used segments) plus a share of the largest block the step asks for, the fp32
# logits of the loss (tokens x vocab x 4 B), which cannot be carved from the fragments smaller tensors
# leave. Fitted so that required_gib separates the measured runs that fit an 80 GB card from those that ran
# out of memory: with the measured 0.75 GiB context, the pairs that separate all 281 lie on a narrow band from
# (0.010, 0.375) to (0.025, 0.3125) (benchmarks/accuracy.py); this one is inside it.
ALLOCATOR_HEADROOM = 0.015
LOGITS_BLOCK_HEADROOM = 0.35

Method = Literal["full", "lora", "qlora"]
Precision = Literal["bf16", "mixed"]
Optimizer = Literal["adamw", "adamw8bit", "sgd", "adafactor"]


@dataclass(frozen=True)
class ActCoef:
    """Bytes saved per value, per method class (fitted; see module docstring)."""

    a_h: float
    a_q: float
    a_kv: float
    a_i: float
    a_e: float  # eager attention: per head per key position
    c_h: float  # per token, outside the layers (final norm)
    g: float  # per layer with checkpointing
    nodrop: float = 0.0  # LoRA with dropout 0: inputs of targeted o_proj/down_proj
    nodrop_h: float = 0.0  # LoRA with dropout 0: the normed input of each targeted block (attention, MLP)
    big: float = 0.0  # QLoRA: bytes per value of the largest linear (dequantization workspace)
    big_gc: float = 0.0
    recompute: float = 1.0  # share of one saved layer that checkpointed backward holds at once
    a_n: float = 0.0  # per extra norm beyond two per layer (Gemma 2's post-attention/post-MLP norms)


# Fitted by least squares on data/measurements (H100, torch 2.11, transformers 5.17, peft 0.21,
# bitsandbytes 0.50). Physics fixes the form; these constants are the bytes the stack really keeps.
COEF: dict[str, ActCoef] = {
    "full_bf16": ActCoef(a_h=17.39, a_q=0.0, a_kv=12.52, a_i=8.36, a_e=6.41, c_h=8.04, g=2.0, recompute=1.2),
    "full_mixed": ActCoef(a_h=42.86, a_q=0.0, a_kv=12.52, a_i=8.36, a_e=6.41, c_h=8.04, g=9.9, recompute=1.2),
    "lora": ActCoef(a_h=0.0, a_q=9.59, a_kv=7.9, a_i=6.62, a_e=0.28, c_h=2.58, g=2.0, nodrop=1.37, nodrop_h=5.47, recompute=0.91, a_n=2.66),
    "qlora": ActCoef(a_h=0.0, a_q=0.0, a_kv=7.49, a_i=10.14, a_e=3.81, c_h=2.52, g=3.64, nodrop=2.26, nodrop_h=2.34, big=14.43, big_gc=21.82, recompute=0.0, a_n=0.0),
}
DROPOUT_BYTES = 3.0  # dropout output (bf16, 2 B) + its mask (1 B) per targeted input value
# bitsandbytes' MatMul4Bit saves its input for the backward of every 4-bit linear, adapted or not
# (``ctx.tensors = (A, B)`` whenever the input needs a gradient), in the compute dtype (bf16); plain
# nn.Linear under torch autograd saves nothing for a frozen weight, so LoRA has no such term.
QLORA_INPUT_BYTES = 2.0
LOGITS_SAVED = 4.0  # fp32 log-softmax output, per vocab entry per token
LOGITS_FWD_TRANSIENT = 8.25  # bf16 logits, fp32 upcast and log-softmax workspace while the loss is computed
LOGITS_BWD_TRANSIENT = 2.1  # gradients of the logits beyond what forward freed
SOFTCAP_EXTRA = 2.0  # Gemma 2 final logit softcapping keeps a bf16 tanh output


class TrainConfig(BaseModel):
    """One training configuration to estimate. Sizes in tokens; ``lora_targets`` as
    :meth:`Arch.resolve_targets` takes them."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    method: Method = "lora"
    precision: Precision = "bf16"
    optimizer: Optimizer = "adamw"
    seq_len: int = Field(2048, gt=0, le=1_048_576)
    batch_size: int = Field(1, gt=0, le=4096)
    gradient_checkpointing: bool = True
    lora_rank: int = Field(16, gt=0, le=65536)
    lora_targets: str = "all-linear"
    lora_dropout: float = Field(0.05, ge=0.0, lt=1.0)
    gpus: int = Field(1, gt=0, le=4096)
    zero3: bool = True
    offload_optimizer: bool = False
    double_quant: bool = True

    @field_validator("lora_dropout")
    @classmethod
    def _finite(cls, v: float) -> float:
        if v != v:
            raise ValueError("must be a number")
        return v


@dataclass
class MemoryEstimate:
    """Result of :func:`estimate_memory`. All memory figures in GiB (2**30 bytes)."""

    peak_allocated_gib: float
    required_gib: float
    breakdown: dict[str, float]
    total_params: int
    trainable_params: int
    peak_phase: str
    notes: list[str] = field(default_factory=list)

    def as_dict(self) -> dict:
        return {
            "peak_allocated_gib": round(self.peak_allocated_gib, 3),
            "required_gib": round(self.required_gib, 3),
            "breakdown": {k: round(v, 3) for k, v in self.breakdown.items()},
            "total_params": self.total_params,
            "trainable_params": self.trainable_params,
            "peak_phase": self.peak_phase,
            "notes": list(self.notes),
        }


def _coef_key(cfg: TrainConfig) -> str:
    if cfg.method == "full":
        return "full_mixed" if cfg.precision == "mixed" else "full_bf16"
    return cfg.method


def weight_bytes(arch: Arch, cfg: TrainConfig, lora_params: int) -> float:
    """Bytes of the model's parameters (base and adapters) as they sit on the GPU."""
    total = arch.total_params()
    if cfg.method == "full":
        return total * (4.0 if cfg.precision == "mixed" else 2.0)
    if cfg.method == "lora":
        return total * 2.0 + lora_params * 4.0
    q = arch.quantizable_params()
    consts = q / 64 * (1 + 4 / 256) if cfg.double_quant else q / 64 * 4
    return q * 0.5 + consts + (total - q) * 4.0 + lora_params * 4.0


def _matrices(arch: Arch, trainable_lora: tuple[str, ...], rank: int) -> list[tuple[int, int, int]]:
    """(rows, cols, count) of the trainable matrices, for the optimizer's per-tensor rules."""
    shapes = arch.linear_shapes()
    L = arch.num_layers
    if trainable_lora:
        out = []
        for m in trainable_lora:
            i, o, n = shapes[m]
            out += [(rank, i, n * L), (o, rank, n * L)]
        return out
    out = [(o, i, n * L) for i, o, n in shapes.values()]
    if arch.is_moe:
        e = arch.expert_intermediate
        out += [(e, arch.hidden_size, 3 * arch.num_experts * L), (arch.num_experts, arch.hidden_size, L)]
    out.append((arch.vocab_size, arch.hidden_size, 1 if arch.tie_embeddings else 2))
    return out


def optimizer_bytes(arch: Arch, cfg: TrainConfig, trainable: int, param_bytes: float, mods: tuple[str, ...]) -> float:
    """Bytes of optimizer state for ``trainable`` parameters of ``param_bytes`` each."""
    if cfg.optimizer == "sgd":
        return 0.0
    if cfg.optimizer == "adamw":
        return 2.0 * param_bytes * trainable
    mats = _matrices(arch, mods, cfg.lora_rank)
    if cfg.optimizer == "adafactor":
        return sum(4.0 * (r + c) * n for r, c, n in mats) + 4.0 * (trainable - sum(r * c * n for r, c, n in mats))
    # adamw8bit: bitsandbytes quantizes states of tensors with >= 4096 values, keeps fp32 states otherwise.
    big = sum(r * c * n for r, c, n in mats if r * c >= 4096)
    return big * (2.0 + 8.0 / 256) + (trainable - big) * 8.0


def _optimizer_transient(arch: Arch, cfg: TrainConfig, mods: tuple[str, ...]) -> float:
    """Bytes the optimizer step allocates for its largest tensor. transformers' Adafactor works in fp32
    on one parameter at a time, and at its widest moment (``p_data_fp32.add_(-update)``) holds the fp32
    gradient, the update, the fp32 copy of the parameter and the negated update: 4 x 4 B per value for
    bf16 parameters; fp32 parameters (and their gradients) need no copies, leaving 2 x 4 B. Fused AdamW,
    AdamW8bit and SGD update in place."""
    if cfg.optimizer != "adafactor":
        return 0.0
    largest = max(r * c for r, c, _ in _matrices(arch, mods, cfg.lora_rank))
    fp32_params = bool(mods) or cfg.precision == "mixed"  # LoRA adapters are fp32 too
    return (8.0 if fp32_params else 16.0) * largest


def _layer_terms(arch: Arch, cfg: TrainConfig, mods: tuple[str, ...]) -> tuple[float, float]:
    """(bytes one layer saves per token apart from eager attention, eager attention's bytes per token per
    key position). A layer saves ``first + second * seq_len`` bytes per token."""
    c = COEF[_coef_key(cfg)]
    h = arch.hidden_size
    i_eff = arch.intermediate_size
    if arch.is_moe:
        i_eff = arch.experts_per_token * arch.expert_intermediate + arch.shared_expert_intermediate_size
    layer = c.a_h * h + c.a_q * arch.q_dim + c.a_kv * arch.kv_dim + c.a_i * i_eff
    layer += c.a_n * h * (arch.norms_per_layer - 2)
    if cfg.method == "qlora":
        layer += QLORA_INPUT_BYTES * sum(i * n for i, _, n in arch.linear_shapes().values())
    if mods:
        shapes = arch.linear_shapes()
        if cfg.lora_dropout > 0:
            layer += DROPOUT_BYTES * sum(shapes[m][0] for m in mods)
        else:
            layer += c.nodrop * sum(shapes[m][0] for m in mods if m in ("o_proj", "down_proj"))
            blocks = ({"q_proj", "k_proj", "v_proj", "qkv_proj"}, {"gate_proj", "up_proj", "gate_up_proj"})
            layer += c.nodrop_h * h * sum(1 for b in blocks if b & set(mods))
    eager = c.a_e * arch.num_heads if arch.attention == "eager" else 0.0
    return layer, eager


def _logits_saved_per_token(arch: Arch) -> float:
    return arch.vocab_size * (LOGITS_SAVED + (SOFTCAP_EXTRA if arch.family.startswith("gemma2") else 0.0))


@dataclass(frozen=True)
class MemoryModel:
    """The part of an estimate that does not depend on sequence length, micro-batch or checkpointing,
    in bytes; :meth:`estimate` adds the rest. Built once per (architecture, method, rank, ...) by
    :func:`memory_model`, so that a search over tokens costs a few float operations per point."""

    weights: float
    opt_gpu: float
    grads: float
    head_grad: float
    opt_transient: float
    layer_base: float  # bytes per token of one materialised layer, without eager attention
    layer_eager: float  # more bytes per token per key position (eager attention)
    stored_gc: float  # bytes per token all layers keep with checkpointing
    per_token: float  # bytes per token outside the layers: final norm and saved logits
    logits_saved: float  # the saved-logits share of per_token
    vocab: int
    layers: int
    ws_gc: float  # QLoRA dequantisation workspace with / without checkpointing
    ws_nogc: float
    recompute: float
    total_params: int
    trainable_params: int
    notes: tuple[str, ...]

    def layer_bytes(self, seq_len: int) -> float:
        """Bytes per token of one fully materialised layer: what checkpointing recomputes at once."""
        return self.layer_base + self.layer_eager * seq_len

    def peak_bytes(self, seq_len: int, batch_size: int, gc: bool) -> tuple[float, str, dict[str, float]]:
        """(peak allocated bytes, the phase that sets it, what that phase holds beyond weights and states)."""
        tokens = seq_len * batch_size
        layer = self.layer_bytes(seq_len)
        stored = self.stored_gc if gc else layer * self.layers
        lv = self.vocab * tokens
        act = (stored + self.per_token - self.logits_saved) * tokens + (self.ws_gc if gc else self.ws_nogc)
        logits = self.logits_saved * tokens
        recompute = self.recompute * layer * tokens if gc else 0.0
        fwd = act + logits + LOGITS_FWD_TRANSIENT * lv
        bwd = act + logits + self.head_grad + LOGITS_BWD_TRANSIENT * lv + recompute
        opt = self.grads + recompute + self.opt_transient
        if fwd >= bwd and fwd >= opt:
            phase, held = "forward", {"activations": act, "logits": logits, "gradients": 0.0, "overhead": LOGITS_FWD_TRANSIENT * lv}
        elif bwd >= opt:
            phase, held = "backward", {"activations": act, "logits": logits, "gradients": self.head_grad, "overhead": LOGITS_BWD_TRANSIENT * lv + recompute}
        else:
            phase, held = "optimizer", {"activations": 0.0, "logits": 0.0, "gradients": self.grads, "overhead": recompute + self.opt_transient}
        return self.weights + self.opt_gpu + max(fwd, bwd, opt), phase, held

    def required_gib(self, seq_len: int, batch_size: int, gc: bool) -> float:
        """GiB the card must have for this shape: the peak plus CUDA context and allocator fragmentation."""
        peak = self.peak_bytes(seq_len, batch_size, gc)[0] / GIB
        return peak * (1 + ALLOCATOR_HEADROOM) + CUDA_CONTEXT_GIB + LOGITS_BLOCK_HEADROOM * 4.0 * self.vocab * seq_len * batch_size / GIB

    def estimate(self, seq_len: int, batch_size: int, gc: bool) -> MemoryEstimate:
        peak, phase, held = self.peak_bytes(seq_len, batch_size, gc)
        breakdown = {"weights": self.weights / GIB, "optimizer": self.opt_gpu / GIB}
        breakdown.update({k: v / GIB for k, v in held.items()})
        return MemoryEstimate(peak_allocated_gib=peak / GIB, required_gib=self.required_gib(seq_len, batch_size, gc), breakdown=breakdown,
                              total_params=self.total_params, trainable_params=self.trainable_params, peak_phase=phase, notes=list(self.notes))


def _build_memory_model(arch: Arch, cfg: TrainConfig) -> MemoryModel:
    mods: tuple[str, ...] = ()
    lora = 0
    if cfg.method in ("lora", "qlora"):
        mods = arch.resolve_targets(cfg.lora_targets)
        if cfg.lora_rank > arch.max_lora_rank(mods):
            raise ValueError(f"LoRA rank {cfg.lora_rank} exceeds the smallest targeted layer dimension ({arch.max_lora_rank(mods)}) of {arch.name}")
        lora = arch.lora_params(cfg.lora_rank, mods)
    base_params = arch.total_params()
    trainable = lora if mods else base_params
    param_bytes = 4.0 if (mods or cfg.precision == "mixed") else 2.0
    shard = cfg.gpus if (cfg.gpus > 1 and cfg.zero3) else 1
    notes: list[str] = []
    weights = weight_bytes(arch, cfg, lora)
    grads = trainable * param_bytes
    opt = optimizer_bytes(arch, cfg, trainable, param_bytes, mods)
    if shard > 1:
        weights, grads, opt = weights / shard, grads / shard, opt / shard
        notes.append(f"ZeRO-3/FSDP: weights, gradients and optimizer states sharded over {shard} GPUs")
    if cfg.offload_optimizer:
        notes.append("optimizer states offloaded to CPU memory")
    c = COEF[_coef_key(cfg)]
    ws_gc = ws_nogc = 0.0
    if cfg.method == "qlora":
        biggest = max(i * o for i, o, _ in arch.linear_shapes().values())
        ws_gc, ws_nogc = biggest * c.big_gc, biggest * c.big
    layer_base, layer_eager = _layer_terms(arch, cfg, mods)
    logits_saved = _logits_saved_per_token(arch)
    return MemoryModel(
        weights=weights, opt_gpu=0.0 if cfg.offload_optimizer else opt, grads=grads,
        head_grad=0.0 if mods else arch.vocab_size * arch.hidden_size * param_bytes / shard,
        opt_transient=_optimizer_transient(arch, cfg, mods), layer_base=layer_base, layer_eager=layer_eager,
        stored_gc=c.g * arch.hidden_size * arch.num_layers, per_token=c.c_h * arch.hidden_size + logits_saved, logits_saved=logits_saved,
        vocab=arch.vocab_size, layers=arch.num_layers, ws_gc=ws_gc, ws_nogc=ws_nogc, recompute=c.recompute,
        total_params=base_params + lora, trainable_params=trainable, notes=tuple(notes),
    )


_MODELS: dict[tuple, tuple[Arch, MemoryModel]] = {}


def memory_model(arch: Arch, cfg: TrainConfig) -> MemoryModel:
    """The token-independent part of the estimate of ``cfg`` on ``arch`` (memoised: searches reuse it).

    Raises ValueError for a LoRA target that the architecture lacks or a rank beyond its layers."""
    # The coefficients are part of the key, so that refitting them (benchmarks/fit_coefficients.py) is not
    # served stale models.
    key = (id(arch), COEF[_coef_key(cfg)], cfg.method, cfg.precision, cfg.optimizer, cfg.lora_rank, cfg.lora_targets,
           cfg.lora_dropout > 0, cfg.gpus, cfg.zero3, cfg.offload_optimizer, cfg.double_quant)
    hit = _MODELS.get(key)
    if hit is not None and hit[0] is arch:
        return hit[1]
    mm = _build_memory_model(arch, cfg)
    if len(_MODELS) > 4096:
        _MODELS.clear()
    _MODELS[key] = (arch, mm)
    return mm


def estimate_memory(arch: Arch, cfg: TrainConfig) -> MemoryEstimate:
    """Estimate peak allocated and required GPU memory (GiB) of training ``arch`` with ``cfg``.

    Raises ValueError for a LoRA target that the architecture lacks or a rank beyond its layers."""
    return memory_model(arch, cfg).estimate(cfg.seq_len, cfg.batch_size, cfg.gradient_checkpointing)
