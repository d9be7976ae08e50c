"""What training and serving ``variants`` task variants of one model costs over ``months`` (seed 001's
analysis): the first-year total that, for a team with several tasks, decides between methods of equal quality.

Per candidate method:

- **served together or apart.** vLLM and SGLang batch plain LoRA adapters over one base (S-LoRA, Punica): one
  serving instance holds the base and every variant's adapter. Full fine-tuning, and every method no engine
  batches (DoRA, IA3, soft prompts, Houlsby adapters), needs one instance per variant, each its own model;
- **serving memory** of an instance: the bf16 weights (a 4-bit base is served merged into bf16), the adapters it
  holds (bf16, as the engines hold them; peft's ``load_adapter`` upcasts them to fp32 unless
  ``autocast_adapter_dtype=False``: twice the bytes, counted in ``data/serving/``), the KV cache of
  ``serve_context`` tokens for ``concurrency`` sequences (2 x layers x KV heads x head size x 2 B a token), the
  activations of one prefill pass (:func:`prefill_bytes`, over the engine's tokens per pass: ``prefill_tokens``
  of ``configs/serving.yaml``, or all of them where fewer) and the CUDA context. At the engine's share of each
  card (``configs/serving.yaml``), instances that fit one GPU share it (an engine each, each with its part of
  the card); a larger one takes GPUs in a power of two, for tensor parallelism;
- **storage** (GB = 10^9 B): one bf16 checkpoint per variant, or one base and every adapter as peft saves it;
- **monthly cost**: the serving GPUs always on at the serving GPU's catalog price, and the storage;
- **switching**: reading one variant from disk (a whole checkpoint, or one adapter);
- **training**: one run per variant, each the scenario's (its data, its epochs); with ``task_sizes``, each
  variant on its own task's examples, and beside it one multi-task run over all of them (the mixture's epoch,
  ``ftdecide mix``, holds as many examples) whose one model or adapter serves every task.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

GIB = 2**30


@dataclass(frozen=True)
class Deployment:
    variants: int
    months: int
    together: bool  # every variant in one serving instance (batched adapters)
    instances: int
    serving_gib: float  # one instance's memory
    gpus_per_instance: int
    serving_gpus: int
    storage_gb: float
    training_usd: float
    monthly_serving_usd: float
    monthly_storage_usd: float
    switch_seconds: float  # reading one variant from disk
    served: str = ""  # how: batched over one base, merged into each variant's model, or each through peft
    multi_task: "Deployment | None" = None  # one run over every task's examples, one model serving them all

    @property
    def total_usd(self) -> float:
        """Training every variant plus ``months`` of serving and storage."""
        return self.training_usd + self.months * (self.monthly_serving_usd + self.monthly_storage_usd)

    def to_json(self) -> dict:
        return {
            "variants": self.variants,
            "months": self.months,
            "served": self.served,
            "instances": self.instances,
            "serving_gib_per_instance": round(self.serving_gib, 2),
            "gpus_per_instance": self.gpus_per_instance,
            "serving_gpus": self.serving_gpus,
            "storage_gb": round(self.storage_gb, 3),
            "training_usd": round(self.training_usd, 2),
            "monthly_serving_usd": round(self.monthly_serving_usd, 2),
            "monthly_storage_usd": round(self.monthly_storage_usd, 2),
            "total_usd": round(self.total_usd, 2),
            "switch_seconds": round(self.switch_seconds, 4),
            **({"multi_task": self.multi_task.to_json()} if self.multi_task is not None else {}),
        }


def deployment(arch, method, trainable: int, adapter_bytes: float, training_usd: float, sc, serve_gpu, prices: dict) -> Deployment:
    """The deployment of ``sc.variants`` variants of ``arch`` trained with ``method`` (``trainable`` parameters,
    saved at ``adapter_bytes`` bytes each) on ``serve_gpu``; ``training_usd`` is one run over the scenario's
    ``dataset_size`` examples (the cost is per example). Memory in GiB, storage in GB, money in USD."""
    if not sc.task_sizes:
        return _deployment(arch, method, trainable, adapter_bytes, training_usd * sc.variants, sc.variants, sc, serve_gpu, prices)
    every = training_usd * sum(sc.task_sizes.values()) / sc.dataset_size  # each task's run, or one over them all
    apart = _deployment(arch, method, trainable, adapter_bytes, every, len(sc.task_sizes), sc, serve_gpu, prices)
    together = _deployment(arch, method, trainable, adapter_bytes, every, 1, sc, serve_gpu, prices)
    return replace(apart, multi_task=together)


def _served(method, together: bool, n: int) -> str:
    """How the variants are served: batched over one base where the engines batch the method, else one model a
    variant: its checkpoint (full fine-tuning), its adapter merged into the weights, or through peft where the
    adapter cannot be merged (soft prompts, Houlsby adapters)."""
    if together:
        return "one base, every adapter batched (vLLM, SGLang)"
    each = "one model per variant" if n > 1 else "one model"
    if method.trains_base:
        return each
    return (
        f"{each}, served merged (no engine batches {method.label})"
        if method.mergeable
        else f"{each}, through peft ({method.label} cannot be merged)"
    )


def prefill_bytes(arch, tokens: int) -> float:
    """Bytes of the activations one forward pass over ``tokens`` tokens holds at its peak, with no gradients kept:
    the widest layer's transients, freed at its end. Those are the MLP's gate, up, activation and product
    (4 x intermediate values a token; a mixture of experts: its active experts' and shared expert's, or a dense
    layer's where wider) and four hidden-wide tensors, in bf16 (2 B). Measured on an H100
    (``data/serving/h100_*``): peft's prefill of 8 x 4,096 tokens over Llama-3.2-1B with bf16 adapters peaked
    2.499 GiB above what it held after; this gives 2.500."""
    if arch.num_experts:
        routed = arch.expert_intermediate * arch.experts_per_token + arch.shared_expert_intermediate_size
        inter = max(routed, arch.intermediate_size if arch.dense_layers else 0)
    else:
        inter = arch.intermediate_size
    return tokens * (4 * inter + 4 * arch.hidden_size) * 2.0


def prefill_tokens(serve_gpu, prices: dict) -> int:
    """Tokens the serving engine runs in one forward pass on ``serve_gpu`` (vLLM's default, by card)."""
    s = prices["serving"]
    return s["prefill_tokens_large"] if serve_gpu.memory_gib >= 70 and "a100" not in serve_gpu.name.lower() else s["prefill_tokens"]


def _deployment(arch, method, trainable, adapter_bytes, training_usd, n, sc, serve_gpu, prices) -> Deployment:
    together = method.batched_by_engines
    weights = arch.total_params() * 2.0  # bf16, a 4-bit base served merged into bf16
    adapter_served = 0.0 if method.trains_base else trainable * 2.0
    kv = 2 * arch.attention_layers * arch.kv_dim * 2.0 * sc.serve_context * sc.concurrency
    if arch.linear_layers:
        # a linear-attention layer keeps a fixed state a sequence, whatever its length: the recurrent state, sized at
        # 4 B a value (transformers' PyTorch path keeps it in fp32; an engine keeping it in bf16 holds half), and the
        # convolution's last inputs (bf16)
        conv = arch.linear_conv_channels * (arch.linear_conv - 1)
        state = arch.linear_v_heads * arch.linear_k_dim * arch.linear_v_dim
        kv += arch.linear_layers * (4.0 * state + 2.0 * conv) * sc.concurrency
    context = 0.75 * GIB  # CUDA context and cuBLAS workspaces (calibration: torch 2.11 on an H100)
    prefill = prefill_bytes(arch, min(sc.serve_context * sc.concurrency, prefill_tokens(serve_gpu, prices)))
    instances = 1 if together else n
    per_instance = weights + (n if together else 1) * adapter_served + kv + prefill + context
    usable = serve_gpu.memory_gib * GIB * prices["serving"]["gpu_memory_utilization"]
    gpus = 2 ** math.ceil(math.log2(max(1.0, per_instance / usable)))
    # instances small enough share a GPU; larger ones take whole GPUs each
    serving_gpus = math.ceil(instances / max(1, int(usable // per_instance))) if gpus == 1 else gpus * instances
    if method.trains_base:
        storage, one = n * weights, weights
    else:
        storage, one = weights + n * trainable * adapter_bytes, (trainable * adapter_bytes if together else weights)
    hours = prices["serving"]["hours_per_month"]
    return Deployment(
        served=_served(method, together, n),
        variants=n,
        months=sc.months,
        together=together,
        instances=instances,
        serving_gib=per_instance / GIB,
        gpus_per_instance=gpus,
        serving_gpus=serving_gpus,
        storage_gb=storage / 1e9,
        training_usd=training_usd,
        monthly_serving_usd=serving_gpus * serve_gpu.price_per_hour * hours,
        monthly_storage_usd=storage / 1e9 * prices["storage"]["usd_per_gb_month"],
        switch_seconds=one / (prices["disk"]["read_gbs"] * 1e9),
    )
