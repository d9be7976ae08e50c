"""The one sizing path: a scenario's method on its GPUs (the largest micro-batch that fits, with or without
checkpointing, under each strategy ``auto`` weighs), its step time, time and cost, and the fewest GPUs of
the kind that fit it. Candidates, the scale-out, the levers' figures and every alternative are sized here,
through :func:`train_config`, so they differ only in what they say they change."""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import replace
from functools import partial
from typing import Optional


from ..files import catalog
from .. import levers, methods, strategies, trainers
from ..core.arch import Arch
from ..core.calibration import Calibration
from ..files.catalog import GPU
from ..core.errors import InputError
from ..core.estimator import CUDA_CONTEXT_GIB, TrainConfig, estimate_memory
from ..core.memo import Memo
from ..methods import options as method_options
from ..core.policy import (
    ALTERNATIVE_GPU_COUNTS,
    DEFAULT_GPU,
    DEFAULT_METHOD,
    GLOBAL_BATCH,
    MICRO_BATCHES,
    MEASURED_STRATEGY_PREFERENCE,
    GPUS_PER_NODE,
    MIN_MICRO_BATCH_WITHOUT_CHECKPOINTING,
    LoraShape,
)
from .results import (
    Alternative,
    Candidate,
    accumulation_steps,
)
from ..core.collation import new_length_host_seconds, warmup_seconds
from ..core.throughput import link_gbs, paging_seconds, step_seconds, train_flops_per_token

from .scenario import Scenario

# Strategies ``auto`` weighs on several GPUs, in the order ties go (a replica first: the least traffic).
AUTO_ORDER = ("ddp", "zero1", "zero2", "fsdp", "zero3", "fsdp1")


def resolve_hardware(sc: Scenario) -> GPU:
    """The GPU of a scenario: a catalog card, or one of ``gpu_memory`` GiB (catalog speed and price
    of the default card)."""
    if sc.gpu and sc.gpu_memory:
        raise InputError("give a GPU name or a GPU memory size, not both")
    if sc.gpu_memory is not None:
        if sc.gpu_memory <= CUDA_CONTEXT_GIB:
            raise InputError(f"GPU memory {sc.gpu_memory:g} GiB is smaller than the CUDA context ({CUDA_CONTEXT_GIB} GiB)")
        return catalog.custom_gpu(sc.gpu_memory)
    return catalog.resolve_gpu(sc.gpu or DEFAULT_GPU)


def train_config(
    sc: Scenario,
    method: methods.Method,
    lora: LoraShape,
    batch_size: int = 1,
    gradient_checkpointing: Optional[bool] = None,
    gpus: Optional[int] = None,
    strategy: Optional[str] = None,
    packed: bool = False,
) -> TrainConfig:
    """The one place a scenario becomes a :class:`TrainConfig`: candidates, the fit search and every
    alternative are sized with it, so they differ only in what they say they change. Examples fill the
    sequence unless the user's data is read (padded per micro-batch), or packed (``packed``, or
    ``sc.packing``)."""
    return TrainConfig(
        method=method.name,
        precision=method.precision_for(sc.precision),
        optimizer=sc.optimizer,
        seq_len=sc.seq_len,
        batch_size=batch_size,
        gradient_checkpointing=method.supports_checkpointing if gradient_checkpointing is None else gradient_checkpointing,
        **method_options.plan_values(sc, lora),
        gpus=sc.gpus if gpus is None else gpus,
        nodes=sc.nodes if gpus is None else 1,
        strategy=sc.strategy if strategy is None else strategy,
        offload_params=sc.offload_params,
        offload_optimizer=sc.offload_optimizer,
        liger=sc.liger,
        offload_activations=sc.offload_activations,
        trainer=sc.trainer,
        # the plan's global batch (accumulation_steps): a trainer that accumulates holds every gradient
        # while the later micro-batches of a step run
        gradient_accumulation=accumulation_steps(batch_size, (sc.gpus if gpus is None else gpus) * (sc.nodes if gpus is None else 1)),
        collation=_collation(sc, packed),
    )


def _collation(sc: Scenario, packed: bool) -> str:
    if packed or sc.packing:
        return "packed"
    return "padded" if sc.data is not None else "filled"


# What a scenario's sizing does not read: scenarios of a batch that differ only in these share one memory
# search per model, GPU and method, so a batch of many scenarios costs little more per scenario than its
# rules and its text. Every other field is part of the key: a field added later cannot be served a stale search.
_NOT_SIZING = frozenset(
    {"dataset_size", "task", "quality", "budget", "serving", "epochs", "price_per_hour", "rules", "data", "dataset"}
    | {"variants", "months", "serve_gpu", "serve_context", "concurrency", "task_sizes"}
)
# a batch's scenarios and the switches offered where nothing fits (each sized as a plan is) share it: emptied when
# full, so it holds a 10,000-scenario batch's searches without thrashing (207 MB at most, benchmarks/speed.py)
_FIT_CACHE = Memo(limit=80_000)


_SIZING_KEYS = Memo(limit=1024)


def _sizing_key(sc: Scenario) -> tuple:
    """The fields of ``sc`` its sizing reads, as a key (a scenario is frozen: built once for each)."""
    return _SIZING_KEYS.of(sc, "sizing", lambda: tuple((f, getattr(sc, f)) for f in type(sc).model_fields if f not in _NOT_SIZING))


def _fit_config(
    arch: Arch,
    gpu: GPU,
    sc: Scenario,
    method: methods.Method,
    lora: LoraShape,
    cal: Calibration,
    strategy: Optional[str] = None,
    capacity: Optional[float] = None,
    packed: bool = False,
    micro_batch: Optional[int] = None,
):
    """:func:`_search_fit`, remembered across the scenarios of a process (keyed on the architecture and
    calibration objects, checked, and on every field the search reads); the estimate is a copy, since
    callers add notes to it."""
    key = (gpu.memory_gib, method.name, lora, strategy, capacity, _sizing_key(sc), _collation(sc, packed), micro_batch)
    cfg, est, fits = _FIT_CACHE.get(
        (arch, cal), key, _search_fit, arch, gpu, sc, method, lora, cal, strategy, capacity, packed, micro_batch
    )
    return cfg, replace(est, notes=list(est.notes), breakdown=dict(est.breakdown)), fits


def _at_micro_batch(cfg: TrainConfig, mb: int) -> TrainConfig:
    """``cfg`` at micro-batch ``mb``, with the accumulation that keeps the global batch (as :func:`train_config`)."""
    return cfg.model_copy(update={"batch_size": mb, "gradient_accumulation": accumulation_steps(mb, cfg.world_size)})


def _tried(sc: Scenario, method: methods.Method) -> tuple[tuple[bool, ...], list[int]]:
    """(checkpointing off and on, micro-batches from the largest) that :func:`_search_fit` tries: micro-batches up to
    the global batch's share of one GPU, checkpointing where the method can have it."""
    share = max(1, GLOBAL_BATCH // sc.world_size)
    return (False, True) if method.supports_checkpointing else (False,), [m for m in MICRO_BATCHES if m <= share]


def _search_fit(
    arch: Arch,
    gpu: GPU,
    sc: Scenario,
    method: methods.Method,
    lora: LoraShape,
    cal: Calibration,
    strategy: Optional[str] = None,
    capacity: Optional[float] = None,
    packed: bool = False,
    micro_batch: Optional[int] = None,
):
    """(config, estimate, fits): the largest micro-batch of :data:`MICRO_BATCHES` that fits, without
    checkpointing where that still allows :data:`MIN_MICRO_BATCH_WITHOUT_CHECKPOINTING`. Micro-batches
    beyond the global batch's share of one GPU (16 over 8 GPUs: 2) are not tried, so that more GPUs do
    not grow the global batch. With ``micro_batch``, that one only."""
    small = None
    checkpointing, micro_batches = _tried(sc, method)
    for gc in checkpointing:
        first = None
        for mb in (m for m in micro_batches if micro_batch in (None, m)):
            # the search's own micro-batches, valid by construction: one configuration validated, the rest its copies
            if first is None:
                cfg = first = train_config(sc, method, lora, mb, gc, strategy=strategy, packed=packed)
            else:
                cfg = _at_micro_batch(first, mb)
            est = estimate_memory(arch, cfg, cal)
            if est.required_gib <= (gpu.memory_gib if capacity is None else capacity):
                if gc or mb >= MIN_MICRO_BATCH_WITHOUT_CHECKPOINTING or micro_batch:
                    return cfg, est, True
                small = small or (cfg, est)
                break
    if small:
        return small[0], small[1], True
    cfg = train_config(sc, method, lora, strategy=strategy, packed=packed)
    return cfg, estimate_memory(arch, cfg, cal), False


def _candidate(
    arch: Arch,
    gpu: GPU,
    sc: Scenario,
    method: methods.Method,
    lora: LoraShape,
    epochs: int,
    price: float,
    cal: Calibration,
    capacity: float,
) -> Candidate:
    """The method sized for the scenario's GPUs. With ``auto`` on several GPUs, every strategy of
    :data:`AUTO_ORDER` that can run the plan is sized and the cheapest that fits is kept (the first,
    where none fits)."""
    collated = partial(_collated, arch, gpu, sc, method, lora, epochs, price, cal)
    if not strategies.is_auto(sc.strategy) or sc.world_size == 1:
        return collated(None, capacity)
    options = []
    for name in AUTO_ORDER:
        c = collated(name, capacity)
        if c.config.run_problem() is None:
            options.append(c)
    if not options:  # every strategy refuses the run (--packing of soft prompts): sized with its refusal, never the plan
        return collated(AUTO_ORDER[0], capacity)
    fitting = [c for c in options if c.fits]
    # a strategy whose emitted launch was seen to fail on this kind of plan only where nothing else fits
    launches = [c for c in fitting if c.config.strategy_spec.launch_problem(arch, c.config) is None]
    fitting = launches or fitting
    if not fitting:
        # what it says it needs is the least any strategy needs, not the last one tried
        return min(options, key=lambda c: c.estimate.required_gib)
    best = min(fitting, key=lambda c: c.cost_usd)
    # a strategy measured on GPUs wins over a modelled one that is barely cheaper by the model
    measured = [c for c in fitting if c.config.strategy_spec.measured]
    if measured and min(c.cost_usd for c in measured) <= best.cost_usd * (1 + MEASURED_STRATEGY_PREFERENCE):
        return min(measured, key=lambda c: c.cost_usd)
    return best


_STEP_CACHE = Memo(limit=65536)


def _step(arch: Arch, cfg: TrainConfig, gpu: GPU, cal: Calibration, link: float, accumulation: int, host: float = 0.0) -> dict:
    """:func:`ftdecide.core.throughput.step_seconds`, remembered across the scenarios of a process (the
    configuration is frozen and hashable; the architecture and calibration by identity, checked)."""
    key = (cfg, gpu.bf16_tflops, gpu.memory_bandwidth_gbs, link, accumulation, host)
    return _STEP_CACHE.get(
        (arch, cal), key, step_seconds, arch, cfg, gpu.bf16_tflops, gpu.memory_bandwidth_gbs, cal, link, accumulation, host
    )


def _with_new_lengths(arch: Arch, cfg: TrainConfig, gpu: GPU, cal: Calibration, link: float, accumulation: int, new: float) -> float:
    """Seconds of a micro-batch at ``cfg``'s shape when a share ``new`` of them has a length new to the run, which pays
    cuDNN's host time (:func:`ftdecide.core.collation.new_length_host_seconds`) on top of its step."""
    seen = _step(arch, cfg, gpu, cal, link, accumulation)["total"]
    host = new_length_host_seconds(arch, cfg, cal)
    if not (host and new):
        return seen
    return (1 - new) * seen + new * _step(arch, cfg, gpu, cal, link, accumulation, host)["total"]


def data_epoch_seconds(
    arch: Arch, cfg: TrainConfig, gpu: GPU, cal: Calibration, link: float, accumulation: int, data, epochs: int = 1, paging: float = 0.0
) -> float:
    """Seconds of one epoch of the user's ``data`` (a :class:`ftdecide.files.dataset.DataStats`) at ``cfg``, all its
    micro-batches on one GPU (divide by the GPUs that share them), with ``paging`` seconds an optimizer step.

    - Packed (``cfg.packing``): the examples, cut at the sequence length, in rows of it; micro-batches of rows, each
      one flattened sequence at the plan's shape.
    - Padded per micro-batch (the trainers' default collation): each micro-batch at its own length's step time.

    Either way, those of a length new to the run (over ``epochs`` epochs) also pay cuDNN's host time
    (core/collation.py)."""
    seq = cfg.seq_len
    if cfg.packing:
        new = data.packed_new_length_share(seq, cfg.batch_size) / max(1, epochs)
        per = _with_new_lengths(arch, cfg, gpu, cal, link, accumulation, new)
        return math.ceil(data.packed_rows(seq) / cfg.batch_size) * (per + paging / accumulation)
    new = data.new_length_share(seq, cfg.batch_size) / max(1, epochs)
    return sum(
        n * (_with_new_lengths(arch, cfg.model_copy(update={"seq_len": length}), gpu, cal, link, accumulation, new) + paging / accumulation)
        for length, n in data.micro_batches(seq, cfg.batch_size).items()
    )


def _collated(
    arch: Arch,
    gpu: GPU,
    sc: Scenario,
    method: methods.Method,
    lora: LoraShape,
    epochs: int,
    price: float,
    cal: Calibration,
    strategy: Optional[str],
    capacity: float,
) -> Candidate:
    """:func:`_sized`, and where the user's data is read and packing is left to the plan (``sc.packing`` None),
    also packed where the trainer and the method can pack: the packed plan where it fits and costs less. On held-out
    epochs the plan is under for every packed one (eight, median 5.1%) and within 4.5% in median for padded ones
    (eight; docs/accuracy.md, "Data"), so where the two are within about a twentieth the plan may pack where padding is
    as fast.
    On the four measured pairs of one data set run both ways it chose as the runs did (tests/test_packing.py)."""
    sized = partial(_sized, arch, gpu, sc, method, lora, epochs, price, cal, strategy, capacity)
    padded = sized()
    if sc.data is None or sc.packing is not None or trainers.get(sc.trainer).packing_problem() or method.packing_problem():
        return padded
    packed = sized(packed=True)
    # a packed micro-batch is one sequence whose masked attention grows with its square: a smaller one may be faster
    for mb in (m for m in MICRO_BATCHES if m < packed.micro_batch_size):
        c = sized(packed=True, micro_batch=mb)
        if c.fits and c.cost_usd < packed.cost_usd:
            packed = c
    hours = {"padded": padded.time_hours, "packed": packed.time_hours}
    best = packed if packed.fits and (packed.cost_usd < padded.cost_usd or not padded.fits) else padded
    if best is packed:
        # a packed row holds several examples: the same global batch of rows holds more examples a step
        per_row = sc.dataset_size / sc.data.packed_rows(sc.seq_len)
        best.estimate.notes.append(
            f"examples packed into rows of {sc.seq_len:,} tokens, about {per_row:.1f} a row: an optimizer step of "
            f"{GLOBAL_BATCH} rows holds about {GLOBAL_BATCH * per_row:.0f} examples where padded it holds {GLOBAL_BATCH} "
            "(fewer optimizer steps an epoch)"
        )
    return replace(best, collation_hours=hours)


def _sized(
    arch: Arch,
    gpu: GPU,
    sc: Scenario,
    method: methods.Method,
    lora: LoraShape,
    epochs: int,
    price: float,
    cal: Calibration,
    strategy: Optional[str],
    capacity: float,
    packed: bool = False,
    micro_batch: Optional[int] = None,
) -> Candidate:
    cfg, est, fits = _fit_config(arch, gpu, sc, method, lora, cal, strategy, capacity, packed, micro_batch)
    fits = fits and method.unsupported(arch, cfg) is None  # sized, but its library cannot train this model
    # the one refusal check (TrainConfig.run_problem) every command applies: an explicit --strategy that
    # cannot run this method (QLoRA under FSDP2, 8-bit AdamW under FSDP2) is sized but never the plan
    refusal = cfg.run_problem()
    if refusal and fits:
        fits = False
        est.notes.append(f"cannot run as asked: {refusal}")
    # what it needs where it can run, which a reason quotes of it (not the figure of a sizing that cannot run);
    # infinite where none runs it (packed soft prompts)
    needs = math.inf
    if refusal:
        needs = least_gib(arch, sc.model_copy(update={"strategy": "auto", "offload_params": False}), method, lora, cal)
    tokens = sc.dataset_size * sc.seq_len * epochs
    world = sc.world_size
    link = link_gbs(gpu, sc.nodes)
    accumulation = accumulation_steps(cfg.batch_size, world)
    step = _step(arch, cfg, gpu, cal, link, accumulation)
    over, paging = paging_seconds(arch, cfg, capacity - est.required_gib, cal)
    if over > 0:
        est.notes.append(
            f"paged optimizer: {over:.1f} GiB of its states do not fit beside the peak on {gpu.name}: they cross to host "
            f"memory and back every optimizer step, about {paging:.2f} s each (modelled, not measured)"
        )
    tps = cfg.seq_len * cfg.batch_size / (step["total"] + paging / accumulation)
    hours = tokens / (tps * world) / 3600
    if sc.data is not None:
        seconds = data_epoch_seconds(arch, cfg, gpu, cal, link, accumulation, sc.data, epochs, paging)
        hours = epochs * seconds / world / 3600
        # the tokens an epoch computes: its packed rows, or its micro-batches padded to their longest
        done = sc.data.packed_rows(sc.seq_len) * sc.seq_len if cfg.packing else sc.data.epoch_tokens(sc.seq_len, cfg.batch_size)[0]
        tps = done * epochs / (hours * 3600 * world) if hours else tps
    # the first steps' warm-up, once a run: every GPU pays it at once (tokens per second stay the steady ones)
    hours += warmup_seconds(arch, cfg, cal) / 3600
    mfu = _STEP_CACHE.get((arch, cal), (cfg, "flops"), train_flops_per_token, arch, cfg) * tps / (gpu.bf16_tflops * 1e12)
    return Candidate(
        method=method.name,
        fits=fits,
        config=cfg,
        estimate=est,
        gpu_memory_gib=gpu.memory_gib,
        tokens_per_second=tps,
        mfu=mfu,
        time_hours=hours,
        cost_usd=hours * price * world,
        needs_gib=needs if math.isfinite(needs) else None,
    )


def _min_gpus(sc: Scenario, cands: dict[str, Candidate], scaled: dict[str, Optional[Alternative]]) -> dict[str, float]:
    """{method: the fewest GPUs it fits on}: the scenario's where it fits, the scale-out's count where more
    fit it, infinite where 64 do not (or its library cannot train the model)."""
    out: dict[str, float] = {}
    for name, c in cands.items():
        hit = scaled.get(name)
        out[name] = float(sc.world_size) if c.fits else (hit.details["gpus"] * hit.details["nodes"] if hit else math.inf)
    return out


def _scale_out(
    arch: Arch,
    gpu: GPU,
    sc: Scenario,
    method: methods.Method,
    lora: LoraShape,
    epochs: int,
    price: float,
    cal: Calibration,
    margin: float,
) -> Optional[Alternative]:
    """The fewest GPUs of this kind beyond the scenario's (up to one node of 8, then whole nodes) on which
    ``method`` fits, with the strategy ``auto`` picks there, its time and cost; None where 64 do not."""
    for n in ALTERNATIVE_GPU_COUNTS:
        if n <= sc.world_size:
            continue
        gpus, nodes = (n, 1) if n <= GPUS_PER_NODE else (GPUS_PER_NODE, n // GPUS_PER_NODE)
        more = sc.model_copy(update={"gpus": gpus, "nodes": nodes})
        c = _candidate(arch, gpu, more, method, lora, epochs, price, cal, usable(gpu, margin))
        if c.fits:
            where = f"{n}x {gpu.name}" + (f" ({nodes} nodes)" if nodes > 1 else "")
            return Alternative(
                "scale_out",
                f"{method.label}: {where}, {c.config.strategy_spec.label}, {c.time_hours:,.1f} h, ${round(c.cost_usd, 2):,.0f}",
                {
                    "method": method.name,
                    "gpus": gpus,
                    "nodes": nodes,
                    "strategy": c.config.strategy_spec.name,
                    "required_gib": round(c.required_gib, 2),
                    "time_hours": round(c.time_hours, 3),
                    "cost_usd": round(c.cost_usd, 2),
                },
            )
    return None


def _lever_sizes(arch: Arch, sc: Scenario, field: str, lora: LoraShape, cal: Calibration) -> dict[str, float]:
    """{method: GiB required at micro-batch 1} with the scenario field of a lever switched on; infinite
    where the model cannot have it (Liger on a family it does not patch)."""
    if levers.get(field).problem(arch):
        return {m.name: math.inf for m in methods.all_methods()}
    on = sc.model_copy(update={field: True})
    cfgs = {m.name: train_config(on, m, lora) for m in methods.all_methods()}
    # a method the scenario's strategy refuses does not fit with the lever either
    return {name: math.inf if c.run_problem() else estimate_memory(arch, c, cal).required_gib for name, c in cfgs.items()}


def least_gib(arch: Arch, sc: Scenario, method, shape: LoraShape, cal: Calibration) -> float:
    """GiB the method needs at least of what :func:`_candidate` tries, under the scenario's strategy or, with ``auto``
    on several GPUs, each strategy ``auto`` weighs that can run it (infinite: none can): nothing fits where this
    does not. Not micro-batch 1 alone: a trainer that accumulates holds every gradient across a step's
    micro-batches (FSDP2 unsharded), so the least micro-batch that needs no accumulation can need less (Gemma-2-9B
    fully fine-tuned over 8 L4s: 18.2 GiB at micro-batch 2, 32.5 at 1). Within one accumulation and checkpointing,
    a larger micro-batch holds more, so the least micro-batch and the least without accumulation, checkpointed or
    not, packed too where the search may pack, bound the rest."""
    key = (method.name, shape, _sizing_key(sc), sc.data is not None)
    return _FIT_CACHE.get((arch, cal), ("least", key), _least_gib, arch, sc, method, shape, cal)


def _least_gib(arch: Arch, sc: Scenario, method, shape: LoraShape, cal: Calibration) -> float:
    names = AUTO_ORDER if strategies.is_auto(sc.strategy) and sc.world_size > 1 else (None,)
    gcs, tried = _tried(sc, method)
    whole = [m for m in tried if accumulation_steps(m, sc.world_size) == 1]
    mbs = {min(tried), min(whole, default=min(tried))}
    packs = (False, True) if sc.data is not None and sc.packing is None else (False,)
    cfgs = (train_config(sc, method, shape, mb, gc, strategy=s, packed=p) for s in names for mb in mbs for gc in gcs for p in packs)
    return min((estimate_memory(arch, c, cal).required_gib for c in cfgs if c.run_problem() is None), default=math.inf)


def usable(gpu: GPU, margin: float) -> float:
    """GiB of ``gpu`` a plan may require, keeping ``margin`` of the card free."""
    return gpu.memory_gib * (1.0 - margin)


def _refuse_scenario(sc: Scenario, arch: Optional[Arch] = None) -> None:
    """Options no method of the scenario can honour, refused in one line before anything is sized: a
    trainer that cannot train the model, and the strategy's own refusals of the scenario's GPUs and
    offloads (the same checks ``estimate`` makes)."""
    problem = trainers.get(sc.trainer).unsupported(arch) if arch is not None else None
    if problem:
        raise InputError(problem)
    if sc.offload_optimizer and strategies.is_auto(sc.strategy):
        raise InputError(
            "--offload-optimizer: only DeepSpeed ZeRO offloads optimizer states in what ftdecide emits: "
            "give --strategy zero1, zero2 or zero3"
        )
    if not strategies.is_auto(sc.strategy):
        # refused where no method can run it (FSDP1 takes a 4-bit base only: the other methods are sized with their
        # refusal), with the reason most methods give (the scenario's own, such as an optimizer FSDP2 cannot step,
        # not one method's), the default method's where they tie
        fields = dict(optimizer=sc.optimizer, gpus=sc.gpus, nodes=sc.nodes, strategy=sc.strategy, trainer=sc.trainer)
        fields.update(offload_params=sc.offload_params, offload_optimizer=sc.offload_optimizer)
        names = sorted((m.name for m in methods.all_methods()), key=lambda name: name != DEFAULT_METHOD)
        problems = [cfg.strategy_spec.problem(cfg) for cfg in (TrainConfig(method=name, **fields) for name in names)]
        if all(problems):
            raise InputError(Counter(problems).most_common(1)[0][0])
