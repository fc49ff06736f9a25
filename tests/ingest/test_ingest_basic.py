"""Frames published with paho land in InfluxDB exactly once; bad ones go to the dead-letter topic."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from minewatch.influx import SyncInflux
from minewatch.services import Influxd, Mosquitto
from minewatch.topics import Topics
from minewatch.wire import encode_frame

from tests.ingest.helpers import (Collector, Publisher, assert_exactly_once, frames_for, ingestor_in_process,
                                  telemetry_count, wait_until, ingest_settings)

pytestmark = pytest.mark.integration


def test_frames_stored_exactly_once_and_bad_ones_deadlettered(mosquitto: Mosquitto, influxd: Influxd,
                                                              influx_db: SyncInflux, prefix: str,
                                                              tmp_path: Path) -> None:
    settings = ingest_settings(mosquitto.url, influxd.url, influx_db, prefix, tmp_path)
    topics = Topics(prefix)
    dead = Collector(mosquitto.url, topics.all_deadletter)
    pub = Publisher(mosquitto.url)
    with ingestor_in_process(settings, client_id=f"ing-{prefix}", batch_ms=50) as ing:
        pub.send(topics, frames_for("mf01", "r01", 300))
        pub.send(topics, frames_for("bc03", "r02", 300), per_message=25)   # backlog arrays
        pub.publish(topics.telemetry("mf01", "r01"), b"{not json")
        pub.publish(topics.telemetry("mf01", "r01"), b'{"robot_id": "r01", "scenario_id": "mf01"}')
        # robot r09 speaking on r01's topic
        pub.publish(topics.telemetry("mf01", "r01"), encode_frame(frames_for("mf01", "r09", 1)[0]))
        pub.flush()
        wait_until(lambda: telemetry_count(influx_db) >= 600, 30, "600 points")
        wait_until(lambda: len(dead.take()) >= 3, 10, "3 dead letters")
        assert ing.counts["deadlettered"] == 3  # type: ignore[attr-defined]
    assert_exactly_once(influx_db, {"r01": 300, "r02": 300})
    reasons = sorted(json.loads(p)["reason"] for _, p, _, _ in dead.take())
    assert reasons == ["invalid", "not_json", "topic_mismatch"]
    row = influx_db.query('SELECT * FROM "telemetry" WHERE "robot" = \'r02\' LIMIT 1')[0]
    assert row["scenario"] == "bc03" and row["scenario_kind"] == "belt" and row["seq"] == 0
    dead.close()
    pub.close()
