"""Live streams: SSE and WebSocket, snapshot first, then alert events and readings."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect

from minewatch.influx import SyncInflux
from minewatch.wire import Frame, encode_frame

from .conftest import KEYS, S, Api, Publisher, alert_line, event

pytestmark = pytest.mark.integration


def sse_events(resp: httpx.Response) -> Iterator[tuple[str, Any]]:
    name, data = "message", list[str]()
    for line in resp.iter_lines():
        if line == "":
            if data:
                yield name, json.loads("\n".join(data))
            name, data = "message", []
        elif line.startswith("event:"):
            name = line[6:].strip()
        elif line.startswith("data:"):
            data.append(line[5:].lstrip())


class SseReader:
    """Reads an SSE response event by event; a read that waits more than 30 s fails the test."""

    def __init__(self, client: httpx.Client, url: str, **kw: Any) -> None:
        self._cm = client.stream("GET", url, timeout=httpx.Timeout(30.0), **kw)
        self.resp = self._cm.__enter__()
        self._events = sse_events(self.resp)

    def next(self) -> tuple[str, Any]:
        return next(self._events)

    def until(self, name: str, where: Callable[[Any], bool] = lambda data: True) -> Any:
        seen = []
        for got, data in self._events:
            if got == name and where(data):
                return data
            seen.append((got, data))
        raise AssertionError(f"the stream ended before a {name!r} event; it sent {seen}")

    def close(self) -> None:
        self._cm.__exit__(None, None, None)


def test_sse_sends_the_active_alerts_first_then_events_and_readings(
        influx_db: SyncInflux, start_api: Callable[..., Api], publisher: Publisher) -> None:
    now = time.time_ns()
    stored = event(f"ra01.ch4.gas_limit.{now}", "raised", "alarm", ts=now - 5 * S, first_ts=now - 5 * S,
                   scenario="ra01", channel="ch4")
    influx_db.write([alert_line(stored)])
    api = start_api()
    with api.client(None) as c:
        assert c.get("/stream").status_code == 401
        assert c.get("/stream", params={"api_key": KEYS["integrator"], "scenario": "zz01"}).status_code == 422
        reader = SseReader(c, "/stream", params={"api_key": KEYS["integrator"], "scenario": "mf01"})
        try:
            assert reader.resp.headers["content-type"].startswith("text/event-stream")
            name, data = reader.next()
            assert name == "active" and [a["alert_id"] for a in data] == [stored.alert_id]
            live = event(f"mf01.ch4_t1.gas_limit.{now}", "raised", "critical", ts=now, first_ts=now)
            publisher.alert(live)
            got = reader.until("alert")
            assert got["alert_id"] == live.alert_id and got["severity"] == "critical"
            publisher.publish(publisher.topics.telemetry("hf01", "r09"),
                              encode_frame(Frame(robot_id="r09", scenario_id="hf01", seq=1, ts=now,
                                                 readings={"ch4_t1": 0.1})), qos=0)
            publisher.publish(publisher.topics.telemetry("mf01", "r01"),
                              encode_frame(Frame(robot_id="r01", scenario_id="mf01", seq=7, ts=now,
                                                 readings={"ch4_t1": 0.42})), qos=0)
            reading = reader.until("reading")
            assert reading["scenario_id"] == "mf01" and reading["readings"] == {"ch4_t1": 0.42}
        finally:
            reader.close()
        # a client that reconnects gets the current active alerts first
        again = SseReader(c, "/stream", cookies={"minewatch_api_key": KEYS["operator"]})
        try:
            name, data = again.next()
            assert name == "active" and live.alert_id in [a["alert_id"] for a in data]
        finally:
            again.close()


def test_websocket_snapshot_subscribe_and_readings(api: Api, publisher: Publisher) -> None:
    ws_url = api.url.replace("http://", "ws://") + "/ws"
    with pytest.raises(ConnectionClosed) as info, connect(ws_url) as ws:
        ws.recv(timeout=5)
    assert info.value.rcvd is not None and info.value.rcvd.code == 4401
    now = time.time_ns()
    with connect(f"{ws_url}?api_key={KEYS['integrator']}") as ws:
        first = json.loads(ws.recv(timeout=5))
        assert first["type"] == "active" and first["data"] == []
        assert [json.loads(ws.recv(timeout=5))["type"] for _ in range(2)] == ["incidents", "watch"]
        ws.send(json.dumps({"subscribe": "nowhere"}))
        err = json.loads(ws.recv(timeout=5))
        assert err["type"] == "error" and "unknown scenario" in err["data"]["detail"]
        ws.send(b"\xff\x00 not json")
        assert json.loads(ws.recv(timeout=5))["type"] == "error"
        ws.send("nul")  # the parser's own words ("invalid literal, expected 'null'") are not the client's
        assert json.loads(ws.recv(timeout=5))["data"] == {"detail": 'a command is JSON: send {"subscribe": "mf01"} '
                                                                    'or {"unsubscribe": "mf01"} (a list also works)'}
        ws.send("x" * 10000)
        assert "4 KiB" in json.loads(ws.recv(timeout=5))["data"]["detail"]
        for cmd in ({"unsubscribe": None}, {"subscribe": ""}, {"subscribe": ["mf01", None]}):  # names no scenario
            ws.send(json.dumps(cmd))
            err = json.loads(ws.recv(timeout=5))
            assert err["type"] == "error" and "a scenario id or a list of them" in err["data"]["detail"], (cmd, err)
        ws.send(json.dumps({"subscribe": ["hf02"]}))
        assert json.loads(ws.recv(timeout=5)) == {"type": "subscribed", "data": {"scenarios": ["hf02"]}}
        publisher.publish(publisher.topics.telemetry("hf02", "r04"),
                          encode_frame(Frame(robot_id="r04", scenario_id="hf02", seq=3, ts=now,
                                             readings={"co": 4.0})), qos=0)
        msg = json.loads(ws.recv(timeout=5))
        while msg["type"] != "reading":
            msg = json.loads(ws.recv(timeout=5))
        assert msg["data"]["robot_id"] == "r04" and msg["data"]["readings"] == {"co": 4.0}
        ev = event(f"hf02.co.gas_limit.{now}", "raised", "warning", ts=now, first_ts=now, scenario="hf02",
                   channel="co")
        publisher.alert(ev)
        msg = json.loads(ws.recv(timeout=5))
        while msg["type"] != "alert":
            msg = json.loads(ws.recv(timeout=5))
        assert msg["data"]["alert_id"] == ev.alert_id
    with connect(ws_url, additional_headers={"X-API-Key": KEYS["operator"]}) as ws:
        first = json.loads(ws.recv(timeout=5))
        assert [a["alert_id"] for a in first["data"]] == [ev.alert_id]
