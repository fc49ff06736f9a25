"""A stream with hypothesis-generated malformed frames mixed in: every good frame is stored, every
bad message is dead-lettered once with its payload, and the ingestor keeps going."""

from __future__ import annotations

import base64
import itertools
import json
import time
from pathlib import Path
from typing import Any

import msgspec
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ingest.lines import CHANNEL_RE, RESERVED_FIELDS
from minewatch.influx import SyncInflux
from minewatch.services import Influxd, Mosquitto
from minewatch.settings import Settings
from minewatch.topics import Topics
from minewatch.wire import FrameError, decode_frames, encode_frame

from tests.ingest.helpers import Collector, Publisher, frames_for, ingestor_in_process, wait_until

pytestmark = pytest.mark.integration

ROBOT, SCENARIO = "rx", "mf01"
_seq = itertools.count(10_000)


def _good() -> dict[str, Any]:
    f = frames_for(SCENARIO, ROBOT, 1, start_seq=next(_seq), t0=time.time_ns() - 10**12)[0]
    return msgspec.to_builtins(f)


def _mutate(kind: str, value: Any) -> bytes:
    d = _good()
    if kind == "drop":
        del d[value]
    elif kind == "seq":
        d["seq"] = value
    elif kind == "battery":
        d["battery"] = value
    elif kind == "reading_type":
        d["readings"]["co"] = value
    elif kind == "channel":
        d["readings"][value] = 1.0
    elif kind == "robot":
        d["robot_id"] = value
    elif kind == "extra":
        d[value] = 1
    elif kind == "rssi":
        d["link"]["rssi_dbm"] = value
    elif kind == "huge":
        return json.dumps(d).replace('"co": ', '"co": 1e999, "x": ', 1).encode()
    elif kind == "array":
        bad = _good()
        del bad["ts"]
        return json.dumps([_good(), bad]).encode()
    return json.dumps(d).encode()


def _is_bad(payload: bytes) -> bool:
    try:
        frames = decode_frames(payload)
    except FrameError:
        return True
    return any(f.robot_id != ROBOT or f.scenario_id != SCENARIO
               or any(k in RESERVED_FIELDS or not CHANNEL_RE.match(k) for k in f.readings) for f in frames)


_ids = st.from_regex(r"\A[a-z][a-z0-9]{0,6}\Z").filter(lambda s: s != ROBOT)
malformed = st.one_of(
    st.binary(max_size=120),
    st.tuples(st.just("drop"), st.sampled_from(["robot_id", "scenario_id", "seq", "ts"])).map(lambda a: _mutate(*a)),
    st.tuples(st.just("seq"), st.one_of(st.integers(max_value=-1), st.text(max_size=5), st.none())).map(
        lambda a: _mutate(*a)),
    st.tuples(st.just("battery"), st.one_of(st.integers(101, 10**6), st.integers(-10**6, -1))).map(
        lambda a: _mutate(*a)),
    st.tuples(st.just("reading_type"), st.one_of(st.text(max_size=5), st.booleans(), st.lists(st.integers(), max_size=2))
              ).map(lambda a: _mutate(*a)),
    st.tuples(st.just("channel"), st.sampled_from(["seq", "time", "bad key", "", "a,b", "x=y", "ü"])).map(
        lambda a: _mutate(*a)),
    st.tuples(st.just("robot"), _ids).map(lambda a: _mutate(*a)),
    st.tuples(st.just("extra"), st.sampled_from(["colour", "Seq", "readingz"])).map(lambda a: _mutate(*a)),
    st.tuples(st.just("rssi"), st.integers(1, 1000)).map(lambda a: _mutate(*a)),
    st.just("huge").map(lambda k: _mutate(k, None)),
    st.just("array").map(lambda k: _mutate(k, None)),
).filter(_is_bad)


def _text(payload: bytes) -> tuple[str, str]:
    try:
        return payload.decode("utf-8"), "utf-8"
    except UnicodeDecodeError:
        return base64.b64encode(payload).decode(), "base64"


def test_malformed_frames_are_deadlettered_and_good_ones_stored(mosquitto: Mosquitto, influxd: Influxd,
                                                                 influx_db: SyncInflux, prefix: str,
                                                                 tmp_path: Path) -> None:
    topics = Topics(prefix)
    topic = topics.telemetry(SCENARIO, ROBOT)
    cfg = Settings(mqtt_url=mosquitto.url, influx_url=influxd.url, influx_db=influx_db.db, topic_prefix=prefix,
                   data_dir=tmp_path / "data")
    dead = Collector(mosquitto.url, topics.all_deadletter)
    pub = Publisher(mosquitto.url)
    sent_good: list[int] = []
    sent_bad: list[bytes] = []

    with ingestor_in_process(cfg, client_id=f"ing-{prefix}", detectors=False) as ing:
        @settings(max_examples=6, deadline=None, suppress_health_check=[HealthCheck.too_slow])
        @given(bad=st.lists(malformed, min_size=1, max_size=25), good_every=st.integers(1, 4))
        def stream(bad: list[bytes], good_every: int) -> None:
            for i, payload in enumerate(bad):
                if i % good_every == 0:
                    f = frames_for(SCENARIO, ROBOT, 1, start_seq=next(_seq), t0=time.time_ns() - 10**12)[0]
                    pub.publish(topic, encode_frame(f))
                    sent_good.append(f.seq)
                pub.publish(topic, payload)
                sent_bad.append(payload)
            pub.flush()
            wait_until(lambda: len(dead.take()) >= len(sent_bad), 20, f"{len(sent_bad)} dead letters")

        stream()
        last = frames_for(SCENARIO, ROBOT, 1, start_seq=next(_seq), t0=time.time_ns() - 10**12)[0]
        pub.publish(topic, encode_frame(last))   # still taking frames after all that
        sent_good.append(last.seq)
        pub.flush()
        wait_until(lambda: influx_db.count("telemetry", "seq") >= len(sent_good), 20, f"{len(sent_good)} points")
        assert sum(ing.counters.deadlettered.values()) == len(sent_bad)  # type: ignore[attr-defined]

    stored = sorted(int(r["seq"]) for r in influx_db.query('SELECT "seq" FROM "telemetry"'))
    assert stored == sorted(sent_good)
    letters = [json.loads(p) for _, p, _, _ in dead.take()]
    assert sorted((d["payload"], d["payload_encoding"]) for d in letters) == sorted(_text(b) for b in sent_bad)
    assert all(d["topic"] == topic and d["reason"] and d["detail"] and d["partition"] == "0/1" for d in letters)
    reasons = {d["reason"] for d in letters}
    assert reasons <= {"not_json", "invalid", "empty", "bad_value", "topic_mismatch", "bad_channel"}
    dead.close()
    pub.close()
