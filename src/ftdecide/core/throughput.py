"""Time of one training step, and tokens per second: pure arithmetic, no I/O.

A step is two streams that run side by side: the GPU executes kernels while the CPU (Python, autograd,
the dispatcher) launches the next ones. Whichever is longer bounds the step:

``gpu``
    ``matmul``: the linear layers' training FLOPs (:func:`train_flops_per_token` x tokens, less
    attention) at ``util`` of the card's dense bf16 peak, per method (:data:`UTIL`): the tensor-core
    efficiency of the big matrix products; and causal attention's FLOPs at ``attn_util`` (flash
    attention's backward runs well below the GEMMs' efficiency; recomputed once more with
    checkpointing), or sdpa's masked kernel over every query x key pair at ``masked_attn_util`` where sdpa runs
    with a mask: micro-batches of mixed length, and sliding-window layers from their window on (Mistral-7B-v0.1 under
    TRL, per token at 4,096 tokens against 2,048: measured 1.18x, the model 1.05x before it counted the window, 1.32x
    now, which the masked kernel's utilisation, fitted on packed and padded runs, overshoots).
    ``memory``: the memory-bound kernels (norms, rotary embeddings, activation
    functions, dropout, LoRA's adds, casts, the loss) at the card's bandwidth: ``k_act`` passes over
    the bytes of one fully materialised layer per token (the estimator's own figure; 1.5 x with
    checkpointing, which redoes the forward), ``k_logits`` passes over the fp32 logits, ``k_eager``
    over the s x s scores of eager attention, ``k_fused`` over the outputs of fused projections (Phi-3's
    qkv_proj and gate_up_proj: chunk() leaves strided halves, whose elementwise kernels run unvectorised),
    ``k_state`` passes over the weights and optimizer states of full fine-tuning (paged states too, on
    the GPU while it has room), and the optimizer's own update kernel where it has one
    (:meth:`ftdecide.optimizers.Optimizer.update_traffic`: ``k_8bit`` for bitsandbytes' 8-bit AdamW).
``cpu``
    the kernels the step launches (:func:`kernels_per_step`, counted from the architecture) at
    ``kernel_us`` each, plus the optimizer's host time (:meth:`ftdecide.optimizers.Optimizer.host_ms`:
    the Python loop per parameter tensor of bitsandbytes' optimizers and torch's SGD, and the paged
    optimizers' prefetch per tensor and per GB of managed states). Small models, short sequences, many LoRA adapters, MoE
    expert loops and 4-bit linears make the CPU the bound: profiled steps of such runs keep the GPU
    busy for a third of the step or less (``benchmarks/device_diagnose.py``).

Under gradient accumulation a micro-batch carries 1/accumulation of what the optimizer step moves, launches and
loops over on the host, and each one after the first adds its gradients into the held ones (3 passes over them).

The two combine as ``(gpu^p + cpu^p)^(1/p)``: ``p`` = 1 would add them (no overlap), a large ``p``
takes the larger (perfect overlap); the fitted value sits between, since synchronisations (the loss,
the optimizer) drain the launch queue a few times per step.

Kernel counts were fitted to the kernels torch.profiler recorded in 62 profiled steps (the records
with a ``profile`` in ``data/measurements``), which do not depend on the host; the time constants
were fitted (``benchmarks/fit_throughput.py``, log-error least squares) on the measured steps of the
runs in ``data/measurements`` (H100 SXM); ``benchmarks/accuracy.py`` reports the error. Figures for
other GPUs scale by their datasheet peak and bandwidth, which assumes the same kernel efficiency and a
host CPU like the ones measured (20-43 us per launched kernel on the device hosts; a CPU-bound step
moves with the host by as much).

On several GPUs the strategy's bytes per step (:meth:`ftdecide.strategies.Strategy.traffic`: all-gather,
reduce-scatter, all-reduce, as NCCL's ring bus bytes) cross the GPU's link within a node or its network
share across nodes (the GPU catalog's ``intra_node_gbs`` and ``inter_node_gbs``) at ``nccl_efficiency`` of
it; the strategy hides ``overlap`` of that behind the kernels, never more than they last, and its hooks
cost ``layer_s`` per decoder layer. Timed on 2 H200s (25 runs, data/scaleout/h200x2_real_*; constants from
torch.profiler and fitted on half the runs, checked on the other half: benchmarks/fit_scaleout_time.py).
Not timed beyond 2 GPUs nor across nodes: there the link figures are the datasheets', and every
recommendation says so.

Every constant lives in :class:`ftdecide.core.calibration.Calibration` (``util``, ``step``, ``kernels``);
what differs between methods (FLOPs per parameter, kernels per layer) is asked of the method.
"""

from __future__ import annotations

from .arch import Arch
from .calibration import DEFAULT, Calibration, KernelCounts
from .collation import masked_attention_flops, masked_sdpa, sliding_masked_layers
from .estimator import TrainConfig, memory_model, softcapped_as_written


def train_flops_per_token(arch: Arch, cfg: TrainConfig, seq_len: int | None = None, gc: bool | None = None) -> float:
    """Training FLOPs per token: 6N for methods that train the base (forward 2N, backward 4N), 4N for
    adapter methods (frozen weights need no weight gradient), +2N when checkpointing recomputes the
    forward, plus causal attention (about 6 * layers * seq * q_dim). N counts active parameters (MoE:
    routed experts). ``seq_len`` and ``gc`` default to the configuration's."""
    seq_len = cfg.seq_len if seq_len is None else seq_len
    gc = cfg.gradient_checkpointing if gc is None else gc
    n = arch.active_params()
    method = cfg.method_spec
    f = method.flops_per_param * n + (2.0 * n if gc else 0.0)
    if method.adapter:
        f += method.extra_flops_per_token(arch, cfg.model_copy(update={"gradient_checkpointing": gc}), method.adapted_modules(arch, cfg))
    return f + 6.0 * arch.num_layers * seq_len * arch.q_dim


def kernels_per_step(arch: Arch, cfg: TrainConfig, kc: KernelCounts | None = None) -> float:
    """Kernels one training step launches (forward, backward and optimizer), counted from the layers,
    adapters, 4-bit linears, experts and parameter tensors of ``cfg`` on ``arch``."""
    return _kernels(arch, cfg, cfg.method_spec.adapted_modules(arch, cfg), kc or DEFAULT.kernels)


def _kernels(arch: Arch, cfg: TrainConfig, mods: tuple[str, ...], kc: KernelCounts, per_step: float = 1.0) -> float:
    """Kernels a micro-batch launches, with ``per_step`` of the optimizer's (1/accumulation)."""
    method = cfg.method_spec
    L = arch.num_layers
    passes = 3 if cfg.gradient_checkpointing else 2
    per_layer = kc.layer_pass + method.kernels_per_layer_pass(arch, mods, kc)
    if arch.attention == "eager":
        per_layer += kc.eager_layer_pass
    if arch.is_moe:
        per_layer += kc.expert_pass * arch.num_experts
    n = kc.fixed + L * passes * per_layer + method.kernels_per_layer_step(kc) * L
    n += per_step * cfg.optimizer_spec.kernels(method.trainable_tensors(arch, mods), kc)
    if cfg.liger:
        n += kc.liger_chunk * liger_chunks(arch, (cfg.seq_len + method.extra_tokens(cfg)) * cfg.batch_size)
    return n


def liger_chunks(arch: Arch, tokens: int) -> int:
    """Chunks liger-kernel's fused linear cross-entropy splits ``tokens`` into (0.8.5,
    ``fused_linear_cross_entropy_forward``): each holds about tokens x hidden logits, rounded to a power of
    two; a small model with a large vocabulary runs many small chunks, each a few kernels and products."""
    inc = -(-arch.vocab_size // arch.hidden_size)
    chunk = min(tokens, 1 << max(0, (-(-tokens // inc) - 1).bit_length()))
    return -(-tokens // chunk)


def comm_seconds(arch: Arch, cfg: TrainConfig, link_gbs: float, accumulation: int = 1, cal: Calibration = DEFAULT) -> float:
    """Seconds one GPU spends sending per micro-batch: the strategy's per-micro-batch bytes plus its
    per-step bytes spread over ``accumulation`` micro-batches, at ``link_gbs`` GB/s (one way) times NCCL's
    share of the link (``StepConstants.nccl_efficiency``, measured on 2 H200s)."""
    if cfg.world_size == 1:
        return 0.0
    t = cfg.strategy_spec.traffic(arch, cfg)
    per_micro = sum(t.per_micro_batch.values()) + sum(t.per_step.values()) / max(1, accumulation)
    return per_micro / (link_gbs * 1e9 * cal.step.nccl_efficiency)


def step_seconds(
    arch: Arch,
    cfg: TrainConfig,
    tflops: float,
    bandwidth_gbs: float,
    cal: Calibration = DEFAULT,
    link_gbs: float | None = None,
    accumulation: int = 1,
    host_s: float = 0.0,
) -> dict[str, float]:
    """Seconds of one micro-batch step of ``cfg`` on a GPU of ``tflops`` dense bf16 TFLOPS and
    ``bandwidth_gbs`` GB/s, by part: ``matmul`` and ``memory`` (GPU), ``launch`` (CPU, with ``host_s`` more
    seconds of it: a padded length new to the run, :func:`ftdecide.core.collation.new_length_host_seconds`),
    ``comm`` (the communication of several GPUs that the kernels do not hide, at ``link_gbs`` GB/s one way: the
    GPU's link within a node, its network share across nodes), and ``total``."""
    k, method = cal.step, cfg.method_spec
    # prompt tuning's virtual tokens pass through every layer and the loss like real ones
    seq = cfg.seq_len + method.extra_tokens(cfg)
    tokens = seq * cfg.batch_size
    gc = cfg.gradient_checkpointing
    recompute = k.recompute_traffic if gc else 1.0
    peak = tflops * 1e12
    attn = 6.0 * arch.num_layers * seq * arch.q_dim * tokens  # the attention share of train_flops_per_token
    linear = train_flops_per_token(arch, cfg, seq_len=seq) * tokens - attn
    attn_s = attn / (peak * k.attn_util)
    if masked_sdpa(arch, cfg):
        attn_s = masked_attention_flops(arch, cfg, seq, tokens) / (peak * k.masked_attn_util)
    elif sliding := sliding_masked_layers(arch, cfg, seq):
        # those layers run the masked kernel over every pair, the others flash attention
        share = sliding / arch.attention_layers
        attn_s = (1 - share) * attn_s + share * masked_attention_flops(arch, cfg, seq, tokens) / (peak * k.masked_attn_util)
    matmul = linear / (peak * cal.utilisation(cfg.variant)) + attn_s * (k.recompute_attention if gc else 1.0)
    mm = memory_model(arch, cfg, cal)
    traffic = k.k_act * mm.layer_bytes(cfg.seq_len) * arch.num_layers * tokens * recompute
    # Liger's fused cross-entropy reads bf16 logit chunks in one kernel instead of the fp32 passes
    traffic += (k.k_logits_liger * 2.0 if cfg.liger else k.k_logits * 4.0) * arch.vocab_size * tokens
    if arch.attention == "eager":
        traffic += k.k_eager * 2.0 * arch.num_layers * arch.num_heads * seq * tokens
        if softcapped_as_written(arch, cfg):
            # the trainers' softcapped scores move more than they save (trainers/__init__.py, eager_traffic_bytes)
            extra = cal.eager_traffic_bytes - cal.eager_saved_bytes
            traffic += k.k_act * extra * arch.num_heads * seq * arch.num_layers * tokens * recompute
    if arch.fused_qkv:
        shapes = arch.linear_shapes()
        fused_out = shapes["qkv_proj"][1] + (shapes["gate_up_proj"][1] if "gate_up_proj" in shapes else 0)
        traffic += k.k_fused * 2.0 * fused_out * arch.num_layers * tokens * recompute
    mods = method.adapted_modules(arch, cfg)
    traffic += method.step_traffic_bytes(arch, cfg, mods, cal)
    optimizer = cfg.optimizer_spec
    # the optimizer steps once every ``accumulation`` micro-batches: a micro-batch carries that share of its
    # traffic, kernels and host time (the probe's loop, on which they were fitted, steps after every one)
    per_step = 1.0 / max(1, accumulation)
    if method.trains_base:
        # paged states are read and written where they are, on the GPU while it has room
        traffic += per_step * (k.k_state * (mm.weights + mm.opt_gpu + mm.opt_managed) + optimizer.update_traffic(mm.trainable_params, cal))
    # every micro-batch after an optimizer step's first adds its gradients into the held ones in place (autograd's
    # AccumulateGrad): reads both, writes one
    traffic += 3.0 * mm.grads * (1.0 - per_step)
    memory = traffic / (bandwidth_gbs * 1e9)
    if method.quantized_base:
        # what the trainer does around a 4-bit base (k-bit preparation or none, the adapters' dtype) moves its kernels'
        # time against the loop's, on which the utilisation was fitted
        scale = cfg.trainer_spec.kbit_step_scale(cal)
        matmul, memory = matmul * scale, memory * scale
    launch = _kernels(arch, cfg, mods, cal.kernels, per_step) * k.kernel_us / 1e6
    launch += per_step * optimizer.host_ms(method.trainable_tensors(arch, mods), mm.paged_tensors, mm.opt_managed, cal) / 1e3 + host_s
    p = k.overlap_p
    gpu = matmul + memory
    offload = 0.0
    if cfg.offload_activations:
        # every saved tensor crosses the host link twice (out in forward, back in backward) on a side
        # stream: hidden behind the kernels unless it takes longer than they do
        saved = (mm.stored_gc if gc else mm.layer_bytes(cfg.seq_len) * arch.num_layers) * tokens
        offload = 2.0 * saved / (k.host_link_gbs * 1e9)
        gpu = max(gpu, offload)
    comm = comm_seconds(arch, cfg, link_gbs, accumulation, cal) if link_gbs else 0.0
    # the strategy overlaps a share of its transfers with the kernels, never more than the kernels last,
    # and its hooks cost time per layer that no transfer explains
    spec = cfg.strategy_spec
    exposed = comm - min(comm * spec.overlap, gpu) + spec.hook_seconds(arch, cfg)
    gpu += exposed
    return {
        "matmul": matmul,
        "memory": memory,
        "offload": offload,
        "comm": exposed,
        "launch": launch,
        "total": (gpu**p + launch**p) ** (1.0 / p),
    }


def paging_seconds(arch: Arch, cfg: TrainConfig, free_gib: float, cal: Calibration = DEFAULT) -> tuple[float, float]:
    """(GiB of a paged optimizer's states that do not fit in ``free_gib`` GiB beside the peak, seconds per
    optimizer step they add). Those pages are not on the GPU when the update needs them: the driver brings
    them in over the host link and evicts others back, about twice their bytes per step at ``host_link_gbs``.
    Read from the mechanism, not measured (every paged run measured had room). (0, 0) for the others."""
    managed = memory_model(arch, cfg, cal).opt_managed / 2**30
    over = max(0.0, managed - max(0.0, free_gib))
    return over, 2.0 * over * 2**30 / (cal.step.host_link_gbs * 1e9)


def tokens_per_second(
    arch: Arch,
    cfg: TrainConfig,
    tflops: float,
    bandwidth_gbs: float,
    cal: Calibration = DEFAULT,
    link_gbs: float | None = None,
    accumulation: int = 1,
) -> float:
    """Training tokens per second of one GPU (see :func:`step_seconds`)."""
    return cfg.seq_len * cfg.batch_size / step_seconds(arch, cfg, tflops, bandwidth_gbs, cal, link_gbs, accumulation)["total"]


def link_gbs(gpu, nodes: int) -> float:
    """GB/s (one way) the collectives of a plan run at: the GPU's link within one node; across nodes, a
    ring crosses the network, whose per-GPU share bounds it."""
    return gpu.intra_node_gbs if nodes <= 1 else min(gpu.intra_node_gbs, gpu.inter_node_gbs)
