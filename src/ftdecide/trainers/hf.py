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
        # a 4-bit base's step: its GPU time against the probe loop's (python benchmarks/fit_trainers.py --kbit: fitted
        # on 5 of its dense QLoRA runs timed alone, -14% to +13% -> -17% to +9%; its timing grid's two from +10% and +5.5%
        # to +7% and +1.5%, the held-out fifth's one from +8.5% to +5%)
        constants=(("hf_kbit_step", 1.04),),
        emit="hf",
        no_packing="its emitted file collates padded micro-batches (DataCollatorForLanguageModeling); not measured packed",
        versions="transformers 5.17, peft 0.21, torch 2.11, bitsandbytes 0.50",
        basis="measured: the emitted transformers Trainer script run unmodified on an H100 (data/trainers/), held against "
        "the loop's terms with no constant refitted (docs/accuracy.md)",
    )
)
