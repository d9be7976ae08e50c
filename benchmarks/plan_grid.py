"""Write into each line of a trainer grid what today's model plans for it, before it runs: a pre-registration.

    python benchmarks/plan_grid.py data/grids/NAME.jsonl [--suffix _2] [--lines A:B]

Each line gains ``planned_tps_h100`` and ``planned_tps_h200`` (tokens/s a micro-batch, at the line's accumulation),
``planned_gib`` and ``planned_required_gib`` (peak allocated and what the plan asks of the card), with ``--suffix``
appended to each key: a grid planned once keeps its first plan and gains a second, on the lines ``--lines`` names
(1-based, both included: those not yet run). A key already there is never replaced. The lines are sized as
``benchmarks/fit_trainers.py`` holds their runs (the catalog's model, the line's window where it names one), so the
plan is the figure the run will be held against.
"""

from __future__ import annotations

import argparse
import json
import pathlib
import sys

ROOT = pathlib.Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(ROOT / "benchmarks"))

from fit_trainers import config  # noqa: E402
from ftdecide.core.estimator import estimate_memory  # noqa: E402
from ftdecide.core.throughput import tokens_per_second  # noqa: E402
from ftdecide.files.catalog import resolve_gpu  # noqa: E402
from ftdecide.probe.records import arch_of_trainer_record  # noqa: E402


def plan(line: dict) -> dict:
    """What the model plans for one grid line (a run not yet made)."""
    arch, cfg = arch_of_trainer_record(line), config(line)
    est = estimate_memory(arch, cfg)
    out = {"planned_gib": round(est.peak_allocated_gib, 3), "planned_required_gib": round(est.required_gib, 3)}
    for name in ("h100", "h200"):
        gpu = resolve_gpu(name)
        out[f"planned_tps_{name}"] = round(
            tokens_per_second(arch, cfg, gpu.bf16_tflops, gpu.memory_bandwidth_gbs, accumulation=line["accum"])
        )
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("grid", type=pathlib.Path)
    ap.add_argument("--suffix", default="")
    ap.add_argument("--lines", default="", help="A:B, the lines to plan (default: all)")
    a = ap.parse_args()
    lines = [json.loads(x) for x in a.grid.read_text().splitlines() if x.strip()]
    first, last = (int(x) for x in a.lines.split(":")) if a.lines else (1, len(lines))
    for line in lines[first - 1 : last]:
        for key, value in plan(line).items():
            line.setdefault(key + a.suffix, value)
    a.grid.write_text("".join(json.dumps(line) + "\n" for line in lines))


if __name__ == "__main__":
    main()
