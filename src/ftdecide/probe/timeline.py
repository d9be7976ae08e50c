"""Communication against compute on a profiled GPU timeline. Pure: no torch.

A training step's NCCL kernels (all-gather, reduce-scatter, all-reduce, broadcast) run on their own
streams; the part of their time during which no compute kernel runs is what the step waits for: the
*exposed* communication. The rest hides behind the kernels. These figures are what the step-time model's
``overlap`` stands for (:mod:`ftdecide.core.throughput`).

Kernels come from a chrome trace that ``torch.profiler`` exports (events of category ``kernel``, times in
microseconds); figures are in seconds.
"""

from __future__ import annotations

from typing import Iterable, NamedTuple


class Kernel(NamedTuple):
    name: str
    start_us: float
    duration_us: float

    @property
    def comm(self) -> bool:
        return "nccl" in self.name.lower()


def kernels_from_trace(trace: dict) -> list[Kernel]:
    """The GPU kernels of a torch.profiler chrome trace (``{"traceEvents": [...]}``)."""
    out = []
    for e in trace.get("traceEvents", []):
        if e.get("cat") == "kernel" and "ts" in e and "dur" in e:
            out.append(Kernel(str(e.get("name", "")), float(e["ts"]), float(e["dur"])))
    return out


def _union(intervals: list[tuple[float, float]]) -> list[tuple[float, float]]:
    merged: list[tuple[float, float]] = []
    for a, b in sorted(intervals):
        if merged and a <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(merged[-1][1], b))
        else:
            merged.append((a, b))
    return merged


def _length(intervals: list[tuple[float, float]]) -> float:
    return sum(b - a for a, b in intervals)


def _minus(xs: list[tuple[float, float]], ys: list[tuple[float, float]]) -> list[tuple[float, float]]:
    """Parts of the disjoint sorted intervals ``xs`` that no interval of ``ys`` (disjoint, sorted) covers."""
    out = []
    j = 0
    for a, b in xs:
        cur = a
        while j < len(ys) and ys[j][1] <= cur:
            j += 1
        k = j
        while k < len(ys) and ys[k][0] < b:
            if ys[k][0] > cur:
                out.append((cur, ys[k][0]))
            cur = max(cur, ys[k][1])
            k += 1
        if cur < b:
            out.append((cur, b))
    return out


def overlap(kernels: Iterable[Kernel]) -> dict[str, float]:
    """Seconds of: ``comm_s`` (the NCCL kernels' union), ``exposed_comm_s`` (of it, when no compute kernel
    runs), ``compute_s`` (the compute kernels' union) and ``span_s`` (first kernel start to last end)."""
    ks = list(kernels)
    comm = _union([(k.start_us, k.start_us + k.duration_us) for k in ks if k.comm])
    compute = _union([(k.start_us, k.start_us + k.duration_us) for k in ks if not k.comm])
    span = (max(k.start_us + k.duration_us for k in ks) - min(k.start_us for k in ks)) if ks else 0.0
    return {
        "comm_s": _length(comm) / 1e6,
        "exposed_comm_s": _length(_minus(comm, compute)) / 1e6,
        "compute_s": _length(compute) / 1e6,
        "span_s": span / 1e6,
    }
