"""``docker-compose.group.yml`` and the NATS configurations it mounts (``deploy/group/``), made
from the same code as ``minewatch group up``: the commands of :mod:`group.stack` and the server
configurations of :mod:`group.servers`, with host names instead of loopback ports.

``python -m group.compose`` writes them again; a test holds the committed files equal to what it
writes. The file shows two mines and the centre in one project, for trying; on real hosts each
mine's services (``*-m001``) run at the mine and the centre's at the centre (``docs/scale.md``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from group.servers import CentreNode, render_centre_node, render_leaf_node
from group.stack import Endpoints, centre_commands, mine_commands, mine_ids

__all__ = ["ROOT", "COMPOSE_MINES", "compose_document", "nats_configs", "write"]

ROOT = Path(__file__).resolve().parent.parent
COMPOSE_MINES = 2
NATS_IMAGE = "nats:2.9.10-alpine"  # the version of Debian's nats-server the tests run
CLIENT, ROUTE, LEAF = 4222, 6222, 7422
NODES = [CentreNode(f"c{i}", f"nats-c{i}", CLIENT, ROUTE, LEAF) for i in (1, 2, 3)]
CONFIG_DIR = "deploy/group"
API_HOST, API_PORT = "0.0.0.0", 8000  # the group view, published on the centre's host

ENDPOINTS = Endpoints(mine_mqtt=lambda m: f"mqtt://mosquitto-{m}:1883", leaf=lambda m: f"nats://leaf-{m}:{CLIENT}",
                      mine_influx=lambda m: f"http://influxdb-{m}:8086", centre_nats=[n.url for n in NODES],
                      centre_mqtt="mqtt://alerts:1883", centre_influx="http://influxdb-centre:8086")

_HEALTH = {"interval": "15s", "timeout": "10s", "retries": 5, "start_period": "20s"}
_APP = {"build": ".", "image": "minewatch:0.1.0", "restart": "unless-stopped"}


def nats_configs() -> dict[str, str]:
    """File name under ``deploy/group/`` -> the configuration of each NATS server."""
    out = {f"{n.name}.conf": render_centre_node(n, NODES, "/data", bind="0.0.0.0") for n in NODES}
    for m in mine_ids(COMPOSE_MINES):
        out[f"leaf-{m}.conf"] = render_leaf_node(m, "0.0.0.0", CLIENT, "/data", [n.leaf_url for n in NODES])
    return out


def _nats(conf: str, volume: str, ports: list[str] | None = None) -> dict[str, Any]:
    svc: dict[str, Any] = {"image": NATS_IMAGE, "restart": "unless-stopped", "command": ["-c", f"/etc/nats/{conf}"],
                           "volumes": [f"./{CONFIG_DIR}/{conf}:/etc/nats/{conf}:ro", f"{volume}:/data"],
                           "healthcheck": {**_HEALTH, "test": ["CMD", "nc", "-z", "127.0.0.1", str(CLIENT)]}}
    if ports:
        svc["ports"] = ports
    return svc


def _mosquitto(volume: str) -> dict[str, Any]:
    return {"image": "eclipse-mosquitto:2.0.18", "restart": "unless-stopped",
            "volumes": [f"./{CONFIG_DIR}/mosquitto.conf:/mosquitto/config/mosquitto.conf:ro",
                        "./deploy/mosquitto-limits.conf:/mosquitto/config/conf.d/mosquitto-limits.conf:ro",
                        f"{volume}:/mosquitto/data"],
            "healthcheck": {**_HEALTH, "test": ["CMD-SHELL", "mosquitto_sub -t x/health -E -W 5"]}}


def _influx(volume: str) -> dict[str, Any]:
    return {"image": "influxdb:1.8", "restart": "unless-stopped", "volumes": [f"{volume}:/var/lib/influxdb"],
            "healthcheck": {**_HEALTH, "test": ["CMD", "curl", "-sf", "http://127.0.0.1:8086/ping"]}}


def _app(command: list[str], volume: str, depends: list[str], **extra: Any) -> dict[str, Any]:
    return {**_APP, "command": command, "volumes": [f"{volume}:/data"],
            "depends_on": {d: {"condition": "service_healthy"} for d in depends}, **extra}


def compose_document() -> dict[str, Any]:
    mines = mine_ids(COMPOSE_MINES)
    services: dict[str, Any] = {}
    volumes: list[str] = []

    def add(name: str, svc: dict[str, Any]) -> None:
        services[name] = svc
        for v in svc.get("volumes", []):
            if not v.startswith("./"):
                volumes.append(v.split(":")[0])

    nodes = [f"nats-{n.name}" for n in NODES]
    for n in NODES:
        add(f"nats-{n.name}", _nats(f"{n.name}.conf", f"nats-{n.name}-data"))
    add("alerts", {**_mosquitto("alerts-data"), "ports": ["1883:1883"]})
    add("influxdb-centre", _influx("influxdb-centre-data"))
    centre = centre_commands(mines, ENDPOINTS, api_host=API_HOST, api_port=API_PORT)
    add("add-mines", _app(centre.pop("add-mines"), "add-mines-data", nodes, restart="on-failure"))
    api = centre.pop("api-group")
    for name, cmd in centre.items():
        add(name, _app(cmd, f"{name}-data", [*nodes, "alerts", "influxdb-centre"]))
    # with MINEWATCH_GROUP_API_KEYS unset the API makes up an operator key and logs it
    add("api-group", _app(api, "api-group-data", ["alerts", "influxdb-centre"], ports=[f"{API_PORT}:{API_PORT}"],
                          environment={"MINEWATCH_API_KEYS": "${MINEWATCH_GROUP_API_KEYS:-}"}))
    for i, m in enumerate(mines):
        add(f"mosquitto-{m}", _mosquitto(f"mosquitto-{m}-data"))
        add(f"leaf-{m}", _nats(f"leaf-{m}.conf", f"leaf-{m}-data"))
        add(f"influxdb-{m}", _influx(f"influxdb-{m}-data"))
        for name, cmd in mine_commands(m, ENDPOINTS, seed=i + 1).items():
            deps = [f"mosquitto-{m}"] + ([f"influxdb-{m}"] if name.startswith("ingest-") else []) + \
                ([f"leaf-{m}"] if name.startswith("forward-") else [])
            extra = {"profiles": ["simulator"]} if name.startswith("simulate-") else {}
            add(name, _app(cmd, f"{name}-data", deps, **extra))
    return {"name": "minewatch-group", "services": services, "volumes": {v: {} for v in volumes}}


HEADER = """\
# A mining group (docs/scale.md): the centre's three-node NATS cluster (JetStream domain
# "centre", stream GROUP), its alert broker and InfluxDB, the ingest workers; and per mine its
# broker, leaf node (domain = the mine id, stream MINE), InfluxDB, ingestor and forwarder; the
# centre's group view (minewatch api --group) on port 8000, its keys from MINEWATCH_GROUP_API_KEYS
# (key:role,...; unset, it logs the operator key it made up: docker compose logs api-group). On real
# hosts each mine's *-m00N services run at the mine, the rest at the centre; the leaf nodes reach
# nats-c1..3 on port 7422 over the wide-area link.
#   docker compose -f docker-compose.group.yml up -d
#   docker compose -f docker-compose.group.yml --profile simulator up -d   # with simulated fleets
# Generated by `python -m group.compose` from the commands `minewatch group up` runs (group/stack.py)
# and the NATS configurations in deploy/group/ (group/servers.py); a test keeps them equal.
"""

MOSQUITTO_CONF = """\
# A mine's (and the centre's alert) broker in docker-compose.group.yml: MQTT on 1883 inside the
# project's network, with the loss-free limits of deploy/mosquitto-limits.conf (in conf.d). A mine
# in production runs docker-compose.yml's broker, with accounts and ACLs.
persistence_location /mosquitto/data/
listener 1883
allow_anonymous true
include_dir /mosquitto/config/conf.d
"""


def write(root: Path = ROOT) -> list[Path]:
    """Write the compose file and its configurations under ``root``; the paths written."""
    d = root / CONFIG_DIR
    d.mkdir(parents=True, exist_ok=True)
    out = []
    for name, text in {**nats_configs(), "mosquitto.conf": MOSQUITTO_CONF}.items():
        (d / name).write_text(text)
        out.append(d / name)
    compose = root / "docker-compose.group.yml"
    compose.write_text(HEADER + yaml.safe_dump(compose_document(), sort_keys=False, width=120))
    return [*out, compose]


if __name__ == "__main__":
    for p in write():
        print(p.relative_to(ROOT))
