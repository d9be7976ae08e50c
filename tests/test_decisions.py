"""Decisions of ``recommend(Scenario(...))`` as tables: a scenario, and what the default rules and the
memory model make of it. Each expectation follows from a rule of configs/rules/default.yaml or from the
estimate against the card, as each id says."""

import pathlib

import pytest

from conftest import invoke, name_comparisons
from ftdecide import methods
from ftdecide.decide import rulenames
from ftdecide.files.catalog import resolve_gpu, resolve_model
from ftdecide.core.errors import InputError
from ftdecide.core.estimator import TrainConfig, estimate_memory
from ftdecide.core.policy import GLOBAL_BATCH
from ftdecide.decide.recommend import Scenario, recommend

ROOT = pathlib.Path(__file__).resolve().parent.parent

# (scenario, method, (rank, alpha) or None, precision, {method: fits}, rules that must fire)
# The decision tables hold the probe loop's sizes (the reference every fitted term was measured on): they
# test what the rules and the search decide from sizes; the trainers' own sizes have tests/test_trainers.py.
LOOP = {"trainer": "loop"}

PLANS = [
    pytest.param(
        dict(model="llama-3.1-8b", gpu="rtx-4090", dataset_size=50_000),
        "lora",
        (16, 32),
        "bf16",
        # prefix tuning trains without checkpointing (it fails with it): 8B over 2048 tokens needs 28.9 GiB
        {"full": False, "lora": True, "qlora": True, "dora": True, "ia3": True, "prefix": False, "prompt": True, "adapter": True},
        {"default-lora", "memory-wall-full"},
        id="8b-on-24gb-lora-default-shape",
    ),
    pytest.param(
        dict(model="qwen2.5-7b", gpu="a100-80gb", task="math"),
        "lora",
        (64, 128),
        "bf16",
        {"full": True, "lora": True, "qlora": True, "dora": True, "ia3": True, "prefix": True, "prompt": True, "adapter": True},
        {"math-capacity"},
        id="math-sets-rank-64",
    ),
    pytest.param(
        dict(model="qwen2.5-0.5b", gpu="h100", dataset_size=5_000_000, task="continued-pretraining", quality="best"),
        "full",
        None,
        "bf16",
        {"full": True, "lora": True, "qlora": True, "dora": True, "ia3": True, "prefix": True, "prompt": True, "adapter": True},
        {"domain-pretraining-full", "best-quality-full"},
        id="pretraining-best-quality-full",
    ),
    pytest.param(
        dict(model="llama-3.1-8b", gpu="t4", seq_len=1024),
        "qlora",
        (16, 32),
        "fp16",
        {"full": False, "lora": False, "qlora": True, "dora": False, "ia3": False, "prefix": False, "prompt": False, "adapter": False},
        {"memory-wall-lora", "no-bf16"},
        id="t4-only-qlora-fits-fp16",
    ),
    pytest.param(
        dict(model="gemma-2-9b", gpu="a100-80gb", serving="multi-tenant"),
        "lora",
        (8, 16),
        "bf16",
        {"full": True, "lora": True, "qlora": True, "dora": True, "ia3": True, "prefix": True, "prompt": True, "adapter": True},
        {"multi-tenant", "multi-tenant-rank"},
        id="multi-tenant-small-adapters-no-full",
    ),
    pytest.param(
        dict(model="llama-3.1-8b", gpu="a100-80gb", budget=100, rules=(str(ROOT / "examples" / "team-policy.yaml"),)),
        "lora",
        (16, 32),
        "bf16",
        {"full": True, "lora": True, "qlora": True, "dora": True, "ia3": True, "prefix": True, "prompt": True, "adapter": True},
        {"no-cheap-full-ft"},
        id="scenario-rules-forbid-full",
    ),
    # a few hundred examples: IA3's vectors (ia3-few-shot), never full fine-tuning (small-data-no-full)
    pytest.param(
        dict(model="llama-3.1-8b", gpu="a100-80gb", dataset_size=400, task="classification"),
        "ia3",
        None,
        "bf16",
        {"full": True, "lora": True, "qlora": True, "dora": True, "ia3": True, "prefix": True, "prompt": True, "adapter": True},
        {"ia3-few-shot", "small-data-no-full", "prefix-weak-causal"},
        id="few-shot-ia3",
    ),
    # style on a 14B model at prototype quality: soft tokens (prompt-tuning-style)
    pytest.param(
        dict(model="qwen2.5-14b", gpu="a100-80gb", task="style", quality="prototype"),
        "prompt",
        None,
        "bf16",
        {"full": False, "lora": True, "qlora": True, "dora": True, "ia3": True, "prefix": True, "prompt": True, "adapter": True},
        {"prompt-tuning-style"},
        id="style-on-14b-prompt-tuning",
    ),
    # the same on a 7B model: prompt tuning is out of scope under ~10B (prompt-tuning-scope), LoRA it is
    pytest.param(
        dict(model="qwen2.5-7b", gpu="a100-80gb", task="style", quality="prototype"),
        "lora",
        (4, 8),
        "bf16",
        {"full": True, "lora": True, "qlora": True, "dora": True, "ia3": True, "prefix": True, "prompt": True, "adapter": True},
        {"prompt-tuning-scope", "style-small-rank"},
        id="style-on-7b-lora",
    ),
]


@pytest.mark.parametrize("fields, method, shape, precision, fits, fired", PLANS)
def test_plan(fields, method, shape, precision, fits, fired):
    res = recommend(Scenario(**{**LOOP, **fields}))
    plan = res.plan
    assert plan.method == method
    assert (plan.lora.rank, plan.lora.alpha) == shape if shape else plan.lora is None
    assert plan.precision == precision
    assert {c.method: c.fits for c in res.candidates} == fits
    assert fired <= set(res.rules_fired)
    chosen = res.candidate(method)
    # the plan reaches the global batch the recommendation aims for
    assert plan.global_batch_size == GLOBAL_BATCH
    assert plan.gradient_accumulation_steps * chosen.micro_batch_size == GLOBAL_BATCH
    # every other method that fits and is not forbidden is offered, none that does not fit
    offered = {a.details["method"] for a in res.alternatives if a.kind == "method"}
    forbidden = {"full"} if fired & {"no-cheap-full-ft", "multi-tenant", "small-data-no-full"} else set()  # the rules that forbid full here
    # multi-tenant serving batches LoRA adapters only (vLLM, SGLang)
    forbidden |= {"dora", "ia3", "prompt", "prefix", "adapter"} if "multi-tenant" in fired else set()
    # prefix-weak-causal and adapter-latency always; prompt-tuning-scope where it fired
    forbidden |= {"prefix", "adapter"} | ({"prompt"} if "prompt-tuning-scope" in res.rules_fired else set())
    assert offered == {m for m, ok in fits.items() if ok and m != method} - forbidden


# (scenario, {alternative kind: what it proposes}, {method: (GPUs per node, nodes, strategy)} of the
# scale-out alternatives: the fewest GPUs of the user's kind on which each method fits)
INFEASIBLE = [
    pytest.param(
        dict(model="llama-3.1-70b", gpu="rtx-4090"),
        # ZeRO-Infinity: LoRA with the bf16 base in host memory (135 GiB of it), offered, never switched on
        {
            "offload_params": {"strategy": "zero3", "offload_optimizer": True, "offload_params": True},
            "gpu": {"gpu": "a100-80gb"},
            "model": {"model": "llama-3.1-8b"},
        },
        # full fine-tuning: 64 GPUs do not hold FSDP2's gathered 70B layers beside their shards; QLoRA: FSDP2
        # cannot shard a 4-bit base and ZeRO-3 keeps it gathered whole (measured), 46 GiB on every GPU; the
        # adapters take FSDP2, as their emitted launch holds fewer layers gathered than its probe loop did
        {"lora": (8, 2, "fsdp"), "dora": (8, 2, "zero3"), "ia3": (8, 2, "fsdp")},
        id="70b-on-4090-offered-llama-3.1-8b-not-llama-2",
    ),
    pytest.param(
        dict(model="llama-3.1-70b", gpu="l4", gpus=3),
        # no switch on these GPUs: QLoRA at 512 tokens was offered "in 19.9 GiB" (sized with auto's first
        # strategy, FSDP2, which refuses a 4-bit base); sized as a plan is, nothing fits there at 512 tokens
        {
            "offload_params": {"strategy": "zero3", "offload_optimizer": True, "offload_params": True},
            "gpu": {"gpu": "a100-80gb"},
            "model": {"model": "llama-3.1-8b"},
        },
        # DoRA: its weight norm's workspace (one layer's in x in identities, 4.4 GiB for 70B) on every GPU
        {"lora": (8, 2, "zero3"), "dora": (8, 4, "fsdp"), "ia3": (8, 2, "zero3")},
        id="bigger-gpu-is-sized-for-one-gpu-and-no-switch-that-does-not-fit-applied",
    ),
    pytest.param(
        dict(model="llama-3.1-8b", gpu_memory=10),
        {
            "offload_params": {"strategy": "zero3", "offload_optimizer": True, "offload_params": True},
            "gpu": {"gpu": "rtx-4080"},
            "model": {"model": "llama-3.2-3b"},
        },
        # QLoRA: none, its whole 4-bit base stays gathered under ZeRO-3 (measured) and FSDP2 cannot shard it
        {"full": (8, 4, "fsdp"), "lora": (8, 1, "fsdp"), "dora": (8, 1, "zero3"), "ia3": (8, 1, "fsdp")},
        id="10gib-offered-llama-3.2-3b",
    ),
]


@pytest.mark.parametrize("fields, expected, scale_out", INFEASIBLE)
def test_alternatives_when_nothing_fits(fields, expected, scale_out):
    res = recommend(Scenario(**{**LOOP, **fields}))
    assert not res.plan.feasible and res.plan.method is None
    own = [a for a in res.alternatives if a.kind != "scale_out"]
    assert {a.kind: a.details for a in own} == expected
    assert [a.kind for a in own] == list(expected)  # the cheap switches before new hardware
    more = {
        a.details["method"]: (a.details["gpus"], a.details["nodes"], a.details["strategy"])
        for a in res.alternatives
        if a.kind == "scale_out"
    }
    assert more == scale_out
    assert res.warnings[-1].rule == "feasibility"


def test_scale_out_fits_what_it_says_and_no_fewer_gpus_do():
    """LoRA of Llama-3.1-70B on RTX 4090s: 2 nodes of 8 fit (FSDP2), one node of 8 does not with any
    strategy. QLoRA has no scale-out on 24 GB cards: FSDP1 shards the 4-bit base, but rank 0 starts training with the
    whole 4-bit model on its GPU (transformers 5.17, measured), more than the card at any count, unless the parameters
    are offloaded and the base loaded in host memory (a switch, not a scale-out); FSDP2 cannot shard it (measured) and
    ZeRO-3 keeps it gathered whole (measured); 2 GPUs do not hold it with any strategy as asked."""
    from ftdecide.core import policy
    from ftdecide.decide import sizing

    res = recommend(Scenario(model="llama-3.1-70b", gpu="rtx-4090"))
    (alt,) = [a for a in res.alternatives if a.kind == "scale_out" and a.details["method"] == "lora"]
    assert (alt.details["gpus"], alt.details["nodes"], alt.details["strategy"]) == (8, 2, "fsdp")
    assert not [a for a in res.alternatives if a.kind == "scale_out" and a.details["method"] == "qlora"]
    gpu, lora = res.gpu, policy.DEFAULT_LORA
    usable = sizing.usable(gpu, 0.05)
    assert alt.details["required_gib"] <= usable
    whole = estimate_memory(res.arch, TrainConfig(method="qlora", trainer="trl")).breakdown["weights"]
    fsdp1 = estimate_memory(res.arch, TrainConfig(method="qlora", trainer="trl", strategy="fsdp1", gpus=8, nodes=8))
    assert usable < whole < fsdp1.peak_allocated_gib and fsdp1.peak_phase == "startup"
    offloaded = estimate_memory(
        res.arch, TrainConfig(method="qlora", trainer="trl", strategy="fsdp1", gpus=8, nodes=8, offload_params=True)
    )
    assert offloaded.required_gib <= usable and offloaded.peak_phase != "startup"
    for method, gpus, nodes in (("lora", 8, 1), ("qlora", 2, 1)):
        for strategy in sizing.AUTO_ORDER:
            scenario = Scenario(model="llama-3.1-70b", gpu="rtx-4090", gpus=gpus, nodes=nodes)
            cfg = sizing.train_config(scenario, methods.get(method), lora, strategy=strategy)
            assert cfg.run_problem() is not None or estimate_memory(res.arch, cfg).required_gib > usable, (method, strategy)
    assert alt.message.startswith("LoRA: 16x rtx-4090 (2 nodes), FSDP2, ") and f"${alt.details['cost_usd']:,.0f}" in alt.message


def test_bigger_gpu_alternative_fits_what_it_says():
    """The proposed card holds QLoRA of the model on one GPU (micro-batch 1, checkpointing), and no
    cheaper card of the catalog that is larger than the user's does."""
    res = recommend(Scenario(model="llama-3.1-70b", gpu="rtx-4090"))
    alt = next(a for a in res.alternatives if a.kind == "gpu")
    need = estimate_memory(
        resolve_model("llama-3.1-70b"), TrainConfig(method="qlora", gpus=1, trainer="trl", gradient_accumulation=16)
    ).required_gib
    gpu = resolve_gpu(alt.details["gpu"])
    assert gpu.memory_gib >= need
    assert alt.message == (f"QLoRA needs {need:.1f} GiB: one {gpu.name} ({gpu.memory_gib:g} GiB, ${gpu.price_per_hour}/h) fits it")


def test_smaller_model_is_the_same_generation():
    """Same model_type and vocabulary: every Llama offered to a Llama-3.1 user has Llama 3's tokenizer."""
    for fields in ({"model": "llama-3.1-70b", "gpu": "rtx-4090"}, {"model": "llama-3.1-8b", "gpu_memory": 10}):
        res = recommend(Scenario(**{**LOOP, **fields}))
        (alt,) = [a for a in res.alternatives if a.kind == "model"]
        assert resolve_model(alt.details["model"]).vocab_size == res.arch.vocab_size == 128_256


def test_rule_names_schema_and_values_come_from_one_table():
    """Every name a rule may read has a value of its declared type, for every method of the registry."""
    res = recommend(Scenario(model="llama-3.1-8b", gpu="rtx-4090"))
    levers = {lever: {m: 20.5 for m in methods.names()} for lever in rulenames.LEVERS}
    facts = rulenames.Facts(res.scenario, res.arch, res.gpu, {c.method: c for c in res.candidates}, res.plan.epochs, levers)
    env = rulenames.environment(facts)
    schema = rulenames.schema()
    assert set(env) == set(schema)
    py = {"bool": bool, "number": (int, float), "string": str}
    for name, kind in schema.items():
        assert isinstance(env[name], py[kind]) and (kind == "bool" or not isinstance(env[name], bool)), name
    for m in methods.names():
        assert {f"fits.{m}", f"memory.{m}", f"cost.{m}", f"time.{m}", f"fits_liger.{m}", f"memory_offload.{m}"} <= set(schema)
    assert env["fits_liger.lora"] is (20.5 <= res.gpu.memory_gib) and env["memory_liger.lora"] == 20.5


def test_no_module_outside_the_registry_compares_a_method_name():
    """A method is asked, never tested by name: no comparison against a method or variant name
    outside src/ftdecide/methods/."""
    names = set(methods.names()) | set(methods.variants())
    assert name_comparisons(names, skip=lambda path: "methods" in path.parts) == []


def test_registry_order_and_lookup():
    assert methods.names() == ("full", "lora", "qlora", "dora", "ia3", "prefix", "prompt", "adapter")
    assert methods.from_variant("full_mixed") == (methods.get("full"), "mixed")
    assert set(methods.variants()) == {"full_bf16", "full_mixed", "lora", "qlora", "dora", "ia3", "prefix", "prompt", "adapter"}
    with pytest.raises(KeyError):
        methods.get("houlsby")


def test_lora_shape_the_model_lacks_is_an_input_error_with_its_message():
    with pytest.raises(InputError) as e:
        estimate_memory(resolve_model("llama-3.1-8b"), TrainConfig(lora_targets="w_proj"))
    assert e.value.message.startswith("LoRA target(s) 'w_proj' not in llama-3.1-8b; its linear modules are q_proj,")
    with pytest.raises(InputError, match="LoRA rank 8192 exceeds the smallest targeted layer dimension"):
        estimate_memory(resolve_model("llama-3.1-8b"), TrainConfig(lora_rank=8192))


def test_scenario_file_rules_are_applied_relative_to_the_file(tmp_path):
    """A 'rules:' key in a --scenario file is honoured (it was silently dropped), relative to the file."""
    (tmp_path / "policy").mkdir()
    (tmp_path / "policy" / "team.yaml").write_text(
        "version: 1\nrules:\n  - id: always-qlora\n    when: true\n    priority: 500\n    prefer: qlora\n    note: team prefers QLoRA\n"
    )
    sc = tmp_path / "sc.yaml"
    sc.write_text("model: llama-3.1-8b\ngpu: a100-80gb\nrules: policy/team.yaml\n")
    r = invoke(["recommend", "--scenario", str(sc), "--format", "json"])
    assert r.exit_code == 0, r.output
    import json

    doc = json.loads(r.stdout)
    assert doc["recommendation"]["method"] == "qlora" and "always-qlora" in doc["rules_fired"]
    assert "rules" not in doc["scenario"]
    batch = tmp_path / "b.yaml"
    batch.write_text("defaults: {rules: [policy/team.yaml]}\nscenarios:\n  - {name: a, model: llama-3.1-8b, gpu: a100-80gb}\n")
    r = invoke(["batch", str(batch), "--format", "csv"])
    assert r.exit_code == 0, r.output
    assert r.stdout.splitlines()[1].startswith("a,llama-3.1-8b,a100-80gb,1,true,qlora,")


def test_scenario_file_rules_missing_names_the_file(tmp_path):
    sc = tmp_path / "sc.yaml"
    sc.write_text("model: llama-3.1-8b\nrules: [nope.yaml]\n")
    r = invoke(["recommend", "--scenario", str(sc)])
    assert r.exit_code == 2 and r.stdout == ""
    assert r.stderr == f"ftdecide: error: {tmp_path / 'nope.yaml'}: no such file\n"


def test_a_bug_is_not_blamed_on_the_input(monkeypatch):
    """Any exception that is not an InputError is ftdecide's: exit 70, one line naming it and a request
    to report it, no traceback."""

    def boom(*a, **k):
        raise ValueError("bad internal state")

    monkeypatch.setattr("ftdecide.decide.recommend.recommend", boom)
    monkeypatch.delenv("FTDECIDE_TRACEBACK", raising=False)
    r = invoke(["recommend", "--model", "llama-3.1-8b"])
    assert r.exit_code == 70 and r.stdout == ""
    lines = r.stderr.splitlines()
    assert lines[0] == "ftdecide: error: internal error: ValueError: bad internal state"
    assert "please report it" in lines[1] and len(lines) == 2 and "Traceback" not in r.stderr


def test_cheap_switches_lower_rank_and_8bit_optimizer():
    """On a card between what QLoRA needs at rank 8 and at rank 64 (computed, not assumed), the rank is
    offered; the 8-bit optimizer only where it makes a method fit."""
    from dataclasses import replace as dc_replace

    from ftdecide.decide import alternatives
    from ftdecide.core import calibration
    from ftdecide.files.catalog import custom_gpu
    from ftdecide.core.policy import DEFAULT_LORA

    arch = resolve_model("llama-3.1-8b")
    sc = Scenario(model="llama-3.1-8b")
    big = dc_replace(DEFAULT_LORA, rank=512, alpha=1024)
    need = {r: estimate_memory(arch, TrainConfig(method="qlora", lora_rank=r)).required_gib for r in (8, 512)}
    gpu = custom_gpu((need[8] + need[512]) / 2)
    switches = alternatives._cheap_switches(arch, gpu, sc, big, calibration.DEFAULT, 0.0)  # no margin: the card is sized between the two
    kinds = {a.kind: a.details for a in switches}
    assert kinds["rank"] == {"rank": 8}
    with_8bit = estimate_memory(arch, TrainConfig(method="qlora", lora_rank=512, optimizer="adamw8bit")).required_gib
    assert ("optimizer" in kinds) == (with_8bit <= gpu.memory_gib)


def test_fit_and_recommend_agree_on_micro_batch_or_say_why():
    r = invoke(["fit", "--model", "qwen2.5-0.5b", "--gpu", "h100"])
    assert r.exit_code == 0 and "recommend takes at most micro-batch 16" in r.stdout
