"""Telemetry: latest values, downsampled history, CSV export; robots and live readings."""

from __future__ import annotations

import csv
import io
from collections.abc import Callable

import httpx
import pytest

from minewatch.influx import SyncInflux
from minewatch.schema import RobotStatus
from minewatch.wire import Frame, LinkInfo, encode_frame

from .conftest import S, T0, Api, Publisher, wait_for

pytestmark = pytest.mark.integration
N = 600  # ten minutes at 1 Hz, two robots


def ch4(i: int, robot: str) -> float:
    return round(0.2 + 0.001 * i + (0.05 if robot == "r02" else 0.0), 6)


def ts(i: int, robot: str) -> int:
    return T0 + i * S + (S // 2 if robot == "r02" else 0)


@pytest.fixture
def stored(influx_db: SyncInflux) -> SyncInflux:
    lines = []
    for i in range(N):
        for r in ("r01", "r02"):
            lines.append(f"telemetry,robot={r},scenario=mf01,scenario_kind=mining_face "
                         f"ch4_t1={ch4(i, r)},co={float(i % 7)},seq={i}i,battery=80.0 {ts(i, r)}")
    influx_db.write(lines)
    return influx_db


def test_history_is_downsampled_to_the_points_asked_for(stored: SyncInflux, api: Api) -> None:
    with api.client("integrator") as c:
        r = c.get("/telemetry/history", params={"scenario": "mf01", "robot": "r01", "channels": "ch4_t1,co",
                                                "start": "2026-11-28T08:00:00Z", "end": str(T0 + N * S),
                                                "points": 10})
        assert r.status_code == 200, r.text
        h = r.json()
        assert h["interval_ns"] == 60 * S and h["start"] == T0 and h["end"] == T0 + N * S
        s = {x["channel"]: x for x in h["series"]}
        assert s["ch4_t1"]["unit"] == "%" and len(s["ch4_t1"]["ts"]) == 10
        assert s["ch4_t1"]["ts"][1] == T0 + 60 * S
        assert s["ch4_t1"]["min"][1] == pytest.approx(ch4(60, "r01"))
        assert s["ch4_t1"]["max"][1] == pytest.approx(ch4(119, "r01"))
        assert s["ch4_t1"]["mean"][1] == pytest.approx(sum(ch4(i, "r01") for i in range(60, 120)) / 60)
        both = c.get("/telemetry/history", params={"scenario": "mf01", "channels": "ch4_t1", "start": T0,
                                                   "end": T0 + N * S, "points": 1}).json()
        assert both["series"][0]["max"] == [pytest.approx(ch4(N - 1, "r02"))]


@pytest.mark.parametrize("params, word", [
    ({"scenario": "zz01"}, "unknown scenario"),
    ({"channels": "ch4_t1,nope"}, "channel names"),
    ({"start": "yesterday"}, "ISO 8601"),
    ({"end": str(T0 - S)}, "after start"),
    ({"robot": "r'01"}, "robot id"),
    ({"points": 0}, "greater than or equal"),
])
def test_history_refuses_bad_input_with_a_clear_422(shared_api: Api, params: dict, word: str) -> None:
    api = shared_api
    q = {"scenario": "mf01", "start": T0, "end": T0 + 60 * S, **params}
    with api.client("integrator") as c:
        r = c.get("/telemetry/history", params=q)
        assert r.status_code == 422
        assert word in r.json()["detail"][0]["msg"]


def test_export_csv_streams_every_reading_of_the_window(stored: SyncInflux, api: Api) -> None:
    with api.client("integrator") as c:
        r = c.get("/telemetry/export.csv", params={"scenario": "mf01", "channels": "ch4_t1,battery",
                                                   "start": T0 + 10 * S, "end": T0 + 110 * S})
        assert r.status_code == 200 and r.headers["content-type"].startswith("text/csv")
        assert "attachment" in r.headers["content-disposition"]
        rows = list(csv.DictReader(io.StringIO(r.text)))
        assert len(rows) == 200 and rows[0]["time"] == "2026-11-28T08:00:10.000Z"
        assert [int(x["ts_ns"]) for x in rows] == sorted(int(x["ts_ns"]) for x in rows)
        one = next(x for x in rows if x["robot"] == "r02" and int(x["ts_ns"]) == ts(50, "r02"))
        assert float(one["ch4_t1"]) == pytest.approx(ch4(50, "r02")) and float(one["battery"]) == 80.0
        only = c.get("/telemetry/export.csv", params={"scenario": "mf01", "robot": "r01", "start": T0,
                                                      "end": T0 + N * S})
        assert len(only.text.strip().split("\n")) == N + 1


def test_latest_merges_stored_and_live_values(stored: SyncInflux, api: Api, publisher: Publisher) -> None:
    with api.client("operator") as c:
        got = c.get("/telemetry/latest", params={"scenario": "mf01"}).json()["readings"]
        assert got["ch4_t1"] == {"value": pytest.approx(ch4(N - 1, "r02")), "ts": ts(N - 1, "r02"), "robot_id": "r02",
                                 "beyond": None}
        frame = Frame(robot_id="r03", scenario_id="mf01", seq=1, ts=T0 + 2 * N * S, readings={"ch4_t1": 0.77},
                      battery=55.0, pos_m=12.5, link=LinkInfo(latency_ms=9.0, rssi_dbm=-70.0))
        publisher.publish(publisher.topics.telemetry("mf01", "r03"), encode_frame(frame), qos=0)
        wait_for(lambda: c.get("/telemetry/latest", params={"scenario": "mf01"}).json()["readings"]["ch4_t1"]
                 ["robot_id"] == "r03", what="live reading")
        sc = c.get("/scenarios/mf01").json()
        assert sc["readings"]["ch4_t1"]["value"] == 0.77 and sc["robots"] == ["r03"]
        robot = c.get("/robots/r03").json()
        assert robot["online"] and robot["scenario_id"] == "mf01" and robot["battery"] == 55.0
        assert robot["link"]["rssi_dbm"] == -70.0 and robot["last_seen_ts"] == T0 + 2 * N * S
        assert c.get("/robots/r99").status_code == 404


def test_robots_come_from_retained_status(start_api: Callable[..., Api], publisher: Publisher) -> None:
    st = RobotStatus(robot_id="r05", online=True, ts=T0, scenario_id="bc01", pos_m=300.0, battery=41.0,
                     charging=True)
    publisher.publish(publisher.topics.status("r05"), st.model_dump_json(), retain=True)
    api = start_api()
    try:
        with api.client("integrator") as c:
            wait_for(lambda: c.get("/robots").json()["count"] == 1, what="robot status")
            r = c.get("/robots").json()["data"][0]
            assert r["robot_id"] == "r05" and r["charging"] and r["battery"] == 41.0 and r["status_ts"] == T0
            assert c.get("/scenarios/bc01").json()["robots"] == ["r05"]
            off = st.model_copy(update={"online": False, "ts": T0 + S})
            publisher.publish(publisher.topics.status("r05"), off.model_dump_json(), retain=True)
            wait_for(lambda: not c.get("/robots/r05").json()["online"], what="offline")
            assert c.get("/scenarios/bc01").json()["robots"] == []
    finally:
        publisher.publish(publisher.topics.status("r05"), b"", retain=True)


def test_history_past_the_raw_retention_comes_from_the_5_minute_statistics(influx_db: SyncInflux, api: Api) -> None:
    influx_db.query(f'CREATE RETENTION POLICY "long" ON "{influx_db.db}" DURATION 400d REPLICATION 1', post=True)
    old = T0 - 30 * 86400 * S  # a month back: only the 5-minute statistics are left
    lines = "\n".join(f"telemetry_5m,robot=r01,scenario=mf01,scenario_kind=mining_face "
                      f"mean_ch4_t1={0.3 + k / 100},min_ch4_t1=0.2,max_ch4_t1={0.5 + k / 100} {old + k * 300 * S}"
                      for k in range(12))
    r = httpx.post(f"{influx_db.url}/write", params={"db": influx_db.db, "rp": "long", "precision": "ns"},
                   content=lines)
    assert r.status_code == 204, r.text
    with api.client("integrator") as c:
        h = c.get("/telemetry/history", params={"scenario": "mf01", "channels": "ch4_t1", "start": old,
                                                "end": old + 3600 * S, "points": 6}).json()
        assert h["source"] == "5m" and h["interval_ns"] == 600 * S
        s = h["series"][0]
        assert len(s["ts"]) == 6 and s["min"] == [0.2] * 6
        assert s["max"][0] == pytest.approx(0.51) and s["mean"][0] == pytest.approx(0.305)
