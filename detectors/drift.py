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
sensor noise; ``hold_s`` is 5 min. ``--set mf01.ch4_t1.drift_tol=0.3`` sets a channel's
tolerance (a pair takes the smaller of its two channels').
"""

from __future__ import annotations

from collections.abc import Sequence
from itertools import pairwise
from typing import Any

import numpy as np
import numpy.typing as npt

from detectors._jit import Arr, jit
from detectors._state import StreamTable
from detectors.base import Detector, EventOrder, Inputs, Pending, Setup, check_batch, register, timing_of
from detectors.engine import Signal
from detectors.health_rules import health_severity
from detectors.overrides import drift_channels
from detectors.rules import where_place
from minewatch.catalogue import Channel
from minewatch.schema import AlertEvent, AlertKind

__all__ = ["DRIFT_ARGS", "DRIFT_COLUMNS", "DriftDetector", "drift_kernel"]


@jit
def _held(ok: bool, ti: int, since: Arr, s: int, hold_s: float) -> bool:
    """Track since when ``ok`` has held for stream ``s``; true once it has held ``hold_s`` seconds."""
    if not ok:
        since[s] = -1
        return False
    if since[s] < 0:
        since[s] = ti
    return bool((ti - since[s]) * 1e-9 >= hold_s)


@jit
def drift_kernel(stream: Arr, t: Arr, xa: Arr, xb: Arr, tol: Arr, gas_a: Arr, gas_b: Arr, warmup: Arr,
                 alpha_base: Arr, alpha_recent: Arr, hold_s: Arr, gap_s: Arr, n: Arr, base: Arr, recent: Arr,
                 t_last: Arr, since: Arr, state: Arr, out: Arr, aux: Arr) -> int:
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


_BATCH_DTYPES = {"stream": np.int64, "t": np.int64, "xa": np.float64, "xb": np.float64}


@register
class DriftDetector(Detector):
    """Drift of one methane sensor against its neighbour in the same place: pairs of a place's
    limited methane channels in catalogue order (T0-T1, T1-T2, ...), per robot."""

    name = "sensor_drift"
    inputs = Inputs.PAIRS
    order = EventOrder.DRIFT
    alerts = frozenset({"sensor_drift"})
    columns = DRIFT_COLUMNS
    kernel = staticmethod(drift_kernel)
    args = DRIFT_ARGS
    settings = ("drift_tol",)

    def __init__(self, setup: Setup) -> None:
        super().__init__(setup)
        self.table = StreamTable(DRIFT_COLUMNS)
        self.meta: list[tuple[str, str, Channel, Channel]] = []
        # neighbouring methane sensors of one place, compared for drift
        self.pairs: dict[str, list[tuple[Channel, Channel]]] = {}
        for sid, sc in setup.scenarios.items():
            ch4 = drift_channels(sc)
            if ch4:
                self.pairs[sid] = list(pairwise(ch4))

    def tolerance(self, sid: str, c: Channel) -> float:
        """Channel ``c``'s drift tolerance: its ``--set`` ``drift_tol``, or half its normal band
        (a pair takes the smaller of its two)."""
        v = self.setup.overrides.get(sid, c.name, "drift_tol")
        return 0.5 * (c.normal[1] - c.normal[0]) if v is None else v

    def stream(self, sid: str, rid: str, ca: Channel, cb: Channel) -> int:
        """The pair stream of ``ca`` and ``cb`` read by robot ``rid`` in ``sid``, set up when new."""
        s, new = self.table.add((sid, rid, ca.name, cb.name))
        if new:
            d = self.table
            d["tol"][s] = min(self.tolerance(sid, ca), self.tolerance(sid, cb))
            d["gas_a"][s] = 0.8 * ca.limits[0].lowest
            d["gas_b"][s] = 0.8 * cb.limits[0].lowest
            self.meta.append((sid, rid, ca, cb))
        return s

    def detect(self, stream: npt.NDArray[np.int64], t: npt.NDArray[np.int64], xa: npt.NDArray[np.float64],
               xb: npt.NDArray[np.float64], *,
               check: bool = True) -> tuple[npt.NDArray[np.int8], npt.NDArray[np.float64], int]:
        """The kernel over checked arrays: per sample its step (1 raised, 0 cleared, -1 none),
        ``recent - base`` after it, and the number of steps."""
        n = (check_batch(self.name, {"stream": stream, "t": t, "xa": xa, "xb": xb}, _BATCH_DTYPES, len(self.table))
             if check else stream.shape[0])
        out = np.empty(n, dtype=np.int8)
        aux = np.empty(n)
        steps = self.call((stream, t, xa, xb), (out, aux))
        return out, aux, steps

    def run(self, cols: tuple[npt.NDArray[Any], ...], late: Sequence[bool] | None) -> list[Pending]:
        stream, t, xa, xb, origin = cols
        out, aux, steps = self.detect(stream, t, xa, xb, check=False)  # the suite's own sorted batch
        if not steps:
            return []
        return [Pending(int(t[i]), self.order, int(stream[i]),
                        self.signal(int(stream[i]), int(out[i]), int(t[i]), float(xa[i]), float(xb[i]), float(aux[i]),
                                    late, int(origin[i])))
                for i in np.flatnonzero(out >= 0)]

    def signal(self, s: int, code: int, ts: int, a: float, b: float, gap: float, late: Sequence[bool] | None,
               fi: int) -> Signal:
        sid, rid, ca, cb = self.meta[s]
        sc = self.setup.scenarios[sid]
        tol = float(self.table["tol"][s])
        rule = (f"drift against a neighbouring sensor: the difference of two sensors of one place moved "
                f"{tol:g} {ca.unit} from its usual value for 5 min, outside gas events [P]")
        sensors = f"The {ca.label} and {cb.label} sensors read by robot {rid} in {where_place(sc)}"
        if code:
            msg = (f"{sensors} have drifted apart: now {a:.2f} and {b:.2f} {ca.unit}, {gap:+.2f} {ca.unit} "
                   f"off their usual difference: one of them is out of calibration; check both against a "
                   f"hand-held detector and recalibrate.")
        else:
            msg = f"{sensors} agree again ({a:.2f} and {b:.2f} {ca.unit}): the alert is cleared."
        evidence: dict[str, object] = {"rule": rule, "robot": rid, "neighbour": cb.name,
                                       "neighbour_value": b, "offset": round(gap, 4)}
        is_late, timing = timing_of(self.setup, late, fi)
        if is_late:
            evidence["late"] = True
        return Signal(scenario_id=sid, detector="sensor_drift", subject=f"{ca.name}.{cb.name}",
                      kind=AlertKind.sensor_health, source=rid, severity=health_severity(ca) if code else None, ts=ts,
                      message=msg, value=a, limit=tol, unit=ca.unit, channel=ca.name, robot_id=rid, evidence=evidence,
                      timing=timing)

    def seed(self, ev: AlertEvent) -> None:
        sc = self.setup.scenarios.get(ev.scenario_id)
        nb = ev.evidence.get("neighbour")
        if sc is None or ev.robot_id is None or ev.channel not in sc.channel_map or nb not in sc.channel_map:
            return
        s = self.stream(ev.scenario_id, ev.robot_id, sc.channel_map[ev.channel], sc.channel_map[nb])
        self.table["state"][s] = max(1, int(self.table["state"][s]))

    def forget(self, ev: AlertEvent, robot: str) -> None:
        s = self.table.get((ev.scenario_id, robot, ev.channel, ev.evidence.get("neighbour")))
        if s is not None:
            self.table["state"][s] = 0
