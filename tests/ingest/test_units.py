"""Unit tests of the ingest parts that need no servers: seq tracking, spool, lines, partitions, 400s."""

from __future__ import annotations

import base64
import hashlib
import json
import random
from pathlib import Path

import pytest

from ingest.deadletter import EXCERPT_BYTES, DeadLetter
from ingest.lines import TelemetryLines
from ingest.partition import Partition, partition_of
from ingest.spool import Spool, SpoolFull
from ingest.writer import pick_rejected
from minewatch.catalogue import SCENARIOS
from minewatch.schema import DeadLetter as DeadLetterModel
from minewatch.wire import Frame, LinkInfo


def test_partition_parse_and_ownership() -> None:
    assert Partition.parse("1/3") == Partition(1, 3)
    for bad in ("3/3", "-1/2", "1", "a/b", "0/0"):
        with pytest.raises(ValueError):
            Partition.parse(bad)
    parts = [Partition(i, 3) for i in range(3)]
    for sid in SCENARIOS:
        owners = [p for p in parts if p.owns(sid)]
        assert len(owners) == 1 and owners[0].index == partition_of(sid, 3)
    assert all(len(p.scenarios(SCENARIOS)) > 5 for p in parts)  # CRC-32 spreads 31 scenarios fairly
    assert [p.owns(None) for p in parts] == [True, False, False]


def test_telemetry_line_layout() -> None:
    f = Frame(robot_id="r01", scenario_id="mf01", seq=7, ts=1_795_852_800_000_000_123,
              readings={"ch4_t1": 0.41, "co": 3.0, "o2": None}, battery=76.5, pos_m=12.0,
              link=LinkInfo(latency_ms=14.2, rssi_dbm=-78.0))
    ln = TelemetryLines().format(f, late=True)
    assert ln == ("telemetry,robot=r01,scenario=mf01,scenario_kind=mining_face ch4_t1=0.41,co=3.0,seq=7i,"
                  "battery=76.5,pos_m=12.0,latency_ms=14.2,rssi_dbm=-78.0,late=true 1795852800000000123")


def test_spool_appends_drains_in_order_and_survives_reopen(tmp_path: Path) -> None:
    s = Spool(tmp_path, max_bytes=1 << 20, segment_bytes=600)
    batches = [[f"m v={i}i,k={k}i {i * 10 + k}" for k in range(5)] for i in range(40)]
    for b in batches:
        s.append(b)
    assert s.points == 200 and len(list(tmp_path.glob("seg-*.spool"))) > 2
    first = s.peek(12)
    assert [ln for r in first for ln in r.lines] == [ln for b in batches[:3] for ln in b]
    s.consume(first)
    s.close()
    # a crash mid-append leaves a torn record: reopening cuts it off and keeps the rest
    last = sorted(tmp_path.glob("seg-*.spool"))[-1]
    with open(last, "ab") as fh:
        fh.write(b"MWS1\xff\x00\x00\x00garbage")
    s = Spool(tmp_path, max_bytes=1 << 20, segment_bytes=600)
    out: list[str] = []
    while s.pending:
        recs = s.peek(17)
        out += [ln for r in recs for ln in r.lines]
        s.consume(recs)
    # a partly drained segment is drained again from its start (rewrites land once)
    assert set(out) == {ln for b in batches for ln in b} - set() and out[-5:] == batches[-1]
    assert out.index(batches[-1][0]) > out.index(batches[10][0])
    assert not list(tmp_path.glob("seg-*.spool")) and s.bytes == 0
    s.append(["m v=1i 1"])
    assert list(s.iter_all()) == ["m v=1i 1"]


def test_spool_is_bounded(tmp_path: Path) -> None:
    s = Spool(tmp_path, max_bytes=2000)
    rng = random.Random(1)
    with pytest.raises(SpoolFull):
        for i in range(1000):
            s.append([f"m v={rng.random()!r},w={rng.random()!r} {i}"])
    assert 0 < s.bytes <= 2000


def test_pick_rejected_names_the_refused_lines() -> None:
    lines = ["telemetry,robot=r1 co=1.0,seq=1i 1", "telemetry,robot=r1 ch4=0.2,seq=2i 2", "bad line here",
             'alert_events,kind=gas message="co=5 high",alert_id="a" 3']
    msg = "unable to parse 'bad line here': invalid field format"
    assert pick_rejected(lines, msg) == [2]
    msg = ('partial write: field type conflict: input field "co" on measurement "telemetry" is type float, '
           'already exists as type string dropped=1')
    assert pick_rejected(lines, msg) == [0]
    assert pick_rejected(lines, "something else") == []


def test_deadletter_payload_keeps_bytes() -> None:
    d = json.loads(DeadLetter("not_json", "bad", "p/telemetry/a/b", b"\xff\x00").encode("0/1", 5))
    assert d == {"reason": "not_json", "detail": "bad", "topic": "p/telemetry/a/b", "payload": "/wA=",
                 "payload_encoding": "base64", "payload_bytes": 2, "payload_truncated": False,
                 "payload_sha256": hashlib.sha256(b"\xff\x00").hexdigest(), "ts": 5, "partition": "0/1"}
    raw = DeadLetter("x", "y", "t", "é".encode()).encode("1/2")
    d = json.loads(raw)
    assert d["payload"] == "é" and d["payload_encoding"] == "utf-8"
    DeadLetterModel.model_validate_json(raw)  # the contract's schema of the dead-letter topic


@pytest.mark.parametrize("payload", [b'"' * 9_000_000, "é".encode() * 3000, b"\xff" * 100_000, b"x" * 4096])
def test_deadletter_is_small_whatever_it_carries(payload: bytes) -> None:
    """A message at the broker's size limit, every byte escaped to two or more, still makes a dead
    letter of a few kB, which names the whole (size and hash) and says it is cut."""
    raw = DeadLetter("not_json", "bad " * 10_000, "p/telemetry/a/b", payload).encode("0/1", 5)
    d = DeadLetterModel.model_validate_json(raw)
    assert len(raw) < 4 * EXCERPT_BYTES + 4000
    assert d.payload_bytes == len(payload) and d.payload_sha256 == hashlib.sha256(payload).hexdigest()
    assert d.payload_truncated == (len(payload) > EXCERPT_BYTES)
    shown = d.payload.encode() if d.payload_encoding == "utf-8" else base64.b64decode(d.payload)
    assert payload.startswith(shown) and len(shown) >= min(len(payload), EXCERPT_BYTES - 3)




@pytest.mark.parametrize("data, why", [("!!!", "not base64"), (base64.b64encode(b"abc").decode(), "whole f4"),
                                       ("", "whole f4")])
def test_a_waveform_whose_data_is_not_samples_is_refused(data: str, why: str) -> None:
    from minewatch.wire import FrameError, decode_frames, decode_frames_on

    payload = json.dumps({"robot_id": "r01", "scenario_id": "mf01", "seq": 1, "ts": 1,
                          "waveforms": {"vib": {"rate_hz": 25600, "data": data}}}).encode()
    with pytest.raises(FrameError, match=why) as exc:
        decode_frames(payload)
    assert exc.value.reason == "bad_waveform"
    assert decode_frames_on(payload, "mf01", "r01") is None  # the hot path leaves it to the checked way
    good = base64.b64encode(b"\0" * 16).decode()
    assert decode_frames(payload.replace(f'"data": "{data}"'.encode(), f'"data": "{good}"'.encode()))
