"""Per-GPU memory of an N-GPU FSDP2, DDP or DeepSpeed ZeRO job: on N local GPUs under torchrun with NCCL
(25 configurations run so on 2 H200s: ``python -m torch.distributed.run --nproc_per_node=N -m
ftdecide.probe.runner GRID``, the command ``ftdecide probe`` starts when the machine has the GPUs), or
on one GPU as rank 0 under torch's fake process group, which gave the same peak to 0.01 GiB on every
configuration that ran both ways (19, FSDP2 and ZeRO; DDP does not run under the fake group: its
reducer's all-reduce hook gets no tensor back).

``torch.distributed.init_process_group("fake", store=FakeStore(), rank=0, world_size=N)`` makes every
collective return at once without moving data, while every allocation a real rank makes still happens:
rank 0's peak is the per-GPU peak of the N-GPU job. The model is built on the meta device and sharded
before it is materialised, so a model far larger than the card can be measured at the world size that
makes it fit (the weights hold random values: memory, not loss, is measured; tokens/s under the fake
group is not a real job's).

FSDP2 as accelerate applies it (``fsdp_version: 2``): ``fully_shard`` on each decoder layer and on the
root, parameters resharded after forward; ``full_mixed`` keeps fp32 sharded parameters with
``MixedPrecisionPolicy(param_dtype=bf16, reduce_dtype=fp32)``. LoRA and DoRA are applied by peft before
sharding. DDP as accelerate applies it (``bucket_cap_mb=25``, ``gradient_as_bucket_view=False``): a
replica built on the GPU and wrapped, its reducer's buckets allocated as they would be on a real rank.
DeepSpeed ZeRO-1/2/3 with the config ftdecide emits (:func:`run_zero_probe`). Imports torch inside functions
only, like :mod:`ftdecide.probe.runner`; run one configuration per process (memory a case leaves behind
must not reach the next).
"""

from __future__ import annotations

import time

GIB = 2**30


def _decoder_layers(model) -> list:
    return [m for m in model.modules() if type(m).__name__.endswith("DecoderLayer")]


def _materialise(model, device) -> None:
    """Allocate the sharded parameters on ``device`` with small random values, and rebuild the rotary
    embeddings' buffers, which ``to_empty`` leaves uninitialised."""
    import torch

    model.to_empty(device=device)
    with torch.no_grad():
        for p in model.parameters():
            local = p.to_local() if hasattr(p, "to_local") else p
            local.normal_(0.0, 0.02)
        for m in model.modules():
            if hasattr(m, "inv_freq") and hasattr(m, "rope_init_fn"):
                try:
                    inv_freq, scaling = m.rope_init_fn(m.config, device)
                    m.inv_freq = inv_freq
                    if hasattr(m, "original_inv_freq"):
                        m.original_inv_freq = inv_freq
                    m.attention_scaling = scaling
                except Exception:  # noqa: BLE001 - a rotary layout this does not know: values only, not memory
                    pass


def run_sharded_probe(probe: dict) -> dict:
    """Rank 0 of an N-GPU job under the fake process group, by the record's ``strategy`` (default fsdp)."""
    import sys

    from .. import strategies

    name = probe.get("strategy") or strategies.AUTO_DEFAULT
    spec = strategies.get(name) if name in strategies.names() else None
    if spec is None or not spec.probe_runner:
        measured = ", ".join(n for n in strategies.names() if strategies.get(n).probe_runner)
        raise ValueError(f"the probe measures {measured} on several GPUs, not {name!r}")
    return getattr(sys.modules[__name__], spec.probe_runner)(probe)


def _process_group(n: int) -> None:
    """Under torchrun (``LOCAL_RANK`` set: N real GPUs of this machine) a NCCL group on this rank's GPU;
    otherwise rank 0 of torch's fake group of ``n``."""
    import os

    import torch
    import torch.distributed as dist

    if dist.is_initialized():
        return
    if "LOCAL_RANK" in os.environ:
        torch.cuda.set_device(int(os.environ["LOCAL_RANK"]))
        dist.init_process_group("nccl")
        if dist.get_world_size() != n:
            raise ValueError(f"the record asks for {n} GPUs, torchrun started {dist.get_world_size()}")
        return
    from torch.testing._internal.distributed.fake_pg import FakeStore

    dist.init_process_group("fake", store=FakeStore(), rank=0, world_size=n)


def _finish(rec: dict) -> dict:
    import torch

    from .steps import peak_alloc_gib

    rec["peak_alloc_gib"] = peak_alloc_gib(rec)
    rec["peak_reserved_gib"] = torch.cuda.max_memory_reserved() / GIB
    free, total = torch.cuda.mem_get_info()
    rec["cuda_context_gib"] = (total - free - torch.cuda.memory_reserved()) / GIB
    import torch.distributed as dist

    rec["fake_process_group"] = dist.get_backend() == "fake"
    return rec


def _measure(probe: dict, build, engine: bool = False) -> dict:
    """Rank 0's record of ``probe``: ``build()`` returns the model to train (sharded or wrapped), which
    trains for the record's steps; out of memory and other failures are results, so that a grid goes on.
    ``engine``: the model is a DeepSpeed engine, which steps its own optimizer."""
    import torch

    from .steps import count_params, run_steps

    rec = dict(probe)
    _process_group(int(probe["world_size"]))
    try:
        t0 = time.perf_counter()
        model = build()
        rec["build_s"] = round(time.perf_counter() - t0, 2)
        torch.cuda.synchronize()
        rec["mem_after_load_gib"] = torch.cuda.memory_allocated() / GIB
        model.train()
        if not engine:  # ZeRO-3 leaves empty placeholders in the module: its count is not the model's
            rec["total_params"], rec["trainable_params"] = count_params(model)
        torch.cuda.reset_peak_memory_stats()
        rec.update(run_steps(model, probe, max(2, int(probe.get("steps", 3))), engine=model if engine else None))
        rec["status"] = "ok"
    except torch.OutOfMemoryError:
        rec["status"] = "oom"
    except Exception as e:  # noqa: BLE001 - recorded with the run, so that a grid goes on
        rec["status"] = "error"
        rec["error"] = f"{type(e).__name__}: {str(e)[:300]}"
    return _finish(rec)


def _wrapped(model, probe: dict):
    """The method's adapter on ``model`` (peft, or the base itself), checkpointing as the record asks."""
    from ..methods import from_variant
    from .records import arch_from_record, config_from_record

    spec, _ = from_variant(probe["method"])
    model = spec.wrap_for_probe(model, arch_from_record(probe), config_from_record(probe))
    if probe.get("gc"):
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    return model


def run_ddp_probe(probe: dict) -> dict:
    """Measure ``probe`` as rank 0 of an N-rank DDP job: the replica as ``runner`` builds it, wrapped in
    ``DistributedDataParallel`` the way accelerate wraps it."""

    def build():
        import torch
        from torch.nn.parallel import DistributedDataParallel

        from .steps import build_base, variant_recipe

        model = build_base(probe["hf_config"], probe["method"])
        if variant_recipe(probe["method"]).kbit_prepare:
            from peft import prepare_model_for_kbit_training

            model = prepare_model_for_kbit_training(model, use_gradient_checkpointing=bool(probe.get("gc")))
        model = _wrapped(model, probe)
        return DistributedDataParallel(
            model, device_ids=[torch.cuda.current_device()], bucket_cap_mb=25, gradient_as_bucket_view=False, find_unused_parameters=False
        )

    return _measure(probe, build)


def run_fsdp_probe(probe: dict) -> dict:
    """Measure ``probe`` (a probe record with ``world_size`` N > 1 and ``strategy`` "fsdp") as rank 0 of
    an N-rank FSDP2 job; returns the record plus the measured fields, like ``runner.run_probe``.

    A 4-bit base (QLoRA) cannot be built on the meta device: it is built and quantized on the GPU with
    ``bnb_4bit_quant_storage=bfloat16`` (what accelerate needs to shard 4-bit weights), prepared as peft
    prepares k-bit training, and sharded as it is; the base must then fit the GPU whole before sharding."""

    def build():
        import torch
        from torch.distributed.fsdp import MixedPrecisionPolicy, fully_shard
        from transformers import AutoConfig, AutoModelForCausalLM

        from .steps import build_base, variant_recipe

        recipe = variant_recipe(probe["method"])
        dtype = getattr(torch, recipe.dtype)
        if recipe.quantize_4bit:
            model = build_base(probe["hf_config"], probe["method"], quant_storage="bfloat16")
            from peft import prepare_model_for_kbit_training

            model = prepare_model_for_kbit_training(model, use_gradient_checkpointing=bool(probe.get("gc")))
        else:
            cfg = dict(probe["hf_config"])
            config = AutoConfig.for_model(cfg.pop("model_type"), **cfg)
            config.use_cache = False
            with torch.device("meta"):
                model = AutoModelForCausalLM.from_config(config, attn_implementation="sdpa", dtype=dtype)
        model = _wrapped(model, probe)
        kwargs = {"reshard_after_forward": True}
        if dtype == torch.float32:
            kwargs["mp_policy"] = MixedPrecisionPolicy(param_dtype=torch.bfloat16, reduce_dtype=torch.float32)
        for layer in _decoder_layers(model):
            fully_shard(layer, **kwargs)
        fully_shard(model, **kwargs)
        if not recipe.quantize_4bit:
            _materialise(model, torch.device("cuda", torch.cuda.current_device()))
        return model

    return _measure(probe, build)


def run_zero_probe(probe: dict) -> dict:
    """Measure ``probe`` as rank 0 of an N-rank DeepSpeed ZeRO job (``strategy`` zero1, zero2 or zero3)
    with the DeepSpeed config that ``ftdecide recommend --emit deepspeed`` writes, and the optimizer the
    emitted trainers hand to DeepSpeed (the config names none): torch's fused AdamW, or the record's
    ``optim`` as the trainers build it (bitsandbytes' for adamw8bit). DeepSpeed trains bf16
    weights with fp32 master copies whatever the variant: records say ``full_mixed`` or a PEFT method. The
    model is built on the GPU and partitioned by ``deepspeed.initialize``; the peak counts from the first
    step."""
    import os

    def build():
        import deepspeed

        from ..strategies import get
        from .records import arch_from_record
        from .steps import build_base, make_optimizer

        if "LOCAL_RANK" not in os.environ:  # the fake group: DeepSpeed reads the rank from the environment
            os.environ.update(LOCAL_RANK="0", RANK="0", WORLD_SIZE=str(probe["world_size"]))
        strategy = get(probe["strategy"])
        # a stage that partitions the parameters takes the packed 4-bit weights only in a float storage (what
        # the emitted QLoRA config asks for with bnb_4bit_quant_storage=bfloat16)
        storage = "bfloat16" if strategy.shards_parameters else "uint8"
        model = _wrapped(build_base(probe["hf_config"], probe["method"], quant_storage=storage), probe)
        ds_config = strategy.deepspeed_config(arch_from_record(probe), int(probe["batch"]), 1, True, False, False)
        # what transformers adds when the trainer, not the config, brings the optimizer
        ds_config.update(zero_allow_untested_optimizer=True, steps_per_print=10**9)
        params = [p for p in model.parameters() if p.requires_grad]
        opt = make_optimizer(params, probe.get("optim", "adamw"), probe["method"])
        engine, *_ = deepspeed.initialize(model=model, optimizer=opt, config=ds_config)
        return engine

    return _measure(probe, build, engine=True)
