"""Run a training script unchanged (``accelerate launch ... benchmarks/launch_peak.py SCRIPT ARGS``) and
write, per rank, the peak GPU memory of its training (``torch.cuda.max_memory_allocated``, GiB = 2**30
bytes, counted from the start of ``Trainer.train``), the steps it trained and its log, to
``$OUT/launch_rank<R>.json`` (or the current directory)."""

from __future__ import annotations

import json
import os
import runpy
import sys
import time

GIB = 2**30
info: dict = {}


def _report() -> None:
    import torch

    rank = int(os.environ.get("RANK", "0"))
    info.update(
        rank=rank,
        world_size=int(os.environ.get("WORLD_SIZE", "1")),
        peak_alloc_gib=torch.cuda.max_memory_allocated() / GIB,
        peak_reserved_gib=torch.cuda.max_memory_reserved() / GIB,
    )
    with open(os.path.join(os.environ.get("OUT", "."), f"launch_rank{rank}.json"), "w", encoding="utf-8") as fh:
        json.dump(info, fh, default=str)


def _patch() -> None:
    import torch
    import transformers

    train = transformers.Trainer.train

    def measured_train(self, *args, **kwargs):
        torch.cuda.reset_peak_memory_stats()
        info["alloc_before_train_gib"] = torch.cuda.memory_allocated() / GIB
        t0 = time.perf_counter()
        out = train(self, *args, **kwargs)
        info["train_s"] = time.perf_counter() - t0
        info["peak_train_alloc_gib"] = torch.cuda.max_memory_allocated() / GIB
        info["global_step"] = out.global_step
        info["log_history"] = self.state.log_history
        return out

    transformers.Trainer.train = measured_train


if __name__ == "__main__":
    import atexit

    atexit.register(_report)
    _patch()
    sys.argv = sys.argv[1:]
    runpy.run_path(sys.argv[0], run_name="__main__")
