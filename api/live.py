"""Live state from the broker: alerts, robot status and the latest telemetry.

Two aiomqtt clients, each in its own reconnect loop:

- the *alert* client subscribes QoS 1 to ``alerts/+/+`` and ``incidents/+/+`` (events, and the
  retained ``active`` states), to the retained ``status/+`` and to the retained ``watch/+`` (whether
  the detectors watch each scenario); its queue is unbounded, because an alert must never be
  dropped. It also publishes acknowledgement requests.
- the *telemetry* client subscribes QoS 0 to ``telemetry/+/+`` with a bounded queue. It keeps
  only the last raw payload per (scenario, robot) and decodes lazily when someone asks, so a
  fast fleet costs a dictionary store per message; messages of a scenario that a stream client
  watches (and big ones) are decoded at once, and the newest frame of each goes to the streams.

The live picture takes what the ingestor takes and nothing else: a robot of the fleet registry
(``MINEWATCH_ROBOTS``, at most ``max_robots`` ids), frames whose robot and scenario are the
topic's, dated within the ingestor's window (the raw retention behind, a day ahead), and no
retained telemetry (a robot's live frames are never retained). A frame dated ahead of the API's
clock counts as of the moment it arrived, so it cannot outrank frames that arrive after it. A
status names the robot of its topic and is not dated ahead of the API's clock.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

import aiomqtt
import msgspec
import orjson
from pydantic import ValidationError

from api.alertbook import AlertBook, stored_events
from api.hub import Hub, Slots
from api.incidents import IncidentBook, stored_incidents
from api.metrics import Metrics
from api.frames import frame_json
from minewatch.catalogue import SCENARIOS
from minewatch.mqtt import aiomqtt_kwargs
from minewatch.registry import RobotRegistry
from minewatch.schema import AlertEvent, AlertState, IncidentEvent, IncidentState, RobotStatus, WatchStatus
from minewatch.storage import RAW_DAYS
from minewatch.wire import Frame, FrameError, decode_frames

if TYPE_CHECKING:
    from minewatch.influx import InfluxClient
    from minewatch.settings import Settings

__all__ = ["LiveState", "LOOKBACK_NS"]

log = logging.getLogger("minewatch.api")
LOOKBACK_NS = 7 * 24 * 3600 * 1_000_000_000  # alert_events loaded at start-up: one week
_RETRY_S = (0.2, 0.5, 1.0, 2.0, 5.0)
_S = 1_000_000_000
MAX_AGE_NS = RAW_DAYS * 86_400 * _S  # a frame older than the raw retention is history, not live
MAX_AHEAD_NS = 86_400 * _S  # a robot clock this far ahead is corrected by the ingestor; further is refused
STATUS_AHEAD_NS = 300 * _S  # a status dated further ahead than this is refused (as the ingestor does)
DECODE_AT_ONCE_BYTES = 64 << 10  # a bigger message is decoded on arrival, so only its newest frame is kept


class LiveState:
    def __init__(self, settings: Settings, influx: InfluxClient, metrics: Metrics) -> None:
        self.settings = settings
        self.topics = settings.topics
        self.influx = influx
        self.metrics = metrics
        self.book = AlertBook()
        self.incidents = IncidentBook()
        self.watch: dict[str, tuple[WatchStatus, int]] = {}  # scenario -> (status, when it arrived, our clock)
        self.hub = Hub()
        self.slots = Slots(settings.api_max_streams)
        # bumped on every change a stream client's first messages show; the snapshot is built
        # once per version and shared by every client that connects meanwhile
        self.version = 0
        self.snapshot_cache: tuple[int, Any] | None = None
        self.registry = RobotRegistry(settings.robots)
        self.robots: dict[str, RobotStatus] = {}
        # (scenario, robot) -> the last telemetry payload not decoded yet, and when it arrived (our clock)
        self._raw: dict[tuple[str, str], tuple[bytes, int]] = {}
        self._decoded: dict[tuple[str, str], Frame] = {}  # (scenario, robot) -> its newest good frame
        self._robot_frame: dict[str, tuple[str, str]] = {}  # robot -> key of its latest payload
        self._ack_waiters: dict[str, list[asyncio.Future[Any]]] = {}
        self.client: aiomqtt.Client | None = None
        self.mqtt_connected = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []

    # ------------------------------------------------------------------ life
    async def start(self) -> None:
        await self.load_alerts()
        self._tasks = [asyncio.create_task(self._loop(self._alert_session, "alerts"), name="mqtt-alerts"),
                       asyncio.create_task(self._loop(self._telemetry_session, "telemetry"), name="mqtt-telemetry")]

    async def stop(self, timeout: float = 5.0) -> None:
        """Cancel the subscribers and wait for them, but not for ever: a client stuck in its
        disconnect must not hold up the shutdown."""
        tasks, self._tasks = self._tasks, []
        for t in tasks:
            t.cancel()
        if tasks:
            done, stuck = await asyncio.wait(tasks, timeout=timeout)
            for t in done:  # retrieve, so nothing is reported as never retrieved
                if not t.cancelled():
                    t.exception()
            if stuck:
                log.warning("%d MQTT task(s) did not stop within %.0f s", len(stuck), timeout)
        self.client = None

    async def load_alerts(self, lookback_ns: int = LOOKBACK_NS) -> None:
        """Fold ``alert_events`` of the look-back window into the book; if InfluxDB is not
        there yet, keep trying in the background (the API serves meanwhile)."""
        if not await self._load(lookback_ns):
            self._tasks.append(asyncio.create_task(self._retry_load(lookback_ns), name="alerts-load"))

    async def _load(self, lookback_ns: int) -> bool:
        since = time.time_ns() - lookback_ns
        try:
            events = await stored_events(self.influx, f"time >= {since}")
            incidents = await stored_incidents(self.influx, f"time >= {since}")
        except Exception as exc:  # noqa: BLE001 - InfluxDB down or no database yet
            log.warning("could not load alert_events yet: %s", exc)
            return False
        self.version += 1
        self.book.apply_all(events)
        self.book.horizon_ns = since
        self.incidents.apply_all(incidents)
        self.incidents.horizon_ns = since
        self.book.loaded = True
        self.metrics.active_alerts.set(len(self.book.active()))
        return True

    async def _retry_load(self, lookback_ns: int) -> None:
        attempt = 0
        while not await self._load(lookback_ns):
            await asyncio.sleep(_RETRY_S[min(attempt, len(_RETRY_S) - 1)])
            attempt += 1

    async def _loop(self, session: Callable[[], Awaitable[None]], what: str) -> None:
        attempt = 0
        while True:
            try:
                await session()
                attempt = 0
            except aiomqtt.MqttError as exc:
                if what == "alerts":
                    self.mqtt_connected.clear()
                    self.client = None
                    self.metrics.mqtt_connected.set(0)
                log.warning("MQTT %s connection lost: %s; reconnecting", what, exc)
            await asyncio.sleep(_RETRY_S[min(attempt, len(_RETRY_S) - 1)])
            attempt += 1

    def _client(self, name: str, **kw: Any) -> aiomqtt.Client:
        s = self.settings
        return aiomqtt.Client(**aiomqtt_kwargs(s.mqtt, ca=s.mqtt_ca, cert=s.mqtt_cert, key=s.mqtt_key),
                              identifier=f"minewatch-api-{name}-{uuid.uuid4().hex[:8]}", **kw)

    async def _alert_session(self) -> None:
        async with self._client("alerts") as client:
            await client.subscribe(self.topics.all_alert_events, qos=1)
            await client.subscribe(self.topics.all_incidents, qos=1)
            await client.subscribe(self.topics.all_status, qos=1)
            await client.subscribe(self.topics.all_watch, qos=1)
            self.client = client
            self.mqtt_connected.set()
            self.metrics.mqtt_connected.set(1)
            async for msg in client.messages:
                self.on_message(str(msg.topic), msg.payload if isinstance(msg.payload, bytes) else b"")

    async def _telemetry_session(self) -> None:
        async with self._client("telemetry", max_queued_incoming_messages=20000) as client:
            await client.subscribe(self.topics.all_telemetry, qos=0)
            async for msg in client.messages:
                self.on_telemetry(str(msg.topic), msg.payload if isinstance(msg.payload, bytes) else b"",
                                  retain=bool(msg.retain))

    # ------------------------------------------------------------------ inputs
    def on_message(self, topic: str, payload: bytes) -> None:
        self.version += 1
        alert = self.topics.parse_alert(topic)
        if alert is not None:
            what, ident, _ = alert
            if what == "ack":
                return
            if what == "active" and not payload:
                if self.book.vanish(ident):
                    self.metrics.active_alerts.set(len(self.book.active()))
                return
            try:
                ev = AlertEvent.model_validate_json(payload)
            except ValidationError as exc:
                self.metrics.bad_messages.labels("alert").inc()
                log.warning("ignoring a bad alert event on %s: %s", topic, exc.errors()[:1])
                return
            self.on_event(ev)
            return
        inc = self.topics.parse_incident(topic)
        if inc is not None:
            what, ident, _ = inc
            if what == "ack":
                return
            if what == "active" and not payload:
                if self.incidents.vanish(ident):
                    self.hub.publish({"type": "incident_gone", "data": {"incident_id": ident}})
                return
            try:
                iev = IncidentEvent.model_validate_json(payload)
            except ValidationError as exc:
                self.metrics.bad_messages.labels("incident").inc()
                log.warning("ignoring a bad incident event on %s: %s", topic, exc.errors()[:1])
                return
            self.on_incident(iev)
            return
        sid = self.topics.parse_watch(topic)
        if sid is not None:
            if not payload:
                self.watch.pop(sid, None)
                return
            try:
                ws = WatchStatus.model_validate_json(payload)
            except ValidationError:
                self.metrics.bad_messages.labels("watch").inc()
                return
            self.watch[sid] = (ws, time.time_ns())
            self.hub.publish({"type": "watch", "data": ws.model_dump(mode="json")})
            return
        robot = self.topics.parse_status(topic)
        if robot is not None:
            if not payload:
                self.robots.pop(robot, None)
                return
            try:
                st = RobotStatus.model_validate_json(payload)
            except ValidationError:
                self.metrics.bad_messages.labels("status").inc()
                return
            if (st.robot_id != robot or not self.registry.allows(robot)
                    or (st.ts is not None and st.ts > time.time_ns() + STATUS_AHEAD_NS)):
                self.metrics.bad_messages.labels("status").inc()
                return
            self.robots[robot] = st
            self.hub.publish({"type": "status", "data": st.model_dump(mode="json")})

    def on_event(self, ev: AlertEvent) -> None:
        self.version += 1
        if not self.book.apply(ev):
            return
        self.metrics.alert_events.labels(ev.state.value).inc()
        self.metrics.active_alerts.set(len(self.book.active()))
        self.hub.publish({"type": "alert", "data": ev.model_dump(mode="json")})
        if ev.state == AlertState.acknowledged:
            for fut in self._ack_waiters.pop(ev.alert_id, []):
                if not fut.done():
                    fut.set_result(ev)

    def on_incident(self, ev: IncidentEvent) -> None:
        self.version += 1
        if not self.incidents.apply(ev):
            return
        inc = self.incidents.get(ev.incident_id)
        assert inc is not None
        self.hub.publish({"type": "incident", "data": inc.public().model_dump(mode="json")})
        if ev.state is IncidentState.acknowledged:
            for fut in self._ack_waiters.pop(ev.incident_id, []):
                if not fut.done():
                    fut.set_result(ev)

    def on_telemetry(self, topic: str, payload: bytes, *, retain: bool = False) -> None:
        key = self.topics.parse_telemetry(topic)
        if key is None or not payload or retain or key[0] not in SCENARIOS or not self.registry.allows(key[1]):
            return
        now = time.time_ns()
        self._robot_frame[key[1]] = key
        watched = key[0] in self.hub.watched_scenarios()
        if not watched and len(payload) <= DECODE_AT_ONCE_BYTES:
            self._raw[key] = (payload, now)
            return
        self._raw.pop(key, None)
        f = self._newest(key, payload, now)
        if f is None:
            return
        self._decoded[key] = f
        if watched:
            # one reading per message: the board shows the newest, a bulk message is history
            self.hub.publish_reading(key[0], {"type": "reading", "data": frame_json(f, key)})

    def _newest(self, key: tuple[str, str], payload: bytes, arrived: int) -> Frame | None:
        """The newest frame of a telemetry message on the topic of ``key`` that arrived at
        ``arrived``; None when the message is not one the ingestor takes (undecodable, a frame of
        another robot or scenario) or none of its frames is in the time window. A frame dated ahead
        of ``arrived`` is dated ``arrived``."""
        try:
            frames = decode_frames(payload)
        except FrameError:
            self.metrics.bad_messages.labels("telemetry").inc()
            return None
        scenario_id, robot_id = key
        lo, hi = arrived - MAX_AGE_NS, arrived + MAX_AHEAD_NS
        best: Frame | None = None
        for f in frames:
            if f.robot_id != robot_id or f.scenario_id != scenario_id:
                self.metrics.bad_messages.labels("telemetry").inc()
                return None
            if lo <= f.ts <= hi and (best is None or f.ts >= best.ts):
                best = f
        if best is not None and best.ts > arrived:
            best = msgspec.structs.replace(best, ts=arrived)
        return best

    # ------------------------------------------------------------------ queries
    def frame(self, key: tuple[str, str]) -> Frame | None:
        """The newest good frame of ``key``: a payload that is not good leaves the one before."""
        raw = self._raw.pop(key, None)
        if raw is not None:
            f = self._newest(key, *raw)
            if f is not None:
                self._decoded[key] = f
        return self._decoded.get(key)

    def frames_of(self, scenario_id: str) -> list[Frame]:
        keys = [k for k in (*self._raw, *self._decoded) if k[0] == scenario_id]
        out = [self.frame(k) for k in dict.fromkeys(keys)]
        return [f for f in out if f is not None]

    def robot_frame(self, robot_id: str) -> Frame | None:
        key = self._robot_frame.get(robot_id)
        return self.frame(key) if key else None

    def robot_ids(self) -> set[str]:
        return set(self.robots) | set(self._robot_frame)

    # ------------------------------------------------------------------ acknowledging
    async def request_ack(self, alert_id: str, scenario_id: str, operator: str, note: str, ts: int,
                          wait_s: float, *, incident: bool = False) -> Any:
        """Publish the ack request (of an alert, or with ``incident`` of an incident) and wait up to
        ``wait_s`` for the acknowledged event."""
        client = self.client
        if client is None:
            raise ConnectionError("not connected to the MQTT broker")
        fut: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._ack_waiters.setdefault(alert_id, []).append(fut)
        key = "incident_id" if incident else "alert_id"
        payload = orjson.dumps({key: alert_id, "scenario_id": scenario_id, "operator": operator,
                                "note": note, "ts": ts})
        topic = self.topics.incident_ack(alert_id) if incident else self.topics.ack(alert_id)
        try:
            await client.publish(topic, payload, qos=1)
            return await asyncio.wait_for(fut, wait_s)
        except aiomqtt.MqttError as exc:
            raise ConnectionError(f"could not publish the acknowledgement: {exc}") from None
        except TimeoutError:
            return None
        finally:
            waiters = self._ack_waiters.get(alert_id, [])
            if fut in waiters:
                waiters.remove(fut)

