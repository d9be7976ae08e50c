"""One memo for the core's pure functions of frozen objects (architectures, calibrations): a value is
kept under a key that holds the objects' identities, and served only while those very objects are the
ones asked about (a recycled ``id()`` is never served another object's value). The store is emptied when
it grows past its bound, so a batch of many scenarios stays within memory."""

from __future__ import annotations

from operator import is_
from typing import Any, Callable


class Memo:
    def __init__(self, limit: int):
        self._store: dict[tuple, tuple] = {}
        self._limit = limit

    def get(self, owners: tuple, key: tuple, compute: Callable[..., Any], *args: Any) -> Any:
        """``compute(*args)`` for ``owners`` (the frozen objects the value depends on) and ``key`` (the rest)."""
        full = (*map(id, owners), key)
        hit = self._store.get(full)
        if hit is None or not all(map(is_, hit[0], owners)):
            if len(self._store) > self._limit:
                self._store.clear()
            hit = self._store[full] = (owners, compute(*args))
        return hit[1]

    def of(self, owner: Any, name: str, compute: Callable[[], Any]) -> Any:
        """:meth:`get` for one owner and a name: the path asked a million times in a large batch (an
        architecture's counts), without building tuples of identities."""
        full = (id(owner), name)
        hit = self._store.get(full)
        if hit is None or hit[0] is not owner:
            if len(self._store) > self._limit:
                self._store.clear()
            hit = self._store[full] = (owner, compute())
        return hit[1]
