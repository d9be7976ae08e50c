"""The one training configuration every figure is made for: :class:`TrainConfig` (frozen, validated by
pydantic, its dump the ``config`` of probe records, of ``recommendation.config`` and of ``estimate
--format json``). The bottom floor of the core: it imports the unit registries (methods, optimizers,
strategies, trainers) and nothing that sizes, so the units can name it without a circle."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, create_model, field_validator

from .. import methods, optimizers, strategies, trainers
from .errors import preview
from .memo import Memo
from ..methods import options
from .policy import DEFAULT_METHOD

Precision = Literal["bf16", "mixed"]
Collation = Literal["filled", "padded", "packed"]


class _Head(BaseModel):
    # the two bases are never validated themselves: only TrainConfig builds its validator (~1.5 ms a model)
    model_config = ConfigDict(frozen=True, extra="forbid", defer_build=True)

    method: str = DEFAULT_METHOD
    precision: Precision = "bf16"
    optimizer: str = "adamw"
    seq_len: int = Field(2048, gt=0, le=1_048_576)
    batch_size: int = Field(1, gt=0, le=4096)
    gradient_checkpointing: bool = True


# every registered method's options (:mod:`ftdecide.methods.options`), between the head and the rest: the
# order of the fields is the order of the keys in every dump
_WithOptions = create_model("_WithOptions", __base__=_Head, __validators__=options.validators(), **options.config_fields())


# the refusals of the configurations a scenario's sizing asks about again and again: few at a time, so a small bound
_RUN_PROBLEMS = Memo(limit=4096)


class TrainConfig(_WithOptions):
    """One training configuration to estimate. Sizes in tokens; ``method`` a name of
    :func:`ftdecide.methods.names`; the methods' own options (``lora_rank``, ``virtual_tokens``, ...) are
    fields too, each declared by the method that takes it."""

    model_config = ConfigDict(defer_build=False)

    gpus: int = Field(1, gt=0, le=4096)  # GPUs per node
    nodes: int = Field(1, gt=0, le=4096)
    strategy: str = "auto"
    offload_optimizer: bool = False
    offload_params: bool = False
    liger: bool = False
    offload_activations: bool = False
    # what runs the steps (ftdecide.trainers); the core's default is the probe's loop, the reference every
    # fitted term was measured on; every command defaults to trainers.DEFAULT (TRL)
    trainer: str = "loop"
    # micro-batches per optimizer step: with more than one, the trainers that accumulate hold every
    # gradient while the next micro-batches run
    gradient_accumulation: int = Field(1, gt=0, le=65536)
    # how examples meet the model: "filled", every one seq_len tokens (no padding, no attention mask: what a plan assumes
    # without the user's data); "padded" to the longest of each micro-batch (the trainers' default with data of mixed
    # length: sdpa then runs masked); "packed" into rows of seq_len, each micro-batch one flattened sequence
    # (padding-free, where the trainer packs: ftdecide.trainers ``packs``)
    collation: Collation = "filled"

    @field_validator("trainer")
    @classmethod
    def _known_trainer(cls, v: str) -> str:
        return trainers.known(v)

    @field_validator("method")
    @classmethod
    def _known_method(cls, v: str) -> str:
        if v not in methods.names():
            raise ValueError(f"unknown method {preview(v)} (choose from {', '.join(methods.names())})")
        return v

    @field_validator("optimizer")
    @classmethod
    def _known_optimizer(cls, v: str) -> str:
        return optimizers.known(v)

    @field_validator("strategy")
    @classmethod
    def _known_strategy(cls, v: str) -> str:
        return strategies.known(v)

    @property
    def world_size(self) -> int:
        """GPUs in all: per node x nodes."""
        return self.gpus * self.nodes

    @property
    def strategy_spec(self) -> "strategies.Strategy":
        """The distribution strategy this configuration trains with (``auto`` resolved)."""
        return strategies.resolve(self)

    def run_problem(self) -> str | None:
        """Why this configuration cannot be trained as asked (one line), or None. The estimator sizes any
        configuration; commands refuse these where a user asked for them. Remembered per configuration (it is
        frozen): a batch's sizing asks it of the same remembered configurations hundreds of times a scenario."""
        return _RUN_PROBLEMS.of(self, "run_problem", self._run_problem)

    def _run_problem(self) -> str | None:
        spec = self.method_spec
        if self.gradient_checkpointing and not spec.supports_checkpointing:
            return (
                f"{spec.label} does not train with gradient checkpointing on peft 0.21 and transformers 5.17 (measured: the "
                "recomputed attention's mask no longer matches the prefix); use --no-gradient-checkpointing"
            )
        if self.packing:
            why = self.trainer_spec.packing_problem() or self.method_spec.packing_problem()
            if why:
                return f"--packing: {why}"
        return options.run_problem(self) or self.strategy_spec.problem(self)

    @property
    def packing(self) -> bool:
        """Examples packed, each micro-batch one flattened sequence."""
        return self.collation == "packed"

    @property
    def mixed_lengths(self) -> bool:
        """Examples of mixed length, padded or packed: attention runs with a mask."""
        return self.collation != "filled"

    @property
    def optimizer_spec(self) -> optimizers.Optimizer:
        """The registered optimizer this configuration steps with."""
        return optimizers.get(self.optimizer)

    @property
    def trainer_spec(self) -> trainers.Trainer:
        """The registered trainer this configuration is sized for."""
        return trainers.get(self.trainer)

    @property
    def kbit_prepared(self) -> bool:
        """A 4-bit base prepared by peft's ``prepare_model_for_kbit_training`` (fp32 embeddings, norms and
        head) under this trainer."""
        return self.method_spec.quantized_base and self.trainer_spec.kbit_prepare

    @property
    def method_spec(self) -> methods.Method:
        """The registered method this configuration trains with."""
        return methods.get(self.method)

    @property
    def variant(self) -> str:
        """Key of the fitted constants for this method and precision."""
        return self.method_spec.variant(self.precision)
