"""``minewatch group up``: a whole mining group on this machine.

The centre: three NATS nodes (JetStream domain ``centre``, stream ``GROUP``), its alert broker (a
mosquitto) and, when this installation has ``minewatch group worker``, the ingest workers. Each
mine: its mosquitto, its leaf node (domain = the mine id, stream ``MINE``), its own ingestor
(the unchanged single-machine one, writing ``mine_<mine>``), the forwarder and a simulated fleet.
Last, the centre's group view (``minewatch api --group``) on the alert broker and the InfluxDB,
with keys made once and kept in ``--home``'s ``api-keys.json`` (as ``minewatch up`` does).
One InfluxDB serves both sides here (on real hosts each mine has its own). Everything listens on
loopback only and takes anonymous clients: a demonstration, not a deployment (``docs/scale.md``).
Data stays under ``--home``: a second run resumes every stream and session. Ctrl-C stops
everything, last started first.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import IO

import click

from group.servers import Centre, LeafNode
from group.stack import Endpoints, centre_commands, mine_commands, mine_ids
from minewatch.group import DEFAULT_PARTITIONS
from minewatch.services import Influxd, Mosquitto, free_port, stop_children, wait_http
from minewatch.up import hold_home, local_api_keys, run_until_stopped

__all__ = ["GroupSystem", "up"]


class GroupSystem:
    """The servers and processes of a local group, started in order and stopped in reverse."""

    def __init__(self, home: Path, mines: int, *, partitions: int = DEFAULT_PARTITIONS, workers: int = 2,
                 simulate: bool = True, mine_ingest: bool = True, worker_args: Sequence[str] = (),
                 api_port: int | None = None, log: Callable[[str], object] = print) -> None:
        """``mine_ingest`` False leaves each mine's own ingestor out (``bench/group.py``: on one
        machine it would take the centre's CPU); ``worker_args`` are added to every worker's."""
        self.home = home
        self.mines = mine_ids(mines)
        self.partitions = partitions
        self.simulate = simulate
        self.mine_ingest = mine_ingest
        self.worker_args = list(worker_args)
        self.api_port = api_port if api_port is not None else free_port()
        self.api_keys: dict[str, str] = {}
        self.lock: IO[str] | None = None
        self.log = log
        self.servers: list[Mosquitto | Influxd | LeafNode | Centre] = []
        self.children: list[tuple[str, subprocess.Popen[bytes]]] = []
        self.centre = Centre(home / "centre")
        self.alerts = Mosquitto(home / "centre" / "alerts")
        self.influx = Influxd(home / "influxdb")
        self.brokers = {m: Mosquitto(home / m / "mosquitto") for m in self.mines}
        self.leaves = {m: LeafNode(m, home / m / "leaf", self.centre.leaf_urls, free_port()) for m in self.mines}
        self.has_worker = self._worker_available()
        self.workers = workers if self.has_worker else 0
        self.endpoints = Endpoints(mine_mqtt=lambda m: self.brokers[m].url, leaf=lambda m: self.leaves[m].url,
                                   mine_influx=lambda m: self.influx.url, centre_nats=self.centre.urls,
                                   centre_mqtt=self.alerts.url, centre_influx=self.influx.url)

    @staticmethod
    def _worker_available() -> bool:
        from group.cli import worker_command

        return worker_command() is not None

    @property
    def api_url(self) -> str:
        return f"http://127.0.0.1:{self.api_port}"

    def _spawn(self, name: str, args: list[str], *, wait: bool = False, env: dict[str, str] | None = None) -> None:
        d = self.home / "logs"
        d.mkdir(parents=True, exist_ok=True)
        env = dict(os.environ, **(env or {}), MINEWATCH_ENV_FILE="", MINEWATCH_DATA_DIR=str(self.home / name))
        self.log(f"  {name:14s} minewatch {' '.join(args)}")
        with open(d / f"{name}.log", "ab") as logf:
            proc = subprocess.Popen([sys.executable, "-m", "minewatch", *args], stdout=logf, stderr=subprocess.STDOUT,
                                    stdin=subprocess.DEVNULL, env=env, start_new_session=True)
        if wait:
            if proc.wait(120) != 0:
                raise click.ClickException(f"{name} failed (see {d / (name + '.log')})")
            return
        self.children.append((name, proc))

    def _server(self, s: Mosquitto | Influxd | LeafNode | Centre) -> None:
        s.start()
        self.servers.append(s)

    def start(self) -> None:
        self.lock = self.lock or hold_home(self.home, "minewatch group up")
        (self.home / "group.json").unlink(missing_ok=True)  # written again once this run is up
        self.log(f"starting the centre (3 NATS nodes, alert broker) and {len(self.mines)} mine(s) in {self.home}")
        self._server(self.influx)
        self._server(self.centre)
        self._server(self.alerts)
        for m in self.mines:
            self._server(self.brokers[m])
            self._server(self.leaves[m])
        commands = centre_commands(self.mines, self.endpoints, partitions=self.partitions, workers=self.workers,
                                   api_port=self.api_port)
        self._add_mines(commands.pop("add-mines"))
        api = commands.pop("api-group")
        fleets = []
        for i, m in enumerate(self.mines):
            for name, args in mine_commands(m, self.endpoints, partitions=self.partitions, simulate=self.simulate,
                                            seed=i + 1).items():
                if name.startswith("simulate-"):
                    fleets.append((name, args))
                elif name.startswith("ingest-") and not self.mine_ingest:
                    continue
                else:
                    self._spawn(name, args)
        if not self.has_worker:
            self.log("  (no `minewatch group worker` in this installation: GROUP fills, nothing ingests it)")
        for name, args in commands.items():
            self._spawn(name, [*args, *self.worker_args] if name.startswith("worker-") else args)
        self._wait_subscribed()
        for name, args in fleets:  # once every session is there, so the first frames reach them all
            self._spawn(name, args)
        self.api_keys = local_api_keys(self.home / "api-keys.json")
        self._spawn("api-group", api, env={"MINEWATCH_API_KEYS": ",".join(f"{k}:{r}" for r, k in self.api_keys.items())})
        wait_http(f"{self.api_url}/healthz", timeout=60, check=self._raise_dead)
        (self.home / "group.json").write_text(json.dumps(self.describe(), indent=2))

    def _wait_subscribed(self, timeout: float = 90.0) -> None:
        """Until every mine's ingestor and forwarder has its broker session (their logs say so)."""
        deadline = time.monotonic() + timeout
        names = [n for n, _ in self.children if n.startswith(("ingest-", "forward-"))]
        while names and time.monotonic() < deadline:
            log_of = {n: self.home / "logs" / f"{n}.log" for n in names}
            names = [n for n in names if "connected to the broker" not in
                     (log_of[n].read_text(errors="replace") if log_of[n].exists() else "")]
            if self.check():
                return
            time.sleep(0.3)

    def _add_mines(self, args: list[str], timeout: float = 60.0) -> None:
        """GROUP with every mine's source, once the cluster has elected its leader."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                self._spawn("add-mines", args, wait=True)
                return
            except click.ClickException:
                if time.monotonic() > deadline:
                    raise
                time.sleep(1.0)

    def describe(self) -> dict[str, object]:
        """Where everything is (written to ``group.json``)."""
        return {"centre": {"nats": self.centre.urls, "alerts_mqtt": self.alerts.url, "influx": self.influx.url,
                           "workers": self.workers, "partitions": self.partitions, "api": self.api_url},
                "mines": {m: {"mqtt": self.brokers[m].url, "leaf": self.leaves[m].url} for m in self.mines}}

    def check(self) -> str | None:
        """What has died, if anything."""
        for name, proc in self.children:
            if proc.poll() is not None:
                return f"{name} exited with {proc.returncode} (see {self.home / 'logs' / (name + '.log')})"
        for s in self.servers:
            procs = s.servers.values() if isinstance(s, Centre) else [s]
            for p in procs:
                if not p.running:
                    return f"{p.name} in {p.data_dir} exited (see {p.log_path})"
        return None

    def _raise_dead(self) -> None:
        dead = self.check()
        if dead:
            raise click.ClickException(dead)

    def stop(self) -> None:
        stop_children(self.children, 15.0, self.log)
        self.children.clear()
        for s in reversed(self.servers):
            s.stop()
        self.servers.clear()
        if self.lock:
            self.lock.close()
            self.lock = None


def run_group(system: GroupSystem, echo: Callable[[str], object] = click.echo) -> None:
    """Start ``system``, say where things are, and wait for Ctrl-C/SIGTERM (or a process dying)."""

    def announce() -> None:
        echo("")
        echo(f"the group is up: {len(system.mines)} mine(s), centre NATS {', '.join(system.centre.urls)}")
        echo(f"  alerts of every mine: mosquitto_sub -p {system.alerts.port} -v -t 'minewatch/v1/mines/+/alerts/#'")
        for m in system.mines:
            echo(f"  {m}: MQTT {system.brokers[m].url}, leaf {system.leaves[m].url}")
        op = system.api_keys["operator"]
        echo(f"  centre's group view: {system.api_url}/?api_key={op}")
        echo(f"    API: {system.api_url}/group/mines, {system.api_url}/docs (header X-API-Key: {op}); "
             f"keys in {system.home / 'api-keys.json'}")
        echo(f"  where everything is: {system.home / 'group.json'}; logs in {system.home / 'logs'}")
        echo("Ctrl-C stops it.")

    run_until_stopped(system, announce, problem=echo, stopping=lambda: echo("stopping the group"))


@click.command("up")
@click.option("--mines", type=click.IntRange(1, 200), default=2, show_default=True, help="Mines to run.")
@click.option("--home", type=click.Path(path_type=Path), default=Path(".minewatch-group"), show_default=True,
              help="Where every server keeps its data and every process its log.")
@click.option("--partitions", type=click.IntRange(1, 4096), default=DEFAULT_PARTITIONS, show_default=True,
              help="The group's partition count (fixed once chosen: keep it for a second run).")
@click.option("--workers", type=click.IntRange(0, 64), default=2, show_default=True,
              help="Ingest workers at the centre (when `minewatch group worker` is installed).")
@click.option("--no-simulator", is_flag=True, help="No simulated fleets: robots publish to each mine's broker.")
@click.option("--api-port", type=click.IntRange(1, 65535), default=None,
              help="Port of the centre's group view (minewatch api --group) on loopback [default: a free one].")
def up(mines: int, home: Path, partitions: int, workers: int, no_simulator: bool, api_port: int | None) -> None:
    """Run a whole mining group on this machine until Ctrl-C: the centre's NATS cluster, alert broker,
    workers and group view (the API's /group/mines), and per mine its broker, leaf node, ingestor,
    forwarder and simulated fleet."""
    home = home.resolve()
    lock = hold_home(home, "minewatch group up")  # before its servers make their directories under it
    system = GroupSystem(home, mines, partitions=partitions, workers=workers, simulate=not no_simulator,
                         api_port=api_port, log=click.echo)
    system.lock = lock
    run_group(system)
