"""The typer application and what every command module shares: exit codes, the TrainConfig a command's
options make (with its option-named errors), the console and JSON output. :mod:`ftdecide.cli` and
:mod:`ftdecide.cli.more` register their commands on :data:`app`; :func:`ftdecide.cli.main` runs it."""

from __future__ import annotations

import json
import os
import sys
from typing import Any

import typer

from ..core.errors import InputError, require_finite, validation_problem
from ..core.policy import DEFAULT_METHOD

# panels cut them ("--gradient-check...")
app = typer.Typer(
    add_completion=True, no_args_is_help=True, rich_markup_mode=None, help="Decide how to fine-tune a language model - and why."
)
rules_app = typer.Typer(no_args_is_help=True, rich_markup_mode=None, help="Show and check rule files.")
app.add_typer(rules_app, name="rules")

EXIT_INPUT = 2  # bad input: the user's to fix
EXIT_BUG = 70  # EX_SOFTWARE (sysexits.h): ftdecide's to fix
EXIT_INTERRUPTED = 130


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
    from ..core.config import TrainConfig

    return {k: v for k, v in values.items() if k in TrainConfig.model_fields}


def _train_config(check_options: bool = True, **fields):
    """TrainConfig from command-line values; a bad value is an InputError naming its option. With
    ``check_options``, an option of another method (prompt tuning with --lora-rank) is refused, and so is
    a configuration that cannot train as asked (:meth:`TrainConfig.run_problem`)."""
    from pydantic import ValidationError

    from .. import methods
    from ..core.config import TrainConfig
    from ..methods import options

    _finite(**{o.name: fields.get(o.name) for o in options.all_options() if o.type is float})
    method = fields.get("method", DEFAULT_METHOD)
    spec = methods.get(method) if method in methods.names() else None
    if check_options and spec is not None:
        problem = options.given_problem(spec, fields)
        if problem:
            raise InputError(problem)
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
