"""Fit the step-time model of ftdecide/throughput.py to the measured runs.

    python benchmarks/fit_throughput.py [NAME ...]   # needs numpy and scipy (not ftdecide dependencies)
    python benchmarks/fit_throughput.py --adapters   # the LoRA family alone (about a minute)
    python benchmarks/fit_throughput.py --joint      # ... with full fine-tuning's utilisations, k_act and k_state

NAMEs of StepConstants fields (k_fused, attn_util, ...) are held at 0: what the fit loses without them. NFEV (100)
bounds the least-squares iterations: each costs about 6 s (the Jacobian's 35 passes of 0.17 s over the 495 runs timed
alone), and 60 lowered the shipped constants' cost by 2% (2026-12-07: median |error| 9.2% -> 8.5%; nothing was pasted
back).

Two stages, physics first:

1. Kernel counts (``KernelCounts``): non-negative least squares of the kernels torch.profiler counted in
   the profiled steps (records with a ``profile``, from ``benchmarks/device_diagnose.py``) on what
   launches them (layer passes, adapters, 4-bit linears, experts, optimizer tensors). These do not
   depend on the host or the GPU's speed. Counts no profiled step launches (DoRA's, Houlsby's, IA3's, Liger's) keep
   the values fitted or counted elsewhere.
2. Times: minimises the squared log error of the predicted step time (on the GPU each run was made on)
   over every run that fit and was timed alone, in the per-method utilisations (bounded to 0.05-0.8: no kernel sustains the
   datasheet peak) and the non-negative constants of StepConstants (SGD's per-tensor cost, from its one
   run, stays as it is).

Prints the constants to paste into the module.
"""

from __future__ import annotations

import dataclasses
import math
import os
import pathlib
import sys

import numpy as np
from scipy.optimize import least_squares, nnls

ROOT = pathlib.Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(ROOT / "benchmarks"))

from accuracy import config, gpu_figures, load  # noqa: E402
from ftdecide.core import estimator, throughput  # noqa: E402
from ftdecide.core.calibration import DEFAULT, KernelCounts, StepConstants  # noqa: E402
from ftdecide.files.hfconfig import arch_from_hf_config  # noqa: E402


def fit_kernels(runs) -> KernelCounts:
    names = [f.name for f in dataclasses.fields(KernelCounts)]
    rows, counts = [], []
    for a, c, d in runs:
        if "profile" not in d:
            continue
        # the count is linear in the constants: probe it one unit vector at a time
        rows.append([throughput.kernels_per_step(a, c, KernelCounts(**{n: float(n == m) for n in names})) for m in names])
        counts.append(d["profile"]["kernels"])
    A = np.array(rows)
    # counts no profiled step launches (DoRA's, Houlsby's, IA3's, Liger's) were set elsewhere: they keep their value
    seen = [j for j in range(len(names)) if A[:, j].any()]
    x, _ = nnls(A[:, seen], np.array(counts, float))
    fitted = {names[j]: round(float(v), 2) for j, v in zip(seen, x, strict=True)}
    kc = dataclasses.replace(DEFAULT.kernels, **fitted)
    err = [throughput.kernels_per_step(a, c, kc) / d["profile"]["kernels"] - 1 for a, c, d in runs if "profile" in d]
    print(f"kernel counts: {len(err)} profiled steps, median |error| {np.median(np.abs(err)):.1%}, worst {min(err):+.1%} / {max(err):+.1%}")
    print(kc)
    return kc


def log_errors(runs, cal) -> list[float]:
    """log(predicted step / measured step) of each (arch, config, record)."""
    return [
        math.log(throughput.step_seconds(a, c, *gpu_figures(d), cal)["total"] * d["tokens_per_s"] / (c.seq_len * c.batch_size))
        for a, c, d in runs
    ]


ADAPTERS = ("lora", "qlora", "dora")
# --joint: the full fine-tunings' utilisations too, and the passes over activations and over weights and states
JOINT = ADAPTERS + ("full_bf16", "full_mixed")
JOINT_STEP = ("k_act", "k_state")


def adapters(runs, joint: bool = False) -> None:
    """The LoRA family alone: its three utilisations and ``lora_io_bytes`` (LoRA's constant: bytes per input and
    output value of each adapted linear, per token and pass) on the loop's LoRA, QLoRA and DoRA runs, every other
    constant as shipped; then the timing grids of the emitted trainer files, which the fit does not see. ``joint``:
    with full fine-tuning's two utilisations, ``k_act`` and ``k_state``, on every run."""
    import statistics

    import fit_trainers

    keys, step = (JOINT, JOINT_STEP) if joint else (ADAPTERS, ())
    runs = runs if joint else [r for r in runs if r[1].variant in ADAPTERS]

    def calibration(x):
        n = len(keys)
        cal = DEFAULT.with_util(dict(zip(keys, x[:n], strict=True))).with_constants(lora_io_bytes=float(x[n]))
        return dataclasses.replace(cal, step=dataclasses.replace(cal.step, **dict(zip(step, map(float, x[n + 1 :]), strict=True))))

    def grids(cal) -> str:
        out = []
        for trainer in ("trl", "hf"):
            runs = fit_trainers.alone(fit_trainers.load(trainer))
            errs = [fit_trainers.time_error(r, cal)[2] for r in runs if r["id"].startswith(f"trainer_{trainer}_timing:")]
            out.append(f"{trainer} timing grid {len(errs)} runs {statistics.median(abs(e) for e in errs):.1%}")
        return "; ".join(out)

    x0 = [DEFAULT.utilisation(k) for k in keys] + [DEFAULT.lora_io_bytes] + [getattr(DEFAULT.step, n) for n in step]
    print(
        f"{len(runs)} runs, as shipped: loop median |error| {np.median(np.abs(np.expm1(log_errors(runs, DEFAULT)))):.1%}; {grids(DEFAULT)}"
    )
    lo, hi = [0.05] * len(keys) + [0.0] * (1 + len(step)), [0.8] * len(keys) + [100.0] * (1 + len(step))
    res = least_squares(lambda x: log_errors(runs, calibration(x)), x0, bounds=(lo, hi), max_nfev=int(os.environ.get("NFEV", "100")))
    cal = calibration(res.x)
    print(f"fitted: loop median |error| {np.median(np.abs(np.expm1(log_errors(runs, cal)))):.1%}; {grids(cal)}")
    print(
        "UTIL =", {k: round(float(v), 3) for k, v in zip(keys, res.x, strict=False)}, "lora_io_bytes =", round(float(res.x[len(keys)]), 2)
    )
    print({n: round(float(v), 3) for n, v in zip(step, res.x[len(keys) + 1 :], strict=True)})


def main() -> None:
    runs = [
        (arch_from_hf_config(d["hf_config"], d["arch"]), config(d), d)
        for d in load()
        if d["status"] == "ok" and d.get("tokens_per_s") and d.get("concurrent_runs", 1) == 1
    ]
    # the time fit moves no memory constant: each trial's calibration reads the memory model of the shipped one
    throughput.memory_model = lambda a, c, cal=DEFAULT: estimator.memory_model(a, c, DEFAULT)
    if sys.argv[1:] in (["--adapters"], ["--joint"]):
        adapters(runs, joint=sys.argv[1] == "--joint")
        return
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
        return log_errors(runs, calibration(x))

    x0 = [DEFAULT.utilisation(k) for k in keys] + [getattr(DEFAULT.step, n) for n in names]
    lo = [0.05] * len(keys) + [0.0] * len(names)
    hi = [0.8] * len(keys) + [100.0] * len(names)
    lo[len(keys) + names.index("overlap_p")] = 1.0
    lo[len(keys) + names.index("k_logits")] = 2.0  # at least: the fp32 upcast is written once and read once
    for n in sys.argv[1:]:
        hi[len(keys) + names.index(n)] = 1e-9
    res = least_squares(residuals, np.clip(x0, lo, hi), bounds=(lo, hi), verbose=1, max_nfev=int(os.environ.get("NFEV", "100")))
    err = [math.exp(-r) - 1 for r in residuals(res.x)]  # tokens/s: predicted / measured - 1
    print(f"{len(runs)} runs; within 25%: {sum(abs(e) <= 0.25 for e in err)}; median |error| {np.median(np.abs(err)):.1%}")
    print("UTIL =", {k: round(float(v), 3) for k, v in zip(keys, res.x[: len(keys)], strict=True)})
    print(dataclasses.replace(DEFAULT.step, **{n: round(float(v), 3) for n, v in zip(names, res.x[len(keys) :], strict=True)}))


if __name__ == "__main__":
    main()
