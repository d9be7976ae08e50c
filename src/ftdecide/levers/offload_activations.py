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
    )
)
