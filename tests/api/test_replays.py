"""Replay jobs over stored telemetry: roles, bad input, the paced stream, cancelling, the CLI."""

from __future__ import annotations

import json
import os
import socket
import struct
import subprocess
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from api.times import iso
from ingest.lines import TelemetryLines
from minewatch.catalogue import SCENARIOS
from minewatch.influx import SyncInflux
from minewatch.services import free_port, stop_process, wait_http
from minewatch.settings import Settings
from tests.ingest.helpers import frames_for, minewatch_exe

from .conftest import KEYS, T0, Api, S, wait_for
from .test_stream import SseReader

pytestmark = pytest.mark.integration
MINUTES = 10


@pytest.fixture
def stored(influx_db: SyncInflux) -> SyncInflux:
    """Ten minutes of hf01 with methane at T1 above the alarm level from minute 3 to minute 5."""
    frames = frames_for("hf01", "r11", MINUTES * 60, t0=T0)
    for f in frames[180:300]:
        f.readings["ch4_t1"] = 1.2
    fmt = TelemetryLines()
    influx_db.write([fmt.format(f) for f in frames])
    return influx_db


def _body(**kw: Any) -> dict[str, Any]:
    return {"start": iso(T0), "end": T0 + MINUTES * 60 * S, **kw}


def test_only_engineers_start_or_cancel_replays(shared_api: Api) -> None:
    api = shared_api
    for role in ("integrator", "operator"):
        with api.client(role) as c:
            r = c.post("/replays", json=_body())
            assert r.status_code == 403 and "engineer" in r.json()["detail"]
            assert c.get("/replays").status_code == 200
            assert c.delete("/replays/rp-x").status_code == 403
    with api.client(None) as c:
        assert c.post("/replays", json=_body()).status_code == 401


@pytest.mark.parametrize("body, word", [
    ({"shift": "2026-11-27:night", "start": "2026-11-27T00:00:00Z"}, "not both"),
    ({"start": "2026-11-27T00:00:00Z"}, "both start and end"),
    ({"shift": "2026-11-27:night", "overrides": {"mf01.nothing.alarm": 1.0}}, "nothing"),
    ({"shift": "2026-11-27:night", "overrides": {"mf01.ch4_t1.loud": 1.0}}, "SCENARIO.CHANNEL.FIELD"),
    ({"shift": "2026-11-27:night", "end": "2026-11-27T00:00:00Z"}, "not both"),
    ({"shift": None, "start": "2026-11-27T00:00:00Z", "end": "2026-11-27T01:00:00Z"}, "valid string"),
    ({"start": "2026-11-27T00:00:00Z\n", "end": "2026-11-27T01:00:00Z"}, "ISO 8601"),
])
def test_bad_replay_requests_are_422_with_a_reason(shared_api: Api, body: dict, word: str) -> None:
    api = shared_api
    with api.client("engineer") as c:
        r = c.post("/replays", json=body)
        assert r.status_code == 422, r.text
        assert word in r.json()["detail"][0]["msg"]
        assert r.json()["detail"][0]["loc"][0] == "body", r.json()  # the body was wrong, not the query
        assert c.post("/replays", json={"shift": "x", "speed": 5000}).status_code == 422
        assert c.get("/replays/rp-nope").status_code == 404


def test_a_shift_the_calendar_lacks_is_not_found(shared_api: Api) -> None:
    with shared_api.client("engineer") as c:
        r = c.post("/replays", json={"shift": "2026-11-27:lunch"})
        assert r.status_code == 404, r.text
        assert "no shift named 'lunch'" in r.json()["detail"]
        assert c.post("/replays", json={"shift": "2026-02-30:night"}).status_code == 404


def test_paced_replay_streams_readings_and_alerts_and_can_be_cancelled(stored: SyncInflux, api: Api) -> None:
    with api.client("engineer") as c:
        job = c.post("/replays", json=_body(speed=100)).json()
        assert job["state"] in ("queued", "running") and job["speed"] == 100
        with api.client(None) as anon:
            reader = SseReader(anon, f"/replays/{job['id']}/stream", params={"api_key": "int-key-1"})
            try:
                name, state = reader.next()
                assert name == "state" and state["id"] == job["id"]
                reading = reader.until("reading")
                assert reading["robot_id"] == "r11" and reading["scenario_id"] == "hf01"
                # methane from minute 3: 1.8 s of wall time at x100 (in the state if it came before we did)
                def gas(e: dict) -> bool:
                    return e["kind"] == "gas" and e["state"] == "raised"
                alert = next((e for e in state["alerts"] if gas(e)), None) or reader.until("alert", gas)
                assert alert["channel"] == "ch4_t1" and alert["severity"] == "alarm" and alert["ts"] >= T0 + 180 * S
                progress = reader.until("progress")
                assert 0 < progress["progress"] < 1
            finally:
                reader.close()
        r = c.delete(f"/replays/{job['id']}")
        got = r.json()
        assert r.status_code == 200 and got["state"] == "cancelled"
        assert got["diff"] is None and got["alert_count"] >= 1
        # deleted: gone from everywhere, the same as an id never seen
        assert c.get(f"/replays/{job['id']}").status_code == 404
        assert c.get(f"/replays/{job['id']}/stream").status_code == 404
        assert c.delete(f"/replays/{job['id']}").status_code == 404
        assert c.get("/replays").json()["data"] == []


def test_fast_replay_finds_the_alert_and_lowered_limit_finds_more(stored: SyncInflux, api: Api) -> None:
    with api.client("engineer") as c:
        def run(**kw: Any) -> dict[str, Any]:
            job = c.post("/replays", json=_body(**kw)).json()
            return wait_for(lambda: (j := c.get(f"/replays/{job['id']}").json())["state"] not in ("queued", "running")
                            and j, timeout=60, what="the replay")

        plain = run()
        assert plain["state"] == "done" and plain["frames"] == MINUTES * 60 and plain["progress"] == 1.0
        raised = [e for e in plain["alerts"] if e["state"] == "raised"]
        assert {e["channel"] for e in raised} == {"ch4_t1"}, raised
        limit = [e for e in raised if e["detector"] == "gas_limit"]
        assert [e["severity"] for e in limit] == ["alarm"] and limit[0]["first_ts"] == T0 + 180 * S
        # nothing was recorded live here: everything is new
        assert plain["diff"]["new"] == len({e["alert_id"] for e in raised}) and plain["diff"]["missed"] == 0
        lowered = run(overrides={"hf01.ch4_t1.alarm": 0.9, "hf01.co.warning": 1.0})
        chans = {e["channel"] for e in lowered["alerts"] if e["state"] == "raised"}
        assert chans == {"ch4_t1", "co"}
        assert lowered["overrides"] == {"hf01.ch4_t1.alarm": 0.9, "hf01.co.warning": 1.0}


def test_replay_command_writes_the_alerts_as_jsonl(stored: SyncInflux, settings: Settings, tmp_path: Path) -> None:
    out = tmp_path / "alerts.jsonl"
    r = subprocess.run([*minewatch_exe(), "replay", "--influx-url", settings.influx_url, "--influx-db",
                        settings.influx_db, "--from", iso(T0), "--to", str(T0 + MINUTES * 60 * S),
                        "--set", "hf01.co.warning=1.0", "--out", str(out)],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    events = [json.loads(line) for line in out.read_text().splitlines()]
    assert {e["channel"] for e in events if e["state"] == "raised"} == {"ch4_t1", "co"}
    summary = json.loads(r.stderr.strip().splitlines()[-1])
    assert summary["frames"] == MINUTES * 60 and summary["missed"] == 0 and "note" not in summary
    assert summary["new"] == summary["alerts"] == len({e["alert_id"] for e in events}) >= 2
    assert summary["x_realtime"] > 1
    bad = subprocess.run([*minewatch_exe(), "replay", "--influx-url", settings.influx_url, "--shift", "2026-11-27"],
                         capture_output=True, text=True, timeout=60)
    assert bad.returncode == 2 and "YYYY-MM-DD:NAME" in bad.stderr


def test_a_replay_over_a_window_without_data_says_so(stored: SyncInflux, settings: Settings) -> None:
    empty_from, empty_to = T0 - 10 * 86400 * S, T0 - 9 * 86400 * S  # a day before anything is stored
    r = subprocess.run([*minewatch_exe(), "replay", "--influx-url", settings.influx_url, "--influx-db",
                        settings.influx_db, "--from", str(empty_from), "--to", str(empty_to)],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    summary = json.loads(r.stderr.strip().splitlines()[-1])
    assert summary["frames"] == 0 and "no telemetry" in summary["note"]
    assert "no telemetry is stored in this window" in r.stderr.splitlines()[-2]
    # one with data has no such note (above); the API's job says the same as the command
    from api.replay import NO_DATA_NOTE, ReplayJob

    job = ReplayJob(id="rp-x", shift=None, start=empty_from, end=empty_to, overrides={}, speed=None,
                    created_by="engineer", state="done")
    assert job.public().note == NO_DATA_NOTE == summary["note"]
    job.frames = 5
    assert job.public().note is None


def test_replay_list_needs_a_key(shared_api: Api) -> None:
    assert httpx.get(f"{shared_api.url}/replays").status_code == 401


def test_slicing_does_not_change_the_frames_or_the_alerts(stored: SyncInflux) -> None:
    import asyncio

    from api.replay_engine import TelemetrySource, run_replay
    from minewatch.influx import InfluxClient

    end = T0 + MINUTES * 60 * S

    async def go() -> tuple[list, list, list, list]:
        async with InfluxClient(stored.url, stored.db) as influx:
            fine = [x async for x in TelemetrySource(influx, T0, end, slice_s=60).slices()]
            coarse = [x async for x in TelemetrySource(influx, T0, end, slice_s=600).slices()]
            a = await run_replay(influx, T0, end, slice_s=60)
            b = await run_replay(influx, T0, end, slice_s=600)
        return fine, coarse, a.alerts, b.alerts

    fine, coarse, a, b = asyncio.run(go())
    assert len(fine) == MINUTES and len(coarse) == 1
    flat = [f for _, _, frames, _ in fine for f in frames]
    same = flat == coarse[0][2]  # the same frames, in the same order
    assert same and len(flat) == MINUTES * 60
    assert [f.ts for f in flat] == sorted(f.ts for f in flat)
    assert a == b and a


@pytest.fixture
def every_scenario(influx_db: SyncInflux) -> SyncInflux:
    """Ten minutes of a robot in every scenario: a paced replay sends its readings in bursts."""
    fmt = TelemetryLines()
    influx_db.write([fmt.format(f) for i, sc in enumerate(SCENARIOS)
                     for f in frames_for(sc, f"r{i + 1:02d}", MINUTES * 60, t0=T0)])
    return influx_db


def test_stream_clients_going_away_is_ordinary(every_scenario: SyncInflux, settings: Settings, tmp_path: Path) -> None:
    """A real API process: clients drop a paced replay's stream mid-burst (closing, resetting,
    or after not reading); the API logs no error, gives their places back and the job runs on,
    to be cancelled and deleted as usual."""
    port = free_port()
    log_path = tmp_path / "api.log"
    env = {**os.environ, "MINEWATCH_API_KEYS": settings.api_keys, "MINEWATCH_TOPIC_PREFIX": settings.topic_prefix,
           "MINEWATCH_API_MAX_STREAMS": "2"}
    with open(log_path, "wb") as log_file:
        proc = subprocess.Popen([*minewatch_exe(), "api", "--mqtt-url", settings.mqtt_url, "--influx-url",
                                 settings.influx_url, "--influx-db", settings.influx_db, "--port", str(port),
                                 "--log-level", "info"], stdout=log_file, stderr=subprocess.STDOUT, env=env)
    try:
        url = f"http://127.0.0.1:{port}"
        wait_http(f"{url}/healthz", timeout=60, check=lambda: None if proc.poll() is None else pytest.fail(
            f"the API ended: {log_path.read_text()}"))
        with httpx.Client(base_url=url, headers={"X-API-Key": KEYS["engineer"]}, timeout=10.0) as c:
            job = c.post("/replays", json=_body(speed=20)).json()  # 30 s of wall time
            request = f"GET /replays/{job['id']}/stream?api_key={KEYS['engineer']} HTTP/1.1\r\nHost: x\r\n\r\n"
            for k in range(24):
                sock = socket.socket()
                if k % 3 == 2:  # a reader that stops reading: the API's writes back up, then it goes
                    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 2048)
                sock.connect(("127.0.0.1", port))
                sock.sendall(request.encode())
                if k % 3 == 2:
                    time.sleep(1.0)
                else:
                    got = b""
                    while got.count(b"event: reading") < 5 + k:
                        chunk = sock.recv(65536)
                        assert chunk, got[-300:]
                        got += chunk
                    assert got.startswith(b"HTTP/1.1 200")
                if k % 3 == 1:  # reset rather than close
                    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                sock.close()
            # every place was given back: the cap of 2 lets two clients in, and only two
            readers = [SseReader(c, f"/replays/{job['id']}/stream") for _ in range(2)]
            try:
                assert c.get(f"/replays/{job['id']}/stream").status_code == 503
                for r in readers:
                    assert r.next()[0] == "state"
                    assert r.until("progress")["state"] == "running"
            finally:
                for r in readers:
                    r.close()
            assert c.get(f"/replays/{job['id']}").json()["state"] == "running"
            gone = c.delete(f"/replays/{job['id']}")
            assert gone.status_code == 200 and gone.json()["state"] == "cancelled"
            assert c.get("/replays").json()["data"] == []
    finally:
        stop_process(proc)
    text = log_path.read_text()
    assert f"GET /replays/{job['id']}/stream" in text  # the log is the API's, with its access lines
    bad = [line for line in text.splitlines() if "ERROR" in line or "Traceback" in line or "Exception" in line]
    assert not bad, text[-5000:]


def test_an_idle_stream_gets_keep_alive_comments_and_loses_no_message() -> None:
    import asyncio

    from fastapi.sse import ServerSentEvent

    from api.hub import Hub
    from api.sse import PING, event_stream, next_or_ping

    async def go() -> tuple[list[object], list[bytes], bool]:
        hub = Hub()
        sub = hub.subscribe()
        got = [await next_or_ping(sub, 0.05)]  # nothing came: time for a comment
        sub.put({"type": "progress", "data": {"progress": 0.5}})
        got.append(await next_or_ping(sub, 0.05))  # the message, not a comment
        closed = False

        async def events():
            nonlocal closed
            try:
                yield ServerSentEvent(event="state", raw_data='{"a": 1}')
                yield PING
                yield ServerSentEvent(event="done", raw_data="{}")
            finally:
                closed = True

        resp = event_stream(events())
        body = [chunk async for chunk in resp.body_iterator]
        return got, body, closed

    got, body, closed = asyncio.run(go())
    assert got == [PING, {"type": "progress", "data": {"progress": 0.5}}]
    assert body == [b'event: state\ndata: {"a": 1}\n\n', b": ping\n\n", b"event: done\ndata: {}\n\n"]
    assert closed


# -------------------------------------------------------------------- the same alerts as the row-by-row path

SHORT_FAULTS: list[dict[str, Any]] = [
    {"kind": "methane_outburst", "scenario": "mf01", "channel": "ch4_t1", "start": "+30s", "duration": "90s", "peak": 1.8},
    {"kind": "co_rise", "scenario": "mf02", "start": "+1m", "duration": "6m", "peak": 30},
    {"kind": "main_fan_stoppage", "scenario": "vf01", "start": "+2m", "duration": "4m", "standby_after": "3m"},
    {"kind": "sensor_stuck", "scenario": "ra01", "channel": "ch4", "start": "+1m", "duration": "5m"},
    {"kind": "sensor_out_of_range", "scenario": "pr02", "channel": "wl", "start": "+2m", "duration": "2m"},
    {"kind": "robot_offline", "scenario": "cb01", "start": "+3m", "duration": "3m"},
]


def _row_by_row_replay(url: str, db: str, start: int, end: int, slice_s: float) -> list[Any]:
    """The replay as it was: slices read one after another, every row made a frame by the
    row-by-row reference, the same batches and ticks."""
    import asyncio

    from api.replay_engine import TICK_S, TelemetrySource, _process_slice
    from detectors import DetectorSuite
    from minewatch.influx import InfluxClient
    from minewatch.stored import slice_query
    from tests.test_stored_decode import naive_rows_to_frames

    async def run() -> list[Any]:
        suite = DetectorSuite(SCENARIOS)
        events: list[Any] = []
        async with InfluxClient(url, db) as influx:
            for t0, t1 in await TelemetrySource(influx, start, end, slice_s=slice_s).bounds():
                frames, late = naive_rows_to_frames(await influx.query_series(slice_query(t0, t1)))
                events.extend(_process_slice(suite, frames, late, t0, t1, int(TICK_S * S)))
        return events

    return asyncio.run(run())


def test_the_replay_raises_the_alerts_of_the_row_by_row_path_event_by_event(influx_db: SyncInflux) -> None:
    import asyncio

    from api.replay_engine import run_replay
    from minewatch.influx import InfluxClient
    from simulator.engine import SimConfig, Simulation
    from simulator.faults import load_faults

    seconds = 9 * 60
    sim = Simulation(SimConfig(seed=3, start_ns=T0, duration_s=seconds, faults=load_faults(SHORT_FAULTS)))
    fmt = TelemetryLines()
    influx_db.write([fmt.format(f) for batch in sim.frames() for f in batch])
    end = T0 + seconds * S

    async def new(in_flight: int) -> list[Any]:
        async with InfluxClient(influx_db.url, influx_db.db) as influx:
            return (await run_replay(influx, T0, end, slice_s=120.0, in_flight=in_flight)).alerts

    want = _row_by_row_replay(influx_db.url, influx_db.db, T0, end, 120.0)
    kinds = {e.kind for e in want}
    assert len(want) >= 20 and len(kinds) >= 4, (len(want), kinds)  # gas, ventilation, sensor, robot alerts
    for in_flight in (1, 3):
        got = asyncio.run(new(in_flight))
        assert len(got) == len(want)
        for g, w in zip(got, want):
            assert g == w


def test_a_replay_reads_at_least_the_slice_it_is_on() -> None:
    from api.replay_engine import TelemetrySource

    with pytest.raises(ValueError, match="in_flight"):
        TelemetrySource(None, T0, T0 + S, in_flight=0)  # type: ignore[arg-type]


def test_the_override_key_pattern_names_every_field_the_detectors_read() -> None:
    import re

    from api.schemas import OVERRIDE_KEY
    from detectors.overrides import LEVEL_FIELDS, SETTING_FIELDS

    for fld in (*LEVEL_FIELDS, *SETTING_FIELDS):
        assert re.match(OVERRIDE_KEY, f"mf01.ch4_t1.{fld}"), fld
    assert not re.match(OVERRIDE_KEY, "mf01.ch4_t1.panic")


def test_a_window_starting_inside_a_live_alert_does_not_count_it_new(stored: SyncInflux, settings: Settings) -> None:
    """The live alarm (methane from minute 3 to 5, as the ingestor recorded it) is standing when
    the window opens at minute 4: the replay's detectors, starting fresh, raise it at the first
    reading. That raise is the live alert carried over, not one the live system missed."""
    from .conftest import alert_line, event

    aid = f"hf01.ch4_t1.gas_limit.{(T0 + 180 * S) // 1_000_000}"
    live = [event(aid, "raised", ts=T0 + 180 * S, first_ts=T0 + 180 * S, scenario="hf01", value=1.2),
            event(aid, "cleared", ts=T0 + 302 * S, first_ts=T0 + 180 * S, scenario="hf01", value=0.3)]
    stored.write([alert_line(e) for e in live])
    r = subprocess.run([*minewatch_exe(), "replay", "--influx-url", settings.influx_url, "--influx-db",
                        settings.influx_db, "--from", str(T0 + 240 * S), "--to", str(T0 + MINUTES * 60 * S), "-q"],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    summary = json.loads(r.stderr.strip().splitlines()[-1])
    raised = [e for e in map(json.loads, r.stdout.splitlines()) if e["state"] == "raised" and e["detector"] == "gas_limit"]
    assert [e["first_ts"] for e in raised] == [T0 + 240 * S]  # the replay did raise it, at the first reading
    assert summary["missed"] == 0, r.stderr
    # (the replay's change detectors, fresh too, may see the fall at minute 5 as a step of their own)
    assert not [a for a in summary["new_ids"] if ".gas_limit." in a], r.stderr
    assert summary["not_compared"] >= 1, r.stderr
