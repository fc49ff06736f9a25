"""`minewatch up` runs the whole system and stops it cleanly on Ctrl-C."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from minewatch.services import free_port

pytestmark = pytest.mark.integration


def test_up_serves_31_scenarios_raises_a_first_alert_and_stops_on_ctrl_c(tmp_path: Path) -> None:
    home = tmp_path / "home"
    ports = {"--mqtt-port": free_port(), "--influx-port": free_port(), "--api-port": free_port()}
    argv = [sys.executable, "-m", "minewatch", "up", "--home", str(home)]
    for k, v in ports.items():
        argv += [k, str(v)]
    # The demo fault comes within two minutes of simulated time; run the clock 10x to keep the test short.
    argv += ["--sim-arg=--speed", "--sim-arg=10"]
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True)
    started = time.monotonic()
    try:
        keys = _wait(lambda: json.loads((home / "api-keys.json").read_text()) if (home / "api-keys.json").exists() else None, 30)
        api = httpx.Client(base_url=f"http://127.0.0.1:{ports['--api-port']}", headers={"X-API-Key": keys["operator"]},
                           timeout=5)
        scen = _wait(lambda: _get(api, "/scenarios"), 60)
        assert len(scen["data"]) == 31
        assert time.monotonic() - started < 60
        alerts = _wait(lambda: _get(api, "/alerts") and (_get(api, "/alerts") or {}).get("data"), 120)
        assert alerts and alerts[0]["message"]
    finally:
        proc.send_signal(signal.SIGINT)
        out, _ = proc.communicate(timeout=60)
    text = out.decode(errors="replace")
    assert proc.returncode == 0, text
    assert "minewatch is up" in text and "stopped." in text
    assert f"?api_key={keys['operator']}" in text
    # Everything it started is gone: the ports are free again.
    import socket

    for port in ports.values():
        with socket.socket() as s:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            s.bind(("127.0.0.1", port))


def _get(api: httpx.Client, path: str) -> dict | None:
    try:
        r = api.get(path)
    except httpx.HTTPError:
        return None
    return r.json() if r.status_code == 200 else None


def _wait(fn, timeout: float):  # noqa: ANN001, ANN202
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        got = fn()
        if got:
            return got
        time.sleep(0.5)
    raise AssertionError(f"timed out after {timeout} s")
