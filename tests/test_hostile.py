"""Every bad input: one line on stderr naming the problem, exit 2, nothing on stdout, no traceback.

Run through the console-script entry point (``ftdecide.cli.main``), so usage errors that typer/click
raise before ftdecide's code runs are covered too."""

import json
import os
import sys

import pytest

from ftdecide.cli import main

M = ["--model", "llama-3.1-8b"]


def call(argv, monkeypatch, capsys):
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def one_line(argv, monkeypatch, capsys) -> str:
    code, out, err = call(argv, monkeypatch, capsys)
    assert code == 2, (code, out, err)
    assert out == ""
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("ftdecide: error: "), err
    assert "Traceback" not in err
    return lines[0]


NUMBERS = [
    (["recommend", *M, "--dataset-size", "-5"], "dataset-size"),
    (["recommend", *M, "--dataset-size", "0"], "dataset-size"),
    (["recommend", *M, "--dataset-size", "99999999999999999999"], "dataset-size"),
    (["recommend", *M, "--dataset-size", "1e6"], "dataset-size"),
    (["recommend", *M, "--gpus", "0"], "gpus"),
    (["recommend", *M, "--gpus", "100000"], "gpus"),
    (["recommend", *M, "--seq-len", "0"], "seq-len"),
    (["recommend", *M, "--seq-len", "8"], "seq-len"),
    (["recommend", *M, "--seq-len", "2000000000"], "seq-len"),
    (["recommend", *M, "--budget", "-1"], "budget"),
    (["recommend", *M, "--budget", "0"], "budget"),
    (["recommend", *M, "--budget", "nan"], "finite"),
    (["recommend", *M, "--budget", "inf"], "finite"),
    (["recommend", *M, "--budget", "1e400"], "finite"),
    (["recommend", *M, "--gpu-memory", "0.2"], "CUDA context"),
    (["recommend", *M, "--gpu-memory", "-3"], "gpu-memory"),
    (["recommend", *M, "--gpu-memory", "inf"], "finite"),
    (["recommend", *M, "--gpu", "h100", "--gpu-memory", "80"], "not both"),
    (["recommend", *M, "--epochs", "0"], "epochs"),
    (["recommend", *M, "--epochs", "1000"], "epochs"),
    (["recommend", *M, "--price-per-hour", "-1"], "price-per-hour"),
    (["recommend", *M, "--price-per-hour", "nan"], "finite"),
    (["estimate", *M, "--lora-rank", "0"], "lora-rank"),
    (["estimate", *M, "--lora-rank", "-4"], "lora-rank"),
    (["estimate", *M, "--lora-rank", "5000"], "exceeds"),
    (["estimate", *M, "--lora-rank", "999999999"], "lora-rank"),
    (["estimate", *M, "--seq-len", "0"], "seq-len"),
    (["estimate", *M, "--batch-size", "0"], "batch-size"),
    (["estimate", *M, "--batch-size", "1000000"], "batch-size"),
    (["estimate", *M, "--gpus", "0"], "gpus"),
    (["estimate", *M, "--lora-dropout", "nan"], "lora-dropout"),
    (["estimate", *M, "--lora-dropout", "1.5"], "lora-dropout"),
    (["estimate", *M, "--lora-dropout", "-0.1"], "lora-dropout"),
    (["estimate", *M, "--seq-len", "abc"], "seq-len"),
    (["fit", *M, "--gpu-memory", "nan"], "finite"),
    (["fit", *M, "--gpu-memory", "0.1"], "CUDA context"),
    (["fit", *M, "--seq-len", "0"], "seq-len"),
    (["fit", *M, "--lora-rank", "5000"], "exceeds"),
]

NAMES = [
    (["recommend", "--model", "llama-3.1-8bb"], "did you mean llama-3.1-8b"),
    (["recommend", *M, "--gpu", "rtx-4900"], "did you mean rtx-4090"),
    (["recommend", *M, "--task", "poetry"], "task"),
    (["recommend", *M, "--quality", "great"], "quality"),
    (["recommend", *M, "--serving", "everywhere"], "serving"),
    (["recommend", *M, "--optimizer", "lion"], "optimizer"),
    (["estimate", *M, "--method", "houlsby"], "method"),
    (["estimate", *M, "--precision", "fp8"], "precision"),
    (["estimate", *M, "--lora-targets", "w_proj"], "w_proj"),
    (["estimate", "--model", ""], "empty"),
    (["estimate", "--model", "0b"], "outside"),
    (["estimate", "--model", "9000b"], "outside"),
    (["recommend"], "--model"),
    (["recommend", *M, "--modle", "x"], "No such option"),
    (["recommend", *M, "--format", "yaml"], "format"),
    (["frobnicate"], "No such command"),
    (["recommend", *M, "--emit", "deepspeed"], "emit"),
    (["batch"], "FILE"),
    (["mix"], "TASKS"),
]


@pytest.mark.parametrize("argv,needle", NUMBERS + NAMES)
def test_bad_argument(argv, needle, monkeypatch, capsys):
    assert needle.lower() in one_line(argv, monkeypatch, capsys).lower()


def _files(tmp):
    big = tmp / "big.yaml"
    big.write_text("model: llama-3.1-8b\n" + "# padding\n" * 120_000)
    bomb = "a: &a [x, x, x, x, x, x, x, x, x, x]\n" + "".join(
        f"{chr(98 + i)}: &{chr(98 + i)} [{', '.join([f'*{chr(97 + i)}'] * 10)}]\n" for i in range(20)
    )
    files = {
        "empty.yaml": "",
        "latin1.yaml": b"model: llama\xe9\n",
        "syntax.yaml": "model: llama-3.1-8b\ntask: [chat\n",
        "tab.yaml": "model: x\n\tgpu: y\n",
        "pytag.yaml": "model: !!python/object/apply:os.system ['echo pwned']\n",
        "bomb.yaml": bomb,
        "dupe.yaml": "model: llama-3.1-8b\nmodel: mistral-7b\n",
        "unknown.yaml": "model: llama-3.1-8b\ncolour: blue\n",
        "wrongtype.yaml": "model: llama-3.1-8b\ntask: instruction\ndataset_size: lots\n",
        "list.yaml": "- model: llama-3.1-8b\n",
        "deep.yaml": "a: " + "[" * 200 + "]" * 200 + "\n",
    }
    for name, text in files.items():
        (tmp / name).write_bytes(text if isinstance(text, bytes) else text.encode())
    return big


SCENARIOS = [
    ("missing.yaml", "no such file"),
    (".", "directory"),
    ("empty.yaml", "empty.yaml"),
    ("latin1.yaml", "UTF-8"),
    ("syntax.yaml", "syntax.yaml:3:"),
    ("tab.yaml", "tab.yaml:2:"),
    ("pytag.yaml", "Python tags are not allowed"),
    ("bomb.yaml", "alias"),
    ("big.yaml", "1 MiB"),
    ("dupe.yaml", "dupe.yaml:2:"),
    ("unknown.yaml", "unknown.yaml:2: colour: unknown field"),
    ("wrongtype.yaml", "wrongtype.yaml:3: dataset-size"),
    ("list.yaml", "mapping"),
    ("deep.yaml", "deep"),
]


@pytest.mark.parametrize("name,needle", SCENARIOS)
def test_bad_scenario_file(name, needle, tmp_path, monkeypatch, capsys):
    _files(tmp_path)
    monkeypatch.chdir(tmp_path)
    line = one_line(["recommend", "--scenario", name], monkeypatch, capsys)
    assert needle.lower() in line.lower()
    assert "pwned" not in line


CONFIGS = [
    ({"foo": 1}, "not a model config"),
    ([1, 2], "not a model config"),
    ({"model_type": "bert", "hidden_size": 768}, "not supported"),
    ({"model_type": "llama", "hidden_size": 4096}, "missing"),
    (
        {
            "model_type": "llama",
            "hidden_size": -1,
            "intermediate_size": 1,
            "num_hidden_layers": 1,
            "num_attention_heads": 1,
            "vocab_size": 1,
        },
        "positive",
    ),
    (
        {
            "model_type": "llama",
            "hidden_size": 4096,
            "intermediate_size": 11008,
            "num_hidden_layers": 32,
            "num_attention_heads": 32,
            "num_key_value_heads": 5,
            "vocab_size": 32000,
        },
        "multiple",
    ),
    (
        {
            "model_type": "llama",
            "hidden_size": True,
            "intermediate_size": 1,
            "num_hidden_layers": 1,
            "num_attention_heads": 1,
            "vocab_size": 1,
        },
        "positive",
    ),
]


@pytest.mark.parametrize("cfg,needle", CONFIGS)
def test_bad_config_json(cfg, needle, tmp_path, monkeypatch, capsys):
    p = tmp_path / "config.json"
    p.write_text(json.dumps(cfg))
    assert needle in one_line(["estimate", "--model", str(p)], monkeypatch, capsys)


@pytest.mark.parametrize("text,needle", [("{not json", "config.json:1:2"), ('{"a": 1, "a": 2}', "duplicate"), ("[" * 100000, "deep")])
def test_broken_config_json(text, needle, tmp_path, monkeypatch, capsys):
    p = tmp_path / "config.json"
    p.write_text(text)
    assert needle in one_line(["estimate", "--model", str(p)], monkeypatch, capsys)


def test_directory_without_config_json(tmp_path, monkeypatch, capsys):
    assert "no such file" in one_line(["estimate", "--model", str(tmp_path) + os.sep], monkeypatch, capsys).lower()


RULES = [
    ("rules:\n  - id: a\n    when: true\n    colour: red\n", ":4:", "[a]"),
    ('rules:\n  - id: a\n    when: tsk == "chat"\n', ":3:11", "unknown name 'tsk'"),
    ("rules:\n  - id: a\n    when: task > 3\n", ":3:", "type error"),
    ("rules:\n  - id: a\n    when: true\n    prefer: full\n    forbid: [full]\n", ":5:", "conflicting effects"),
    ("rules:\n  - id: a\n    when: " + "not " * 40 + "true\n", ":3:", "nested deeper"),
    ('rules:\n  - id: a\n    when: true\n    warn: "{memory.full:999999999}"\n', ":2:", "unsupported format"),
    ('rules:\n  - id: a\n    when: "1and true"\n', ":3:12", "true/false operands"),  # and no SyntaxWarning on stderr
    ("rules:\n  - id: Bad Id\n    when: true\n", ":2:", "id"),
    ("version: 2\nrules: []\n", ":1:", "version"),
]


@pytest.mark.parametrize("text,pos,needle", RULES)
def test_bad_rules_file_in_recommend(text, pos, needle, tmp_path, monkeypatch, capsys):
    p = tmp_path / "team.yaml"
    p.write_text(text)
    line = one_line(["recommend", *M, "--rules", str(p)], monkeypatch, capsys)
    assert f"{p}{pos}" in line and needle in line


def test_division_by_zero_in_a_rule_at_evaluation(tmp_path, monkeypatch, capsys):
    p = tmp_path / "team.yaml"
    p.write_text("rules:\n  - id: ratio\n    when: dataset_size / (gpus - 1) > 10\n")
    line = one_line(["recommend", *M, "--rules", str(p)], monkeypatch, capsys)
    assert "division by zero" in line and "ratio" in line and f"{p}:" in line


def test_rules_check_reports_all_problems_with_lines(tmp_path, monkeypatch, capsys):
    p = tmp_path / "team.yaml"
    p.write_text(
        "".join(t.replace("rules:\n", "").replace("id: a", f"id: r{i}") for i, (t, _, _) in enumerate(RULES[:5])).join(["rules:\n", ""])
    )
    code, out, err = call(["rules", "check", str(p)], monkeypatch, capsys)
    assert code == 2 and len(out.splitlines()) == 5 and len(err.splitlines()) == 1
    for i, ln in enumerate(out.splitlines()):
        assert ln.startswith(f"{p}:") and ln.endswith(f"[r{i}]")


def test_json_output_stays_one_document_with_warnings(monkeypatch, capsys):
    code, out, err = call(["recommend", "--model", "13b", "--gpu", "t4", "--format", "json"], monkeypatch, capsys)
    assert code == 0 and err == ""
    doc = json.loads(out)
    assert len(doc["warnings"]) >= 2  # bare size assumed; no bf16 on a T4


def test_no_color_and_pipes_give_plain_text(monkeypatch, capsys):
    import io

    from ftdecide import cli

    class Tty(io.StringIO):
        def isatty(self):
            return True

    for env, tty in (({"NO_COLOR": "1"}, True), ({}, False)):
        buf = Tty() if tty else io.StringIO()
        monkeypatch.setattr(sys, "stdout", buf)
        for k in ("NO_COLOR",):
            monkeypatch.delenv(k, raising=False)
        for k, v in env.items():
            monkeypatch.setenv(k, v)
        cli._console().print("[bold red]fits[/] 12.5 GiB")
        assert "\x1b" not in buf.getvalue() and "fits 12.5 GiB" in buf.getvalue()
    monkeypatch.delenv("NO_COLOR", raising=False)
    buf = Tty()
    monkeypatch.setattr(sys, "stdout", buf)
    cli._console().print("[bold red]fits[/]")
    assert "\x1b[" in buf.getvalue()  # a terminal without NO_COLOR does get colour


def test_rich_markup_in_user_text_is_printed_literally(tmp_path, monkeypatch, capsys):
    # a rule's note, a task name or a model name with "[/...]" used to reach rich as markup (MarkupError)
    p = tmp_path / "team.yaml"
    p.write_text('rules:\n  - id: markup\n    when: task in ["chat", "code"]\n    note: "[/oops] [bold red]shout"\n')
    code, out, err = call(["recommend", *M, "--task", "chat", "--rules", str(p)], monkeypatch, capsys)
    assert code == 0 and "[/oops] [bold red]shout" in out and err == ""
    code, out, err = call(["rules", "show", "--rules", str(p)], monkeypatch, capsys)
    assert code == 0 and 'task in ["chat", "code"]' in out
    code, out, err = call(["mix", "[/x]=5", "b=3"], monkeypatch, capsys)
    assert code == 0 and "[/x]" in out
    cfg = tmp_path / "config.json"
    cfg.write_text(
        json.dumps(
            {
                "_name_or_path": "[/evil]",
                "model_type": "llama",
                "hidden_size": 512,
                "intermediate_size": 1024,
                "num_hidden_layers": 2,
                "num_attention_heads": 8,
                "vocab_size": 1000,
            }
        )
    )
    for cmd in (["estimate"], ["fit"], ["recommend"]):
        code, out, err = call([*cmd, "--model", str(cfg)], monkeypatch, capsys)
        assert code == 0 and "[/evil]" in out, (cmd, err)


@pytest.mark.parametrize(
    "exc, needle",
    [
        (PermissionError(13, "Permission denied"), "permission denied"),
        (OSError(5, "Input/output error"), "cannot read (Input/output error)"),
    ],
)
def test_unreadable_file_is_one_line(exc, needle, tmp_path, monkeypatch, capsys):
    """A file that exists but cannot be opened. The tests run as root, which chmod cannot lock out, so
    open() itself is made to fail the way the kernel reports it."""
    import builtins

    f = tmp_path / "scenario.yaml"
    f.write_text("model: llama-3.1-8b\n")
    real_open = builtins.open

    def failing_open(path, *a, **k):
        if str(path) == str(f):
            raise exc
        return real_open(path, *a, **k)

    monkeypatch.setattr(builtins, "open", failing_open)
    line = one_line(["recommend", "--scenario", str(f)], monkeypatch, capsys)
    assert line == f"ftdecide: error: {f}: {needle}"
