"""Turn a Hugging Face ``config.json`` (a dict) into an :class:`~ftdecide.core.arch.Arch`.

Fields a config leaves out take the transformers defaults for its ``model_type`` (as
``AutoConfig.for_model`` would), so that a probe grid and a downloaded config give the same shape.
"""

from __future__ import annotations

import re

from ..core.arch import MAX_LAYERS, Arch
from ..core.errors import InputError, flag, preview, validation_problem
from . import gemma4_config
from .families import FAMILIES

# Image-text families AutoModelForCausalLM does not build: no trainer's causal-LM path loads them.
REFUSED = {
    "mistral3": "mistral3 (Mistral Small 3.1 and 3.2) is an image-text model that AutoModelForCausalLM does not build, so "
    "TRL's and the other trainers' causal-LM path cannot load it; size its text model (mistral-small-3-24b, or its text_config "
    "saved as a mistral config.json)",
    "mistral4": "mistral4 (Mistral Small 4) has no class AutoModelForCausalLM builds in transformers 5.17, so TRL's and the "
    "other trainers' causal-LM path cannot load it",
}
_REQUIRED = ("hidden_size", "intermediate_size", "num_hidden_layers", "num_attention_heads", "vocab_size")
_OPTIONAL_INTS = (
    "num_key_value_heads",
    "head_dim",
    "num_local_experts",
    "num_experts",
    "n_routed_experts",
    "num_experts_per_tok",
    "moe_intermediate_size",
    "shared_expert_intermediate_size",
    "n_shared_experts",
    "first_k_dense_replace",
    "intermediate_size_mlp",
    "interleave_moe_layer_step",
    "decoder_sparse_step",
    "q_lora_rank",
    "kv_lora_rank",
    "qk_nope_head_dim",
    "qk_rope_head_dim",
    "v_head_dim",
    "linear_num_key_heads",
    "linear_num_value_heads",
    "linear_key_head_dim",
    "linear_value_head_dim",
    "linear_conv_kernel_dim",
    "full_attention_interval",
)
# SiglipVisionConfig's defaults (transformers 5.17), which Gemma3Config takes for a vision_config it lacks
_SIGLIP = {"hidden_size": 768, "intermediate_size": 3072, "num_hidden_layers": 12, "patch_size": 16, "image_size": 224, "num_channels": 3}


def siglip_params(vision: dict, text_hidden: int) -> tuple[int, int]:
    """(parameters, nn.Linear weights) of Gemma 3's SigLIP vision tower (with its attention-pooling head) and
    its projector onto the text model's width, as transformers 5.17 builds them. The second is the attention
    and MLP projections of every layer and of the head, which bitsandbytes quantizes with the text model's
    for QLoRA."""
    v = dict(_SIGLIP)
    for k in _SIGLIP:
        x = vision.get(k)
        if x is None:
            continue
        if not isinstance(x, int) or isinstance(x, bool) or not 0 < x <= 1 << 20:
            raise ValueError(f"vision_config '{k}' must be a positive whole number, got {preview(x)}")
        v[k] = x
    h, i, layers, p = v["hidden_size"], v["intermediate_size"], v["num_hidden_layers"], v["patch_size"]
    patches = (v["image_size"] // p) ** 2
    embeddings = h * v["num_channels"] * p * p + h + patches * h
    layer = 4 * h + 4 * (h * h + h) + (h * i + i) + (i * h + h)
    head = h + 3 * h * h + 3 * h + h * h + h + 2 * h + (h * i + i) + (i * h + h)
    projector = h * text_hidden + h
    linear = layers * (4 * h * h + 2 * h * i) + h * h + 2 * h * i
    return embeddings + layers * layer + 2 * h + head + projector, linear


def reduce_layers(cfg: dict, layers: int) -> dict:
    """``cfg`` with ``layers`` decoder layers (a measurement's smaller copy of a model): the keys that
    name layers (a MoE model's dense first layers, its MoE layer list) follow, so that the copy keeps
    the mix of dense and MoE layers as far as it can."""
    out = dict(cfg)
    family = FAMILIES.get(cfg.get("model_type"))
    if family and family.wraps and isinstance(cfg.get("text_config"), dict):
        out["text_config"] = reduce_layers({"model_type": family.wraps, **cfg["text_config"]}, layers)
        out["text_config"].pop("model_type")
        if isinstance(out.get("vision_config"), dict) and "num_hidden_layers" in out["vision_config"]:
            out["vision_config"] = dict(out["vision_config"], num_hidden_layers=min(out["vision_config"]["num_hidden_layers"], layers))
        return out
    out["num_hidden_layers"] = layers
    if "first_k_dense_replace" in cfg:
        out["first_k_dense_replace"] = min(cfg["first_k_dense_replace"], max(0, layers - 1))
    for key in ("layer_types", "moe_layers", "no_rope_layers"):
        out.pop(key, None)
    shared, n = cfg.get("num_kv_shared_layers"), cfg.get("num_hidden_layers")
    if isinstance(shared, int) and shared > 0 and isinstance(n, int) and n > 0:
        # Gemma 4: the shared layers keep their share, after six layers of their own (the default pattern's sliding and
        # full ones: transformers finds each shared layer's source among them)
        out["num_kv_shared_layers"] = min(round(shared * layers / n), max(0, layers - 6))
    if isinstance(cfg.get("mlp_only_layers"), list):
        out["mlp_only_layers"] = [i for i in cfg["mlp_only_layers"] if isinstance(i, int) and i < layers]
    return out


def _int(cfg: dict, key: str, default):
    v = cfg.get(key)
    return default if v is None else v


def _dense_layers(mt: str, cfg: dict, layers: int) -> int:
    """Layers of a MoE model whose MLP is dense, as the family's decoder decides per layer."""
    if layers > MAX_LAYERS:
        raise ValueError(f"num_hidden_layers {layers:,} is more than {MAX_LAYERS:,}")
    if mt in ("deepseek_v3", "glm4_moe"):
        return min(layers, _int(cfg, "first_k_dense_replace", 3 if mt == "deepseek_v3" else 1))
    if mt in ("qwen3_moe", "qwen3_next"):
        step = _int(cfg, "decoder_sparse_step", 1) or 1
        only = cfg.get("mlp_only_layers") or []
        if not isinstance(only, list) or not all(isinstance(i, int) and not isinstance(i, bool) for i in only):
            raise ValueError(f"'mlp_only_layers' must be a list of layer numbers, got {preview(only)}")
        return sum(1 for i in range(layers) if i in only or (i + 1) % step)
    if mt == "llama4_text":
        moe = cfg.get("moe_layers")
        if moe is None:
            step = _int(cfg, "interleave_moe_layer_step", 1) or 1
            moe = list(range(step - 1, layers, step))
        if not isinstance(moe, list) or not all(isinstance(i, int) and not isinstance(i, bool) for i in moe):
            raise ValueError(f"'moe_layers' must be a list of layer numbers, got {preview(moe)}")
        return layers - len({i for i in moe if 0 <= i < layers})
    return 0


def _widths(mt: str, cfg: dict, d: dict) -> tuple[int, int, int]:
    """(dense MLP width, routed expert width, shared expert width) as the family names them."""
    dense_i, moe_i, shared_i = cfg["intermediate_size"], 0, 0
    if "moe_intermediate_size" in d:
        moe_i = _int(cfg, "moe_intermediate_size", d["moe_intermediate_size"])
    if mt in ("qwen2_moe", "qwen3_5_moe_text", "qwen3_next"):
        shared_i = _int(cfg, "shared_expert_intermediate_size", d["shared_expert_intermediate_size"])
    elif mt in ("deepseek_v3", "glm4_moe"):
        shared_i = _int(cfg, "n_shared_experts", 1) * moe_i
    elif mt == "llama4_text":
        # the routed and the shared expert are intermediate_size wide; a dense layer's MLP intermediate_size_mlp
        moe_i = shared_i = cfg["intermediate_size"]
        dense_i = _int(cfg, "intermediate_size_mlp", 16384)
    return dense_i, moe_i, shared_i


def _mla(mt: str, cfg: dict) -> dict:
    """DeepSeek-V3's latent attention widths (DeepseekV3Config's defaults for those left out)."""
    if mt != "deepseek_v3":
        return {}
    return {
        "q_lora_rank": _int(cfg, "q_lora_rank", 1536),
        "kv_lora_rank": _int(cfg, "kv_lora_rank", 512) or 512,
        "qk_nope_head_dim": _int(cfg, "qk_nope_head_dim", 128),
        "qk_rope_head_dim": _int(cfg, "qk_rope_head_dim", 64),
        "v_head_dim": _int(cfg, "v_head_dim", 128),
    }


_SLIDING, _FULL, _LINEAR = "sliding_attention", "full_attention", "linear_attention"
_LINEAR_KEYS = ("linear_num_key_heads", "linear_num_value_heads", "linear_key_head_dim", "linear_value_head_dim", "linear_conv_kernel_dim")


def _linear_attention(cfg: dict, d: dict, layers: int) -> dict:
    """Gated DeltaNet layers as the family's configuration class lays them out (Qwen3.5, Qwen3-Next): ``layer_types``
    where given, else every layer but each ``full_attention_interval``-th; the widths its class defaults to."""
    if "linear" not in d:
        return {}
    *widths, interval = d["linear"]
    k_heads, v_heads, k_dim, v_dim, conv = (_int(cfg, k, w) for k, w in zip(_LINEAR_KEYS, widths, strict=True))
    types = cfg.get("layer_types")
    if types is not None:
        if not isinstance(types, list) or len(types) != layers or any(t not in (_LINEAR, _FULL) for t in types):
            raise ValueError(f"'layer_types' must name '{_LINEAR}' or '{_FULL}' for each of the {layers} layers, got {preview(types)}")
        linear = types.count(_LINEAR)
    else:
        interval = _int(cfg, "full_attention_interval", interval)
        if not interval:
            raise ValueError("'full_attention_interval' must be a positive whole number, got 0")
        linear = layers - layers // interval
    return dict(
        linear_layers=linear, linear_k_heads=k_heads, linear_v_heads=v_heads, linear_k_dim=k_dim, linear_v_dim=v_dim, linear_conv=conv
    )


def _sliding(cfg: dict, d: dict, layers: int) -> dict:
    """Sliding-window layers as the family's configuration class lays them out: ``layer_types`` where given, else
    every layer but each ``sliding_window_pattern``-th (Gemma 3), or every layer where the class has no pattern
    (Mistral, Phi-3, Mixtral); none where ``sliding_window`` is null."""
    if "sliding" not in d:
        return {}
    window_default, pattern_default = d["sliding"]
    window = cfg.get("sliding_window", window_default)
    if window is None:
        return {}
    if not isinstance(window, int) or isinstance(window, bool) or window <= 0:
        raise ValueError(f"'sliding_window' must be a positive whole number, got {preview(window)}")
    types = cfg.get("layer_types")
    if types is not None:
        if not isinstance(types, list) or len(types) != layers or any(t not in (_SLIDING, _FULL) for t in types):
            raise ValueError(f"'layer_types' must name '{_SLIDING}' or '{_FULL}' for each of the {layers} layers, got {preview(types)}")
        return {"sliding_window": window, "sliding_layers": types.count(_SLIDING)}
    if not pattern_default:
        return {"sliding_window": window, "sliding_layers": layers}
    pattern = cfg.get("sliding_window_pattern")
    pattern = pattern_default if pattern is None else pattern
    if not isinstance(pattern, int) or isinstance(pattern, bool) or pattern <= 0:
        raise ValueError(f"'sliding_window_pattern' must be a positive whole number, got {preview(pattern)}")
    return {"sliding_window": window, "sliding_layers": layers - layers // pattern}


def _layer_types(arch: Arch) -> list[str]:
    """``layer_types`` with ``arch``'s sliding layers: at the family's pattern where their count is the pattern's."""
    n, pattern = arch.num_layers, FAMILIES[arch.family].defaults["sliding"][1]
    if arch.sliding_layers == n - n // pattern:
        return [_FULL if (i + 1) % pattern == 0 else _SLIDING for i in range(n)]
    return [_SLIDING] * arch.sliding_layers + [_FULL] * (n - arch.sliding_layers)


# pre-quantized checkpoints that training loads de-quantized to bf16 (what is sized): config.json's
# quantization_config.quant_method, and the transformers config class whose dequantize=True loads it so
DEQUANTIZED = {"mxfp4": "Mxfp4Config", "fp8": "FineGrainedFP8Config"}


def _checkpoint_quant(cfg: dict) -> str:
    q = cfg.get("quantization_config")
    method = q.get("quant_method") if isinstance(q, dict) else None
    return method if method in DEQUANTIZED else ""


def _check_ints(cfg: dict, name: str) -> None:
    """InputError naming a required field that is missing or not a positive integer, or a whole-number field that is not."""
    missing = [k for k in _REQUIRED if k not in cfg]
    if missing:
        raise InputError(f"{name}: model config is missing {', '.join(missing)}")
    for k in _REQUIRED:
        v = cfg[k]
        if not isinstance(v, int) or isinstance(v, bool) or v <= 0:
            raise InputError(f"{name}: '{k}' must be a positive integer, got {preview(v)}")
    for k in _OPTIONAL_INTS:
        v = cfg.get(k)
        if v is not None and (not isinstance(v, int) or isinstance(v, bool) or v < 0):
            raise InputError(f"{name}: '{k}' must be a whole number, got {preview(v)}")


def _towers(mt: str, outer: dict, text_hidden: int, name: str) -> tuple[int, int, tuple]:
    """(parameters, nn.Linear weights, whole-number fields) of the towers a wrapper's causal-LM class loads with the
    text model: Gemma 3's SigLIP, Gemma 4's vision and audio; none for the others."""
    vc = outer.get("vision_config") or {}
    if not isinstance(vc, dict):
        raise InputError(f"{name}: 'vision_config' must be an object, got {preview(vc)}")
    try:
        if mt == "gemma3_text":
            fields = tuple(sorted((k, v) for k, v in vc.items() if isinstance(v, int) and not isinstance(v, bool)))
            return (*siglip_params(vc, text_hidden), fields)
        if mt == "gemma4_text":
            return (*gemma4_config.tower_params(outer, text_hidden), gemma4_config.tower_config(outer))
    except ValueError as e:
        raise InputError(f"{name}: {e}") from None
    return 0, 0, ()


def arch_from_hf_config(cfg: dict, name: str = "config.json") -> Arch:
    """Build an Arch from a ``config.json`` dict; InputError names a missing or unsupported field."""
    if not isinstance(cfg, dict):
        raise InputError(f"{name}: not a model config (expected a JSON object)")
    mt = cfg.get("model_type")
    if mt is None:
        raise InputError(f"{name}: not a model config: no 'model_type' field")
    if isinstance(mt, str) and mt in REFUSED:
        raise InputError(f"{name}: {REFUSED[mt]}")
    if not isinstance(mt, str) or mt not in FAMILIES:
        raise InputError(f"{name}: model_type {preview(mt)} is not supported (supported: {', '.join(sorted(FAMILIES))})")
    outer, vision, vision_linear, note, wrapper, vision_config = cfg, 0, 0, "", "", ()
    if FAMILIES[mt].wraps:
        text = cfg.get("text_config") or {}
        if not isinstance(text, dict):
            raise InputError(f"{name}: 'text_config' must be an object, got {preview(text)}")
        wrapper, mt, note = mt, FAMILIES[mt].wraps, FAMILIES[mt].note
        cfg = {**FAMILIES[mt].defaults.get("required", {}), **text, "model_type": mt}
        if FAMILIES[wrapper].tie_outer:  # the wrapper's own flag decides, else the text config's (Family.tie_outer)
            cfg.pop("tie_word_embeddings", None)
            if "tie_word_embeddings" in outer:
                cfg["tie_word_embeddings"] = outer["tie_word_embeddings"]
    _check_ints(cfg, name)
    path_name = outer.get("_name_or_path")
    if path_name is not None and not isinstance(path_name, str):
        raise InputError(f"{name}: '_name_or_path' must be a string, got {preview(path_name)}")
    if outer is not cfg:
        vision, vision_linear, vision_config = _towers(mt, outer, cfg["hidden_size"], name)
    family = FAMILIES[mt]
    note = "; ".join(n for n in (note, family.note) if n)
    bias, fused, norms, attn = family.qkv_bias, family.fused, family.norms, family.attention
    d, layout = family.defaults, family.layout
    heads = cfg["num_attention_heads"]
    kv = cfg.get("num_key_value_heads") or d["kv"] or heads
    head_dim = cfg.get("head_dim") or d["head_dim"] or cfg["hidden_size"] // heads
    expert_keys, expert_default, per_token_default = d.get("experts", ((), 0, 0))
    experts = next((cfg[k] for k in expert_keys if cfg.get(k)), expert_default) if expert_keys else 0
    dense_i, moe_i, shared_i = _widths(mt, cfg, d)
    mla = _mla(mt, cfg)
    if mla:
        head_dim = mla["qk_rope_head_dim"]
    try:
        # Gemma 4's layers (files/gemma4_config.py), its experts among them; the other families' sliding or linear layers
        sliding = gemma4_config.text_fields(cfg) if mt == "gemma4_text" else {}
        if "num_experts" in sliding:
            experts, moe_i, per_token_default = (sliding.pop(k) for k in ("num_experts", "moe_intermediate_size", "experts_per_token"))
        sliding = sliding or _sliding(cfg, d, cfg["num_hidden_layers"]) | _linear_attention(cfg, d, cfg["num_hidden_layers"])
        attention_bias = flag(cfg.get("attention_bias"), "attention_bias", d.get("bias", bias))
        qk_norm = layout.get("qk_norm", "")
        if mt == "glm4_moe" and flag(cfg.get("use_qk_norm"), "use_qk_norm", False):
            qk_norm = "head"
        tie = flag(cfg.get("tie_word_embeddings"), "tie_word_embeddings", d["tie"])
        return Arch(
            name=path_name or name,
            family=mt,
            hidden_size=cfg["hidden_size"],
            intermediate_size=dense_i,
            num_layers=cfg["num_hidden_layers"],
            num_heads=heads,
            num_kv_heads=kv,
            head_dim=head_dim,
            vocab_size=cfg["vocab_size"],
            tie_embeddings=tie,
            qkv_bias=attention_bias if mt != "qwen2" else True,
            fused_qkv=fused,
            norms_per_layer=norms,
            attention=attn,
            num_experts=experts,
            experts_per_token=_int(cfg, "num_experts_per_tok", per_token_default) if experts else 0,
            moe_intermediate_size=moe_i if experts else 0,
            shared_expert_intermediate_size=shared_i if experts else 0,
            dense_layers=_dense_layers(mt, cfg, cfg["num_hidden_layers"]) if experts else 0,
            o_bias=attention_bias and layout.get("o_bias", False),
            vision_params=vision,
            vision_linear=vision_linear,
            wrapper=wrapper,
            vision_config=vision_config,
            note=note,
            checkpoint_quant=_checkpoint_quant(outer),
            **{k: v for k, v in layout.items() if k not in ("qk_norm", "o_bias")},
            qk_norm=qk_norm,
            **mla,
            **sliding,
            source=name,
        )
    except ValueError as e:
        raise InputError(f"{name}: {validation_problem(e) if hasattr(e, 'errors') else e}") from None


# Config classes that take no attention_bias (their biases are fixed, or there are none)


def hf_config(arch: Arch) -> dict:
    """A ``config.json`` dict that transformers builds ``arch`` from, in its family's keys: the inverse of
    :func:`arch_from_hf_config` (the fields it reads; the rest take the family's defaults)."""
    cfg: dict = {
        "model_type": arch.family,
        "hidden_size": arch.hidden_size,
        "intermediate_size": arch.intermediate_size,
        "num_hidden_layers": arch.num_layers,
        "num_attention_heads": arch.num_heads,
        "num_key_value_heads": arch.num_kv_heads,
        "head_dim": arch.head_dim,
        "vocab_size": arch.vocab_size,
        "tie_word_embeddings": arch.tie_embeddings,
    }
    if FAMILIES[arch.family].bias_key:
        cfg["attention_bias"] = arch.qkv_bias
    if arch.mla:
        cfg.update({k: getattr(arch, k) for k in _mla(arch.family, {})})
        del cfg["head_dim"]
    if arch.family == "gemma4_text":
        cfg.update(gemma4_config.text_keys(arch))
    elif arch.is_moe:
        cfg.update(_moe_keys(arch))
    if arch.family == "glm4_moe":
        cfg["use_qk_norm"] = arch.qk_norm == "head"
    if FAMILIES[arch.family].slides_alike:
        # every layer slides, or none: the class's default window must not stand in for none (MistralConfig's 4096)
        cfg["sliding_window"] = arch.sliding_window or None
    elif arch.sliding_window and arch.family != "gemma4_text":
        cfg.update(sliding_window=arch.sliding_window, layer_types=_layer_types(arch))
    if arch.linear_layers:
        widths = (arch.linear_k_heads, arch.linear_v_heads, arch.linear_k_dim, arch.linear_v_dim, arch.linear_conv)
        cfg.update(
            dict(zip(_LINEAR_KEYS, widths, strict=True)), layer_types=[_LINEAR] * arch.linear_layers + [_FULL] * arch.attention_layers
        )
    if arch.wrapper:
        # the flag in both places: each wrapper's causal-LM class reads one of them (Family.tie_outer)
        text = {k: v for k, v in cfg.items() if k != "model_type"}
        out = {"model_type": arch.wrapper, "text_config": text, "tie_word_embeddings": arch.tie_embeddings}
        if arch.family == "gemma4_text":
            out.update(gemma4_config.tower_dicts(arch.vision_config))
        elif arch.vision_config:
            out["vision_config"] = dict(arch.vision_config)
        return out
    return cfg


def _moe_keys(arch: Arch) -> dict:
    """The expert keys of ``arch``'s family, as :func:`_widths` and :func:`_dense_layers` read them."""
    d = FAMILIES[arch.family].defaults
    dense = arch.dense_layers
    out: dict = {d["experts"][0][0]: arch.num_experts, "num_experts_per_tok": arch.experts_per_token}
    if "moe_intermediate_size" in d:
        out["moe_intermediate_size"] = arch.moe_intermediate_size
    if arch.family in ("qwen2_moe", "qwen3_5_moe_text", "qwen3_next"):
        out["shared_expert_intermediate_size"] = arch.shared_expert_intermediate_size
    if arch.family in ("qwen3_moe", "qwen3_next"):
        out["mlp_only_layers"] = list(range(dense))
    elif arch.family in ("deepseek_v3", "glm4_moe"):
        out.update(n_shared_experts=arch.shared_expert_intermediate_size // max(1, arch.moe_intermediate_size), first_k_dense_replace=dense)
    elif arch.family == "llama4_text":
        out.update(
            intermediate_size=arch.moe_intermediate_size,
            intermediate_size_mlp=arch.intermediate_size,
            moe_layers=list(range(dense, arch.num_layers)),
        )
    return out


# Bare sizes ("13b", "0.5B"): a Llama-like shape of about that many parameters.
_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([bm])\s*$", re.I)


def arch_from_size(text: str) -> Arch | None:
    """A Llama-2-like architecture with about ``text`` parameters (``13b``, ``0.5b``, ``350m``), or
    None if ``text`` is not a size. The shape: hidden a multiple of 128 chosen so that 12*L*h^2 plus a
    32k-token embedding matches, L = h/128, gated MLP of width 8h/3 rounded to 256, MHA."""
    m = _SIZE.match(text)
    if not m:
        return None
    n = float(m.group(1)) * (1e9 if m.group(2).lower() == "b" else 1e6)
    if not (1e7 <= n <= 2e12):
        raise InputError(f"model size {preview(text)} is outside 10M..2T parameters")
    best = None
    for h in range(512, 32769, 128):
        L = max(2, round(h / 128))
        i = int(round(8 * h / 3 / 256)) * 256
        p = L * (4 * h * h + 3 * h * i + 2 * h) + 2 * 32000 * h + h
        if best is None or abs(p - n) < abs(best[0] - n):
            best = (p, h, L, i)
    _, h, L, i = best
    return Arch(
        name=f"llama-like-{text.strip().lower()}",
        family="llama",
        hidden_size=h,
        intermediate_size=i,
        num_layers=L,
        num_heads=h // 128,
        num_kv_heads=h // 128,
        head_dim=128,
        vocab_size=32000,
        assumed=f"'{text.strip()}' is a bare size: a Llama-2-like shape (h={h}, layers={L}, MLP {i}, 32k vocab) was assumed",
    )
