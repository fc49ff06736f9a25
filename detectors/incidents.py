"""Incidents: the alerts of one place with one cause, which an operator handles as one.

A methane outburst at a face trips the limit of several sensors, the rate-of-rise detector and
perhaps a spike check: to the control room that is one thing happening, to be acknowledged once
(ISA-18.2 / EEMUA 191: an alarm is something the operator must act on; ten alarms for one cause
are a flood). :class:`Incidents` groups alert events by ``(place, cause)`` as the alert engine
emits them and produces :class:`minewatch.schema.IncidentEvent` steps:

* ``raised`` when an alert of a group with no open incident is raised;
* ``escalated`` when the worst active member reaches a severity the incident has not reached
  before; an incident acknowledged before needs acknowledging again then (a member that clears
  and comes back at a severity already reached does not ask the operator again);
* ``updated`` when a member joins, clears or is acknowledged on its own without the incident
  needing the operator again;
* ``acknowledged`` when an operator acknowledges the incident (every active member with it);
* ``cleared`` when its last active member clears.

Grouping never delays anything: the incident step comes out with the alert step that caused it,
in the same call, so a power-cut alarm is on the incident topic as soon as it is on its own.

First out: a fan that stops takes the air of every place it ventilates, and the methane, CO, heat
and air-velocity alerts that follow there are its consequences, not new things happening (EEMUA
191: suppress what follows from one cause). While a fan's incident is open with the fan stopped
(or its pressure lost, or its air reversed), such an alert at a place it ventilates
(``upstream``) that has no open incident of its own joins the fan's incident instead of opening
one. Nothing is hidden: the alert is raised and published as ever, and the fan's incident
escalates with it (a power cut there is the incident's worst member and asks the operator).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from detectors import ids
from minewatch.schema import (SEVERITY_RANK, AlertEvent, AlertKind, AlertState, AlertTiming, IncidentEvent,
                              IncidentMember, IncidentState, Severity)

__all__ = ["Incidents", "Grouping", "GroupFn", "MAX_MEMBERS"]

MAX_MEMBERS = 50  # members listed in an incident event (the active ones always are)


@dataclass(frozen=True)
class Grouping:
    """Where an alert belongs: the incident ``place`` (a scenario, or a robot for its own
    health), the ``cause`` and the incident's title."""

    place: str
    cause: str
    title: str


GroupFn = Callable[[AlertEvent], Grouping]
UpstreamFn = Callable[[AlertEvent], tuple[str, ...]]
# what a stopped fan brings about where its air no longer comes, and what shows it stopped
CONSEQUENCES = frozenset({"methane", "fire", "air-quality", "ventilation", "heat"})
ROOT_DETECTORS = frozenset({"fan_stoppage", "fan_unit_stopped", "fan_pressure_drop", "airflow_reversal"})


def _rank(s: Severity) -> int:
    return SEVERITY_RANK[s]


def _member(ev: AlertEvent) -> IncidentMember:
    return IncidentMember(alert_id=ev.alert_id, detector=ev.detector, kind=ev.kind, severity=ev.severity,
                          state=ev.state, active=ev.state is not AlertState.cleared, scenario_id=ev.scenario_id,
                          channel=ev.channel,
                          robot_id=ev.robot_id, value=ev.value, limit=ev.limit, unit=ev.unit, first_ts=ev.first_ts,
                          ts=ev.ts, message=ev.message, timing=ev.timing)


@dataclass
class _Incident:
    incident_id: str
    group: Grouping
    scenario_id: str
    first_ts: int
    members: dict[str, AlertEvent] = field(default_factory=dict)
    severity: Severity = Severity.info
    max_severity: Severity = Severity.info
    acked: Severity | None = None  # the severity it had when last acknowledged
    acked_by: str | None = None
    acked_ts: int | None = None
    note: str | None = None
    last: IncidentEvent | None = None

    def active(self) -> list[AlertEvent]:
        return [e for e in self.members.values() if e.state is not AlertState.cleared]

    def needs_ack(self) -> bool:
        """At warning or worse, and worse than anything acknowledged: until acknowledged, or after
        reaching a severity it had not reached when it was."""
        return _rank(self.max_severity) >= _rank(Severity.warning) and (
            self.acked is None or _rank(self.max_severity) > _rank(self.acked))

    def stopped_fan(self) -> bool:
        return any(e.detector in ROOT_DETECTORS and e.state is not AlertState.cleared for e in self.members.values())


class Incidents:
    """Alert events in, incident events out (see the module docstring)."""

    def __init__(self, group: GroupFn, upstream: UpstreamFn | None = None, id_prefix: str = "") -> None:
        self.group = group
        self.upstream = upstream
        self.id_prefix = id_prefix
        self._open: dict[tuple[str, str], _Incident] = {}
        self._by_id: dict[str, _Incident] = {}
        self._by_alert: dict[str, _Incident] = {}
        self._ids: set[str] = set()
        self.out: list[IncidentEvent] = []

    # -- queries -------------------------------------------------------------------------------
    def active(self) -> list[IncidentEvent]:
        return [i.last for i in self._open.values() if i.last is not None]

    def get(self, incident_id: str) -> IncidentEvent | None:
        i = self._by_id.get(incident_id)
        return i.last if i is not None else None

    def incident_of(self, alert_id: str) -> str | None:
        i = self._by_alert.get(alert_id)
        return i.incident_id if i is not None else None

    def active_members(self, incident_id: str) -> list[AlertEvent]:
        i = self._by_id.get(incident_id)
        return i.active() if i is not None else []

    def drain(self) -> list[IncidentEvent]:
        out, self.out = self.out, []
        return out

    # -- alerts in -------------------------------------------------------------------------------
    def assign(self, ev: AlertEvent) -> str:
        """The incident id a new alert (its ``raised`` event) belongs to, opening one if need be."""
        g = self.group(ev)
        inc = self._open.get((g.place, g.cause))
        if inc is None and self.upstream is not None and g.cause in CONSEQUENCES:
            for fan in self.upstream(ev):  # first out: the consequence of a fan that has stopped
                root = self._open.get((fan, "ventilation"))
                if root is not None and root.stopped_fan():
                    inc = root
                    break
        if inc is None:
            # made from what opens it (detectors.ids): the same again after a crash, two robots'
            # alerts at one millisecond two incidents also across a restart that forgot the first
            base = self._name(g, ev)
            iid, n = ids.fit(base), 1
            while iid in self._ids:
                n += 1
                iid = ids.fit(f"{base}-{n}")
            inc = _Incident(iid, g, ev.scenario_id, ev.first_ts)
            self._open[(g.place, g.cause)] = inc
            self._by_id[iid] = inc
            self._ids.add(iid)
            if len(self._ids) > 100_000:  # ids only need to be unique among recent incidents
                self._ids = {i.incident_id for i in self._open.values()}
        self._by_alert[ev.alert_id] = inc
        return inc.incident_id

    def _name(self, g: Grouping, ev: AlertEvent) -> str:
        """The id of the incident of ``g`` that ``ev`` opens, before :func:`detectors.ids.fit`."""
        return ids.name(ids.head(self.id_prefix, g.place, g.cause), ev.first_ts, ev.robot_id, g.place)

    def apply(self, ev: AlertEvent, *, operator_ack: bool = False) -> None:
        """One alert step (its ``incident_id`` set by :meth:`assign`): update the incident and emit
        its step. ``operator_ack``: part of acknowledging the whole incident (emitted once, by
        :meth:`acknowledged`)."""
        inc = self._by_alert.get(ev.alert_id)
        if inc is None:
            return
        inc.members[ev.alert_id] = ev
        if ev.state is AlertState.cleared:
            self._by_alert.pop(ev.alert_id, None)
        if operator_ack:
            return
        active = inc.active()
        new = inc.last is None
        if not active:
            self._close(inc, ev)
            return
        sev = max((e.severity for e in active), key=_rank)
        inc.severity = sev
        worse = not new and _rank(sev) > _rank(inc.max_severity)
        if new or worse:
            inc.max_severity = sev if new else max(sev, inc.max_severity, key=_rank)
        if new:
            state = IncidentState.raised
        elif worse:
            state = IncidentState.escalated
        elif ev.state is AlertState.acknowledged and all(e.state is AlertState.acknowledged for e in active):
            inc.acked, inc.acked_by, inc.acked_ts, inc.note = inc.max_severity, ev.operator, ev.ts, ev.note
            state = IncidentState.acknowledged
        else:
            state = IncidentState.updated
        self._emit(inc, state, ev.ts, ev)

    def acknowledged(self, incident_id: str, operator: str, note: str | None, ts: int) -> IncidentEvent:
        """The incident's ``acknowledged`` step, after its members' own acknowledgements."""
        inc = self._by_id[incident_id]
        inc.acked, inc.acked_by, inc.acked_ts, inc.note = inc.max_severity, operator, ts, note
        return self._emit(inc, IncidentState.acknowledged, ts, None)

    def restore(self, alerts: Iterable[AlertEvent], incidents: Iterable[IncidentEvent]) -> None:
        """Rebuild open incidents after a restart from the active alerts (each naming its incident)
        and the incidents' retained states (their acknowledgements)."""
        known = {i.incident_id: i for i in incidents}
        for ev in sorted(alerts, key=lambda e: e.first_ts):
            iid = ev.incident_id
            inc = self._by_id.get(iid) if iid else None
            if inc is None:
                prev = known.get(iid) if iid else None
                g = self.group(ev)
                if prev is not None:
                    g = Grouping(prev.place, prev.cause, prev.title)
                cur = self._open.get((g.place, g.cause))
                if cur is not None and (iid is None or cur.incident_id != iid):
                    inc = cur  # two restored incidents of one group: keep the older one
                else:
                    iid = iid or ids.fit(self._name(g, ev))
                    inc = _Incident(iid, g, ev.scenario_id, prev.first_ts if prev else ev.first_ts)
                    if prev is not None and prev.acknowledged_by is not None:
                        inc.acked_by, inc.acked_ts, inc.note = prev.acknowledged_by, prev.acknowledged_ts, prev.note
                        inc.acked = None if prev.needs_ack else prev.max_severity
                    self._open[(g.place, g.cause)] = inc
                    self._by_id[iid] = inc
                    self._ids.add(iid)
            inc.members[ev.alert_id] = ev
            self._by_alert[ev.alert_id] = inc
        for inc in self._open.values():
            if inc.last is not None:
                continue
            active = inc.active()
            prev = known.get(inc.incident_id)
            inc.severity = max((e.severity for e in active), key=_rank)
            inc.max_severity = max(inc.severity, prev.max_severity if prev else inc.severity, key=_rank)
            newest = max(active, key=lambda e: e.ts)
            inc.last = self._event(inc, prev.state if prev else IncidentState.raised, newest.ts, None)

    # -- helpers -------------------------------------------------------------------------------
    def _close(self, inc: _Incident, ev: AlertEvent) -> None:
        self._open.pop((inc.group.place, inc.group.cause), None)
        self._by_id.pop(inc.incident_id, None)
        for aid in list(inc.members):
            self._by_alert.pop(aid, None)
        self._emit(inc, IncidentState.cleared, ev.ts, ev)

    def _emit(self, inc: _Incident, state: IncidentState, ts: int, ev: AlertEvent | None) -> IncidentEvent:
        out = self._event(inc, state, ts, ev)
        inc.last = out
        self.out.append(out)
        return out

    def _event(self, inc: _Incident, state: IncidentState, ts: int, ev: AlertEvent | None) -> IncidentEvent:
        active = inc.active()
        if active:
            worst = max(active, key=lambda e: (_rank(e.severity), e.ts))
            message = worst.message
            kind = worst.kind
        else:
            last = ev or max(inc.members.values(), key=lambda e: e.ts)
            message = f"Every alert of this incident has cleared. {last.message}"
            kind = last.kind
        members = sorted(inc.members.values(), key=lambda e: (e.state is AlertState.cleared, -e.ts))[:MAX_MEMBERS]
        timings = {e.timing for e in inc.members.values()}
        timing = (AlertTiming.historical if timings == {AlertTiming.historical}
                  else AlertTiming.late if timings == {AlertTiming.late} else AlertTiming.live)
        return IncidentEvent(
            incident_id=inc.incident_id, place=inc.group.place, scenario_id=inc.scenario_id, cause=inc.group.cause,
            title=inc.group.title, kind=kind if isinstance(kind, AlertKind) else AlertKind(kind),
            severity=inc.severity, max_severity=inc.max_severity, state=state,
            needs_ack=bool(active) and inc.needs_ack(), first_ts=inc.first_ts, ts=max(ts, inc.first_ts),
            timing=timing, message=message, members=[_member(e) for e in members],
            acknowledged_by=inc.acked_by, acknowledged_ts=inc.acked_ts, note=inc.note)
