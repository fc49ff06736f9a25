"""Rate of rise: a fast gas climb alerts before the limit is reached.

Per stream, a level ``L`` and slope ``B`` (unit/s) are tracked by double exponential smoothing
with time constants (irregular sampling is fine). After ``warmup`` samples the projection
``P = L + B * horizon`` is compared with the channel's first limit (``target``) and, where it
has one, the power-cut level (``cut``):

* code 1 (warning): ``B >= rise`` and ``P >= target`` and ``L >= target / 2``;
* code 2 (alarm): code 1 and ``P >= cut``;
* code 0 otherwise.

The stream raises after ``n_raise`` consecutive samples with code >= 1, escalates at once when
the code rises, and clears after 2 consecutive samples of code 0. A sample more than ``gap_s``
after the previous one restarts the tracking (and clears an active rise: the robot was away);
``aux[i]`` is the slope (unit/s) after sample ``i``;
a sample not later than the previous one is ignored; non-finite samples change nothing.

The rate that alerts is the quantity's (``Quantity.rise_per_min`` in
:data:`minewatch.catalogue.QUANTITIES` [P]: methane 0.1 %/min, CO 2 ppm/min, CO2 0.05 %/min);
horizon 60 s [P]. A first-order rise to a new equilibrium (production starting) projects far less
than a runaway climb, so the horizon is kept short.
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
from detectors.rules import Rule, fmt_number, fmt_thr, fmt_value, subject
from minewatch.catalogue import QUANTITIES, Channel, Scenario
from minewatch.schema import AlertEvent, Severity

__all__ = ["RISE_COLUMNS", "RiseDetector", "rise_kernel"]

HORIZON_S = 60.0
TAU_LEVEL_S = 8.0
TAU_SLOPE_S = 20.0
WARMUP = 5
GAP_S = 60.0


@jit
def rise_kernel(stream: Arr, t: Arr, x: Arr, on: Arr, rise: Arr, target: Arr, cut: Arr, horizon: Arr, tau_l: Arr,
                tau_b: Arr, warmup: Arr, gap_s: Arr, n_raise: Arr, t_last: Arr, lvl: Arr, slope: Arr, n_seen: Arr,
                state: Arr, on_count: Arr, off_count: Arr, last_dt: Arr, wa: Arr, wb: Arr, out: Arr, aux: Arr) -> int:
    n_changes = 0
    for i in range(x.shape[0]):
        s = stream[i]
        v = x[i]
        out[i] = -1
        aux[i] = 0.0
        if not on[s] or not np.isfinite(v):
            continue
        ti = t[i]
        tl = t_last[s]
        dt = (ti - tl) * 1e-9
        if tl < 0 or dt > gap_s[s]:
            lvl[s] = v
            slope[s] = 0.0
            n_seen[s] = 1
            t_last[s] = ti
            on_count[s] = 0
            off_count[s] = 0
            if state[s] > 0:
                state[s] = 0
                out[i] = 0
                n_changes += 1
            continue
        if dt <= 0.0:
            continue
        old_l = lvl[s]
        b_now = slope[s]
        pred = old_l + b_now * dt
        if dt != last_dt[s]:  # regular sampling reuses the smoothing weights
            last_dt[s] = dt
            wa[s] = 1.0 - math.exp(-dt / tau_l[s])
            wb[s] = 1.0 - math.exp(-dt / tau_b[s])
        new_l = pred + wa[s] * (v - pred)
        b_now += wb[s] * ((new_l - old_l) / dt - b_now)
        lvl[s] = new_l
        slope[s] = b_now
        t_last[s] = ti
        seen = n_seen[s] + 1
        n_seen[s] = seen
        if seen < warmup[s]:
            continue
        proj = new_l + b_now * horizon[s]
        tgt = target[s]
        code = 0
        if b_now >= rise[s] and proj >= tgt and new_l >= 0.5 * tgt:
            code = 1
            c = cut[s]
            if c == c and proj >= c:
                code = 2
        st = state[s]
        aux[i] = b_now
        if code > 0:
            on_n = on_count[s] + 1
            on_count[s] = on_n
            off_count[s] = 0
            if (st == 0 and on_n >= n_raise[s]) or (st > 0 and code > st):
                state[s] = code
                out[i] = code
                n_changes += 1
        else:
            on_count[s] = 0
            off_n = off_count[s] + 1
            off_count[s] = off_n
            if st > 0 and off_n >= 2:
                state[s] = 0
                out[i] = 0
                n_changes += 1
    return n_changes


RISE_COLUMNS = {
    "rise_on": (np.bool_, (), False),
    "rise": (np.float64, (), np.inf),
    "rise_target": (np.float64, (), np.inf),
    "rise_cut": (np.float64, (), np.nan),
    "rise_horizon": (np.float64, (), HORIZON_S),
    "rise_tau_l": (np.float64, (), TAU_LEVEL_S),
    "rise_tau_b": (np.float64, (), TAU_SLOPE_S),
    "rise_warmup": (np.int32, (), WARMUP),
    "rise_gap": (np.float64, (), GAP_S),
    "rise_n_raise": (np.int32, (), 2),
    "rise_t_last": (np.int64, (), -1),
    "rise_lvl": (np.float64, (), 0.0),
    "rise_slope": (np.float64, (), 0.0),
    "rise_n": (np.int32, (), 0),
    "rise_state": (np.int8, (), 0),
    "rise_on_count": (np.int32, (), 0),
    "rise_off_count": (np.int32, (), 0),
    "rise_last_dt": (np.float64, (), -1.0),
    "rise_wa": (np.float64, (), 0.0),
    "rise_wb": (np.float64, (), 0.0),
}
RISE_ARGS = ("rise_on", "rise", "rise_target", "rise_cut", "rise_horizon", "rise_tau_l", "rise_tau_b", "rise_warmup",
             "rise_gap", "rise_n_raise", "rise_t_last", "rise_lvl", "rise_slope", "rise_n", "rise_state",
             "rise_on_count", "rise_off_count", "rise_last_dt", "rise_wa", "rise_wb")



@register
class RiseDetector(StreamDetector):
    """Rate of rise on the base streams of channels whose quantity has a rate that alerts
    (``Quantity.rise_per_min``) or with a ``rise`` override, and an upper fixed limit, which it
    heads for."""

    name = "rate_of_rise"
    order = EventOrder.RISE
    alerts = frozenset({"rate_of_rise"})
    columns = RISE_COLUMNS
    kernel = staticmethod(rise_kernel)
    args = RISE_ARGS
    settings = ("rise",)
    state_columns: ClassVar[Mapping[str, str]] = {"rate_of_rise": "rise_state"}

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.limit_rule: list[Rule | None] = []  # per base stream: the limit rule its rise heads for

    def configure(self, s: int, sc: Scenario, c: Channel | None) -> None:
        rise_rule = None
        if c is not None:
            b = self.table
            rise = self.setup.overrides.get(sc.id, c.name, "rise")
            rise = QUANTITIES[c.quantity].rise_per_min if rise is None else rise
            limit_rules = [r for r in self.setup.rules.get((sc.id, c.name), ()) if r.direction == "above"
                           and r.detector.endswith("_limit")]
            if rise is not None and limit_rules:
                rise_rule = limit_rules[0]
                b["rise_on"][s] = True
                b["rise"][s] = rise / 60.0
                b["rise_target"][s] = rise_rule.levels[0][1]
                crit = [thr for sev, thr in rise_rule.levels if sev is Severity.critical]
                b["rise_cut"][s] = crit[0] if crit and crit[0] > rise_rule.levels[0][1] else np.nan
        self.limit_rule.append(rise_rule)

    def detect(self, stream: npt.NDArray[np.int64], t: npt.NDArray[np.int64],
               x: npt.NDArray[np.float64], *,
               check: bool = True) -> tuple[npt.NDArray[np.int8], npt.NDArray[np.float64], int]:
        """The kernel over checked arrays: per sample its step (2 alarm, 1 warning, 0 cleared,
        -1 none), the slope after it (unit/s), and the number of steps."""
        n = self.check(stream, t, x) if check else stream.shape[0]
        out = np.empty(n, dtype=np.int8)
        aux = np.empty(n)
        return out, aux, self.call((stream, t, x), (out, aux))

    def run(self, cols: tuple[npt.NDArray[Any], ...], late: Sequence[bool] | None) -> list[Pending]:
        stream, t, x, origin = cols
        out, aux, steps = self.detect(stream, t, x, check=False)  # the suite's own sorted batch
        if not steps:
            return []
        return [Pending(int(t[i]), self.order, int(stream[i]),
                        self.signal(int(stream[i]), int(out[i]), float(x[i]), int(t[i]), float(aux[i]), late,
                                    int(origin[i])))
                for i in np.flatnonzero(out >= 0)]

    def signal(self, s: int, code: int, value: float, ts: int, slope: float, late: Sequence[bool] | None,
               fi: int) -> Signal:
        """A rate-of-rise step. The alert's ``value`` is the rate and its ``limit`` the rate that
        alerts (per minute, unit ``%/min``); the level reached and the limit it heads for are in
        the evidence and the sentence."""
        sid, rid, chan, c = self.meta[s]
        rule = self.limit_rule[s]
        assert rule is not None and c is not None
        sc = self.setup.scenarios[sid]
        b = self.table
        per_min = slope * 60.0
        rise_per_min = float(b["rise"][s]) * 60.0
        horizon = float(b["rise_horizon"][s])
        unit = f"{c.unit}/min"
        rise_rule = f"rate of rise {rise_per_min:g} {unit}, projected {horizon:g} s ahead [P]"
        what = subject(sc, c)
        now = fmt_value(value, c.unit, rule.digits)
        evidence: dict[str, object] = {"rule": rise_rule, "robot": rid, "rate_per_min": round(per_min, 4),
                                       "level": value, "level_unit": c.unit}
        if code == 0:
            msg = f"{what} has stopped rising fast (now {now}): the alert is cleared."
        else:
            target = float(b["rise_cut"][s]) if code == 2 else float(b["rise_target"][s])
            name = "power-cut level" if code == 2 and rule.power_cut else rule.level_names[0]
            evidence.update(heading_for=target, heading_for_level=name, limit_rule=rule.rule)
            msg = (f"{what} is rising {fmt_number(per_min, 2)} {unit} (now {now}); at this rate it reaches the {name} "
                   f"{fmt_thr(target, c.unit)} within {horizon:g} s: find the cause now (airflow, local fan, outburst "
                   f"signs) and be ready to withdraw people and cut power.")
        is_late, timing = timing_of(self.setup, late, fi)
        if is_late:
            evidence["late"] = True
        severity = None if code == 0 else (Severity.alarm if code == 2 else Severity.warning)
        return Signal(scenario_id=sid, detector="rate_of_rise", subject=chan, kind=rule.kind, source=rid,
                      severity=severity, ts=ts, message=msg, value=round(per_min, 4), limit=rise_per_min, unit=unit,
                      channel=chan, robot_id=rid, evidence=evidence, timing=timing)

    def seed(self, ev: AlertEvent) -> None:
        s = self.stream_of(ev)
        if s is not None and self.table["rise_state"][s] == 0:
            self.table["rise_state"][s] = 2 if ev.severity is Severity.alarm else 1
