"""Method options: the settings only some methods take (LoRA's rank, soft prompts' virtual tokens, ...).

Each method module declares its :class:`Option` objects beside it (``Method.options``); this module turns
the registry's options into everything else that speaks of them, so no other module names one:

- the pydantic fields of :class:`ftdecide.core.config.TrainConfig` (every option) and of
  :class:`ftdecide.decide.scenario.Scenario` (those with ``in_scenario``), in the order the methods list them;
- the CLI flags (``--lora-rank``) and their help, which names the methods that take each option;
- the refusal of an option given to a method that lacks it, and of a value longer than the sequence;
- the keys of probe records (``r``, ``vt``, ``reduction``: the older vocabulary of ``data/``), both ways;
- the part of the estimator's memo key that options make;
- a plan's values: from the rules' LoRA shape (``shape_attr``) or the scenario's field, else the default.

An option keeps one flat name everywhere it is serialised (``lora_rank`` in ``recommendation.config``, in
scenario files and in records' ``config``), so the JSON contract did not change when options moved here.
A method whose option is new registers it by declaring it; the models that hold options are built when
:mod:`ftdecide.core.config` and :mod:`ftdecide.decide.scenario` are first imported, so such a method must be imported
before them (every module of this package is).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Optional


@dataclass(frozen=True)
class Option:
    """One setting of some methods. ``name`` is the TrainConfig field, the JSON and scenario key and, with
    dashes, the CLI flag; ``help`` says what it is (the methods that take it and the default are added)."""

    name: str
    type: type  # int, float or str
    default: Any
    help: str
    bounds: tuple[tuple[str, float], ...] = ()  # pydantic Field bounds: (("gt", 0), ("le", 65536))
    default_text: Optional[str] = None  # the default as --help says it, where the value itself says little
    record_key: Optional[str] = None  # its key in probe records, where that differs from ``name``
    # what a probe record without the key was measured with (older records: no dropout); None: the default
    record_missing: Any = None
    record_if_default: bool = True  # False: a record states it only when it is not the default
    in_scenario: bool = False  # also a scenario field (``recommend --virtual-tokens``)
    shape_attr: Optional[str] = None  # a plan takes it from the rules' LoRA shape (:class:`ftdecide.core.policy.LoraShape`)
    # (field, message) of a value it may not exceed: ("seq_len", "{v} virtual tokens is more than the sequence ({limit} tokens)")
    not_above: Optional[tuple[str, str]] = None
    scenario_bounds: Optional[tuple[tuple[str, float], ...]] = None  # the scenario's, where they differ

    @property
    def flag(self) -> str:
        return "--" + self.name.replace("_", "-")

    def too_long(self, value, limits: dict) -> Optional[str]:
        """Why ``value`` is more than the field it may not exceed allows (``limits`` holds that field), or None."""
        if self.not_above is None or limits.get(self.not_above[0]) is None:
            return None
        limit = limits[self.not_above[0]]
        return self.not_above[1].format(v=value, limit=limit) if value > limit else None


def _methods():
    global _methods
    from . import all_methods

    _methods = all_methods  # the registry's own function from now on: this one imports once
    return all_methods()


_ALL: dict = {}  # the options of the registry's current tuple of methods (a registration makes a new tuple)


def all_options() -> tuple[Option, ...]:
    """Every option of the registered methods, once each, in the order the methods are listed."""
    ms = _methods()
    if _ALL.get("methods") is not ms:
        seen: dict[str, Option] = {}
        for m in ms:
            for o in m.options:
                if seen.setdefault(o.name, o) is not o and seen[o.name] != o:
                    raise RuntimeError(f"option '{o.name}' declared twice, differently ({m.name})")
        _ALL.update(methods=ms, options=tuple(seen.values()))
    return _ALL["options"]


def takers(option: Option) -> tuple:
    """The methods that take ``option``, in output order."""
    return tuple(m for m in _methods() if option in m.options)


def _who(labels: list[str]) -> str:
    """Labels as a list ("LoRA, QLoRA, DoRA"); labels sharing their last word say it once ("prompt and prefix tuning")."""
    words = [label.rsplit(" ", 1) for label in labels]
    if len(labels) == 2 and all(len(w) == 2 for w in words) and words[0][1] == words[1][1]:
        return f"{words[0][0]} and {words[1][0]} {words[0][1]}"
    return ", ".join(labels)


def help_text(option: Option) -> str:
    """The flag's help: who takes it, what it is, its default."""
    default = f"default: {option.default_text}" if option.default_text else f"default {option.default}"
    return f"{_who([m.label for m in takers(option)])}: {option.help} ({default})"


def _field(option: Option, bounds, default) -> tuple:
    from pydantic import Field

    return (option.type, Field(default, **dict(bounds)))


def config_fields() -> dict[str, tuple]:
    """``create_model`` field definitions of every option, for TrainConfig."""
    return {o.name: _field(o, o.bounds, o.default) for o in all_options()}


def scenario_fields() -> dict[str, tuple]:
    """``create_model`` field definitions of the options a scenario states, for Scenario."""
    return {o.name: _field(o, o.scenario_bounds or o.bounds, o.default) for o in all_options() if o.in_scenario}


def validators(scenario: bool = False) -> dict:
    """``create_model`` validators: floats must be finite; in a scenario, a value given longer than the
    field it may not exceed is refused (TrainConfig says so in ``run_problem``, where a command refuses it)."""
    from pydantic import field_validator

    from ..core.errors import finite

    out: dict = {}
    floats = [o.name for o in all_options() if o.type is float and (o.in_scenario or not scenario)]
    if floats:
        out["_options_finite"] = field_validator(*floats, mode="before")(lambda cls, v: finite(v) if isinstance(v, float) else v)
    for o in all_options():
        if scenario and o.in_scenario and o.not_above:

            def check(cls, v, info, o=o):
                problem = o.too_long(v, info.data)
                if problem:
                    raise ValueError(problem)
                return v

            out[f"_fits_{o.name}"] = field_validator(o.name)(check)
    return out


def given_problem(method, given: dict) -> Optional[str]:
    """Why an option in ``given`` (values not None) does not belong to ``method``, or None."""
    for o in all_options():
        if given.get(o.name) is not None and o not in method.options:
            own = f"its options: {', '.join(x.flag for x in method.options)}" if method.options else "it has no options of its own"
            return f"{method.label} takes no {o.flag} ({own})"
    return None


def run_problem(cfg) -> Optional[str]:
    """Why one of the configuration's method options cannot train as asked (longer than the sequence)."""
    limits = {o.not_above[0]: getattr(cfg, o.not_above[0]) for o in cfg.method_spec.options if o.not_above}
    for o in cfg.method_spec.options:
        problem = o.too_long(getattr(cfg, o.name), limits)
        if problem:
            return problem
    return None


def key(cfg) -> tuple:
    """What the configuration's own method options are: the estimator's memo keys on them."""
    return tuple(getattr(cfg, o.name) for o in cfg.method_spec.options)


def from_record(d: dict, legacy: bool = True) -> dict:
    """TrainConfig values of the options a record states; a missing or empty key leaves the default. With
    ``legacy`` (probe records), an option with ``record_missing`` that a record lacks or leaves empty was
    measured at that value (older records wrote no dropout: they ran without)."""
    out = {}
    for o in all_options():
        v = d.get(o.record_key or o.name)
        if o.record_missing is not None and legacy:
            out[o.name] = v or o.record_missing
        elif v is not None if o.record_missing is not None else v:
            out[o.name] = v
    return out


def to_record(cfg) -> dict:
    """The record keys of the configuration's own method options."""
    return {
        o.record_key or o.name: getattr(cfg, o.name)
        for o in cfg.method_spec.options
        if o.record_if_default or getattr(cfg, o.name) != o.default
    }


def shape_of(cfg) -> Optional[dict]:
    """The configuration's LoRA shape (``rank``, ``targets``, ``dropout``) where its method takes one, else None."""
    shape = {o.shape_attr: getattr(cfg, o.name) for o in cfg.method_spec.options if o.shape_attr}
    return shape or None


def plan_values(sc, shape) -> dict:
    """The options a plan is sized with: the rules' LoRA ``shape`` where an option comes from it, else the
    scenario's value (shortened to the field it may not exceed), else nothing (the default)."""
    out: dict = {}
    for o in all_options():
        if o.shape_attr:
            out[o.name] = getattr(shape, o.shape_attr)
        elif o.in_scenario:
            v = getattr(sc, o.name)
            out[o.name] = min(v, getattr(sc, o.not_above[0])) if o.not_above else v
    return out
