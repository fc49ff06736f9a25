"""docker-compose.group.yml and deploy/group/, checked without a Docker engine: written by the same
code as ``minewatch group up`` runs, equal to what ``python -m group.compose`` writes now, and
every NATS configuration valid for nats-server itself (``-t``)."""

from __future__ import annotations

import subprocess
from pathlib import Path

import yaml

from group.compose import API_HOST, API_PORT, COMPOSE_MINES, ENDPOINTS, ROOT, write
from group.stack import centre_commands, mine_commands, mine_ids
from minewatch.services import find_program

COMPOSE = yaml.safe_load((ROOT / "docker-compose.group.yml").read_text())


def test_the_committed_files_are_the_ones_the_code_writes(tmp_path: Path) -> None:
    for path in write(tmp_path):
        committed = ROOT / path.relative_to(tmp_path)
        assert committed.read_text() == path.read_text(), f"{committed} is stale: run python -m group.compose"


def test_the_services_run_the_commands_of_group_up() -> None:
    services = COMPOSE["services"]
    mines = mine_ids(COMPOSE_MINES)
    want = centre_commands(mines, ENDPOINTS, api_host=API_HOST, api_port=API_PORT)
    for i, m in enumerate(mines):
        want.update(mine_commands(m, ENDPOINTS, seed=i + 1))
    for name, cmd in want.items():
        assert services[name]["command"] == cmd, name
        assert services[name]["image"].startswith("minewatch:")
    assert {f"leaf-{m}" for m in mines} | {"nats-c1", "nats-c2", "nats-c3", "alerts"} <= set(services)
    for name, svc in services.items():
        for dep in svc.get("depends_on", {}):
            assert dep in services, (name, dep)
        for vol in svc.get("volumes", []):
            src = vol.split(":")[0]
            assert (ROOT / src).exists() if src.startswith("./") else src in COMPOSE["volumes"], (name, src)


def test_every_nats_configuration_is_valid_for_nats_server() -> None:
    confs = sorted((ROOT / "deploy" / "group").glob("*.conf"))
    nats = [c for c in confs if c.name != "mosquitto.conf"]
    assert len(nats) == 3 + COMPOSE_MINES
    for conf in nats:
        r = subprocess.run([find_program("nats-server"), "-c", str(conf), "-t"], capture_output=True, text=True,
                           timeout=30)
        assert r.returncode == 0 and "is valid" in r.stdout + r.stderr, (conf, r.stdout, r.stderr)
