"""QLoRA: LoRA adapters over a 4-bit NF4 base (bitsandbytes, double quantisation, bf16 compute).

Weights: 0.5 B per quantised parameter (every nn.Linear but the head), its constants (one 8-bit absmax
per 64 weights and one fp32 per 256 absmax with double quantisation), 4 B for every other parameter
where the trainer runs ``prepare_model_for_kbit_training`` (embeddings, norms and head cast to fp32), 2 B
where it does not (TRL), plus the adapters at the trainer's ``quantized_adapter_bytes`` (fp32, or bf16
under TRL, which casts them).
Memory beyond LoRA's: bitsandbytes' ``MatMul4Bit`` saves its bf16 input for the backward of every
4-bit linear (``Calibration.qlora_input_bytes`` per input value), and dequantises the largest weight into
a workspace (fitted bytes per value of the largest linear, with and without checkpointing).
"""

from __future__ import annotations

from ..core.coefs import ActCoef

from . import EmitKeys, register
from .lora import LORA_OPTIONS, LoraFamily

NF4_BYTES = 0.5
BLOCK = 64  # weights per absmax
DOUBLE_QUANT_BLOCK = 256  # absmax values per fp32 constant of the second quantisation


class QuantizedLora(LoraFamily):
    def weight_bytes(self, arch, cfg, adapter_params: int) -> float:
        q = arch.quantizable_params()
        rest = 4.0 if cfg.kbit_prepared else 2.0
        return q * NF4_BYTES + self.unsharded_bytes(arch, cfg) + (arch.total_params() - q) * rest + adapter_params * self.param_bytes(cfg)

    def unsharded_bytes(self, arch, cfg) -> float:
        # bitsandbytes keeps them in each Linear4bit's quant_state, an attribute, not a parameter
        return arch.quantizable_params() / BLOCK * (1 + 4 / DOUBLE_QUANT_BLOCK)

    def param_bytes(self, cfg) -> float:
        return cfg.trainer_spec.quantized_adapter_bytes

    def layer_extra_bytes(self, arch, cfg, mods, cal, coef) -> float:
        saved_inputs = cal.qlora_input_bytes * sum(i * n for i, _, n in arch.linear_shapes().values())
        if cfg.strategy_spec.bf16_engine or not cfg.kbit_prepared:
            # measured under DeepSpeed's bf16 engine (ZeRO-2, Qwen2.5-7B QLoRA 1024x4 without checkpointing):
            # 15.6 GiB below the same run under DDP, +21.9% over the estimate with these inputs counted, +1.6%
            # without them; the engine's recast model (no fp32 parts left by k-bit preparation) keeps none,
            # and neither does a base no trainer prepared (TRL: measured)
            saved_inputs = 0.0
        return super().layer_extra_bytes(arch, cfg, mods, cal, coef) + saved_inputs

    def workspace_bytes(self, arch, mods, coef, gc: bool) -> float:
        biggest = max(i * o for i, o, _ in arch.linear_shapes().values())
        return biggest * (coef.big_gc if gc else coef.big) + super().workspace_bytes(arch, mods, coef, gc)

    def unsupported(self, arch, cfg=None):
        if arch.checkpoint_quant:
            # transformers 5.17 refuses a BitsAndBytesConfig for a checkpoint that ships its own quantization ("The
            # model is quantized with Mxfp4Config but you are passing a BitsAndBytesConfig config", checked on a
            # random gpt-oss checkpoint shipped as MXFP4: tests/test_families.py)
            return (
                f"{arch.name}'s checkpoint ships {arch.checkpoint_quant} weights, and transformers refuses a bitsandbytes "
                "4-bit config for it: LoRA trains over the weights de-quantized to bf16"
            )
        return super().unsupported(arch, cfg)

    def cast_copy_bytes(self, arch, cfg, gc: bool) -> float:
        # peft's prepare_model_for_kbit_training casts every bf16 parameter bitsandbytes left unquantized to fp32
        # (peft 0.21 utils/other.py), a mixture of experts' fused expert stacks among them; under the trainer's bf16
        # autocast every expert matmul casts its fp32 weight back to bf16 and saves the copy for backward: every MoE
        # layer's without checkpointing, the recomputed layer's with it, and the next cast (the largest stack) as it is made.
        # Measured (the transformers Trainer, data/trainers/h100_families_*): gpt-oss-20b@4L 4 x 1024 without
        # checkpointing -18.9% and Mixtral@4L 1 x 4096 with it -11.0% before this term
        if not (cfg.kbit_prepared and arch.is_moe):
            return 0.0
        per_layer = arch.num_experts * arch.expert_params()
        largest = arch.num_experts * arch.hidden_size * arch.expert_intermediate * (2 if arch.mlp == "gated" else 1)
        return 2.0 * ((1 if gc else arch.moe_layers) * per_layer + largest)

    def bf16_engine_variant(self) -> str:
        # DeepSpeed's bf16 engine casts what k-bit preparation left in fp32 (embeddings, norms, head) back to
        # bf16: the activations are LoRA's over bf16 weights (measured within 1% under ZeRO-2, checkpointed)
        return "lora"

    def kernels_per_layer_pass(self, arch, mods, kc) -> float:
        return super().kernels_per_layer_pass(arch, mods, kc) + kc.qlinear_pass * sum(n for _, _, n in arch.linear_shapes().values())


METHOD = register(
    QuantizedLora(
        name="qlora",
        label="QLoRA",
        summary="LoRA adapters over a 4-bit NF4 base (bitsandbytes)",
        fallback_order=1,
        adapter="lora",
        options=LORA_OPTIONS,
        quantized_base=True,
        emit_keys=EmitKeys(axolotl_adapter="qlora", llamafactory_type="lora", quantization_bit=4),
        # bitsandbytes' MatMul4Bit saves its input for the backward of every 4-bit linear, adapted or not
        # (``ctx.tensors = (A, B)`` whenever the input needs a gradient), in the compute dtype (bf16), bytes per
        # value; plain nn.Linear under torch autograd saves nothing for a frozen weight, so LoRA has no such term
        constants=(("qlora_input_bytes", 2.0),),
        display_order=2,
        # fitted by least squares on data/measurements (benchmarks/fit_coefficients.py); the utilisation of
        # its matrix products on benchmarks/fit_throughput.py (--adapters, with LoRA's lora_io_bytes)
        fitted=(
            (
                "qlora",
                ActCoef(
                    a_h=0.0,
                    a_q=0.0,
                    a_kv=7.49,
                    a_i=10.14,
                    a_e=3.81,
                    c_h=2.52,
                    g=3.64,
                    nodrop=2.26,
                    nodrop_h=2.34,
                    big=14.43,
                    big_gc=21.82,
                    recompute=0.0,
                    a_n=0.0,
                ),
                0.695,
            ),
        ),
    )
)
