"""Reading a trained adapter for ``ftdecide merge``: a peft adapter folder (``adapter_config.json``, and the
header of ``adapter_model.safetensors`` for its shapes, never its weights), or the ``recommend --format json``
document that planned it. Every problem is one InputError naming the file."""

from __future__ import annotations

import json
import os
import re
import struct

from .. import methods
from ..core.errors import InputError, preview
from ..decide.merge import AdapterInfo
from .yamlio import load_json

MAX_HEADER = 100 * 2**20  # a safetensors header is a JSON index of the tensors: megabytes at most
# peft's peft_type -> the config class its methods declare (ftdecide.methods: EmitKeys.peft_class)
PEFT_CLASSES = {"LORA": "LoraConfig", "IA3": "IA3Config", "PROMPT_TUNING": "PromptTuningConfig", "PREFIX_TUNING": "PrefixTuningConfig"}
_LORA_KEY = re.compile(r"\.([A-Za-z0-9_]+)\.lora_([AB])(?:\.[A-Za-z0-9_]+)?\.weight$")


def _method(peft_type: str, use_dora: bool, where: str) -> str:
    cls = PEFT_CLASSES.get(peft_type)
    for m in methods.all_methods():
        if cls and m.emit_keys.peft_class == cls and not m.quantized_base and m.decomposed == use_dora and not m.trains_base:
            return m.name
    raise InputError(f"peft_type {preview(peft_type)} is not one ftdecide plans (LoRA, DoRA, IA3, prompt or prefix tuning)", where)


def safetensors_shapes(path: str) -> dict[str, tuple[int, int, int]]:
    """{module: (rank, in, out)} of the LoRA matrices a safetensors file holds, from its header only."""
    size = os.path.getsize(path)
    with open(path, "rb") as fh:
        head = fh.read(8)
        if len(head) < 8:
            raise InputError("not a safetensors file (shorter than its 8-byte header length)", path)
        (n,) = struct.unpack("<Q", head)
        if n > size - 8 or n > MAX_HEADER:
            raise InputError(f"the header says {n:,} bytes, the file has {size - 8:,} after it: not a safetensors file", path)
        try:
            header = json.loads(fh.read(n).decode("utf-8"))
        except (UnicodeDecodeError, ValueError):
            raise InputError("its header is not JSON: not a safetensors file", path) from None
    if not isinstance(header, dict):
        raise InputError("its header is not a JSON object: not a safetensors file", path)
    a_shapes: dict[str, tuple[int, int]] = {}
    b_shapes: dict[str, tuple[int, int]] = {}
    for key, meta in header.items():
        m = _LORA_KEY.search(key)
        shape = meta.get("shape") if isinstance(meta, dict) else None
        if not m or not (isinstance(shape, list) and len(shape) == 2 and all(isinstance(x, int) and x > 0 for x in shape)):
            continue
        (a_shapes if m.group(2) == "A" else b_shapes)[m.group(1)] = tuple(shape)
    out = {}
    for module, (r, fan_in) in a_shapes.items():
        fan_out, r_b = b_shapes.get(module, (None, None))
        if r_b is not None and r_b != r:
            raise InputError(f"{module}: lora_A has rank {r}, lora_B {r_b}", path)
        out[module] = (r, fan_in, fan_out or 0)
    return out


def read_adapter(spec: str) -> AdapterInfo:
    """The adapter at ``spec``: a folder with ``adapter_config.json``, or a ``recommend --format json`` file."""
    if os.path.isdir(spec):
        cfg_path = os.path.join(spec, "adapter_config.json")
        if not os.path.isfile(cfg_path):
            raise InputError("no adapter_config.json in this folder (not a peft adapter)", spec)
        cfg = load_json(cfg_path, "adapter config")
        if not isinstance(cfg, dict):
            raise InputError("adapter_config.json must be a JSON object", cfg_path)
        base = cfg.get("base_model_name_or_path")
        if not isinstance(base, str) or not base:
            raise InputError("adapter_config.json names no base_model_name_or_path", cfg_path)
        method = _method(str(cfg.get("peft_type", "")), bool(cfg.get("use_dora")), cfg_path)
        targets = cfg.get("target_modules") or ()
        targets = (targets,) if isinstance(targets, str) else tuple(str(t) for t in targets if isinstance(t, str))
        rank, alpha = cfg.get("r"), cfg.get("lora_alpha")
        if rank is not None and (not isinstance(rank, int) or isinstance(rank, bool) or rank <= 0):
            raise InputError(f"r must be a positive integer, not {preview(rank)}", cfg_path)
        weights = os.path.join(spec, "adapter_model.safetensors")
        shapes = safetensors_shapes(weights) if os.path.isfile(weights) else {}
        # peft's ParamWrapper over fused experts (the module "experts", nested as "base_layer" for its second
        # parameter) stacks every expert's factors: rank x experts rows, not the adapter's rank
        wrapped = {m for m in shapes if m in ("experts", "base_layer")}
        fused = bool(wrapped) or bool(cfg.get("target_parameters"))
        shapes = {m: v for m, v in shapes.items() if m not in wrapped}
        if shapes and rank is not None and any(r != rank for r, _, _ in shapes.values()):
            raise InputError(f"its weights have ranks {sorted({r for r, _, _ in shapes.values()})}, its config says r={rank}", weights)
        if shapes:
            targets = tuple(sorted(shapes)) if targets in ((), ("all-linear",)) else targets
        return AdapterInfo(
            path=spec, base_model=base, method=method, rank=rank, alpha=alpha, targets=targets, shapes=shapes, fused_experts=fused
        )
    if os.path.isfile(spec):
        doc = load_json(spec, "recommendation")
        try:
            rec, sc = doc["recommendation"], doc["scenario"]
            lora = rec.get("lora") or {}
            return AdapterInfo(
                path=spec,
                base_model=str(sc.get("model_id") or sc["model"]),
                method=str(rec["method"]) if rec["method"] in methods.names() else _method("", False, spec),
                rank=lora.get("rank"),
                alpha=lora.get("alpha"),
                targets=(str(lora["targets"]),) if lora.get("targets") else (),
                task=sc.get("task"),
            )
        except (KeyError, TypeError, AttributeError):
            raise InputError("neither an adapter folder nor a 'ftdecide recommend --format json' document", spec) from None
    raise InputError("no such adapter folder or file", spec)
