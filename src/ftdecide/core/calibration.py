"""Every fitted or measured constant of the memory and step-time models, in one frozen object.

The constants that belong to one unit live beside it: a method's, strategy's, lever's or trainer's
``constants`` (and a method's activation coefficients, ``fitted``); :class:`Calibration` assembles them
from the registries. What is left here is shared by every unit: the loss and allocator terms, the
architecture's tied-embedding and softcap terms, and the step-time model's joint fit.

The models (:mod:`ftdecide.core.estimator`, :mod:`ftdecide.core.throughput`) take a :class:`Calibration` as an
argument and default to :data:`DEFAULT`. Nothing rewrites module globals: a refit
(``benchmarks/fit_coefficients.py``, ``benchmarks/fit_throughput.py``) builds a new object with
``Calibration.with_constants`` and passes it in, and the estimator's memo is keyed on the object, so a refit is
never served a model built from other constants.

Memory constants are bytes per value (fitted) or GiB (2**30 bytes, measured); time constants are stated
with their units. The data behind each fit: ``data/measurements`` (H100 SXM, torch 2.11,
transformers 5.17, peft 0.21, bitsandbytes 0.50) and ``shared/calibration``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from .coefs import ActCoef  # noqa: F401  (each method declares its own: ftdecide.methods, Method.fitted)


@dataclass(frozen=True)
class KernelCounts:
    """Kernels launched per step (forward, backward, optimizer), by what launches them. A pass is one
    run over a layer: forward and backward make 2, checkpointing's recompute a third. Fitted to the
    kernels torch.profiler recorded in 62 profiled steps."""

    layer_pass: float = 47.84  # norms, projections, rotary, attention, MLP, residual adds
    eager_layer_pass: float = 23.96  # eager attention's extra ops (softcap, mask, softmax, dropout)
    adapter_pass: float = 10.68  # one LoRA adapter: dropout, A, B, scale, add
    # DoRA's extra kernels per adapted linear and pass (peft's DoraLinearLayer.forward: eye, A and B over
    # it, transpose, cast, scale-add, norm, div, sub, muls, add; the base product again with dropout):
    # fitted with DoRA's utilisation to the tokens/s of the 44 DoRA runs of
    # data/measurements/h200_dora_2026-11-29.jsonl (H200: 989 TFLOPS, 4800 GB/s); not from profiled steps
    dora_pass: float = 15.47
    # one Houlsby adapter of the adapters library (down, activation, up, scaling, residual add and the Python
    # of its composition blocks, counted as launches): fitted to the 7 Houlsby runs timed alone on an H200
    # (data/measurements/h200_alone_timing_2026-11-30.jsonl), not profiled
    houlsby_pass: float = 19.0
    ia3_pass: float = 3.0  # one IA3 vector: cast, multiply, cast back (counted from peft's IA3Layer.forward, not profiled)
    # Liger's fused cross-entropy per chunk of tokens: the logits product, the loss-and-gradient kernel, the
    # input-gradient product, the head's gradient, two slices (counted from liger-kernel 0.8.5's loop)
    liger_chunk: float = 6.0
    qlinear_pass: float = 4.72  # one 4-bit linear: dequantise, matmul
    expert_pass: float = 1.01  # one MoE expert in transformers' loop over experts
    full_layer: float = 34.13  # full fine-tuning's weight gradients and casts
    adafactor_tensor: float = 24.11  # transformers' Adafactor: its Python loop of factored updates per tensor
    fixed: float = 309.92  # embeddings, loss, logits, fused AdamW's multi-tensor kernels


@dataclass(frozen=True)
class StepConstants:
    """Constants of the step-time model (:mod:`ftdecide.core.throughput`), fitted by log-error least squares."""

    k_act: float = 13.428  # passes over one materialised layer's bytes per token
    k_logits: float = 6.952  # passes over the fp32 logits (bf16 logits, upcast, log-softmax, its backward)
    k_eager: float = 6.6  # passes over eager attention's bf16 scores
    k_state: float = 1.358  # passes over full fine-tuning's weights and optimizer states
    k_fused: float = 25.331  # passes over the halves of fused projections (Phi-3), which chunk() leaves strided
    # Liger's fused linear cross-entropy: passes over the bf16 logit chunks (one kernel computes the
    # softmax and its gradient in place); set from the kernel's structure, not fitted
    k_logits_liger: float = 3.0
    # pinned host memory <-> GPU over PCIe Gen5 x16 as the activation offload's side stream sees it, GB/s:
    # measured, a step bound by its transfers (Llama-3.2-1B LoRA without checkpointing, 2048x4, H200; 18.3 GB
    # out and back in 0.858 s) moved 42.6 GB/s, so at least that; 45 (of the link's 64 each way). It was an
    # assumed 25 before, which predicted that run 41% slow (data/measurements/h200_lever_timing_2026-11-30.jsonl)
    host_link_gbs: float = 45.0
    # NCCL's bus bandwidth as a share of the link's, as training steps see it: measured on 2 H200s (NV18,
    # NVLink SHARP off), the FSDP2 run of Qwen2.5-72B LoRA gathered 145 GB per micro-batch in 0.96 s of NCCL
    # kernels (torch.profiler; data/scaleout/h200x2_real_*): 0.33 of the 450 GB/s link. nccl-tests reach
    # about 0.8 on large messages; a step's collectives are smaller and wait for the slower rank
    nccl_efficiency: float = 0.33
    attn_util: float = 0.328  # tensor-core utilisation of flash attention's products
    # sdpa with a mask (padded micro-batches of mixed length, packed ones) leaves flash attention for the masked
    # (memory-efficient) kernel, which computes every query x key pair, the masked half too: its utilisation, on all
    # of them (fitted with masked_new_share and masked_warmup_s below on the nine whole epochs of packing_a and
    # packing_b, benchmarks/fit_packing.py --fit; 0.15 before the warm-up was counted)
    masked_attn_util: float = 0.17
    # ... and torch 2.11 runs that kernel through cuDNN, whose host side costs this much per call (ms) when the
    # micro-batch's padded length is one the run has not met before (it builds the call anew), and next to nothing
    # when it has (packed rows, examples of one length). Profiled, not fitted: a padded chat run of Qwen3-0.6B
    # (data/packing/h100_trl_2026-12-07.jsonl, packing_b:1, every micro-batch a new length) spent 1.484 s of host
    # time in 336 aten::_cudnn_attention_forward calls and 1.516 s in 168 backward ones; its filled twin
    # (packing_b:2) 0.06 s in 168 backward calls
    masked_new_fwd_ms: float = 4.42
    masked_new_bwd_ms: float = 9.02
    # ... of which a step pays this share beside its GPU's time (fitted: the profiles of packing_f measured the calls
    # at 0.5-0.9 of packing_b:1's, and the combination with the kernels' time is the model's, not the profile's)
    masked_new_share: float = 0.7
    # The first steps of a run cost more than the steady ones (CUDA's lazy module loading, cuDNN's and cuBLAS's
    # first choices of kernel, the allocator's first blocks): seconds once a run, on top of its steps. Measured, not
    # fitted: examples of mixed length, the excess of the first 8 steps over what the rest's residual predicts,
    # median 8.0 s of the eight packing_a/_b epochs long enough (-0.2 to 11.3 s; 10.9 s on the sixteen held out;
    # benchmarks/fit_packing.py --fit); examples filling the sequence, the first step's excess over the median of the
    # rest, 2.2 s on 275 TRL runs (data/trainers/; their 3-step runs cannot show a longer one). Measured under TRL on
    # an H100 and H200, taken for every trainer and GPU.
    masked_warmup_s: float = 8.0
    warmup_s: float = 2.2
    # bitsandbytes' blockwise 8-bit AdamW kernel runs far below the card's bandwidth (profiled: 108 ms for
    # Phi-3-mini's 3.8B fp32 weights, about 95 B/parameter at 3.35 TB/s): its cost per trainable
    # parameter of full fine-tuning, in passes over 4 bytes
    k_8bit: float = 30.641
    kernel_us: float = 24.935  # CPU microseconds per launched kernel
    overlap_p: float = 2.022  # how GPU and CPU time combine (see ftdecide.core.throughput)
    # Python loops per parameter tensor beyond the kernels (ms): bitsandbytes' optimizers (one launch and
    # its bookkeeping per tensor; fitted on AdamW8bit), torch SGD (foreach, not fused; one measured run).
    bnb_tensor_ms: float = 0.011
    sgd_tensor_ms: float = 0.21
    # bitsandbytes' paged optimizers: host time per step beyond their unpaged twins', per paged tensor (the
    # prefetch of its states into the GPU; bitsandbytes synchronises after every parameter, so the optimizer
    # runs on the host's clock) and per GB of managed states (cudaMemPrefetchAsync's driver work grows with the
    # bytes even when they are resident). Fitted to 22 paged runs timed alone on an H200 (python
    # benchmarks/fit_paged_time.py): median 8% in sample, 9% leaving each run out; the first 4 runs alone had
    # missed the next 10 by a median 16%
    paged_tensor_ms: float = 0.08
    paged_ms_per_gb: float = 3.2
    # Checkpointing runs the forward (a third of forward + backward) once more: 1.5x the memory-bound
    # passes over activations, and 4/3 of attention's FLOPs (2 forward-equivalents of 6 become 8).
    recompute_traffic: float = 1.5
    recompute_attention: float = 4.0 / 3.0


def _coef() -> tuple[tuple[str, ActCoef], ...]:
    """Each method variant's activation coefficients, as its module declares them (``Method.fitted``)."""
    from .. import methods

    return tuple((variant, coef) for m in methods.all_methods() for variant, coef, _ in m.fitted)


def _util() -> tuple[tuple[str, float], ...]:
    """Each method variant's tensor-core utilisation of its matrix products (share of the dense bf16 peak),
    as its module declares it (``Method.fitted``)."""
    from .. import methods

    return tuple((variant, util) for m in methods.all_methods() for variant, _, util in m.fitted)


def _unit_constants() -> tuple[tuple[str, float], ...]:
    """Every unit's own fitted constants (``constants`` of each registered method, strategy, lever and
    trainer, and what the trainers share), as their modules declare them beside their terms. A name is
    declared once: two units that declare the same one are a bug."""
    from .. import levers, methods, strategies, trainers

    out: dict[str, float] = {}
    units = (*methods.all_methods(), *strategies.all_strategies(), *levers.all_levers(), *trainers.all_trainers(), trainers)
    for unit in units:
        for name, value in getattr(unit, "CONSTANTS", None) or unit.constants:
            if name in out:
                raise RuntimeError(f"constant '{name}' declared twice")
            out[name] = value
    return tuple(out.items())


@dataclass(frozen=True)
class Calibration:
    """The constants both models read. Hashable, so that memo keys can hold it.

    Beside its own fields it holds every unit's fitted constants (``units``), read by name like its
    fields (``cal.NAME``: Liger's, declared in :mod:`ftdecide.levers.liger`); :meth:`with_constants`
    replaces any of either kind, for refits."""

    coef: tuple[tuple[str, ActCoef], ...] = field(default_factory=_coef)
    util: tuple[tuple[str, float], ...] = field(default_factory=_util)
    units: tuple[tuple[str, float], ...] = field(default_factory=_unit_constants)
    # CUDA context + cuBLAS workspaces, torch 2.11 on an H100: total - free - reserved after a step
    # (ftdecide probe), GiB.
    cuda_context_gib: float = 0.75
    # The caching allocator's reserved-but-unusable memory when the card is nearly full: a share of the
    # peak (size rounding, partly used segments) plus a share of the largest block the step asks for,
    # the fp32 logits of the loss (tokens x vocab x 4 B), which cannot be carved from the fragments
    # smaller tensors leave. Fitted so that required_gib separates the measured runs that fit an 80 GB
    # card from those that ran out of memory: with the measured 0.75 GiB context, the pairs that
    # separate all runs lie on a narrow band from (0.010, 0.375) to (0.025, 0.3125)
    # (benchmarks/accuracy.py); this one is inside it.
    allocator_headroom: float = 0.015
    logits_block_headroom: float = 0.35
    logits_saved: float = 4.0  # fp32 log-softmax output, per vocab entry per token
    logits_fwd_transient: float = 8.25  # bf16 logits, fp32 upcast and log-softmax workspace while the loss is computed
    logits_bwd_transient: float = 2.1  # gradients of the logits beyond what forward freed
    softcap_extra: float = 2.0  # Gemma 2 final logit softcapping keeps a bf16 tanh output
    # Without Liger, a tied head's full fine-tuning builds the embedding's dense gradient at the end of backward
    # and adds it to the head's: bytes held per vocab x hidden value beyond every gradient. Read from 21 runs
    # (Llama-3.2-1B/3B, Qwen2.5-1.5B/3B, Gemma-2-2B; bf16 and fp32 master weights) whose measured peak sat
    # there, 1.2-2.6 x a bf16 copy; 3.0 B took Llama-3.2-3B paged AdamW 1024x2 from -9.1% to -0.9% and the
    # worst of those 21 from -9.1% to -2.6%, and moved no other run (python benchmarks/accuracy.py)
    tied_embed_grad: float = 3.0
    # Families of 2025, from the emitted TRL script's runs (data/trainers/h100_families_2026-12-06.jsonl, grid
    # families_a; families_b held out). Per-head q/k norms (Qwen3, Gemma 3) and OLMo 2's projection norms keep
    # an fp32 copy of q and k (4 B a value in a CPU trace of one layer's saved tensors); the runs without
    # checkpointing (Qwen3-0.6B, Gemma-3-1B, OLMo-2-1B) put the unexplained part at 1.2-6.3 B: 2 B per value (the
    # 6.3 B was Qwen3-0.6B's full run, since explained by the two readings below).
    qk_norm_bytes: float = 2.0
    # ... and where the norms' weights train (full fine-tuning), ``weight * x.to(bf16)`` keeps x for the weight's
    # gradient: 2 B more a value, read from transformers' Qwen3RMSNorm, not fitted. With full fine-tuning's a_q
    # (methods/full.py) it took TRL's one full run without checkpointing of a model with such norms (Qwen3-0.6B,
    # 4 x 1024) from -7.6% to +2.2%; the allocator trace of it (data/traces/h100_diagnose_2026-12-06.jsonl,
    # diagnose_a:3) holds 1.03 GiB more saved by the layers than the plan had
    qk_norm_trained_bytes: float = 2.0
    # gpt-oss's eager attention with sinks: the scores' softmax is saved (bytes per head per key position per
    # token, each layer), and backward builds its gradient one layer at a time. From gpt-oss-20b at 4 layers
    # without checkpointing (3.78 B a layer in all) and 8 layers with (6.59 B in the recomputed layer).
    sink_eager_saved: float = 2.84
    sink_eager_bwd: float = 3.76
    # ... and with checkpointing, more in the recomputed layer's backward: the allocator trace of gpt-oss-20b at
    # 4 layers, 4 x 4096 (data/traces/), holds four bf16 tensors of that size at its peak (8 B, against the 6.34 B
    # the two above make with LoRA's recompute); 1.2 B more (fitted on the five checkpointed gpt-oss runs) took that
    # run from -10.8% to +0.6%, and the other four from -1.2..+2.4% to +2.5..+2.9%
    sink_eager_gc: float = 1.2
    step: StepConstants = field(default_factory=StepConstants)
    kernels: KernelCounts = field(default_factory=KernelCounts)

    def __getattr__(self, name: str) -> float:
        # only names that are not fields get here: a unit's constant
        if name.startswith("_") or name == "units":
            raise AttributeError(name)
        index = self.__dict__.get("_index")
        if index is None:
            index = dict(self.units)
            object.__setattr__(self, "_index", index)
        try:
            return index[name]
        except KeyError:
            raise AttributeError(f"no constant '{name}' (neither a Calibration field nor a unit's)") from None

    def with_constants(self, **values: float) -> "Calibration":
        """A copy with some constants replaced, fields or units' alike (for refits); KeyError for a name
        that is neither."""
        from dataclasses import fields, replace

        own = {f.name for f in fields(self)}
        unit = dict(self.units)
        unknown = [k for k in values if k not in own and k not in unit]
        if unknown:
            raise KeyError(f"no constant {unknown[0]!r}")
        unit.update((k, v) for k, v in values.items() if k not in own)
        return replace(self, units=tuple(unit.items()), **{k: v for k, v in values.items() if k in own})

    def qk_norm(self, trains_base: bool) -> float:
        """Bytes per q and k value a layer's per-head or projection q/k norms save."""
        return self.qk_norm_bytes + (self.qk_norm_trained_bytes if trains_base else 0.0)

    def act(self, variant: str) -> ActCoef:
        """The activation coefficients of a method variant (``full_bf16``, ``lora``, ...); a method registered
        after this object was built is asked for its own."""
        for k, c in self.coef:
            if k == variant:
                return c
        return _declared(variant)[0]

    def utilisation(self, variant: str) -> float:
        """Tensor-core utilisation of a method variant's matrix products (share of dense bf16 peak)."""
        for k, u in self.util:
            if k == variant:
                return u
        return _declared(variant)[1]

    def with_act(self, variant: str, coef: ActCoef) -> "Calibration":
        """A copy with ``variant``'s activation coefficients replaced (for refits)."""
        from dataclasses import replace

        return replace(self, coef=tuple((k, coef if k == variant else c) for k, c in self.coef))

    def with_util(self, values: dict[str, float]) -> "Calibration":
        """A copy with some utilisations replaced (for refits)."""
        from dataclasses import replace

        return replace(self, util=tuple((k, values.get(k, u)) for k, u in self.util))


def _declared(variant: str) -> tuple[ActCoef, float]:
    """(coefficients, utilisation) a registered method declares for ``variant``; KeyError if none does."""
    from .. import methods

    for m in methods.all_methods():
        for v, coef, util in m.fitted:
            if v == variant:
                return coef, util
    raise KeyError(variant)


DEFAULT = Calibration()
