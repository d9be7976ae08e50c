"""Per-GPU peak memory of the several-GPU runs in data/scaleout/: the FSDP2 runs measured under torch's
fake process group at 2-64 GPUs, and the real 2-GPU runs (torchrun, NCCL) of FSDP2, DDP and DeepSpeed
ZeRO-2/3 with their fake-group twins. ftdecide's estimate beside DeepSpeed's ZeRO-3 estimator and
accelerate's ``estimate-memory`` divided over the GPUs, on the same runs; then real against fake.

    python benchmarks/scaleout.py

DeepSpeed's ``estimate_zero3_model_states_mem_needs`` (deepspeed/runtime/zero/stage3.py, no offload):
``4 x largest_layer_params + 18 x total_params / GPUs`` bytes, model states only. accelerate's
``estimate-memory`` (``estimate_training_usage``): 16 B per parameter for AdamW with mixed precision (8 B
for a bf16 model; its LoRA figure is the model's size), divided here by the GPUs as FSDP would. Neither
counts activations, logits or what FSDP holds gathered. Runs that failed to train are listed, not scored.
"""

from __future__ import annotations

import json
import pathlib
import statistics
import sys

ROOT = pathlib.Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "src"))

from ftdecide.estimator import GIB, estimate_memory  # noqa: E402
from ftdecide.probe.records import arch_from_record, config_from_record  # noqa: E402
from ftdecide.strategies.fsdp import layer_params  # noqa: E402


def deepspeed_zero3(arch, n: int) -> float:
    return (4 * layer_params(arch) + 18 * arch.total_params() / n) / GIB


def accelerate(arch, cfg, n: int) -> float:
    p = arch.total_params()
    spec = cfg.method_spec
    if spec.trains_base:
        per_param = 16 if cfg.precision == "mixed" else 8
    else:
        per_param = 2 if not spec.quantized_base else 0.5
    return per_param * p / n / GIB


def load(pattern: str) -> list[dict]:
    rows = []
    for f in sorted((ROOT / "data" / "scaleout").glob(pattern)):
        rows += [json.loads(line) for line in f.read_text().splitlines() if line.strip()]
    return rows


def key(d: dict) -> tuple:
    return (d.get("strategy"), d["arch"], d["method"], d["seq"], d["batch"], bool(d["gc"]), d.get("world_size"))


def table(rows: list[dict], title: str) -> None:
    ok = [d for d in rows if d.get("status") == "ok"]
    errs: dict[str, list[float]] = {"ftdecide": [], "DeepSpeed ZeRO-3 estimator": [], "accelerate estimate-memory / N": []}
    for d in ok:
        arch, cfg = arch_from_record(d), config_from_record(d)
        n, meas = cfg.world_size, d["peak_alloc_gib"]
        errs["ftdecide"].append(estimate_memory(arch, cfg).peak_allocated_gib / meas - 1)
        errs["DeepSpeed ZeRO-3 estimator"].append(deepspeed_zero3(arch, n) / meas - 1)
        errs["accelerate estimate-memory / N"].append(accelerate(arch, cfg, n) / meas - 1)
    print(f"\n{title}: {len(rows)} runs ({len(ok)} trained, {len(rows) - len(ok)} failed)\n")
    print("| estimator | runs | median abs error | worst under | worst over | within 5% |")
    print("|---|---|---|---|---|---|")
    for name, e in errs.items():
        med = statistics.median(abs(x) for x in e)
        print(f"| {name} | {len(e)} | {med:.1%} | {min(e):+.1%} | {max(e):+.1%} | {sum(abs(x) <= 0.05 for x in e)}/{len(e)} |")


def main() -> None:
    table(load("h200_fsdp_fake_*.jsonl"), "FSDP2 runs under torch's fake process group (world sizes 2-64)")
    real = load("h200x2_real_*.jsonl")
    for strategy in ("fsdp", "ddp", "zero2", "zero3"):
        table([d for d in real if d["strategy"] == strategy], f"{strategy}: real 2-GPU runs (torchrun, NCCL, H200 x2 NV18)")
    fake = {key(d): d for d in load("h200_fake_world2_*.jsonl")}
    print("\nreal against fake, per-GPU peak (GiB), same configuration:\n")
    print("| strategy | model | method | seq x batch | gc | real | fake | difference |")
    print("|---|---|---|---|---|---|---|---|")
    diffs = []
    for d in real:
        f = fake.get(key(d))
        if f is None:
            continue
        if f["status"] != "ok":
            got, diff = f"{f['status']}: {f.get('error', '')[:40]}", "-"
        else:
            diffs.append(f["peak_alloc_gib"] - d["peak_alloc_gib"])
            got, diff = f"{f['peak_alloc_gib']:.2f}", f"{diffs[-1]:+.3f}"
        shape = f"{d['seq']}x{d['batch']} | {d['gc']}"
        print(f"| {d['strategy']} | {d['arch']} | {d['method']} | {shape} | {d['peak_alloc_gib']:.2f} | {got} | {diff} |")
    print(f"\n{len(diffs)} pairs measured both ways; largest difference {max(map(abs, diffs)):.3f} GiB")


if __name__ == "__main__":
    main()
