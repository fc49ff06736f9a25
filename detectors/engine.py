"""The alert engine: detector outputs in, the alert lifecycle out.

Detectors report *signals*: at event time ``ts`` the condition ``key`` (place, detector,
channel) seen by ``source`` (a robot) is now at ``severity``, or is over (``severity=None``).
The engine merges the sources of one key (the alert's severity is the worst of them, and it
clears only when every source has cleared), gives the alert a stable ``alert_id`` while it is
active and a new one after it clears, and emits :class:`minewatch.schema.AlertEvent` steps:

* ``raised`` when a key's first source turns on;
* ``escalated`` when the merged severity rises (also after an acknowledgement: the operator
  must see and acknowledge the worse state);
* ``acknowledged`` when an operator acknowledges (:meth:`AlertEngine.acknowledge`);
* ``cleared`` when the last source clears.

Chattering and repeating alerts (ISA-18.2 / EEMUA 191: an alarm that raises and clears three or
more times in a minute is chattering; one that keeps coming back floods the operator): when a
key clearing has been raised ``flap_count`` times (two) within ``flap_window_s`` (10 min), its
clear is held for ``flap_hold_s`` (an off-delay of 2 min); a re-raise inside the hold continues
the same alert instead of raising a new one. So a reading dithering about a limit gives one
standing alert, not a stream of them, and no key raises three times in a minute; the clear comes
at most the hold after the condition is really over. Held clears are released by event time
(:meth:`AlertEngine.advance`), so the result does not depend on how the data were split into
batches.

Every alert belongs to an incident (:mod:`detectors.incidents`): the alerts of one place with
one cause. The engine keeps the incidents in step with the alerts; :meth:`AlertEngine.drain_incidents`
hands out their steps, and :meth:`AlertEngine.acknowledge_incident` acknowledges one whole.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from minewatch.schema import SEVERITY_RANK, AlertEvent, AlertKind, AlertState, AlertTiming, IncidentEvent, Severity

from detectors import ids
from detectors.incidents import GroupFn, Grouping, Incidents, UpstreamFn

__all__ = ["AlertEngine", "Signal", "Key", "default_group"]

Key = tuple[str, str, str]  # (scenario_id, detector, channel-or-subject)
_NS = 1_000_000_000


@dataclass(frozen=True)
class Signal:
    """One change of one source's state for one alert key."""

    scenario_id: str
    detector: str
    subject: str  # the channel, or the robot for robot-level conditions
    kind: AlertKind
    source: str  # who saw it (robot id)
    severity: Severity | None  # None: this source's condition is over
    ts: int
    message: str
    value: float | None = None
    limit: float | None = None
    unit: str | None = None
    channel: str | None = None
    robot_id: str | None = None
    evidence: dict[str, Any] = field(default_factory=dict)
    place: str | None = None  # where the alert lives, if not the scenario (robot alerts follow the robot)
    timing: AlertTiming = AlertTiming.live
    # a clear that may be held while the key is flapping; not one that closes what held-back readings
    # raised, which newer readings already show over (LimitDetector._behind). A raise without it (of
    # held-back readings) does not count towards the key's flapping either: it is a record of the
    # past, not an alarm coming and going on the board
    may_hold: bool = True
    # of a late alert from held-back readings dated before the alert standing on its key was raised
    # (LimitDetector._behind): kept apart from that one, under an id of its own, raised and cleared
    # on its own (it happened before the standing alert and is over); neither escalates nor clears it
    apart: bool = False

    @property
    def key(self) -> Key:
        return (self.place or self.scenario_id, self.detector, self.subject)


@dataclass
class _Alert:
    alert_id: str
    first_ts: int
    severity: Severity
    last: AlertEvent
    sources: dict[str, Severity]
    clear_at: int | None = None  # held clear (flapping): release time
    clear_event: AlertEvent | None = None
    incident_id: str | None = None


def _rank(s: Severity) -> int:
    return SEVERITY_RANK[s]


def default_group(ev: AlertEvent) -> Grouping:
    """Incidents by scenario and alert kind (a robot's own health by robot)."""
    if ev.kind is AlertKind.robot_health and ev.robot_id:
        return Grouping(ev.robot_id, "robot", f"Robot {ev.robot_id}")
    return Grouping(ev.scenario_id, ev.kind.value, f"{ev.kind.value} at {ev.scenario_id}")


class AlertEngine:
    """Alert lifecycle over detector signals.

    Parameters
    ----------
    flap_count, flap_window_s
        A key raised this many times within this window is repeating.
    flap_hold_s
        How long a repeating key's clear is held back.
    id_prefix
        Put before every alert and incident id this engine makes (the mine, where one broker
        carries the alerts of many: :mod:`detectors.ids`).
    """

    def __init__(self, flap_count: int = 2, flap_window_s: float = 600.0, flap_hold_s: float = 120.0,
                 group: GroupFn | None = None, upstream: UpstreamFn | None = None, id_prefix: str = "") -> None:
        self.flap_count = flap_count
        self.flap_window_s = flap_window_s
        self.flap_hold_s = flap_hold_s
        self._active: dict[Key, _Alert] = {}
        self._by_id: dict[str, Key] = {}
        self._raises: dict[Key, deque[int]] = {}
        self._last_id: dict[Key, str] = {}
        self._held: list[Key] = []
        self._apart: dict[tuple[Key, str], _Alert] = {}  # late alerts kept apart (Signal.apart), by key and source
        self.id_prefix = id_prefix
        self.incidents = Incidents(group or default_group, upstream, id_prefix)

    # -- queries ---------------------------------------------------------------------------
    def active(self) -> list[AlertEvent]:
        return sorted((a.last for a in self._active.values()), key=lambda e: (e.first_ts, e.alert_id))

    def get(self, key: Key) -> AlertEvent | None:
        a = self._active.get(key)
        return a.last if a else None

    def active_keys(self) -> list[Key]:
        return list(self._active)

    def sources(self, key: Key) -> dict[str, Severity]:
        a = self._active.get(key)
        return dict(a.sources) if a else {}

    def active_incidents(self) -> list[IncidentEvent]:
        return self.incidents.active()

    def drain_incidents(self) -> list[IncidentEvent]:
        """The incident steps since the last call, in the order their alert steps came."""
        return self.incidents.drain()

    # -- lifecycle ------------------------------------------------------------------------
    def advance(self, now_ns: int) -> list[AlertEvent]:
        """Release held clears whose time has come (by event time)."""
        out: list[AlertEvent] = []
        if not self._held:
            return out
        due: list[tuple[int, Key]] = []
        for k in self._held:
            held = self._active.get(k)
            if held is not None and held.clear_at is not None and held.clear_at <= now_ns:
                due.append((held.clear_at, k))
        for _, k in sorted(due):
            a = self._active[k]
            assert a.clear_event is not None  # a held clear keeps the event it will send
            ev = a.clear_event.model_copy(update={"ts": a.clear_at})
            out.append(self._close(k, ev))
        return out

    def _emit(self, ev: AlertEvent, out: list[AlertEvent]) -> None:
        self.incidents.apply(ev)
        out.append(ev)

    def update(self, sig: Signal) -> list[AlertEvent]:
        out = self.advance(sig.ts)
        if sig.apart:
            self._aside(sig, out)
            return out
        key = sig.key
        a = self._active.get(key)
        if sig.severity is None:
            if a is None or sig.source not in a.sources:
                return out
            del a.sources[sig.source]
            if a.sources:
                return out
            ev = self._event(sig, a, AlertState.cleared, a.severity)
            if sig.may_hold and self._repeating(key, sig.ts):
                a.clear_at = sig.ts + int(self.flap_hold_s * _NS)
                a.clear_event = ev.model_copy(update={
                    "message": ev.message + f" (Held {self.flap_hold_s:g} s: it has come back within minutes.)",
                    "evidence": {**ev.evidence, "flapping": True, "held_s": self.flap_hold_s}})
                if key not in self._held:
                    self._held.append(key)
                return out
            out.append(self._close(key, ev))
            return out
        if a is None:
            if sig.may_hold:  # a raise judged apart (held-back readings) is a record, not chattering on the board
                self._raises.setdefault(key, deque()).append(sig.ts)
            a = self._opened(sig, out)
            self._active[key] = a
            self._by_id[a.alert_id] = key
            return out
        a.sources[sig.source] = sig.severity
        if a.clear_at is not None:  # re-raised inside a held clear: the same alert goes on
            a.clear_at = None
            a.clear_event = None
            if sig.may_hold:
                self._raises.setdefault(key, deque()).append(sig.ts)
        self._worse(sig, a, out)
        return out

    def _opened(self, sig: Signal, out: list[AlertEvent]) -> _Alert:
        """A new alert raised by ``sig``, its ``raised`` event in ``out`` (and in its incident)."""
        assert sig.severity is not None
        alert_id = self._new_id(sig.key, sig.scenario_id, sig.ts, sig.robot_id or sig.source, remember=not sig.apart)
        a = _Alert(alert_id, sig.ts, sig.severity, None, {sig.source: sig.severity})  # type: ignore[arg-type]
        ev = self._event(sig, a, AlertState.raised, sig.severity)
        a.incident_id = ev.incident_id = self.incidents.assign(ev)
        a.last = ev
        self._emit(ev, out)
        return a

    def _worse(self, sig: Signal, a: _Alert, out: list[AlertEvent]) -> None:
        """``a`` escalated where its sources' worst is now more severe than it was."""
        worst = max(a.sources.values(), key=_rank)
        if _rank(worst) > _rank(a.severity):
            a.severity = worst
            a.last = self._event(sig, a, AlertState.escalated, worst)
            self._emit(a.last, out)

    def _aside(self, sig: Signal, out: list[AlertEvent]) -> None:
        """A step of a late alert kept apart from the one standing on its key (:attr:`Signal.apart`):
        one per key and source, never on the board (:meth:`get`, :meth:`active`), its clear never
        held; its events go out under its own id, so the standing alert's retained state is not
        touched."""
        rk = (sig.key, sig.source)
        a = self._apart.get(rk)
        if sig.severity is None:
            if a is not None:
                del self._apart[rk]
                self._emit(self._event(sig, a, AlertState.cleared, a.severity), out)
            return
        if a is None:
            self._apart[rk] = self._opened(sig, out)
            return
        a.sources[sig.source] = sig.severity
        self._worse(sig, a, out)

    def acknowledge(self, alert_id: str, operator: str, note: str | None, ts_ns: int) -> AlertEvent:
        ev = self._acknowledge(alert_id, operator, note, ts_ns)
        self.incidents.apply(ev)
        return ev

    def acknowledge_incident(self, incident_id: str, operator: str, note: str | None,
                             ts_ns: int) -> tuple[list[AlertEvent], IncidentEvent]:
        """Acknowledge every active alert of an incident not acknowledged since it last escalated,
        and the incident; ``KeyError`` if no such incident is open."""
        members = self.incidents.active_members(incident_id)
        if not members:
            raise KeyError(f"no open incident {incident_id!r}")
        events = []
        for m in members:
            if m.state is not AlertState.acknowledged:
                ev = self._acknowledge(m.alert_id, operator, note, ts_ns)
                self.incidents.apply(ev, operator_ack=True)
                events.append(ev)
        return events, self.incidents.acknowledged(incident_id, operator, note, ts_ns)

    def _acknowledge(self, alert_id: str, operator: str, note: str | None, ts_ns: int) -> AlertEvent:
        key = self._by_id.get(alert_id)
        if key is None or key not in self._active:
            raise KeyError(f"no active alert {alert_id!r}")
        a = self._active[key]
        msg = a.last.message
        prefix = "Acknowledged by "
        if msg.startswith(prefix):
            msg = msg.split(". ", 1)[1] if ". " in msg else msg
        ev = a.last.model_copy(update={
            "state": AlertState.acknowledged, "ts": int(ts_ns), "operator": operator, "note": note,
            "message": f"{prefix}{operator}. {msg}",
        })
        a.last = ev
        return ev

    def restore(self, events: Iterable[AlertEvent], place_of: Callable[[AlertEvent], str] | None = None,
                source_of: Callable[[AlertEvent], str] | None = None,
                incidents: Iterable[IncidentEvent] = ()) -> list[AlertEvent]:
        """Rebuild active alerts from stored events (any order) and their incidents from the
        incidents' last states; returns the alerts now active.

        ``place_of`` and ``source_of`` give an event's place and source as the signals that
        made it named them (default: its scenario, and its robot)."""
        latest: dict[str, AlertEvent] = {}
        for ev in sorted(events, key=lambda e: e.ts):
            latest[ev.alert_id] = ev
        for ev in latest.values():
            place = place_of(ev) if place_of else ev.scenario_id
            subject = ev.channel or ev.robot_id or ""
            if "neighbour" in ev.evidence:  # a pair of sensors
                subject = f"{ev.channel}.{ev.evidence['neighbour']}"
            key = (place, ev.detector, subject)
            if ev.state is AlertState.cleared:
                self._last_id[key] = ev.alert_id
                continue
            current = self._active.get(key)
            if current is not None and current.first_ts >= ev.first_ts:
                continue
            if current is not None:  # an older alert of the same key restored before: this one wins
                self._by_id.pop(current.alert_id, None)
            source = source_of(ev) if source_of else ev.robot_id or ""
            a = _Alert(ev.alert_id, ev.first_ts, ev.severity, ev, {source: ev.severity})
            self._active[key] = a
            self._by_id[ev.alert_id] = key
            self._last_id[key] = ev.alert_id
        restored = [a.last for a in self._active.values() if a.last is not None and a.last.alert_id in latest]
        self.incidents.restore(restored, incidents)
        out = []
        for ev in restored:
            a = self._active[self._by_id[ev.alert_id]]
            a.incident_id = self.incidents.incident_of(ev.alert_id)
            if a.incident_id != ev.incident_id:
                a.last = ev = ev.model_copy(update={"incident_id": a.incident_id})
            out.append(ev)
        return out

    # -- helpers --------------------------------------------------------------------------
    def _close(self, key: Key, ev: AlertEvent) -> AlertEvent:
        a = self._active.pop(key)
        self._by_id.pop(a.alert_id, None)
        if key in self._held:
            self._held.remove(key)
        self.incidents.apply(ev)
        return ev

    def _repeating(self, key: Key, ts: int) -> bool:
        raises = self._raises.get(key)
        if not raises:
            return False
        horizon = ts - int(self.flap_window_s * _NS)
        while raises and raises[0] < horizon:
            raises.popleft()
        return len(raises) >= self.flap_count

    def _new_id(self, key: Key, scenario: str, ts: int, who: str, *, remember: bool = True) -> str:
        """The id of an alert raised on ``key`` at ``ts`` by ``who`` (the robot that saw it), made
        from these alone (:mod:`detectors.ids`): one robot cannot raise one key twice at one
        millisecond. The suffix ``-n`` is only a guard within this process (a robot whose clock
        went back over readings of its own). ``remember`` False: not taken as the key's last id (a
        late alert kept apart, :attr:`Signal.apart`, beside the one standing)."""
        _, detector, subject = key
        base = ids.name(ids.head(self.id_prefix, scenario, subject, detector), ts, who, subject)
        alert_id, n = ids.fit(base), 1
        apart = {a.alert_id for a in self._apart.values()} if self._apart else set()
        while alert_id == self._last_id.get(key) or alert_id in self._by_id or alert_id in apart:
            n += 1
            alert_id = ids.fit(f"{base}-{n}")
        if remember:
            self._last_id[key] = alert_id
        return alert_id

    @staticmethod
    def _event(sig: Signal, a: _Alert, state: AlertState, severity: Severity) -> AlertEvent:
        return AlertEvent(
            alert_id=a.alert_id, kind=sig.kind, detector=sig.detector, severity=severity, state=state,
            scenario_id=sig.scenario_id, robot_id=sig.robot_id, channel=sig.channel, value=sig.value,
            limit=sig.limit, unit=sig.unit, first_ts=a.first_ts, ts=sig.ts, message=sig.message,
            evidence=dict(sig.evidence), incident_id=a.incident_id, timing=sig.timing,
        )
