"""The largest micro-batch and sequence length that fit a GPU, per method: search over the estimator.

Pure: binary searches over :meth:`ftdecide.core.estimator.MemoryModel.required_gib`, which grows with
sequence length and micro-batch (a property the tests check), so each answer is exact for the model:
the largest value whose ``required_gib`` is at most the GPU's memory (GiB = 2**30 bytes).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Optional

from .. import methods
from ..core.arch import Arch
from ..core.estimator import TrainConfig, memory_model

MAX_BATCH = 4096
MAX_SEQ = 1_048_576


def _largest(ok: Callable[[int], bool], hi: int) -> int:
    """Largest n in 1..hi with ok(n), for ok true up to some point and false after; 0 if ok(1) fails."""
    if not ok(1):
        return 0
    lo = 1
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if ok(mid):
            lo = mid
        else:
            hi = mid - 1
    return lo


@dataclass(frozen=True)
class FitRow:
    """For one method and checkpointing setting: the largest micro-batch at ``seq_len``, and the longest
    sequence at micro-batch 1 (0 where not even 1 fits); ``required_gib`` of micro-batch 1 at seq_len."""

    method: str
    gradient_checkpointing: bool
    max_micro_batch: int
    max_seq_len: int
    required_gib_at_1: float


def fit_table(
    arch: Arch, memory_gib: float, seq_len: int, base: Optional[TrainConfig] = None, method_names: Optional[tuple[str, ...]] = None
) -> list[FitRow]:
    """Per method, with and without gradient checkpointing, what fits in ``memory_gib`` GiB.

    ``base`` carries everything else (optimizer, precision, LoRA rank and targets, GPUs for sharding).
    ``method_names`` default to every registered method. Raises InputError where the LoRA shape does
    not fit the architecture."""
    base = base or TrainConfig()
    rows = []
    for method in method_names or methods.names():
        mm = memory_model(arch, base.model_copy(update={"method": method}))
        for gc in (True, False) if methods.get(method).supports_checkpointing else (False,):

            def batch_ok(b: int, gc=gc, mm=mm) -> bool:
                return mm.required_gib(seq_len, b, gc) <= memory_gib

            def seq_ok(s: int, gc=gc, mm=mm) -> bool:
                return mm.required_gib(s, 1, gc) <= memory_gib

            rows.append(
                FitRow(method, gc, _largest(batch_ok, MAX_BATCH), _largest(seq_ok, MAX_SEQ), round(mm.required_gib(seq_len, 1, gc), 3))
            )
    return rows
