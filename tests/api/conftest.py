"""Fixtures for the API: the app served by uvicorn on a free port, in front of the real
mosquitto and influxd of the session, with a unique topic prefix and database per test."""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any, Literal, TypeVar
from dataclasses import dataclass

import httpx
import paho.mqtt.client as paho
import pytest
import uvicorn

from api.main import create_app
from ingest.lines import alert_line as ingest_alert_line
from minewatch.influx import SyncInflux
from minewatch.mqtt import paho_client
from minewatch.schema import AlertEvent, AlertKind, AlertState, Severity
from minewatch.services import Influxd, Mosquitto, free_port
from minewatch.settings import Settings
from minewatch.topics import Topics

KEYS = {"operator": "op-key-1", "engineer": "eng-key-1", "integrator": "int-key-1"}
T0 = 1_795_852_800_000_000_000  # 2026-11-28T08:00:00Z: 16:00 local, the start of shift 2026-11-28:swing
S = 1_000_000_000
T = TypeVar("T")


@dataclass
class Api:
    url: str
    settings: Settings
    server: uvicorn.Server

    def client(self, role: str | None = "operator", **kw: Any) -> httpx.Client:
        headers = {"X-API-Key": KEYS[role]} if role else {}
        return httpx.Client(base_url=self.url, headers=headers, timeout=10.0, **kw)


def serve(settings: Settings, factory: Callable[..., Any] = create_app,
          **app_kw: Any) -> tuple[uvicorn.Server, threading.Thread, str]:
    port = free_port()
    config = uvicorn.Config(factory(settings, **app_kw), host="127.0.0.1", port=port,
                            log_level="warning", ws="websockets-sansio", lifespan="on",
                            timeout_graceful_shutdown=2)
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, name="uvicorn", daemon=True)
    thread.start()
    deadline = time.monotonic() + 15
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("the API did not start")
        time.sleep(0.02)
    return server, thread, f"http://127.0.0.1:{port}"


@pytest.fixture
def settings(mosquitto: Mosquitto, influx_db: SyncInflux, prefix: str) -> Settings:
    return Settings(mqtt_url=mosquitto.url, influx_url=influx_db.url, influx_db=influx_db.db, topic_prefix=prefix,
                    api_keys=",".join(f"{k}:{role}" for role, k in KEYS.items()))


@pytest.fixture
def start_api(settings: Settings) -> Iterator[Callable[..., Api]]:
    """Start the API (after the test has put what it needs in place); stopped at the end."""
    running: list[tuple[uvicorn.Server, threading.Thread]] = []

    def start(wait_mqtt: bool = True, **app_kw: Any) -> Api:
        server, thread, url = serve(settings, **app_kw)
        running.append((server, thread))
        api = Api(url, settings, server)
        if wait_mqtt:
            wait_for(lambda: httpx.get(f"{url}/healthz").json()["mqtt"], what="the API's MQTT connection")
        return api

    yield start
    for server, thread in running:
        server.should_exit = True
        thread.join(timeout=15)


@pytest.fixture
def api(start_api: Callable[..., Api]) -> Api:
    return start_api()


@pytest.fixture(scope="module")
def shared_api(mosquitto: Mosquitto, influxd: Influxd) -> Iterator[Api]:
    """One API for a module's tests that change nothing (auth, bad input), on an empty database."""
    unique = uuid.uuid4().hex[:10]
    db = SyncInflux(influxd.url, f"db_{unique}")
    db.ensure_db()
    s = Settings(mqtt_url=mosquitto.url, influx_url=influxd.url, influx_db=db.db, topic_prefix=f"t{unique}/v1",
                 api_keys=",".join(f"{k}:{role}" for role, k in KEYS.items()))
    server, thread, url = serve(s)
    try:
        wait_for(lambda: httpx.get(f"{url}/healthz").json()["mqtt"], what="the API's MQTT connection")
        yield Api(url, s, server)
    finally:
        server.should_exit = True
        thread.join(timeout=15)
        db.query(f'DROP DATABASE "{db.db}"', db="", post=True)
        db.close()


def wait_for(cond: Callable[[], T | Literal[False] | None], timeout: float = 10.0, what: str = "condition") -> T:
    deadline = time.monotonic() + timeout
    while True:
        got = cond()
        if got:
            return got
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


# -------------------------------------------------------------------------- alert events

def event(alert_id: str = "mf01.ch4_t1.gas_limit.1795852800000", state: str = "raised", severity: str = "alarm",
          ts: int = T0, first_ts: int = T0, scenario: str = "mf01", kind: str = "gas", channel: str = "ch4_t1",
          value: float = 1.1, limit: float = 1.0, **kw: Any) -> AlertEvent:
    return AlertEvent(alert_id=alert_id, kind=AlertKind(kind), detector="gas_limit", severity=Severity(severity),
                      state=AlertState(state), scenario_id=scenario, robot_id="r01", channel=channel, value=value,
                      limit=limit, unit="%", first_ts=first_ts, ts=ts,
                      message=f"Methane {value} % at {channel} in {scenario}", evidence={"rule": "test"},
                      **kw)


def alert_line(ev: AlertEvent) -> str:
    """The ``alert_events`` point the ingestor writes for ``ev``."""
    out = ingest_alert_line(ev)
    assert out is not None
    return out


class Publisher:
    """A paho client publishing as the ingestor and the robots do."""

    def __init__(self, broker: Mosquitto, prefix: str) -> None:
        self.topics = Topics(prefix)
        self.client = paho_client(Settings(mqtt_url=broker.url).mqtt)
        self.client.connect(broker.host, broker.port)
        self.client.loop_start()

    def publish(self, topic: str, payload: bytes | str, *, retain: bool = False, qos: int = 1) -> None:
        info = self.client.publish(topic, payload, qos=qos, retain=retain)
        info.wait_for_publish(5)

    def alert(self, ev: AlertEvent) -> None:
        """An alert event as the ingestor publishes it: the event topic and the retained state."""
        body = ev.model_dump_json()
        self.publish(self.topics.alert(ev.scenario_id, ev.kind.value), body)
        self.publish(self.topics.active(ev.alert_id), "" if ev.state == AlertState.cleared else body, retain=True)

    def subscribe(self, topic: str, on: Callable[[paho.MQTTMessage], None]) -> None:
        self.client.message_callback_add(topic, lambda c, u, m: on(m))
        self.client.subscribe(topic, qos=1)[0]

    def close(self) -> None:
        self.client.loop_stop()
        self.client.disconnect()


@pytest.fixture
def publisher(mosquitto: Mosquitto, prefix: str) -> Iterator[Publisher]:
    p = Publisher(mosquitto, prefix)
    yield p
    p.close()
