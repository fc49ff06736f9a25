"""Fixed limits with severity levels, debounce and hysteresis (gas, air, heat, machines).

One kernel serves every limit in the catalogue: methane alarm / power-cut / restore, the other
gases' maxima, the O2 minimum, air velocity out of the roadway's range, working-place and
equipment temperatures. Each stream (scenario, robot, channel, limit) carries up to
:data:`MAX_LEVELS` thresholds ordered by rising severity, a direction, a restore level and
debounce counts.

The rule, per sample of one stream, in time order:

* a non-finite sample changes nothing (the sensor-health detector reports it);
* a level is *met* by a sample when ``x >= threshold`` (direction ``above``) or
  ``x < threshold`` (``below``), as in :class:`minewatch.catalogue.Limit`; each level counts the
  consecutive samples that meet it;
* while an alert is active, ``n_clear`` consecutive samples past the restore level
  (``x < restore`` above, ``x >= restore`` below) clear it; in the band between the restore
  level and the thresholds the level holds (hysteresis);
* otherwise the stream moves up to the most severe level whose count has reached its
  ``n_raise``; it never moves down except by clearing, so an alert's severity is the worst it
  has been since it was raised (the regulation keeps power off until methane is below the
  restore level, whatever it passed through on the way down).
"""

from __future__ import annotations

import numpy as np

from detectors._jit import Arr, jit

__all__ = ["LIMIT_COLUMNS", "MAX_LEVELS", "limit_kernel"]

MAX_LEVELS = 3
_SATURATE = 1 << 30


@jit
def limit_kernel(stream: Arr, x: Arr, thr: Arr, above: Arr, restore: Arr, n_raise: Arr, n_clear: Arr, level: Arr,
                 count: Arr, clear_count: Arr, out: Arr) -> int:
    """Run a batch through the limit rule.

    ``stream``/``x`` are the batch (sorted by stream, then time); ``thr``/``n_raise`` are
    ``(streams, MAX_LEVELS)`` with NaN for an unused level; ``above``/``restore``/``n_clear``
    are per stream. ``level`` (0 = no alert, k = the k-th level), ``count`` and
    ``clear_count`` are the state, updated in place. ``out[i]`` is the stream's new level
    after sample ``i`` when it changed there, else -1. Returns the number of changes.
    """
    n_changes = 0
    k_max = thr.shape[1]
    for i in range(x.shape[0]):
        s = stream[i]
        v = x[i]
        out[i] = -1
        if not np.isfinite(v):
            continue
        up = above[s]
        for k in range(k_max):
            t = thr[s, k]
            if t != t:
                count[s, k] = 0
            elif (v >= t) if up else (v < t):
                if count[s, k] < _SATURATE:
                    count[s, k] += 1
            else:
                count[s, k] = 0
        cur = level[s]
        if cur > 0:
            r = restore[s]
            if (v < r) if up else (v >= r):
                clear_count[s] += 1
                if clear_count[s] >= n_clear[s]:
                    level[s] = 0
                    clear_count[s] = 0
                    out[i] = 0
                    n_changes += 1
                continue
            clear_count[s] = 0
        for k in range(k_max - 1, cur - 1, -1):
            if count[s, k] > 0 and count[s, k] >= n_raise[s, k]:
                level[s] = k + 1
                out[i] = k + 1
                n_changes += 1
                break
    return n_changes


LIMIT_COLUMNS = {
    "thr": (np.float64, (MAX_LEVELS,), np.nan),
    "n_raise": (np.int32, (MAX_LEVELS,), 1),
    "above": (np.bool_, (), True),
    "restore": (np.float64, (), np.nan),
    "n_clear": (np.int32, (), 1),
    "level": (np.int8, (), 0),
    "count": (np.int32, (MAX_LEVELS,), 0),
    "clear_count": (np.int32, (), 0),
    "last_t": (np.int64, (), -1),  # the stream's last reading, for the suite (not the kernel)
}
