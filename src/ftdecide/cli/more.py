"""The commands beyond recommend, estimate and fit: batch, mix, probe, the catalogs and the rule files.
They register themselves on :data:`ftdecide.cli.app` when :mod:`ftdecide.cli` imports this module."""

from __future__ import annotations

import json
import sys
from typing import List, Optional

import typer

from .app import EXIT_INPUT, _config_fields, _console, _finite, _json, _train_config, app, rules_app
from .options import (
    BATCH_OPT,
    GC_OPT,
    LIGER_OPT,
    METHOD_OPT,
    OFFLOAD_ACT_OPT,
    OPTIMIZER_OPT,
    PRECISION_OPT,
    SEQ_OPT,
    TRAINER_HELP,
    BatchFmt,
    EstFmt,
    ModelsFmt,
    with_method_options,
)
from ..core.errors import InputError, one_line


@app.command()
def batch(
    file: str = typer.Argument(..., help="YAML: a list of scenarios (recommend's options, plus an optional name)"),
    format: BatchFmt = typer.Option(BatchFmt.json, "--format", help="json (one document), jsonl (one result a line) or csv"),
    rules: List[str] = typer.Option([], "--rules", help="extra rule file (repeatable)"),
    fail_if_infeasible: bool = typer.Option(False, help="exit 1 when any scenario has no feasible plan"),
    trainer: Optional[str] = typer.Option(None, "--trainer", help=f"{TRAINER_HELP}, for scenarios that name none (default trl)"),
) -> None:
    """Recommend for many scenarios in one call: one result each. Exit 2 only for bad input."""
    from ..decide.batch import CSV_COLUMNS, csv_row, result_json, run
    from ..decide.results import SCHEMA_VERSION
    from ..files.scenarios import parse_scenarios
    from ..files.yamlio import load_yaml

    from ..files.yamlio import BATCH_MAX_NODES

    scenarios = parse_scenarios(load_yaml(file, "scenarios file", BATCH_MAX_NODES), file)
    if trainer is not None:
        from .. import trainers

        try:
            trainers.known(trainer)
        except ValueError as e:
            raise InputError(f"--trainer: {e}") from None
        scenarios = [
            (n, sc if "trainer" in sc.model_fields_set else sc.model_copy(update={"trainer": trainer}), ln) for n, sc, ln in scenarios
        ]
    # Results go to a spool file as they come (memory holds one) and reach stdout only once every scenario
    # has a result: bad input found at scenario 9,000 still prints nothing but its one line.
    import shutil
    import tempfile

    bad: list[str] = []
    with tempfile.TemporaryFile("w+", encoding="utf-8") as spool, _progress(len(scenarios)) as advance:
        if format == BatchFmt.csv:
            import csv

            w = csv.DictWriter(spool, fieldnames=CSV_COLUMNS, lineterminator="\n")
            w.writeheader()
        elif format == BatchFmt.json:
            spool.write(f'{{\n  "schema_version": {json.dumps(SCHEMA_VERSION)},\n  "results": [')
        for i, (n, r) in enumerate(run(scenarios, file, list(rules))):
            if format == BatchFmt.csv:
                w.writerow(csv_row(n, r))
            elif format == BatchFmt.jsonl:
                spool.write(json.dumps(result_json(n, r), allow_nan=False) + "\n")  # each carries its schema_version
            else:
                doc = json.dumps(result_json(n, r), indent=2, allow_nan=False)
                spool.write(("," if i else "") + "\n    " + doc.replace("\n", "\n    "))
            if not r.plan.feasible:
                bad.append(n)
            advance()
        if format == BatchFmt.json:
            spool.write("\n  ]\n}\n")
        spool.seek(0)
        shutil.copyfileobj(spool, sys.stdout)
    if fail_if_infeasible and bad:
        sys.stderr.write(f"ftdecide: {len(bad)} scenario(s) infeasible: {one_line(', '.join(bad))}\n")
        raise typer.Exit(1)


class _progress:
    """A progress bar on stderr while a batch runs, when stderr is a terminal (never in a pipe or CI)."""

    def __init__(self, total: int):
        self.total, self.bar = total, None

    def __enter__(self):
        if sys.stderr.isatty() and self.total > 1:
            from rich.console import Console
            from rich.progress import Progress

            self.bar = Progress(console=Console(file=sys.stderr), transient=True)
            self.bar.start()
            task = self.bar.add_task("scenarios", total=self.total)
            return lambda: self.bar.advance(task)
        return lambda: None

    def __exit__(self, *exc):
        if self.bar is not None:
            self.bar.stop()
        return False


@app.command("mix")
def mix_cmd(
    tasks: List[str] = typer.Argument(..., help="TASK=N pairs: a task name and its number of examples"),
    temperature: float = typer.Option(0.7, help="weights ~ N^T: 1 proportional, 0 uniform"),
    cap: Optional[int] = typer.Option(None, help="count at most this many examples of a task when weighting"),
    max_upsample: float = typer.Option(10.0, help="no task repeated more than this many times per epoch"),
    epoch_size: Optional[int] = typer.Option(None, help="examples per epoch (default: all examples)"),
    format: EstFmt = typer.Option(EstFmt.table, "--format"),
) -> None:
    """Sampling weights for multi-task fine-tuning, with the effective examples per task per epoch."""
    from ..decide.mix import mix, parse_tasks
    from .render import mix_json, mix_table

    _finite(temperature=temperature, max_upsample=max_upsample)
    rows = mix(parse_tasks(list(tasks)), temperature, cap, max_upsample, epoch_size)
    if format == EstFmt.json:
        _json(mix_json(rows, temperature, cap, max_upsample))
    else:
        mix_table(rows, temperature, cap, max_upsample, _console())


@app.command()
@with_method_options()
def probe(
    model: Optional[str] = typer.Option(None, help="catalog name, Hugging Face id, config.json path, or a size"),
    method: str = METHOD_OPT,
    precision: str = PRECISION_OPT,
    optimizer: str = OPTIMIZER_OPT,
    seq_len: int = SEQ_OPT,
    batch_size: int = BATCH_OPT,
    gradient_checkpointing: Optional[bool] = GC_OPT,
    method_options: Optional[dict] = None,
    liger: bool = LIGER_OPT,
    offload_activations: bool = OFFLOAD_ACT_OPT,
    gpus: int = typer.Option(
        1, help="an N-GPU job: on N local GPUs through torchrun where the machine has them, else rank 0 under torch's fake process group"
    ),
    strategy: str = typer.Option(
        "auto", help="with --gpus N: fsdp, ddp or zero1-3 (ddp only on N local GPUs, the others also under the fake process group)"
    ),
    reentrant: bool = typer.Option(False, help="reentrant gradient checkpointing (use_reentrant=True)"),
    steps: int = typer.Option(3, min=2, max=100, help="training steps; tokens/s is taken from the fastest after the first"),
    from_json: Optional[str] = typer.Option(None, help="probe the plan of a 'recommend --format json' file"),
    grid: Optional[str] = typer.Option(None, help="JSON-lines file of probe records to run in one process"),
    out: Optional[str] = typer.Option(None, help="with --grid: append result lines to this file (default stdout)"),
    format: EstFmt = typer.Option(EstFmt.table, "--format"),
) -> None:
    """Measure real training steps on the local GPU (random weights, no download) beside the estimate.

    Needs the probe extra (pip install 'ftdecide[probe]') and a CUDA GPU."""
    from ..probe import session

    if sum(x is not None for x in (model, from_json, grid)) != 1:
        raise InputError("give exactly one of --model, --from-json or --grid")
    if grid:
        records = session.records_from_grid(grid)
    elif from_json:
        records = session.records_from_recommendation(from_json, reentrant=reentrant, steps=steps)
    else:
        cfg = _train_config(**_config_fields(locals()), **(method_options or {}))
        if cfg.world_size > 1 and not cfg.strategy_spec.probed:
            raise InputError(f"probe does not measure {cfg.strategy_spec.label} on several GPUs")
        records = session.records_from_config(model, cfg, reentrant=reentrant, steps=steps)
    sink = session.open_sink(out) if (grid and out) else None
    try:
        for rec in session.measure(records):
            if grid:
                (sink or sys.stdout).write(json.dumps(rec) + "\n")
                (sink or sys.stdout).flush()
            elif format == EstFmt.json:
                _json(rec)
            else:
                from .render import probe_table

                probe_table(rec, _console())
    finally:
        if sink:
            sink.close()


@app.command()
def models(
    family: Optional[str] = typer.Option(None, "--family", help="only this model_type (qwen3_moe, gemma3_text, llama, ...)"),
    format: ModelsFmt = typer.Option(ModelsFmt.table, "--format", help="table, json, or markdown (the README's table)"),
) -> None:
    """The model catalog: parameters, and the active ones a token passes through (mixture-of-experts)."""
    from ..files.catalog import models_of_family
    from .render import models_json, models_markdown, models_table

    archs = models_of_family(family)
    if format == ModelsFmt.json:
        _json(models_json(archs))
    elif format == ModelsFmt.markdown:
        typer.echo(models_markdown(archs), nl=False)
    else:
        models_table(archs, _console())


@app.command()
def gpus(format: EstFmt = typer.Option(EstFmt.table, "--format")) -> None:
    """The GPU catalog."""
    from ..files.catalog import gpus as all_gpus
    from .render import gpus_json, gpus_table

    if format == EstFmt.json:
        _json(gpus_json(all_gpus()))
    else:
        gpus_table(all_gpus(), _console())


@rules_app.command("show")
def rules_show(
    rules: List[str] = typer.Option([], "--rules", help="extra rule file (repeatable)"),
    format: EstFmt = typer.Option(EstFmt.table, "--format"),
) -> None:
    """List the rules in force (defaults plus --rules files)."""
    from ..decide import rulenames
    from ..decide.recommend import default_rule_paths
    from .render import rules_json, rules_table
    from ..decide.rules import load_rules

    rs = load_rules(default_rule_paths() + list(rules), rulenames.schema())
    if format == EstFmt.json:
        _json(rules_json(rs))
    else:
        rules_table(rs, _console())


@rules_app.command("schema")
def rules_schema_cmd() -> None:
    """The JSON Schema of rule files, for editors (yaml-language-server) to validate and complete them."""
    from ..decide import rulenames
    from ..decide.rules import json_schema

    _json(json_schema(rulenames.schema()))


@rules_app.command("check")
def rules_check(files: List[str] = typer.Argument(..., help="rule files to validate")) -> None:
    """Validate rule files; every problem as file:line:column: message [rule-id] (one problem: on stderr, like any bad
    input; several: on stdout, with their count on stderr); exit 2 if any."""
    from ..decide import rulenames
    from ..decide.rules import check_file

    schema = rulenames.schema()
    problems = [p for f in files for p in check_file(f, schema)]
    if len(problems) == 1:  # one problem: the one line every bad input gets, on stderr
        raise InputError(str(problems[0]))
    for p in problems:  # several: each on stdout (file:line:column: message [rule]), a count on stderr
        sys.stdout.write(f"{one_line(str(p))}\n")
    if problems:
        sys.stderr.write(f"ftdecide: error: {one_line(f'{len(problems)} problems in ' + ', '.join(files))}\n")
        raise typer.Exit(EXIT_INPUT)
    sys.stdout.write(f"{', '.join(files)}: ok\n")
