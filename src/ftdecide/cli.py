"""The command line: parse, call the core, render. Nothing here computes or formats a result.

:func:`main` is the one error boundary (pyupgrade's ``main(argv) -> int``): bad input of any kind, an
:class:`~ftdecide.errors.InputError` or a usage error of typer, is one line on stderr and exit 2; any
other exception is a bug of ftdecide, reported in one line with exit 70 (``EX_SOFTWARE``) and a request
to report it. Commands raise; they never print an error or exit themselves.
"""

from __future__ import annotations

import json
import os
import sys
from enum import Enum
from typing import Any, List, Optional

import typer

from .errors import InputError, one_line, require_finite, validation_problem
from .optimizers import help_text as optimizer_names
from .policy import DEFAULT_ADAPTER_REDUCTION, DEFAULT_GPU, DEFAULT_LORA, DEFAULT_METHOD, DEFAULT_VIRTUAL_TOKENS, SCENARIO_DEFAULTS as SD

# rich_markup_mode=None: click's plain help, which wraps long option names at 80 columns where rich's
# panels cut them ("--gradient-check...")
app = typer.Typer(
    add_completion=True, no_args_is_help=True, rich_markup_mode=None, help="Decide how to fine-tune a language model - and why."
)
rules_app = typer.Typer(no_args_is_help=True, rich_markup_mode=None, help="Show and check rule files.")
app.add_typer(rules_app, name="rules")

EXIT_INPUT = 2  # bad input: the user's to fix
EXIT_BUG = 70  # EX_SOFTWARE (sysexits.h): ftdecide's to fix
EXIT_INTERRUPTED = 130


class Fmt(str, Enum):
    table = "table"
    json = "json"
    markdown = "markdown"


class EstFmt(str, Enum):
    table = "table"
    json = "json"


class BatchFmt(str, Enum):
    json = "json"
    jsonl = "jsonl"
    csv = "csv"


class EmitKind(str, Enum):
    peft = "peft"
    trl = "trl"
    hf = "hf"
    axolotl = "axolotl"
    llamafactory = "llamafactory"
    accelerate = "accelerate"
    deepspeed = "deepspeed"


# Options shared by estimate, fit and probe ("the same flags as estimate").
MODEL_OPT = typer.Option(..., help="catalog name, Hugging Face id, config.json path, or a size")
METHOD_OPT = typer.Option(DEFAULT_METHOD, help="full, lora, qlora, dora, ia3, prompt, prefix or adapter (Houlsby)")
PRECISION_OPT = typer.Option("bf16", help="full FT: bf16 (bf16 weights and states) or mixed (fp32 master weights)")
OPTIMIZER_OPT = typer.Option("adamw", help=optimizer_names())
SEQ_OPT = typer.Option(2048, help="tokens per sequence")
BATCH_OPT = typer.Option(1, help="micro-batch size")
GC_OPT = typer.Option(
    None, "--gradient-checkpointing/--no-gradient-checkpointing", help="default on (off for prefix tuning, which fails with it)"
)
# Method options default to None so that one given to a method that lacks it is refused, not ignored.
RANK_OPT = typer.Option(None, help=f"LoRA, QLoRA, DoRA: rank (default {DEFAULT_LORA.rank})")
TARGETS_OPT = typer.Option(
    None, help=f"LoRA, QLoRA, DoRA: all-linear, attn, mlp, qv, or names like q_proj,v_proj (default {DEFAULT_LORA.targets})"
)
DROPOUT_OPT = typer.Option(None, help=f"LoRA, QLoRA, DoRA: dropout (default {DEFAULT_LORA.dropout})")
VT_OPT = typer.Option(None, help=f"prompt and prefix tuning: virtual tokens (default {DEFAULT_VIRTUAL_TOKENS})")
REDUCTION_OPT = typer.Option(None, help=f"Houlsby adapters: bottleneck = hidden / this (default {DEFAULT_ADAPTER_REDUCTION})")
IA3_OPT = typer.Option(None, help="IA3: modules to scale, like k_proj,v_proj,down_proj (default: peft's for the family)")
LIGER_OPT = typer.Option(False, "--liger/--no-liger", help="liger-kernel: fused linear cross-entropy, RMSNorm, SwiGLU, RoPE")
OFFLOAD_ACT_OPT = typer.Option(
    False, "--offload-activations/--no-offload-activations", help="saved activations in CPU memory (TRL activation_offloading)"
)
# TrainConfig fields that belong to some methods only
METHOD_FIELDS = ("lora_rank", "lora_targets", "lora_dropout", "virtual_tokens", "ia3_targets", "adapter_reduction")
TRAINER_HELP = (
    "what you will run, which the plan is sized for: trl (TRL SFTTrainer, --emit trl), hf (transformers Trainer), "
    "axolotl, llamafactory, loop (ftdecide probe's loop)"
)
TRAINER_OPT = typer.Option("trl", "--trainer", help=f"{TRAINER_HELP} (default trl)")
ACCUM_OPT = typer.Option(
    1, "--gradient-accumulation", help="micro-batches per optimizer step (a trainer holds every gradient between them)"
)
GPUS_OPT = typer.Option(1, help="GPUs per node")
NODES_OPT = typer.Option(1, help="nodes (of --gpus GPUs each)")
STRATEGY_OPT = typer.Option("auto", help="auto, ddp, fsdp, zero1, zero2 or zero3 (auto: FSDP2 on several GPUs here)")
OFFLOAD_PARAMS_OPT = typer.Option(False, "--offload-params/--no-offload-params", help="fsdp, zero3: parameters in CPU memory")
GPU_OPT = typer.Option(None, help=f"GPU from 'ftdecide gpus', or the name nvidia-smi shows (default {DEFAULT_GPU})")
GPU_MEMORY_OPT = typer.Option(None, help="GPU memory in GiB, instead of --gpu")


def _flag(field: str) -> str:
    return "--" + field.replace("_", "-")


def _finite(**values: Any) -> None:
    """NaN and infinity pass typer's float parsing; refuse them by option name."""
    for k, v in values.items():
        require_finite(_flag(k), v)


def _validation_error(e) -> InputError:
    """A pydantic error about command-line values, as the option that carries it."""
    return InputError(validation_problem(e, dashes=True))


def _config_fields(values: dict) -> dict:
    """The command's values that are TrainConfig fields (``locals()`` of a command: its options)."""
    from .config import TrainConfig

    return {k: v for k, v in values.items() if k in TrainConfig.model_fields}


def _train_config(check_options: bool = True, **fields):
    """TrainConfig from command-line values; a bad value is an InputError naming its option. With
    ``check_options``, an option of another method (prompt tuning with --lora-rank) is refused, and so is
    a configuration that cannot train as asked (:meth:`TrainConfig.run_problem`)."""
    from pydantic import ValidationError

    from . import methods
    from .config import TrainConfig

    _finite(lora_dropout=fields.get("lora_dropout"))
    method = fields.get("method", DEFAULT_METHOD)
    spec = methods.get(method) if method in methods.names() else None
    if check_options and spec is not None:
        for f in METHOD_FIELDS:
            if fields.get(f) is not None and f not in spec.options:
                own = f"its options: {', '.join(_flag(o) for o in spec.options)}" if spec.options else "it has no options of its own"
                raise InputError(f"{spec.label} takes no {_flag(f)} ({own})")
    if fields.get("gradient_checkpointing") is None:
        fields["gradient_checkpointing"] = spec.supports_checkpointing if spec is not None else True
    try:
        cfg = TrainConfig(**{k: v for k, v in fields.items() if v is not None})
    except ValidationError as e:
        raise _validation_error(e) from None
    problem = cfg.run_problem() if check_options else None
    if problem:
        raise InputError(problem)
    return cfg


MIN_WIDTH = 40  # narrower than this, a table cannot show its columns


def _width(tty: bool) -> int | None:
    """Columns for tables: 140 into a pipe or file; on a terminal its own width, unless COLUMNS (which
    rich would obey) is not a usable number (COLUMNS=0 made every table vanish), then 80."""
    if not tty:
        return 140
    cols = os.environ.get("COLUMNS")
    if cols is None:
        return None
    try:
        return max(MIN_WIDTH, int(cols)) if int(cols) > 0 else 80
    except ValueError:
        return 80


def _console():
    from rich.console import Console

    # NO_COLOR (https://no-color.org: set and not empty) or a pipe: plain text, no escape codes at all.
    tty = sys.stdout.isatty()
    plain = bool(os.environ.get("NO_COLOR")) or not tty
    console = Console(
        file=sys.stdout,
        color_system=None if plain else "auto",
        force_terminal=False if plain else None,
        no_color=plain,
        highlight=not plain,
        width=_width(tty),
        soft_wrap=False,
    )
    console.on_broken_pipe = _broken_pipe  # rich would exit 1, the code batch keeps for infeasible plans
    return console


def _broken_pipe() -> None:
    raise BrokenPipeError


def _json(doc: Any) -> None:
    # allow_nan=False: NaN or infinity in a document is a bug to report (exit 70), never invalid JSON on stdout
    sys.stdout.write(json.dumps(doc, indent=2, allow_nan=False) + "\n")


@app.command()
def recommend(
    model: Optional[str] = typer.Option(None, help="catalog name, Hugging Face id, path to config.json, or a size like 13b"),
    gpu: Optional[str] = GPU_OPT,
    gpu_memory: Optional[float] = GPU_MEMORY_OPT,
    gpus: Optional[int] = typer.Option(None, help=f"GPUs per node (default {SD['gpus']})"),
    nodes: Optional[int] = typer.Option(None, help="nodes of --gpus GPUs each (default 1)"),
    strategy: Optional[str] = typer.Option(None, help="auto (the cheapest that fits), ddp, fsdp, zero1, zero2 or zero3 (default auto)"),
    offload_params: Optional[bool] = typer.Option(
        None, "--offload-params/--no-offload-params", help="fsdp, zero3: parameters in CPU memory"
    ),
    dataset_size: Optional[int] = typer.Option(None, help=f"training examples (default {SD['dataset_size']:,})"),
    seq_len: Optional[int] = typer.Option(None, help=f"tokens per example (default {SD['seq_len']})"),
    task: Optional[str] = typer.Option(
        None, help=f"chat, instruction, style, classification, domain, code, math, continued-pretraining (default {SD['task']})"
    ),
    quality: Optional[str] = typer.Option(None, help=f"prototype, production, best (default {SD['quality']})"),
    budget: Optional[float] = typer.Option(None, help="USD (default: none)"),
    serving: Optional[str] = typer.Option(None, help=f"single, multi-tenant, latency-critical (default {SD['serving']})"),
    epochs: Optional[int] = typer.Option(None, help="epochs (default: what the rules set, 3)"),
    price_per_hour: Optional[float] = typer.Option(None, help="USD per GPU-hour, overrides the catalog"),
    precision: Optional[str] = typer.Option(None, help=f"full fine-tuning precision: bf16 or mixed (default {SD['precision']})"),
    optimizer: Optional[str] = typer.Option(None, help=f"{optimizer_names()} (default {SD['optimizer']})"),
    offload_optimizer: Optional[bool] = typer.Option(
        None, "--offload-optimizer/--no-offload-optimizer", help="optimizer states in CPU memory"
    ),
    liger: Optional[bool] = typer.Option(None, "--liger/--no-liger", help="size every method with liger-kernel switched on"),
    offload_activations: Optional[bool] = typer.Option(
        None, "--offload-activations/--no-offload-activations", help="size every method with activations offloaded to CPU memory"
    ),
    virtual_tokens: Optional[int] = typer.Option(None, help=f"prompt and prefix tuning: virtual tokens (default {DEFAULT_VIRTUAL_TOKENS})"),
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
    dataset: str = typer.Option("train.jsonl", "--dataset", help="training data path written into --emit configs"),
) -> None:
    """Recommend a fine-tuning method (full, LoRA, QLoRA, DoRA, IA3, prompt or prefix tuning) for a model, GPUs, data and goal."""
    from dataclasses import replace

    from .recommend import recommend as core, validate_scenario
    from .scenarios import load_scenario

    given = dict(
        model=model,
        gpu=gpu,
        gpu_memory=gpu_memory,
        gpus=gpus,
        nodes=nodes,
        strategy=strategy,
        offload_params=offload_params,
        dataset_size=dataset_size,
        seq_len=seq_len,
        task=task,
        quality=quality,
        budget=budget,
        serving=serving,
        epochs=epochs,
        price_per_hour=price_per_hour,
        precision=precision,
        optimizer=optimizer,
        offload_optimizer=offload_optimizer,
        liger=liger,
        offload_activations=offload_activations,
        virtual_tokens=virtual_tokens,
        trainer=trainer,
    )
    if out is not None and emit is None:
        raise InputError("--out names the file for --emit: give --emit KIND too")
    fields = {k: v for k, v in given.items() if v is not None}
    _finite(**fields)
    if rules:
        fields["rules"] = list(rules)
    if scenario:
        sc = load_scenario(scenario, fields)
    elif "model" not in fields:
        raise InputError("--model is required (or 'model:' in --scenario)")
    else:
        sc = validate_scenario(fields)
    sc = _emit_trainer(sc, emit.value if emit is not None else None)
    res = core(sc)
    if emit is not None:
        from .emit import emit as emit_config

        text = emit_config(emit.value, res, dataset=dataset)
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

        recommendation_table(res, _console(), explain)


def _emit_trainer(sc, kind: Optional[str]):
    """The scenario sized for what ``--emit kind`` writes: emitting axolotl sizes for axolotl. A trainer
    named by --trainer or the scenario file that is not the one the file runs is an input error."""
    from . import trainers

    t = trainers.for_emit(kind) if kind else None
    if t is None or sc.trainer == t.name:
        return sc
    if "trainer" in sc.model_fields_set:
        raise InputError(f"--emit {kind} writes a file for the {t.name} trainer, but the plan is for --trainer {sc.trainer}: drop one")
    return sc.model_copy(update={"trainer": t.name})


def _inputs_of(res, scenario: Optional[str], rules: list) -> list[str]:
    """Every file ``recommend`` read: the scenario file, every rule file (the defaults, the scenario's,
    --rules) and the model's config.json."""
    from .recommend import default_rule_paths

    paths = [p for p in [scenario, *rules, *res.scenario.rules, *default_rule_paths()] if p]
    for prefix in ("config.json: ", "Hugging Face cache: "):
        if res.arch.source.startswith(prefix):
            paths.append(res.arch.source[len(prefix) :])
    return paths


def _write_file(path: str, text: str, inputs: tuple = ()) -> None:
    """Write ``text`` to ``path`` (replacing a regular file) through a temporary file in its folder and a
    rename, so a failed write never leaves half a file. Anything else at ``path`` (a FIFO would block, a
    device never end) is refused before it is opened, and so is a path that is one of the command's
    ``inputs`` (symbolic links followed): an output must never replace what it was made from."""
    import stat
    import tempfile

    try:
        st = os.stat(path)
    except FileNotFoundError:
        st = None
    except (OSError, ValueError) as e:
        raise InputError(f"cannot write ({getattr(e, 'strerror', None) or 'the path holds a NUL byte'})", path) from None
    if st is not None and not stat.S_ISREG(st.st_mode):
        raise InputError("cannot write: not a regular file", path)
    target = os.path.realpath(path)
    for other in inputs:
        try:
            same = os.path.realpath(other) == target or (st is not None and os.path.exists(other) and os.path.samefile(other, path))
        except (OSError, ValueError):
            same = False
        if same:
            raise InputError(f"cannot write: it is an input of this command ({one_line(str(other))}); choose another --out", path)
    folder = os.path.dirname(target) or "."
    tmp = None
    try:
        fd, tmp = tempfile.mkstemp(prefix=".ftdecide-", suffix=".tmp", dir=folder)
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
        if st is not None:
            os.chmod(tmp, stat.S_IMODE(st.st_mode))
        os.replace(tmp, target)
        tmp = None
    except OSError as e:
        raise InputError(f"cannot write ({e.strerror or e})", path) from None
    finally:
        if tmp is not None:
            try:
                os.unlink(tmp)
            except OSError:
                pass


@app.command()
def estimate(
    model: Optional[str] = typer.Option(None, help="catalog name, Hugging Face id, config.json path, or a size"),
    method: str = METHOD_OPT,
    precision: str = PRECISION_OPT,
    optimizer: str = OPTIMIZER_OPT,
    seq_len: int = SEQ_OPT,
    batch_size: int = BATCH_OPT,
    gradient_checkpointing: Optional[bool] = GC_OPT,
    lora_rank: Optional[int] = RANK_OPT,
    lora_targets: Optional[str] = TARGETS_OPT,
    lora_dropout: Optional[float] = DROPOUT_OPT,
    virtual_tokens: Optional[int] = VT_OPT,
    ia3_targets: Optional[str] = IA3_OPT,
    adapter_reduction: Optional[int] = REDUCTION_OPT,
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
    from .catalog import resolve_model
    from .estimator import estimate_memory
    from .render import estimate_json, estimate_table

    if (model is None) == (from_json is None):
        raise InputError("give exactly one of --model or --from-json")
    if from_json is not None:
        from .probe.records import config_from_recommendation
        from .yamlio import load_json

        model, cfg = config_from_recommendation(load_json(from_json, "recommendation"), from_json)
        arch = resolve_model(model)
    else:
        arch = resolve_model(model)
        cfg = _train_config(**_config_fields(locals()))
    why_not = cfg.method_spec.unsupported(arch)
    if why_not:
        raise InputError(why_not)
    est = estimate_memory(arch, cfg)
    if format == EstFmt.json:
        _json(estimate_json(arch, cfg, est))
    else:
        estimate_table(arch, cfg, est, _console())


@app.command()
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
    lora_rank: Optional[int] = RANK_OPT,
    lora_targets: Optional[str] = TARGETS_OPT,
    lora_dropout: Optional[float] = DROPOUT_OPT,
    virtual_tokens: Optional[int] = VT_OPT,
    ia3_targets: Optional[str] = IA3_OPT,
    adapter_reduction: Optional[int] = REDUCTION_OPT,
    offload_optimizer: bool = typer.Option(False, help="optimizer states in CPU memory"),
    liger: bool = LIGER_OPT,
    offload_activations: bool = OFFLOAD_ACT_OPT,
    trainer: str = TRAINER_OPT,
    gradient_accumulation: int = ACCUM_OPT,
    format: EstFmt = typer.Option(EstFmt.table, "--format"),
) -> None:
    """Largest micro-batch (at --seq-len) and longest sequence (at micro-batch 1) that fit, per method."""
    from .catalog import resolve_model
    from .fit import fit_table
    from .scenario import validate_scenario
    from .sizing import resolve_hardware
    from .render import fit_json, fit_table as render_fit

    _finite(gpu_memory=gpu_memory)
    arch = resolve_model(model)
    hw = resolve_hardware(validate_scenario({"model": model, "gpu": gpu, "gpu_memory": gpu_memory, "gpus": gpus}))
    base = _train_config(check_options=False, **_config_fields(locals()))
    from . import methods

    # the one refusal check: the strategy's, and each method's own (virtual tokens longer than the sequence)
    for m in methods.all_methods():
        problem = base.model_copy(update={"method": m.name, "gradient_checkpointing": m.supports_checkpointing}).run_problem()
        if problem:
            raise InputError(problem)
    rows = fit_table(arch, hw.memory_gib, seq_len, base)
    if format == EstFmt.json:
        _json(fit_json(arch, hw, gpus, seq_len, rows))
    else:
        render_fit(arch, hw, gpus, seq_len, rows, _console())


@app.command()
def batch(
    file: str = typer.Argument(..., help="YAML: a list of scenarios (recommend's options, plus an optional name)"),
    format: BatchFmt = typer.Option(BatchFmt.json, "--format", help="json (one document), jsonl (one result a line) or csv"),
    rules: List[str] = typer.Option([], "--rules", help="extra rule file (repeatable)"),
    fail_if_infeasible: bool = typer.Option(False, help="exit 1 when any scenario has no feasible plan"),
    trainer: Optional[str] = typer.Option(None, "--trainer", help=f"{TRAINER_HELP}, for scenarios that name none (default trl)"),
) -> None:
    """Recommend for many scenarios in one call: one result each. Exit 2 only for bad input."""
    from .batch import CSV_COLUMNS, csv_row, result_json, run
    from .results import SCHEMA_VERSION
    from .scenarios import parse_scenarios
    from .yamlio import load_yaml

    from .yamlio import BATCH_MAX_NODES

    scenarios = parse_scenarios(load_yaml(file, "scenarios file", BATCH_MAX_NODES), file)
    if trainer is not None:
        from . import trainers

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
    from .mix import mix, parse_tasks
    from .render import mix_json, mix_table

    _finite(temperature=temperature, max_upsample=max_upsample)
    rows = mix(parse_tasks(list(tasks)), temperature, cap, max_upsample, epoch_size)
    if format == EstFmt.json:
        _json(mix_json(rows, temperature, cap, max_upsample))
    else:
        mix_table(rows, temperature, cap, max_upsample, _console())


@app.command()
def probe(
    model: Optional[str] = typer.Option(None, help="catalog name, Hugging Face id, config.json path, or a size"),
    method: str = METHOD_OPT,
    precision: str = PRECISION_OPT,
    optimizer: str = OPTIMIZER_OPT,
    seq_len: int = SEQ_OPT,
    batch_size: int = BATCH_OPT,
    gradient_checkpointing: Optional[bool] = GC_OPT,
    lora_rank: Optional[int] = RANK_OPT,
    lora_targets: Optional[str] = TARGETS_OPT,
    lora_dropout: Optional[float] = DROPOUT_OPT,
    virtual_tokens: Optional[int] = VT_OPT,
    ia3_targets: Optional[str] = IA3_OPT,
    adapter_reduction: Optional[int] = REDUCTION_OPT,
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
    from .probe import session

    if sum(x is not None for x in (model, from_json, grid)) != 1:
        raise InputError("give exactly one of --model, --from-json or --grid")
    if grid:
        records = session.records_from_grid(grid)
    elif from_json:
        records = session.records_from_recommendation(from_json, reentrant=reentrant, steps=steps)
    else:
        cfg = _train_config(**_config_fields(locals()))
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
def models(format: EstFmt = typer.Option(EstFmt.table, "--format")) -> None:
    """The model catalog."""
    from .catalog import models as all_models
    from .render import models_json, models_table

    if format == EstFmt.json:
        _json(models_json(all_models()))
    else:
        models_table(all_models(), _console())


@app.command()
def gpus(format: EstFmt = typer.Option(EstFmt.table, "--format")) -> None:
    """The GPU catalog."""
    from .catalog import gpus as all_gpus
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
    from . import rulenames
    from .recommend import default_rule_paths
    from .render import rules_json, rules_table
    from .rules import load_rules

    rs = load_rules(default_rule_paths() + list(rules), rulenames.schema())
    if format == EstFmt.json:
        _json(rules_json(rs))
    else:
        rules_table(rs, _console())


@rules_app.command("schema")
def rules_schema_cmd() -> None:
    """The JSON Schema of rule files, for editors (yaml-language-server) to validate and complete them."""
    from . import rulenames
    from .rules import json_schema

    _json(json_schema(rulenames.schema()))


@rules_app.command("check")
def rules_check(files: List[str] = typer.Argument(..., help="rule files to validate")) -> None:
    """Validate rule files; every problem as file:line:column: message [rule-id] (one problem: on stderr, like any bad
    input; several: on stdout, with their count on stderr); exit 2 if any."""
    from . import rulenames
    from .rules import check_file

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
    # ftdecide's models use no pydantic plugins; without this, pydantic scans every installed
    # distribution's entry points for them when the first model is built (6-16 ms a call, more in
    # large environments). A value the user set is kept.
    os.environ.setdefault("PYDANTIC_DISABLE_PLUGINS", "__all__")
    _tolerant_stdout()
    try:
        rc = app(args=argv, prog_name="ftdecide", standalone_mode=False)
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


def _tolerant_stdout() -> None:
    """A stdout that cannot encode a character (ASCII, latin-1, a Windows code page) writes it as an
    escape instead of raising in the middle of a table; the tables pick ASCII symbols for such a stream
    (:func:`ftdecide.render.symbols`)."""
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
