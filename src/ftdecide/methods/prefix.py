"""Prefix tuning: trainable keys and values of ``virtual_tokens`` positions in every layer of a frozen
bf16 base (peft ``PrefixTuningConfig``, no reparameterisation).

Parameters, as peft counts them: ``virtual_tokens x layers x 2 x kv_dim`` (one fp32 embedding that
peft reshapes into each layer's keys and values; grouped-query models get ``num_key_value_heads``
heads). Memory beyond a frozen base's: the prefix keys and values of every layer, per sequence, as the
attention sees them (bf16) and as the embedding produced them (fp32), kept until backward. The base is
frozen and the gradient reaches the prefixes through attention only, but each layer still keeps its
input-gradient activations. Li and Liang (2021) trained it on GPT-2 and BART; on causal LMs it trains
less reliably than LoRA.
"""

from __future__ import annotations

from ..core.coefs import ActCoef

from . import EmitKeys, register
from ._soft_tokens import VIRTUAL_TOKENS, SoftTokens

PREFIX_BYTES = 2.0 + 4.0  # bf16 keys/values the attention reads + the fp32 embedding output they came from


class PrefixTuning(SoftTokens):
    def unsupported(self, arch, cfg=None):
        if arch.linear_layers:
            # peft 0.21 hands the prefixes over as a key-value cache of every layer; transformers 5.17's hybrid cache
            # then fails in the first forward ("You called `has_previous_state` on layer index 0, but this layer is an
            # Attention layer", run on the CPU with a small qwen3_5_text model)
            return f"peft 0.21's prefix tuning fails in the first forward of {arch.name}, whose linear-attention layers take no prefix"
        return None

    def width(self, arch) -> int:
        return arch.num_layers * 2 * arch.kv_dim

    def layer_extra_bytes(self, arch, cfg, mods, cal, coef) -> float:
        # with the prefix, attention runs with an explicit mask, and transformers repeats grouped keys and
        # values to every query head for it: the expanded copies are what attention keeps
        return coef.a_o * 2 * (arch.q_dim - arch.kv_dim)

    def sequence_bytes(self, arch, cfg, cal) -> float:
        return PREFIX_BYTES * self.adapter_params(arch, cfg, ())

    def mask_bytes_per_key(self, cal) -> float:
        # measured under TRL: the attention mask widened over the virtual keys is kept per layer (about
        # 2 B per query x key pair: 4 prefix runs, 2,048-8,192 tokens, 3.0-4.0 GiB beyond the loop's terms)
        return cal.prefix_mask_bytes


METHOD = register(
    PrefixTuning(
        name="prefix",
        label="prefix tuning",
        summary="trainable keys and values at every layer: weaker than LoRA on causal LMs",
        fallback_order=6,
        display_order=6,
        adapter="prefix",
        options=(VIRTUAL_TOKENS,),
        # the attention mask a trainer passes, widened over the virtual keys: bytes per query x key pair per layer
        constants=(("prefix_mask_bytes", 2.0),),
        mergeable=False,
        supports_checkpointing=False,
        learning_rate_setting="prefix_learning_rate",
        default_learning_rate=1e-2,  # peft's prefix-tuning examples use 1e-2
        emit_keys=EmitKeys(
            axolotl_adapter=None,
            llamafactory_type=None,
            peft_settings=(("virtual_tokens", "num_virtual_tokens"),),
            peft_class="PrefixTuningConfig",
        ),
        # fitted by least squares on data/measurements (benchmarks/fit_coefficients.py); the utilisation of
        # its matrix products on benchmarks/fit_throughput.py
        fitted=(
            (
                "prefix",
                ActCoef(a_h=0.0, a_q=9.59, a_kv=7.9, a_i=6.62, a_e=0.28, c_h=2.58, g=2.0, recompute=0.91, a_n=2.66, a_o=1.92),
                0.586,
            ),
        ),
    )
)
