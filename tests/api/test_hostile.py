"""Hostile input: what a client sends cannot stall, flood or blind the API.

Against the API served by uvicorn (in a thread, or as the ``minewatch api`` process where its
own output is what is checked), with the real mosquitto and influxd behind it."""

from __future__ import annotations

import contextlib
import os
import select
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect

from minewatch.influx import SyncInflux
from minewatch.services import Influxd, Mosquitto, free_port, wait_http
from minewatch.settings import Settings

from .conftest import KEYS, Api, Publisher, event, serve, wait_for

pytestmark = pytest.mark.integration
MB = 1 << 20


@pytest.mark.parametrize("path", ["/telemetry/latest", "/telemetry/history", "/telemetry/export.csv"])
@pytest.mark.parametrize("robot", ["r01\n", "r01%0A", "r01' OR '1'='1", ""])
def test_an_id_with_a_trailing_newline_or_worse_is_a_422(shared_api: Api, path: str, robot: str) -> None:
    params = {"scenario": "mf01", "robot": robot, "start": "2026-11-27T00:00:00Z", "end": "2026-11-27T01:00:00Z"}
    with shared_api.client("integrator") as c:
        r = c.get(path, params=params)
    assert r.status_code == 422, r.text
    assert "InfluxDB" not in r.text and "error parsing" not in r.text and "Traceback" not in r.text
    assert "robot id" in r.json()["detail"][0]["msg"]


def _raw(url: str, head: bytes) -> socket.socket:
    host, port = url.removeprefix("http://").split(":")
    s = socket.create_connection((host, int(port)), timeout=10)
    s.sendall(head)
    return s


def _response(s: socket.socket, timeout: float = 10.0) -> bytes:
    s.settimeout(timeout)
    got = b""
    try:
        while chunk := s.recv(65536):
            got += chunk
            if b"\r\n\r\n" in got and b'"}' in got:
                break
    except (TimeoutError, ConnectionResetError):
        pass
    return got


def test_a_50_mb_body_is_refused_with_413_before_it_is_read(shared_api: Api) -> None:
    limit = shared_api.settings.api_max_body_bytes
    # declared: answered at once, with only the headers sent, and before the (missing) key is looked at
    s = _raw(shared_api.url, b"POST /replays HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                             b"Content-Length: %d\r\n\r\n" % (50 * MB))
    t0 = time.monotonic()
    got = _response(s)
    s.close()
    assert got.startswith(b"HTTP/1.1 413"), got[:200]
    assert time.monotonic() - t0 < 5
    assert b"larger than the API accepts" in got and b"nosniff" in got.lower()
    # chunked, no length: read only up to the limit, then refused while the client is still sending
    s = _raw(shared_api.url, b"POST /replays HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                             b"Transfer-Encoding: chunked\r\n\r\n")
    block = b"%x\r\n%s\r\n" % (64 * 1024, b"x" * 64 * 1024)
    sent = 0
    s.setblocking(False)
    answered = b""
    while sent < 50 * MB:
        readable, writable, _ = select.select([s], [s], [], 5)
        if readable:
            break
        if not writable:
            break
        try:
            sent += s.send(block)
        except (BlockingIOError, BrokenPipeError, ConnectionResetError):
            break
    s.setblocking(True)
    answered = _response(s)
    s.close()
    assert answered.startswith(b"HTTP/1.1 413"), answered[:200]
    # the socket buffers on both sides hold a few MB; the API itself stopped at the limit
    assert sent < limit + 16 * MB, sent


def test_a_422_quotes_only_an_excerpt_of_what_was_sent(shared_api: Api) -> None:
    huge = "r" * (5 * MB // 10)  # a 500 kB robot id in the query string is past uvicorn's limit; this is not
    with shared_api.client("engineer") as c:
        r = c.post("/replays", json={"shift": "x" * (3 * MB)})
        assert r.status_code == 422 and len(r.content) < 2000, len(r.content)
        r = c.post("/replays", json={"start": "2026-11-27T00:00:00Z", "end": "2026-11-27T01:00:00Z",
                                     "overrides": {"k" * MB: 1.0}})
        assert r.status_code == 422 and len(r.content) < 2000, len(r.content)
        r = c.get("/telemetry/latest", params={"scenario": "mf01", "robot": huge[:8000]})
        assert r.status_code == 422 and len(r.content) < 2000, len(r.content)
        r = c.get("/telemetry/latest", params={"scenario": "q" * 8000})
        assert r.status_code == 422 and len(r.content) < 2000 and "unknown scenario" in r.text


def test_every_response_carries_the_security_headers(shared_api: Api) -> None:
    with shared_api.client("integrator") as c:
        for r in (c.get("/healthz"), c.get("/"), c.get("/alerts", headers={"X-API-Key": "wrong"}), c.get("/nowhere"),
                  c.get("/scenarios"), c.options("/replays"), c.get("/openapi.json"), c.get("/docs")):
            h = r.headers
            assert h["x-content-type-options"] == "nosniff", r.url
            assert h["x-frame-options"] == "DENY" and "frame-ancestors 'none'" in h["content-security-policy"], r.url
            assert h["referrer-policy"] == "no-referrer", r.url
        assert "script-src 'self';" in c.get("/").headers["content-security-policy"]


def test_a_method_a_path_does_not_serve_is_405_with_the_methods_it_does(shared_api: Api) -> None:
    with shared_api.client("engineer") as c:
        for path, allowed in [("/replays", {"GET", "HEAD", "POST"}), ("/replays/rp-x", {"GET", "HEAD", "DELETE"}),
                              ("/alerts/a1/ack", {"POST"}), ("/scenarios", {"GET", "HEAD"})]:
            r = c.request("PATCH", path)
            assert r.status_code == 405, (path, r.text)
            assert set(r.headers["allow"].split(", ")) == allowed, (path, r.headers["allow"])


def test_documents_are_open_and_everything_else_needs_a_key(shared_api: Api) -> None:
    with shared_api.client(None) as c:
        for path in ("/healthz", "/metrics", "/openapi.json", "/docs", "/"):
            assert c.get(path).status_code == 200, path
        for path in ("/me", "/scenarios", "/alerts", "/replays", "/shifts/current"):
            assert c.get(path).status_code == 401, path


def test_influxdb_going_away_answers_plainly(mosquitto: Mosquitto, fresh_influxd: Influxd, unique: str) -> None:
    db = SyncInflux(fresh_influxd.url, f"db_{unique}")
    db.ensure_db()
    db.close()
    s = Settings(mqtt_url=mosquitto.url, influx_url=fresh_influxd.url, influx_db=f"db_{unique}",
                 topic_prefix=f"t{unique}/v1", api_keys=f"{KEYS['integrator']}:integrator")
    server, thread, url = serve(s)
    try:
        fresh_influxd.stop()
        r = httpx.get(f"{url}/telemetry/latest", params={"scenario": "mf01"}, headers={"X-API-Key": KEYS["integrator"]})
        assert r.status_code == 503
        assert r.json() == {"detail": "the database is unreachable; try again later"}
    finally:
        server.should_exit = True
        thread.join(timeout=15)


def test_stream_clients_beyond_the_cap_are_turned_away(settings: Settings, start_api: Callable[..., Api]) -> None:
    settings.api_max_streams = 2
    api = start_api()
    key = KEYS["integrator"]
    with httpx.Client(base_url=api.url, timeout=10) as c, contextlib.ExitStack() as streams:
        open_streams = []
        for _ in range(2):
            r = streams.enter_context(c.stream("GET", "/stream", headers={"X-API-Key": key}))
            lines = r.iter_lines()
            assert r.status_code == 200 and next(lines) == "event: active"  # in, with its snapshot
            open_streams.append((r, lines))  # the line iterator too: dropping it closes the response
        r = c.get("/stream", headers={"X-API-Key": key})
        assert r.status_code == 503 and "at most" in r.json()["detail"] and r.headers["retry-after"]
        with connect(f"{api.url.replace('http', 'ws')}/ws?api_key={key}") as ws:
            with pytest.raises(ConnectionClosed) as closed:
                ws.recv(timeout=10)
        assert closed.value.rcvd is not None and closed.value.rcvd.code == 1013
        open_streams.pop()[0].close()

        def third_ok() -> bool:  # a place came free
            with c.stream("GET", "/stream", headers={"X-API-Key": key}) as r:
                return r.status_code == 200

        assert wait_for(third_ok, what="a free place after one client left")


def test_no_secret_reaches_the_log(mosquitto: Mosquitto, influx_db: SyncInflux, tmp_path: Path) -> None:
    """The `minewatch api` process's whole output (its start-up line, uvicorn's access log, the
    API's warnings) holds no password, key or token."""
    port = free_port()
    password, key = "s3cret-broker-pw", "k3y-never-logged"
    url = mosquitto.url.replace("mqtt://", f"mqtt://ingest:{password}@")
    env = {**os.environ, "MINEWATCH_API_KEYS": f"{key}:integrator", "MINEWATCH_INFLUX_PASSWORD": "influx-pw"}
    log = tmp_path / "api.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen([sys.executable, "-m", "minewatch", "api", "--mqtt-url", url, "--influx-url",
                                 influx_db.url, "--influx-db", influx_db.db, "--port", str(port), "--log-level", "info"],
                                env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        base = f"http://127.0.0.1:{port}"
        wait_http(f"{base}/healthz", timeout=30, interval=0.2)
        httpx.get(f"{base}/scenarios", params={"api_key": key})
        httpx.get(f"{base}/alerts", params={"scenario": "mf01", "api_key": key, "since": "0"})
        httpx.get(f"{base}/me", headers={"Authorization": f"Bearer {key}"})
        httpx.get(f"{base}/me?token={key}&password={password}")
    finally:
        proc.send_signal(signal.SIGINT)
        proc.wait(timeout=20)
    text = log.read_text(errors="replace")
    assert "GET /scenarios?api_key=*** HTTP/1.1" in text, text[-2000:]
    assert "mqtt://ingest:***@" in text
    for secret in (password, key, "influx-pw"):
        assert secret not in text, (secret, text[-2000:])


def test_a_body_that_stops_coming_is_answered_408(settings: Settings, start_api: Callable[..., Api],
                                                  publisher: Publisher) -> None:
    settings.api_read_timeout_s = 1.0
    api = start_api()
    s = _raw(api.url, b"POST /replays HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                      b"Content-Length: 100\r\n\r\n{\"from\": ")
    t0 = time.monotonic()
    got = _response(s)
    s.close()
    assert got.startswith(b"HTTP/1.1 408"), got[:200]
    assert time.monotonic() - t0 < 5 and b"stopped coming" in got
    # a stream, whose body is long done, is not timed out
    with httpx.Client(base_url=api.url, timeout=10) as c, c.stream("GET", "/stream",
                                                                   headers={"X-API-Key": KEYS["integrator"]}) as r:
        lines = r.iter_lines()
        assert next(lines) == "event: active"
        time.sleep(2.0)
        ev = event(f"mf01.ch4_t1.gas_limit.{time.time_ns()}")
        publisher.alert(ev)
        assert any(ev.alert_id in line for line in lines)
