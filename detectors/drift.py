"""Drift against a neighbouring sensor.

Two sensors of the same gas in one place (a face's T0, T1, T2 and shearer methane; a heading's
T1 and T2) see the same air, so their difference is steady: it wanders a little as the air
does, and moves for a while when gas arrives at one before the other, but a *lasting* change
of the difference means one of them has drifted (a catalytic sensor losing sensitivity, a
poisoned head) and both readings are now suspect.

Per pair (scenario, robot, channel a, channel b), on the difference ``d = x_a - x_b`` of the
readings of one frame:

* the baseline ``base`` is the mean of the first ``warmup`` differences, then follows the
  difference very slowly (``alpha_base``), and only while the pair agrees (protected);
* the recent difference ``recent`` follows it fast (``alpha_recent``);
* the pair *disagrees* while ``|recent - base| >= tol``; the alert rises when it has
  disagreed for ``hold_s`` seconds without a break, and clears after ``hold_s`` seconds of
  ``|recent - base| < tol / 2``;
* readings taken while either sensor shows gas (at or above ``gas_floor``, 80 % of its first
  limit) are skipped: a gas event moves the sensors differently and is the limit detectors'
  business; a gap of more than ``gap_s`` restarts the warm-up.

``tol`` [P] is half the channel's normal operating band (0.2 % for a face's methane):
above the largest natural swing of the difference seen on simulated shifts (0.16 %), far above
sensor noise; ``hold_s`` is 5 min.
"""

from __future__ import annotations

import numpy as np

from detectors._jit import jit

__all__ = ["DRIFT_ARGS", "DRIFT_COLUMNS", "drift_kernel"]


@jit
def _held(ok, ti, since, s, hold_s):  # noqa: ANN001, ANN202
    """Track since when ``ok`` has held for stream ``s``; true once it has held ``hold_s`` seconds."""
    if not ok:
        since[s] = -1
        return False
    if since[s] < 0:
        since[s] = ti
    return (ti - since[s]) * 1e-9 >= hold_s


@jit
def drift_kernel(stream, t, xa, xb, tol, gas_a, gas_b, warmup, alpha_base, alpha_recent, hold_s, gap_s,
                 n, base, recent, t_last, since, state, out, aux):  # noqa: ANN001, ANN201
    """``out[i]``: 1 raised, 0 cleared, -1 no change; ``aux[i]``: ``recent - base`` after ``i``."""
    n_changes = 0
    for i in range(xa.shape[0]):
        s = stream[i]
        a = xa[i]
        b = xb[i]
        out[i] = -1
        aux[i] = np.nan
        if not (np.isfinite(a) and np.isfinite(b)) or a >= gas_a[s] or b >= gas_b[s]:
            continue
        ti = t[i]
        if t_last[s] >= 0 and (ti - t_last[s]) * 1e-9 > gap_s[s]:
            n[s] = 0
            since[s] = -1
        t_last[s] = ti
        d = a - b
        if n[s] < warmup[s]:
            n[s] += 1
            base[s] += (d - base[s]) / n[s] if n[s] > 1 else d - base[s]
            recent[s] = base[s]
            continue
        r = recent[s] + alpha_recent[s] * (d - recent[s])
        recent[s] = r
        dev = abs(r - base[s])
        aux[i] = r - base[s]
        if state[s] == 0:
            if _held(dev >= tol[s], ti, since, s, hold_s[s]):
                state[s] = 1
                since[s] = -1
                out[i] = 1
                n_changes += 1
            elif dev < 0.5 * tol[s]:
                base[s] += alpha_base[s] * (d - base[s])
        elif _held(dev < 0.5 * tol[s], ti, since, s, hold_s[s]):
            state[s] = 0
            since[s] = -1
            out[i] = 0
            n_changes += 1
    return n_changes


DRIFT_COLUMNS = {
    "tol": (np.float64, (), np.inf),
    "gas_a": (np.float64, (), np.inf),
    "gas_b": (np.float64, (), np.inf),
    "warmup": (np.int64, (), 150),
    "alpha_base": (np.float64, (), 0.001),
    "alpha_recent": (np.float64, (), 0.05),
    "hold_s": (np.float64, (), 300.0),
    "gap_s": (np.float64, (), 300.0),
    "n": (np.int64, (), 0),
    "base": (np.float64, (), 0.0),
    "recent": (np.float64, (), 0.0),
    "t_last": (np.int64, (), -1),
    "since": (np.int64, (), -1),
    "state": (np.int8, (), 0),
}
DRIFT_ARGS = tuple(DRIFT_COLUMNS)
