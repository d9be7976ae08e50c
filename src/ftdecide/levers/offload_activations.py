"""Activation offload: TRL's ``activation_offloading`` (torchtune's ``OffloadActivations``): every saved
tensor of 1 KiB and more goes to pinned CPU memory during forward and comes back for backward.

axolotl runs it only with gradient checkpointing; LLaMA-Factory has no such option (its emitter refuses).
"""

from __future__ import annotations

from . import Lever, register

LEVER = register(
    Lever(
        name="offload_activations",
        flag="--offload-activations",
        label="activation offloading",
        switch_note="saved activations in CPU memory",
        header_note="activations offloaded",
        rule_name="offload",
        cheap_switch=True,
        trl_args=(("activation_offloading", True, "sized with saved activations in CPU memory"),),
        hf_args=None,
        axolotl_keys={"activation_offloading": True},
        llamafactory_keys=None,
        axolotl_needs_checkpointing=True,
        # The share of the layers' saved bytes still on the GPU at the peak, and more where the base trains.
        # The copies to the host run behind the kernels, so what is in flight grows with the layers (measured
        # without checkpointing: 1.7-1.9 layers' worth at 16-24 layers, 4.0 at 32). It was a count of layers
        # (2.93 and 4.0), which missed Mistral-7B LoRA (held out) by -5.6%; as shares chosen on the first 13
        # runs (0.12, 0.21) the 6 held out came within -1.8% / +2.3%; chosen on those 19 (0.12, 0.24), 7 more
        # held out came within a median 2.6%, -5.6% / +2.7% (Phi-3-mini and TinyLlama LoRA under -5%: their
        # shares 0.14-0.15, the frozen-base range now 0.08-0.15). Chosen on all 26 (python
        # benchmarks/fit_levers.py offload offload_kept_share offload_kept_share_trained, under-estimates
        # weighted 3x): median 1.6%, -3.1% / +5.0%
        constants=(("offload_kept_share", 0.135), ("offload_kept_share_trained", 0.226)),
    )
)
