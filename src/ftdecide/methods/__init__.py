"""Fine-tuning methods: one module each, registered here, asked by the rest of the code.

A method combines three choices: what trains (every weight, or an adapter), whether the frozen base is
quantised, and the precision of what trains. Each module of this package builds one :class:`Method`
(or a subclass) and passes it to :func:`register`; the package imports every module of itself on first
use, so a new method is one new file here plus its data and tests (the way pyupgrade's fixes and
yamllint's rules register themselves). No other module compares a method's name: the estimator, the
step-time model, the recommender, the emitters and the probe ask the method.

A method answers, for an architecture (:class:`ftdecide.core.arch.Arch`) and a configuration
(:class:`ftdecide.core.estimator.TrainConfig`):

- its *variant* for a precision: the key of its fitted constants (``full_bf16``, ``full_mixed``,
  ``lora``, ``qlora``) in :class:`ftdecide.core.calibration.Calibration` and in measured records;
- which linear modules it adapts, and how many parameters train;
- the bytes of its weights (GPU-resident, base and adapters), bytes per trainable parameter, and the
  trainable matrices an optimizer keeps state for;
- its memory terms beyond the common ones (QLoRA: the input every 4-bit linear saves, the
  dequantisation workspace), its FLOPs per parameter per token and the kernels it adds per layer;
- its probe recipe (dtype, 4-bit base, adapter, k-bit preparation) and its emitter keys.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Optional

from ..core.plugins import import_submodules

from ..core.policy import DEFAULT_LORA_LEARNING_RATE

if TYPE_CHECKING:  # pragma: no cover - types only
    from ..core.arch import Arch
    from ..core.calibration import Calibration, KernelCounts
    from ..core.coefs import ActCoef
    from ..core.config import TrainConfig


@dataclass(frozen=True)
class ProbeRecipe:
    """How ``ftdecide probe`` builds and wraps the model for a method variant."""

    dtype: str  # torch dtype of the base weights as built: "bfloat16" or "float32"
    quantize_4bit: bool  # replace every linear but the head by bitsandbytes NF4
    adapter: Optional[str]  # the adapter family ("lora", "ia3", "prompt", "prefix", "houlsby") or None
    kbit_prepare: bool  # peft's prepare_model_for_kbit_training (fp32 norms and embeddings)
    use_dora: bool = False  # LoraConfig(use_dora=True)
    needs: tuple[str, ...] = ()  # packages beyond torch, transformers and peft


@dataclass(frozen=True)
class EmitKeys:
    """What each trainer calls this method (``None``: the trainer lacks it)."""

    axolotl_adapter: Optional[str]  # axolotl's ``adapter:``; "" for full fine-tuning (no key)
    llamafactory_type: Optional[str]  # LLaMA-Factory's ``finetuning_type`` (None: it lacks the method)
    quantization_bit: Optional[int] = None  # 4 for a 4-bit base (axolotl load_in_4bit, LLaMA-Factory quantization_bit)
    peft_lora_options: tuple[tuple[str, object], ...] = ()  # extra LoraConfig keywords (use_dora=True)
    axolotl_options: tuple[tuple[str, object], ...] = ()  # extra axolotl keys (peft_use_dora: true)
    llamafactory_options: tuple[tuple[str, object], ...] = ()  # extra LLaMA-Factory keys (use_dora: true)
    peft_class: str = "LoraConfig"  # peft's config class the peft and TRL scripts build
    # (plan setting, peft keyword) for the methods whose settings are not LoRA's shape
    peft_settings: tuple[tuple[str, str], ...] = ()
    # where to train the method when a trainer lacks it (what a refusal names)
    elsewhere: str = "--emit peft or --emit trl"
    # (trainer's key, attribute of the plan's LoRA shape) for the methods that take one (``takes_shape``)
    peft_shape: tuple[tuple[str, str], ...] = (("r", "rank"), ("lora_alpha", "alpha"), ("lora_dropout", "dropout"))
    axolotl_shape: tuple[tuple[str, str], ...] = (("lora_r", "rank"), ("lora_alpha", "alpha"), ("lora_dropout", "dropout"))
    llamafactory_shape: tuple[tuple[str, str], ...] = (("lora_rank", "rank"), ("lora_alpha", "alpha"), ("lora_dropout", "dropout"))


@dataclass(frozen=True)
class Method:
    """A fine-tuning method: the base class holds what full fine-tuning and adapter methods share;
    subclasses override the hooks that differ (behaviour only, no fields: they need no ``@dataclass``,
    which costs about 0.7 ms of every start per class). Memory in bytes, unless a name says otherwise."""

    name: str
    label: str  # how people write it: "full fine-tuning", "LoRA", "QLoRA"
    summary: str  # one line for help texts
    # Order among the methods that fit when no rule prefers one (lower first): the cheapest method with
    # the quality of a full update comes first.
    fallback_order: int
    emit_keys: EmitKeys
    # Position in tables and JSON lists (methods that train the base, then adapters by how common they are).
    display_order: int = 0
    trains_base: bool = False  # every weight trains (gradients and optimizer states for all of them)
    adapter: Optional[str] = None  # "lora" for LoRA-family adapters
    quantized_base: bool = False  # frozen base in 4-bit NF4
    precisions: tuple[str, ...] = ("bf16",)  # precisions of what trains that the method supports
    learning_rate_setting: str = "lora_learning_rate"  # the rules' key for its learning rate
    default_learning_rate: float = DEFAULT_LORA_LEARNING_RATE  # when no rule sets it
    # its own settings (:class:`ftdecide.methods.options.Option`, declared in its module): TrainConfig fields
    # beyond the common ones; giving another method's option (prompt tuning with a LoRA rank) is an input
    # error, not silently ignored.
    options: tuple = ()
    # merge_and_unload folds the trained weights into the base (no serving latency); soft prompts cannot be
    mergeable: bool = True
    # trains under gradient checkpointing on the measured stack (peft 0.21, transformers 5.17)
    supports_checkpointing: bool = True
    # said with every plan that uses the method (Houlsby adapters' inference latency)
    serving_warning: str = ""
    # its memory terms were fitted on measured runs; False: read from its structure, and every estimate says so
    measured: bool = True
    # its fitted constants, beside it: (variant, activation coefficients, tensor-core utilisation) per
    # variant; :class:`ftdecide.core.calibration.Calibration` assembles them (benchmarks/fit_coefficients.py and
    # fit_throughput.py refit them into a new Calibration)
    fitted: tuple = ()
    # its other fitted constants, beside the terms that read them: (name, value); the models read them by
    # name (``cal.<name>``) from :class:`ftdecide.core.calibration.Calibration`, which assembles every unit's
    constants: tuple[tuple[str, float], ...] = ()

    # --- identity ---------------------------------------------------------------------------
    @property
    def decomposed(self) -> bool:
        """Its adapter carries DoRA's magnitude vectors (peft ``LoraConfig(use_dora=True)``)."""
        return bool(dict(self.emit_keys.peft_lora_options).get("use_dora"))

    @property
    def batched_by_engines(self) -> bool:
        """vLLM and SGLang serve its adapters batched over one base (S-LoRA, Punica): plain LoRA adapters, not
        DoRA's (vLLM's DoRA serving is an open pull request, vllm-project/vllm#47395), IA3's or soft prompts."""
        return self.takes_shape and not self.decomposed

    @property
    def takes_shape(self) -> bool:
        """It is sized and emitted with the plan's LoRA shape (rank, alpha, targets, dropout)."""
        return any(o.shape_attr for o in self.options)

    @property
    def short_label(self) -> str:
        """The name in compact lists ("full", "LoRA", "QLoRA")."""
        return self.label if self.adapter else self.name

    def variant(self, precision: str) -> str:
        """Key of this method's fitted constants and of its measured records for ``precision``."""
        return self.name

    def bf16_engine_variant(self) -> str:
        """The variant whose activation terms hold where the engine holds the weights it computes with in
        bf16 and runs them without autocast (DeepSpeed's bf16 engine, FSDP2's bf16 parameter policy):
        the method's bf16 variant; a method the engine recasts further says so."""
        return self.variant("bf16")

    def precision_for(self, requested: str) -> str:
        """The precision the method runs at when ``requested`` is asked for the plan (adapters train
        in fp32 under bf16 autocast whatever full fine-tuning would use)."""
        return requested if requested in self.precisions else self.precisions[0]

    # --- parameters ---------------------------------------------------------------------------
    def adapted_modules(self, arch: "Arch", cfg: "TrainConfig") -> tuple[str, ...]:
        """Linear modules of one layer that get an adapter (none for full fine-tuning). Raises
        InputError for targets the architecture lacks or a rank beyond its layers."""
        return ()

    def adapter_params(self, arch: "Arch", cfg: "TrainConfig", mods: tuple[str, ...]) -> int:
        """Parameters the method adds to the model (0 for full fine-tuning)."""
        return 0

    def trainable_params(self, arch: "Arch", cfg: "TrainConfig", mods: tuple[str, ...]) -> int:
        return arch.total_params() if self.trains_base else self.adapter_params(arch, cfg, mods)

    def param_bytes(self, cfg: "TrainConfig") -> float:
        """Bytes per trainable parameter (and per gradient): adapters are fp32."""
        return 4.0

    def weight_bytes(self, arch: "Arch", cfg: "TrainConfig", adapter_params: int) -> float:
        """Bytes of the model's parameters as they sit on the GPU: a bf16 base plus fp32 adapters."""
        return arch.total_params() * 2.0 + adapter_params * 4.0

    def unsharded_bytes(self, arch: "Arch", cfg: "TrainConfig") -> float:
        """Bytes of :meth:`weight_bytes` held outside the parameters, which FSDP1 leaves whole on every GPU
        (a 4-bit base's quantization constants): none by default."""
        return 0.0

    def trainable_matrices(self, arch: "Arch", cfg: "TrainConfig", mods: tuple[str, ...]) -> list[tuple[int, int, int]]:
        """(rows, cols, count) of the trainable matrices, for the optimizers' per-tensor rules."""
        shapes = arch.adapter_shapes()
        L = arch.num_layers
        out: list[tuple[int, int, int]] = []
        for m in mods:
            i, o, n = shapes[m]
            out += [(cfg.lora_rank, i, round(n * L)), (o, cfg.lora_rank, round(n * L))]
        return out

    def trainable_tensors(self, arch: "Arch", mods: tuple[str, ...]) -> int:
        """Parameter tensors the optimizer loops over."""
        return 2 * len(mods) * arch.num_layers

    # --- memory terms beyond the common ones ---------------------------------------------------
    def layer_extra_bytes(self, arch: "Arch", cfg: "TrainConfig", mods: tuple[str, ...], cal: "Calibration", coef: "ActCoef") -> float:
        """Bytes per token one layer saves because of the method itself (beyond the base's fitted terms)."""
        return 0.0

    def recompute_extra_bytes(self, arch: "Arch", cfg: "TrainConfig", mods: tuple[str, ...], cal: "Calibration") -> float:
        """Bytes per token the backward of a checkpointed layer holds beyond its recomputed activations
        (``recompute`` x the layer), because of the method under the trainer the user runs."""
        return 0.0

    def packing_problem(self) -> Optional[str]:
        """Why this method cannot train on packed examples (one line), or None."""
        return None

    def extra_tokens(self, cfg: "TrainConfig") -> int:
        """Positions the method adds to every sequence the layers and the loss see (prompt tuning's
        virtual tokens), beyond ``seq_len``."""
        return 0

    def sequence_bytes(self, arch: "Arch", cfg: "TrainConfig", cal: "Calibration") -> float:
        """Bytes per sequence (not per token) the method holds through forward and backward (prefix
        tuning's virtual keys and values)."""
        return 0.0

    def mask_bytes_per_key(self, cal: "Calibration") -> float:
        """Bytes per token per key position one layer saves because a trainer's attention mask meets the
        method (prefix tuning: the mask widened over the virtual keys, one copy per layer)."""
        return 0.0

    def workspace_bytes(self, arch: "Arch", mods: tuple[str, ...], coef: "ActCoef", gc: bool) -> float:
        """A transient buffer that does not scale with tokens (QLoRA's dequantised weight)."""
        return 0.0

    def cast_copy_bytes(self, arch: "Arch", cfg: "TrainConfig", gc: bool) -> float:
        """Bytes of weight copies in the compute dtype that the step saves for backward, whatever the tokens
        (a base that k-bit preparation left in fp32 where autocast casts it back, with or without checkpointing)."""
        return 0.0

    # --- step time ----------------------------------------------------------------------------
    @property
    def flops_per_param(self) -> float:
        """Training FLOPs per active parameter per token without recompute: forward 2, input
        gradients 2, weight gradients 2 only where the base trains."""
        return 6.0 if self.trains_base else 4.0

    def extra_flops_per_token(self, arch: "Arch", cfg: "TrainConfig", mods: tuple[str, ...]) -> float:
        """Training FLOPs per token the method adds beyond ``flops_per_param`` x active parameters."""
        return 0.0

    def step_traffic_bytes(self, arch: "Arch", cfg: "TrainConfig", mods: tuple[str, ...], cal: "Calibration") -> float:
        """Bytes of memory traffic one micro-batch's step adds because of the method, beyond what the layers'
        activations and the optimizer move (LoRA's adapters beside each adapted linear, its folded copies of fused
        experts)."""
        return 0.0

    def kernels_per_layer_pass(self, arch: "Arch", mods: tuple[str, ...], kc: "KernelCounts") -> float:
        """Kernels the method adds to one pass over one layer."""
        return len(mods) * kc.adapter_pass

    def kernels_per_layer_step(self, kc: "KernelCounts") -> float:
        """Kernels the method adds once per layer per step (weight gradients and their casts)."""
        return 0.0

    def unsupported(self, arch: "Arch", cfg: "Optional[TrainConfig]" = None) -> Optional[str]:
        """Why the method's library cannot train ``arch`` (one line), or None; with ``cfg``, as that
        configuration asks (its targets). The estimate is still made; a plan does not use the method, and a
        command that asks for it is refused."""
        return None

    def settings(self, arch: "Arch", cfg: "TrainConfig") -> dict:
        """The method's own settings as the plan states them (beyond LoRA's shape), JSON-ready."""
        return {}

    # --- probe ----------------------------------------------------------------------------------
    def peft_config(self, arch: "Arch", cfg: "TrainConfig"):
        """peft's config object that wraps the base for this method (imports peft: probe only), or None
        where nothing wraps it."""
        return None

    def wrap_for_probe(self, model, arch: "Arch", cfg: "TrainConfig"):
        """The model the probe trains: the base wrapped by peft with :meth:`peft_config` (the base frozen
        first), or the base itself where there is no peft config. Imports peft: probe only."""
        adapter = self.peft_config(arch, cfg)
        if adapter is None:
            return model
        from peft import get_peft_model

        if not self.quantized_base:  # prepare_model_for_kbit_training froze a 4-bit base already
            for p in model.parameters():
                p.requires_grad_(False)
        return get_peft_model(model, adapter)

    def probe_recipe(self, variant: str) -> ProbeRecipe:
        return ProbeRecipe(
            dtype="bfloat16",
            quantize_4bit=self.quantized_base,
            adapter=self.adapter,
            kbit_prepare=self.quantized_base,
            needs=("bitsandbytes",) if self.quantized_base else (),
        )


_REGISTRY: dict[str, Method] = {}
_VARIANTS: dict[str, tuple[Method, str]] = {}
_LOADED = False


def register(method: Method) -> Method:
    """Add ``method`` to the registry (each method module calls this once)."""
    if method.name in _REGISTRY:
        raise RuntimeError(f"method '{method.name}' registered twice")
    _REGISTRY[method.name] = method
    _ORDERED.clear()
    for p in method.precisions:
        _VARIANTS[method.variant(p)] = (method, p)
    return method


def _load() -> None:
    global _LOADED
    if not _LOADED:
        _LOADED = True
        import_submodules(__name__, __path__)


_ORDERED: dict[str, tuple] = {}  # the methods and their names in output order; emptied when one registers


def all_methods() -> tuple[Method, ...]:
    """Every registered method in the order the outputs list them (``display_order``, then name)."""
    _load()
    if not _ORDERED:
        ordered = tuple(sorted(_REGISTRY.values(), key=lambda m: (m.display_order, m.name)))
        _ORDERED.update(methods=ordered, names=tuple(m.name for m in ordered))
    return _ORDERED["methods"]


def names() -> tuple[str, ...]:
    """Names of every registered method, in output order."""
    all_methods()
    return _ORDERED["names"]


def get(name: str) -> Method:
    """The method called ``name``; KeyError if none is."""
    _load()
    return _REGISTRY[name]


def from_variant(variant: str) -> tuple[Method, str]:
    """(method, precision) of a variant key such as ``full_mixed``; KeyError if unknown."""
    _load()
    return _VARIANTS[variant]


def variants() -> tuple[str, ...]:
    """Every variant key (what measured records call their method)."""
    _load()
    return tuple(_VARIANTS)
