"""One thin slice, end to end, on real processes: simulator → mosquitto → ingest → InfluxDB,
the methane detector → alert topic → API.

The simulator publishes a known number of frames for a mining face with a methane excursion
above the power-cut level (1.5 %, domain §1.2); then every reading must be in InfluxDB, exactly
one power-cut alert must reach an MQTT subscriber, the API must show it while it is active, and
it must clear once methane falls below the restore level (1.0 %).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import pytest

from minewatch.influx import SyncInflux
from minewatch.mqtt import paho_client
from minewatch.services import Influxd, Mosquitto, free_port, wait_port
from minewatch.settings import MqttTarget
from minewatch.topics import Topics

pytestmark = pytest.mark.integration

KEY = "e2e-operator-key"


def _cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "minewatch", *args]


class AlertListener:
    """An MQTT subscriber of the alert topics, as an integrator would run it."""

    def __init__(self, broker: Mosquitto, topics: Topics) -> None:
        self.events: list[dict] = []
        self._lock = threading.Lock()
        self.client = paho_client(MqttTarget(broker.url), f"listener-{os.getpid()}")
        self.client.on_message = self._on_message
        self.client.connect(broker.host, broker.port)
        self.client.subscribe(topics.all_alert_events, qos=1)
        self.topics = topics
        self.client.loop_start()

    def _on_message(self, client, userdata, msg) -> None:
        kind = self.topics.parse_alert(msg.topic)
        if kind and kind[0] == "event":
            with self._lock:
                self.events.append(json.loads(msg.payload))

    def snapshot(self) -> list[dict]:
        with self._lock:
            return list(self.events)

    def close(self) -> None:
        self.client.loop_stop()
        self.client.disconnect()


def test_simulated_methane_excursion_is_stored_alerted_shown_and_cleared(
    mosquitto: Mosquitto, influxd: Influxd, influx_db: SyncInflux, prefix: str, tmp_path: Path
) -> None:
    topics = Topics(prefix)
    env = dict(os.environ, MINEWATCH_API_KEYS=f"{KEY}:operator", MINEWATCH_TOPIC_PREFIX=prefix)
    common = ["--mqtt-url", mosquitto.url]
    influx = ["--influx-url", influxd.url, "--influx-db", influx_db.db]
    api_port = free_port()
    procs: list[subprocess.Popen[bytes]] = []
    listener = AlertListener(mosquitto, topics)
    try:
        # the simulated mine runs 20 times faster than real time: the ingestor goes by the data's clock
        procs.append(subprocess.Popen(_cli("ingest", *common, *influx, "--topic-prefix", prefix, "--clock", "data",
                                           "--spool-dir", str(tmp_path / "spool")), env=env))
        procs.append(subprocess.Popen(_cli("api", *common, *influx, "--topic-prefix", prefix,
                                           "--host", "127.0.0.1", "--port", str(api_port)), env=env))
        wait_port("127.0.0.1", api_port, timeout=60)
        api = httpx.Client(base_url=f"http://127.0.0.1:{api_port}", headers={"X-API-Key": KEY}, timeout=10)
        _wait(lambda: api.get("/healthz").status_code == 200, 30, "API healthy")
        scen = api.get("/scenarios").json()
        assert scen["count"] == 31 and len(scen["data"]) == 31

        faults = tmp_path / "faults.json"
        faults.write_text(json.dumps([{
            "kind": "methane_outburst", "scenario": "mf01", "channel": "ch4_t1",
            "start": "+40s", "duration": "80s", "peak": 1.8,
        }]))
        labels = tmp_path / "labels.jsonl"
        frames_wanted = 800
        # Five frames a second, time 20x faster than real: the alert stays active for seconds of wall-clock time.
        sim = subprocess.Popen(_cli("simulate", *common, "--topic-prefix", prefix, "--scenarios", "mf01",
                                    "--frames", str(frames_wanted), "--seed", "11", "--rate", "5", "--speed", "20",
                                    "--faults", str(faults), "--labels-out", str(labels)),
                               env=env, stdout=subprocess.PIPE)
        seen_active: list[dict] = []
        while sim.poll() is None:
            active = api.get("/alerts", params={"active": "true", "scenario": "mf01"}).json()["data"]
            seen_active.extend(a for a in active if a["severity"] == "critical")
            time.sleep(0.2)
        out, _ = sim.communicate()
        assert sim.returncode == 0
        summary = json.loads(out.decode().strip().splitlines()[-1])
        assert summary["frames"] == frames_wanted

        # (a) every reading is in InfluxDB: one point per frame, all channels of mf01.
        _wait(lambda: influx_db.count("telemetry", "seq") == frames_wanted, 60, "every frame stored")
        assert influx_db.count("telemetry", "ch4_t1") == frames_wanted
        label = json.loads(labels.read_text().splitlines()[0])
        peak = influx_db.query(f'SELECT max("ch4_t1") FROM "telemetry" WHERE time >= {label["start_ns"]} '
                               f'AND time <= {label["end_ns"]}')
        assert peak[0]["max"] >= 1.5

        # (b) exactly one power-cut alert reached the MQTT subscriber, and it cleared.
        def critical_ids() -> set[str]:
            return {e["alert_id"] for e in listener.snapshot() if e["severity"] == "critical" and e["channel"] == "ch4_t1"}

        _wait(lambda: any(e["state"] == "cleared" for e in listener.snapshot()), 30, "alert cleared")
        assert len(critical_ids()) == 1
        (alert_id,) = critical_ids()
        states = [e["state"] for e in listener.snapshot() if e["alert_id"] == alert_id]
        assert states[-1] == "cleared" and states.count("cleared") == 1
        assert "1.5" in next(e["message"] for e in listener.snapshot() if e["severity"] == "critical")

        # (c) the API showed it while it was active, and shows it cleared now.
        assert alert_id in {a["alert_id"] for a in seen_active}
        # (The robot going quiet when the run ends may raise robot-health alerts; methane must be clear.)
        _wait(lambda: not [a for a in api.get("/alerts", params={"active": "true", "scenario": "mf01"}).json()["data"]
                           if a["channel"] == "ch4_t1" and a["kind"] == "gas"], 15, "no active methane alert left")
        one = api.get(f"/alerts/{alert_id}").json()
        assert one["state"] == "cleared"
    finally:
        listener.close()
        for p in procs:
            p.terminate()
        for p in procs:
            try:
                p.wait(20)
            except subprocess.TimeoutExpired:
                p.kill()


def _wait(cond, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if cond():
            return
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for: {what}")
