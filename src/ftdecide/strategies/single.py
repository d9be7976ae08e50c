"""One GPU: the whole model on it, nothing sent."""

from __future__ import annotations

from . import Shares, Strategy, Traffic, register


class Single(Strategy):
    def per_gpu(self, arch, cfg, weights, grads, optimizer, cal) -> Shares:
        return Shares(weights, grads, optimizer)

    def traffic(self, arch, cfg) -> Traffic:
        return Traffic()

    def accelerate_config(self, world, nodes, layer_cls, mixed, offload_params) -> dict:
        return {"compute_environment": "LOCAL_MACHINE", "distributed_type": "NO", "num_processes": 1, "num_machines": 1}


STRATEGY = register(
    Single(
        name="single",
        label="one GPU",
        summary="the whole model on one GPU",
        measured=True,
        basis="single-GPU runs",
        overlap=0.0,
        single_gpu=True,
    )
)
