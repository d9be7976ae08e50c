"""Houlsby adapters: two bottleneck layers per block of a frozen bf16 base, one after attention and one
after the MLP (the ``adapters`` library, AdapterHub: ``DoubleSeqBnConfig``, "double_seq_bn").

Parameters, as the adapters library counts them: per adapter a down-projection ``hidden x hidden/r`` and
an up-projection ``hidden/r x hidden``, with biases; two adapters per layer; ``r`` is
``--adapter-reduction`` (the library's default, 16). The seeds' ``2 x adapter_size x hidden x layers`` is
the same count per adapter without biases.

Memory beyond a frozen base's: each adapter keeps its input, its bottleneck activation and its output for
backward (``ActCoef.a_o`` bytes per hidden value and ``ActCoef.a_in`` per bottleneck value), fitted to 7
runs on an H200 (Llama-3.2-1B, Llama-3.1-8B, Mistral-7B, Qwen2.5-0.5B; reduction 16 and 64; checkpointing
on and off; data/measurements/h200_houlsby_2026-11-30.jsonl): median 0.4%, within 1%. The parameter count
is read from the adapters library's code (``Adapter``: two ``nn.Linear`` with biases, no layer norm, gate
or learned scaling in this config) and equals what the library trained in all 7 runs.

The adapters stay in the forward pass at inference: they cannot be merged into the weights (Houlsby et
al. 2019; the reason LoRA replaced them).

The adapters library pins transformers 4.57: ``ftdecide probe`` measures this method on that stack (the
``adapters`` package; benchmarks/device_adapters.sh carries it). It supports Llama, Mistral and Qwen2 but
not Phi-3 (adapters 1.3.0: "Model phi3 not pre-supported").
"""

from __future__ import annotations

from ..core.coefs import ActCoef

from . import EmitKeys, Method, ProbeRecipe, register
from .options import Option

# The bottleneck: hidden / 16, the adapters library's DoubleSeqBnConfig default (the seeds give the parameter
# count, 2 x adapter_size x hidden x layers, but no size). Probe records call it reduction.
REDUCTION = Option(
    "adapter_reduction",
    int,
    16,
    "bottleneck = hidden / this",
    bounds=(("gt", 0), ("le", 65536)),
    scenario_bounds=(("ge", 1), ("le", 65536)),
    record_key="reduction",
    in_scenario=True,
)

ADAPTERS_PER_LAYER = 2  # after attention and after the MLP
# Decoder model types the adapters library 1.3.0 supports (models/auto/adapter_model.py and the
# interfaces of wrappers/interfaces.py); Phi-3 and the MoE models are not among them.
ADAPTERS_MODEL_TYPES = ("llama", "mistral", "gemma2", "gemma3_text", "qwen2", "qwen3")


class HoulsbyAdapters(Method):
    def unsupported(self, arch, cfg=None):
        if arch.family in ADAPTERS_MODEL_TYPES:
            return None
        return (
            f"the adapters library (1.3.0) has no Houlsby adapters for {arch.name} (model_type '{arch.family}'); "
            f"it supports {', '.join(ADAPTERS_MODEL_TYPES)}"
        )

    @staticmethod
    def _bottleneck(arch, cfg) -> int:
        return max(1, arch.hidden_size // cfg.adapter_reduction)

    def adapter_params(self, arch, cfg, mods) -> int:
        h, b = arch.hidden_size, self._bottleneck(arch, cfg)
        return arch.num_layers * ADAPTERS_PER_LAYER * (2 * h * b + b + h)

    def trainable_matrices(self, arch, cfg, mods):
        h, b, n = arch.hidden_size, self._bottleneck(arch, cfg), arch.num_layers * ADAPTERS_PER_LAYER
        return [(b, h, n), (h, b, n), (1, b, n), (1, h, n)]

    def trainable_tensors(self, arch, mods) -> int:
        return 4 * ADAPTERS_PER_LAYER * arch.num_layers

    def layer_extra_bytes(self, arch, cfg, mods, cal, coef) -> float:
        return ADAPTERS_PER_LAYER * (coef.a_o * arch.hidden_size + coef.a_in * self._bottleneck(arch, cfg))

    def extra_flops_per_token(self, arch, cfg, mods) -> float:
        # the adapters train: forward, input and weight gradients, 6 FLOPs per adapter weight
        return 6.0 * self.adapter_params(arch, cfg, mods)

    def kernels_per_layer_pass(self, arch, mods, kc) -> float:
        return ADAPTERS_PER_LAYER * kc.houlsby_pass

    def settings(self, arch, cfg) -> dict:
        return {"adapter_config": "double_seq_bn", "reduction_factor": cfg.adapter_reduction}

    def probe_recipe(self, variant: str) -> ProbeRecipe:
        return ProbeRecipe(dtype="bfloat16", quantize_4bit=False, adapter="houlsby", kbit_prepare=False, needs=("adapters",))

    def wrap_for_probe(self, model, arch, cfg):
        import adapters
        from adapters import DoubleSeqBnConfig

        device = next(model.parameters()).device
        adapters.init(model)
        model.add_adapter("ftdecide", config=DoubleSeqBnConfig(reduction_factor=cfg.adapter_reduction))
        # add_adapter builds the new layers on the CPU whatever the model's device (the session's first
        # runs failed on it: "mat1 is on cuda:0, different from other tensors on cpu")
        model.adapter_to("ftdecide", device=device)
        model.train_adapter("ftdecide")  # freezes the base, trains the adapter
        return model


METHOD = register(
    HoulsbyAdapters(
        name="adapter",
        label="Houlsby adapters",
        summary="bottleneck layers after attention and MLP (AdapterHub): inference latency LoRA avoids",
        fallback_order=8,
        display_order=8,
        adapter="houlsby",
        options=(REDUCTION,),
        mergeable=False,
        learning_rate_setting="adapter_learning_rate",
        default_learning_rate=1e-4,  # Houlsby et al. 2019 searched 3e-5 to 3e-3; 1e-4 is the adapters library's examples'
        serving_warning=(
            "Houlsby adapters stay in every forward pass (two bottleneck layers per block): inference latency that a merged "
            "LoRA adapter does not add"
        ),
        emit_keys=EmitKeys(
            axolotl_adapter=None,
            llamafactory_type=None,
            peft_class="",
            elsewhere="the adapters library (AdapterHub: adapters.init(model), add_adapter with config 'double_seq_bn', AdapterTrainer)",
        ),
        # fitted by least squares on data/measurements (benchmarks/fit_coefficients.py); the utilisation of
        # its matrix products on benchmarks/fit_throughput.py
        # Houlsby adapters: a_o, a_in chosen on a 0.5 grid over the 7 H200 runs of
        # data/measurements/h200_houlsby_2026-11-30.jsonl (median 0.4%, -0.9% / +0.4%; read from the
        # structure before, 6.0 and 6.0 were +4% to +6% over the runs without checkpointing)
        fitted=(
            (
                "adapter",
                ActCoef(a_h=0.0, a_q=9.59, a_kv=7.9, a_i=6.62, a_e=0.28, c_h=2.58, g=2.0, recompute=0.91, a_n=2.66, a_o=3.0, a_in=7.0),
                0.586,
            ),
        ),
    )
)
