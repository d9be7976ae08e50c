"""FSDP1 over a 4-bit base: the FSDP+QLoRA recipe (Answer.AI 2024) as peft documents it and accelerate launches it
(``fsdp_version: 1``, ``FULL_SHARD``, ``TRANSFORMER_BASED_WRAP``, ``use_orig_params: false``; peft's own
``examples/sft/configs/fsdp_config_qlora.yaml``). bitsandbytes stores the packed 4-bit weights as bf16
(``bnb_4bit_quant_storage=bfloat16``) so that FSDP1's flat parameters can shard them, and keeps each layer's
quantization constants on the module, where FSDP1 leaves them whole; transformers' Trainer wraps every LoRA
matrix in a unit of its own (peft's ``fsdp_auto_wrap_policy``) and sets FSDP1's mixed precision to the storage
dtype (``update_fsdp_plugin_peft``, transformers 5.17).

Offered for a 4-bit base only: FSDP2 (``fsdp``) shards everything else and cannot shard a 4-bit base
(measured: its ``fully_shard`` drops the quantization state). Under a trainer that runs
``prepare_model_for_kbit_training`` (fp32 norms and embeddings beside bf16-stored weights) a decoder layer
would hold two dtypes, which one flat parameter cannot: TRL's emitted file keeps the base in bf16, and is what
this strategy is sized for.

Memory per GPU: the packed weights, the adapters, their gradients and optimizer states divided over the GPUs
(all of them in CPU memory with ``--offload-params``: ``fsdp_offload_params``), the quantization constants
whole, and what FSDP1 holds unsharded at once: the root unit (embeddings, final norm and head, which FSDP1
does not reshard after the root's forward: it is needed again at once for backward) through the step, beside
``fsdp_frozen_layers`` decoder layers gathered (FSDP2's constant for an adapter's launch: FSDP1's
``BACKWARD_PRE`` prefetch holds the layer computing and the next one). Modelled from the engine's layout with
FSDP2's measured constant, not yet measured on FSDP1 launches: the plans say so (``measured=False``), and
``auto`` prefers a measured strategy within ``MEASURED_STRATEGY_PREFERENCE`` of its cost.

transformers 5.17 warns that FSDP1 is deprecated and will be removed in 5.20 (``training_args.py``): the emitted
files pin the versions they were sized for, and the plan says so.
"""

from __future__ import annotations

from . import Shares, register
from .fsdp import FSDP2

# peft 0.21's documented run (docs/source/accelerate/fsdp.md, "Memory usage"): Llama-2-70B QLoRA r=8 on all
# linear layers, 2 GPUs, 2 x 2,048 tokens packed, checkpointing: 19.6 GB per GPU with the parameters
# offloaded (107 GB of CPU RAM), 35.6 GB without: nvidia-smi's figures, allocator cache and CUDA context included
PUBLISHED = "peft docs (FSDP + QLoRA): Llama-2-70B on 2 GPUs, 19.6 GB per GPU offloaded, 35.6 GB not"


def root_bytes(arch) -> float:
    """Bytes of FSDP1's root unit gathered: the embeddings, the head where it is not tied, and the final norm,
    in bf16 (a 4-bit base quantizes neither)."""
    return (arch.embedding_params() + arch.head_params() + arch.hidden_size) * 2.0


def layer_unit_bytes(arch, cfg) -> float:
    """Bytes of one decoder layer's flat parameter gathered: its packed 4-bit weights and its bf16 norms (the
    base's parameters less the root's, over the layers; the LoRA matrices are units of their own)."""
    method = cfg.method_spec
    base = method.weight_bytes(arch, cfg, 0) - method.unsharded_bytes(arch, cfg)
    return (base - root_bytes(arch)) / arch.num_layers


class FSDP1(FSDP2):
    def per_gpu(self, arch, cfg, weights, grads, optimizer, cal) -> Shares:
        n = cfg.world_size
        consts = cfg.method_spec.unsharded_bytes(arch, cfg)
        shard_w, shard_g, shard_o = (weights - consts) / n, grads / n, optimizer / n
        notes = [
            f"FSDP1: 4-bit weights (stored as bf16), adapters, gradients and optimizer states sharded over {n} GPUs; "
            "the quantization constants whole on each; the root unit (embeddings, head) and the layers gathered in flight"
        ]
        if cfg.offload_params:
            shard_w = shard_g = shard_o = 0.0
            notes.append("parameters, gradients and optimizer states offloaded to CPU memory (fsdp_offload_params; modelled)")
        gathered = cal.fsdp_frozen_layers * layer_unit_bytes(arch, cfg) + root_bytes(arch)
        return Shares(shard_w + consts, shard_g, shard_o, compute_buffers=gathered, notes=tuple(notes))

    def problem(self, cfg):
        if not cfg.method_spec.quantized_base:
            return (
                f"{self.label} is emitted for a 4-bit base only (the FSDP+QLoRA recipe, under TRL); other methods shard with fsdp (FSDP2)"
            )
        if cfg.kbit_prepared:
            return (
                f"{self.label} over a 4-bit base needs one dtype in each decoder layer's flat parameter, and "
                f"{cfg.trainer_spec.label} casts its norms and embeddings to fp32 (prepare_model_for_kbit_training): "
                "use --trainer trl"
            )
        if cfg.optimizer_spec.fsdp2_problem:
            return cfg.optimizer_spec.fsdp2_problem
        return super(FSDP2, self).problem(cfg)

    def launch_problem(self, arch, cfg):
        return None

    def _fsdp1(self, offload_params: bool, layer_cls: str, prefix: str) -> dict:
        keys = {
            "sharding_strategy": "FULL_SHARD",
            "auto_wrap_policy": "TRANSFORMER_BASED_WRAP",
            "backward_prefetch": "BACKWARD_PRE",
            "forward_prefetch": False,
            "offload_params": offload_params,
            "use_orig_params": False,
            "cpu_ram_efficient_loading": True,
            "sync_module_states": True,
            "state_dict_type": "SHARDED_STATE_DICT",
        }
        if layer_cls:
            keys["transformer_layer_cls_to_wrap"] = layer_cls
        return {f"{prefix}{k}": v for k, v in keys.items()}

    def trainer_args(self, layer_cls, offload_params) -> dict:
        cfg = {k: v for k, v in self._fsdp1(offload_params, "", "").items() if k not in ("sharding_strategy", "offload_params")}
        cfg["version"] = 1
        if layer_cls:
            cfg["transformer_layer_cls_to_wrap"] = [layer_cls]
        return {"fsdp": "full_shard auto_wrap offload" if offload_params else "full_shard auto_wrap", "fsdp_config": cfg}

    def axolotl_keys(self, layer_cls, offload_params) -> dict:
        return {"fsdp_version": 1, "fsdp_config": self._fsdp1(offload_params, layer_cls, "")}

    def accelerate_config(self, world, nodes, layer_cls, mixed, offload_params) -> dict:
        return {
            "compute_environment": "LOCAL_MACHINE",
            "distributed_type": "FSDP",
            "fsdp_config": {"fsdp_version": 1, **self._fsdp1(offload_params, layer_cls, "fsdp_")},
            "mixed_precision": "bf16",
            "num_machines": nodes,
            "num_processes": world,
        }


STRATEGY = register(
    FSDP1(
        name="fsdp1",
        label="FSDP1",
        summary="FSDP+QLoRA: 4-bit weights stored as bf16 and sharded; layers gathered as they run",
        measured=False,
        basis=(
            "modelled from FSDP1's layout (the root unit held through the step, FSDP2's measured count of layers in flight); "
            f"not yet measured on an FSDP1 launch. Published: {PUBLISHED}. transformers 5.17 deprecates FSDP1 (removed in 5.20)"
        ),
        overlap=0.8,
        layer_s=0.0025,
        shards_parameters=True,
    )
)
