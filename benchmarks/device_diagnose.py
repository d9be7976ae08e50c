"""Where a training step's time goes, on the device GPU: for each probe of a grid, 10 timed steps and then
one profiled step (forward, backward, optimizer) with torch.profiler.

    python benchmarks/device_diagnose.py GRID.jsonl OUT.jsonl

Per probe it writes the probe's record (as ``ftdecide probe`` does) plus ``profile``: the summed CUDA
kernel time of the step (``gpu_busy_s``) against its wall time, the number of kernels launched, of
host-device synchronisations (``cudaStreamSynchronize``/``cudaDeviceSynchronize``/``cudaMemcpy*``) and
of ``aten::nonzero``, and the 12 kernels that take the most GPU time. A step whose GPU is busy for much
less than its wall time is bound by the CPU (Python, autograd, kernel launches, syncs), not by the GPU.
Used to find out why the time model misses some runs (docs/accuracy.md).
"""

from __future__ import annotations

import json
import sys
import time

sys.path.insert(0, "src")

from ftdecide.probe import runner as R  # noqa: E402

_orig = R.run_steps


def _profiled(model, probe, steps=3):
    import torch
    from torch.profiler import ProfilerActivity, profile

    out = _orig(model, probe, steps)
    params = [p for p in model.parameters() if p.requires_grad]
    opt = R.make_optimizer(params, probe.get("optim", "adamw"), probe["method"])
    vocab = model.config.get_text_config().vocab_size
    ids = torch.randint(0, vocab, (int(probe["batch"]), int(probe["seq"])), device="cuda")
    for i in range(2):  # the optimizer's first step allocates its states: profile the second
        torch.cuda.synchronize()
        t0 = time.perf_counter()
        ctx = profile(activities=[ProfilerActivity.CPU, ProfilerActivity.CUDA]) if i == 1 else None
        if ctx:
            ctx.__enter__()
        with torch.autocast("cuda", dtype=torch.bfloat16):
            loss = model(input_ids=ids, labels=ids).loss
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
        torch.cuda.synchronize()
        wall = time.perf_counter() - t0
        if ctx:
            ctx.__exit__(None, None, None)
    syncs, nonzero, launches, top = 0, 0, 0, []
    for e in ctx.key_averages():
        if e.key.startswith(("cudaStreamSynchronize", "cudaDeviceSynchronize", "cudaMemcpy")):
            syncs += e.count
        if e.key == "aten::nonzero":
            nonzero += e.count
        if e.key.startswith(("cudaLaunchKernel", "cuLaunchKernel", "cudaLaunchKernelExC")):
            launches += e.count
    evts = [e for e in ctx.events() if getattr(e, "device_type", None) is not None and str(e.device_type).endswith("CUDA")]
    busy = sum(e.device_time_total if hasattr(e, "device_time_total") else e.cuda_time_total for e in evts) / 1e6
    by = {}
    for e in evts:
        k = e.name[:90]
        by[k] = by.get(k, 0.0) + (e.device_time_total if hasattr(e, "device_time_total") else e.cuda_time_total) / 1e6
    top = sorted(by.items(), key=lambda kv: -kv[1])[:12]
    out["profile"] = {
        "wall_s": wall,
        "gpu_busy_s": busy,
        "kernels": len(evts),
        "launch_calls": launches,
        "syncs": syncs,
        "nonzero": nonzero,
        "top": [[k, round(v, 5)] for k, v in top],
    }
    del opt
    return out


R.run_steps = _profiled

if __name__ == "__main__":
    grid, dest = sys.argv[1], sys.argv[2]
    probes = [json.loads(line) for line in open(grid) if line.strip()]
    with open(dest, "a") as fh:
        for rec in R.run_grid(probes, fh):
            p = rec.get("profile", {})
            print(
                f"# {rec['arch']} {rec['method']} {rec.get('optim')} {rec.get('targets')} r={rec.get('r')} {rec['seq']}x{rec['batch']} "
                f"gc={rec['gc']} {rec['status']} tok/s={rec.get('tokens_per_s', 0):.0f} wall={p.get('wall_s', 0):.3f} "
                f"busy={p.get('gpu_busy_s', 0):.3f} kernels={p.get('kernels')} syncs={p.get('syncs')} nonzero={p.get('nonzero')}",
                flush=True,
            )
