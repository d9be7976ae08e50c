"""Trainers: what runs the training steps, one module each, registered here, asked by the rest of the code.

A plan is sized for the program the user runs. Two programs that train the same configuration peak
differently: TRL's ``SFTTrainer`` computes the loss in chunks of 256 tokens and never holds the logits,
and leaves a 4-bit base's embeddings and head in bf16; the transformers ``Trainer`` runs the model's
own loss over the full fp32 logits; the probe's loop does what ``shared/calibration/README.md`` says. A
trainer declares everything in it that moves memory or time, and the estimator, the emitters and the
commands ask it (no module compares a trainer's name; a test checks):

- ``loss``: ``"logits"`` (the model's loss over the full logits, upcast to fp32) or ``"chunked"`` (a fused
  head: the head and the loss on tiles of ``chunk_tokens`` x ``chunk_vocab``, recomputed in backward);
- ``kbit_prepare``: peft's ``prepare_model_for_kbit_training`` on a 4-bit base (embeddings, norms and head
  cast to fp32), or none;
- ``quantized_adapter_bytes``: bytes per adapter parameter over a 4-bit base (TRL casts them to bf16);
- ``attention_mask``: its batches carry an attention mask, which eager attention adds to its scores;
- ``accumulates``: gradients of earlier micro-batches are held while the next ones run (every trainer
  of the Hugging Face stack accumulates in ``param.grad``);
- ``packs``: its emitted file packs examples when the plan says so (``--packing``), and how; ``no_packing``: why
  it does not, where it cannot pack correctly with the attention ftdecide emits (sdpa);
- ``emit``: the ``--emit`` kind that writes its file; ``wraps``: the trainer whose code it runs (its
  figures hold for it); ``measured``: runs of its own emitted file back its figures;
- ``versions`` and ``basis``: what the figures hold for, said in the JSON, the table and every emitted file;
- ``fp32_embedding_states``: a trained embedding keeps 32-bit states under bitsandbytes' 8-bit optimizers
  (transformers' ``Trainer.create_optimizer`` registers every ``nn.Embedding`` so), read by the optimizer.

Adding a trainer is one module here that calls :func:`register`, its runs in ``data/trainers/`` and a
line in the tests' table (``tests/test_trainers.py``).
"""

from __future__ import annotations

from ..core.errors import preview

from dataclasses import dataclass
from typing import Optional

from ..core.plugins import Registry

DEFAULT = "trl"  # what every command sizes for unless told: what `recommend --emit trl` writes

# What Gemma 2's eager attention holds under every trainer that passes its batches with an attention mask
# (``attention_mask``: all but the probe's loop, whose own runs fitted the methods' ``a_e``), per head per key
# position per token, read in transformers 5.17's ``gemma2.eager_attention_forward``: it saves tanh's softcapped
# scores (bf16, 2 B), softmax's fp32 output (4 B) and the bf16 probabilities the product with the values takes
# (2 B); dropout at p=0 returns its input. In backward, the layer being differentiated holds 4 B more at once:
# softmax's fp32 gradient and its bf16 result, the probabilities freed. Checked on the 15 Gemma-2 runs and
# launches of TRL and the transformers Trainer (the 12 B fitted before them left those without checkpointing
# 7-13% over: python benchmarks/fit_trainers.py --eager)
CONSTANTS = (
    ("eager_saved_bytes", 8.0),
    ("eager_bwd_bytes", 4.0),
    # ... and what the step time's traffic counts for it (core/throughput.py: k_act over a layer's saved bytes): the 12.28 B
    # (the loop's 0.28 and the 12 fitted on top) most methods' plans carried when the step time was fitted, now one figure
    # for all (QLoRA had carried 15.81: hf's Gemma-2 QLoRA run went from -16.9% to -5.4%). Softcapping, the mask and the
    # fp32 softmax are more passes over the scores than the bytes they save: on the 6 Gemma-2 runs timed alone, 12.28
    # puts the model at a median 5.3%, the 8 B saved at 15.7% (fit_trainers.py --eager)
    ("eager_traffic_bytes", 12.28),
    # sdpa with an attention mask (micro-batches padded to mixed lengths, or packed): transformers builds one boolean
    # mask of every sequence's query x key positions (1 B a pair), and sdpa's masked kernel turns it into an additive
    # bias in the compute dtype (2 B a pair) that each layer saves for backward; from the mechanism, checked on the
    # runs of data/packing/: Qwen3-0.6B 8 x 2048 packed without checkpointing held 14.4 GiB over padded, where
    # 57 x 16,296^2 B is 14.1 GiB
    ("sdpa_mask_bytes", 1.0),
    ("sdpa_bias_bytes", 2.0),
)


@dataclass(frozen=True)
class Trainer:
    name: str
    label: str
    summary: str
    loss: str  # "logits" or "chunked"
    kbit_prepare: bool
    quantized_adapter_bytes: float
    versions: str
    basis: str
    emit: Optional[str] = None  # the --emit kind that writes this trainer's file
    wraps: Optional[str] = None  # the trainer whose code this one runs (not measured on its own)
    measured: bool = True
    accumulates: bool = True
    attention_mask: bool = True  # its batches carry an attention mask (collated, padded per micro-batch)
    sharded_measured: bool = False  # its own launches on several GPUs were measured (else the loop's sharded terms hold)
    packs: str = ""  # how its emitted file packs examples (a plan with packing), or "" where it does not
    no_packing: str = "its emitted file does not pack examples"  # why not, where ``packs`` is empty
    chunk_tokens: int = 0  # a fused head's tile: tokens ...
    chunk_vocab: int = 0  # ... by vocabulary entries
    # its own fitted constants, beside the terms that read them: (name, value); :class:`ftdecide.core.calibration.Calibration`
    # assembles every unit's and the models read them by name (``cal.<name>``)
    constants: tuple[tuple[str, float], ...] = ()
    # model families it cannot train, with the reason seen when it was run: (model_type, reason)
    refuses: tuple[tuple[str, str], ...] = ()
    # transformers' Trainer.create_optimizer registers every nn.Embedding weight with bitsandbytes' GlobalOptimManager
    # for 32-bit states (transformers 5.17 trainer.py): a trainer built on it keeps a trained embedding's 8-bit
    # AdamW states in fp32; one outside it (the probe's loop) does not
    fp32_embedding_states: bool = True

    def unsupported(self, arch) -> Optional[str]:
        """Why this trainer cannot train ``arch`` (one line), or None."""
        for family, reason in self.refuses:
            if arch.family == family:
                return f"{self.label} cannot train {arch.name}: {reason}"
        return None

    def declared(self, name: str, cal) -> float:
        """The value in ``cal`` of a constant this trainer declares (a refit may have replaced it), or 0 where it
        declares none of that name: a term that only its emitted file showed is held for it alone."""
        return getattr(cal, name) if any(k == name for k, _ in self.constants) else 0.0

    def kbit_step_scale(self, cal) -> float:
        """The factor on a micro-batch's GPU time over a 4-bit base under this trainer, against the probe's loop on
        which QLoRA's utilisation was fitted: its constant ``<name>_kbit_step`` where it declares one (fitted on its own
        runs), else 1; a trainer that runs another's code (``wraps``) takes that one's."""
        if self.wraps:
            return get(self.wraps).kbit_step_scale(cal)
        return self.declared(f"{self.name}_kbit_step", cal) or 1.0

    def fp32_state_matrices(self, arch, cfg) -> tuple[tuple[int, int, int], ...]:
        """The (rows, cols, count) trainable matrices whose 8-bit optimizer states this trainer keeps in 32 bits:
        the embedding (a tied head's too: one parameter) where the base trains."""
        if not (self.fp32_embedding_states and cfg.method_spec.trains_base):
            return ()
        return ((arch.vocab_size, arch.hidden_size, 1),)

    def packing_problem(self) -> Optional[str]:
        """Why a plan with packing cannot run under this trainer (one line), or None."""
        return None if self.packs else f"{self.label} cannot pack: {self.no_packing}"

    def gc_excess_h(self, cfg, cal) -> float:
        """Bytes per hidden value per token per layer a checkpointed step keeps beyond the loop's: the trainer's
        ``fused_head_gc_h`` where it declares one (TRL, fitted on one GPU), where the strategy's traces leave room for it
        (:attr:`ftdecide.strategies.Strategy.trainer_gc_excess`)."""
        return self.declared("fused_head_gc_h", cal) if cfg.strategy_spec.trainer_gc_excess else 0.0

    @property
    def chunked_loss(self) -> bool:
        return self.loss == "chunked"

    def describe(self) -> dict:
        """The JSON form: what a plan says of the trainer it was sized for."""
        return {
            "name": self.name,
            "label": self.label,
            "versions": self.versions,
            "measured": self.measured,
            "basis": self.basis,
        }


_UNITS = Registry(__name__, __path__)


def register(trainer: Trainer) -> Trainer:
    if trainer.loss not in ("logits", "chunked"):
        raise ValueError(f"trainer {trainer.name}: loss must be 'logits' or 'chunked'")
    return _UNITS.register(trainer)


all_trainers = _UNITS.all
names = _UNITS.names
get = _UNITS.get


def known(name: str) -> str:
    """``name`` if a trainer of that name is registered; a ValueError naming the choices otherwise."""
    if name not in names():
        raise ValueError(f"unknown trainer {preview(name)} (choose from {', '.join(names())})")
    return name


def for_emit(kind: str) -> Optional[Trainer]:
    """The trainer that runs what ``--emit kind`` writes (None: the kind is a launch config, which runs
    whatever trainer the script it launches uses)."""
    for t in all_trainers():
        if t.emit == kind:
            return t
    return None
