"""The output formats and the options the commands share (typer declarations: one home for each flag's
name, default and help)."""

from __future__ import annotations

import functools
import inspect
from enum import Enum
from typing import Optional

import typer

from ..optimizers import help_text as optimizer_names
from .. import strategies
from ..core.policy import DEFAULT_GPU, DEFAULT_METHOD, SCENARIO_DEFAULTS


class Fmt(str, Enum):
    table = "table"
    json = "json"
    markdown = "markdown"


class EstFmt(str, Enum):
    table = "table"
    json = "json"


class ModelsFmt(str, Enum):
    table = "table"
    json = "json"
    markdown = "markdown"  # the README's model table


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
PACKING_OPT = typer.Option(
    None,
    "--packing/--no-packing",
    help="pack examples into rows of --seq-len (TRL, padding-free); default with --dataset: where it costs less",
)
LIGER_OPT = typer.Option(False, "--liger/--no-liger", help="liger-kernel: fused linear cross-entropy, RMSNorm, SwiGLU, RoPE")
OFFLOAD_ACT_OPT = typer.Option(
    False, "--offload-activations/--no-offload-activations", help="saved activations in CPU memory (TRL activation_offloading)"
)
TRAINER_HELP = (
    "what you will run, which the plan is sized for: trl (TRL SFTTrainer, --emit trl), hf (transformers Trainer), "
    "axolotl, llamafactory, loop (ftdecide probe's loop)"
)
TRAINER_OPT = typer.Option("trl", "--trainer", help=f"{TRAINER_HELP} (default trl)")
ACCUM_OPT = typer.Option(
    1, "--gradient-accumulation", help="micro-batches per optimizer step (a trainer holds every gradient between them)"
)
# recommend's options that default to the scenario's (None: not given)
REC_OFFLOAD_PARAMS_OPT = typer.Option(None, "--offload-params/--no-offload-params", help="fsdp, zero3: parameters in CPU memory")
REC_TASK_OPT = typer.Option(
    None,
    help=f"chat, instruction, style, classification, domain, code, math, continued-pretraining (default {SCENARIO_DEFAULTS['task']})",
)
REC_OFFLOAD_OPTIMIZER_OPT = typer.Option(None, "--offload-optimizer/--no-offload-optimizer", help="optimizer states in CPU memory")
REC_OFFLOAD_ACT_OPT = typer.Option(
    None, "--offload-activations/--no-offload-activations", help="size every method with activations offloaded to CPU memory"
)
# Variants and their serving (recommend): the first-year cost of training and serving them
VARIANTS_OPT = typer.Option(None, help="task variants of this model, each trained on its own data and served (default 1)")
MONTHS_OPT = typer.Option(None, help="months of serving and storage the first-year cost counts (default 12)")
SERVE_GPU_OPT = typer.Option(None, help="GPU the variants are served on (default: the training GPU)")
SERVE_CONTEXT_OPT = typer.Option(None, help="tokens of KV cache a served sequence holds (default 4096)")
CONCURRENCY_OPT = typer.Option(None, help="sequences served at once (default 1)")
TASK_SIZES_OPT = typer.Option(
    None, help="the variants' own examples, TASK=N,TASK=N (code=20000,chat=5000): each trained apart, and one multi-task run beside"
)
DATASET_OPT = typer.Option(
    None,
    "--dataset",
    help="training data (JSONL, or a folder of it): read for its example count and token lengths where it exists here, "
    "and written into --emit configs (default train.jsonl, not read)",
)
GPUS_OPT = typer.Option(1, help="GPUs per node")
NODES_OPT = typer.Option(1, help="nodes (of --gpus GPUs each)")
STRATEGY_OPT = typer.Option("auto", help=f"auto, {', '.join(strategies.names())} (auto: FSDP2 on several GPUs here)")
OFFLOAD_PARAMS_OPT = typer.Option(False, "--offload-params/--no-offload-params", help="fsdp, zero3: parameters in CPU memory")
GPU_OPT = typer.Option(None, help=f"GPU from 'ftdecide gpus', or the name nvidia-smi shows (default {DEFAULT_GPU})")
GPU_MEMORY_OPT = typer.Option(None, help="GPU memory in GiB, instead of --gpu")


_PENDING: list = []  # (command wrapper, its own signature, scenario options only) until the CLI first runs


def with_method_options(scenario: bool = False):
    """A command's ``method_options: dict`` parameter becomes one flag per method option of the registry
    (:mod:`ftdecide.methods.options`; with ``scenario``, the options a scenario states), at its place in
    ``--help``. Each defaults to None, so that one given to a method that lacks it is refused, not
    ignored; the command gets the given ones as ``method_options``. The flags are made when the CLI first
    runs (:func:`expand`), after every method has registered."""

    def deco(func):
        @functools.wraps(func)
        def wrapper(**kwargs):
            from ..methods import options

            given = {o.name: kwargs.pop(o.name) for o in options.all_options() if o.name in kwargs}
            return func(**kwargs, method_options=given)

        _PENDING.append((wrapper, inspect.signature(func), scenario))
        return wrapper

    return deco


def expand() -> None:
    """Give every command decorated with :func:`with_method_options` its flags (once)."""
    from ..methods import options

    while _PENDING:
        wrapper, sig, scenario = _PENDING.pop()
        params, hints = [], {k: v for k, v in wrapper.__annotations__.items() if k != "method_options"}
        for p in sig.parameters.values():
            if p.name != "method_options":
                params.append(p)
                continue
            for o in options.all_options():
                if o.in_scenario or not scenario:
                    opt = typer.Option(None, o.flag, help=options.help_text(o))
                    params.append(inspect.Parameter(o.name, p.kind, default=opt, annotation=Optional[o.type]))
                    hints[o.name] = Optional[o.type]
        wrapper.__signature__ = sig.replace(parameters=params)
        wrapper.__annotations__ = hints
