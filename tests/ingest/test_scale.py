"""Partitions side by side, Prometheus metrics, graceful shutdown, and InfluxDB refusing some lines."""

from __future__ import annotations

import json
import re
import time
from functools import partial
from typing import Any
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest

from ingest.partition import partition_of
from minewatch.catalogue import SCENARIOS
from minewatch.influx import SyncInflux
from minewatch.services import Influxd, Mosquitto, free_port
from minewatch.settings import Settings
from minewatch.topics import Topics

from tests.ingest.helpers import (Collector, IngestProcess, Publisher, assert_exactly_once, frames_for,
                                  ingestor_in_process, telemetry_count, wait_until)

pytestmark = pytest.mark.integration


def _connected(proc: Any) -> bool:
    return "connected to the broker" in proc.log()


def _metric(port: int, name: str) -> float:
    text = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=5).text
    m = re.search(rf"^{name}(?:{{[^}}]*}})? (\S+)$", text, re.M)
    assert m, f"{name} not in the metrics"
    return float(m.group(1))


def test_two_partitions_side_by_side_with_metrics_and_sigterm(mosquitto: Mosquitto, influxd: Influxd,
                                                              influx_db: SyncInflux, prefix: str, tmp_path: Path,
                                                              ingest_process: Callable[..., IngestProcess]) -> None:
    topics = Topics(prefix)
    by_part: dict[int, list[str]] = {0: [], 1: []}
    for sid in SCENARIOS:
        by_part[partition_of(sid, 2)].append(sid)
    robots = [(sid, f"p{i}{j}") for i in (0, 1) for j, sid in enumerate(by_part[i][:3])]
    ports = [free_port(), free_port()]

    def start(i: int) -> IngestProcess:
        return ingest_process("--mqtt-url", mosquitto.url, "--influx-url", influxd.url, "--influx-db", influx_db.db,
                              "--topic-prefix", prefix, "--partition", f"{i}/2", "--client-id", f"ing-{prefix}-{i}",
                              "--spool-dir", str(tmp_path / f"spool{i}"), "--metrics-port", str(ports[i]),
                              "--batch-ms", "50", "--no-detectors", name=f"ingest{i}")

    procs = [start(0), start(1)]
    for p in procs:
        wait_until(partial(_connected, p), 30, "ingest to connect")
    pub = Publisher(mosquitto.url)
    frames = {r: frames_for(s, r, 400) for s, r in robots}
    for i in range(200):
        for r in frames:
            pub.send(topics, [frames[r][i]])
    pub.flush()
    assert procs[1].terminate() == 0           # SIGTERM: stop reading, flush, acknowledge, exit 0
    assert "stopped" in procs[1].log()
    for i in range(200, 400):                  # partition 1's share waits in the broker meanwhile
        for r in frames:
            pub.send(topics, [frames[r][i]])
    pub.flush()
    procs[1] = start(1)
    wait_until(lambda: telemetry_count(influx_db) >= 400 * len(robots), 30, "every point")
    assert_exactly_once(influx_db, {r: 400 for _, r in robots})

    # partition 0 saw only its scenarios; its metrics say so
    assert _metric(ports[0], "minewatch_ingest_points_received_total") == 400 * 3
    assert _metric(ports[0], "minewatch_ingest_points_stored_total") == 400 * 3
    assert _metric(ports[0], "minewatch_ingest_influx_up") == 1
    assert _metric(ports[0], "minewatch_ingest_batch_latency_seconds_count") > 0
    wait_until(lambda: _metric(ports[1], "minewatch_ingest_points_received_total") >= 200 * 3, 10, "partition 1")
    for p in procs:
        assert p.terminate() == 0
    pub.close()


def test_lines_influx_refuses_are_deadlettered_and_the_rest_stored(mosquitto: Mosquitto, influxd: Influxd,
                                                                   influx_db: SyncInflux, prefix: str,
                                                                   tmp_path: Path) -> None:
    topics = Topics(prefix)
    frames = frames_for("ss01", "r07", 30, t0=time.time_ns())
    for f in frames[10:15]:
        f.readings["probe"] = 1.5          # an extra channel, which the database already holds as text
    cfg = Settings(mqtt_url=mosquitto.url, influx_url=influxd.url, influx_db=influx_db.db, topic_prefix=prefix,
                   data_dir=tmp_path / "data")
    dead = Collector(mosquitto.url, topics.deadletter("influx_rejected"))
    pub = Publisher(mosquitto.url)
    with ingestor_in_process(cfg, client_id=f"ing-{prefix}", detectors=False, batch_ms=500):
        # after the ingestor has set up the storage, so it lands in the same (default) retention policy
        influx_db.write([f'telemetry,robot=r00,scenario=ss01,scenario_kind=substation probe="text" {frames[0].ts}'])
        pub.send(topics, frames, per_message=30)
        pub.flush()
        wait_until(lambda: len(dead.take()) >= 5, 20, "5 dead letters")
        wait_until(lambda: telemetry_count(influx_db) >= 25, 20, "25 points")
    stored = sorted(int(r["seq"]) for r in influx_db.query('SELECT "seq" FROM "telemetry" WHERE "robot" = \'r07\''))
    assert stored == [*range(10), *range(15, 30)]
    letters = [json.loads(p) for _, p, _, _ in dead.take()]
    assert len(letters) == 5
    assert all(d["topic"] == topics.telemetry("ss01", "r07") and "probe" in d["detail"] for d in letters)
    seqs = [re.search(r"seq=(\d+)i", d["payload"]) for d in letters]
    assert sorted(int(m.group(1)) for m in seqs if m) == list(range(10, 15))
    dead.close()
    pub.close()
