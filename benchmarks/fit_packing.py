"""Examples of mixed length, padded per micro-batch or packed, under the emitted TRL script (``data/packing/``):
the time of their steps and their peaks against the model, and the fit of the masked kernel's utilisation.

    python benchmarks/fit_packing.py          # each run: measured and modelled time of its steps, peak
    python benchmarks/fit_packing.py --fit    # search masked_attn_util on the whole-epoch runs, check the rest

The runs (``data/grids/packing_a.jsonl``, ``benchmarks/trainer_runs.py``) draw each example's length from a
lognormal distribution (``LENGTHS`` there: chat, docs, bimodal), a word a token. A padded run records every
micro-batch's padded shape (micro-batch x its longest example), a packed one the length of every flattened
micro-batch (TRL's best-fit decreasing into rows of ``max_length``, padding-free). Each micro-batch is modelled
at its own shape; a step is its micro-batches; the first step (warm-up) is left out of both sides.

The whole-epoch runs (``examples`` set) are the fit set; the fixed-step runs (``steps`` set) are held out.
"""

from __future__ import annotations

import argparse
import json
import math
import pathlib
import statistics
import sys
from dataclasses import replace

ROOT = pathlib.Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(ROOT / "benchmarks"))

import fit_trainers  # noqa: E402

from ftdecide.core.calibration import DEFAULT  # noqa: E402
from ftdecide.core.collation import new_length_host_seconds  # noqa: E402
from ftdecide.core.throughput import step_seconds  # noqa: E402
from ftdecide.files.catalog import resolve_gpu  # noqa: E402
from ftdecide.probe.records import arch_of_trainer_record, config_from_trainer_record  # noqa: E402

DATA = ROOT / "data" / "packing"


def load() -> list[dict]:
    return [json.loads(x) for f in sorted(DATA.glob("*.jsonl")) for x in f.read_text().splitlines() if x.strip()]


def gpu_of(r: dict):
    """The catalog GPU a run was made on (its record's device name; the first runs were all on an H100)."""
    return resolve_gpu("h200" if "H200" in r.get("gpu", "") else "h100")


def modelled_seconds(r: dict, cal=DEFAULT) -> float:
    """Modelled seconds of the run's steps after the first, each micro-batch at its recorded shape, on its GPU."""
    gpu = gpu_of(r)
    arch, cfg, b, acc = arch_of_trainer_record(r), config_from_trainer_record(r), r["batch"], r["accum"]
    host = new_length_host_seconds(arch, cfg, cal)
    per, seen = [], set()
    for tokens in r["padded_tokens"]:
        length = math.ceil(tokens / b)
        shape = cfg.model_copy(update={"seq_len": length})
        # a padded length the run has not met before pays cuDNN's host time (core/collation.py)
        fresh = host if length not in seen else 0.0
        seen.add(length)
        per.append(step_seconds(arch, shape, gpu.bf16_tflops, gpu.memory_bandwidth_gbs, cal, accumulation=acc, host_s=fresh)["total"])
    steps = [sum(per[i * acc : (i + 1) * acc]) for i in range(len(r["step_s"]))]
    return sum(steps[1:])


def peak_error(r: dict) -> float:
    """Estimate over measured peak - 1, at the run's longest micro-batch (as every trainer run is held:
    ``fit_trainers.error``)."""
    return fit_trainers.error(r)


def time_error(r: dict, cal=DEFAULT) -> float:
    return modelled_seconds(r, cal) / sum(r["step_s"][1:]) - 1


def table(cal=DEFAULT) -> None:
    for r in load():
        kind = "packed" if r.get("packing") else "padded"
        part = "fit " if r.get("examples") else "held"
        measured = sum(r["step_s"][1:])
        print(
            f"{part} {r['id']:13s} {r['model']:13s} {r['method']:5s} {r.get('lengths', 'full'):8s} {kind:6s} "
            f"b{r['batch']} s{r['seq']} gc={int(r['gc'])} "
            f"steps {len(r['step_s']):3d}: {measured:6.1f} s measured, {modelled_seconds(r, cal):6.1f} modelled "
            f"({time_error(r, cal):+6.1%}); peak {r['peak_train_alloc_gib']:6.2f} GiB ({peak_error(r):+.1%})"
        )


def fit() -> None:
    runs = load()
    train = [r for r in runs if r.get("examples")]
    best = None
    for u in [x / 100 for x in range(6, 41)]:
        cal = replace(DEFAULT, step=replace(DEFAULT.step, masked_attn_util=u))
        score = statistics.median(abs(time_error(r, cal)) for r in train)
        if best is None or score < best[0]:
            best = (score, u)
    print(f"masked_attn_util {best[1]:.2f}: fit set median |error| {best[0]:.1%}")
    table(replace(DEFAULT, step=replace(DEFAULT.step, masked_attn_util=best[1])))


if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("--fit", action="store_true")
    a = ap.parse_args()
    fit() if a.fit else table()
