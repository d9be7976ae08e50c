"""The command line: parse, call the core, render. Nothing here computes or formats a result.

:func:`main` is the one error boundary (pyupgrade's ``main(argv) -> int``): bad input of any kind, an
:class:`~ftdecide.core.errors.InputError` or a usage error of typer, is one line on stderr and exit 2; any
other exception is a bug of ftdecide, reported in one line with exit 70 (``EX_SOFTWARE``) and a request
to report it. Commands raise; they never print an error or exit themselves.
"""

from __future__ import annotations

import os
import sys
from typing import List, Optional

import typer

from ..core.errors import InputError, one_line
from ..optimizers import help_text as optimizer_names
from .. import strategies
from ..core.policy import SAFETY_MARGIN, SCENARIO_DEFAULTS as SD

# rich_markup_mode=None: click's plain help, which wraps long option names at 80 columns where rich's
from .app import (  # noqa: E402  (the app, exit codes and helpers every command module shares)
    EXIT_BUG,
    EXIT_INPUT,
    EXIT_INTERRUPTED,
    _config_fields,
    _console,
    _finite,
    _json,
    _train_config,
    app,
)
from ..methods.lora import model_default_options  # noqa: E402


from .options import (  # noqa: E402
    ACCUM_OPT,
    BATCH_OPT,
    GC_OPT,
    GPU_MEMORY_OPT,
    GPU_OPT,
    GPUS_OPT,
    LIGER_OPT,
    METHOD_OPT,
    MODEL_OPT,
    NODES_OPT,
    OFFLOAD_ACT_OPT,
    OFFLOAD_PARAMS_OPT,
    OPTIMIZER_OPT,
    PRECISION_OPT,
    SEQ_OPT,
    STRATEGY_OPT,
    TRAINER_HELP,
    TRAINER_OPT,
    CONCURRENCY_OPT,
    DATASET_OPT,
    TASK_SIZES_OPT,
    MONTHS_OPT,
    REC_OFFLOAD_ACT_OPT,
    PACKING_OPT,
    REC_OFFLOAD_OPTIMIZER_OPT,
    REC_OFFLOAD_PARAMS_OPT,
    REC_TASK_OPT,
    SERVE_CONTEXT_OPT,
    SERVE_GPU_OPT,
    VARIANTS_OPT,
    EmitKind,
    with_method_options,
    EstFmt,
    Fmt,
)


from .options import expand as expand_method_options  # noqa: E402
from .io import _data_not_here, _emit_trainer, _inputs_of, _with_data, _write_file  # noqa: E402  (after the options it shares none of)


@app.command()
@with_method_options(scenario=True)
def recommend(
    model: Optional[str] = typer.Option(None, help="catalog name, Hugging Face id, path to config.json, or a size like 13b"),
    gpu: Optional[str] = GPU_OPT,
    gpu_memory: Optional[float] = GPU_MEMORY_OPT,
    gpus: Optional[int] = typer.Option(None, help=f"GPUs per node (default {SD['gpus']})"),
    nodes: Optional[int] = typer.Option(None, help="nodes of --gpus GPUs each (default 1)"),
    strategy: Optional[str] = typer.Option(None, help=f"auto (the cheapest that fits), {', '.join(strategies.names())} (default auto)"),
    offload_params: Optional[bool] = REC_OFFLOAD_PARAMS_OPT,
    dataset_size: Optional[int] = typer.Option(None, help=f"training examples (default {SD['dataset_size']:,})"),
    seq_len: Optional[int] = typer.Option(None, help=f"tokens per example (default {SD['seq_len']})"),
    task: Optional[str] = REC_TASK_OPT,
    quality: Optional[str] = typer.Option(None, help=f"prototype, production, best (default {SD['quality']})"),
    budget: Optional[float] = typer.Option(None, help="USD (default: none)"),
    serving: Optional[str] = typer.Option(None, help=f"single, multi-tenant, latency-critical (default {SD['serving']})"),
    epochs: Optional[int] = typer.Option(None, help="epochs (default: what the rules set, 3)"),
    price_per_hour: Optional[float] = typer.Option(None, help="USD per GPU-hour, overrides the catalog"),
    precision: Optional[str] = typer.Option(None, help=f"full fine-tuning precision: bf16 or mixed (default {SD['precision']})"),
    optimizer: Optional[str] = typer.Option(None, help=f"{optimizer_names()} (default {SD['optimizer']})"),
    offload_optimizer: Optional[bool] = REC_OFFLOAD_OPTIMIZER_OPT,
    liger: Optional[bool] = typer.Option(None, "--liger/--no-liger", help="size every method with liger-kernel switched on"),
    offload_activations: Optional[bool] = REC_OFFLOAD_ACT_OPT,
    packing: Optional[bool] = PACKING_OPT,
    method_options: Optional[dict] = None,
    trainer: Optional[str] = typer.Option(None, "--trainer", help=f"{TRAINER_HELP} (default: what --emit writes, else trl)"),
    rules: List[str] = typer.Option([], "--rules", help="extra rule file (repeatable; after the scenario file's own 'rules:')"),
    scenario: Optional[str] = typer.Option(None, help="YAML file with the same fields (and 'rules:', relative to the file)"),
    explain: bool = typer.Option(False, help="show the rules fired, assumptions and memory breakdowns"),
    format: Fmt = typer.Option(Fmt.table, "--format"),
    emit: Optional[EmitKind] = typer.Option(
        None, "--emit", help="also write a training config: peft, trl, hf, axolotl, llamafactory, accelerate, deepspeed"
    ),
    out: Optional[str] = typer.Option(
        None, "--out", help="file for --emit (overwritten); without it the config goes to stdout instead of the recommendation"
    ),
    dataset: Optional[str] = DATASET_OPT,
    variants: Optional[int] = VARIANTS_OPT,
    months: Optional[int] = MONTHS_OPT,
    serve_gpu: Optional[str] = SERVE_GPU_OPT,
    serve_context: Optional[int] = SERVE_CONTEXT_OPT,
    concurrency: Optional[int] = CONCURRENCY_OPT,
    task_sizes: Optional[str] = TASK_SIZES_OPT,
) -> None:
    """Recommend a fine-tuning method (full, LoRA, QLoRA, DoRA, IA3, prompt or prefix tuning) for a model, GPUs, data and goal."""
    from dataclasses import replace

    from ..decide.recommend import recommend as core, validate_scenario
    from ..files.scenarios import load_scenario

    from ..decide.scenario import Scenario

    # the options that are scenario fields, as given (rules join the scenario file's own below)
    given = {k: v for k, v in locals().items() if k in Scenario.model_fields and k != "rules"} | (method_options or {})
    if out is not None and emit is None:
        raise InputError("--out names the file for --emit: give --emit KIND too")
    fields = {k: v for k, v in given.items() if v is not None}
    _finite(**fields)
    if task_sizes is not None:  # TASK=N,TASK=N as ftdecide mix reads them
        from ..decide.mix import parse_tasks

        fields["task_sizes"] = parse_tasks([t for t in task_sizes.split(",") if t.strip()])
    if rules:
        fields["rules"] = list(rules)
    if scenario:
        sc = load_scenario(scenario, fields)
    elif "model" not in fields:
        raise InputError("--model is required (or 'model:' in --scenario)")
    else:
        sc = validate_scenario(fields)
    sc = _emit_trainer(sc, emit.value if emit is not None else None)
    if sc.dataset is not None and os.path.exists(sc.dataset):
        sc = _with_data(sc, sc.dataset, "dataset_size" in sc.model_fields_set)
    dataset_path = sc.dataset or "train.jsonl"
    res = core(sc)
    if sc.dataset is not None and sc.data is None:
        res = _data_not_here(res, sc.dataset)
    if emit is not None:
        from ..emit import emit as emit_config

        text = emit_config(emit.value, res, dataset=dataset_path)
        if out is None:
            sys.stdout.write(text)
            return
        _write_file(out, text, tuple(_inputs_of(res, scenario, list(rules))))
        sys.stderr.write(f"ftdecide: wrote {one_line(out)} ({emit.value} config)\n")
        res = replace(res, emitted={"kind": emit.value, "path": out})
    if format == Fmt.json:
        _json(res.to_json())
    elif format == Fmt.markdown:
        from .render import recommendation_markdown

        sys.stdout.write(recommendation_markdown(res))
    else:
        from .render import recommendation_table

        console = _console()
        recommendation_table(res, console, explain)
        if res.scenario.data is not None:
            from .render_data import data_table

            data_table(res, console)


@app.command()
@with_method_options()
def estimate(
    model: Optional[str] = typer.Option(None, help="catalog name, Hugging Face id, config.json path, or a size"),
    method: str = METHOD_OPT,
    precision: str = PRECISION_OPT,
    optimizer: str = OPTIMIZER_OPT,
    seq_len: int = SEQ_OPT,
    batch_size: int = BATCH_OPT,
    gradient_checkpointing: Optional[bool] = GC_OPT,
    method_options: Optional[dict] = None,
    gpus: int = GPUS_OPT,
    nodes: int = NODES_OPT,
    strategy: str = STRATEGY_OPT,
    offload_params: bool = OFFLOAD_PARAMS_OPT,
    offload_optimizer: bool = typer.Option(False, help="optimizer states in CPU memory"),
    liger: bool = LIGER_OPT,
    offload_activations: bool = OFFLOAD_ACT_OPT,
    trainer: str = TRAINER_OPT,
    gradient_accumulation: int = ACCUM_OPT,
    from_json: Optional[str] = typer.Option(
        None, "--from-json", help="size exactly the plan of a 'recommend --format json' file (its recommendation.config)"
    ),
    format: EstFmt = typer.Option(EstFmt.table, "--format"),
) -> None:
    """Memory breakdown of one training configuration, per GPU (GiB = 2^30 bytes)."""
    from ..files.catalog import resolve_model
    from ..core.estimator import estimate_memory
    from .render import estimate_json, estimate_table

    if (model is None) == (from_json is None):
        raise InputError("give exactly one of --model or --from-json")
    if from_json is not None:
        from ..probe.records import config_from_recommendation
        from ..files.yamlio import load_json

        model, cfg = config_from_recommendation(load_json(from_json, "recommendation"), from_json)
        arch = resolve_model(model)
    else:
        arch = resolve_model(model)
        cfg = _train_config(**_config_fields(locals()), **model_default_options(arch, method, method_options or {}))
    why_not = cfg.method_spec.unsupported(arch, cfg) or cfg.trainer_spec.unsupported(arch)
    if why_not:
        raise InputError(why_not)
    est = estimate_memory(arch, cfg)
    if format == EstFmt.json:
        _json(estimate_json(arch, cfg, est))
    else:
        estimate_table(arch, cfg, est, _console())


@app.command()
@with_method_options()
def fit(
    model: str = MODEL_OPT,
    gpu: Optional[str] = GPU_OPT,
    gpu_memory: Optional[float] = GPU_MEMORY_OPT,
    gpus: int = GPUS_OPT,
    nodes: int = NODES_OPT,
    strategy: str = STRATEGY_OPT,
    offload_params: bool = OFFLOAD_PARAMS_OPT,
    seq_len: int = SEQ_OPT,
    precision: str = PRECISION_OPT,
    optimizer: str = OPTIMIZER_OPT,
    method_options: Optional[dict] = None,
    offload_optimizer: bool = typer.Option(False, help="optimizer states in CPU memory"),
    liger: bool = LIGER_OPT,
    offload_activations: bool = OFFLOAD_ACT_OPT,
    trainer: str = TRAINER_OPT,
    gradient_accumulation: int = ACCUM_OPT,
    safety_margin: float = typer.Option(
        SAFETY_MARGIN, min=0.0, max=0.49, help="share of each card kept free, as recommend keeps it (0: the whole card)"
    ),
    format: EstFmt = typer.Option(EstFmt.table, "--format"),
) -> None:
    """Largest micro-batch (at --seq-len) and longest sequence (at micro-batch 1) that fit, per method, keeping
    --safety-margin of each card free: at 97-99% of an H100 the emitted runs that ran out and those that trained
    differ by less than the plan's error (docs/accuracy.md, the edge grids)."""
    from ..files.catalog import resolve_model
    from ..decide.fit import fit_table
    from ..decide.scenario import validate_scenario
    from ..decide.sizing import resolve_hardware
    from .render import fit_json, fit_table as render_fit

    _finite(gpu_memory=gpu_memory, safety_margin=safety_margin)
    arch = resolve_model(model)
    hw = resolve_hardware(validate_scenario({"model": model, "gpu": gpu, "gpu_memory": gpu_memory, "gpus": gpus}))
    base = _train_config(check_options=False, **_config_fields(locals()), **model_default_options(arch, "lora", method_options or {}))
    from .. import methods

    # the refusal checks: the trainer's of the model, the strategy's, and each method's own (virtual tokens
    # longer than the sequence)
    if base.trainer_spec.unsupported(arch):
        raise InputError(base.trainer_spec.unsupported(arch))
    for m in methods.all_methods():
        problem = base.model_copy(update={"method": m.name, "gradient_checkpointing": m.supports_checkpointing}).run_problem()
        if problem:
            raise InputError(problem)
    rows = fit_table(arch, hw.memory_gib * (1.0 - safety_margin), seq_len, base)
    if format == EstFmt.json:
        _json(fit_json(arch, hw, gpus, seq_len, rows, safety_margin))
    else:
        render_fit(arch, hw, gpus, seq_len, rows, _console(), safety_margin)


def _click_exceptions() -> tuple[type, ...]:
    """click's UsageError. typer 0.2x vendors click as typer._click and raises its classes; only an
    older typer needs the separate click package, whose import costs ~10 ms a call."""
    for mod in ("typer._click.exceptions", "click.exceptions"):
        try:
            return (__import__(mod, fromlist=["UsageError"]).UsageError,)
        except (ImportError, AttributeError):
            continue
    return ()  # pragma: no cover - typer always ships one of the two


def _error(text: str) -> None:
    sys.stderr.write(f"ftdecide: error: {one_line(text)}\n")


def main(argv: Optional[list[str]] = None) -> int:
    """Run ftdecide on ``argv`` (default ``sys.argv[1:]``) and return the exit status: 0 done, 1 a
    command's own verdict (``batch --fail-if-infeasible``), 2 bad input (one line on stderr), 70 a bug
    of ftdecide (one line, and a request to report it), 130 interrupted. Nothing ends in a traceback."""
    usage_errors = _click_exceptions()
    expand_method_options()
    # ftdecide's models use no pydantic plugins; without this, pydantic scans every installed
    # distribution's entry points for them when the first model is built (6-16 ms a call, more in
    # large environments). A value the user set is kept.
    os.environ.setdefault("PYDANTIC_DISABLE_PLUGINS", "__all__")
    _tolerant_stdout()
    try:
        rc = _app_for(sys.argv[1:] if argv is None else argv)(args=argv, prog_name="ftdecide", standalone_mode=False)
        return rc if isinstance(rc, int) else 0
    except InputError as e:
        _error(str(e))
        return EXIT_INPUT
    except usage_errors as e:
        if type(e).__name__ == "NoArgsIsHelpError":  # bare 'ftdecide' (or 'ftdecide rules') asks for the help
            e.show()
            return 0
        where = f"{e.ctx.command_path}: " if e.ctx is not None else ""
        # a value is echoed at most as a preview: a 5,000-digit --seq-len must not fill the terminal
        words = (w if len(w) <= 80 else w[:60] + f"... ({len(w):,} characters)" for w in e.format_message().split(" "))
        _error(where + " ".join(words))
        return EXIT_INPUT
    except (KeyboardInterrupt, typer.Abort):
        sys.stderr.write("ftdecide: interrupted\n")
        return EXIT_INTERRUPTED
    except BrokenPipeError:  # '| head' closed the pipe: not an error of ours
        _quiet_stdout()
        return 0
    except SystemExit as e:
        # click turns a broken pipe inside a command into exit 1, the status batch keeps for infeasible plans
        if isinstance(e.__context__, BrokenPipeError):
            _quiet_stdout()
            return 0
        return e.code if isinstance(e.code, int) else 1
    except Exception as e:  # noqa: BLE001 - the one place a bug is turned into a message
        _error(f"internal error: {type(e).__name__}: {e}")
        sys.stderr.write(
            "ftdecide: this is a bug in ftdecide, not in your input; please report it with the command line that caused it "
            "(rerun with FTDECIDE_TRACEBACK=1 for the traceback)\n"
        )
        if os.environ.get("FTDECIDE_TRACEBACK"):
            raise
        return EXIT_BUG


def _app_for(args: list[str]) -> typer.Typer:
    """The app with only the command that ``args`` names: typer turns every registered command's signature into click
    options on each call (about 20 ms for all of them, a tenth of a cold ``recommend``'s own time), and a call runs
    one. The ``rules`` group stays, so that the app is still a group and the command is still named on the command
    line. Anything else (no command, an option first, ``rules``, a misspelt name) gets the whole app: its listing,
    its help and click's suggestions."""
    import copy

    from typer.main import get_command_name

    name = args[0] if args else ""
    # named as typer names them: the name given, or the function's
    chosen = [c for c in app.registered_commands if (c.name or get_command_name(c.callback.__name__)) == name]
    if len(chosen) != 1:
        return app
    one = copy.copy(app)
    one.registered_commands = chosen
    return one


def _tolerant_stdout() -> None:
    """A stdout that cannot encode a character (ASCII, latin-1, a Windows code page) writes it as an
    escape instead of raising in the middle of a table; the tables pick ASCII symbols for such a stream
    (:func:`ftdecide.cli.render.symbols`)."""
    reconfigure = getattr(sys.stdout, "reconfigure", None)
    if reconfigure is not None:
        try:
            reconfigure(errors="backslashreplace")
        except (ValueError, OSError):  # pragma: no cover - a closed or detached stream
            pass


def _quiet_stdout() -> None:
    """After a closed pipe, point stdout at /dev/null so that the interpreter's final flush does not
    report the same broken pipe again."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError):
        pass


def finish(code: int) -> int:
    """Flush stdout before the interpreter does: a reader that has gone (``| head -1``) is not an error,
    so a broken pipe here keeps the command's own status instead of Python's 120."""
    try:
        sys.stdout.flush()
    except BrokenPipeError:
        _quiet_stdout()
    except (OSError, ValueError):
        pass
    return code


# the other commands register themselves on ``app`` and ``rules_app`` (imported last: they use this module's options)
from . import merge_cmd, more  # noqa: E402, F401
