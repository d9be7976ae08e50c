"""DoRA: LoRA whose update is split into a magnitude and a direction (peft ``LoraConfig(use_dora=True)``).

Parameters: LoRA's ``r x (in + out)`` per adapted linear plus a magnitude vector of ``out`` (peft's
``lora_magnitude_vector``), all fp32. Memory beyond LoRA's, from peft's ``DoraLinearLayer.forward``: the
base and LoRA results of each adapted linear are kept for the magnitude's gradient (``ActCoef.a_o`` bytes
per output value), and one linear at a time builds its full ``in x out`` weight ``W + s*BA`` and its norm,
through an ``in x in`` identity in the input's dtype (the workspace: ``big``/``big_gc`` bytes per weight of
the largest adapted linear, plus 2 B per identity entry). Without checkpointing the kept results of every
layer add up; with it one layer's do.
"""

from __future__ import annotations

from ..core.coefs import ActCoef

from . import EmitKeys, ProbeRecipe, register
from .lora import LORA_OPTIONS, LoraFamily

IDENTITY_BYTES = 2.0  # torch.eye in the input's dtype (bf16)


class DoRA(LoraFamily):
    def adapter_params(self, arch, cfg, mods) -> int:
        shapes = arch.adapter_shapes()
        magnitude = round(arch.num_layers * sum(shapes[m][1] * shapes[m][2] for m in mods))
        return super().adapter_params(arch, cfg, mods) + magnitude

    def trainable_matrices(self, arch, cfg, mods):
        shapes = arch.adapter_shapes()
        L = arch.num_layers
        return super().trainable_matrices(arch, cfg, mods) + [(shapes[m][1], 1, round(shapes[m][2] * L)) for m in mods]

    def trainable_tensors(self, arch, mods) -> int:
        return 3 * len(mods) * arch.num_layers

    def unsupported(self, arch, cfg=None):
        # peft's ParamWrapper over fused experts refuses use_dora: all-linear puts it there on some families,
        # and the experts target anywhere
        if cfg is not None and arch.adapts_fused_experts(self.adapted_modules(arch, cfg)) and not arch.experts_adapted:
            return f"peft 0.21's ParamWrapper, which the experts target puts on {arch.name}'s fused experts, refuses DoRA (use_dora)"
        if arch.experts_adapted:
            return (
                f"peft 0.21's all-linear puts its ParamWrapper on {arch.name}'s fused experts, and that wrapper refuses DoRA "
                "(use_dora): LoRA trains them"
            )
        return None

    def workspace_bytes(self, arch, mods, coef, gc: bool) -> float:
        # One in x in identity per adapted linear (``big``/``big_gc`` bytes per entry): every layer's
        # without checkpointing, one layer's (the recomputed one) with it.
        shapes = arch.adapter_shapes()
        identities = sum(shapes[m][0] ** 2 * shapes[m][2] for m in mods)
        return identities * (coef.big_gc if gc else coef.big * arch.num_layers)

    def extra_flops_per_token(self, arch, cfg, mods) -> float:
        # With dropout, peft recomputes each adapted linear's base product on the dropped-out input
        # (forward 2, input gradient 2 per weight; checkpointing's recompute 2 more); without dropout it
        # reuses the base result.
        if cfg.lora_dropout <= 0:
            return 0.0
        shapes = arch.adapter_shapes()
        weights = arch.num_layers * sum(shapes[m][0] * shapes[m][1] * shapes[m][2] for m in mods)
        return (6.0 if cfg.gradient_checkpointing else 4.0) * weights

    def kernels_per_layer_pass(self, arch, mods, kc) -> float:
        return len(mods) * (kc.adapter_pass + kc.dora_pass)

    def probe_recipe(self, variant: str) -> ProbeRecipe:
        return ProbeRecipe(dtype="bfloat16", quantize_4bit=False, adapter="lora", kbit_prepare=False, use_dora=True)


METHOD = register(
    DoRA(
        name="dora",
        label="DoRA",
        summary="LoRA with a separate magnitude (peft use_dora): often better at large updates, more memory and time",
        fallback_order=3,
        display_order=3,
        adapter="lora",
        options=LORA_OPTIONS,
        emit_keys=EmitKeys(
            axolotl_adapter="lora",
            llamafactory_type="lora",
            peft_lora_options=(("use_dora", True),),
            axolotl_options=(("peft_use_dora", True),),
            llamafactory_options=(("use_dora", True),),
        ),
        # fitted by least squares on data/measurements (benchmarks/fit_coefficients.py); the utilisation of
        # its matrix products on benchmarks/fit_throughput.py (--adapters, with LoRA's lora_io_bytes)
        # DoRA: the LoRA terms refitted, plus a_o per adapted output value and the identities its weight
        # norm is built through (big: bytes per in x in entry of every adapted linear of every layer,
        # kept without checkpointing; big_gc: one layer's with it). Fitted by bounded least squares on
        # the 46 DoRA runs of data/measurements/h200_dora_2026-11-29.jsonl
        # (python benchmarks/fit_coefficients.py --least-squares dora a_h a_q a_kv a_i a_o c_h g recompute
        # big big_gc a_n nodrop nodrop_h); then g and big_gc again with the two later DoRA runs (python
        # benchmarks/fit_coefficients.py --least-squares dora big_gc g a_o): the one with few tokens
        # on a large model (Mistral-7B 1024 x 2, checkpointed, -6.7% held out) separates one layer's
        # identities (1.1 GiB there: a fixed workspace) from the per-token checkpoints that had absorbed it
        fitted=(
            (
                "dora",
                ActCoef(
                    a_h=5.78,
                    a_q=9.08,
                    a_kv=23.58,
                    a_i=4.78,
                    a_e=0.28,
                    c_h=0.0,
                    g=0.74,
                    nodrop=2.56,
                    nodrop_h=0.0,
                    recompute=1.53,
                    a_n=1.93,
                    a_o=3.74,
                    big=1.39,
                    big_gc=3.83,
                ),
                0.392,
            ),
        ),
    )
)
