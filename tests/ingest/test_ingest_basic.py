"""Frames published with paho land in InfluxDB exactly once; bad ones go to the dead-letter topic."""

from __future__ import annotations

import json
from pathlib import Path

import msgspec
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
        # a topic whose robot level is no id: refused whether the frame agrees with it or not
        bad_topic = f"{prefix}/telemetry/mf01/bad id"
        pub.publish(bad_topic, encode_frame(msgspec.structs.replace(frames_for("mf01", "r01", 1)[0], robot_id="bad id")))
        pub.publish(bad_topic, encode_frame(frames_for("mf01", "r01", 1)[0]))
        pub.publish(topics.telemetry("zz99", "r01"), encode_frame(msgspec.structs.replace(
            frames_for("mf01", "r01", 1)[0], scenario_id="zz99")))
        f = frames_for("mf01", "r01", 1)[0]
        pub.publish(topics.telemetry("mf01", "r01"), encode_frame(msgspec.structs.replace(f, readings={"seq": 1.0})))
        # a channel the catalogue does not have is stored (the first message teaches the fast path)
        for aux in frames_for("mf01", "r03", 3):
            pub.publish(topics.telemetry("mf01", "r03"), encode_frame(msgspec.structs.replace(
                aux, readings={**aux.readings, "aux_t": 21.5})))
        pub.flush()
        wait_until(lambda: telemetry_count(influx_db) >= 603, 30, "603 points")
        wait_until(lambda: len(dead.take()) >= 7, 10, "7 dead letters")
        assert sum(ing.counters.deadlettered.values()) == 7  # type: ignore[attr-defined]
    assert_exactly_once(influx_db, {"r01": 300, "r02": 300, "r03": 3})
    letters = {json.loads(p)["topic"] + " " + json.loads(p)["reason"] for _, p, _, _ in dead.take()}
    r01 = topics.telemetry("mf01", "r01")
    assert letters == {f"{r01} not_json", f"{r01} invalid", f"{r01} topic_mismatch", f"{bad_topic} invalid",
                       f"{bad_topic} topic_mismatch", f"{topics.telemetry('zz99', 'r01')} unknown_scenario",
                       f"{r01} bad_channel"}
    assert influx_db.count("telemetry", "aux_t") == 3
    row = influx_db.query('SELECT * FROM "telemetry" WHERE "robot" = \'r02\' LIMIT 1')[0]
    assert row["scenario"] == "bc03" and row["scenario_kind"] == "belt" and row["seq"] == 0
    dead.close()
    pub.close()


def test_a_backlog_is_written_and_acknowledged_while_it_is_being_taken(mosquitto: Mosquitto, influxd: Influxd,
                                                                        influx_db: SyncInflux, prefix: str,
                                                                        tmp_path: Path) -> None:
    """A backlog of many batches (robots back from an outage, an ingestor restarted) flows
    through: batches are stored and acknowledged while the rest still waits to be taken (in the
    inbox, the socket or the broker's queue), not all at once when everything has been taken.
    Otherwise InfluxDB idles while the ingestor decodes, then the ingestor idles while InfluxDB
    writes, and the broker holds every message meanwhile."""
    settings = ingest_settings(mosquitto.url, influxd.url, influx_db, prefix, tmp_path)
    topics = Topics(prefix)
    robots = [("mf01", "r01"), ("hf02", "r02"), ("bc03", "r03"), ("vf01", "r04")]
    opts = {"client_id": f"ing-{prefix}", "batch_size": 1000, "restore_alerts": False}
    with ingestor_in_process(settings, **opts):
        pass  # the session exists: the broker keeps the backlog for it
    pub = Publisher(mosquitto.url)
    for sid, rid in robots:
        pub.send(topics, frames_for(sid, rid, 10_000), per_message=20)
    pub.flush()
    pub.close()
    sent = len(robots) * 10_000 // 20
    # (batches written or being written, acked, messages not yet taken: in the inbox, the socket or
    # the broker's queue). How soon a write is answered depends on InfluxDB's share of a busy
    # machine; that writes are under way while the backlog is still being taken does not.
    samples: list[tuple[int, int, int]] = []
    with ingestor_in_process(settings, **opts) as ing:
        def sample() -> bool:
            c = ing.counters  # type: ignore[attr-defined]
            samples.append((c.stored + ing.pipeline.inflight, c.acked, sent - c.messages))  # type: ignore[attr-defined]
            return c.stored >= 40_000
        wait_until(sample, 120, "40,000 points stored", interval=0.005)
    overlap = [s for s in samples if s[0] > 0 and s[2] > 0]
    assert len(overlap) >= 5, f"written while messages waited in {len(overlap)} of {len(samples)} samples"
    assert any(s[1] > 0 and s[2] > 0 for s in samples) or samples[-1][1] > 0, "nothing acknowledged"
    assert_exactly_once(influx_db, {rid: 10_000 for _, rid in robots})


def test_seq_counting_goes_on_across_a_restart(mosquitto: Mosquitto, influxd: Influxd, influx_db: SyncInflux,
                                               prefix: str, tmp_path: Path) -> None:
    """A restarted ingestor starts each robot at its last stored seq: frames stored before the
    restart and sent again count as duplicates, frames missed meanwhile as a gap."""
    settings = ingest_settings(mosquitto.url, influxd.url, influx_db, prefix, tmp_path)
    topics = Topics(prefix)
    frames = frames_for("mf01", "r01", 70)
    pub = Publisher(mosquitto.url)
    opts = {"client_id": f"ing-{prefix}", "batch_ms": 50}
    with ingestor_in_process(settings, **opts):
        pub.send(topics, frames[:50])
        pub.flush()
        wait_until(lambda: telemetry_count(influx_db) >= 50, 30, "50 points")
    with ingestor_in_process(settings, **opts) as ing:
        pub.send(topics, frames[45:60], per_message=5)   # 45-49 again: a robot resending its backlog
        pub.send(topics, frames[62:70])                  # 60 and 61 never come
        pub.flush()
        wait_until(lambda: telemetry_count(influx_db) >= 68, 30, "68 points")
        counts = ing.router.seq.counts  # type: ignore[attr-defined]
        assert (counts.duplicates, counts.gaps) == (5, 2)
        assert ing.router.seq.high("r01") == 69  # type: ignore[attr-defined]
    pub.close()
    seqs = sorted(int(r["seq"]) for r in influx_db.query('SELECT "seq" FROM "telemetry"'))
    assert seqs == [*range(60), *range(62, 70)]
