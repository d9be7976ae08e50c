"""Decide how to fine-tune: candidates, their memory, time and cost, and the rules' verdict.

Pure functions over pydantic models; nothing here prints or reads the terminal.
"""

from __future__ import annotations

import math
from typing import Any, Literal, Optional

from pydantic import BaseModel, ConfigDict, Field, field_validator

from . import catalog, rules
from .arch import Arch
from .catalog import GPU
from .errors import InputError
from .estimator import CUDA_CONTEXT_GIB, TrainConfig, estimate_memory
from .throughput import STEP, UTIL, step_seconds, train_flops_per_token

SCHEMA_VERSION = "1.0"
METHODS = ("full", "lora", "qlora")
GLOBAL_BATCH = 16  # examples per optimizer step the recommendation aims for
MICRO_BATCHES = (16, 8, 4, 2, 1)


class Scenario(BaseModel):
    """What the user wants to do. Sizes: examples and tokens; budget in USD; memory in GiB."""

    model_config = ConfigDict(extra="forbid")
    model: str
    gpu: Optional[str] = None
    gpu_memory: Optional[float] = Field(None, gt=0, le=4096)
    gpus: int = Field(1, ge=1, le=1024)
    dataset_size: int = Field(10_000, ge=1, le=10_000_000_000)
    seq_len: int = Field(2048, ge=16, le=1_048_576)
    task: Literal["chat", "instruction", "style", "classification", "domain", "code", "math", "continued-pretraining"] = "instruction"
    quality: Literal["prototype", "production", "best"] = "production"
    budget: Optional[float] = Field(None, gt=0, le=1e9)
    serving: Literal["single", "multi-tenant", "latency-critical"] = "single"
    epochs: Optional[int] = Field(None, ge=1, le=100)
    price_per_hour: Optional[float] = Field(None, ge=0, le=10_000)
    precision: Literal["bf16", "mixed"] = "bf16"
    optimizer: Literal["adamw", "adamw8bit", "sgd", "adafactor"] = "adamw"
    offload_optimizer: bool = False

    @field_validator("gpu_memory", "budget", "price_per_hour")
    @classmethod
    def _finite(cls, v):
        if v is not None and not math.isfinite(v):
            raise ValueError("must be a finite number")
        return v


def rule_schema() -> dict[str, str]:
    """Names a rule condition may read, with their types."""
    s = {
        "task": "string", "quality": "string", "serving": "string", "gpu_name": "string", "model_family": "string",
        "dataset_size": "number", "seq_len": "number", "epochs": "number", "budget": "number", "gpus": "number",
        "gpu_memory_gib": "number", "model_params_b": "number", "vocab_size": "number", "tokens": "number",
        "bf16_supported": "bool", "has_budget": "bool",
    }
    for m in METHODS:
        s[f"fits.{m}"] = "bool"
        s[f"memory.{m}"] = "number"
        s[f"cost.{m}"] = "number"
        s[f"time.{m}"] = "number"
    return s


def default_rule_paths() -> list[str]:
    return [str(catalog.config_dir() / "rules" / "default.yaml")]


def _fit_config(arch: Arch, gpu: GPU, sc: Scenario, method: str, lora: dict[str, Any]):
    """The largest micro-batch (<= 16) that fits, without checkpointing if possible."""
    base = dict(method=method, precision=sc.precision if method == "full" else "bf16", optimizer=sc.optimizer,
                seq_len=sc.seq_len, gpus=sc.gpus, offload_optimizer=sc.offload_optimizer,
                lora_rank=lora["rank"], lora_targets=lora["targets"], lora_dropout=lora["dropout"])
    best = None
    for gc in (False, True):
        for mb in MICRO_BATCHES:
            cfg = TrainConfig(batch_size=mb, gradient_checkpointing=gc, **base)
            est = estimate_memory(arch, cfg)
            if est.required_gib <= gpu.memory_gib:
                # without checkpointing only if it still allows a useful micro-batch (>= 4 or the global batch)
                if gc or mb >= 4:
                    return cfg, est, True
                best = best or (cfg, est)
                break
    if best:
        return best[0], best[1], True
    cfg = TrainConfig(batch_size=1, gradient_checkpointing=True, **base)
    return cfg, estimate_memory(arch, cfg), False


def _candidate(arch: Arch, gpu: GPU, sc: Scenario, method: str, lora: dict[str, Any], epochs: int, price: float) -> dict:
    cfg, est, fits = _fit_config(arch, gpu, sc, method, lora)
    tokens = sc.dataset_size * sc.seq_len * epochs
    step = step_seconds(arch, cfg, gpu.bf16_tflops, gpu.memory_bandwidth_gbs)["total"]
    tps = cfg.seq_len * cfg.batch_size / step
    hours = tokens / (tps * sc.gpus) / 3600
    mfu = train_flops_per_token(arch, method, sc.seq_len, cfg.gradient_checkpointing) * tps / (gpu.bf16_tflops * 1e12)
    return {
        "method": method,
        "fits": fits,
        "micro_batch_size": cfg.batch_size,
        "gradient_checkpointing": cfg.gradient_checkpointing,
        "memory": {
            "peak_allocated_gib": round(est.peak_allocated_gib, 2),
            "required_gib": round(est.required_gib, 2),
            "gpu_memory_gib": gpu.memory_gib,
            "breakdown": {k: round(v, 3) for k, v in est.breakdown.items()},
        },
        "trainable_params": est.trainable_params,
        "tokens_per_second": round(tps, 1),
        "mfu": round(mfu, 3),
        "time_hours": round(hours, 3),
        "cost_usd": round(hours * price * sc.gpus, 2),
        "notes": est.notes,
        "_est": est,
        "_cfg": cfg,
    }


def _env(arch: Arch, gpu: GPU, sc: Scenario, cands: dict[str, dict], epochs: int) -> dict[str, Any]:
    env: dict[str, Any] = {
        "task": sc.task, "quality": sc.quality, "serving": sc.serving, "gpu_name": gpu.name, "model_family": arch.family,
        "dataset_size": sc.dataset_size, "seq_len": sc.seq_len, "epochs": epochs, "gpus": sc.gpus,
        "budget": sc.budget if sc.budget is not None else math.inf, "has_budget": sc.budget is not None,
        "gpu_memory_gib": gpu.memory_gib, "model_params_b": arch.total_params() / 1e9, "vocab_size": arch.vocab_size,
        "tokens": sc.dataset_size * sc.seq_len * epochs, "bf16_supported": gpu.bf16,
    }
    for m, c in cands.items():
        env[f"fits.{m}"] = c["fits"]
        env[f"memory.{m}"] = c["memory"]["required_gib"]
        env[f"cost.{m}"] = c["cost_usd"]
        env[f"time.{m}"] = c["time_hours"]
    return env


def resolve_hardware(sc: Scenario) -> GPU:
    if sc.gpu and sc.gpu_memory:
        raise InputError("give --gpu or --gpu-memory, not both")
    if sc.gpu_memory is not None:
        if sc.gpu_memory <= CUDA_CONTEXT_GIB:
            raise InputError(f"--gpu-memory {sc.gpu_memory:g} GiB is smaller than the CUDA context ({CUDA_CONTEXT_GIB} GiB)")
        return catalog.custom_gpu(sc.gpu_memory)
    return catalog.resolve_gpu(sc.gpu or "a100-80gb")


def recommend(sc: Scenario, rule_paths: Optional[list[str]] = None) -> dict:
    """The whole recommendation as a JSON-ready dict (the ``--format json`` contract)."""
    arch = catalog.resolve_model(sc.model)
    gpu = resolve_hardware(sc)
    price = sc.price_per_hour if sc.price_per_hour is not None else gpu.price_per_hour
    schema = rule_schema()
    rs = rules.load_rules(default_rule_paths() + list(rule_paths or []), schema)

    # First pass with the default LoRA shape to learn what fits; the rules then set the final shape.
    first_lora = {"rank": 16, "targets": "all-linear", "dropout": 0.05}
    epochs0 = sc.epochs or 3
    cands = {m: _candidate(arch, gpu, sc, m, first_lora, epochs0, price) for m in METHODS}
    outcome = rules.evaluate(rs, _env(arch, gpu, sc, cands, epochs0))
    st = outcome.settings
    epochs = sc.epochs or int(st.get("epochs", 3))
    lora = {"rank": int(st.get("rank", 16)), "targets": str(st.get("targets", "all-linear")), "dropout": float(st.get("dropout", 0.05))}
    try:
        max_rank = arch.max_lora_rank(arch.resolve_targets(lora["targets"]))
    except ValueError as e:
        raise InputError(f"rules set LoRA targets '{lora['targets']}': {e}") from None
    requested_rank = lora["rank"]
    lora["rank"] = min(requested_rank, max_rank)
    # A rule's alpha holds for the rank it set; where the rank had to shrink to fit the layers, alpha keeps 2x.
    lora["alpha"] = int(st["alpha"]) if ("alpha" in st and lora["rank"] == requested_rank) else 2 * lora["rank"]
    cands = {m: _candidate(arch, gpu, sc, m, lora, epochs, price) for m in METHODS}
    env = _env(arch, gpu, sc, cands, epochs)
    outcome = rules.evaluate(rs, env)  # conditions may read costs and fits of the final shape

    allowed = [m for m in METHODS if cands[m]["fits"] and m not in outcome.forbidden]
    method = None
    for prio, order, m, rid in sorted(outcome.preferences, key=lambda p: (-p[0], -p[1])):
        if m in allowed:
            method = m
            break
    if method is None and allowed:
        method = next(m for m in ("lora", "qlora", "full") if m in allowed)
    feasible = method is not None
    chosen = cands[method] if feasible else None

    reasons = [n for n in outcome.notes]
    warnings = list(outcome.warnings)
    if arch.assumed:
        warnings.append({"rule": "model", "message": arch.assumed})
    rec: dict[str, Any] = {"method": method, "feasible": feasible}
    if feasible:
        mb = chosen["micro_batch_size"]
        accum = max(1, math.ceil(GLOBAL_BATCH / (mb * sc.gpus)))
        rec.update(
            lora=None if method == "full" else {k: lora[k] for k in ("rank", "alpha", "targets", "dropout")},
            learning_rate=float(st.get("full_learning_rate", 2e-5)) if method == "full" else float(st.get("lora_learning_rate", 2e-4)),
            epochs=epochs,
            micro_batch_size=mb,
            gradient_accumulation_steps=accum,
            global_batch_size=mb * accum * sc.gpus,
            gradient_checkpointing=chosen["gradient_checkpointing"],
            precision="bf16" if gpu.bf16 else "fp16",
            time_hours=chosen["time_hours"],
            cost_usd=chosen["cost_usd"],
        )
        if sc.gpus > 1:
            rec["distributed"] = "ZeRO-3 / FSDP across %d GPUs" % sc.gpus
    else:
        rec.update(lora=None, learning_rate=None, epochs=epochs, micro_batch_size=None, gradient_checkpointing=None)
        warnings.append({"rule": "feasibility", "message": f"no method fits {arch.name} on {sc.gpus}x {gpu.name} ({gpu.memory_gib:g} GiB) at seq_len {sc.seq_len}"})
    rec["reasons"] = reasons
    if feasible:
        rec["evaluation"] = evaluation_plan(sc, method)
        rec["deployment"] = deployment_note(arch, sc, method, chosen["trainable_params"])
    alternatives = [] if feasible else alternatives_for(arch, gpu, sc, lora)
    if feasible:
        for m in METHODS:
            if m != method and cands[m]["fits"] and m not in outcome.forbidden:
                alternatives.append({"kind": "method", "method": m, "cost_usd": cands[m]["cost_usd"], "time_hours": cands[m]["time_hours"],
                                     "message": f"{m} also fits ({cands[m]['memory']['required_gib']:.1f} GiB, ${cands[m]['cost_usd']:,.2f})"})
    return {
        "schema_version": SCHEMA_VERSION,
        "scenario": {
            **sc.model_dump(exclude={"model", "gpu", "gpu_memory"}),
            "model": arch.name, "model_source": model_source(arch), "model_id": arch.model_id or None, "total_params": arch.total_params(),
            "gpu": gpu.name, "gpu_memory_gib": gpu.memory_gib, "price_per_hour": price, "epochs": epochs,
        },
        "recommendation": rec,
        "candidates": [{k: v for k, v in c.items() if not k.startswith("_")} for c in cands.values()],
        "warnings": warnings,
        "alternatives": alternatives,
        "rules_fired": [lr.rule.id for lr in outcome.fired],
        "assumptions": {
            "matmul_utilisation": UTIL, "attention_utilisation": STEP.attn_util, "flops_per_token": "6N full, 4N LoRA/QLoRA, +2N with checkpointing, + attention",
            "time": "per step: the GPU stream (FLOPs at the method's matmul utilisation, attention at its own, memory-bound traffic at the GPU's bandwidth) against the CPU stream (kernels launched x time per kernel), combined by a fitted p-norm (ftdecide/throughput.py); GPUs scale linearly",
            "memory": "peak of the Hugging Face stack (transformers+peft+bitsandbytes, sdpa, bf16 autocast), plus CUDA context and allocator headroom",
            "global_batch_size": GLOBAL_BATCH,
        },
    }


def validate_scenario(fields: dict, path: Optional[str] = None, key_lines: Optional[dict] = None, line: Optional[int] = None,
                      name: Optional[str] = None) -> Scenario:
    """``Scenario(**fields)``, or an InputError of one line: ``path:line:`` of the offending key when the
    fields came from a file (``key_lines``: key -> 1-based line; ``line``: the scenario's own line, used
    when the key has none), the scenario's ``name`` in a file of many, then the option and what is wrong."""
    from pydantic import ValidationError

    try:
        return Scenario(**fields)
    except ValidationError as e:
        err = e.errors()[0]
        key = ".".join(str(x) for x in err["loc"])
        kl = key_lines or {}
        at = kl.get(key) or kl.get(key.replace("_", "-")) or line
        where = f"{path}:{at}: " if path and at else ""
        label = f"scenario '{name}': " if name else ""
        what = "unknown field" if err["type"] == "extra_forbidden" else err["msg"]
        raise InputError(f"{where}{label}{key.replace('_', '-') or 'input'}: {what}") from None


def model_source(arch: Arch) -> str:
    """Where the architecture came from, as the output states it."""
    if arch.assumed:
        return f"assumed: {arch.assumed}"
    if arch.source.startswith(("config.json:", "Hugging Face cache:")):
        return arch.source
    return f"catalog ({arch.source})" if arch.source else "catalog"


# Forgetting signals of the seeds' evaluation recipe (shared/seeds/000): a general-text perplexity rise
# above 10%, or a general benchmark falling by more than 2-3 points.
PERPLEXITY_RISE_MAX = 0.10
BENCHMARK_DROP_MAX_POINTS = 2.0


def evaluation_plan(sc: Scenario, method: str) -> dict[str, Any]:
    """How to tell whether the fine-tune worked and what it cost in general ability."""
    # 5% of the data, at least 200 examples for a stable metric, at most 2000, never more than a fifth
    held_out = min(max(200, round(0.05 * sc.dataset_size)), 2000, max(1, sc.dataset_size // 5))
    metric = {"classification": "accuracy / macro-F1", "code": "pass@1 on held-out problems with tests", "math": "exact-match accuracy of final answers",
              "style": "pairwise preference (human or LLM judge) against the base model"}.get(sc.task, "task metric (exact match, ROUGE or LLM-judge win rate) against the base model")
    return {
        "held_out_examples": held_out,
        "task_metric": metric,
        "regression_check": (f"general-capability check before and after: perplexity on general text rising by more than {PERPLEXITY_RISE_MAX:.0%}, "
                             f"or a general benchmark (e.g. MMLU, HellaSwag) dropping by more than {BENCHMARK_DROP_MAX_POINTS:g}-3 points, signals forgetting"),
        "perplexity_rise_max": PERPLEXITY_RISE_MAX,
        "benchmark_drop_max_points": BENCHMARK_DROP_MAX_POINTS,
        "if_forgetting": "lower the learning rate or epochs, mix in general data, or use a lower LoRA rank" if method != "full" else
                         "lower the learning rate or epochs, or mix in general data (full fine-tuning forgets most)",
    }


def deployment_note(arch: Arch, sc: Scenario, method: str, trainable: int) -> dict[str, Any]:
    """How to serve the result; sizes on disk in MB (10^6 bytes)."""
    if method == "full":
        size = arch.total_params() * 2 / 1e6
        return {"artifact": "full model", "size_mb": round(size, 1),
                "advice": f"the fine-tuned weights replace the base model: {size / 1e3:,.1f} GB in bf16 per task; serve it like the base"}
    adapter_mb = trainable * 4 / 1e6  # peft saves the fp32 adapter weights
    if sc.serving == "multi-tenant":
        advice = "keep adapters unmerged and serve many of them over one base model (vLLM / LoRAX multi-LoRA); each adapter is small"
    else:
        advice = "merge the adapter into the base weights (merge_and_unload) for single-model serving: no extra latency"
        if method == "qlora":
            advice += "; merge into the bf16 base, not the 4-bit one, then quantize again if needed"
    return {"artifact": "LoRA adapter", "adapter_size_mb": round(adapter_mb, 1), "adapter_size_mb_bf16": round(adapter_mb / 2, 1), "advice": advice}


def alternatives_for(arch: Arch, gpu: GPU, sc: Scenario, lora: dict[str, Any]) -> list[dict]:
    """What would make a plan feasible: a larger catalog GPU, more GPUs, or a smaller model of the family."""
    out: list[dict] = []
    need = {}
    for m in ("qlora", "lora", "full"):
        cfg = TrainConfig(method=m, seq_len=sc.seq_len, batch_size=1, gradient_checkpointing=True, gpus=sc.gpus,
                          lora_rank=lora["rank"], lora_targets=lora["targets"], lora_dropout=lora["dropout"])
        need[m] = estimate_memory(arch, cfg).required_gib
    bigger = sorted((g for g in catalog.gpus() if g.memory_gib >= need["qlora"] and g.memory_gib > gpu.memory_gib), key=lambda g: g.price_per_hour)
    if bigger:
        g = bigger[0]
        out.append({"kind": "gpu", "gpu": g.name, "message": f"QLoRA needs {need['qlora']:.1f} GiB: one {g.name} ({g.memory_gib:g} GiB, ${g.price_per_hour}/h) fits it"})
    for n in (2, 4, 8, 16):
        if n <= sc.gpus:
            continue
        cfg = TrainConfig(method="lora", seq_len=sc.seq_len, batch_size=1, gradient_checkpointing=True, gpus=n, lora_rank=lora["rank"], lora_targets=lora["targets"])
        req = estimate_memory(arch, cfg).required_gib
        if req <= gpu.memory_gib:
            out.append({"kind": "gpus", "gpus": n, "message": f"LoRA with ZeRO-3/FSDP over {n}x {gpu.name} needs {req:.1f} GiB per GPU"})
            break
    same = [a for a in catalog.models() if a.family == arch.family and a.total_params() < arch.total_params()]
    for a in sorted(same, key=lambda a: -a.total_params()):
        cfg = TrainConfig(method="qlora", seq_len=sc.seq_len, batch_size=1, gradient_checkpointing=True, gpus=sc.gpus, lora_rank=min(lora["rank"], 64))
        req = estimate_memory(a, cfg).required_gib
        if req <= gpu.memory_gib:
            out.append({"kind": "model", "model": a.name, "message": f"{a.name} ({a.total_params() / 1e9:.1f}B) fits with QLoRA in {req:.1f} GiB"})
            break
    return out
