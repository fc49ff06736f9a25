"""Sensor health: out of physical range, stuck (flat), spikes, and silence.

One kernel over base streams (scenario, robot, channel); a NaN sample means "the robot sent a
frame in this scenario without a value for this channel". Four conditions, each reported as a
change code per sample in its own column of ``out`` (-1 no change, 1 raised, 0 cleared):

``range`` (column 0)
    A value outside the sensor's physical range ``[lo - tol, hi + tol]`` (domain §1.4), or
    ±inf, raises at once; 2 consecutive in-range values clear.
``stuck`` (column 1)
    A run of exactly equal values. How long a run must be is learned, scale-free: the stream
    keeps ``rep``, the share of samples equal to their predecessor (a plain mean at first,
    then slowly weighted; not from runs of :data:`STUCK_LEARN_RUN` or more, so a stuck spell
    stops teaching itself), and needs
    ``log(1e-12) / log(rep)`` repeats (at least :data:`STUCK_MIN_RUN`; the margin covers
    repeats that cluster when a slowly wandering value sits mid-step) and at least twice the
    longest run the sensor has shown and then moved on from, spanning at least ``stuck_s``
    seconds, after :data:`STUCK_WARMUP` values. A noisy sensor then needs a few dozen
    repeats, a coarse one far more, and a channel that is constant by nature (a run signal)
    can never be "stuck". A run does not span a gap of ``silence_s`` (a patrol robot that
    left and came back has not shown a stuck sensor). The first different value clears.
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
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

import numpy as np
import numpy.typing as npt

from detectors._jit import Arr, jit
from detectors.base import EventOrder, Pending, StreamDetector, register, timing_of
from detectors.engine import Signal
from detectors.health_rules import HEALTH_DETECTORS, SILENCE_S, STUCK_S, health_message, health_severity
from minewatch.catalogue import QUANTITIES, Channel, Scenario
from minewatch.schema import AlertEvent, AlertKind

__all__ = ["HEALTH_ARGS", "HEALTH_COLUMNS", "STUCK_MIN_RUN", "STUCK_WARMUP", "HealthDetector", "health_kernel"]

STUCK_MIN_RUN = 20
STUCK_LEARN_RUN = 200
STUCK_WARMUP = 100
STUCK_TAIL = math.log(1e-12)
REP_ALPHA = 0.002
SPIKE_WARMUP = 30
SPIKE_ALPHA = 0.05


@jit
def health_kernel(stream: Arr, t: Arr, x: Arr, lo: Arr, hi: Arr, tol: Arr, stuck_on: Arr, stuck_s: Arr,
                  spike_on: Arr, spike_k: Arr, spike_window_s: Arr, silence_s: Arr, rng_state: Arr, rng_ok: Arr,
                  last_x: Arr, run: Arr, run_t0: Arr, rep: Arr, n_vals: Arr, stuck: Arr, max_run: Arr, m: Arr,
                  d: Arr, n_learn: Arr, cand: Arr, cand_t: Arr, spikes: Arr, spike_state: Arr, last_t: Arr,
                  silent: Arr, out: Arr, aux: Arr) -> int:
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
        resumed = last_t[s] >= 0 and (ti - last_t[s]) * 1e-9 >= silence_s[s]
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
            same = v == last_x[s] and not resumed  # a run does not span a gap (a patrol robot away)
            if same:
                run[s] += 1
            else:
                if run[s] < STUCK_LEARN_RUN and run[s] > max_run[s]:
                    max_run[s] = run[s]  # the longest run this sensor has shown and then moved on from
                run[s] = 1
                run_t0[s] = ti
            if run[s] < STUCK_LEARN_RUN and n_vals[s] > 0:
                w = 1.0 / n_vals[s]  # a plain mean at first, then a slow exponential one
                if w < REP_ALPHA:
                    w = REP_ALPHA
                rep[s] += w * ((1.0 if same else 0.0) - rep[s])
            n_vals[s] += 1
            if stuck[s] == 1 and not same:
                stuck[s] = 0
                out[i, 1] = 0
                n_changes += 1
            elif stuck[s] == 0 and n_vals[s] >= STUCK_WARMUP and run[s] >= STUCK_MIN_RUN:
                r = rep[s]
                need = 1e18 if r >= 1.0 else STUCK_TAIL / math.log(r) if r > 0.0 else 0.0
                if need < 2.0 * max_run[s]:
                    need = 2.0 * max_run[s]
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
    "h_max_run": (np.int64, (), 0),
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

_STATE = ("h_rng_state", "h_stuck", "h_spike_state", "h_silent")  # each condition's raised state, by column


@register
class HealthDetector(StreamDetector):
    """A sensor's own health on every base stream: out of range, stuck, spiky, silent."""

    name = "sensor_health"
    order = EventOrder.HEALTH
    alerts = frozenset(HEALTH_DETECTORS)
    columns = HEALTH_COLUMNS
    kernel = staticmethod(health_kernel)
    args = HEALTH_ARGS
    state_columns: ClassVar[Mapping[str, str]] = dict(zip(HEALTH_DETECTORS, _STATE))
    settings = ("spike_k", "stuck_s")

    def configure(self, s: int, sc: Scenario, c: Channel | None) -> None:
        b = self.table
        b["h_silence_s"][s] = SILENCE_S
        b["h_stuck_s"][s] = STUCK_S
        if c is not None:
            q = QUANTITIES[c.quantity]
            b["h_lo"][s], b["h_hi"][s], b["h_tol"][s] = q.low, q.high, q.resolution / 2
            # a two-valued signal is never "stuck"; spikes only where the physics cannot jump (air,
            # gas, temperatures), not in flows, currents and levels of machines that start and stop
            b["h_stuck_on"][s] = q.stuck
            b["h_spike_on"][s] = q.spikes
            self.apply_settings(s, sc, c, {fld: f"h_{fld}" for fld in self.settings})  # spike_k, stuck_s

    def detect(self, stream: npt.NDArray[np.int64], t: npt.NDArray[np.int64],
               x: npt.NDArray[np.float64], *,
               check: bool = True) -> tuple[npt.NDArray[np.int8], npt.NDArray[np.float64], int]:
        """The kernel over checked arrays: per sample and condition its step (1 raised, 0
        cleared, -1 none), the run or silence behind a raise, and the number of steps."""
        n = self.check(stream, t, x) if check else stream.shape[0]
        out = np.empty((n, 4), dtype=np.int8)
        aux = np.empty(n)
        return out, aux, self.call((stream, t, x), (out, aux))

    def run(self, cols: tuple[npt.NDArray[Any], ...], late: Sequence[bool] | None) -> list[Pending]:
        stream, t, x, origin = cols
        out, aux, steps = self.detect(stream, t, x, check=False)  # the suite's own sorted batch
        if not steps:
            return []
        return [Pending(int(t[i]), self.order, int(stream[i]) * 4 + int(col),
                        self.signal(int(stream[i]), int(col), int(out[i, col]), float(x[i]), int(t[i]), float(aux[i]),
                                    late, int(origin[i])))
                for i, col in zip(*np.nonzero(out >= 0))]

    def signal(self, s: int, col: int, code: int, value: float, ts: int, aux: float, late: Sequence[bool] | None,
               fi: int) -> Signal:
        sid, rid, chan, c = self.meta[s]
        sc = self.setup.scenarios[sid]
        since = aux if code == 1 and col in (1, 3) else None
        shown = None if col == 3 and code == 1 else value
        msg, rule, limit = health_message(col, code == 1, sc, c, chan, rid, shown, since)
        evidence: dict[str, object] = {"rule": rule, "robot": rid}
        if since is not None:
            evidence["for_s"] = round(since, 1)
        is_late, timing = timing_of(self.setup, late, fi)
        if is_late:
            evidence["late"] = True
        return Signal(scenario_id=sid, detector=HEALTH_DETECTORS[col], subject=chan, kind=AlertKind.sensor_health,
                      source=rid, severity=health_severity(c) if code else None, ts=ts, message=msg,
                      value=shown if shown is None or np.isfinite(shown) else None, limit=limit,
                      unit=c.unit if c else None, channel=chan, robot_id=rid, evidence=evidence, timing=timing)

    def seed(self, ev: AlertEvent) -> None:
        s = self.stream_of(ev)
        if s is None:
            return
        col = HEALTH_DETECTORS.index(ev.detector)
        b = self.table
        if b[_STATE[col]][s]:
            return
        b[_STATE[col]][s] = 1
        if col == 1:
            b["h_last_x"][s] = ev.value if ev.value is not None else np.nan
        if col == 2:
            b["h_spikes"][s, 2] = ev.ts
