"""IA3: learned vectors that rescale a few activations of a frozen bf16 base (peft ``IA3Config``).

Parameters, as peft counts them: one fp32 vector per adapted linear and layer, of its ``out_features``
for the modules whose output is scaled (keys and values) and of its ``in_features`` for the
feed-forward modules whose input is scaled (``down_proj``): about 0.01% of a 7B model. The default
modules are peft's for the family (``TRANSFORMERS_MODELS_TO_IA3_TARGET_MODULES_MAPPING``: k_proj,
v_proj and down_proj for Llama and Mistral; q_proj, v_proj and down_proj for Qwen2 and Gemma). peft has
no default for Phi-3: ftdecide scales its fused qkv_proj and down_proj, and the emitted config names them.
On MoE models only attention (and a shared expert) is scaled: the routed experts are fused 3-D
parameters that peft cannot wrap.

Memory beyond a frozen base's: peft's ``IA3Layer`` multiplies by an fp32 vector, so each scaled output
is kept for the vector's gradient (``ActCoef.a_o`` bytes per value) and each scaled feed-forward input is
kept in fp32 (``ActCoef.a_in``); both fitted on the IA3 runs of ``data/measurements``.
"""

from __future__ import annotations

from ..core.coefs import ActCoef
from ..core.errors import InputError

from . import EmitKeys, Method, register
from .options import Option

# which modules to scale; "default" is peft's table for the family (records state it only when set)
TARGETS = Option(
    "ia3_targets",
    str,
    "default",
    "modules to scale, like k_proj,v_proj,down_proj",
    default_text="peft's for the family",
    record_if_default=False,
)

FEEDFORWARD = ("down_proj",)  # scaled on their input (peft's feedforward_modules)
# bytes per scaled feed-forward input value that an fp32 product holds beyond a bf16 one: what a bf16 engine saves.
# Measured over FSDP2 without checkpointing, Llama-3.2-1B and -3B: 2.17 and 2.18 (data/sharded_trainers/); then on 3
# launches planned before they ran (sharded_trl_h:1, 3, 6): +0.4%, +1.0%, +0.6%
FP32_PRODUCT_EXCESS = 2.0
# MLP-wide bf16 blocks a checkpointed layer's backward holds beyond its recompute under a bf16 engine (bytes per token:
# this many x 2 B x the MLP's width). Counted from the two traced IA3 launches over FSDP2 with checkpointing
# (data/traces/h100_sharded_fsdp2_d_*, Llama-3.2-1B over 2; h100_sharded_fsdp2_h_*, Llama-3.2-3B over 4): each held
# exactly three blocks of tokens x intermediate x 2 B with no Python frame (the scaled MLP's gradients) at its peak.
# It had been fitted per hidden value (16, then 24 B, on the IA3 launches), which is the same for a model whose MLP is 4
# hidden wide and misses the others: Qwen2.5-1.5B over 4 (5.8 wide) was -6.0% held out (sharded_trl_i:9), Llama-3.2-3B
# (2.7 wide) +3.5%. Gemma-2-2B over 2 (-7.3% then) was not this term's: traced (data/traces/h100_sharded_fsdp2_e_*), it
# peaks early in forward with two blocks the size of its tied head and one decoder layer (strategies/fsdp.py early_bytes).
# Two more traced since (data/traces/h100_sharded_f_*): TinyLlama over 2 held three again, Mistral-7B over 8 six (its
# plan, with three, +2.0%: where the other three belong is not known). On one
# GPU (no bf16 engine) the three are fp32 (TinyLlama: 3 x tokens x intermediate x 4 B), inside the one GPU's fit.
# DeepSpeed's bf16 engine is given the same, not measured
BF16_ENGINE_GC_MLP_BLOCKS = 3
# Families whose peft default scales queries rather than keys (peft 0.21's
# TRANSFORMERS_MODELS_TO_IA3_TARGET_MODULES_MAPPING, checked by data/counts/peft_trainable_2026-11-29.jsonl)
QUERY_FAMILIES = ("qwen2", "qwen2_moe", "qwen3", "qwen3_moe", "gemma", "gemma2", "gemma3_text")


class IA3(Method):
    def adapted_modules(self, arch, cfg) -> tuple[str, ...]:
        names = arch.linear_shapes()
        if cfg.ia3_targets != "default":
            mods = arch.resolve_targets(cfg.ia3_targets, what="IA3 target(s)")
            fused = [m for m in mods if m not in names]
            if fused:
                raise InputError(
                    f"IA3 cannot scale {arch.name}'s fused experts ({', '.join(fused)}): peft's IA3 takes nn.Linear modules only"
                )
            return mods
        if "qkv_proj" in names:
            keys: tuple[str, ...] = ("qkv_proj",)
        elif arch.mla:
            # latent attention has no k_proj or v_proj: the keys' and values' up-projection is scaled
            keys = ("kv_b_proj",)
        elif arch.family in QUERY_FAMILIES:
            keys = ("q_proj", "v_proj")
        else:
            keys = ("k_proj", "v_proj")
        # MoE: the routed experts are fused 3-D parameters, which peft cannot scale; a shared expert's
        # down_proj is an nn.Linear and is scaled
        return keys + tuple(m for m in FEEDFORWARD if m in names)

    @staticmethod
    def _scaled(arch, mods) -> tuple[int, int]:
        """(output values scaled, feed-forward input values scaled) per token per layer."""
        shapes = arch.linear_shapes()
        outs = sum(shapes[m][1] * shapes[m][2] for m in mods if m not in FEEDFORWARD)
        ins = sum(shapes[m][0] * shapes[m][2] for m in mods if m in FEEDFORWARD)
        return outs, ins

    def adapter_params(self, arch, cfg, mods) -> int:
        return arch.num_layers * sum(self._scaled(arch, mods))

    def trainable_matrices(self, arch, cfg, mods):
        shapes = arch.linear_shapes()
        L = arch.num_layers
        return [(1, shapes[m][0] if m in FEEDFORWARD else shapes[m][1], shapes[m][2] * L) for m in mods]

    def trainable_tensors(self, arch, mods) -> int:
        return len(mods) * arch.num_layers

    def layer_extra_bytes(self, arch, cfg, mods, cal, coef) -> float:
        outs, ins = self._scaled(arch, mods)
        a_in = coef.a_in
        if cfg.strategy_spec.bf16_engine:
            # the engine computes with the vectors in bf16 (FSDP2's param_dtype, DeepSpeed's recast), so the scaled
            # feed-forward input is a bf16 product, not an fp32 one
            a_in -= FP32_PRODUCT_EXCESS
        return coef.a_o * outs + a_in * ins

    def recompute_extra_bytes(self, arch, cfg, mods, cal) -> float:
        if not cfg.strategy_spec.bf16_engine:
            return 0.0
        return BF16_ENGINE_GC_MLP_BLOCKS * 2.0 * arch.routed_intermediate

    def kernels_per_layer_pass(self, arch, mods, kc) -> float:
        return len(mods) * kc.ia3_pass

    def settings(self, arch, cfg) -> dict:
        mods = self.adapted_modules(arch, cfg)
        return {"target_modules": list(mods), "feedforward_modules": [m for m in mods if m in FEEDFORWARD]}

    def peft_config(self, arch, cfg):
        from peft import IA3Config

        mods = list(self.adapted_modules(arch, cfg))
        return IA3Config(task_type="CAUSAL_LM", target_modules=mods, feedforward_modules=[m for m in mods if m in FEEDFORWARD])


METHOD = register(
    IA3(
        name="ia3",
        label="IA3",
        summary="learned rescaling vectors on keys, values and the MLP input (~0.01% of the weights): for very small data sets",
        fallback_order=5,
        display_order=5,
        adapter="ia3",
        options=(TARGETS,),
        learning_rate_setting="ia3_learning_rate",
        default_learning_rate=3e-3,  # T-Few (Liu et al. 2022) trains IA3 at 3e-3
        emit_keys=EmitKeys(
            axolotl_adapter=None,
            llamafactory_type=None,
            peft_settings=(("target_modules", "target_modules"), ("feedforward_modules", "feedforward_modules")),
            peft_class="IA3Config",
        ),
        # fitted by least squares on data/measurements (benchmarks/fit_coefficients.py); the utilisation of
        # its matrix products on benchmarks/fit_throughput.py
        # IA3, prompt and prefix tuning train no linear of the base: a frozen bf16 base keeping what its
        # input gradient needs, as LoRA's base terms, plus their own (a_o, a_in: IA3's scaled values).
        fitted=(
            (
                "ia3",
                ActCoef(a_h=0.0, a_q=9.59, a_kv=7.9, a_i=6.62, a_e=0.28, c_h=2.58, g=2.0, recompute=0.91, a_n=2.66, a_o=2.65, a_in=3.65),
                0.586,
            ),
        ),
    )
)
