"""Per-GPU peak memory of the FSDP2 runs measured under torch's fake process group (data/scaleout/):
ftdecide's estimate beside DeepSpeed's ZeRO-3 estimator and accelerate's ``estimate-memory`` divided over
the GPUs, on the same runs.

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


def main() -> None:
    rows = []
    for f in sorted((ROOT / "data" / "scaleout").glob("*.jsonl")):
        rows += [json.loads(line) for line in f.read_text().splitlines() if line.strip()]
    ok = [d for d in rows if d.get("status") == "ok"]
    errs: dict[str, list[float]] = {"ftdecide": [], "DeepSpeed ZeRO-3 estimator": [], "accelerate estimate-memory / N": []}
    for d in ok:
        arch, cfg = arch_from_record(d), config_from_record(d)
        n, meas = cfg.world_size, d["peak_alloc_gib"]
        errs["ftdecide"].append(estimate_memory(arch, cfg).peak_allocated_gib / meas - 1)
        errs["DeepSpeed ZeRO-3 estimator"].append(deepspeed_zero3(arch, n) / meas - 1)
        errs["accelerate estimate-memory / N"].append(accelerate(arch, cfg, n) / meas - 1)
    print(f"FSDP2 runs under torch's fake process group: {len(rows)} ({len(ok)} trained, {len(rows) - len(ok)} failed)\n")
    print("| estimator | runs | median abs error | worst under | worst over | within 5% |")
    print("|---|---|---|---|---|---|")
    for name, e in errs.items():
        med = statistics.median(abs(x) for x in e)
        print(f"| {name} | {len(e)} | {med:.1%} | {min(e):+.1%} | {max(e):+.1%} | {sum(abs(x) <= 0.05 for x in e)}/{len(e)} |")


if __name__ == "__main__":
    main()
