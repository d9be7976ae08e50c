"""Many task variants (issue 30, first part): seed 001's five variants of a 13B model, trained and served for a
year, from ``recommend --variants 5``. The prices: the seed's $8.00 a GPU-hour (--price-per-hour 8),
storage at the catalog's $0.023 per GB-month (S3 Standard), 730 hours a month, always on."""

from __future__ import annotations

import math

import pytest

from conftest import invoke, recommend_doc as doc
from ftdecide.files.catalog import resolve_gpu, resolve_model, serving_prices

# an H200, where full fine-tuning of 13B fits one card as LoRA does (on an A100 80GB it does not), at the seed's $8
ARGS = ("--model", "llama-2-13b", "--gpu", "h200", "--variants", "5", "--price-per-hour", "8")


def test_seed_001_five_variants_of_a_13b_model():
    d = doc(*ARGS)
    c = {x["method"]: x for x in d["candidates"]}
    full, lora = c["full"]["deployment"], c["lora"]["deployment"]
    p = resolve_model("llama-2-13b").total_params()
    # storage: five bf16 checkpoints against one base and five fp32 adapters (GB = 1e9 B)
    assert full["storage_gb"] == round(5 * 2 * p / 1e9, 3)
    assert lora["storage_gb"] == round((2 * p + 5 * 4 * c["lora"]["trainable_params"]) / 1e9, 3)
    # serving: one model per variant against one base holding every adapter, about five times the memory
    assert full["instances"] == 5 and lora["instances"] == 1
    ratio = full["instances"] * full["serving_gib_per_instance"] / (lora["instances"] * lora["serving_gib_per_instance"])
    assert 4.5 < ratio < 5.0
    # 28 GiB models, four to an H200's 126.4 usable GiB (90% of 140.4): five take two GPUs; the base and its adapters one
    usable = resolve_gpu("h200").memory_gib * 0.9
    per_gpu = int(usable // full["serving_gib_per_instance"])
    assert per_gpu == 4 and full["serving_gpus"] == math.ceil(5 / per_gpu) == 2 and lora["serving_gpus"] == 1
    assert full["monthly_serving_usd"] == pytest.approx(2 * 8 * 730) and lora["monthly_serving_usd"] == pytest.approx(8 * 730)
    assert lora["monthly_storage_usd"] == pytest.approx(lora["storage_gb"] * 0.023, abs=0.01)
    # switching: a whole checkpoint read at 2 GB/s against one adapter, near instant
    assert full["switch_seconds"] == pytest.approx(2 * p / 2e9, rel=1e-3) and lora["switch_seconds"] < 0.2
    # training: five runs each
    assert full["training_usd"] == pytest.approx(5 * c["full"]["cost_usd"], abs=0.05)
    # the first year ranks LoRA first, as the seed does, and the plan says so
    assert lora["total_usd"] < full["total_usd"]
    assert lora["total_usd"] == pytest.approx(
        lora["training_usd"] + 12 * (lora["monthly_serving_usd"] + lora["monthly_storage_usd"]), abs=0.05
    )
    assert d["recommendation"]["method"] == "lora" and "variants-first-year" in d["rules_fired"]
    reason = next(r["message"] for r in d["recommendation"]["reasons"] if r["rule"] == "variants-first-year")
    assert f"${round(lora['total_usd']):,}" in reason and f"${round(full['total_usd']):,}" in reason


def test_the_prices_have_their_sources():
    s = serving_prices()
    assert s["storage"]["usd_per_gb_month"] == 0.023 and "S3" in s["storage"]["source"]
    assert s["serving"]["hours_per_month"] == 730 and s["serving"]["gpu_memory_utilization"] == 0.9
    assert all(k.endswith("source") or isinstance(v, (int, float)) for part in s.values() for k, v in part.items())


def test_one_variant_keeps_the_table_as_it_was_and_the_json_carries_the_deployment():
    d = doc("--model", "llama-3.1-8b", "--gpu", "a100-80gb")
    assert all(x["deployment"]["variants"] == 1 for x in d["candidates"]) and "variants-first-year" not in d["rules_fired"]


def test_a_model_too_big_for_one_serving_gpu_takes_a_power_of_two():
    d = doc("--model", "llama-3.1-70b", "--gpu", "a100-80gb", "--gpus", "8", "--variants", "2", "--serve-gpu", "l40s")
    lora = next(x for x in d["candidates"] if x["method"] == "lora")["deployment"]
    need = lora["serving_gib_per_instance"] / (resolve_gpu("l40s").memory_gib * 0.9)  # an L40S at the engine's 90%
    assert lora["gpus_per_instance"] == 2 ** math.ceil(math.log2(need)) and lora["gpus_per_instance"] >= 4


def test_task_sizes_train_each_variant_on_its_own_examples_and_price_one_multi_task_run():
    d = doc("--model", "llama-2-13b", "--gpu", "h200", "--task-sizes", "code=20000,chat=5000", "--dataset-size", "10000")
    assert d["scenario"]["variants"] == 2 and d["scenario"]["task_sizes"] == {"code": 20000, "chat": 5000}
    for c in d["candidates"]:
        dep = c["deployment"]
        # the cost is per example: each task's run on its examples, and one run over all 25,000 cost the same
        assert dep["training_usd"] == pytest.approx(c["cost_usd"] * 25_000 / 10_000, abs=0.05)
        assert dep["multi_task"]["training_usd"] == dep["training_usd"] and dep["multi_task"]["instances"] == 1
        assert dep["multi_task"]["storage_gb"] <= dep["storage_gb"]
    full = d["candidates"][0]["deployment"]
    assert full["instances"] == 2 and full["multi_task"]["served"] == "one model"


def test_task_sizes_and_variants_that_disagree_are_refused():
    r = invoke(["recommend", "--model", "llama-2-13b", "--task-sizes", "code=20000,chat=5000", "--variants", "3"])
    assert r.exit_code == 2 and "variants 3 disagrees with the 2 tasks" in r.stderr


def _serving_records():
    import json
    import pathlib

    folder = pathlib.Path(__file__).resolve().parent.parent / "data" / "serving"
    return [json.loads(x) for f in sorted(folder.glob("*.jsonl")) for x in f.read_text().splitlines() if x.strip()]


def _serving_id(r: dict) -> str:
    return f"{r['device'][:3]}-{r['model']}-{r['adapters']}-{r['adapter_dtype'].split('.')[-1]}"


@pytest.mark.parametrize("rec", _serving_records(), ids=_serving_id)
def test_the_serving_memory_is_what_peft_holds(rec):
    """benchmarks/serve_memory.py's counts (a base with N LoRA adapters loaded through peft, and the KV cache of
    one prefill): the plan's serving memory, less the CUDA context and its prefill pass, equals them with bf16
    adapters (exactly where the tensors were counted on the CPU, to the allocator's rounding on a GPU), and falls
    short by one more copy of the adapters where peft upcasts them to fp32 (its default). On the GPU, the peak of
    the prefill (all of its tokens in one pass) is what is held plus the prefill's activations, within 1%, with
    bf16 adapters; fp32 adapters cast every adapted input to fp32 and peak higher."""
    from ftdecide.decide.deploy import prefill_bytes, prefill_tokens
    from ftdecide.decide.recommend import recommend
    from ftdecide.decide.scenario import Scenario

    sc = Scenario(
        model=rec["model"], gpu="h100", task="chat", variants=rec["adapters"], serve_context=rec["context"], concurrency=rec["concurrency"]
    )
    res = recommend(sc)
    arch = resolve_model(rec["model"])
    lora = res.candidate("lora")
    assert lora.estimate.trainable_params * rec["adapters"] == rec["adapter_params"]
    tokens = rec["context"] * rec["concurrency"]
    pass_tokens = min(tokens, prefill_tokens(resolve_gpu("h100"), serving_prices()))
    assert pass_tokens == min(tokens, 8192)  # vLLM's default on an H100
    tensors = lora.deployment.serving_gib - 0.75 - prefill_bytes(arch, pass_tokens) / 2**30  # the CUDA context is not a tensor
    held = rec["loaded_gib"] + rec["kv_gib"]
    extra = rec["adapters_gib"] / 2 if rec["adapter_dtype"] == "torch.float32" else 0.0
    on_cpu = rec["prefill_peak_gib"] is None
    assert tensors + extra == pytest.approx(held, abs=1e-6 if on_cpu else 0.005)
    if not on_cpu:
        peak = held + prefill_bytes(arch, tokens) / 2**30
        if rec["adapter_dtype"] == "torch.bfloat16":
            assert peak == pytest.approx(rec["prefill_peak_gib"], rel=0.01)
        else:
            assert rec["prefill_peak_gib"] > peak * 1.1


@pytest.mark.parametrize(
    "method, served",
    [
        pytest.param("full", "one model per variant", id="full"),
        pytest.param("lora", "one base, every adapter batched (vLLM, SGLang)", id="lora"),
        pytest.param("qlora", "one base, every adapter batched (vLLM, SGLang)", id="qlora"),
        pytest.param("dora", "one model per variant, served merged (no engine batches DoRA)", id="dora"),
        pytest.param("ia3", "one model per variant, served merged (no engine batches IA3)", id="ia3"),
        pytest.param("prompt", "one model per variant, through peft (prompt tuning cannot be merged)", id="prompt"),
        pytest.param("adapter", "one model per variant, through peft (Houlsby adapters cannot be merged)", id="houlsby"),
    ],
)
def test_each_method_says_how_its_variants_are_served(method, served):
    """vLLM and SGLang batch plain LoRA adapters over one base; nothing batches the rest: each variant is its own
    model, merged where the method merges, through peft where it cannot."""
    d = doc("--model", "llama-2-13b", "--gpu", "h200", "--variants", "5")
    (c,) = [c for c in d["candidates"] if c["method"] == method]
    assert c["deployment"]["served"] == served
