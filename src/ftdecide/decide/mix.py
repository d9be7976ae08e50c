"""Sampling weights for multi-task fine-tuning: proportional, temperature-scaled and capped.

Task i with N_i examples is drawn with probability proportional to ``min(N_i, cap) ** T`` (the seeds'
temperature sampling, T = 0.7 by default: T = 1 is proportional, T = 0 uniform; ``cap`` is T5's
examples-proportional mixing limit). No task is repeated more than ``max_upsample`` times per epoch:
the excess weight goes to the other tasks in proportion. An epoch draws ``sum(N_i)`` examples unless
``epoch_size`` says otherwise; a task's effective examples per epoch are its weight times that.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

from ..core.errors import InputError, preview


@dataclass(frozen=True)
class TaskMix:
    task: str
    examples: int
    weight: float  # share of the draws
    per_epoch: float  # examples drawn from the task per epoch
    repeats: float  # per_epoch / examples: above 1 the task is upsampled, below 1 subsampled


# A mixture of more tasks than this is not a table anyone reads, and drawing 100,000 rows took 53 s.
MAX_TASKS = 1000


def parse_tasks(items: list[str]) -> dict[str, int]:
    """``["code=20000", "chat=5000"]`` -> ``{"code": 20000, "chat": 5000}``; InputError names a bad item."""
    out: dict[str, int] = {}
    if not items:
        raise InputError("give tasks as TASK=N, e.g. 'ftdecide mix code=20000 chat=5000'")
    if len(items) > MAX_TASKS:
        raise InputError(f"{len(items):,} tasks: at most {MAX_TASKS:,} in one mixture")
    for item in items:
        name, sep, n = item.partition("=")
        name = name.strip()
        if not sep or not name:
            raise InputError(f"{preview(item)}: expected TASK=N (a task name, '=', its number of examples)")
        try:
            count = int(n.strip().replace("_", ""))
        except ValueError:
            raise InputError(f"'{item}': the number of examples must be a whole number") from None
        if not 0 < count <= 10**12:
            raise InputError(f"'{item}': the number of examples must be between 1 and 10^12")
        if name in out:
            raise InputError(f"task '{name}' is given twice")
        out[name] = count
    return out


def mix(
    tasks: dict[str, int], temperature: float = 0.7, cap: Optional[int] = None, max_upsample: float = 10.0, epoch_size: Optional[int] = None
) -> list[TaskMix]:
    """Weights and effective examples per epoch of each task (see the module docstring)."""
    if not 0.0 <= temperature <= 1.0:
        raise InputError(f"temperature {temperature:g}: must be between 0 (uniform) and 1 (proportional)")
    if cap is not None and cap < 1:
        raise InputError("cap must be at least 1")
    if not max_upsample >= 1.0 or max_upsample != max_upsample or max_upsample == float("inf"):
        raise InputError("max-upsample must be a finite number of at least 1")
    if epoch_size is not None and not 0 < epoch_size <= 10**13:
        raise InputError("epoch-size must be between 1 and 10^13")
    size = epoch_size or sum(tasks.values())
    if size > max_upsample * sum(tasks.values()):
        # even with every task at its cap the epoch cannot be filled: more repeats than allowed
        raise InputError(
            f"epoch-size {size:,} needs every task repeated more than max-upsample ({max_upsample:g}x) times: "
            f"at most {int(max_upsample * sum(tasks.values())):,} examples per epoch"
        )
    raw = {t: float(min(n, cap) if cap else n) ** temperature for t, n in tasks.items()}
    total = sum(raw.values())
    w = {t: v / total for t, v in raw.items()}
    # Cap upsampling: fix capped tasks at their limit and spread the rest over the others, until stable.
    limit = {t: max_upsample * n / size for t, n in tasks.items()}
    fixed: dict[str, float] = {}
    while True:
        over = [t for t in w if t not in fixed and w[t] > limit[t] + 1e-15]
        if not over:
            break
        for t in over:
            fixed[t] = limit[t]
        free = [t for t in w if t not in fixed]
        left = 1.0 - sum(fixed.values())
        if not free or left <= 0:
            break
        base = sum(raw[t] for t in free)
        w = {**{t: raw[t] / base * left for t in free}, **fixed}
    s = sum(w.values())
    w = {t: v / s for t, v in w.items()}  # rounding only: the epoch fits under the caps (checked above)
    return [TaskMix(t, n, w[t], w[t] * size, w[t] * size / n) for t, n in tasks.items()]
