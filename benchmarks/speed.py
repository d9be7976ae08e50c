"""Speed of ftdecide: a cold `recommend --format json` against bare imports, and the estimator's core loop.

    python benchmarks/speed.py [--runs 15] [--cold-only | --batch-only | --instructions]

1. Cold process. Interleaved, ``--runs`` times each (median reported): ``python -c "import typer,
   pydantic, rich, yaml"`` (the issue's baseline); the same plus ``from pydantic import BaseModel``
   (pydantic 2 imports its model machinery lazily, so the bare import leaves out what any pydantic
   model costs); the same plus one pydantic model class built and validated once (the floor of any
   command that validates its input with pydantic, as ftdecide's design asks); and
   ``python -m ftdecide recommend --model llama-3.1-8b --gpu rtx-4090
   --dataset-size 50000 --task instruction --format json``.
2. Core loop. ``estimate_memory(arch, cfg)`` over 192 prebuilt configurations per method (the registered methods x 4 sequence
   lengths x 4 micro-batches x 3 ranks x checkpointing on/off) for 2 s; the search path
   (``memory_model(...).required_gib(seq, batch, gc)``) the same way; and ``fit_table`` for one model
   and GPU (the work of ``ftdecide fit``).
3. Batch. ``ftdecide batch`` of 10,000 scenarios (the cap) over 6 models, 6 GPUs, 1-8 GPUs, 8 tasks and
   dataset sizes from 200 to 2,000,000, JSON out to /dev/null: wall time and peak RSS (the issue's target:
   under 60 s and 300 MB on the 2-core development machine). ``--batch-only`` runs this part alone.
"""

from __future__ import annotations

import argparse
import os
import pathlib
import statistics
import subprocess
import sys
import time

ROOT = pathlib.Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "src"))

RECOMMEND = [
    "-m",
    "ftdecide",
    "recommend",
    "--model",
    "llama-3.1-8b",
    "--gpu",
    "rtx-4090",
    "--dataset-size",
    "50000",
    "--task",
    "instruction",
    "--format",
    "json",
]


# The least any command that validates its input with a pydantic model can cost: one model class with
# one constrained field, built and used once (pydantic builds its validator at class creation).
ONE_MODEL = (
    "import typer, pydantic, rich, yaml\nfrom pydantic import BaseModel, Field\nclass A(BaseModel):\n    x: int = Field(1, ge=0)\nA(x=2)"
)


def _child_env() -> dict[str, str]:
    """The environment of the measured children, as after 'pip install', which compiles bytecode: they may write .pyc
    files (an editable install under PYTHONDONTWRITEBYTECODE would compile ftdecide's modules from source on every
    call, ~30 ms); each measure runs the command once unmeasured first, to write them."""
    return {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}


def cold(runs: int) -> dict[str, float]:
    cmds = {
        "import typer, pydantic, rich, yaml": ["-c", "import typer, pydantic, rich, yaml"],
        "... + from pydantic import BaseModel": ["-c", "import typer, pydantic, rich, yaml; from pydantic import BaseModel"],
        "... + one pydantic model, validated": ["-c", ONE_MODEL],
        "ftdecide recommend --format json": RECOMMEND,
    }
    times: dict[str, list[float]] = {k: [] for k in cmds}
    # one unmeasured round writes the .pyc files (_child_env)
    env = _child_env()
    for rnd in range(runs + 1):
        for name, args in cmds.items():
            t = time.perf_counter()
            subprocess.run([sys.executable, *args], check=True, stdout=subprocess.DEVNULL, cwd=ROOT, env=env)
            if rnd:
                times[name].append(time.perf_counter() - t)
    return {k: statistics.median(v) for k, v in times.items()}


def instructions() -> dict[str, int]:
    """The cold commands' instruction counts under valgrind's callgrind, once each: on a shared machine whose
    wall times move by half from one run to the next, the count moves by well under 1%, so it shows what a change
    saves (it weighs pydantic-core's compiled code and the interpreter alike, as wall time does not quite)."""
    import re
    import shutil

    if shutil.which("valgrind") is None:
        raise SystemExit("--instructions needs valgrind")
    env = _child_env()
    subprocess.run([sys.executable, *RECOMMEND], check=True, stdout=subprocess.DEVNULL, cwd=ROOT, env=env)  # .pyc files
    out = {}
    for name, args in (("one pydantic model, validated", ["-c", ONE_MODEL]), ("ftdecide recommend --format json", RECOMMEND)):
        p = subprocess.run(
            ["valgrind", "--tool=callgrind", "--callgrind-out-file=/dev/null", sys.executable, *args],
            capture_output=True,
            text=True,
            cwd=ROOT,
            env=env,
        )
        out[name] = int(re.search(r"Collected : (\d+)", p.stderr).group(1))
    return out


def rate(fn, items, seconds: float = 2.0) -> float:
    n, t0 = 0, time.perf_counter()
    while time.perf_counter() - t0 < seconds:
        for it in items:
            fn(it)
        n += len(items)
    return n / (time.perf_counter() - t0)


def core() -> dict[str, float]:
    from ftdecide import methods
    from ftdecide.files import catalog
    from ftdecide.core.estimator import TrainConfig, estimate_memory, memory_model
    from ftdecide.decide.fit import fit_table

    arch = catalog.resolve_model("llama-3.1-8b")
    cfgs = [
        TrainConfig(method=m, seq_len=s, batch_size=b, lora_rank=r, gradient_checkpointing=gc)
        for m in methods.names()
        for s in (512, 1024, 2048, 4096)
        for b in (1, 2, 4, 8)
        for r in (8, 16, 64)
        for gc in (True, False)
    ]
    mm = memory_model(arch, TrainConfig(method="lora"))
    points = [(s, b, gc) for s in range(256, 16385, 256) for b in (1, 2, 4, 8, 16) for gc in (True, False)]
    t = time.perf_counter()
    reps = 50
    for _ in range(reps):
        fit_table(arch, 23.6, 2048)
    fit_ms = (time.perf_counter() - t) / reps * 1e3
    return {
        "estimate_memory(arch, cfg) per second": rate(lambda c: estimate_memory(arch, c), cfgs),
        "MemoryModel.required_gib(seq, batch, gc) per second": rate(lambda p: mm.required_gib(*p), points),
        "fit_table (ftdecide fit's search), ms": fit_ms,
    }


def batch(n: int = 10_000) -> tuple[float, float]:
    """(seconds, peak RSS in MB) of ``ftdecide batch`` over ``n`` varied scenarios, in a child process."""
    import random
    import resource
    import tempfile

    rng = random.Random(0)
    models = ["llama-3.1-8b", "qwen2.5-7b", "mistral-7b", "llama-3.2-3b", "gemma-2-9b", "llama-3.1-70b"]
    gpus = ["rtx-4090", "a100-80gb", "h100", "l4", "a10g", "l40s"]
    tasks = ["chat", "instruction", "style", "classification", "domain", "code", "math", "continued-pretraining"]
    with tempfile.NamedTemporaryFile("w", suffix=".yaml", delete=False) as fh:
        for _ in range(n):
            fh.write(
                f"- {{model: {rng.choice(models)}, gpu: {rng.choice(gpus)}, gpus: {rng.choice([1, 1, 2, 4, 8])}, "
                f"task: {rng.choice(tasks)}, dataset_size: {rng.choice([200, 2000, 20000, 200000, 2000000])}}}\n"
            )
    t0 = time.perf_counter()
    with open(os.devnull, "w") as sink:
        subprocess.run(
            [sys.executable, "-m", "ftdecide", "batch", fh.name],
            stdout=sink,
            check=True,
            env=dict(os.environ, PYTHONPATH=str(ROOT / "src")),
        )
    seconds = time.perf_counter() - t0
    os.unlink(fh.name)
    return seconds, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=15)
    ap.add_argument("--batch-only", action="store_true")
    ap.add_argument("--cold-only", action="store_true", help="the cold process alone (part 1)")
    ap.add_argument("--instructions", action="store_true", help="part 1 counted in instructions (valgrind), once")
    args = ap.parse_args()
    if args.instructions:
        floor, rec = instructions().values()
        print(f"Instructions: one pydantic model {floor:,}, recommend {rec:,}: {rec / floor:.3f}x the floor")
        return
    if args.batch_only:
        seconds, rss = batch()
        print(f"Batch: 10,000 scenarios in {seconds:.1f} s, peak RSS {rss:.0f} MB")
        return
    c = cold(args.runs)
    base, with_models, one_model, rec = c.values()
    print(f"Cold process, median of {args.runs} interleaved runs ({sys.executable}):")
    for k, v in c.items():
        print(f"  {k:<40} {v * 1e3:7.1f} ms")
    print(
        f"  ratio to the bare imports: {rec / base:.2f}x; to the imports with pydantic's BaseModel: {rec / with_models:.2f}x; "
        f"one pydantic model alone: {one_model / base:.2f}x; to that floor: {rec / one_model:.2f}x"
    )
    if args.cold_only:
        return
    print("Core loop:")
    for k, v in core().items():
        print(f"  {k:<55} {v:,.1f}")
    seconds, rss = batch()
    print(f"Batch: 10,000 scenarios in {seconds:.1f} s, peak RSS {rss:.0f} MB")


if __name__ == "__main__":
    main()
