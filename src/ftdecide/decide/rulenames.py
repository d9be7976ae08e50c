"""The names a rule condition may read: one table of name, type and getter.

Both the schema that rule files are checked against (:func:`schema`) and the values a condition is
evaluated over (:func:`environment`) are built from :func:`table`, so a name cannot be declared without a
value, or the reverse. Per-method names (``fits.M``, ``memory.M``, ``cost.M``, ``time.M``) come from the
method registry.
"""

from __future__ import annotations

from .. import levers

import math
from dataclasses import dataclass, field
from functools import lru_cache
from typing import TYPE_CHECKING, Any, Callable

from .. import methods
from .. import strategies
from .expr import BOOL, NUM, STR

if TYPE_CHECKING:  # pragma: no cover - types only
    from ..core.arch import Arch
    from ..files.catalog import GPU
    from .scenario import Scenario
    from .results import Candidate


@dataclass(frozen=True)
class Facts:
    """What a condition is evaluated over: the scenario, its model and GPU, the sized candidates."""

    scenario: "Scenario"
    arch: "Arch"
    gpu: "GPU"
    candidates: dict[str, "Candidate"]
    epochs: int
    # {lever: {method: GiB required at micro-batch 1 with the lever switched on}} (inf where it cannot be)
    levers: dict[str, dict[str, float]] = field(default_factory=dict)
    safety_margin: float = 0.0  # share of the card the plan keeps free
    min_gpus: dict[str, float] = field(default_factory=dict)  # {method: fewest GPUs of this kind it fits on}


@dataclass(frozen=True)
class Name:
    name: str
    type: str
    get: Callable[[Facts], Any]
    doc: str


def _base() -> list[Name]:
    return [
        Name("task", STR, lambda f: f.scenario.task, "the task"),
        Name("quality", STR, lambda f: f.scenario.quality, "prototype, production or best"),
        Name("serving", STR, lambda f: f.scenario.serving, "single, multi-tenant or latency-critical"),
        Name("gpu_name", STR, lambda f: f.gpu.name, "the GPU's catalog name"),
        Name("model_family", STR, lambda f: f.arch.family, "transformers' model_type"),
        Name("dataset_size", NUM, lambda f: f.scenario.dataset_size, "training examples"),
        Name("seq_len", NUM, lambda f: f.scenario.seq_len, "tokens per example"),
        Name("epochs", NUM, lambda f: f.epochs, "epochs of the plan"),
        Name("budget", NUM, lambda f: f.scenario.budget if f.scenario.budget is not None else math.inf, "USD (infinite when not given)"),
        Name("has_budget", BOOL, lambda f: f.scenario.budget is not None, "whether a budget was given"),
        Name("gpus", NUM, lambda f: f.scenario.gpus, "GPUs"),
        Name("gpu_memory_gib", NUM, lambda f: f.gpu.memory_gib, "memory of one GPU, GiB"),
        Name(
            "usable_gib",
            NUM,
            lambda f: round(f.gpu.memory_gib * (1 - f.safety_margin), 2),
            "GiB a plan may use, the safety margin kept free",
        ),
        Name("strategy", STR, lambda f: f.scenario.strategy, "auto, " + ", ".join(strategies.names())),
        Name("nodes", NUM, lambda f: f.scenario.nodes, "nodes"),
        Name("world_size", NUM, lambda f: f.scenario.world_size, "GPUs in all (per node x nodes)"),
        Name("model_params_b", NUM, lambda f: f.arch.total_params() / 1e9, "parameters, billions"),
        Name("vocab_size", NUM, lambda f: f.arch.vocab_size, "vocabulary size"),
        Name("variants", NUM, lambda f: f.scenario.variants, "task variants of this model, each trained and served"),
        Name("months", NUM, lambda f: f.scenario.months, "months of serving the first-year cost counts"),
        Name("moe", BOOL, lambda f: f.arch.is_moe, "whether the model routes each token to a few of its experts"),
        Name(
            "experts_adapted",
            BOOL,
            lambda f: f.arch.adapts_fused_experts(_lora_modules(f)),
            "whether the LoRA targets include the fused experts (peft 0.21's all-linear does on Mixtral, Qwen3-MoE, OLMoE, DeepSeek-V3, "
            "GLM-4.5; the experts target does on any MoE)",
        ),
        Name("tokens", NUM, lambda f: f.scenario.dataset_size * f.scenario.seq_len * f.epochs, "training tokens"),
        Name("bf16_supported", BOOL, lambda f: f.gpu.bf16, "whether the GPU has bf16"),
        Name("optimizer", STR, lambda f: f.scenario.optimizer, "the optimizer"),
        Name("liger", BOOL, lambda f: f.scenario.liger, "whether Liger kernel is switched on"),
        Name("offload_activations", BOOL, lambda f: f.scenario.offload_activations, "whether activations are offloaded"),
    ]


def _lora_modules(f) -> tuple[str, ...]:
    """The modules the LoRA candidate adapts."""
    cfg = f.candidates["lora"].config
    return cfg.method_spec.adapted_modules(f.arch, cfg)


# Levers a rule can weigh for a method that misses the GPU: the scenario field each switches on.
LEVERS = levers.weighed()


def _per_method(m: str) -> list[Name]:
    out = [
        Name(f"fits.{m}", BOOL, lambda f: f.candidates[m].fits, f"whether {m} fits"),
        Name(f"memory.{m}", NUM, lambda f: round(f.candidates[m].memory_needed_gib, 2), f"GiB {m} requires per GPU"),
        Name(f"cost.{m}", NUM, lambda f: round(f.candidates[m].cost_usd, 2), f"USD of {m}"),
        Name(f"time.{m}", NUM, lambda f: round(f.candidates[m].time_hours, 3), f"hours of {m}"),
        Name(f"min_gpus.{m}", NUM, lambda f: f.min_gpus.get(m, math.inf), f"fewest GPUs of this kind {m} fits on (infinite: not 64)"),
        Name(
            f"first_year_cost.{m}",
            NUM,
            lambda f: round(f.candidates[m].deployment.total_usd, 2),
            f"USD of training every variant with {m} and serving and storing them for the scenario's months",
        ),
        Name(f"serving_gpus.{m}", NUM, lambda f: f.candidates[m].deployment.serving_gpus, f"GPUs serving every variant of {m}"),
    ]
    for lever in LEVERS:
        out += [
            Name(
                f"memory_{lever}.{m}",
                NUM,
                lambda f, lever=lever: round(f.levers[lever][m], 2),
                f"GiB {m} requires at micro-batch 1 with {lever} (infinite where the model cannot have it)",
            ),
            Name(
                f"fits_{lever}.{m}",
                BOOL,
                lambda f, lever=lever: f.levers[lever][m] <= f.gpu.memory_gib * (1 - f.safety_margin),
                f"whether {m} fits with {lever}",
            ),
        ]
    return out


@lru_cache(maxsize=1)
def table() -> tuple[Name, ...]:
    """Every name, in the order ``rules schema`` lists them."""
    out = _base()
    for m in methods.names():
        out += _per_method(m)
    return tuple(out)


def schema() -> dict[str, str]:
    """{name: type} for :func:`ftdecide.decide.expr.parse`."""
    return {n.name: n.type for n in table()}


def environment(facts: Facts) -> dict[str, Any]:
    """{name: value} for :func:`ftdecide.decide.expr.evaluate`."""
    return {n.name: n.get(facts) for n in table()}
