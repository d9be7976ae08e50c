"""Many scenarios in one call (``ftdecide batch``): parse a scenarios file, recommend each, flatten to CSV.

A scenarios file is YAML: a list of mappings, or a mapping whose ``scenarios:`` is that list. Each
mapping holds ``recommend``'s options (``model``, ``gpu``, ``dataset_size``, ...; dashes or underscores)
and an optional ``name``; a top-level ``defaults:`` mapping fills what a scenario leaves out. Any bad
scenario is an InputError naming the file and its line, before anything is computed, so that one
result per scenario comes out or none.
"""

from __future__ import annotations

from typing import Any

from .errors import InputError

CSV_COLUMNS = ("name", "model", "gpu", "gpus", "feasible", "method", "rank", "alpha", "targets", "micro_batch_size",
               "gradient_accumulation_steps", "gradient_checkpointing", "learning_rate", "epochs", "required_gib",
               "gpu_memory_gib", "time_hours", "cost_usd", "warnings")


def _key(k: Any) -> str:
    return str(k).replace("-", "_")


def parse_scenarios(data: Any, path: str) -> list[tuple[str, Any, int]]:
    """(name, validated Scenario, line) of each scenario of a parsed scenarios file."""
    from .recommend import validate_scenario

    defaults: dict = {}
    items = data
    if isinstance(data, dict):
        unknown = [k for k in data if k not in ("scenarios", "defaults")]
        if unknown:
            line = getattr(data, "key_lines", {}).get(unknown[0], 1)
            raise InputError(f"{path}:{line}: unknown field '{unknown[0]}' (a scenarios file has 'scenarios:' and optional 'defaults:')")
        items = data.get("scenarios")
        defaults = data.get("defaults") or {}
        if not isinstance(defaults, dict):
            raise InputError(f"{path}:{getattr(data, 'key_lines', {}).get('defaults', 1)}: 'defaults' must be a mapping")
    if not isinstance(items, list) or not items:
        raise InputError(f"{path}:1: expected a list of scenarios (or 'scenarios:' holding one)")
    out = []
    names: set[str] = set()
    for i, raw in enumerate(items, 1):
        line = getattr(raw, "line", 1) or 1
        if not isinstance(raw, dict):
            raise InputError(f"{path}:{line}: scenario {i} is not a mapping of recommend's options")
        fields = {_key(k): v for k, v in defaults.items()}
        fields.update({_key(k): v for k, v in raw.items()})
        name = str(fields.pop("name", "") or f"scenario-{i}")
        if name in names:
            raise InputError(f"{path}:{line}: scenario name '{name}' is used twice")
        names.add(name)
        sc = validate_scenario(fields, path, getattr(raw, "key_lines", {}), line, name)
        out.append((name, sc, line))
    return out


def run(scenarios: list[tuple[str, Any, int]], path: str, rule_paths: list[str]) -> list[dict]:
    """The recommendation of every scenario, each with its ``name``; InputError names the scenario."""
    from .recommend import recommend

    results = []
    for name, sc, line in scenarios:
        try:
            doc = recommend(sc, rule_paths)
        except InputError as e:
            raise InputError(f"{path}:{line}: scenario '{name}': {e}") from None
        results.append({"name": name, **doc})
    return results


def csv_row(res: dict) -> dict:
    """One flat row of :data:`CSV_COLUMNS` for a result of :func:`run`."""
    rec, sc = res["recommendation"], res["scenario"]
    lora = rec.get("lora") or {}
    chosen = next((c for c in res["candidates"] if c["method"] == rec.get("method")), None)
    return {
        "name": res["name"], "model": sc["model"], "gpu": sc["gpu"], "gpus": sc["gpus"], "feasible": rec["feasible"],
        "method": rec.get("method") or "", "rank": lora.get("rank", ""), "alpha": lora.get("alpha", ""), "targets": lora.get("targets", ""),
        "micro_batch_size": rec.get("micro_batch_size") or "", "gradient_accumulation_steps": rec.get("gradient_accumulation_steps", ""),
        "gradient_checkpointing": "" if rec.get("gradient_checkpointing") is None else rec["gradient_checkpointing"],
        "learning_rate": rec.get("learning_rate") or "", "epochs": rec.get("epochs", ""),
        "required_gib": chosen["memory"]["required_gib"] if chosen else "", "gpu_memory_gib": sc["gpu_memory_gib"],
        "time_hours": rec.get("time_hours", ""), "cost_usd": rec.get("cost_usd", ""),
        "warnings": " | ".join(w["message"] for w in res["warnings"]),
    }
