"""LoRA: a frozen bf16 base with trainable low-rank adapters (peft, fp32 adapter weights).

Each targeted linear of ``in x out`` gains ``r x (in + out)`` parameters (A and B), as peft counts them.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..errors import InputError
from . import EmitKeys, Method, register


@dataclass(frozen=True)
class LoraFamily(Method):
    """LoRA-style adapters on the linear modules that ``lora_targets`` selects; the base may be 4-bit."""

    def adapted_modules(self, arch, cfg) -> tuple[str, ...]:
        mods = arch.resolve_targets(cfg.lora_targets)
        if cfg.lora_rank > arch.max_lora_rank(mods):
            raise InputError(
                f"LoRA rank {cfg.lora_rank} exceeds the smallest targeted layer dimension ({arch.max_lora_rank(mods)}) of {arch.name}"
            )
        return mods

    def adapter_params(self, arch, cfg, mods) -> int:
        return arch.lora_params(cfg.lora_rank, mods)


METHOD = register(
    LoraFamily(
        name="lora",
        label="LoRA",
        summary="low-rank adapters on a frozen bf16 base",
        fallback_order=0,
        display_order=1,
        adapter="lora",
        emit_keys=EmitKeys(axolotl_adapter="lora", llamafactory_type="lora"),
    )
)
