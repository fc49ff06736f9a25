"""Start and stop local ``mosquitto``, ``influxd`` and ``nats-server`` processes.

Used by ``minewatch up`` (data under ``.minewatch/``), by the tests (free loopback ports and
temporary directories) and by the benchmarks. Nothing here is mocked: these are the real
servers from Debian's ``mosquitto``, ``influxdb`` and ``nats-server`` packages.
"""

from __future__ import annotations

import os
import random
import shutil
import signal
import socket
import subprocess
import threading
import time
import urllib.request
from collections.abc import Callable
from typing import Any, Self
from dataclasses import dataclass
from pathlib import Path

__all__ = ["free_port", "Mosquitto", "Influxd", "NatsServer", "nats_cluster", "TlsFiles", "find_program", "stop_process",
           "stop_children", "wait_http", "wait_port"]

DEPLOY = Path(__file__).resolve().parent.parent / "deploy"


def stop_process(proc: subprocess.Popen[Any], sig: int = signal.SIGTERM, timeout: float = 15.0) -> int:
    """Send ``sig`` to a running ``proc``, wait ``timeout`` seconds for it to end, kill it if it has
    not; its exit status."""
    if proc.poll() is None:
        proc.send_signal(sig)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    return proc.returncode


def stop_children(children: list[tuple[str, subprocess.Popen[Any]]], timeout: float = 15.0,
                  log: Callable[[str], object] = print) -> None:
    """SIGTERM every running one of ``children`` (name, process), last started first, wait up to
    ``timeout`` seconds in all for them to end, kill those that have not."""
    for _, proc in reversed(children):
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + timeout
    for name, proc in reversed(children):
        try:
            proc.wait(max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            log(f"{name} did not stop in time; killing it")
            proc.kill()
            proc.wait()


def _ephemeral_start() -> int:
    try:
        return int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return 32768  # Linux's default


# Ports for the servers started here come from just below the kernel's ephemeral range. A port
# from inside that range, free when picked, can be given to any outgoing connection (an HTTP
# client, a broker's bridge) in the moment before the server binds it; below it, only another
# free_port() can hand it out, and each process walks the range from its own starting point.
_PORTS = range(max(1024, _ephemeral_start() - 12000), _ephemeral_start())
_port_cursor = random.Random(os.getpid()).randrange(len(_PORTS))
_port_lock = threading.Lock()


def free_port() -> int:
    """A loopback TCP port nothing listens on, for a server about to be started; never the same
    twice in one process until the range has been walked."""
    global _port_cursor
    with _port_lock:
        for _ in range(len(_PORTS)):
            port = _PORTS[_port_cursor % len(_PORTS)]
            _port_cursor += 1
            with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
                try:
                    s.bind(("127.0.0.1", port))
                except OSError:
                    continue
            return port
    raise OSError(f"no free loopback port in {_PORTS.start}-{_PORTS.stop - 1}")


def find_program(name: str) -> str:
    for candidate in (shutil.which(name), f"/usr/sbin/{name}", f"/usr/bin/{name}"):
        if candidate and os.access(candidate, os.X_OK):
            return candidate
    pkg = {"mosquitto": "mosquitto", "influxd": "influxdb", "mosquitto_passwd": "mosquitto"}.get(name, name)
    raise FileNotFoundError(f"{name} not found: install Debian's {pkg!r} package (make test / make up do it)")


def wait_http(url: str, status: int = 200, *, timeout: float = 60.0, interval: float = 0.5,
              check: Callable[[], None] | None = None) -> None:
    """Wait until ``url`` answers ``status``; ``check`` runs each round (to fail early when the
    server process has died). TimeoutError when it has not answered in ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        if check is not None:
            check()
        try:
            with urllib.request.urlopen(url, timeout=min(2.0, max(interval, 0.5))) as r:
                if r.status == status:
                    return
        except OSError:
            pass
        if time.monotonic() > deadline:
            raise TimeoutError(f"{url} did not answer {status} in {timeout:.0f} s")
        time.sleep(interval)


def wait_port(host: str, port: int, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            with socket.create_connection((host, port), timeout=0.5):
                return
        except OSError:
            if time.monotonic() > deadline:
                raise TimeoutError(f"nothing listening on {host}:{port} after {timeout:.0f} s") from None
            time.sleep(0.05)


class _Process:
    name = "process"
    # descriptors the process inherits: ``minewatch up``'s lock on its home, held while any
    # process it started lives, even one left behind by an ``up`` killed outright
    keep_open: tuple[int, ...] = ()

    def __init__(self, data_dir: Path, log: Path) -> None:
        self.data_dir = Path(data_dir)
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.log_path = log
        self.proc: subprocess.Popen[bytes] | None = None

    def _spawn(self, argv: list[str]) -> None:
        logf = open(self.log_path, "ab")
        self.proc = subprocess.Popen(argv, stdout=logf, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                     start_new_session=True, pass_fds=self.keep_open)
        logf.close()

    def _check_alive(self) -> None:
        if self.proc is not None and self.proc.poll() is not None:
            tail = self.log_path.read_text(errors="replace")[-2000:] if self.log_path.exists() else ""
            raise RuntimeError(f"{self.name} exited with {self.proc.returncode}:\n{tail}")

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 15.0) -> None:
        if self.proc is not None:
            stop_process(self.proc, sig, timeout)

    def kill(self) -> None:
        self.stop(signal.SIGKILL)

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def start(self) -> None:  # pragma: no cover - overridden
        raise NotImplementedError


@dataclass(frozen=True)
class TlsFiles:
    """PEM files of a TLS server: the CA that signed it, its certificate and its key."""

    ca: Path
    cert: Path
    key: Path


class Mosquitto(_Process):
    """A mosquitto broker on 127.0.0.1:``port`` with persistence in ``data_dir``.

    The loss-free limits of ``deploy/mosquitto-limits.conf`` are always included. With
    ``password_file`` (and usually ``acl_file``, see :mod:`minewatch.security`) clients must log
    in; ``anonymous`` allows clients without credentials (the default only when there is no
    password file). ``tls`` adds a TLS listener on ``tls_port``. ``extra`` is appended to the
    generated configuration; ``config`` replaces it entirely.

    With ``service_password_file`` the broker has the two listeners of :mod:`minewatch.security`
    (``per_listener_settings``): ``port`` (and ``tls_port``) is the public one, where the client id
    is the username and ``password_file``/``acl_file`` apply, and ``service_port`` the service one,
    with ``service_password_file``/``service_acl_file``.
    """

    name = "mosquitto"

    def __init__(self, data_dir: Path, port: int | None = None, *, extra: str = "", anonymous: bool | None = None,
                 config: str | None = None, host: str = "127.0.0.1", password_file: Path | None = None,
                 acl_file: Path | None = None, tls: TlsFiles | None = None, tls_port: int | None = None,
                 service_password_file: Path | None = None, service_acl_file: Path | None = None,
                 service_port: int | None = None) -> None:
        super().__init__(data_dir, Path(data_dir) / "mosquitto.log")
        self.host = host
        self.port = port or free_port()
        self.extra = extra
        self.anonymous = password_file is None if anonymous is None else anonymous
        self.config = config
        self.password_file = password_file
        self.acl_file = acl_file
        self.tls = tls
        self.tls_port = (tls_port or free_port()) if tls else None
        self.service_password_file = service_password_file
        self.service_acl_file = service_acl_file
        self.service_port = (service_port or free_port()) if service_password_file is not None else None
        self.conf_path = self.data_dir / "mosquitto.conf"

    @property
    def url(self) -> str:
        return f"mqtt://{self.host}:{self.port}"

    @property
    def service_url(self) -> str:
        if self.service_port is None:
            raise ValueError("this broker has no service listener")
        return f"mqtt://{self.host}:{self.service_port}"

    @property
    def tls_url(self) -> str:
        if self.tls_port is None:
            raise ValueError("this broker has no TLS listener")
        return f"mqtts://{self.host}:{self.tls_port}"

    def render_config(self) -> str:
        if self.config is not None:
            return self.config
        limits = (DEPLOY / "mosquitto-limits.conf").read_text()
        lines = ["# generated by minewatch.services", limits, f"persistence_location {self.data_dir}/"]
        if hasattr(os, "geteuid") and os.geteuid() == 0:
            # Run as root, mosquitto switches to the 'mosquitto' user, which cannot write a
            # root-owned data directory (persistence would fail) or read a private password file.
            lines.append("user root")
        security = [f"allow_anonymous {'true' if self.anonymous else 'false'}"]
        if self.password_file is not None:
            security.append(f"password_file {self.password_file}")
        if self.acl_file is not None:
            security.append(f"acl_file {self.acl_file}")
        if self.service_port is not None:
            lines.append("per_listener_settings true")
            security.append("use_username_as_clientid true")
        lines.append(f"listener {self.port} {self.host}")
        if self.service_port is not None:
            lines += security
        if self.tls is not None:
            lines += [f"listener {self.tls_port} {self.host}", f"cafile {self.tls.ca}", f"certfile {self.tls.cert}",
                      f"keyfile {self.tls.key}", "tls_version tlsv1.2"]
            if self.service_port is not None:
                lines += security
        if self.service_port is not None:
            lines += [f"listener {self.service_port} {self.host}", "allow_anonymous false",
                      f"password_file {self.service_password_file}"]
            if self.service_acl_file is not None:
                lines.append(f"acl_file {self.service_acl_file}")
        else:
            lines += security
        lines += [self.extra, ""]
        return "\n".join(lines)

    def start(self) -> None:
        self.conf_path.write_text(self.render_config())
        self._spawn([find_program("mosquitto"), "-c", str(self.conf_path)])
        deadline = time.monotonic() + 20
        while True:
            self._check_alive()
            try:
                wait_port(self.host, self.port, timeout=0.2)
                if self.tls_port is not None:
                    wait_port(self.host, self.tls_port, timeout=0.2)
                if self.service_port is not None:
                    wait_port(self.host, self.service_port, timeout=0.2)
                return
            except TimeoutError:
                if time.monotonic() > deadline:
                    raise


class Influxd(_Process):
    """An InfluxDB 1.x server speaking HTTP on 127.0.0.1:``port`` (``config`` replaces the
    generated configuration; it must listen on ``port``)."""

    name = "influxd"

    def __init__(self, data_dir: Path, port: int | None = None, *, rpc_port: int | None = None,
                 auth: bool = False, host: str = "127.0.0.1", config: str | None = None) -> None:
        super().__init__(data_dir, Path(data_dir) / "influxd.log")
        self.host = host
        self.port = port or free_port()
        self.rpc_port = rpc_port or free_port()
        self.auth = auth
        self.config = config
        self.conf_path = self.data_dir / "influxdb.conf"

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def render_config(self) -> str:
        if self.config is not None:
            return self.config
        d = self.data_dir
        return f"""# generated by minewatch.services
reporting-disabled = true
bind-address = "{self.host}:{self.rpc_port}"
[meta]
  dir = "{d}/meta"
  logging-enabled = false
[data]
  dir = "{d}/data"
  wal-dir = "{d}/wal"
  query-log-enabled = false
  cache-max-memory-size = 2147483648
  max-series-per-database = 0
  max-values-per-tag = 0
[monitor]
  store-enabled = false
[http]
  enabled = true
  bind-address = "{self.host}:{self.port}"
  auth-enabled = {"true" if self.auth else "false"}
  log-enabled = false
  max-body-size = 0
[continuous_queries]
  enabled = true
  log-enabled = false
  run-interval = "10s"
[logging]
  level = "warn"
"""

    def start(self) -> None:
        self.conf_path.write_text(self.render_config())
        self._spawn([find_program("influxd"), "-config", str(self.conf_path)])
        wait_http(f"{self.url}/ping", 204, timeout=60, interval=0.1, check=self._check_alive)



class NatsServer(_Process):
    """A ``nats-server`` with JetStream (file storage in ``data_dir``) on 127.0.0.1:``port``.

    Alone, or one node of a cluster: ``cluster_port`` is its route listener and ``routes`` the
    other nodes' route ports (see :func:`nats_cluster`). ``config`` replaces the generated
    configuration (it must listen on ``port``; the group's centre and leaf nodes come rendered by
    ``group.servers``) and may be changed between a stop and the next start."""

    name = "nats-server"

    def __init__(self, data_dir: Path, port: int | None = None, *, server_name: str = "n1",
                 cluster_port: int | None = None, routes: tuple[int, ...] = (), cluster_name: str = "centre",
                 host: str = "127.0.0.1", config: str | None = None) -> None:
        super().__init__(data_dir, Path(data_dir) / "nats-server.log")
        self.host = host
        self.port = port or free_port()
        self.server_name = server_name
        self.cluster_port = cluster_port
        self.routes = routes
        self.cluster_name = cluster_name
        self.config = config
        self.conf_path = self.data_dir / "nats-server.conf"

    @property
    def url(self) -> str:
        return f"nats://{self.host}:{self.port}"

    def render_config(self) -> str:
        if self.config is not None:
            return self.config
        lines = ["# generated by minewatch.services", f"listen: {self.host}:{self.port}",
                 f"server_name: {self.server_name}",
                 f'jetstream {{ store_dir: "{self.data_dir / "js"}", max_memory_store: 256MB, max_file_store: 4GB }}']
        if self.cluster_port is not None:
            routes = ", ".join(f"nats-route://{self.host}:{p}" for p in self.routes)
            lines.append(f"cluster {{ name: {self.cluster_name}, listen: {self.host}:{self.cluster_port}, "
                         f"routes: [{routes}] }}")
        return "\n".join(lines) + "\n"

    def start(self) -> None:
        self.conf_path.write_text(self.render_config())
        self._spawn([find_program("nats-server"), "-c", str(self.conf_path)])
        deadline = time.monotonic() + 20
        while True:
            self._check_alive()
            try:
                wait_port(self.host, self.port, timeout=0.2)
                return
            except TimeoutError:
                if time.monotonic() > deadline:
                    raise


def nats_cluster(data_dir: Path, nodes: int = 3) -> list[NatsServer]:
    """``nodes`` JetStream servers routed to each other on loopback (not started)."""
    ports = [free_port() for _ in range(nodes)]
    return [NatsServer(Path(data_dir) / f"n{i + 1}", server_name=f"n{i + 1}", cluster_port=ports[i],
                       routes=tuple(p for j, p in enumerate(ports) if j != i)) for i in range(nodes)]
