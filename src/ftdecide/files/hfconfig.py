"""Turn a Hugging Face ``config.json`` (a dict) into an :class:`~ftdecide.core.arch.Arch`.

Fields a config leaves out take the transformers defaults for its ``model_type`` (as
``AutoConfig.for_model`` would), so that a probe grid and a downloaded config give the same shape.
"""

from __future__ import annotations

import re

from ..core.arch import Arch
from ..core.errors import InputError, flag, preview, validation_problem

# model_type -> (qkv bias, fused qkv/gate_up, norms per layer, attention implementation it needs)
FAMILIES: dict[str, tuple[bool, bool, int, str]] = {
    "llama": (False, False, 2, "sdpa"),
    "mistral": (False, False, 2, "sdpa"),
    "qwen2": (True, False, 2, "sdpa"),
    "qwen3": (False, False, 2, "sdpa"),
    "gemma": (False, False, 2, "sdpa"),
    "gemma2": (False, False, 4, "eager"),
    "phi3": (False, True, 2, "sdpa"),
    "mixtral": (False, False, 2, "sdpa"),
    "qwen2_moe": (True, False, 2, "sdpa"),
}
# What transformers' config class of each family (transformers 5.17, models/<family>/configuration_*.py)
# takes for a key a config.json leaves out. num_key_value_heads None: as many as the attention heads;
# head_dim None: hidden_size // heads; experts: the family's own key for its expert count (a key of another
# family is ignored, as the class ignores it), its default and the experts per token.
DEFAULTS: dict[str, dict] = {
    "llama": {"kv": None, "head_dim": None, "tie": False},
    "mistral": {"kv": 8, "head_dim": None, "tie": False},
    "qwen2": {"kv": 32, "head_dim": None, "tie": False},
    "qwen3": {"kv": 32, "head_dim": 128, "tie": False},
    "gemma": {"kv": 16, "head_dim": 256, "tie": True},
    "gemma2": {"kv": 4, "head_dim": 256, "tie": True},
    "phi3": {"kv": None, "head_dim": None, "tie": False},
    "mixtral": {"kv": 8, "head_dim": None, "tie": False, "experts": ("num_local_experts", 8, 2)},
    "qwen2_moe": {
        "kv": 16,
        "head_dim": None,
        "tie": False,
        "experts": ("num_experts", 60, 4),
        "moe_intermediate_size": 1408,
        "shared_expert_intermediate_size": 5632,
    },
}
_REQUIRED = ("hidden_size", "intermediate_size", "num_hidden_layers", "num_attention_heads", "vocab_size")
_OPTIONAL_INTS = (
    "num_key_value_heads",
    "head_dim",
    "num_local_experts",
    "num_experts",
    "num_experts_per_tok",
    "moe_intermediate_size",
    "shared_expert_intermediate_size",
)


def arch_from_hf_config(cfg: dict, name: str = "config.json") -> Arch:
    """Build an Arch from a ``config.json`` dict; InputError names a missing or unsupported field."""
    if not isinstance(cfg, dict):
        raise InputError(f"{name}: not a model config (expected a JSON object)")
    mt = cfg.get("model_type")
    if mt is None:
        raise InputError(f"{name}: not a model config: no 'model_type' field")
    if not isinstance(mt, str) or mt not in FAMILIES:
        raise InputError(f"{name}: model_type {preview(mt)} is not supported (supported: {', '.join(sorted(FAMILIES))})")
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
    path_name = cfg.get("_name_or_path")
    if path_name is not None and not isinstance(path_name, str):
        raise InputError(f"{name}: '_name_or_path' must be a string, got {preview(path_name)}")
    bias, fused, norms, attn = FAMILIES[mt]
    d = DEFAULTS[mt]
    heads = cfg["num_attention_heads"]
    kv = cfg.get("num_key_value_heads") or d["kv"] or heads
    head_dim = cfg.get("head_dim") or d["head_dim"] or cfg["hidden_size"] // heads
    tie_default = d["tie"]
    expert_key, expert_default, per_token_default = d.get("experts", (None, 0, 0))
    experts = (cfg.get(expert_key) or expert_default) if expert_key else 0
    try:
        return Arch(
            name=cfg.get("_name_or_path") or name,
            family=mt,
            hidden_size=cfg["hidden_size"],
            intermediate_size=cfg["intermediate_size"],
            num_layers=cfg["num_hidden_layers"],
            num_heads=heads,
            num_kv_heads=kv,
            head_dim=head_dim,
            vocab_size=cfg["vocab_size"],
            tie_embeddings=flag(cfg.get("tie_word_embeddings"), "tie_word_embeddings", tie_default),
            qkv_bias=flag(cfg.get("attention_bias"), "attention_bias", bias) if mt != "qwen2" else True,
            fused_qkv=fused,
            norms_per_layer=norms,
            attention=attn,
            num_experts=experts,
            experts_per_token=(cfg.get("num_experts_per_tok") or per_token_default) if experts else 0,
            moe_intermediate_size=(cfg.get("moe_intermediate_size") or d["moe_intermediate_size"]) if "moe_intermediate_size" in d else 0,
            shared_expert_intermediate_size=(cfg.get("shared_expert_intermediate_size") or d["shared_expert_intermediate_size"])
            if "shared_expert_intermediate_size" in d
            else 0,
            source=name,
        )
    except ValueError as e:
        raise InputError(f"{name}: {validation_problem(e) if hasattr(e, 'errors') else e}") from None


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
