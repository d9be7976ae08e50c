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
``BACKWARD_PRE`` prefetch holds the layer computing and the next one). And a floor: training starts with rank 0
holding the whole 4-bit model as transformers 5.17 loaded it (its FSDP loading leaves quantized weights on the GPU;
transformers 4.x moved them to CPU, which peft's published 70B figures rest on), and the Trainer wraps it inside
``train()``, one decoder layer flattened beside it at a time. So the offload of the parameters lowers the step,
not the start: a 4-bit model larger than the card does not fit so. With the parameters offloaded over several GPUs the
emitted file loads and quantizes the base in host memory instead (``device_map={"": "cpu"}``: bitsandbytes 0.50
quantizes there; Llama-3.1-8B's launch took 358 s, 42 s loaded on the GPU), where that holds less at the start: the
wrapping then moves only the root unit to the GPU, flattens it there and shards it, the originals, the flat copy and
its shard at once, beside the quantization constants (:func:`cpu_load_start`; traced, TinyLlama over 2,
``data/traces/h200_fsdp1_cpu_load_b_2026-12-07.jsonl``; Llama-3.1-8B over 2: 4.996 GiB planned, 4.996 measured), and
rank 0's host holds the loaded model beside its offloaded share. That is the Answer.AI recipe, which the plan switches
on where nothing else fits (``offload_recipe``).

Measured: the emitted TRL file launched as rank 0 of 2-8 GPUs under torch's fake process group (H100,
``data/sharded_trainers/h100_trl_fake_fsdp1_2026-12-07.jsonl``, grid ``fsdp1_a``, ``sharded_trl_h:7-9`` and
``sharded_trl_i:6``), 11 launches planned before they ran, as written: the 8 loaded on the GPU and not offloaded -2.1%
/ +10.7% (median +4.5%), the 3 offloaded ones loaded in host memory +11.5% to +24.1% (their steps: checkpointed small
models, where the plan counts the loss's backward and the recompute together and the trace of one held 0.06 GiB of the
loss at the peak). Without TRL's per-layer excess (``Strategy.trainer_gc_excess``): -3.9% / +17.3%. With the
checkpointed step as its two traces show it (``loss_apart``: the recompute peaks with none of the loss's backward held;
the recomputed layer at ``fsdp1_recompute``, 1.2 layers, against the 0.91 fitted on one GPU), -5.5% / +1.8%: the
worst under is Llama-3.1-8B over 2 loaded on the GPU, not traced. Two launches held out since (grids j and k,
Llama-3.1-8B and Qwen2.5-7B over 2) were +0.5% and +0.3% as planned. The two offloaded launches that loaded on the GPU, as
emitted before, ran 7% and 31% over their plans then; superseded.

transformers 5.17 warns that FSDP1 is deprecated and will be removed in 5.20 (``training_args.py``): the emitted
files pin the versions they were sized for, and the plan says so.
"""

from __future__ import annotations

from . import Shares, register
from .fsdp import FSDP2, fused_head

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


def cpu_load_start(arch, cfg) -> float:
    """Bytes the GPU peaks at while FSDP1 wraps a base loaded in host memory: the quantization constants (moved whole),
    and the root unit, which the wrapping moves to the GPU (its embeddings and head), flattens there into one flat
    parameter and shards: the originals, the flat copy and its shard at once. Traced
    (``data/traces/h200_fsdp1_cpu_load_b_2026-12-07.jsonl``, TinyLlama over 2: blocks of 0.244 GiB and 3 x 0.122 GiB,
    its head and embedding each 0.122); on Llama-3.1-8B over 2 this is 4.996 GiB, measured 4.996."""
    root = root_bytes(arch)
    return 2 * root + root / cfg.world_size + cfg.method_spec.unsharded_bytes(arch, cfg)


def gpu_load_start(arch, cfg) -> float:
    """Bytes the GPU peaks at while FSDP1 wraps a base loaded on it: rank 0 holds the whole 4-bit model as transformers
    5.17 loaded it (its FSDP loading leaves the quantized weights on the GPU) and the trainer wraps it inside train(),
    one decoder layer flattened beside it at a time. Measured under the fake group, 9 launches: held at the start within
    0.03 GiB of the whole model's weights; the two offloaded launches peaked 0.13-0.15 GiB above them."""
    method = cfg.method_spec
    adapters = method.adapter_params(arch, cfg, method.adapted_modules(arch, cfg))
    return method.weight_bytes(arch, cfg, adapters) + layer_unit_bytes(arch, cfg)


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
            notes.append("parameters, gradients and optimizer states offloaded to CPU memory (fsdp_offload_params)")
        unit = layer_unit_bytes(arch, cfg)
        gathered = cal.fsdp_frozen_layers * unit + root_bytes(arch)
        if self.load_on_cpu(arch, cfg):
            start = cpu_load_start(arch, cfg)
            notes.append(
                f"the base loaded and quantized in host memory (device_map cpu): wrapping it peaks at {start / 2**30:.2f} GiB "
                "on the GPU (the root unit's embeddings and head, flattened and sharded there); loading is slower (measured: "
                "Llama-3.1-8B over 2, 358 s against 42 s loaded on the GPU)"
            )
        else:
            start = gpu_load_start(arch, cfg)
            notes.append(
                f"rank 0 starts training with the whole 4-bit model on its GPU ({weights / 2**30:.1f} GiB, as transformers 5.17 "
                "loads it for FSDP); FSDP1 shards it inside train()"
            )
        # TRL's fused head frees its tiles before the last layer is recomputed, as under FSDP2: two moments (traced: the
        # offloaded TinyLlama over 2 peaked in the recompute with 0.06 GiB of the loss's held, Llama-3.2-3B over 2, and
        # the two traced since, likewise)
        return Shares(
            shard_w + consts, shard_g, shard_o, compute_buffers=gathered, start=start, notes=tuple(notes), loss_apart=fused_head(cfg)
        )

    def recompute(self, cfg, fitted, cal):
        # traced under TRL (data/traces/h200_fsdp1_cpu_load_b_*, h100_fsdp1_diag_*: TinyLlama and Llama-3.2-3B QLoRA
        # over 2): the recomputed layer holds 1.22 and 1.20 layers' worth of LoRA's activations over a 4-bit base at the
        # peak (its dropout copies and masks, the MLP's intermediates, bitsandbytes' dequantized weight), against the
        # 0.91 fitted on one GPU; two launches traced after it was set held 1.22 and 1.20 again (TinyLlama over 4 and
        # Llama-3.2-3B over 2, offloaded: data/traces/h100_sharded_f_2026-12-07.jsonl)
        return cal.fsdp1_recompute if fused_head(cfg) else fitted

    def load_on_cpu(self, arch, cfg) -> bool:
        # with the parameters offloaded the GPU need never hold the whole 4-bit model (the Answer.AI recipe), where the
        # root unit's flattening holds less than it (not for a small model with a large vocabulary); measured over 2 and
        # 4 GPUs, not over one
        return cfg.offload_params and cfg.world_size > 1 and cpu_load_start(arch, cfg) < gpu_load_start(arch, cfg)

    def host_bytes(self, arch, cfg, weights, grads, optimizer, cal) -> float:
        """... and, loaded in host memory, rank 0's whole 4-bit model as loaded, beside its share while it wraps."""
        share = super().host_bytes(arch, cfg, weights, grads, optimizer, cal)
        return share + (weights if self.load_on_cpu(arch, cfg) else 0.0)

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
        measured=True,
        trainer_gc_excess=False,
        basis=(
            "the emitted TRL file launched as rank 0 of 2-8 GPUs (H100, fake process group), 13 launches: -5.5% / +1.8%, "
            "each planned before it ran (the 11 before the nineteenth session -2.1% / +24.1% as written, the 2 since +0.5% "
            "and +0.3%; the checkpointed step's two moments and recompute were "
            "taken from two traces since, with these launches in view); loaded on the GPU, rank 0 starts with the whole "
            "4-bit model (transformers 5.17); offloaded, the base loads in host memory and the start is the root unit "
            "flattened and sharded (3 launches within 0.3% of it). Published, under transformers 4.x: "
            f"{PUBLISHED}. transformers 5.17 deprecates FSDP1 (removed in 5.20)"
        ),
        launch_measured=("trl",),
        constants=(("fsdp1_recompute", 1.2),),
        offload_recipe="FSDP+QLoRA with CPU offload (Answer.AI 2024: a 70B on two 24 GB cards)",
        overlap=0.8,
        layer_s=0.0025,
        shards_parameters=True,
    )
)
