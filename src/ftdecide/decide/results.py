"""The recommendation as typed objects: :class:`Candidate`, :class:`Plan`, :class:`Recommendation`.

The core builds these; renderers, emitters, ``batch`` and the CLI read their attributes. The versioned
JSON contract (``schema_version``) is written in one place, the ``to_json()`` methods here, so a renamed
field is a type error, not a silently missing key.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Optional

from ..core.collation import HELD_OUT_EPOCH_ERRORS
from ..core.policy import GLOBAL_BATCH

if TYPE_CHECKING:  # pragma: no cover - types only
    from ..core.arch import Arch
    from ..files.catalog import GPU
    from ..core.estimator import MemoryEstimate, TrainConfig
    from .scenario import Scenario

SCHEMA_VERSION = "1.5"


@dataclass(frozen=True)
class Message:
    """A reason or warning, with the rule (or check) it came from."""

    rule: str
    message: str

    def to_json(self) -> dict[str, str]:
        return {"rule": self.rule, "message": self.message}


@dataclass(frozen=True)
class Alternative:
    """What would make a plan feasible, or another method that fits: ``kind`` is gpu, gpus, model or
    method; ``details`` holds the kind's own fields (``gpu``, ``gpus``, ``model``, ``method``, ...)."""

    kind: str
    message: str
    details: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {"kind": self.kind, **self.details, "message": self.message}


@dataclass(frozen=True)
class Candidate:
    """One method sized for the GPU: the configuration chosen for it and what it costs. Memory in GiB
    (2**30 bytes), time in hours, cost in USD."""

    method: str
    fits: bool
    config: "TrainConfig"
    estimate: "MemoryEstimate"
    gpu_memory_gib: float
    tokens_per_second: float
    mfu: float
    time_hours: float
    cost_usd: float
    # training and serving the scenario's variants over its months (ftdecide.decide.deploy)
    deployment: Optional[Any] = None
    # with the user's data: the hours of each collation sized ({"padded": h, "packed": h}; the plan's is its config's)
    collation_hours: Optional[dict] = None
    # a method the scenario's own strategy refuses (FSDP1 runs a 4-bit base only): GiB it needs at least with a
    # strategy that runs it, without the refused one's offload (what a reason quotes of it); None where not refused
    needs_gib: Optional[float] = None

    @property
    def memory_needed_gib(self) -> float:
        """GiB the method requires per GPU, as a reason quotes it: its own, or where refused what it needs."""
        return self.required_gib if self.needs_gib is None else self.needs_gib

    @property
    def micro_batch_size(self) -> int:
        return self.config.batch_size

    @property
    def gradient_checkpointing(self) -> bool:
        return self.config.gradient_checkpointing

    @property
    def required_gib(self) -> float:
        return self.estimate.required_gib

    @property
    def trainable_params(self) -> int:
        return self.estimate.trainable_params

    def to_json(self) -> dict[str, Any]:
        est = self.estimate
        return {
            "method": self.method,
            "fits": self.fits,
            "micro_batch_size": self.micro_batch_size,
            "gradient_checkpointing": self.gradient_checkpointing,
            "strategy": self.config.strategy_spec.name,
            "memory": {
                "peak_allocated_gib": round(est.peak_allocated_gib, 2),
                "required_gib": round(est.required_gib, 2),
                "gpu_memory_gib": self.gpu_memory_gib,
                "breakdown": {k: round(v, 3) for k, v in est.breakdown.items()},
                # what parameter or optimizer offload keeps in each node's host memory (a lower bound)
                "host_memory_gib_per_node": round(est.host_gib * self.config.gpus, 2),
                **({"needs_gib": round(self.needs_gib, 2)} if self.needs_gib is not None else {}),
            },
            "trainable_params": est.trainable_params,
            "tokens_per_second": round(self.tokens_per_second, 1),
            "mfu": round(self.mfu, 3),
            "time_hours": round(self.time_hours, 3),
            "cost_usd": round(self.cost_usd, 2),
            "notes": list(est.notes),
            **({"deployment": self.deployment.to_json()} if self.deployment is not None else {}),
        }


@dataclass(frozen=True)
class LoraSettings:
    rank: int
    alpha: int
    targets: str
    dropout: float

    def to_json(self) -> dict[str, Any]:
        return {"rank": self.rank, "alpha": self.alpha, "targets": self.targets, "dropout": self.dropout}


@dataclass(frozen=True)
class Evaluation:
    held_out_examples: int
    task_metric: str
    regression_check: str
    perplexity_rise_max: float
    benchmark_drop_max_points: float
    if_forgetting: str

    def to_json(self) -> dict[str, Any]:
        return dict(self.__dict__)


@dataclass(frozen=True)
class Deployment:
    """How to serve the result; sizes in MB (10^6 bytes): ``size_mb`` for a full model, adapter sizes
    (fp32 as peft saves them, and bf16) otherwise."""

    artifact: str
    advice: str
    size_mb: Optional[float] = None
    adapter_size_mb: Optional[float] = None
    adapter_size_mb_bf16: Optional[float] = None

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"artifact": self.artifact}
        if self.adapter_size_mb is not None:
            out.update(adapter_size_mb=self.adapter_size_mb, adapter_size_mb_bf16=self.adapter_size_mb_bf16)
        else:
            out["size_mb"] = self.size_mb
        out["advice"] = self.advice
        return out


@dataclass(frozen=True)
class Plan:
    """The recommended plan: the chosen candidate and its settings; ``candidate`` is None when nothing fits."""

    candidate: Optional[Candidate]
    epochs: int
    reasons: tuple[Message, ...]
    lora: Optional[LoraSettings] = None
    learning_rate: Optional[float] = None
    gradient_accumulation_steps: Optional[int] = None
    gpus: int = 1  # in all (per node x nodes)
    nodes: int = 1
    safety_margin: float = 0.0  # share of each GPU the plan keeps free
    precision: str = "bf16"
    evaluation: Optional[Evaluation] = None
    deployment: Optional[Deployment] = None
    # notes of rules that fired but preferred a method the plan does not use (forbidden, or not fitting)
    not_followed: tuple[Message, ...] = ()
    # the method's own settings beyond LoRA's shape (IA3's modules, prompt tuning's virtual tokens)
    method_settings: Optional[dict] = None

    @property
    def feasible(self) -> bool:
        return self.candidate is not None

    @property
    def method(self) -> Optional[str]:
        return self.candidate.method if self.candidate else None

    @property
    def micro_batch_size(self) -> Optional[int]:
        return self.candidate.micro_batch_size if self.candidate else None

    @property
    def gradient_checkpointing(self) -> Optional[bool]:
        return self.candidate.gradient_checkpointing if self.candidate else None

    @property
    def global_batch_size(self) -> Optional[int]:
        if not self.candidate or self.gradient_accumulation_steps is None:
            return None
        return self.candidate.micro_batch_size * self.gradient_accumulation_steps * self.gpus

    def to_json(self) -> dict[str, Any]:
        c = self.candidate
        out: dict[str, Any] = {
            "method": self.method,
            "feasible": self.feasible,
            "lora": self.lora.to_json() if self.lora else None,
            "method_settings": dict(self.method_settings or {}),
            "learning_rate": self.learning_rate,
            "epochs": self.epochs,
            "safety_margin": self.safety_margin,
        }
        if c is None:
            out.update(micro_batch_size=None, gradient_checkpointing=None, reasons=[r.to_json() for r in self.reasons])
            return out
        out.update(
            micro_batch_size=c.micro_batch_size,
            gradient_accumulation_steps=self.gradient_accumulation_steps,
            global_batch_size=self.global_batch_size,
            gradient_checkpointing=c.gradient_checkpointing,
            precision=self.precision,
            time_hours=round(c.time_hours, 3),
            cost_usd=round(c.cost_usd, 2),
        )
        if self.gpus > 1 or not c.config.strategy_spec.single_gpu:
            spec = c.config.strategy_spec
            out["distributed"] = f"{spec.label} across {self.gpus} GPUs"
            out["strategy"] = {
                "name": spec.name,
                "label": spec.label,
                "world_size": self.gpus,
                "nodes": self.nodes,
                "measured": spec.measured,
                "basis": spec.basis,
            }
        out["reasons"] = [r.to_json() for r in self.reasons]
        out["not_followed"] = [r.to_json() for r in self.not_followed]
        if self.evaluation:
            out["evaluation"] = self.evaluation.to_json()
        if self.deployment:
            out["deployment"] = self.deployment.to_json()
        return out


@dataclass(frozen=True)
class Recommendation:
    """Everything ``recommend`` decided, with the resolved inputs it was decided for."""

    scenario: "Scenario"
    arch: "Arch"
    gpu: "GPU"
    price_per_hour: float
    model_source: str
    plan: Plan
    candidates: tuple[Candidate, ...]
    warnings: tuple[Message, ...]
    alternatives: tuple[Alternative, ...]
    rules_fired: tuple[str, ...]
    assumptions: dict[str, Any]
    emitted: Optional[dict[str, str]] = None
    # a method the rules would choose over the plan's had it fit (a switch may make it fit: recommend tries)
    blocked: Optional[str] = None

    @property
    def trainer(self):
        """The trainer the plan was sized for (:mod:`ftdecide.trainers`)."""
        from .. import trainers

        return trainers.get(self.scenario.trainer)

    @property
    def chosen(self) -> Optional[Candidate]:
        return self.plan.candidate

    def candidate(self, method: str) -> Optional[Candidate]:
        return next((c for c in self.candidates if c.method == method), None)

    def scenario_json(self) -> dict[str, Any]:
        sc = self.scenario
        return {
            **sc.model_dump(exclude={"model", "gpu", "gpu_memory", "rules"}),
            "model": self.arch.name,
            "model_source": self.model_source,
            "model_id": self.arch.model_id or None,
            "total_params": self.arch.total_params(),
            "gpu": self.gpu.name,
            "gpu_memory_gib": self.gpu.memory_gib,
            "price_per_hour": self.price_per_hour,
            "epochs": self.plan.epochs,
        }

    def to_json(self) -> dict[str, Any]:
        """The ``recommend --format json`` document (``schema_version`` :data:`SCHEMA_VERSION`)."""
        doc: dict[str, Any] = {
            "schema_version": SCHEMA_VERSION,
            "scenario": self.scenario_json(),
            "recommendation": {
                **self.plan.to_json(),
                "trainer": self.trainer.describe(),
                # the plan's one configuration, as estimate --from-json and probe --from-json read it back
                "config": self.chosen.config.model_dump() if self.chosen else None,
            },
            "candidates": [c.to_json() for c in self.candidates],
            "warnings": [w.to_json() for w in self.warnings],
            "alternatives": [a.to_json() for a in self.alternatives],
            "rules_fired": list(self.rules_fired),
            "assumptions": self.assumptions,
        }
        if self.scenario.data is not None:
            doc["data"] = self.data_json()
        if self.emitted:
            doc["emitted"] = dict(self.emitted)
        return doc

    def data_json(self) -> dict[str, Any]:
        """The ``data`` section: what --dataset held, and what the plan's time rests on: its examples padded per
        micro-batch (the trainers' default) or packed (``collation``), with the hours of each where both were sized."""
        d, sc = self.scenario.data, self.scenario
        out: dict[str, Any] = {
            "path": d.path,
            "examples": d.examples,
            "sampled": len(d.lengths),
            "every": d.every,
            "formats": list(d.formats),
            "tokens_counted_by": d.counted_by,
            "exact_tokens": d.exact_tokens,
            "lengths": {q: d.percentile(n) for q, n in (("p50", 50), ("p95", 95), ("p99", 99), ("max", 100))},
            "mean": round(sum(d.lengths) / len(d.lengths), 1),
            "truncated_share": round(d.truncated_share(sc.seq_len), 4),
            "suggested_seq_len": d.suggested_seq_len(),  # the catalog holds no context length to cap it at
        }
        c = self.chosen
        if c is not None:
            padded, packed = d.epoch_tokens(sc.seq_len, c.micro_batch_size)
            out["epoch_tokens"] = {"full_length": sc.dataset_size * sc.seq_len, "padded": round(padded), "packed": round(packed)}
            # how the plan collates its examples, and the hours of each collation sized (only the plan's where the
            # trainer or the method cannot pack, or the user chose)
            out["collation"] = c.config.collation
            out["time_hours"] = {k: round(v, 3) for k, v in (c.collation_hours or {c.config.collation: c.time_hours}).items()}
            # how far such plans were from measured epochs no time constant was fitted on, for each collation sized
            out["time_measured"] = {k: dict(HELD_OUT_EPOCH_ERRORS[k]) for k in out["time_hours"] if k in HELD_OUT_EPOCH_ERRORS}
        return out


def accumulation_steps(micro_batch: int, gpus: int, global_batch: int = GLOBAL_BATCH) -> int:
    """Gradient accumulation that reaches ``global_batch`` examples per optimizer step (at least 1)."""
    return max(1, math.ceil(global_batch / (micro_batch * gpus)))
