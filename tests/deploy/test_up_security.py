"""`minewatch up` is safe by default: its broker and InfluxDB demand the accounts it made."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest

from minewatch.influx import InfluxError, SyncInflux
from minewatch.security import load_credentials
from minewatch.services import find_program, free_port, wait_http
from minewatch.topics import Topics
from minewatch.up import System, integrator_command
from tests.second_run import processes_of, run_second, stop_all

from .probe import login, publish_once

pytestmark = pytest.mark.integration
NOT_AUTHORIZED = 135


def test_up_servers_refuse_strangers_and_keep_accounts_across_restarts(tmp_path: Path) -> None:
    home = tmp_path / "home"
    system = System(home, free_port(), free_port(), free_port(), simulate=False, log=lambda *a: None)
    try:
        system.start_servers()
        assert system.auth is not None
        broker = f"mqtt://127.0.0.1:{system.mqtt_port}"
        assert login(broker) == NOT_AUTHORIZED
        assert login(system.auth.url("ingest", port=system.service_port)) == 0
        assert login(system.auth.url("ingest", port=system.mqtt_port)) == NOT_AUTHORIZED  # services: their port only
        assert login(system.auth.url("integrator", port=system.service_port)) == NOT_AUTHORIZED
        t = Topics()
        assert publish_once(system.auth.url("integrator", port=system.mqtt_port), t.alert("mf01", "gas")) == NOT_AUTHORIZED
        assert publish_once(system.auth.url("simulator", port=system.service_port), t.telemetry("mf01", "r01")) < 128

        pw = load_credentials(home / "secrets")["influx"]
        anonymous = SyncInflux(system.influx_url, "minewatch")
        api = SyncInflux(system.influx_url, "minewatch", user="api", password=pw["api"])
        ingest = SyncInflux(system.influx_url, "minewatch", user="ingest", password=pw["ingest"])
        try:
            with pytest.raises(InfluxError) as refused:
                anonymous.query("SHOW MEASUREMENTS")
            assert refused.value.status == 401
            now = time.time_ns()  # inside the raw retention policy whatever the date
            ingest.write([f"telemetry,scenario=mf01,robot=r01 ch4_t1=0.4 {now}"])
            assert api.count("telemetry", "ch4_t1") == 1
            with pytest.raises(InfluxError) as read_only:
                api.write([f"telemetry,scenario=mf01,robot=r01 ch4_t1=0.5 {now + 1_000_000_000}"])
            assert read_only.value.status == 403
            assert {r["name"] for r in ingest.query("SHOW RETENTION POLICIES")} >= {"raw", "long"}
        finally:
            for c in (anonymous, api, ingest):
                c.close()
        first = {name: a.password for name, a in system.auth.accounts.items()}
    finally:
        system.stop()
    again = System(home, free_port(), free_port(), free_port(), simulate=False, log=lambda *a: None)
    try:
        again.start_servers()  # same home: same accounts, InfluxDB users found in place
        assert again.auth is not None
        assert {name: a.password for name, a in again.auth.accounts.items()} == first
        assert login(again.auth.url("api", port=again.service_port)) == 0
    finally:
        again.stop()


def test_the_printed_integrator_command_follows_alerts_and_incidents(tmp_path: Path) -> None:
    """The mosquitto_sub line `minewatch up` prints, run as printed (with -C 2: leave after two)."""
    system = System(tmp_path / "home", free_port(), free_port(), free_port(), simulate=False, log=lambda *a: None)
    try:
        system.start_servers()
        assert system.auth is not None
        cmd = integrator_command(system.auth["integrator"].password, system.mqtt_port)
        assert cmd.startswith("mosquitto_sub ")
        sub = subprocess.Popen(["sh", "-c", "exec " + cmd.replace("mosquitto_sub", find_program("mosquitto_sub"), 1)
                                + " -C 2 -W 20"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        t = Topics()
        ingest = system.auth.url("ingest", port=system.service_port)
        got = ""
        for _ in range(50):  # until the subscription is in place, then once more of each
            publish_once(ingest, t.alert("mf01", "gas"), b'{"alert": 1}')
            publish_once(ingest, t.incident("mf01", "methane"), b'{"incident": 1}')
            if sub.poll() is not None:
                break
            time.sleep(0.1)
        got, err = sub.communicate(timeout=20)
        assert sub.returncode == 0, err
        lines = got.splitlines()
        assert {ln.split(" ", 1)[0] for ln in lines} == {t.alert("mf01", "gas"), t.incident("mf01", "methane")}, lines
    finally:
        system.stop()


def test_a_second_up_on_the_same_home_is_refused_and_leaves_the_first_alone(tmp_path: Path) -> None:
    """Two systems on one data directory would run two influxd on one set of shards and two
    brokers on one persistence file; the second would also rewrite the first's env file (its
    URLs then pointing at ports nobody serves)."""
    home = tmp_path / "home"
    first = System(home, free_port(), free_port(), free_port(), simulate=False, log=lambda *a: None)
    try:
        first.start_servers()
        assert first.auth is not None
        env = home / "env"
        env.write_text("MINEWATCH_API_URL=http://127.0.0.1:1\n")  # what the first run wrote, as far as this test goes
        rc, out, err = run_second(_up_args(home))
        assert rc == 1, out + err
        assert "already running" in err and str(home) in err, err
        assert "minewatch is up" not in out
        assert env.read_text() == "MINEWATCH_API_URL=http://127.0.0.1:1\n"
        assert not (home / "ingest.log").exists()
        assert login(first.auth.url("ingest", port=first.service_port)) == 0
    finally:
        first.stop()
    _servers_start_on(home)  # once the first has stopped, the home is free again


def test_an_up_killed_outright_leaves_its_home_locked_while_what_it_started_runs(tmp_path: Path) -> None:
    """`minewatch up` killed with SIGKILL leaves its broker, InfluxDB, ingestor and API running
    (each in a session of its own). A new `up` on other ports would start a second influxd on the
    same shards beside the one left: refused while any of them lives."""
    home = tmp_path / "home"
    api_port = free_port()
    first = subprocess.Popen([sys.executable, "-m", "minewatch", *_up_args(home, api_port)],
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL)
    try:
        wait_http(f"http://127.0.0.1:{api_port}/healthz", timeout=60)
        first.kill()
        first.wait(10)
        left = [p for p in processes_of(home) if p != first.pid]
        assert len(left) >= 4, left  # broker, InfluxDB, ingestor, API
        rc, out, err = run_second(_up_args(home))
        assert rc == 1, out + err
        assert "already running" in err and str(home) in err, err
    finally:
        if first.poll() is None:
            first.kill()
        stop_all(lambda: processes_of(home))
    _servers_start_on(home)  # what it started has gone: the home is free again


def _servers_start_on(home: Path) -> None:
    system = System(home, free_port(), free_port(), free_port(), simulate=False, log=lambda *a: None)
    try:
        system.start_servers()
    finally:
        system.stop()


def _up_args(home: Path, api_port: int | None = None) -> list[str]:
    """`up` on ``home``, without the simulator, every port a free one."""
    return ["up", "--home", str(home), "--no-simulator", "--api-port", str(api_port or free_port()),
            *[a for opt in ("--mqtt-port", "--service-port", "--influx-port", "--metrics-port")
              for a in (opt, str(free_port()))]]
