"""`minewatch up` leaves `.minewatch/env`; commands run from another shell, with nothing of
minewatch in their environment, find the system through it. Refused credentials name the file
and the variables."""

from __future__ import annotations

import json
import os
import signal
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest

from minewatch.services import free_port
from minewatch.shifts import ShiftCalendar

pytestmark = pytest.mark.integration


def _clean_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MINEWATCH_")}
    env.update(extra)
    return env


def _minewatch(*args: str, cwd: Path, env: dict[str, str], timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "minewatch", *args], cwd=cwd, env=env, capture_output=True, text=True,
                          timeout=timeout)


def test_commands_in_another_shell_find_the_system_through_the_env_file(tmp_path: Path) -> None:
    work = tmp_path / "work"
    work.mkdir()
    ports = {"--mqtt-port": free_port(), "--service-port": free_port(), "--influx-port": free_port(),
             "--api-port": free_port()}
    argv = [sys.executable, "-m", "minewatch", "up", "--no-simulator"]
    for k, v in ports.items():
        argv += [k, str(v)]
    up = subprocess.Popen(argv, cwd=work, env=_clean_env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                          start_new_session=True, text=True)
    lines: list[str] = []
    try:
        assert up.stdout is not None
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            line = up.stdout.readline()
            assert line, "".join(lines)
            lines.append(line)
            if line.startswith("Ctrl-C"):
                break
        text = "".join(lines)
        env_file = work / ".minewatch" / "env"
        assert stat.S_IMODE(env_file.stat().st_mode) == 0o600
        assert str(env_file) in text
        values = dict(line.split("=", 1) for line in env_file.read_text().splitlines() if line and line[0] != "#")
        assert values["MINEWATCH_MQTT_URL"].endswith(f"@127.0.0.1:{ports['--service-port']}")
        assert values["MINEWATCH_INFLUX_URL"] == f"http://127.0.0.1:{ports['--influx-port']}"
        assert values["MINEWATCH_API_URL"] == f"http://127.0.0.1:{ports['--api-port']}"

        # another shell, in the same directory, nothing of minewatch in its environment
        shell = _clean_env()
        sim = _minewatch("simulate", "--frames", "10", "--scenarios", "mf01", cwd=work, env=shell)
        assert sim.returncode == 0, sim.stderr
        assert json.loads(sim.stdout.splitlines()[-1])["frames"] == 10
        shift = ShiftCalendar().at_ns(time.time_ns()).id  # the shift of now, by the default calendar
        for _ in range(40):  # the ingestor stores the frames within moments
            rep = _minewatch("replay", "--shift", shift, "--out", str(work / "alerts.jsonl"), cwd=work, env=shell)
            assert rep.returncode == 0, rep.stderr
            summary = json.loads(rep.stderr.strip().splitlines()[-1])
            if summary["frames"]:
                break
            time.sleep(0.5)
        assert summary["frames"] > 0 and summary["window"] == shift, summary
        report = _minewatch("report", "--shift", shift, "--out", str(work / "shift.html"), cwd=work, env=shell)
        assert report.returncode == 0, report.stderr
        assert (work / "shift.html").read_text().startswith("<!")
        # elsewhere, with MINEWATCH_DATA_DIR naming the directory
        elsewhere = tmp_path / "elsewhere"
        elsewhere.mkdir()
        again = _minewatch("simulate", "--frames", "10", "--scenarios", "mf01", cwd=elsewhere,
                           env=_clean_env(MINEWATCH_DATA_DIR=str(work / ".minewatch")))
        assert again.returncode == 0, again.stderr
        # the environment wins over the file: a wrong password is refused, and the message says what to set
        wrong = _minewatch("report", "--shift", shift, "--out", str(work / "x.html"), cwd=work,
                           env=_clean_env(MINEWATCH_INFLUX_PASSWORD="wrong"))
        assert wrong.returncode != 0
        assert "MINEWATCH_INFLUX_PASSWORD" in wrong.stderr and str(env_file.resolve()) in wrong.stderr, wrong.stderr
    finally:
        up.send_signal(signal.SIGINT)
        out, _ = up.communicate(timeout=60)
    assert up.returncode == 0, "".join(lines) + out


def test_refused_credentials_name_the_env_file_and_the_variable(tmp_path: Path) -> None:
    """Without an env file, InfluxDB's 401 and the broker's refusal say what to set and where."""
    from minewatch.services import Influxd, Mosquitto
    from minewatch.security import write_broker_auth

    home = tmp_path / "srv"
    auth = write_broker_auth(home / "secrets")
    broker = Mosquitto(home / "mosquitto", free_port(), password_file=auth.password_file, acl_file=auth.acl_file,
                       service_password_file=auth.service_password_file, service_acl_file=auth.service_acl_file,
                       service_port=free_port())
    influx = Influxd(home / "influxdb", free_port(), auth=True)
    broker.start()
    influx.start()
    try:
        from minewatch.storage import bootstrap_users_sync

        bootstrap_users_sync(influx.url, "minewatch", admin=("admin", "pw-admin"), users={}).close()
        shell = _clean_env()
        rep = _minewatch("replay", "--influx-url", influx.url, "--from", "0", "--to", "1000000000", cwd=tmp_path,
                         env=shell)
        assert rep.returncode == 1
        assert "401" in rep.stderr and "MINEWATCH_INFLUX_USER and MINEWATCH_INFLUX_PASSWORD" in rep.stderr
        assert str((tmp_path / ".minewatch" / "env").resolve()) in rep.stderr and "minewatch up" in rep.stderr
        sim = _minewatch("simulate", "--frames", "1", "--scenarios", "mf01", "--mqtt-url",
                         f"mqtt://simulator:wrong@127.0.0.1:{broker.service_port}", cwd=tmp_path, env=shell)
        assert sim.returncode == 1
        assert "MINEWATCH_MQTT_URL" in sim.stderr and ".minewatch/env" in sim.stderr, sim.stderr
    finally:
        influx.stop()
        broker.stop()
