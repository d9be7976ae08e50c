"""Full fine-tuning: every weight trains.

``bf16``: bf16 weights, gradients and optimizer states (2 B per parameter each; fused AdamW keeps bf16
states for bf16 parameters). ``mixed``: fp32 master weights, gradients and states under bf16 autocast
(4 B each). FLOPs: 6 per parameter per token (forward 2, input gradients 2, weight gradients 2).
"""

from __future__ import annotations

from ..core.coefs import ActCoef

from ..core.policy import DEFAULT_FULL_LEARNING_RATE
from . import EmitKeys, Method, ProbeRecipe, register


class FullFineTuning(Method):
    def variant(self, precision: str) -> str:
        return "full_mixed" if precision == "mixed" else "full_bf16"

    def param_bytes(self, cfg) -> float:
        return 4.0 if cfg.precision == "mixed" else 2.0

    def weight_bytes(self, arch, cfg, adapter_params: int) -> float:
        return arch.total_params() * self.param_bytes(cfg)

    def trainable_matrices(self, arch, cfg, mods):
        L = arch.num_layers
        out = [(o, i, round(n * L)) for i, o, n in arch.linear_shapes().values()]
        if arch.is_moe:
            e, moe = arch.expert_intermediate, arch.moe_layers
            out.append((e, arch.hidden_size, 3 * arch.num_experts * moe))
            if arch.router == "param":
                out.append((arch.num_experts, arch.hidden_size, moe))
        out.append((arch.vocab_size, arch.hidden_size, 1 if arch.tie_embeddings else 2))
        return out

    def trainable_tensors(self, arch, mods) -> int:
        return arch.param_tensors()

    def kernels_per_layer_step(self, kc) -> float:
        return kc.full_layer

    def probe_recipe(self, variant: str) -> ProbeRecipe:
        return ProbeRecipe(
            dtype="float32" if variant == "full_mixed" else "bfloat16", quantize_4bit=False, adapter=None, kbit_prepare=False
        )


METHOD = register(
    FullFineTuning(
        name="full",
        label="full fine-tuning",
        summary="every weight trains (bf16, or fp32 master weights with --precision mixed)",
        fallback_order=2,
        trains_base=True,
        precisions=("bf16", "mixed"),
        learning_rate_setting="full_learning_rate",
        default_learning_rate=DEFAULT_FULL_LEARNING_RATE,
        emit_keys=EmitKeys(axolotl_adapter="", llamafactory_type="full"),
        # fitted by least squares on data/measurements (benchmarks/fit_coefficients.py); the utilisation of
        # its matrix products on benchmarks/fit_throughput.py. a_q is read, not fitted: sdpa keeps q and its
        # output and o_proj its input, 2 B a value each. The fit, on models whose q width is their hidden
        # size, had put all 6 B in a_h (a_q 0.0, a_h 6 B more); moved out, the loop's runs keep their figures
        # (Gemma 2's, q 0.89 of hidden, move by -0.4% at most) and a model whose q is twice its hidden size
        # (Qwen3-0.6B: TRL's full run without checkpointing, 4 x 1024) is no longer sized 6 B x hidden short
        fitted=(
            ("full_bf16", ActCoef(a_h=11.39, a_q=6.0, a_kv=12.52, a_i=8.36, a_e=6.41, c_h=8.04, g=2.0, recompute=1.2), 0.80),
            ("full_mixed", ActCoef(a_h=36.86, a_q=6.0, a_kv=12.52, a_i=8.36, a_e=6.41, c_h=8.04, g=9.9, recompute=1.2), 0.79),
        ),
    )
)
