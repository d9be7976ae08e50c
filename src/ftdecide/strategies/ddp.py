"""DDP: a full replica on every GPU, gradients averaged by all-reduce (torch DistributedDataParallel as
accelerate applies it: ``bucket_cap_mb=25``, ``gradient_as_bucket_view=False``).

Memory beyond one GPU's: the reducer's flat buckets hold a second copy of every trainable gradient
(``gradient_as_bucket_view=False`` copies each gradient into its bucket for the all-reduce), allocated
when the model is wrapped. MODELLED from torch's ``Reducer``, not measured. This is how LoRA usually goes
multi-GPU: its gradients, and so its buckets, are small.
"""

from __future__ import annotations

from dataclasses import dataclass

from . import Shares, Strategy, Traffic, register, ring


@dataclass(frozen=True)
class DDP(Strategy):
    def per_gpu(self, arch, cfg, weights, grads, optimizer, cal) -> Shares:
        return Shares(weights, grads, optimizer, buffers=grads, notes=("DDP: a full replica per GPU, plus its gradient buckets",))

    def traffic(self, arch, cfg) -> Traffic:
        method = cfg.method_spec
        grads = method.trainable_params(arch, cfg, method.adapted_modules(arch, cfg)) * method.param_bytes(cfg)
        return Traffic(per_step={"all-reduce": 2 * ring(cfg.world_size) * grads})

    def accelerate_config(self, world, nodes, layer_cls, mixed, offload_params) -> dict:
        return {
            "compute_environment": "LOCAL_MACHINE",
            "distributed_type": "MULTI_GPU",
            "mixed_precision": "bf16",
            "num_machines": nodes,
            "num_processes": world,
        }


STRATEGY = register(
    DDP(
        name="ddp",
        label="DDP",
        summary="a full replica per GPU, gradients all-reduced",
        measured=False,
        basis="modelled from torch's DDP reducer (a replica per GPU plus a bucket copy of the gradients); not measured",
        overlap=0.8,
        probed=True,
    )
)
