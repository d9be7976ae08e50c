"""Issue 5: emitted trainer configs, the Hugging Face cache, batch, mix, the rules schema, evaluation
and deployment advice."""

import ast
import csv
import io
import json
import pathlib

import pytest
import yaml

from ftdecide.files import catalog
from conftest import invoke
from ftdecide import optimizers

DATA = pathlib.Path(__file__).parent / "data"
ROOT = pathlib.Path(__file__).resolve().parent.parent


def rec(*args):
    r = invoke(["recommend", *args, "--format", "json"])
    assert r.exit_code == 0, r.output
    return json.loads(r.stdout)


def documented(name):
    return {ln.strip() for ln in (DATA / name).read_text().splitlines() if ln.strip() and not ln.startswith("#")}


# One recommendation per method, with different shapes, so each field can be traced back.
PLANS = {
    "qlora": ("--model", "llama-3.1-8b", "--gpu", "t4", "--seq-len", "1024"),
    "lora": ("--model", "qwen2.5-7b", "--gpu", "a100-80gb", "--task", "math"),
    "full": (
        "--model",
        "qwen2.5-0.5b",
        "--gpu",
        "h100",
        "--dataset-size",
        "5000000",
        "--task",
        "continued-pretraining",
        "--quality",
        "best",
    ),
}


@pytest.fixture(scope="module", params=sorted(PLANS))
def plan(request):
    doc = rec(*PLANS[request.param])
    assert doc["recommendation"]["method"] == request.param
    doc["_args"] = PLANS[request.param]
    return doc


def emit(kind, plan, dataset="train.jsonl"):
    """The config ``recommend --emit KIND`` prints for the plan's command line."""
    r = invoke(["recommend", *plan["_args"], "--emit", kind, "--dataset", dataset])
    assert r.exit_code == 0, r.output
    return r.stdout


def _literal(node):
    try:
        return ast.literal_eval(node)
    except ValueError:
        return _literal  # not a literal (a name such as torch.bfloat16): left out below


def _calls(tree):
    """{function name: {keyword: literal value}} of the calls of a module."""
    return {
        n.func.id: {k.arg: v for k in n.keywords if (v := _literal(k.value)) is not _literal}
        for n in ast.walk(tree)
        if isinstance(n, ast.Call) and isinstance(n.func, ast.Name)
    }


def test_peft_and_trl_carry_the_recommendation(plan):
    r, sc = plan["recommendation"], plan["scenario"]
    arch = catalog.resolve_model(sc["model"])
    for kind in ("peft", "trl"):
        text = emit(kind, plan, dataset="data/train.jsonl")
        calls = _calls(ast.parse(text))
        if r["lora"]:
            lc = calls["LoraConfig"]
            assert (lc["r"], lc["lora_alpha"], lc["lora_dropout"]) == (r["lora"]["rank"], r["lora"]["alpha"], r["lora"]["dropout"])
            assert lc["target_modules"] == (
                "all-linear" if r["lora"]["targets"] == "all-linear" else list(arch.resolve_targets(r["lora"]["targets"]))
            )
        else:
            assert "LoraConfig" not in calls and "peft_config = None" in text
        assert ("BitsAndBytesConfig" in calls) == (r["method"] == "qlora")
        if r["method"] == "qlora":
            assert calls["BitsAndBytesConfig"] == {"load_in_4bit": True, "bnb_4bit_quant_type": "nf4", "bnb_4bit_use_double_quant": True}
            assert ("torch.float16" in text) == (r["precision"] == "fp16")
        assert f"MODEL = {sc['model_id']!a}" in text
    sft = _calls(ast.parse(emit("trl", plan, dataset="data/train.jsonl")))["SFTConfig"]
    assert sft["per_device_train_batch_size"] == r["micro_batch_size"]
    assert sft["gradient_accumulation_steps"] == r["gradient_accumulation_steps"]
    assert sft["per_device_train_batch_size"] * sft["gradient_accumulation_steps"] == r["global_batch_size"]
    assert (sft["learning_rate"], sft["num_train_epochs"], sft["max_length"]) == (r["learning_rate"], r["epochs"], sc["seq_len"])
    assert sft["gradient_checkpointing"] == r["gradient_checkpointing"]
    assert (sft["bf16"], sft["fp16"]) == (r["precision"] == "bf16", r["precision"] == "fp16")
    assert sft["optim"] == optimizers.get(sc["optimizer"]).trainer_name


def _sized_for(kind, plan):
    """The recommendation ``--emit KIND`` writes: sized for the trainer that runs KIND's file."""
    doc = rec(*plan["_args"], "--trainer", kind)
    return doc["recommendation"], doc["scenario"]


def test_axolotl_uses_documented_keys_and_the_recommendation(plan):
    r, sc = _sized_for("axolotl", plan)
    cfg = yaml.safe_load(emit("axolotl", plan, dataset="d.jsonl"))
    assert set(cfg) <= documented("axolotl_keys.txt"), set(cfg) - documented("axolotl_keys.txt")
    assert cfg["base_model"] == sc["model_id"]
    assert cfg.get("adapter") == {"full": None, "lora": "lora", "qlora": "qlora"}[r["method"]]
    assert cfg.get("load_in_4bit", False) == (r["method"] == "qlora")
    if r["lora"]:
        assert (cfg["lora_r"], cfg["lora_alpha"], cfg["lora_dropout"]) == (r["lora"]["rank"], r["lora"]["alpha"], r["lora"]["dropout"])
        assert cfg.get("lora_target_linear") == (r["lora"]["targets"] == "all-linear" or None)
    assert (cfg["micro_batch_size"], cfg["gradient_accumulation_steps"], cfg["num_epochs"]) == (
        r["micro_batch_size"],
        r["gradient_accumulation_steps"],
        r["epochs"],
    )
    assert (cfg["sequence_len"], cfg["learning_rate"], cfg["gradient_checkpointing"]) == (
        sc["seq_len"],
        r["learning_rate"],
        r["gradient_checkpointing"],
    )
    assert cfg["bf16"] == (r["precision"] == "bf16")
    # the attention the estimate assumed (sdpa; eager for Gemma 2), and the evaluation plan's held-out share
    assert cfg["attn_implementation"] == catalog.resolve_model(sc["model"]).attention
    assert cfg["val_set_size"] == round(r["evaluation"]["held_out_examples"] / sc["dataset_size"], 4)
    assert cfg["datasets"][0]["path"] == "d.jsonl"


def test_llamafactory_uses_documented_keys_and_the_recommendation(plan):
    r, sc = _sized_for("llamafactory", plan)
    cfg = yaml.safe_load(emit("llamafactory", plan))
    assert set(cfg) <= documented("llamafactory_keys.txt"), set(cfg) - documented("llamafactory_keys.txt")
    # a plain string, evaluated each epoch on the held-out examples (a YAML set once slipped in here)
    assert cfg["eval_strategy"] == ("epoch" if cfg["val_size"] else "no") and cfg["val_size"] == r["evaluation"]["held_out_examples"]
    assert cfg["model_name_or_path"] == sc["model_id"]
    assert cfg["finetuning_type"] == ("full" if r["method"] == "full" else "lora")
    assert cfg.get("quantization_bit") == (4 if r["method"] == "qlora" else None)
    if r["lora"]:
        assert (cfg["lora_rank"], cfg["lora_alpha"], cfg["lora_dropout"]) == (r["lora"]["rank"], r["lora"]["alpha"], r["lora"]["dropout"])
        assert cfg["lora_target"] == ("all" if r["lora"]["targets"] == "all-linear" else cfg["lora_target"])
    assert (cfg["per_device_train_batch_size"], cfg["gradient_accumulation_steps"]) == (
        r["micro_batch_size"],
        r["gradient_accumulation_steps"],
    )
    assert (cfg["cutoff_len"], cfg["learning_rate"], cfg["num_train_epochs"]) == (sc["seq_len"], r["learning_rate"], r["epochs"])
    assert cfg["disable_gradient_checkpointing"] == (not r["gradient_checkpointing"])
    assert cfg["bf16"] == (r["precision"] == "bf16")


def test_emitted_configs_load_in_the_real_libraries(plan, tmp_path):
    """Runs where peft, transformers and trl are installed (the device GPU: benchmarks/device_probe.sh);
    they need torch, which CI does not install."""
    pytest.importorskip("peft")
    pytest.importorskip("trl")
    from peft import LoraConfig
    from transformers import BitsAndBytesConfig
    from trl import SFTConfig

    for kind in ("peft", "trl"):
        path = tmp_path / f"{kind}_{plan['recommendation']['method']}.py"
        path.write_text(emit(kind, plan))
        ns: dict = {"__name__": "emitted"}  # not __main__: build the configs, do not train
        exec(compile(path.read_text(), str(path), "exec"), ns)
        assert ns["peft_config"] is None or isinstance(ns["peft_config"], LoraConfig)
        assert ns["bnb_config"] is None or isinstance(ns["bnb_config"], BitsAndBytesConfig)
        if kind == "trl":
            assert isinstance(ns["sft_config"], SFTConfig)
            assert ns["sft_config"].per_device_train_batch_size == plan["recommendation"]["micro_batch_size"]


def test_emit_cli_writes_file_and_reports_it(tmp_path):
    out = tmp_path / "axolotl.yaml"
    r = invoke(["recommend", *PLANS["lora"], "--emit", "axolotl", "--out", str(out), "--format", "json"])
    assert r.exit_code == 0, r.output
    assert json.loads(r.stdout)["emitted"] == {"kind": "axolotl", "path": str(out)}
    assert yaml.safe_load(out.read_text())["lora_r"] == 64
    r = invoke(["recommend", *PLANS["qlora"], "--emit", "peft"])
    assert r.exit_code == 0 and r.stdout.startswith("# -*- coding: utf-8 -*-\n# Generated by ftdecide")


@pytest.mark.parametrize(
    "args,needle",
    [
        (("--model", "llama-3.1-70b", "--gpu", "rtx-4090", "--emit", "trl"), "no method fits"),
        (("--model", "13b", "--gpu", "a100-80gb", "--emit", "peft"), "not a checkpoint"),
        (("--model", "llama-3.1-8b", "--emit", "peft", "--out", "/nonexistent-dir/x.py"), "cannot write"),
    ],
)
def test_emit_bad_input(args, needle):
    r = invoke(["recommend", *args])
    assert r.exit_code == 2 and r.stdout == "" and needle in r.stderr and len(r.stderr.strip().splitlines()) == 1


# --- the Hugging Face cache ----------------------------------------------------------------------

TINY = {
    "model_type": "llama",
    "hidden_size": 1024,
    "intermediate_size": 2816,
    "num_hidden_layers": 8,
    "num_attention_heads": 16,
    "num_key_value_heads": 4,
    "vocab_size": 32000,
    "tie_word_embeddings": False,
}


def fake_cache(root: pathlib.Path, repo: str, cfg: dict, with_ref=True, commit="0123456789abcdef0123456789abcdef01234567"):
    base = root / ("models--" + repo.replace("/", "--"))
    snap = base / "snapshots" / commit
    snap.mkdir(parents=True)
    (snap / "config.json").write_text(json.dumps(cfg))
    if with_ref:
        (base / "refs").mkdir()
        (base / "refs" / "main").write_text(commit)
    return snap / "config.json"


@pytest.mark.parametrize("where", ["HF_HUB_CACHE", "HF_HOME", "XDG_CACHE_HOME", "HOME"])
def test_model_from_the_local_hf_cache(where, tmp_path, monkeypatch):
    for v in ("HF_HUB_CACHE", "HUGGINGFACE_HUB_CACHE", "HF_HOME", "XDG_CACHE_HOME"):
        monkeypatch.delenv(v, raising=False)
    hub = {
        "HF_HUB_CACHE": tmp_path / "hub",
        "HF_HOME": tmp_path / "hf" / "hub",
        "XDG_CACHE_HOME": tmp_path / "xdg" / "huggingface" / "hub",
        "HOME": tmp_path / "home" / ".cache" / "huggingface" / "hub",
    }[where]
    monkeypatch.setenv(
        where, str({"HF_HUB_CACHE": hub, "HF_HOME": tmp_path / "hf", "XDG_CACHE_HOME": tmp_path / "xdg", "HOME": tmp_path / "home"}[where])
    )
    cfg_path = fake_cache(hub, "acme/tiny-llama", TINY)
    doc = rec("--model", "acme/tiny-llama", "--gpu", "rtx-4090")
    sc = doc["scenario"]
    assert sc["model_source"] == f"Hugging Face cache: {cfg_path}" and sc["model_id"] == "acme/tiny-llama"
    L, h, i, kv, V = 8, 1024, 2816, 256, 32000
    assert sc["total_params"] == L * (h * h * 2 + h * kv * 2 + 3 * h * i + 2 * h) + 2 * V * h + h


def test_cache_is_used_before_the_catalog_and_catalog_is_the_fallback(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path))
    assert rec("--model", "meta-llama/Llama-3.1-8B")["scenario"]["model_source"].startswith("catalog")
    fake_cache(tmp_path, "meta-llama/Llama-3.1-8B", {**TINY, "num_hidden_layers": 2}, with_ref=False)
    sc = rec("--model", "meta-llama/Llama-3.1-8B")["scenario"]
    assert sc["model_source"].startswith("Hugging Face cache:") and sc["total_params"] < 1e9


def test_broken_cached_config_is_one_line(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path))
    fake_cache(tmp_path, "acme/broken", {"model_type": "llama"})
    r = invoke(["estimate", "--model", "acme/broken"])
    assert r.exit_code == 2 and "missing" in r.stderr and "config.json" in r.stderr


# --- batch ----------------------------------------------------------------------------------------------


def test_batch_json_and_csv_one_result_per_scenario():
    r = invoke(["batch", "examples/scenarios.yaml", "--format", "json"])
    assert r.exit_code == 0, r.output
    doc = json.loads(r.stdout)
    names = [x["name"] for x in doc["results"]]
    assert names == [
        "8b-on-4090",
        "8b-code-on-a100",
        "70b-on-4090",
        "qwen-7b-math-budget",
        "70b-domain-on-two-h100-nodes",
        "qwen-0.5b-with-liger",
    ]
    single = rec("--model", "llama-3.1-8b", "--gpu", "a100-80gb", "--task", "code", "--dataset-size", "50000", "--seq-len", "2048")
    assert doc["results"][1]["recommendation"] == single["recommendation"]
    r = invoke(["batch", "examples/scenarios.yaml", "--format", "csv"])
    rows = list(csv.DictReader(io.StringIO(r.stdout)))
    assert [row["feasible"] for row in rows] == ["true", "true", "false", "true", "true", "true"]
    assert rows[1]["rank"] == "32" and rows[3]["rank"] == "64" and rows[2]["method"] == ""
    # two nodes of 8: the strategy auto picked for the plan; one GPU: single
    assert (rows[4]["gpus"], rows[4]["nodes"], rows[4]["strategy"]) == ("8", "2", "fsdp") and rows[0]["strategy"] == "single"


def test_batch_fail_if_infeasible_exits_1_with_output():
    r = invoke(["batch", "examples/scenarios.yaml", "--format", "csv", "--fail-if-infeasible"])
    assert r.exit_code == 1 and len(r.stdout.splitlines()) == 7 and "70b-on-4090" in r.stderr  # a header and 6 scenarios


@pytest.mark.parametrize(
    "text,needle",
    [
        ("- model: llama-3.1-8b\n- model: nope-model\n  gpu: h100\n", "s.yaml:2: scenario 'scenario-2': unknown model"),
        ("- model: llama-3.1-8b\n  colour: red\n", "s.yaml:2: scenario 'scenario-1': colour: unknown field"),
        ("- {model: llama-3.1-8b, name: a}\n- {model: mistral-7b, name: a}\n", "used twice"),
        ("scenarios: []\n", "list of scenarios"),
        ("scenarios:\n  - model: llama-3.1-8b\nextra: 1\n", "s.yaml:3: unknown field 'extra'"),
        ("- 42\n", "not a mapping"),
        ("- model: llama-3.1-8b\n  seq_len: -1\n", "s.yaml:2: scenario 'scenario-1': seq-len"),
    ],
)
def test_batch_bad_input_names_file_and_line(text, needle, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "s.yaml").write_text(text)
    r = invoke(["batch", "s.yaml"])
    assert r.exit_code == 2 and r.stdout == "" and needle in r.stderr, r.stderr


# --- mix ------------------------------------------------------------------------------------------------


def test_mix_temperature_weights_hand_computed():
    r = invoke(["mix", "code=20000", "chat=5000", "math=800", "--format", "json"])
    rows = {t["task"]: t for t in json.loads(r.stdout)["tasks"]}
    raw = {"code": 20000**0.7, "chat": 5000**0.7, "math": 800**0.7}
    for t, v in raw.items():
        assert rows[t]["weight"] == pytest.approx(v / sum(raw.values()), abs=1e-6)
        assert rows[t]["per_epoch"] == pytest.approx(v / sum(raw.values()) * 25800, abs=0.1)
    r = invoke(["mix", "a=100", "b=100", "--temperature", "0", "--format", "json"])
    assert [t["weight"] for t in json.loads(r.stdout)["tasks"]] == [0.5, 0.5]


def test_mix_caps():
    # T=1 with cap 1000: a counts as 1000, so a and b weigh the same
    r = invoke(["mix", "a=9000", "b=1000", "--temperature", "1", "--cap", "1000", "--format", "json"])
    assert [t["weight"] for t in json.loads(r.stdout)["tasks"]] == [0.5, 0.5]
    # uniform weights would repeat c 50x per epoch; at most 4x leaves it 4 * 20 / 2020 of the draws
    r = invoke(["mix", "a=1000", "b=1000", "c=20", "--temperature", "0", "--max-upsample", "4", "--format", "json"])
    rows = {t["task"]: t for t in json.loads(r.stdout)["tasks"]}
    assert rows["c"]["repeats"] == pytest.approx(4.0) and rows["c"]["weight"] == pytest.approx(80 / 2020, abs=1e-6)
    assert rows["a"]["weight"] == pytest.approx(rows["b"]["weight"]) and sum(t["weight"] for t in rows.values()) == pytest.approx(1)


@pytest.mark.parametrize(
    "args,needle",
    [
        (["code"], "TASK=N"),
        (["code=abc"], "whole number"),
        (["code=0"], "between"),
        (["a=1", "a=2"], "twice"),
        (["a=1", "--temperature", "2"], "temperature"),
        (["a=1", "--max-upsample", "0.5"], "max-upsample"),
        (["a=1", "--temperature", "nan"], "finite"),
    ],
)
def test_mix_bad_input(args, needle):
    r = invoke(["mix", *args])
    assert r.exit_code == 2 and needle in r.stderr and r.stdout == ""


# --- rules schema, evaluation, deployment -------------------------------------------------------------


def test_rules_schema_matches_the_models_and_the_example():
    r = invoke(["rules", "schema"])
    schema = json.loads(r.stdout)
    assert schema == json.loads((ROOT / "examples" / "ftdecide-rules.schema.json").read_text())  # regenerate with: ftdecide rules schema
    rule = schema["$defs"]["Rule"]
    assert (
        set(rule["properties"]) >= {"id", "when", "prefer", "forbid", "set", "priority", "warn", "note"}
        and rule["additionalProperties"] is False
    )
    assert "fits.lora (bool)" in rule["properties"]["when"]["description"]
    policy = yaml.safe_load((ROOT / "examples" / "team-policy.yaml").read_text())
    assert (ROOT / "examples" / "team-policy.yaml").read_text().startswith("# yaml-language-server: $schema=./ftdecide-rules.schema.json")
    for rl in policy["rules"]:
        assert set(rl) <= set(rule["properties"])


def test_evaluation_plan_and_deployment_note():
    doc = rec("--model", "llama-3.1-8b", "--gpu", "a100-80gb", "--dataset-size", "50000")
    r = doc["recommendation"]
    assert r["evaluation"]["held_out_examples"] == 2000 * 0 + 2500 - 500  # 5% of 50,000, capped at 2,000
    assert r["evaluation"]["perplexity_rise_max"] == 0.10 and "2-3 points" in r["evaluation"]["regression_check"]
    lora = next(c for c in doc["candidates"] if c["method"] == "lora")
    assert r["deployment"]["adapter_size_mb"] == round(lora["trainable_params"] * 4 / 1e6, 1) == 167.8
    assert "merge" in r["deployment"]["advice"]
    tenant = rec("--model", "llama-3.1-8b", "--gpu", "a100-80gb", "--serving", "multi-tenant")["recommendation"]["deployment"]
    assert "unmerged" in tenant["advice"]
    small = rec("--model", "llama-3.1-8b", "--dataset-size", "600")["recommendation"]["evaluation"]
    assert small["held_out_examples"] == 120  # a fifth of 600: no more is held out than that


def test_completion_is_available():
    r = invoke(["--help"])
    assert "--install-completion" in r.stdout and "--show-completion" in r.stdout


def test_names_from_files_cannot_inject_code_into_emitted_configs(tmp_path):
    cfg = dict(TINY, _name_or_path="evil\nimport os; os.system('echo pwned')\nbase_model: attacker/model")
    folder = tmp_path / "weird\nname"
    folder.mkdir()
    (folder / "config.json").write_text(json.dumps(cfg))
    for kind in ("peft", "trl", "axolotl", "llamafactory"):
        r = invoke(
            ["recommend", "--model", str(folder / "config.json"), "--gpu", "a100-80gb", "--emit", kind, "--dataset", "d\nimport shutil"]
        )
        assert r.exit_code == 0, r.output
        text = r.stdout
        for line in text.splitlines():
            if "pwned" in line or "attacker" in line:
                assert line.startswith("#"), line  # only inside the one-line header comment
        if kind in ("peft", "trl"):
            tree = ast.parse(text)
            imported = {
                a.name.split(".")[0]
                for n in ast.walk(tree)
                if isinstance(n, (ast.Import, ast.ImportFrom))
                for a in (n.names if isinstance(n, ast.Import) else [ast.alias(n.module)])
            }
            assert imported <= {"torch", "peft", "transformers", "trl", "sys", "datasets"}, imported
        else:
            doc = yaml.safe_load(text)
            assert set(doc) <= documented("axolotl_keys.txt") | documented("llamafactory_keys.txt")
            assert str(folder) in (doc.get("base_model"), doc.get("model_name_or_path"))
