"""SIGTERM ends ``minewatch ingest`` within its stop budget even when InfluxDB has gone silent,
and loses nothing: what was not durable was not acknowledged, and the broker sends it again."""

from __future__ import annotations

import contextlib
import signal
import socket
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from minewatch.influx import SyncInflux
from minewatch.services import Influxd, Mosquitto
from minewatch.topics import Topics

from tests.ingest.helpers import IngestProcess, Publisher, telemetry_count, wait_until
from tests.ingest.test_faults import Stream, _args

pytestmark = pytest.mark.integration


class SilentProxy:
    """A TCP proxy to InfluxDB that can fall silent: connections are accepted and requests read,
    but nothing is passed on or answered (an InfluxDB stuck in a long compaction, a dead route)."""

    def __init__(self, upstream: str) -> None:
        host, port = upstream.removeprefix("http://").split(":")
        self.upstream = (host, int(port))
        self.server = socket.create_server(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self.server.getsockname()[1]}"
        self.silent = threading.Event()
        self.closed = threading.Event()
        self.socks: list[socket.socket] = []
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while not self.closed.is_set():
            try:
                client, _ = self.server.accept()
            except OSError:
                return
            self.socks.append(client)
            threading.Thread(target=self._serve, args=(client,), daemon=True).start()

    def _serve(self, client: socket.socket) -> None:
        try:
            up = socket.create_connection(self.upstream)
        except OSError:
            client.close()
            return
        self.socks.append(up)
        threading.Thread(target=self._pump, args=(client, up), daemon=True).start()
        self._pump(up, client)

    def _pump(self, src: socket.socket, dst: socket.socket) -> None:
        with contextlib.suppress(OSError):
            while data := src.recv(65536):
                while self.silent.is_set() and not self.closed.is_set():
                    time.sleep(0.05)
                if self.closed.is_set():
                    return
                dst.sendall(data)

    def close(self) -> None:
        self.closed.set()
        self.server.close()
        for s in self.socks:
            with contextlib.suppress(OSError):
                s.shutdown(socket.SHUT_RDWR)
            s.close()


@pytest.fixture
def proxy(influxd: Influxd) -> Iterator[SilentProxy]:
    p = SilentProxy(influxd.url)
    yield p
    p.close()


def _sigterm(proc: IngestProcess, limit: float) -> float:
    """Seconds from SIGTERM to exit; fails if the process is still there after ``limit``."""
    assert proc.proc is not None and proc.alive
    t0 = time.monotonic()
    proc.proc.send_signal(signal.SIGTERM)
    try:
        proc.proc.wait(limit)
    except Exception:  # noqa: BLE001 - subprocess.TimeoutExpired: report with the log
        proc.kill()
        raise AssertionError(f"still running {limit:.0f} s after SIGTERM:\n{proc.log()}") from None
    return time.monotonic() - t0


def test_sigterm_while_influxdb_is_silent_ends_in_seconds_and_loses_nothing(
        mosquitto: Mosquitto, influxd: Influxd, influx_db: SyncInflux, proxy: SilentProxy, prefix: str,
        tmp_path: Path, ingest_process: Callable[..., IngestProcess]) -> None:
    topics = Topics(prefix)
    args = _args(mosquitto.url, proxy.url, influx_db.db, prefix, tmp_path, "--no-detectors", "--stop-timeout", "3")
    proc = ingest_process(*args)
    wait_until(lambda: "connected to the broker" in proc.log(), 30, "ingest to connect")
    pub = Publisher(mosquitto.url)
    stream = Stream(pub, topics, per_robot=700, rate=100)   # 400 frames/s for 7 s
    stream.start()
    wait_until(lambda: telemetry_count(influx_db) > 0, 10, "the first points")
    proxy.silent.set()           # from now on every write waits for an answer that never comes
    time.sleep(1.5)
    took = _sigterm(proc, 10)
    assert took < 4.5, f"{took:.1f} s from SIGTERM to exit:\n{proc.log()}"
    assert proc.proc is not None and proc.proc.returncode == 0, proc.log()
    assert "spooling them instead" in proc.log()  # the writes were cut short, their batches spooled
    # the same session and spool against InfluxDB itself: the spool drains, the broker resends
    # what was not acknowledged, the stream goes on
    again = ingest_process(*_args(mosquitto.url, influxd.url, influx_db.db, prefix, tmp_path, "--no-detectors"),
                           name="again")
    stream.land(influx_db, again)
    pub.close()


def test_sigterm_while_starting_against_a_silent_influxdb(mosquitto: Mosquitto, influx_db: SyncInflux,
                                                          proxy: SilentProxy, prefix: str, tmp_path: Path,
        ingest_process: Callable[..., IngestProcess]) -> None:
    proxy.silent.set()  # the database set-up at start waits (15 s client timeout) for an answer
    proc = ingest_process(*_args(mosquitto.url, proxy.url, influx_db.db, prefix, tmp_path, "--no-detectors",
                                 "--stop-timeout", "2"))
    wait_until(lambda: "starting" in proc.log(), 30, "ingest to start")
    time.sleep(0.5)
    took = _sigterm(proc, 10)
    assert took < 3.5, f"{took:.1f} s from SIGTERM to exit:\n{proc.log()}"
    assert proc.proc is not None and proc.proc.returncode == 0, proc.log()
    assert "stopped while starting" in proc.log()


def _metric(port: int, name: str) -> float:
    import urllib.request

    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as r:
        for line in r.read().decode().splitlines():
            if line.startswith(name + "{") or line.startswith(name + " "):
                return float(line.rsplit(" ", 1)[1])
    raise AssertionError(f"{name} not in the metrics")


def test_nothing_is_acknowledged_while_influxdb_is_silent(
        mosquitto: Mosquitto, influxd: Influxd, influx_db: SyncInflux, proxy: SilentProxy, prefix: str,
        tmp_path: Path, ingest_process: Callable[..., IngestProcess]) -> None:
    """The acknowledgements follow the writes: while InfluxDB answers nothing, messages keep coming
    in and not one more is acknowledged; killed then, the process has lost nothing."""
    from minewatch.services import free_port

    port = free_port()
    topics = Topics(prefix)
    proc = ingest_process(*_args(mosquitto.url, proxy.url, influx_db.db, prefix, tmp_path, "--no-detectors",
                                 "--metrics-port", str(port)))
    wait_until(lambda: "connected to the broker" in proc.log(), 30, "ingest to connect")
    pub = Publisher(mosquitto.url)
    stream = Stream(pub, topics, per_robot=1000, rate=100)   # 400 frames/s for 10 s
    stream.start()
    acked = "minewatch_ingest_messages_acked_total"
    received = "minewatch_ingest_messages_received_total"
    wait_until(lambda: _metric(port, acked) > 0, 15, "the first acknowledgements")
    proxy.silent.set()
    time.sleep(0.5)  # writes already answered are acknowledged by now
    acked_then, received_then = _metric(port, acked), _metric(port, received)
    time.sleep(1.5)
    assert _metric(port, received) > received_then + 100  # messages still come in
    assert _metric(port, acked) == acked_then             # and none is acknowledged
    proc.kill()
    again = ingest_process(*_args(mosquitto.url, influxd.url, influx_db.db, prefix, tmp_path, "--no-detectors"),
                           name="again")
    stream.land(influx_db, again)
    pub.close()
