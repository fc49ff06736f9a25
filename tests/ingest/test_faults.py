"""Fault tests on real processes: afterwards every reading is in InfluxDB exactly once.

Each test runs ``minewatch ingest`` as a subprocess (or restarts the broker / InfluxDB under it)
while a publisher streams frames, then checks the count by query and each robot's seq coverage.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from minewatch.influx import SyncInflux
from minewatch.services import Influxd, Mosquitto
from minewatch.topics import Topics
from minewatch.wire import Frame

from tests.ingest.helpers import (Collector, IngestProcess, Publisher, alert_events_of, assert_exactly_once, frames_for,
                                  retained_active, telemetry_count, wait_until)

pytestmark = pytest.mark.integration

ROBOTS = [("mf01", "r01"), ("hf02", "r02"), ("bc03", "r03"), ("vf01", "r04")]


class Stream(threading.Thread):
    """Publishes ``per_robot`` frames for each robot, ``rate`` frames/s per robot (``burst`` times
    that between ``burst_at`` and ``burst_until`` seconds into the stream)."""

    def __init__(self, pub: Publisher, topics: Topics, per_robot: int, rate: float,
                 robots: list[tuple[str, str]] = ROBOTS, *, burst: float = 1.0, burst_at: float = 0.0,
                 burst_until: float = 0.0) -> None:
        super().__init__(daemon=True)
        self.pub, self.topics, self.rate = pub, topics, rate
        self.burst, self.burst_at, self.burst_until = burst, burst_at, burst_until
        self.frames: list[list[Frame]] = [frames_for(s, r, per_robot) for s, r in robots]
        self.expected = {r: per_robot for _, r in robots}
        self.sent = 0
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            start = time.monotonic()
            due = 0.0  # seconds into the stream when the next round is due
            for i in range(len(self.frames[0])):
                for fs in self.frames:
                    self.pub.send(self.topics, [fs[i]])
                    self.sent += 1
                factor = self.burst if self.burst_at <= due < self.burst_until else 1.0
                due += 1.0 / (self.rate * factor)
                delay = start + due - time.monotonic()
                if delay > 0:
                    time.sleep(delay)
        except BaseException as exc:  # noqa: BLE001
            self.error = exc

    def finish(self) -> None:
        self.join(120)
        assert self.error is None, self.error
        self.pub.flush(120)

    def land(self, db: SyncInflux, proc: IngestProcess) -> None:
        """Finish, wait for every point sent to be stored, SIGTERM ``proc``, check every robot's seqs."""
        self.finish()
        wait_until(lambda: telemetry_count(db) >= self.sent, 60, f"{self.sent} points")
        assert proc.terminate() == 0, proc.log()
        assert_exactly_once(db, self.expected)


def _args(broker_url: str, influx_url: str, db: str, prefix: str, tmp_path: Path, *extra: str) -> list[str]:
    return ["--mqtt-url", broker_url, "--influx-url", influx_url, "--influx-db", db, "--topic-prefix", prefix,
            "--client-id", f"ing-{prefix.split('/')[0]}", "--spool-dir", str(tmp_path / "spool"),
            "--batch-ms", "50", "--log-level", "info", *extra]


def test_sigkill_mid_stream_loses_nothing(mosquitto: Mosquitto, influxd: Influxd, influx_db: SyncInflux,
                                          prefix: str, tmp_path: Path,
        ingest_process: Callable[..., IngestProcess]) -> None:
    topics = Topics(prefix)
    proc = ingest_process(*_args(mosquitto.url, influxd.url, influx_db.db, prefix, tmp_path))
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


def test_sigkill_mid_alert_keeps_each_alerts_id(mosquitto: Mosquitto, influxd: Influxd, influx_db: SyncInflux,
                                               prefix: str, tmp_path: Path,
        ingest_process: Callable[..., IngestProcess]) -> None:
    """The ingestor is killed as soon as a methane alarm is out, its readings still past the level
    and the rest (its clear, a CO alarm and its clear) to come; started again, it takes up what was retained,
    warms up on what was stored, and is sent again what it had not acknowledged. An integrator
    deduplicating by ``alert_id`` sees each alarm once: every event of one alarm under one id,
    the two alarms under two."""
    topics = Topics(prefix)
    args = _args(mosquitto.url, influxd.url, influx_db.db, prefix, tmp_path)
    integrator = Collector(mosquitto.url, topics.all_alert_events)
    pub = Publisher(mosquitto.url)
    frames = frames_for("mf01", "r01", 60, t0=time.time_ns() - 60 * 200_000_000, step_ns=200_000_000)
    for f in frames:
        f.readings["ch4_t1"], f.readings["co"] = 0.3, 5.0
    for f in frames[17:20]:
        f.readings["ch4_t1"] = 1.7
    for f in frames[40:43]:
        f.readings["co"] = 30.0

    def alarms() -> list[dict]:
        return [e for e in alert_events_of(integrator, topics) if e["detector"] == "gas_limit"]

    proc = ingest_process(*args)
    wait_until(lambda: "connected to the broker" in proc.log(), 30, "ingest to connect")
    pub.send(topics, frames[:19])
    wait_until(lambda: any(e["state"] == "raised" for e in alarms()), 20, "the methane alarm")
    proc.kill()
    pub.send(topics, frames[19:])  # queued in the ingestor's session while it is down
    pub.flush()
    proc.start()
    wait_until(lambda: {e["channel"] for e in alarms() if e["state"] == "cleared"} == {"ch4_t1", "co"}, 30,
               "both alarms cleared")
    wait_until(lambda: telemetry_count(influx_db) >= 60, 30, "60 points")
    time.sleep(1.0)  # anything the restart would send again has been published
    assert proc.terminate() == 0, proc.log()
    events = alarms()
    ids = {ch: {e["alert_id"] for e in events if e["channel"] == ch} for ch in ("ch4_t1", "co")}
    assert all(len(v) == 1 for v in ids.values()), ids
    assert ids["ch4_t1"] != ids["co"]
    assert {e["first_ts"] for e in events if e["channel"] == "ch4_t1"} == {frames[17].ts}
    assert not [k for k in retained_active(mosquitto.url, topics) if ".gas_limit." in k]
    assert_exactly_once(influx_db, {"r01": 60})
    integrator.close()
    pub.close()


def test_influxd_stopped_30s_mid_stream_spools_and_drains(mosquitto: Mosquitto, fresh_influxd: Influxd,
                                                         prefix: str, tmp_path: Path,
        ingest_process: Callable[..., IngestProcess]) -> None:
    db = SyncInflux(fresh_influxd.url, "mw")
    db.ensure_db()
    topics = Topics(prefix)
    proc = ingest_process(*_args(mosquitto.url, fresh_influxd.url, "mw", prefix, tmp_path))
    wait_until(lambda: "connected to the broker" in proc.log(), 30, "ingest to connect")
    pub = Publisher(mosquitto.url)
    stream = Stream(pub, topics, per_robot=1900, rate=50)   # 200 frames/s for 38 s
    stream.start()
    time.sleep(3)
    assert telemetry_count(db) > 0
    fresh_influxd.stop()
    time.sleep(30)
    assert proc.alive, proc.log()
    assert "spooling" in proc.log()
    spooled = sum(1 for _ in (tmp_path / "spool").glob("seg-*.spool"))
    assert spooled >= 1, "nothing reached the spool during the outage"
    fresh_influxd.start()
    stream.finish()
    wait_until(lambda: telemetry_count(db) >= stream.sent, 60, f"{stream.sent} points after the outage")
    assert proc.terminate() == 0, proc.log()
    assert "InfluxDB is back" in proc.log()
    assert_exactly_once(db, stream.expected)
    assert not list((tmp_path / "spool").glob("seg-*.spool")), "spool not drained"
    pub.close()
    db.close()


def test_mosquitto_restarted_mid_stream(fresh_broker: Mosquitto, influxd: Influxd, influx_db: SyncInflux,
                                        prefix: str, tmp_path: Path,
        ingest_process: Callable[..., IngestProcess]) -> None:
    topics = Topics(prefix)
    proc = ingest_process(*_args(fresh_broker.url, influxd.url, influx_db.db, prefix, tmp_path))
    wait_until(lambda: "connected to the broker" in proc.log(), 30, "ingest to connect")
    pub = Publisher(fresh_broker.url)
    stream = Stream(pub, topics, per_robot=1200, rate=200)   # 800 frames/s for 6 s
    stream.start()
    time.sleep(2)
    fresh_broker.stop()       # SIGTERM: mosquitto saves its persistence file on the way out
    time.sleep(1.0)
    fresh_broker.start()
    stream.finish()
    wait_until(lambda: telemetry_count(influx_db) >= stream.sent, 60, f"{stream.sent} points")
    assert proc.terminate() == 0, proc.log()
    assert "session resumed" in proc.log()
    assert_exactly_once(influx_db, stream.expected)
    pub.close()


def test_burst_of_ten_times_the_rate(mosquitto: Mosquitto, influxd: Influxd, influx_db: SyncInflux,
                                     prefix: str, tmp_path: Path,
        ingest_process: Callable[..., IngestProcess]) -> None:
    topics = Topics(prefix)
    proc = ingest_process(*_args(mosquitto.url, influxd.url, influx_db.db, prefix, tmp_path))
    wait_until(lambda: "connected to the broker" in proc.log(), 30, "ingest to connect")
    pub = Publisher(mosquitto.url)
    # 4 robots at 50 frames/s (200/s), 2000/s from 1.5 s to 3.5 s, then 200/s again
    stream = Stream(pub, topics, per_robot=1300, rate=50, burst=10, burst_at=1.5, burst_until=3.5)
    t0 = time.monotonic()
    stream.start()
    stream.finish()
    assert time.monotonic() - t0 < 12
    stream.land(influx_db, proc)
    pub.close()


def test_5g_outage_backlog_is_stored_and_marked_late(mosquitto: Mosquitto, influxd: Influxd,
                                                      influx_db: SyncInflux, prefix: str, tmp_path: Path,
                                                      ingest_process: Callable[..., IngestProcess]) -> None:
    """Two robots lose their link for 3 s and buffer. Robot ra sends its backlog first, oldest
    first, in arrays of 20 frames; robot rb resumes live first and sends the backlog after it."""
    topics = Topics(prefix)
    proc = ingest_process(*_args(mosquitto.url, influxd.url, influx_db.db, prefix, tmp_path, "--late-after", "1"))
    wait_until(lambda: "connected to the broker" in proc.log(), 30, "ingest to connect")
    pub = Publisher(mosquitto.url)
    step = 50_000_000  # 20 frames a second
    t0 = time.time_ns()
    a = frames_for("mf02", "ra", 200, t0=t0, step_ns=step)
    b = frames_for("hf01", "rb", 200, t0=t0, step_ns=step)

    def live(i: int) -> None:
        wait = (t0 + i * step - time.time_ns()) / 1e9
        if wait > 0:
            time.sleep(wait)

    for i in range(20):                 # 1 s live
        live(i)
        pub.send(topics, [a[i]])
        pub.send(topics, [b[i]])
    live(80)                            # 3 s of outage: frames 20..79 are buffered on the robots
    pub.send(topics, a[20:80], per_message=20)
    for i in range(80, 90):             # rb: live first
        live(i)
        pub.send(topics, [b[i]])
    pub.send(topics, b[20:80], per_message=20)
    for i in range(90, 120):
        live(i)
        pub.send(topics, [b[i]])
    pub.send(topics, a[80:120], per_message=1)
    pub.flush()
    expected = {"ra": 120, "rb": 120}
    wait_until(lambda: telemetry_count(influx_db) >= 240, 30, "240 points")
    assert proc.terminate() == 0, proc.log()
    assert_exactly_once(influx_db, expected)

    def late(robot: str, lo: int, hi: int) -> int:
        rows = influx_db.query(f'SELECT count("late") FROM "telemetry" WHERE "robot" = \'{robot}\' '
                               f'AND "seq" >= {lo} AND "seq" < {hi}')
        return int(rows[0]["count"]) if rows else 0

    assert late("rb", 20, 80) == 60                    # filled a seq gap: all late
    assert late("rb", 0, 20) == 0 and late("rb", 80, 120) == 0
    assert 40 <= late("ra", 20, 80) <= 60              # behind the clock by more than 1 s
    assert late("ra", 0, 20) == 0
    pub.close()
