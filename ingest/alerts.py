"""Publishing alert and incident events, and reading the active ones back after a restart.

Every live event goes out three ways: QoS 1 retained on ``alerts/active/{alert_id}`` (a late
subscriber sees what is active now; a ``cleared`` event replaces it with an empty retained message,
which removes it), then QoS 1 on ``alerts/{scenario}/{kind}`` (integrators follow the stream), and
a point in ``alert_events``. Incident events go the same three ways on ``incidents/{scenario}/{cause}``,
``incidents/active/{incident_id}`` and ``incident_events``. Historical events (from bulk history)
are only stored. The ingestor is the only writer of the retained topics; acks from the API arrive
as requests on ``alerts/ack/{alert_id}`` or ``incidents/ack/{incident_id}`` and come back out as
``acknowledged`` events.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections.abc import Callable

from pydantic import ValidationError

from minewatch.mqtt import paho_client
from minewatch.schema import AlertEvent, AlertState, AlertTiming, IncidentEvent, IncidentState
from minewatch.settings import Settings
from minewatch.topics import Topics

from ingest.lines import alert_line, incident_line

__all__ = ["publish_event", "publish_incident", "read_active"]

log = logging.getLogger("minewatch.ingest.alerts")


def publish_event(publish: Callable[[str, bytes, int, bool], object], topics: Topics, ev: AlertEvent) -> str | None:
    """Publish ``ev`` on its event and active topics (unless historical); return its ``alert_events`` line."""
    if ev.timing is AlertTiming.historical:
        return alert_line(ev)
    payload = ev.model_dump_json(exclude_none=True).encode()
    # the retained state first: the broker takes one connection's messages in order, so an event a
    # subscriber saw is always in the active set a restarted ingestor reads back (the other way
    # round, one stopped between the two left a raised alert nobody would ever clear)
    publish(topics.active(ev.alert_id), b"" if ev.state == AlertState.cleared else payload, 1, True)
    publish(topics.alert(ev.scenario_id, ev.kind.value), payload, 1, False)
    return alert_line(ev)


def publish_incident(publish: Callable[[str, bytes, int, bool], object], topics: Topics,
                     inc: IncidentEvent) -> str | None:
    """Publish ``inc`` on its event and active topics (unless historical); return its
    ``incident_events`` line."""
    if inc.timing is AlertTiming.historical:
        return incident_line(inc)
    payload = inc.model_dump_json(exclude_none=True).encode()
    publish(topics.incident_active(inc.incident_id), b"" if inc.state is IncidentState.cleared else payload, 1, True)
    publish(topics.incident(inc.scenario_id, inc.cause), payload, 1, False)
    return incident_line(inc)


def read_active(settings: Settings, timeout: float = 10.0) -> tuple[list[AlertEvent], list[IncidentEvent]]:
    """The alerts and incidents retained under ``alerts/active/+`` and ``incidents/active/+``,
    read with a short-lived clean session.

    Retained messages are sent right after the subscription; a marker message published after
    subscribing arrives behind them, so when it comes back every retained alert is in.
    """
    topics = settings.topics
    marker = f"{topics.prefix}/ingest/marker/{uuid.uuid4().hex}"
    events: list[AlertEvent] = []
    incidents: list[IncidentEvent] = []
    done = threading.Event()
    client = paho_client(settings.mqtt, f"minewatch-ingest-restore-{uuid.uuid4().hex[:8]}",
                         ca=settings.mqtt_ca, cert=settings.mqtt_cert, key=settings.mqtt_key)

    def on_connect(c, userdata, flags, rc, props):
        c.subscribe([(topics.all_active, 1), (topics.all_active_incidents, 1), (marker, 1)])

    def on_subscribe(c, userdata, mid, rcs, props):
        c.publish(marker, b"1", qos=1)

    def on_message(c, userdata, msg):
        if msg.topic == marker:
            done.set()
            return
        if not msg.payload:
            return
        try:
            if topics.parse_incident(msg.topic) is not None:
                incidents.append(IncidentEvent.model_validate_json(msg.payload))
            else:
                events.append(AlertEvent.model_validate_json(msg.payload))
        except ValidationError as exc:
            log.warning("ignoring a retained message on %s that is not an alert or incident event: %s", msg.topic, exc)

    client.on_connect, client.on_subscribe, client.on_message = on_connect, on_subscribe, on_message
    target = settings.mqtt
    deadline = time.monotonic() + timeout
    client.connect_async(target.host, target.port, 30)
    client.loop_start()
    try:
        if not done.wait(max(0.0, deadline - time.monotonic())):
            raise TimeoutError(f"could not read the retained active alerts from {target.host}:{target.port}")
    finally:
        client.disconnect()
        client.loop_stop()
    return ([e for e in events if e.state != AlertState.cleared],
            [i for i in incidents if i.state != IncidentState.cleared])
