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


class Registry:
    """Named units that register themselves from the modules of a package, loaded on first use: a unit is
    one module that calls :meth:`register` (trainers, levers)."""

    def __init__(self, package: str, path: Iterable[str]):
        self._package, self._path = package, path
        self._items: dict = {}
        self._loaded = False

    def register(self, item):
        self._items[item.name] = item
        return item

    def _load(self) -> None:
        if not self._loaded:
            self._loaded = True
            import_submodules(self._package, self._path)

    def all(self) -> tuple:
        """Every unit, by name."""
        self._load()
        return tuple(self._items[n] for n in sorted(self._items))

    def names(self) -> tuple[str, ...]:
        return tuple(u.name for u in self.all())

    def get(self, name: str):
        """The unit called ``name``; KeyError if none is."""
        self._load()
        return self._items[name]
