"""axolotl (0.19): what ``recommend --emit axolotl`` writes.

Not measured: axolotl does not install on the GPU machine this project measures on (no network there,
and its dependencies exceed what a call can carry). It trains through the transformers ``Trainer``
(its ``AxolotlTrainer`` subclass) with the model's own loss over the full logits, and loads a 4-bit
base through peft's ``prepare_model_for_kbit_training``: it is sized as the ``hf`` trainer, and every
plan says so.
"""

from . import Trainer, register

TRAINER = register(
    Trainer(
        name="axolotl",
        label="axolotl",
        summary="axolotl, sized as the transformers Trainer it runs (not measured): what --emit axolotl writes",
        loss="logits",
        kbit_prepare=True,
        quantized_adapter_bytes=4.0,
        emit="axolotl",
        no_packing="sample_packing without FlashAttention is not what ftdecide sizes or emits (sdpa); not measured",
        wraps="hf",
        measured=False,
        versions="axolotl 0.19 over transformers 5.17, peft 0.21",
        basis="not measured: sized as the transformers Trainer it runs (full logits, k-bit preparation); axolotl does not "
        "install on the GPU machine this was measured on",
    )
)
