"""What the user wants to do: the :class:`Scenario` every command sizes, validated by pydantic, and
:func:`validate_scenario`, which places a bad field in its file. The bottom floor of the decision: it
imports the unit registries (strategies, optimizers, trainers) and nothing that sizes or decides."""

from __future__ import annotations

from typing import Annotated, Any, Literal, Optional

from pydantic import BaseModel, ConfigDict, Field, create_model, field_validator, model_validator

from .. import optimizers, strategies, trainers
from ..core.errors import InputError, error_message, finite
from ..methods import options
from ..core.policy import SCENARIO_DEFAULTS


Task = Literal["chat", "instruction", "style", "classification", "domain", "code", "math", "continued-pretraining"]


class _Head(BaseModel):
    # the two bases are never validated themselves: only Scenario builds its validator (~1.5 ms a model)
    model_config = ConfigDict(extra="forbid", defer_build=True, frozen=True)
    model: str
    gpu: Optional[str] = None
    gpu_memory: Optional[float] = Field(None, gt=0, le=4096)
    gpus: int = Field(SCENARIO_DEFAULTS["gpus"], ge=1, le=1024)  # per node
    nodes: int = Field(1, ge=1, le=1024)
    strategy: str = "auto"
    offload_params: bool = False
    dataset_size: int = Field(SCENARIO_DEFAULTS["dataset_size"], ge=1, le=10_000_000_000)
    seq_len: int = Field(SCENARIO_DEFAULTS["seq_len"], ge=16, le=1_048_576)
    task: Task = SCENARIO_DEFAULTS["task"]
    quality: Literal["prototype", "production", "best"] = SCENARIO_DEFAULTS["quality"]
    budget: Optional[float] = Field(None, gt=0, le=1e9)
    serving: Literal["single", "multi-tenant", "latency-critical"] = SCENARIO_DEFAULTS["serving"]
    epochs: Optional[int] = Field(None, ge=1, le=100)
    price_per_hour: Optional[float] = Field(None, ge=0, le=10_000)
    precision: Literal["bf16", "mixed"] = SCENARIO_DEFAULTS["precision"]
    optimizer: str = SCENARIO_DEFAULTS["optimizer"]
    offload_optimizer: bool = False
    liger: bool = False
    offload_activations: bool = False
    # examples packed into rows of seq_len (ftdecide.core.config: collation "packed"): None, where the data is read
    # (--dataset), packs where the trainer and the method can and the model says it costs less; True always; False never
    packing: Optional[bool] = None


# the methods' options a scenario states (``in_scenario``: soft prompts' virtual tokens, Houlsby's
# reduction), declared by their methods (:mod:`ftdecide.methods.options`); a value given longer than the
# sequence is refused, the default is shortened to it
_WithOptions = create_model("_WithOptions", __base__=_Head, __validators__=options.validators(scenario=True), **options.scenario_fields())


class Scenario(_WithOptions):
    """What the user wants to do. Sizes: examples and tokens; budget in USD; memory in GiB.
    ``rules``: extra rule files, applied after the defaults (paths as given, or relative to the
    scenario file they were written in)."""

    model_config = ConfigDict(defer_build=False)

    # task variants of this model, each trained on its own data, and the months their serving is paid for
    # (ftdecide.decide.deploy); where and how they are served
    variants: int = Field(1, ge=1, le=1000)
    months: int = Field(12, ge=1, le=120)
    serve_gpu: Optional[str] = None  # default: the training GPU
    serve_context: int = Field(4096, ge=1, le=1_048_576)  # tokens of KV cache a sequence holds
    concurrency: int = Field(1, ge=1, le=100_000)  # sequences served at once
    # examples of each task variant ({task: examples}): each variant trained on its own, and a multi-task run
    task_sizes: Optional[dict[str, Annotated[int, Field(ge=1, le=10**12)]]] = Field(None, min_length=2, max_length=1000)
    # the training data's path (--dataset, 'dataset:' in a scenario file, relative to it): written into the emitted
    # configs, and read by recommend where it exists on this machine
    dataset: Optional[str] = Field(None, min_length=1, max_length=4096)
    # the user's data as read (ftdecide.files.dataset.DataStats), where --dataset names a file on this machine:
    # the plan's time is for its padded tokens; not a field of the JSON scenario or of scenario files
    data: Optional[Any] = Field(None, exclude=True)
    rules: tuple[str, ...] = Field((), max_length=64)
    # what the user will run (ftdecide.trainers): the plan is sized for its memory
    trainer: str = trainers.DEFAULT

    @model_validator(mode="after")
    def _variants_of_the_tasks(self) -> "Scenario":
        # --task-sizes names the variants: as many as its tasks (a --variants that disagrees is an error)
        if self.task_sizes:
            if "variants" in self.model_fields_set and self.variants != len(self.task_sizes):
                raise ValueError(f"variants {self.variants} disagrees with the {len(self.task_sizes)} tasks of task-sizes")
            # a scenario is frozen (the sizing remembers its key by identity); this runs while it is being built
            object.__setattr__(self, "variants", len(self.task_sizes))
            self.__pydantic_fields_set__.add("variants")
        return self

    @field_validator("*", mode="before")
    @classmethod
    def _no_bool_for_a_number(cls, v: Any, info) -> Any:
        # YAML's true is not 1 GPU, one epoch or one variant: pydantic would take it as 1
        ann = cls.model_fields[info.field_name].annotation
        if isinstance(v, bool) and ann in (int, float, Optional[int], Optional[float]):
            raise ValueError(f"must be a number, not {str(v).lower()}")
        return v

    @field_validator("data")
    @classmethod
    def _read_data(cls, v: Any) -> Any:
        from ..files.dataset import DataStats

        if v is not None and not isinstance(v, DataStats):
            raise ValueError("is read from the file --dataset names, not given as a value")
        return v

    @field_validator("trainer")
    @classmethod
    def _known_trainer(cls, v: str, info) -> str:
        why = trainers.get(trainers.known(v)).packing_problem()
        why = why if info.data.get("packing") else None
        if why:  # said of the trainer (its line in a scenario file), which is what cannot pack
            raise ValueError(f"with packing on, {why}")
        return v

    @field_validator("strategy")
    @classmethod
    def _known_strategy(cls, v: str) -> str:
        return strategies.known(v)

    @field_validator("optimizer")
    @classmethod
    def _known_optimizer(cls, v: str) -> str:
        return optimizers.known(v)

    @property
    def world_size(self) -> int:
        return self.gpus * self.nodes

    @field_validator("gpu_memory", "budget", "price_per_hour", mode="before")
    @classmethod
    def _finite(cls, v):
        # before the bounds: NaN compares false with every bound and would be named as out of range
        return finite(v) if isinstance(v, float) else v


def validate_scenario(
    fields: dict, path: Optional[str] = None, key_lines: Optional[dict] = None, line: Optional[int] = None, name: Optional[str] = None
) -> Scenario:
    """``Scenario(**fields)``, or an InputError placed in the file: the line of the offending key when
    the fields came from a file (``key_lines``: key -> 1-based line; ``line``: the scenario's own line,
    used when the key has none), the scenario's ``name`` in a file of many, then the option and what is
    wrong."""
    from pydantic import ValidationError

    try:
        return Scenario(**fields)
    except ValidationError as e:
        err = e.errors()[0]
        key = ".".join(str(x) for x in err["loc"][:1])
        kl = key_lines or {}
        at = kl.get(key) or kl.get(key.replace("_", "-")) or line
        label = f"scenario '{name}': " if name else ""
        what = error_message(err)
        raise InputError(f"{label}{key.replace('_', '-') or 'input'}: {what}", path if at else None, at if path else None) from None
