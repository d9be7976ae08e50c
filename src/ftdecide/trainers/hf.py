"""The transformers ``Trainer`` with peft: what ``recommend --emit hf`` writes.

The model's own loss (full logits, upcast to fp32 by ``ForCausalLMLoss``), peft's
``prepare_model_for_kbit_training`` on a 4-bit base (fp32 embeddings, norms and head; fp32 adapters),
sequences padded per micro-batch by ``DataCollatorForLanguageModeling``: the probe's loop in a
trainer, plus the gradients that accumulation holds across micro-batches.
"""

from . import Trainer, register

TRAINER = register(
    Trainer(
        name="hf",
        label="transformers Trainer",
        summary="transformers' Trainer with peft (full logits, k-bit preparation): what --emit hf writes",
        loss="logits",
        kbit_prepare=True,
        quantized_adapter_bytes=4.0,
        emit="hf",
        no_packing="its emitted file collates padded micro-batches (DataCollatorForLanguageModeling); not measured packed",
        versions="transformers 5.17, peft 0.21, torch 2.11, bitsandbytes 0.50",
        basis="measured: the emitted transformers Trainer script run unmodified on an H100 (data/trainers/), held against "
        "the loop's terms with no constant refitted (docs/accuracy.md)",
    )
)
