"""What would make an infeasible plan feasible, each sized through the one sizing path
(:mod:`ftdecide.decide.sizing`) for exactly what it proposes: the switches on the user's own GPUs, one larger
catalog GPU, a smaller model of the same generation."""

from __future__ import annotations

from dataclasses import replace
from typing import Optional


from ..files import catalog
from .. import levers, methods, optimizers, strategies
from ..core.arch import Arch
from ..core.calibration import DEFAULT, Calibration
from ..files.catalog import GPU
from ..core.errors import InputError
from ..core.estimator import estimate_memory
from ..core.policy import (
    ALTERNATIVE_MAX_RANK,
    ALTERNATIVE_MIN_SEQ_LEN,
    ALTERNATIVE_RANKS,
    SAFETY_MARGIN,
    LoraShape,
)
from .results import (
    Alternative,
)

from .scenario import Scenario
from .sizing import _candidate, least_gib, train_config, usable


def _same_generation(a: Arch, b: Arch) -> bool:
    """Same architecture family and tokenizer (vocabulary size): Llama 3.x models share 128,256 tokens,
    Llama 2 has 32,000, so a Llama-3.1-70B user is offered Llama-3.1-8B, not Llama-2-13B."""
    return a.family == b.family and a.vocab_size == b.vocab_size


def _cheap_switches(
    arch: Arch, gpu: GPU, sc: Scenario, lora: LoraShape, cal: Calibration, margin: float, forbidden: frozenset = frozenset()
) -> list[Alternative]:
    """Changes to the run itself that make it fit on the user's own GPUs, cheapest first: the switches that
    change how it runs, not what it learns (:func:`upgrade_switches`), a lower LoRA rank, a shorter sequence.
    Each names the method it makes fit (the first in fallback order that no rule forbids for a reason other than
    its fit) and is sized as a plan is: the same search over micro-batches and strategies, the same refusals
    (:func:`ftdecide.decide.sizing._candidate`)."""
    out: list[Alternative] = []
    order = sorted((m for m in methods.all_methods() if m.name not in forbidden), key=lambda m: m.fallback_order)

    def fits(scenario: Scenario, shape: LoraShape) -> Optional[tuple]:
        for m in order:
            # what does not fit at micro-batch 1 (checkpointed where the method can be) under any strategy fits no
            # way: the search is skipped
            if least_gib(arch, scenario, m, shape, cal) > usable(gpu, margin):
                continue
            c = _candidate(arch, gpu, scenario, m, shape, 1, 0.0, cal, usable(gpu, margin))
            if c.fits:
                return m, c.required_gib, c
        return None

    for kind, details, label in upgrade_switches(sc, arch, params=True):
        hit = fits(sc.model_copy(update=details), lora)
        if hit:
            host, c = hit[2].estimate.host_gib, hit[2]
            said = f"{hit[0].label} fits with {label} in {hit[1]:.1f} GiB" + (f" ({host:.1f} GiB of host memory a GPU)" if host else "")
            if c.config.offload_params:  # every step streams the parameters over the host link: say what that costs
                said += f", {c.time_hours:,.1f} h an epoch"
            out.append(Alternative(kind, said, details))
    for rank in ALTERNATIVE_RANKS:
        if rank < lora.rank:
            hit = fits(sc, replace(lora, rank=rank, alpha=2 * rank))
            if hit and hit[0].takes_shape:
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


def upgrade_switches(sc: Scenario, arch: Arch, params: bool = False) -> list[tuple[str, dict, str]]:
    """The switches that change how a run executes, not what it learns, that ``sc`` has not switched on:
    (kind, the scenario's fields it sets, how a reason names it). The cheap switches (Liger's kernels, activation
    offload, the 8-bit optimizer), and DeepSpeed ZeRO-3 with its optimizer states in host memory (the same Adam
    step, run on the CPU; ZeRO-Offload, Ren et al. 2021), where the strategy is left to ftdecide. With ``params``,
    last, ZeRO-3 with the parameters in host memory too (ZeRO-Infinity, Rajbhandari et al. 2021: every step
    streams them over the host link), for where nothing fits as asked."""
    out = [(lv.name, {lv.name: True}, f"{lv.flag} ({lv.switch_note})") for lv in levers.all_levers() if lv.cheap_switch]
    out = [o for o in out if not getattr(sc, o[0]) and not levers.get(o[0]).problem(arch)]
    lever = optimizers.get(optimizers.MEMORY_LEVER)
    if sc.optimizer != lever.name:
        out.append(("optimizer", {"optimizer": lever.name}, lever.label))
    if strategies.is_auto(sc.strategy) and not sc.offload_optimizer:
        offload = {"strategy": "zero3", "offload_optimizer": True}
        out.append(("offload_optimizer", offload, "ZeRO-3 and the optimizer states in host memory"))
    if params and strategies.is_auto(sc.strategy) and not sc.offload_params:
        offload = {"strategy": "zero3", "offload_optimizer": True, "offload_params": True}
        out.append(("offload_params", offload, "ZeRO-3 and the parameters and optimizer states in host memory"))
        # FSDP+QLoRA with its CPU offload (Answer.AI 2024): where only a 4-bit base fits, ZeRO-3 holds it whole on
        # every GPU (measured) and FSDP1 shards it; over several GPUs the base is then loaded in host memory and the
        # start is its root unit (FSDP1.load_on_cpu), on one the whole 4-bit model rank 0 loads (measured)
        out.append(("offload_params", {"strategy": "fsdp1", "offload_params": True}, "FSDP1 and the 4-bit base in host memory"))
    return out


def alternatives_for(
    arch: Arch,
    gpu: GPU,
    sc: Scenario,
    lora: LoraShape,
    cal: Calibration = DEFAULT,
    margin: float = SAFETY_MARGIN,
    forbidden: frozenset = frozenset(),
) -> list[Alternative]:
    """What would make an infeasible plan feasible, each sized for exactly the setup it proposes: first
    the cheap switches on the user's own GPUs (:func:`_cheap_switches`), then one larger catalog GPU, or a
    smaller model of the same generation (micro-batch 1 with checkpointing, the least a run needs). More
    GPUs of this kind are offered per method by :func:`_scale_out`. ``forbidden``: methods the rules forbid
    for a reason other than their fit, never proposed."""
    out: list[Alternative] = _cheap_switches(arch, gpu, sc, lora, cal, margin, forbidden)
    leanest = min(
        (m for m in methods.all_methods() if m.takes_shape),
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
            shape = replace(lora, rank=min(lora.rank, ALTERNATIVE_MAX_RANK, a.max_rank(a.resolve_targets(lora.targets))))
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
