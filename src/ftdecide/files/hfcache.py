"""Find a model's ``config.json`` in the local Hugging Face cache, without network.

The cache lies at ``$HF_HUB_CACHE``, else ``$HF_HOME/hub``, else ``~/.cache/huggingface/hub`` (the
order huggingface_hub uses; ``HUGGINGFACE_HUB_CACHE`` is its older name). A repository ``org/name``
is the folder ``models--org--name`` holding ``refs/main`` (the commit of the main branch) and
``snapshots/<commit>/config.json``. Where ``refs/main`` is missing (a download by revision), the most
recently modified snapshot with a config is used.

The lookup never fails: a cache folder that cannot be named (``~nosuchuser``, no home directory), read
(permission denied, a path too long) or that holds something odd (an oversized ``refs/main``) is
skipped, and the id is then looked up in the catalog like any other name.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

_REPO_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]*/[A-Za-z0-9][A-Za-z0-9_.\-]*$")


MAX_REF_BYTES = 256  # refs/main holds one commit hash


def _path(text: str, *parts: str) -> Path | None:
    """``text`` with ``~`` expanded, joined with ``parts``; None where it cannot be (an unknown user,
    no home directory, a NUL byte)."""
    try:
        if "\x00" in text:
            return None
        return Path(text).expanduser().joinpath(*parts)
    except (RuntimeError, KeyError, ValueError, OSError):
        return None


def cache_dirs() -> list[Path]:
    """Candidate hub cache folders, most specific first (duplicates and unnameable ones removed)."""
    found: list[Path | None] = []
    for env in ("HF_HUB_CACHE", "HUGGINGFACE_HUB_CACHE"):
        if os.environ.get(env):
            found.append(_path(os.environ[env]))
    if os.environ.get("HF_HOME"):
        found.append(_path(os.environ["HF_HOME"], "hub"))
    xdg = os.environ.get("XDG_CACHE_HOME")
    found.append(_path(xdg, "huggingface", "hub") if xdg else _path("~", ".cache", "huggingface", "hub"))
    out = [p for p in found if p is not None]
    seen, uniq = set(), []
    for p in out:
        if p not in seen:
            seen.add(p)
            uniq.append(p)
    return uniq


def find_config(repo_id: str) -> Path | None:
    """Path of the cached ``config.json`` of ``repo_id`` (``org/name``), or None."""
    if not _REPO_ID.match(repo_id) or ".." in repo_id:
        return None
    folder = "models--" + repo_id.replace("/", "--")
    for cache in cache_dirs():
        try:
            hit = _in_cache(cache / folder)
        except (OSError, ValueError, RuntimeError):
            continue  # unreadable, too long a path, ...: as if absent
        if hit is not None:
            return hit
    return None


def _in_cache(repo: Path) -> Path | None:
    snaps = repo / "snapshots"
    if not snaps.is_dir():
        return None
    ref = repo / "refs" / "main"
    if ref.is_file():
        with open(ref, "rb") as fh:
            commit = fh.read(MAX_REF_BYTES + 1).decode("ascii", errors="replace").strip()
        cfg = snaps / commit / "config.json"
        if re.fullmatch(r"[0-9a-f]{7,64}", commit) and cfg.is_file():
            return cfg
    found = [s / "config.json" for s in snaps.iterdir() if (s / "config.json").is_file()]
    return max(found, key=lambda p: p.stat().st_mtime) if found else None
