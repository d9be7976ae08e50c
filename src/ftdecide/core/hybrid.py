"""Gated DeltaNet linear attention (Qwen3.5, Qwen3.5-MoE, Qwen3-Next) in the activation model: what a
linear-attention layer saves beyond a self-attention layer of the same model, and what the hybrids' gated
self-attention saves beyond an ungated one (bytes per token). A part of :mod:`ftdecide.core.estimator`.

The constants are transformers 5.17's PyTorch path (``torch_chunk_gated_delta_rule``, ``causal_conv1d_fn``'s
fallback), which runs where flash-linear-attention and causal-conv1d are not installed: every tensor that path
saves for backward, counted on the CPU by storage over nine sets of widths, fits these terms to the byte
(``python benchmarks/linear_attention_trace.py``; the same for both layouts). That path keeps its chunks in fp32:
q, k and v up-cast, the decay matrices of every 64-token chunk, and the recurrent state at every chunk boundary
(``value heads x key width x value width`` fp32 values per 64 tokens). With the fused kernels installed a layer
saves less: not measured, and the plan says so.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:  # pragma: no cover - types only
    from .arch import Arch
    from .coefs import ActCoef

CHUNK = 64  # the delta rule's chunk (tokens); its state is saved once per chunk
# bytes per token of the linear mixer (its input norm included), by width: hidden; key heads x key width (q and
# k before they are repeated to the value heads); value heads x key width (q, k repeated, fp32, normalised,
# decayed); value heads x value width (v, z, the output, fp32 copies); per value head (the 64 x 64 decay and
# UT matrices of each chunk, fp32); the recurrent state per chunk (fp32)
MIXER = (10.0, 8.0, 32.0, 34.0, 1318.0, 4.0)
# what the CPU trace of a Qwen3 attention layer saves per hidden value in its norm and around sdpa, which the
# fitted attention coefficients (a_h) already count for every layer
SHARED_H = 8.0
# the output gate: q_proj's gate half, its sigmoid and the gated output (bf16), per hidden, q and kv value
GATE = (2.0, 8.0, 2.0)


def mixer_bytes(arch: "Arch") -> float:
    """Bytes per token one Gated DeltaNet mixer saves (its input norm included), transformers' PyTorch path."""
    h, kd, dv, hv = arch.hidden_size, arch.linear_k_dim, arch.linear_v_dim, arch.linear_v_heads
    a, b, c, d, e, f = MIXER
    return a * h + b * arch.linear_k_heads * kd + c * hv * kd + d * hv * dv + e * hv + f * hv * kd * dv / CHUNK


def gate_bytes(arch: "Arch") -> float:
    """Bytes per token the output gate of a hybrid's self-attention saves beyond an ungated attention."""
    if not arch.attn_gate:
        return 0.0
    a, b, c = GATE
    return a * arch.hidden_size + b * arch.q_dim + c * arch.kv_dim


def layer_terms(arch: "Arch", c: "ActCoef", beside: float) -> tuple[float, float]:
    """(bytes per token to add to the average layer, bytes per token a linear-attention layer holds beyond that
    average). A linear-attention layer saves its mixer's bytes in place of self-attention's (``a_q``, ``a_kv``, and
    ``beside``: q/k norms, and keys and values repeated for a masked kernel); the self-attention layers save the
    gate's. Checkpointing recomputes one layer at a time: the larger, the linear one, is what its backward holds."""
    if not arch.linear_layers:
        return 0.0, 0.0
    attention = c.a_q * arch.q_dim + c.a_kv * arch.kv_dim + beside + gate_bytes(arch)
    linear = mixer_bytes(arch) - SHARED_H * arch.hidden_size - attention
    share = arch.linear_layers / arch.num_layers
    average = share * linear + (1 - share) * gate_bytes(arch)
    return average, max(0.0, linear + gate_bytes(arch) - average)
