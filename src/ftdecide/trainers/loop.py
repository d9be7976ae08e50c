"""The probe's own loop: a hand-written PyTorch loop over transformers and peft (the recipe of
``shared/calibration/README.md``), what ``ftdecide probe`` runs and what ``--emit peft``'s
``load_model()`` is for.

Full fp32 logits, ``prepare_model_for_kbit_training`` on a 4-bit base, fp32 adapters, one micro-batch
per optimizer step (no accumulation). Every measurement in ``data/measurements/`` and
``data/scaleout/`` was taken on it, and the fitted activation terms of every method come from them.
"""

from . import Trainer, register

TRAINER = register(
    Trainer(
        name="loop",
        fp32_embedding_states=False,  # its optimizer is built as bitsandbytes ships it (probe/steps.py)
        label="ftdecide probe loop",
        summary="a plain PyTorch loop over transformers and peft (full logits, k-bit preparation): ftdecide probe, --emit peft",
        loss="logits",
        kbit_prepare=True,
        quantized_adapter_bytes=4.0,
        emit="peft",
        accumulates=False,
        attention_mask=False,
        sharded_measured=True,
        versions="torch 2.11, transformers 5.17, peft 0.21, bitsandbytes 0.50",
        basis="measured: ftdecide probe's loop (data/measurements/, data/scaleout/)",
    )
)
