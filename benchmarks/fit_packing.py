"""Examples of mixed length, padded per micro-batch or packed, under the emitted TRL script (``data/packing/``):
the time of their steps and their peaks against the model, and the fit of the masked kernel's utilisation.

    python benchmarks/fit_packing.py          # each run: measured and modelled time of its steps, peak
    python benchmarks/fit_packing.py --fit    # search masked_attn_util on the whole-epoch runs, check the rest
    python benchmarks/fit_packing.py --plan   # each whole-epoch run: the plan's epoch time from its examples alone

The runs (``data/grids/packing_a.jsonl``, ``benchmarks/trainer_runs.py``) draw each example's length from a
lognormal distribution (``LENGTHS`` there: chat, docs, bimodal), a word a token. A padded run records every
micro-batch's padded shape (micro-batch x its longest example), a packed one the length of every flattened
micro-batch (TRL's best-fit decreasing into rows of ``max_length``, padding-free). Each micro-batch is modelled
at its own shape; a step is its micro-batches; the first step (warm-up) is left out of both sides.

The whole-epoch runs (``examples`` set) are the fit set; the fixed-step runs (``steps`` set) are held out.

``--plan`` asks what the issue's target asks of the plan itself: the epoch time ``recommend --dataset`` computes
(``sizing.data_epoch_seconds``) from the run's examples alone (a word a token, and the end-of-text token TRL adds),
at the run's configuration, against the whole measured epoch (every step, the first included: the user pays it)
and against the steps after the first, scaled to the epoch.
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
from ftdecide.core.throughput import link_gbs, step_seconds  # noqa: E402
from ftdecide.decide.sizing import data_epoch_seconds  # noqa: E402
from ftdecide.files.dataset import DataStats  # noqa: E402
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


def examples_data(words: list[int], name: str = "run") -> DataStats:
    """A run's examples as ``--dataset`` reads them, every one: a word a token (the runs' word-level tokenizer), and
    the end-of-text token TRL adds."""
    lengths = tuple(sorted(w + 1 for w in words))
    return DataStats(name, len(lengths), lengths, 1, "words", True, ("text",))


def planned_seconds(r: dict, cal=DEFAULT) -> float:
    """The plan's seconds for the run's whole epoch, from its examples alone (``words``: every one a whole-epoch run
    drew), padded or packed as the run was, on its GPU."""
    gpu = gpu_of(r)
    data = examples_data(r["words"], r["id"])
    return data_epoch_seconds(arch_of_trainer_record(r), config_from_trainer_record(r), gpu, cal, link_gbs(gpu, 1), r["accum"], data)


def plan_table(cal=DEFAULT) -> None:
    whole, after = [], []
    for r in (r for r in load() if r.get("examples")):
        planned, steps = planned_seconds(r, cal), r["step_s"]
        # the steps after the first, scaled to the epoch's steps: the measure the step-time table uses
        scaled = statistics.mean(steps[1:]) * len(steps)
        whole.append(planned / sum(steps) - 1)
        after.append(planned / scaled - 1)
        kind = "packed" if r.get("packing") else "padded"
        print(
            f"{r['id']:13s} {r['model']:13s} {r['method']:5s} {r['lengths']:8s} {kind:6s} b{r['batch']} s{r['seq']}: "
            f"planned {planned:6.1f} s, epoch {sum(steps):6.1f} s measured ({whole[-1]:+6.1%}), "
            f"{scaled:6.1f} without the first step's warm-up ({after[-1]:+6.1%})"
        )
    for name, errs in (("whole epoch", whole), ("without warm-up", after)):
        print(
            f"{name}: {len(errs)} runs, median |error| {statistics.median(abs(e) for e in errs):.1%}, {min(errs):+.1%} / {max(errs):+.1%}"
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
    ap.add_argument("--plan", action="store_true")
    a = ap.parse_args()
    fit() if a.fit else plan_table() if a.plan else table()
