"""Houlsby adapters: two bottleneck layers per block of a frozen bf16 base, one after attention and one
after the MLP (the ``adapters`` library, AdapterHub: ``DoubleSeqBnConfig``, "double_seq_bn").

Parameters, as the adapters library counts them: per adapter a down-projection ``hidden x hidden/r`` and
an up-projection ``hidden/r x hidden``, with biases; two adapters per layer; ``r`` is
``--adapter-reduction`` (the library's default, 16). The seeds' ``2 x adapter_size x hidden x layers`` is
the same count per adapter without biases.

Memory beyond a frozen base's: each adapter keeps its input, its bottleneck activation and its output for
backward (``ActCoef.a_o`` bytes per hidden value and ``ActCoef.a_in`` per bottleneck value, fitted on the
adapter runs of ``data/measurements``). The adapters stay in the forward pass at inference: they cannot be
merged into the weights (Houlsby et al. 2019; the reason LoRA replaced them).

The adapters library pins transformers 4.57; its runs were measured on that stack (the probe needs
``adapters``).
"""

from __future__ import annotations

from dataclasses import dataclass

from . import EmitKeys, Method, ProbeRecipe, register

ADAPTERS_PER_LAYER = 2  # after attention and after the MLP


@dataclass(frozen=True)
class HoulsbyAdapters(Method):
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
        return ADAPTERS_PER_LAYER * kc.adapter_pass

    def settings(self, arch, cfg) -> dict:
        return {"adapter_config": "double_seq_bn", "reduction_factor": cfg.adapter_reduction}

    def probe_recipe(self, variant: str) -> ProbeRecipe:
        return ProbeRecipe(dtype="bfloat16", quantize_4bit=False, adapter="houlsby", kbit_prepare=False, needs=("adapters",))

    def wrap_for_probe(self, model, arch, cfg):
        import adapters
        from adapters import DoubleSeqBnConfig

        adapters.init(model)
        model.add_adapter("ftdecide", config=DoubleSeqBnConfig(reduction_factor=cfg.adapter_reduction))
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
        options=("adapter_reduction",),
        mergeable=False,
        default_learning_rate=1e-4,
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
    )
)
