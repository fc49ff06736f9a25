"""Numba options for every kernel in ``detectors``, in one place.

Kernels are private ``@jit`` functions over plain arrays and scalars. ``cache=True`` keeps the
compiled code on disk between runs; ``fastmath`` stays off so NaN and inf keep their IEEE
meaning (a NaN reading must never compare as "below the limit" by accident). With the
environment variable ``NUMBA_DISABLE_JIT=1`` the same functions run as plain Python, which the
test suite uses to check the kernels' logic line by line.
"""

from __future__ import annotations

import numba

__all__ = ["JIT_OPTIONS", "jit"]

JIT_OPTIONS: dict[str, object] = {"cache": True, "nogil": True, "fastmath": False, "error_model": "numpy"}


def jit(fn):  # noqa: ANN001, ANN201 - decorator
    """Compile ``fn`` with the project's Numba options."""
    return numba.njit(**JIT_OPTIONS)(fn)
