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
    # mergekit's disk: the 16.06 GB base read three times (base, and each adapter merged into it) and written once, at 2 GB/s
    assert d["resources"]["mergekit_disk_seconds"] == pytest.approx(4 * 16.06 / 2.0, abs=0.1)
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


# A real merge (needs torch, transformers and peft: the optional extras; CI skips it): two random LoRA
# adapters of a tiny random Llama, merged by the script `ftdecide merge --emit peft` writes, run as a user runs it.
def _tiny_base_and_adapters(tmp_path, ranks=(4, 8)):
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM, LlamaConfig

    cfg = LlamaConfig(
        hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2, vocab_size=128
    )
    torch.manual_seed(0)
    base = AutoModelForCausalLM.from_config(cfg, dtype=torch.bfloat16)
    base.save_pretrained(tmp_path / "base")
    # loaded from its folder as a user's base is, so that each adapter names it (base_model_name_or_path)
    base = AutoModelForCausalLM.from_pretrained(tmp_path / "base", dtype=torch.bfloat16)
    paths = []
    for i, r in enumerate(ranks):
        m = get_peft_model(base, LoraConfig(r=r, lora_alpha=2 * r, target_modules=["q_proj", "v_proj", "down_proj"], task_type="CAUSAL_LM"))
        for name, p in m.named_parameters():
            if "lora_B" in name:  # peft starts B at zero: give each adapter an update of its own
                torch.nn.init.normal_(p, std=0.05)
        m.save_pretrained(tmp_path / f"task{i}")
        base = m.unload()
        paths.append(tmp_path / f"task{i}")
    return paths


def _deltas(folder) -> dict:
    """{module: scaling x B @ A} of a saved LoRA adapter (fp32)."""
    import json as _json

    from safetensors.torch import load_file

    cfg = _json.loads((folder / "adapter_config.json").read_text())
    w = load_file(str(folder / "adapter_model.safetensors"))
    scale = cfg["lora_alpha"] / cfg["r"]
    out = {}
    for k, a in w.items():
        if "lora_A" in k:
            b = w[k.replace("lora_A", "lora_B")]
            out[k.replace(".lora_A.weight", "")] = scale * b.float() @ a.float()
    return out


def test_the_emitted_peft_script_merges_two_adapters_into_their_weighted_sum(tmp_path):
    pytest.importorskip("torch")
    pytest.importorskip("transformers")
    pytest.importorskip("peft")
    import subprocess
    import sys

    import torch

    a, b = _tiny_base_and_adapters(tmp_path)
    script = tmp_path / "merge.py"
    r = invoke(["merge", f"{a}=0.7", f"{b}=0.3", "--emit", "peft", "--out", str(script)])
    assert r.exit_code == 0, r.stderr
    p = subprocess.run([sys.executable, str(script), str(tmp_path / "out")], capture_output=True, text=True, timeout=300)
    assert p.returncode == 0, p.stderr[-2000:]
    merged = tmp_path / "out" / "merged"
    da, db, dm = _deltas(a), _deltas(b), _deltas(merged)
    assert set(dm) == set(da) == set(db) and len(dm) == 2 * 3  # 2 layers x q, v, down
    for k in dm:
        # task arithmetic: peft's "cat" stacks the factors (rank 4 + 8 = 12), so the update is the exact sum
        assert torch.allclose(dm[k], 0.7 * da[k] + 0.3 * db[k], atol=2e-3, rtol=2e-2), k
    # and the merged adapter loads over its base as any adapter does
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    model = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(tmp_path / "base"), merged)
    assert model.peft_config["default"].r == 12


@pytest.mark.parametrize("method", ["linear", "ties", "dare_linear"])
def test_the_emitted_peft_script_runs_the_other_methods_and_they_are_not_the_sum(tmp_path, method):
    """What the advice says of them, run: each merges two equal-rank adapters into one of that rank, and none
    is the weighted sum of the updates (peft's linear averages A and B apart; ties and dare trim)."""
    pytest.importorskip("torch")
    pytest.importorskip("transformers")
    pytest.importorskip("peft")
    import subprocess
    import sys

    import torch

    a, b = _tiny_base_and_adapters(tmp_path, ranks=(8, 8))
    script = tmp_path / "merge.py"
    r = invoke(["merge", f"{a}=0.5", f"{b}=0.5", "--method", method, "--emit", "peft", "--out", str(script)])
    assert r.exit_code == 0, r.stderr
    p = subprocess.run([sys.executable, str(script), str(tmp_path / "out")], capture_output=True, text=True, timeout=300)
    assert p.returncode == 0, p.stderr[-2000:]
    da, db, dm = _deltas(a), _deltas(b), _deltas(tmp_path / "out" / "merged")
    off = max(float((dm[k] - 0.5 * da[k] - 0.5 * db[k]).norm() / (0.5 * da[k] + 0.5 * db[k]).norm()) for k in dm)
    assert off > 0.1
    assert json.loads((tmp_path / "out" / "merged" / "adapter_config.json").read_text())["r"] == 8
    assert not any(torch.isnan(v).any() for v in dm.values())


@pytest.mark.parametrize("method", ["task_arithmetic", "linear", "ties", "dare_ties", "dare_linear"])
def test_mergekit_accepts_the_emitted_config(tmp_path, method):
    """mergekit's own configuration model (``mergekit.config.MergeConfiguration``, mergekit 0.1.5) reads what
    ``--emit mergekit`` writes for every method (needs mergekit, optional: CI skips it)."""
    config = pytest.importorskip("mergekit.config")
    a, b = adapter(tmp_path / "code"), adapter(tmp_path / "chat")
    extra = ["--density", "0.4"] if method in ("ties", "dare_ties", "dare_linear") else []
    text = invoke(["merge", f"{a}=0.7", f"{b}=0.3", "--method", method, *extra, "--emit", "mergekit"]).stdout
    cfg = config.MergeConfiguration.model_validate(yaml.safe_load(text))
    assert cfg.merge_method == method and len(cfg.models) == 2
    assert [str(m.model.lora.path) for m in cfg.models] == [a, b]
