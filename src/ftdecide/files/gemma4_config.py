"""Gemma 4's config keys (transformers 5.17 ``Gemma4TextConfig``, ``Gemma4VisionConfig``, ``Gemma4AudioConfig``) and the
counts of the towers its causal-LM class loads with the text model. A part of :mod:`ftdecide.files.hfconfig`.

``AutoModelForCausalLM`` builds a ``gemma4`` config as ``Gemma4ForConditionalGeneration``: the text model with the
vision and audio towers the config has (neither by default), each with its projection onto the text model's width.
"""

from __future__ import annotations

from ..core.arch import MAX_LAYERS
from ..core.errors import flag, preview

_SLIDING, _FULL = "sliding_attention", "full_attention"
# Gemma4TextConfig: every sixth layer a full-attention one (and the last, always); global_head_dim a keyword it pops
_PATTERN, _GLOBAL_HEAD_DIM = 6, 512
_VISION = {
    "hidden_size": 768,
    "intermediate_size": 3072,
    "num_hidden_layers": 16,
    "num_attention_heads": 12,
    "num_key_value_heads": 12,
    "head_dim": 64,
    "patch_size": 16,
    "position_embedding_size": 10240,
}
_AUDIO = {"hidden_size": 1024, "num_hidden_layers": 12, "num_attention_heads": 8, "conv_kernel_size": 5, "output_proj_dims": 1536}


def _whole(d: dict, key: str, default: int, what: str, zero: bool = False) -> int:
    v = d.get(key)
    if v is None:
        return default
    if not isinstance(v, int) or isinstance(v, bool) or not (0 if zero else 1) <= v <= 1 << 20:
        raise ValueError(f"{what}'{key}' must be a {'whole' if zero else 'positive whole'} number, got {preview(v)}")
    return v


def layer_types(cfg: dict, layers: int) -> list[str]:
    """Each layer's attention as Gemma4TextConfig lays them out: ``layer_types`` where given, else every sixth layer
    full; the last layer is made a full one either way (transformers forces it)."""
    types = cfg.get("layer_types")
    if types is None:
        types = [_FULL if (i + 1) % _PATTERN == 0 else _SLIDING for i in range(layers)]
    elif not isinstance(types, list) or len(types) != layers or any(t not in (_SLIDING, _FULL) for t in types):
        raise ValueError(f"'layer_types' must name '{_SLIDING}' or '{_FULL}' for each of the {layers} layers, got {preview(types)}")
    return [*types[:-1], _FULL]


def text_fields(cfg: dict) -> dict:
    """The :class:`~ftdecide.core.arch.Arch` fields of a ``gemma4_text`` config beyond the Llama layout."""
    layers = cfg["num_hidden_layers"]
    if layers > MAX_LAYERS:  # before any list of the layers is built
        raise ValueError(f"num_hidden_layers {layers:,} is more than {MAX_LAYERS:,}")
    types = layer_types(cfg, layers)
    shared = _whole(cfg, "num_kv_shared_layers", 0, "", zero=True)
    if shared > layers:
        raise ValueError(f"'num_kv_shared_layers' {shared} is more than num_hidden_layers {layers}")
    k_eq_v = flag(cfg.get("attention_k_eq_v"), "attention_k_eq_v", False)
    out = {
        "sliding_window": _whole(cfg, "sliding_window", 512, ""),
        "sliding_layers": types.count(_SLIDING),
        "global_head_dim": _whole(cfg, "global_head_dim", _GLOBAL_HEAD_DIM, ""),
        # transformers gives the full layers their own key-value heads only with attention_k_eq_v
        "global_kv_heads": _whole(cfg, "num_global_key_value_heads", 0, "", zero=True) if k_eq_v else 0,
        "global_k_eq_v": k_eq_v,
        "kv_shared_layers": shared,
        "kv_shared_global": types[layers - shared :].count(_FULL) if shared else 0,
        "shared_mlp_wide": flag(cfg.get("use_double_wide_mlp"), "use_double_wide_mlp", False),
        "ple_dim": _whole(cfg, "hidden_size_per_layer_input", 256, "", zero=True),
    }
    out["ple_vocab"] = _whole(cfg, "vocab_size_per_layer_input", 262144, "") if out["ple_dim"] else 0
    if flag(cfg.get("enable_moe_block"), "enable_moe_block", False):
        experts, per_token = cfg.get("num_experts"), cfg.get("top_k_experts")
        width = cfg.get("moe_intermediate_size")
        if not all(isinstance(v, int) and not isinstance(v, bool) and v > 0 for v in (experts, per_token, width)):
            raise ValueError("'enable_moe_block' needs num_experts, top_k_experts and moe_intermediate_size as positive whole numbers")
        out.update(num_experts=experts, experts_per_token=per_token, moe_intermediate_size=width, mlp_beside_experts=True)
    return out


def text_keys(arch) -> dict:
    """The inverse of :func:`text_fields`: the keys a ``gemma4_text`` config gives ``arch``'s layout in."""
    # the layers with keys of their own, then the sharing ones; each part its sliding layers first, its full ones last
    full, shared, shared_full = arch.num_layers - arch.sliding_layers, arch.kv_shared_layers, arch.kv_shared_global
    own_sliding = arch.sliding_layers - (shared - shared_full)
    types = [_SLIDING] * own_sliding + [_FULL] * (full - shared_full) + [_SLIDING] * (shared - shared_full) + [_FULL] * shared_full
    out = {
        "layer_types": types,
        "sliding_window": arch.sliding_window,
        "global_head_dim": arch.global_head_dim,
        "attention_k_eq_v": arch.global_k_eq_v,
        "num_kv_shared_layers": arch.kv_shared_layers,
        "use_double_wide_mlp": arch.shared_mlp_wide,
        "hidden_size_per_layer_input": arch.ple_dim,
        "enable_moe_block": arch.mlp_beside_experts,
    }
    if arch.global_kv_heads:
        out["num_global_key_value_heads"] = arch.global_kv_heads
    if arch.ple_dim:
        out["vocab_size_per_layer_input"] = arch.ple_vocab
    if arch.mlp_beside_experts:
        out.update(num_experts=arch.num_experts, top_k_experts=arch.experts_per_token, moe_intermediate_size=arch.moe_intermediate_size)
    return out


def _vision(vc: dict) -> tuple[int, int, int]:
    v = {k: _whole(vc, k, d, "vision_config ") for k, d in _VISION.items()}
    h, i, heads, kv, hd, p = (
        v[k] for k in ("hidden_size", "intermediate_size", "num_attention_heads", "num_key_value_heads", "head_dim", "patch_size")
    )
    # per layer: q, k, v, o and the gated MLP (nn.Linear inside Gemma4ClippableLinear), q and k norms, four norms
    linear = 2 * h * heads * hd + 2 * h * kv * hd + 3 * h * i
    layers = v["num_hidden_layers"]
    patch = 3 * p * p * h
    params = patch + 2 * v["position_embedding_size"] * h + layers * (linear + 2 * hd + 4 * h)
    return params, patch + layers * linear, h


def _audio(ac: dict) -> tuple[int, int, int]:
    a = {k: _whole(ac, k, d, "audio_config ") for k, d in _AUDIO.items()}
    channels = ac.get("subsampling_conv_channels", [128, 32])
    if not (
        isinstance(channels, list)
        and len(channels) == 2
        and all(isinstance(c, int) and not isinstance(c, bool) and c > 0 for c in channels)
    ):
        raise ValueError(f"audio_config 'subsampling_conv_channels' must be two positive whole numbers, got {preview(channels)}")
    h, out, c0, c1 = a["hidden_size"], a["output_proj_dims"], channels[0], channels[1]
    head = h // a["num_attention_heads"]
    proj_in = (c0 // 4) * c1 * h
    # per layer: two feed-forwards (h -> 4h -> h), q, k, v and relative_k_proj (heads x head width), post, the light
    # convolution's start (h -> 2h) and end; then the depthwise kernel, per_dim_scale and nine norms
    linear = 16 * h * h + 4 * h * a["num_attention_heads"] * head + h * h + 3 * h * h
    layer = linear + h * a["conv_kernel_size"] + head + 9 * h
    params = 9 * c0 + c0 + 9 * c0 * c1 + c1 + proj_in + a["num_hidden_layers"] * layer + h * out + out
    return params, proj_in + a["num_hidden_layers"] * linear + h * out, out


def tower_params(outer: dict, text_hidden: int) -> tuple[int, int]:
    """(parameters, nn.Linear weights) of the vision and audio towers a ``gemma4`` config has, with their projections
    onto the text model (bitsandbytes quantizes those nn.Linear weights with the text model's in QLoRA)."""
    params = linear = 0
    for key in ("vision_config", "audio_config"):
        sub = outer.get(key)
        if sub is None:
            continue
        if not isinstance(sub, dict):
            raise ValueError(f"'{key}' must be an object, got {preview(sub)}")
        # (parameters, nn.Linear weights, the width the tower hands to its projection)
        p, lin, width = _vision(sub) if key == "vision_config" else _audio(sub)
        params += p + width * text_hidden
        linear += lin + width * text_hidden
    return params, linear


def tower_config(outer: dict) -> tuple[tuple[str, int], ...]:
    """The towers' whole-number fields, as ``vision.<key>`` and ``audio.<key>`` (Arch.vision_config), for
    :func:`tower_dicts` to write back."""
    out = []
    for key, prefix in (("vision_config", "vision."), ("audio_config", "audio.")):
        sub = outer.get(key)
        if isinstance(sub, dict):
            out.append((prefix + "present", 1))
            out += [(prefix + k, v) for k, v in sub.items() if isinstance(v, int) and not isinstance(v, bool)]
            channels = sub.get("subsampling_conv_channels")
            if isinstance(channels, list):
                out += [(f"{prefix}subsampling_conv_channels.{i}", c) for i, c in enumerate(channels)]
    return tuple(sorted(out))


def tower_dicts(fields: tuple[tuple[str, int], ...]) -> dict:
    """The inverse of :func:`tower_config`: ``vision_config`` and ``audio_config`` as the config had them."""
    out: dict[str, dict] = {}
    for name, v in fields:
        prefix, key = name.split(".", 1)
        sub = out.setdefault(f"{prefix}_config", {})
        if key.startswith("subsampling_conv_channels."):
            sub.setdefault("subsampling_conv_channels", []).append(v)
        elif key != "present":
            sub[key] = v
    return out
