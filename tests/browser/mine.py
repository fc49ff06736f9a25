"""A mine for the page to watch, played on the real broker: robots (retained status, telemetry
frames) and the ingestor (alert and incident events, retained active states, retained watch
statuses, answers to acknowledgement requests), each published on the topics and in the shapes
the real ones use.

Alerts are made the way the ingestor makes them: detector signals go through an
:class:`detectors.engine.AlertEngine` grouping by a real :class:`detectors.suite.DetectorSuite`'s
rule, so alert ids, incidents (place and cause, title, worst member, needs_ack) and
acknowledgements are the real lifecycle's. Frames are not run through detectors here: a reading
past a limit makes an alert only when a test signals one.
"""

from __future__ import annotations

import functools
import threading
import time
from typing import Any

import orjson
import paho.mqtt.client as paho

from detectors.engine import AlertEngine, Signal
from detectors.suite import DetectorSuite
from minewatch.catalogue import SCENARIOS
from minewatch.schema import (AlertEvent, AlertKind, AlertTiming, IncidentEvent, IncidentState, Link, RobotStatus,
                              Severity, WatchStatus)
from minewatch.wire import Frame, encode_frame
from tests.api.conftest import Publisher

WATCH_EVERY_S = 2.0  # how often the played ingestor renews its watch statuses (the real one: 5 s)


def robot_of(i: int) -> str:
    return f"r{i + 1:02d}"


def robot_in(scenario_id: str) -> str:
    return robot_of(list(SCENARIOS).index(scenario_id))


@functools.cache
def _grouping() -> DetectorSuite:
    return DetectorSuite()


class Mine:
    """Robots in every scenario and an ingestor that watches them all and answers acknowledgements."""

    def __init__(self, publisher: Publisher, watch_every_s: float = WATCH_EVERY_S) -> None:
        self.pub = publisher
        self.topics = publisher.topics
        self.seq = 0
        self.engine = AlertEngine(group=_grouping().group)
        self.lock = threading.Lock()
        self.acks: list[str] = []  # topics of the acknowledgement requests that came
        # what the played ingestor says of each scenario every watch_every_s; one left out gets nothing
        self.watching: dict[str, str] = dict.fromkeys(SCENARIOS, "watched")
        self.watch_every_s = watch_every_s
        self._stop = threading.Event()
        publisher.subscribe(f"{self.topics.prefix}/alerts/ack/+", self._on_ack)
        publisher.subscribe(f"{self.topics.prefix}/incidents/ack/+", self._on_incident_ack)
        self._watcher = threading.Thread(target=self._watch_loop, name="mine-watch", daemon=True)
        self._watcher.start()

    def close(self) -> None:
        self._stop.set()
        self._watcher.join(10)

    # -- robots ---------------------------------------------------------------------------------
    def status_all(self) -> None:
        for i, sc in enumerate(SCENARIOS.values()):
            st = RobotStatus(robot_id=robot_of(i), online=True, ts=time.time_ns(), scenario_id=sc.id, pos_m=10.0 * i,
                             battery=90.0 - i, link=Link(latency_ms=12.0 + i, rssi_dbm=-70.0 - i))
            self.pub.publish(self.topics.status(st.robot_id), st.model_dump_json(), retain=True)

    def frame(self, scenario_id: str, **override: float) -> None:
        """A frame of the scenario's robot: every channel in the middle of its normal band but those given."""
        sc = SCENARIOS[scenario_id]
        self.seq += 1
        readings: dict[str, float | None] = {c.name: round((c.normal[0] + c.normal[1]) / 2, 3) for c in sc.channels}
        readings.update(override)
        i = list(SCENARIOS).index(scenario_id)
        f = Frame(robot_id=robot_of(i), scenario_id=scenario_id, seq=self.seq, ts=time.time_ns(), readings=readings,
                  battery=90.0 - i)
        self.pub.publish(self.topics.telemetry(scenario_id, f.robot_id), encode_frame(f), qos=0)

    def frames_all(self) -> None:
        for sid in SCENARIOS:
            self.frame(sid)

    # -- whether each scenario is watched ------------------------------------------------------
    def _watch_loop(self) -> None:
        while not self._stop.is_set():
            self.publish_watch()
            self._stop.wait(self.watch_every_s)

    def publish_watch(self) -> None:
        now = time.time_ns()
        for sid, st in list(self.watching.items()):
            watched = st == "watched"
            detail = "" if watched else {"no_data": "no frame for 75 s", "detectors_off": "this ingest process runs "
                                         "without detectors", "not_detected": "the detectors failed on 3 frame(s) in "
                                         "the last 2 s"}.get(st, "")
            ws = WatchStatus.model_validate({
                "scenario_id": sid, "watched": watched, "state": st, "detail": detail, "frames": 3,
                "detected": 3 if watched else 0, "skipped": 0, "last_frame_ts": now, "last_arrival_ts": now, "ts": now,
                "every_s": self.watch_every_s, "partition": "0/1"})
            self.pub.publish(self.topics.watch(sid), ws.model_dump_json(exclude_none=True), retain=True)

    def set_watch(self, scenario_id: str, state: str) -> None:
        """From now on the played ingestor says ``state`` of the scenario (watched, no_data, ...)."""
        self.watching[scenario_id] = state
        self.publish_watch()

    def fall_silent(self, scenario_id: str) -> None:
        """The ingest process of the scenario stops saying anything: its last status stays retained."""
        self.watching.pop(scenario_id, None)

    def forget(self, scenario_id: str) -> None:
        """No status at all for the scenario: the retained one is removed."""
        self.watching.pop(scenario_id, None)
        self.pub.publish(self.topics.watch(scenario_id), b"", retain=True)

    # -- alerts and incidents ----------------------------------------------------------------
    def signal(self, scenario_id: str, channel: str | None, severity: str | None, value: float | None = None,
               limit: float | None = None, *, detector: str = "gas_limit", kind: AlertKind = AlertKind.gas,
               unit: str | None = "%", ts: int | None = None, timing: AlertTiming = AlertTiming.live,
               message: str | None = None) -> list[AlertEvent]:
        """A detector's signal (``severity`` None: its condition is over) through the alert engine;
        the alert and incident steps it makes are published as the ingestor publishes them."""
        robot = robot_in(scenario_id)
        if message is None:
            c = SCENARIOS[scenario_id].channel_map.get(channel or "")
            what = f"{c.label} in {scenario_id}" if c else f"{channel} in {scenario_id}"
            message = (f"{what} is back to normal ({value} {unit}): the alert is cleared." if severity is None else
                       f"{what[:1].upper() + what[1:]} reads {value} {unit}, at or past the {severity} level "
                       f"{limit} {unit}: act on it.")
        sig = Signal(scenario_id=scenario_id, detector=detector, subject=channel or robot, kind=kind, source=robot,
                     severity=None if severity is None else Severity(severity), ts=ts or time.time_ns(),
                     message=message, value=value, limit=limit, unit=unit, channel=channel, robot_id=robot,
                     evidence={"rule": "as the test says"}, timing=timing)
        with self.lock:
            events = self.engine.update(sig)
            incidents = self.engine.drain_incidents()
        self._publish(events, incidents)
        return events

    def clear(self, scenario_id: str, channel: str | None, value: float = 0.3, **kw: Any) -> list[AlertEvent]:
        return self.signal(scenario_id, channel, None, value, **kw)

    def _publish(self, events: list[AlertEvent], incidents: list[IncidentEvent]) -> None:
        now = time.time_ns()
        for ev in events:
            if ev.detected_ts is None:
                ev = ev.model_copy(update={"detected_ts": now})
            self.pub.alert(ev)
        for inc in incidents:
            if inc.detected_ts is None:
                inc = inc.model_copy(update={"detected_ts": now})
            body = inc.model_dump_json(exclude_none=True)
            self.pub.publish(self.topics.incident(inc.scenario_id, inc.cause), body)
            self.pub.publish(self.topics.incident_active(inc.incident_id),
                             "" if inc.state is IncidentState.cleared else body, retain=True)

    # -- acknowledgements, as the ingestor applies them ------------------------------------------
    def _on_ack(self, msg: paho.MQTTMessage) -> None:
        req = orjson.loads(msg.payload)
        self.acks.append(msg.topic)

        def apply() -> None:
            with self.lock:
                ev = self.engine.acknowledge(req["alert_id"], req["operator"], req.get("note"), req["ts"])
                incidents = self.engine.drain_incidents()
            self._publish([ev], incidents)

        threading.Thread(target=apply).start()  # publishing waits for the broker: not on paho's thread

    def _on_incident_ack(self, msg: paho.MQTTMessage) -> None:
        req = orjson.loads(msg.payload)
        self.acks.append(msg.topic)

        def apply() -> None:
            with self.lock:
                events, _ = self.engine.acknowledge_incident(req["incident_id"], req["operator"], req.get("note"),
                                                             req["ts"])
                incidents = self.engine.drain_incidents()
            self._publish(events, incidents)

        threading.Thread(target=apply).start()

    # -- a board in trouble everywhere ---------------------------------------------------------
    def acknowledge(self, alert_id: str, operator: str = "shift-boss") -> None:
        """The played ingestor applies an operator's acknowledgement of ``alert_id``."""
        with self.lock:
            ev = self.engine.acknowledge(alert_id, operator, None, time.time_ns())
            incidents = self.engine.drain_incidents()
        self._publish([ev], incidents)

    def alarm_everywhere(self, not_watched: dict[str, str], every_ack: int = 3) -> dict[str, str]:
        """An active alert in every scenario, on its first limited channel, past the level
        cycled through warning, alarm and critical (the frame reads it too); every
        ``every_ack``-th alert acknowledged; ``not_watched`` maps scenarios to the watch state
        the played ingestor gives them from now on. The alert id of each scenario."""
        levels = ("alarm", "critical", "warning")
        out: dict[str, str] = {}
        for i, (sid, sc) in enumerate(SCENARIOS.items()):
            ch = next(c for c in sc.channels if c.limits)
            lim = ch.limits[0]
            by_level = dict(lim.levels)
            severity = levels[i % 3] if levels[i % 3] in by_level else lim.levels[-1][0]
            limit = by_level[severity]
            value = round(limit * 1.1 + 0.01, 3) if lim.direction == "above" else round(limit * 0.9, 3)
            self.frame(sid, **{ch.name: value})
            (ev, *_) = self.signal(sid, ch.name, severity, value, limit, detector=f"{ch.quantity}_limit",
                                   unit=ch.unit)
            out[sid] = ev.alert_id
            if i % every_ack == 1:
                self.acknowledge(ev.alert_id)
        for sid, state in not_watched.items():
            if state == "no_ingest":
                self.forget(sid)
            else:
                self.set_watch(sid, state)
        return out
