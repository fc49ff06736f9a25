"""Turning a batch of frames into the detectors' sample arrays without a Python loop per reading.

A robot sends the same channels frame after frame, so the work of routing a reading to its
streams (base stream for rise, health and change; limit streams for each limit rule; drift
pairs; the robot's own battery and link streams) is done once per *shape*: a scenario, a robot
and the tuple of channel names its frame carries. A shape is compiled into small index tables
(:class:`ShapeTable`); per frame the suite only looks the shape up and collects the frame's
values, and :func:`gather_kernel` writes every sample of the batch in one compiled pass.

The samples are exactly those of the frame-by-frame flattening kept in
``tests/detectors/reference_suite.py`` (the test suite compares the two):

* every routed channel of the robot's place that the frame does not carry, or carries as
  ``null``, gives a base sample with value NaN (the health detector's "no reading");
* every reading gives a base sample, and one limit sample per limit rule of its channel (the
  absolute value for unsigned rules), unless it is ``null``;
* a drift pair gives a sample when both its channels have a value;
* battery and link, when the frame has them, give samples of the robot's streams.

Frames of shapes not compiled yet (a channel seen for the first time, a robot new to a place, an
unknown scenario) go through the frame-by-frame path, which creates their streams.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, NamedTuple

import numpy as np

from detectors._jit import Arr, jit

__all__ = ["Cols", "Shape", "ShapeArrays", "ShapeTable", "gather_kernel"]


class Cols:
    """Columns of samples gathered in pieces: NumPy chunks from the compiled path and plain
    lists from the frame-by-frame path; :meth:`arrays` joins them."""

    __slots__ = ("lists", "chunks", "dtypes")

    def __init__(self, dtypes: tuple[type, ...]) -> None:
        self.dtypes = dtypes
        self.lists: tuple[list[Any], ...] = tuple([] for _ in dtypes)
        self.chunks: list[tuple[np.ndarray, ...]] = []

    def __len__(self) -> int:
        return len(self.lists[0]) + sum(int(c[0].shape[0]) for c in self.chunks)

    def add(self, *arrays: np.ndarray) -> None:
        if arrays[0].shape[0]:
            self.chunks.append(arrays)

    def arrays(self) -> tuple[np.ndarray, ...]:
        parts = [*self.chunks]
        if self.lists[0]:
            parts.append(tuple(np.asarray(col, dtype=dt) for col, dt in zip(self.lists, self.dtypes)))
        if not parts:
            return tuple(np.empty(0, dtype=dt) for dt in self.dtypes)
        if len(parts) == 1:
            return parts[0]
        return tuple(np.concatenate([p[k] for p in parts]) for k in range(len(self.dtypes)))


@dataclass(eq=False)
class Shape:
    """One (scenario, robot, channel names) combination, compiled or not."""

    index: int
    scenario_id: str
    robot_id: str
    keys: tuple[str, ...]
    ready: bool = False          # compiled: every sample's stream exists
    skip: bool = False           # unknown scenario: the frame gives no samples
    robot: int = -1              # the suite's robot number (for the dead-man check)
    # a main fan: (position of run_a or -1, of run_b or -1, position of "fan", appended?)
    fan: tuple[int, int, int, bool] | None = None


class ShapeArrays(NamedTuple):
    """The compiled shapes as :func:`gather_kernel` takes them, indexed by shape number: value
    counts and base streams, missing-channel streams, limit samples (position, stream, signed),
    drift pairs (positions, stream), and the robot's four streams."""

    k_n: np.ndarray
    base_start: np.ndarray
    base_flat: np.ndarray
    miss_start: np.ndarray
    miss_n: np.ndarray
    miss_flat: np.ndarray
    lim_start: np.ndarray
    lim_n: np.ndarray
    lim_pos: np.ndarray
    lim_s: np.ndarray
    lim_signed: np.ndarray
    pair_start: np.ndarray
    pair_n: np.ndarray
    pair_a: np.ndarray
    pair_b: np.ndarray
    pair_s: np.ndarray
    robot_s: np.ndarray


@dataclass
class ShapeTable:
    """Compiled shapes as flat arrays the kernel indexes by shape number."""

    shapes: list[Shape] = field(default_factory=list)
    _k: list[int] = field(default_factory=list)
    _fan: list[bool] = field(default_factory=list)
    _fan_flags: np.ndarray | None = None
    _base: list[list[int]] = field(default_factory=list)
    _miss: list[list[int]] = field(default_factory=list)
    _lim: list[list[tuple[int, int, bool]]] = field(default_factory=list)
    _pairs: list[list[tuple[int, int, int]]] = field(default_factory=list)
    _robot: list[tuple[int, int, int, int]] = field(default_factory=list)
    _arrays: ShapeArrays | None = None

    def __len__(self) -> int:
        return len(self.shapes)

    def add(self, shape: Shape, base: list[int] | None = None, miss: list[int] | None = None,
            lim: list[tuple[int, int, bool]] | None = None, pairs: list[tuple[int, int, int]] | None = None,
            robot: tuple[int, int, int, int] = (-1, -1, -1, -1)) -> Shape:
        """Register ``shape`` (numbered here) with its tables: base stream per value position,
        missing-channel streams, ``(position, limit stream, signed)``, ``(position a, position b,
        drift stream)`` and the robot's (battery, latency, rssi, loss) limit streams."""
        shape.index = len(self.shapes)
        self.shapes.append(shape)
        self._k.append(len(base or ()))
        self._fan.append(shape.fan is not None)
        self._fan_flags = None
        self._base.append(base or [])
        self._miss.append(miss or [])
        self._lim.append(lim or [])
        self._pairs.append(pairs or [])
        self._robot.append(robot)
        self._arrays = None
        return shape

    def fans(self) -> np.ndarray:
        """Per shape number: whether its frames carry a derived ``fan`` reading (a main fan)."""
        if self._fan_flags is None:
            self._fan_flags = np.array(self._fan, dtype=np.bool_)
        return self._fan_flags

    def arrays(self) -> ShapeArrays:
        if self._arrays is None:
            def ragged(rows: list[list[Any]], width: int) -> tuple[np.ndarray, np.ndarray, list[np.ndarray]]:
                n = np.array([len(r) for r in rows], dtype=np.int64)
                start = np.concatenate([[0], np.cumsum(n)[:-1]]).astype(np.int64)
                flat = [e for r in rows for e in r]
                if width == 1:
                    cols = [np.array(flat, dtype=np.int64)]
                else:
                    cols = [np.array([e[c] for e in flat], dtype=np.int64) for c in range(width)]
                return start, n, cols

            b0, _, (bflat,) = ragged(self._base, 1)
            m0, mn, (mflat,) = ragged(self._miss, 1)
            l0, ln, (lpos, ls, lsig) = ragged(self._lim, 3)
            p0, pn, (pa, pb, ps) = ragged(self._pairs, 3)
            self._arrays = ShapeArrays(np.array(self._k, dtype=np.int64), b0, bflat, m0, mn, mflat, l0, ln, lpos, ls,
                                       lsig.astype(np.bool_), p0, pn, pa, pb, ps,
                                       np.array(self._robot, dtype=np.int64).reshape(-1, 4))
        return self._arrays


@jit
def gather_kernel(S: Arr, T: Arr, FI: Arr, X: Arr, OFF: Arr, BAT: Arr, LAT: Arr, RSSI: Arr, LOSS: Arr,  # noqa: N803 - per frame
                  k_n: Arr, base_start: Arr, base_flat: Arr, miss_start: Arr, miss_n: Arr, miss_flat: Arr,  # per shape
                  lim_start: Arr, lim_n: Arr, lim_pos: Arr, lim_s: Arr, lim_signed: Arr,
                  pair_start: Arr, pair_n: Arr, pair_a: Arr, pair_b: Arr, pair_s: Arr, robot_s: Arr,
                  b_s: Arr, b_t: Arr, b_x: Arr, b_fi: Arr, l_s: Arr, l_t: Arr, l_x: Arr, l_fi: Arr,  # out
                  p_s: Arr, p_t: Arr, p_a: Arr, p_b: Arr, p_fi: Arr) -> tuple[int, int, int]:
    """Write the samples of compiled frames; returns (base, limit, pair) sample counts.

    Frame ``i`` has shape ``S[i]``, time ``T[i]``, index ``FI[i]`` in the batch, and its values
    at ``X[OFF[i]:OFF[i] + k_n[S[i]]]``; NaN is no value.
    ``BAT`` and ``LAT``/``RSSI``/``LOSS`` are NaN where the frame has no battery or link.
    """
    nb = 0
    nl = 0
    npair = 0
    for i in range(S.shape[0]):
        sh = S[i]
        t = T[i]
        fi = FI[i]
        off = OFF[i]
        m0 = miss_start[sh]
        for j in range(miss_n[sh]):
            b_s[nb] = miss_flat[m0 + j]
            b_t[nb] = t
            b_x[nb] = np.nan
            b_fi[nb] = fi
            nb += 1
        k = k_n[sh]
        b0 = base_start[sh]
        for j in range(k):
            b_s[nb] = base_flat[b0 + j]
            b_t[nb] = t
            b_x[nb] = X[off + j]
            b_fi[nb] = fi
            nb += 1
        l0 = lim_start[sh]
        for j in range(lim_n[sh]):
            e = l0 + j
            v = X[off + lim_pos[e]]
            if not math.isnan(v):
                l_s[nl] = lim_s[e]
                l_t[nl] = t
                l_x[nl] = v if lim_signed[e] else abs(v)
                l_fi[nl] = fi
                nl += 1
        p0 = pair_start[sh]
        for j in range(pair_n[sh]):
            e = p0 + j
            va = X[off + pair_a[e]]
            vb = X[off + pair_b[e]]
            if not math.isnan(va) and not math.isnan(vb):
                p_s[npair] = pair_s[e]
                p_t[npair] = t
                p_a[npair] = va
                p_b[npair] = vb
                p_fi[npair] = fi
                npair += 1
        if not math.isnan(BAT[i]):
            l_s[nl] = robot_s[sh, 0]
            l_t[nl] = t
            l_x[nl] = BAT[i]
            l_fi[nl] = fi
            nl += 1
        if not math.isnan(LAT[i]):
            for c in range(3):
                l_s[nl] = robot_s[sh, 1 + c]
                l_t[nl] = t
                l_x[nl] = LAT[i] if c == 0 else (RSSI[i] if c == 1 else LOSS[i])
                l_fi[nl] = fi
                nl += 1
    return nb, nl, npair
