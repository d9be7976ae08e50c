"""Prompt tuning: trainable soft tokens prepended to the input of a frozen bf16 base (peft
``PromptTuningConfig``).

Parameters: ``virtual_tokens x hidden`` (peft's prompt embedding, fp32). The base is frozen, but the
gradient must reach the input, so every layer keeps what a frozen layer keeps for its input gradient,
over ``seq_len + virtual_tokens`` positions: the layers, the logits and the loss all see the virtual
tokens (peft pads the labels with -100 for them). Lester et al. (2021): it matches full fine-tuning
from about 10B parameters and is weak below 1B.
"""

from __future__ import annotations

from ..core.coefs import ActCoef

from . import EmitKeys, register
from ._soft_tokens import VIRTUAL_TOKENS, SoftTokens


class PromptTuning(SoftTokens):
    def width(self, arch) -> int:
        return arch.hidden_size

    def extra_tokens(self, cfg) -> int:
        return cfg.virtual_tokens


METHOD = register(
    PromptTuning(
        name="prompt",
        label="prompt tuning",
        summary="trainable soft tokens at the input only: style and format on models of ~10B and up",
        fallback_order=7,
        display_order=7,
        adapter="prompt",
        options=(VIRTUAL_TOKENS,),
        mergeable=False,
        learning_rate_setting="prompt_learning_rate",
        default_learning_rate=3e-2,  # peft's prompt-tuning examples use 3e-2
        emit_keys=EmitKeys(
            axolotl_adapter=None,
            llamafactory_type=None,
            peft_settings=(("virtual_tokens", "num_virtual_tokens"),),
            peft_class="PromptTuningConfig",
        ),
        # fitted by least squares on data/measurements (benchmarks/fit_coefficients.py); the utilisation of
        # its matrix products on benchmarks/fit_throughput.py
        fitted=(("prompt", ActCoef(a_h=0.0, a_q=9.59, a_kv=7.9, a_i=6.62, a_e=0.28, c_h=2.58, g=2.0, recompute=0.91, a_n=2.66), 0.586),),
    )
)
