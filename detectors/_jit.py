"""Numba options for every kernel in ``detectors``, in one place.

Kernels are private ``@jit`` functions over plain arrays and scalars. ``cache=True`` keeps the
compiled code on disk between runs; ``fastmath`` stays off so NaN and inf keep their IEEE
meaning (a NaN reading must never compare as "below the limit" by accident). With the
environment variable ``NUMBA_DISABLE_JIT=1`` the same functions run as plain Python, which the
test suite uses to check the kernels' logic line by line.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar, cast

import numba
import numpy.typing as npt

__all__ = ["JIT_OPTIONS", "Arr", "jit"]

JIT_OPTIONS: dict[str, Any] = {"cache": True, "nogil": True, "fastmath": False, "error_model": "numpy"}

#: a kernel's array argument (Numba types it from the array it gets when it compiles)
Arr = npt.NDArray[Any]

F = TypeVar("F", bound=Callable[..., Any])


def jit(fn: F) -> F:
    """Compile ``fn`` with the project's Numba options (called as before: the same signature)."""
    return cast(F, numba.njit(**JIT_OPTIONS)(fn))
