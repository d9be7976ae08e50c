"""The output formats and the options the commands share (typer declarations: one home for each flag's
name, default and help)."""

from __future__ import annotations

from enum import Enum

import typer

from .optimizers import help_text as optimizer_names
from .policy import DEFAULT_ADAPTER_REDUCTION, DEFAULT_GPU, DEFAULT_LORA, DEFAULT_METHOD, DEFAULT_VIRTUAL_TOKENS


class Fmt(str, Enum):
    table = "table"
    json = "json"
    markdown = "markdown"


class EstFmt(str, Enum):
    table = "table"
    json = "json"


class BatchFmt(str, Enum):
    json = "json"
    jsonl = "jsonl"
    csv = "csv"


class EmitKind(str, Enum):
    peft = "peft"
    trl = "trl"
    hf = "hf"
    axolotl = "axolotl"
    llamafactory = "llamafactory"
    accelerate = "accelerate"
    deepspeed = "deepspeed"


# Options shared by estimate, fit and probe ("the same flags as estimate").
MODEL_OPT = typer.Option(..., help="catalog name, Hugging Face id, config.json path, or a size")
METHOD_OPT = typer.Option(DEFAULT_METHOD, help="full, lora, qlora, dora, ia3, prompt, prefix or adapter (Houlsby)")
PRECISION_OPT = typer.Option("bf16", help="full FT: bf16 (bf16 weights and states) or mixed (fp32 master weights)")
OPTIMIZER_OPT = typer.Option("adamw", help=optimizer_names())
SEQ_OPT = typer.Option(2048, help="tokens per sequence")
BATCH_OPT = typer.Option(1, help="micro-batch size")
GC_OPT = typer.Option(
    None, "--gradient-checkpointing/--no-gradient-checkpointing", help="default on (off for prefix tuning, which fails with it)"
)
# Method options default to None so that one given to a method that lacks it is refused, not ignored.
RANK_OPT = typer.Option(None, help=f"LoRA, QLoRA, DoRA: rank (default {DEFAULT_LORA.rank})")
TARGETS_OPT = typer.Option(
    None, help=f"LoRA, QLoRA, DoRA: all-linear, attn, mlp, qv, or names like q_proj,v_proj (default {DEFAULT_LORA.targets})"
)
DROPOUT_OPT = typer.Option(None, help=f"LoRA, QLoRA, DoRA: dropout (default {DEFAULT_LORA.dropout})")
VT_OPT = typer.Option(None, help=f"prompt and prefix tuning: virtual tokens (default {DEFAULT_VIRTUAL_TOKENS})")
REDUCTION_OPT = typer.Option(None, help=f"Houlsby adapters: bottleneck = hidden / this (default {DEFAULT_ADAPTER_REDUCTION})")
IA3_OPT = typer.Option(None, help="IA3: modules to scale, like k_proj,v_proj,down_proj (default: peft's for the family)")
LIGER_OPT = typer.Option(False, "--liger/--no-liger", help="liger-kernel: fused linear cross-entropy, RMSNorm, SwiGLU, RoPE")
OFFLOAD_ACT_OPT = typer.Option(
    False, "--offload-activations/--no-offload-activations", help="saved activations in CPU memory (TRL activation_offloading)"
)
# TrainConfig fields that belong to some methods only
METHOD_FIELDS = ("lora_rank", "lora_targets", "lora_dropout", "virtual_tokens", "ia3_targets", "adapter_reduction")
TRAINER_HELP = (
    "what you will run, which the plan is sized for: trl (TRL SFTTrainer, --emit trl), hf (transformers Trainer), "
    "axolotl, llamafactory, loop (ftdecide probe's loop)"
)
TRAINER_OPT = typer.Option("trl", "--trainer", help=f"{TRAINER_HELP} (default trl)")
ACCUM_OPT = typer.Option(
    1, "--gradient-accumulation", help="micro-batches per optimizer step (a trainer holds every gradient between them)"
)
GPUS_OPT = typer.Option(1, help="GPUs per node")
NODES_OPT = typer.Option(1, help="nodes (of --gpus GPUs each)")
STRATEGY_OPT = typer.Option("auto", help="auto, ddp, fsdp, zero1, zero2 or zero3 (auto: FSDP2 on several GPUs here)")
OFFLOAD_PARAMS_OPT = typer.Option(False, "--offload-params/--no-offload-params", help="fsdp, zero3: parameters in CPU memory")
GPU_OPT = typer.Option(None, help=f"GPU from 'ftdecide gpus', or the name nvidia-smi shows (default {DEFAULT_GPU})")
GPU_MEMORY_OPT = typer.Option(None, help="GPU memory in GiB, instead of --gpu")
