"""Find a model's ``config.json`` in the local Hugging Face cache, without network.

The cache lies at ``$HF_HUB_CACHE``, else ``$HF_HOME/hub``, else ``~/.cache/huggingface/hub`` (the
order huggingface_hub uses; ``HUGGINGFACE_HUB_CACHE`` is its older name). A repository ``org/name``
is the folder ``models--org--name`` holding ``refs/main`` (the commit of the main branch) and
``snapshots/<commit>/config.json``. Where ``refs/main`` is missing (a download by revision), the most
recently modified snapshot with a config is used.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

_REPO_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]*/[A-Za-z0-9][A-Za-z0-9_.\-]*$")


def cache_dirs() -> list[Path]:
    """Candidate hub cache folders, most specific first (duplicates removed)."""
    out: list[Path] = []
    for env in ("HF_HUB_CACHE", "HUGGINGFACE_HUB_CACHE"):
        if os.environ.get(env):
            out.append(Path(os.environ[env]).expanduser())
    if os.environ.get("HF_HOME"):
        out.append(Path(os.environ["HF_HOME"]).expanduser() / "hub")
    xdg = os.environ.get("XDG_CACHE_HOME")
    out.append((Path(xdg).expanduser() if xdg else Path.home() / ".cache") / "huggingface" / "hub")
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
        repo = cache / folder
        snaps = repo / "snapshots"
        if not snaps.is_dir():
            continue
        ref = repo / "refs" / "main"
        if ref.is_file():
            commit = ref.read_text(encoding="utf-8", errors="replace").strip()
            cfg = snaps / commit / "config.json"
            if re.fullmatch(r"[0-9a-f]{7,64}", commit) and cfg.is_file():
                return cfg
        found = [s / "config.json" for s in snaps.iterdir() if (s / "config.json").is_file()]
        if found:
            return max(found, key=lambda p: p.stat().st_mtime)
    return None
