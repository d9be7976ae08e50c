"""Accuracy of ftdecide's peak-memory estimate on every measured run the project keeps.

    python benchmarks/accuracy.py            # markdown table on stdout

Data: data/measurements/*.jsonl (H100, made with ftdecide.probe.runner) and, where it sits beside the
checkout, shared/calibration/h100_peak_memory.jsonl. Beside ftdecide it scores two parameter-only
baselines on the same runs: the 16 bytes/param rule (weights 4 + gradients 4 + Adam 8, no activations:
what accelerate's estimate-memory and web VRAM calculators count for Adam training; for LoRA/QLoRA the base at
2 / 0.5 bytes plus 16 bytes per trainable parameter) and the seeds' table (full 16 B/param, LoRA 2.5 GB and
QLoRA 0.6 GB per billion parameters, shared/seeds/000). OOM agreement: a run is predicted to fit when
required_gib <= 79.18 GiB (the H100's memory as torch reports it).
"""

from __future__ import annotations

import json
import pathlib
import statistics
import sys

ROOT = pathlib.Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "src"))

from ftdecide.estimator import GIB, TrainConfig, estimate_memory  # noqa: E402
from ftdecide.hfconfig import arch_from_hf_config  # noqa: E402

CARD_GIB = 79.18


def load():
    rows = []
    for f in sorted((ROOT / "data" / "measurements").glob("*.jsonl")):
        rows += [json.loads(l) for l in f.read_text().splitlines() if l.strip()]
    shared = ROOT.parent / "shared" / "calibration"
    if (shared / "h100_peak_memory.jsonl").is_file():
        archs = json.loads((shared / "architectures.json").read_text())
        for l in (shared / "h100_peak_memory.jsonl").read_text().splitlines():
            if l.strip():
                d = json.loads(l)
                d["hf_config"] = archs[d["arch"]]
                rows.append(d)
    return rows


def config(d):
    m = d["method"]
    return TrainConfig(method="full" if m.startswith("full") else m, precision="mixed" if m == "full_mixed" else "bf16", optimizer=d["optim"],
                       seq_len=d["seq"], batch_size=d["batch"], gradient_checkpointing=d["gc"], lora_rank=d.get("r") or 16,
                       lora_targets=d.get("targets") or "all-linear", lora_dropout=d.get("dropout") or 0.0)


def predictions(d):
    arch = arch_from_hf_config(d["hf_config"], d["arch"])
    e = estimate_memory(arch, config(d))
    n, t = arch.total_params(), e.trainable_params
    m = d["method"]
    if m.startswith("full"):
        p16, seeds = 16 * n, 16 * n
    elif m == "lora":
        p16, seeds = 2 * n + 16 * t, 2.5e9 * n / 1e9
    else:
        p16, seeds = 0.5 * n + 16 * t, 0.6e9 * n / 1e9
    return {"ftdecide": (e.peak_allocated_gib, e.required_gib), "16 B/param": (p16 / GIB, p16 / GIB), "seeds' table": (seeds / GIB, seeds / GIB)}


def main():
    rows = load()
    methods = ["full_bf16", "full_mixed", "lora", "qlora"]
    out = [f"Runs: {len(rows)} ({sum(d['status'] == 'ok' for d in rows)} fit, {sum(d['status'] == 'oom' for d in rows)} out of memory), H100 80GB.", ""]
    out.append("| estimator | method | runs | median abs error | worst under | worst over | OOM agreement |")
    out.append("|---|---|---|---|---|---|---|")
    preds = [(d, predictions(d)) for d in rows]
    for name in ("ftdecide", "16 B/param", "seeds' table"):
        for m in methods + ["all"]:
            sel = [(d, p[name]) for d, p in preds if m == "all" or d["method"] == m]
            ok = [(p[0] / d["peak_alloc_gib"] - 1) for d, p in sel if d["status"] == "ok"]
            agree = sum((p[1] <= CARD_GIB) == (d["status"] == "ok") for d, p in sel)
            if not ok:
                continue
            out.append(f"| {name} | {m} | {len(ok)} | {statistics.median(abs(e) for e in ok):.1%} | {min(ok):+.1%} | {max(ok):+.1%} | {agree}/{len(sel)} |")
    out.append("")
    out.append("OOM disagreements of ftdecide (required_gib vs the card):")
    for d, p in preds:
        req = p["ftdecide"][1]
        if (req <= CARD_GIB) != (d["status"] == "ok"):
            out.append(f"- {d['arch']} {d['method']} {d.get('targets') or ''} r={d.get('r')} seq {d['seq']} x {d['batch']} gc={d['gc']}: measured {d['status']} "
                       f"({d['peak_alloc_gib']:.1f} GiB), predicted required {req:.1f} GiB")
    print("\n".join(out))


if __name__ == "__main__":
    main()
