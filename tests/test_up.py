"""`minewatch up` runs the whole system and stops it cleanly on Ctrl-C; started a second time on
the same data directory, it watches the whole fleet again from its first frame and leaves no
alert of the first run standing."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from minewatch.mqtt import paho_client
from minewatch.services import free_port
from minewatch.settings import parse_mqtt_url
from minewatch.topics import Topics
from tests.second_run import run_second

pytestmark = pytest.mark.integration

PREFIX = "minewatch/v1"
SCENARIOS = "mf01,hf02,lf02,ra01,bc02"


def _faults(path: Path, start_s: int, duration_s: int) -> Path:
    path.write_text(json.dumps([{"kind": "methane_outburst", "scenario": "mf01", "channel": "ch4_t1",
                                 "start": f"+{start_s}s", "duration": f"{duration_s}s", "peak": 1.9}]))
    return path


class Up:
    """`minewatch up` as a user runs it, and a subscriber with the API's broker account."""

    def __init__(self, home: Path, ports: dict[str, int], faults: Path) -> None:
        argv = [sys.executable, "-m", "minewatch", "up", "--home", str(home)]
        for k, v in ports.items():
            argv += [k, str(v)]
        argv += ["--sim-arg=--scenarios", f"--sim-arg={SCENARIOS}", "--sim-arg=--faults", f"--sim-arg={faults}"]
        self.home, self.ports = home, ports
        self.proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True)
        self.keys = _wait(lambda: json.loads((home / "api-keys.json").read_text())
                          if (home / "api-keys.json").exists() else None, 30)
        self.api = httpx.Client(base_url=f"http://127.0.0.1:{ports['--api-port']}",
                                headers={"X-API-Key": self.keys["operator"]}, timeout=5)
        _wait(lambda: _get(self.api, "/scenarios"), 60)
        creds = json.loads((home / "secrets" / "credentials.json").read_text())
        self.messages: list[tuple[str, bytes, float]] = []
        self.lock = threading.Lock()
        target = parse_mqtt_url(f"mqtt://api:{creds['mqtt']['api']['password']}@127.0.0.1:{ports['--service-port']}")
        self.sub = paho_client(target, f"test-up-{time.time_ns()}")
        topics = Topics(PREFIX)
        ready = threading.Event()
        self.sub.on_connect = lambda c, u, f, rc, p: c.subscribe([(topics.all_alert_events, 1), (topics.all_incidents, 1),
                                                                  (topics.scenario_telemetry("mf01"), 1)])
        self.sub.on_subscribe = lambda *a: ready.set()
        self.sub.on_message = self._on_message
        self.sub.connect(target.host, target.port, 30)
        self.sub.loop_start()
        assert ready.wait(20)

    def _on_message(self, client, userdata, msg) -> None:
        with self.lock:
            self.messages.append((msg.topic, msg.payload, time.time()))

    def alert_events(self) -> list[tuple[dict, float]]:
        with self.lock:
            return [(json.loads(p), at) for t, p, at in self.messages if "/alerts/" in t and "/active/" not in t and p]

    def first_crossing(self) -> float | None:
        """When the first mf01 frame at or past the power-cut level arrived."""
        with self.lock:
            for t, p, at in self.messages:
                if "/telemetry/" in t:
                    frames = json.loads(p)
                    for f in frames if isinstance(frames, list) else [frames]:
                        if (f["readings"].get("ch4_t1") or 0) >= 1.5:
                            return at
        return None

    def stop(self) -> str:
        self.sub.loop_stop()
        self.sub.disconnect()
        self.proc.send_signal(signal.SIGINT)
        out, _ = self.proc.communicate(timeout=60)
        return out.decode(errors="replace")


def _critical(events: list[tuple[dict, float]]) -> list[tuple[dict, float]]:
    return [(e, at) for e, at in events if e["scenario_id"] == "mf01" and e["severity"] == "critical"
            and e["state"] in ("raised", "escalated") and e["kind"] == "gas"]


def test_up_runs_alerts_stops_on_ctrl_c_and_a_second_run_on_the_same_data_watches_from_its_first_frame(
        tmp_path: Path) -> None:
    home = tmp_path / "home"
    ports = {"--mqtt-port": free_port(), "--service-port": free_port(), "--influx-port": free_port(),
             "--api-port": free_port(), "--metrics-port": free_port()}
    started = time.monotonic()
    first = Up(home, ports, _faults(tmp_path / "f1.json", 6, 300))
    try:
        assert time.monotonic() - started < 60
        assert len(_get(first.api, "/scenarios")["data"]) == 31
        # the outburst: its power-cut alarm, within 2 s of the reading that crossed
        _wait(lambda: _critical(first.alert_events()), 60)
        (ev, at), *_ = _critical(first.alert_events())
        crossing = first.first_crossing()
        assert crossing is not None and at - crossing <= 2.0, (at, crossing)
        left = {a["alert_id"] for a in _get(first.api, "/alerts")["data"] if a["active"]}
        assert ev["alert_id"] in left
        # the ingestor's metrics are on, on the port given
        metrics = httpx.get(f"http://127.0.0.1:{ports['--metrics-port']}/metrics", timeout=5).text
        assert "minewatch_ingest_points_stored_total" in metrics and "minewatch_ingest_influx_up" in metrics
    finally:
        text = first.stop()
    assert first.proc.returncode == 0, text
    assert "minewatch is up" in text and "stopped." in text and f"?api_key={first.keys['operator']}" in text
    assert "-q 1" in text and "/incidents/+/+" in text
    assert f"http://127.0.0.1:{ports['--metrics-port']}/metrics (ingestor)" in text
    for port in ports.values():  # everything it started is gone: the ports are free again
        with socket.socket() as s:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            s.bind(("127.0.0.1", port))

    # the same data, again: the robots number their frames from 0 once more (a new boot)
    second = Up(home, ports, _faults(tmp_path / "f2.json", 12, 8))
    try:
        # what the first run left standing is over here (the air is clean, the robots report): it
        # clears, incidents with it
        def standing() -> set[str]:
            return left & {a["alert_id"] for a in (_get(second.api, "/alerts") or {}).get("data", []) if a["active"]}

        try:
            _wait(lambda: not standing(), 30)
        except AssertionError:
            raise AssertionError(f"alerts of the first run still standing: {standing()}") from None
        # the whole fleet is watched: the next outburst is alerted within 2 s of its crossing reading
        _wait(lambda: _critical(second.alert_events()), 60)
        (ev2, at2), *_ = _critical(second.alert_events())
        crossing2 = second.first_crossing()
        assert crossing2 is not None and at2 - crossing2 <= 2.0, (at2, crossing2)
        assert ev2["alert_id"] not in left
        _wait(lambda: any(e["alert_id"] == ev2["alert_id"] and e["state"] == "cleared"
                          for e, _ in second.alert_events()), 60)
        tiles = {s["id"]: s for s in _get(second.api, "/scenarios")["data"]}
        assert tiles["mf01"]["watch"]["watched"], tiles["mf01"]["watch"]
    finally:
        text = second.stop()
    assert second.proc.returncode == 0, text


def _get(api: httpx.Client, path: str) -> Any:
    try:
        r = api.get(path)
    except httpx.HTTPError:
        return None
    return r.json() if r.status_code == 200 else None


def _wait(fn, timeout: float):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        got = fn()
        if got:
            return got
        time.sleep(0.3)
    raise AssertionError(f"timed out after {timeout} s")


@pytest.mark.parametrize("kind", ["a-file", "lock-not-a-file", "read-only"])
@pytest.mark.parametrize("command", [["up"], ["group", "up", "--mines", "1"]], ids=["up", "group-up"])
def test_up_on_a_home_it_cannot_use_says_so(tmp_path: Path, kind: str, command: list[str]) -> None:
    """A --home that is a file, whose lock is not a file, or that this user may not write (another
    user's, read-only): a usage error naming it, not a traceback from opening the lock."""
    home = tmp_path / "home"
    if kind == "a-file":
        home.write_text("")
    elif kind == "lock-not-a-file":
        (home / "up.lock").mkdir(parents=True)
    else:
        if os.geteuid() == 0:
            pytest.skip("root writes a read-only directory")
        home.mkdir()
        home.chmod(0o555)
    try:
        rc, out, err = run_second([*command, "--home", str(home), "--no-simulator"])
    finally:
        if home.is_dir():
            home.chmod(0o755)
    assert rc == 1, out + err
    assert "Traceback" not in err and f"cannot use {home} as --home" in err, err
