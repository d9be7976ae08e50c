"""Distribution strategies: one module each, registered here, asked by the rest of the code.

A strategy says, for a configuration on ``world`` GPUs (``gpus`` per node x ``nodes``):

- how the model states divide over the GPUs and what each GPU holds beyond its share (:meth:`Strategy.per_gpu`:
  bytes of weights, gradients and optimizer states, and the buffers of the strategy itself: DDP's gradient
  buckets, FSDP's gathered layers, ZeRO's communication buckets);
- the bytes each GPU sends per optimizer step and per micro-batch, by collective (:meth:`Strategy.traffic`),
  and how much of that hides behind the kernels (``overlap``);
- its launch configuration for accelerate and DeepSpeed (:meth:`Strategy.accelerate_config`,
  :meth:`Strategy.deepspeed_config`);
- whether its memory figures are measured or modelled (``measured``).

The estimator, the step-time model, the recommender and the emitters ask the strategy; none names one.
A new strategy is one module here plus its data and tests.
"""

from __future__ import annotations

from ..core.errors import preview

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Optional

from ..core.plugins import import_submodules

if TYPE_CHECKING:  # pragma: no cover - types only
    from ..core.arch import Arch
    from ..core.calibration import Calibration
    from ..core.config import TrainConfig


@dataclass(frozen=True)
class Shares:
    """What one GPU holds of the model states, in bytes, and the strategy's own buffers."""

    weights: float
    grads: float
    optimizer: float
    buffers: float = 0.0  # the strategy's own: buckets, gathered layers in flight
    # held through forward and backward only, released before the optimizer step (ZeRO-3's live parameters)
    compute_buffers: float = 0.0
    # held through backward, not in forward (FSDP2's layers gathered again for backward and the unsharded
    # gradients waiting for their reduce-scatter)
    backward_buffers: float = 0.0
    # held at the end of backward only, beside every gradient (FSDP2's root gradients before their reduce)
    end_buffers: float = 0.0
    # held in forward only, where the loss peaks (the unit accelerate gathers for the head under FSDP2)
    forward_buffers: float = 0.0
    # held in forward between decoder layers, beside what they saved, not at the loss (FSDP2 over a frozen base under
    # TRL's fused head: the layers in flight, traced)
    layer_fwd_buffers: float = 0.0
    # held at the start of forward, before any layer has saved much, beside the shards and the accumulated gradients
    # (FSDP2 over a frozen base under TRL's fused head, a tied head: its unit twice and a decoder layer, traced)
    early_buffers: float = 0.0
    # held when training starts, before the strategy shards what was loaded (FSDP1: rank 0 holds the whole 4-bit model)
    start: float = 0.0
    # the loss's backward and the recompute of a layer are two moments, the larger counts (FSDP2 over a frozen base,
    # traced: the loss's tile and gradients are freed before the last layer is recomputed)
    loss_apart: bool = False
    notes: tuple[str, ...] = ()


@dataclass(frozen=True)
class Traffic:
    """Bytes one GPU sends per optimizer step (``per_step``: gradient synchronisation, the update's
    all-gather) and per micro-batch (``per_micro_batch``: parameters gathered for forward and backward),
    by collective, ring algorithms counted as NCCL's bus bytes."""

    per_step: dict[str, float] = field(default_factory=dict)
    per_micro_batch: dict[str, float] = field(default_factory=dict)


@dataclass(frozen=True)
class Strategy:
    """A way to train on several GPUs. Bytes unless a name says otherwise."""

    name: str
    label: str
    summary: str
    measured: bool  # memory figures fitted to measured runs (True) or modelled from the engine's code
    basis: str  # what the figures rest on, said with every plan that uses the strategy
    overlap: float  # share of the communication hidden behind the kernels (torch.profiler on real 2-GPU runs)
    engine: str = "torch"  # "torch" (accelerate's FSDP/DDP) or "deepspeed"
    shards_parameters: bool = False  # whether --offload-params means anything
    probed: bool = False  # ftdecide probe --gpus N measures it (on N local GPUs, or under torch's fake process group)
    # the function of ftdecide.probe.sharded that measures it as rank 0 of N GPUs ("" where the probe does not)
    probe_runner: str = ""
    single_gpu: bool = False  # the whole model on one GPU: no strategy at all, said of no plan
    fake_group: bool = True  # whether torch's fake process group can run it (DDP's reducer cannot)
    # seconds per decoder layer per micro-batch that the strategy's hooks cost beyond its transfers (FSDP2's
    # all-gather copy-in and copy-out, DeepSpeed's parameter fetch and release), fitted to timed 2-GPU runs
    layer_s: float = 0.0
    # the engine computes with bf16 weights and no autocast (FSDP2's bf16 parameter policy, DeepSpeed's
    # bf16 engine): measured, the mixed variant's activation terms were up to 24% over such runs
    bf16_engine: bool = False
    # whether the per-layer excess a trainer's checkpointed steps were fitted with on one GPU (TRL's fused_head_gc_h)
    # holds under it: every checkpointed FSDP2 and FSDP1 launch traced at its backward peak (data/traces/, 14 launches)
    # holds each layer's input at 2 B per hidden value (1.87-1.95 over all layers, the last one's being recomputed) and
    # nothing per layer beyond it
    trainer_gc_excess: bool = True
    # accelerate's launch of it upcasts what trains to fp32 when mixed precision is on (FSDP2: fsdp2_prepare_model,
    # accelerate 1.15): a pure-bf16 plan that trains the base is emitted without autocast, so it runs as sized
    upcasts_trained: bool = False
    # the trainers whose emitted launch of it was measured as rank 0 of N (benchmarks/trainer_runs.py; data/sharded_trainers/)
    launch_measured: tuple[str, ...] = ()
    # the published recipe whose offload of the parameters the plan switches on where nothing else fits ("": offered
    # only, as ZeRO-Infinity is: every step streams the parameters over the host link)
    offload_recipe: str = ""
    # its own fitted constants, beside the terms that read them: (name, value); :class:`ftdecide.core.calibration.Calibration`
    # assembles every unit's and the models read them by name (``cal.<name>``)
    constants: tuple[tuple[str, float], ...] = ()

    def per_gpu(self, arch: "Arch", cfg: "TrainConfig", weights: float, grads: float, optimizer: float, cal: "Calibration") -> Shares:
        """The share of one GPU of ``weights``, ``grads`` and ``optimizer`` (the whole model's bytes as one
        GPU would hold them), plus the strategy's buffers."""
        raise NotImplementedError

    def host_bytes(self, arch: "Arch", cfg: "TrainConfig", weights: float, grads: float, optimizer: float, cal: "Calibration") -> float:
        """Bytes of host memory one GPU's offload keeps (parameters, gradients, optimizer states): what its share
        would hold on the GPU without the offload, less what it holds with it. A lower bound: the engines' own
        host copies (DeepSpeed's fp32 gradient buffers) come on top."""
        if not (cfg.offload_params or cfg.offload_optimizer):
            return 0.0
        on = self.per_gpu(arch, cfg, weights, grads, optimizer, cal)
        kept_on_gpu = cfg.model_copy(update={"offload_params": False, "offload_optimizer": False})
        off = self.per_gpu(arch, kept_on_gpu, weights, grads, optimizer, cal)
        kept = on.weights + on.grads + (0.0 if cfg.offload_optimizer else on.optimizer)
        return max(0.0, off.weights + off.grads + off.optimizer - kept)

    def load_on_cpu(self, arch: "Arch", cfg: "TrainConfig") -> bool:
        """Whether the emitted launch loads (and quantizes) the base in host memory, ``device_map={"": "cpu"}``,
        rather than on the GPU: where the strategy's start is sized so."""
        return False

    def plan_notes(self, arch: "Arch", cfg: "TrainConfig") -> list[str]:
        """What a plan on several GPUs rests on: the strategy's basis, and what was not measured as launched."""
        notes: list[str] = []
        if cfg.world_size > 1 or not self.single_gpu:
            notes.append(f"{self.label}: {self.basis}")
            if not cfg.trainer_spec.sharded_measured and cfg.trainer_spec.name not in self.launch_measured:
                notes.append(
                    f"{cfg.trainer_spec.label} on several GPUs: the strategy's terms were measured with the probe's loop; "
                    "the trainer's loss, preparation and accumulation are applied to them, not measured as launched"
                )
            if arch.is_moe:
                notes.append(
                    f"{arch.name} on several GPUs: its fused experts (and peft's wrapper of them) under {self.label} were not "
                    "measured; the dense families' sharding terms are applied to them"
                )
        return notes

    def accumulated_grad_bytes(self, arch: "Arch", cfg: "TrainConfig", trainable: int, grads: float) -> float:
        """Bytes of gradients one GPU holds from a step's earlier micro-batches while the later ones run (the
        trainers accumulate without syncing until the last): ``grads``, its own share, by default."""
        return grads

    def traffic(self, arch: "Arch", cfg: "TrainConfig") -> Traffic:
        """Bytes one GPU sends, by collective."""
        raise NotImplementedError

    def hook_seconds(self, arch: "Arch", cfg: "TrainConfig") -> float:
        """Seconds per micro-batch the strategy's hooks cost beyond their transfers: ``layer_s`` per decoder
        layer on several GPUs."""
        return self.layer_s * arch.num_layers if cfg.world_size > 1 else 0.0

    def recompute(self, cfg: "TrainConfig", fitted: float, cal: "Calibration") -> float:
        """Layers' worth of activations a checkpointed layer's recompute holds at the backward peak (per token, times
        one layer's bytes): the method's ``fitted`` coefficient, unless the strategy's launch was traced otherwise."""
        return fitted

    def compute_variant(self, cfg: "TrainConfig") -> str:
        """The method variant whose activation coefficients hold under this strategy: the configuration's
        own where the engine computes as one GPU would (autocast over fp32 weights for mixed precision),
        the method's :meth:`~ftdecide.methods.Method.bf16_engine_variant` where ``bf16_engine`` or where the
        trainer leaves a 4-bit base unprepared (no fp32 embeddings, norms or head: TRL)."""
        if self.bf16_engine or (cfg.method_spec.quantized_base and not cfg.kbit_prepared):
            # a 4-bit base without k-bit preparation (TRL) keeps no fp32 parts either
            return cfg.method_spec.bf16_engine_variant()
        return cfg.variant

    def problem(self, cfg: "TrainConfig") -> Optional[str]:
        """Why ``cfg`` cannot run with this strategy (one line), or None."""
        if cfg.offload_params and not self.shards_parameters:
            return f"--offload-params needs sharded parameters: {self.label} keeps a full copy on every GPU (use fsdp or zero3)"
        if cfg.offload_optimizer and self.engine != "deepspeed":
            # no emitted trainer offloads optimizer states outside DeepSpeed: a plan sized without them on the
            # GPU would be emitted with them there
            return (
                f"--offload-optimizer: {self.label} keeps the optimizer states on the GPU in what ftdecide emits "
                "(use zero1, zero2 or zero3)"
            )
        return None

    def launch_problem(self, arch: "Arch", cfg: "TrainConfig") -> Optional[str]:
        """What was seen to break when the emitted launch config ran this plan (one line), or None. The
        estimate stands and says it; ``auto`` passes over a strategy with a launch problem when another fits."""
        return None

    def accelerate_config(self, world: int, nodes: int, layer_cls: str, mixed: bool, offload_params: bool) -> dict:
        """An accelerate config (the YAML ``accelerate launch --config_file`` reads)."""
        raise NotImplementedError

    def trainer_args(self, layer_cls: str, offload_params: bool) -> dict:
        """Keyword arguments of transformers' ``TrainingArguments`` (TRL's ``SFTConfig``) that launch it."""
        return {}

    def axolotl_keys(self, layer_cls: str, offload_params: bool) -> dict:
        """axolotl's config keys that launch it."""
        return {}

    def llamafactory_keys(self) -> dict:
        """LLaMA-Factory's config keys that launch it (FSDP goes through accelerate's config instead)."""
        return {}

    def deepspeed_config(
        self, arch: "Arch", micro_batch: int, accumulation: int, bf16: bool, offload_optimizer: bool, offload_params: bool
    ) -> Optional[dict]:
        """A DeepSpeed ``ds_config.json``, or None where DeepSpeed does not run the strategy."""
        return None


_REGISTRY: dict[str, Strategy] = {}
_LOADED = False


def register(strategy: Strategy) -> Strategy:
    if strategy.name in _REGISTRY:
        raise RuntimeError(f"strategy '{strategy.name}' registered twice")
    _REGISTRY[strategy.name] = strategy
    return strategy


def _load() -> None:
    global _LOADED
    if not _LOADED:
        _LOADED = True
        import_submodules(__name__, __path__)


def all_strategies() -> tuple[Strategy, ...]:
    """Every registered strategy, ``single`` included."""
    _load()
    return tuple(_REGISTRY.values())


def names() -> tuple[str, ...]:
    """Every strategy one can ask for by name (``single`` is implied by one GPU)."""
    _load()
    return tuple(n for n in ("ddp", "fsdp", "zero1", "zero2", "zero3") if n in _REGISTRY) + tuple(
        sorted(n for n in _REGISTRY if n not in ("single", "ddp", "fsdp", "zero1", "zero2", "zero3"))
    )


# What --strategy takes besides a strategy's name: the cheapest that fits (recommend, fit), or
# AUTO_DEFAULT where no GPU memory is known (estimate)
AUTO = "auto"


def is_auto(name: str) -> bool:
    return name == AUTO


def known(name: str) -> str:
    """``name`` if ``--strategy`` takes it (``auto`` or a strategy's name); a ValueError naming the choices if
    not (pydantic validators)."""
    if not is_auto(name) and name not in names():
        raise ValueError(f"unknown strategy {preview(name)} (choose from auto, {', '.join(names())})")
    return name


def get(name: str) -> Strategy:
    _load()
    return _REGISTRY[name]


# What ``--strategy auto`` means where no GPU memory is known (``estimate``): FSDP2, what the emitters
# launched before strategies were units. Where the GPU is known (recommend, fit), auto is the fastest
# strategy that fits.
AUTO_DEFAULT = "fsdp"


def resolve(cfg: "TrainConfig") -> Strategy:
    """The strategy ``cfg`` trains with: the named one (ZeRO-3 with offload on one GPU is a real plan), or
    for ``auto`` one GPU alone, or :data:`AUTO_DEFAULT` on several."""
    if not is_auto(cfg.strategy):
        return get(cfg.strategy)
    return get("single" if cfg.world_size == 1 else AUTO_DEFAULT)


def ring(world: int) -> float:
    """Bus bytes per payload byte of a ring all-gather or reduce-scatter over ``world`` GPUs ((N-1)/N);
    an all-reduce is twice that."""
    return (world - 1) / world if world > 1 else 0.0
