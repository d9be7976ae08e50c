"""Liger kernel (liger-kernel 0.8.5): fused linear cross-entropy, RMSNorm, SwiGLU and RoPE, applied as
transformers' Trainer applies them (``use_liger_kernel=True``: ``_apply_liger_kernel_to_instance``). Only
the model types of liger-kernel's ``MODEL_TYPE_TO_APPLY_LIGER_FN`` are patched. Under TRL 1.16 only its
layer kernels run: the fused LM head stays TRL's (:mod:`ftdecide.trainers.trl`). Paged optimizers, a lever
of the optimizer, are :mod:`ftdecide.optimizers` records.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Optional

from . import Lever, register

if TYPE_CHECKING:  # pragma: no cover - types only
    from ..core.arch import Arch

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


# axolotl's Liger plugin and the flags that switch on what ftdecide sized (axolotl docs, "Liger Kernel")
AXOLOTL_LIGER = {
    "plugins": ["axolotl.integrations.liger.LigerPlugin"],
    "liger_rope": True,
    "liger_rms_norm": True,
    "liger_glu_activation": True,
    "liger_fused_linear_cross_entropy": True,
}
_SIZED = "sized with liger-kernel's fused cross-entropy, RMSNorm, SwiGLU, RoPE"


class Liger(Lever):
    def problem(self, arch: "Arch") -> Optional[str]:
        if arch.family not in LIGER_MODEL_TYPES:
            return (
                f"Liger kernel does not patch {arch.name} (model_type '{arch.family}'); it patches "
                f"{', '.join(LIGER_MODEL_TYPES)} (liger-kernel 0.8.5)"
            )
        return None


LEVER = register(
    Liger(
        name="liger",
        flag="--liger",
        label="Liger kernel",
        switch_note="liger-kernel: no logits held",
        header_note="Liger kernel",
        rule_name="liger",
        cheap_switch=True,
        trl_args=(("use_liger_kernel", True, _SIZED),),
        hf_args=(("use_liger_kernel", True, _SIZED),),
        axolotl_keys=AXOLOTL_LIGER,
        llamafactory_keys={"enable_liger_kernel": True},
        # Fitted by least squares on the 20 Liger runs of data/measurements/h200_peft_levers_2026-11-29.jsonl
        # (python benchmarks/fit_levers.py liger liger_layer_h liger_layer_i liger_saved_h liger_fwd_h liger_bwd_h):
        # bytes a layer saves less with Liger's RMSNorm, SwiGLU and RoPE; then, per hidden value per token, what
        # the fused linear cross-entropy keeps until backward (the input's gradient, computed in forward, and
        # the shifted hidden states), what it holds for a moment in forward (a chunk of logits, about tokens x
        # hidden values, and its gradient) and backward's gradients of the hidden states beyond the recomputed
        # layer. The per-token constants are larger than the tensors named: they also carry what the eager
        # stack's logits hid in the fits without Liger.
        constants=(
            ("liger_layer_h", 4.52),  # bytes per hidden value a layer saves less (RMSNorm keeps no fp32 copies)
            ("liger_layer_i", 2.51),  # bytes per MLP value a layer saves less (SwiGLU recomputes the activation)
            ("liger_saved_h", 24.55),
            ("liger_fwd_h", 26.89),
            ("liger_bwd_h", 51.58),  # backward's gradients of the hidden states beyond the recomputed layer
            # With a tied head, full fine-tuning under Liger holds the head's gradient (computed in forward) until
            # the embedding's is added at the end of backward: the share of it held beyond the gradients, fitted
            # on the 7 runs that do this (4 configurations): bf16 Llama and Qwen needed none of it, Gemma 2 and
            # fp32 master weights all of it; 0.5 (from 1.0, read from the structure) brings the Liger median
            # from 3.3% to 2.8% and leaves the worst under-estimate at -2.3% (python benchmarks/accuracy.py)
            ("liger_tied_head_grad", 0.5),
        ),
    )
)
