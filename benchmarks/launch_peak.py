"""Run a training script unchanged (``accelerate launch ... benchmarks/launch_peak.py SCRIPT ARGS``, or
``python benchmarks/launch_peak.py SCRIPT ARGS``) and write, per rank, the peak GPU memory of its training
(``torch.cuda.max_memory_allocated``, GiB = 2**30 bytes, counted from the start of ``Trainer.train``; the
peak while loading, before it), the steps it trained, each optimizer step's wall time (synchronised), the
tokens of each micro-batch (``input_ids`` as padded, and ``attention_mask``'s ones), the software
versions and its log, to ``$OUT/launch_rank<R>.json`` (or the current directory).

With ``FTD_MEMTRACE=1`` it also records the allocator's history through training (python frames only) and
writes what was allocated at the peak, summed by the innermost frame outside torch's own modules
(``peak_by_frame``), and the largest blocks then (``peak_blocks``): where a plan misses a term, this names it.

With ``FTD_PROFILE=N`` it profiles optimizer steps 3 to 2 + N with torch.profiler and writes ``profile``: each
step's wall time against its GPU kernels' busy time, the calls of the CUDA runtime that stall the host
(synchronisations, cudaMalloc and cudaFree) with their count and total time, and the 25 operators with the most
host time and the 25 with the most GPU time: where a step's time goes that the step-time model does not count.

With ``FTD_FAKE_WORLD=N`` (under ``accelerate launch --num_processes 1`` and the emitted accelerate config) the
process is rank 0 of N under torch's fake process group: every collective returns at once, every allocation a
real rank makes still happens, so its peak is the per-GPU peak of the N-GPU launch (the probe's harness found
the same peak to 0.01 GiB as real NCCL runs, ``ftdecide.probe.sharded``). FSDP2 and ZeRO only: DDP's reducer
gets no tensor back from the fake all-reduce. Loss and step time are not a real job's. What the trainer gathers
for its logs (``gather_for_metrics``) is gathered detached: the fake all-gather fails on a tensor with grad."""

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


def _frame_key(frames: list[dict]) -> str:
    """The innermost frame that is not torch's own machinery (torch.nn.functional and checkpoint count)."""
    for f in frames:
        name = f.get("filename", "")
        if "launch_peak" in name:
            continue
        if "/torch/" in name and not name.endswith(("nn/functional.py", "utils/checkpoint.py")):
            continue
        short = name.split("site-packages/")[-1]
        return f"{short}:{f.get('line')} {f.get('name')}"
    return "(no python frame)"


def peak_at(snapshot: dict, before: float) -> dict:
    """Replay the allocator's trace from the start of training: the bytes allocated at its highest point,
    by frame, and the largest blocks then (GiB)."""
    events = snapshot["device_traces"][0]
    live: dict[int, tuple[int, str]] = {}
    cur = best = before
    best_i = -1
    for i, e in enumerate(events):
        if e["action"] == "alloc":
            live[e["addr"]] = (e["size"], "")
            cur += e["size"]
        elif e["action"] in ("free_requested", "free_completed") and e["addr"] in live:
            cur -= live.pop(e["addr"])[0]
        if cur > best:
            best, best_i = cur, i
    live = {}
    for e in events[: best_i + 1]:
        if e["action"] == "alloc":
            live[e["addr"]] = (e["size"], _frame_key(e.get("frames", [])))
        elif e["action"] in ("free_requested", "free_completed"):
            live.pop(e["addr"], None)
    by: dict[str, float] = {"(before training)": before}
    for size, key in live.values():
        by[key] = by.get(key, 0) + size
    top = sorted(by.items(), key=lambda kv: -kv[1])[:40]
    blocks = sorted(live.values(), key=lambda v: -v[0])[:25]
    return {
        "trace_events": len(events),
        "trace_peak_gib": best / GIB,
        "trace_peak_event": best_i,
        "peak_by_frame": [[k, round(v / GIB, 4)] for k, v in top],
        "peak_blocks": [[round(sz / GIB, 4), k] for sz, k in blocks],
    }


STALLS = ("cudaStreamSynchronize", "cudaDeviceSynchronize", "cudaEventSynchronize", "cudaMalloc", "cudaFree", "cudaMemcpyAsync")


def profile_summary(prof, walls: list[float]) -> dict:
    """What the profiled steps spent: wall seconds, the GPU kernels' busy seconds (their union), the stalling CUDA
    runtime calls (count, seconds), and the top operators by host and by GPU time (seconds)."""
    events = prof.events()
    spans = sorted((e.time_range.start, e.time_range.end) for e in events if e.device_type.name == "CUDA")
    busy, end = 0.0, -1.0
    for a, b in spans:
        if b > end:
            busy += b - max(a, end)
            end = b
    stalls: dict[str, list[float]] = {}
    for e in events:
        if e.name in STALLS:
            c = stalls.setdefault(e.name, [0, 0.0])
            c[0] += 1
            c[1] += e.cpu_time_total / 1e6
    avg = prof.key_averages()

    def top(attr: str) -> list:
        rows = sorted(avg, key=lambda a: getattr(a, attr), reverse=True)[:25]
        return [[a.key, a.count, round(getattr(a, attr) / 1e6, 4)] for a in rows]

    return {
        "steps": len(walls),
        "wall_s": round(sum(walls), 4),
        "gpu_busy_s": round(busy / 1e6, 4),
        "stalls": {k: [v[0], round(v[1], 4)] for k, v in stalls.items()},
        "top_host": top("self_cpu_time_total"),
        "top_gpu": top("self_device_time_total"),
    }


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

    profiled = int(os.environ.get("FTD_PROFILE", "0"))

    class StepTimer(transformers.TrainerCallback):
        def on_step_begin(self, args, state, control, **kw):
            torch.cuda.synchronize()
            # held once the model is prepared (FSDP wrapped), before the first step's activations
            info.setdefault("alloc_first_step_gib", torch.cuda.memory_allocated() / GIB)
            # the peak while the trainer prepared the model (FSDP1 flattening what was loaded), before any step
            info.setdefault("peak_prepare_alloc_gib", torch.cuda.max_memory_allocated() / GIB)
            if os.environ.get("FTD_MEMTRACE") == "1" and "prepare_trace" not in info:  # what the preparation peaked with
                info["prepare_trace"] = peak_at(torch.cuda.memory._snapshot(), info["alloc_before_train_gib"] * GIB)
            if profiled and state.global_step == 2:
                self.prof = torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU, torch.profiler.ProfilerActivity.CUDA])
                self.prof.__enter__()
                self.walls = []
            self.t0 = time.perf_counter()

        def on_step_end(self, args, state, control, **kw):
            torch.cuda.synchronize()
            info["step_s"].append(time.perf_counter() - self.t0)
            prof = getattr(self, "prof", None)
            if prof is not None:
                self.walls.append(info["step_s"][-1])
                if state.global_step >= 2 + profiled:
                    prof.__exit__(None, None, None)
                    info["profile"] = profile_summary(prof, self.walls)
                    self.prof = None

    def measured_train(self, *args, **kwargs):
        info["peak_load_alloc_gib"] = torch.cuda.max_memory_allocated() / GIB
        # where the loaded model lives when training starts (the trainer wraps FSDP inside train()), and whether
        # transformers loaded it as FSDP's rank-0 loading does (cpu_ram_efficient_loading)
        info["params_on_gpu_gib"] = sum(p.numel() * p.element_size() for p in self.model.parameters() if p.is_cuda) / GIB
        for where in ("transformers.integrations.fsdp", "transformers.modeling_utils"):
            try:
                info["fsdp_efficient_loading"] = bool(__import__(where, fromlist=["is_fsdp_enabled"]).is_fsdp_enabled())
                break
            except (ImportError, AttributeError):
                pass
        self.add_callback(StepTimer())
        torch.cuda.reset_peak_memory_stats()
        info["alloc_before_train_gib"] = torch.cuda.memory_allocated() / GIB
        t0 = time.perf_counter()
        info["train_wall"] = [time.time()]
        tracing = os.environ.get("FTD_MEMTRACE") == "1"
        if tracing:
            torch.cuda.memory._record_memory_history(max_entries=3_000_000, stacks="python")
        out = train(self, *args, **kwargs)
        if tracing:
            info.update(peak_at(torch.cuda.memory._snapshot(), info["alloc_before_train_gib"] * GIB))
            torch.cuda.memory._record_memory_history(enabled=None)
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


def _fake_world() -> None:
    """Rank 0 of ``FTD_FAKE_WORLD`` ranks under the fake process group, whatever backend the launcher asks for."""
    n = int(os.environ.get("FTD_FAKE_WORLD", "0"))
    if n <= 1:
        return
    import torch.distributed as dist
    from torch.testing._internal.distributed.fake_pg import FakeStore

    os.environ.update(WORLD_SIZE=str(n), LOCAL_WORLD_SIZE=str(n), RANK="0", LOCAL_RANK="0")
    real = dist.init_process_group

    def fake_init(*args, **kwargs):
        return real("fake", store=FakeStore(), rank=0, world_size=n)

    dist.init_process_group = fake_init
    info["fake_world"] = n
    # The fake group's all-gather writes into views of its output made without grad, and a gathered tensor that
    # carries grad (TRL gathers a mixture-of-experts model's auxiliary loss for its logs) then fails in the first
    # step, where NCCL does not. What is gathered for metrics is only logged: it is gathered detached here, which
    # leaves the step's memory as it is (the loss itself is not gathered).
    import accelerate

    gather = accelerate.Accelerator.gather_for_metrics

    def detached(self, input_data, *args, **kwargs):
        import torch

        if isinstance(input_data, torch.Tensor):
            input_data = input_data.detach()
        return gather(self, input_data, *args, **kwargs)

    accelerate.Accelerator.gather_for_metrics = detached


if __name__ == "__main__":
    import atexit

    atexit.register(_report)
    _fake_world()
    _patch()
    sys.argv = sys.argv[1:]
    runpy.run_path(sys.argv[0], run_name="__main__")
