"""Hostile input, third round (issue 27): one regression test per root cause fixed, each of which failed
before its fix."""

from __future__ import annotations

import json

import pytest

from conftest import invoke


def one_line_error(r, *phrases):
    assert r.exit_code == 2, r.output
    assert r.stdout == "" and r.stderr.count("\n") == 1 and r.stderr.startswith("ftdecide: error: ")
    for p in phrases:
        assert p in r.stderr, r.stderr
    assert "Traceback" not in r.stderr


def model_dir(tmp_path, **changes):
    from ftdecide.files.catalog import resolve_model
    from ftdecide.files.hfconfig import hf_config

    cfg = {**hf_config(resolve_model("llama-3.2-1b")), **changes}
    d = tmp_path / "m"
    d.mkdir(exist_ok=True)
    (d / "config.json").write_text(json.dumps(cfg))
    return d


# 1. an output never replaces an input of the same command --------------------------------------------
def test_out_naming_the_models_config_is_refused_and_the_config_is_intact(tmp_path):
    d = model_dir(tmp_path)
    before = (d / "config.json").read_bytes()
    r = invoke(["recommend", "--model", str(d), "--gpu", "l4", "--emit", "peft", "--out", str(d / "config.json")])
    one_line_error(r, "it is an input of this command")
    assert (d / "config.json").read_bytes() == before
    # through a symbolic link too
    (tmp_path / "link.py").symlink_to(d / "config.json")
    r = invoke(["recommend", "--model", str(d), "--gpu", "l4", "--emit", "peft", "--out", str(tmp_path / "link.py")])
    one_line_error(r, "it is an input of this command")
    assert (d / "config.json").read_bytes() == before


@pytest.mark.parametrize("which", ["scenario", "rules"])
def test_out_naming_the_scenario_or_a_rule_file_is_refused(tmp_path, which):
    sc = tmp_path / "s.yaml"
    sc.write_text("model: llama-3.2-1b\ngpu: l4\n")
    rules = tmp_path / "r.yaml"
    rules.write_text("version: 1\nrules: []\n")
    target = sc if which == "scenario" else rules
    before = target.read_bytes()
    r = invoke(["recommend", "--scenario", str(sc), "--rules", str(rules), "--emit", "trl", "--out", str(target)])
    one_line_error(r, "it is an input of this command")
    assert target.read_bytes() == before


def test_a_written_file_leaves_no_temporary_beside_it(tmp_path):
    out = tmp_path / "train.py"
    out.write_text("old")
    r = invoke(["recommend", "--model", "llama-3.2-1b", "--gpu", "l4", "--emit", "trl", "--out", str(out)])
    assert r.exit_code == 0 and out.read_text().startswith("# -*- coding: utf-8 -*-")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["train.py"]


# 3. numbers Python refuses to convert, and non-JSON numbers -------------------------------------------
def test_a_5000_digit_integer_in_a_config_json_names_its_field(tmp_path):
    d = tmp_path / "c"
    d.mkdir()
    (d / "config.json").write_text('{"model_type": "llama", "hidden_size": ' + "9" * 5000 + "}")
    one_line_error(invoke(["estimate", "--model", str(d)]), "config.json:1:", "hidden_size: a number of 5,000 digits")


def test_a_5000_digit_integer_in_a_scenario_file(tmp_path):
    f = tmp_path / "s.yaml"
    f.write_text("model: llama-3.2-1b\nseq_len: " + "9" * 5000 + "\n")
    one_line_error(invoke(["recommend", "--scenario", str(f)]), "s.yaml:2:", "too long")


@pytest.mark.parametrize("value, phrase", [("Infinity", "Infinity is not a JSON number"), ("1e999", "too large for a number")])
def test_infinity_in_a_probe_grid_is_one_line(tmp_path, value, phrase):
    g = tmp_path / "g.jsonl"
    g.write_text(
        '{"arch": "x", "hf_config": {"model_type": "llama"}, "method": "lora", "seq": 512, "batch": 1, "gc": true, "world_size": '
        + value
        + "}\n"
    )
    one_line_error(invoke(["probe", "--grid", str(g)]), "g.jsonl:1:", phrase)


def test_a_long_number_on_the_command_line_is_echoed_as_a_preview():
    r = invoke(["estimate", "--model", "llama-3.2-1b", "--seq-len", "9" * 5000])
    one_line_error(r, "(5,002 characters)")  # the value with its quotes
    assert len(r.stderr) < 400


# 5. one refusal check for every command ---------------------------------------------------------------
def test_an_explicit_strategy_that_cannot_run_a_method_never_makes_it_the_plan():
    r = invoke(["recommend", "--model", "llama-3.1-70b", "--gpu", "rtx-4090", "--gpus", "8", "--strategy", "fsdp", "--format", "json"])
    d = json.loads(r.stdout)
    qlora = next(c for c in d["candidates"] if c["method"] == "qlora")
    assert qlora["fits"] is False and any("FSDP2 cannot shard a 4-bit base" in n for n in qlora["notes"])
    assert d["recommendation"]["method"] != "qlora"


@pytest.mark.parametrize(
    "argv, phrase",
    [
        (["recommend", "--gpus", "2", "--strategy", "ddp", "--offload-params"], "--offload-params needs sharded parameters"),
        (["recommend", "--offload-optimizer"], "--offload-optimizer"),
        (["fit", "--virtual-tokens", "4000", "--seq-len", "512"], "4000 virtual tokens is more than the sequence"),
    ],
)
def test_options_no_plan_can_honour_are_refused(argv, phrase):
    one_line_error(invoke([*argv, "--model", "llama-3.1-8b", "--gpu", "h100"]), phrase)


# 6. full fine-tuning on a GPU without bf16 ------------------------------------------------------------
def test_full_fine_tuning_without_bf16_keeps_fp32_master_weights():
    args = [
        "recommend",
        "--model",
        "llama-3.2-1b",
        "--gpu",
        "v100-32gb",
        "--task",
        "domain",
        "--dataset-size",
        "100000",
        "--quality",
        "best",
    ]
    d = json.loads(invoke([*args, "--format", "json"]).stdout)
    assert d["recommendation"]["method"] == "full" and d["scenario"]["precision"] == "mixed"
    assert any(w["rule"] == "fp16-master-weights" for w in d["warnings"])
    text = invoke([*args, "--emit", "trl"]).stdout
    assert "dtype=torch.float32" in text and "fp16=True" in text and "bf16=False" in text


# 7. booleans are JSON booleans ------------------------------------------------------------------------
def test_a_string_false_for_tied_embeddings_is_refused(tmp_path):
    d = model_dir(tmp_path, tie_word_embeddings="false")
    one_line_error(invoke(["estimate", "--model", str(d)]), "config.json:1:", "'tie_word_embeddings' must be true or false")


def test_a_string_boolean_in_a_probe_grid_is_refused(tmp_path):
    from ftdecide.files.catalog import resolve_model
    from ftdecide.files.hfconfig import hf_config

    rec = {"arch": "x", "hf_config": hf_config(resolve_model("llama-3.2-1b")), "method": "lora", "seq": 512, "batch": 1, "gc": "false"}
    g = tmp_path / "g.jsonl"
    g.write_text(json.dumps(rec) + "\n")
    one_line_error(invoke(["probe", "--grid", str(g)]), "g.jsonl:1", "'gc' must be true or false")


# 9. tiny data sets and huge worlds -----------------------------------------------------------------------
def test_one_example_is_never_held_out_and_the_batch_warning_says_why():
    d = json.loads(invoke(["recommend", "--model", "llama-3.2-1b", "--gpu", "l4", "--dataset-size", "1", "--format", "json"]).stdout)
    assert d["recommendation"]["evaluation"]["held_out_examples"] == 0
    (w,) = [w for w in d["warnings"] if w["rule"] == "global-batch-exceeds-data"]
    assert "more than the 1 examples to train on" in w["message"]
    text = invoke(["recommend", "--model", "llama-3.2-1b", "--gpu", "l4", "--dataset-size", "1", "--emit", "trl"]).stdout
    assert "HELD_OUT = 0" in text and 'eval_strategy="no"' in text and "if HELD_OUT else" in text


def test_held_out_leaves_at_least_one_global_batch_to_train():
    for n in (17, 20, 40, 200):
        d = json.loads(invoke(["recommend", "--model", "llama-3.2-1b", "--gpu", "l4", "--dataset-size", str(n), "--format", "json"]).stdout)
        r = d["recommendation"]
        assert n - r["evaluation"]["held_out_examples"] >= r["global_batch_size"]


def test_a_million_gpus_on_ten_thousand_examples_warns():
    args = ["--model", "llama-3.2-1b", "--gpu", "h100", "--gpus", "1024", "--nodes", "1024", "--dataset-size", "10000", "--format", "json"]
    d = json.loads(invoke(["recommend", *args]).stdout)
    assert any(w["rule"] == "global-batch-exceeds-data" and "1,048,576 GPUs" in w["message"] for w in d["warnings"])


# 10. rule values checked where the file is read ---------------------------------------------------------
def test_a_malformed_targets_value_is_a_rules_check_problem(tmp_path):
    f = tmp_path / "r.yaml"
    f.write_text('version: 1\nrules:\n  - id: bad\n    when: "true"\n    priority: 50\n    set: {targets: "q_proj import os"}\n')
    one_line_error(invoke(["rules", "check", str(f)]), "r.yaml:6:", "set.targets", "[bad]")
    one_line_error(invoke(["recommend", "--model", "llama-3.2-1b", "--rules", str(f)]), "r.yaml:6:")


# 11. messages that name the problem ----------------------------------------------------------------------
def test_many_plain_values_are_not_called_an_alias_bomb(tmp_path):
    f = tmp_path / "many.yaml"
    f.write_text("- 1\n" * 100_001)
    r = invoke(["rules", "check", str(f)])
    one_line_error(r, "more than 100,000 values")
    assert "alias" not in r.stderr
    # a batch file takes up to its cap of scenarios, and says so past it
    one_line_error(invoke(["batch", str(f)]), "100,001 scenarios: at most 10,000 in one call")


def test_nan_budget_and_virtual_tokens_name_themselves(tmp_path):
    f = tmp_path / "s.yaml"
    f.write_text("model: llama-3.2-1b\nbudget: .nan\n")
    one_line_error(invoke(["recommend", "--scenario", str(f)]), "s.yaml:2:", "budget: must be a finite number")
    f.write_text("model: llama-3.2-1b\nseq_len: 64\nvirtual_tokens: 100\n")
    one_line_error(invoke(["recommend", "--scenario", str(f)]), "s.yaml:3:", "virtual-tokens: 100 virtual tokens")


def test_ia3_targets_are_called_ia3_targets():
    one_line_error(invoke(["estimate", "--model", "llama-3.2-1b", "--method", "ia3", "--ia3-targets", "w_proj"]), "IA3 target(s) 'w_proj'")


# 8. each family's keys and defaults, as its transformers config class reads them ------------------------
def _arch(cfg):
    from ftdecide.files.hfconfig import arch_from_hf_config

    return arch_from_hf_config(cfg)


def test_a_stray_expert_key_on_a_dense_family_is_ignored():
    from ftdecide.files.catalog import resolve_model
    from ftdecide.files.hfconfig import hf_config

    dense = hf_config(resolve_model("llama-2-7b"))
    a = _arch({**dense, "num_local_experts": 8, "num_experts": 8})
    assert not a.is_moe and a.total_params() == resolve_model("llama-2-7b").total_params()


@pytest.mark.parametrize(
    "model_type, kv, head_dim, experts, per_token",
    [
        # transformers 5.17's config defaults: MistralConfig/MixtralConfig num_key_value_heads=8, MixtralConfig
        # num_local_experts=8 and num_experts_per_tok=2, Qwen2MoeConfig 16 heads for keys and values, 60
        # experts, 4 a token; LlamaConfig and Phi3Config as many as the attention heads; GemmaConfig 16 and
        # head_dim 256; Gemma2Config 4 and 256; Qwen3Config 32 and 128
        ("mistral", 8, 128, 0, 0),
        ("mixtral", 8, 128, 8, 2),
        ("qwen2_moe", 16, 128, 60, 4),
        ("llama", 32, 128, 0, 0),
        ("phi3", 32, 128, 0, 0),
        ("gemma", 16, 256, 0, 0),
        ("gemma2", 4, 256, 0, 0),
        ("qwen3", 32, 128, 0, 0),
    ],
)
def test_missing_keys_take_the_familys_defaults(model_type, kv, head_dim, experts, per_token):
    a = _arch(
        {
            "model_type": model_type,
            "hidden_size": 4096,
            "intermediate_size": 11008,
            "num_hidden_layers": 4,
            "num_attention_heads": 32,
            "vocab_size": 32000,
        }
    )
    assert (a.num_kv_heads, a.head_dim, a.num_experts, a.experts_per_token) == (kv, head_dim, experts, per_token)


# 2. bounded batches --------------------------------------------------------------------------------------
def test_a_bad_scenario_after_good_ones_prints_nothing_but_its_line(tmp_path):
    f = tmp_path / "b.yaml"
    f.write_text("scenarios:\n" + "  - {model: llama-3.2-1b, gpu: l4}\n" * 5 + "  - {model: nonesuch-9b}\n")
    one_line_error(invoke(["batch", str(f)]), "b.yaml:7:", "scenario 'scenario-6'", "unknown model")


def test_batch_streams_one_result_a_line_as_jsonl(tmp_path):
    f = tmp_path / "b.yaml"
    f.write_text(
        "scenarios:\n" + "".join(f"  - {{name: s{i}, model: llama-3.2-1b, gpu: l4, dataset_size: {1000 + i}}}\n" for i in range(3))
    )
    r = invoke(["batch", str(f), "--format", "jsonl"])
    lines = r.stdout.splitlines()
    assert r.exit_code == 0 and [json.loads(x)["name"] for x in lines] == ["s0", "s1", "s2"]
    assert all(json.loads(x)["schema_version"] == "1.5" for x in lines)
    whole = json.loads(invoke(["batch", str(f)]).stdout)
    assert [x["name"] for x in whole["results"]] == ["s0", "s1", "s2"]
    assert whole["results"][1] == json.loads(lines[1])


def test_more_scenarios_than_the_cap_are_refused_at_the_first_one_past_it(tmp_path):
    f = tmp_path / "b.yaml"
    f.write_text("defaults: {model: llama-3.2-1b}\nscenarios:\n" + "  - {}\n" * 10_001)
    one_line_error(invoke(["batch", str(f)]), "b.yaml:10003:", "10,001 scenarios: at most 10,000 in one call")


def test_mix_takes_at_most_a_thousand_tasks():
    one_line_error(invoke(["mix", *(f"t{i}=10" for i in range(1001))]), "1,001 tasks: at most 1,000")


@pytest.mark.parametrize("flag, method", [("--lora-targets", "lora"), ("--ia3-targets", "ia3")])
def test_a_long_target_list_is_echoed_as_a_preview(flag, method):
    r = invoke(["estimate", "--model", "llama-3.2-1b", "--method", method, flag, "x" * 5000])
    assert r.exit_code == 2 and len(r.stderr) < 400 and "not in llama-3.2-1b" in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1


@pytest.mark.parametrize("key", ["gpus", "epochs", "variants", "dataset_size", "budget"])
def test_a_yaml_boolean_is_not_taken_for_a_number(tmp_path, key):
    f = tmp_path / "s.yaml"
    f.write_text(f"model: llama-3.2-1b\n{key}: true\n")
    r = invoke(["recommend", "--scenario", str(f)])
    assert r.exit_code == 2 and f"s.yaml:2: {key.replace('_', '-')}: must be a number, not true" in r.stderr
