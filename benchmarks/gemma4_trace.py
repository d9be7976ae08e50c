"""Bytes per token a Gemma 4 model (transformers 5.17 ``Gemma4TextModel``) saves for backward beyond a Gemma 3 model of
the same widths, inside its decoder layers and outside them, on the CPU: the terms of ``core/gemma4.py``
(:func:`layer_bytes`, :func:`model_bytes`).

bf16, random weights, one sequence of 512 tokens, the base frozen (as under LoRA) or trained; autograd's saved tensors
counted by storage, the parameters and buffers left out, each tensor put inside a layer or outside by the decoder
layers' hooks. The terms traced are norms, products and copies, which run the same on a GPU; sdpa's own tensors
differ on the CPU and are left to the compared families' terms (both sides hold the same attention). Fits the
coefficients by least squares over a sweep of widths and prints them with the residuals.

    python benchmarks/gemma4_trace.py

Needs torch and transformers (5.17).
"""

from __future__ import annotations

import warnings

SEQ = 512


def saved(model_type: str, trains: bool = False, **kw) -> tuple[float, float]:
    """(bytes per token saved inside the decoder layers, outside them) by the base model's forward."""
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM

    cfg = AutoConfig.for_model(model_type, vocab_size=1000, attn_implementation="sdpa", **kw)
    model = AutoModelForCausalLM.from_config(cfg).to(torch.bfloat16).train()
    for p in model.parameters():
        p.requires_grad_(trains)
    base = model.model
    skip = {t.untyped_storage().data_ptr() for t in (*model.parameters(), *model.buffers())}
    seen: dict[int, tuple[int, bool]] = {}
    inside = [False]

    def pack(t):
        st = t.untyped_storage()
        seen[st.data_ptr()] = (st.nbytes(), inside[0])
        return t

    for layer in base.layers:
        layer.register_forward_pre_hook(lambda *a: inside.__setitem__(0, True))
        layer.register_forward_hook(lambda *a: inside.__setitem__(0, False))
    # the embeddings' output requires grad, as a trained adapter's upstream gradient would make it
    base.get_input_embeddings().register_forward_hook(lambda m, i, o: o.requires_grad_(True))
    ids = torch.randint(0, 1000, (1, SEQ))
    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        base(input_ids=ids)
    for ptr in skip:
        seen.pop(ptr, None)
    return (sum(b for b, i in seen.values() if i) / SEQ, sum(b for b, i in seen.values() if not i) / SEQ)


def _fit(rows, features):
    import numpy as np

    X = np.array([features(*w) for w, _ in rows], dtype=float)
    y = np.array([v for _, v in rows])
    coef = np.linalg.lstsq(X, y, rcond=None)[0]
    return coef, X @ coef - y


def _widths(h: int, kv: int, layers: int) -> dict:
    types = ["sliding_attention"] * (layers - 1) + ["full_attention"]
    return dict(
        hidden_size=h,
        intermediate_size=2 * h,
        num_attention_heads=8,
        num_key_value_heads=kv,
        head_dim=128,
        sliding_window=4096,
        num_hidden_layers=layers,
        layer_types=types,
    )


def main() -> int:
    warnings.filterwarnings("ignore")
    import transformers

    transformers.logging.set_verbosity_error()
    g4 = {"global_head_dim": 128, "hidden_size_per_layer_input": 0}
    rows = []
    for h, kv, layers in [(1024, 2, 2), (1024, 2, 4), (2048, 2, 2), (1536, 4, 3), (1024, 4, 2)]:
        a = saved("gemma3_text", **_widths(h, kv, layers))[0]
        b = saved("gemma4_text", **_widths(h, kv, layers), **g4)[0]
        rows.append(((h, kv * 128), (b - a) / layers))
    coef, res = _fit(rows, lambda h, kvd: [h, kvd, 1])
    print(f"layer over Gemma 3's: {coef[0]:.3f} x hidden + {coef[1]:.3f} x key-value width + {coef[2]:.1f}; residuals {res.round(1)}")
    for trains in (False, True):
        inside, outside = [], []
        for h, p, layers in [(1024, 256, 2), (1024, 256, 4), (2048, 256, 2), (1024, 128, 2), (1024, 512, 3)]:
            i0, o0 = saved("gemma4_text", trains, **_widths(h, 2, layers), **g4)
            i1, o1 = saved("gemma4_text", trains, **_widths(h, 2, layers), **{**g4, "hidden_size_per_layer_input": p})
            inside.append(((h, p), (i1 - i0) / layers))
            outside.append(((h, p * layers), o1 - o0))
        what = "trained" if trains else "frozen"
        coef, res = _fit(inside, lambda h, p: [h, p, 1])
        print(
            f"{what}: per-layer inputs in a layer: {coef[0]:.3f} x hidden + {coef[1]:.3f} x width + {coef[2]:.1f}; residuals {res.round(1)}"
        )
        coef, res = _fit(outside, lambda h, lp: [h, lp, 1])
        print(
            f"{what}: outside the layers: {coef[0]:.3f} x hidden + {coef[1]:.3f} x layers x width + {coef[2]:.1f}; residuals {res.round(1)}"
        )
    rows = []
    for h, experts, width, k in [(1024, 8, 256, 2), (1024, 16, 256, 2), (2048, 8, 256, 2), (1024, 8, 512, 2), (1024, 8, 256, 4)]:
        base = saved("gemma4_text", **_widths(h, 2, 2), **g4)[0]
        moe = saved(
            "gemma4_text",
            **_widths(h, 2, 2),
            **g4,
            enable_moe_block=True,
            num_experts=experts,
            top_k_experts=k,
            moe_intermediate_size=width,
        )[0]
        rows.append(((h, experts, width, k), (moe - base) / 2))
    coef, res = _fit(rows, lambda h, e, w, k: [h, e, k * w, k * h, k, 1])
    names = ("hidden", "experts", "per token x expert width", "per token x hidden", "per token", "1")
    print(
        "MoE block beside the MLP: " + ", ".join(f"{c:.3f} x {n}" for c, n in zip(coef, names, strict=True)) + f"; residuals {res.round(1)}"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
