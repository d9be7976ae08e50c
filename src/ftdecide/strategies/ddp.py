"""DDP: a full replica on every GPU, gradients averaged by all-reduce (torch DistributedDataParallel as
accelerate applies it: ``bucket_cap_mb=25``, ``gradient_as_bucket_view=False``).

Memory beyond one GPU's: the reducer's flat buckets hold a second copy of every trainable gradient
(``gradient_as_bucket_view=False`` copies each gradient into its bucket for the all-reduce), allocated
when the model is wrapped. This is how LoRA usually goes multi-GPU: its gradients, and so its buckets, are
small.

Measured on 2 H200s under torchrun (data/scaleout/h200x2_real_*; torch's fake process group cannot run
DDP: its reducer's all-reduce hook gets no tensor back): 12 runs, LoRA, QLoRA, full fine-tuning bf16 and
mixed, AdamW and 8-bit AdamW, median 1.1% (worst -3.3% / +13.2%). Full fine-tuning of bf16 weights
(Llama-3.2-1B) peaked one more gradient-sized buffer above that at an early step (its last step did not):
counted, as a transient of forward and backward, where bf16 weights train with torch's AdamW (three runs
with bitsandbytes' 8-bit AdamW had none).
"""

from __future__ import annotations

from . import Shares, Strategy, Traffic, register, ring


class DDP(Strategy):
    def per_gpu(self, arch, cfg, weights, grads, optimizer, cal) -> Shares:
        method = cfg.method_spec
        early = grads if method.trains_base and method.param_bytes(cfg) == 2.0 and cfg.optimizer_spec.ddp_early_grads else 0.0
        notes = ("DDP: a full replica per GPU, plus its gradient buckets",)
        return Shares(weights, grads, optimizer, buffers=grads, compute_buffers=early, notes=notes)

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
        measured=True,
        basis="measured on 12 real 2-GPU runs (H200, NCCL): median 1.1%, -3.3% / +13.2% (Phi-3-mini QLoRA, as on one GPU)",
        # profiled on 2 H200s: 37% of the all-reduce hidden (Llama-3.2-1B full); the last buckets wait for
        # the end of backward. No per-layer cost: 6 timed runs fit none
        overlap=0.4,
        probed=True,
        probe_runner="run_ddp_probe",
        fake_group=False,
    )
)
