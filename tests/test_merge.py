"""``ftdecide merge`` (issue 30, merging): adapters read from their config and safetensors header, checked,
advised, and emitted as a mergekit config and a peft script. Refusals, one per cause."""

from __future__ import annotations

import ast
import json
import os
import struct

import pytest
import yaml

from conftest import invoke

BASE = "meta-llama/Llama-3.1-8B"


def adapter(d, base=BASE, r=16, mods=("q_proj", "v_proj"), dims=(4096, 4096), dora=False, peft_type="LORA", header_lie=0, experts=0):
    """A peft adapter folder: its config and a safetensors file whose header states the LoRA shapes (zeros after).
    ``experts``: also a MoE's fused experts as peft's ParamWrapper saves them (Qwen3-30B-A3B's widths: every
    expert's factors stacked, rank x experts rows; gate_up_proj nested as "base_layer")."""
    os.makedirs(d, exist_ok=True)
    cfg = {
        "base_model_name_or_path": base,
        "peft_type": peft_type,
        "r": r,
        "lora_alpha": 2 * r,
        "target_modules": list(mods),
        "use_dora": dora,
    }
    (d / "adapter_config.json").write_text(json.dumps(cfg))
    header, off = {}, 0

    def put(key: str, shape: list) -> None:
        nonlocal off
        n = shape[0] * shape[1] * 2
        header[f"base_model.model.model.layers.0.{key}.weight"] = {"dtype": "BF16", "shape": shape, "data_offsets": [off, off + n]}
        off += n

    for m in mods:
        put(f"self_attn.{m}.lora_A", [r, dims[0]])
        put(f"self_attn.{m}.lora_B", [dims[1], r])
    if experts:
        put("mlp.experts.base_layer.lora_A", [2 * r * experts, 2048])
        put("mlp.experts.base_layer.lora_B", [1536, 2 * r * experts])
        put("mlp.experts.lora_A", [r * experts, 768])
        put("mlp.experts.lora_B", [2048, r * experts])
    h = json.dumps(header).encode()
    with open(d / "adapter_model.safetensors", "wb") as f:
        f.write(struct.pack("<Q", len(h) + header_lie))
        f.write(h)
        f.write(b"\0" * off)
    return str(d)


def doc(*args):
    r = invoke(["merge", *args, "--format", "json"])
    assert r.exit_code == 0, r.output
    return json.loads(r.stdout)


def test_two_adapters_merge_by_task_arithmetic_with_their_weights(tmp_path):
    a, b = adapter(tmp_path / "code"), adapter(tmp_path / "chat", r=8)
    d = doc(f"{a}=0.6", f"{b}=0.4")
    assert d["method"] == "task_arithmetic" and d["peft_combination"] == "cat" and d["merged_rank"] == 24
    assert [x["weight"] for x in d["adapters"]] == [0.6, 0.4] and [x["rank"] for x in d["adapters"]] == [16, 8]
    # the bf16 base of Llama-3.1-8B, loaded once: 2 B a parameter
    assert d["resources"]["memory_gib"] == pytest.approx(8_030_261_248 * 2 / 2**30, abs=0.01)
    assert any("side by side" in x for x in d["advice"])
    # equal shares without weights
    assert [x["weight"] for x in doc(a, b)["adapters"]] == [0.5, 0.5]


def test_the_mergekit_config_and_the_peft_script(tmp_path):
    a, b = adapter(tmp_path / "code"), adapter(tmp_path / "chat")
    cfg = yaml.safe_load(invoke(["merge", f"{a}=0.7", f"{b}=0.3", "--method", "ties", "--density", "0.4", "--emit", "mergekit"]).stdout)
    assert cfg["merge_method"] == "ties" and cfg["base_model"] == BASE and cfg["dtype"] == "bfloat16"
    assert cfg["models"] == [
        {"model": f"{BASE}+{a}", "parameters": {"weight": 0.7, "density": 0.4}},
        {"model": f"{BASE}+{b}", "parameters": {"weight": 0.3, "density": 0.4}},
    ]
    script = invoke(["merge", a, b, "--emit", "peft"]).stdout
    tree = ast.parse(script)  # valid Python
    call = next(n for n in ast.walk(tree) if isinstance(n, ast.Call) and getattr(n.func, "attr", "") == "add_weighted_adapter")
    kw = {k.arg: ast.literal_eval(k.value) for k in call.keywords}
    assert kw == {"adapters": ["task0", "task1"], "weights": [0.5, 0.5], "adapter_name": "merged", "combination_type": "cat"}


@pytest.mark.parametrize(
    "make, args, phrase",
    [
        pytest.param(
            lambda t: [adapter(t / "a"), adapter(t / "b", base="Qwen/Qwen2.5-7B")], [], "adapters of another base", id="another-base"
        ),
        pytest.param(lambda t: [adapter(t / "a"), adapter(t / "b", dims=(2048, 2048))], [], "not the same architecture", id="shapes"),
        pytest.param(lambda t: [adapter(t / "a"), adapter(t / "b", peft_type="PROMPT_TUNING")], [], "cannot merge", id="soft-prompt"),
        pytest.param(lambda t: [adapter(t / "a"), adapter(t / "b", peft_type="LOHA")], [], "not one ftdecide plans", id="unknown-type"),
        pytest.param(lambda t: [adapter(t / "a"), adapter(t / "b", header_lie=10**9)], [], "the header says", id="header-lies"),
        pytest.param(lambda t: [adapter(t / "a"), str(t / "missing")], [], "no such adapter", id="missing"),
        pytest.param(lambda t: [adapter(t / "a")], [], "two adapters or more", id="one"),
        pytest.param(lambda t: [adapter(t / "a") + "=-1", adapter(t / "b") + "=2"], [], "positive number", id="negative-weight"),
        pytest.param(lambda t: [adapter(t / "a") + "=nan", adapter(t / "b") + "=2"], [], "positive number", id="nan-weight"),
        pytest.param(lambda t: [adapter(t / "a") + "=1", adapter(t / "b")], [], "to every adapter", id="some-weights"),
        pytest.param(lambda t: [adapter(t / "a"), adapter(t / "b")], ["--method", "slerp"], "unknown merge method", id="method"),
        pytest.param(lambda t: [adapter(t / "a"), adapter(t / "b")], ["--density", "0.5"], "--density is for", id="density-unused"),
        pytest.param(
            lambda t: [adapter(t / "a"), adapter(t / "b", r=8)], ["--method", "ties", "--emit", "peft"], "same rank", id="peft-ranks"
        ),
        pytest.param(lambda t: [adapter(t / "a", dora=True), adapter(t / "b", dora=True)], ["--emit", "peft"], "DoRA", id="peft-dora"),
        pytest.param(
            lambda t: [adapter(t / "a", base="Qwen/Qwen3-30B-A3B", experts=128), adapter(t / "b", base="Qwen/Qwen3-30B-A3B", experts=128)],
            ["--emit", "peft"],
            "fused experts",
            id="peft-fused-experts",
        ),
    ],
)
def test_each_refusal_is_one_line_and_exit_2(tmp_path, make, args, phrase):
    r = invoke(["merge", *make(tmp_path), *args])
    assert r.exit_code == 2 and phrase in r.stderr, r.output
    assert len(r.stderr.strip().splitlines()) == 1


def test_adapters_on_fused_experts_merge_through_mergekit(tmp_path):
    """Their stacked factors (rank x 128 experts rows) are read as the experts', not as a rank that disagrees
    with the config; peft's add_weighted_adapter refuses nn.Parameter targets (measured, peft 0.21), so the
    peft script is refused and mergekit, which merges each adapter into its base first, is the way."""
    a, b = (adapter(tmp_path / n, base="Qwen/Qwen3-30B-A3B", experts=128) for n in ("a", "b"))
    d = doc(a, b)
    assert d["merged_rank"] == 32 and any("fused experts" in w for w in d["warnings"])
    assert "merge_method: task_arithmetic" in invoke(["merge", a, b, "--emit", "mergekit"]).stdout


def test_a_recommendation_document_stands_for_its_adapter(tmp_path):
    plans = []
    for task in ("code", "chat"):
        out = invoke(["recommend", "--model", "llama-3.1-8b", "--gpu", "h100", "--task", task, "--format", "json"])
        p = tmp_path / f"{task}.json"
        p.write_text(out.stdout)
        plans.append(str(p))
    d = doc(*plans)
    assert [x["task"] for x in d["adapters"]] == ["code", "chat"] and [x["rank"] for x in d["adapters"]] == [32, 16]
    assert any("multi-task" in x for x in d["advice"])


def test_lora_and_qlora_plans_merge_but_lora_and_ia3_do_not(tmp_path):
    def plan(name, *args):
        p = tmp_path / f"{name}.json"
        p.write_text(invoke(["recommend", "--model", "llama-3.1-8b", *args, "--format", "json"]).stdout)
        return str(p)

    lora, qlora = plan("lora", "--gpu", "h100"), plan("qlora", "--gpu", "t4", "--seq-len", "1024")
    assert [a["method"] for a in doc(lora, qlora)["adapters"]] == ["lora", "qlora"]
    ia3 = plan("ia3", "--gpu", "a100-80gb", "--dataset-size", "400", "--task", "classification")
    r = invoke(["merge", lora, ia3])
    assert r.exit_code == 2 and "different methods" in r.stderr
