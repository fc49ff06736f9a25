"""Per-stream state arrays that grow as new streams appear.

A kernel's state lives in plain NumPy arrays indexed by stream number. :class:`StreamTable`
hands out those numbers for hashable keys and grows every registered array (doubling) when a
new stream needs room, so a kernel call never sees a Python object.
"""

from __future__ import annotations

from collections.abc import Hashable, Mapping
from typing import Any

import numpy as np

__all__ = ["StreamTable"]


class StreamTable:
    """Numbered streams and their state arrays.

    Parameters
    ----------
    columns
        name -> (dtype, trailing shape, fill value) of each per-stream array.
    """

    def __init__(self, columns: Mapping[str, tuple[Any, tuple[int, ...], Any]], capacity: int = 16) -> None:
        self._columns = dict(columns)
        self.index: dict[Hashable, int] = {}
        self.keys: list[Hashable] = []
        self._cap = max(1, capacity)
        self.arrays: dict[str, np.ndarray] = {
            name: np.full((self._cap, *shape), fill, dtype=dtype) for name, (dtype, shape, fill) in self._columns.items()
        }

    def __len__(self) -> int:
        return len(self.keys)

    def __getitem__(self, name: str) -> np.ndarray:
        return self.arrays[name]

    def get(self, key: Hashable) -> int | None:
        return self.index.get(key)

    def add(self, key: Hashable) -> tuple[int, bool]:
        """The number of ``key``'s stream and whether it is new (its row then holds the fill values)."""
        i = self.index.get(key)
        if i is not None:
            return i, False
        i = len(self.keys)
        if i == self._cap:
            self._grow()
        self.index[key] = i
        self.keys.append(key)
        return i, True

    def _grow(self) -> None:
        new_cap = self._cap * 2
        for name, (dtype, shape, fill) in self._columns.items():
            a = np.full((new_cap, *shape), fill, dtype=dtype)
            a[: self._cap] = self.arrays[name]
            self.arrays[name] = a
        self._cap = new_cap
