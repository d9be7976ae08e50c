"""What transformers builds from each config.json of ``data/families/configs/``, counted on the meta device.

For every config it records (one JSON line each, to ``data/counts/families_<date>.jsonl``):

- the class ``AutoModelForCausalLM`` picks and the total parameter count, as ``sum(p.numel())``;
- every parameter with the layer numbers taken out (``model.layers.N.mlp.experts.gate_up_proj``), its shape
  in the first layer that has it and in how many layers it appears: the structure sizing must follow;
- the ``nn.Linear`` modules peft's ``all-linear`` wraps, and the trainable count of a LoRA r=16 adapter
  over them, as peft counts it; ``lora_dropout=0.05`` is tried first and its refusal recorded.

No GPU and no weights: everything is built on the meta device, so a 671B config costs nothing.

    python benchmarks/family_counts.py [OUT.jsonl] [NAME ...]

Needs torch, transformers and peft (the versions are recorded in every line).
"""

from __future__ import annotations

import datetime
import json
import pathlib
import re
import sys
import warnings

ROOT = pathlib.Path(__file__).resolve().parent.parent
CONFIGS = ROOT / "data" / "families" / "configs"


def build(cfg: dict):
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM

    cfg = {k: v for k, v in cfg.items() if not k.startswith("_")}
    config = AutoConfig.for_model(cfg.pop("model_type"), **cfg)
    with torch.device("meta"):
        return AutoModelForCausalLM.from_config(config), config


def schema(model) -> dict:
    out: dict[str, dict] = {}
    for name, p in model.named_parameters(remove_duplicate=False):
        key = re.sub(r"\.\d+\.", ".N.", name)
        e = out.setdefault(key, {"shape": list(p.shape), "count": 0, "dtype": str(p.dtype).replace("torch.", "")})
        e["count"] += 1
    return out


# What ftdecide emits for a model that wraps a text model (Gemma 3 and 4): the text model's linear layers only
TEXT_ONLY = (
    r".*language_model.*\.(q_proj|k_proj|v_proj|o_proj|gate_proj|up_proj|down_proj"
    r"|router\.proj|per_layer_input_gate|per_layer_projection|per_layer_model_projection)"
)


def lora_wrapped(model, dropout: float, targets="all-linear", parameters=None) -> tuple[list[str], int]:
    from peft import LoraConfig, get_peft_model

    extra = {"target_parameters": parameters} if parameters else {}
    peft_model = get_peft_model(model, LoraConfig(r=16, lora_alpha=32, target_modules=targets, lora_dropout=dropout, **extra))
    wrapped = sorted({re.sub(r"\.\d+\.", ".N.", n.rsplit(".lora_A", 1)[0]) for n, _ in peft_model.named_parameters() if ".lora_A" in n})
    trainable = sum(p.numel() for p in peft_model.parameters() if p.requires_grad)
    return wrapped, trainable


def record(name: str, cfg: dict) -> dict:
    import peft
    import torch
    import transformers

    rec: dict = {
        "name": name,
        "source": cfg.get("_src", ""),
        "model_type": cfg["model_type"],
        "software": {"torch": torch.__version__, "transformers": transformers.__version__, "peft": peft.__version__},
    }
    try:
        model, config = build(cfg)
    except Exception as e:  # noqa: BLE001 - the record says why a family was not built
        rec["error"] = f"{type(e).__name__}: {e}"[:500]
        return rec
    rec["class"] = type(model).__name__
    rec["params"] = sum(p.numel() for p in model.parameters())
    rec["schema"] = schema(model)
    rec["attn_implementation"] = getattr(config, "_attn_implementation", None)
    for dropout in (0.05, 0.0):
        try:
            model, _ = build(cfg)
            wrapped, trainable = lora_wrapped(model, dropout)
            rec["lora_all_linear"] = {"dropout": dropout, "wrapped": wrapped, "trainable_r16": trainable}
            break
        except Exception as e:  # noqa: BLE001
            rec[f"lora_error_dropout_{dropout}"] = f"{type(e).__name__}: {e}"[:500]
    fused = sorted({k.split("layers.N.", 1)[1] for k in rec["schema"] if k.endswith(("experts.gate_up_proj", "experts.down_proj"))})
    if fused:
        # the fused experts named in target_parameters (ftdecide's "experts" target)
        model, _ = build(cfg)
        _, trainable = lora_wrapped(model, 0.0, [], fused)
        rec["lora_target_parameters"] = {"parameters": fused, "trainable_r16": trainable}
    if any("language_model" in k for k in rec["schema"]):
        model, _ = build(cfg)
        wrapped, trainable = lora_wrapped(model, 0.05, TEXT_ONLY)
        rec["lora_text_only"] = {"targets": TEXT_ONLY, "wrapped": wrapped, "trainable_r16": trainable}
    return rec


def main(argv: list[str]) -> int:
    warnings.filterwarnings("ignore")
    out = pathlib.Path(argv[0]) if argv else ROOT / "data" / "counts" / f"families_{datetime.date.today()}.jsonl"
    names = argv[1:] or sorted(p.stem for p in CONFIGS.glob("*.json"))
    with open(out, "w", encoding="utf-8") as fh:
        for name in names:
            rec = record(name, json.loads((CONFIGS / f"{name}.json").read_text()))
            fh.write(json.dumps(rec) + "\n")
            print(name, rec.get("class"), rec.get("params"), rec.get("error", ""), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
