"""What the loss holds, by how the trainer computes it: TRL's fused head, Liger's fused linear cross-entropy,
or the full fp32 logits (bytes, per token unless a name says otherwise). A part of
:mod:`ftdecide.core.estimator`, which assembles it."""

from __future__ import annotations

from .arch import Arch
from .calibration import Calibration
from .config import TrainConfig


def _logits_saved_per_token(arch: Arch, cal: Calibration) -> float:
    return arch.vocab_size * (cal.logits_saved + (cal.softcap_extra if arch.family.startswith("gemma2") else 0.0))


def _loss_terms(arch: Arch, cfg: TrainConfig, cal: Calibration, notes: list[str]) -> dict[str, float]:
    """What the loss holds, by how the trainer computes it (bytes, per token unless a name says otherwise):
    TRL's fused head, Liger's fused linear cross-entropy, or the full fp32 logits."""
    method, trainer = cfg.method_spec, cfg.trainer_spec
    loss_bwd_fixed = tile_tokens = tile_bytes = 0.0
    if trainer.chunked_loss:
        # TRL's fused head (trl 1.16 ``add_fused_lm_head``, with or without Liger's layer kernels): the
        # labelled tokens' final hidden states are gathered and held for backward with their targets and
        # log-normalisers; the head runs on tiles of ``chunk_tokens`` tokens x ``chunk_vocab`` vocabulary
        # entries in bf16, one tile at a time, in forward and again in backward, which accumulates the hidden
        # states' gradient in fp32 (and the head's, where it trains). No logits are held.
        logits_saved = cal.chunk_saved_h * arch.hidden_size + cal.chunk_saved_tok
        logits_fwd, logits_bwd, logits_block = 0.0, cal.chunk_bwd_h * arch.hidden_size, 0.0
        tile_tokens = float(trainer.chunk_tokens)
        tile_bytes = 2.0 * min(arch.vocab_size, trainer.chunk_vocab)
        if method.trains_base:
            # the head's gradient accumulates in fp32 through the loss's backward (its bf16 cast is head_grad), whole
            # under every strategy: the kernel is handed the weight whole (FSDP2 gathers it; traced over 4 GPUs, a
            # 0.98 GiB block for Llama-3.2-1B's 128256 x 2048 head: data/traces/h100_sharded_fsdp2_2026-12-07.jsonl)
            loss_bwd_fixed = 4.0 * arch.vocab_size * arch.hidden_size
    elif cfg.liger:
        # Liger's fused linear cross-entropy never builds the logits: it runs the head and the loss in
        # chunks of about tokens x hidden / vocab rows during forward, keeps the input's gradient
        # (tokens x hidden) for backward, and computes the head's weight gradient there and then.
        logits_saved = cal.liger_saved_h * arch.hidden_size
        logits_fwd, logits_bwd, logits_block = cal.liger_fwd_h * arch.hidden_size, cal.liger_bwd_h * arch.hidden_size, 0.0
        notes.append(
            "Liger kernel: fused linear cross-entropy (no logits held), RMSNorm, SwiGLU and RoPE kernels; its step time is counted "
            "from its kernels and checked on one timed run only (predicted 32% fast): time and cost may be low"
        )
    else:
        logits_saved = _logits_saved_per_token(arch, cal)
        logits_fwd = cal.logits_fwd_transient * arch.vocab_size
        logits_bwd = cal.logits_bwd_transient * arch.vocab_size
        logits_block = 4.0 * arch.vocab_size
    return {
        "logits_saved": logits_saved,
        "logits_fwd": logits_fwd,
        "logits_bwd": logits_bwd,
        "logits_block": logits_block,
        "loss_bwd_fixed": loss_bwd_fixed,
        "tile_tokens": tile_tokens,
        "tile_bytes": tile_bytes,
    }


def tied_grad_bytes(arch: Arch, cfg: TrainConfig, head_grad: float, grad_share: float, cal: Calibration) -> float:
    """Bytes the end of backward holds beyond every gradient when the head is tied to the embedding and
    trains. With Liger, the head's gradient from forward waits to be summed with the embedding's
    (``liger_tied_head_grad`` of it). Without, autograd builds the embedding's dense gradient and adds it
    to the head's (``tied_embed_grad`` bytes per vocab x hidden value, measured where autograd holds every
    gradient whole: one GPU and DDP; DeepSpeed's hooks move gradients into its own buffers, and the
    sharded strategies' fitted end terms hold theirs)."""
    if not (arch.tie_embeddings and cfg.method_spec.trains_base):
        return 0.0
    if cfg.liger and not cfg.trainer_spec.chunked_loss:  # under TRL's fused head Liger runs its layer kernels only
        return cal.liger_tied_head_grad * head_grad
    if grad_share < 1.0 or cfg.strategy_spec.engine != "torch":
        return 0.0
    return cal.tied_embed_grad * arch.vocab_size * arch.hidden_size
