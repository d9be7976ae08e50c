"""Scenario files: one scenario (``recommend --scenario``) or many (``ftdecide batch``), read into
validated :class:`ftdecide.decide.recommend.Scenario` objects with file:line errors.

A scenario file is a YAML mapping of ``recommend``'s options (``model``, ``gpu``, ``dataset_size``, ...;
dashes or underscores). A scenarios file is a list of such mappings, or a mapping whose ``scenarios:``
is that list; each may carry a ``name``, and a top-level ``defaults:`` mapping fills what a scenario
leaves out. ``rules:`` (a path or a list of paths) adds rule files after the defaults; relative paths
are taken from the scenario file's folder, so a file and its rules move together.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any

from ..core.errors import InputError, preview
from .yamlio import load_yaml

if TYPE_CHECKING:  # pragma: no cover - types only
    from ..decide.scenario import Scenario


def _rule_paths(value: Any, base: str) -> Any:
    """Rule paths of a file, relative to the file's folder; anything else is left for validation."""
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        return value
    folder = os.path.dirname(base)
    return [v if os.path.isabs(v) else os.path.join(folder, v) for v in value]


def _dataset_path(fields: dict, base: str) -> None:
    """A relative ``dataset:`` of a file is taken from the file's folder, as its rules are."""
    if isinstance(fields.get("dataset"), str) and not os.path.isabs(fields["dataset"]):
        fields["dataset"] = os.path.join(os.path.dirname(base), fields["dataset"])


def load_scenario(path: str, overrides: dict[str, Any]) -> "Scenario":
    """The scenario of a ``--scenario`` file, with ``overrides`` (command-line values that were given)
    on top; ``overrides['rules']`` extends the file's rules."""
    from ..decide.scenario import validate_scenario

    data = load_yaml(path, "scenario file")
    if not isinstance(data, dict):
        raise InputError("a scenario file is a mapping of recommend's options", path, 1, 1)
    fields, lines = _fields(data, path)
    if "rules" in fields:
        fields["rules"] = _rule_paths(fields["rules"], path)
    _dataset_path(fields, path)
    overrides = dict(overrides)
    extra_rules = list(overrides.pop("rules", None) or [])
    fields.update(overrides)
    if extra_rules and isinstance(fields.get("rules", []), list):  # anything else is refused by validation
        fields["rules"] = fields.get("rules", []) + extra_rules
    if "model" not in fields:
        raise InputError("a model is required: 'model:' in the scenario file or --model", path, 1, 1)
    return validate_scenario(fields, path, lines)


def _key(k: Any) -> str:
    return str(k).replace("-", "_")


def _fields(mapping: dict, path: str) -> tuple[dict[str, Any], dict[str, int]]:
    """(options with dashes as underscores, the line of each) of one mapping; a key that is not a
    string (``1:``, ``true:``) is refused with its line."""
    lines = getattr(mapping, "key_lines", {})
    for k in mapping:
        if not isinstance(k, str):
            raise InputError(f"key {preview(k)} is not an option name", path, lines.get(k, getattr(mapping, "line", 1) or 1))
    return {_key(k): v for k, v in mapping.items()}, {_key(k): n for k, n in lines.items()}


# Scenarios one `batch` call takes: each is a whole recommendation (a few ms when its model and GPU
# repeat), and 99,000 ran 11 minutes at 10 GB before the cap. benchmarks/speed.py times a full batch.
MAX_SCENARIOS = 10_000


def parse_scenarios(data: Any, path: str) -> list[tuple[str, Any, int]]:
    """(name, validated Scenario, line) of each scenario of a parsed scenarios file (``batch``)."""
    from ..decide.scenario import validate_scenario

    defaults: dict = {}
    items = data
    if isinstance(data, dict):
        unknown = [k for k in data if k not in ("scenarios", "defaults")]
        if unknown:
            line = getattr(data, "key_lines", {}).get(unknown[0], 1)
            raise InputError(
                f"unknown field {preview(unknown[0])} (a scenarios file has 'scenarios:' and optional 'defaults:')", path, line
            )
        items = data.get("scenarios")
        defaults = data.get("defaults") or {}
        if not isinstance(defaults, dict):
            raise InputError("'defaults' must be a mapping", path, getattr(data, "key_lines", {}).get("defaults", 1))
    if not isinstance(items, list) or not items:
        raise InputError("expected a list of scenarios (or 'scenarios:' holding one)", path, 1)
    if len(items) > MAX_SCENARIOS:
        line = getattr(items[MAX_SCENARIOS], "line", None)
        raise InputError(f"{len(items):,} scenarios: at most {MAX_SCENARIOS:,} in one call (split the file)", path, line)
    out = []
    names: set[str] = set()
    for i, raw in enumerate(items, 1):
        line = getattr(raw, "line", 1) or 1
        if not isinstance(raw, dict):
            raise InputError(f"scenario {i} is not a mapping of recommend's options", path, line)
        fields = _fields(defaults, path)[0]
        own, lines = _fields(raw, path)
        fields.update(own)
        if "rules" in fields:
            fields["rules"] = _rule_paths(fields["rules"], path)
        _dataset_path(fields, path)
        name = fields.pop("name", "") or f"scenario-{i}"
        if not isinstance(name, (str, int)) or isinstance(name, bool):
            raise InputError(f"scenario {i}: 'name' must be a string, got {preview(name)}", path, lines.get("name", line))
        name = str(name)
        if name in names:
            raise InputError(f"scenario name '{name}' is used twice", path, line)
        names.add(name)
        sc = validate_scenario(fields, path, lines, line, name)
        out.append((name, sc, line))
    return out
