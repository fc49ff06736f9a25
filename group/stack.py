"""The processes of a group deployment and the command each runs.

One definition for ``minewatch group up`` (everything on one machine, loopback ports) and
``docker-compose.group.yml`` (one service per process, host names; a test holds the two equal).
Commands are the arguments after ``minewatch``; what differs between the two is only where each
server is, given here as :class:`Endpoints`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from minewatch.group import DEFAULT_PARTITIONS, check_mine

__all__ = ["Endpoints", "mine_ids", "mine_db", "centre_db", "mine_commands", "centre_commands", "SIM_SCENARIOS"]

# the scenarios each simulated mine runs: two faces' robots keep a mine light on one machine
SIM_SCENARIOS = "mf01,hf02"


def mine_ids(count: int) -> list[str]:
    """``m001``, ``m002``, ..."""
    if count < 1:
        raise ValueError("a group has at least one mine")
    return [f"m{i + 1:03d}" for i in range(count)]


def mine_db(mine: str) -> str:
    """The mine's own database (its ingestor's, beside it)."""
    return f"mine_{check_mine(mine)}"


def centre_db(mine: str) -> str:
    """The centre's database of a mine (the group workers')."""
    return f"minewatch_{check_mine(mine)}"


@dataclass(frozen=True)
class Endpoints:
    """Where each server is: the mine's broker and leaf node by mine id, the centre's cluster, its
    alert broker and the InfluxDB of each side."""

    mine_mqtt: Callable[[str], str]
    leaf: Callable[[str], str]
    mine_influx: Callable[[str], str]
    centre_nats: list[str]
    centre_mqtt: str
    centre_influx: str


def mine_commands(mine: str, ep: Endpoints, *, partitions: int = DEFAULT_PARTITIONS, simulate: bool = True,
                  seed: int = 1) -> dict[str, list[str]]:
    """Service name -> ``minewatch`` arguments of one mine beside its broker and leaf node: the
    unchanged single-machine ingestor, the forwarder, and a simulated fleet."""
    check_mine(mine)
    out = {
        f"ingest-{mine}": ["ingest", "--mqtt-url", ep.mine_mqtt(mine), "--influx-url", ep.mine_influx(mine),
                           "--influx-db", mine_db(mine), "--client-id", f"minewatch-ingest-{mine}"],
        f"forward-{mine}": ["group", "forward", "--mine", mine, "--nats", ep.leaf(mine), "--mqtt-url",
                            ep.mine_mqtt(mine), "--partitions", str(partitions)],
    }
    if simulate:
        out[f"simulate-{mine}"] = ["simulate", "--mqtt-url", ep.mine_mqtt(mine), "--speed", "1", "--scenarios",
                                   SIM_SCENARIOS, "--seed", str(seed)]
    return out


def centre_commands(mines: list[str], ep: Endpoints, *, partitions: int = DEFAULT_PARTITIONS, workers: int = 2,
                    api_host: str = "127.0.0.1", api_port: int = 8000) -> dict[str, list[str]]:
    """Service name -> ``minewatch`` arguments at the centre: GROUP sourcing every mine, then the
    ingest workers (``workers`` 0: none), then the group view (``api-group``: ``minewatch api
    --group`` on the alert broker and InfluxDB the workers write; its keys come from the
    environment, ``MINEWATCH_API_KEYS``)."""
    nats = ",".join(ep.centre_nats)
    out = {"add-mines": ["group", "add-mine", *mines, "--nats", nats]}
    for i in range(workers):
        out[f"worker-{i + 1}"] = ["group", "worker", "--nats", nats, "--partitions", str(partitions), "--worker-id",
                                  f"w{i + 1}", "--influx-url", ep.centre_influx, "--mqtt-url", ep.centre_mqtt]
    out["api-group"] = ["api", "--group", "--mqtt-url", ep.centre_mqtt, "--influx-url", ep.centre_influx, "--host",
                        api_host, "--port", str(api_port)]
    return out
