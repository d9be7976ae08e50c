"""The form of a method's fitted activation constants (:class:`ActCoef`): a floor of its own, so that each
method module declares its constants (``Method.fitted``) and :mod:`ftdecide.core.calibration` assembles them,
neither importing the other's module at load time."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class ActCoef:
    """Bytes saved per value by one method variant (fitted; the terms are described in
    :mod:`ftdecide.core.estimator`)."""

    a_h: float
    a_q: float
    a_kv: float
    a_i: float
    a_e: float  # eager attention: per head per key position
    c_h: float  # per token, outside the layers (final norm)
    g: float  # per layer with checkpointing
    nodrop: float = 0.0  # LoRA with dropout 0: inputs of targeted o_proj/down_proj
    nodrop_h: float = 0.0  # LoRA with dropout 0: the normed input of each targeted block (attention, MLP)
    big: float = 0.0  # QLoRA: bytes per value of the largest linear (dequantization workspace)
    big_gc: float = 0.0
    recompute: float = 1.0  # share of one saved layer that checkpointed backward holds at once
    a_n: float = 0.0  # per extra norm beyond two per layer (Gemma 2's post-attention/post-MLP norms)
    a_o: float = 0.0  # DoRA: per output value of each adapted linear (its base and LoRA results, kept for the magnitude's gradient)
    a_in: float = 0.0  # IA3: per input value of each feed-forward module it scales (kept in fp32)
