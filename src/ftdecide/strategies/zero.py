"""DeepSpeed ZeRO stages 1, 2 and 3 (bf16), as DeepSpeed 0.19 runs the config ftdecide emits with the
optimizer the trainer hands it (torch's fused AdamW, or bitsandbytes' 8-bit AdamW). Measured on 2 H200s
under torchrun (data/scaleout/h200x2_real_*) and as rank 0 of 2 to 32 GPUs under torch's fake process
group (h200_fake_*): what each GPU holds, in bytes per trainable parameter P over N GPUs:

- always: the optimizer's partition, the fp32 master weight and its states (:func:`state_bytes`: 12 P / N
  with AdamW, 6.03 P / N with 8-bit AdamW);
- ZeRO-1 and ZeRO-2: the bf16 weights whole (2 P); at the optimizer step the bf16 gradient partition twice
  and its fp32 copy (8 P / N). ZeRO-2 reduces into partitions during backward; ZeRO-1 reduces after it, so
  at the end of backward every bf16 gradient is whole (2 P, measured at 8 and 16 GPUs, where it is more);
- ZeRO-3: the bf16 weights and a bf16 gradient partition (4 P / N); the optimizer steps one sub-group
  (``sub_group_size``, DeepSpeed's default 1e9 parameters) at a time, holding its fp32 gradients and a bf16
  copy (6 x min(P / N, 1e9)); through forward and backward (not the step) the parameters it keeps gathered,
  up to ``stage3_max_live_parameters`` (default 1e9), and the prefetch bucket. A 4-bit base stays gathered
  whole (:data:`QUANT_GATHERED_BYTES` per quantizable parameter), whatever the GPU count.

The engine casts the module to bf16 and runs it without autocast (``Strategy.bf16_engine``): the
activation terms are those of bf16 weights whatever ``--precision`` says, and a 4-bit base's fp32 parts
(embeddings, norms, head after peft's k-bit preparation) are bf16 again.

Checked with ``python benchmarks/scaleout.py`` (one record per configuration): ZeRO-1 12 runs median 2.2%
(-4.8% / +5.5%), ZeRO-2 28 runs median 1.3% (-2.9% / +4.5%), ZeRO-3 35 runs median 0.8% (-1.6% / +17.9%);
a frozen base under ZeRO-3 without checkpointing held 3 B per parameter more than these terms on the one
model measured so (at 2, 4 and 8 GPUs): added, and said with every such plan.

Buckets are the sizes accelerate's, axolotl's and LLaMA-Factory's shipped configs ask for with "auto",
which transformers fills from the model: ``reduce_bucket_size = hidden^2``,
``stage3_prefetch_bucket_size = 0.9 hidden^2``, ``stage3_param_persistence_threshold = 10 hidden`` (bf16
elements). ``--offload-optimizer`` moves the states and the fp32 gradients to CPU memory (DeepSpeed's CPU
Adam); ``--offload-params`` (ZeRO-3) the weights too. A frozen base (LoRA) is kept in its own storage and
partitioned by ZeRO-3 only.
"""

from __future__ import annotations

from dataclasses import dataclass

from .. import optimizers
from . import Shares, Strategy, Traffic, register, ring
from .fsdp import gathered_bytes

CONFIG_FILE = "ds_config.json"  # what the trainer configs point to (ftdecide recommend --emit deepspeed writes it)
MASTER_BYTES = 4.0  # the fp32 master weight DeepSpeed's bf16 engine keeps for the optimizer, partitioned
STEP_GRAD_BYTES = 6.0  # ZeRO-3's step: fp32 gradients of a sub-group and their bf16 copy
SUB_GROUP = 1e9  # DeepSpeed's default sub_group_size, parameters
MAX_LIVE = 1e9  # DeepSpeed's default stage3_max_live_parameters
BF16 = 2.0
# ZeRO-3 with a frozen base and no checkpointing held 4.3 GiB more than the terms above on 2, 4 and 8 GPUs alike
# (Qwen2.5-1.5B LoRA, 2048x4: 3 B per parameter of the model); fitted to that one model. It reads like the
# 4-bit base below, held whole at about 1.4 times its own bytes whatever the GPU count: 3 B is 1.5 times a
# bf16 base's 2; unchecked on a second model
FROZEN_NOGC_BYTES = 3.0
# ZeRO-3 with a 4-bit base (bnb_4bit_quant_storage=bfloat16): fwd/bwd held 0.67, 0.68 and 0.71 B per
# quantizable parameter beyond ZeRO-2's same runs (Llama-3.1-8B at 2 and 4 GPUs, Qwen2.5-7B at 2,
# Mistral-7B at 8): the whole packed base (0.5 B) and more, not the 1/N DeepSpeed partitions
QUANT_GATHERED_BYTES = 0.71
QUANT_LAYER_S = 0.025
QUANT_GATHERED_NOTE = (
    "ZeRO-3 with a 4-bit base: the whole base stays gathered on every GPU (measured: 2 real runs on 2 H200s, 5 under the "
    "fake process group at 2-8 GPUs), so it saves little memory over --strategy zero2, which communicates less"
)
FROZEN_NOGC_NOTE = (
    "ZeRO-3 with a frozen base and no checkpointing: 3 B per parameter added for what one measured model (Qwen2.5-1.5B "
    "LoRA, 2-8 GPUs) held beyond the other terms, cause unknown: keep headroom, or checkpoint"
)


def state_bytes(optimizer: str) -> float:
    """Bytes per trainable parameter of the optimizer's partition: the fp32 master weight and the
    optimizer's states of it (:attr:`ftdecide.optimizers.Optimizer.zero_state_bytes`: DeepSpeed hands the
    optimizer flat partitions, one tensor per group)."""
    return MASTER_BYTES + optimizers.get(optimizer).zero_state_bytes


def buckets(arch) -> dict[str, int]:
    """What transformers writes for accelerate's "auto" DeepSpeed settings, in elements."""
    h = arch.hidden_size
    return {
        "reduce_bucket_size": h * h,
        "stage3_prefetch_bucket_size": int(0.9 * h * h),
        "stage3_param_persistence_threshold": 10 * h,
    }


@dataclass(frozen=True)
class Zero(Strategy):
    stage: int = 1

    def per_gpu(self, arch, cfg, weights, grads, optimizer, cal) -> Shares:
        n = cfg.world_size
        method = cfg.method_spec
        trainable = method.trainable_params(arch, cfg, method.adapted_modules(arch, cfg))
        frozen = max(0.0, weights - trainable * method.param_bytes(cfg))  # the base's own storage
        if method.quantized_base:
            # the bf16 engine casts what peft's k-bit preparation left in fp32 (embeddings, norms, head)
            # back to bf16; the packed 4-bit weights are integers and stay; a base no trainer prepared
            # (TRL) is bf16 there already
            if cfg.kbit_prepared:
                frozen -= (arch.total_params() - arch.quantizable_params()) * (4.0 - BF16)
        o = 0.0 if cfg.offload_optimizer else trainable * state_bytes(cfg.optimizer) / n
        b = buckets(arch)
        buf = 2 * b["reduce_bucket_size"] * BF16  # the reduce and all-gather buckets
        notes = [f"ZeRO-{self.stage} over {n} GPUs: {self.summary}"]
        gathered = 0.0
        if self.stage == 3:
            w = (0.0 if cfg.offload_params else (frozen + trainable * BF16) / n) + trainable * BF16 / n
            # the step's gradients (moment by moment the optimizer's, on the GPU or, offloaded, on the CPU)
            g = 0.0 if cfg.offload_optimizer else STEP_GRAD_BYTES * min(trainable / n, SUB_GROUP)
            # through forward and backward DeepSpeed keeps gathered what it will use again soon, up to
            # stage3_max_live_parameters (default 1e9), and prefetches one bucket ahead; it frees them
            # before the step
            live = min(arch.total_params(), MAX_LIVE) * gathered_bytes(arch, cfg)
            if method.quantized_base:
                # measured: a 4-bit base stays gathered whole through forward and backward, whatever the GPU
                # count and checkpointing (its packed weights, their constants, what DeepSpeed keeps live)
                live = QUANT_GATHERED_BYTES * arch.quantizable_params()
                notes.append(QUANT_GATHERED_NOTE)
            gathered = live + b["stage3_prefetch_bucket_size"] * BF16
            if not method.trains_base and not method.quantized_base and not cfg.gradient_checkpointing:
                gathered += FROZEN_NOGC_BYTES * arch.total_params()
                notes.append(FROZEN_NOGC_NOTE)
        else:
            w = frozen + trainable * BF16
            # the bf16 gradients of this GPU's partition twice (the contiguous buffer backward reduces
            # into, and the averaged partition the step reads) and their fp32 copy at the step: fitted,
            # 20 B per parameter over N with Adam's 12 (ZeRO-1 and -2, 2 to 16 GPUs)
            g = 2 * trainable * BF16 / n + (0.0 if cfg.offload_optimizer else 4.0 * trainable / n)
            if self.stage == 1:
                # stage 1 reduces after backward: every bf16 gradient is whole at its end (measured at 8 and 16
                # GPUs, where the partitions above are smaller than that)
                g = max(g, trainable * BF16)
        if n == 1:
            notes.append(
                f"ZeRO-{self.stage} on one GPU partitions nothing: it only moves states to CPU memory with --offload-optimizer"
                + (" or --offload-params" if self.stage == 3 else "")
            )
        return Shares(w, g, o, buffers=buf, compute_buffers=gathered, notes=tuple(notes))

    def hook_seconds(self, arch, cfg) -> float:
        base = super().hook_seconds(arch, cfg)
        if self.stage == 3 and cfg.method_spec.quantized_base and cfg.world_size > 1:
            # a 4-bit base's fetch and release: 2 real runs on 2 H200s (Llama-3.1-8B, Qwen2.5-7B QLoRA) were 62-65%
            # slower than the model without it, 23-28 ms more per decoder layer per micro-batch (fitted: 25)
            base += QUANT_LAYER_S * arch.num_layers
        return base

    def launch_problem(self, arch, cfg):
        # seen on 2 H200s (data/launches/): the emitted ZeRO-3 + TRL launch of Qwen2.5-0.5B LoRA (tied head)
        # trained its 30 steps logging train_loss 0; TinyLlama (untied) logged 10.7 with the same files
        if self.stage == 3 and arch.tie_embeddings and not cfg.method_spec.trains_base:
            return (
                "ZeRO-3 launch: the emitted TRL run of a model whose head is tied to its embeddings logged a training loss of 0 "
                "with an adapter (Qwen2.5-0.5B LoRA; an untied model trained normally): watch the loss, or use --strategy ddp"
            )
        return None

    def traffic(self, arch, cfg) -> Traffic:
        method = cfg.method_spec
        n = cfg.world_size
        trainable = method.trainable_params(arch, cfg, method.adapted_modules(arch, cfg)) * BF16
        if self.stage == 1:
            return Traffic(per_step={"all-reduce": 2 * ring(n) * trainable, "all-gather": ring(n) * trainable})
        if self.stage == 2:
            return Traffic(per_step={"reduce-scatter": ring(n) * trainable, "all-gather": ring(n) * trainable})
        gathered = arch.total_params() * BF16
        return Traffic(per_micro_batch={"all-gather": 2 * ring(n) * gathered, "reduce-scatter": ring(n) * trainable})

    def problem(self, cfg):
        if cfg.offload_params and self.stage != 3:
            return f"--offload-params needs sharded parameters: ZeRO-{self.stage} keeps the weights on every GPU (use zero3 or fsdp)"
        return None

    def deepspeed_config(self, arch, micro_batch, accumulation, bf16, offload_optimizer, offload_params) -> dict:
        b = buckets(arch)
        zero: dict = {
            "stage": self.stage,
            "overlap_comm": True,
            "contiguous_gradients": True,
            "reduce_bucket_size": b["reduce_bucket_size"],
        }
        if self.stage == 3:
            zero.update(
                stage3_prefetch_bucket_size=b["stage3_prefetch_bucket_size"],
                stage3_param_persistence_threshold=b["stage3_param_persistence_threshold"],
                stage3_gather_16bit_weights_on_model_save=True,
            )
        if offload_optimizer:
            zero["offload_optimizer"] = {"device": "cpu", "pin_memory": True}
        if offload_params:
            zero["offload_param"] = {"device": "cpu", "pin_memory": True}
        return {
            "train_micro_batch_size_per_gpu": micro_batch,
            "gradient_accumulation_steps": accumulation,
            "gradient_clipping": 1.0,
            "bf16": {"enabled": bool(bf16)},
            "fp16": {"enabled": not bf16},
            "zero_optimization": zero,
        }

    def trainer_args(self, layer_cls, offload_params) -> dict:
        return {"deepspeed": CONFIG_FILE}

    def axolotl_keys(self, layer_cls, offload_params) -> dict:
        return {"deepspeed": CONFIG_FILE}

    def llamafactory_keys(self) -> dict:
        return {"deepspeed": CONFIG_FILE}

    def accelerate_config(self, world, nodes, layer_cls, mixed, offload_params) -> dict:
        return {
            "compute_environment": "LOCAL_MACHINE",
            "distributed_type": "DEEPSPEED",
            "deepspeed_config": {"deepspeed_config_file": CONFIG_FILE, "zero3_init_flag": self.stage == 3},
            "num_machines": nodes,
            "num_processes": world,
        }


for _stage, _summary, _basis in (
    (
        1,
        "optimizer states partitioned (DeepSpeed)",
        "measured on 12 configurations at 2-32 GPUs (H200, fake process group): median 2.2%, -4.8% / +5.5%",
    ),
    (
        2,
        "optimizer states and gradients partitioned (DeepSpeed)",
        "measured on 28 configurations at 2-16 GPUs (H200; 5 real NCCL runs, each matched to 0.01 GiB under the fake process "
        "group): median 1.3%, -2.9% / +4.5%",
    ),
    (
        3,
        "weights, gradients and optimizer states partitioned (DeepSpeed)",
        "measured on 35 configurations at 2-64 GPUs (H200; 6 real NCCL runs, each matched to 0.01 GiB under the fake process "
        "group): median 0.8%, -1.6% / +17.9%, a frozen base without checkpointing by a term fitted to its one model",
    ),
):
    register(
        Zero(
            name=f"zero{_stage}",
            label=f"ZeRO-{_stage}",
            summary=_summary,
            measured=True,
            basis=_basis,
            # profiled on 2 H200s: ZeRO-3 hid 9% of its NCCL time (Llama-3.2-1B full); ZeRO-2 taken as DDP's.
            # Per layer, fitted to the timed runs: ZeRO-2 5.2 ms (1 run), ZeRO-3 21.0 ms (2 of 4 runs); refitted
            # once the bf16 engine's activation terms changed their memory-bound time
            overlap=0.1 if _stage == 3 else 0.4,
            layer_s=0.0210 if _stage == 3 else 0.0052,
            engine="deepspeed",
            # the engine casts the module to bf16 and runs it without autocast (ZeRO-3 full fine-tuning with
            # the mixed variant's activation terms was up to 24% over its peaks, with bf16's within 1%)
            bf16_engine=True,
            shards_parameters=_stage == 3,
            probed=True,
            probe_runner="run_zero_probe",
            stage=_stage,
        )
    )
