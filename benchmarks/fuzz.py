"""Coverage-guided fuzzing of the rule-file parser and the condition language (atheris, libFuzzer).

    pip install atheris
    python benchmarks/fuzz.py -max_total_time=600 benchmarks/fuzz_corpus   # seeds: default rules

Each input is split by its first byte (mod 5): a condition (``expr.parse`` then ``expr.evaluate``
against a typical context), a whole rule file (``yamlio.parse_yaml`` then ``rules.check_data``), a
``config.json`` (``json.loads``, ``arch_from_hf_config``, then ``estimate_memory`` of LoRA on it), the
emitters (the input, split at NUL bytes, becomes the model id, the model name and the dataset path of a
recommendation; every emitted Python file must parse with ``ast`` and give those strings back from its
literals, every YAML file must load and give them back), or YAML expansion (the input parsed as YAML:
it either loads within :data:`ftdecide.files.yamlio.MAX_EXPANDED_NODES` nodes, counted after the load, or is
refused with an InputError). The only acceptable outcomes are a value, ``ExprError`` or ``InputError``
(for rule files: a list of problems); anything else is a crash that libFuzzer saves as ``crash-*``;
keep it as a regression test in tests/test_fuzz_regressions.py. Without atheris, ``--hypothesis N``
runs the same targets on N random inputs each.
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
    from ftdecide.decide import expr, rules
    from ftdecide.files import yamlio
    from ftdecide.core.errors import InputError
    from ftdecide.decide.rulenames import schema as rule_schema

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

    def model_config(text: str) -> None:
        import json

        from ftdecide.core.estimator import TrainConfig, estimate_memory
        from ftdecide.files.hfconfig import arch_from_hf_config

        try:
            cfg = json.loads(text)
        except (ValueError, RecursionError):
            return
        try:
            arch = arch_from_hf_config(cfg, "fuzz.json")
        except InputError:
            return
        try:
            est = estimate_memory(arch, TrainConfig(method="lora", lora_rank=8))
        except InputError:  # a rank beyond the layers, or targets the model lacks
            return
        assert est.peak_allocated_gib > 0 and est.required_gib < float("inf"), est

    from ftdecide.emit import KINDS, emit
    from ftdecide.decide.recommend import Scenario, recommend

    base = recommend(Scenario(model="qwen2.5-7b", gpu="a100-80gb"))

    def emitters(text: str) -> None:
        import ast
        import dataclasses

        import yaml

        model_id, name, dataset = (text.split("\x00") + ["m", "n", "d"])[:3]
        if not model_id or not dataset:
            return
        res = dataclasses.replace(base, arch=base.arch.model_copy(update={"model_id": model_id, "name": name}))
        # the launch configs (accelerate, deepspeed) carry no model id, name or dataset
        for kind in (k for k in KINDS if k not in ("accelerate", "deepspeed")):
            out = emit(kind, res, dataset=dataset)
            if kind in ("peft", "trl", "hf"):
                found = {
                    n.targets[0].id: ast.literal_eval(n.value)
                    for n in ast.parse(out).body
                    if isinstance(n, ast.Assign) and isinstance(n.targets[0], ast.Name) and n.targets[0].id in ("MODEL", "DATASET")
                }
                assert found["MODEL"] == model_id and found.get("DATASET", dataset) == dataset, (kind, found)
                assert out.splitlines()[0] == "# -*- coding: utf-8 -*-"
            else:
                doc = yaml.safe_load(out)
                assert doc["base_model" if kind == "axolotl" else "model_name_or_path"] == model_id, kind

    def yaml_expansion(text: str) -> None:
        try:
            data = yamlio.parse_yaml(text, "fuzz.yaml")
        except InputError:
            return

        def count(node) -> int:
            if isinstance(node, dict):
                return 1 + sum(count(k) + count(v) for k, v in node.items())
            if isinstance(node, list):
                return 1 + sum(count(v) for v in node)
            return 1

        assert count(data) <= yamlio.MAX_EXPANDED_NODES + 1, "expanded past the limit"

    return condition, rule_file, model_config, emitters, yaml_expansion


def one_input(data: bytes, *targets) -> None:
    if not data:
        return
    text = data[1:].decode("utf-8", errors="replace")
    targets[data[0] % len(targets)](text)


def main() -> None:
    if "--hypothesis" in sys.argv:
        from hypothesis import HealthCheck, given, settings, strategies as st

        n = int(sys.argv[sys.argv.index("--hypothesis") + 1])
        fns = targets()

        @settings(max_examples=n, deadline=None, suppress_health_check=list(HealthCheck), database=None)
        @given(st.binary(max_size=2048))
        def run(data):
            one_input(data, *fns)

        run()
        print(f"hypothesis: {n} inputs, no crash")
        return
    import atheris

    with atheris.instrument_imports(include=["ftdecide"]):
        fns = targets()
    atheris.Setup(sys.argv, lambda data: one_input(data, *fns))
    atheris.Fuzz()


if __name__ == "__main__":
    main()
