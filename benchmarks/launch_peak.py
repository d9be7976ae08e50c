"""Run a training script unchanged (``accelerate launch ... benchmarks/launch_peak.py SCRIPT ARGS``, or
``python benchmarks/launch_peak.py SCRIPT ARGS``) and write, per rank, the peak GPU memory of its training
(``torch.cuda.max_memory_allocated``, GiB = 2**30 bytes, counted from the start of ``Trainer.train``; the
peak while loading, before it), the steps it trained, each optimizer step's wall time (synchronised), the
tokens of each micro-batch (``input_ids`` as padded, and ``attention_mask``'s ones), the software
versions and its log, to ``$OUT/launch_rank<R>.json`` (or the current directory)."""

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
    training_step = transformers.Trainer.training_step
    info["padded_tokens"], info["real_tokens"], info["step_s"] = [], [], []

    def counted_step(self, model, inputs, *args, **kwargs):
        ids = inputs.get("input_ids")
        if ids is not None:
            info["padded_tokens"].append(int(ids.numel()))
            mask = inputs.get("attention_mask")
            info["real_tokens"].append(int(mask.sum()) if mask is not None else int(ids.numel()))
        return training_step(self, model, inputs, *args, **kwargs)

    class StepTimer(transformers.TrainerCallback):
        def on_step_begin(self, args, state, control, **kw):
            torch.cuda.synchronize()
            self.t0 = time.perf_counter()

        def on_step_end(self, args, state, control, **kw):
            torch.cuda.synchronize()
            info["step_s"].append(time.perf_counter() - self.t0)

    def measured_train(self, *args, **kwargs):
        info["peak_load_alloc_gib"] = torch.cuda.max_memory_allocated() / GIB
        self.add_callback(StepTimer())
        torch.cuda.reset_peak_memory_stats()
        info["alloc_before_train_gib"] = torch.cuda.memory_allocated() / GIB
        t0 = time.perf_counter()
        info["train_wall"] = [time.time()]
        out = train(self, *args, **kwargs)
        info["train_wall"].append(time.time())
        info["train_s"] = time.perf_counter() - t0
        info["peak_train_alloc_gib"] = torch.cuda.max_memory_allocated() / GIB
        info["global_step"] = out.global_step
        info["log_history"] = self.state.log_history
        return out

    transformers.Trainer.train = measured_train
    transformers.Trainer.training_step = counted_step
    versions = {"torch": torch.__version__, "transformers": transformers.__version__}
    for name in ("peft", "trl", "accelerate", "datasets", "bitsandbytes"):
        try:
            versions[name] = __import__(name).__version__
        except Exception:  # not installed: not used by this script
            pass
    info["software"] = versions
    info["gpu"] = torch.cuda.get_device_name(0) if torch.cuda.is_available() else None


if __name__ == "__main__":
    import atexit

    atexit.register(_report)
    _patch()
    sys.argv = sys.argv[1:]
    runpy.run_path(sys.argv[0], run_name="__main__")
