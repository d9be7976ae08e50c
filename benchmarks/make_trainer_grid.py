"""Grids of emitted-trainer runs for ``benchmarks/trainer_runs.py`` (one JSON line per run).

    python benchmarks/make_trainer_grid.py trl_a > data/grids/trainer_trl_a.jsonl

Each grid draws configurations from fixed lists with a fixed seed, so it is written again byte for byte.
Every line fits an 80 GB H100 by the probe loop's own plan (an upper bound on what the trainers peak at)
and covers: the methods each trainer runs, checkpointing on and off, micro-batch 1 to 16, sequence
lengths 512 to 8192, models from 0.5B to 14B (the 4-bit base too), Liger, activation offload and paged
optimizers, and examples of mixed length (padded per micro-batch).
"""

from __future__ import annotations

import json
import pathlib
import random
import sys

ROOT = pathlib.Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "src"))

SMALL = ["qwen2.5-0.5b", "llama-3.2-1b", "tinyllama-1.1b", "qwen2.5-1.5b", "gemma-2-2b"]
MID = ["llama-3.2-3b", "phi-3-mini", "qwen2.5-3b"]
LARGE = ["mistral-7b", "llama-3.1-8b", "qwen2.5-7b"]
XL = ["qwen2.5-14b"]
TRL_METHODS = ["lora", "lora", "qlora", "qlora", "full", "dora", "ia3", "prompt", "prefix"]
SEQS = [512, 1024, 2048, 2048, 4096, 8192]
BATCHES = [1, 2, 4, 8, 16]


def _fits(line: dict, limit: float = 74.0) -> bool:
    from ftdecide.files.catalog import resolve_model
    from ftdecide.core.estimator import TrainConfig, estimate_memory

    cfg = TrainConfig(
        method=line["method"],
        optimizer=line.get("optim", "adamw"),
        seq_len=line["seq"],
        batch_size=line["batch"],
        gradient_checkpointing=line["gc"],
        lora_rank=line.get("r", 16),
        lora_targets=line.get("targets", "all-linear"),
        liger=line.get("liger", False),
        offload_activations=line.get("offload", False),
    )
    if cfg.run_problem():
        return False
    return estimate_memory(resolve_model(line["model"]), cfg).required_gib <= limit


def _line(rng: random.Random, trainer: str, models: list[str], methods: list[str]) -> dict:
    model = rng.choice(models)
    method = rng.choice(methods)
    if model in XL:
        method = rng.choice(["qlora", "qlora", "lora"])
    if model in LARGE and method == "full":
        method = "lora"
    line = {"model": model, "trainer": trainer, "method": method}
    tokens_cap = {"small": 65536, "mid": 32768, "large": 16384, "xl": 8192}[
        "small" if model in SMALL else "mid" if model in MID else "large" if model in LARGE else "xl"
    ]
    while True:
        seq, batch = rng.choice(SEQS), rng.choice(BATCHES)
        if seq * batch <= tokens_cap:
            break
    line.update(seq=seq, batch=batch, gc=rng.random() < 0.6)
    if method in ("lora", "qlora", "dora"):
        line.update(r=rng.choice([8, 16, 16, 64]), targets=rng.choice(["all-linear", "all-linear", "attn", "qv"]), dropout=0.05)
    line["optim"] = rng.choice(["adamw"] * 6 + ["adamw8bit", "paged_adamw_8bit"])
    roll = rng.random()
    if roll < 0.12:
        line["liger"] = True
    elif roll < 0.2 and line["gc"] and trainer == "trl":  # the transformers Trainer has no activation offload
        line["offload"] = True
    if rng.random() < 0.2:
        line["lengths"] = "mixed"
    line["accum"] = 2
    return line


def timing_grid() -> list[dict]:
    """GPU-bound TRL runs to time one at a time (``PARALLEL=1``): LoRA, QLoRA and full fine-tuning at
    4,096-16,384 tokens a micro-batch on 1B-8B models, 6 optimizer steps each (the step time of the
    fourth to the sixth)."""
    out = []
    for model, method in [
        ("llama-3.2-1b", "full"),
        ("llama-3.2-1b", "lora"),
        ("llama-3.2-3b", "lora"),
        ("llama-3.2-3b", "qlora"),
        ("qwen2.5-1.5b", "full"),
        ("mistral-7b", "lora"),
        ("llama-3.1-8b", "lora"),
        ("llama-3.1-8b", "qlora"),
        ("qwen2.5-7b", "qlora"),
    ]:
        for seq, batch in ((2048, 4), (4096, 2)):
            line = {
                "model": model,
                "trainer": "trl",
                "method": method,
                "seq": seq,
                "batch": batch,
                "gc": True,
                "optim": "adamw",
                "accum": 2,
                "steps": 6,
            }
            if method != "full":
                line.update(r=16, targets="all-linear", dropout=0.05)
            if _fits(line):
                out.append(line)
    return out


def grid(name: str) -> list[dict]:
    if name == "trl_timing":
        return timing_grid()
    trainer, _, part = name.partition("_")
    seed = sum(map(ord, name))
    rng = random.Random(seed)
    spec = {
        "a": (SMALL + MID, 60),
        "b": (SMALL + MID + LARGE, 60),
        "c": (LARGE + XL + MID, 40),
    }[part]
    models, n = spec
    methods = TRL_METHODS if trainer == "trl" else ["lora", "lora", "qlora", "qlora", "full", "dora", "ia3"]
    out: list[dict] = []
    while len(out) < n:
        line = _line(rng, trainer, models, methods)
        if line not in out and _fits(line):
            out.append(line)
    # one model at a time on the GPU machine's disk: group the lines by model, in the lists' order
    order = {m: i for i, m in enumerate(SMALL + MID + LARGE + XL)}
    return sorted(out, key=lambda x: order[x["model"]])


if __name__ == "__main__":
    for line in grid(sys.argv[1]):
        print(json.dumps(line))
