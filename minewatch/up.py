"""``minewatch up``: the whole system on this machine.

Starts its own mosquitto and influxd (data under ``.minewatch/``), then the ingestor, the API and
the simulator (the default mine, in real time, with an occasional scripted fault), prints where to
look, and on Ctrl-C stops everything it started, last started first.

Safe by default, as a deployment is: the broker takes no anonymous clients and enforces the
listeners and ACLs of :mod:`minewatch.security` (robots and integrators on the MQTT port, where the
client id is the username; the ingestor, the API and the simulator each with its own account on a
service port bound to loopback), and InfluxDB has auth
on (admin for set-up, ``ingest`` with all rights on the database, ``api`` read only). The
passwords are random, made once and kept in ``.minewatch/secrets/credentials.json``.

For the commands a person runs beside it, in another shell (``minewatch replay``, ``report``,
``simulate``, ...), it writes ``.minewatch/env`` (mode 600): the broker's service URL with the
simulator's account, InfluxDB's URL with the read-only ``api`` account, the topic prefix, the
API's URL and an engineer key. Every ``minewatch`` command reads that file when it finds it in
the data directory (:mod:`minewatch.settings`). The
processes run the commands of :mod:`minewatch.stack`, the same ones docker-compose.yml runs.
"""

from __future__ import annotations

import fcntl
import json
import os
import secrets
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from typing import IO, Protocol
from pathlib import Path

import click

from minewatch.security import (PUBLIC_PORT, SERVICE_PORT, BrokerAuth, load_credentials, new_secret, save_credentials,
                                 write_broker_auth, write_private)
from minewatch.services import Influxd, Mosquitto, free_port, stop_children, wait_http, wait_port
from minewatch.settings import API_ROLES, Settings
from minewatch.stack import service_commands

__all__ = ["up", "System", "integrator_command", "write_env_file", "local_api_keys", "run_until_stopped", "hold_home"]


def _port_free(port: int, host: str = "127.0.0.1") -> bool:
    import socket

    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
            return True
        except OSError:
            return False


def hold_home(home: Path, command: str = "minewatch up") -> IO[str]:
    """An exclusive lock on ``home`` for as long as the file it returns stays open (the kernel lets
    it go when the process ends, however it ends). A second system on the same data would run a
    second influxd on the same shards, a second broker on the same persistence file, and rewrite
    the first's env file and logs: refused, with the pid of the one holding it."""
    try:
        home.mkdir(parents=True, exist_ok=True)
        f = open(home / "up.lock", "a+")
    except OSError as e:  # not a directory, or not this user's to write (another's home, read-only)
        raise click.ClickException(f"cannot use {home} as --home: {e.strerror or e} ({e.filename}); give "
                                   "a directory this user may write") from None
    try:
        fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        f.seek(0)
        holder = f.read().strip() or "?"
        f.close()
        raise click.ClickException(f"another `{command}` is already running on {home} (pid {holder}, or processes "
                                   "it started, left running if it was killed): stop it, or give this one another "
                                   "--home") from None
    f.seek(0)
    f.truncate()
    f.write(f"{os.getpid()}\n")
    f.flush()
    return f


def local_api_keys(path: Path) -> dict[str, str]:
    """Local keys, made once and kept in ``.minewatch/api-keys.json``: role → key."""
    if path.exists():
        keys: dict[str, str] = json.loads(path.read_text())
        if set(API_ROLES) <= set(keys):
            return keys
    keys = {role: f"{role[:3]}-{secrets.token_urlsafe(18)}" for role in API_ROLES}
    path.write_text(json.dumps(keys, indent=2))
    path.chmod(0o600)
    return keys


class System:
    """The processes of a local minewatch, started in order and stopped in reverse."""

    def __init__(self, home: Path, mqtt_port: int, influx_port: int, api_port: int, *, simulate: bool = True,
                 sim_args: tuple[str, ...] = (), ingest_args: tuple[str, ...] = (), log: Callable[[str], object] = print,
                 service_port: int | None = None, metrics_port: int | None = None) -> None:
        self.home = home
        self.metrics_port = metrics_port if metrics_port is not None else free_port()
        self.mqtt_port, self.influx_port, self.api_port = mqtt_port, influx_port, api_port
        self.service_port = service_port if service_port is not None else free_port()
        self.simulate = simulate
        self.sim_args = sim_args
        self.ingest_args = ingest_args
        self.log = log
        self.broker: Mosquitto | None = None
        self.influx: Influxd | None = None
        self.children: list[tuple[str, subprocess.Popen[bytes]]] = []
        self.keys: dict[str, str] = {}
        self.env_file: Path | None = None
        self.auth: BrokerAuth | None = None
        self.influx_passwords: dict[str, str] = {}
        self.lock: IO[str] | None = None

    @property
    def mqtt_url(self) -> str:
        return f"mqtt://127.0.0.1:{self.mqtt_port}"

    @property
    def service_url(self) -> str:
        return f"mqtt://127.0.0.1:{self.service_port}"

    @property
    def influx_url(self) -> str:
        return f"http://127.0.0.1:{self.influx_port}"

    @property
    def metrics_url(self) -> str:
        return f"http://127.0.0.1:{self.metrics_port}/metrics"

    @property
    def api_url(self) -> str:
        return f"http://127.0.0.1:{self.api_port}"

    def _spawn(self, name: str, args: list[str], env: dict[str, str]) -> None:
        logf = open(self.home / f"{name}.log", "ab")
        cmd = [sys.executable, "-m", "minewatch", *args]
        self.log(f"  {name:9s} {' '.join(args)}  (log: {self.home / (name + '.log')})")
        proc = subprocess.Popen(cmd, stdout=logf, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env,
                                start_new_session=True, pass_fds=self._held())
        logf.close()
        self.children.append((name, proc))

    def _held(self) -> tuple[int, ...]:
        """The lock on the home, for every process started to inherit: a new ``up`` is refused
        while any of them lives, even when this one was killed outright and left them running."""
        return (self.lock.fileno(),) if self.lock else ()

    def start(self) -> None:
        self.lock = self.lock or hold_home(self.home)
        for what, port in (("MQTT", self.mqtt_port), ("MQTT services", self.service_port), ("InfluxDB", self.influx_port),
                           ("API", self.api_port), ("ingest metrics", self.metrics_port)):
            if not _port_free(port):
                raise click.ClickException(f"port {port} for {what} is in use; choose another with the --*-port options")
        self.keys = local_api_keys(self.home / "api-keys.json")
        env = dict(os.environ)
        env["MINEWATCH_API_KEYS"] = ",".join(f"{k}:{r}" for r, k in self.keys.items())
        env["MINEWATCH_DATA_DIR"] = str(self.home)
        env["MINEWATCH_ENV_FILE"] = ""  # its processes get all they need here, each with its own accounts
        self.start_servers()
        self.env_file = write_env_file(self.home / "env", self.cli_env())
        env.update(MINEWATCH_INFLUX_URL=self.influx_url, MINEWATCH_API_HOST="127.0.0.1",
                   MINEWATCH_API_PORT=str(self.api_port))
        commands = service_commands(data_dir=str(self.home), simulate=self.simulate)
        self._spawn("ingest", [*commands["ingest"], "--metrics-port", str(self.metrics_port), *self.ingest_args],
                    self._env(env, "ingest"))
        self._spawn("api", commands["api"], self._env(env, "api"))
        wait_port("127.0.0.1", self.api_port, timeout=60)
        if self.simulate:
            self._spawn("simulate", [*commands["simulator"], *self.sim_args], self._env(env, "simulator"))

    def start_servers(self) -> None:
        """The broker (accounts and ACL on) and InfluxDB (auth on, set up, with its accounts)."""
        self.lock = self.lock or hold_home(self.home)
        secrets_dir = self.home / "secrets"
        prefix = Settings().topic_prefix
        # Robot and integrator accounts added with `minewatch secrets .minewatch/secrets
        # --robot ID` are kept (and the ACL names every integrator).
        self.auth = write_broker_auth(secrets_dir, prefix=prefix, keep_accounts=True)
        creds = load_credentials(secrets_dir)
        for user in ("admin", "ingest", "api"):
            creds["influx"].setdefault(user, new_secret())
        save_credentials(secrets_dir, creds)
        self.influx_passwords = creds["influx"]

        self.log(f"starting mosquitto on {self.mqtt_url} (services: {self.service_url}) and influxd on "
                 f"{self.influx_url} (data in {self.home}; accounts in {secrets_dir / 'credentials.json'})")
        self.broker = Mosquitto(self.home / "mosquitto", self.mqtt_port, password_file=self.auth.password_file,
                                acl_file=self.auth.acl_file, service_password_file=self.auth.service_password_file,
                                service_acl_file=self.auth.service_acl_file, service_port=self.service_port)
        self.broker.keep_open = self._held()
        self.broker.start()
        self.influx = Influxd(self.home / "influxdb", self.influx_port, auth=True)
        self.influx.keep_open = self._held()
        self.influx.start()
        from minewatch.storage import bootstrap_users_sync

        pw = self.influx_passwords
        admin = bootstrap_users_sync(self.influx_url, Settings().influx_db, admin=("admin", pw["admin"]),
                                     users={"ingest": (pw["ingest"], "ALL"), "api": (pw["api"], "READ")})
        admin.close()

    def cli_env(self) -> dict[str, str]:
        """What a command started beside this system needs: the variables of ``.minewatch/env``."""
        assert self.auth is not None
        settings = Settings(_env_file=None)
        return {
            "MINEWATCH_MQTT_URL": self.auth.url("simulator", port=self.service_port),
            "MINEWATCH_TOPIC_PREFIX": settings.topic_prefix,
            "MINEWATCH_INFLUX_URL": self.influx_url,
            "MINEWATCH_INFLUX_DB": settings.influx_db,
            "MINEWATCH_INFLUX_USER": "api",
            "MINEWATCH_INFLUX_PASSWORD": self.influx_passwords["api"],
            "MINEWATCH_API_URL": self.api_url,
            "MINEWATCH_API_KEY": self.keys["engineer"],
        }

    def _env(self, base: dict[str, str], account: str) -> dict[str, str]:
        """The environment of one process: its own broker account (on the service listener) and
        InfluxDB account."""
        assert self.auth is not None
        env = dict(base, MINEWATCH_MQTT_URL=self.auth.url(account, port=self.service_port))
        if account in self.influx_passwords:
            env.update(MINEWATCH_INFLUX_USER=account, MINEWATCH_INFLUX_PASSWORD=self.influx_passwords[account])
        else:
            env.pop("MINEWATCH_INFLUX_USER", None)
            env.pop("MINEWATCH_INFLUX_PASSWORD", None)
        return env

    def check(self) -> str | None:
        """The name of a child that has exited, if any."""
        for name, proc in self.children:
            if proc.poll() is not None:
                return f"{name} exited with {proc.returncode} (see {self.home / (name + '.log')})"
        return None

    def stop(self) -> None:
        stop_children(self.children, 15.0, self.log)
        self.children.clear()
        if self.influx:
            self.influx.stop()
        if self.broker:
            self.broker.stop()
        if self.lock:
            self.lock.close()
            self.lock = None


def write_env_file(path: Path, values: dict[str, str]) -> Path:
    """``path`` (mode 600) with ``values`` as ``KEY=value`` lines, readable by ``minewatch`` and by a
    shell (``set -a; . .minewatch/env; set +a``)."""
    for k, v in values.items():
        if any(c in v for c in "\n\"'$`\\ #;&|<>()"):
            raise ValueError(f"{k} cannot go into {path} unquoted")
    header = ("# written by `minewatch up`: the local system's URLs and accounts, for minewatch commands run\n"
              "# beside it (read from $MINEWATCH_DATA_DIR/env, default .minewatch/env; flags and the\n"
              "# environment win). In a shell: set -a; . .minewatch/env; set +a\n")
    write_private(path, header + "".join(f"{k}={v}\n" for k, v in values.items()))
    return path


def _accelerated(sim_args: tuple[str, ...]) -> bool:
    """Whether ``--sim-arg`` asks the simulator for other than real time (``--speed N``, N != 1)."""
    args = [a for arg in sim_args for a in arg.split("=", 1)] if any("=" in a for a in sim_args) else list(sim_args)
    for i, a in enumerate(args):
        if a == "--speed" and i + 1 < len(args):
            return args[i + 1].strip().lower() not in ("1", "1.0")
    return False


def integrator_command(password: str, port: int = PUBLIC_PORT, prefix: str | None = None) -> str:
    """The ``mosquitto_sub`` line that follows alerts and incidents with the local integrator
    account, in one connection (the broker takes the username as the client id, so a second
    connection with the same account would close the first)."""
    prefix = prefix or Settings().topic_prefix
    return (f"mosquitto_sub -p {port} -u integrator -P {password} -q 1 -v "
            f"-t '{prefix}/alerts/+/+' -t '{prefix}/incidents/+/+'")


class Supervised(Protocol):
    """What ``run_until_stopped`` runs: a set of processes started, checked and stopped together."""

    def start(self) -> None: ...

    def check(self) -> str | None: ...

    def stop(self) -> None: ...


def run_until_stopped(system: Supervised, announce: Callable[[], None], *, problem: Callable[[str], object],
                      stopping: Callable[[], object]) -> None:
    """Start ``system``, ``announce`` it, and wait for Ctrl-C/SIGTERM or one of its processes dying
    (said through ``problem``); whatever happened, ``stopping`` is said and everything stopped."""
    asked = False

    def _stop(signum: int, frame: object) -> None:
        nonlocal asked
        asked = True

    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    try:
        system.start()
        announce()
        while not asked:
            dead = system.check()
            if dead:
                problem(f"stopping: {dead}")
                break
            time.sleep(0.5)
    finally:
        stopping()
        system.stop()


def _wait_healthy(url: str, timeout: float = 60) -> None:
    try:
        wait_http(f"{url}/healthz", 200, timeout=timeout)
    except TimeoutError:
        pass  # the main loop reports a child that has died


@click.command()
@click.option("--home", type=click.Path(path_type=Path), default=Path(".minewatch"), show_default=True,
              help="Where the broker, InfluxDB, spool and logs keep their data.")
@click.option("--mqtt-port", type=int, default=PUBLIC_PORT, show_default=True,
              help="The broker's port for robots and integrators.")
@click.option("--service-port", type=int, default=SERVICE_PORT, show_default=True,
              help="The broker's port for minewatch's own processes (on loopback).")
@click.option("--influx-port", type=int, default=8086, show_default=True)
@click.option("--api-port", type=int, default=8000, show_default=True)
@click.option("--metrics-port", type=int, default=9100, show_default=True,
              help="The ingestor's Prometheus metrics port (on loopback).")
@click.option("--no-simulator", is_flag=True, help="Run without the simulated fleet (real robots publish to the broker).")
@click.option("--sim-arg", "sim_args", multiple=True, help="Extra argument for `minewatch simulate` (repeatable).")
def up(home: Path, mqtt_port: int, service_port: int, influx_port: int, api_port: int, metrics_port: int,
       no_simulator: bool, sim_args: tuple[str, ...]) -> None:
    """Run the whole system on this machine until Ctrl-C."""
    ingest_args: tuple[str, ...] = ()
    if not no_simulator and _accelerated(sim_args):
        # a simulated mine faster than real time: the ingestor goes by the data's clock
        ingest_args = ("--clock", "data")
    system = System(home.resolve(), mqtt_port, influx_port, api_port, simulate=not no_simulator, sim_args=sim_args,
                    ingest_args=ingest_args, log=click.echo, service_port=service_port,
                    metrics_port=metrics_port)

    def announce() -> None:
        _wait_healthy(system.api_url)
        op = system.keys["operator"]
        click.echo("")
        click.echo(f"minewatch is up.  Control room: {system.api_url}/?api_key={op}")
        click.echo(f"  API docs       {system.api_url}/docs   (header X-API-Key: {op})")
        click.echo(f"  operator key   {op}")
        click.echo(f"  engineer key   {system.keys['engineer']}")
        click.echo(f"  integrator key {system.keys['integrator']}")
        assert system.auth is not None
        click.echo(f"  alerts and     {integrator_command(system.auth['integrator'].password, mqtt_port)}")
        click.echo("  incidents      (one connection per account: the broker takes the username as the client id)")
        click.echo(f"  accounts       {system.home / 'secrets' / 'credentials.json'} (broker and InfluxDB)")
        click.echo(f"  other shells   {system.env_file}: URLs and accounts that minewatch replay, report,")
        click.echo("                 simulate ... read from there (run them here, or set MINEWATCH_DATA_DIR)")
        click.echo(f"  metrics        {system.metrics_url} (ingestor), {system.api_url}/metrics (API)")
        click.echo("Ctrl-C stops everything.")

    try:
        run_until_stopped(system, announce, problem=lambda text: click.echo(text, err=True),
                          stopping=lambda: click.echo("stopping minewatch ..."))
    finally:
        click.echo("stopped.")
