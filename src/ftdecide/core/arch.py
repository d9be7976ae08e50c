"""Model architectures and exact parameter counts.

An :class:`Arch` holds the dimensions of a decoder-only transformer as its Hugging Face ``config.json``
states them. Parameter counts are computed from those dimensions, module by module, the way transformers
builds the model, so that they equal the published totals and what peft reports for LoRA.
"""

from __future__ import annotations

from typing import Literal, Optional

from pydantic import BaseModel, ConfigDict, Field, model_validator

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
# Phi-3 fuses q/k/v and gate/up into one linear each; names users type map onto the fused module.
_FUSED_ALIASES = {
    "q_proj": "qkv_proj",
    "k_proj": "qkv_proj",
    "v_proj": "qkv_proj",
    "gate_proj": "gate_up_proj",
    "up_proj": "gate_up_proj",
}


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
    num_layers: int = Field(gt=0, le=10_000)
    num_heads: int = Field(gt=0, le=1 << 14)
    num_kv_heads: int = Field(gt=0, le=1 << 14)
    head_dim: int = Field(gt=0, le=1 << 14)
    vocab_size: int = Field(gt=0, le=1 << 24)
    tie_embeddings: bool = False
    mlp: Literal["gated", "plain"] = "gated"
    qkv_bias: bool = False
    fused_qkv: bool = False
    norms_per_layer: int = Field(2, ge=1, le=4)
    attention: Literal["sdpa", "eager"] = Field(
        "sdpa", description="eager where the model's attention needs it (Gemma 2 logit softcapping): s^2 memory"
    )
    num_experts: int = Field(0, ge=0, le=1 << 14)
    experts_per_token: int = Field(0, ge=0, le=1 << 14)
    moe_intermediate_size: int = Field(0, ge=0, le=1 << 20)
    shared_expert_intermediate_size: int = Field(0, ge=0, le=1 << 20)
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
        return self

    # --- derived dimensions -------------------------------------------------------------------
    @property
    def q_dim(self) -> int:
        return self.num_heads * self.head_dim

    @property
    def kv_dim(self) -> int:
        return self.num_kv_heads * self.head_dim

    @property
    def is_moe(self) -> bool:
        return self.num_experts > 0

    @property
    def expert_intermediate(self) -> int:
        return self.moe_intermediate_size or self.intermediate_size

    def linear_shapes(self) -> dict[str, tuple[int, int, int]]:
        """``{module: (in_features, out_features, count_per_layer)}`` of the nn.Linear modules in one
        layer (the ones peft's ``all-linear`` matches). Fused MoE experts are 3-D parameters in
        transformers 5, not nn.Linear, so they are not listed: LoRA does not reach them. The same dict
        every call (the architecture is frozen): callers read it, never change it."""
        return _MEMO.of(self, "linear_shapes", self._linear_shapes)

    def _linear_shapes(self) -> dict[str, tuple[int, int, int]]:
        h, q, kv = self.hidden_size, self.q_dim, self.kv_dim
        shapes: dict[str, tuple[int, int, int]] = {}
        if self.fused_qkv:
            shapes["qkv_proj"] = (h, q + 2 * kv, 1)
        else:
            shapes.update(q_proj=(h, q, 1), k_proj=(h, kv, 1), v_proj=(h, kv, 1))
        shapes["o_proj"] = (q, h, 1)
        if self.is_moe:
            si = self.shared_expert_intermediate_size
            if si:
                shapes.update(gate_proj=(h, si, 1), up_proj=(h, si, 1), down_proj=(si, h, 1), shared_expert_gate=(h, 1, 1))
            return shapes
        i = self.intermediate_size
        if self.mlp == "plain":
            shapes.update(up_proj=(h, i, 1), down_proj=(i, h, 1))
        elif self.fused_qkv:
            shapes.update(gate_up_proj=(h, 2 * i, 1), down_proj=(i, h, 1))
        else:
            shapes.update(gate_proj=(h, i, 1), up_proj=(h, i, 1), down_proj=(i, h, 1))
        return shapes

    def to_hf_config(self) -> dict:
        """A ``config.json`` dict that transformers builds this architecture from (the fields ftdecide reads
        back with :func:`ftdecide.files.hfconfig.arch_from_hf_config`; the rest take the family's defaults)."""
        cfg: dict = {
            "model_type": self.family,
            "hidden_size": self.hidden_size,
            "intermediate_size": self.intermediate_size,
            "num_hidden_layers": self.num_layers,
            "num_attention_heads": self.num_heads,
            "num_key_value_heads": self.num_kv_heads,
            "head_dim": self.head_dim,
            "vocab_size": self.vocab_size,
            "tie_word_embeddings": self.tie_embeddings,
        }
        if self.is_moe:
            cfg["num_experts_per_tok"] = self.experts_per_token
            if self.family == "qwen2_moe":
                cfg.update(
                    num_experts=self.num_experts,
                    moe_intermediate_size=self.moe_intermediate_size,
                    shared_expert_intermediate_size=self.shared_expert_intermediate_size,
                )
            else:
                cfg["num_local_experts"] = self.num_experts
        return cfg

    # --- parameter counts ---------------------------------------------------------------------
    def layer_linear_params(self) -> int:
        """Weights of the nn.Linear modules of one layer (without biases)."""
        return sum(i * o * n for i, o, n in self.linear_shapes().values())

    def layer_expert_params(self) -> int:
        """Routed-expert weights and router of one MoE layer (3-D fused parameters)."""
        if not self.is_moe:
            return 0
        n_mats = 3 if self.mlp == "gated" else 2
        return self.num_experts * n_mats * self.hidden_size * self.expert_intermediate + self.hidden_size * self.num_experts

    def layer_other_params(self) -> int:
        """Biases and norm weights of one layer."""
        bias = (self.q_dim + 2 * self.kv_dim) if self.qkv_bias else 0
        return bias + self.norms_per_layer * self.hidden_size

    def embedding_params(self) -> int:
        return self.vocab_size * self.hidden_size

    def head_params(self) -> int:
        return 0 if self.tie_embeddings else self.vocab_size * self.hidden_size

    def total_params(self) -> int:
        """All parameters (tied embeddings counted once), as ``sum(p.numel())`` over the model."""
        return _MEMO.of(self, "total_params", self._total_params)

    def _total_params(self) -> int:
        per_layer = self.layer_linear_params() + self.layer_expert_params() + self.layer_other_params()
        return self.num_layers * per_layer + self.embedding_params() + self.head_params() + self.hidden_size

    def param_tensors(self) -> int:
        """Number of parameter tensors (what a per-tensor optimizer loops over)."""
        per_layer = sum(n for _, _, n in self.linear_shapes().values()) + self.norms_per_layer + (3 if self.qkv_bias else 0)
        if self.is_moe:
            per_layer += 4  # fused gate/up/down experts and the router
        return self.num_layers * per_layer + (1 if self.tie_embeddings else 2) + 1

    def quantizable_params(self) -> int:
        """Parameters that bitsandbytes quantizes to 4 bit in QLoRA: every nn.Linear but the head."""
        return self.num_layers * self.layer_linear_params()

    def active_params(self) -> int:
        """Parameters one token passes through (MoE: only its routed experts): what FLOPs scale with."""
        if not self.is_moe:
            return self.total_params()
        n_mats = 3 if self.mlp == "gated" else 2
        routed = self.experts_per_token * n_mats * self.hidden_size * self.expert_intermediate
        return self.total_params() - self.num_layers * (self.layer_expert_params() - routed)

    # --- LoRA ---------------------------------------------------------------------------------
    def resolve_targets(self, targets: str | list[str] | tuple[str, ...], what: str = "LoRA target(s)") -> tuple[str, ...]:
        """Module names of one layer that a LoRA target spec selects.

        ``targets`` is ``all-linear``, ``attn``, ``mlp``, ``qv`` or a comma-separated list of module
        names (``q_proj,v_proj``). Raises InputError naming the unknown modules."""
        names = self.linear_shapes()
        if isinstance(targets, str):
            spec = targets.strip()
            if spec in ("all-linear", "all_linear", "all"):
                return tuple(names)
            wanted = TARGET_SETS.get(spec) or tuple(t.strip() for t in spec.split(",") if t.strip())
        else:
            wanted = tuple(targets)
        out: list[str] = []
        unknown = []
        for t in wanted:
            m = t if t in names else _FUSED_ALIASES.get(t) if self.fused_qkv else None
            if m is None or m not in names:
                unknown.append(t)
            elif m not in out:
                out.append(m)
        if unknown or not out:
            # a preview: a 5,000-character target list must not fill the terminal
            named = preview(", ".join(unknown)) if unknown else preview(str(targets))
            raise InputError(f"{what} {named} not in {self.name}; its linear modules are {', '.join(names)}")
        return tuple(out)

    def lora_params(self, rank: int, modules: tuple[str, ...]) -> int:
        """Trainable LoRA parameters: r * (in + out) per targeted module, over all layers (as peft counts)."""
        shapes = self.linear_shapes()
        return self.num_layers * sum(rank * (shapes[m][0] + shapes[m][1]) * shapes[m][2] for m in modules)

    def max_rank(self, modules: tuple[str, ...]) -> int:
        """The largest rank that is still below the full rank of some targeted module (the largest
        min(in, out)); peft accepts more, but such an adapter is no longer low-rank anywhere."""
        shapes = self.linear_shapes()
        return max(min(shapes[m][0], shapes[m][1]) for m in modules)
