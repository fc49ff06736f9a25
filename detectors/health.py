"""Sensor health: out of physical range, stuck (flat), spikes, and silence.

One kernel over base streams (scenario, robot, channel); a NaN sample means "the robot sent a
frame in this scenario without a value for this channel". Four conditions, each reported as a
change code per sample in its own column of ``out`` (-1 no change, 1 raised, 0 cleared):

``range`` (column 0)
    A value outside the sensor's physical range ``[lo - tol, hi + tol]`` (domain §1.4), or
    ±inf, raises at once; 2 consecutive in-range values clear.
``stuck`` (column 1)
    A run of exactly equal values. How long a run must be is learned, scale-free: the stream
    keeps ``rep``, a slowly learned share of samples equal to their predecessor (not from runs
    of :data:`STUCK_LEARN_RUN` or more, so a stuck spell stops teaching itself), and needs
    ``log(1e-12) / log(rep)`` repeats (at least :data:`STUCK_MIN_RUN`; the margin covers
    repeats that cluster when a slowly wandering value sits mid-step), spanning at least
    ``stuck_s`` seconds, after :data:`STUCK_WARMUP` values. A noisy sensor then needs a few dozen repeats, a coarse one
    far more, and a channel that is constant by nature (a run signal) can never be "stuck".
    The first different value clears.
``spike`` (column 2)
    A value more than ``spike_k`` robust deviations from the stream's running level that comes
    back within half that on the very next value is a spike (so a spike is confirmed one value
    late; there is no look-ahead). Three spikes within ``spike_window_s`` raise; no spike for
    ``spike_window_s`` clears (checked on each value). A deviation that does not come back is a
    level change: the level jumps to it.
``silent`` (column 3)
    A frame without a value (NaN) at least ``silence_s`` after the stream's last value raises;
    the next value clears.

``aux[i]`` holds, for a stuck or silent raise at sample ``i``, how long (s) the run or the
silence has lasted.
"""

from __future__ import annotations

import math

import numpy as np

from detectors._jit import jit

__all__ = ["HEALTH_COLUMNS", "HEALTH_ARGS", "health_kernel", "STUCK_MIN_RUN", "STUCK_WARMUP"]

STUCK_MIN_RUN = 20
STUCK_LEARN_RUN = 200
STUCK_WARMUP = 50
STUCK_TAIL = math.log(1e-12)
REP_ALPHA = 0.002
SPIKE_WARMUP = 30
SPIKE_ALPHA = 0.05
SPIKES_TO_RAISE = 3


@jit
def health_kernel(stream, t, x, lo, hi, tol, stuck_on, stuck_s, spike_on, spike_k, spike_window_s, silence_s,
                  rng_state, rng_ok, last_x, run, run_t0, rep, n_vals, stuck,
                  m, d, n_learn, cand, cand_t, spikes, spike_state, last_t, silent, out, aux):  # noqa: ANN001, ANN201
    n_changes = 0
    for i in range(x.shape[0]):
        s = stream[i]
        v = x[i]
        ti = t[i]
        for c in range(4):
            out[i, c] = -1
        aux[i] = 0.0
        if v != v:  # a frame without this channel
            if silent[s] == 0 and last_t[s] >= 0 and (ti - last_t[s]) * 1e-9 >= silence_s[s]:
                silent[s] = 1
                out[i, 3] = 1
                aux[i] = (ti - last_t[s]) * 1e-9
                n_changes += 1
            continue
        if silent[s] == 1:
            silent[s] = 0
            out[i, 3] = 0
            n_changes += 1
        last_t[s] = ti
        # -- physical range
        if not np.isfinite(v) or v < lo[s] - tol[s] or v > hi[s] + tol[s]:
            rng_ok[s] = 0
            if rng_state[s] == 0:
                rng_state[s] = 1
                out[i, 0] = 1
                n_changes += 1
            continue
        if rng_state[s] == 1:
            rng_ok[s] += 1
            if rng_ok[s] >= 2:
                rng_state[s] = 0
                rng_ok[s] = 0
                out[i, 0] = 0
                n_changes += 1
        # -- stuck
        if stuck_on[s]:
            same = v == last_x[s]
            if same:
                run[s] += 1
            else:
                run[s] = 1
                run_t0[s] = ti
            if run[s] < STUCK_LEARN_RUN and n_vals[s] > 0:
                rep[s] += REP_ALPHA * ((1.0 if same else 0.0) - rep[s])
            n_vals[s] += 1
            if stuck[s] == 1 and not same:
                stuck[s] = 0
                out[i, 1] = 0
                n_changes += 1
            elif stuck[s] == 0 and n_vals[s] >= STUCK_WARMUP and run[s] >= STUCK_MIN_RUN:
                r = rep[s]
                need = 1e18 if r >= 1.0 else STUCK_TAIL / math.log(r) if r > 0.0 else 0.0
                if run[s] >= need and (ti - run_t0[s]) * 1e-9 >= stuck_s[s]:
                    stuck[s] = 1
                    out[i, 1] = 1
                    aux[i] = (ti - run_t0[s]) * 1e-9
                    n_changes += 1
            last_x[s] = v
        # -- spikes
        if spike_on[s]:
            if n_learn[s] < SPIKE_WARMUP:
                n_learn[s] += 1
                dev = abs(v - m[s])
                m[s] += (v - m[s]) / n_learn[s]
                if n_learn[s] > 1:
                    d[s] += (dev - d[s]) / (n_learn[s] - 1)
                continue
            sigma = 1.25 * d[s]
            if sigma < 2.0 * tol[s]:
                sigma = 2.0 * tol[s]
            dev = abs(v - m[s])
            if cand[s] == 1:
                cand[s] = 0
                if dev <= 0.5 * spike_k[s] * sigma:
                    spikes[s, 0] = spikes[s, 1]
                    spikes[s, 1] = spikes[s, 2]
                    spikes[s, 2] = cand_t[s]
                    if spike_state[s] == 0 and spikes[s, 0] >= 0 and \
                            (spikes[s, 2] - spikes[s, 0]) * 1e-9 <= spike_window_s[s]:
                        spike_state[s] = 1
                        out[i, 2] = 1
                        n_changes += 1
                else:
                    m[s] = v  # it stayed: a level change, not a spike
                    continue
            if spike_state[s] == 1 and spikes[s, 2] >= 0 and (ti - spikes[s, 2]) * 1e-9 >= spike_window_s[s]:
                spike_state[s] = 0
                out[i, 2] = 0
                n_changes += 1
            if dev > spike_k[s] * sigma:
                cand[s] = 1
                cand_t[s] = ti
            else:
                m[s] += SPIKE_ALPHA * (v - m[s])
                d[s] += SPIKE_ALPHA * (dev - d[s])
    return n_changes


HEALTH_COLUMNS = {
    "h_lo": (np.float64, (), -np.inf),
    "h_hi": (np.float64, (), np.inf),
    "h_tol": (np.float64, (), 0.0),
    "h_stuck_on": (np.bool_, (), False),
    "h_stuck_s": (np.float64, (), 120.0),
    "h_spike_on": (np.bool_, (), False),
    "h_spike_k": (np.float64, (), 10.0),
    "h_spike_window": (np.float64, (), 600.0),
    "h_silence_s": (np.float64, (), 60.0),
    "h_rng_state": (np.int8, (), 0),
    "h_rng_ok": (np.int32, (), 0),
    "h_last_x": (np.float64, (), np.nan),
    "h_run": (np.int64, (), 0),
    "h_run_t0": (np.int64, (), 0),
    "h_rep": (np.float64, (), 0.5),
    "h_n_vals": (np.int64, (), 0),
    "h_stuck": (np.int8, (), 0),
    "h_m": (np.float64, (), 0.0),
    "h_d": (np.float64, (), 0.0),
    "h_n_learn": (np.int32, (), 0),
    "h_cand": (np.int8, (), 0),
    "h_cand_t": (np.int64, (), 0),
    "h_spikes": (np.int64, (3,), -1),
    "h_spike_state": (np.int8, (), 0),
    "h_last_t": (np.int64, (), -1),
    "h_silent": (np.int8, (), 0),
}
HEALTH_ARGS = tuple(HEALTH_COLUMNS)
