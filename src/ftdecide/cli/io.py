"""The files ``recommend`` writes and reads around a plan: which trainer an emitted file is sized for,
which files a command read, and writing an output so that it never replaces one of them."""

from __future__ import annotations

import os
from typing import Optional

from ..core.errors import InputError, one_line


def _emit_trainer(sc, kind: Optional[str]):
    """The scenario sized for what ``--emit kind`` writes: emitting axolotl sizes for axolotl. A trainer
    named by --trainer or the scenario file that is not the one the file runs is an input error."""
    from .. import trainers

    t = trainers.for_emit(kind) if kind else None
    if t is None or sc.trainer == t.name:
        return sc
    if "trainer" in sc.model_fields_set:
        raise InputError(f"--emit {kind} writes a file for the {t.name} trainer, but the plan is for --trainer {sc.trainer}: drop one")
    if sc.packing and t.packing_problem():
        raise InputError(f"--emit {kind} with --packing: {t.packing_problem()}")
    return sc.model_copy(update={"trainer": t.name})


def _inputs_of(res, scenario: Optional[str], rules: list) -> list[str]:
    """Every file ``recommend`` read: the scenario file, every rule file (the defaults, the scenario's,
    --rules) and the model's config.json."""
    from ..decide.recommend import default_rule_paths

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


def _with_data(sc, path: str, size_given: bool):
    """The scenario with the data at ``path`` read (:mod:`ftdecide.files.dataset`): its example count is the
    data set's size (a --dataset-size that disagrees is an input error), its lengths time the plan. Tokens are
    counted with the model folder's tokenizer.json where the model is a folder or in the Hugging Face cache."""
    import sys

    from ..files.catalog import resolve_model
    from ..files.dataset import read_dataset

    arch = resolve_model(sc.model)
    model_dir = None
    for prefix in ("config.json: ", "Hugging Face cache: "):
        if arch.source.startswith(prefix):
            model_dir = os.path.dirname(arch.source[len(prefix) :].split(";")[0])
    tty = sys.stderr.isatty()
    shown = []  # whether a progress line was written, so that it is ended

    def progress(done: int, total: int) -> None:
        if tty and total > 2**28:
            sys.stderr.write(f"\rftdecide: reading {one_line(path)}: {done / total:.0%}")
            sys.stderr.flush()
            shown.append(True)

    stats = read_dataset(path, model_dir, progress, arch)
    if shown:
        sys.stderr.write("\n")
    if size_given and sc.dataset_size != stats.examples:
        raise InputError(f"--dataset-size {sc.dataset_size:,} disagrees with the {stats.examples:,} examples in {one_line(path)}")
    return sc.model_copy(update={"data": stats, "dataset_size": stats.examples})


def _data_not_here(res, path: str):
    """The recommendation, saying that the data --dataset names is not on this machine: only written into the
    configs, every example assumed --seq-len tokens long."""
    from dataclasses import replace

    from ..decide.results import Message

    said = Message(
        "data",
        f"{one_line(path)} is not on this machine: it is only written into the configs, and every example is assumed "
        f"{res.scenario.seq_len:,} tokens long",
    )
    return replace(res, warnings=(*res.warnings, said))
