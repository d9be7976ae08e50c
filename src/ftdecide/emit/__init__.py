"""Ready-to-run training configs from a recommendation: peft, TRL, axolotl and LLaMA-Factory.

Pure: each emitter turns a :class:`ftdecide.decide.results.Recommendation` into the text of a file; what each
trainer calls a method (axolotl's ``adapter``, LLaMA-Factory's ``finetuning_type``, a 4-bit base) is
the method's :class:`ftdecide.methods.EmitKeys`. Every value comes from the recommendation: method, rank, alpha, targets,
dropout, learning rate, epochs, sequence length, micro-batch, gradient accumulation, checkpointing,
optimizer and precision. Choices the recommendation does not make, and which an experienced user would
expect, are fixed here and written into each file: a cosine schedule with 3% warm-up, logging every 10
steps, a checkpoint per epoch.

What is emitted is what was estimated, and each file's header says so: the attention implementation
the estimate assumes (sdpa; eager for Gemma 2's softcapping and gpt-oss's sinks), the precision (bf16 weights and optimizer
states, or fp32 master weights with ``--precision mixed``), the optimizer, the held-out split of the
evaluation plan, and, on several GPUs, the plan's strategy in each trainer's own keys, which the strategy
unit supplies (:mod:`ftdecide.strategies`: FSDP2's ``fsdp``/``fsdp_config``, ZeRO's ``deepspeed`` file);
QLoRA's 4-bit weights are stored as bf16 where parameters are sharded. ``accelerate`` and ``deepspeed``
write the launch configs themselves.
"""

from __future__ import annotations

from typing import Callable

from .plan import (  # noqa: F401  (importable from here, where they lived)
    ACCELERATE_FILE,
    DECODER_LAYER,
    KINDS,
    SCHEDULER,
    WARMUP_RATIO,
    _comment,
    _eval,
    _Plan,
    _py,
    _refuse,
)
from ..core.errors import InputError
from ..decide.results import Recommendation


def _peft_config_py(p: _Plan) -> str:
    """``peft_config = ...``: the method's peft config (LoraConfig, IA3Config, PromptTuningConfig,
    PrefixTuningConfig), or None for full fine-tuning."""
    if p.spec.trains_base:
        return "peft_config = None  # full fine-tuning: every weight trains"
    if p.lora:
        targets = '"all-linear"' if p.peft_targets == "all-linear" else _py(p.peft_targets)
        if p.peft_parameters:  # the fused experts: parameters, not modules (peft's ParamWrapper)
            targets += f",\n    target_parameters={_py(p.peft_parameters)}"
        extra = "".join(f"    {k}={_py(v)},\n" for k, v in p.keys.peft_lora_options)
        shape = "".join(f"    {k}={_py(getattr(p.lora, a))},\n" for k, a in p.keys.peft_shape)
        return f'peft_config = LoraConfig(\n{shape}{extra}    target_modules={targets},\n    bias="none",\n    task_type="CAUSAL_LM",\n)'
    args = "".join(f"    {kw}={_py(p.settings[name])},\n" for name, kw in p.keys.peft_settings)
    return f'peft_config = {p.keys.peft_class}(\n{args}    task_type="CAUSAL_LM",\n)'


def _bnb_py(p: _Plan) -> str:
    if p.dequantize:
        return (
            "bnb_config = None  # no 4-bit base\n"
            f"# {p.model_id} ships its weights in {p.arch.checkpoint_quant}: loaded de-quantized to bf16, which is what is sized\n"
            f"dequantize_config = {p.dequantize}(dequantize=True)"
        )
    if not p.spec.quantized_base:
        return "bnb_config = None  # no quantization"
    storage = "    bnb_4bit_quant_storage=torch.bfloat16,  # sharded 4-bit weights are stored as bf16\n" if p.sharded else ""
    return (
        'bnb_config = BitsAndBytesConfig(\n    load_in_4bit=True,\n    bnb_4bit_quant_type="nf4",\n    bnb_4bit_use_double_quant=True,\n'
        f"    bnb_4bit_compute_dtype=torch.{'bfloat16' if p.bf16 else 'float16'},\n{storage})"
    )


def _load_quant(p: _Plan) -> str:
    """What ``from_pretrained`` takes as ``quantization_config``."""
    return "dequantize_config" if p.dequantize else "bnb_config"


def _load_args(p: _Plan) -> str:
    """What ``from_pretrained`` takes: the quantization, the dtype, where it loads (host memory where the plan's start
    was sized so) and the attention the plan assumed."""
    where = 'device_map={"": "cpu"}, ' if p.load_cpu else ""
    return f"MODEL, quantization_config={_load_quant(p)}, dtype=torch.{p.dtype}, {where}attn_implementation={_py(_attn(p))}"


def _dequantize_import(p: _Plan) -> str:
    return f", {p.dequantize}" if p.dequantize else ""


def _processing_class_import(p: _Plan) -> str:
    # a model that wraps a text model with a vision tower (Gemma 3): TRL would load its image processor and
    # treat the run as vision-language; text data trains through the tokenizer
    return "    from transformers import AutoTokenizer\n" if p.arch.vision_params else ""


def _processing_class_arg(p: _Plan) -> str:
    return (
        "\n        processing_class=AutoTokenizer.from_pretrained(MODEL),  # text data: the tokenizer, not the image processor"
        if p.arch.vision_params
        else ""
    )


def _trainer_args_py(p: _Plan) -> str:
    """The arguments TRL's SFTConfig and transformers' TrainingArguments share, first in both files."""
    return f"""    output_dir={_py(p.output_dir)},
    num_train_epochs={p.epochs},
    per_device_train_batch_size={p.micro},
    gradient_accumulation_steps={p.accum},
    learning_rate={p.lr!r},
    lr_scheduler_type={_py(SCHEDULER)},
    warmup_steps={WARMUP_RATIO},  # below 1: a share of the steps (transformers 5 removed warmup_ratio)
    optim={_py(p.optim)},"""


def _trainer_tail_py(p: _Plan) -> str:
    """Precision, logging, evaluation and saving: the same keys in both trainers' arguments."""
    return f"""
    bf16={p.autocast_bf16},
    fp16={p.autocast_fp16},
    logging_steps=10,
    eval_strategy={_eval(p)},
    per_device_eval_batch_size={p.micro},
    save_strategy="epoch",
    report_to="none","""


def _attn(p: _Plan) -> str:
    return p.attn


def emit_peft(p: _Plan) -> str:
    _refuse("peft", bool(p.keys.peft_class), p.spec.label, p.keys.elsewhere)
    return f"""{_PY_PREAMBLE}{_comment(p.header)}
# peft: the model with its adapter, ready for any training loop. Run it to print the trainable parameters.
import torch
from peft import {p.keys.peft_class}, get_peft_model, prepare_model_for_kbit_training
from transformers import AutoModelForCausalLM, BitsAndBytesConfig{_dequantize_import(p)}

MODEL = {_py(p.model_id)}
GRADIENT_CHECKPOINTING = {p.gc}

{_bnb_py(p)}

{_peft_config_py(p)}


def load_model():
    model = AutoModelForCausalLM.from_pretrained(
        {_load_args(p)}
    )
    if bnb_config is not None:
        model = prepare_model_for_kbit_training(model, use_gradient_checkpointing=GRADIENT_CHECKPOINTING)
    elif GRADIENT_CHECKPOINTING:
        model.gradient_checkpointing_enable()
    if peft_config is not None:
        model = get_peft_model(model, peft_config)
    return model


if __name__ == "__main__":
    m = load_model()
    if peft_config is not None:
        m.print_trainable_parameters()
"""


def _packing_py(p: _Plan) -> str:
    # what the plan was sized for: rows of max_length, each micro-batch one flattened sequence (sdpa masks it)
    return "\n    packing=True,  # best-fit decreasing into rows of max_length, padding-free: the plan is sized for it" if p.packing else ""


def emit_trl(p: _Plan) -> str:
    _refuse("TRL (through peft)", bool(p.keys.peft_class), p.spec.label, p.keys.elsewhere)
    return f"""{_PY_PREAMBLE}{_comment(p.header)}
# TRL (>= 1.0, transformers >= 5): supervised fine-tuning on a JSONL dataset ("messages",
# "prompt"/"completion" or "text" per line).
#   {p.launch} {{this file}} [DATASET.jsonl]
# Memory: sized for this script as it is (SFTTrainer's fused LM head, no k-bit preparation, gradients
# held across accumulated micro-batches), measured by running it unmodified (docs/accuracy.md, "Trainers").
import sys

import torch
from peft import {p.keys.peft_class}
from transformers import AutoModelForCausalLM, BitsAndBytesConfig{_dequantize_import(p)}
from trl import SFTConfig

MODEL = {_py(p.model_id)}
DATASET = {_py(p.dataset)}
HELD_OUT = {p.held_out}  # examples held out for evaluation (the recommendation's evaluation plan)

{_bnb_py(p)}

{_peft_config_py(p)}

sft_config = SFTConfig(
{_trainer_args_py(p)}
    max_length={p.seq},{_packing_py(p)}
    gradient_checkpointing={p.gc},{_trainer_tail_py(p)}{_levers_py(p)}{_strategy_py(p)}
)


def main(dataset_path: str) -> None:
    from datasets import load_dataset
    from trl import SFTTrainer
{_processing_class_import(p)}
    model = AutoModelForCausalLM.from_pretrained(
        {_load_args(p)}
    )
    # JSONL, or Parquet (what ftdecide reads too)
    data = load_dataset("parquet" if dataset_path.endswith(".parquet") else "json", data_files=dataset_path, split="train")
    # the evaluation plan's held-out split, the same examples every run (none where the data is too small)
    split = data.train_test_split(test_size=HELD_OUT, seed=0) if HELD_OUT else {{"train": data, "test": None}}
    trainer = SFTTrainer(
        model=model,
        args=sft_config,
        train_dataset=split["train"],
        eval_dataset=split["test"],
        peft_config=peft_config,{_processing_class_arg(p)}
    )
    trainer.train()
    trainer.save_model(sft_config.output_dir)


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else DATASET)
"""


def emit_hf(p: _Plan) -> str:
    """The transformers ``Trainer`` with peft over a JSONL dataset: the model as the peft script loads it
    (``prepare_model_for_kbit_training`` for a 4-bit base), the text tokenized and cut at the plan's
    length, batches padded per micro-batch by ``DataCollatorForLanguageModeling``; the loss is the
    model's own (full logits)."""
    _refuse("the transformers Trainer (through peft)", bool(p.keys.peft_class), p.spec.label, p.keys.elsewhere)
    return f"""{_PY_PREAMBLE}{_comment(p.header)}
# transformers Trainer + peft (transformers >= 5): causal-LM fine-tuning on a JSONL dataset ("text", or
# "prompt"/"completion", or "messages" with the tokenizer's chat template, per line).
#   {p.launch} {{this file}} [DATASET.jsonl]
import sys

import torch
from peft import {p.keys.peft_class}, get_peft_model, prepare_model_for_kbit_training
from transformers import AutoModelForCausalLM, BitsAndBytesConfig, TrainingArguments{_dequantize_import(p)}

MODEL = {_py(p.model_id)}
DATASET = {_py(p.dataset)}
HELD_OUT = {p.held_out}  # examples held out for evaluation (the recommendation's evaluation plan)
MAX_LENGTH = {p.seq}
GRADIENT_CHECKPOINTING = {p.gc}

{_bnb_py(p)}

{_peft_config_py(p)}

training_args = TrainingArguments(
{_trainer_args_py(p)}
    gradient_checkpointing=GRADIENT_CHECKPOINTING,{_trainer_tail_py(p)}
    remove_unused_columns=False,{_levers_hf(p)}{_strategy_py(p)}
)


def load_model():
    model = AutoModelForCausalLM.from_pretrained(
        {_load_args(p)}
    )
    if bnb_config is not None:
        model = prepare_model_for_kbit_training(model, use_gradient_checkpointing=GRADIENT_CHECKPOINTING)
    if peft_config is not None:
        model = get_peft_model(model, peft_config)
        if GRADIENT_CHECKPOINTING:
            model.enable_input_require_grads()  # checkpointed layers need a graph from the frozen embeddings
    return model


def text_of(example, tokenizer) -> str:
    if "messages" in example and example["messages"]:
        return tokenizer.apply_chat_template(example["messages"], tokenize=False)
    if "prompt" in example and "completion" in example:
        return example["prompt"] + example["completion"]
    return example["text"]


def main(dataset_path: str) -> None:
    from datasets import load_dataset
    from transformers import AutoTokenizer, DataCollatorForLanguageModeling, Trainer

    tokenizer = AutoTokenizer.from_pretrained(MODEL)
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    # JSONL, or Parquet (what ftdecide reads too)
    data = load_dataset("parquet" if dataset_path.endswith(".parquet") else "json", data_files=dataset_path, split="train")
    data = data.map(
        lambda ex: tokenizer(text_of(ex, tokenizer), truncation=True, max_length=MAX_LENGTH), remove_columns=data.column_names
    )
    # the evaluation plan's held-out split, the same examples every run (none where the data is too small)
    split = data.train_test_split(test_size=HELD_OUT, seed=0) if HELD_OUT else {{"train": data, "test": None}}
    trainer = Trainer(
        model=load_model(),
        args=training_args,
        train_dataset=split["train"],
        eval_dataset=split["test"],
        data_collator=DataCollatorForLanguageModeling(tokenizer, mlm=False),
    )
    trainer.train()
    trainer.save_model(training_args.output_dir)


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else DATASET)
"""


def _lever_args(p: _Plan, trainer: str, attr: str) -> str:
    """The keyword arguments that switch on the plan's levers in a Python trainer's arguments; a lever the
    trainer lacks (``None``) refuses the plan, since it was sized with it."""
    out = ""
    for lv in p.levers:
        args = getattr(lv, attr)
        _refuse(trainer, args is not None, lv.label, "--emit trl")
        out += "".join(f"\n    {k}={v!r},  # {why}" for k, v, why in args)
    return out


def _levers_hf(p: _Plan) -> str:
    return _lever_args(p, "the transformers Trainer", "hf_args")


# Python reads a source encoding from a comment in the first two lines (PEP 263): those lines are fixed
# text, so no model id or path can choose the codec the rest of the file is decoded with.
_PY_PREAMBLE = "# -*- coding: utf-8 -*-\n# Generated by ftdecide; the line below says from which recommendation.\n"


def _levers_py(p: _Plan) -> str:
    return _lever_args(p, "TRL", "trl_args")


def _strategy_py(p: _Plan) -> str:
    args = p.strategy_spec.trainer_args(p.layer_cls, p.offload_params) if p.gpus > 1 or p.strategy_spec.engine == "deepspeed" else {}
    if not args:
        return ""
    lines = "".join(f"\n    {k}={_py(v)}," for k, v in args.items())
    return f"\n    # as estimated: {p.strategy_spec.label} over {p.gpus} GPUs ({p.strategy_spec.summary}){lines}"


def _emitters() -> dict[str, Callable[[_Plan], str]]:
    """Every emitter by kind: the Python scripts here, the YAML and JSON configs in :mod:`ftdecide.emit.configs`."""
    from . import configs as emit_configs

    return {"peft": emit_peft, "trl": emit_trl, "hf": emit_hf, **emit_configs.EMITTERS}


def emit(kind: str, res: Recommendation, dataset: str = "train.jsonl", output_dir: str = "outputs/ftdecide") -> str:
    """The text of a ``kind`` config (one of :data:`KINDS`) for the recommendation ``res``."""
    if kind not in KINDS:
        raise InputError(f"unknown config kind '{kind}' (choose from {', '.join(KINDS)})")
    return _emitters()[kind](_Plan.from_recommendation(res, dataset, output_dir))


def emit_config(
    kind: str,
    arch,
    cfg,
    *,
    accum: int = 1,
    learning_rate: float = 2e-4,
    epochs: int = 1,
    held_out: int = 0,
    dataset_size: int = 1,
    gpu_name: str = "GPU",
    bf16: bool = True,
    dataset: str = "train.jsonl",
    output_dir: str = "outputs/ftdecide",
) -> str:
    """The text of a ``kind`` config for one bare configuration ``cfg`` (a :class:`TrainConfig`) on
    ``arch``: what ``recommend --emit`` writes for a plan of that configuration, without the rules that
    choose one. The trainer harness (``benchmarks/trainer_runs.py``) runs these files unmodified."""
    if kind not in KINDS:
        raise InputError(f"unknown config kind '{kind}' (choose from {', '.join(KINDS)})")
    from ..methods import options as method_options
    from ..decide.results import LoraSettings

    spec = cfg.method_spec
    shape = method_options.shape_of(cfg)
    lora = LoraSettings(shape["rank"], 2 * shape["rank"], shape["targets"], shape["dropout"]) if shape else None
    plan = _Plan(
        arch,
        cfg,
        gpu_name=gpu_name,
        lora=lora,
        settings=spec.settings(arch, cfg),
        learning_rate=learning_rate,
        epochs=epochs,
        accum=accum,
        bf16=bf16,
        gpus=cfg.world_size,
        nodes=cfg.nodes,
        held_out=held_out,
        dataset_size=dataset_size,
        dataset=dataset,
        output_dir=output_dir,
    )
    return _emitters()[kind](plan)
