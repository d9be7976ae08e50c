"""Switches that change how a run executes, not what it learns, switched on by the plan itself: where nothing fits
as asked (:func:`switched`), and where the rules would choose a method that does not fit as asked (:func:`unblocked`).
Each sizes the scenario again with the switch set, through ``run`` (the recommendation of a scenario), so that what
is switched on is what was sized."""

from __future__ import annotations

from dataclasses import replace
from typing import Callable, Optional

from .. import methods, strategies
from ..core.calibration import Calibration
from ..core.errors import InputError
from ..core.policy import DEFAULT_LORA
from ..methods import options as method_options
from .alternatives import upgrade_switches
from .results import Message, Recommendation
from .scenario import Scenario
from .sizing import least_gib, usable

Run = Callable[[Scenario], Recommendation]


def switched(sc: Scenario, res: Recommendation, run: Run) -> Optional[Recommendation]:
    """Where nothing fits as asked (``res``): the cheapest plan a switch that leaves what is learned unchanged makes fit
    (Liger's kernels, activation offload, an 8-bit optimizer: the QLoRA paper's own recipe pages 8-bit AdamW; the
    optimizer states in host memory), with the switch on and said; failing those, the parameters in host memory too
    where a published recipe offloads them over several GPUs (``Strategy.offload_recipe``: FSDP+QLoRA, measured over
    2-4), which slows every step (the plan's time says how much, a warning the host memory); else None."""
    neutral = {kind for kind, _, _ in upgrade_switches(sc, res.arch)}
    switches = [(alt.details, alt.message) for alt in res.alternatives if alt.kind in neutral]
    recipes = [
        (alt.details, alt.message)
        for alt in res.alternatives
        if alt.kind == "offload_params" and strategies.get(alt.details["strategy"]).offload_recipe and sc.world_size > 1
    ]
    hit = None
    for options in (switches, recipes):
        hit = hit or _cheapest(sc, options, lambda again: again.plan.feasible, run)
    if hit is None:
        return None
    words, best = hit
    said = Message("switch", f"nothing fits as asked; {words}, which changes how it runs, not what it learns: the plan switches it on")
    return replace(best, plan=replace(best.plan, reasons=(said, *best.plan.reasons)))


def unblocked(sc: Scenario, res: Recommendation, run: Run, cal: Calibration) -> Optional[Recommendation]:
    """Where the rules would choose another method had it fit (``res.blocked``) and a switch that changes how a
    run executes, not what it learns, makes that method fit and chosen, the cheapest such plan, said; else None."""
    if res.blocked is None:
        return None
    cfg, method = res.candidate(res.blocked).config, methods.get(res.blocked)
    # the shape the candidates were sized with (the default's, for a method that takes none: it reads none of it)
    shape = replace(DEFAULT_LORA, **(method_options.shape_of(cfg) or {}))
    room = usable(res.gpu, res.plan.safety_margin)
    options = [
        (details, label)
        for _, details, label in upgrade_switches(sc, res.arch)
        # not at micro-batch 1 under any strategy: the plan's search is skipped
        if least_gib(res.arch, sc.model_copy(update=details), method, shape, cal) <= room
    ]
    hit = _cheapest(sc, options, lambda again: again.plan.method == res.blocked, run)
    if hit is None:
        return None
    label, best = hit
    said = Message(
        "switch",
        f"the rules choose {methods.get(res.blocked).label} here, which does not fit as asked; with {label} it fits "
        f"({best.plan.candidate.required_gib:.1f} GiB), which changes how it runs, not what it learns: the plan switches it on",
    )
    return replace(best, plan=replace(best.plan, reasons=(said, *best.plan.reasons)))


def _cheapest(sc: Scenario, options: list[tuple[dict, str]], accept, run: Run):
    """(the option's words, the recommendation) of the cheapest plan among ``sc`` with each option's fields set
    that ``accept`` takes, or None; an option these GPUs or this model refuse is passed over."""
    found = []
    for details, words in options:
        try:
            again = run(sc.model_copy(update=details))
        except InputError:
            continue
        if accept(again):
            found.append((again.plan.candidate.cost_usd, words, again))
    return min(found, key=lambda f: f[0])[1:] if found else None
