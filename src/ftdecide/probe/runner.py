"""Run real training steps on the local GPU and measure peak memory and throughput.

This is the only module of ftdecide that imports torch, transformers, peft and bitsandbytes, and it
imports them inside functions: importing it costs nothing, and the rest of the package never needs them.

The recipe is the one of ``shared/calibration/README.md`` (random weights built from config dimensions,
no download; bf16 autocast; three optimizer steps; ``torch.cuda.max_memory_allocated()``), so that
the measured figures are comparable with the calibration file and with ``peak_allocated_gib``.

Each probe is a dict (one line of a grid file)::

    {"arch": "llama31_8b", "hf_config": {...}, "method": "lora", "optim": "adamw",
     "r": 16, "targets": "all-linear", "dropout": 0.05, "seq": 2048, "batch": 4, "gc": true}

and each result is that dict plus the measured fields (``status``, ``peak_alloc_gib``, ...).
Memory is reported in GiB (2**30 bytes).
"""

from __future__ import annotations

import gc as _gc
import json
import sys
import time
from typing import Iterable, Iterator

from .. import optimizers
from ..methods import from_variant, variants as all_variants
from .records import arch_from_record, config_from_record

from .host import host_info, versions  # noqa: E402, F401  (recorded beside every result; tests reach them here)
from .steps import (  # noqa: E402
    GIB,
    build_base,
    count_params,
    peak_alloc_gib,
    variant_recipe,
    run_steps,
)


def unavailable(records: Iterable[dict]) -> str | None:
    """Why the probe records cannot run here (one line), or None: the ``probe`` extra's packages and a
    CUDA GPU are needed; bitsandbytes for QLoRA and the 8-bit and paged optimizers, liger-kernel for
    ``liger``, trl for ``offload_act``, deepspeed for the ZeRO strategies."""
    import importlib.util

    need = ["torch", "transformers", "peft"]
    for r in records:
        extra = list(variant_recipe(r["method"]).needs) if r["method"] in all_variants() else []
        if optimizers.get(r.get("optim", "adamw")).package == "bitsandbytes":
            extra.append("bitsandbytes")
        if r.get("liger"):
            extra.append("liger_kernel")
        if r.get("offload_act"):
            extra.append("trl")
        if int(r.get("world_size") or 1) > 1 and config_from_record(r).strategy_spec.engine == "deepspeed":
            extra.append("deepspeed")
        need += [n for n in extra if n not in need]
    missing = [n for n in need if importlib.util.find_spec(n) is None]
    if missing:
        return f"probe needs {', '.join(missing)}: pip install 'ftdecide[probe]'"
    import torch

    if not torch.cuda.is_available():
        return "probe needs a CUDA GPU, and torch sees none"
    return None


def run_probe(probe: dict, model=None) -> dict:
    """Measure one configuration; returns the probe dict plus the measured fields.

    Out of memory is a result (``status: "oom"``, ``peak_alloc_gib`` then a lower bound), not an error.
    ``model`` may be a base model already built for this architecture and method (it is reused across
    probes of one build, as in the calibration file).
    """
    if int(probe.get("world_size", 1)) > 1:  # an N-GPU job, as its rank 0 under the fake process group
        from .sharded import run_sharded_probe

        return run_sharded_probe(probe)
    import torch

    rec = dict(probe)
    cuda = torch.cuda.is_available()
    method = probe["method"]
    own = model is None
    peft_model = None
    try:
        t0 = time.perf_counter()
        if model is None:
            model = build_base(probe["hf_config"], method)
        rec["build_s"] = round(time.perf_counter() - t0, 2)
        if cuda:
            torch.cuda.synchronize()
            rec["mem_after_load_gib"] = torch.cuda.memory_allocated() / GIB
        train_model = model
        recipe = variant_recipe(method)
        spec, _ = from_variant(method)
        if probe.get("liger"):
            # as transformers' Trainer does with use_liger_kernel: patch the instance before peft wraps it
            from liger_kernel.transformers.monkey_patch import _apply_liger_kernel_to_instance

            _apply_liger_kernel_to_instance(model=model)
        if recipe.kbit_prepare:
            from peft import prepare_model_for_kbit_training

            model = prepare_model_for_kbit_training(
                model,
                use_gradient_checkpointing=bool(probe.get("gc")),
                gradient_checkpointing_kwargs={"use_reentrant": bool(probe.get("reentrant", False))},
            )
        wrapped = spec.wrap_for_probe(model, arch_from_record(probe), config_from_record(probe))
        if wrapped is not model:
            peft_model = train_model = wrapped
        if probe.get("gc"):
            train_model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": bool(probe.get("reentrant", False))})
            if probe.get("reentrant") and hasattr(train_model, "enable_input_require_grads"):
                train_model.enable_input_require_grads()
        elif hasattr(train_model, "gradient_checkpointing_disable"):
            train_model.gradient_checkpointing_disable()
        train_model.train()
        rec["total_params"], rec["trainable_params"] = count_params(train_model)
        if hasattr(peft_model, "get_nb_trainable_parameters"):
            rec["peft_trainable_params"] = peft_model.get_nb_trainable_parameters()[0]
        rec["trainable_dtypes"] = sorted({str(p.dtype).replace("torch.", "") for p in train_model.parameters() if p.requires_grad})
        if cuda:
            torch.cuda.synchronize()
            torch.cuda.reset_peak_memory_stats()
        rec.update(run_steps(train_model, probe, max(2, int(probe.get("steps", 3)))))
        rec["status"] = "ok"
    except torch.OutOfMemoryError:
        rec["status"] = "oom"
    finally:
        if cuda:
            rec["peak_alloc_gib"] = peak_alloc_gib(rec)
            rec["peak_reserved_gib"] = torch.cuda.max_memory_reserved() / GIB
            free, total = torch.cuda.mem_get_info()
            # held by the driver beyond PyTorch's pool: CUDA context, cuBLAS workspaces (and other processes)
            rec["cuda_context_gib"] = (total - free - torch.cuda.memory_reserved()) / GIB
        for p in model.parameters() if model is not None else []:
            p.grad = None
    if peft_model is not None and not own and hasattr(peft_model, "unload"):
        peft_model.unload()
    if own:
        del model, peft_model
    _gc.collect()
    if cuda:
        torch.cuda.empty_cache()
    return rec


def _build_key(probe: dict) -> str:
    recipe = variant_recipe(probe["method"])
    return json.dumps([probe["hf_config"], recipe.dtype, recipe.quantize_4bit], sort_keys=True)


def run_grid(probes: Iterable[dict], out=None) -> Iterator[dict]:
    """Run probes in order, one model build per run (simple and robust after an OOM), yielding each
    result and, if ``out`` is given, writing it there as one JSON line as soon as it is measured."""
    import torch

    meta = versions()
    if torch.cuda.is_available():
        free, total = torch.cuda.mem_get_info()
        meta["gpu_total_gib"] = total / GIB
        meta.update(host_info())
    for probe in probes:
        rec = run_probe(probe)
        rec["software"] = meta
        if out is not None:
            out.write(json.dumps(rec) + "\n")
            out.flush()
        yield rec


def main(argv: list[str] | None = None) -> int:
    """``python -m ftdecide.probe.runner GRID.jsonl`` runs each line and prints JSON lines."""
    import os

    argv = sys.argv[1:] if argv is None else argv
    with open(argv[0], encoding="utf-8") as fh:
        probes = [json.loads(line) for line in fh if line.strip()]
    if os.environ.get("RANK", "0") != "0":  # under torchrun every rank trains; rank 0 reports
        for _ in run_grid(probes):
            pass
        return 0
    for rec in run_grid(probes, sys.stdout):
        print(
            f"# {rec.get('arch')} {rec['method']} {rec.get('optim')} r={rec.get('r')} {rec.get('targets')} "
            f"s={rec['seq']} b={rec['batch']} gc={rec.get('gc')} -> {rec['status']} "
            f"{rec.get('peak_alloc_gib', 0):.2f} GiB",
            file=sys.stderr,
            flush=True,
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
