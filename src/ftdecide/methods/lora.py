"""LoRA: a frozen bf16 base with trainable low-rank adapters (peft, fp32 adapter weights).

Each targeted linear of ``in x out`` gains ``r x (in + out)`` parameters (A and B), as peft counts them.
"""

from __future__ import annotations

from ..core.coefs import ActCoef

from ..core.errors import InputError
from ..core.policy import DEFAULT_LORA
from . import EmitKeys, Method, register
from .options import Option

# LoRA's shape as a method option (QLoRA and DoRA take the same); a plan takes it from the rules' shape,
# probe records call it r, targets and dropout (records without dropout ran without)
LORA_OPTIONS = (
    Option("lora_rank", int, DEFAULT_LORA.rank, "rank", bounds=(("gt", 0), ("le", 65536)), record_key="r", shape_attr="rank"),
    Option(
        "lora_targets",
        str,
        DEFAULT_LORA.targets,
        "all-linear, attn, mlp, qv, or names like q_proj,v_proj",
        record_key="targets",
        shape_attr="targets",
    ),
    Option(
        "lora_dropout",
        float,
        DEFAULT_LORA.dropout,
        "dropout",
        bounds=(("ge", 0.0), ("lt", 1.0)),
        record_key="dropout",
        record_missing=0.0,
        shape_attr="dropout",
    ),
)


# peft's ParamWrapper folds LoRA into a fused expert parameter as one baddbmm, W + s * B @ A, every forward
# (peft 0.21 tuners/lora/layer.py, _LoraFactorsProxy): a bf16 copy of the whole expert stack that the experts'
# matmuls save for backward, whose gradient backward builds at the same size before it reaches the factors.
EXPERT_COPY_BYTES = 2.0
# bytes per hidden value per routed copy of a token saved for the folded weight's gradient: its gathered input and
# the expert's output, bf16 each (modeling_qwen3_moe.Qwen3MoeExperts.forward and its twins in transformers 5.17)
ROUTED_COPY_BYTES = 4.0


def _folded_experts(arch, mods: tuple[str, ...]) -> list[int]:
    """Values of each fused expert parameter of one MoE layer that LoRA folds (``W + s*B@A`` over every expert):
    gate_up_proj's and down_proj's, where the targets reach them."""
    h, i, e = arch.hidden_size, arch.expert_intermediate, arch.num_experts
    return [
        n
        for part, n in (("gate_up_proj", e * h * 2 * i), ("down_proj", e * i * h))
        if f"experts[{part}]" in mods or f"experts.{part}" in mods
    ]


def expert_copy_bytes(arch, mods: tuple[str, ...], gc: bool) -> float:
    """Bytes of the folded expert weights a step holds beyond the tokens' activations: every MoE layer's copy
    without checkpointing (saved for backward), one layer's with it (the recomputed one), and in both the
    gradient of the largest folded parameter while backward reaches it."""
    sizes = _folded_experts(arch, mods)
    if not sizes:
        return 0.0
    layers = 1 if gc else arch.moe_layers
    return EXPERT_COPY_BYTES * (layers * sum(sizes) + max(sizes))


class LoraFamily(Method):
    """LoRA-style adapters on the linear modules that ``lora_targets`` selects; the base may be 4-bit."""

    def extra_flops_per_token(self, arch, cfg, mods) -> float:
        # A folded expert parameter is an autograd product: backward computes its whole weight gradient (2 FLOPs
        # per routed token per value, as full fine-tuning does for those experts) before reducing it to A and B
        # (a per-step product of 4 x values x rank, left out here: a few % of it).
        folded = sum(_folded_experts(arch, mods))
        return 2.0 * arch.experts_per_token / arch.num_experts * folded * arch.moe_layers if folded else 0.0

    def step_traffic_bytes(self, arch, cfg, mods, cal) -> float:
        # peft 0.21 folds each adapted expert parameter anew in every forward (reads the bf16 weight, writes the
        # copy: 4 B a value; checkpointing's recompute folds it again), and backward writes its bf16 gradient and
        # reads it back to reduce it to A and B (4 B a value)
        folded = sum(_folded_experts(arch, mods)) * arch.moe_layers
        passes = 3 if cfg.gradient_checkpointing else 2
        # beside each adapted linear, every pass runs memory-bound kernels over its input and output widths per token:
        # the dropped-out copy of the input, B's output, its scaling and its add into the base output, and their
        # gradients (``lora_io_bytes`` per input and output value per pass)
        shapes = arch.linear_shapes()
        widths = sum((shapes[m][0] + shapes[m][1]) * shapes[m][2] for m in mods if m in shapes)
        tokens = (cfg.seq_len + self.extra_tokens(cfg)) * cfg.batch_size
        adapters = cal.lora_io_bytes * widths * arch.num_layers * passes * tokens
        return folded * (4.0 * (2 if cfg.gradient_checkpointing else 1) + 4.0) + adapters

    def workspace_bytes(self, arch, mods, coef, gc: bool) -> float:
        return expert_copy_bytes(arch, mods, gc)

    def adapted_modules(self, arch, cfg) -> tuple[str, ...]:
        mods = arch.resolve_targets(cfg.lora_targets)
        if cfg.lora_dropout > 0 and arch.adapts_fused_experts(mods):
            raise InputError(
                f"peft 0.21 adapts {arch.name}'s fused experts through its ParamWrapper, which refuses LoRA dropout "
                f"{cfg.lora_dropout:g} (the trainer stops before its first step): use dropout 0, or targets without the experts (attn)"
            )
        if cfg.lora_rank > arch.max_rank(mods):
            raise InputError(
                f"LoRA rank {cfg.lora_rank} exceeds the smallest targeted layer dimension ({arch.max_rank(mods)}) of {arch.name}"
            )
        return mods

    def adapter_params(self, arch, cfg, mods) -> int:
        return arch.lora_params(cfg.lora_rank, mods)

    def layer_extra_bytes(self, arch, cfg, mods, cal, coef) -> float:
        # What adapters make a frozen layer keep: a_o per adapted output (DoRA's kept results); with
        # dropout, a dropped-out copy and mask of every adapted input; without, the inputs of adapted
        # o_proj/down_proj and the normed input of each adapted block, which a frozen layer would not keep.
        shapes = arch.adapter_shapes()
        out = coef.a_o * sum(shapes[m][1] * shapes[m][2] for m in mods)
        if _folded_experts(arch, mods):
            # adapted experts need their inputs and outputs for the folded weight's gradient: every routed copy of a
            # token saves its gathered hidden state (the expert's linear input) and the expert's output (weighted by
            # the router), bf16 (transformers 5.17's expert loop), in each MoE layer: spread over all layers here
            out += ROUTED_COPY_BYTES * arch.experts_per_token * arch.hidden_size * arch.moe_layers / arch.num_layers
        if cfg.lora_dropout > 0:
            return out + cal.dropout_bytes * sum(shapes[m][0] for m in mods)
        out += coef.nodrop * sum(shapes[m][0] for m in mods if m in ("o_proj", "down_proj"))
        blocks = ({"q_proj", "k_proj", "v_proj", "qkv_proj"}, {"gate_proj", "up_proj", "gate_up_proj"})
        return out + coef.nodrop_h * arch.hidden_size * sum(1 for b in blocks if b & set(mods))

    def peft_config(self, arch, cfg):
        """peft's LoraConfig (alpha = 2r, as the recommendation's default shape)."""
        from peft import LoraConfig

        return LoraConfig(
            r=cfg.lora_rank,
            lora_alpha=2 * cfg.lora_rank,
            lora_dropout=cfg.lora_dropout,
            target_modules=lora_target_modules(cfg.lora_targets, arch.family),
            task_type="CAUSAL_LM",
            use_dora=self.probe_recipe(cfg.variant).use_dora,
        )


class Lora(LoraFamily):
    """LoRA itself, beside the family it heads (QLoRA and DoRA fit their own recompute terms)."""

    def recompute_extra_bytes(self, arch, cfg, mods, cal) -> float:
        # Under TRL a recomputed layer's MLP backward holds fp32 blocks as wide as down_proj's adapted input
        # (peft's fp32 cast of it and its dropped-out copy, in the allocator traces of data/traces/): bytes per
        # value of that input, a constant the trainer declares (none where its runs showed none).
        if "down_proj" not in mods:
            return 0.0
        return cfg.trainer_spec.declared("lora_gc_down_in", cal) * arch.adapter_shapes()["down_proj"][0]


METHOD = register(
    Lora(
        name="lora",
        label="LoRA",
        summary="low-rank adapters on a frozen bf16 base",
        fallback_order=0,
        display_order=1,
        adapter="lora",
        options=LORA_OPTIONS,
        emit_keys=EmitKeys(axolotl_adapter="lora", llamafactory_type="lora"),
        # with dropout, its output (bf16, 2 B) and its mask (1 B) per targeted input value; QLoRA and DoRA,
        # LoRA's family, read it here. And the step time's bytes moved per input and output value of each adapted
        # linear, per token and pass (LoraFamily.step_traffic_bytes), fitted with the family's three utilisations on
        # the probe loop's 302 LoRA, QLoRA and DoRA runs timed alone (benchmarks/fit_throughput.py --adapters; 11.1
        # and 14.6 fitted on either half of the sessions): the timing grids of the emitted TRL and transformers
        # Trainer files, which the fit did not see, went from 9.7% and 11.5% to 6.2% and 4.8%
        constants=(("dropout_bytes", 3.0), ("lora_io_bytes", 12.63)),
        # fitted by least squares on data/measurements (benchmarks/fit_coefficients.py); the utilisation of
        # its matrix products on benchmarks/fit_throughput.py (--adapters: at its bound, 0.8 of the dense peak)
        fitted=(
            (
                "lora",
                ActCoef(
                    a_h=0.0, a_q=9.59, a_kv=7.9, a_i=6.62, a_e=0.28, c_h=2.58, g=2.0, nodrop=1.37, nodrop_h=5.47, recompute=0.91, a_n=2.66
                ),
                0.8,
            ),
        ),
    )
)


# Module names per target set, by model family (phi3 fuses q/k/v and gate/up).
_TARGETS = {
    "qv": {"default": ["q_proj", "v_proj"], "phi3": ["qkv_proj"]},
    "attn": {"default": ["q_proj", "k_proj", "v_proj", "o_proj"], "phi3": ["qkv_proj", "o_proj"]},
    "mlp": {"default": ["gate_proj", "up_proj", "down_proj"], "phi3": ["gate_up_proj", "down_proj"]},
}


def dropout_for(arch, targets: str, dropout: float) -> float:
    """``dropout``, or 0 where ``targets`` reach the fused experts: peft's ParamWrapper over them refuses any
    other (InputError for targets the model lacks)."""
    return 0.0 if arch.adapts_fused_experts(arch.resolve_targets(targets)) else dropout


def model_default_options(arch, method: str, opts: dict) -> dict:
    """``opts`` (method options given by name) with the defaults that depend on the model: LoRA dropout is
    0 where peft wraps fused experts in its ParamWrapper, which refuses any other. A dropout given
    explicitly is kept, for :meth:`LoraFamily.adapted_modules` to refuse."""
    from . import get, names

    spec = get(method) if method in names() else None
    if spec is None or "lora_dropout" not in {o.name for o in spec.options} or opts.get("lora_dropout") is not None:
        return opts
    try:
        dropout = dropout_for(arch, opts.get("lora_targets") or DEFAULT_LORA.targets, DEFAULT_LORA.dropout)
    except InputError:
        return opts  # the method names the bad target
    return {**opts, "lora_dropout": 0.0} if dropout == 0.0 else opts


def peft_targets(arch, modules: list[str], all_linear: bool) -> "str | list[str]":
    """What an emitted LoraConfig's ``target_modules`` says for the modules a plan adapts: peft's own
    ``all-linear`` (which reaches the fused experts itself on the families where it does); the module names
    (fused experts named as parameters go to :func:`peft_target_parameters`); or, where the model wraps a text
    model with a vision tower (Gemma 3), a pattern that keeps the adapters in the text model, which
    ``all-linear`` and bare names would not (the tower has q_proj, k_proj and v_proj too)."""
    names = list(dict.fromkeys(m.split("[", 1)[0] for m in modules if not m.startswith("experts.")))
    if arch.vision_params:
        return r".*language_model.*\.(" + "|".join(n.replace(".", r"\.") for n in names) + ")"
    # peft's all-linear would also take a router it cannot wrap (Llama 4's): name the modules instead
    return "all-linear" if all_linear and arch.router_adaptable else names


def peft_target_parameters(arch, modules: list[str]) -> list[str]:
    """What an emitted LoraConfig's ``target_parameters`` names: the fused experts' parameters the ``experts``
    target asks for, by their path in a decoder layer (peft matches the end of a parameter's name)."""
    return [f"{arch.experts_path}.{m.split('.', 1)[1]}" for m in modules if m.startswith("experts.")]


def lora_target_modules(targets: str, model_type: str) -> "str | list[str]":
    """Translate a target-set name (``all-linear``, ``qv``, ``attn``, ``mlp``) or a comma list of
    module names into peft's ``target_modules``."""
    if targets == "all-linear":
        return "all-linear"
    if targets in _TARGETS:
        table = _TARGETS[targets]
        return table.get(model_type, table["default"])
    return [t.strip() for t in targets.split(",") if t.strip()]
