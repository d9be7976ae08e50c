"""Bytes per token that one Gated DeltaNet token mixer (transformers 5.17 ``Qwen3_5GatedDeltaNet``,
``Qwen3NextGatedDeltaNet``) saves for backward, as its PyTorch path runs without flash-linear-attention and
causal-conv1d, against its widths; and what the output gate of the hybrids' self-attention saves more than a
Qwen3 attention of the same widths.

Runs on the CPU (bf16, one layer, random weights): autograd's saved tensors are counted by storage, the layer's
input and the parameters left out. The chunked delta rule and the convolution are plain torch operations, so what
they save is what a GPU saves; the self-attention's sdpa is not (its CPU kernel saves other tensors), so only the
gate's difference is taken from it. Fits the coefficients by least squares over a sweep of widths and prints them
with the residuals (``core/hybrid.py`` holds what it printed on 2026-12-07: exact to the byte on every width).

    python benchmarks/linear_attention_trace.py

Needs torch and transformers (5.17).
"""

from __future__ import annotations

import warnings

SEQ = 512
# (hidden, key heads, value heads, key width, value width)
WIDTHS = [
    (1024, 8, 16, 128, 128),
    (1024, 8, 8, 128, 128),
    (1024, 4, 16, 128, 128),
    (1024, 8, 16, 64, 128),
    (1024, 8, 16, 128, 64),
    (2048, 8, 16, 128, 128),
    (1024, 16, 32, 128, 128),
    (1536, 8, 16, 64, 64),
    (1024, 4, 8, 256, 128),
]
# (hidden, heads, key-value heads, head width)
ATTENTION = [(1024, 8, 2, 128), (2048, 8, 2, 128), (1024, 16, 2, 128), (1024, 8, 4, 128), (1024, 8, 2, 64), (1536, 12, 4, 64)]


def _saved(model, fn, x) -> float:
    import torch

    params = {p.untyped_storage().data_ptr() for p in model.parameters()}
    seen: dict[int, int] = {}

    def pack(t):
        st = t.untyped_storage()
        seen[st.data_ptr()] = st.nbytes()
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        fn(x)
    for ptr in params | {x.untyped_storage().data_ptr()}:
        seen.pop(ptr, None)
    return sum(seen.values()) / x.shape[1]


def _model(model_type: str, hidden: int, **kw):
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM

    cfg = AutoConfig.for_model(
        model_type, hidden_size=hidden, intermediate_size=256, vocab_size=100, attn_implementation="sdpa", num_hidden_layers=1, **kw
    )
    return AutoModelForCausalLM.from_config(cfg).to(torch.bfloat16).train()


def linear_mixer(model_type: str, hidden: int, kh: int, vh: int, kd: int, vd: int) -> float:
    import torch

    m = _model(
        model_type,
        hidden,
        layer_types=["linear_attention"],
        linear_num_key_heads=kh,
        linear_num_value_heads=vh,
        linear_key_head_dim=kd,
        linear_value_head_dim=vd,
        num_experts=4,
        num_experts_per_tok=1,
    )
    layer = m.model.layers[0]
    x = torch.randn(1, SEQ, hidden, dtype=torch.bfloat16, requires_grad=True)
    return _saved(m, lambda t: layer.linear_attn(layer.input_layernorm(t)), x)


def attention(model_type: str, hidden: int, heads: int, kv: int, hd: int) -> float:
    import torch

    extra = {"layer_types": ["full_attention"], "linear_num_key_heads": 4, "linear_num_value_heads": 8} if model_type != "qwen3" else {}
    m = _model(model_type, hidden, num_attention_heads=heads, num_key_value_heads=kv, head_dim=hd, **extra)
    layer = m.model.layers[0]
    x = torch.randn(1, SEQ, hidden, dtype=torch.bfloat16, requires_grad=True)
    pos = torch.arange(SEQ)[None]
    pe = m.model.rotary_emb(x, pos[None].expand(3, 1, SEQ) if model_type.startswith("qwen3_5") else pos)
    return _saved(m, lambda t: layer.self_attn(layer.input_layernorm(t), position_embeddings=pe, attention_mask=None)[0], x)


def _fit(rows, features):
    import numpy as np

    X = np.array([features(*w) for w, _ in rows], dtype=float)
    y = np.array([v for _, v in rows])
    coef = np.linalg.lstsq(X, y, rcond=None)[0]
    return coef, X @ coef - y


def main() -> int:
    warnings.filterwarnings("ignore")
    import transformers

    transformers.logging.set_verbosity_error()
    names = ("hidden", "key heads x width", "value heads x key width", "value heads x width", "value heads", "state / 64", "1")
    for mt in ("qwen3_5_text", "qwen3_next"):
        rows = [(w, linear_mixer(mt, *w)) for w in WIDTHS]
        coef, res = _fit(rows, lambda h, kh, vh, kd, vd: [h, kh * kd, vh * kd, vh * vd, vh, vh * kd * vd / 64, 1])
        print(f"{mt} linear mixer, bytes per token: " + ", ".join(f"{c:.3f} x {n}" for c, n in zip(coef, names, strict=True)))
        print(f"  residuals (bytes per token): {[round(float(r), 1) for r in res]}")
    rows = [(w, attention("qwen3_5_text", *w) - attention("qwen3", *w)) for w in ATTENTION]
    coef, res = _fit(rows, lambda h, heads, kv, hd: [h, heads * hd, kv * hd, 1])
    print(
        "output gate over Qwen3's attention, bytes per token: "
        + ", ".join(f"{c:.3f} x {n}" for c, n in zip(coef, ("hidden", "q width", "kv width", "1"), strict=True))
    )
    print(f"  residuals (bytes per token): {[round(float(r), 1) for r in res]}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
