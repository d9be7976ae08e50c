"""The shape of the code (issue 24): no module over 500 lines, no function over 100, and imports that go
one way: the units (methods, strategies, optimizers, trainers, levers) and the core arithmetic never import
the decision (rules, recommend, sizing, ...) or the edges (command line, rendering, files, catalogs, probe)."""

from __future__ import annotations

import ast

from conftest import ROOT

SRC = ROOT / "src" / "ftdecide"
UNITS = {"methods", "strategies", "optimizers", "trainers", "levers"}
# the layers are folders: a module's layer is its first folder (or its name, for the units' packages)
CORE = {"core"}
DECISION = {"decide"}
EDGES = {"cli", "emit", "files", "probe", "_entry", "__main__", "__init__"}


def _modules():
    for path in sorted(SRC.rglob("*.py")):
        parts = path.relative_to(SRC).with_suffix("").parts
        yield path, parts, ast.parse(path.read_text(encoding="utf-8"))


def test_every_name_of_the_layers_is_a_module_that_exists():
    tops = {parts[0] for _, parts, _ in _modules()}
    assert UNITS | CORE | DECISION | EDGES == tops, (UNITS | CORE | DECISION | EDGES) ^ tops


def test_no_module_over_500_lines_and_no_function_over_100():
    long_modules = [f"{p.relative_to(SRC)}: {n}" for p, _, _ in _modules() if (n := len(p.read_text().splitlines())) > 500]
    long_functions = [
        f"{p.relative_to(SRC)}:{f.lineno} {f.name}: {f.end_lineno - f.lineno + 1}"
        for p, _, tree in _modules()
        for f in ast.walk(tree)
        if isinstance(f, (ast.FunctionDef, ast.AsyncFunctionDef)) and f.end_lineno - f.lineno + 1 > 100
    ]
    assert long_modules == [] and long_functions == []


def _imported_tops(parts: tuple[str, ...], tree) -> set[str]:
    """The top-level ftdecide modules a module imports (relative imports, wherever they stand)."""
    package = list(parts[:-1]) if parts[-1] != "__init__" else list(parts[:-1])
    out = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.level:
            base = package[: len(package) - (node.level - 1)] if node.level > 1 else package
            names = [node.module] if node.module else [a.name for a in node.names]
            for name in names:
                out.add((base + name.split("."))[0])
    return out


def test_the_units_and_the_core_never_import_the_decision_or_the_edges():
    bad = []
    for path, parts, tree in _modules():
        if parts[0] in UNITS | CORE:
            wrong = _imported_tops(parts, tree) & (DECISION | EDGES)
            if wrong:
                bad.append(f"{path.relative_to(SRC)} imports {sorted(wrong)}")
    assert bad == []


def test_no_import_circles():
    """No two modules import each other, directly or through others, at run time (``TYPE_CHECKING``
    imports and a registry package's own submodules, which import it to register, aside)."""
    import sys

    def deps(parts, tree):
        skip = {
            id(m)
            for n in ast.walk(tree)
            if isinstance(n, ast.If) and getattr(n.test, "id", getattr(n.test, "attr", None)) == "TYPE_CHECKING"
            for m in ast.walk(n)
        }
        package = list(parts[:-1])
        out = set()
        for n in ast.walk(tree):
            if id(n) not in skip and isinstance(n, ast.ImportFrom) and n.level:
                base = package[: len(package) - (n.level - 1)] if n.level > 1 else package
                if n.module:
                    out.add(".".join(base + n.module.split(".")))
                    out |= {".".join(base + n.module.split(".") + [a.name]) for a in n.names}
        return out

    names = {}
    for _, parts, tree in _modules():
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        names[name] = deps(parts, tree)
    graph = {m: {d for d in ds if d in names and d != m} for m, ds in names.items()}
    sys.setrecursionlimit(max(sys.getrecursionlimit(), 5000))
    index: dict = {}
    low: dict = {}
    stack: list = []
    circles = []

    def visit(v):
        index[v] = low[v] = len(index)
        stack.append(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                circles.append(sorted(comp))

    for v in graph:
        if v not in index:
            visit(v)
    assert circles == []
