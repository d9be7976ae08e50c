"""Memory levers: switches of the training stack that trade speed for memory, one module each, registered
here and asked by the rest of the code (no module outside this package compares a lever's name: a test
checks).

A lever declares: the :class:`~ftdecide.core.config.TrainConfig` and scenario field that switches it on
(``name``), the name rules read its figures by (``rule_name``: ``fits_liger.M``, ``memory_liger.M``), its
command-line flag, why it cannot apply to a model (:meth:`Lever.problem`), whether it is offered as a
switch when nothing fits, and the keys that switch it on in each trainer's file (``None`` where the
trainer lacks it: that emitter refuses the plan in one line). Its memory terms are the estimator's
(``core.loss._loss_terms`` and the layer and offload terms), their constants its own (``constants``), its
step-time terms the throughput model's.

Adding a lever: one module here that calls :func:`register`, its field on ``TrainConfig`` and
``Scenario``, its terms in the estimator and the step-time model, its runs in ``data/measurements/``,
and a line of the tests' table (``tests/test_peft_family.py``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Optional

from ..core.plugins import Registry

if TYPE_CHECKING:  # pragma: no cover - types only
    from ..core.arch import Arch


@dataclass(frozen=True)
class Lever:
    name: str  # the TrainConfig and Scenario field
    flag: str  # the command-line flag
    label: str
    switch_note: str  # said when it makes a method fit: "(liger-kernel: no logits held)"
    header_note: str  # said in every emitted file's header when on
    rule_name: str = ""  # rules read fits_<rule_name>.M and memory_<rule_name>.M ("" where rules do not weigh it)
    cheap_switch: bool = False  # offered on the user's own GPUs when nothing fits
    # the keys that switch it on, per trainer file: (key, value, comment); None where the trainer lacks it
    trl_args: Optional[tuple] = ()
    hf_args: Optional[tuple] = ()
    axolotl_keys: Optional[dict] = field(default_factory=dict)
    llamafactory_keys: Optional[dict] = field(default_factory=dict)
    axolotl_needs_checkpointing: bool = False  # axolotl runs it only with gradient checkpointing
    # its own fitted constants, beside the terms that read them: (name, value); :class:`ftdecide.core.calibration.Calibration`
    # assembles every unit's and the models read them by name (``cal.<name>``)
    constants: tuple[tuple[str, float], ...] = ()

    def problem(self, arch: "Arch") -> Optional[str]:
        """Why the lever cannot be switched on for ``arch`` (one line), or None."""
        return None


_UNITS = Registry(__name__, __path__)
register = _UNITS.register
all_levers = _UNITS.all
names = _UNITS.names
get = _UNITS.get


def switched_on(cfg) -> tuple[Lever, ...]:
    """The levers a configuration or scenario switches on."""
    return tuple(lv for lv in all_levers() if getattr(cfg, lv.name, False))


def weighed() -> dict[str, str]:
    """{rule name: field} of the levers rules weigh for a method that misses the GPU."""
    return {lv.rule_name: lv.name for lv in all_levers() if lv.rule_name}
