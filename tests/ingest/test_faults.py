"""Fault tests on real processes: afterwards every reading is in InfluxDB exactly once.

Each test runs ``minewatch ingest`` as a subprocess (or restarts the broker / InfluxDB under it)
while a publisher streams frames, then checks the count by query and each robot's seq coverage.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest

from minewatch.influx import SyncInflux
from minewatch.services import Influxd, Mosquitto
from minewatch.topics import Topics
from minewatch.wire import Frame

from tests.ingest.helpers import (IngestProcess, Publisher, assert_exactly_once, frames_for, telemetry_count,
                                  wait_until)

pytestmark = pytest.mark.integration

ROBOTS = [("mf01", "r01"), ("hf02", "r02"), ("bc03", "r03"), ("vf01", "r04")]


class Stream(threading.Thread):
    """Publishes ``per_robot`` frames for each robot at ``rate`` frames/s per robot."""

    def __init__(self, pub: Publisher, topics: Topics, per_robot: int, rate: float,
                 robots: list[tuple[str, str]] = ROBOTS) -> None:
        super().__init__(daemon=True)
        self.pub, self.topics, self.rate = pub, topics, rate
        self.frames: list[list[Frame]] = [frames_for(s, r, per_robot) for s, r in robots]
        self.expected = {r: per_robot for _, r in robots}
        self.sent = 0
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            start = time.monotonic()
            for i in range(len(self.frames[0])):
                for fs in self.frames:
                    self.pub.send(self.topics, [fs[i]])
                    self.sent += 1
                delay = start + (i + 1) / self.rate - time.monotonic()
                if delay > 0:
                    time.sleep(delay)
        except BaseException as exc:  # noqa: BLE001
            self.error = exc

    def finish(self) -> None:
        self.join(120)
        assert self.error is None, self.error
        self.pub.flush(120)


def _args(broker_url: str, influx_url: str, db: str, prefix: str, tmp_path: Path, *extra: str) -> list[str]:
    return ["--mqtt-url", broker_url, "--influx-url", influx_url, "--influx-db", db, "--topic-prefix", prefix,
            "--client-id", f"ing-{prefix.split('/')[0]}", "--spool-dir", str(tmp_path / "spool"),
            "--batch-ms", "50", "--log-level", "info", *extra]


def test_sigkill_mid_stream_loses_nothing(mosquitto: Mosquitto, influxd: Influxd, influx_db: SyncInflux,
                                          prefix: str, tmp_path: Path) -> None:
    topics = Topics(prefix)
    proc = IngestProcess(tmp_path / "ingest.log", *_args(mosquitto.url, influxd.url, influx_db.db, prefix, tmp_path))
    proc.start()
    pub = Publisher(mosquitto.url)
    stream = Stream(pub, topics, per_robot=1500, rate=250)   # 1000 frames/s for 6 s
    wait_until(lambda: "connected to the broker" in proc.log(), 30, "ingest to connect")
    stream.start()
    kills = 0
    for _ in range(3):
        time.sleep(1.2)
        before = telemetry_count(influx_db)
        proc.kill()
        kills += 1
        assert stream.is_alive(), "the stream ended before the kill: make it longer"
        time.sleep(0.3)
        proc.start()
        assert before > 0
    stream.finish()
    wait_until(lambda: telemetry_count(influx_db) >= stream.sent, 60, f"{stream.sent} points")
    assert proc.terminate() == 0, proc.log()
    assert kills == 3
    assert_exactly_once(influx_db, stream.expected)
    pub.close()
