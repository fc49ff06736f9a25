"""The group's partitions and subjects (minewatch/group.py), and a unit's share of a mine."""

from __future__ import annotations

import zlib

import pytest

from minewatch.catalogue import SCENARIOS
from minewatch.group import (group_partition, history_subject, mine_prefix, parse_subject, partition_filter,
                             status_subject, telemetry_subject)


def test_partition_is_crc32_of_mine_and_scenario() -> None:
    for mine in ("m001", "m042", "north-7"):
        for sid in SCENARIOS:
            p = group_partition(mine, sid, 16)
            assert p == zlib.crc32(f"{mine}/{sid}".encode()) % 16 and 0 <= p < 16
    # one mine's scenarios spread over the partitions, not all in one
    assert len({group_partition("m001", sid, 16) for sid in SCENARIOS}) > 8
    with pytest.raises(ValueError):
        group_partition("m001", "mf01", 0)


def test_subjects_round_trip() -> None:
    s = telemetry_subject("m001", "mf01", "r07", 16)
    p = group_partition("m001", "mf01", 16)
    assert s == f"mw.m001.{p}.telemetry.mf01.r07"
    got = parse_subject(s)
    assert got is not None and (got.mine, got.part, got.kind, got.scenario_id, got.robot_id) == \
        ("m001", p, "telemetry", "mf01", "r07")
    assert got.topic(mine_prefix("m001")) == "minewatch/v1/mines/m001/telemetry/mf01/r07"
    h = parse_subject(history_subject("m001", "bc01", "r02", 16))
    assert h is not None and h.kind == "history" and h.topic("x/y") == "x/y/history/bc01/r02"
    st = parse_subject(status_subject("m001", "r07"))
    assert st is not None and (st.kind, st.part, st.robot_id) == ("status", -1, "r07")
    assert st.topic("x/y") == "x/y/status/r07"
    for bad in ("mw.m001.x.telemetry.mf01.r07", "mw.m001.3.alerts.mf01.r07", "nope", "mw.m001.status"):
        assert parse_subject(bad) is None
    assert partition_filter(5) == "mw.*.5.>"
    with pytest.raises(ValueError):
        telemetry_subject("M 1", "mf01", "r07", 16)
    dotted = parse_subject(telemetry_subject("m001", "mf01", "r.07", 16))  # a '.' in a level travels as '~'
    assert dotted is not None and dotted.robot_id == "r.07"
    with pytest.raises(ValueError):
        telemetry_subject("m001", "mf01", "r*07", 16)


def test_a_units_share_owns_its_partition_of_its_mine() -> None:
    from ingest.group_worker import MineShare

    share = MineShare(3, 8, "m001")
    owned = share.scenarios(SCENARIOS)
    assert owned == [sid for sid in SCENARIOS if group_partition("m001", sid, 8) == 3]
    assert MineShare(3, 8, "m002").scenarios(SCENARIOS) == \
        [sid for sid in SCENARIOS if group_partition("m002", sid, 8) == 3]
    assert not share.whole and str(share) == "m001:3/8" and share.tag == "m001-3of8"
    with pytest.raises(ValueError):
        MineShare(8, 8, "m001")
