import json

import pytest

from conftest import ROOT, invoke


def run(*args):
    return invoke(list(args))


def rec(*args):
    r = run("recommend", *args, "--format", "json")
    assert r.exit_code == 0, r.output
    return json.loads(r.stdout)


def test_seed_7b_chat_on_a100_is_lora_r16_all_linear():
    d = rec("--model", "llama-2-7b", "--gpu", "a100-80gb", "--task", "chat", "--dataset-size", "50000")
    r = d["recommendation"]
    assert d["schema_version"] == "1.5" and r["feasible"] and r["method"] == "lora"
    assert r["lora"] == {"rank": 16, "alpha": 32, "targets": "all-linear", "dropout": 0.05}
    assert r["learning_rate"] == pytest.approx(10 * 2e-5)  # LoRA's rate is 10x full FT's
    assert [c["method"] for c in d["candidates"]] == ["full", "lora", "qlora", "dora", "ia3", "prefix", "prompt", "adapter"]


def test_seed_70b_on_24gb_nothing_fits_with_alternatives():
    d = rec("--model", "llama-2-70b", "--gpu", "rtx-4090", "--task", "chat", "--dataset-size", "50000")
    assert d["recommendation"]["feasible"] is False and d["recommendation"]["method"] is None
    kinds = {a["kind"] for a in d["alternatives"]}
    assert {"gpu", "model"} <= kinds
    assert not any(c["fits"] for c in d["candidates"])


@pytest.mark.parametrize(
    "args,method,rank",
    [
        (("--task", "code"), "lora", 32),
        (("--task", "math"), "lora", 64),
        (("--task", "style"), "lora", 4),
        (("--task", "chat", "--serving", "multi-tenant"), "lora", 8),
        (("--task", "math", "--quality", "best", "--dataset-size", "100000", "--model", "qwen2.5-0.5b"), "full", None),
        (("--task", "continued-pretraining", "--dataset-size", "2000000", "--model", "qwen2.5-1.5b"), "full", None),
    ],
)
def test_use_case_table(args, method, rank):
    base = {"--model": "llama-3.1-8b", "--gpu": "a100-80gb", "--dataset-size": "20000"}
    it = iter(args)
    for k in it:
        base[k] = next(it)
    d = rec(*[x for kv in base.items() for x in kv])
    r = d["recommendation"]
    assert r["method"] == method
    if rank:
        assert r["lora"]["rank"] == rank


def test_laptop_gpu_gets_qlora():
    d = rec("--model", "llama-3.1-8b", "--gpu", "t4", "--task", "chat", "--dataset-size", "5000", "--seq-len", "512")
    assert d["recommendation"]["method"] == "qlora"
    assert any("no bf16" in w["message"] for w in d["warnings"])


def test_budget_forbids_full_and_team_policy(tmp_path):
    d = rec(
        "--model",
        "qwen2.5-0.5b",
        "--gpu",
        "h100",
        "--task",
        "math",
        "--quality",
        "best",
        "--dataset-size",
        "100000",
        "--rules",
        "examples/team-policy.yaml",
        "--budget",
        "100",
    )
    assert d["recommendation"]["method"] != "full"
    assert "no-cheap-full-ft" in d["rules_fired"]


def test_table_and_markdown_and_scenario():
    r = run("recommend", "--scenario", "examples/llama8b-4090-instruction.yaml")
    assert r.exit_code == 0 and "Recommendation:" in r.stdout and "lora" in r.stdout
    r = run("recommend", "--model", "llama-3.1-8b", "--gpu", "h100", "--format", "markdown")
    assert r.exit_code == 0 and r.stdout.startswith("# ftdecide") and "| lora |" in r.stdout


def test_estimate_json_matches_core():
    args = ("--model", "llama-3.1-8b", "--method", "lora", "--seq-len", "2048", "--batch-size", "4", "--trainer", "loop")
    r = run("estimate", *args, "--format", "json")
    d = json.loads(r.stdout)
    assert d["trainable_params"] == 41943040 and d["total_params"] == 8072204288
    # the command prints the core's own estimate, rounded to 3 decimals (measured: 29.36 GiB, shared/calibration)
    from ftdecide.files.catalog import resolve_model
    from ftdecide.core.estimator import TrainConfig, estimate_memory

    core = estimate_memory(resolve_model("llama-3.1-8b"), TrainConfig(method="lora", seq_len=2048, batch_size=4, trainer="loop"))
    assert d["peak_allocated_gib"] == round(core.peak_allocated_gib, 3) and d["required_gib"] == round(core.required_gib, 3)
    assert d["peak_allocated_gib"] == pytest.approx(29.36, rel=0.02)
    assert set(d) >= {"peak_allocated_gib", "required_gib", "breakdown", "total_params", "trainable_params"}


@pytest.mark.parametrize("cmd", [("models",), ("gpus",), ("rules", "show")])
def test_listings(cmd):
    r = run(*cmd)
    assert r.exit_code == 0 and len(r.stdout.splitlines()) > 10
    r = run(*cmd, "--format", "json")
    assert r.exit_code == 0 and len(json.loads(r.stdout)) >= 15


def test_rules_check_cli(tmp_path):
    assert run("rules", "check", "configs/rules/default.yaml").exit_code == 0
    f = tmp_path / "x.yaml"
    f.write_text("version: 1\nrules:\n  - id: a\n    when: task > 3\n")
    r = run("rules", "check", str(f))
    # one problem: the one stderr line of any bad input; several: each on stdout, their count on stderr
    assert r.exit_code == 2 and r.stdout == "" and r.stderr.startswith(f"ftdecide: error: {f}:4:") and r.stderr.rstrip().endswith("[a]")
    assert len(r.stderr.splitlines()) == 1
    f.write_text("version: 1\nrules:\n  - id: a\n    when: task > 3\n  - id: b\n    when: nope\n")
    r = run("rules", "check", str(f))
    assert r.exit_code == 2 and r.stdout.splitlines()[0].startswith(f"{f}:4:") and r.stdout.splitlines()[1].startswith(f"{f}:6:")
    assert r.stderr == f"ftdecide: error: 2 problems in {f}\n"


@pytest.mark.parametrize(
    "args,msg",
    [
        (("recommend", "--model", "llama-9b-nope"), "unknown model"),
        (("recommend", "--model", "llama-3.1-8b", "--gpu", "rtx-9999"), "unknown GPU"),
        (("recommend", "--model", "llama-3.1-8b", "--dataset-size", "-5"), "dataset-size"),
        (("recommend", "--model", "llama-3.1-8b", "--task", "poetry"), "task"),
        (("recommend", "--model", "llama-3.1-8b", "--budget", "nan"), "finite"),
        (("recommend", "--model", "llama-3.1-8b", "--gpu-memory", "0.2"), "CUDA context"),
        (("recommend", "--model", "llama-3.1-8b", "--rules", "/nonexistent.yaml"), "no such file"),
        (("recommend", "--scenario", "README.md"), "README.md"),
        (("estimate", "--model", "llama-3.1-8b", "--lora-rank", "100000"), "rank"),
        (("estimate", "--model", "llama-3.1-8b", "--lora-targets", "w_proj"), "w_proj"),
    ],
)
def test_bad_input_is_one_line_exit_2(args, msg):
    r = invoke(list(args))
    assert r.exit_code == 2, r.output
    assert r.stdout == ""
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and msg in lines[0] and "Traceback" not in r.stderr


@pytest.mark.parametrize("preset, expected", [(None, "__all__"), ("logfire", "logfire")])
def test_main_turns_off_pydantic_plugin_discovery_unless_set(monkeypatch, capsys, preset, expected):
    """The console entry point spares pydantic's scan of every installed distribution for plugins; a value
    the user set is theirs."""
    import os

    from ftdecide import cli

    if preset is None:
        monkeypatch.delenv("PYDANTIC_DISABLE_PLUGINS", raising=False)
    else:
        monkeypatch.setenv("PYDANTIC_DISABLE_PLUGINS", preset)
    assert cli.main(["gpus", "--format", "json"]) == 0 and json.loads(capsys.readouterr().out)
    assert os.environ["PYDANTIC_DISABLE_PLUGINS"] == expected


@pytest.mark.parametrize("size", [300, 3000, 200_000])
def test_the_recommendation_line_gives_the_json_time_and_cost(size):
    # a plan of minutes printed "~0.0 h" while the table and the JSON gave 0.04 h
    argv = ["--model", "llama-3.2-1b", "--gpu", "h100", "--dataset-size", str(size)]
    plan = rec(*argv)["recommendation"]
    out = " ".join(invoke(["recommend", *argv], env={"COLUMNS": "400"}).stdout.split())
    assert f": ~{plan['time_hours']:.2f} h, ${plan['cost_usd']:,.2f}" in out


def test_the_readme_multi_node_example_is_what_recommend_prints():
    """The README's 70B example over two nodes quotes three candidate rows and the recommendation line; each figure
    is the JSON's (it had drifted by up to 14 GiB before this test)."""
    import re

    from ftdecide import strategies

    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    block = readme[readme.index("ftdecide recommend --model llama-3.1-70b --gpu h100 --gpus 8 --nodes 2") :].split("```")[0]
    doc = rec(*block.splitlines()[0].split()[2:])
    cands = {c["method"]: c for c in doc["candidates"]}
    rows = re.findall(r"^#\s+(\w+)\s+(yes|no)\s+(\S+)\s+([\d.]+) / ([\d.]+) GiB \.\.\.\s+([\d.,]+) h\s+\$([\d.,]+)$", block, re.M)
    assert len(rows) == 3
    for method, fits, strategy, req, gpu, hours, cost in rows:
        c = cands[method]
        assert (fits == "yes") == c["fits"] and strategy == strategies.get(c["strategy"]).label
        assert (float(req), float(gpu)) == (round(c["memory"]["required_gib"], 1), round(c["memory"]["gpu_memory_gib"], 1))
        assert (hours, cost) == (f"{c['time_hours']:,.2f}", f"{c['cost_usd']:,.2f}")
    plan = doc["recommendation"]
    assert f"~{plan['time_hours']:,.2f} h, ${plan['cost_usd']:,.2f}" in block


@pytest.mark.parametrize(
    "args, commands",
    [
        pytest.param(["recommend", "--model", "x"], ["recommend"], id="a-command"),
        pytest.param(["models"], ["models"], id="another"),
        pytest.param(["rules", "show"], None, id="the-rules-group"),
        pytest.param(["recomend"], None, id="misspelt"),
        pytest.param(["--help"], None, id="an-option-first"),
        pytest.param([], None, id="nothing"),
    ],
)
def test_only_the_named_command_is_built(args, commands):
    """``main`` hands typer the app with only the command the arguments name (typer builds every registered command's
    options on each call); the rules group stays, so the command is still named; anything else gets the whole app."""
    from ftdecide.cli import _app_for, app

    built = _app_for(args)
    if commands is None:
        assert built is app
    else:
        assert built is not app and [c.callback.__name__ for c in built.registered_commands] == commands
        assert built.registered_groups == app.registered_groups and len(app.registered_commands) > 1


def test_a_command_built_alone_parses_as_in_the_whole_app(monkeypatch):
    """The same command line gives the same output and the same errors whether typer built one command or all."""
    import ftdecide.cli as cli

    good = ["recommend", "--model", "llama-3.1-8b", "--gpu", "rtx-4090", "--format", "json"]
    bad = ["recommend", "--model", "llama-3.1-8b", "--bogus"]
    alone = [invoke(good), invoke(bad)]
    monkeypatch.setattr(cli, "_app_for", lambda args: cli.app)
    every = [invoke(good), invoke(bad)]
    assert [r.exit_code for r in alone] == [r.exit_code for r in every] == [0, 2]
    assert [(r.stdout, r.stderr) for r in alone] == [(r.stdout, r.stderr) for r in every]
    assert "No such option: --bogus" in alone[1].stderr
