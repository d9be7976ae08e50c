"""The model families ftdecide reads, one record each: what a ``config.json`` of that ``model_type`` builds in
transformers 5.17 (``models/<family>/configuration_*.py`` and ``modeling_*.py``) and what peft 0.21's all-linear
wraps there (``data/counts/families_2026-12-06.jsonl``).

Adding a family is one :class:`Family` here, a config in ``data/families/configs/`` and its record from
``python benchmarks/family_counts.py`` (transformers' count and peft's); :mod:`ftdecide.files.hfconfig` reads and
writes configs from these records, and the emitters take the decoder layer's class name from them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional


@dataclass(frozen=True)
class Family:
    """One ``model_type``.

    - ``decoder_layer``: its decoder layer's class (what FSDP wraps, in the emitted accelerate configs);
    - ``qkv_bias``, ``fused`` (fused qkv and gate_up projections), ``norms`` per layer, ``attention``: the
      implementation it trains with (eager where transformers refuses sdpa, or where its softcapping needs it);
    - ``defaults``: what its configuration class takes for a key a config.json leaves out (``kv``: key-value
      heads, None for as many as the attention heads; ``head_dim``: None for hidden // heads; ``tie``;
      ``bias``; ``experts``: the family's own keys for its expert count, its default and the experts per
      token; ``required``: the required fields' defaults where a wrapped text config may leave them out;
      ``sliding``: its class's ``sliding_window`` and ``sliding_window_pattern``, 0 where every layer slides);
    - ``layout``: what its layers hold beyond the Llama layout (:class:`~ftdecide.core.arch.Arch` fields);
    - ``note``: what sizing says of it whatever its size;
    - ``bias_key``: its config.json names ``attention_bias`` (older families infer the bias from the type);
    - ``wraps``: a multimodal wrapper's text family, whose record holds the rest; a wrapper's ``note`` is what
      its causal-LM class does with the vision tower;
    - ``tie_outer``: a wrapper whose causal-LM class ties the head as the wrapper's own ``tie_word_embeddings``
      says (Gemma 3); otherwise the text config's flag decides, with the text class's default, whatever the
      wrapper's says (Llama 4, Qwen3.5: checked on transformers 5.17's build of each combination).
    """

    model_type: str
    decoder_layer: str = ""
    qkv_bias: bool = False
    fused: bool = False
    norms: int = 2
    attention: str = "sdpa"
    defaults: dict = field(default_factory=dict)
    layout: dict = field(default_factory=dict)
    note: str = ""
    bias_key: bool = True
    wraps: Optional[str] = None
    tie_outer: bool = False

    @property
    def slides_alike(self) -> bool:
        """Every layer slides or none: its class has a window but no pattern (Mistral, Phi-3, Mixtral)."""
        sliding = self.defaults.get("sliding")
        return bool(sliding) and not sliding[1]


# what the plan says of the Gated DeltaNet hybrids (core/hybrid.py; data/trainers/h100_hybrid_2026-12-07.jsonl)
HYBRID_NOTE = (
    "Gated DeltaNet linear attention sized as transformers' PyTorch path runs it (without flash-linear-attention and "
    "causal-conv1d); measured on 8 TRL runs: within -2.2%/+3.4% on copies of the 9B, 35B-A3B and Next-80B shapes "
    "(planned before they ran) and of a 0.5B shape"
)

# what the plan says of Gemma 4 (core/gemma4.py; data/counts/families_gemma4_2026-12-07.jsonl)
GEMMA4_NOTE = (
    "Gemma 4 is counted as transformers builds it (full-attention layers of head width 512, shared keys and values, "
    "per-layer inputs); its memory, from the other families' terms at its averaged widths and its own traced ones, was "
    "measured on 8 TRL runs of three shapes: adapters within -3.6%/+3.4% of the plan once the math kernel that sdpa runs "
    "its 512-wide grouped heads on is counted (keep that headroom), full fine-tuning 1-20% below"
)

# what sizing says of a wrapper whose causal-LM class builds the text model alone
_TEXT_ONLY = "{}'s causal-LM class loads the text model only: its vision tower is left out of memory and of training"

# Qwen3NextConfig's linear-attention widths, which the Qwen3.5 configuration classes keep as their defaults:
# key heads, value heads, their widths, the convolution's kernel, and the interval of the self-attention layers
_GDN_LINEAR = (16, 32, 128, 128, 4, 4)

_RECORDS = (
    Family("llama", "LlamaDecoderLayer", defaults={"kv": None, "head_dim": None, "tie": False}, bias_key=False),
    # MistralConfig (transformers 5.17): sliding_window 4096 on every layer, Mistral-7B-v0.1's; later checkpoints set null
    Family("mistral", "MistralDecoderLayer", defaults={"kv": 8, "head_dim": None, "tie": False, "sliding": (4096, 0)}, bias_key=False),
    Family("qwen2", "Qwen2DecoderLayer", qkv_bias=True, defaults={"kv": 32, "head_dim": None, "tie": False}, bias_key=False),
    Family("qwen3", "Qwen3DecoderLayer", defaults={"kv": 32, "head_dim": 128, "tie": False}, layout={"qk_norm": "head"}),
    Family("gemma", "GemmaDecoderLayer", defaults={"kv": 16, "head_dim": 256, "tie": True}, bias_key=False),
    Family("gemma2", "Gemma2DecoderLayer", norms=4, attention="eager", defaults={"kv": 4, "head_dim": 256, "tie": True}, bias_key=False),
    # Phi3Config: no window by default; Phi-3-mini-4k's config.json sets 2047, on every layer
    Family(
        "phi3", "Phi3DecoderLayer", fused=True, defaults={"kv": None, "head_dim": None, "tie": False, "sliding": (None, 0)}, bias_key=False
    ),
    Family(
        "mixtral",
        "MixtralDecoderLayer",
        defaults={"kv": 8, "head_dim": None, "tie": False, "experts": (("num_local_experts",), 8, 2), "sliding": (None, 0)},
        layout={"experts_adapted": True},
        bias_key=False,
    ),
    Family(
        "qwen2_moe",
        "Qwen2MoeDecoderLayer",
        qkv_bias=True,
        defaults={
            "kv": 16,
            "head_dim": None,
            "tie": False,
            "experts": (("num_experts",), 60, 4),
            "moe_intermediate_size": 1408,
            "shared_expert_intermediate_size": 5632,
        },
        layout={"router": "param", "shared_expert_gate": True},
        bias_key=False,
    ),
    # Qwen3MoeConfig maps num_experts onto num_local_experts
    Family(
        "qwen3_moe",
        "Qwen3MoeDecoderLayer",
        defaults={
            "kv": 4,
            "head_dim": 128,
            "tie": False,
            "experts": (("num_experts", "num_local_experts"), 128, 8),
            "moe_intermediate_size": 768,
        },
        layout={"qk_norm": "head", "experts_adapted": True},
    ),
    # Gemma3TextConfig's required-field defaults: a Gemma 3 text_config may leave them out
    Family(
        "gemma3_text",
        "Gemma3DecoderLayer",
        norms=4,
        defaults={
            "kv": 4,
            "head_dim": 256,
            "tie": True,
            # Gemma3TextConfig: sliding_window 4096, every layer but each 6th a sliding one (sliding_window_pattern)
            "sliding": (4096, 6),
            "required": {
                "vocab_size": 262208,
                "hidden_size": 2304,
                "intermediate_size": 9216,
                "num_hidden_layers": 26,
                "num_attention_heads": 8,
            },
        },
        layout={"qk_norm": "head"},
    ),
    # a wrapper: AutoModelForCausalLM builds the text model and Gemma 3's vision tower with it
    Family(
        "gemma3",
        wraps="gemma3_text",
        tie_outer=True,
        note="Gemma 3's vision tower loads with the model and is counted: adapters target the text model only and leave "
        "it frozen; full fine-tuning trains it too",
    ),
    # transformers refuses sdpa for gpt-oss (its attention sinks): it trains with eager attention
    Family(
        "gpt_oss",
        "GptOssDecoderLayer",
        attention="eager",
        defaults={"kv": 8, "head_dim": 64, "tie": False, "bias": True, "experts": (("num_local_experts",), 128, 4)},
        layout={"o_bias": True, "attn_sinks": True, "router": "param", "router_bias": True, "expert_bias": True},
        note=(
            "gpt-oss ships its experts in MXFP4; the emitted files load them de-quantized to bf16 (Mxfp4Config(dequantize=True)), "
            "which is what is sized, and QLoRA of it is refused (transformers takes no bitsandbytes config for it)"
        ),
    ),
    # Llama4Router is an nn.Linear whose forward returns a tuple: peft 0.21's LoRA wrapper of it fails in the first
    # forward ("'tuple' object has no attribute 'dtype'", measured under TRL 1.16), so no target may include it
    Family(
        "llama4_text",
        "Llama4TextDecoderLayer",
        defaults={"kv": 8, "head_dim": 128, "tie": False, "experts": (("num_local_experts",), 16, 1)},
        layout={"router_name": "router", "router_adaptable": False, "experts_path": "feed_forward.experts"},
    ),
    # a wrapper whose causal-LM class leaves the vision tower out
    Family("llama4", wraps="llama4_text", note=_TEXT_ONLY.format("Llama 4")),
    # peft 0.21's all-linear adapts attention, router and experts here, not the dense layers' MLP nor the shared expert
    Family(
        "deepseek_v3",
        "DeepseekV3DecoderLayer",
        defaults={"kv": 128, "head_dim": None, "tie": False, "experts": (("n_routed_experts",), 256, 8), "moe_intermediate_size": 2048},
        layout={"experts_adapted": True, "all_linear_mlp": False},
        note=(
            "DeepSeek-V3 ships fp8 weights, de-quantized to bf16 to train (1.25 TB for the 671B model): no 8-GPU node holds "
            "even LoRA over it; its multi-token-prediction layer is not loaded by transformers and not counted"
        ),
    ),
    Family("olmo2", "Olmo2DecoderLayer", defaults={"kv": None, "head_dim": None, "tie": False}, layout={"qk_norm": "proj"}),
    Family("granite", "GraniteDecoderLayer", defaults={"kv": None, "head_dim": None, "tie": False}),
    Family("smollm3", "SmolLM3DecoderLayer", defaults={"kv": 4, "head_dim": None, "tie": True}),
    Family(
        "glm4_moe",
        "Glm4MoeDecoderLayer",
        defaults={"kv": 8, "head_dim": None, "tie": False, "experts": (("n_routed_experts",), 128, 8), "moe_intermediate_size": 1408},
        layout={"experts_adapted": True, "all_linear_mlp": False},
    ),
    # released since, read from their configuration classes' defaults (data/families/configs/*-defaults.json)
    Family("olmo3", "Olmo3DecoderLayer", defaults={"kv": None, "head_dim": None, "tie": False}, layout={"qk_norm": "proj"}),
    Family("ministral3", "Ministral3DecoderLayer", defaults={"kv": 8, "head_dim": 128, "tie": False}),
    Family("seed_oss", "SeedOssDecoderLayer", defaults={"kv": 8, "head_dim": 128, "tie": False, "bias": True}),
    Family("exaone4", "Exaone4DecoderLayer", defaults={"kv": None, "head_dim": None, "tie": False}, layout={"qk_norm": "head"}),
    Family(
        "olmoe",
        "OlmoeDecoderLayer",
        defaults={"kv": None, "head_dim": None, "tie": False, "experts": (("num_experts",), 64, 8)},
        layout={"qk_norm": "proj", "experts_adapted": True},
    ),
    Family(
        "granitemoe",
        "GraniteMoeDecoderLayer",
        defaults={"kv": None, "head_dim": None, "tie": False, "experts": (("num_local_experts",), 8, 2)},
        layout={"router": "param", "experts_path": "block_sparse_moe.experts"},
    ),
    # GLM-4-0414: q/k/v apart with biases, gate and up fused into one linear, two more norms a layer
    Family(
        "glm4",
        "Glm4DecoderLayer",
        norms=4,
        defaults={"kv": 2, "head_dim": 128, "tie": False, "bias": True},
        layout={"fused_gate_up": True},
    ),
    # Apertus: an MLP of up and down only, whose xIELU activation learns two scalars a layer; o_proj takes
    # attention_bias too. Without its CUDA kernel (not on PyPI) transformers runs xIELU in Python, whose autograd
    # saves per intermediate value its input, alpha_p*x, expm1(min(x, eps)), that less x (2 B each) and the sign
    # mask (1 B): 9 B, where a gated MLP's activation and product save three values (6 B): 3 B more
    Family(
        "apertus",
        "ApertusDecoderLayer",
        defaults={"kv": None, "head_dim": None, "tie": False},
        layout={"qk_norm": "head", "mlp": "plain", "act_params": 2, "o_bias": True, "act_saved_bytes": 3.0},
        note="Apertus' xIELU activation is sized as transformers' Python fallback, which saves more than its CUDA kernel",
    ),
    # Gated DeltaNet hybrids (transformers 5.17 ``Qwen3_5TextConfig``, ``Qwen3_5MoeTextConfig``, ``Qwen3NextConfig``):
    # every ``full_attention_interval``-th layer runs self-attention whose q_proj also yields an output gate, the
    # others linear attention (``linear``: :data:`_GDN_LINEAR`'s fields). The Qwen3.5 wrappers' causal-LM class builds
    # the text model only: the vision tower is left out
    Family(
        "qwen3_5_text",
        "Qwen3_5DecoderLayer",
        note=HYBRID_NOTE,
        defaults={
            "kv": 4,
            "head_dim": 256,
            "tie": False,
            "linear": _GDN_LINEAR,
            "required": {
                "vocab_size": 248320,
                "hidden_size": 4096,
                "intermediate_size": 12288,
                "num_hidden_layers": 32,
                "num_attention_heads": 16,
            },
        },
        layout={"qk_norm": "head", "attn_gate": True},
    ),
    Family("qwen3_5", wraps="qwen3_5_text", note=_TEXT_ONLY.format("Qwen3.5")),
    # its text config has no dense MLP width: the routed experts' stands in (no layer is dense)
    Family(
        "qwen3_5_moe_text",
        "Qwen3_5MoeDecoderLayer",
        note=HYBRID_NOTE,
        defaults={
            "kv": 2,
            "head_dim": 256,
            "tie": False,
            "experts": (("num_experts",), 256, 8),
            "moe_intermediate_size": 512,
            "shared_expert_intermediate_size": 512,
            "linear": _GDN_LINEAR,
            "required": {
                "vocab_size": 248320,
                "hidden_size": 2048,
                "intermediate_size": 512,
                "num_hidden_layers": 40,
                "num_attention_heads": 16,
            },
        },
        layout={"qk_norm": "head", "attn_gate": True, "router": "param", "shared_expert_gate": True},
    ),
    Family("qwen3_5_moe", wraps="qwen3_5_moe_text", note=_TEXT_ONLY.format("Qwen3.5-MoE")),
    # Gemma 4 (Gemma4TextConfig's defaults; core/gemma4.py): full-attention layers of their own head width, key-value
    # sharing, per-layer inputs, and in the MoE variant experts beside the dense MLP (router.proj an nn.Linear that
    # peft's all-linear adapts; the fused experts it leaves)
    Family(
        "gemma4_text",
        "Gemma4TextDecoderLayer",
        norms=4,
        note=GEMMA4_NOTE,
        defaults={
            "kv": 4,
            "head_dim": 256,
            "tie": True,
            "required": {
                "vocab_size": 262144,
                "hidden_size": 2304,
                "intermediate_size": 9216,
                "num_hidden_layers": 30,
                "num_attention_heads": 8,
            },
        },
        layout={"qk_norm": "head", "o_bias": True, "router_name": "router.proj", "experts_path": "experts"},
    ),
    # its causal-LM class is Gemma4ForConditionalGeneration, which ties the head as the wrapper's flag says
    Family(
        "gemma4",
        wraps="gemma4_text",
        tie_outer=True,
        note="Gemma 4's vision and audio towers, where the config has them, load with the model and are counted: adapters "
        "target the text model only and leave them frozen; full fine-tuning trains them too",
    ),
    Family(
        "qwen3_next",
        "Qwen3NextDecoderLayer",
        note=HYBRID_NOTE,
        defaults={
            "kv": 2,
            "head_dim": 256,
            "tie": False,
            "experts": (("num_experts",), 512, 10),
            "moe_intermediate_size": 512,
            "shared_expert_intermediate_size": 512,
            "linear": _GDN_LINEAR,
        },
        layout={
            "qk_norm": "head",
            "attn_gate": True,
            "linear_fused": True,
            "shared_expert_gate": True,
            "experts_adapted": True,
            "all_linear_mlp": False,
        },
    ),
)
FAMILIES: dict[str, Family] = {f.model_type: f for f in _RECORDS}
