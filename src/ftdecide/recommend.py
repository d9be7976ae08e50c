"""Decide how to fine-tune: candidates, their memory, time and cost, and the rules' verdict.

Pure functions over pydantic models and the typed results of :mod:`ftdecide.results`; nothing here
prints or reads the terminal. Every method comes from the registry (:mod:`ftdecide.methods`), every
policy number from :mod:`ftdecide.policy` or the rule files, every name a rule may read from
:mod:`ftdecide.rulenames`.
"""

from __future__ import annotations

import math
from dataclasses import replace
from typing import Literal, Optional

from pydantic import BaseModel, ConfigDict, Field, field_validator

from . import catalog, methods, optimizers, rulenames, rules, strategies, trainers
from .arch import Arch
from .calibration import DEFAULT, Calibration
from .catalog import GPU
from .errors import InputError, error_message, finite
from .levers import liger_problem
from .estimator import CUDA_CONTEXT_GIB, TrainConfig, estimate_memory
from .policy import (
    ALTERNATIVE_GPU_COUNTS,
    ALTERNATIVE_MAX_RANK,
    ALTERNATIVE_MIN_SEQ_LEN,
    ALTERNATIVE_RANKS,
    DEFAULT_EPOCHS,
    DEFAULT_GPU,
    DEFAULT_LORA,
    DEFAULT_METHOD,
    DEFAULT_VIRTUAL_TOKENS,
    DEFAULT_ADAPTER_REDUCTION,
    GLOBAL_BATCH,
    MICRO_BATCHES,
    SAFETY_MARGIN,
    MEASURED_STRATEGY_PREFERENCE,
    GPUS_PER_NODE,
    MIN_MICRO_BATCH_WITHOUT_CHECKPOINTING,
    SCENARIO_DEFAULTS,
    LoraShape,
)
from .results import (
    SCHEMA_VERSION,
    Alternative,
    Candidate,
    Deployment,
    Evaluation,
    LoraSettings,
    Message,
    Plan,
    Recommendation,
    accumulation_steps,
)
from .throughput import link_gbs, paging_seconds, step_seconds, train_flops_per_token

__all__ = ["SCHEMA_VERSION", "Scenario", "recommend", "resolve_hardware", "train_config", "validate_scenario"]

Task = Literal["chat", "instruction", "style", "classification", "domain", "code", "math", "continued-pretraining"]


class Scenario(BaseModel):
    """What the user wants to do. Sizes: examples and tokens; budget in USD; memory in GiB.
    ``rules``: extra rule files, applied after the defaults (paths as given, or relative to the
    scenario file they were written in)."""

    model_config = ConfigDict(extra="forbid")
    model: str
    gpu: Optional[str] = None
    gpu_memory: Optional[float] = Field(None, gt=0, le=4096)
    gpus: int = Field(SCENARIO_DEFAULTS["gpus"], ge=1, le=1024)  # per node
    nodes: int = Field(1, ge=1, le=1024)
    strategy: str = "auto"
    offload_params: bool = False
    dataset_size: int = Field(SCENARIO_DEFAULTS["dataset_size"], ge=1, le=10_000_000_000)
    seq_len: int = Field(SCENARIO_DEFAULTS["seq_len"], ge=16, le=1_048_576)
    task: Task = SCENARIO_DEFAULTS["task"]
    quality: Literal["prototype", "production", "best"] = SCENARIO_DEFAULTS["quality"]
    budget: Optional[float] = Field(None, gt=0, le=1e9)
    serving: Literal["single", "multi-tenant", "latency-critical"] = SCENARIO_DEFAULTS["serving"]
    epochs: Optional[int] = Field(None, ge=1, le=100)
    price_per_hour: Optional[float] = Field(None, ge=0, le=10_000)
    precision: Literal["bf16", "mixed"] = SCENARIO_DEFAULTS["precision"]
    optimizer: str = SCENARIO_DEFAULTS["optimizer"]
    offload_optimizer: bool = False
    liger: bool = False
    offload_activations: bool = False
    virtual_tokens: int = Field(DEFAULT_VIRTUAL_TOKENS, ge=1, le=65536)
    adapter_reduction: int = Field(DEFAULT_ADAPTER_REDUCTION, ge=1, le=65536)
    rules: tuple[str, ...] = Field((), max_length=64)
    # what the user will run (ftdecide.trainers): the plan is sized for its memory
    trainer: str = trainers.DEFAULT

    @field_validator("trainer")
    @classmethod
    def _known_trainer(cls, v: str) -> str:
        return trainers.known(v)

    @field_validator("strategy")
    @classmethod
    def _known_strategy(cls, v: str) -> str:
        return strategies.known(v)

    @field_validator("optimizer")
    @classmethod
    def _known_optimizer(cls, v: str) -> str:
        return optimizers.known(v)

    @property
    def world_size(self) -> int:
        return self.gpus * self.nodes

    @field_validator("virtual_tokens")
    @classmethod
    def _virtual_tokens_fit(cls, v: int, info) -> int:
        # only when given (a field validator runs for given values): the default is shortened to the sequence
        seq = info.data.get("seq_len")
        if seq is not None and v > seq:
            raise ValueError(f"{v} virtual tokens is more than the sequence ({seq} tokens)")
        return v

    @field_validator("gpu_memory", "budget", "price_per_hour", mode="before")
    @classmethod
    def _finite(cls, v):
        # before the bounds: NaN compares false with every bound and would be named as out of range
        return finite(v) if isinstance(v, float) else v


def validate_scenario(
    fields: dict, path: Optional[str] = None, key_lines: Optional[dict] = None, line: Optional[int] = None, name: Optional[str] = None
) -> Scenario:
    """``Scenario(**fields)``, or an InputError placed in the file: the line of the offending key when
    the fields came from a file (``key_lines``: key -> 1-based line; ``line``: the scenario's own line,
    used when the key has none), the scenario's ``name`` in a file of many, then the option and what is
    wrong."""
    from pydantic import ValidationError

    try:
        return Scenario(**fields)
    except ValidationError as e:
        err = e.errors()[0]
        key = ".".join(str(x) for x in err["loc"][:1])
        kl = key_lines or {}
        at = kl.get(key) or kl.get(key.replace("_", "-")) or line
        label = f"scenario '{name}': " if name else ""
        what = error_message(err)
        raise InputError(f"{label}{key.replace('_', '-') or 'input'}: {what}", path if at else None, at if path else None) from None


# Said with every plan on several GPUs: what its per-GPU memory rests on (the strategy's basis) and what
# its step time rests on: timed on 2 H200s over NVLink only (issue 11), so other links, more GPUs and
# several nodes are extrapolated.
MULTI_GPU_CAVEAT = (
    "{label} over {world} GPUs: per-GPU memory {basis}; communication time modelled ({link:g} GB/s links, "
    "{overlap:.0%} hidden behind the kernels), timed on 2 H200s over NVLink only: keep a margin"
)
# Strategies ``auto`` weighs on several GPUs, in the order ties go (a replica first: the least traffic).
AUTO_ORDER = ("ddp", "zero1", "zero2", "fsdp", "zero3")


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


def default_rule_paths() -> list[str]:
    return [str(catalog.config_dir() / "rules" / "default.yaml")]


def train_config(
    sc: Scenario,
    method: methods.Method,
    lora: LoraShape,
    batch_size: int = 1,
    gradient_checkpointing: Optional[bool] = None,
    gpus: Optional[int] = None,
    strategy: Optional[str] = None,
) -> TrainConfig:
    """The one place a scenario becomes a :class:`TrainConfig`: candidates, the fit search and every
    alternative are sized with it, so they differ only in what they say they change."""
    return TrainConfig(
        method=method.name,
        precision=method.precision_for(sc.precision),
        optimizer=sc.optimizer,
        seq_len=sc.seq_len,
        batch_size=batch_size,
        gradient_checkpointing=method.supports_checkpointing if gradient_checkpointing is None else gradient_checkpointing,
        lora_rank=lora.rank,
        lora_targets=lora.targets,
        lora_dropout=lora.dropout,
        virtual_tokens=min(sc.virtual_tokens, sc.seq_len),
        adapter_reduction=sc.adapter_reduction,
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
    )


# What a scenario's sizing reads (train_config): scenarios of a batch that agree on these, the model, the
# GPU and the method share one search, so a batch of many scenarios costs little more per scenario than
# its rules and its text.
_SIZING_FIELDS = (
    "precision",
    "optimizer",
    "seq_len",
    "virtual_tokens",
    "adapter_reduction",
    "gpus",
    "nodes",
    "strategy",
    "offload_params",
    "offload_optimizer",
    "liger",
    "offload_activations",
    "trainer",
)
_FIT_CACHE: dict[tuple, tuple] = {}


def _fit_config(
    arch: Arch,
    gpu: GPU,
    sc: Scenario,
    method: methods.Method,
    lora: LoraShape,
    cal: Calibration,
    strategy: Optional[str] = None,
    capacity: Optional[float] = None,
):
    """:func:`_search_fit`, remembered across the scenarios of a process (keyed on the architecture and
    calibration objects, checked, and on every field the search reads); the estimate is a copy, since
    callers add notes to it."""
    key = (id(arch), id(cal), gpu.memory_gib, method.name, lora, strategy, capacity, *(getattr(sc, f) for f in _SIZING_FIELDS))
    hit = _FIT_CACHE.get(key)
    if hit is None or hit[0] is not arch or hit[1] is not cal:
        if len(_FIT_CACHE) > 20_000:
            _FIT_CACHE.clear()
        hit = _FIT_CACHE[key] = (arch, cal, _search_fit(arch, gpu, sc, method, lora, cal, strategy, capacity))
    cfg, est, fits = hit[2]
    return cfg, replace(est, notes=list(est.notes), breakdown=dict(est.breakdown)), fits


def _search_fit(
    arch: Arch,
    gpu: GPU,
    sc: Scenario,
    method: methods.Method,
    lora: LoraShape,
    cal: Calibration,
    strategy: Optional[str] = None,
    capacity: Optional[float] = None,
):
    """(config, estimate, fits): the largest micro-batch of :data:`MICRO_BATCHES` that fits, without
    checkpointing where that still allows :data:`MIN_MICRO_BATCH_WITHOUT_CHECKPOINTING`. Micro-batches
    beyond the global batch's share of one GPU (16 over 8 GPUs: 2) are not tried, so that more GPUs do
    not grow the global batch."""
    small = None
    share = max(1, GLOBAL_BATCH // sc.world_size)
    for gc in (False, True) if method.supports_checkpointing else (False,):
        for mb in (m for m in MICRO_BATCHES if m <= share):
            cfg = train_config(sc, method, lora, mb, gc, strategy=strategy)
            est = estimate_memory(arch, cfg, cal)
            if est.required_gib <= (gpu.memory_gib if capacity is None else capacity):
                if gc or mb >= MIN_MICRO_BATCH_WITHOUT_CHECKPOINTING:
                    return cfg, est, True
                small = small or (cfg, est)
                break
    if small:
        return small[0], small[1], True
    cfg = train_config(sc, method, lora, strategy=strategy)
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
    if not strategies.is_auto(sc.strategy) or sc.world_size == 1:
        return _sized(arch, gpu, sc, method, lora, epochs, price, cal, None, capacity)
    options = []
    for name in AUTO_ORDER:
        c = _sized(arch, gpu, sc, method, lora, epochs, price, cal, name, capacity)
        if c.config.run_problem() is None:
            options.append(c)
    fitting = [c for c in options if c.fits]
    # a strategy whose emitted launch was seen to fail on this kind of plan only where nothing else fits
    launches = [c for c in fitting if c.config.strategy_spec.launch_problem(arch, c.config) is None]
    fitting = launches or fitting
    if not fitting:
        return options[-1]
    best = min(fitting, key=lambda c: c.cost_usd)
    # a strategy measured on GPUs wins over a modelled one that is barely cheaper by the model
    measured = [c for c in fitting if c.config.strategy_spec.measured]
    if measured and min(c.cost_usd for c in measured) <= best.cost_usd * (1 + MEASURED_STRATEGY_PREFERENCE):
        return min(measured, key=lambda c: c.cost_usd)
    return best


_STEP_CACHE: dict[tuple, tuple] = {}


def _step(arch: Arch, cfg: TrainConfig, gpu: GPU, cal: Calibration, link: float, accumulation: int) -> dict:
    """:func:`ftdecide.throughput.step_seconds`, remembered across the scenarios of a process (the
    configuration is frozen and hashable; the architecture and calibration by identity, checked)."""
    key = (id(arch), id(cal), cfg, gpu.bf16_tflops, gpu.memory_bandwidth_gbs, link, accumulation)
    hit = _STEP_CACHE.get(key)
    if hit is None or hit[0] is not arch or hit[1] is not cal:
        if len(_STEP_CACHE) > 32768:
            _STEP_CACHE.clear()
        hit = _STEP_CACHE[key] = (arch, cal, step_seconds(arch, cfg, gpu.bf16_tflops, gpu.memory_bandwidth_gbs, cal, link, accumulation))
    return hit[2]


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
) -> Candidate:
    cfg, est, fits = _fit_config(arch, gpu, sc, method, lora, cal, strategy, capacity)
    fits = fits and method.unsupported(arch) is None  # sized, but its library cannot train this model
    # the one refusal check (TrainConfig.run_problem) every command applies: an explicit --strategy that
    # cannot run this method (QLoRA under FSDP2, 8-bit AdamW under FSDP2) is sized but never the plan
    refusal = cfg.run_problem()
    if refusal and fits:
        fits = False
        est.notes.append(f"cannot run as asked: {refusal}")
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
    mfu = train_flops_per_token(arch, cfg) * tps / (gpu.bf16_tflops * 1e12)
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
    if field == "liger" and liger_problem(arch):
        return {m.name: math.inf for m in methods.all_methods()}
    on = sc.model_copy(update={field: True})
    return {m.name: estimate_memory(arch, train_config(on, m, lora), cal).required_gib for m in methods.all_methods()}


def _lora_from_rules(arch: Arch, settings: dict) -> LoraShape:
    """The LoRA shape the rules set. The rank is capped by the targeted layers; a rule's alpha
    holds for the rank it set, and where the rank had to shrink alpha stays 2x rank."""
    targets = str(settings.get("targets", DEFAULT_LORA.targets))
    try:
        max_rank = arch.max_lora_rank(arch.resolve_targets(targets))
    except InputError as e:
        raise e.at(prefix=f"rules set LoRA targets '{targets}': ") from None
    requested = int(settings.get("rank", DEFAULT_LORA.rank))
    rank = min(requested, max_rank)
    alpha = int(settings["alpha"]) if ("alpha" in settings and rank == requested) else 2 * rank
    return LoraShape(rank=rank, alpha=alpha, targets=targets, dropout=float(settings.get("dropout", DEFAULT_LORA.dropout)))


def _assumptions(cal: Calibration) -> dict:
    by_flops: dict[float, list[str]] = {}
    for m in methods.all_methods():
        by_flops.setdefault(m.flops_per_param, []).append(m.short_label)
    flops = ", ".join(f"{f:g}N {'/'.join(names)}" for f, names in by_flops.items())
    return {
        "matmul_utilisation": dict(cal.util),
        "attention_utilisation": cal.step.attn_util,
        "flops_per_token": f"{flops}, +2N with checkpointing, + attention",
        "time": "per step: the GPU stream (FLOPs at the method's matmul utilisation, attention at its own, memory-bound traffic at "
        "the GPU's bandwidth) against the CPU stream (kernels launched x time per kernel), combined by a fitted p-norm "
        "(ftdecide/throughput.py); GPUs scale linearly",
        "memory": "peak of the Hugging Face stack (transformers+peft+bitsandbytes, sdpa, bf16 autocast), "
        "plus CUDA context and allocator headroom",
        "global_batch_size": GLOBAL_BATCH,
    }


def _refuse_scenario(sc: Scenario) -> None:
    """Options no method of the scenario can honour, refused in one line before anything is sized: the
    strategy's own refusals of the scenario's GPUs and offloads (the same check ``estimate`` makes)."""
    if sc.offload_optimizer and strategies.is_auto(sc.strategy):
        raise InputError(
            "--offload-optimizer: only DeepSpeed ZeRO offloads optimizer states in what ftdecide emits: "
            "give --strategy zero1, zero2 or zero3"
        )
    if not strategies.is_auto(sc.strategy):
        cfg = TrainConfig(
            method=DEFAULT_METHOD,
            optimizer=sc.optimizer,
            gpus=sc.gpus,
            nodes=sc.nodes,
            strategy=sc.strategy,
            offload_params=sc.offload_params,
            offload_optimizer=sc.offload_optimizer,
        )
        problem = cfg.strategy_spec.problem(cfg)
        if problem:
            raise InputError(problem)


def recommend(sc: Scenario, rule_paths: Optional[list[str]] = None, cal: Calibration = DEFAULT) -> Recommendation:
    """The whole recommendation for ``sc``: every method sized for its GPU, the rules' verdict, the
    plan, and what would make an infeasible plan feasible. ``rule_paths`` extend the defaults and the
    scenario's own ``rules``."""
    arch = catalog.resolve_model(sc.model)
    gpu = resolve_hardware(sc)
    _refuse_scenario(sc)
    fp16_master = not gpu.bf16 and sc.precision == "bf16"
    if fp16_master:
        # without bf16 the trainers train in fp16, whose grad scaler cannot unscale fp16 weights ("Attempting
        # to unscale FP16 gradients", torch 2.11 / transformers 5.17): full fine-tuning keeps fp32 master
        # weights under fp16 autocast, and is sized so
        sc = sc.model_copy(update={"precision": "mixed"})
    price = sc.price_per_hour if sc.price_per_hour is not None else gpu.price_per_hour
    rs = rules.load_rules(default_rule_paths() + list(sc.rules) + list(rule_paths or []), rulenames.schema())
    all_methods = methods.all_methods()

    def size(lora: LoraShape, epochs: int, margin: float) -> dict[str, Candidate]:
        return {m.name: _candidate(arch, gpu, sc, m, lora, epochs, price, cal, usable(gpu, margin)) for m in all_methods}

    scaled_memo: dict[tuple, Optional[Alternative]] = {}

    def scale(lora: LoraShape, epochs: int, margin: float, cands: dict[str, Candidate]) -> dict[str, Optional[Alternative]]:
        # both rule passes ask; where the rules left the shape, epochs and margin as they were, once is enough
        out = {}
        for m in all_methods:
            if not cands[m.name].fits and m.unsupported(arch) is None:
                key = (m.name, lora, epochs, margin)
                if key not in scaled_memo:
                    scaled_memo[key] = _scale_out(arch, gpu, sc, m, lora, epochs, price, cal, margin)
                out[m.name] = scaled_memo[key]
        return out

    def levers(lora: LoraShape) -> dict[str, dict[str, float]]:
        return {lever: _lever_sizes(arch, sc, field, lora, cal) for lever, field in rulenames.LEVERS.items()}

    # First pass with the default LoRA shape to learn what fits; the rules then set the final shape,
    # and are evaluated again, since conditions may read the costs and fits of the final shape.
    epochs0 = sc.epochs or DEFAULT_EPOCHS
    cands0 = size(DEFAULT_LORA, epochs0, SAFETY_MARGIN)
    facts0 = rulenames.Facts(
        sc,
        arch,
        gpu,
        cands0,
        epochs0,
        levers(DEFAULT_LORA),
        SAFETY_MARGIN,
        _min_gpus(sc, cands0, scale(DEFAULT_LORA, epochs0, SAFETY_MARGIN, cands0)),
    )
    first = rules.evaluate(rs, rulenames.environment(facts0))
    st = first.settings
    margin = float(st.get("safety_margin", SAFETY_MARGIN))
    epochs = sc.epochs or int(st.get("epochs", DEFAULT_EPOCHS))
    lora = _lora_from_rules(arch, st)
    cands = size(lora, epochs, margin)
    scaled = scale(lora, epochs, margin, cands)
    outcome = rules.evaluate(
        rs, rulenames.environment(rulenames.Facts(sc, arch, gpu, cands, epochs, levers(lora), margin, _min_gpus(sc, cands, scaled)))
    )

    allowed = [m for m in all_methods if cands[m.name].fits and m.name not in outcome.forbidden]
    method = next(
        (m for _, _, name, _ in sorted(outcome.preferences, key=lambda p: (-p[0], -p[1])) for m in allowed if m.name == name), None
    )
    if method is None and allowed:
        method = min(allowed, key=lambda m: m.fallback_order)

    warnings = list(outcome.warnings)
    if fp16_master:
        warnings.append(
            Message(
                "fp16-master-weights",
                f"{gpu.name} has no bf16: full fine-tuning is sized and emitted with fp32 master weights under fp16 autocast "
                "(fp16 weights cannot be trained with the fp16 grad scaler); adapters train in fp32 over an fp16 base",
            )
        )
    if arch.assumed:
        warnings.append(Message("model", arch.assumed))
    if sc.world_size > 1:
        spec = (cands[method.name] if method else cands[DEFAULT_METHOD]).config.strategy_spec
        warnings.append(
            Message(
                "multi-gpu",
                MULTI_GPU_CAVEAT.format(
                    label=spec.label, world=sc.world_size, basis=spec.basis, link=link_gbs(gpu, sc.nodes), overlap=spec.overlap
                ),
            )
        )
    if sc.gpu_memory is not None:
        what = "speed" if sc.price_per_hour is not None else "speed and price"
        warnings.append(
            Message(
                "gpu",
                f"a GPU known only by its memory ({gpu.memory_gib:g} GiB): the {what} of the {DEFAULT_GPU} are assumed "
                f"({gpu.bf16_tflops:g} TFLOPS bf16, {gpu.memory_bandwidth_gbs:g} GB/s"
                + (f", ${gpu.price_per_hour}/h)" if sc.price_per_hour is None else ")")
                + "; time and cost hold only for a card like it",
            )
        )
    if method is not None and method.serving_warning:
        warnings.append(Message("serving", method.serving_warning))
    alternatives: list[Alternative]
    if method is None:
        warnings.append(
            Message(
                "feasibility",
                f"no method fits {arch.name} on {sc.world_size}x {gpu.name} ({gpu.memory_gib:g} GiB, {margin:.0%} kept free) "
                f"at seq_len {sc.seq_len}",
            )
        )
        plan = Plan(candidate=None, epochs=epochs, reasons=tuple(outcome.notes), gpus=sc.world_size, nodes=sc.nodes, safety_margin=margin)
        alternatives = alternatives_for(arch, gpu, sc, lora, cal, margin)
    else:
        chosen = cands[method.name]
        # a note of a rule that preferred another method did not lead here: it is shown apart, as such
        prefer_of = {lr.rule.id: lr.rule.prefer for lr in outcome.fired}
        followed = tuple(n for n in outcome.notes if prefer_of.get(n.rule) in (None, method.name))
        plan = Plan(
            candidate=chosen,
            epochs=epochs,
            reasons=followed,
            not_followed=tuple(n for n in outcome.notes if n not in followed),
            lora=LoraSettings(lora.rank, lora.alpha, lora.targets, lora.dropout) if "lora_rank" in method.options else None,
            method_settings=method.settings(arch, chosen.config),
            learning_rate=float(st.get(method.learning_rate_setting, method.default_learning_rate)),
            gradient_accumulation_steps=accumulation_steps(chosen.micro_batch_size, sc.world_size),
            gpus=sc.world_size,
            nodes=sc.nodes,
            safety_margin=margin,
            precision="bf16" if gpu.bf16 else "fp16",
            evaluation=evaluation_plan(
                sc, method, accumulation_steps(chosen.micro_batch_size, sc.world_size) * chosen.micro_batch_size * sc.world_size
            ),
            deployment=deployment_note(arch, sc, method, chosen),
        )
        trained = sc.dataset_size - plan.evaluation.held_out_examples
        if plan.global_batch_size > trained:
            warnings.append(
                Message(
                    "global-batch-exceeds-data",
                    f"the global batch ({plan.global_batch_size:,} examples: micro-batch {chosen.micro_batch_size} x "
                    f"{plan.gradient_accumulation_steps} accumulation x {sc.world_size:,} GPUs) is more than the "
                    f"{trained:,} examples to train on: an epoch is less than one optimizer step"
                    + ("; nothing is held out for evaluation" if plan.evaluation.held_out_examples == 0 else "")
                    + ": use fewer GPUs or more data",
                )
            )
        if plan.global_batch_size != GLOBAL_BATCH:
            warnings.append(
                Message(
                    "global-batch",
                    f"global batch {plan.global_batch_size} examples, not {GLOBAL_BATCH}: {GLOBAL_BATCH} does not divide evenly over "
                    f"{sc.world_size} GPUs x micro-batch {chosen.micro_batch_size}; scale the learning rate with it, or pick a GPU count "
                    "that "
                    f"divides {GLOBAL_BATCH}",
                )
            )
        alternatives = [
            Alternative(
                "method",
                f"{m.name} also fits ({round(cands[m.name].required_gib, 2):.1f} GiB, ${round(cands[m.name].cost_usd, 2):,.2f})",
                {"method": m.name, "cost_usd": round(cands[m.name].cost_usd, 2), "time_hours": round(cands[m.name].time_hours, 3)},
            )
            for m in allowed
            if m is not method
        ]
    # methods that miss these GPUs, on the fewest that fit them; not those a rule forbids for another reason
    # than their fit (a memory wall's condition reads fits.M: more GPUs are its answer)
    policy = {m for lr in outcome.fired for m in lr.rule.forbid if f"fits.{m}" not in lr.rule.when}
    alternatives += [hit for name, hit in scaled.items() if hit is not None and name not in policy]
    return Recommendation(
        scenario=sc,
        arch=arch,
        gpu=gpu,
        price_per_hour=price,
        model_source=model_source(arch),
        plan=plan,
        candidates=tuple(cands.values()),
        warnings=tuple(warnings),
        alternatives=tuple(alternatives),
        rules_fired=tuple(lr.rule.id for lr in outcome.fired),
        assumptions=_assumptions(cal),
    )


def model_source(arch: Arch) -> str:
    """Where the architecture came from, as the output states it."""
    if arch.assumed:
        return f"assumed: {arch.assumed}"
    if arch.source.startswith(("config.json:", "Hugging Face cache:")):
        return arch.source
    return f"catalog ({arch.source})" if arch.source else "catalog"


# Forgetting signals of the seeds' evaluation recipe (shared/seeds/000): a general-text perplexity rise
# above 10%, or a general benchmark falling by more than 2-3 points.
PERPLEXITY_RISE_MAX = 0.10
BENCHMARK_DROP_MAX_POINTS = 2.0
# Held-out split: 5% of the data, at least 200 examples for a stable metric, at most 2000, never more
# than a fifth of the data.
HELD_OUT_SHARE, HELD_OUT_MIN, HELD_OUT_MAX, HELD_OUT_MAX_SHARE = 0.05, 200, 2000, 5

_TASK_METRIC = {
    "classification": "accuracy / macro-F1",
    "code": "pass@1 on held-out problems with tests",
    "math": "exact-match accuracy of final answers",
    "style": "pairwise preference (human or LLM judge) against the base model",
}


def evaluation_plan(sc: Scenario, method: methods.Method, global_batch: int = GLOBAL_BATCH) -> Evaluation:
    """How to tell whether the fine-tune worked and what it cost in general ability. The held-out set
    never takes so much that training is left without one full step (``global_batch`` examples): with
    fewer examples than that, nothing is held out (a warning says so)."""
    held_out = min(max(HELD_OUT_MIN, round(HELD_OUT_SHARE * sc.dataset_size)), HELD_OUT_MAX, max(1, sc.dataset_size // HELD_OUT_MAX_SHARE))
    held_out = max(0, min(held_out, sc.dataset_size - global_batch))
    return Evaluation(
        held_out_examples=held_out,
        task_metric=_TASK_METRIC.get(sc.task, "task metric (exact match, ROUGE or LLM-judge win rate) against the base model"),
        regression_check=(
            f"general-capability check before and after: perplexity on general text rising by more than {PERPLEXITY_RISE_MAX:.0%}, "
            f"or a general benchmark (e.g. MMLU, HellaSwag) dropping by more than {BENCHMARK_DROP_MAX_POINTS:g}-3 points, "
            "signals forgetting"
        ),
        perplexity_rise_max=PERPLEXITY_RISE_MAX,
        benchmark_drop_max_points=BENCHMARK_DROP_MAX_POINTS,
        if_forgetting="lower the learning rate or epochs, mix in general data, or use a lower LoRA rank"
        if method.adapter
        else "lower the learning rate or epochs, or mix in general data (full fine-tuning forgets most)",
    )


def deployment_note(arch: Arch, sc: Scenario, method: methods.Method, chosen: Candidate) -> Deployment:
    """How to serve the result; sizes on disk in MB (10^6 bytes)."""
    if method.trains_base:
        size = arch.total_params() * 2 / 1e6
        return Deployment(
            "full model",
            f"the fine-tuned weights replace the base model: {size / 1e3:,.1f} GB in bf16 per task; serve it like the base",
            size_mb=round(size, 1),
        )
    adapter_mb = chosen.trainable_params * 4 / 1e6  # peft saves the fp32 adapter weights
    if not method.mergeable:
        advice = (
            f"serve through peft (PeftModel.from_pretrained): the {method.label} tokens cannot be merged into the weights; "
            "they lengthen every sequence a little, and many tasks can share one base model"
        )
        return Deployment(
            f"{method.label} adapter", advice, adapter_size_mb=round(adapter_mb, 3), adapter_size_mb_bf16=round(adapter_mb / 2, 3)
        )
    if sc.serving == "multi-tenant":
        advice = "keep adapters unmerged and serve many of them over one base model (vLLM / LoRAX multi-LoRA); each adapter is small"
    else:
        advice = "merge the adapter into the base weights (merge_and_unload) for single-model serving: no extra latency"
        if method.quantized_base:
            advice += "; merge into the bf16 base, not the 4-bit one, then quantize again if needed"
    return Deployment(
        f"{method.label} adapter", advice, adapter_size_mb=round(adapter_mb, 1), adapter_size_mb_bf16=round(adapter_mb / 2, 1)
    )


def _same_generation(a: Arch, b: Arch) -> bool:
    """Same architecture family and tokenizer (vocabulary size): Llama 3.x models share 128,256 tokens,
    Llama 2 has 32,000, so a Llama-3.1-70B user is offered Llama-3.1-8B, not Llama-2-13B."""
    return a.family == b.family and a.vocab_size == b.vocab_size


def usable(gpu: GPU, margin: float) -> float:
    """GiB of ``gpu`` a plan may require, keeping ``margin`` of the card free."""
    return gpu.memory_gib * (1.0 - margin)


def _cheap_switches(arch: Arch, gpu: GPU, sc: Scenario, lora: LoraShape, cal: Calibration, margin: float) -> list[Alternative]:
    """Changes to the run itself that make it fit on the user's own GPUs, cheapest first: an 8-bit
    optimizer, a lower LoRA rank, a shorter sequence. Each names the method it makes fit (the first in
    fallback order) and is sized at micro-batch 1 with checkpointing."""
    out: list[Alternative] = []
    order = sorted(methods.all_methods(), key=lambda m: m.fallback_order)

    def fits(scenario: Scenario, shape: LoraShape) -> Optional[tuple[methods.Method, float]]:
        for m in order:
            req = estimate_memory(arch, train_config(scenario, m, shape), cal).required_gib
            if req <= usable(gpu, margin):
                return m, req
        return None

    if not sc.liger and not liger_problem(arch):
        hit = fits(sc.model_copy(update={"liger": True}), lora)
        if hit:
            out.append(
                Alternative(
                    "liger", f"{hit[0].label} fits with --liger (liger-kernel: no logits held) in {hit[1]:.1f} GiB", {"liger": True}
                )
            )
    if not sc.offload_activations:
        hit = fits(sc.model_copy(update={"offload_activations": True}), lora)
        if hit:
            out.append(
                Alternative(
                    "offload_activations",
                    f"{hit[0].label} fits with --offload-activations (saved activations in CPU memory) in {hit[1]:.1f} GiB",
                    {"offload_activations": True},
                )
            )
    lever = optimizers.get(optimizers.MEMORY_LEVER)
    if sc.optimizer != lever.name:
        hit = fits(sc.model_copy(update={"optimizer": lever.name}), lora)
        if hit:
            out.append(Alternative("optimizer", f"{hit[0].label} fits with {lever.label} in {hit[1]:.1f} GiB", {"optimizer": lever.name}))
    for rank in ALTERNATIVE_RANKS:
        if rank < lora.rank:
            hit = fits(sc, replace(lora, rank=rank, alpha=2 * rank))
            if hit and "lora_rank" in hit[0].options:
                out.append(Alternative("rank", f"{hit[0].label} fits at rank {rank} in {hit[1]:.1f} GiB", {"rank": rank}))
                break
    seq = sc.seq_len // 2
    while seq >= ALTERNATIVE_MIN_SEQ_LEN:
        hit = fits(sc.model_copy(update={"seq_len": seq}), lora)
        if hit:
            out.append(Alternative("seq_len", f"{hit[0].label} fits at {seq:,} tokens per example in {hit[1]:.1f} GiB", {"seq_len": seq}))
            break
        seq //= 2
    return out


def alternatives_for(
    arch: Arch, gpu: GPU, sc: Scenario, lora: LoraShape, cal: Calibration = DEFAULT, margin: float = SAFETY_MARGIN
) -> list[Alternative]:
    """What would make an infeasible plan feasible, each sized for exactly the setup it proposes: first
    the cheap switches on the user's own GPUs (:func:`_cheap_switches`), then one larger catalog GPU, or a
    smaller model of the same generation (micro-batch 1 with checkpointing, the least a run needs). More
    GPUs of this kind are offered per method by :func:`_scale_out`."""
    out: list[Alternative] = _cheap_switches(arch, gpu, sc, lora, cal, margin)
    leanest = min(
        (m for m in methods.all_methods() if "lora_rank" in m.options),
        key=lambda m: estimate_memory(arch, train_config(sc, m, lora, gpus=1), cal).required_gib,
    )
    need = estimate_memory(arch, train_config(sc, leanest, lora, gpus=1), cal).required_gib
    bigger = sorted(
        (g for g in catalog.gpus() if usable(g, margin) >= need and g.memory_gib > gpu.memory_gib), key=lambda g: g.price_per_hour
    )
    if bigger:
        g = bigger[0]
        out.append(
            Alternative(
                "gpu",
                f"{leanest.label} needs {need:.1f} GiB: one {g.name} ({g.memory_gib:g} GiB, ${g.price_per_hour}/h) fits it",
                {"gpu": g.name},
            )
        )
    smaller = [a for a in catalog.models() if _same_generation(a, arch) and a.total_params() < arch.total_params()]
    for a in sorted(smaller, key=lambda a: -a.total_params()):
        try:
            shape = replace(lora, rank=min(lora.rank, ALTERNATIVE_MAX_RANK, a.max_lora_rank(a.resolve_targets(lora.targets))))
        except InputError:
            continue  # the plan's targets name modules this model lacks
        req = estimate_memory(a, train_config(sc, leanest, shape), cal).required_gib
        if req <= usable(gpu, margin):
            out.append(
                Alternative(
                    "model", f"{a.name} ({a.total_params() / 1e9:.1f}B) fits with {leanest.label} in {req:.1f} GiB", {"model": a.name}
                )
            )
            break
    return out
