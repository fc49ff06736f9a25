"""Notices of unusual changes: the change detector (:mod:`detectors.change`) on the base streams
of channels without fixed limits whose level does not jump with the mine's routine (machines
starting and stopping, pumps cycling, bunkers filling) [P]: humidity and dust, the quantities
with ``change_notice`` in :data:`minewatch.catalogue.QUANTITIES`.

It tracks the level closely (alpha 0.1) so the air's slow wander is normal and only abrupt,
unexplained changes alert, as notices (info): "this has changed, look at it". A notice says what
changed, by the test that raised it (the kernel's ``why``): the level rose or fell, one value
jumped, the values vary more than usual, or a value is not a number; its evidence names that test
(``"test"``). Its threshold and warm-up can be set per channel (``--set mf01.rh.change_h=40``,
``change_warmup``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

import numpy as np
import numpy.typing as npt

from detectors.base import EventOrder, Pending, StreamDetector, register, timing_of
from detectors.change import (CHANGE_ARGS, CHANGE_COLUMNS, VAR_RATIO, WHY_FALL, WHY_NAMES, WHY_NOISE, WHY_NONFINITE,
                              WHY_RISE, WHY_SPIKE, change_kernel, to_score)
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
               ) -> tuple[npt.NDArray[np.int8], npt.NDArray[np.float64], npt.NDArray[np.float64],
                          npt.NDArray[np.int8], int]:
        """The kernel over checked arrays: per sample its step (1 raised, 0 cleared, -1 none),
        its evidence ``T``, the usual level and the test that raised a notice there (``WHY_*``,
        0 where none rose), and whether anything changed."""
        n = self.check(stream, t, x) if check else stream.shape[0]
        score = np.empty(n)
        out = np.empty(n, dtype=np.int8)
        level = np.empty(n)
        why = np.zeros(n, dtype=np.int8)  # the kernel writes it only where a notice rises
        return out, score, level, why, self.call((stream, t, x), (score, out, level, why))

    def run(self, cols: tuple[npt.NDArray[Any], ...], late: Sequence[bool] | None) -> list[Pending]:
        stream, t, x, origin = cols
        out, score, level, why, steps = self.detect(stream, t, x, check=False)  # the suite's own sorted batch
        if not steps:
            return []
        return [Pending(int(t[i]), self.order, int(stream[i]),
                        self.signal(int(stream[i]), int(out[i]), float(x[i]), int(t[i]), float(score[i]),
                                    float(level[i]), late, int(origin[i]), int(why[i])))
                for i in np.flatnonzero(out >= 0)]

    def signal(self, s: int, code: int, value: float, ts: int, evidence_t: float, usual: float,
               late: Sequence[bool] | None, fi: int, why: int = 0) -> Signal:
        """The notice (``code`` 1) or its clearing (0) at ``value``: ``evidence_t`` is the kernel's
        evidence ``T`` there, ``why`` the test that raised the notice."""
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
            msg = _raised(what, why, v, fmt_value(usual, c.unit, digits), value > usual, evidence_t)
        else:
            msg = f"{what} is steady again at {v}: the notice is cleared."
        score = float(to_score(np.asarray(evidence_t)))
        evidence: dict[str, object] = {"rule": rule, "robot": rid, "score": round(score, 3),
                                       "usual": round(float(usual), 6)}
        if code:
            evidence["test"] = WHY_NAMES[why]
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


def _raised(what: str, why: int, value: str, usual: str, above: bool, evidence_t: float) -> str:
    """A notice's message, by the test that raised it (the kernel's ``why``)."""
    if why == WHY_RISE or why == WHY_FALL:
        moved = "risen" if why == WHY_RISE else "fallen"
        return (f"{what} has {moved} from its usual {usual} to {value}: check whether the change is real or the "
                f"sensor is drifting.")
    if why == WHY_SPIKE:
        return (f"{what} {'jumped' if above else 'dropped'} to {value} (usual {usual}): check whether it is real or "
                f"a sensor fault.")
    if why == WHY_NOISE:
        # the noise test is the largest evidence here, so T is its ratio to the threshold, VAR_RATIO times the usual
        return (f"{what} is varying about {evidence_t * VAR_RATIO:.1f} times as much as usual around its usual "
                f"{usual} (now {value}): check whether the change is real or the sensor is failing.")
    if why == WHY_NONFINITE:
        return f"{what} read {value}, not a number (usual {usual}): check the sensor and its connection."
    # no test named (not expected from the kernel): the notice still goes out, in general words
    return f"{what} has changed (usual {usual}, now {value}): check whether the change is real."
