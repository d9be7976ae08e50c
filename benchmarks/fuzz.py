"""Coverage-guided fuzzing of the rule-file parser and the condition language (atheris, libFuzzer).

    pip install atheris
    python benchmarks/fuzz.py -max_total_time=600 benchmarks/fuzz_corpus   # seeds: default rules

Each input is split by its first byte: even bytes fuzz a condition (``expr.parse`` then
``expr.evaluate`` against a typical context), odd bytes fuzz a whole rule file (``yamlio.parse_yaml``
then ``rules.check_data``). The only acceptable outcomes are a value, ``ExprError`` or ``InputError``
(for files: a list of problems); anything else is a crash that libFuzzer saves as ``crash-*``; keep it
as a regression test in tests/test_fuzz_regressions.py. Without atheris, ``--hypothesis N`` runs the same
two targets on N random inputs each.
"""

from __future__ import annotations

import pathlib
import sys

ROOT = pathlib.Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "src"))


def _context(schema):
    env = {}
    for name, kind in schema.items():
        env[name] = {"number": 3.5, "string": "chat", "bool": True}[kind]
    env["budget"], env["dataset_size"] = float("inf"), 0
    return env


def targets():
    from ftdecide import expr, rules, yamlio
    from ftdecide.errors import InputError
    from ftdecide.recommend import rule_schema

    schema = rule_schema()
    env = _context(schema)

    def condition(text: str) -> None:
        try:
            tree = expr.parse(text, schema)
        except expr.ExprError:
            return
        try:
            expr.evaluate(tree, env)
        except expr.ExprError:
            pass

    def rule_file(text: str) -> None:
        try:
            data = yamlio.parse_yaml(text, "fuzz.yaml")
        except InputError:
            return
        problems = rules.check_data(data, "fuzz.yaml", schema)[0]
        for p in problems:
            assert isinstance(p.line, int) and p.line >= 1 and isinstance(p.message, str), p
            str(p)

    return condition, rule_file


def one_input(data: bytes, condition, rule_file) -> None:
    if not data:
        return
    text = data[1:].decode("utf-8", errors="replace")
    (condition if data[0] % 2 == 0 else rule_file)(text)


def main() -> None:
    if "--hypothesis" in sys.argv:
        from hypothesis import HealthCheck, given, settings, strategies as st

        n = int(sys.argv[sys.argv.index("--hypothesis") + 1])
        condition, rule_file = targets()

        @settings(max_examples=n, deadline=None, suppress_health_check=list(HealthCheck), database=None)
        @given(st.binary(max_size=2048))
        def run(data):
            one_input(data, condition, rule_file)

        run()
        print(f"hypothesis: {n} inputs, no crash")
        return
    import atheris

    with atheris.instrument_imports(include=["ftdecide"]):
        condition, rule_file = targets()
    atheris.Setup(sys.argv, lambda data: one_input(data, condition, rule_file))
    atheris.Fuzz()


if __name__ == "__main__":
    main()
