"""Refit the constants of the levers (Liger kernel, activation offload) on the runs that switch them on.

    python benchmarks/fit_levers.py liger liger_saved_h liger_fwd_h liger_bwd_h
    python benchmarks/fit_levers.py offload offload_kept_share offload_kept_share_trained

The method's own coefficients stay as fitted without the lever (fit_coefficients.py); this finds the
:class:`ftdecide.core.calibration.Calibration` fields named, by bounded least squares on the squared relative
error of peak_allocated_gib, under-estimates weighted 3x, as fit_coefficients.py does. Prints the
values to paste into calibration.py. Needs numpy and scipy (not ftdecide dependencies).
"""

from __future__ import annotations

import pathlib
import sys

import numpy as np
from scipy.optimize import least_squares

ROOT = pathlib.Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(ROOT / "benchmarks"))

from accuracy import config, load  # noqa: E402
from ftdecide.core import estimator  # noqa: E402
from ftdecide.core.calibration import DEFAULT  # noqa: E402
from ftdecide.files.hfconfig import arch_from_hf_config  # noqa: E402

LEVERS = {"liger": lambda d: bool(d.get("liger")), "offload": lambda d: bool(d.get("offload_act"))}


def main(lever: str, names: list[str]) -> None:
    pick = LEVERS[lever]
    runs = [(arch_from_hf_config(d["hf_config"], d["arch"]), config(d), d) for d in load() if pick(d)]
    x0 = np.array([getattr(DEFAULT, n) for n in names])

    def residuals(x):
        cal = DEFAULT.with_constants(**{n: float(v) for n, v in zip(names, x, strict=True)})
        out = []
        for arch, cfg, d in runs:
            e = estimator.estimate_memory(arch, cfg, cal).peak_allocated_gib / d["peak_alloc_gib"] - 1
            out.append(e * (3**0.5 if e < 0 else 1.0) if d["status"] == "ok" else 3**0.5 * min(e, 0.0))
        return out

    before = float(sum(r * r for r in residuals(x0)))
    res = least_squares(residuals, x0, bounds=(0.0, 300.0))
    print(f"{lever}: {len(runs)} runs, loss {before:.4f} -> {float(sum(r * r for r in res.fun)):.4f}")
    print(", ".join(f"{n}={v:.3f}" for n, v in zip(names, res.x, strict=True)))


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2:])
