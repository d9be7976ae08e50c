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
        # What a layer saves less, from the kernels' code (read, not fitted; 2026-12-06, seventh session): Liger's
        # RMSNorm saves its bf16 input and one fp32 rstd per row, where the eager module saves an fp32 copy of its
        # input (2 B per hidden value more, per norm) and, where its weight trains, the bf16 normalised input that
        # weight's gradient needs (2 B more); Liger's SwiGLU saves the gate and up projections and recomputes the
        # activation, which the eager MLP saves (2 B per MLP value). These were fitted before, with the loss terms
        # below, on the probe loop's Liger runs (4.52 B per hidden value a layer, 2.51 per MLP value). The loop's
        # 24 Liger runs: 2.8%, -2.3% / +7.5% then, 2.7%, -2.3% / +8.4% now; its 8 held out: -1.0% / +9.8% then,
        # -0.8% / +5.8% now; the TRL and hf runs without checkpointing: -7.7% / +4.6% then, -2.1% / +7.8% now.
        # Then, fitted by least squares with the layer terms of then on the 20 Liger runs of
        # data/measurements/h200_peft_levers_2026-11-29.jsonl (python benchmarks/fit_levers.py liger liger_saved_h
        # liger_fwd_h liger_bwd_h), per hidden value per token: what
        # the fused linear cross-entropy keeps until backward (the input's gradient, computed in forward, and
        # the shifted hidden states), what it holds for a moment in forward (a chunk of logits, about tokens x
        # hidden values, and its gradient) and backward's gradients of the hidden states beyond the recomputed
        # layer. The per-token constants are larger than the tensors named: they also carry what the eager
        # stack's logits hid in the fits without Liger.
        constants=(
            ("liger_norm_h", 2.0),  # bytes per hidden value one RMSNorm saves less (twice where its weight trains)
            ("liger_swiglu_i", 2.0),  # bytes per MLP value the SwiGLU saves less (it recomputes the activation)
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
