"""The API's view of incidents: every incident seen since the look-back horizon, as its steps.

Built from ``incident_events`` in InfluxDB at start-up and kept current from the MQTT incident
topics. Applying a step is idempotent (the same step may come from InfluxDB, the event topic and
the retained ``incidents/active`` topic). Historical incidents (from bulk history) are left out:
they never belong on the live picture.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field

from pydantic import ValidationError

from api.schemas import IncidentDetail, IncidentPublic
from minewatch.influx import InfluxClient, InfluxError
from minewatch.schema import SEVERITY_RANK, AlertTiming, IncidentEvent, IncidentState

__all__ = ["IncidentBook", "Incident", "stored_incidents", "worklist_order"]


def _key(ev: IncidentEvent) -> tuple[object, ...]:
    return (ev.ts, ev.state.value, ev.severity.value, ev.needs_ack,
            tuple((m.alert_id, m.state.value, m.severity.value) for m in ev.members))


@dataclass
class Incident:
    incident_id: str
    events: list[IncidentEvent] = field(default_factory=list)
    _seen: set[tuple[object, ...]] = field(default_factory=set, repr=False)
    vanished: bool = False  # its retained state was cleared without a cleared step seen

    def add(self, ev: IncidentEvent) -> bool:
        k = _key(ev)
        if k in self._seen:
            return False
        self._seen.add(k)
        self.events.append(ev)
        if len(self.events) > 1 and ev.ts < self.events[-2].ts:
            self.events.sort(key=lambda e: e.ts)
        return True

    @property
    def latest(self) -> IncidentEvent:
        return self.events[-1]

    @property
    def active(self) -> bool:
        return not self.vanished and self.latest.state is not IncidentState.cleared

    def public(self) -> IncidentPublic:
        latest = self.latest
        data = latest.model_dump()
        if not self.active:
            data["needs_ack"] = False
        return IncidentPublic(**data, active=self.active, events=len(self.events))

    def detail(self) -> IncidentDetail:
        return IncidentDetail(**self.public().model_dump(), history=list(self.events))


def worklist_order(p: IncidentPublic) -> tuple[int, int, int, int]:
    """Open before closed; needing acknowledgement first; then the most severe; then the newest."""
    return (not p.active, not p.needs_ack, -SEVERITY_RANK[p.severity], -p.ts)


class IncidentBook:
    def __init__(self) -> None:
        self._incidents: dict[str, Incident] = {}
        self.horizon_ns: int | None = None

    def __len__(self) -> int:
        return len(self._incidents)

    def __iter__(self) -> Iterator[Incident]:
        return iter(self._incidents.values())

    def get(self, incident_id: str) -> Incident | None:
        return self._incidents.get(incident_id)

    def apply(self, ev: IncidentEvent) -> bool:
        """Add ``ev``; True when it was new. Historical incidents are not taken."""
        if ev.timing is AlertTiming.historical:
            return False
        inc = self._incidents.get(ev.incident_id)
        if inc is None:
            inc = self._incidents[ev.incident_id] = Incident(ev.incident_id)
        new = inc.add(ev)
        if new and ev.state is not IncidentState.cleared:
            inc.vanished = False
        return new

    def apply_all(self, events: Iterable[IncidentEvent]) -> int:
        return sum(self.apply(e) for e in events)

    def vanish(self, incident_id: str) -> bool:
        inc = self._incidents.get(incident_id)
        if inc is None or not inc.active:
            return False
        inc.vanished = True
        return True

    def active(self) -> list[Incident]:
        return [i for i in self._incidents.values() if i.active]

    def active_public(self) -> list[IncidentPublic]:
        return sorted((i.public() for i in self.active()), key=worklist_order)


async def stored_incidents(influx: InfluxClient, where: str) -> list[IncidentEvent]:
    """``incident_events`` matching ``where`` (the whole step is the ``event`` field), live ones only."""
    try:
        rows = await influx.query(f'SELECT "event" FROM "incident_events" WHERE {where}')
    except InfluxError:
        return []
    out = []
    for r in rows:
        raw = r.get("event")
        if not raw:
            continue
        try:
            ev = IncidentEvent.model_validate_json(raw)
        except ValidationError:
            continue
        if ev.timing is not AlertTiming.historical:
            out.append(ev)
    return out
