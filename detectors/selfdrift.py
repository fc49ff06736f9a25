"""Drift of a sensor against its own long baseline.

A drifting sensor (a catalytic head losing sensitivity, an electrochemical cell ageing, a
thermistor's offset creeping) reads the same air as before plus an offset that grows slowly
and steadily over tens of minutes to hours. What tells it from a change of the process:

* it is *slow and monotone*: a machine starting or a door opening moves a reading in a step
  that then stays, a gas event rises and falls; a drift grows checkpoint after checkpoint;
* it walks away from the sensor's own *long* baseline while the short-term noise stays as it
  was.

Per base stream (scenario, robot, channel), one value per frame:

* ``base`` is the mean of the first ``warmup`` values, then follows the reading very slowly
  (``alpha_base`` per value, about an hour at 0.5 Hz), and only while the reading is near it
  (protected: a drift cannot teach itself into the baseline);
* ``fast`` follows the reading (``alpha_fast``, about 40 s at 0.5 Hz); ``dev = fast - base``;
* every ``step_s`` seconds of judged time ``dev`` is put down as a checkpoint; the last four are
  kept;
* the alert rises at a checkpoint at least ``tol`` from the baseline when the three
  increments from the oldest kept checkpoint are all on its side, each at least ``tol / 6``
  and none more than :data:`STEADY` times another: a steady walk over ``3 * step_s``, not a
  step (a machine starting) nor a curve that settles (a machine warming up); it clears after
  ``hold_s`` seconds of ``|dev| < tol / 2`` (ISA-18.2: the deadband and the hold keep it from
  chattering);
* machines that start and stop (:data:`minewatch.catalogue.MACHINE_RUN`): a channel that
  follows its place's machine has a baseline per run state (``base[2]``, ``n[2]``), the run
  state read from the indicator's reading in the same frame (``run``, against ``run_thr``);
  at a start or stop the offset found so far is carried into the other state, the first
  ``settle_s`` seconds are not judged, and a state seen for the first time learns its baseline
  less the offset carried into it;
* neighbours: a raise is dropped when another sensor of the same robot in the same place and of
  the same side (the air's, or the machine's own) has moved :data:`NEIGHBOUR` of its own
  tolerance as well (an air sensor over the same walk, a machine's from its baseline), or, for a
  channel with one baseline, when the place's machine started or stopped within
  :data:`AFTER_SWITCH_S`: the air or the machine changed, not one sensor; checked against the
  neighbours' state at the end of the batch;
* a gap of more than ``gap_s`` without a value restarts the warm-up (not while raised: the
  baseline of the healthy sensor is what the drift is measured against).

``tol`` [P] is the quantity's ``drift`` share (:class:`minewatch.catalogue.Quantity`, half the
channel's normal operating band by default) of the channel's normal band, or the
``selfdrift_tol`` ``--set`` field in the channel's unit. A drift of one band over half an hour
(the simulator's ``sensor_drift``) crosses half the band halfway through. Levels a machine
moves between set points (:data:`minewatch.catalogue.SET_POINT_LEVELS`) are not watched.
Neighbouring methane sensors are compared with each other by :mod:`detectors.drift`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

import numpy as np
import numpy.typing as npt

from detectors._jit import Arr, jit
from detectors.base import BASE_DTYPES, EventOrder, Pending, Setup, StreamDetector, check_batch, register, timing_of
from detectors.engine import Signal
from detectors.health_rules import health_severity
from detectors.rules import where_place
from minewatch.catalogue import MACHINE_RUN, QUANTITIES, SET_POINT_LEVELS, QuantityKind, Channel, Scenario
from minewatch.schema import AlertEvent, AlertKind

__all__ = ["SELFDRIFT", "SELFDRIFT_ARGS", "SELFDRIFT_COLUMNS", "SelfDriftDetector", "selfdrift_kernel"]

SELFDRIFT = "baseline_drift"
STEADY = 3.0  # the largest ratio of two checkpoint increments of a steady walk [P]
FAR = 2.0  # a walk first found this far (times the tolerance) off was a curve, a gas event's rise [P]
AFTER_SWITCH_S = 3600.0  # how long a machine's temperatures walk after it starts or stops [P]
NEIGHBOUR = 0.25  # a neighbour this far (a share of its own tolerance) from its baseline moves with it [P]


@jit
def _walks(cp: Arr, s: int, tol: float) -> bool:
    """Whether the checkpoints of stream ``s`` walk steadily away from the baseline, to between
    ``tol`` and :data:`FAR` times it (a drift is found as it crosses the tolerance; a reading
    already far off when its course first looks steady rose in a curve): three increments on
    one side, each at least ``tol / 6`` and none more than :data:`STEADY` times another (a step
    or a curve that settles is not a drift)."""
    sign = 1.0 if cp[s, 3] > 0.0 else -1.0
    if not tol <= sign * cp[s, 3] <= FAR * tol:
        return False
    lo = np.inf
    hi = 0.0
    for k in range(3):
        d = sign * (cp[s, k + 1] - cp[s, k])
        if not d >= tol / 6.0:
            return False
        lo = min(lo, d)
        hi = max(hi, d)
    return bool(hi <= STEADY * lo)


@jit
def selfdrift_kernel(stream: Arr, t: Arr, x: Arr, run: Arr, tol: Arr, warmup: Arr, alpha_base: Arr, alpha_fast: Arr,
                     step_s: Arr, hold_s: Arr, gap_s: Arr, settle_s: Arr, run_thr: Arr, n: Arr, base: Arr, fast: Arr,
                     mode: Arr, carry: Arr, switch_t: Arr, cp: Arr, cp_age: Arr, t_judged: Arr, t_last: Arr,
                     since: Arr, state: Arr, out: Arr, aux: Arr) -> int:
    """``out[i]``: 1 raised, 0 cleared, -1 no change; ``aux[i]``: ``fast - base``, ``base`` and the
    machine's run state (1 running, 0 stopped) after ``i``. ``run[i]``: the reading of the place's
    run indicator in the same frame (NaN: none; the machine keeps its last run state), compared
    with the stream's ``run_thr`` (NaN: the stream does not follow a machine's run state, one
    baseline)."""
    n_changes = 0
    for i in range(x.shape[0]):
        s = stream[i]
        v = x[i]
        out[i] = -1
        aux[i, 0] = np.nan
        aux[i, 1] = np.nan
        aux[i, 2] = mode[s]
        if not np.isfinite(v) or not np.isfinite(tol[s]):
            continue
        ti = t[i]
        if state[s] == 0 and t_last[s] >= 0 and (ti - t_last[s]) * 1e-9 > gap_s[s]:
            n[s, 0] = 0
            n[s, 1] = 0
            switch_t[s] = -1
            t_judged[s] = -1
        t_last[s] = ti
        m = mode[s]
        if np.isfinite(run_thr[s]) and np.isfinite(run[i]):
            new = 1 if run[i] >= run_thr[s] else 0
            if new != m:
                # the machine started or stopped: the offset found so far goes with the sensor
                carry[s] = fast[s] - base[s, m] if n[s, m] >= warmup[s] else 0.0
                if n[s, new] >= warmup[s]:
                    fast[s] = base[s, new] + carry[s]
                mode[s] = new
                m = new
                aux[i, 2] = m
                switch_t[s] = ti
                t_judged[s] = -1
        if switch_t[s] >= 0 and (ti - switch_t[s]) * 1e-9 < settle_s[s]:
            continue  # the machine settles into its new state
        if n[s, m] < warmup[s]:
            n[s, m] += 1
            base[s, m] += (v - base[s, m]) / n[s, m]
            if n[s, 1 - m] < warmup[s]:  # nothing learned yet: no walk to follow
                carry[s] = 0.0
                for k in range(4):
                    cp[s, k] = np.nan
                cp_age[s] = 0
                since[s] = -1
            if n[s, m] == warmup[s]:
                base[s, m] -= carry[s]  # the state's level as the healthy sensor reads it
                fast[s] = base[s, m] + carry[s]
            t_judged[s] = -1
            continue
        fast[s] += alpha_fast[s] * (v - fast[s])
        b = base[s, m]
        dev = fast[s] - b
        aux[i, 0] = dev
        aux[i, 1] = b
        if t_judged[s] >= 0:
            cp_age[s] += ti - t_judged[s]
        t_judged[s] = ti
        checkpoint = cp_age[s] * 1e-9 >= step_s[s]
        if checkpoint:
            for k in range(3):
                cp[s, k] = cp[s, k + 1]
            cp[s, 3] = dev
            cp_age[s] = 0
        if state[s] == 0:
            if checkpoint and _walks(cp, s, tol[s]):
                state[s] = 1
                since[s] = -1
                out[i] = 1
                n_changes += 1
            elif abs(dev) < 0.5 * tol[s]:
                base[s, m] += alpha_base[s] * (v - b)
        elif abs(dev) < 0.5 * tol[s]:
            if since[s] < 0:
                since[s] = ti
            if (ti - since[s]) * 1e-9 >= hold_s[s]:
                state[s] = 0
                since[s] = -1
                out[i] = 0
                n_changes += 1
        else:
            since[s] = -1
    return n_changes


SELFDRIFT_COLUMNS = {
    "sd_tol": (np.float64, (), np.inf),
    "sd_warmup": (np.int64, (), 150),
    "sd_alpha_base": (np.float64, (), 0.0005),
    "sd_alpha_fast": (np.float64, (), 0.05),
    "sd_step_s": (np.float64, (), 300.0),
    "sd_hold_s": (np.float64, (), 300.0),
    "sd_gap_s": (np.float64, (), 300.0),
    "sd_settle_s": (np.float64, (), 60.0),
    "sd_run_thr": (np.float64, (), np.nan),
    "sd_n": (np.int64, (2,), 0),
    "sd_base": (np.float64, (2,), 0.0),
    "sd_fast": (np.float64, (), 0.0),
    "sd_mode": (np.int64, (), 0),
    "sd_carry": (np.float64, (), 0.0),
    "sd_switch_t": (np.int64, (), -1),
    "sd_cp": (np.float64, (4,), np.nan),
    "sd_cp_age": (np.int64, (), 0),
    "sd_t_judged": (np.int64, (), -1),
    "sd_t_last": (np.int64, (), -1),
    "sd_since": (np.int64, (), -1),
    "sd_state": (np.int8, (), 0),
}
SELFDRIFT_ARGS = tuple(SELFDRIFT_COLUMNS)
_DTYPES = {**BASE_DTYPES, "run": np.float64}


def drift_tolerance(sc: Scenario, c: Channel | None, overrides: Any) -> float:
    """The offset from its own baseline at which channel ``c`` of ``sc`` is called drifted (inf: not watched)."""
    if c is None or (sc.id, c.name) in SET_POINT_LEVELS:
        return float("inf")
    share = QUANTITIES[c.quantity].drift
    if share is None:
        return float("inf")
    set_tol = overrides.get(sc.id, c.name, "selfdrift_tol")
    if set_tol is not None:
        return float(set_tol)
    band = c.normal[1] - c.normal[0]
    return share * band if band > 0 else float("inf")


@register
class SelfDriftDetector(StreamDetector):
    """A sensor drifting away from its own long baseline, slowly and steadily, on every base stream."""

    name = "selfdrift"
    order = EventOrder.DRIFT
    alerts = frozenset({SELFDRIFT})
    columns = SELFDRIFT_COLUMNS
    kernel = staticmethod(selfdrift_kernel)
    args = SELFDRIFT_ARGS
    settings = ("selfdrift_tol",)
    state_columns: ClassVar[Mapping[str, str]] = {SELFDRIFT: "sd_state"}

    def __init__(self, setup: Setup) -> None:
        super().__init__(setup)
        self._indicator = np.zeros(0, dtype=bool)

    def configure(self, s: int, sc: Scenario, c: Channel | None) -> None:
        b = self.table
        b["sd_tol"][s] = drift_tolerance(sc, c, self.setup.overrides)
        if c is not None and sc.id in MACHINE_RUN:
            indicator, follow = MACHINE_RUN[sc.id]
            if c.name in follow:
                # a baseline per run state: running above half the low end of the indicator's band
                b["sd_run_thr"][s] = 0.5 * sc.channel(indicator).normal[0]

    def detect(self, stream: npt.NDArray[np.int64], t: npt.NDArray[np.int64], x: npt.NDArray[np.float64],
               run: npt.NDArray[np.float64] | None = None, *,
               check: bool = True) -> tuple[npt.NDArray[np.int8], npt.NDArray[np.float64], int]:
        """The kernel over checked arrays (``run``: the reading of the place's run indicator in
        each sample's frame, NaN or None where there is none): per sample its step (1 raised, 0
        cleared, -1 none), ``fast - base``, ``base`` and the machine's run state after it, and the
        number of steps."""
        if run is None:
            run = np.full(stream.shape[0], np.nan)
        n = (check_batch(self.name, {"stream": stream, "t": t, "x": x, "run": run}, _DTYPES, len(self.table))
             if check else stream.shape[0])
        out = np.empty(n, dtype=np.int8)
        aux = np.empty((n, 3))
        return out, aux, self.call((stream, t, x, run), (out, aux))

    def run_readings(self, stream: npt.NDArray[np.int64], x: npt.NDArray[np.float64],
                     origin: npt.NDArray[np.int64]) -> npt.NDArray[np.float64]:
        """Per sample of a batch, the reading of its place's run indicator in the same frame (NaN
        where its channel follows no machine, or the frame has no such reading)."""
        run = np.full(stream.shape[0], np.nan)
        thr = self.table["sd_run_thr"][stream]
        follows = np.isfinite(thr)
        if not follows.any():
            return run
        ind = self.indicator[stream]
        frame_run = np.full(int(origin.max()) + 1, np.nan)
        frame_run[origin[ind]] = x[ind]
        run[follows] = frame_run[origin[follows]]
        return run

    @property
    def indicator(self) -> npt.NDArray[np.bool_]:
        """Per base stream, whether it is its place's run indicator."""
        known = len(self._indicator)
        if known < len(self.meta):
            self._indicator = np.r_[self._indicator, [
                m.spec is not None and m.scenario_id in MACHINE_RUN and MACHINE_RUN[m.scenario_id][0] == m.channel
                for m in self.meta[known:]]].astype(bool)
        return self._indicator

    def run(self, cols: tuple[npt.NDArray[Any], ...], late: Sequence[bool] | None) -> list[Pending]:
        stream, t, x, origin = cols
        run = self.run_readings(stream, x, origin)
        out, aux, steps = self.detect(stream, t, x, run, check=False)  # the suite's own sorted batch
        if not steps:
            return []
        for i in np.flatnonzero(out == 1):
            if self.neighbours_move(int(stream[i]), int(t[i])):
                out[i] = -1  # a change of the process, not of one sensor
                self.table["sd_state"][int(stream[i])] = 0
        return [Pending(int(t[i]), self.order, int(stream[i]),
                        self.signal(int(stream[i]), int(out[i]), float(x[i]), int(t[i]), aux[i], late,
                                    int(origin[i])))
                for i in np.flatnonzero(out >= 0)]

    def neighbours_move(self, s: int, ts: int) -> bool:
        """Whether, at a raise of stream ``s`` at ``ts``, another sensor of the same robot in the
        same place and of the same kind (the air's, or the machine's own) has walked at least
        :data:`NEIGHBOUR` of its own tolerance from its baseline (of its machine's run state) too,
        or (for a channel with one baseline) the place's machine started or stopped within the
        walk's four checkpoints: the air or the machine changed, not one sensor. A channel with a
        baseline per run state is compared only with the others that have one."""
        sid, rid = self.meta[s][0], self.meta[s][1]
        b = self.table
        per_state = bool(np.isfinite(b["sd_run_thr"][s]))
        kind = self.machine_side(s)
        window = AFTER_SWITCH_S * 1e9
        for o, m in enumerate(self.meta):
            if o == s or m[0] != sid or m[1] != rid:
                continue
            o_per_state = bool(np.isfinite(b["sd_run_thr"][o]))
            if o_per_state and not per_state and b["sd_switch_t"][o] >= 0 and ts - int(b["sd_switch_t"][o]) < window:
                return True
            mo = int(b["sd_mode"][o])
            if (per_state and not o_per_state) or self.machine_side(o) != kind or b["sd_n"][o, mo] < b["sd_warmup"][o]:
                continue
            tol = float(b["sd_tol"][o])
            now = float(b["sd_fast"][o] - b["sd_base"][o, mo])
            then = float(b["sd_cp"][o, 0])  # its offset about the walk's start
            # the air's sensors: moved over the same walk (production moves a face's gases up and
            # down all shift); the machine's: away from their baseline at all
            moved = abs(now - then) if np.isfinite(then) and not kind else abs(now)
            if np.isfinite(tol) and moved >= NEIGHBOUR * tol:
                return True
        return False

    def machine_side(self, s: int) -> bool:
        """Whether stream ``s`` reads the machine itself (its current, flow, speed, pressure,
        temperatures, levels) rather than the air around it."""
        c = self.meta[s].spec
        return c is not None and (bool(np.isfinite(self.table["sd_run_thr"][s])) or QUANTITIES[c.quantity].kind in (
            QuantityKind.equipment, QuantityKind.water))

    def signal(self, s: int, code: int, value: float, ts: int, aux: npt.NDArray[np.float64],
               late: Sequence[bool] | None, fi: int) -> Signal:
        """The raise (``code`` 1) or clear (0) at sample value ``value`` of stream ``s`` (``aux``:
        the kernel's offset, baseline and run state after it)."""
        dev, base = float(aux[0]), float(aux[1])
        sid, rid, chan, c = self.meta[s]
        assert c is not None  # only streams the catalogue knows are watched (their tolerance is finite)
        sc = self.setup.scenarios[sid]
        q = QUANTITIES[c.quantity]
        tol = float(self.table["sd_tol"][s])
        d = q.decimals
        unit = f" {c.unit}" if c.unit else ""
        rule = (f"drift against its own baseline: the reading walked {tol:.{d}f}{unit} from its slow baseline, "
                f"growing steadily over four {self.table['sd_step_s'][s]:g} s checkpoints [P]")
        who = f"The {c.label} sensor read by robot {rid} in {where_place(sc)}"
        if code:
            side = "above" if dev > 0 else "below"
            msg = (f"{who} reads {abs(dev):.{d}f}{unit} {side} its own baseline of {base:.{d}f}{unit} and keeps "
                   f"drifting: check it against a hand-held instrument and calibrate.")
        else:
            msg = f"{who} is back at its own baseline ({value:.{d}f}{unit}): the alert is cleared."
        evidence: dict[str, object] = {"rule": rule, "robot": rid, "baseline": round(base, 6),
                                       "offset": round(dev, 6)}
        if np.isfinite(self.table["sd_run_thr"][s]):
            # the baseline is that of the machine's run state
            evidence["machine"] = "running" if aux[2] else "stopped"
        is_late, timing = timing_of(self.setup, late, fi)
        if is_late:
            evidence["late"] = True
        return Signal(scenario_id=sid, detector=SELFDRIFT, subject=chan, kind=AlertKind.sensor_health, source=rid,
                      severity=health_severity(c) if code else None, ts=ts, message=msg, value=value, limit=tol,
                      unit=c.unit, channel=chan, robot_id=rid, evidence=evidence, timing=timing)

    def seed(self, ev: AlertEvent) -> None:
        s = self.stream_of(ev)
        if s is None:
            return
        b = self.table
        if b["sd_state"][s]:
            return
        b["sd_state"][s] = 1
        base = ev.evidence.get("baseline")
        if isinstance(base, (int, float)):
            # the healthy sensor's baseline (in the machine's run state then), so the next
            # readings decide whether the drift is gone
            mo = 1 if ev.evidence.get("machine") == "running" else 0
            b["sd_mode"][s] = mo
            b["sd_base"][s, mo] = float(base)
            b["sd_fast"][s] = ev.value if ev.value is not None else float(base)
            b["sd_n"][s, mo] = b["sd_warmup"][s]
