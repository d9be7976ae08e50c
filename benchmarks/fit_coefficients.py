"""Refit the activation coefficients of one method class of the estimator on the measured runs.

    python benchmarks/fit_coefficients.py lora          # needs numpy and scipy (not ftdecide dependencies)
    python benchmarks/fit_coefficients.py --least-squares dora a_h a_q ...   # bounded least squares

The form of every term is fixed by what autograd saves (see ftdecide/estimator.py); this only finds the
bytes per value. Loss: squared relative error of peak_allocated_gib on runs that fit, under-estimates
weighted 3x (an under-estimate is an OOM for the user), plus runs that ran out of memory whose estimate
falls below the memory they had already allocated when they failed (a lower bound of their true peak).
Prints the fitted ActCoef to paste into the method's module (its ``fitted``). Each trial is a new frozen
Calibration (``Calibration.with_act``) passed to the estimator; nothing is rewritten in place.
"""

from __future__ import annotations

import dataclasses
import pathlib
import sys

import numpy as np
from scipy.optimize import minimize

ROOT = pathlib.Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(ROOT / "benchmarks"))

from accuracy import config, load  # noqa: E402
from ftdecide.core import estimator  # noqa: E402
from ftdecide.core.calibration import DEFAULT  # noqa: E402
from ftdecide.methods import variants  # noqa: E402
from ftdecide.files.hfconfig import arch_from_hf_config  # noqa: E402


def main(key: str, names: list[str]) -> None:
    if key not in variants():
        raise SystemExit(f"unknown method variant {key!r} (choose from {', '.join(variants())})")
    # runs with a lever switched on (Liger, activation offload) are fitted by fit_levers.py, on these constants
    runs = [
        (arch_from_hf_config(d["hf_config"], d["arch"]), config(d), d)
        for d in load()
        if d["method"] == key and not d.get("liger") and not d.get("offload_act")
    ]
    base = DEFAULT.act(key)
    names = names or [f.name for f in dataclasses.fields(base)]
    # a term at zero gets a starting value so that the simplex explores it
    x0 = np.array([getattr(base, n) or 1.0 for n in names])

    def loss(x):
        cal = DEFAULT.with_act(key, dataclasses.replace(base, **{n: max(0.0, float(v)) for n, v in zip(names, x, strict=True)}))
        total = 0.0
        for arch, cfg, d in runs:
            e = estimator.estimate_memory(arch, cfg, cal).peak_allocated_gib / d["peak_alloc_gib"] - 1
            if d["status"] == "ok":
                total += e * e * (3.0 if e < 0 else 1.0)
            elif e < 0:
                total += 3.0 * e * e
        return total

    print(f"{key}: {len(runs)} runs, loss before {loss(x0):.4f}")
    if LEAST_SQUARES:
        from scipy.optimize import least_squares

        def residuals(x):
            cal = DEFAULT.with_act(key, dataclasses.replace(base, **{n: float(v) for n, v in zip(names, x, strict=True)}))
            out = []
            for arch, cfg, d in runs:
                e = estimator.estimate_memory(arch, cfg, cal).peak_allocated_gib / d["peak_alloc_gib"] - 1
                # the same weighting as loss(): under-estimates count 3x (squared), OOM runs only below
                out.append(e * (3**0.5 if e < 0 else 1.0) if d["status"] == "ok" else 3**0.5 * min(e, 0.0))
            return out

        res = least_squares(residuals, x0, bounds=(0.0, 300.0))
        res.fun = float(sum(r * r for r in res.fun))
    else:
        res = minimize(loss, x0, method="Nelder-Mead", options={"maxiter": 4000, "xatol": 1e-3, "fatol": 1e-7})
    print(f"loss after {res.fun:.4f}")
    print(dataclasses.replace(base, **{n: round(max(0.0, float(v)), 2) for n, v in zip(names, res.x, strict=True)}))


LEAST_SQUARES = False

if __name__ == "__main__":
    args = sys.argv[1:]
    if args and args[0] == "--least-squares":  # bounded trust-region least squares: for many terms at once
        LEAST_SQUARES, args = True, args[1:]
    main(args[0], args[1:])
