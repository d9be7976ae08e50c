"""The memory levers of the training stack that ftdecide sizes: what each needs, as data.

The levers' memory terms live in the estimator (:mod:`ftdecide.estimator`, constants in
:class:`ftdecide.calibration.Calibration`), their step-time terms in :mod:`ftdecide.throughput`, and
their trainer keys in :mod:`ftdecide.emit`; this module says where each can be switched on.

- ``liger``: liger-kernel's fused linear cross-entropy, RMSNorm, SwiGLU and RoPE, applied as
  transformers' Trainer applies them (``use_liger_kernel=True``: ``_apply_liger_kernel_to_instance``).
  Only the model types of liger-kernel's ``MODEL_TYPE_TO_APPLY_LIGER_FN`` are patched.
- ``offload_activations``: TRL's ``activation_offloading`` (torchtune's ``OffloadActivations``): every
  saved tensor of 1 KiB and more goes to pinned CPU memory during forward and comes back for backward.
- paged optimizers (``paged_adamw_8bit``, ``paged_adamw_32bit``): bitsandbytes keeps the optimizer
  states in CUDA managed memory, which the driver pages to CPU memory when the GPU runs short.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Optional

if TYPE_CHECKING:  # pragma: no cover - types only
    from .arch import Arch

# liger-kernel 0.8.5, liger_kernel/transformers/monkey_patch.py: MODEL_TYPE_TO_APPLY_LIGER_FN (the
# text models among its keys; transformers' model_type).
LIGER_MODEL_TYPES = (
    "deepseek_v2",
    "deepseek_v3",
    "gemma",
    "gemma2",
    "gemma3_text",
    "glm4",
    "gpt_oss",
    "granite",
    "llama",
    "llama4_text",
    "ministral",
    "mistral",
    "mixtral",
    "nemotron",
    "olmo2",
    "olmo3",
    "phi3",
    "qwen2",
    "qwen3",
    "qwen3_moe",
    "qwen3_next",
    "smollm3",
)


def liger_problem(arch: "Arch") -> Optional[str]:
    """Why Liger cannot be switched on for ``arch`` (one line), or None."""
    if arch.family not in LIGER_MODEL_TYPES:
        return (
            f"Liger kernel does not patch {arch.name} (model_type '{arch.family}'); it patches "
            f"{', '.join(LIGER_MODEL_TYPES)} (liger-kernel 0.8.5)"
        )
    return None
