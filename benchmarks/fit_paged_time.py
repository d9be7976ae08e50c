"""The paged optimizers' host time per step, fitted to the paged runs timed alone on an H200 and checked by
leaving each run out.

    python benchmarks/fit_paged_time.py

bitsandbytes' optimizers synchronise the GPU after every parameter's update (``sync_gpu`` in
``Optimizer8bit.step``), so the step's optimizer part runs on the host's clock; a paged one also prefetches
each paged tensor's states (``prefetch_tensor``: cudaMemPrefetchAsync, whose driver work grows with the
bytes even when they are resident). Two constants of :class:`ftdecide.core.calibration.StepConstants` carry
that: ``paged_tensor_ms`` per paged tensor and ``paged_ms_per_gb`` per GB of managed states, added to the
host side of the step-time model. They are fitted here (log-error least squares over a grid) on every
paged run in ``data/measurements/h200_paged_*`` and ``h200_optimizer_check_*``; the figures printed are in
sample and leave-one-out, and the errors of the unpaged twins measured beside them in the same sessions
(what the rest of the time model misses on that host).
"""

from __future__ import annotations

import dataclasses
import math
import pathlib
import statistics
import sys

ROOT = pathlib.Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "src"))

from ftdecide.core.calibration import DEFAULT  # noqa: E402
from ftdecide.files.catalog import resolve_gpu  # noqa: E402
from ftdecide.probe.records import arch_from_record, config_from_record, read_records  # noqa: E402
from ftdecide.core.throughput import step_seconds  # noqa: E402

FILES = ("h200_paged_timing_2026-11-30.jsonl", "h200_paged_heldout_2026-11-30.jsonl", "h200_optimizer_check_2026-11-30.jsonl")
GRID_TENSOR_MS = [i * 0.01 for i in range(0, 31)]  # 0 .. 0.3 ms
GRID_MS_PER_GB = [i * 0.2 for i in range(0, 31)]  # 0 .. 6 ms/GB


def rows() -> list[dict]:
    return [d for d in read_records(ROOT / "data" / "measurements") if d["src"] in FILES]


def error(d: dict, tensor_ms: float, ms_per_gb: float) -> float:
    """Predicted tokens/s over measured, less 1 (positive: predicted too fast)."""
    cal = dataclasses.replace(DEFAULT, step=dataclasses.replace(DEFAULT.step, paged_tensor_ms=tensor_ms, paged_ms_per_gb=ms_per_gb))
    gpu = resolve_gpu("h200")
    st = step_seconds(arch_from_record(d), config_from_record(d), gpu.bf16_tflops, gpu.memory_bandwidth_gbs, cal)
    return d["seq"] * d["batch"] / st["total"] / d["tokens_per_s"] - 1


def fit(runs: list[dict]) -> tuple[float, float]:
    best = min(
        ((sum(math.log1p(error(d, a, b)) ** 2 for d in runs), a, b) for a in GRID_TENSOR_MS for b in GRID_MS_PER_GB),
        key=lambda t: t[0],
    )
    return best[1], best[2]


def summary(errs: list[float]) -> str:
    return f"median {statistics.median(abs(e) for e in errs):.1%}, worst {min(errs):+.1%} / {max(errs):+.1%}"


def main() -> None:
    all_rows = rows()
    paged = [d for d in all_rows if d["optim"].startswith("paged_")]
    twins = [d for d in all_rows if not d["optim"].startswith("paged_")]
    a, b = fit(paged)
    print(f"{len(paged)} paged runs; fitted paged_tensor_ms {a:.3f}, paged_ms_per_gb {b:.2f}")
    k = DEFAULT.step
    now = [error(d, k.paged_tensor_ms, k.paged_ms_per_gb) for d in paged]
    print(f"in sample, with the constants in calibration.py ({k.paged_tensor_ms}, {k.paged_ms_per_gb}): {summary(now)}")
    loo = []
    for i, d in enumerate(paged):
        ai, bi = fit(paged[:i] + paged[i + 1 :])
        loo.append(error(d, ai, bi))
    print(f"leave one out: {summary(loo)}")
    print(f"their {len(twins)} unpaged twins (the rest of the time model on these hosts): {summary([error(d, a, b) for d in twins])}")
    print()
    print("| model | method | optimizer | tokens | ckpt | measured s | error | left out |")
    print("|---|---|---|---|---|---|---|---|")
    for d, e, lo in zip(paged, now, loo, strict=True):
        tokens = f"{d['seq']}x{d['batch']}"
        print(f"| {d['arch']} | {d['method']} | {d['optim']} | {tokens} | {d['gc']} | {tokens_s(d):.4f} | {e:+.1%} | {lo:+.1%} |")


def tokens_s(d: dict) -> float:
    return d["seq"] * d["batch"] / d["tokens_per_s"]


if __name__ == "__main__":
    main()
