"""Accuracy of ftdecide's peak-memory and throughput estimates on every measured run the project keeps.

    python benchmarks/accuracy.py            # markdown tables on stdout

Data: data/measurements/*.jsonl (H100, made with ftdecide's probe) and, where it sits beside the checkout,
shared/calibration/h100_peak_memory.jsonl. Beside ftdecide it scores two parameter-only baselines on the
same runs:

- accelerate's ``estimate-memory`` formula (``estimate_training_usage`` in
  huggingface/accelerate src/accelerate/commands/estimate.py @ 00e4d264): its "Training using Adam"
  column is the largest of model, gradients, optimizer and step sizes; for the float16 (mixed
  precision) row that is 8 bytes per parameter, which is what a user reads for bf16 full fine-tuning.
  It has no LoRA; a user reads the model's size in float16 (2 bytes/param) for LoRA and int4
  (0.5 bytes/param) for QLoRA.
- the seeds' table (shared/seeds/000): full 16 bytes/param, LoRA 2.5 GB and QLoRA 0.6 GB per billion.

OOM agreement: a run is predicted to fit when required_gib <= 79.18 GiB (the H100's memory as torch reports
it). Throughput: predicted against measured tokens/s of the runs that fit, beside one flat utilisation per
method (the median measured MFU), the model ftdecide used before.
"""

from __future__ import annotations

import pathlib
import statistics
import sys

ROOT = pathlib.Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "src"))

from ftdecide.core.estimator import GIB, estimate_memory  # noqa: E402
from ftdecide.files.hfconfig import arch_from_hf_config  # noqa: E402
from ftdecide.probe.records import H100_TOTAL_GIB as CARD_GIB, config_from_record as config, read_records  # noqa: E402
from ftdecide.core.calibration import DEFAULT  # noqa: E402
from ftdecide.methods import variants  # noqa: E402
from ftdecide.core.throughput import tokens_per_second  # noqa: E402


def load():
    return read_records(ROOT / "data" / "measurements", ROOT.parent / "shared" / "calibration")


def predictions(d):
    arch = arch_from_hf_config(d["hf_config"], d["arch"])
    e = estimate_memory(arch, config(d))
    n = arch.total_params()
    spec = config(d).method_spec
    if spec.trains_base:
        acc, seeds = 8 * n, 16 * n
    elif not spec.quantized_base:
        acc, seeds = 2 * n, 2.5e9 * n / 1e9
    else:
        acc, seeds = 0.5 * n, 0.6e9 * n / 1e9
    return {
        "ftdecide": (e.peak_allocated_gib, e.required_gib),
        "accelerate estimate-memory": (acc / GIB, acc / GIB),
        "seeds' table": (seeds / GIB, seeds / GIB),
    }


LEVERS = {
    "none": lambda d: not d.get("liger") and not d.get("offload_act") and not d.get("optim", "").startswith("paged_"),
    "liger": lambda d: bool(d.get("liger")),
    "offload activations": lambda d: bool(d.get("offload_act")),
    "paged optimizer": lambda d: d.get("optim", "").startswith("paged_"),
}


def card_gib(d) -> float:
    """The memory the record's GPU reported (H100 80GB for records that predate the field)."""
    return (d.get("software") or {}).get("gpu_total_gib") or CARD_GIB


def gpu_figures(d) -> tuple[float, float]:
    """(dense bf16 TFLOPS, GB/s) of the record's GPU from the catalog; the H100 SXM where unknown."""
    from ftdecide.files.catalog import gpu_for_device

    g = gpu_for_device((d.get("software") or {}).get("gpu", ""))
    return (g.bf16_tflops, g.memory_bandwidth_gbs) if g else (989.0, 3350.0)


def _time_stats(errs: list[float]) -> str:
    """Median abs error, worst under, worst over and the count within 25%, as table cells."""
    return (
        f"{statistics.median(abs(e) for e in errs):.1%} | {min(errs):+.1%} | {max(errs):+.1%} | "
        f"{sum(abs(e) <= 0.25 for e in errs)}/{len(errs)}"
    )


def main():
    rows = load()
    methods = list(variants())
    out = [
        f"Runs: {len(rows)} ({sum(d['status'] == 'ok' for d in rows)} fit, "
        f"{sum(d['status'] == 'oom' for d in rows)} out of memory): H100 80GB, and H200 for the DoRA, PEFT-family and lever runs.",
        "",
    ]
    out.append("| estimator | method | runs | median abs error | worst under | worst over | OOM agreement |")
    out.append("|---|---|---|---|---|---|---|")
    preds = [(d, predictions(d)) for d in rows]
    for name in ("ftdecide", "accelerate estimate-memory", "seeds' table"):
        for m in methods + ["all"]:
            sel = [(d, p[name]) for d, p in preds if m == "all" or d["method"] == m]
            ok = [(p[0] / d["peak_alloc_gib"] - 1) for d, p in sel if d["status"] == "ok"]
            agree = sum((p[1] <= card_gib(d)) == (d["status"] == "ok") for d, p in sel)
            if not ok:
                continue
            out.append(
                f"| {name} | {m} | {len(ok)} | {statistics.median(abs(e) for e in ok):.1%} | {min(ok):+.1%} | {max(ok):+.1%} | "
                f"{agree}/{len(sel)} |"
            )
    out += [
        "",
        "By lever (ftdecide; runs of every method with the lever switched on):",
        "",
        "| lever | runs | median abs error | worst under | worst over | OOM agreement |",
        "|---|---|---|---|---|---|",
    ]
    for lever, pick in LEVERS.items():
        sel = [(d, p["ftdecide"]) for d, p in preds if pick(d)]
        ok = [(p[0] / d["peak_alloc_gib"] - 1) for d, p in sel if d["status"] == "ok"]
        agree = sum((p[1] <= card_gib(d)) == (d["status"] == "ok") for d, p in sel)
        if ok:
            med = statistics.median(abs(e) for e in ok)
            out.append(f"| {lever} | {len(ok)} | {med:.1%} | {min(ok):+.1%} | {max(ok):+.1%} | {agree}/{len(sel)} |")
    out.append("")
    out.append("OOM disagreements of ftdecide (required_gib vs the card):")
    for d, p in preds:
        req = p["ftdecide"][1]
        if (req <= card_gib(d)) != (d["status"] == "ok"):
            out.append(
                f"- {d['arch']} {d['method']} {d.get('targets') or ''} r={d.get('r')} seq {d['seq']} x {d['batch']} gc={d['gc']}: "
                f"measured {d['status']} "
                f"({d['peak_alloc_gib']:.1f} GiB), predicted required {req:.1f} GiB"
            )
    out += [
        "",
        "Throughput: predicted vs measured tokens/s on the runs that fit (at the catalog figures of the record's GPU, H100 SXM: "
        "989 TFLOPS, 3350 GB/s; H200: 989 TFLOPS, 4800 GB/s; "
        "ftdecide/throughput.py), beside one flat utilisation per method (6N/4N FLOPs at the method's median MFU).",
        "",
        "| time model | method | runs | matmul utilisation | median abs error | worst under | worst over | within 25% |",
        "|---|---|---|---|---|---|---|---|",
    ]
    # steps measured beside other probes on the same GPU (concurrent_runs) time the sharing, not the run
    timed = [
        (d, arch_from_hf_config(d["hf_config"], d["arch"]), config(d))
        for d in rows
        if d["status"] == "ok" and d.get("tokens_per_s") and d.get("concurrent_runs", 1) == 1
    ]
    from ftdecide.core.throughput import train_flops_per_token

    mfu = {}
    for d, a, c in timed:
        mfu.setdefault(c.variant, []).append(d["tokens_per_s"] * train_flops_per_token(a, c) / (gpu_figures(d)[0] * 1e12))
    flat = {k: statistics.median(v) for k, v in mfu.items()}
    models = {
        "ftdecide": lambda d, a, c: tokens_per_second(a, c, *gpu_figures(d)),
        "flat MFU": lambda d, a, c: flat[c.variant] * gpu_figures(d)[0] * 1e12 / train_flops_per_token(a, c),
    }
    for name, f in models.items():
        for m in methods + ["all"]:
            errs = [f(d, a, c) / d["tokens_per_s"] - 1 for d, a, c in timed if m == "all" or d["method"] == m]
            if not errs:
                continue
            u = (f"{DEFAULT.utilisation(m):.2f}" if name == "ftdecide" else f"{flat[m]:.2f}") if m != "all" else ""
            out.append(f"| {name} | {m} | {len(errs)} | {u} | {_time_stats(errs)} |")
    out += [
        "",
        "By what bounds the step (the model's longer stream: GPU kernels, or the CPU launching them):",
        "",
        "| bound | runs | median abs error | worst under | worst over | within 25% |",
        "|---|---|---|---|---|---|",
    ]
    from ftdecide.core.throughput import kernels_per_step, step_seconds

    for bound in ("gpu", "cpu"):
        errs = []
        for d, a, c in timed:
            s = step_seconds(a, c, *gpu_figures(d))
            if (s["launch"] > s["matmul"] + s["memory"]) == (bound == "cpu"):
                errs.append(c.seq_len * c.batch_size / s["total"] / d["tokens_per_s"] - 1)
        out.append(f"| {bound} | {len(errs)} | {_time_stats(errs)} |")
    prof = [(d, a, c) for d, a, c in timed if "profile" in d]
    kerr = [kernels_per_step(a, c) / d["profile"]["kernels"] - 1 for d, a, c in prof]
    out += [
        "",
        f"Kernels per step (ftdecide/throughput.py) against torch.profiler's count on {len(kerr)} profiled steps: "
        f"median abs error {statistics.median(abs(e) for e in kerr):.1%}, worst {min(kerr):+.1%} / {max(kerr):+.1%}.",
    ]
    # the host's speed: measured step time per kernel of the profiled steps that kept the GPU busy less than half the time
    hosts: dict[str, list[float]] = {}
    for d, _, _ in prof:
        p = d["profile"]
        if p["gpu_busy_s"] < 0.5 * p["wall_s"]:
            hosts.setdefault(d["src"], []).append(d["seq"] * d["batch"] / d["tokens_per_s"] / p["kernels"] * 1e6)
    for f, v in sorted(hosts.items()):
        out.append(
            f"CPU-bound profiled steps in {f}: {len(v)}, {min(v):.0f}-{max(v):.0f} us per kernel (median {statistics.median(v):.0f})."
        )
    print("\n".join(out))


if __name__ == "__main__":
    main()
