"""DetectorSuite: every detector over batches of frames, feeding one alert engine.

The suite is what ``ingest`` runs live and ``api`` runs in replay. A batch of frames from many
robots and scenarios, in any order, is flattened into per-detector arrays (stream, time,
value), sorted by (stream, time), and handed to each detector's compiled kernel in one call.
Kernel outputs (state changes, rare) are turned into signals, put in event-time order and
run through the :class:`~detectors.engine.AlertEngine`. All state is carried between calls,
so the same frames give the same alerts however they are split into batches.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

from minewatch.catalogue import SCENARIOS, Scenario
from minewatch.schema import AlertEvent, RobotStatus
from minewatch.wire import Frame

from detectors._state import StreamTable
from detectors.engine import AlertEngine, Signal
from detectors.limits import LIMIT_COLUMNS, MAX_LEVELS, limit_kernel
from detectors.overrides import Overrides
from detectors.rules import LimitRule, limit_rules

__all__ = ["Detection", "DetectorSuite"]


@dataclass
class Detection:
    """What one batch produced: alert events in event-time order, and line protocol for the
    derived measurements (``vibration`` features)."""

    events: list[AlertEvent] = field(default_factory=list)
    lines: list[str] = field(default_factory=list)


@dataclass(order=True)
class _Pending:
    ts: int
    order: int
    signal: Signal = field(compare=False)


class DetectorSuite:
    """All detectors of the mine, over batches of telemetry frames.

    Parameters
    ----------
    scenarios
        The catalogue (scenario id -> :class:`minewatch.catalogue.Scenario`).
    overrides
        ``--set`` overrides (see :func:`detectors.parse_overrides`); a key that matches nothing
        raises ``ValueError``.
    """

    def __init__(self, scenarios: Mapping[str, Scenario] = SCENARIOS, overrides: Mapping[str, float] | None = None) -> None:
        self.scenarios = dict(scenarios)
        self.overrides = dict(overrides or {})
        ov = Overrides(self.overrides, self.scenarios)
        ov.check_all_match()
        self.rules = limit_rules(self.scenarios, ov)
        self.engine = AlertEngine()
        self._limits = StreamTable(LIMIT_COLUMNS)
        self._limit_rule: list[LimitRule] = []
        self._limit_meta: list[tuple[str, str, str]] = []  # (scenario, robot, channel)

    # -- streams ---------------------------------------------------------------------------
    def _limit_stream(self, scenario_id: str, robot_id: str, channel: str, j: int, rule: LimitRule) -> int:
        s, new = self._limits.add((scenario_id, robot_id, channel, j))
        if new:
            t = self._limits
            t["thr"][s, :] = np.nan
            for k, (_, thr) in enumerate(rule.levels[:MAX_LEVELS]):
                t["thr"][s, k] = thr
                t["n_raise"][s, k] = rule.n_raise[k]
            t["above"][s] = rule.direction == "above"
            t["restore"][s] = rule.restore
            t["n_clear"][s] = rule.n_clear
            self._limit_rule.append(rule)
            self._limit_meta.append((scenario_id, robot_id, channel))
        return s

    # -- batches ---------------------------------------------------------------------------
    def process(self, frames: Sequence[Frame], *, late: Sequence[bool] | None = None) -> Detection:
        """Run every detector over a batch of frames (any robots, scenarios and order)."""
        if late is not None and len(late) != len(frames):
            raise ValueError(f"late has {len(late)} flags for {len(frames)} frames")
        pending: list[_Pending] = []
        self._run_limits(frames, late, pending)
        pending.sort()
        events: list[AlertEvent] = []
        for p in pending:
            events.extend(self.engine.update(p.signal))
        if frames:
            events.extend(self.engine.advance(max(f.ts for f in frames)))
        events.sort(key=lambda e: e.ts)
        return Detection(events=events, lines=[])

    def _run_limits(self, frames: Sequence[Frame], late: Sequence[bool] | None, pending: list[_Pending]) -> None:
        streams: list[int] = []
        ts: list[int] = []
        xs: list[float] = []
        origin: list[int] = []
        rules = self.rules
        for fi, f in enumerate(frames):
            sid, rid = f.scenario_id, f.robot_id
            for chan, v in f.readings.items():
                if v is None:
                    continue
                rs = rules.get((sid, chan))
                if rs is None:
                    continue
                for j, rule in enumerate(rs):
                    streams.append(self._limit_stream(sid, rid, chan, j, rule))
                    ts.append(f.ts)
                    xs.append(v)
                    origin.append(fi)
        if not streams:
            return
        stream = np.asarray(streams, dtype=np.int64)
        t = np.asarray(ts, dtype=np.int64)
        order = np.lexsort((t, stream))
        stream, t = stream[order], t[order]
        x = np.asarray(xs, dtype=np.float64)[order]
        out = np.empty(x.shape[0], dtype=np.int8)
        tab = self._limits
        n = limit_kernel(stream, x, tab["thr"], tab["above"], tab["restore"], tab["n_raise"], tab["n_clear"],
                         tab["level"], tab["count"], tab["clear_count"], out)
        if not n:
            return
        for i in np.flatnonzero(out >= 0):
            s = int(stream[i])
            k = int(out[i])
            fi = origin[int(order[i])]
            pending.append(_Pending(int(t[i]), int(order[i]), self._limit_signal(s, k, float(x[i]), int(t[i]),
                                                                                 bool(late[fi]) if late else False)))

    def _limit_signal(self, s: int, k: int, value: float, ts: int, is_late: bool) -> Signal:
        rule = self._limit_rule[s]
        scenario_id, robot_id, channel = self._limit_meta[s]
        evidence: dict[str, object] = {"rule": rule.rule, "robot": robot_id}
        if k:
            severity, limit = rule.levels[k - 1]
            evidence["level"] = rule.level_name(k)
        else:
            severity, limit = None, rule.restore
            evidence["level"] = "restore level"
        evidence["restore"] = rule.restore
        if is_late:
            evidence["late"] = True
        return Signal(
            scenario_id=scenario_id, detector=rule.detector, subject=channel, kind=rule.kind, source=robot_id,
            severity=severity, ts=ts, message=rule.message(k, value), value=value, limit=limit, unit=rule.unit,
            channel=channel, robot_id=robot_id, evidence=evidence,
        )

    # -- time, robots, operators ------------------------------------------------------------
    def tick(self, now_ns: int) -> list[AlertEvent]:
        """Time-driven checks at ``now_ns`` (wall clock live, data time in replay)."""
        return self.engine.advance(now_ns)

    def robot_status(self, status: RobotStatus) -> list[AlertEvent]:
        """Robot online/offline, battery and link checks."""
        return []

    def acknowledge(self, alert_id: str, operator: str, note: str | None, ts_ns: int) -> AlertEvent:
        """Acknowledge an active alert; ``KeyError`` if ``alert_id`` is not active."""
        return self.engine.acknowledge(alert_id, operator, note, ts_ns)

    def active(self) -> list[AlertEvent]:
        """The current state of every active alert."""
        return self.engine.active()

    def restore(self, events: Iterable[AlertEvent]) -> None:
        """Rebuild active alerts from stored events after a restart, so ids stay stable and a
        condition still present does not raise a second alert."""
        for ev in self.engine.restore(events):
            rs = self.rules.get((ev.scenario_id, ev.channel or ""))
            if not rs or ev.robot_id is None:
                continue
            for j, rule in enumerate(rs):
                if rule.detector != ev.detector:
                    continue
                ks = [k for k, (sev, _) in enumerate(rule.levels, start=1) if sev is ev.severity]
                if ks:
                    s = self._limit_stream(ev.scenario_id, ev.robot_id, ev.channel or "", j, rule)
                    self._limits["level"][s] = ks[0]
