"""Model architectures and exact parameter counts.

An :class:`Arch` holds the dimensions of a decoder-only transformer as its Hugging Face ``config.json``
states them. Parameter counts are computed from those dimensions, module by module, the way transformers
builds the model, so that they equal the published totals and what peft reports for LoRA.
"""

from __future__ import annotations

from typing import Literal, Optional

from pydantic import BaseModel, ConfigDict, Field, model_validator

from . import gemma4
from .errors import InputError, preview
from .memo import Memo

# Linear modules of one decoder layer that LoRA can target, by the names peft matches.
ATTN_MODULES = ("q_proj", "k_proj", "v_proj", "o_proj")
MLP_MODULES = ("gate_proj", "up_proj", "down_proj")
TARGET_SETS = {
    "all-linear": ATTN_MODULES + MLP_MODULES,
    "attn": ATTN_MODULES,
    "mlp": MLP_MODULES,
    "qv": ("q_proj", "v_proj"),
}
# Phi-3 fuses q/k/v and gate/up into one linear each, GLM-4 gate/up only: names users type map onto the fused
# module where the architecture has it.
_FUSED_ALIASES = {
    "q_proj": "qkv_proj",
    "k_proj": "qkv_proj",
    "v_proj": "qkv_proj",
    "gate_proj": "gate_up_proj",
    "up_proj": "gate_up_proj",
}


# The most decoder layers an architecture may have: far above any real model (Llama-3.1-405B: 126)
MAX_LAYERS = 10_000

# Sizing asks the counts of a frozen architecture a million times in a 10,000-scenario batch
_MEMO = Memo(limit=8192)


class Arch(BaseModel):
    """Dimensions of a decoder-only language model (a Hugging Face ``config.json``, normalised)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str
    family: str = Field(description="transformers model_type: llama, mistral, qwen2, gemma2, phi3, mixtral, qwen2_moe, ...")
    # Upper bounds far above any real model (Llama-3.1-405B: hidden 16,384, MLP 53,248, 126 layers, 128
    # heads; the largest vocabularies about 262k), so that arithmetic on them stays finite and exact.
    hidden_size: int = Field(gt=0, le=1 << 18)
    intermediate_size: int = Field(gt=0, le=1 << 20)
    num_layers: int = Field(gt=0, le=MAX_LAYERS)
    num_heads: int = Field(gt=0, le=1 << 14)
    num_kv_heads: int = Field(gt=0, le=1 << 14)
    head_dim: int = Field(gt=0, le=1 << 14)
    vocab_size: int = Field(gt=0, le=1 << 24)
    tie_embeddings: bool = False
    mlp: Literal["gated", "plain"] = "gated"
    qkv_bias: bool = False
    fused_qkv: bool = Field(False, description="one qkv_proj, and one gate_up_proj in the MLP (Phi-3)")
    fused_gate_up: bool = Field(False, description="one gate_up_proj in the MLP, q/k/v apart (GLM-4)")
    act_params: int = Field(0, ge=0, le=64, description="learned scalars of the MLP's activation per layer (Apertus' xIELU: 2)")
    act_saved_bytes: float = Field(
        0.0, ge=0, le=64, description="bytes per MLP intermediate value a token's activation saves beyond a gated MLP's (Apertus' xIELU)"
    )
    sliding_window: int = Field(0, ge=0, description="keys a sliding-attention layer sees (Gemma 3); 0: no such layers")
    sliding_layers: int = Field(0, ge=0, le=MAX_LAYERS, description="layers of sliding-window attention")
    norms_per_layer: int = Field(2, ge=1, le=4)
    attention: Literal["sdpa", "eager"] = Field(
        "sdpa", description="eager where the model's attention needs it (Gemma 2 logit softcapping): s^2 memory"
    )
    num_experts: int = Field(0, ge=0, le=1 << 14)
    experts_per_token: int = Field(0, ge=0, le=1 << 14)
    moe_intermediate_size: int = Field(0, ge=0, le=1 << 20)
    shared_expert_intermediate_size: int = Field(0, ge=0, le=1 << 20)
    # What the families of 2025 hold beyond the Llama layout (transformers 5.17; hfconfig.py sets them
    # per model_type, and data/counts/families_*.jsonl holds transformers' own counts they reproduce).
    qk_norm: Literal["", "head", "proj"] = Field(
        "", description="RMSNorm on queries and keys: per head (Qwen3, Gemma 3: head_dim weights each) or over the projection (OLMo 2)"
    )
    o_bias: bool = Field(False, description="o_proj has a bias too (gpt-oss)")
    attn_sinks: bool = Field(False, description="one learned attention-sink logit per head (gpt-oss)")
    router: Literal["linear", "param"] = Field(
        "linear", description="the MoE router: an nn.Linear (which peft's all-linear adapts and bitsandbytes quantizes) or a bare parameter"
    )
    router_name: str = "gate"
    router_adaptable: bool = Field(True, description="peft's LoRA can wrap the router (not Llama 4's, whose forward returns a tuple)")
    router_bias: bool = False
    experts_adapted: bool = Field(
        False, description="peft 0.21's all-linear wraps the fused experts (its ParamWrapper, which refuses any LoRA dropout)"
    )
    all_linear_mlp: bool = Field(True, description="peft's all-linear adapts the MLP's nn.Linear modules (not on DeepSeek-V3 or GLM-4.5)")
    experts_path: str = Field("mlp.experts", description="the fused experts' module path in a decoder layer (peft's target_parameters)")
    expert_bias: bool = Field(False, description="the fused experts carry biases (gpt-oss)")
    shared_expert_gate: bool = Field(False, description="a sigmoid gate of one output on the shared expert (Qwen1.5-MoE)")
    dense_layers: int = Field(0, ge=0, description="layers of a MoE model whose MLP is dense, of intermediate_size")
    q_lora_rank: int = Field(0, ge=0, le=1 << 20, description="MLA (DeepSeek-V3): the query's low-rank width; 0 without MLA")
    kv_lora_rank: int = Field(0, ge=0, le=1 << 20, description="MLA: the compressed key-value width; 0: no latent attention")
    qk_nope_head_dim: int = Field(0, ge=0, le=1 << 14)
    qk_rope_head_dim: int = Field(0, ge=0, le=1 << 14)
    v_head_dim: int = Field(0, ge=0, le=1 << 14)
    # Gated DeltaNet linear attention (Qwen3.5, Qwen3-Next: transformers 5.17 ``Qwen3_5GatedDeltaNet``): the token
    # mixer of ``linear_layers`` layers; the others run self-attention, its output gated where ``attn_gate``
    linear_layers: int = Field(0, ge=0, le=MAX_LAYERS, description="layers whose token mixer is Gated DeltaNet linear attention")
    linear_k_heads: int = Field(0, ge=0, le=1 << 14, description="linear attention's query and key heads")
    linear_v_heads: int = Field(0, ge=0, le=1 << 14, description="linear attention's value heads")
    linear_k_dim: int = Field(0, ge=0, le=1 << 14)
    linear_v_dim: int = Field(0, ge=0, le=1 << 14)
    linear_conv: int = Field(0, ge=0, le=1 << 10, description="the causal convolution's kernel over q, k and v")
    linear_fused: bool = Field(False, description="q, k, v and z in one projection, b and a in another (Qwen3-Next)")
    attn_gate: bool = Field(False, description="q_proj also yields a sigmoid gate on attention's output: twice as wide")
    # Gemma 4 (core/gemma4.py): full-attention layers of their own geometry, key-value sharing, per-layer inputs
    global_head_dim: int = Field(0, ge=0, le=1 << 14, description="full-attention layers' head width where it is their own; 0: none")
    global_kv_heads: int = Field(0, ge=0, le=1 << 14, description="full-attention layers' key-value heads; 0: num_kv_heads")
    global_k_eq_v: bool = Field(False, description="full-attention layers use their keys as values (no v_proj)")
    kv_shared_layers: int = Field(0, ge=0, le=MAX_LAYERS, description="last layers taking an earlier layer's keys and values")
    kv_shared_global: int = Field(0, ge=0, le=MAX_LAYERS, description="of kv_shared_layers, the full-attention ones")
    shared_mlp_wide: bool = Field(False, description="the key-value-sharing layers' MLP is twice as wide")
    ple_dim: int = Field(0, ge=0, le=1 << 14, description="per-layer input width (Gemma 4's PLE); 0: none")
    ple_vocab: int = Field(0, ge=0, le=1 << 24, description="rows of the per-layer input table")
    mlp_beside_experts: bool = Field(False, description="the routed experts run beside a dense MLP in every layer (Gemma 4)")
    vision_params: int = Field(0, ge=0, description="a vision tower and projector the causal-LM class loads too; frozen in training")
    vision_linear: int = Field(0, ge=0, description="of vision_params, the nn.Linear weights (bitsandbytes quantizes them too)")
    wrapper: str = Field("", description="the model_type of a config that wraps this text model (gemma3, llama4)")
    vision_config: tuple[tuple[str, int], ...] = Field((), description="the wrapper's vision_config (its whole-number fields)")
    note: str = Field("", description="what sizing leaves out or refuses of this family, said wherever the model is sized")
    checkpoint_quant: str = Field(
        "", description="how the checkpoint ships its weights where training de-quantizes them: mxfp4 (gpt-oss), fp8 (DeepSeek-V3)"
    )
    params_published: Optional[int] = None
    source: str = ""
    model_id: str = Field("", description="what from_pretrained loads: a Hugging Face id or a local folder; empty for a bare size")
    aliases: tuple[str, ...] = ()
    assumed: str = Field("", description="what was assumed rather than read from a config")

    @model_validator(mode="after")
    def _check(self) -> "Arch":
        if self.num_heads % self.num_kv_heads:
            raise ValueError(f"num_attention_heads {self.num_heads} is not a multiple of num_key_value_heads {self.num_kv_heads}")
        if self.num_experts and not (0 < self.experts_per_token <= self.num_experts):
            raise ValueError("num_experts_per_tok must be between 1 and num_experts")
        if self.dense_layers > self.num_layers:
            raise ValueError(f"{self.dense_layers} dense layers is more than num_hidden_layers {self.num_layers}")
        if self.linear_layers > self.num_layers:
            raise ValueError(f"{self.linear_layers} linear-attention layers is more than num_hidden_layers {self.num_layers}")
        if self.linear_layers and not (self.linear_k_heads and self.linear_v_heads and self.linear_k_dim and self.linear_v_dim):
            raise ValueError("linear attention needs its key and value heads and head widths")
        if self.linear_layers and self.linear_v_heads % self.linear_k_heads:
            raise ValueError(
                f"linear_num_value_heads {self.linear_v_heads} is not a multiple of linear_num_key_heads {self.linear_k_heads}"
            )
        if self.sliding_layers > self.num_layers:
            raise ValueError(f"{self.sliding_layers} sliding-window layers is more than num_hidden_layers {self.num_layers}")
        if self.kv_shared_layers > self.num_layers or self.kv_shared_global > self.kv_shared_layers:
            raise ValueError(f"{self.kv_shared_layers} key-value-sharing layers do not fit num_hidden_layers {self.num_layers}")
        if self.global_kv_heads and self.num_heads % self.global_kv_heads:
            raise ValueError(f"num_attention_heads {self.num_heads} is not a multiple of num_global_key_value_heads {self.global_kv_heads}")
        return self

    # --- derived dimensions -------------------------------------------------------------------
    @property
    def mla(self) -> bool:
        return self.kv_lora_rank > 0

    @property
    def q_dim(self) -> float:
        if self.global_head_dim:
            return gemma4.q_dim(self)
        if self.mla:
            return self.num_heads * (self.qk_nope_head_dim + self.qk_rope_head_dim)
        return self.num_heads * self.head_dim

    @property
    def kv_dim(self) -> float:
        if self.global_head_dim:
            return gemma4.kv_dim(self)
        if self.mla:  # keys and values after kv_b_proj's up-projection, as attention sees them
            return self.num_heads * (self.qk_nope_head_dim + self.v_head_dim) // 2
        return self.num_kv_heads * self.head_dim

    @property
    def attention_layers(self) -> int:
        """Layers that run self-attention (the rest run linear attention): what holds keys and values and a mask."""
        return self.num_layers - self.linear_layers

    @property
    def moe_layers(self) -> int:
        """Layers whose MLP routes to experts (the rest are dense)."""
        return self.num_layers - self.dense_layers if self.is_moe else 0

    @property
    def is_moe(self) -> bool:
        return self.num_experts > 0

    @property
    def expert_intermediate(self) -> int:
        return self.moe_intermediate_size or self.intermediate_size

    @property
    def routed_intermediate(self) -> int:
        """The MLP width a token passes through: its routed experts' together where the model routes, else the MLP's."""
        return self.experts_per_token * self.expert_intermediate if self.is_moe else self.intermediate_size

    def linear_shapes(self) -> dict[str, tuple[int, int, int]]:
        """``{module: (in_features, out_features, count_per_layer)}`` of the nn.Linear modules in one
        layer (the ones peft's ``all-linear`` matches). Fused MoE experts are 3-D parameters in
        transformers 5, not nn.Linear, so they are not listed: LoRA does not reach them. The same dict
        every call (the architecture is frozen): callers read it, never change it."""
        return _MEMO.of(self, "linear_shapes", self._linear_shapes)

    def _linear_shapes(self) -> dict[str, tuple[int, int, float]]:
        h, q, kv = self.hidden_size, self.q_dim, self.kv_dim
        shapes: dict[str, tuple[int, int, float]] = {}
        if self.mla:
            heads, rope = self.num_heads, self.qk_rope_head_dim
            if self.q_lora_rank:
                shapes.update(q_a_proj=(h, self.q_lora_rank, 1), q_b_proj=(self.q_lora_rank, q, 1))
            else:
                shapes["q_proj"] = (h, q, 1)
            shapes.update(
                kv_a_proj_with_mqa=(h, self.kv_lora_rank + rope, 1),
                kv_b_proj=(self.kv_lora_rank, heads * (self.qk_nope_head_dim + self.v_head_dim), 1),
                o_proj=(heads * self.v_head_dim, h, 1),
            )
        elif self.fused_qkv:
            shapes["qkv_proj"] = (h, q + 2 * kv, 1)
            shapes["o_proj"] = (q, h, 1)
        elif self.global_head_dim:
            shapes.update(gemma4.attention_shapes(self))
        else:
            att = self.attention_layers / self.num_layers if self.linear_layers else 1
            shapes.update(q_proj=(h, q * (2 if self.attn_gate else 1), att), k_proj=(h, kv, att), v_proj=(h, kv, att), o_proj=(q, h, att))
        if self.linear_layers:
            shapes.update(self._linear_attention_shapes())
        if self.ple_dim:
            shapes.update(gemma4.ple_shapes(self))
        if self.is_moe:
            # counts per layer: a module of the MoE layers only, or of the dense ones only, appears in a
            # share of them (DeepSeek-V3: 3 dense layers of 61)
            moe = self.moe_layers / self.num_layers if self.dense_layers else 1
            dense = self.dense_layers / self.num_layers
            if self.router == "linear":
                shapes[self.router_name] = (h, self.num_experts, moe)  # a weight, quantized in QLoRA
            si = self.shared_expert_intermediate_size
            shared = "shared_experts." if self.dense_layers else ""
            if si:
                shapes.update({shared + "gate_proj": (h, si, moe), shared + "up_proj": (h, si, moe), shared + "down_proj": (si, h, moe)})
                if self.shared_expert_gate:
                    shapes["shared_expert_gate"] = (h, 1, moe)
            if self.dense_layers or self.mlp_beside_experts:
                i, n = (gemma4.mlp_width(self), 1) if self.mlp_beside_experts else (self.intermediate_size, dense)
                shapes.update(gate_proj=(h, i, n), up_proj=(h, i, n), down_proj=(i, h, n))
            return shapes
        i = gemma4.mlp_width(self) if self.global_head_dim else self.intermediate_size
        if self.mlp == "plain":
            shapes.update(up_proj=(h, i, 1), down_proj=(i, h, 1))
        elif self.fused_qkv or self.fused_gate_up:
            shapes.update(gate_up_proj=(h, 2 * i, 1), down_proj=(i, h, 1))
        else:
            shapes.update(gate_proj=(h, i, 1), up_proj=(h, i, 1), down_proj=(i, h, 1))
        return shapes

    def _linear_attention_shapes(self) -> dict[str, tuple[int, int, float]]:
        h, n = self.hidden_size, self.linear_layers / self.num_layers
        kd, vd, hv = self.linear_k_heads * self.linear_k_dim, self.linear_v_heads * self.linear_v_dim, self.linear_v_heads
        if self.linear_fused:
            return {"in_proj_qkvz": (h, 2 * kd + 2 * vd, n), "in_proj_ba": (h, 2 * hv, n), "out_proj": (vd, h, n)}
        return {
            "in_proj_qkv": (h, 2 * kd + vd, n),
            "in_proj_z": (h, vd, n),
            "in_proj_b": (h, hv, n),
            "in_proj_a": (h, hv, n),
            "out_proj": (vd, h, n),
        }

    @property
    def linear_conv_channels(self) -> int:
        """Channels of linear attention's depthwise convolution: q, k and v side by side."""
        return 2 * self.linear_k_heads * self.linear_k_dim + self.linear_v_heads * self.linear_v_dim

    def linear_attention_params(self) -> int:
        """Parameters of one linear-attention layer that are not nn.Linear weights: the depthwise convolution over
        q, k and v (no bias), ``dt_bias`` and ``A_log`` per value head, and the gated norm's weight."""
        return self.linear_conv_channels * self.linear_conv + 2 * self.linear_v_heads + self.linear_v_dim

    def adapter_shapes(self) -> dict[str, tuple[int, int, float]]:
        """:meth:`linear_shapes` plus the fused experts, which peft 0.21 adapts through its ParamWrapper, as
        ``(in, out, count)`` entries like the others:

        - ``experts[gate_up_proj]``, ``experts[down_proj]``: what its ``all-linear`` wraps on the families where
          it matches them, gate_up_proj ``(h, 2i)`` at twice the rank over the experts (``2E`` a layer),
          down_proj ``(i, h)`` at the rank (``E``);
        - ``experts.gate_up_proj``, ``experts.down_proj``: the same parameters named in ``target_parameters``
          (the ``experts`` target, on any MoE family), both at the rank (``E`` a layer)."""
        return _MEMO.of(self, "adapter_shapes", self._adapter_shapes)

    def _adapter_shapes(self) -> dict[str, tuple[int, int, float]]:
        shapes = dict(self.linear_shapes())
        if self.is_moe and not self.router_adaptable:
            shapes.pop(self.router_name, None)
        if self.is_moe:
            moe = self.moe_layers / self.num_layers
            h, i, e = self.hidden_size, self.expert_intermediate, self.num_experts
            if self.experts_adapted:
                shapes["experts[gate_up_proj]"] = (h, 2 * i, 2 * e * moe)
                shapes["experts[down_proj]"] = (i, h, e * moe)
            shapes["experts.gate_up_proj"] = (h, 2 * i, e * moe)
            shapes["experts.down_proj"] = (i, h, e * moe)
        return shapes

    # --- parameter counts ---------------------------------------------------------------------
    def layer_linear_params(self) -> float:
        """Weights of the nn.Linear modules of one layer (without biases); an average over the layers
        where dense and MoE layers differ."""
        return sum(i * o * n for i, o, n in self.linear_shapes().values())

    def linear_params(self) -> int:
        """Weights of every decoder layer's nn.Linear modules, all layers."""
        return round(self.num_layers * self.layer_linear_params())

    def expert_params(self) -> int:
        """One routed expert's weights (and biases, gpt-oss)."""
        n_mats = 3 if self.mlp == "gated" else 2
        per = n_mats * self.hidden_size * self.expert_intermediate
        if self.expert_bias:
            per += (n_mats - 1) * self.expert_intermediate + self.hidden_size
        return per

    def layer_expert_params(self) -> int:
        """Routed-expert weights of one MoE layer (3-D fused parameters) and a router that is not an
        nn.Linear."""
        if not self.is_moe:
            return 0
        out = self.num_experts * self.expert_params()
        if self.router == "param":
            out += self.hidden_size * self.num_experts
        if self.router_bias:
            out += self.num_experts
        return out

    def layer_other_params(self) -> int:
        """Biases, norm weights and attention sinks of one self-attention layer."""
        return self.norms_per_layer * self.hidden_size + self.act_params + self._attention_other_params()

    def _attention_other_params(self) -> int:
        if self.global_head_dim:  # counted whole, layer geometry by layer geometry (gemma4.other_params)
            return 0
        bias = (self.q_dim + 2 * self.kv_dim) if self.qkv_bias else 0
        bias += self.hidden_size if self.o_bias else 0
        norms = 0
        if self.qk_norm == "head":
            norms += 2 * self.head_dim
        elif self.qk_norm == "proj":
            norms += self.q_dim + self.kv_dim
        if self.mla:
            norms += self.q_lora_rank + self.kv_lora_rank
        return bias + norms + (self.num_heads if self.attn_sinks else 0)

    def embedding_params(self) -> int:
        return self.vocab_size * self.hidden_size

    def head_params(self) -> int:
        return 0 if self.tie_embeddings else self.vocab_size * self.hidden_size

    def total_params(self) -> int:
        """All parameters (tied embeddings counted once), as ``sum(p.numel())`` over the model that
        ``AutoModelForCausalLM`` builds, a vision tower it loads included."""
        return _MEMO.of(self, "total_params", self._total_params)

    def _total_params(self) -> int:
        layers = self.linear_params() + self.moe_layers * self.layer_expert_params() + self.num_layers * self.layer_other_params()
        if self.linear_layers:
            layers += self.linear_layers * (self.linear_attention_params() - self._attention_other_params())
        if self.global_head_dim:
            layers += gemma4.other_params(self)
        return layers + self.embedding_params() + self.head_params() + self.hidden_size + self.vision_params

    def param_tensors(self) -> int:
        """Number of parameter tensors (what a per-tensor optimizer loops over)."""
        per_layer = sum(n for _, _, n in self.linear_shapes().values()) + self.norms_per_layer
        per_layer += (3 if self.qkv_bias else 0) + self.o_bias + self.attn_sinks + (2 if self.qk_norm else 0) + (2 if self.mla else 0)
        per_layer += self.act_params
        out = self.num_layers * per_layer
        if self.linear_layers:
            # a linear-attention layer: its convolution, dt_bias, A_log and gated norm, and no q/k norms
            out += self.linear_layers * (4 - (2 if self.qk_norm else 0))
        if self.is_moe:
            # fused gate/up/down experts, a bare router, their biases
            out += self.moe_layers * (2 + (self.router == "param") + self.router_bias + 2 * self.expert_bias)
        if self.global_head_dim:
            out += gemma4.param_tensors(self) - self.num_layers * (2 if self.qk_norm else 0)
        return round(out) + (1 if self.tie_embeddings else 2) + 1

    def quantizable_params(self) -> int:
        """Parameters that bitsandbytes quantizes to 4 bit in QLoRA: every nn.Linear of the decoder
        layers (not the head, not the fused experts, which are not nn.Linear) and of a vision tower the class
        loads (Gemma 3: measured, its weights loaded 0.58 GiB under the plan that kept the tower in bf16)."""
        return self.linear_params() + self.vision_linear

    def active_params(self) -> int:
        """Parameters one token passes through (MoE: only its routed experts): what FLOPs scale with."""
        if not self.is_moe:
            return self.total_params()
        idle = self.moe_layers * (self.num_experts - self.experts_per_token) * self.expert_params()
        return self.total_params() - idle - self.vision_params

    def sizing_notes(self) -> tuple[str, ...]:
        """What sizing this model takes into account beyond the Llama layout, in the user's words."""
        out = [self.note] if self.note else []
        if self.is_moe:
            experts = self.moe_layers * self.num_experts * self.expert_params()
            if self.experts_adapted:
                out.append("all-linear LoRA adapts the router and the fused experts (peft's ParamWrapper: dropout 0)")
            else:
                out.append("all-linear LoRA leaves the routed experts unadapted")
            out.append(f"QLoRA quantizes nn.Linear only: the fused experts ({experts / self.total_params():.0%} of the weights) stay bf16")
            if self.dense_layers:
                out.append(f"{self.dense_layers} dense layer(s)")
        if self.mla:
            out.append(f"latent attention (MLA, kv_lora_rank {self.kv_lora_rank})")
        if self.attention == "eager":
            out.append("eager attention: seq x seq scores per head")
        return tuple(out)

    # --- LoRA ---------------------------------------------------------------------------------
    def resolve_targets(self, targets: str | list[str] | tuple[str, ...], what: str = "LoRA target(s)") -> tuple[str, ...]:
        """Module names of one layer that a LoRA target spec selects.

        ``targets`` is ``all-linear``, ``attn``, ``mlp``, ``qv`` or a comma-separated list of module
        names (``q_proj,v_proj``). Raises InputError naming the unknown modules."""
        names = self.adapter_shapes()
        if isinstance(targets, str):
            spec = targets.strip()
            if spec in ("all-linear", "all_linear", "all"):
                return tuple(m for m in names if not m.startswith("experts.") and (self.all_linear_mlp or not m.endswith(MLP_MODULES)))
            if spec == "attn" and self.mla:
                wanted: tuple[str, ...] = tuple(m for m in names if "_proj" in m and not m.endswith(MLP_MODULES) and "[" not in m)
            else:
                # a named set takes the members this architecture has (a plain MLP has no gate_proj)
                named_set = TARGET_SETS.get(spec, ())
                present = tuple(t for t in named_set if any(m == self._alias(t) or m.endswith("." + t) for m in names))
                wanted = present or named_set or tuple(t.strip() for t in spec.split(",") if t.strip())
        else:
            wanted = tuple(targets)
        out: list[str] = []
        unknown = []
        for t in wanted:
            if t in ("all-linear", "all_linear", "all") and len(wanted) > 1:  # "all-linear,experts"
                # in a list, peft's all-linear is emitted as the module names it stands for, so the fused
                # experts it reaches are named as parameters (target_parameters, at the rank)
                for m in self.resolve_targets(t, what):
                    m = "experts." + m[len("experts[") : -1] if m.startswith("experts[") else m
                    if m not in out:
                        out.append(m)
                continue
            t = self._alias(t)
            # peft matches a module by the end of its path: "down_proj" is the dense MLP's and the
            # shared expert's (not the fused experts' parameter of that name); "experts" is the fused
            # experts' two parameters, named in target_parameters
            found = [
                m
                for m in names
                if m == t or (m.endswith("." + t) and not m.startswith("experts.")) or (t == "experts" and m.startswith("experts."))
            ]
            if not found:
                unknown.append(t)
            out.extend(m for m in found if m not in out)
        if unknown or not out:
            # a preview: a 5,000-character target list must not fill the terminal
            named = preview(", ".join(unknown)) if unknown else preview(str(targets))
            raise InputError(f"{what} {named} not in {self.name}; its linear modules are {', '.join(names)}")
        return tuple(out)

    def _alias(self, t: str) -> str:
        """The fused module a user's module name stands for, where this architecture fuses it."""
        fused = _FUSED_ALIASES.get(t)
        return fused if fused and fused in self.adapter_shapes() else t

    def lora_params(self, rank: int, modules: tuple[str, ...]) -> int:
        """Trainable LoRA parameters: r * (in + out) per targeted module, over all layers (as peft counts)."""
        shapes = self.adapter_shapes()
        return round(self.num_layers * sum(rank * (shapes[m][0] + shapes[m][1]) * shapes[m][2] for m in modules))

    def adapts_fused_experts(self, modules: tuple[str, ...]) -> bool:
        """Whether these modules reach the fused experts (through peft's ParamWrapper, which refuses LoRA dropout
        and DoRA, and whose folded copy of the experts a step holds)."""
        return any(m.startswith("experts") for m in modules)

    def max_rank(self, modules: tuple[str, ...]) -> int:
        """The largest rank that is still below the full rank of some targeted module (the largest
        min(in, out)); peft accepts more, but such an adapter is no longer low-rank anywhere."""
        shapes = self.adapter_shapes()
        return max(min(shapes[m][0], shapes[m][1]) for m in modules)
