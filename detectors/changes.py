"""Notices of unusual changes: the change detector (:mod:`detectors.change`) on the base streams
of channels without fixed limits whose level does not jump with the mine's routine (machines
starting and stopping, pumps cycling, bunkers filling) [P]: humidity and dust, the quantities
with ``change_notice`` in :data:`minewatch.catalogue.QUANTITIES`.

It tracks the level closely (alpha 0.1) so the air's slow wander is normal and only abrupt,
unexplained changes alert, as notices (info): "this has changed, look at it". Its threshold and
warm-up can be set per channel (``--set mf01.rh.change_h=40``, ``change_warmup``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

import numpy as np
import numpy.typing as npt

from detectors.base import EventOrder, Pending, StreamDetector, register, timing_of
from detectors.change import CHANGE_ARGS, CHANGE_COLUMNS, change_kernel, to_score
from detectors.engine import Signal
from detectors.rules import decimals, fmt_value, subject
from minewatch.catalogue import QUANTITIES, Channel, Scenario
from minewatch.schema import AlertEvent, AlertKind, Severity

__all__ = ["CHANGE_SETTINGS", "ChangeNotices"]

_NS = 1_000_000_000
CHANGE_SETTINGS = {"c_warmup": 60, "c_h": 30.0, "c_spike": 16.0, "c_alpha": 0.1, "c_gap": 60 * _NS}


@register
class ChangeNotices(StreamDetector):
    """Unusual changes of humidity and dust where they have no fixed limit (notices)."""

    name = "change"
    order = EventOrder.CHANGE
    alerts = frozenset({"change"})
    columns = CHANGE_COLUMNS
    kernel = staticmethod(change_kernel)
    args = CHANGE_ARGS
    state_columns: ClassVar[Mapping[str, str]] = {"change": "c_state"}
    settings = ("change_h", "change_warmup")

    def configure(self, s: int, sc: Scenario, c: Channel | None) -> None:
        if c is not None and QUANTITIES[c.quantity].change_notice and not c.limits:
            self.table["c_on"][s] = True
            for name, value in CHANGE_SETTINGS.items():
                self.table[name][s] = value
            self.apply_settings(s, sc, c, {"change_h": "c_h", "change_warmup": "c_warmup"})

    def detect(self, stream: npt.NDArray[np.int64], t: npt.NDArray[np.int64], x: npt.NDArray[np.float64], *,
               check: bool = True
               ) -> tuple[npt.NDArray[np.int8], npt.NDArray[np.float64], npt.NDArray[np.float64], int]:
        """The kernel over checked arrays: per sample its step (1 raised, 0 cleared, -1 none),
        its score and the usual level, and whether anything changed."""
        n = self.check(stream, t, x) if check else stream.shape[0]
        score = np.empty(n)
        out = np.empty(n, dtype=np.int8)
        level = np.empty(n)
        return out, score, level, self.call((stream, t, x), (score, out, level))

    def run(self, cols: tuple[npt.NDArray[Any], ...], late: Sequence[bool] | None) -> list[Pending]:
        stream, t, x, origin = cols
        out, score, level, steps = self.detect(stream, t, x, check=False)  # the suite's own sorted batch
        if not steps:
            return []
        return [Pending(int(t[i]), self.order, int(stream[i]),
                        self.signal(int(stream[i]), int(out[i]), float(x[i]), int(t[i]), float(to_score(score[i])),
                                    float(level[i]), late, int(origin[i])))
                for i in np.flatnonzero(out >= 0)]

    def signal(self, s: int, code: int, value: float, ts: int, score: float, usual: float,
               late: Sequence[bool] | None, fi: int) -> Signal:
        sid, rid, chan, c = self.meta[s]
        assert c is not None
        sc = self.setup.scenarios[sid]
        b = self.table
        what = subject(sc, c)
        rule = (f"change detector: robust CUSUM, threshold {b['c_h'][s]:g}, after a {int(b['c_warmup'][s])}-value "
                f"warm-up [P]")
        digits = decimals(c.quantity)
        v = fmt_value(value, c.unit, digits) if np.isfinite(value) else str(value)
        if code:
            msg = (f"{what} has changed from its usual {fmt_value(usual, c.unit, digits)} to {v}: check whether the "
                   f"change is real or the sensor is drifting.")
        else:
            msg = f"{what} is steady again at {v}: the notice is cleared."
        evidence: dict[str, object] = {"rule": rule, "robot": rid, "score": round(score, 3),
                                       "usual": round(float(usual), 6)}
        is_late, timing = timing_of(self.setup, late, fi)
        if is_late:
            evidence["late"] = True
        kind = AlertKind(QUANTITIES[c.quantity].kind.alert_kind)
        return Signal(scenario_id=sid, detector="change", subject=chan, kind=kind, source=rid,
                      severity=Severity.info if code else None, ts=ts, message=msg,
                      value=value if np.isfinite(value) else None, unit=c.unit, channel=chan, robot_id=rid,
                      evidence=evidence, timing=timing)

    def seed(self, ev: AlertEvent) -> None:
        s = self.stream_of(ev)
        if s is not None:
            self.table["c_state"][s] = max(1, int(self.table["c_state"][s]))
