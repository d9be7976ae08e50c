"""The command line: parse, call the core, render. Every InputError is one line on stderr, exit 2."""

from __future__ import annotations

import json
import math
import os
import sys
from enum import Enum
from typing import List, Optional

import typer

from .errors import InputError, one_line

app = typer.Typer(add_completion=True, no_args_is_help=True, help="Decide how to fine-tune a language model - and why.")
rules_app = typer.Typer(no_args_is_help=True, help="Show and check rule files.")
app.add_typer(rules_app, name="rules")


class Fmt(str, Enum):
    table = "table"
    json = "json"
    markdown = "markdown"


class EstFmt(str, Enum):
    table = "table"
    json = "json"


class BatchFmt(str, Enum):
    json = "json"
    csv = "csv"


class EmitKind(str, Enum):
    peft = "peft"
    trl = "trl"
    axolotl = "axolotl"
    llamafactory = "llamafactory"


# Options shared by estimate, fit and probe ("the same flags as estimate").
MODEL_OPT = typer.Option(..., help="catalog name, Hugging Face id, config.json path, or a size")
METHOD_OPT = typer.Option("lora", help="full, lora or qlora")
PRECISION_OPT = typer.Option("bf16", help="full FT: bf16 (bf16 weights and states) or mixed (fp32 master weights)")
OPTIMIZER_OPT = typer.Option("adamw", help="adamw, adamw8bit, sgd, adafactor")
SEQ_OPT = typer.Option(2048, help="tokens per sequence")
BATCH_OPT = typer.Option(1, help="micro-batch size")
GC_OPT = typer.Option(True, "--gradient-checkpointing/--no-gradient-checkpointing")
RANK_OPT = typer.Option(16, help="LoRA rank")
TARGETS_OPT = typer.Option("all-linear", help="all-linear, attn, mlp, qv, or names like q_proj,v_proj")
DROPOUT_OPT = typer.Option(0.05, help="LoRA dropout")
GPUS_OPT = typer.Option(1, help="GPUs for ZeRO-3/FSDP sharding")


def _train_config(**fields):
    """TrainConfig from command-line values; NaN and infinity are refused by name."""
    from .estimator import TrainConfig

    _finite(lora_dropout=fields.get("lora_dropout"))
    return TrainConfig(**fields)


def _console():
    from rich.console import Console

    # NO_COLOR (https://no-color.org: set and not empty) or a pipe: plain text, no escape codes at all.
    tty = sys.stdout.isatty()
    plain = bool(os.environ.get("NO_COLOR")) or not tty
    return Console(file=sys.stdout, color_system=None if plain else "auto", force_terminal=False if plain else None, no_color=plain,
                   highlight=not plain, width=None if tty else 140, soft_wrap=False)


def _fail(msg: str) -> None:
    sys.stderr.write(f"ftdecide: error: {one_line(msg)}\n")
    raise typer.Exit(2)


def _validation_line(e) -> str:
    err = e.errors()[0]
    where = ".".join(str(x) for x in err["loc"]) or "input"
    return f"{where.replace('_', '-')}: {err['msg']}"


def _run(fn):
    from pydantic import ValidationError

    try:
        return fn()
    except InputError as e:
        _fail(str(e))
    except ValidationError as e:
        _fail(_validation_line(e))
    except ValueError as e:
        _fail(str(e))


def _finite(**values) -> None:
    """NaN and infinity pass typer's float parsing; refuse them by option name."""
    for k, v in values.items():
        if isinstance(v, float) and not math.isfinite(v):
            raise InputError(f"--{k.replace('_', '-')}: must be a finite number")


def _scenario_from_file(path: str) -> dict:
    from .yamlio import LineDict, load_yaml

    data = load_yaml(path, "scenario file")
    if not isinstance(data, dict):
        raise InputError(f"{path}:1:1: a scenario file is a mapping of recommend's options")
    out = {}
    for k, v in data.items():
        key = str(k).replace("-", "_")
        if key == "rules":
            continue
        out[key] = v
    if isinstance(data, LineDict):
        out["_lines"] = data.key_lines
    return out


@app.command()
def recommend(
    model: Optional[str] = typer.Option(None, help="catalog name, Hugging Face id, path to config.json, or a size like 13b"),
    gpu: Optional[str] = typer.Option(None, help="GPU from 'ftdecide gpus' (default a100-80gb)"),
    gpu_memory: Optional[float] = typer.Option(None, help="GPU memory in GiB, instead of --gpu"),
    gpus: Optional[int] = typer.Option(None, help="number of GPUs (ZeRO-3/FSDP beyond 1)"),
    dataset_size: Optional[int] = typer.Option(None, help="training examples"),
    seq_len: Optional[int] = typer.Option(None, help="tokens per example"),
    task: Optional[str] = typer.Option(None, help="chat, instruction, style, classification, domain, code, math, continued-pretraining"),
    quality: Optional[str] = typer.Option(None, help="prototype, production, best"),
    budget: Optional[float] = typer.Option(None, help="USD"),
    serving: Optional[str] = typer.Option(None, help="single, multi-tenant, latency-critical"),
    epochs: Optional[int] = typer.Option(None),
    price_per_hour: Optional[float] = typer.Option(None, help="USD per GPU-hour, overrides the catalog"),
    precision: Optional[str] = typer.Option(None, help="full fine-tuning precision: bf16 or mixed"),
    optimizer: Optional[str] = typer.Option(None, help="adamw, adamw8bit, sgd, adafactor"),
    rules: List[str] = typer.Option([], "--rules", help="extra rule file (repeatable)"),
    scenario: Optional[str] = typer.Option(None, help="YAML file with the same fields"),
    explain: bool = typer.Option(False, help="show the rules fired, assumptions and memory breakdowns"),
    format: Fmt = typer.Option(Fmt.table, "--format"),
    emit: Optional[EmitKind] = typer.Option(None, "--emit", help="also write a training config: peft, trl, axolotl, llamafactory"),
    out: Optional[str] = typer.Option(None, "--out", help="file for --emit (overwritten); without it the config goes to stdout instead of the recommendation"),
    dataset: str = typer.Option("train.jsonl", "--dataset", help="training data path written into --emit configs"),
) -> None:
    """Recommend full fine-tuning, LoRA or QLoRA for a model, GPUs, data and goal."""

    def go():
        from .recommend import recommend as core, validate_scenario

        fields: dict = {}
        lines = {}
        if scenario:
            fields = _scenario_from_file(scenario)
            lines = fields.pop("_lines", {})
        cli = dict(model=model, gpu=gpu, gpu_memory=gpu_memory, gpus=gpus, dataset_size=dataset_size, seq_len=seq_len, task=task,
                   quality=quality, budget=budget, serving=serving, epochs=epochs, price_per_hour=price_per_hour, precision=precision, optimizer=optimizer)
        for k, v in cli.items():
            if v is not None:
                if isinstance(v, float) and not math.isfinite(v):
                    raise InputError(f"--{k.replace('_', '-')}: must be a finite number")
                fields[k] = v
        if "model" not in fields:
            raise InputError("--model is required (or 'model:' in --scenario)")
        sc = validate_scenario(fields, scenario, lines)
        return core(sc, list(rules)), sc

    res, sc = _run(go)
    if emit is not None:
        def make():
            from .catalog import resolve_model
            from .emit import emit as emit_config

            return emit_config(emit.value, res, resolve_model(sc.model), dataset=dataset)

        text = _run(make)
        if out is None:
            sys.stdout.write(text)
            return
        try:
            with open(out, "w", encoding="utf-8") as fh:
                fh.write(text)
        except OSError as e:
            _fail(f"{out}: cannot write ({e.strerror or e})")
        res = {**res, "emitted": {"kind": emit.value, "path": out}}
    if format == Fmt.json:
        sys.stdout.write(json.dumps(res, indent=2) + "\n")
    elif format == Fmt.markdown:
        from .render import recommendation_markdown

        sys.stdout.write(recommendation_markdown(res))
    else:
        from .render import recommendation_table

        recommendation_table(res, _console(), explain)


@app.command()
def estimate(
    model: str = MODEL_OPT,
    method: str = METHOD_OPT,
    precision: str = PRECISION_OPT,
    optimizer: str = OPTIMIZER_OPT,
    seq_len: int = SEQ_OPT,
    batch_size: int = BATCH_OPT,
    gradient_checkpointing: bool = GC_OPT,
    lora_rank: int = RANK_OPT,
    lora_targets: str = TARGETS_OPT,
    lora_dropout: float = DROPOUT_OPT,
    gpus: int = GPUS_OPT,
    offload_optimizer: bool = typer.Option(False, help="optimizer states in CPU memory"),
    format: EstFmt = typer.Option(EstFmt.table, "--format"),
) -> None:
    """Memory breakdown of one training configuration (GiB = 2^30 bytes)."""

    def go():
        from .catalog import resolve_model
        from .estimator import estimate_memory

        arch = resolve_model(model)
        cfg = _train_config(method=method, precision=precision, optimizer=optimizer, seq_len=seq_len, batch_size=batch_size,
                            gradient_checkpointing=gradient_checkpointing, lora_rank=lora_rank, lora_targets=lora_targets,
                            lora_dropout=lora_dropout, gpus=gpus, offload_optimizer=offload_optimizer)
        return arch, cfg, estimate_memory(arch, cfg)

    arch, cfg, est = _run(go)
    d = est.as_dict()
    if format == EstFmt.json:
        d = {"model": arch.name, "config": cfg.model_dump(), **d}
        sys.stdout.write(json.dumps(d, indent=2) + "\n")
    else:
        from .render import estimate_table

        estimate_table(d, f"{arch.name}: {method} ({optimizer}), seq {seq_len} x micro-batch {batch_size}", _console())


@app.command()
def fit(
    model: str = MODEL_OPT,
    gpu: Optional[str] = typer.Option(None, help="GPU from 'ftdecide gpus' (default a100-80gb)"),
    gpu_memory: Optional[float] = typer.Option(None, help="GPU memory in GiB, instead of --gpu"),
    gpus: int = GPUS_OPT,
    seq_len: int = SEQ_OPT,
    precision: str = PRECISION_OPT,
    optimizer: str = OPTIMIZER_OPT,
    lora_rank: int = RANK_OPT,
    lora_targets: str = TARGETS_OPT,
    lora_dropout: float = DROPOUT_OPT,
    format: EstFmt = typer.Option(EstFmt.table, "--format"),
) -> None:
    """Largest micro-batch (at --seq-len) and longest sequence (at micro-batch 1) that fit, per method."""

    def go():
        from .catalog import resolve_model
        from .fit import fit_table
        from .recommend import Scenario, resolve_hardware

        _finite(gpu_memory=gpu_memory)
        arch = resolve_model(model)
        hw = resolve_hardware(Scenario(model=model, gpu=gpu, gpu_memory=gpu_memory, gpus=gpus))
        base = _train_config(precision=precision, optimizer=optimizer, seq_len=seq_len, lora_rank=lora_rank, lora_targets=lora_targets,
                             lora_dropout=lora_dropout, gpus=gpus)
        return arch, hw, fit_table(arch, hw.memory_gib, seq_len, base)

    arch, hw, rows = _run(go)
    doc = {"model": arch.name, "gpu": hw.name, "gpus": gpus, "memory_gib": hw.memory_gib, "seq_len": seq_len,
           "rows": [r.__dict__ for r in rows]}
    if format == EstFmt.json:
        sys.stdout.write(json.dumps(doc, indent=2) + "\n")
        return
    from rich.table import Table

    from .render import esc

    t = Table(title=esc(f"{arch.name} on {gpus}x {hw.name} ({hw.memory_gib:g} GiB each)"))
    for c in ("method", "checkpointing", f"max micro-batch @ {seq_len}", "max seq len @ 1", f"GiB @ 1 x {seq_len}"):
        t.add_column(c, justify="left" if c in ("method", "checkpointing") else "right")
    for r in rows:
        t.add_row(r.method, "on" if r.gradient_checkpointing else "off", str(r.max_micro_batch) if r.max_micro_batch else "does not fit",
                  f"{r.max_seq_len:,}" if r.max_seq_len else "does not fit", f"{r.required_gib_at_1:.1f}")
    _console().print(t)


@app.command()
def batch(
    file: str = typer.Argument(..., help="YAML: a list of scenarios (recommend's options, plus an optional name)"),
    format: BatchFmt = typer.Option(BatchFmt.json, "--format"),
    rules: List[str] = typer.Option([], "--rules", help="extra rule file (repeatable)"),
    fail_if_infeasible: bool = typer.Option(False, help="exit 1 when any scenario has no feasible plan"),
) -> None:
    """Recommend for many scenarios in one call: one result each. Exit 2 only for bad input."""

    def go():
        from .batch import parse_scenarios, run
        from .yamlio import load_yaml

        return run(parse_scenarios(load_yaml(file, "scenarios file"), file), file, list(rules))

    results = _run(go)
    if format == BatchFmt.json:
        from .recommend import SCHEMA_VERSION

        sys.stdout.write(json.dumps({"schema_version": SCHEMA_VERSION, "results": results}, indent=2) + "\n")
    else:
        import csv

        from .batch import CSV_COLUMNS, csv_row

        w = csv.DictWriter(sys.stdout, fieldnames=CSV_COLUMNS, lineterminator="\n")
        w.writeheader()
        for r in results:
            w.writerow(csv_row(r))
    if fail_if_infeasible and not all(r["recommendation"]["feasible"] for r in results):
        bad = [r["name"] for r in results if not r["recommendation"]["feasible"]]
        sys.stderr.write(f"ftdecide: {len(bad)} scenario(s) infeasible: {one_line(', '.join(bad))}\n")
        raise typer.Exit(1)


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

    def go():
        from .mix import mix, parse_tasks

        _finite(temperature=temperature, max_upsample=max_upsample)
        return mix(parse_tasks(list(tasks)), temperature, cap, max_upsample, epoch_size)

    rows = _run(go)
    if format == EstFmt.json:
        doc = {"temperature": temperature, "cap": cap, "max_upsample": max_upsample,
               "tasks": [{"task": r.task, "examples": r.examples, "weight": round(r.weight, 6), "per_epoch": round(r.per_epoch, 1),
                          "repeats": round(r.repeats, 4)} for r in rows]}
        sys.stdout.write(json.dumps(doc, indent=2) + "\n")
        return
    from rich.table import Table

    from .render import esc

    t = Table(title=f"task mix (T={temperature:g}{f', cap {cap:,}' if cap else ''}, at most {max_upsample:g}x per epoch)")
    for c in ("task", "examples", "weight", "per epoch", "repeats"):
        t.add_column(c, justify="left" if c == "task" else "right")
    for r in rows:
        t.add_row(esc(r.task), f"{r.examples:,}", f"{r.weight:.3f}", f"{r.per_epoch:,.0f}", f"{r.repeats:.2f}x")
    _console().print(t)


def _probe_records(path: str) -> list[dict]:
    """Probe records of a grid file: one JSON object per line (see ftdecide.probe.records)."""
    from .probe.records import arch_from_record, config_from_record
    from .yamlio import read_text

    out = []
    for i, line in enumerate(read_text(path, "grid file").splitlines(), 1):
        if not line.strip():
            continue
        try:
            rec = json.loads(line)
            if not isinstance(rec, dict):
                raise ValueError("not a JSON object")
            arch_from_record(rec), config_from_record(rec)
        except (ValueError, KeyError, TypeError) as e:
            what = f"missing field {e}" if isinstance(e, KeyError) else (_validation_line(e) if hasattr(e, "errors") else str(e))
            raise InputError(f"{path}:{i}: not a probe record: {what}") from None
        except InputError as e:
            raise InputError(f"{path}:{i}: {e}") from None
        out.append(rec)
    if not out:
        raise InputError(f"{path}: no probe records")
    return out


@app.command()
def probe(
    model: Optional[str] = typer.Option(None, help="catalog name, Hugging Face id, config.json path, or a size"),
    method: str = METHOD_OPT,
    precision: str = PRECISION_OPT,
    optimizer: str = OPTIMIZER_OPT,
    seq_len: int = SEQ_OPT,
    batch_size: int = BATCH_OPT,
    gradient_checkpointing: bool = GC_OPT,
    lora_rank: int = RANK_OPT,
    lora_targets: str = TARGETS_OPT,
    lora_dropout: float = DROPOUT_OPT,
    reentrant: bool = typer.Option(False, help="reentrant gradient checkpointing (use_reentrant=True)"),
    steps: int = typer.Option(3, min=2, max=100, help="training steps; tokens/s is taken from the fastest after the first"),
    from_json: Optional[str] = typer.Option(None, help="probe the plan of a 'recommend --format json' file"),
    grid: Optional[str] = typer.Option(None, help="JSON-lines file of probe records to run in one process"),
    out: Optional[str] = typer.Option(None, help="with --grid: append result lines to this file (default stdout)"),
    format: EstFmt = typer.Option(EstFmt.table, "--format"),
) -> None:
    """Measure real training steps on the local GPU (random weights, no download) beside the estimate.

    Needs the probe extra (pip install 'ftdecide[probe]') and a CUDA GPU."""

    def go():
        from .catalog import resolve_model
        from .probe.records import config_from_recommendation, record_from_config

        if sum(x is not None for x in (model, from_json, grid)) != 1:
            raise InputError("give exactly one of --model, --from-json or --grid")
        if grid:
            return _probe_records(grid)
        if from_json:
            from .yamlio import load_json

            name, cfg = config_from_recommendation(load_json(from_json, "recommendation"), from_json)
            arch = resolve_model(name)
        else:
            arch = resolve_model(model)
            cfg = _train_config(method=method, precision=precision, optimizer=optimizer, seq_len=seq_len, batch_size=batch_size,
                                gradient_checkpointing=gradient_checkpointing, lora_rank=lora_rank, lora_targets=lora_targets,
                                lora_dropout=lora_dropout)
        from .estimator import estimate_memory

        estimate_memory(arch, cfg)  # a rank or target the model lacks is an input error before any GPU work
        return [record_from_config(arch, cfg, reentrant=reentrant, steps=steps)]

    records = _run(go)
    from .probe import runner

    why = runner.unavailable([r["method"] for r in records] + [r.get("optim", "") for r in records])
    if why:
        _fail(why)
    from .catalog import gpu_for_device
    from .probe.records import compare

    try:
        sink = open(out, "a", encoding="utf-8") if (grid and out) else None
    except OSError as e:
        _fail(f"{out}: cannot append: {e.strerror}")
    try:
        for rec in runner.run_grid(records):
            g = gpu_for_device(rec.get("software", {}).get("gpu", ""))
            rec.update(compare(rec, g.bf16_tflops if g else None, g.memory_bandwidth_gbs if g else None))
            if grid:
                (sink or sys.stdout).write(json.dumps(rec) + "\n")
                (sink or sys.stdout).flush()
            elif format == EstFmt.json:
                sys.stdout.write(json.dumps(rec, indent=2) + "\n")
            else:
                from .render import probe_table

                probe_table(rec, _console())
    except Exception as e:  # noqa: BLE001 - a failure inside torch is reported in one line, not a traceback
        _fail(f"probe failed: {type(e).__name__}: {e}")
    finally:
        if sink:
            sink.close()


@app.command()
def models(format: EstFmt = typer.Option(EstFmt.table, "--format")) -> None:
    """The model catalog."""
    from .catalog import models as all_models

    rows = [{"name": a.name, "hf_id": a.aliases[0] if a.aliases else "", "family": a.family, "params": a.total_params(), "layers": a.num_layers,
             "hidden": a.hidden_size, "heads": a.num_heads, "kv_heads": a.num_kv_heads, "vocab": a.vocab_size, "source": a.source} for a in all_models()]
    if format == EstFmt.json:
        sys.stdout.write(json.dumps(rows, indent=2) + "\n")
        return
    from rich.table import Table

    t = Table(title="models")
    for c in ("name", "hf_id", "family", "params", "layers", "hidden", "heads", "kv_heads", "vocab"):
        t.add_column(c)
    for r in rows:
        t.add_row(r["name"], r["hf_id"], r["family"], f"{r['params'] / 1e9:.2f}B", *(str(r[k]) for k in ("layers", "hidden", "heads", "kv_heads", "vocab")))
    _console().print(t)


@app.command()
def gpus(format: EstFmt = typer.Option(EstFmt.table, "--format")) -> None:
    """The GPU catalog."""
    from .catalog import gpus as all_gpus

    rows = [g.model_dump() for g in all_gpus()]
    if format == EstFmt.json:
        sys.stdout.write(json.dumps(rows, indent=2) + "\n")
        return
    from rich.table import Table

    t = Table(title="GPUs")
    for c in ("name", "memory GiB", "bf16 TFLOPS", "bf16", "USD/h"):
        t.add_column(c)
    for g in rows:
        t.add_row(g["name"], f"{g['memory_gib']:g}", f"{g['bf16_tflops']:g}", "yes" if g["bf16"] else "no", f"{g['price_per_hour']:.2f}")
    _console().print(t)


@rules_app.command("show")
def rules_show(rules: List[str] = typer.Option([], "--rules", help="extra rule file (repeatable)"),
               format: EstFmt = typer.Option(EstFmt.table, "--format")) -> None:
    """List the rules in force (defaults plus --rules files)."""

    def go():
        from .recommend import default_rule_paths, rule_schema
        from .rules import load_rules

        return load_rules(default_rule_paths() + list(rules), rule_schema())

    rs = _run(go)
    rows = [{"id": lr.rule.id, "priority": lr.rule.priority, "when": lr.rule.when, "prefer": lr.rule.prefer, "forbid": lr.rule.forbid,
             "set": lr.rule.set.model_dump(exclude_none=True), "source": f"{lr.path}:{lr.line}"} for lr in rs.rules]
    if format == EstFmt.json:
        sys.stdout.write(json.dumps(rows, indent=2) + "\n")
        return
    from rich.table import Table

    from .render import esc

    t = Table(title="rules in force")
    for c in ("id", "priority", "when", "effects"):
        t.add_column(c)
    for r in rows:
        eff = " ".join(filter(None, [f"prefer {r['prefer']}" if r["prefer"] else "", f"forbid {','.join(r['forbid'])}" if r["forbid"] else "",
                                    " ".join(f"{k}={v}" for k, v in r["set"].items())]))
        t.add_row(esc(r["id"]), str(r["priority"]), esc(r["when"]), esc(eff))
    _console().print(t)


@rules_app.command("schema")
def rules_schema_cmd() -> None:
    """The JSON Schema of rule files, for editors (yaml-language-server) to validate and complete them."""
    from .recommend import rule_schema
    from .rules import json_schema

    sys.stdout.write(json.dumps(json_schema(rule_schema()), indent=2) + "\n")


@rules_app.command("check")
def rules_check(files: List[str] = typer.Argument(..., help="rule files to validate")) -> None:
    """Validate rule files; prints every problem as file:line:column: message [rule-id]; exit 2 if any."""
    from .recommend import rule_schema
    from .rules import check_file

    schema = rule_schema()
    problems = [p for f in files for p in check_file(f, schema)]
    for p in problems:
        sys.stdout.write(f"{one_line(str(p))}\n")
    if problems:
        sys.stderr.write(f"ftdecide: error: {one_line(f'{len(problems)} problem(s) in ' + ', '.join(files))}\n")
        raise typer.Exit(2)
    sys.stdout.write(f"{', '.join(files)}: ok\n")


def _click_exceptions() -> tuple[tuple[type, ...], tuple[type, ...]]:
    """click's UsageError and typer's Abort. typer 0.2x vendors click as typer._click and raises its
    classes; only an older typer needs the separate click package, whose import costs ~10 ms a call."""
    for mod in ("typer._click.exceptions", "click.exceptions"):
        try:
            return (__import__(mod, fromlist=["UsageError"]).UsageError,), (typer.Abort,)
        except (ImportError, AttributeError):
            continue
    return (), (typer.Abort,)  # pragma: no cover - typer always ships one of the two


def main() -> None:
    """Console-script entry point. Usage errors (an unknown option, a value that is not a number) are one
    line on stderr and exit 2, like every other bad input; nothing ends in a traceback."""
    usage_errors, aborts = _click_exceptions()
    # ftdecide's models use no pydantic plugins; without this, pydantic scans every installed
    # distribution's entry points for them when the first model is built (6-16 ms a call, more in
    # large environments). A value the user set is kept.
    os.environ.setdefault("PYDANTIC_DISABLE_PLUGINS", "__all__")
    try:
        rc = app(standalone_mode=False)
    except usage_errors as e:
        if type(e).__name__ == "NoArgsIsHelpError":  # bare 'ftdecide': the help, as click would
            e.show()
            sys.exit(2)
        where = f"{e.ctx.command_path}: " if e.ctx is not None else ""
        sys.stderr.write(f"ftdecide: error: {one_line(where + ' '.join(e.format_message().split(' ')))}\n")
        sys.exit(2)
    except aborts:
        sys.stderr.write("ftdecide: aborted\n")
        sys.exit(130)
    except KeyboardInterrupt:
        sys.stderr.write("ftdecide: interrupted\n")
        sys.exit(130)
    except BrokenPipeError:  # '| head' closed the pipe: not an error of ours
        sys.stderr.close()
        sys.exit(0)
    sys.exit(rc if isinstance(rc, int) else 0)
