"""Hostile input, second round (issue 15): one regression test per class of defect. Each input broke a
promise before its fix: code ran from an emitted file, memory ran out, a traceback, a hang, an escape
sequence on the terminal, or a wrong exit status."""

import ast
import json
import os
import subprocess
import sys

import pytest

from conftest import invoke
from ftdecide.decide import expr, rulenames
from ftdecide.decide.rules import check_data, render_message
from ftdecide.files.yamlio import MAX_EXPANDED_NODES, parse_yaml

M = ["--model", "llama-3.1-8b"]
CONFIG = {
    "model_type": "llama",
    "hidden_size": 2048,
    "intermediate_size": 8192,
    "num_hidden_layers": 16,
    "num_attention_heads": 32,
    "num_key_value_heads": 8,
    "vocab_size": 128256,
}


def one_line_exit_2(r, needle: str) -> str:
    assert r.exit_code == 2, r.output
    assert r.stdout == "" and "Traceback" not in r.stderr
    lines = r.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("ftdecide: error: ") and needle in lines[0], r.stderr
    return lines[0]


def cli(*args, env=None, timeout=60, stdin=None):
    """ftdecide in a child process (for stdout encodings, argv bytes, pipes and hangs)."""
    full_env = {**os.environ, **(env or {})}
    return subprocess.run([sys.executable, "-m", "ftdecide", *args], capture_output=True, timeout=timeout, env=full_env, stdin=stdin)


def write_config(folder, **fields):
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "config.json").write_text(json.dumps({**CONFIG, **fields}))
    return folder


# --- 1. code injection into emitted files ----------------------------------------------------------
@pytest.mark.parametrize("kind", ["peft", "trl"])
def test_emitted_python_cannot_be_recoded_into_code(kind, tmp_path):
    """A folder name that ends a JSON-escaped string once 'coding: unicode_escape' decodes the file, and
    that name as _name_or_path: the emitted file parses, its MODEL and DATASET are the values given, and
    nothing but the fixed preamble sits in its first two lines."""
    evil = 'x" + str(__import__("os").system("touch PWNED")) + "'
    folder = write_config(tmp_path / evil, _name_or_path="coding: unicode_escape \u00e9\U0001f600")
    dataset = 'd" + str(1) + "\U0001f600.jsonl'
    r = invoke(["recommend", "--model", str(folder), "--gpu", "h100", "--emit", kind, "--dataset", dataset])
    assert r.exit_code == 0, r.output
    lines = r.stdout.splitlines()
    assert lines[0] == "# -*- coding: utf-8 -*-" and "coding: unicode_escape" not in "\n".join(lines[:2])
    assert r.stdout.isascii()
    tree = ast.parse(r.stdout)
    values = {
        n.targets[0].id: ast.literal_eval(n.value)
        for n in tree.body
        if isinstance(n, ast.Assign) and isinstance(n.targets[0], ast.Name) and n.targets[0].id in ("MODEL", "DATASET")
    }
    assert values["MODEL"] == str(folder)
    if kind == "trl":
        assert values["DATASET"] == dataset


# --- 2. YAML expansion ------------------------------------------------------------------------------
def _bomb(levels: int = 9) -> str:
    lines = ["a: &a [x, x, x, x, x, x, x, x, x, x]"]
    for i in range(levels):
        lines.append(f"{chr(98 + i)}: &{chr(98 + i)} [{', '.join([f'*{chr(97 + i)}'] * 10)}]")
    return "\n".join(lines) + "\n"


@pytest.mark.parametrize(
    "command, text",
    [
        (("recommend", "--scenario"), _bomb() + "model: *j\n"),
        (("batch",), _bomb() + "scenarios:\n  - {name: *j, model: llama-3.1-8b}\n"),
        (("rules", "check"), _bomb() + "version: *j\nrules: []\n"),
    ],
    ids=["scenario", "batch-name", "rule-version"],
)
def test_alias_expansion_is_limited_before_anything_walks_it(command, text, tmp_path):
    """90 aliases (under the alias limit) that expand to 10^10 nodes: refused by size, at its line."""
    p = tmp_path / "bomb.yaml"
    p.write_text(text)
    r = invoke([*command, str(p)])
    # refused where the anchors first expand past the limit: level e holds 10^5 nodes
    assert "alias bomb" in one_line_exit_2(r, f"{p}:5:")


def test_ordinary_aliases_still_load():
    assert parse_yaml("a: &a {x: 1}\nb: [*a, *a, *a]\n", "f.yaml")["b"] == [{"x": 1}] * 3
    wide = "a: &a [" + ", ".join(["1"] * 1000) + "]\nb: [" + ", ".join(["*a"] * 90) + "]\n"
    assert len(parse_yaml(wide, "f.yaml")["b"]) == 90 and 91 * 1001 < MAX_EXPANDED_NODES


# --- 3. tracebacks ----------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "when",
    ["(" + "not " * 330 + "true)(1)", "(" + "not " * 330 + "true).x", "[" * 90 + "]" * 90],
    ids=["deep-call", "deep-attribute", "deep-list"],
)
def test_deep_conditions_are_problems_not_recursion_errors(when):
    with pytest.raises(expr.ExprError):
        expr.parse(when, rulenames.schema())


def test_character_format_is_refused_and_never_overflows():
    data = parse_yaml('rules:\n  - id: c\n    when: true\n    warn: "{tokens:c} {seq_len:c}"\n', "r.yaml")
    problems = check_data(data, "r.yaml", rulenames.schema())[0]
    assert [p.message for p in problems] == ["unsupported format 'c' in message (width and precision up to 2 digits; no 'c')"] * 2
    assert render_message("{tokens:c}", {"tokens": 10**20}) == "{tokens:c}"


@pytest.mark.parametrize(
    "fields, needle",
    [
        ({"hidden_size": 10**82}, "hidden_size"),
        ({"head_dim": 10**300}, "head_dim"),
        ({"vocab_size": 2**40}, "vocab_size"),
        ({"num_hidden_layers": 10**6}, "num_layers"),
        ({"model_type": ["llama"]}, "model_type"),
        ({"model_type": {"a": 1}}, "model_type"),
        ({"num_key_value_heads": "8"}, "num_key_value_heads"),
        ({"_name_or_path": ["x"]}, "_name_or_path"),
    ],
)
def test_config_values_outside_the_real_range_are_input_errors(fields, needle, tmp_path):
    folder = write_config(tmp_path / "m", **fields)
    one_line_exit_2(invoke(["estimate", "--model", str(folder), "--format", "json"]), needle)


@pytest.mark.parametrize(
    "env",
    [
        {"HF_HUB_CACHE": "~nosuchuser/hub"},
        {"HF_HOME": "~nosuchuser"},
        {"HF_HUB_CACHE": "/" + "x" * 5000},
        {"HOME": "", "XDG_CACHE_HOME": ""},
    ],
    ids=["unknown-user", "unknown-user-home", "long-path", "no-home"],
)
def test_hf_cache_lookup_never_fails(env, monkeypatch):
    for k, v in env.items():
        monkeypatch.setenv(k, v) if v else monkeypatch.delenv(k, raising=False)
    if "HOME" in env:
        monkeypatch.setattr("pathlib.Path.home", lambda: (_ for _ in ()).throw(RuntimeError("Could not determine home directory")))
    r = invoke(["recommend", "--model", "meta-llama/Llama-3.1-8B", "--format", "json"])
    assert r.exit_code == 0, r.output
    assert json.loads(r.stdout)["scenario"]["model"] == "llama-3.1-8b"


def test_hf_cache_oversized_refs_main_is_not_read_whole(tmp_path, monkeypatch):
    repo = tmp_path / "hub" / "models--acme--tiny"
    snap = write_config(repo / "snapshots" / "abc1234")
    (repo / "refs").mkdir()
    with open(repo / "refs" / "main", "wb") as fh:  # 2 GiB, sparse
        fh.seek(2 * 2**30)
        fh.write(b"0")
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hub"))
    r = invoke(["estimate", "--model", "acme/tiny", "--format", "json"])
    assert r.exit_code == 0, r.output
    assert json.loads(r.stdout)["model"] == "acme/tiny" and (snap / "config.json").is_file()


@pytest.mark.parametrize("encoding", ["ascii", "latin-1", "cp1252"])
def test_stdout_that_is_not_utf8(encoding, tmp_path):
    """The table falls back to ASCII symbols; names it cannot encode are escaped."""
    folder = write_config(tmp_path / "m", _name_or_path="mod\u00e8le-\u2603")
    p = cli("recommend", "--model", str(folder), "--gpu", "rtx-4090", env={"PYTHONIOENCODING": encoding})
    assert p.returncode == 0, p.stderr.decode()
    out = p.stdout.decode(encoding)
    assert "####" in out and "->" in out and "\u2588" not in out and "\u2192" not in out
    assert "mod" in out and p.stderr == b""


def test_undecodable_argv_and_lone_surrogates(tmp_path):
    p = subprocess.run([sys.executable, "-m", "ftdecide", "mix", b"\xff=5", "b=10", "--format", "json"], capture_output=True, timeout=60)
    assert p.returncode == 0, p.stderr
    assert json.loads(p.stdout)["tasks"][0]["task"] == "\udcff"
    folder = write_config(tmp_path / "m", _name_or_path="\ud800x")
    for fmt in ("table", "markdown", "json"):
        r = invoke(["recommend", "--model", str(folder), "--format", fmt])
        assert r.exit_code == 0, r.output
        if fmt != "json":
            assert "\\ud800x" in r.stdout and "\ud800" not in r.stdout


@pytest.mark.parametrize(
    "line, needle",
    [
        ('{"arch": "a", "hf_config": {"model_type": ["llama"]}, "method": "lora", "seq": 1, "batch": 1, "gc": true}', "model_type"),
        ('{"arch": "a", "hf_config": CONFIG, "method": ["lora"], "seq": 1, "batch": 1, "gc": true}', "not a probe record"),
        ('{"arch": "a", "hf_config": CONFIG, "method": "lora", "seq": [1], "batch": 1, "gc": true}', "seq-len"),
        ("[" * 5000 + "]" * 5000, "not a probe record"),
    ],
)
def test_probe_grid_of_wrong_types_fails_before_torch(line, needle, tmp_path):
    p = tmp_path / "g.jsonl"
    p.write_text(line.replace("CONFIG", json.dumps(CONFIG)) + "\n")
    one_line_exit_2(invoke(["probe", "--grid", str(p)]), needle)


@pytest.mark.parametrize(
    "doc, needle",
    [
        ({"scenario": {"model": ["x"]}, "recommendation": {"feasible": True, "method": "lora"}}, "scenario.model"),
        (
            {
                "scenario": {"model": "llama-3.1-8b", "seq_len": "long"},
                "recommendation": {"feasible": True, "method": "lora", "micro_batch_size": 1, "gradient_checkpointing": True},
            },
            "seq_len",
        ),
        ({"scenario": [], "recommendation": {}}, "must be objects"),
        ({"scenario": {"model": "x"}, "recommendation": {"feasible": True, "method": {"a": 1}}}, "unknown method"),
    ],
)
def test_probe_from_json_of_wrong_types(doc, needle, tmp_path):
    p = tmp_path / "rec.json"
    p.write_text(json.dumps(doc))
    one_line_exit_2(invoke(["probe", "--from-json", str(p)]), needle)


# --- 4. resource blow-ups ---------------------------------------------------------------------------
def test_batch_parses_each_rule_file_once(tmp_path, monkeypatch):
    from ftdecide.decide import rules

    calls = []
    real = rules.check_data
    monkeypatch.setattr(rules, "check_data", lambda *a: calls.append(a[1]) or real(*a))
    rules._load_file.cache_clear()
    team = tmp_path / "team.yaml"
    team.write_text("version: 1\nrules:\n  - {id: t, when: true, note: hi}\n")
    b = tmp_path / "b.yaml"
    b.write_text("scenarios:\n" + "".join(f"  - {{name: s{i}, model: qwen2.5-0.5b}}\n" for i in range(12)))
    r = invoke(["batch", str(b), "--rules", str(team)])
    assert r.exit_code == 0, r.output
    assert sorted(set(calls)) == sorted(calls) and str(team) in calls and len(calls) == 2  # default.yaml and team.yaml


# --- 5. hangs ---------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "args",
    [
        ("recommend", "--scenario", "FIFO"),
        ("estimate", "--model", "FIFO"),
        ("recommend", *M, "--rules", "FIFO"),
        ("recommend", *M, "--emit", "peft", "--out", "FIFO"),
        ("rules", "check", "FIFO"),
    ],
    ids=["scenario", "config-json", "rules", "out", "rules-check"],
)
def test_a_fifo_is_refused_not_waited_on(args, tmp_path):
    fifo = tmp_path / "pipe.json"
    os.mkfifo(fifo)
    p = cli(*[str(fifo) if a == "FIFO" else a for a in args], timeout=30)
    err = p.stderr.decode()
    assert p.returncode == 2, err
    assert "not a regular file" in (err + p.stdout.decode())


# --- 6. terminal escapes ----------------------------------------------------------------------------
def test_escape_sequences_never_reach_stdout(tmp_path):
    folder = write_config(tmp_path / "m", _name_or_path="\x1b]0;owned\x07\x1b[31mred")
    rules = tmp_path / "r.yaml"
    rules.write_text('version: 1\nrules:\n  - id: esc\n    when: true\n    warn: "\\e[2J\\e]8;;http://x\\e\\\\link"\n')
    for fmt in ("table", "markdown"):
        r = invoke(["recommend", "--model", str(folder), "--rules", str(rules), "--format", fmt])
        assert r.exit_code == 0, r.output
        assert "\x1b" not in r.stdout and "\x07" not in r.stdout and "\\x1b" in r.stdout
    b = tmp_path / "b.yaml"
    b.write_text(f"- {{name: '=HYPERLINK(1)', model: '{folder}', rules: ['{rules}']}}\n")
    r = invoke(["batch", str(b), "--format", "csv"])
    assert r.exit_code == 0 and "\x1b" not in r.stdout


# --- 7. smaller ones --------------------------------------------------------------------------------
def test_broken_pipe_is_exit_0():
    p = subprocess.run(
        f"{sys.executable} -m ftdecide batch examples/scenarios.yaml --format csv | head -1; exit ${{PIPESTATUS[0]}}",
        shell=True,
        executable="/bin/bash",
        capture_output=True,
        timeout=60,
    )
    assert p.returncode == 0 and p.stderr == b"", p.stderr


def test_columns_zero_on_a_terminal_still_prints_the_table(monkeypatch):
    import io

    class Tty(io.StringIO):
        def isatty(self):
            return True

    out = Tty()
    monkeypatch.setattr(sys, "stdout", out)
    monkeypatch.setenv("COLUMNS", "0")
    from ftdecide.cli import main

    assert main(["gpus"]) == 0
    assert "rtx-4090" in out.getvalue()


def test_nul_in_a_path_names_the_file():
    one_line_exit_2(invoke(["recommend", "--scenario", "a\x00b.yaml"]), "a\\x00b.yaml: the path holds a NUL byte")
    one_line_exit_2(invoke(["recommend", *M, "--emit", "peft", "--out", "o\x00.py"]), "o\\x00.py")


@pytest.mark.parametrize(
    "command, text, where, key",
    [
        ("recommend", "model: llama-3.1-8b\n1: x\n", 2, "1"),
        ("batch", "- model: llama-3.1-8b\n  true: 1\n", 2, "True"),
    ],
)
def test_non_string_keys_are_placed_in_the_file(command, text, where, key, tmp_path):
    p = tmp_path / "s.yaml"
    p.write_text(text)
    cmd = ["recommend", "--scenario"] if command == "recommend" else ["batch"]
    line = one_line_exit_2(invoke([*cmd, str(p)]), "is not an option name")
    assert line == f"ftdecide: error: {p}:{where}: key {key} is not an option name"


def test_mix_never_reports_more_repeats_than_the_cap():
    one_line_exit_2(invoke(["mix", "a=100", "b=10", "--epoch-size", "10000000000000", "--max-upsample", "1"]), "at most 110 examples")
    r = invoke(["mix", "a=100", "b=10", "--epoch-size", "1000", "--max-upsample", "10", "--format", "json"])
    assert r.exit_code == 0 and all(t["repeats"] <= 10 + 1e-9 for t in json.loads(r.stdout)["tasks"])


def test_csv_cells_are_not_formulas(tmp_path):
    b = tmp_path / "b.yaml"
    b.write_text("- {name: '=cmd|calc', model: qwen2.5-0.5b}\n- {name: '+1', model: qwen2.5-0.5b}\n- {name: '@x', model: qwen2.5-0.5b}\n")
    r = invoke(["batch", str(b), "--format", "csv"])
    assert r.exit_code == 0
    names = [row.split(",")[0] for row in r.stdout.splitlines()[1:]]
    assert names == ["'=cmd|calc", "'+1", "'@x"]


def test_bare_ftdecide_prints_help_and_exits_0():
    r = invoke([])
    assert r.exit_code == 0 and "Usage" in r.output


def test_ctrl_c_while_importing_is_quiet(monkeypatch, capsys):
    import importlib.abc

    class Interrupt(importlib.abc.MetaPathFinder):
        def find_spec(self, name, path=None, target=None):
            if name == "ftdecide.cli":
                raise KeyboardInterrupt
            return None

    monkeypatch.delitem(sys.modules, "ftdecide.cli", raising=False)
    monkeypatch.setattr(sys, "meta_path", [Interrupt(), *sys.meta_path])
    from ftdecide import _entry

    with pytest.raises(SystemExit) as e:
        _entry.run()
    assert e.value.code == 130 and capsys.readouterr().err == "ftdecide: interrupted\n"
