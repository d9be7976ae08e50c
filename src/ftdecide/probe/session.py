"""What ``ftdecide probe`` does around the measurement: read the records to run (a grid file, a
recommendation, or one configuration), check that this machine can run them, and put ftdecide's
estimate beside each result. The command line only picks which and renders.
"""

from __future__ import annotations

import json
from typing import IO, Iterator

from ..core.errors import InputError, validation_problem


def records_from_grid(path: str) -> list[dict]:
    """Probe records of a grid file: one JSON object per line (see :mod:`ftdecide.probe.records`);
    InputError names the line of a bad one."""
    from pydantic import ValidationError

    from ..files.yamlio import parse_json, read_text
    from .records import arch_from_record, config_from_record

    out = []
    for i, line in enumerate(read_text(path, "grid file").splitlines(), 1):
        if not line.strip():
            continue
        try:
            try:
                rec = parse_json(line, path, line=i)
            except InputError as e:
                raise e.at(prefix="not a probe record: ") from None
            if not isinstance(rec, dict):
                raise ValueError("not a JSON object")
            arch_from_record(rec), config_from_record(rec)
        except ValidationError as e:
            raise InputError(f"not a probe record: {validation_problem(e, dashes=True)}", path, i) from None
        except KeyError as e:
            raise InputError(f"not a probe record: missing field {e}", path, i) from None
        except (ValueError, TypeError) as e:
            raise InputError(f"not a probe record: {e}", path, i) from None
        except RecursionError:
            raise InputError("not a probe record: nested too deeply", path, i) from None
        except InputError as e:
            raise e.at(path, i) from None
        out.append(rec)
    if not out:
        raise InputError("no probe records", path)
    return out


def records_from_config(model: str, cfg, reentrant: bool = False, steps: int = 3) -> list[dict]:
    """The one probe record of ``cfg`` on ``model``; a rank or target the model lacks is an input error
    before any GPU work."""
    from ..files.catalog import resolve_model
    from ..core.estimator import estimate_memory
    from .records import record_from_config

    arch = resolve_model(model)
    estimate_memory(arch, cfg)
    return [record_from_config(arch, cfg, reentrant=reentrant, steps=steps)]


def records_from_recommendation(path: str, reentrant: bool = False, steps: int = 3) -> list[dict]:
    """The probe record of the plan in a ``recommend --format json`` file."""
    from ..files.yamlio import load_json
    from .records import config_from_recommendation

    name, cfg = config_from_recommendation(load_json(path, "recommendation"), path)
    if cfg.packing:
        # the probe's loop feeds examples of the full sequence, padded by nothing: it cannot run a packed plan
        raise InputError(
            "the plan packs its examples, which the probe's loop does not: run the emitted TRL file instead "
            "(benchmarks/trainer_runs.py runs it as a user would)",
            path,
        )
    return records_from_config(name, cfg, reentrant=reentrant, steps=steps)


def open_sink(path: str) -> IO[str]:
    """``path`` opened for appending; anything there that is not a regular file is refused unopened."""
    import os
    import stat

    try:
        st = os.stat(path)
        if not stat.S_ISREG(st.st_mode):
            raise InputError("cannot append: not a regular file", path)
    except FileNotFoundError:
        pass
    except ValueError:
        raise InputError("cannot append: the path holds a NUL byte", path) from None
    try:
        return open(path, "a", encoding="utf-8")
    except OSError as e:
        raise InputError(f"cannot append: {e.strerror}", path) from None


def _measured(records: list[dict]) -> Iterator[dict]:
    """Each record measured: a several-GPU record on that many local GPUs through torchrun where the machine
    has them (one record per torchrun), otherwise in this process (several GPUs as rank 0 under the fake
    process group)."""
    import subprocess
    import sys
    import tempfile

    from . import runner

    if all(int(r.get("world_size") or 1) == 1 for r in records):
        yield from runner.run_grid(records)
        return
    import torch

    from ..strategies import get

    for rec in records:
        n = int(rec.get("world_size") or 1)
        if n == 1 or torch.cuda.device_count() < n:
            spec = get(rec.get("strategy") or "fsdp")
            if n > 1 and not spec.fake_group:
                raise InputError(
                    f"{spec.label} over {n} GPUs needs {n} GPUs on this machine (it has {torch.cuda.device_count()}): torch's fake "
                    "process group cannot run it (its reducer's all-reduce hook gets no tensor back)"
                )
            yield from runner.run_grid([rec])
            continue
        with tempfile.NamedTemporaryFile("w", suffix=".jsonl", delete=False) as fh:
            fh.write(json.dumps(rec) + "\n")
        cmd = [
            sys.executable,
            "-m",
            "torch.distributed.run",
            "--standalone",
            f"--nproc_per_node={n}",
            "-m",
            "ftdecide.probe.runner",
            fh.name,
        ]
        done = subprocess.run(cmd, capture_output=True, text=True, check=False)
        lines = [line for line in done.stdout.splitlines() if line.startswith("{")]
        if done.returncode != 0 or not lines:
            tail = (done.stderr.strip().splitlines() or ["no output"])[-1]
            raise InputError(f"probe over {n} local GPUs (torchrun) failed: {tail}")
        yield json.loads(lines[-1])


def measure(records: list[dict]) -> Iterator[dict]:
    """Run each record on this machine's GPU and yield it with ftdecide's ``estimate`` and ``error``
    beside the measurement. InputError when the probe extra or a CUDA GPU is missing, or when torch
    fails (reported in one line: the configuration, not ftdecide, is what the user changes)."""
    from ..files.catalog import gpu_for_device
    from . import runner
    from .records import compare

    why = runner.unavailable(records)
    if why:
        raise InputError(why)
    try:
        for rec in _measured(records):
            g = gpu_for_device(rec.get("software", {}).get("gpu", ""))
            rec.update(compare(rec, g.bf16_tflops if g else None, g.memory_bandwidth_gbs if g else None))
            yield rec
    except InputError:
        raise
    except Exception as e:  # noqa: BLE001 - a failure inside torch is reported in one line, not a traceback
        raise InputError(f"probe failed: {type(e).__name__}: {e}") from None
