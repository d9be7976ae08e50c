"""What every probe result records about where it was measured: the software versions, the GPU and the
host CPU's dispatch speed."""

from __future__ import annotations

import time


def versions() -> dict[str, str]:
    """Versions of the measuring stack and the GPU's name, recorded beside every result."""
    import torch

    from importlib import metadata

    out = {"torch": torch.__version__, "gpu": torch.cuda.get_device_name(0) if torch.cuda.is_available() else "cpu"}
    for name in ("transformers", "peft", "bitsandbytes", "deepspeed", "accelerate", "trl", "liger_kernel"):
        try:  # the installed distribution's version: nothing is imported for it
            out[name] = metadata.version(name.replace("_", "-"))
        except metadata.PackageNotFoundError:
            out[name] = "missing"
    return out


def host_info() -> dict:
    """The host CPU: its model name and a dispatch micro-benchmark, ``host_launch_us``: CPU microseconds
    per small in-place op launched on the GPU (torch's dispatcher and the CUDA launch, no autograd).
    A training step bound by the CPU moves with this figure, not with the GPU."""
    import platform

    import torch

    out: dict = {"cpu": platform.processor() or platform.machine()}
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as fh:
            for line in fh:
                if line.startswith("model name"):
                    out["cpu"] = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    if torch.cuda.is_available():
        x = torch.zeros(16, device="cuda")
        for _ in range(500):  # warm the dispatcher and the allocator
            x.add_(1)
        torch.cuda.synchronize()
        runs = []
        for _ in range(5):
            t0 = time.perf_counter()
            for _ in range(2000):
                x.add_(1)
            runs.append((time.perf_counter() - t0) / 2000 * 1e6)
            torch.cuda.synchronize()
        out["host_launch_us"] = round(sorted(runs)[2], 3)
    return out
