"""Ready-to-run training configs from a recommendation: peft, TRL, axolotl and LLaMA-Factory.

Pure: each emitter turns a :class:`ftdecide.results.Recommendation` into the text of a file; what each
trainer calls a method (axolotl's ``adapter``, LLaMA-Factory's ``finetuning_type``, a 4-bit base) is
the method's :class:`ftdecide.methods.EmitKeys`. Every value comes from the recommendation: method, rank, alpha, targets,
dropout, learning rate, epochs, sequence length, micro-batch, gradient accumulation, checkpointing,
optimizer and precision. Choices the recommendation does not make, and which an experienced user would
expect, are fixed here and written into each file: a cosine schedule with 3% warm-up, logging every 10
steps, a checkpoint per epoch.

What is emitted is what was estimated, and each file's header says so: the attention implementation
the estimate assumes (sdpa; eager for Gemma 2's softcapping), the precision (bf16 weights and optimizer
states, or fp32 master weights with ``--precision mixed``), the optimizer, the held-out split of the
evaluation plan, and, on several GPUs, the plan's strategy in each trainer's own keys, which the strategy
unit supplies (:mod:`ftdecide.strategies`: FSDP2's ``fsdp``/``fsdp_config``, ZeRO's ``deepspeed`` file);
QLoRA's 4-bit weights are stored as bf16 where parameters are sharded. ``accelerate`` and ``deepspeed``
write the launch configs themselves.
"""

from __future__ import annotations

from typing import Any, Callable

from .errors import InputError, one_line
from .results import Recommendation

KINDS = ("peft", "trl", "hf", "axolotl", "llamafactory", "accelerate", "deepspeed")
ACCELERATE_FILE = "accelerate.yaml"  # write it with --emit accelerate
WARMUP_RATIO = 0.03
SCHEDULER = "cosine"
# axolotl's Liger plugin and the flags that switch on what ftdecide sized (axolotl docs, "Liger Kernel")
AXOLOTL_LIGER = {
    "plugins": ["axolotl.integrations.liger.LigerPlugin"],
    "liger_rope": True,
    "liger_rms_norm": True,
    "liger_glu_activation": True,
    "liger_fused_linear_cross_entropy": True,
}
# transformers' decoder layer class per model_type: what FSDP wraps as one unit
DECODER_LAYER = {
    "llama": "LlamaDecoderLayer",
    "mistral": "MistralDecoderLayer",
    "qwen2": "Qwen2DecoderLayer",
    "qwen3": "Qwen3DecoderLayer",
    "gemma": "GemmaDecoderLayer",
    "gemma2": "Gemma2DecoderLayer",
    "phi3": "Phi3DecoderLayer",
    "mixtral": "MixtralDecoderLayer",
    "qwen2_moe": "Qwen2MoeDecoderLayer",
}


class _Plan:
    """The fields of a feasible plan that every emitter needs: from a recommendation
    (:meth:`from_recommendation`) or from a bare configuration (:func:`emit_config`, what the trainer
    harness in ``benchmarks/`` runs)."""

    def __init__(
        self,
        arch,
        cfg,
        *,
        gpu_name: str,
        lora,
        settings: dict,
        learning_rate: float,
        epochs: int,
        accum: int,
        bf16: bool,
        gpus: int,
        nodes: int,
        held_out: int,
        dataset_size: int,
        dataset: str,
        output_dir: str,
    ):
        if not arch.model_id:
            raise InputError(
                f"nothing to emit for '{arch.name}': it is not a checkpoint (give a catalog name, a Hugging Face id or a config.json)"
            )
        self.model_id, self.method, self.spec = arch.model_id, cfg.method, cfg.method_spec
        self.keys = self.spec.emit_keys
        self.lora = lora
        self.settings = dict(settings or {})
        self.liger, self.offload_act = cfg.liger, cfg.offload_activations
        self.modules = list(arch.resolve_targets(self.lora.targets)) if self.lora else []
        self.all_linear = bool(self.lora) and self.lora.targets == "all-linear"
        self.lr, self.epochs = learning_rate, epochs
        self.micro, self.accum = cfg.batch_size, accum
        self.gc, self.seq = cfg.gradient_checkpointing, cfg.seq_len
        self.bf16 = bf16
        self.mixed = self.spec.trains_base and cfg.precision == "mixed"
        self.optim = cfg.optimizer_spec.trainer_name
        self.gpus, self.nodes = gpus, nodes
        self.strategy_spec = cfg.strategy_spec
        self.arch = arch
        self.trainer = cfg.trainer_spec  # what the figures were sized for, said in the header
        self.offload_params, self.offload_optimizer = cfg.offload_params, cfg.offload_optimizer
        self.attn = arch.attention  # what the estimate assumed
        self.layer_cls = DECODER_LAYER.get(arch.family, "")
        self.held_out = held_out
        self.val_share = round(self.held_out / dataset_size, 4) if self.held_out else 0.0
        self.dataset, self.output_dir = dataset, output_dir
        precision = (
            "fp32 master weights, bf16 autocast"
            if self.mixed
            else f"{self.dtype} weights" + (" and optimizer states" if self.spec.trains_base else " base, fp32 adapters")
        )
        self.strategy = f"{self.strategy_spec.label} over {self.gpus} GPUs ({self.strategy_spec.summary})" if self.gpus > 1 else "one GPU"
        self.header = (
            f"Generated by ftdecide from its recommendation for {arch.model_id} ({arch.name}) on {self.gpus}x {gpu_name}: "
            f"{self.method}"
            + (f" r={self.lora.rank} alpha={self.lora.alpha} targets={self.lora.targets}" if self.lora else "")
            + "".join(f" {k}={v}" for k, v in self.settings.items())
            + (", Liger kernel" if self.liger else "")
            + (", activations offloaded" if self.offload_act else "")
            + f", micro-batch {self.micro} x {self.accum} accumulation, seq {self.seq}, lr {self.lr:g}, {self.epochs} epochs."
            + f" Sized for: {precision}; optimizer {self.optim}; attention {self.attn}; {self.strategy};"
            + f" {self.held_out:,} examples held out; trainer {self.trainer.label} ({self.trainer.versions})."
        )

    @classmethod
    def from_recommendation(cls, res: Recommendation, dataset: str, output_dir: str) -> "_Plan":
        plan = res.plan
        if plan.candidate is None:
            raise InputError("nothing to emit: no method fits (see the recommendation's alternatives)")
        return cls(
            res.arch,
            plan.candidate.config,
            gpu_name=res.gpu.name,
            lora=plan.lora,
            settings=plan.method_settings or {},
            learning_rate=plan.learning_rate,
            epochs=plan.epochs,
            accum=plan.gradient_accumulation_steps,
            bf16=plan.precision == "bf16",
            gpus=plan.gpus,
            nodes=plan.nodes,
            held_out=plan.evaluation.held_out_examples if plan.evaluation else 0,
            dataset_size=res.scenario.dataset_size,
            dataset=dataset,
            output_dir=output_dir,
        )

    @property
    def sharded(self) -> bool:
        """Parameters sharded over the GPUs (FSDP2, ZeRO-3): 4-bit weights must be stored as bf16 to shard."""
        return self.strategy_spec.shards_parameters and (self.gpus > 1 or self.offload_params)

    @property
    def launch(self) -> str:
        if self.gpus == 1 and self.strategy_spec.engine != "deepspeed":
            return "python"
        machines = f" --num_machines {self.nodes} --machine_rank $NODE_RANK --main_process_ip $MAIN_IP" if self.nodes > 1 else ""
        return f"accelerate launch --config_file {ACCELERATE_FILE} --num_processes {self.gpus}{machines}"

    @property
    def dtype(self) -> str:
        if self.mixed:
            return "float32"  # fp32 master weights, bf16/fp16 autocast
        return "bfloat16" if self.bf16 else "float16"


def _py(v: Any) -> str:
    """A Python literal of ``v`` in ASCII (``ascii()`` escapes every other character, lone surrogates
    included): whatever a path or model id holds, the emitted file reads back the same value, and no
    source encoding can turn an escape into a quote."""
    return ascii(v)


def _peft_config_py(p: _Plan) -> str:
    """``peft_config = ...``: the method's peft config (LoraConfig, IA3Config, PromptTuningConfig,
    PrefixTuningConfig), or None for full fine-tuning."""
    if p.spec.trains_base:
        return "peft_config = None  # full fine-tuning: every weight trains"
    if p.lora:
        targets = '"all-linear"' if p.all_linear else _py(p.modules)
        extra = "".join(f"    {k}={_py(v)},\n" for k, v in p.keys.peft_lora_options)
        shape = f"    r={p.lora.rank},\n    lora_alpha={p.lora.alpha},\n    lora_dropout={p.lora.dropout!r},\n"
        return f'peft_config = LoraConfig(\n{shape}{extra}    target_modules={targets},\n    bias="none",\n    task_type="CAUSAL_LM",\n)'
    args = "".join(f"    {kw}={_py(p.settings[name])},\n" for name, kw in p.keys.peft_settings)
    return f'peft_config = {p.keys.peft_class}(\n{args}    task_type="CAUSAL_LM",\n)'


def _refuse(trainer: str, has: bool, what: str, elsewhere: str = "--emit peft or --emit trl") -> None:
    if not has:
        raise InputError(f"{trainer} has no {what}: use {elsewhere}")


def _bnb_py(p: _Plan) -> str:
    if not p.spec.quantized_base:
        return "bnb_config = None  # no quantization"
    storage = "    bnb_4bit_quant_storage=torch.bfloat16,  # sharded 4-bit weights are stored as bf16\n" if p.sharded else ""
    return (
        'bnb_config = BitsAndBytesConfig(\n    load_in_4bit=True,\n    bnb_4bit_quant_type="nf4",\n    bnb_4bit_use_double_quant=True,\n'
        f"    bnb_4bit_compute_dtype=torch.{'bfloat16' if p.bf16 else 'float16'},\n{storage})"
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
    bf16={p.bf16},
    fp16={not p.bf16},
    logging_steps=10,
    eval_strategy={_eval(p)},
    per_device_eval_batch_size={p.micro},
    save_strategy="epoch",
    report_to="none","""


def _eval(p: _Plan) -> str:
    """Evaluate each epoch on the held-out split; not at all where nothing is held out."""
    return '"epoch"' if p.held_out else '"no"'


def _attn(p: _Plan) -> str:
    return p.attn


def emit_peft(p: _Plan) -> str:
    _refuse("peft", bool(p.keys.peft_class), p.spec.label, p.keys.elsewhere)
    return f"""{_PY_PREAMBLE}{_comment(p.header)}
# peft: the model with its adapter, ready for any training loop. Run it to print the trainable parameters.
import torch
from peft import {p.keys.peft_class}, get_peft_model, prepare_model_for_kbit_training
from transformers import AutoModelForCausalLM, BitsAndBytesConfig

MODEL = {_py(p.model_id)}
GRADIENT_CHECKPOINTING = {p.gc}

{_bnb_py(p)}

{_peft_config_py(p)}


def load_model():
    model = AutoModelForCausalLM.from_pretrained(
        MODEL, quantization_config=bnb_config, dtype=torch.{p.dtype}, attn_implementation={_py(_attn(p))}
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
from transformers import AutoModelForCausalLM, BitsAndBytesConfig
from trl import SFTConfig

MODEL = {_py(p.model_id)}
DATASET = {_py(p.dataset)}
HELD_OUT = {p.held_out}  # examples held out for evaluation (the recommendation's evaluation plan)

{_bnb_py(p)}

{_peft_config_py(p)}

sft_config = SFTConfig(
{_trainer_args_py(p)}
    max_length={p.seq},
    gradient_checkpointing={p.gc},{_trainer_tail_py(p)}{_levers_py(p)}{_strategy_py(p)}
)


def main(dataset_path: str) -> None:
    from datasets import load_dataset
    from trl import SFTTrainer

    model = AutoModelForCausalLM.from_pretrained(
        MODEL, quantization_config=bnb_config, dtype=torch.{p.dtype}, attn_implementation={_py(_attn(p))}
    )
    data = load_dataset("json", data_files=dataset_path, split="train")
    # the evaluation plan's held-out split, the same examples every run (none where the data is too small)
    split = data.train_test_split(test_size=HELD_OUT, seed=0) if HELD_OUT else {{"train": data, "test": None}}
    trainer = SFTTrainer(
        model=model,
        args=sft_config,
        train_dataset=split["train"],
        eval_dataset=split["test"],
        peft_config=peft_config,
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
from transformers import AutoModelForCausalLM, BitsAndBytesConfig, TrainingArguments

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
        MODEL, quantization_config=bnb_config, dtype=torch.{p.dtype}, attn_implementation={_py(_attn(p))}
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
    data = load_dataset("json", data_files=dataset_path, split="train")
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


def _levers_hf(p: _Plan) -> str:
    out = ""
    if p.liger:
        out += "\n    use_liger_kernel=True,  # sized with liger-kernel's fused cross-entropy, RMSNorm, SwiGLU, RoPE"
    return out


# Python reads a source encoding from a comment in the first two lines (PEP 263): those lines are fixed
# text, so no model id or path can choose the codec the rest of the file is decoded with.
_PY_PREAMBLE = "# -*- coding: utf-8 -*-\n# Generated by ftdecide; the line below says from which recommendation.\n"


def _levers_py(p: _Plan) -> str:
    out = ""
    if p.liger:
        out += "\n    use_liger_kernel=True,  # sized with liger-kernel's fused cross-entropy, RMSNorm, SwiGLU, RoPE"
    if p.offload_act:
        out += "\n    activation_offloading=True,  # sized with saved activations in CPU memory"
    return out


def _strategy_py(p: _Plan) -> str:
    args = p.strategy_spec.trainer_args(p.layer_cls, p.offload_params) if p.gpus > 1 or p.strategy_spec.engine == "deepspeed" else {}
    if not args:
        return ""
    lines = "".join(f"\n    {k}={_py(v)}," for k, v in args.items())
    return f"\n    # as estimated: {p.strategy_spec.label} over {p.gpus} GPUs ({p.strategy_spec.summary}){lines}"


def _comment(text: str) -> str:
    """One comment line, in ASCII: names from config files or the command line must not end the comment
    and become code (Python) or keys (YAML)."""
    return "# " + one_line(text).encode("ascii", "backslashreplace").decode("ascii")


def _yaml(header: str, body: dict) -> str:
    import yaml

    return _comment(header) + "\n" + yaml.safe_dump(body, sort_keys=False, default_flow_style=False)


def emit_axolotl(p: _Plan) -> str:
    _refuse("axolotl", p.keys.axolotl_adapter is not None, p.spec.label, p.keys.elsewhere)
    _refuse("axolotl", p.gc or not p.offload_act, "activation offloading without gradient checkpointing", "--emit trl")
    cfg: dict[str, Any] = {"base_model": p.model_id}
    if p.liger:
        cfg.update(AXOLOTL_LIGER)
    if p.keys.quantization_bit == 4:
        cfg["load_in_4bit"] = True
    if p.keys.axolotl_adapter:
        cfg["adapter"] = p.keys.axolotl_adapter
    if p.lora:
        cfg.update(lora_r=p.lora.rank, lora_alpha=p.lora.alpha, lora_dropout=p.lora.dropout)
        cfg.update(dict(p.keys.axolotl_options))
        if p.all_linear:
            cfg["lora_target_linear"] = True
        else:
            cfg["lora_target_modules"] = p.modules
    cfg.update(
        datasets=[{"path": p.dataset, "ds_type": "json", "type": "chat_template"}],
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
    if p.offload_act:
        cfg["activation_offloading"] = True
    if p.gpus > 1 or p.strategy_spec.engine == "deepspeed":
        cfg.update(p.strategy_spec.axolotl_keys(p.layer_cls, p.offload_params))
    return _yaml(p.header + " (axolotl: `axolotl train this.yaml`)", cfg)


def emit_llamafactory(p: _Plan) -> str:
    _refuse("LLaMA-Factory", p.keys.llamafactory_type is not None, p.spec.label, p.keys.elsewhere)
    _refuse("LLaMA-Factory", not p.offload_act, "activation offloading", "--emit trl or --emit axolotl")
    cfg: dict[str, Any] = {"model_name_or_path": p.model_id}
    if p.liger:
        cfg["enable_liger_kernel"] = True
    if p.keys.quantization_bit:
        cfg.update(quantization_bit=p.keys.quantization_bit, quantization_method="bitsandbytes")
    cfg.update(stage="sft", do_train=True, finetuning_type=p.keys.llamafactory_type)
    if p.lora:
        cfg.update(
            lora_rank=p.lora.rank,
            lora_alpha=p.lora.alpha,
            lora_dropout=p.lora.dropout,
            lora_target="all" if p.all_linear else ",".join(p.modules),
        )
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
        bf16=p.bf16,
        fp16=not p.bf16,
        flash_attn="sdpa" if p.attn == "sdpa" else "disabled",  # LLaMA-Factory's name for eager attention
        disable_gradient_checkpointing=not p.gc,
        val_size=p.held_out,
        per_device_eval_batch_size=p.micro,
        eval_strategy={_eval(p)},
    )
    if p.spec.trains_base and not p.mixed:
        cfg["pure_bf16"] = p.bf16
    cfg.update(p.strategy_spec.llamafactory_keys())
    header = (
        p.header
        + " (LLaMA-Factory: `"
        + (f"{p.launch} src/train.py this.yaml" if p.gpus > 1 else "llamafactory-cli train this.yaml")
        + f"`; register {p.dataset} as 'ftdecide_data' in data/dataset_info.json, and set 'template' to the model's chat template)"
    )
    return _yaml(header, cfg)


def emit_accelerate(p: _Plan) -> str:
    """accelerate's config for the plan's strategy (``accelerate launch --config_file``)."""
    cfg = p.strategy_spec.accelerate_config(p.gpus, p.nodes, p.layer_cls, p.mixed, p.offload_params)
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


EMITTERS: dict[str, Callable[[_Plan], str]] = {
    "peft": emit_peft,
    "trl": emit_trl,
    "hf": emit_hf,
    "axolotl": emit_axolotl,
    "llamafactory": emit_llamafactory,
    "accelerate": emit_accelerate,
    "deepspeed": emit_deepspeed,
}


def emit(kind: str, res: Recommendation, dataset: str = "train.jsonl", output_dir: str = "outputs/ftdecide") -> str:
    """The text of a ``kind`` config (one of :data:`KINDS`) for the recommendation ``res``."""
    if kind not in EMITTERS:
        raise InputError(f"unknown config kind '{kind}' (choose from {', '.join(KINDS)})")
    return EMITTERS[kind](_Plan.from_recommendation(res, dataset, output_dir))


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
    if kind not in EMITTERS:
        raise InputError(f"unknown config kind '{kind}' (choose from {', '.join(KINDS)})")
    from .results import LoraSettings

    spec = cfg.method_spec
    lora = LoraSettings(cfg.lora_rank, 2 * cfg.lora_rank, cfg.lora_targets, cfg.lora_dropout) if "lora_rank" in spec.options else None
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
    return EMITTERS[kind](plan)
