"""Examples of mixed length, padded per micro-batch or packed, under the emitted TRL script (``data/packing/``):
the time of their steps and their peaks against the model, and the fit of the masked kernel's utilisation.

    python benchmarks/fit_packing.py          # each run: measured and modelled time of its steps, peak
    python benchmarks/fit_packing.py --fit    # the warm-up measured, the host share and utilisation searched
    python benchmarks/fit_packing.py --plan   # each whole-epoch run: the plan's epoch time from its examples alone

The runs (``data/grids/packing_a.jsonl``, ``benchmarks/trainer_runs.py``) draw each example's length from a
lognormal distribution (``LENGTHS`` there: chat, docs, bimodal), a word a token. A padded run records every
micro-batch's padded shape (micro-batch x its longest example), a packed one the length of every flattened
micro-batch (TRL's best-fit decreasing into rows of ``max_length``, padding-free). Each micro-batch is modelled
at its own shape; a step is its micro-batches; every step is counted, and the model adds the run's warm-up
(``core.collation.warmup_seconds``), as the plan does.

The whole-epoch runs (``examples`` set) of packing_a and packing_b are the fit set (``FIT_GRIDS``); the later
grids' epochs and the fixed-step runs (``steps`` set) are held out.

``--plan`` asks what the issue's target asks of the plan itself: the epoch time ``recommend --dataset`` computes
(``sizing.data_epoch_seconds``) from the run's examples alone (a word a token, and the end-of-text token TRL adds),
at the run's configuration, with the run's warm-up, against the whole measured epoch (every step, the first
included: the user pays it); and, without the warm-up, against the steps after the first, scaled to the epoch.
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
from ftdecide.core.collation import new_length_host_seconds, warmup_seconds  # noqa: E402
from ftdecide.core.throughput import link_gbs, step_seconds  # noqa: E402
from ftdecide.decide.sizing import data_epoch_seconds  # noqa: E402
from ftdecide.files.dataset import DataStats  # noqa: E402
from ftdecide.files.catalog import resolve_gpu  # noqa: E402
from ftdecide.probe.records import arch_of_trainer_record, config_from_trainer_record  # noqa: E402

DATA = ROOT / "data" / "packing"
# The fit set: the whole epochs of the first two grids. packing_c, _d, _e and _g came after and are held out of it, as
# are the fixed-step runs (packing_g was planned after the constants were set, before it ran).
FIT_GRIDS = ("packing_a:", "packing_b:")


def load() -> list[dict]:
    return [json.loads(x) for f in sorted(DATA.glob("*.jsonl")) for x in f.read_text().splitlines() if x.strip()]


def gpu_of(r: dict):
    """The catalog GPU a run was made on (its record's device name; the first runs were all on an H100)."""
    return resolve_gpu("h200" if "H200" in r.get("gpu", "") else "h100")


def modelled_steps(r: dict, cal=DEFAULT) -> list[float]:
    """Modelled seconds of each of the run's steps, each micro-batch at its recorded shape, on its GPU; a length the
    run has not met before pays cuDNN's host time (core/collation.py)."""
    gpu = gpu_of(r)
    arch, cfg, b, acc = arch_of_trainer_record(r), config_from_trainer_record(r), r["batch"], r["accum"]
    host = new_length_host_seconds(arch, cfg, cal)
    per, seen = [], set()
    for tokens in r["padded_tokens"][: len(r["step_s"]) * acc]:
        length = math.ceil(tokens / b)
        shape = cfg.model_copy(update={"seq_len": length})
        fresh = host if length not in seen else 0.0
        seen.add(length)
        per.append(step_seconds(arch, shape, gpu.bf16_tflops, gpu.memory_bandwidth_gbs, cal, accumulation=acc, host_s=fresh)["total"])
    return [sum(per[i * acc : (i + 1) * acc]) for i in range(len(r["step_s"]))]


def modelled_seconds(r: dict, cal=DEFAULT) -> float:
    """Modelled seconds of all the run's steps at their recorded shapes, and the run's warm-up (``warmup_seconds``)."""
    return sum(modelled_steps(r, cal)) + warmup_seconds(arch_of_trainer_record(r), config_from_trainer_record(r), cal)


def peak_error(r: dict) -> float:
    """Estimate over measured peak - 1, at the run's longest micro-batch (as every trainer run is held:
    ``fit_trainers.error``)."""
    return fit_trainers.error(r)


def time_error(r: dict, cal=DEFAULT) -> float:
    return modelled_seconds(r, cal) / sum(r["step_s"]) - 1


def plan_error(r: dict, cal=DEFAULT) -> float:
    """The plan's epoch time for the run (:func:`planned_seconds`) against the whole measured epoch: planned / measured - 1."""
    return planned_seconds(r, cal) / sum(r["step_s"]) - 1


def table(cal=DEFAULT) -> None:
    for r in load():
        kind = "packed" if r.get("packing") else "padded"
        part = "fit " if r.get("examples") and r["id"].startswith(FIT_GRIDS) else "held"
        measured = sum(r["step_s"])
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
    drew), padded or packed as the run was, on its GPU, with the run's warm-up (``warmup_seconds``)."""
    gpu = gpu_of(r)
    data = examples_data(r["words"], r["id"])
    arch, cfg = arch_of_trainer_record(r), config_from_trainer_record(r)
    # one epoch and the run's warm-up, as recommend's time_hours counts a run
    return data_epoch_seconds(arch, cfg, gpu, cal, link_gbs(gpu, 1), r["accum"], data) + warmup_seconds(arch, cfg, cal)


def plan_table(cal=DEFAULT) -> None:
    whole, after = [], []
    for r in (r for r in load() if r.get("examples")):
        planned, steps = planned_seconds(r, cal), r["step_s"]
        # the steps after the first, scaled to the epoch's steps, against the plan without its warm-up
        scaled = statistics.mean(steps[1:]) * len(steps)
        steady = planned - warmup_seconds(arch_of_trainer_record(r), config_from_trainer_record(r), cal)
        whole.append(planned / sum(steps) - 1)
        after.append(steady / scaled - 1)
        kind = "packed" if r.get("packing") else "padded"
        print(
            f"{r['id']:13s} {r['model']:13s} {r['method']:5s} {r['lengths']:8s} {kind:6s} b{r['batch']} s{r['seq']}: "
            f"planned {planned:6.1f} s, epoch {sum(steps):6.1f} s measured ({whole[-1]:+6.1%}), "
            f"{scaled:6.1f} without the first step, against {steady:6.1f} planned without the warm-up ({after[-1]:+6.1%})"
        )
    for name, errs in (("whole epoch", whole), ("without warm-up", after)):
        print(
            f"{name}: {len(errs)} runs, median |error| {statistics.median(abs(e) for e in errs):.1%}, {min(errs):+.1%} / {max(errs):+.1%}"
        )


def step_residuals(r: dict, cal=DEFAULT) -> list[float]:
    """Measured minus modelled seconds of each of the run's steps, every micro-batch at its recorded shape."""
    return [m - p for m, p in zip(r["step_s"], modelled_steps(r, cal), strict=True)]


def warmup_excess(r: dict, cal=DEFAULT, first: int = 8) -> float | None:
    """Seconds the run's first ``first`` steps took beyond what its later steps' residual predicts for them (None for a
    run too short to tell): the warm-up, read from the run itself rather than fitted."""
    res = step_residuals(r, cal)
    if len(res) < first + 4:
        return None
    return sum(res[:first]) - first * statistics.mean(res[first:])


def fit() -> None:
    """The fit behind masked_warmup_s, masked_new_share and masked_attn_util, on the fit set's whole epochs: the
    warm-up measured (the median of ``warmup_excess``, rounded to the second), then the share and the utilisation
    searched for the least median |error| of the plan's epoch time (``--plan``'s measure) with it; the held-out
    epochs' error printed beside, not used."""
    whole = [r for r in load() if r.get("examples")]
    train = [r for r in whole if r["id"].startswith(FIT_GRIDS)]
    held = [r for r in whole if not r["id"].startswith(FIT_GRIDS)]
    excess = [e for e in (warmup_excess(r) for r in train) if e is not None]
    warm = round(statistics.median(excess))
    spread = f"{min(excess):+.1f} / {max(excess):+.1f}"
    print(f"warm-up: {len(excess)} fit-set epochs, median {statistics.median(excess):.1f} s ({spread}): {warm} s")

    def err(rs, cal):
        return [plan_error(r, cal) for r in rs]

    best = None
    for share in [x / 10 for x in range(3, 11)]:
        for u in (0.13, 0.15, 0.17, 0.19, 0.21):
            cal = replace(DEFAULT, step=replace(DEFAULT.step, masked_new_share=share, masked_attn_util=u, masked_warmup_s=float(warm)))
            score = statistics.median(abs(e) for e in err(train, cal))
            if best is None or score < best[0]:
                best = (score, share, u, cal)
    score, share, u, cal = best
    print(f"masked_new_share {share:.1f}, masked_attn_util {u:.2f}: fit set ({len(train)}) median |error| {score:.1%}")
    e = err(held, cal)
    print(f"held out ({len(held)}): median |error| {statistics.median(abs(x) for x in e):.1%}, {min(e):+.1%} / {max(e):+.1%}")


if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("--fit", action="store_true")
    ap.add_argument("--plan", action="store_true")
    a = ap.parse_args()
    fit() if a.fit else plan_table() if a.plan else table()
