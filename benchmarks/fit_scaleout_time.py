"""Step time on several GPUs against the 25 timed 2-GPU runs (data/scaleout/h200x2_real_*: torchrun, NCCL,
2 H200s joined by 18 NVLinks, six steps each, tokens/s from the fastest after the first), and every later
real run (2 GPUs; 4 and 8 in h200x4_real_* and h200x8_real_* once such a machine runs
data/grids/multigpu_x4x8.jsonl).

    python benchmarks/fit_scaleout_time.py

The link's share (``nccl_efficiency``) and each strategy's ``overlap`` come from torch.profiler on five of
the runs (the ``profile_*`` fields: NCCL kernel time, and the part of it no compute kernel overlaps). The
one constant left per strategy, ``layer_s`` (its hooks' cost per decoder layer per micro-batch), is fitted
here on every other run of the strategy (log-error least squares over a grid) and checked on the rest;
the fitted values are the ones in ``src/ftdecide/strategies/``. A run is GPU-bound when the model puts
its kernels' time above its launch time (the issue's 15% target is for those). The 1-GPU twins
(data/measurements/h200_multigpu_single_*) give the measured scaling from 1 GPU to 2 (4 and 8).
"""

from __future__ import annotations

import dataclasses
import json
import math
import pathlib
import statistics
import sys

ROOT = pathlib.Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "src"))

from ftdecide import strategies  # noqa: E402
from ftdecide.files.catalog import resolve_gpu  # noqa: E402
from ftdecide.probe.records import arch_from_record, config_from_record  # noqa: E402
from ftdecide.core.throughput import link_gbs, step_seconds  # noqa: E402

H200 = resolve_gpu("h200")


def rows(pattern: str, sub: str = "scaleout") -> list[dict]:
    return [json.loads(line) for f in sorted((ROOT / "data" / sub).glob(pattern)) for line in f.read_text().splitlines() if line.strip()]


def predict(d: dict, layer_s: float | None = None) -> tuple[float, dict]:
    """Predicted tokens/s of one GPU of the run, and the step's parts; ``layer_s`` replaces the strategy's."""
    arch, cfg = arch_from_record(d), config_from_record(d)
    if layer_s is not None:
        spec = strategies.get(cfg.strategy)
        strategies._REGISTRY[spec.name] = dataclasses.replace(spec, layer_s=layer_s)
    try:
        s = step_seconds(arch, cfg, H200.bf16_tflops, H200.memory_bandwidth_gbs, link_gbs=link_gbs(H200, 1))
    finally:
        if layer_s is not None:
            strategies._REGISTRY[spec.name] = spec
    return d["seq"] * d["batch"] / s["total"], s


def gpu_bound(s: dict) -> bool:
    return s["matmul"] + s["memory"] >= s["launch"]


def main() -> None:
    # the fit and its held-out half: the 25 runs of the first 2-GPU session; the later runs are all held out
    real = rows("h200x2_real_2026-11-29.jsonl")
    print("| strategy | layer_s fitted (ms) | in the code (ms) | fit runs: errors | held-out runs: errors |")
    print("|---|---|---|---|---|")
    held: list[tuple[dict, float, bool]] = []
    for name in ("fsdp", "ddp", "zero2", "zero3"):
        rs = [d for d in real if d["strategy"] == name]
        fit, test = rs[0::2], rs[1::2]
        grid = [i / 10000 for i in range(400)]
        best = min(grid, key=lambda x: sum(math.log(predict(d, x)[0] / d["tokens_per_s"]) ** 2 for d in fit))
        errs = lambda sub: [predict(d)[0] / d["tokens_per_s"] - 1 for d in sub]  # noqa: E731
        fmt = lambda es: " ".join(f"{e:+.0%}" for e in es) or "-"  # noqa: E731
        print(f"| {name} | {best * 1e3:.1f} | {strategies.get(name).layer_s * 1e3:.1f} | {fmt(errs(fit))} | {fmt(errs(test))} |")
        held += [(d, predict(d)[0] / d["tokens_per_s"] - 1, gpu_bound(predict(d)[1])) for d in test]
    bound = [e for _, e, b in held if b]
    print(f"\nheld-out runs: {len(held)}, median abs error {statistics.median(abs(e) for _, e, _ in held):.1%}")
    med, worst = statistics.median(map(abs, bound)), max(map(abs, bound))
    print(f"held-out GPU-bound runs: {len(bound)}, median abs error {med:.1%}, worst {worst:.1%}")
    # every later real run, on 2 GPUs or (once such a machine is lent) 4 and 8: h200x4_real_*, h200x8_real_*
    later = [d for d in rows("h200x*_real_*.jsonl") if d not in real and "tokens_per_s" in d]
    print(f"\nlater timed runs (never fitted): {len(later)}")
    for d in later:
        p, parts = predict(d)
        kind = "GPU-bound" if gpu_bound(parts) else "launch-bound"
        err = p / d["tokens_per_s"] - 1
        print(
            f"  {d['world_size']} GPUs {d['strategy']:5} {d['arch']:12} {d['method']:10} {d['optim']:9} {d['tokens_per_s']:7.0f} "
            f"({p:7.0f}) {err:+.0%} {kind}"
        )
    prof = [d for d in real if "profile_comm_s" in d]
    print("\nprofiled steps (ms per step): NCCL kernels, of it exposed, compute kernels, span")
    for d in prof:
        hid = 1 - d["profile_exposed_comm_s"] / d["profile_comm_s"]
        ms = " ".join(f"{d['profile_' + k] * 1e3:7.1f}" for k in ("comm_s", "exposed_comm_s", "compute_s", "span_s"))
        print(f"  {d['strategy']:5} {d['arch']:12} {d['method']:10} {ms}  hidden {hid:.0%}")
    one = {(d["arch"], d["method"], d["seq"], d["batch"], d["gc"]): d for d in rows("h200_multigpu_single_*.jsonl", "measurements")}
    timed: dict[tuple, dict[int, dict]] = {}
    for d in rows("h200x*_real_*.jsonl"):
        if "tokens_per_s" in d:
            timed.setdefault((d["strategy"], d["arch"], d["method"], d["optim"], d["seq"], d["batch"], d["gc"]), {})[d["world_size"]] = d
    print("\ntokens/s per GPU by GPU count (1 GPU: the same shape alone), measured (predicted)")
    for (strategy, arch, method, optim, seq, batch, gc), by_n in timed.items():
        o = one.get((arch, method, seq, batch, gc)) if optim == "adamw" else None
        cells = []
        if o:
            p1 = predict({k: v for k, v in o.items() if k not in ("world_size", "strategy")})[0]
            cells.append(f"1: {o['tokens_per_s']:6.0f} ({p1:6.0f})")
        cells += [f"{n}: {d['tokens_per_s']:6.0f} ({predict(d)[0]:6.0f})" for n, d in sorted(by_n.items())]
        print(f"  {strategy:5} {arch:12} {method:10} " + "  ".join(cells))


if __name__ == "__main__":
    main()
