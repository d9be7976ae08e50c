"""Layers of two attention geometries, and what Gemma 4 adds to a layer (transformers 5.17 ``modeling_gemma4.py``).

A part of :mod:`ftdecide.core.arch`, which calls it where ``global_head_dim`` is set. Gemma 4's full-attention
layers are not its sliding ones made global: their heads are ``global_head_dim`` wide (512 by default), they may
have their own key-value head count (``num_global_key_value_heads``) and, with ``attention_k_eq_v``, no v_proj
(the keys are the values). The last ``num_kv_shared_layers`` layers take their keys and values from an earlier
layer of their kind and hold no k_proj, v_proj or k_norm; with ``use_double_wide_mlp`` their MLP is twice as wide.
Per-layer input embeddings (PLE, ``hidden_size_per_layer_input``) add a table of ``vocab_size_per_layer_input`` x
(layers x that width), a projection onto it from the hidden states, and a gate, a projection and a norm in every
layer. The MoE variant runs its routed experts beside the dense MLP, not instead of it.

The modules' shapes are given as :meth:`Arch.linear_shapes` gives every shape: ``(in, out, share of the layers)``,
with a width averaged over the layers that have the module where it differs between them. Counts are linear in the
widths, so totals and LoRA counts stay exact (checked against transformers' build:
``data/counts/families_gemma4_2026-12-07.jsonl``); what a single layer holds at a time is the average layer's.
"""

from __future__ import annotations


def layer_counts(arch) -> tuple[int, int, int, int]:
    """(sliding layers, full-attention layers, sliding layers with their own keys and values, full ones with theirs)."""
    sliding = arch.sliding_layers if arch.sliding_window else 0
    full = arch.num_layers - sliding
    shared_full = arch.kv_shared_global
    shared_sliding = arch.kv_shared_layers - shared_full
    return sliding, full, sliding - shared_sliding, full - shared_full


def _widths(arch) -> tuple[int, int, int, int]:
    """(sliding head width, full head width, sliding key-value heads, full key-value heads)."""
    return arch.head_dim, arch.global_head_dim or arch.head_dim, arch.num_kv_heads, arch.global_kv_heads or arch.num_kv_heads


def q_dim(arch) -> float:
    """Query width (heads x head width), averaged over the layers."""
    s, f, _, _ = layer_counts(arch)
    hd, ghd, _, _ = _widths(arch)
    return arch.num_heads * (s * hd + f * ghd) / arch.num_layers


def kv_dim(arch) -> float:
    """Key width (key-value heads x head width), averaged over the layers."""
    s, f, _, _ = layer_counts(arch)
    hd, ghd, kv, gkv = _widths(arch)
    return (s * kv * hd + f * gkv * ghd) / arch.num_layers


def _kv_totals(arch) -> tuple[int, int, int, int]:
    """(layers with k_proj, their key widths summed, layers with v_proj, their value widths summed)."""
    _, _, sn, fn = layer_counts(arch)
    hd, ghd, kv, gkv = _widths(arch)
    k_layers, k_width = sn + fn, sn * kv * hd + fn * gkv * ghd
    if arch.global_k_eq_v:  # the full layers' values are their keys: no v_proj
        return k_layers, k_width, sn, sn * kv * hd
    return k_layers, k_width, k_layers, k_width


def attention_shapes(arch) -> dict[str, tuple[int, float, float]]:
    """q_proj, k_proj, v_proj and o_proj as ``(in, out, share of the layers)``."""
    h, n = arch.hidden_size, arch.num_layers
    q = q_dim(arch)
    out: dict[str, tuple[int, float, float]] = {"q_proj": (h, q, 1.0)}
    k_layers, k_width, v_layers, v_width = _kv_totals(arch)
    if k_layers:
        out["k_proj"] = (h, k_width / k_layers, k_layers / n)
    if v_layers:
        out["v_proj"] = (h, v_width / v_layers, v_layers / n)
    out["o_proj"] = (q, h, 1.0)
    return out


def mlp_width(arch) -> float:
    """The dense MLP's width averaged over the layers: the key-value-sharing layers' twice as wide where the
    config says so (and some layer has keys of its own)."""
    n, shared = arch.num_layers, arch.kv_shared_layers
    wide = shared if arch.shared_mlp_wide and shared < n else 0
    return arch.intermediate_size * (n + wide) / n


def ple_shapes(arch) -> dict[str, tuple[int, float, float]]:
    """The per-layer-input modules: a gate and a projection in every layer, and the model's projection of the hidden
    states onto every layer's input at once (one module, given as a share of 1/layers of a layer)."""
    h, p, n = arch.hidden_size, arch.ple_dim, arch.num_layers
    return {"per_layer_input_gate": (h, p, 1.0), "per_layer_projection": (p, h, 1.0), "per_layer_model_projection": (h, n * p, 1.0 / n)}


def other_params(arch) -> int:
    """Parameters that are neither nn.Linear weights nor experts nor embeddings, over the whole model: per-head q and
    k norms (v's has no weight), biases, the PLE norms and table, and the MoE block's router scales and norms."""
    s, f, sn, fn = layer_counts(arch)
    hd, ghd, _, _ = _widths(arch)
    h, n = arch.hidden_size, arch.num_layers
    out = (s * hd + f * ghd) + (sn * hd + fn * ghd)  # q_norm in every layer, k_norm where the keys are its own
    if arch.qkv_bias:
        _, k_width, _, v_width = _kv_totals(arch)
        out += round(q_dim(arch) * n) + k_width + v_width
    if arch.o_bias:
        out += n * h
    if arch.ple_dim:
        # the table, its norm, and each layer's norm after the projection
        out += arch.ple_vocab * n * arch.ple_dim + arch.ple_dim + n * h
    if arch.mlp_beside_experts:
        # the router's input scale and per-expert scale, and three norms around the experts
        out += n * (4 * h + arch.num_experts)
    return out


def param_tensors(arch) -> float:
    """Parameter tensors beyond the linear weights and the layers' norms, whole model (an optimizer's loop count)."""
    _, _, sn, fn = layer_counts(arch)
    n = arch.num_layers
    out = n + sn + fn  # q_norm, k_norm
    if arch.ple_dim:
        out += 2 + n
    if arch.mlp_beside_experts:
        out += 5 * n
    return out


def layer_bytes(arch, trains_base: bool) -> float:
    """Bytes per token a Gemma 4 layer saves for backward beyond a Gemma 3 layer of the same widths, counted on the CPU
    (autograd's saved tensors by storage, bf16, transformers 5.17; ``benchmarks/gemma4_trace.py``): the value norm's
    fp32 input (4 B per key-value value); the per-layer input's gate, product, projection and norm (a frozen base:
    4 B per hidden and 6 per per-layer-input value; where the base trains, 10 and 8); and the MoE block's three norms
    and the router's in fp32 (16 B per hidden value) with a bf16 copy of the token per routed expert (2 B per hidden
    value each). The fits leave under 8 B a token over the widths traced."""
    if not arch.global_head_dim:
        return 0.0
    h = arch.hidden_size
    out = 4.0 * kv_dim(arch)
    if arch.ple_dim:
        out += (10.0 * h + 8.0 * arch.ple_dim) if trains_base else (4.0 * h + 6.0 * arch.ple_dim)
    if arch.mlp_beside_experts:
        out += 16.0 * h + 2.0 * h * arch.experts_per_token + 4.0 * arch.num_experts
    return out


# the widest head flash attention takes (torch 2.11 ``sdp_utils.cpp``, ``check_head_dim_size_flash``)
FLASH_MAX_HEAD_DIM = 256


def math_attention(arch, masked: bool) -> tuple[float, float]:
    """(bytes per token, bytes per token per key position) a layer saves, averaged over the layers, where torch 2.11
    runs Gemma 4's full-attention layers on sdpa's math kernel. Read in torch's dispatch (``sdp_utils.cpp``), for
    heads wider than flash's 256 (512 by default) with fewer key-value heads than query heads and no mask (examples
    that fill the sequence): transformers hands sdpa the grouped keys and values (``enable_gqa``), which flash refuses
    for the head width, the memory-efficient kernel for the grouping and cuDNN for both. The math kernel then saves
    the scaled queries and the keys and values copied out to every query head (3 x heads x head width, bf16) and the
    softmax's probabilities (heads x keys, bf16). With a mask, transformers copies the keys and values itself and the
    memory-efficient kernel takes the call: nothing of this. Not fitted: on the runs of ``data/grids/gemma4_a.jsonl``
    without checkpointing it accounts for 0.625 of the 0.635 GiB the 31B-like shape was under, half of the E2B-like
    shape's 1.11 GiB."""
    _, full, _, _ = layer_counts(arch)
    _, ghd, _, gkv = _widths(arch)
    if masked or arch.attention != "sdpa" or ghd <= FLASH_MAX_HEAD_DIM or gkv >= arch.num_heads or not full:
        return 0.0, 0.0
    share = full / arch.num_layers
    return share * 3 * arch.num_heads * ghd * 2.0, share * arch.num_heads * 2.0


def model_bytes(arch, trains_base: bool) -> float:
    """Bytes per token the per-layer inputs hold outside the layers, through the whole step (they are built once,
    before the first layer): their fp32 norm, 4 B per value of every layer's input; where the base trains, 8 B and
    the projection's bf16 input (2 B per hidden value). Traced as :func:`layer_bytes`."""
    if not arch.ple_dim:
        return 0.0
    values = arch.num_layers * arch.ple_dim
    return (2.0 * arch.hidden_size + 8.0 * values) if trains_base else 4.0 * values


def widest(arch):
    """``arch`` with every layer its widest kind, whose recompute sets a checkpointed step's peak: full attention (its
    own head width and key-value heads), and the double-wide MLP where the key-value-sharing layers have it (a shared
    full-attention layer holds no keys of its own: an upper bound by its k_proj). None where the layers are all alike."""
    n, shared = arch.num_layers, arch.kv_shared_layers
    if not (arch.global_head_dim and (arch.sliding_layers or shared)):
        return None
    wide = arch.shared_mlp_wide and 0 < shared < n
    return arch.model_copy(
        update={
            "sliding_layers": 0,
            "kv_shared_layers": 0,
            "kv_shared_global": 0,
            "intermediate_size": arch.intermediate_size * (2 if wide else 1),
        }
    )


def widest_excess(arch, mods: tuple[str, ...], average: float, layer_bytes_of) -> float:
    """Bytes per token the widest layer (:func:`widest`) saves beyond the average one, ``average``: what a
    checkpointed step's recompute holds more at that layer (``layer_bytes_of(arch, modules)``: the estimator's bytes
    of one layer). 0 where the layers are alike."""
    wide = widest(arch)
    if wide is None:
        return 0.0
    kept = tuple(m for m in mods if m in wide.adapter_shapes())  # keys as values: no v_proj in a full layer
    return max(0.0, layer_bytes_of(wide, kept) - average)


def beside(arch) -> float:
    """The dense MLP's width where the routed experts run beside it (its intermediate values join theirs)."""
    return mlp_width(arch) if arch.mlp_beside_experts else 0.0
