"""The probe's measuring core, shared by the one-GPU runner and the sharded harness (rank 0 under torch's
fake process group): build a random-weight base for a method variant, its optimizer, and run timed
training steps recording the peak allocation of each phase. Imports torch, transformers, peft and
bitsandbytes inside functions only."""

from __future__ import annotations

import gc as _gc
import sys
import time

from .. import optimizers
from ..methods import ProbeRecipe, from_variant

GIB = 2**30


def _device():
    import torch

    return torch.device("cuda") if torch.cuda.is_available() else torch.device("cpu")


def variant_recipe(variant: str) -> ProbeRecipe:
    method, _ = from_variant(variant)
    return method.probe_recipe(variant)


def build_base(hf_config: dict, method: str, quant_storage: str = "uint8"):
    """Build the base model with random weights directly on the device, as the method variant's
    :class:`ftdecide.methods.ProbeRecipe` says (dtype, 4-bit linears). ``quant_storage``: the dtype that
    holds the packed 4-bit weights (``bnb_4bit_quant_storage``; FSDP shards only a float storage)."""
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM

    cfg = dict(hf_config)
    model_type = cfg.pop("model_type")
    config = AutoConfig.for_model(model_type, **cfg)
    config.use_cache = False
    recipe = variant_recipe(method)
    dtype = getattr(torch, recipe.dtype)
    with _device():
        try:
            model = AutoModelForCausalLM.from_config(config, attn_implementation="sdpa", dtype=dtype)
        except TypeError:
            model = AutoModelForCausalLM.from_config(config, attn_implementation="sdpa", torch_dtype=dtype)
    if recipe.quantize_4bit:
        quantize_linears(model, quant_storage)
    return model


def quantize_linears(model, quant_storage: str = "uint8") -> None:
    """Replace every nn.Linear but the output head by a bitsandbytes NF4 Linear4bit (double quant,
    bf16 compute), as ``BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_quant_type="nf4",
    bnb_4bit_use_double_quant=True, bnb_4bit_compute_dtype=bfloat16)`` loads a checkpoint."""
    import bitsandbytes as bnb
    import torch
    from torch import nn

    out_emb = model.get_output_embeddings()
    dev = _device()
    storage = getattr(torch, quant_storage)
    for parent in list(model.modules()):
        for name, child in list(parent.named_children()):
            if not isinstance(child, nn.Linear) or child is out_emb:
                continue
            q = bnb.nn.Linear4bit(
                child.in_features,
                child.out_features,
                bias=child.bias is not None,
                compute_dtype=torch.bfloat16,
                compress_statistics=True,
                quant_type="nf4",
                quant_storage=storage,
                device="meta",
            )
            w = child.weight.data
            q.weight = bnb.nn.Params4bit(w, requires_grad=False, compress_statistics=True, quant_type="nf4", quant_storage=storage).to(dev)
            if child.bias is not None:
                q.bias = nn.Parameter(child.bias.data, requires_grad=False)
            setattr(parent, name, q)
            del child, w
    model.is_loaded_in_4bit = True
    _gc.collect()
    torch.cuda.empty_cache()


def make_optimizer(params, optim: str, method: str):
    """The optimizer ``optim`` names, built as its record says (:attr:`ftdecide.optimizers.Optimizer.probe_class`)."""
    import importlib

    import torch

    spec = optimizers.get(optim)
    module, cls = spec.probe_class.split(":")
    kwargs = dict(spec.probe_kwargs)
    if kwargs.get("fused") and not torch.cuda.is_available():
        kwargs["fused"] = False  # fused kernels are CUDA's
    return getattr(importlib.import_module(module), cls)(params, lr=1e-5, **kwargs)


def count_params(model) -> tuple[int, int]:
    total = trainable = 0
    for p in model.parameters():
        n = p.numel()
        # bitsandbytes packs two 4-bit values per byte: count the unpacked size, as the calibration does.
        if p.dtype == __import__("torch").uint8 and hasattr(p, "quant_state"):
            n *= 2
        total += n
        if p.requires_grad:
            trainable += n
    return total, trainable


def run_steps(model, probe: dict, steps: int = 3, engine=None) -> dict:
    """Train ``steps`` steps on random tokens, timing each and splitting the last one's peak by phase.
    ``engine`` (a DeepSpeed engine: ``model`` itself) owns the optimizer: its ``backward`` and ``step``
    replace ``loss.backward()`` and the optimizer's step. With ``probe["profile"]`` two more steps run
    under torch.profiler and the record gains the timeline's communication figures
    (:mod:`ftdecide.probe.timeline`)."""
    import torch

    dev = _device()
    batch, seq = int(probe["batch"]), int(probe["seq"])
    config = getattr(model, "module", model).config  # DDP and DeepSpeed wrap the model in .module
    vocab = config.get_text_config().vocab_size if hasattr(config, "get_text_config") else config.vocab_size
    params = [p for p in model.parameters() if p.requires_grad]
    if engine is None:
        opt = make_optimizer(params, probe.get("optim", "adamw"), probe["method"])
        backward = _plain_backward
    else:
        opt, backward = _EngineStep(engine), engine.backward
    cuda = dev.type == "cuda"
    step_s: list[float] = []
    detail: dict[str, float] = {}
    gen = torch.Generator(device=dev).manual_seed(0)
    offload = _offload_context(model) if probe.get("offload_act") else None
    for i in range(steps):
        ids = torch.randint(0, vocab, (batch, seq), device=dev, generator=gen)
        if cuda:
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        last = cuda and i == steps - 1
        if last:
            # Split the last step's peak into forward, backward and optimizer phases; the overall
            # peak is kept by hand, since resetting the counter forgets the earlier steps.
            detail["peak_prior_gib"] = torch.cuda.max_memory_allocated() / GIB
            detail["alloc_before_fwd_gib"] = torch.cuda.memory_allocated() / GIB
            torch.cuda.reset_peak_memory_stats()
        if offload is not None:
            offload.__enter__()
        with torch.autocast(device_type=dev.type, dtype=torch.bfloat16):
            loss = model(input_ids=ids, labels=ids).loss
        if last:
            detail["alloc_after_fwd_gib"] = torch.cuda.memory_allocated() / GIB
            detail["peak_fwd_gib"] = torch.cuda.max_memory_allocated() / GIB
            torch.cuda.reset_peak_memory_stats()
        backward(loss)
        del loss
        if offload is not None:
            offload.__exit__(None, None, None)
        if last:
            detail["peak_bwd_gib"] = torch.cuda.max_memory_allocated() / GIB
            detail["alloc_after_bwd_gib"] = torch.cuda.memory_allocated() / GIB
            torch.cuda.reset_peak_memory_stats()
        opt.step()
        opt.zero_grad(set_to_none=True)
        if last:
            detail["peak_opt_gib"] = torch.cuda.max_memory_allocated() / GIB
            free, total = torch.cuda.mem_get_info()
            # what the driver sees in use: with paged optimizers, their states in managed memory too
            detail["gpu_used_gib"] = (total - free) / GIB
        if cuda:
            torch.cuda.synchronize()
        step_s.append(time.perf_counter() - t0)
    out = {"step_s": [round(s, 5) for s in step_s]}
    out.update(detail)
    fastest = min(step_s[1:]) if len(step_s) > 1 else step_s[0]
    out["tokens_per_s"] = batch * seq / fastest
    if cuda:
        out["steady_alloc_gib"] = torch.cuda.memory_allocated() / GIB
    if cuda and probe.get("profile"):

        def one_step(opt=opt):
            ids = torch.randint(0, vocab, (batch, seq), device=dev, generator=gen)
            with torch.autocast(device_type=dev.type, dtype=torch.bfloat16):
                loss = model(input_ids=ids, labels=ids).loss
            backward(loss)
            opt.step()
            opt.zero_grad(set_to_none=True)

        out.update(_profiled(one_step, 2))
    del opt, params
    return out


def _plain_backward(loss) -> None:
    loss.backward()


class _EngineStep:
    """A DeepSpeed engine's step in an optimizer's place (the engine zeroes its own gradients)."""

    def __init__(self, engine):
        self.engine = engine

    def step(self) -> None:
        self.engine.step()

    def zero_grad(self, set_to_none: bool = True) -> None:
        pass


def _profiled(step, steps: int) -> dict:
    """Run ``step`` ``steps`` times under torch.profiler (CUDA kernels only) and return the timeline's
    communication figures per step (seconds): NCCL kernels' time, the part no compute kernel overlaps,
    and the compute kernels' busy time."""
    import json as _json
    import os
    import tempfile

    import torch
    from torch.profiler import ProfilerActivity, profile

    from .timeline import kernels_from_trace, overlap

    with profile(activities=[ProfilerActivity.CUDA]) as prof:
        for _ in range(steps):
            step()
        torch.cuda.synchronize()
    fd, path = tempfile.mkstemp(suffix=".json")
    os.close(fd)
    try:
        prof.export_chrome_trace(path)
        with open(path, encoding="utf-8") as fh:
            trace = _json.load(fh)
    finally:
        os.unlink(path)
    figures = overlap(kernels_from_trace(trace))
    return {f"profile_{k}": v / steps for k, v in figures.items()}


def _offload_context(model):
    """TRL's activation offloading (``SFTConfig(activation_offloading=True)``): every saved tensor of
    1 KiB and more goes to pinned CPU memory during forward, except the output head's, and comes back
    for backward on a side stream."""
    try:
        from trl.models.activation_offloading import get_act_offloading_ctx_manager
    except ImportError:  # trl's package __init__ may need what is not installed; the module needs torch
        import importlib.util
        import pathlib
        import site

        paths = [pathlib.Path(p) / "trl/models/activation_offloading.py" for p in [*sys.path, *site.getsitepackages()]]
        path = next(p for p in paths if p.is_file())
        spec = importlib.util.spec_from_file_location("_trl_activation_offloading", path)
        mod = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(mod)
        get_act_offloading_ctx_manager = mod.get_act_offloading_ctx_manager
    return get_act_offloading_ctx_manager(model)


def peak_alloc_gib(rec: dict) -> float:
    """The step's peak allocation, GiB: the last step's phases reset the counter, so the peak is the
    largest of them, of what came before them and of the counter now."""
    import torch

    phases = [rec.get(k, 0.0) for k in ("peak_prior_gib", "peak_fwd_gib", "peak_bwd_gib", "peak_opt_gib")]
    return max([torch.cuda.max_memory_allocated() / GIB, *phases])
