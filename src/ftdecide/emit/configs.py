"""The emitted configs that are YAML or JSON: axolotl's and LLaMA-Factory's training configs, accelerate's
launch config and DeepSpeed's. The Python scripts (peft, TRL, the transformers Trainer) and what every
emitter shares (the plan, literals, refusals, the header) are in :mod:`ftdecide.emit`."""

from __future__ import annotations

from typing import Any

from .plan import SCHEDULER, WARMUP_RATIO, _comment, _Plan, _refuse
from ..core.errors import InputError


def _yaml(header: str, body: dict) -> str:
    import yaml

    return _comment(header) + "\n" + yaml.safe_dump(body, sort_keys=False, default_flow_style=False)


def emit_axolotl(p: _Plan) -> str:
    _refuse("axolotl", p.keys.axolotl_adapter is not None, p.spec.label, p.keys.elsewhere)
    for lv in p.levers:
        _refuse("axolotl", lv.axolotl_keys is not None, lv.label, "--emit trl")
        _refuse("axolotl", p.gc or not lv.axolotl_needs_checkpointing, f"{lv.label} without gradient checkpointing", "--emit trl")
    cfg: dict[str, Any] = {"base_model": p.model_id}
    if p.keys.quantization_bit == 4:
        cfg["load_in_4bit"] = True
    if p.dequantize:
        # a checkpoint that ships its own quantization, loaded de-quantized to bf16 as sized (axolotl's own
        # examples/gpt-oss/gpt-oss-20b-sft-lora-singlegpu.yaml)
        cfg.update(model_quantization_config=p.dequantize, model_quantization_config_kwargs={"dequantize": True})
    if p.keys.axolotl_adapter:
        cfg["adapter"] = p.keys.axolotl_adapter
    if p.lora:
        _refuse("axolotl", not p.peft_parameters, "target_parameters for fused experts in what ftdecide emits", "--emit trl or --emit peft")
        cfg.update({k: getattr(p.lora, a) for k, a in p.keys.axolotl_shape})
        cfg.update(dict(p.keys.axolotl_options))
        if p.peft_targets == "all-linear":
            cfg["lora_target_linear"] = True
        else:
            cfg["lora_target_modules"] = p.peft_targets
    cfg.update(
        datasets=[{"path": p.dataset, "ds_type": "parquet" if p.dataset.endswith(".parquet") else "json", "type": "chat_template"}],
        val_set_size=p.val_share,  # the evaluation plan's held-out examples, as a share
        sequence_len=p.seq,
        micro_batch_size=p.micro,
        gradient_accumulation_steps=p.accum,
        num_epochs=p.epochs,
        learning_rate=p.lr,
        lr_scheduler=SCHEDULER,
        warmup_ratio=WARMUP_RATIO,
        optimizer=p.optim,
        bf16=p.bf16,
        fp16=not p.bf16,
        tf32=p.bf16,
        gradient_checkpointing=p.gc,
        attn_implementation=p.attn,
        logging_steps=10,
        output_dir=p.output_dir,
    )
    for lv in p.levers:  # what the plan was sized with, in axolotl's keys
        cfg.update(lv.axolotl_keys)
    if p.gpus > 1 or p.strategy_spec.engine == "deepspeed":
        cfg.update(p.strategy_spec.axolotl_keys(p.layer_cls, p.offload_params))
    return _yaml(p.header + " (axolotl: `axolotl train this.yaml`)", cfg)


def emit_llamafactory(p: _Plan) -> str:
    _refuse("LLaMA-Factory", p.keys.llamafactory_type is not None, p.spec.label, p.keys.elsewhere)
    for lv in p.levers:
        _refuse("LLaMA-Factory", lv.llamafactory_keys is not None, lv.label, "--emit trl or --emit axolotl")
    cfg: dict[str, Any] = {"model_name_or_path": p.model_id}
    for lv in p.levers:  # what the plan was sized with, in LLaMA-Factory's keys
        cfg.update(lv.llamafactory_keys)
    if p.keys.quantization_bit:
        cfg.update(quantization_bit=p.keys.quantization_bit, quantization_method="bitsandbytes")
    cfg.update(stage="sft", do_train=True, finetuning_type=p.keys.llamafactory_type)
    if p.lora:
        _refuse("LLaMA-Factory", not p.peft_parameters, "target_parameters for fused experts", "--emit trl or --emit peft")
        cfg.update({k: getattr(p.lora, a) for k, a in p.keys.llamafactory_shape})
        # LLaMA-Factory's "all" leaves a vision tower out itself (freeze_vision_tower)
        cfg["lora_target"] = "all" if p.all_linear else ",".join(dict.fromkeys(m.split("[", 1)[0] for m in p.modules))
        cfg.update(dict(p.keys.llamafactory_options))
    cfg.update(
        dataset="ftdecide_data",
        dataset_dir="data",
        template="default",
        cutoff_len=p.seq,
        output_dir=p.output_dir,
        logging_steps=10,
        save_strategy="epoch",
        per_device_train_batch_size=p.micro,
        gradient_accumulation_steps=p.accum,
        learning_rate=p.lr,
        num_train_epochs=float(p.epochs),
        lr_scheduler_type=SCHEDULER,
        warmup_ratio=WARMUP_RATIO,
        optim=p.optim,
        bf16=p.autocast_bf16,
        fp16=p.autocast_fp16,
        flash_attn="sdpa" if p.attn == "sdpa" else "disabled",  # LLaMA-Factory's name for eager attention
        disable_gradient_checkpointing=not p.gc,
        val_size=p.held_out,
        per_device_eval_batch_size=p.micro,
        eval_strategy="epoch" if p.held_out else "no",
    )
    if p.spec.trains_base and not p.mixed and p.strategy_spec.engine != "deepspeed":
        # LLaMA-Factory refuses pure_bf16 under ZeRO-3 (hparams/parser.py, hiyouga/LLaMA-Factory ff6d4d1); DeepSpeed's bf16
        # engine keeps its fp32 master weights whatever it is told, which is how ZeRO is sized
        cfg["pure_bf16"] = p.bf16
    cfg.update(p.strategy_spec.llamafactory_keys())
    header = (
        p.header
        + " (LLaMA-Factory: `"
        + (
            f"{p.launch} src/train.py this.yaml"
            if p.gpus > 1
            # DeepSpeed on one GPU: LLaMA-Factory refuses to run it outside torchrun (hparams/parser.py, ff6d4d1)
            else ("FORCE_TORCHRUN=1 " if p.strategy_spec.engine == "deepspeed" else "") + "llamafactory-cli train this.yaml"
        )
        + f"`; register {p.dataset} as 'ftdecide_data' in data/dataset_info.json, and set 'template' to the model's chat template)"
    )
    return _yaml(header, cfg)


def emit_accelerate(p: _Plan) -> str:
    """accelerate's config for the plan's strategy (``accelerate launch --config_file``)."""
    cfg = p.strategy_spec.accelerate_config(p.gpus, p.nodes, p.layer_cls, p.mixed, p.offload_params)
    if not p.autocast:
        cfg["mixed_precision"] = "no"
    if p.nodes > 1:
        cfg.update(machine_rank=0, main_process_ip="MAIN_NODE_IP", main_process_port=29500)  # set on each node
    return _yaml(p.header + f" (accelerate: `{p.launch} TRAIN_SCRIPT`)", cfg)


def emit_deepspeed(p: _Plan) -> str:
    """DeepSpeed's ``ds_config.json`` for a ZeRO plan; refused for a strategy DeepSpeed does not run."""
    import json

    ds = p.strategy_spec.deepspeed_config(p.arch, p.micro, p.accum, p.bf16, p.offload_optimizer, p.offload_params)
    if ds is None:
        raise InputError(
            f"the plan's strategy is {p.strategy_spec.label}, which DeepSpeed does not run: use --emit accelerate, or ask for "
            "--strategy zero1, zero2 or zero3"
        )
    return json.dumps(ds, indent=2) + "\n"


EMITTERS = {
    "axolotl": emit_axolotl,
    "llamafactory": emit_llamafactory,
    "accelerate": emit_accelerate,
    "deepspeed": emit_deepspeed,
}
