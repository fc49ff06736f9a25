"""The API's view of alerts: every alert seen since the look-back horizon, folded from its events.

Built from ``alert_events`` in InfluxDB at start-up and kept current from the MQTT alert topics.
Applying an event is idempotent (the same event may come from InfluxDB, the event topic and the
retained ``alerts/active`` topic), so the sources may overlap freely.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

from pydantic import ValidationError

from api.schemas import AlertDetail, AlertPublic
from minewatch.influx import InfluxClient, InfluxError
from minewatch.schema import SEVERITY_RANK, AlertEvent, AlertState, AlertTiming, Severity

__all__ = ["AlertBook", "Alert", "event_from_row", "ALERT_FIELDS", "stored_events"]

# alert_events layout written by the ingestor (ingest/lines.py): tags scenario, kind, severity,
# state, detector, alert_id; fields channel, robot_id, value, limit, unit, first_ts, message,
# evidence (JSON), operator, note; time = the event's ts. Rows are read by name, so alert_id
# may be a tag or a field.
ALERT_FIELDS = ("alert_id", "channel", "robot_id", "value", "limit", "unit", "first_ts", "message", "evidence",
                "operator", "note", "incident_id", "timing", "detected_ts")


def event_from_row(row: dict[str, Any]) -> AlertEvent | None:
    """An ``alert_events`` row (``epoch=ns``) as an event; ``None`` when it is not a valid one."""
    evidence = row.get("evidence")
    if isinstance(evidence, str):
        try:
            evidence = json.loads(evidence) if evidence else {}
        except ValueError:
            evidence = {"raw": evidence}
    if not isinstance(evidence, dict):
        evidence = {}
    first_ts = row.get("first_ts")
    data = {
        "alert_id": row.get("alert_id"), "kind": row.get("kind"), "detector": row.get("detector"),
        "severity": row.get("severity"), "state": row.get("state"), "scenario_id": row.get("scenario"),
        "robot_id": row.get("robot_id") or None, "channel": row.get("channel") or None,
        "value": row.get("value"), "limit": row.get("limit"), "unit": row.get("unit"),
        "first_ts": int(first_ts) if first_ts is not None else row.get("time"), "ts": row.get("time"),
        "message": row.get("message") or "", "evidence": evidence,
        "operator": row.get("operator") or None, "note": row.get("note") or None,
        "incident_id": row.get("incident_id") or None, "timing": row.get("timing") or "live",
        "detected_ts": int(row["detected_ts"]) if row.get("detected_ts") is not None else None,
    }
    try:
        return AlertEvent.model_validate(data)
    except ValidationError:
        return None


async def stored_events(influx: InfluxClient, where: str) -> list[AlertEvent]:
    """``alert_events`` matching ``where`` from the default retention policy and from ``long``
    (where the alert log is kept for a year, minewatch/storage.py), when that exists."""
    rows = await influx.query(f'SELECT * FROM "alert_events" WHERE {where}')
    try:
        rows += await influx.query(f'SELECT * FROM "long"."alert_events" WHERE {where}')
    except InfluxError:
        pass  # no "long" retention policy in this database
    return [e for e in map(event_from_row, rows) if e is not None]


def _key(ev: AlertEvent) -> tuple[int, str, str]:
    return ev.ts, ev.state.value, ev.severity.value


@dataclass
class Alert:
    """One alert and its events, oldest first."""

    alert_id: str
    events: list[AlertEvent] = field(default_factory=list)
    _seen: set[tuple[int, str, str]] = field(default_factory=set, repr=False)
    vanished: bool = False  # its retained active message was cleared without a cleared event seen

    def add(self, ev: AlertEvent) -> bool:
        k = _key(ev)
        if k in self._seen:
            return False
        self._seen.add(k)
        if not self.events or ev.ts >= self.events[-1].ts:
            self.events.append(ev)
        else:
            self.events.append(ev)
            self.events.sort(key=lambda e: e.ts)
        return True

    @property
    def latest(self) -> AlertEvent:
        return self.events[-1]

    @property
    def active(self) -> bool:
        return not self.vanished and self.latest.state != AlertState.cleared

    @property
    def acknowledged(self) -> bool:
        return any(e.state == AlertState.acknowledged for e in self.events)

    @property
    def max_severity(self) -> Severity:
        return max((e.severity for e in self.events), key=SEVERITY_RANK.__getitem__)

    def public(self) -> AlertPublic:
        last = self.latest
        ack = next((e for e in reversed(self.events) if e.state == AlertState.acknowledged), None)
        cleared = next((e for e in reversed(self.events) if e.state == AlertState.cleared), None)
        return AlertPublic(
            **last.model_dump(), active=self.active, max_severity=self.max_severity,
            acknowledged_by=ack.operator if ack else None, acknowledged_ts=ack.ts if ack else None,
            cleared_ts=cleared.ts if cleared else None, events=len(self.events))

    def detail(self) -> AlertDetail:
        return AlertDetail(**self.public().model_dump(), history=list(self.events))


class AlertBook:
    """Alerts folded from their events. The live book (the default) leaves historical events out;
    ``include_historical`` keeps them (an engineer's look at imported history)."""

    def __init__(self, include_historical: bool = False) -> None:
        self.include_historical = include_historical
        self._alerts: dict[str, Alert] = {}
        self.horizon_ns: int | None = None  # events before this were not loaded
        self.loaded = False

    def __len__(self) -> int:
        return len(self._alerts)

    def __iter__(self) -> Iterator[Alert]:
        return iter(self._alerts.values())

    def get(self, alert_id: str) -> Alert | None:
        return self._alerts.get(alert_id)

    def apply(self, ev: AlertEvent) -> bool:
        """Add ``ev``; True when it was new. Historical events (bulk history) are not taken: they
        never belong on the live picture."""
        if ev.timing is AlertTiming.historical and not self.include_historical:
            return False
        a = self._alerts.get(ev.alert_id)
        if a is None:
            a = self._alerts[ev.alert_id] = Alert(ev.alert_id)
        new = a.add(ev)
        if new and ev.state != AlertState.cleared:
            a.vanished = False
        return new

    def apply_all(self, events: Iterable[AlertEvent]) -> int:
        return sum(self.apply(e) for e in events)

    def vanish(self, alert_id: str) -> bool:
        """The retained active state of ``alert_id`` was cleared; True if it was active here."""
        a = self._alerts.get(alert_id)
        if a is None or not a.active:
            return False
        a.vanished = True
        return True

    def active(self) -> list[Alert]:
        return [a for a in self._alerts.values() if a.active]

    def active_public(self) -> list[AlertPublic]:
        return sorted((a.public() for a in self.active()), key=_worst_first)


def _worst_first(a: AlertPublic) -> tuple[bool, int, int]:
    """Not yet acknowledged first, then the most severe, then the newest."""
    return a.acknowledged_by is not None and a.state is not AlertState.escalated, -SEVERITY_RANK[a.severity], -a.ts
