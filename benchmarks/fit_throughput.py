"""Fit the step-time model of ftdecide/throughput.py to the measured steps of the runs that fit.

    python benchmarks/fit_throughput.py        # needs numpy and scipy (not ftdecide dependencies)

Minimises the squared log error of the predicted step time (H100 SXM: 989 TFLOPS, 3350 GB/s) over the
per-method utilisations (bounded to 0.05-0.8: no kernel sustains the datasheet peak) and the
non-negative constants of StepConstants; prints them to paste into the module.
"""

from __future__ import annotations

import dataclasses
import math
import pathlib
import sys

import numpy as np
from scipy.optimize import least_squares

ROOT = pathlib.Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(ROOT / "benchmarks"))

from accuracy import config, load  # noqa: E402
from ftdecide import throughput  # noqa: E402
from ftdecide.hfconfig import arch_from_hf_config  # noqa: E402

TFLOPS, BW = 989.0, 3350.0


def main() -> None:
    runs = [(arch_from_hf_config(d["hf_config"], d["arch"]), config(d), d) for d in load()
            if d["status"] == "ok" and d.get("tokens_per_s")]
    keys = list(throughput.UTIL)
    # the optimizers' per-tensor costs come from their own runs (medians, see StepConstants), not this fit
    names = [f.name for f in dataclasses.fields(throughput.StepConstants) if not f.name.endswith("_tensor_ms")]

    def residuals(x):
        throughput.UTIL.update(zip(keys, x[: len(keys)]))
        k = throughput.StepConstants(**dict(zip(names, x[len(keys):])))
        return [math.log(throughput.step_seconds(a, c, TFLOPS, BW, k)["total"] * d["tokens_per_s"] / (c.seq_len * c.batch_size))
                for a, c, d in runs]

    x0 = [throughput.UTIL[k] for k in keys] + [getattr(throughput.STEP, n) for n in names]
    lo = [0.05] * len(keys) + [0.0] * len(names)
    hi = [0.8] * len(keys) + [100.0] * len(names)
    res = least_squares(residuals, np.clip(x0, lo, hi), bounds=(lo, hi))
    err = [math.exp(-r) - 1 for r in residuals(res.x)]  # tokens/s: predicted / measured - 1
    print(f"{len(runs)} runs; within 25%: {sum(abs(e) <= 0.25 for e in err)}; median |error| {np.median(np.abs(err)):.1%}")
    print("UTIL =", {k: round(float(v), 3) for k, v in zip(keys, res.x)})
    print(throughput.StepConstants(**{n: round(float(v), 3) for n, v in zip(names, res.x[len(keys):])}))


if __name__ == "__main__":
    main()
