"""What every emitter reads and shares: the plan's fields as the files need them (:class:`_Plan`), the
fixed choices written into every file, literals that no name can turn into code, and the one-line
refusal where a trainer lacks what the plan was sized with. The Python scripts are in
:mod:`ftdecide.emit`, the YAML and JSON configs in :mod:`ftdecide.emit.configs`."""

from __future__ import annotations

from typing import Any

from .. import levers
from ..core.errors import InputError, one_line
from ..decide.results import Recommendation
from ..files.families import FAMILIES as FAMILY_RECORDS
from ..files.hfconfig import DEQUANTIZED
from ..methods.lora import peft_target_parameters, peft_targets

KINDS = ("peft", "trl", "hf", "axolotl", "llamafactory", "accelerate", "deepspeed")
ACCELERATE_FILE = "accelerate.yaml"  # write it with --emit accelerate
WARMUP_RATIO = 0.03
SCHEDULER = "cosine"
# transformers' decoder layer class per model_type (what FSDP wraps as one unit), from the family records
DECODER_LAYER = {mt: f.decoder_layer for mt, f in FAMILY_RECORDS.items() if f.decoder_layer}


class _Plan:
    """The fields of a feasible plan that every emitter needs: from a recommendation
    (:meth:`from_recommendation`) or from a bare configuration (:func:`emit_config`, what the trainer
    harness in ``benchmarks/`` runs)."""

    def __init__(
        self,
        arch,
        cfg,
        *,
        gpu_name: str,
        lora,
        settings: dict,
        learning_rate: float,
        epochs: int,
        accum: int,
        bf16: bool,
        gpus: int,
        nodes: int,
        held_out: int,
        dataset_size: int,
        dataset: str,
        output_dir: str,
    ):
        if not arch.model_id:
            raise InputError(
                f"nothing to emit for '{arch.name}': it is not a checkpoint (give a catalog name, a Hugging Face id or a config.json)"
            )
        self.model_id, self.method, self.spec = arch.model_id, cfg.method, cfg.method_spec
        self.keys = self.spec.emit_keys
        self.lora = lora
        self.settings = dict(settings or {})
        self.levers = levers.switched_on(cfg)  # each says its own keys to each trainer
        self.modules = list(arch.resolve_targets(self.lora.targets)) if self.lora else []
        self.all_linear = bool(self.lora) and self.lora.targets == "all-linear"
        self.peft_targets = peft_targets(arch, self.modules, self.all_linear) if self.lora else []
        self.peft_parameters = peft_target_parameters(arch, self.modules) if self.lora else []
        self.lr, self.epochs = learning_rate, epochs
        self.micro, self.accum = cfg.batch_size, accum
        self.gc, self.seq = cfg.gradient_checkpointing, cfg.seq_len
        # the transformers config class that loads a checkpoint shipped pre-quantized de-quantized to bf16, what is
        # sized (gpt-oss's MXFP4 experts, DeepSeek-V3's fp8 weights; a bf16 copy loads as it is), or ""
        self.dequantize = "" if self.spec.quantized_base else DEQUANTIZED.get(arch.checkpoint_quant, "")
        self.packing = cfg.packing
        if self.packing and cfg.trainer_spec.packing_problem():
            raise InputError(f"the plan packs its examples, and {cfg.trainer_spec.packing_problem()}")
        self.bf16 = bf16
        self.mixed = self.spec.trains_base and cfg.precision == "mixed"
        # bf16 autocast on (the trainers' bf16=True, accelerate's mixed_precision), except where the launch would then
        # keep fp32 copies of a base the plan trains in pure bf16 (FSDP2 under accelerate)
        self.autocast = not (gpus * nodes > 1 and cfg.strategy_spec.upcasts_trained and self.spec.trains_base and not self.mixed)
        self.optim = cfg.optimizer_spec.trainer_name
        self.gpus, self.nodes = gpus, nodes
        self.strategy_spec = cfg.strategy_spec
        self.arch = arch
        self.trainer = cfg.trainer_spec  # what the figures were sized for, said in the header
        self.offload_params, self.offload_optimizer = cfg.offload_params, cfg.offload_optimizer
        # the base loaded (and quantized) in host memory, where the strategy's start was sized so (FSDP1 offloaded over
        # several GPUs: the strategy says where)
        self.load_cpu = cfg.strategy_spec.load_on_cpu(arch, cfg)
        self.attn = arch.attention  # what the estimate assumed
        self.layer_cls = DECODER_LAYER.get(arch.family, "")
        self.held_out = held_out
        self.val_share = round(self.held_out / dataset_size, 4) if self.held_out else 0.0
        self.dataset, self.output_dir = dataset, output_dir
        precision = (
            "fp32 master weights, bf16 autocast"
            if self.mixed
            else f"{self.dtype} weights" + (" and optimizer states" if self.spec.trains_base else " base, fp32 adapters")
        ) + ("" if self.autocast else ", no autocast (with it, accelerate's FSDP2 would keep fp32 copies of every trained weight)")
        self.strategy = f"{self.strategy_spec.label} over {self.gpus} GPUs ({self.strategy_spec.summary})" if self.gpus > 1 else "one GPU"
        offloaded = [what for what, on in (("parameters", self.offload_params), ("optimizer states", self.offload_optimizer)) if on]
        if offloaded:
            self.strategy += f", {' and '.join(offloaded)} in host memory"
        if self.load_cpu:
            self.strategy += " (the base loaded and quantized there: slower to load, and rank 0's host holds it whole)"
        self.header = (
            f"Generated by ftdecide from its recommendation for {arch.model_id} ({arch.name}) on {self.gpus}x {gpu_name}: "
            f"{self.method}"
            + (f" r={self.lora.rank} alpha={self.lora.alpha} targets={self.lora.targets}" if self.lora else "")
            + "".join(f" {k}={v}" for k, v in self.settings.items())
            + "".join(f", {lv.header_note}" for lv in self.levers)
            + f", micro-batch {self.micro} x {self.accum} accumulation, seq {self.seq}"
            + (" (examples packed)" if self.packing else "")
            + f", lr {self.lr:g}, {self.epochs} epochs."
            + f" Sized for: {precision}; optimizer {self.optim}; attention {self.attn}; {self.strategy};"
            + f" {self.held_out:,} examples held out; trainer {self.trainer.label} ({self.trainer.versions})."
        )

    @classmethod
    def from_recommendation(cls, res: Recommendation, dataset: str, output_dir: str) -> "_Plan":
        plan = res.plan
        if plan.candidate is None:
            raise InputError("nothing to emit: no method fits (see the recommendation's alternatives)")
        return cls(
            res.arch,
            plan.candidate.config,
            gpu_name=res.gpu.name,
            lora=plan.lora,
            settings=plan.method_settings or {},
            learning_rate=plan.learning_rate,
            epochs=plan.epochs,
            accum=plan.gradient_accumulation_steps,
            bf16=plan.precision == "bf16",
            gpus=plan.gpus,
            nodes=plan.nodes,
            held_out=plan.evaluation.held_out_examples if plan.evaluation else 0,
            dataset_size=res.scenario.dataset_size,
            dataset=dataset,
            output_dir=output_dir,
        )

    @property
    def sharded(self) -> bool:
        """Parameters sharded over the GPUs (FSDP2, ZeRO-3): 4-bit weights must be stored as bf16 to shard."""
        return self.strategy_spec.shards_parameters and (self.gpus > 1 or self.offload_params)

    @property
    def launch(self) -> str:
        if self.gpus == 1 and self.strategy_spec.engine != "deepspeed":
            return "python"
        machines = f" --num_machines {self.nodes} --machine_rank $NODE_RANK --main_process_ip $MAIN_IP" if self.nodes > 1 else ""
        return f"accelerate launch --config_file {ACCELERATE_FILE} --num_processes {self.gpus}{machines}"

    @property
    def autocast_bf16(self) -> bool:
        """The trainers' ``bf16`` flag: bf16 autocast, where the plan runs with it."""
        return self.bf16 and self.autocast

    @property
    def autocast_fp16(self) -> bool:
        """The trainers' ``fp16`` flag: fp16 autocast, on cards without bf16, where the plan runs with it."""
        return not self.bf16 and self.autocast

    @property
    def dtype(self) -> str:
        if self.mixed:
            return "float32"  # fp32 master weights, bf16/fp16 autocast
        return "bfloat16" if self.bf16 else "float16"


def _py(v: Any) -> str:
    """A Python literal of ``v`` in ASCII (``ascii()`` escapes every other character, lone surrogates
    included): whatever a path or model id holds, the emitted file reads back the same value, and no
    source encoding can turn an escape into a quote."""
    return ascii(v)


def _refuse(trainer: str, has: bool, what: str, elsewhere: str = "--emit peft or --emit trl") -> None:
    if not has:
        raise InputError(f"{trainer} has no {what}: use {elsewhere}")


def _comment(text: str) -> str:
    """One comment line, in ASCII: names from config files or the command line must not end the comment
    and become code (Python) or keys (YAML)."""
    return "# " + one_line(text).encode("ascii", "backslashreplace").decode("ascii")


def _eval(p: _Plan) -> str:
    """Evaluate each epoch on the held-out split; not at all where nothing is held out."""
    return '"epoch"' if p.held_out else '"no"'
