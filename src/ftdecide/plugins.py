"""Registries whose entries register themselves from the modules of a package (methods, strategies): the
way pyupgrade's plugins and yamllint's rules are found."""

from __future__ import annotations

import importlib
import pkgutil
from typing import Iterable


def import_submodules(package: str, path: Iterable[str]) -> None:
    """Import every module of ``package`` (its ``__path__``) whose name does not start with ``_``, in name
    order: each registers what it defines."""
    for mod in sorted(pkgutil.iter_modules(path), key=lambda m: m.name):
        if not mod.name.startswith("_"):
            importlib.import_module(f"{package}.{mod.name}")
