"""What a plan says beyond its memory and cost: how to tell whether the fine-tune worked (the evaluation
plan and its held-out set) and how to ship it (the deployment note)."""

from __future__ import annotations


from .. import methods
from ..core.arch import Arch
from ..core.policy import (
    GLOBAL_BATCH,
)
from .results import (
    Candidate,
    Deployment,
    Evaluation,
)

from .scenario import Scenario

# Forgetting signals of the seeds' evaluation recipe (shared/seeds/000): a general-text perplexity rise
# above 10%, or a general benchmark falling by more than 2-3 points.
PERPLEXITY_RISE_MAX = 0.10
BENCHMARK_DROP_MAX_POINTS = 2.0
# Held-out split: 5% of the data, at least 200 examples for a stable metric, at most 2000, never more
# than a fifth of the data.
HELD_OUT_SHARE, HELD_OUT_MIN, HELD_OUT_MAX, HELD_OUT_MAX_SHARE = 0.05, 200, 2000, 5

_TASK_METRIC = {
    "classification": "accuracy / macro-F1",
    "code": "pass@1 on held-out problems with tests",
    "math": "exact-match accuracy of final answers",
    "style": "pairwise preference (human or LLM judge) against the base model",
}


def evaluation_plan(sc: Scenario, method: methods.Method, global_batch: int = GLOBAL_BATCH) -> Evaluation:
    """How to tell whether the fine-tune worked and what it cost in general ability. The held-out set
    never takes so much that training is left without one full step (``global_batch`` examples): with
    fewer examples than that, nothing is held out (a warning says so)."""
    held_out = min(max(HELD_OUT_MIN, round(HELD_OUT_SHARE * sc.dataset_size)), HELD_OUT_MAX, max(1, sc.dataset_size // HELD_OUT_MAX_SHARE))
    held_out = max(0, min(held_out, sc.dataset_size - global_batch))
    return Evaluation(
        held_out_examples=held_out,
        task_metric=_TASK_METRIC.get(sc.task, "task metric (exact match, ROUGE or LLM-judge win rate) against the base model"),
        regression_check=(
            f"general-capability check before and after: perplexity on general text rising by more than {PERPLEXITY_RISE_MAX:.0%}, "
            f"or a general benchmark (e.g. MMLU, HellaSwag) dropping by more than {BENCHMARK_DROP_MAX_POINTS:g}-3 points, "
            "signals forgetting"
        ),
        perplexity_rise_max=PERPLEXITY_RISE_MAX,
        benchmark_drop_max_points=BENCHMARK_DROP_MAX_POINTS,
        if_forgetting="lower the learning rate or epochs, mix in general data, or use a lower LoRA rank"
        if method.adapter
        else "lower the learning rate or epochs, or mix in general data (full fine-tuning forgets most)",
    )


def deployment_note(arch: Arch, sc: Scenario, method: methods.Method, chosen: Candidate) -> Deployment:
    """How to serve the result; sizes on disk in MB (10^6 bytes)."""
    if method.trains_base:
        size = arch.total_params() * 2 / 1e6
        return Deployment(
            "full model",
            f"the fine-tuned weights replace the base model: {size / 1e3:,.1f} GB in bf16 per task; serve it like the base",
            size_mb=round(size, 1),
        )
    adapter_mb = chosen.trainable_params * 4 / 1e6  # peft saves the fp32 adapter weights
    if not method.mergeable:
        advice = (
            f"serve through peft (PeftModel.from_pretrained): the {method.label} tokens cannot be merged into the weights; "
            "they lengthen every sequence a little, and many tasks can share one base model"
        )
        return Deployment(
            f"{method.label} adapter", advice, adapter_size_mb=round(adapter_mb, 3), adapter_size_mb_bf16=round(adapter_mb / 2, 3)
        )
    if sc.serving == "multi-tenant":
        advice = "keep adapters unmerged and serve many of them over one base model (vLLM / LoRAX multi-LoRA); each adapter is small"
    else:
        advice = "merge the adapter into the base weights (merge_and_unload) for single-model serving: no extra latency"
        if method.quantized_base:
            advice += "; merge into the bf16 base, not the 4-bit one, then quantize again if needed"
    return Deployment(
        f"{method.label} adapter", advice, adapter_size_mb=round(adapter_mb, 1), adapter_size_mb_bf16=round(adapter_mb / 2, 1)
    )
