"""Fit the step-time model of ftdecide/throughput.py to the measured runs.

    python benchmarks/fit_throughput.py [NAME ...]   # needs numpy and scipy (not ftdecide dependencies)

NAMEs of StepConstants fields (k_fused, attn_util, ...) are held at 0: what the fit loses without them.

Two stages, physics first:

1. Kernel counts (``KernelCounts``): non-negative least squares of the kernels torch.profiler counted in
   the profiled steps (records with a ``profile``, from ``benchmarks/device_diagnose.py``) on what
   launches them (layer passes, adapters, 4-bit linears, experts, optimizer tensors). These do not
   depend on the host or the GPU's speed.
2. Times: minimises the squared log error of the predicted step time (H100 SXM: 989 TFLOPS, 3350 GB/s)
   over every run that fit, in the per-method utilisations (bounded to 0.05-0.8: no kernel sustains the
   datasheet peak) and the non-negative constants of StepConstants (SGD's per-tensor cost, from its one
   run, stays as it is).

Prints the constants to paste into the module.
"""

from __future__ import annotations

import dataclasses
import math
import pathlib
import sys

import numpy as np
from scipy.optimize import least_squares, nnls

ROOT = pathlib.Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(ROOT / "benchmarks"))

from accuracy import config, load  # noqa: E402
from ftdecide.core import throughput  # noqa: E402
from ftdecide.core.calibration import DEFAULT, KernelCounts, StepConstants  # noqa: E402
from ftdecide.files.hfconfig import arch_from_hf_config  # noqa: E402

TFLOPS, BW = 989.0, 3350.0


def fit_kernels(runs) -> KernelCounts:
    names = [f.name for f in dataclasses.fields(KernelCounts)]
    rows, counts = [], []
    for a, c, d in runs:
        if "profile" not in d:
            continue
        # the count is linear in the constants: probe it one unit vector at a time
        rows.append([throughput.kernels_per_step(a, c, KernelCounts(**{n: float(n == m) for n in names})) for m in names])
        counts.append(d["profile"]["kernels"])
    x, _ = nnls(np.array(rows), np.array(counts, float))
    kc = KernelCounts(**{n: round(float(v), 2) for n, v in zip(names, x, strict=True)})
    err = [throughput.kernels_per_step(a, c, kc) / d["profile"]["kernels"] - 1 for a, c, d in runs if "profile" in d]
    print(f"kernel counts: {len(err)} profiled steps, median |error| {np.median(np.abs(err)):.1%}, worst {min(err):+.1%} / {max(err):+.1%}")
    print(kc)
    return kc


def main() -> None:
    runs = [(arch_from_hf_config(d["hf_config"], d["arch"]), config(d), d) for d in load() if d["status"] == "ok" and d.get("tokens_per_s")]
    kc = fit_kernels(runs)
    keys = [k for k, _ in DEFAULT.util]
    # sgd_tensor_ms comes from one measured run; the recompute factors are fixed by what checkpointing redoes
    fixed = ("sgd_tensor_ms", "recompute_traffic", "recompute_attention")
    names = [f.name for f in dataclasses.fields(StepConstants) if f.name not in fixed]

    def calibration(x):
        # a new frozen Calibration per trial: nothing in ftdecide is rewritten
        step = dataclasses.replace(DEFAULT.step, **{n: float(v) for n, v in zip(names, x[len(keys) :], strict=True)})
        util = tuple((k, float(v)) for k, v in zip(keys, x[: len(keys)], strict=True))
        return dataclasses.replace(DEFAULT, util=util, step=step, kernels=kc)

    def residuals(x):
        cal = calibration(x)
        return [
            math.log(throughput.step_seconds(a, c, TFLOPS, BW, cal)["total"] * d["tokens_per_s"] / (c.seq_len * c.batch_size))
            for a, c, d in runs
        ]

    x0 = [DEFAULT.utilisation(k) for k in keys] + [getattr(DEFAULT.step, n) for n in names]
    lo = [0.05] * len(keys) + [0.0] * len(names)
    hi = [0.8] * len(keys) + [100.0] * len(names)
    lo[len(keys) + names.index("overlap_p")] = 1.0
    lo[len(keys) + names.index("k_logits")] = 2.0  # at least: the fp32 upcast is written once and read once
    for n in sys.argv[1:]:
        hi[len(keys) + names.index(n)] = 1e-9
    res = least_squares(residuals, np.clip(x0, lo, hi), bounds=(lo, hi))
    err = [math.exp(-r) - 1 for r in residuals(res.x)]  # tokens/s: predicted / measured - 1
    print(f"{len(runs)} runs; within 25%: {sum(abs(e) <= 0.25 for e in err)}; median |error| {np.median(np.abs(err)):.1%}")
    print("UTIL =", {k: round(float(v), 3) for k, v in zip(keys, res.x, strict=True)})
    print(dataclasses.replace(DEFAULT.step, **{n: round(float(v), 3) for n, v in zip(names, res.x[len(keys) :], strict=True)}))


if __name__ == "__main__":
    main()
