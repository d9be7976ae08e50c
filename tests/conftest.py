import pathlib

import pytest

from ftdecide.probe.records import read_records

ROOT = pathlib.Path(__file__).resolve().parent.parent
SHARED = ROOT.parent / "shared" / "calibration"


def name_comparisons(names, skip) -> list[str]:
    """``file:line`` of every comparison in src/ftdecide/ against a string constant in ``names`` (alone or in a
    tuple, list or set), outside the files for which ``skip(path)`` is true: where code tests a registered
    unit's name instead of asking the unit."""
    import ast

    root = ROOT / "src" / "ftdecide"
    out = []
    for path in root.rglob("*.py"):
        if skip(path):
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Compare):
                for side in [node.left, *node.comparators]:
                    consts = [side] + (list(side.elts) if isinstance(side, (ast.Tuple, ast.List, ast.Set)) else [])
                    if any(isinstance(c, ast.Constant) and c.value in names for c in consts):
                        out.append(f"{path.relative_to(root)}:{node.lineno}")
    return out


def jsonl(path) -> list[dict]:
    """The records of one JSONL file: a grid, a trace or a run file (blank lines skipped)."""
    import json

    return [json.loads(x) for x in pathlib.Path(path).read_text().splitlines() if x.strip()]


def load_runs(include_shared=True):
    """Every measured run the project keeps, plus shared/calibration when it is beside the checkout."""
    return read_records(ROOT / "data" / "measurements", SHARED if include_shared else None)


@pytest.fixture(scope="session")
def runs():
    return load_runs()


class CliResult:
    """What one run of the command line left: exit status, stdout, stderr."""

    def __init__(self, exit_code: int, stdout: str, stderr: str):
        self.exit_code, self.stdout, self.stderr = exit_code, stdout, stderr

    @property
    def output(self) -> str:
        return self.stdout + self.stderr


def invoke(argv, env=None) -> CliResult:
    """``ftdecide ARGV`` through :func:`ftdecide.cli.main`, the one error boundary, with stdout and
    stderr captured (pipes, not a terminal)."""
    import contextlib
    import io
    import os

    from ftdecide.cli import main

    out, err = io.StringIO(), io.StringIO()
    saved = {k: os.environ.get(k) for k in (env or {})}
    os.environ.update(env or {})
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            code = main([str(a) for a in argv])
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
    return CliResult(code, out.getvalue(), err.getvalue())


def recommend_doc(*args) -> dict:
    """``ftdecide recommend ARGS --format json``, parsed (the run must succeed)."""
    import json

    r = invoke(["recommend", *args, "--format", "json"])
    assert r.exit_code == 0, r.output
    return json.loads(r.stdout)


def estimate_doc(*args) -> dict:
    """``ftdecide estimate ARGS --format json``, parsed (the run must succeed)."""
    import json

    r = invoke(["estimate", *args, "--format", "json"])
    assert r.exit_code == 0, r.output
    return json.loads(r.stdout)
