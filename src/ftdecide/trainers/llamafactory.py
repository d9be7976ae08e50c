"""LLaMA-Factory (0.9): what ``recommend --emit llamafactory`` writes.

Not measured: LLaMA-Factory does not install on the GPU machine this project measures on (no network
there). Its ``CustomSeq2SeqTrainer`` is the transformers ``Trainer`` with the model's own loss over the
full logits: it is sized as the ``hf`` trainer, and every plan says so.
"""

from . import Trainer, register

TRAINER = register(
    Trainer(
        name="llamafactory",
        label="LLaMA-Factory",
        summary="LLaMA-Factory, sized as the transformers Trainer it runs (not measured): what --emit llamafactory writes",
        loss="logits",
        kbit_prepare=True,
        quantized_adapter_bytes=4.0,
        emit="llamafactory",
        no_packing="packing without neat_packing lets packed examples attend to each other, and neat_packing needs "
        "FlashAttention; not measured",
        wraps="hf",
        measured=False,
        versions="LLaMA-Factory 0.9 over transformers 5.17, peft 0.21",
        basis="not measured: sized as the transformers Trainer it runs (full logits); LLaMA-Factory does not install on the "
        "GPU machine this was measured on",
    )
)
