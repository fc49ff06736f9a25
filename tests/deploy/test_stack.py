"""The deployment of docker-compose.yml, run without Docker: the shipped broker and InfluxDB
configurations with auth on, the storage job, two ingest partitions, the API and the simulator
running the compose commands (minewatch.stack) with the environment files minewatch.security
writes, and every compose healthcheck passing against them. Then a robot that speaks for
another is dead-lettered by the ingestor.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest
import yaml

from minewatch.influx import SyncInflux
from minewatch.schema import DeadLetter
from minewatch.security import load_credentials, write_deploy_secrets
from minewatch.services import Influxd, free_port
from minewatch.stack import STORAGE_JOB, healthchecks, service_commands
from minewatch.storage import LONG_RP, RAW_RP, bootstrap_users_sync
from minewatch.topics import Topics

from .conftest import ROBOTS, DeployBroker, deploy_influxdb_config, start_deploy_broker
from .probe import Session, publish_once

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
COMPOSE = yaml.safe_load((ROOT / "docker-compose.yml").read_text())["services"]
T = Topics()


def _env_file(path: Path) -> dict[str, str]:
    return dict(line.split("=", 1) for line in path.read_text().splitlines() if line)


def _python(argv: list[str]) -> list[str]:
    return [sys.executable, *argv[1:]] if argv[0] == "python" else argv


@dataclass
class Stack:
    root: Path
    broker: DeployBroker
    influx: Influxd
    env: dict[str, dict[str, str]]
    procs: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)
    ports: dict[str, int] = field(default_factory=dict)

    def run(self, name: str, argv: list[str], env_name: str, extra: dict[str, str]) -> None:
        data = self.root / name  # the service's /data volume
        data.mkdir(exist_ok=True)
        env = {**os.environ, **self.env[env_name], **extra, "MINEWATCH_DATA_DIR": str(data)}
        log = open(self.root / f"{name}.log", "ab")
        self.procs[name] = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True)
        log.close()

    def log(self, name: str) -> str:
        return (self.root / f"{name}.log").read_text(errors="replace")[-3000:]

    def admin(self) -> SyncInflux:
        e = self.env["storage"]
        return SyncInflux(self.influx.url, e["MINEWATCH_INFLUX_DB"], user=e["MINEWATCH_INFLUX_USER"],
                          password=e["MINEWATCH_INFLUX_PASSWORD"])


def _wait(check, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while True:
        got = check()
        if got:
            return got
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.3)


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    root = tmp_path_factory.mktemp("stack")
    mqtt_port, service_port, influx_port = free_port(), free_port(), free_port()
    influx = Influxd(root / "influxdb", influx_port,
                     config=deploy_influxdb_config(root / "influxdb", influx_port, free_port()))
    files = write_deploy_secrets(root / "secrets", robots=ROBOTS, mqtt_host="127.0.0.1", mqtt_port=service_port,
                                 influx_url=influx.url)
    env = {name: _env_file(path) for name, path in files.items()}
    broker = start_deploy_broker(root, port=mqtt_port, service_port=service_port)
    s = Stack(root, broker, influx, env)
    try:
        influx.start()
        # What the influxdb image does on its first start, from influxdb.env.
        i = env["influxdb"]
        bootstrap_users_sync(influx.url, i["INFLUXDB_DB"], admin=(i["INFLUXDB_ADMIN_USER"], i["INFLUXDB_ADMIN_PASSWORD"]),
                             users={i["INFLUXDB_USER"]: (i["INFLUXDB_USER_PASSWORD"], "ALL"),
                                    i["INFLUXDB_READ_USER"]: (i["INFLUXDB_READ_USER_PASSWORD"], "READ")},
                             setup=False).close()
        job = subprocess.run([sys.executable, "-m", "minewatch", *STORAGE_JOB], env={**os.environ, **env["storage"]},
                             capture_output=True,
                             text=True, timeout=120)
        assert job.returncode == 0, job.stderr
        assert "CREATE CONTINUOUS QUERY" in job.stdout
        commands = service_commands(partitions=2, data_dir=str(root / "simulator"))
        s.ports = {"api": free_port(), "ingest-0": free_port(), "ingest-1": free_port()}
        for name, args in commands.items():
            extra = {k: str(v) for k, v in (COMPOSE[name].get("environment") or {}).items()}
            if name.startswith("ingest"):
                extra["MINEWATCH_METRICS_PORT"] = str(s.ports[name])
            if name == "api":
                extra.update(MINEWATCH_API_HOST="127.0.0.1", MINEWATCH_API_PORT=str(s.ports["api"]))
            s.run(name, [sys.executable, "-m", "minewatch", *args], name.split("-")[0], extra)
        yield s
    finally:
        for p in s.procs.values():
            if p.poll() is None:
                p.terminate()
        for p in s.procs.values():
            try:
                p.wait(30)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
        influx.stop()
        broker.broker.stop()


def test_every_compose_healthcheck_passes(stack: Stack) -> None:
    mosq = COMPOSE["mosquitto"]["healthcheck"]["test"]
    assert mosq[0] == "CMD-SHELL"
    shell = mosq[1].replace("$$", "$").replace("-p 1884", f"-p {stack.broker.service_port}")
    checks: dict[str, tuple[list[str], dict[str, str]]] = {
        "mosquitto": (["sh", "-c", shell], stack.env["mosquitto"]),
        "influxdb": ([a.replace(":8086", f":{stack.influx.port}") for a in COMPOSE["influxdb"]["healthcheck"]["test"][1:]], {}),
    }
    for name in ("ingest-0", "ingest-1", "api"):
        port = stack.ports[name]
        argv = healthchecks(api_port=port, metrics_port=port)[name.split("-")[0]]
        checks[name] = (_python(argv), {})
    checks["simulator"] = (_python(healthchecks()["simulator"]), stack.env["simulator"])

    def healthy(argv: list[str], env: dict[str, str]) -> bool:
        return subprocess.run(argv, env={**os.environ, **env}, capture_output=True, timeout=30).returncode == 0

    for name, (argv, env) in checks.items():
        proc = stack.procs.get(name)
        _wait(lambda: healthy(argv, env) or (proc is not None and proc.poll() is not None),  # noqa: B023 - waited on at once
              90, f"{name} healthy")
        assert proc is None or proc.poll() is None, f"{name} exited:\n{stack.log(name)}"
    # A wrong password makes the broker's check fail: it really logs in.
    assert not healthy(["sh", "-c", shell], {"HEALTHCHECK_PASSWORD": "wrong"})


def test_readings_of_both_partitions_are_stored_and_the_api_serves(stack: Stack) -> None:
    from ingest.partition import Partition

    admin = stack.admin()
    try:
        def scenarios() -> set[str]:
            rows = admin.query(f'SHOW TAG VALUES FROM "{RAW_RP}"."telemetry" WITH KEY = "scenario"')
            return {r["value"] for r in rows}

        seen = _wait(lambda: (lambda s: s if len(s) >= 20 else None)(scenarios()), 90, "telemetry of most scenarios")
        for i in range(2):
            assert any(Partition(i, 2).owns(sid) for sid in seen), f"nothing stored by partition {i}/2"
        assert {r["name"] for r in admin.query("SHOW RETENTION POLICIES")} >= {RAW_RP, LONG_RP}
    finally:
        admin.close()
    key = load_credentials(stack.root / "secrets")["api_keys"]["operator"]
    r = httpx.get(f"http://127.0.0.1:{stack.ports['api']}/scenarios", headers={"X-API-Key": key}, timeout=10)
    assert r.status_code == 200 and len(r.json()["data"]) == 31
    assert httpx.get(f"http://127.0.0.1:{stack.ports['api']}/scenarios", timeout=10).status_code == 401


def test_a_frame_naming_another_robot_is_dead_lettered(stack: Stack) -> None:
    """r01's account may publish on r01's topic only; a frame there that claims to be r02's is
    refused by the ingestor with the reason, and r01's honest frame beside it is stored."""
    auth = stack.broker.auth
    url = auth.url("r01", port=stack.broker.broker.port)
    topic = T.telemetry("mf01", "r01")
    now = time.time_ns() - 3_600_000_000_000 + 123_457  # an hour ago, an instant no one else uses
    lie = {"robot_id": "r02", "scenario_id": "mf01", "seq": 1, "ts": now, "readings": {"ch4_t1": 0.42}}
    honest = {"robot_id": "r01", "scenario_id": "mf01", "seq": 2, "ts": now + 1, "readings": {"ch4_t1": 0.41}}
    with Session(stack.broker.url("api")) as watcher:
        watcher.subscribe(T.all_deadletter)
        assert publish_once(url, topic, json.dumps(lie).encode()) == 0
        assert publish_once(url, topic, json.dumps(honest).encode()) == 0
        msg = watcher.wait_for(T.deadletter("topic_mismatch"), timeout=30)
    dead = DeadLetter.model_validate_json(msg.payload)
    assert dead.reason == "topic_mismatch" and dead.topic == topic and dead.payload_encoding == "utf-8"
    assert json.loads(dead.payload) == lie and "r02" in dead.detail
    admin = stack.admin()
    try:
        stored = _wait(lambda: admin.query(f'SELECT * FROM "{RAW_RP}"."telemetry" WHERE time >= {now} AND time <= {now + 1}'),
                       30, "the honest frame in InfluxDB")
        assert [(r["robot"], r["time"]) for r in stored] == [("r01", now + 1)]
    finally:
        admin.close()


def test_a_robot_cannot_send_telemetry_for_a_scenario_not_its_own(stack: Stack) -> None:
    """r01 is stationed at mf01: the broker refuses its frame for mf02 (nothing is stored), and
    takes its own."""
    url = stack.broker.url("r01")
    now = time.time_ns() - 3_600_000_000_000 + 654_321  # an hour ago, an instant no one else uses
    foreign = {"robot_id": "r01", "scenario_id": "mf02", "seq": 1, "ts": now, "readings": {"ch4_t1": 0.42}}
    own = {"robot_id": "r01", "scenario_id": "mf01", "seq": 2, "ts": now + 1, "readings": {"ch4_t1": 0.41}}
    assert publish_once(url, T.telemetry("mf02", "r01"), json.dumps(foreign).encode()) == 135  # not authorized
    assert publish_once(url, T.telemetry("mf01", "r01"), json.dumps(own).encode()) == 0
    admin = stack.admin()
    try:
        query = f'SELECT * FROM "{RAW_RP}"."telemetry" WHERE time >= {now} AND time <= {now + 1}'
        _wait(lambda: admin.query(query), 30, "r01's own frame in InfluxDB")
        time.sleep(1.0)  # the refused one would be in the same batch or the next
        assert [(r["robot"], r["scenario"], r["time"]) for r in admin.query(query)] == [("r01", "mf01", now + 1)]
    finally:
        admin.close()


def test_services_stop_cleanly_on_sigterm(stack: Stack) -> None:
    """What `docker compose stop` sends; the ingestor flushes and acknowledges on the way out."""
    for name in ("simulator", "ingest-0", "ingest-1", "api"):
        p = stack.procs[name]
        assert p.poll() is None, f"{name} died:\n{stack.log(name)}"
        p.terminate()
        code = p.wait(30)
        if name == "api":  # uvicorn shuts down, then re-raises the signal it got
            assert code in (0, -signal.SIGTERM) and "Application shutdown complete" in stack.log(name), stack.log(name)
        else:
            assert code == 0, f"{name} exited with {code}:\n{stack.log(name)}"
    assert "stopped:" in stack.log("ingest-0") and '"frames"' in stack.log("simulator")
