"""Which method the rules choose among those that fit, and which one they would choose had it fit: a part of
:mod:`ftdecide.decide.recommend`."""

from __future__ import annotations

import math
from dataclasses import replace
from typing import Optional

from .. import methods
from . import rules
from .results import Candidate


def choose(all_methods, cands: dict[str, Candidate], outcome) -> tuple[list, Optional[methods.Method]]:
    """(the methods that fit and no rule forbids, the one the rules prefer among them: the highest priority,
    then the later rule; else the first by fallback order; None where none is allowed)."""
    allowed = [m for m in all_methods if cands[m.name].fits and m.name not in outcome.forbidden]
    method = next(
        (m for _, _, name, _ in sorted(outcome.preferences, key=lambda p: (-p[0], -p[1])) for m in allowed if m.name == name), None
    )
    if method is None and allowed:
        method = min(allowed, key=lambda m: m.fallback_order)
    return allowed, method


def held_back(rs, env: dict, all_methods, cands: dict[str, Candidate], method, outcome, policy: frozenset) -> Optional[str]:
    """The method that does not fit but that the rules would choose over ``method`` if it did, by a rule of higher
    priority than the one that chose ``method`` (the rules read again with only its fit changed), or None: the
    evidence's choice, held back by memory alone. A method chosen only by default (LoRA over the QLoRA a memory
    wall chose) is not held back."""
    preferred = {lr.rule.prefer for lr in rs.rules}
    chosen_by = _deciding_priority(outcome, method)
    for m in sorted(all_methods, key=lambda m: m.fallback_order):
        if cands[m.name].fits or m.name in policy or m.name not in preferred:
            continue
        again = rules.evaluate(rs, {**env, f"fits.{m.name}": True})
        if (
            choose(all_methods, {**cands, m.name: replace(cands[m.name], fits=True)}, again)[1] is m
            and _deciding_priority(again, m) > chosen_by
        ):
            return m.name
    return None


def _deciding_priority(outcome, method) -> float:
    """The priority of the highest firing rule that prefers ``method`` (minus infinity: chosen by fallback order)."""
    return max((p for p, _, name, _ in outcome.preferences if name == method.name), default=-math.inf)
