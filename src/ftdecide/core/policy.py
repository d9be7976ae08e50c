"""Policy numbers of the recommendation, each with its reason. The default rules
(``configs/rules/default.yaml``, rule ``default-lora``) set the same LoRA shape, learning rates and
epochs, and a team changes them there; the values here are what a plan uses when every rule that sets
them has been disabled, and what ``estimate``, ``fit`` and ``probe`` assume when not told.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class LoraShape:
    """rank, alpha, targets (as :meth:`ftdecide.core.arch.Arch.resolve_targets` takes them), dropout."""

    rank: int = 16
    alpha: int = 32
    targets: str = "all-linear"
    dropout: float = 0.05


# r=16 on all linear layers with alpha = 2r and dropout 0.05: QLoRA's recipe (Dettmers et al. 2023), the
# common default of peft, axolotl and LLaMA-Factory examples.
DEFAULT_LORA = LoraShape()
DEFAULT_EPOCHS = 3  # the seeds' decision tables: 1-3 epochs for instruction data; more overfits
DEFAULT_LORA_LEARNING_RATE = 2e-4  # LoRA's rate is about 10x full fine-tuning's (Hu et al. 2021)
DEFAULT_FULL_LEARNING_RATE = 2e-5
# What a scenario assumes for what it leaves out (recommend's options; the CLI's help shows them).
SCENARIO_DEFAULTS = {
    "gpus": 1,
    "dataset_size": 10_000,
    "seq_len": 2048,
    "task": "instruction",
    "quality": "production",
    "serving": "single",
    "precision": "bf16",
    "optimizer": "adamw",
}

# What estimate, fit and probe assume without --method; also the method an alternative proposes for
# sharding over more GPUs: a bf16 base shards under FSDP as it is, while QLoRA's 4-bit base needs
# bnb_4bit_quant_storage set to shard at all.
DEFAULT_METHOD = "lora"
DEFAULT_GPU = "a100-80gb"  # the most rented training card when --gpu is not given

# Examples per optimizer step the plan aims for: micro-batch x accumulation x GPUs. 16 is the
# seeds' and the trainers' usual effective batch for instruction tuning at 2k tokens.
GLOBAL_BATCH = 16
# Micro-batches tried, largest first (powers of two up to the global batch: no accumulation beyond it).
MICRO_BATCHES = (16, 8, 4, 2, 1)
# Without checkpointing a plan is taken only if it still allows this micro-batch: below it, the ~1/3
# extra compute of checkpointing costs less than the lost parallelism of tiny micro-batches.
MIN_MICRO_BATCH_WITHOUT_CHECKPOINTING = 4
# GPU counts an alternative may propose for sharding: up to one node of 8, then whole nodes of 8.
GPUS_PER_NODE = 8
ALTERNATIVE_GPU_COUNTS = (2, 4, 8, 16, 32, 64)
# A smaller model proposed as an alternative is sized with QLoRA at the plan's rank, capped here:
# higher ranks are for large updates (math), and the alternative is about fitting at all.
ALTERNATIVE_MAX_RANK = 64
# Cheap switches an infeasible plan is offered before other hardware: lower LoRA ranks tried (largest
# first), and the shortest sequence worth proposing (halving from the plan's).
ALTERNATIVE_RANKS = (8, 4)
ALTERNATIVE_MIN_SEQ_LEN = 256

# Share of each GPU's memory every plan leaves free by default (the rules' ``safety_margin``): a plan at
# 79.0 of 79.6 GiB is right by the estimate but has no room for another driver, torch version or process.
SAFETY_MARGIN = 0.05
# ``--strategy auto``: a strategy whose memory was measured (FSDP2) is kept over a modelled one (DDP, ZeRO)
# unless the modelled one is more than this share cheaper by the (modelled) step time.
MEASURED_STRATEGY_PREFERENCE = 0.05
