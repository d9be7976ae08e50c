"""``ftdecide merge``: plan a merge of task adapters into one, check it, advise, and emit it (mergekit or peft)."""

from __future__ import annotations

import math
import sys
from typing import List, Optional

import typer

from ..core.errors import InputError, one_line
from .app import _console, _json, app
from .options import Fmt


def _adapter_and_weight(arg: str) -> tuple[str, Optional[float]]:
    """``PATH=WEIGHT`` or ``PATH`` (a path may hold '=': only a number after the last one is a weight)."""
    path, sep, tail = arg.rpartition("=")
    if not sep:
        return arg, None
    try:
        w = float(tail)
    except ValueError:
        return arg, None
    if not math.isfinite(w) or w <= 0:
        raise InputError(f"{one_line(path)}: its weight must be a positive number, not {one_line(tail)}")
    return path, w


@app.command()
def merge(
    adapters: List[str] = typer.Argument(
        ..., help="ADAPTER[=WEIGHT]: a peft adapter folder or the recommend --format json that planned it"
    ),
    method: str = typer.Option("task_arithmetic", help="task_arithmetic (the exact weighted sum), linear, ties, dare_ties, dare_linear"),
    density: Optional[float] = typer.Option(None, help="ties and dare: the share of each update kept (default 0.5)"),
    emit: Optional[str] = typer.Option(None, "--emit", help="also write the merge: mergekit (YAML) or peft (a script)"),
    out: Optional[str] = typer.Option(None, "--out", help="file for --emit; without it the config goes to stdout"),
    format: Fmt = typer.Option(Fmt.table, "--format"),
) -> None:
    """Plan a merge of task adapters into one: checks, the merge method and why, what it needs, and its config."""
    from ..decide.merge import plan_merge
    from ..files.adapters import read_adapter
    from ..files.catalog import resolve_model
    from .io import _write_file
    from .render_merge import merge_json, merge_markdown, merge_table

    parsed = [_adapter_and_weight(a) for a in adapters]
    given = [w for _, w in parsed]
    if any(w is not None for w in given) and not all(w is not None for w in given):
        raise InputError("give a weight to every adapter (PATH=WEIGHT), or to none (equal shares)")
    infos = [read_adapter(p) for p, _ in parsed]
    try:
        base_params = resolve_model(infos[0].base_model).total_params() if infos else None
    except InputError:
        base_params = None  # a base the catalog does not know: its size is not stated
    plan = plan_merge(infos, [w for w in given] if given and given[0] is not None else None, method, density, base_params)
    if emit is not None:
        from ..emit.merge import emit_merge

        text = emit_merge(emit, plan)
        if out is None:
            sys.stdout.write(text)
            return
        _write_file(out, text, tuple(p for p, _ in parsed))
        sys.stderr.write(f"ftdecide: wrote {one_line(out)} ({emit} merge)\n")
    if format == Fmt.json:
        _json(merge_json(plan))
    elif format == Fmt.markdown:
        sys.stdout.write(merge_markdown(plan))
    else:
        merge_table(plan, _console())
