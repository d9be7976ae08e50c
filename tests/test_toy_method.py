"""Adding a method touches only its own file (issue 24): a toy LoRA variant written to one module in a
temporary folder, imported, is sized, planned and listed by every command, with no other change. Runs in
a child process so that the registry of this one stays as it is."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

from conftest import ROOT

TOY = textwrap.dedent(
    '''
    """A toy method: LoRA's terms under another name, its constants beside it."""
    from ftdecide.core.coefs import ActCoef
    from ftdecide.methods import EmitKeys, register
    from ftdecide.methods.lora import LORA_OPTIONS, Lora

    METHOD = register(
        Lora(
            name="toylora",
            label="toy LoRA",
            summary="LoRA under another name (a test of the registry)",
            fallback_order=9,
            display_order=9,
            adapter="lora",
            options=LORA_OPTIONS,
            emit_keys=EmitKeys(axolotl_adapter="lora", llamafactory_type="lora"),
            fitted=(
                ("toylora", ActCoef(a_h=0.0, a_q=9.59, a_kv=7.9, a_i=6.62, a_e=0.28, c_h=2.58, g=2.0, recompute=0.91, a_n=2.66), 0.586),
            ),
        )
    )
    '''
)

DRIVER = textwrap.dedent(
    """
    import contextlib, io, json, sys
    sys.path[:0] = [sys.argv[1], sys.argv[2]]
    import toy_method  # the one file
    from ftdecide.cli import main

    def run(*argv):
        out = io.StringIO()
        with contextlib.redirect_stdout(out):
            code = main(list(argv))
        return code, out.getvalue()

    results = {}
    for name, argv in {
        "estimate": ["estimate", "--model", "llama-3.2-1b", "--method", "toylora", "--lora-rank", "8", "--format", "json"],
        "lora": ["estimate", "--model", "llama-3.2-1b", "--method", "lora", "--lora-rank", "8", "--format", "json"],
        "recommend": ["recommend", "--model", "llama-3.2-1b", "--gpu", "l4", "--format", "json"],
        "schema": ["rules", "schema"],
        "fit": ["fit", "--model", "llama-3.2-1b", "--gpu", "l4", "--format", "json"],
        "emit": ["recommend", "--model", "llama-3.2-1b", "--gpu", "l4", "--rules", sys.argv[3], "--emit", "trl"],
    }.items():
        code, text = run(*argv)
        results[name] = [code, text]
    print(json.dumps(results))
    """
)


def test_a_toy_method_in_one_file_is_sized_planned_and_listed(tmp_path):
    (tmp_path / "toy_method.py").write_text(TOY)
    rules = tmp_path / "prefer-toy.yaml"
    rules.write_text('version: 1\nrules:\n  - id: toy\n    when: "true"\n    priority: 500\n    prefer: toylora\n')
    p = subprocess.run(
        [sys.executable, "-c", DRIVER, str(tmp_path), str(ROOT / "src"), str(rules)], capture_output=True, text=True, timeout=120
    )
    assert p.returncode == 0, p.stderr
    r = json.loads(p.stdout)
    assert all(code == 0 for code, _ in r.values()), {k: v[0] for k, v in r.items()}
    toy, lora = json.loads(r["estimate"][1]), json.loads(r["lora"][1])
    # LoRA's terms and constants under another name: the same figures
    assert toy["config"]["method"] == "toylora" and toy["peak_allocated_gib"] == lora["peak_allocated_gib"]
    assert "toylora" in [c["method"] for c in json.loads(r["recommend"][1])["candidates"]]
    assert "toylora" in r["schema"][1]
    assert "toylora" in [row["method"] for row in json.loads(r["fit"][1])["rows"]]
    assert "toylora r=16" in r["emit"][1] and "LoraConfig(" in r["emit"][1]
