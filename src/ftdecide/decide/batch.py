"""Many scenarios in one call (``ftdecide batch``): recommend each, and flatten the results to CSV.

The scenarios file is read by :func:`ftdecide.files.scenarios.parse_scenarios`: every scenario is validated
before anything is computed, so that one result per scenario comes out or none.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Iterator

from ..core.errors import InputError, one_line

if TYPE_CHECKING:  # pragma: no cover - types only
    from .results import Recommendation

CSV_COLUMNS = (
    "name",
    "model",
    "gpu",
    "gpus",
    "feasible",
    "method",
    "rank",
    "alpha",
    "targets",
    "micro_batch_size",
    "gradient_accumulation_steps",
    "gradient_checkpointing",
    "learning_rate",
    "epochs",
    "required_gib",
    "gpu_memory_gib",
    "time_hours",
    "cost_usd",
    "warnings",
    "nodes",
    "strategy",
)


def run(scenarios: list[tuple[str, Any, int]], path: str, rule_paths: list[str]) -> Iterator[tuple[str, "Recommendation"]]:
    """(name, recommendation) of each scenario in turn, one at a time (a caller that writes each result
    as it comes holds one); an InputError names the scenario. Rule files are parsed once for the whole
    batch (:func:`ftdecide.decide.rules.load_rules` keeps them while unchanged), and scenarios that share a model,
    GPU and sizing share their memory searches (:func:`ftdecide.decide.recommend._fit_config`)."""
    from .recommend import recommend

    for name, sc, line in scenarios:
        try:
            res = recommend(sc, rule_paths)
        except InputError as e:
            raise e.at(path, line, prefix=f"scenario '{name}': ") from None
        yield name, res


def result_json(name: str, res: "Recommendation") -> dict:
    """One element of ``batch --format json``'s ``results``: the scenario's name, then its ``recommend`` document."""
    return {"name": name, **res.to_json()}


def csv_cell(value: Any) -> Any:
    """A text cell a spreadsheet will show as text: one line (control characters escaped), and a leading
    ``=``, ``+``, ``-``, ``@``, tab or carriage return (what Excel, LibreOffice and Sheets read as a
    formula) neutralised by a leading apostrophe, as OWASP's CSV-injection advice has it. Numbers and
    booleans are ftdecide's own: numbers pass as they are, booleans as ``true``/``false``."""
    if isinstance(value, bool):
        return "true" if value else "false"  # what spreadsheets and JSON readers take; Python's True is neither
    if not isinstance(value, str):
        return value
    text = one_line(value)
    return "'" + text if text[:1] in ("=", "+", "-", "@", "\t", "\r") else text


def csv_row(name: str, res: "Recommendation") -> dict:
    """One flat row of :data:`CSV_COLUMNS`, every text cell through :func:`csv_cell`."""
    return {k: csv_cell(v) for k, v in _row(name, res).items()}


def _row(name: str, res: "Recommendation") -> dict:
    plan, c = res.plan, res.plan.candidate
    lora = plan.lora
    return {
        "name": name,
        "model": res.arch.name,
        "gpu": res.gpu.name,
        "gpus": res.scenario.gpus,
        "nodes": res.scenario.nodes,
        "strategy": c.config.strategy_spec.name if c else "",
        "feasible": plan.feasible,
        "method": plan.method or "",
        "rank": lora.rank if lora else "",
        "alpha": lora.alpha if lora else "",
        "targets": lora.targets if lora else "",
        "micro_batch_size": c.micro_batch_size if c else "",
        "gradient_accumulation_steps": plan.gradient_accumulation_steps if c else "",
        "gradient_checkpointing": c.gradient_checkpointing if c else "",
        "learning_rate": plan.learning_rate or "",
        "epochs": plan.epochs,
        "required_gib": round(c.required_gib, 2) if c else "",
        "gpu_memory_gib": res.gpu.memory_gib,
        "time_hours": round(c.time_hours, 3) if c else "",
        "cost_usd": round(c.cost_usd, 2) if c else "",
        "warnings": " | ".join(w.message for w in res.warnings),
    }
