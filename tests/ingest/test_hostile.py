"""What a hostile or broken client sends, against a real ``minewatch ingest``, mosquitto (with the
shipped packet limit of 16 MiB) and influxd: every bad message is dead-lettered once, small, with
its reason; the ingestor keeps its broker connection; nothing good is lost; no InfluxDB shard is
made out of its time."""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable
from pathlib import Path

import msgspec
import pytest

from minewatch.influx import SyncInflux
from minewatch.schema import DeadLetter
from minewatch.services import Influxd, Mosquitto
from minewatch.topics import Topics
from minewatch.wire import encode_frames

from tests.ingest.helpers import (Collector, IngestProcess, Publisher, assert_exactly_once, frames_for,
                                  telemetry_count, wait_until)

pytestmark = pytest.mark.integration

_NS = 1_000_000_000
WEEK = 7 * 86_400 * _NS


def _args(mosquitto: Mosquitto, influxd: Influxd, db: SyncInflux, prefix: str, tmp_path: Path, *extra: str) -> list[str]:
    return ["--mqtt-url", mosquitto.url, "--influx-url", influxd.url, "--influx-db", db.db, "--topic-prefix", prefix,
            "--client-id", f"ing-{prefix.split('/')[0]}", "--spool-dir", str(tmp_path / "spool"), "--batch-ms", "50",
            "--warmup", "0", *extra]


def _letters(col: Collector) -> list[DeadLetter]:
    return [DeadLetter.model_validate_json(p) for t, p, _, _ in col.take() if "/deadletter/" in t]


def _connects(proc: IngestProcess) -> int:
    return proc.log().count("connected to the broker (session")


@pytest.mark.parametrize("limit", [None, "12000000"], ids=["over-the-size-limit", "within-it-not-json"])
def test_poison_message_is_deadlettered_once_and_the_connection_stays(
        mosquitto: Mosquitto, influxd: Influxd, influx_db: SyncInflux, prefix: str, tmp_path: Path,
        ingest_process: Callable[..., IngestProcess], limit: str | None) -> None:
    """9,000,000 bytes of '"' from a robot on its own topic: escaped into a dead letter whole, it
    would be about 18 MB, over the broker's packet limit, and cost the ingestor its connection on
    every redelivery. It is dead-lettered once, a few kB, and acknowledged: after a restart of
    the ingestor it does not come again."""
    topics = Topics(prefix)
    extra = ("--max-message-bytes", limit) if limit else ()
    proc = ingest_process(*_args(mosquitto, influxd, influx_db, prefix, tmp_path, *extra))
    wait_until(lambda: "subscribed" in proc.log() or _connects(proc) >= 1, 30, "ingest to connect")
    col = Collector(mosquitto.url, f"{prefix}/deadletter/+")
    pub = Publisher(mosquitto.url)
    poison = b'"' * 9_000_000
    t0 = time.time_ns() - 60 * _NS
    pub.publish(topics.telemetry("mf01", "r01"), poison)
    pub.send(topics, frames_for("mf01", "r01", 20, t0=t0))
    pub.flush()
    wait_until(lambda: telemetry_count(influx_db) >= 20 and bool(_letters(col)), 60, "the good frames and the dead letter")
    time.sleep(2.0)  # a redelivery, were there one, would be here by now
    letters = _letters(col)
    assert len(letters) == 1, [d.reason for d in letters]
    d = letters[0]
    assert d.reason in (("not_json", "invalid") if limit else ("too_large",))
    assert d.payload_bytes == len(poison) and d.payload_truncated
    assert d.payload_sha256 == hashlib.sha256(poison).hexdigest()
    assert len(d.model_dump_json()) < 40_000
    assert _connects(proc) == 1 and "lost the broker" not in proc.log(), proc.log()
    assert proc.terminate() == 0, proc.log()

    again = ingest_process(*_args(mosquitto, influxd, influx_db, prefix, tmp_path, *extra), name="again")
    wait_until(lambda: _connects(again) >= 1, 30, "ingest to connect again")
    pub.send(topics, frames_for("mf01", "r01", 5, start_seq=20, t0=t0 + 20 * _NS))
    pub.flush()
    wait_until(lambda: telemetry_count(influx_db) >= 25, 30, "the frames after the restart")
    time.sleep(1.0)
    assert len(_letters(col)) == 1, "the poison message came again: it was not acknowledged"
    assert again.terminate() == 0, again.log()
    assert_exactly_once(influx_db, {"r01": 25})
    col.close()
    pub.close()


def test_timestamps_out_of_range_are_deadlettered_and_make_no_shard(
        mosquitto: Mosquitto, influxd: Influxd, influx_db: SyncInflux, prefix: str, tmp_path: Path,
        ingest_process: Callable[..., IngestProcess]) -> None:
    """400 frames a week apart into the future in one message, frames of 2100 and of 1970, a
    status of 2100 and a message of too many frames: each is dead-lettered with its reason, the
    good frames around them are stored, and every shard of the database holds recent time."""
    topics = Topics(prefix)
    proc = ingest_process(*_args(mosquitto, influxd, influx_db, prefix, tmp_path, "--max-frames", "1000"))
    wait_until(lambda: _connects(proc) >= 1, 30, "ingest to connect")
    col = Collector(mosquitto.url, f"{prefix}/deadletter/+")
    pub = Publisher(mosquitto.url)
    now = time.time_ns()
    good = frames_for("hf02", "r02", 30, t0=now - 30 * _NS)
    future = [msgspec.structs.replace(f, ts=now + (i + 1) * WEEK)
              for i, f in enumerate(frames_for("hf02", "r02", 400, start_seq=1000))]
    y2100 = frames_for("hf02", "r02", 3, start_seq=2000, t0=4_102_444_800 * _NS)
    y1970 = frames_for("hf02", "r02", 3, start_seq=3000, t0=_NS)
    mixed = [*frames_for("hf02", "r02", 2, start_seq=30, t0=now - 2 * _NS),
             msgspec.structs.replace(frames_for("hf02", "r02", 1, start_seq=32)[0], ts=now + 60 * WEEK)]
    many = frames_for("hf02", "r02", 1001, start_seq=5000, t0=now - 40 * _NS, step_ns=1_000_000)
    pub.send(topics, good[:10])
    for fs in (future, y2100, y1970, many):
        pub.publish(topics.telemetry("hf02", "r02"), encode_frames(fs))
    pub.publish(topics.status("r02"), json.dumps({"robot_id": "r02", "online": True, "ts": 4_102_444_800 * _NS,
                                                  "scenario_id": "hf02"}).encode())
    pub.send(topics, good[10:])
    pub.publish(topics.telemetry("hf02", "r02"), encode_frames(mixed))
    pub.flush()
    wait_until(lambda: telemetry_count(influx_db) >= 32 and len(_letters(col)) >= 6, 30, "good frames, dead letters")
    time.sleep(1.0)
    reasons = sorted(d.reason for d in _letters(col))
    assert reasons == ["too_many_frames", *["ts_out_of_range"] * 5], reasons
    mixed_letter = next(d for d in _letters(col) if d.detail.startswith("1 of 3"))
    assert "2 taken" in mixed_letter.detail
    assert proc.terminate() == 0, proc.log()
    assert telemetry_count(influx_db) == 32
    assert_exactly_once(influx_db, {"r02": 32})
    shards = influx_db.shards()
    assert shards, "no shard at all: the good frames were not stored"
    for start, end in shards:  # none for the future, none for 1970 (a week's shard may start days back)
        assert now - 8 * 86_400 * _NS <= start <= time.time_ns(), (start, end, shards)
    col.close()
    pub.close()


def test_robots_outside_the_fleet_are_deadlettered_not_alerted(
        mosquitto: Mosquitto, influxd: Influxd, influx_db: SyncInflux, prefix: str, tmp_path: Path) -> None:
    """300 one-off robot ids, each a frame, an online status and then an offline one (its will):
    300 + 600 dead letters unknown_robot, no robot_offline alert, no retained alert; a fleet
    robot's frames are stored as before."""
    topics = Topics(prefix)
    proc = IngestProcess(tmp_path / "ingest.log", *_args(mosquitto, influxd, influx_db, prefix, tmp_path),
                         env={"MINEWATCH_ROBOTS": "fleet"}).start()
    try:
        wait_until(lambda: _connects(proc) >= 1, 30, "ingest to connect")
        col = Collector(mosquitto.url, f"{prefix}/deadletter/+", f"{prefix}/alerts/#", f"{prefix}/incidents/#")
        pub = Publisher(mosquitto.url)
        now = time.time_ns()
        n = 300
        for i in range(n):
            rid = f"x{i:04d}"
            pub.send(topics, frames_for("bc01", rid, 1, t0=now - 5 * _NS))
            for online in (True, False):
                pub.publish(topics.status(rid), json.dumps({"robot_id": rid, "online": online,
                                                            "scenario_id": "bc01"}).encode())
        pub.send(topics, frames_for("bc01", "r04", 10, t0=now - 10 * _NS))
        pub.flush()
        wait_until(lambda: len(_letters(col)) >= 3 * n and telemetry_count(influx_db) >= 10, 60, "dead letters")
        time.sleep(1.5)
        letters = _letters(col)
        assert len(letters) == 3 * n and {d.reason for d in letters} == {"unknown_robot"}
        alerts = [json.loads(p) for t, p, _, _ in col.take() if "/alerts/" in t and p]
        assert not [a for a in alerts if a.get("robot_id", "").startswith("x")], alerts[:3]
        assert telemetry_count(influx_db) == 10
    finally:
        if proc.alive:
            assert proc.terminate() == 0, proc.log()


def test_a_flood_of_new_channel_names_is_refused_and_the_log_stays_short(
        mosquitto: Mosquitto, influxd: Influxd, influx_db: SyncInflux, prefix: str, tmp_path: Path,
        ingest_process: Callable[..., IngestProcess]) -> None:
    """One frame with 4,000 new reading names is refused whole (too_many_channels); a frame with a
    few new names is stored as before; 2,000 dead letters in a burst make some tens of log lines."""
    topics = Topics(prefix)
    proc = ingest_process(*_args(mosquitto, influxd, influx_db, prefix, tmp_path))
    wait_until(lambda: _connects(proc) >= 1, 30, "ingest to connect")
    col = Collector(mosquitto.url, f"{prefix}/deadletter/+")
    pub = Publisher(mosquitto.url)
    now = time.time_ns()
    base = frames_for("mf01", "r01", 3, t0=now - 10 * _NS)
    flood = msgspec.structs.replace(base[0], readings={**base[0].readings, **{f"x{i}": 1.0 for i in range(4000)}})
    few = msgspec.structs.replace(base[1], readings={**base[1].readings, "extra_temp": 21.5, "extra_hum": 80.0})
    pub.send(topics, [flood])
    pub.send(topics, [few, base[2]])
    for _ in range(2000):
        pub.publish(topics.telemetry("mf01", "r01"), b"{")
    pub.flush()
    wait_until(lambda: telemetry_count(influx_db) >= 2 and len(_letters(col)) >= 2001, 60, "frames and dead letters")
    letters = _letters(col)
    assert [d.reason for d in letters].count("too_many_channels") == 1 and len(letters) == 2001
    rows = influx_db.query('SELECT "extra_temp" FROM "telemetry" WHERE "robot" = \'r01\'')
    assert [r["extra_temp"] for r in rows] == [21.5]
    assert proc.terminate() == 0, proc.log()
    whole = proc.log_path.read_text(errors="replace")
    assert 0 < whole.count("dead letter: ") <= 25, whole[-2000:]


def test_the_detectors_watch_only_the_catalogues_channels() -> None:
    from ingest.pipeline import catalogue_only as _catalogue_only

    fs = frames_for("mf01", "r01", 2)
    assert _catalogue_only(fs) is fs  # a robot's own frames: untouched, not copied
    extra = [msgspec.structs.replace(fs[0], readings={**fs[0].readings, "x1": 5.0, "x2": None}), fs[1]]
    out = _catalogue_only(extra)
    assert out[0].readings == fs[0].readings and out[1] is fs[1]
    assert out[0].seq == fs[0].seq and out[0].ts == fs[0].ts
