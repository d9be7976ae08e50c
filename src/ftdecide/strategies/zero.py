"""DeepSpeed ZeRO stages 1, 2 and 3 (bf16), MODELLED from DeepSpeed's own accounting, not measured.

DeepSpeed trains a bf16 model with fp32 master weights, both Adam moments and fp32 gradient partitions:
16 bytes per trainable parameter partitioned over the GPUs (DeepSpeed's
``estimate_zero2_model_states_mem_needs`` and ``estimate_zero3_model_states_mem_needs``), whatever
ftdecide's single-GPU plan keeps. Beside them:

- ZeRO-1: the bf16 weights and bf16 gradients on every GPU (the optimizer states partitioned);
- ZeRO-2: the bf16 weights on every GPU, the gradients partitioned;
- ZeRO-3: everything partitioned, plus the largest layer gathered (bf16 weights and gradients: DeepSpeed's
  ``largest_layer_memory = 4 x largest_layer_params``) and the prefetch bucket.

Buckets are the sizes accelerate's, axolotl's and LLaMA-Factory's shipped configs ask for with "auto",
which transformers fills from the model: ``reduce_bucket_size = hidden^2``,
``stage3_prefetch_bucket_size = 0.9 hidden^2``, ``stage3_param_persistence_threshold = 10 hidden`` (bf16
elements). ``--offload-optimizer`` moves the 16 bytes to CPU memory (DeepSpeed's CPU Adam);
``--offload-params`` (ZeRO-3) the weights too. A frozen base (LoRA) is kept in its own storage and
partitioned by ZeRO-3 only.
"""

from __future__ import annotations

from dataclasses import dataclass

from . import Shares, Strategy, Traffic, register, ring
from .fsdp import layer_params

CONFIG_FILE = "ds_config.json"  # what the trainer configs point to (ftdecide recommend --emit deepspeed writes it)
STATE_BYTES = 16.0  # fp32 master weight, two fp32 Adam moments, fp32 gradient partition
BF16 = 2.0


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
        w = frozen + trainable * BF16
        g = trainable * BF16
        o = 0.0 if cfg.offload_optimizer else trainable * STATE_BYTES / n
        b = buckets(arch)
        buf = 2 * b["reduce_bucket_size"] * BF16  # the reduce and all-gather buckets
        if self.stage >= 2:
            g /= n
        if self.stage == 3:
            w = 0.0 if cfg.offload_params else w / n
            # the largest layer gathered (weights and gradients) and the prefetch bucket
            buf += 2 * layer_params(arch) * BF16 + b["stage3_prefetch_bucket_size"] * BF16
        notes = [f"ZeRO-{self.stage} over {n} GPUs: {self.summary}"]
        if n == 1:
            notes.append(
                f"ZeRO-{self.stage} on one GPU partitions nothing: it only moves states to CPU memory with --offload-optimizer"
                + (" or --offload-params" if self.stage == 3 else "")
            )
        return Shares(w, g, o, buffers=buf, notes=tuple(notes))

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


for _stage, _summary in (
    (1, "optimizer states partitioned (DeepSpeed)"),
    (2, "optimizer states and gradients partitioned (DeepSpeed)"),
    (3, "weights, gradients and optimizer states partitioned (DeepSpeed)"),
):
    register(
        Zero(
            name=f"zero{_stage}",
            label=f"ZeRO-{_stage}",
            summary=_summary,
            measured=False,
            basis="modelled from DeepSpeed's accounting (16 B per trainable parameter partitioned, bf16 copies, buckets); not measured",
            overlap=0.6 if _stage == 3 else 0.5,
            engine="deepspeed",
            shards_parameters=_stage == 3,
            stage=_stage,
        )
    )
