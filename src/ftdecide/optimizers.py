"""The optimizers ftdecide sizes: one record each, registered here, asked by the rest of the code.

An optimizer says:

- the bytes of state it keeps per trainable parameter (:meth:`Optimizer.state_bytes`), and per parameter of
  a DeepSpeed flat partition (``zero_state_bytes``, beside the fp32 master weight);
- whether those states live in CUDA managed memory (``paged``: bitsandbytes' paged optimizers), outside
  the allocator's peak;
- what its update costs in the step-time model (:mod:`ftdecide.core.throughput`): its update kernel's passes over
  4 bytes per trainable parameter, its Python loop per parameter tensor, and the kernels it launches per
  tensor, each a constant of :class:`ftdecide.core.calibration.Calibration` named here;
- the bytes it allocates for a moment during the step (:meth:`Optimizer.transient_bytes`: Adafactor's fp32
  copies);
- what transformers' Trainer (and axolotl and LLaMA-Factory, which take its names) calls it;
- why a strategy cannot run it (``fsdp2_problem``).

The estimator, the step-time model, the strategies, the recommender and the emitters ask the optimizer;
none compares its name. A new optimizer is one record here plus its measurements and tests.
"""

from __future__ import annotations

from .core.errors import preview

from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal, Optional

if TYPE_CHECKING:  # pragma: no cover - types only
    from .core.arch import Arch
    from .core.calibration import Calibration, KernelCounts
    from .core.config import TrainConfig

# How an optimizer's states are counted per trainable parameter:
#   adam        two states (exp_avg, exp_avg_sq) in the parameter's dtype (torch's AdamW)
#   adam_fp32   two fp32 states whatever the parameter's dtype (bitsandbytes' 32-bit optimizers)
#   blockwise8  bitsandbytes' 8-bit states: tensors of 4096 values and more quantized to 1 B per state plus
#               an fp32 scale per 256 values, smaller ones kept in fp32 (min_8bit_size)
#   factored    Adafactor: one fp32 row and one column vector per matrix, a full fp32 state otherwise
#   none        SGD without momentum
StateKind = Literal["adam", "adam_fp32", "blockwise8", "factored", "none"]

# bitsandbytes quantizes a tensor's states only from this many values on (Optimizer8bit's min_8bit_size)
BNB_MIN_8BIT_SIZE = 4096
BNB_BLOCK = 256
# bitsandbytes 0.50 pages a tensor's states only from this many values on (Optimizer8bit.get_state_buffer:
# ``p.numel() < 1e5`` gets a plain GPU tensor): LoRA's rank-16 matrices of 4096 columns stay in the allocator
BNB_MIN_PAGED_SIZE = 100_000


@dataclass(frozen=True)
class Optimizer:
    """One optimizer. Bytes per trainable parameter unless a name says otherwise."""

    name: str  # what --optimizer takes
    label: str  # how people write it
    trainer_name: str  # transformers' TrainingArguments.optim
    states: StateKind
    # bytes of optimizer state per parameter of a DeepSpeed flat partition, beside the fp32 master weight:
    # DeepSpeed hands the optimizer one flat tensor per group, which bitsandbytes quantizes whole and
    # Adafactor cannot factor
    zero_state_bytes: float
    paged: bool = False  # states in CUDA managed memory (bitsandbytes' paged optimizers)
    # StepConstants attributes: the update kernel's passes over 4 B per trainable parameter of a method
    # that trains the base (None: the passes over weights and states that every optimizer is counted with),
    # and the Python loop's milliseconds per parameter tensor
    update_passes: Optional[str] = None
    tensor_ms: Optional[str] = None
    tensor_kernels: Optional[str] = None  # KernelCounts attribute: kernels launched per parameter tensor
    fsdp2_problem: Optional[str] = None  # why FSDP2 cannot step it, measured (None: it can)
    # DDP of bf16 weights: the gradients' buckets already held in forward, seen with torch's fused AdamW only
    # (the 8-bit AdamW runs of bf16 weights, 3 up to Llama-3.1-8B, peaked without them)
    ddp_early_grads: bool = False
    # what ``ftdecide probe`` builds, as the trainers do: "module:Class" and its keywords beside lr
    probe_class: str = "torch.optim:AdamW"
    probe_kwargs: tuple[tuple[str, object], ...] = ()

    def state_bytes(self, trainable: int, param_bytes: float, mats: list[tuple[int, int, int]], fp32=()) -> float:
        """Bytes of state for ``trainable`` parameters of ``param_bytes`` each, of which ``mats`` are the
        (rows, cols, count) matrices (the rest: vectors); ``fp32``, matrices among them whose 8-bit states the
        trainer keeps in 32 bits (:meth:`ftdecide.trainers.Trainer.fp32_state_matrices`)."""
        if self.states == "none":
            return 0.0
        if self.states == "adam":
            return 2.0 * param_bytes * trainable
        if self.states == "adam_fp32":
            return 8.0 * trainable
        if self.states == "factored":
            return sum(4.0 * (r + c) * n for r, c, n in mats) + 4.0 * (trainable - sum(r * c * n for r, c, n in mats))
        big = sum(r * c * n for r, c, n in mats if r * c >= BNB_MIN_8BIT_SIZE)
        big -= sum(r * c * n for r, c, n in fp32 if r * c >= BNB_MIN_8BIT_SIZE)
        return big * (2.0 + 8.0 / BNB_BLOCK) + (trainable - big) * 8.0

    def paged_bytes(self, param_bytes: float, mats: list[tuple[int, int, int]], fp32=()) -> tuple[float, int]:
        """(bytes of state in CUDA managed memory, tensors whose states are there) for the (rows, cols,
        count) trainable matrices ``mats``: a paged optimizer's tensors of ``BNB_MIN_PAGED_SIZE`` values and
        more; (0, 0) for the others. Smaller tensors' states are plain GPU tensors, inside the peak."""
        if not self.paged:
            return 0.0, 0
        big = [(r, c, n) for r, c, n in mats if r * c >= BNB_MIN_PAGED_SIZE]
        values = sum(r * c * n for r, c, n in big)
        return self.state_bytes(values, param_bytes, big, fp32), sum(n for _, _, n in big)

    def transient_bytes(self, mats: list[tuple[int, int, int]], fp32_params: bool) -> float:
        """Bytes the step allocates for a moment, for the (rows, cols, count) trainable matrices ``mats``.
        transformers' Adafactor works in fp32 on one parameter at a time, and at its widest moment
        (``p_data_fp32.add_(-update)``) holds the fp32 gradient, the update, the fp32 copy of the parameter
        and the negated update of the largest: 4 x 4 B per value for bf16 parameters; fp32 parameters (and
        their gradients) need no copies, leaving 2 x 4 B. The others update in place."""
        if self.states != "factored":
            return 0.0
        return (8.0 if fp32_params else 16.0) * max(r * c for r, c, _ in mats)

    def update_traffic(self, trainable: int, cal: "Calibration") -> float:
        """Bytes the update kernel moves, as passes at the card's bandwidth (0 for the fused kernels)."""
        return getattr(cal.step, self.update_passes) * 4.0 * trainable if self.update_passes else 0.0

    def host_ms(self, tensors: int, paged_tensors: int, managed_bytes: float, cal: "Calibration") -> float:
        """Milliseconds the host spends per step beyond launching kernels: the Python loop over ``tensors``
        parameter tensors and, for a paged optimizer, prefetching the states of ``paged_tensors`` of them,
        ``managed_bytes`` (bytes) in all, into the GPU."""
        ms = getattr(cal.step, self.tensor_ms) * tensors if self.tensor_ms else 0.0
        if self.paged:
            ms += cal.step.paged_tensor_ms * paged_tensors + cal.step.paged_ms_per_gb * managed_bytes / 1e9
        return ms

    def kernels(self, tensors: int, kc: "KernelCounts") -> float:
        """Kernels the update launches beyond the fixed ones, for ``tensors`` parameter tensors."""
        return getattr(kc, self.tensor_kernels) * tensors if self.tensor_kernels else 0.0

    @property
    def package(self) -> str:
        """The top-level package the probe imports it from (torch, bitsandbytes, transformers)."""
        return self.probe_class.split(":", 1)[0].split(".", 1)[0]


def _bnb8_fsdp2(name: str) -> str:
    # measured under the fake process group (data/scaleout/h200_fsdp_fake_*)
    return (
        f"bitsandbytes' 8-bit AdamW ({name}) cannot step FSDP2's sharded (DTensor) parameters (measured): "
        "use adamw with fsdp, or ddp or a ZeRO stage"
    )


_BNB8_ZERO = 2.0 + 8.0 / BNB_BLOCK

_REGISTRY: dict[str, Optimizer] = {
    o.name: o
    for o in (
        Optimizer(
            "adamw",
            "AdamW (torch, fused)",
            "adamw_torch_fused",
            "adam",
            zero_state_bytes=8.0,
            ddp_early_grads=True,
            probe_kwargs=(("fused", True),),
        ),
        Optimizer(
            "adamw8bit",
            "8-bit AdamW (bitsandbytes)",
            "adamw_bnb_8bit",
            "blockwise8",
            zero_state_bytes=_BNB8_ZERO,
            update_passes="k_8bit",
            tensor_ms="bnb_tensor_ms",
            fsdp2_problem=_bnb8_fsdp2("adamw8bit"),
            probe_class="bitsandbytes.optim:AdamW8bit",
        ),
        Optimizer(
            "sgd",
            "SGD",
            "sgd",
            "none",
            zero_state_bytes=0.0,
            tensor_ms="sgd_tensor_ms",
            probe_class="torch.optim:SGD",
            probe_kwargs=(("momentum", 0.0),),
        ),
        Optimizer(
            "adafactor",
            "Adafactor (transformers)",
            "adafactor",
            "factored",
            zero_state_bytes=4.0,
            tensor_kernels="adafactor_tensor",
            probe_class="transformers.optimization:Adafactor",
            probe_kwargs=(("relative_step", False), ("scale_parameter", False), ("warmup_init", False)),
        ),
        Optimizer(
            "paged_adamw_8bit",
            "paged 8-bit AdamW (bitsandbytes)",
            "paged_adamw_8bit",
            "blockwise8",
            zero_state_bytes=_BNB8_ZERO,
            paged=True,
            update_passes="k_8bit",
            tensor_ms="bnb_tensor_ms",
            fsdp2_problem=_bnb8_fsdp2("paged_adamw_8bit"),
            probe_class="bitsandbytes.optim:PagedAdamW8bit",
        ),
        Optimizer(
            "paged_adamw_32bit",
            "paged 32-bit AdamW (bitsandbytes)",
            "paged_adamw_32bit",
            "adam_fp32",
            zero_state_bytes=8.0,
            paged=True,
            tensor_ms="bnb_tensor_ms",
            probe_class="bitsandbytes.optim:PagedAdamW32bit",
        ),
    )
}


# What recommend suggests when a plan lacks the memory of its optimizer states: 8-bit states on the GPU. The
# paged optimizers leave the peak too, but where the GPU is full their states cross the host link every step
# (throughput.paging_seconds: modelled, not measured), which makes them a poor first suggestion.
MEMORY_LEVER = "adamw8bit"


def names() -> list[str]:
    """Every optimizer's ``--optimizer`` name, in the order help texts list them."""
    return list(_REGISTRY)


def get(name: str) -> Optimizer:
    """The registered optimizer ``name`` (a KeyError for an unknown one: TrainConfig validates names)."""
    return _REGISTRY[name]


def known(name: str) -> str:
    """``name`` if an optimizer has it; a ValueError naming the choices if none has (pydantic validators)."""
    if name not in _REGISTRY:
        raise ValueError(f"unknown optimizer {preview(name)} (choose from {help_text()})")
    return name


def help_text() -> str:
    """The names, comma-separated, for the CLI's help."""
    return ", ".join(names())


def optimizer_bytes(arch: "Arch", cfg: "TrainConfig", trainable: int, param_bytes: float, mods: tuple[str, ...]) -> float:
    """Bytes of optimizer state for ``cfg``'s ``trainable`` parameters of ``param_bytes`` each."""
    return get(cfg.optimizer).state_bytes(trainable, param_bytes, cfg.method_spec.trainable_matrices(arch, cfg, mods))
