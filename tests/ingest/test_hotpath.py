"""The ingestor's hot path against its references: ``decode_frames_on`` against ``decode_frames``
plus the topic check, ``TelemetryLines.format_many`` against ``TelemetryLines.format``."""

from __future__ import annotations

import json
import math

import msgspec
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ingest.lines import TelemetryLines
from minewatch.catalogue import SCENARIOS
from minewatch.influx import SyncInflux
from minewatch.wire import Frame, FrameError, FramesOnTopic, LinkInfo, WaveBlock, decode_frames, decode_frames_on

# -- decoding --------------------------------------------------------------------------------------
_TOPIC_IDS = ["mf01", "r01", "r.2-x_", "bad id", "r01\n", "", "x" * 65]
_id = st.one_of(st.sampled_from(_TOPIC_IDS), st.from_regex(r"[A-Za-z0-9_.-]{1,3}", fullmatch=True))
_num = st.one_of(st.floats(allow_nan=False, allow_infinity=False), st.integers(-2**64, 2**64))
_frame = st.fixed_dictionaries(
    {"robot_id": _id, "scenario_id": _id, "seq": st.integers(-2, 2**64), "ts": st.integers(-2, 2**64)},
    optional={
        "readings": st.dictionaries(st.sampled_from(["ch4", "co", "o2", "x y"]),
                                    st.one_of(st.none(), _num, st.just("1"), st.booleans())),
        "battery": _num, "pos_m": st.one_of(st.none(), _num),
        "link": st.fixed_dictionaries({"latency_ms": _num, "rssi_dbm": _num}, optional={"loss": _num}),
        "waveforms": st.dictionaries(st.just("vib"), st.fixed_dictionaries(
            {"rate_hz": st.floats(0, 2e6), "data": st.just("AAAAAA==")},
            optional={"dtype": st.sampled_from(["f4", "i2", "f8"]), "scale": _num})),
        "colour": st.just(1),
    },
)


def _payload(frames: list[dict], as_array: bool, huge: bool) -> bytes:
    body = json.dumps(frames if as_array or len(frames) != 1 else frames[0]).encode()
    return body.replace(b'"readings":{', b'"readings":{"big":1e999,', 1) if huge else body


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(frames=st.lists(_frame, max_size=3), as_array=st.booleans(), huge=st.booleans(),
       topic=st.tuples(st.sampled_from(["mf01", "bad id", "r01\n", "s"]), st.sampled_from(["r01", "r01\n", "", "x"])),
       stamp_topic=st.booleans(), raw=st.one_of(st.none(), st.binary(max_size=20)))
def test_decode_frames_on_vouches_for_exactly_what_decode_frames_accepts_on_that_topic(
        frames: list[dict], as_array: bool, huge: bool, topic: tuple[str, str], stamp_topic: bool,
        raw: bytes | None) -> None:
    sid, rid = topic
    if stamp_topic:  # mostly frames of the topic's robot, so the accepting side is exercised too
        for f in frames:
            f["scenario_id"], f["robot_id"] = sid, rid
    payload = raw if raw is not None else _payload(frames, as_array, huge)
    try:
        strict = decode_frames(payload)
    except FrameError:
        strict = None
    fast = decode_frames_on(payload, sid, rid)
    on_topic = strict is not None and all(f.scenario_id == sid and f.robot_id == rid for f in strict)
    assert (fast is not None) == on_topic, payload
    if fast is not None:
        assert strict is not None
        assert all(isinstance(f, Frame) for f in fast)
        assert msgspec.to_builtins(fast) == msgspec.to_builtins(strict)
    known = _KNOWN.decode(payload, sid, rid)
    assert (known is not None) == (fast is not None and all(set(f.readings) <= _KNOWN.names for f in fast)), payload
    if known is not None:
        assert msgspec.to_builtins(known) == msgspec.to_builtins(strict)


_KNOWN = FramesOnTopic(["ch4", "co"])


def test_decode_frames_on_examples() -> None:
    good = b'{"robot_id":"r01","scenario_id":"mf01","seq":3,"ts":5,"readings":{"co":3},"battery":80}'
    [f] = decode_frames_on(good, "mf01", "r01")  # type: ignore[misc]
    assert f.readings == {"co": 3.0} and type(f.readings["co"]) is float and f.battery == 80.0
    assert decode_frames_on(good, "mf01", "r02") is None           # another robot's topic
    assert decode_frames_on(good.replace(b"r01", b"r01\\n"), "mf01", "r01\n") is None  # not an id
    with pytest.raises(FrameError) as e:                            # ... and decode_frames agrees
        decode_frames(good.replace(b"r01", b"r01\\n"))
    assert e.value.reason == "invalid"
    assert decode_frames_on(good.replace(b"3}", b"1e999}"), "mf01", "r01") is None
    with pytest.raises(FrameError) as e:
        decode_frames(good.replace(b"3}", b"1e999}"))
    assert e.value.reason == "invalid"  # "Number out of range": readings are always finite
    assert decode_frames_on(b"[]", "mf01", "r01") is None and decode_frames_on(b"", "mf01", "r01") is None
    dec = FramesOnTopic()
    assert dec.decode(good, "mf01", "r01") is None        # "co" not known yet
    dec.learn(["co"])
    assert msgspec.to_builtins(dec.decode(good, "mf01", "r01")) == msgspec.to_builtins(decode_frames(good))
    capped = FramesOnTopic(["a"], max_names=1)
    capped.learn(["co"])                                   # past the cap: not learnt, still correct
    assert capped.names == {"a"} and capped.decode(good, "mf01", "r01") is None


# -- formatting ------------------------------------------------------------------------------------
_EDGE = [0.0, -0.0, 3.0, -3.0, 1e-4, 0.00012, 9999999999999998.0, 1e15, 123456.789, -84.0, 0.1, 1 / 3]
_OUTSIDE = [1e-300, 1.7976931348623157e308, -1.7976931348623157e308, 5e-324, 1e16, 1e22, 1e-5, 3e-7, -2.5e-9,
            0.00001, 1e-10]
_in_range = st.one_of(st.sampled_from(_EDGE), st.floats(1e-4, 1e16, exclude_max=True),
                      st.floats(-1e16, -1e-4, exclude_min=True))
_any_float = st.one_of(_in_range, st.sampled_from(_OUTSIDE),
                       st.floats(allow_nan=False, allow_infinity=False))
_channels = st.sampled_from(["ch4", "ch4_t0", "co", "o2", "t", "ws", "a.b-c", "e1", "x" * 64])


def _frames(value: st.SearchStrategy[float]) -> st.SearchStrategy[list[Frame]]:
    link = st.builds(LinkInfo, latency_ms=value, rssi_dbm=value, loss=st.just(0.0))
    one = st.builds(
        Frame, robot_id=st.sampled_from(["r01", "r02", "lat.x-1"]), scenario_id=st.sampled_from(sorted(SCENARIOS)),
        seq=st.integers(0, 2**63 - 1), ts=st.integers(0, 2**63 - 1),
        readings=st.dictionaries(_channels, st.one_of(value, st.none()), max_size=12),
        pos_m=st.one_of(st.none(), value), battery=st.one_of(st.none(), value), link=st.one_of(st.none(), link),
        waveforms=st.one_of(st.just({}), st.just({"vib": WaveBlock(rate_hz=1000.0, data="AAAA")})))
    return st.lists(one, max_size=30)


@settings(max_examples=300, deadline=None)
@given(data=st.data())
def test_format_many_is_format_byte_for_byte(data: st.DataObject) -> None:
    frames = data.draw(_frames(_in_range))
    late = data.draw(st.lists(st.booleans(), min_size=len(frames), max_size=len(frames)))
    fmt = TelemetryLines()
    assert fmt.format_many(frames, late) == [fmt.format(f, is_late) for f, is_late in zip(frames, late)]


def _fields(line: str) -> tuple[str, list[tuple[str, object]], str]:
    head, fields, ts = line.split(" ")
    out: list[tuple[str, object]] = []
    for kv in fields.split(","):
        k, v = kv.split("=")
        if v == "true" or v.endswith("i"):
            out.append((k, v))                         # booleans and integers: the text itself
        else:
            x = float(v)
            out.append((k, (x, math.copysign(1.0, x))))  # floats: the value, and the sign of a zero
    return head, out, ts


@settings(max_examples=300, deadline=None)
@given(data=st.data())
def test_format_many_writes_the_same_values_for_any_float(data: st.DataObject) -> None:
    frames = data.draw(_frames(_any_float))
    late = data.draw(st.lists(st.booleans(), min_size=len(frames), max_size=len(frames)))
    fmt = TelemetryLines()
    many = fmt.format_many(frames, late)
    ref = [fmt.format(f, is_late) for f, is_late in zip(frames, late)]
    assert [_fields(ln) for ln in many] == [_fields(ln) for ln in ref]
    for ln in many:  # every float keeps a decimal point or an exponent: never read as an integer
        for kv in ln.split(" ")[1].split(","):
            v = kv.split("=")[1]
            assert v == "true" or v.endswith("i") or "." in v or "e" in v, ln


def test_format_many_examples() -> None:
    fmt = TelemetryLines()
    f = Frame(robot_id="r01", scenario_id="mf01", seq=7, ts=1_795_852_800_000_000_123,
              readings={"ch4_t1": 0.41, "co": 3.0, "o2": None}, battery=76.5, pos_m=12.0,
              link=LinkInfo(latency_ms=14.2, rssi_dbm=-78.0))
    bare = Frame(robot_id="r02", scenario_id="pr01", seq=0, ts=0)
    assert fmt.format_many([f, bare, f], [True, False, False]) == [
        fmt.format(f, True), "telemetry,robot=r02,scenario=pr01,scenario_kind=" + SCENARIOS["pr01"].kind.value
        + " seq=0i 0", fmt.format(f)]
    assert fmt.format_many([], []) == []


@pytest.mark.integration
def test_influxdb_reads_format_many_floats_as_format_ones(influx_db: SyncInflux) -> None:
    """Outside 1e-4..1e16 the two write different text for one float64: InfluxDB reads both alike."""
    fmt = TelemetryLines()
    values = _OUTSIDE + [-0.0, 3.0, 0.1]
    frames = [Frame(robot_id=f"r{i}", scenario_id="mf01", seq=i, ts=1_000 + i, readings={"v": v})
              for i, v in enumerate(values)]
    many = fmt.format_many(frames, [False] * len(frames))
    assert many != [fmt.format(f) for f in frames]  # the test is about the lines that differ
    influx_db.write(many)
    rows = influx_db.query('SELECT "v", "seq" FROM "telemetry"')
    got = {int(r["seq"]): r["v"] for r in rows}
    assert got == dict(enumerate(values))
    kinds = {r["fieldKey"]: r["fieldType"] for r in influx_db.query('SHOW FIELD KEYS FROM "telemetry"')}
    assert kinds == {"v": "float", "seq": "integer"}
