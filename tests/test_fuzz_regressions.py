"""Inputs that fuzzing (benchmarks/fuzz.py, atheris) and the property tests found to break a promise,
kept so that they stay fixed. Each comment says what went wrong before the fix."""

import contextlib
import io

import pytest

from ftdecide.decide import expr
from ftdecide.cli import main
from ftdecide.decide.rulenames import schema as rule_schema
from ftdecide.decide.rules import check_data, render_message
from ftdecide.files.yamlio import parse_yaml

SCHEMA = rule_schema()


def run(argv):
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(list(argv))
    return code, out.getvalue(), err.getvalue()


@pytest.mark.parametrize(
    "argv",
    [
        ["recommend", "--model", "llama-3.1-8b", "--gpu", "\x1e"],  # a record separator split the error into two lines
        ["estimate", "--model", "0\r0"],  # a carriage return did too
        ["estimate", "--model", "x\u2028y"],  # and a Unicode line separator
    ],
)
def test_control_characters_stay_on_one_line(argv):
    code, out, err = run(argv)
    assert code == 2 and out == "" and len(err.splitlines()) == 1


def test_python_syntax_warning_does_not_reach_stderr(capsys):
    # "1and true" made ast.parse print "SyntaxWarning: invalid decimal literal" to stderr
    with pytest.raises(expr.ExprError):
        expr.parse("1and true", SCHEMA)
    assert capsys.readouterr().err == ""


def test_nul_in_a_condition_is_named():
    # a NUL byte made ast.parse raise ValueError, reported as "too deeply nested"
    with pytest.raises(expr.ExprError, match="NUL"):
        expr.parse('task == "a\x00"', SCHEMA)


def test_huge_format_width_in_a_message_is_refused():
    # "{memory.full:999999999}" built a gigabyte string when the warning was rendered
    data = parse_yaml('rules:\n  - id: w\n    when: true\n    warn: "{memory.full:999999999}"\n', "r.yaml")
    problems = check_data(data, "r.yaml", SCHEMA)[0]
    assert [p.message for p in problems] == ["unsupported format '999999999' in message (width and precision up to 2 digits; no 'c')"]
    assert render_message("{memory.full:999999999} GiB", {"memory.full": 1.5}) == "{memory.full:999999999} GiB"
    assert render_message("{memory.full:.1f} GiB", {"memory.full": 1.25}) == "1.2 GiB"
