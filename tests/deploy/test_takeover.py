"""No robot or integrator can take over another client's session on the shipped broker
configuration: on the public listener the client id is the username, and their credentials are
not valid on the service listener, where the ingestor keeps its persistent session. Real
mosquitto, influxd, ``minewatch ingest`` and ``minewatch simulate`` processes.
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import paho.mqtt.client as paho
import pytest
from paho.mqtt.reasoncodes import ReasonCode

from minewatch.influx import SyncInflux
from minewatch.mqtt import connect_properties, paho_client
from minewatch.services import Influxd
from minewatch.settings import MqttTarget
from minewatch.topics import Topics
from tests.ingest.helpers import IngestProcess, telemetry_count, wait_until

from .conftest import DeployBroker, start_deploy_broker
from .probe import publish_once

pytestmark = pytest.mark.integration

T = Topics()
INGEST_ID = "minewatch-ingest-0of1"  # the ingestor's default client id (one partition)
NOT_AUTHORIZED = 135
ATTACKERS = ("r01", "integrator", "r02")


class Holder:
    """A client on a persistent session (clean start off, a session expiry), as the ingestor is;
    counts how often the broker drops it."""

    def __init__(self, url: str, client_id: str) -> None:
        self.client = paho_client(MqttTarget(url), client_id)
        self.connected = threading.Event()
        self.drops = 0
        self.topics: list[str] = []
        def on_connect(c: paho.Client, *_: object) -> None:
            c.subscribe(T.all_telemetry, qos=1)
            self.connected.set()

        self.client.on_connect = on_connect
        self.client.on_disconnect = self._dropped
        self.client.on_message = lambda c, u, m: self.topics.append(m.topic)
        target = MqttTarget(url)
        self.client.connect(target.host, target.port, clean_start=False, properties=connect_properties(3600))
        self.client.loop_start()
        assert self.connected.wait(5), "the holder could not connect"

    def _dropped(self, *args: object) -> None:
        self.drops += 1

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def take_over(url: str, client_id: str = INGEST_ID) -> int:
    """Connect as ``client_id`` with a clean start (which would end that id's session), leave;
    the CONNACK reason code."""
    target = MqttTarget(url)
    client = paho_client(target, client_id)
    answered = threading.Event()
    got: list[int] = []

    def on_connect(c, u, f, rc: ReasonCode, p) -> None:
        got.append(rc.value)
        answered.set()

    client.on_connect = on_connect
    client.connect(target.host, target.port, clean_start=True)
    client.loop_start()
    try:
        assert answered.wait(5), f"no CONNACK for {url.split('@')[0]}"
    finally:
        client.disconnect()
        client.loop_stop()
    return got[0]


def test_no_robot_or_integrator_can_take_the_ingestors_client_id(deploy_broker: DeployBroker) -> None:
    b = deploy_broker
    holder = Holder(b.url("ingest"), INGEST_ID)
    try:
        for user in ATTACKERS:
            # On their own listener they log in, under their own name whatever id they ask for ...
            assert take_over(b.url(user)) == 0
            # ... and their credentials are no good where the services connect.
            assert take_over(b.url(user, listener="service")) == NOT_AUTHORIZED
        for user in ("ingest", "api", "simulator", "healthcheck"):
            # service accounts are valid on the service listener only
            assert take_over(b.url(user, listener="public")) == NOT_AUTHORIZED
        assert take_over(b.anonymous_url) == NOT_AUTHORIZED
        assert take_over(b.anonymous_service_url) == NOT_AUTHORIZED
        time.sleep(0.3)
        assert holder.drops == 0 and holder.client.is_connected(), "the ingestor's connection was taken over"
        # its session and subscription are the ones it made
        topic = T.telemetry("mf01", "r01")
        assert publish_once(b.url("r01"), topic) == 0
        wait_until(lambda: topic in holder.topics, 5, "r01's frame at the holder")
    finally:
        holder.close()
    log = b.broker.log_path.read_text(errors="replace")
    assert f"Client {INGEST_ID} already connected, closing old connection" not in log


def test_simulated_frames_all_stored_through_three_takeover_attempts(tmp_path: Path, influxd: Influxd) -> None:
    """``minewatch simulate --frames 8000`` into ``minewatch ingest`` while three accounts try to
    connect with the ingestor's client id: every frame is stored in InfluxDB."""
    b = start_deploy_broker(tmp_path / "broker")
    db = SyncInflux(influxd.url, f"db_takeover_{os.getpid()}_{time.monotonic_ns() % 10**9}")
    db.ensure_db()
    ingest = IngestProcess(tmp_path / "ingest.log", "--influx-url", influxd.url, "--influx-db", db.db,
                           "--spool-dir", str(tmp_path / "spool"), "--batch-ms", "50", "--log-level", "info",
                           env={"MINEWATCH_MQTT_URL": b.url("ingest"), "MINEWATCH_DATA_DIR": str(tmp_path / "data")})
    sim: subprocess.Popen[str] | None = None
    try:
        ingest.start()
        wait_until(lambda: "connected to the broker" in ingest.log() or not ingest.alive, 60, "the ingestor to connect")
        assert ingest.alive, ingest.log()
        assert f"{INGEST_ID}" in ingest.log()
        env = {**os.environ, "MINEWATCH_MQTT_URL": b.url("simulator")}
        sim = subprocess.Popen([sys.executable, "-m", "minewatch", "simulate", "--frames", "8000", "--rate", "20",
                                "--seed", "5"], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        answers = []
        for user in ATTACKERS:  # spread over the run, while frames flow
            time.sleep(2.0)
            answers.append(take_over(b.url(user)))
        out, err = sim.communicate(timeout=120)
        assert sim.returncode == 0, err
        assert answers == [0, 0, 0]  # they logged in, as themselves
        wait_until(lambda: telemetry_count(db) >= 8000, 90, "8000 frames in InfluxDB")
        time.sleep(1.0)  # nothing more (no duplicates either)
        assert telemetry_count(db) == 8000
        assert ingest.alive, ingest.log()
        log = b.broker.log_path.read_text(errors="replace")
        assert f"Client {INGEST_ID} already connected, closing old connection" not in log
    finally:
        if sim is not None and sim.poll() is None:
            sim.kill()
            sim.wait()
        if ingest.alive:
            ingest.terminate()
        db.query(f'DROP DATABASE "{db.db}"', db="", post=True)
        db.close()
        b.broker.stop()
