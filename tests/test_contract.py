"""The contract: catalogue, topics, and the two decoders of a frame agreeing."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from minewatch.catalogue import BEARINGS, QUANTITIES, SCENARIOS, ScenarioKind
from minewatch.schema import TelemetryFrame
from minewatch.topics import Topics
from minewatch.wire import FrameError, decode_frames


def test_catalogue_has_the_31_scenarios_of_domain_section_7() -> None:
    assert len(SCENARIOS) == 31
    assert {s.id[:2] for s in SCENARIOS.values()} == {"mf", "hf", "lf", "vf", "bc", "pr", "ss", "ra", "gd", "cb", "ac"}
    groups = {s.kind.group for s in SCENARIOS.values()}
    assert {"faces", "headings", "fans", "belts", "pumps", "substations", "returns"} <= groups


def test_methane_limits_follow_the_regulation_table() -> None:
    face = SCENARIOS["mf01"].channel("ch4_t1").limits[0]
    assert face.level("alarm") == 1.0 and face.level("critical") == 1.5 and face.restore == 1.0
    t2 = SCENARIOS["mf01"].channel("ch4_t2").limits[0]
    assert t2.level("critical") == 1.0 and t2.level("alarm") is None
    ret = SCENARIOS["ra01"].channel("ch4").limits[0]
    assert ret.level("alarm") == 0.75 and ret.level("critical") is None
    assert SCENARIOS["cb01"].channel("ch4").limits[0].level("critical") == 1.5


def test_every_channel_has_a_known_quantity_and_a_normal_band_inside_its_limits() -> None:
    for s in SCENARIOS.values():
        for c in s.channels:
            q = QUANTITIES[c.quantity]
            lo, hi = c.normal
            assert q.low <= lo <= hi <= q.high, (s.id, c.name)
            for lim in c.limits:
                if lim.direction == "above":
                    assert hi < lim.lowest and lim.restore <= lim.lowest, (s.id, c.name)
                else:
                    assert lo >= lim.lowest and lim.restore >= lim.lowest, (s.id, c.name)
    assert all(isinstance(s.kind, ScenarioKind) for s in SCENARIOS.values())


def test_bearing_6205_orders_match_domain_section_4() -> None:
    o = BEARINGS["6205"].orders()
    assert o["ftf"] == pytest.approx(0.397, abs=1e-3)
    assert o["bpfo"] == pytest.approx(3.572, abs=1e-3)
    assert o["bpfi"] == pytest.approx(5.428, abs=1e-3)
    assert o["bsf"] == pytest.approx(2.322, abs=1e-3)


def test_topics_round_trip_and_refuse_wildcards() -> None:
    t = Topics("site/v1")
    assert t.parse_telemetry(t.telemetry("mf01", "r07")) == ("mf01", "r07")
    assert t.parse_status(t.status("r07")) == "r07"
    assert t.parse_alert(t.alert("mf01", "gas")) == ("event", "mf01", "gas")
    assert t.parse_alert(t.active("a.1")) == ("active", "a.1", "")
    assert t.parse_telemetry("other/v1/telemetry/mf01/r07") is None
    for bad in ("a/b", "+", "#", ""):
        with pytest.raises(ValueError):
            t.telemetry(bad, "r1")


_ident = st.from_regex(r"[A-Za-z0-9_.-]{1,8}", fullmatch=True)
_frame = st.fixed_dictionaries(
    {"robot_id": _ident, "scenario_id": _ident, "seq": st.integers(0, 2**40), "ts": st.integers(0, 2**62)},
    optional={
        "readings": st.dictionaries(_ident, st.one_of(st.none(), st.floats(-1e6, 1e6))),
        "battery": st.floats(-10, 110),
        "pos_m": st.floats(-1e4, 1e4),
        "link": st.fixed_dictionaries({"latency_ms": st.floats(-1, 100), "rssi_dbm": st.floats(-160, 5)}),
    },
)
_junk = st.one_of(_frame, st.dictionaries(st.text(max_size=5), st.one_of(st.integers(-2**40, 2**40), st.text(max_size=5)),
                                                  max_size=4))


@settings(max_examples=300, deadline=None)
@given(_junk)
def test_fast_decoder_accepts_exactly_what_the_pydantic_contract_accepts(obj: dict) -> None:
    import orjson

    payload = orjson.dumps(obj)
    try:
        TelemetryFrame.model_validate_json(payload)
        ok_pydantic = True
    except ValidationError:
        ok_pydantic = False
    try:
        decode_frames(payload)
        ok_fast = True
    except FrameError:
        ok_fast = False
    assert ok_fast == ok_pydantic, payload
