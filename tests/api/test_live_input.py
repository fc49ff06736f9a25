"""The live picture takes what the ingestor takes: frames and statuses of the topic's robot, of
the fleet registry, dated within the window, never retained telemetry; one reading per message
on the streams; the stream cap holds under a burst.

Against the API served by uvicorn with the real mosquitto and influxd behind it."""

from __future__ import annotations

import contextlib
import socket
import time
from collections.abc import Callable
from typing import Any

import pytest

from minewatch.schema import RobotStatus
from minewatch.settings import Settings
from minewatch.wire import Frame, encode_frame, encode_frames

from .conftest import KEYS, S, Api, Publisher, wait_for
from .test_stream import SseReader

pytestmark = pytest.mark.integration
YEAR_2100 = 4_102_444_800 * S


def _frame(robot: str, scenario: str, ts: int, seq: int = 1, **readings: float | None) -> bytes:
    return encode_frame(Frame(robot_id=robot, scenario_id=scenario, seq=seq, ts=ts, readings=readings))


def test_a_frame_dated_ahead_or_retained_never_outranks_the_readings_that_follow(
        start_api: Callable[..., Api], publisher: Publisher) -> None:
    t = publisher.topics
    publisher.publish(t.telemetry("mf03", "p01"), _frame("p01", "mf03", YEAR_2100, ch4=4.2, co=150.0), retain=True)
    try:
        api = start_api()
        with api.client("integrator") as c:
            publisher.publish(t.telemetry("mf03", "r03"), _frame("r03", "mf03", time.time_ns(), ch4=0.30), qos=0)
            wait_for(lambda: c.get("/scenarios/mf03").json()["readings"].get("ch4", {}).get("value") == 0.30,
                     what="the live reading")
            # live, not retained: a frame a century ahead is refused, one an hour ahead counts as of its arrival
            publisher.publish(t.telemetry("mf03", "p01"), _frame("p01", "mf03", YEAR_2100, 2, ch4=4.3), qos=0)
            publisher.publish(t.telemetry("mf03", "p02"), _frame("p02", "mf03", time.time_ns() + 3600 * S, ch4=4.0),
                              qos=0)
            wait_for(lambda: c.get("/scenarios/mf03").json()["readings"]["ch4"]["value"] == 4.0,
                     what="the reading dated an hour ahead")
            time.sleep(0.05)
            publisher.publish(t.telemetry("mf03", "r03"), _frame("r03", "mf03", time.time_ns(), 2, ch4=0.31), qos=0)
            wait_for(lambda: c.get("/scenarios/mf03").json()["readings"]["ch4"]["value"] == 0.31,
                     what="the reading after it")
            for got in (c.get("/scenarios/mf03").json()["readings"],
                        c.get("/telemetry/latest", params={"scenario": "mf03"}).json()["readings"]):
                assert got["ch4"]["value"] == 0.31 and got["ch4"]["robot_id"] == "r03" and got["ch4"]["beyond"] is None
                assert "co" not in got  # the retained frame a century ahead left nothing
                assert got["ch4"]["ts"] < time.time_ns() + S
            assert "p01" not in [r["robot_id"] for r in c.get("/robots").json()["data"] if r["online"]]
    finally:
        publisher.publish(t.telemetry("mf03", "p01"), b"", retain=True)


def test_a_frame_naming_another_robot_or_place_is_not_forwarded(api: Api, publisher: Publisher) -> None:
    t = publisher.topics
    with api.client(None) as c:
        reader = SseReader(c, "/stream", params={"api_key": KEYS["integrator"], "scenario": "mf01,hf01"})
        try:
            reader.until("watch")
            publisher.publish(t.telemetry("mf01", "r01"), _frame("r04", "hf01", time.time_ns(), ch4_t1=3.5), qos=0)
            publisher.publish(t.telemetry("mf01", "r01"), _frame("r01", "mf01", time.time_ns(), 2, ch4_t1=0.42),
                              qos=0)
            publisher.publish(t.telemetry("hf01", "zz99"), _frame("zz99", "hf01", time.time_ns(), ch4_t1=3.6), qos=0)
            publisher.publish(t.telemetry("hf01", "r04"), _frame("r04", "hf01", time.time_ns(), ch4_t1=0.2), qos=0)
            first = reader.until("reading")
            assert (first["robot_id"], first["scenario_id"], first["readings"]) == ("r01", "mf01", {"ch4_t1": 0.42})
            second = reader.until("reading")
            assert (second["robot_id"], second["scenario_id"], second["readings"]) == ("r04", "hf01", {"ch4_t1": 0.2})
        finally:
            reader.close()
        with api.client("integrator") as c2:
            assert c2.get("/scenarios/hf01").json()["readings"]["ch4_t1"]["value"] == 0.2
            robots = {r["robot_id"]: r for r in c2.get("/robots").json()["data"]}
            assert set(robots) == {"r01", "r04"}  # zz99 is outside the fleet registry
            assert robots["r01"]["scenario_id"] == "mf01"


def test_a_message_of_3000_frames_is_one_reading_and_disconnects_nobody(api: Api, publisher: Publisher) -> None:
    now = time.time_ns()
    frames = [Frame(robot_id="r01", scenario_id="mf01", seq=10_000 + i, ts=now - (3000 - i) * 10_000_000,
                    readings={"ch4_t1": 0.3, "co": 2.0 + i / 10_000}) for i in range(3000)]
    with api.client(None) as c:
        reader = SseReader(c, "/stream", params={"api_key": KEYS["integrator"], "scenario": "mf01"})
        try:
            reader.until("watch")
            publisher.publish(publisher.topics.telemetry("mf01", "r01"), encode_frames(frames))
            publisher.publish(publisher.topics.telemetry("mf01", "r01"),
                              _frame("r01", "mf01", time.time_ns(), 20_000, ch4_t1=0.5))
            got: list[Any] = []
            while len(got) < 2:
                name, data = reader.next()
                assert name != "lagged"
                if name == "reading":
                    got.append(data)
            assert got[0]["seq"] == 12_999 and got[0]["readings"]["co"] == pytest.approx(2.2999)
            assert got[1]["seq"] == 20_000
        finally:
            reader.close()


def test_a_status_must_be_of_the_robot_of_its_topic(api: Api, publisher: Publisher) -> None:
    t = publisher.topics
    now = time.time_ns()
    mine = RobotStatus(robot_id="r01", online=True, ts=now, scenario_id="mf01", battery=80.0)
    with api.client(None) as c:
        reader = SseReader(c, "/stream", params={"api_key": KEYS["integrator"]})
        try:
            reader.until("watch")
            publisher.publish(t.status("r01"), mine.model_dump_json())
            assert reader.until("status")["robot_id"] == "r01"
            spoof = RobotStatus(robot_id="r02", online=False, battery=0.0, scenario_id="gd01")
            publisher.publish(t.status("r01"), spoof.model_dump_json())
            ahead = RobotStatus(robot_id="r05", online=False, ts=now + 3600 * S)
            publisher.publish(t.status("r05"), ahead.model_dump_json())
            publisher.publish(t.status("fake001"), RobotStatus(robot_id="fake001", online=True).model_dump_json())
            publisher.publish(t.status("r03"), RobotStatus(robot_id="r03", online=True, ts=now).model_dump_json())
            assert reader.until("status")["robot_id"] == "r03"  # nothing of r02, r05 or fake001 before it
        finally:
            reader.close()
    with api.client("integrator") as c:
        robots = {r["robot_id"]: r for r in c.get("/robots").json()["data"]}
        assert set(robots) == {"r01", "r03"} and robots["r01"]["online"] and robots["r01"]["battery"] == 80.0
        assert c.get("/robots/r01%0A").status_code == 422


def test_the_stream_cap_holds_under_a_burst(settings: Settings, start_api: Callable[..., Api]) -> None:
    settings.api_max_streams = 20
    api = start_api()
    host, port = api.url.removeprefix("http://").split(":")
    head = f"GET /stream HTTP/1.1\r\nHost: x\r\nX-API-Key: {KEYS['integrator']}\r\n\r\n".encode()
    with contextlib.ExitStack() as stack:
        socks = []
        for _ in range(60):
            s = stack.enter_context(socket.create_connection((host, int(port)), timeout=10))
            socks.append(s)
        for s in socks:  # the requests all arrive before any response is written
            s.sendall(head)
        codes: dict[bytes, int] = {}
        for s in socks:
            try:
                line = s.recv(64).split(b"\r\n")[0]
            except TimeoutError:
                line = b"timeout"
            codes[line] = codes.get(line, 0) + 1
        assert codes.get(b"HTTP/1.1 200 OK") == 20 and codes.get(b"HTTP/1.1 503 Service Unavailable") == 40, codes
    with api.client("integrator") as c:

        def in_again() -> bool:  # every place came back when the clients left
            ok = []
            with contextlib.ExitStack() as st:
                for _ in range(20):
                    r = st.enter_context(c.stream("GET", "/stream"))
                    ok.append(r.status_code == 200)
            return all(ok)

        assert wait_for(in_again, what="the places given back")
