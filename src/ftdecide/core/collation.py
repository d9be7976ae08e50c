"""How examples meet the model, where it moves memory and time (``TrainConfig.collation``): every example filling
the sequence (sdpa runs unmasked, on flash attention), or examples of mixed length, padded per micro-batch or packed
into one flattened sequence a micro-batch, where sdpa runs with a mask. Pure arithmetic, no I/O."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:  # pragma: no cover - types only
    from .arch import Arch
    from .calibration import Calibration
    from .config import TrainConfig


# How far the plan's time for the user's data (``decide.sizing.data_epoch_seconds`` and the run's warm-up) was from
# whole epochs of the emitted TRL script that no constant of the time model was fitted on (one H100; packing_c, _d,
# _e and _g, packing_g planned before it ran; the constants come from packing_a and _b, benchmarks/fit_packing.py
# --fit; docs/accuracy.md, "Data"): runs, the median of |planned / measured - 1|, and the lowest and highest
# planned / measured - 1. tests/test_packing.py recomputes them from the records in data/packing/.
HELD_OUT_EPOCH_ERRORS = {
    "padded": {"runs": 8, "median_abs_error": 0.045, "min": -0.208, "max": 0.156},
    "packed": {"runs": 8, "median_abs_error": 0.051, "min": -0.133, "max": -0.002},
}


def masked_sdpa(arch: "Arch", cfg: "TrainConfig") -> bool:
    """sdpa runs with a mask (examples of mixed length, padded or packed): its masked kernel, not flash attention."""
    return cfg.mixed_lengths and arch.attention == "sdpa"


def mask_pair_bytes(arch: "Arch", cfg: "TrainConfig", cal: "Calibration", gc: bool) -> float:
    """Bytes per query x key pair of the mask sdpa runs with (:func:`masked_sdpa`; the pairs of each sequence, or
    of the flattened micro-batch where it is packed): transformers' boolean mask, built once for the model
    (``sdpa_mask_bytes``), and the additive bias sdpa's masked kernel makes of it, saved by every layer without
    checkpointing, by the one in flight with it (``sdpa_bias_bytes``). Eager attention adds its mask to its scores
    instead (its own terms)."""
    if not masked_sdpa(arch, cfg):
        return 0.0
    return cal.sdpa_mask_bytes + cal.sdpa_bias_bytes * (1 if gc else arch.attention_layers)


def repeated_kv_bytes(arch: "Arch", cfg: "TrainConfig") -> float:
    """Bytes per token one layer saves more where sdpa runs masked (:func:`masked_sdpa`): transformers 5.17
    (``integrations/sdpa_attention.py``) hands grouped-query keys and values to sdpa as they are only without a
    mask (``use_gqa_in_sdpa``); with one it copies them out to every query head (``repeat_kv``), and sdpa saves
    the copies, bf16, for backward in place of the grouped ones. Read in the code; the runs it explains are in
    docs/accuracy.md (TinyLlama prompt tuning padded to mixed lengths: 3.5 B per hidden value per layer missing,
    which is 2 x (2,048 - 256) x 2 B)."""
    if not masked_sdpa(arch, cfg):
        return 0.0
    return 2.0 * 2 * max(0, arch.q_dim - arch.kv_dim)


def masked_attention_flops(arch: "Arch", cfg: "TrainConfig", seq: int, tokens: int) -> float:
    """Training FLOPs of attention's products under the masked kernel, which computes every query x key pair, the
    masked ones too: of each sequence, or of the whole flattened micro-batch where it is packed."""
    return 12.0 * arch.attention_layers * arch.q_dim * tokens * (tokens if cfg.packing else seq)


def sliding_mask_terms(arch: "Arch", cfg: "TrainConfig", cal: "Calibration") -> tuple[int, float, float]:
    """(window, bytes per query x key pair with checkpointing, without) of the mask that sliding-window layers (Gemma 3,
    Mistral) run sdpa with where the sequence reaches their window (:func:`sliding_masked_layers`), examples filling
    it: transformers builds the boolean mask once (``sdpa_mask_bytes``) and sdpa's masked
    kernel makes its bias, saved by every sliding layer without checkpointing (``sdpa_bias_bytes``). Where examples
    of mixed length already mask every layer, nothing more (:func:`mask_pair_bytes`)."""
    window = _sliding_window(arch, cfg)
    if not window:
        return 0, 0.0, 0.0
    return window, cal.sdpa_mask_bytes + cal.sdpa_bias_bytes, cal.sdpa_mask_bytes + cal.sdpa_bias_bytes * arch.sliding_layers


def _sliding_window(arch: "Arch", cfg: "TrainConfig") -> int:
    """The window of the sliding layers that sdpa masks once the keys reach it, or 0: none, eager attention (its own
    terms), or examples of mixed length, which mask every layer already (:func:`masked_sdpa`)."""
    if not arch.sliding_window or not arch.sliding_layers or arch.attention != "sdpa" or masked_sdpa(arch, cfg):
        return 0
    return arch.sliding_window


def sliding_masked_layers(arch: "Arch", cfg: "TrainConfig", seq: int) -> int:
    """Sliding-window layers that sdpa runs with a mask at ``seq`` tokens, examples filling it: transformers 5.17 skips
    the mask only while the keys are fewer than the window (``masking_utils._ignore_causal_mask_sdpa``: none at
    ``kv_length >= local_attention_size``), so from the window on, equal to it included, they leave flash attention for
    the masked kernel."""
    window = _sliding_window(arch, cfg)
    return arch.sliding_layers if window and seq >= window else 0


def new_length_host_seconds(arch: "Arch", cfg: "TrainConfig", cal: "Calibration") -> float:
    """Host seconds a masked micro-batch adds when its length is new to the run: every masked sdpa call of its
    attention layers (forward, checkpointing's second forward, backward) at ``masked_new_fwd_ms`` and
    ``masked_new_bwd_ms``, the share ``masked_new_share`` of them. A padded micro-batch's length is its longest
    example's; a packed one is its rows flattened into one sequence, whose length varies with their fill (packing_b:
    30 to 61 lengths in 83 to 196 micro-batches).
    Examples of one length need no mask: 0."""
    if not masked_sdpa(arch, cfg):
        return 0.0
    forward = arch.attention_layers * (2 if cfg.gradient_checkpointing else 1)
    calls = forward * cal.step.masked_new_fwd_ms + arch.attention_layers * cal.step.masked_new_bwd_ms
    return cal.step.masked_new_share * calls / 1e3


def warmup_seconds(arch: "Arch", cfg: "TrainConfig", cal: "Calibration") -> float:
    """Seconds a training run's first steps take beyond its steady ones, once a run (every GPU at once): longer where
    sdpa runs masked (every length is new at the start, :func:`new_length_host_seconds`)."""
    return cal.step.masked_warmup_s if masked_sdpa(arch, cfg) else cal.step.warmup_s
