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
    ``data/measurements`` and are stated in :class:`ftdecide.core.calibration.Calibration`.
``logits``
    the loss upcasts the logits to fp32 and log-softmax keeps its fp32 output: 4 B x vocab per token
    (Gemma 2's final softcapping keeps 2 more); while the loss is computed the bf16 and fp32 copies
    coexist, and its backward holds fp32 gradients of the same size.
``overhead``
    transient buffers of the phase that sets the peak (the loss, the first gradients of backward, the
    one recomputed layer, Adafactor's fp32 work on its largest tensor), so that ``peak_allocated`` is the
    true maximum of the step.

Trainers (:mod:`ftdecide.trainers`, ``TrainConfig.trainer``): the terms above are the probe loop's
(``loop``, the default of this module). The transformers Trainer (``hf``) adds what accumulation holds
(every gradient while the later micro-batches of a step run) and what its attention masks make eager
attention and prefix tuning keep. TRL (``trl``, every command's default) has no logits term: its fused LM
head holds the labelled tokens' hidden states, one tile of the head at a time and the hidden states'
gradient in fp32 (``chunk_*`` constants), and a 4-bit base without k-bit preparation (bf16 embeddings,
norms, head and adapters).

``required_gib`` adds the CUDA context (``Calibration.cuda_context_gib``) and the caching allocator's
fragmentation (``allocator_headroom`` of the peak plus ``logits_block_headroom`` of the fp32 logits
block), which the card must have free beyond the peak allocation.

What differs between methods (which weights sit on the GPU in which format, what trains, QLoRA's saved
inputs and workspace) is asked of the method (:mod:`ftdecide.methods`); this module names none.
"""

from __future__ import annotations

from dataclasses import dataclass, field


from .arch import Arch
from .collation import mask_pair_bytes, masked_sdpa, repeated_kv_bytes, sliding_mask_terms
from . import gemma4, hybrid
from .calibration import DEFAULT, Calibration
from .config import Precision, TrainConfig  # noqa: F401  (importable from here, where it lived)
from .errors import InputError
from .loss import _logits_saved_per_token, _loss_terms, tied_grad_bytes  # noqa: F401  (importable from here)
from .memo import Memo
from ..methods import options as method_options

GIB = 2**30
# The measured default, for messages and checks that need no calibration object.
CUDA_CONTEXT_GIB = DEFAULT.cuda_context_gib


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
    host_gib: float = 0.0  # host memory per GPU that parameter or optimizer offload keeps (a lower bound)

    def as_dict(self) -> dict:
        return {
            "host_memory_gib_per_gpu": round(self.host_gib, 3),
            "peak_allocated_gib": round(self.peak_allocated_gib, 3),
            "required_gib": round(self.required_gib, 3),
            "breakdown": {k: round(v, 3) for k, v in self.breakdown.items()},
            "total_params": self.total_params,
            "trainable_params": self.trainable_params,
            "peak_phase": self.peak_phase,
            "notes": list(self.notes),
        }


def weight_bytes(arch: Arch, cfg: TrainConfig, adapter_params: int) -> float:
    """Bytes of the model's parameters (base and adapters) as they sit on the GPU."""
    return cfg.method_spec.weight_bytes(arch, cfg, adapter_params)


def _layer_terms(arch: Arch, cfg: TrainConfig, mods: tuple[str, ...], cal: Calibration = DEFAULT) -> tuple[float, float, float]:
    """(bytes one layer saves per token apart from eager attention, eager attention's bytes per token per
    key position, bytes per token a hybrid's linear-attention layer holds beyond that average layer: what its
    recompute holds more, :func:`ftdecide.core.hybrid.layer_terms`). A layer saves ``first + second * seq_len``
    bytes per token."""
    c = cal.act(cfg.strategy_spec.compute_variant(cfg))
    h = arch.hidden_size
    i_eff = arch.intermediate_size
    if arch.is_moe:
        i_eff = arch.experts_per_token * arch.expert_intermediate + arch.shared_expert_intermediate_size + gemma4.beside(arch)
    layer = c.a_h * h + c.a_q * arch.q_dim + c.a_kv * arch.kv_dim + (c.a_i + arch.act_saved_bytes) * i_eff
    layer += c.a_n * h * (arch.norms_per_layer - 2)
    qk_norms = cal.qk_norm(cfg.method_spec.trains_base) * (arch.q_dim + arch.kv_dim) if arch.qk_norm else 0.0
    beside = qk_norms + repeated_kv_bytes(arch, cfg)
    hybrid_average, hybrid_excess = hybrid.layer_terms(arch, c, beside)
    layer += cfg.method_spec.layer_extra_bytes(arch, cfg, mods, cal, c) + beside + hybrid_average
    math_token, math_key = gemma4.math_attention(arch, masked_sdpa(arch, cfg))
    layer += gemma4.layer_bytes(arch, cfg.method_spec.trains_base) + math_token
    hybrid_excess += gemma4.widest_excess(arch, mods, layer, lambda a, kept: _layer_terms(a, cfg, kept, cal)[0])
    eager = math_key + (cfg.method_spec.mask_bytes_per_key(cal) if cfg.trainer_spec.attention_mask else 0.0)
    if sink_attention(arch):
        # gpt-oss: its sinks join the scores before a softmax whose output is all it saves
        eager += cal.sink_eager_saved * arch.num_heads
    elif arch.attention == "eager":
        # the trainers run transformers' softcapped eager attention as written (trainers/__init__.py); the probe's
        # loop keeps the constant fitted on its own runs
        eager += (cal.eager_saved_bytes if softcapped_as_written(arch, cfg) else c.a_e) * arch.num_heads
    return layer, eager, hybrid_excess


@dataclass(frozen=True)
class MemoryModel:
    """The part of an estimate that does not depend on sequence length, micro-batch or checkpointing,
    in bytes; :meth:`estimate` adds the rest. Built once per (architecture, method, rank, ...) by
    :func:`memory_model`, so that a search over tokens costs a few float operations per point."""

    weights: float
    opt_gpu: float
    opt_managed: float  # optimizer states in CUDA managed memory (paged optimizers): outside the peak
    paged_tensors: int  # parameter tensors whose states are there
    grads: float
    head_grad: float
    opt_transient: float
    layer_base: float  # bytes per token of one materialised layer, without eager attention
    layer_eager: float  # more bytes per token per key position (eager attention)
    stored_gc: float  # bytes per token all layers keep with checkpointing
    per_token: float  # bytes per token outside the layers: final norm and saved logits
    logits_saved: float  # the saved-logits share of per_token
    logits_fwd: float  # bytes per token the loss holds for a moment in forward (the logits and their fp32 copies)
    logits_bwd: float  # bytes per token of the loss's backward beyond what forward freed
    logits_block: float  # bytes per token of the largest single block the loss asks for (fragmentation headroom)
    head_grad_in_fwd: bool  # Liger computes the head's weight gradient in forward: it is held from then on
    # a head tied to the embedding: what the end of backward holds while the embedding's gradient is built and
    # added to the head's (bytes)
    tied_grad: float
    vocab: int
    layers: int
    ws_gc: float  # method workspace (QLoRA dequantisation) with / without checkpointing
    ws_nogc: float
    recompute: float
    total_params: int
    trainable_params: int
    notes: tuple[str, ...]
    cal: Calibration = DEFAULT
    extra_tokens: int = 0  # positions the method adds to every sequence (prompt tuning)
    seq_bytes: float = 0.0  # bytes per sequence held through the step (prefix tuning's keys and values)
    kept_layers: float | None = None  # activation offload: layers' worth of saved tensors left on the GPU (a share of them all)
    gathered: float = 0.0  # the strategy's parameters gathered through forward and backward, released before the step
    bwd_gathered: float = 0.0  # what the strategy holds through backward only (FSDP2's backward buffers)
    fwd_gathered: float = 0.0  # ... and in forward only, at the loss (accelerate's FSDP2 tail unit, gathered for the head)
    end_gathered: float = 0.0  # what the strategy holds at the end of backward only (FSDP2's root gradients)
    mid_gathered: float = 0.0  # ... and in forward between decoder layers, not at the loss (Shares.layer_fwd_buffers)
    early_gathered: float = 0.0  # ... and at the start of forward, before the layers have saved much (Shares.early_buffers)
    loss_bwd_fixed: float = 0.0  # bytes a fused head holds for a moment in backward, whatever the tokens (its fp32 gradient)
    loss_apart: bool = False  # the strategy frees the loss's backward before the layers' recompute (Shares.loss_apart)
    tile_tokens: float = 0.0  # a fused head's tile: up to this many tokens ...
    tile_bytes: float = 0.0  # ... of this many bytes each, held in forward and again in backward
    accum_grads: float = 0.0  # gradients of earlier micro-batches, held through forward and backward
    host: float = 0.0  # bytes of host memory the offload of parameters or optimizer states keeps, per GPU
    eager_bwd: float = 0.0  # bytes per token per key position one layer's eager attention builds in backward
    start: float = 0.0  # bytes held when training starts, before the strategy shards the loaded model (the floor of the peak)
    recompute_extra: float = 0.0  # bytes per token a checkpointed layer's backward holds beyond recompute x the layer
    eager_bwd_gc: float = 0.0  # ... and bytes per token per key position its eager attention holds beyond eager_bwd
    # sdpa run masked (padded micro-batches of mixed length, or packed ones): bytes per query x key pair its mask holds
    # through the step, with and without checkpointing; the pairs of each sequence, or of the flattened micro-batch
    mask_pair_gc: float = 0.0
    mask_pair_nogc: float = 0.0
    sliding: tuple[int, float, float] = (0, 0.0, 0.0)  # sliding layers' mask beyond their window (collation.sliding_mask_terms)
    packed: bool = False

    def layer_bytes(self, seq_len: int) -> float:
        """Bytes per token of one fully materialised layer: what checkpointing recomputes at once."""
        return self.layer_base + self.layer_eager * (seq_len + self.extra_tokens)

    def phases(self, seq_len: int, batch_size: int, gc: bool) -> dict[str, float]:
        """Bytes held beyond weights and optimizer states at the three moments that can set the peak
        (``forward``: the loss, or between two decoder layers where the strategy holds more there, which
        ``between`` says, or the start of forward, which ``early`` says; ``backward``; ``end``: the end of backward,
        every gradient held, and the optimizer step), and the parts they are made of."""
        tokens = (seq_len + self.extra_tokens) * batch_size
        layer = self.layer_bytes(seq_len)
        stored = self.stored_gc if gc else layer * self.layers
        if self.kept_layers is not None:
            # offloaded: what the layers save goes to CPU memory but the tensors in flight (the forward
            # stash, the layers brought back ahead of backward) stay; the loss's saved logits are still on
            # the GPU when the loss peaks
            stored = min(stored, self.kept_layers * (self.stored_gc / self.layers if gc else layer))
        act = (stored + self.per_token - self.logits_saved) * tokens + (self.ws_gc if gc else self.ws_nogc) + self.seq_bytes * batch_size
        pairs = float(tokens) ** 2 if self.packed else float(tokens) * (seq_len + self.extra_tokens)
        act += (self.mask_pair_gc if gc else self.mask_pair_nogc) * pairs
        if 0 < self.sliding[0] <= seq_len + self.extra_tokens:
            act += (self.sliding[1] if gc else self.sliding[2]) * pairs
        logits = self.logits_saved * tokens
        recompute = (self.recompute * layer + self.recompute_extra) * tokens if gc else 0.0
        eager_bwd = (self.eager_bwd + (self.eager_bwd_gc if gc else 0.0)) * (seq_len + self.extra_tokens) * tokens
        fwd_grad = self.head_grad if self.head_grad_in_fwd else 0.0
        # the end of backward, where every gradient is held and a tied head's two gradients are summed, then
        # the optimizer step (its transient): two moments, the larger counts
        held = self.accum_grads
        tile = min(tokens, self.tile_tokens) * self.tile_bytes
        loss_bwd = self.logits_bwd * tokens + tile + self.loss_bwd_fixed
        layers_bwd = eager_bwd + recompute
        # a fused head (trl 1.16, kernels/chunked_logprob.py: ChunkedLogProbFunction.backward fills fp32 gradients of the
        # hidden states and the head tile by tile and returns their bf16 casts) frees them before the last layer is
        # recomputed: the loss's moment and the layers' are two, the larger counts. Where a strategy holds units
        # gathered, its fitted terms were chosen with the two summed, and keep the sum, except FSDP2 and FSDP1 under
        # that head (loss_apart, traced: data/traces/h100_sharded_fsdp2_*, *fsdp1*), whose units sit beside either
        if self.loss_apart or (self.loss_bwd_fixed and not (self.gathered or self.bwd_gathered)):
            loss_bwd, layers_bwd = max(loss_bwd, layers_bwd), 0.0
        backward = act + logits + self.head_grad + loss_bwd + layers_bwd + self.gathered + self.bwd_gathered + held
        at_loss = act + logits + self.logits_fwd * tokens + tile + fwd_grad + self.gathered + self.fwd_gathered + held
        # forward between two decoder layers: what they saved and the layers in flight, no logits yet
        between = act + self.gathered + self.mid_gathered + held if self.mid_gathered else 0.0
        # the start of forward: the strategy's early buffers beside the earlier micro-batches' gradients (what the first
        # layers have saved by then is left out: a lower bound of that moment)
        early = self.early_gathered + held if self.early_gathered else 0.0
        return {
            "forward": max(at_loss, between, early),
            "between": between > at_loss and between >= early,
            "early": early > max(at_loss, between),
            "backward": backward,
            "end": self.grads + recompute + max(self.opt_transient, self.tied_grad) + self.end_gathered,
            "act": act,
            "logits": logits,
            "recompute": recompute,
            "eager_bwd": eager_bwd,
            "fwd_grad": fwd_grad,
            "tokens": tokens,
            "tile": tile,
        }

    def peak_bytes(self, seq_len: int, batch_size: int, gc: bool) -> tuple[float, str, dict[str, float]]:
        """(peak allocated bytes, the phase that sets it, what that phase holds beyond weights and states)."""
        p = self.phases(seq_len, batch_size, gc)
        fwd, bwd, opt = p["forward"], p["backward"], p["end"]
        act, logits, fwd_grad, tokens, tile = p["act"], p["logits"], p["fwd_grad"], p["tokens"], p["tile"]
        acc = self.accum_grads
        if fwd >= bwd and fwd >= opt and p["early"]:
            phase, held = "forward", {"activations": 0.0, "logits": 0.0, "gradients": acc, "overhead": self.early_gathered}
        elif fwd >= bwd and fwd >= opt and p["between"]:
            phase, held = "forward", {"activations": act, "logits": 0.0, "gradients": acc, "overhead": self.gathered + self.mid_gathered}
        elif fwd >= bwd and fwd >= opt:
            over = self.logits_fwd * tokens + tile + self.gathered + self.fwd_gathered
            phase, held = "forward", {"activations": act, "logits": logits, "gradients": fwd_grad + acc, "overhead": over}
        elif bwd >= opt:
            # the rest of the moment (the loss's backward, the recompute, the layers gathered) as phases() counts it: the
            # loss's backward and the recompute summed or, where they are two moments (loss_apart), the larger
            over = bwd - act - logits - self.head_grad - acc
            phase, held = "backward", {"activations": act, "logits": logits, "gradients": self.head_grad + acc, "overhead": over}
        else:
            # the recompute, the optimizer's transient or a tied head's gradients being summed, the root's gradients
            phase, held = "optimizer", {"activations": 0.0, "logits": 0.0, "gradients": self.grads, "overhead": opt - self.grads}
        total = self.weights + self.opt_gpu + max(fwd, bwd, opt)
        if self.start > total:
            phase, held = (
                "startup",
                {"activations": 0.0, "logits": 0.0, "gradients": 0.0, "overhead": self.start - self.weights - self.opt_gpu},
            )
        return max(total, self.start), phase, held

    def required_gib(self, seq_len: int, batch_size: int, gc: bool) -> float:
        """GiB the card must have for this shape: the peak plus CUDA context and allocator fragmentation."""
        cal = self.cal
        peak = self.peak_bytes(seq_len, batch_size, gc)[0] / GIB
        block = self.logits_block * (seq_len + self.extra_tokens) * batch_size / GIB
        return peak * (1 + cal.allocator_headroom) + cal.cuda_context_gib + cal.logits_block_headroom * block

    def estimate(self, seq_len: int, batch_size: int, gc: bool) -> MemoryEstimate:
        peak, phase, held = self.peak_bytes(seq_len, batch_size, gc)
        breakdown = {"weights": self.weights / GIB, "optimizer": self.opt_gpu / GIB}
        breakdown.update({k: v / GIB for k, v in held.items()})
        return MemoryEstimate(
            peak_allocated_gib=peak / GIB,
            required_gib=self.required_gib(seq_len, batch_size, gc),
            breakdown=breakdown,
            total_params=self.total_params,
            trainable_params=self.trainable_params,
            peak_phase=phase,
            notes=list(self.notes),
            host_gib=self.host / GIB,
        )


def _optimizer_on_gpu(
    cfg: TrainConfig, opt: float, opt_whole: float, param_bytes: float, mats, fp32, notes: list[str]
) -> tuple[float, float, int]:
    """(optimizer bytes inside the GPU's peak, bytes in CUDA managed memory, paged tensors): all of them,
    none where offloaded (ZeRO), or what a paged optimizer leaves in the allocator."""
    opt_gpu, managed, paged_tensors = opt, 0.0, 0
    if cfg.offload_optimizer:
        opt_gpu = 0.0
        notes.append("optimizer states offloaded to CPU memory")
    elif cfg.optimizer_spec.paged:
        whole, paged_tensors = cfg.optimizer_spec.paged_bytes(param_bytes, mats, fp32)
        # a strategy's share of the states is paged in the same proportion as the whole
        managed = opt * whole / opt_whole if opt_whole else 0.0
        opt_gpu = opt - managed
        notes.append(
            f"paged optimizer: {managed / GIB:.2f} GiB of its states live in CUDA managed memory, outside this peak: on the GPU "
            "while it has room, paged to CPU memory (and slower steps) when it has not"
            if managed
            else "paged optimizer: every trainable tensor is under bitsandbytes' paging size (1e5 values), so its states stay "
            "on the GPU, inside this peak"
        )
    return opt_gpu, managed, paged_tensors


def _build_memory_model(arch: Arch, cfg: TrainConfig, cal: Calibration) -> MemoryModel:
    method = cfg.method_spec
    from .. import levers

    for problem in filter(None, (lever.problem(arch) for lever in levers.switched_on(cfg))):
        raise InputError(problem)
    mods = method.adapted_modules(arch, cfg)
    adapter = method.adapter_params(arch, cfg, mods)
    trainable = method.trainable_params(arch, cfg, mods)
    param_bytes = method.param_bytes(cfg)
    notes: list[str] = []
    weights = weight_bytes(arch, cfg, adapter)
    grads = trainable * param_bytes
    mats = method.trainable_matrices(arch, cfg, mods)  # the optimizer's per-tensor rules (8-bit, paging, factoring)
    fp32 = cfg.trainer_spec.fp32_state_matrices(arch, cfg)  # 8-bit states the trainer keeps in 32 bits
    opt = opt_whole = cfg.optimizer_spec.state_bytes(trainable, param_bytes, mats, fp32)
    strategy = cfg.strategy_spec
    share = strategy.per_gpu(arch, cfg, weights, grads, opt, cal)
    host = strategy.host_bytes(arch, cfg, weights, grads, opt, cal)
    grad_share = share.grads / grads if grads else 1.0
    # the strategy's buffers (buckets, gathered layers) are held for the whole step, like the weights
    weights, grads, opt = share.weights + share.buffers, share.grads, share.optimizer
    notes += share.notes
    notes += [n for n in (strategy.launch_problem(arch, cfg),) if n]
    notes += strategy.plan_notes(arch, cfg)
    if arch.note:
        notes.append(arch.note)
    why_not = method.unsupported(arch, cfg)
    if why_not:
        notes.append(f"not trainable: {why_not}")
    if not method.measured:
        notes.append(f"{method.label}: memory terms read from the method's structure, not yet measured on a GPU")
    opt_gpu, managed, paged_tensors = _optimizer_on_gpu(cfg, opt, opt_whole, param_bytes, mats, fp32, notes)
    c = cal.act(strategy.compute_variant(cfg))
    layer_base, layer_eager, hybrid_excess = _layer_terms(arch, cfg, mods, cal)
    head_grad = arch.vocab_size * arch.hidden_size * param_bytes * grad_share if method.trains_base else 0.0
    if cfg.liger:
        # Liger's RMSNorm, SwiGLU and RoPE kernels save less per layer than the eager modules.
        norms = cal.liger_norm_h * arch.norms_per_layer * (2 if method.trains_base else 1)
        layer_base = max(0.0, layer_base - norms * arch.hidden_size - cal.liger_swiglu_i * arch.routed_intermediate)
    loss = _loss_terms(arch, cfg, cal, notes)
    if cfg.offload_activations:
        notes.append("activations offloaded to CPU memory during forward (TRL activation_offloading), back for backward")
    return MemoryModel(
        weights=weights,
        opt_gpu=opt_gpu,
        opt_managed=managed,
        paged_tensors=paged_tensors,
        grads=grads,
        head_grad=head_grad,
        opt_transient=cfg.optimizer_spec.transient_bytes(mats, param_bytes == 4.0),
        layer_base=layer_base,
        layer_eager=layer_eager,
        stored_gc=(c.g + cfg.trainer_spec.gc_excess_h(cfg, cal)) * arch.hidden_size * arch.num_layers,
        per_token=c.c_h * arch.hidden_size + loss["logits_saved"] + gemma4.model_bytes(arch, method.trains_base),
        logits_saved=loss["logits_saved"],
        logits_fwd=loss["logits_fwd"],
        logits_bwd=loss["logits_bwd"],
        logits_block=loss["logits_block"],
        head_grad_in_fwd=cfg.liger and method.trains_base and not cfg.trainer_spec.chunked_loss,
        tied_grad=tied_grad_bytes(arch, cfg, head_grad, grad_share, cal),
        vocab=arch.vocab_size,
        layers=arch.num_layers,
        mask_pair_gc=mask_pair_bytes(arch, cfg, cal, True),
        mask_pair_nogc=mask_pair_bytes(arch, cfg, cal, False),
        sliding=sliding_mask_terms(arch, cfg, cal),
        packed=cfg.packing,
        ws_gc=method.workspace_bytes(arch, mods, c, True) + method.cast_copy_bytes(arch, cfg, True),
        ws_nogc=method.workspace_bytes(arch, mods, c, False) + method.cast_copy_bytes(arch, cfg, False),
        recompute=strategy.recompute(cfg, c.recompute, cal),
        total_params=arch.total_params() + adapter,
        trainable_params=trainable,
        notes=tuple(notes),
        cal=cal,
        extra_tokens=method.extra_tokens(cfg),
        seq_bytes=method.sequence_bytes(arch, cfg, cal),
        kept_layers=(cal.offload_kept_share_trained if method.trains_base else cal.offload_kept_share) * arch.num_layers
        if cfg.offload_activations
        else None,
        gathered=share.compute_buffers,
        bwd_gathered=share.backward_buffers,
        fwd_gathered=share.forward_buffers,
        mid_gathered=share.layer_fwd_buffers,
        early_gathered=share.early_buffers,
        loss_apart=share.loss_apart,
        start=share.start,
        end_gathered=share.end_buffers,
        loss_bwd_fixed=loss["loss_bwd_fixed"],
        tile_tokens=loss["tile_tokens"],
        tile_bytes=loss["tile_bytes"],
        accum_grads=strategy.accumulated_grad_bytes(arch, cfg, trainable, grads)
        if cfg.trainer_spec.accumulates and cfg.gradient_accumulation > 1
        else 0.0,
        host=host,
        eager_bwd=_eager_bwd(arch, cfg, cal),
        recompute_extra=method.recompute_extra_bytes(arch, cfg, mods, cal) + c.recompute * hybrid_excess,
        eager_bwd_gc=cal.sink_eager_gc * arch.num_heads if sink_attention(arch) else 0.0,
    )


def sink_attention(arch: Arch) -> bool:
    """Eager attention whose scores join one learned sink per head before the softmax (gpt-oss)."""
    return arch.attention == "eager" and arch.attn_sinks


def softcapped_as_written(arch: Arch, cfg: TrainConfig) -> bool:
    """Gemma 2's softcapped eager attention (eager without sinks) under a trainer that passes its batches with an
    attention mask: transformers' code as written (``eager_*_bytes``, trainers/__init__.py), not the loop's fit."""
    return arch.attention == "eager" and not sink_attention(arch) and cfg.trainer_spec.attention_mask


def _eager_bwd(arch: Arch, cfg: TrainConfig, cal: Calibration) -> float:
    """Bytes per token per key position one layer's eager attention builds in its backward, beyond what it saved."""
    if sink_attention(arch):
        return cal.sink_eager_bwd * arch.num_heads
    return cal.eager_bwd_bytes * arch.num_heads if softcapped_as_written(arch, cfg) else 0.0


# a batch of many scenarios builds tens of thousands; each is about a kilobyte
_MODELS = Memo(limit=65536)


def memory_model(arch: Arch, cfg: TrainConfig, cal: Calibration = DEFAULT) -> MemoryModel:
    """The token-independent part of the estimate of ``cfg`` on ``arch`` (memoised: searches reuse it).

    Raises InputError for a LoRA target that the architecture lacks or a rank beyond its layers."""
    # the architecture and the calibration (both frozen) by identity, the configuration by what the model reads
    key = (
        cfg.method,
        cfg.precision,
        cfg.optimizer,
        method_options.key(cfg),
        cfg.gpus,
        cfg.nodes,
        cfg.strategy,
        cfg.offload_params,
        cfg.offload_optimizer,
        cfg.liger,
        cfg.offload_activations,
        # a strategy's terms may depend on checkpointing (ZeRO-3's frozen base without it)
        cfg.gradient_checkpointing,
        cfg.trainer,
        cfg.gradient_accumulation > 1,
        cfg.collation,
    )
    return _MODELS.get((arch, cal), key, _build_memory_model, arch, cfg, cal)


def estimate_memory(arch: Arch, cfg: TrainConfig, cal: Calibration = DEFAULT) -> MemoryEstimate:
    """Estimate peak allocated and required GPU memory (GiB) of training ``arch`` with ``cfg``.

    Raises InputError for a LoRA target that the architecture lacks or a rank beyond its layers."""
    return memory_model(arch, cfg, cal).estimate(cfg.seq_len, cfg.batch_size, cfg.gradient_checkpointing)
