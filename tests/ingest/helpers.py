"""Helpers for the ingest tests: frames, a robust publisher, the ingestor in-process or as a process."""

from __future__ import annotations

import asyncio
import collections
import contextlib
import json
import os
import random
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any, TypeVar
from pathlib import Path

import paho.mqtt.client as paho

from minewatch.catalogue import SCENARIOS
from minewatch.influx import SyncInflux
from minewatch.mqtt import connect_properties, paho_client
from minewatch.settings import Settings, parse_mqtt_url
from minewatch.topics import Topics
from minewatch.wire import Frame, LinkInfo, encode_frame, encode_frames

T0 = 1_795_852_800_000_000_000  # 2026-11-28T00:00:00Z: a fixed robot time, so runs are comparable


def frames_for(scenario_id: str, robot_id: str, n: int, *, start_seq: int = 0, t0: int | None = None,
               step_ns: int = 1_000_000_000, rng: random.Random | None = None) -> list[Frame]:
    """``n`` frames with every channel of the scenario at a normal value."""
    rng = rng or random.Random(hash((scenario_id, robot_id)) & 0xFFFF)
    sc = SCENARIOS[scenario_id]
    t0 = time.time_ns() if t0 is None else t0
    out = []
    for i in range(n):
        seq = start_seq + i
        readings: dict[str, float | None] = {c.name: round(rng.uniform(*c.normal), 3) for c in sc.channels}
        out.append(Frame(robot_id=robot_id, scenario_id=scenario_id, seq=seq, ts=t0 + seq * step_ns,
                         readings=readings, pos_m=float(seq % 500), battery=80.0,
                         link=LinkInfo(latency_ms=12.0, rssi_dbm=-75.0)))
    return out


class Publisher:
    """QoS 1 publisher on a persistent session: keeps and resends what the broker has not acknowledged,
    through broker restarts, like a robot buffering over a bad link."""

    def __init__(self, mqtt_url: str, client_id: str | None = None) -> None:
        target = parse_mqtt_url(mqtt_url)
        self.client = paho_client(target, client_id or f"pub-{uuid.uuid4().hex[:10]}")
        self.client.max_inflight_messages_set(500)
        self.client.reconnect_delay_set(0.2, 2)  # type: ignore[arg-type]
        self.client.connect_async(target.host, target.port, 30, clean_start=False,
                                  properties=connect_properties(3600))
        self.pending: set[int] = set()
        self.early: set[int] = set()  # acknowledged before publish() had noted them
        self.lock = threading.Lock()
        self.connected = threading.Event()
        # the connection's history, for the message of a publish that timed out
        self.history: collections.deque[str] = collections.deque(maxlen=40)
        self.client.on_connect = self._on_connect
        self.client.on_disconnect = self._on_disconnect
        self.client.on_connect_fail = lambda c, u: self._note("connect failed")
        self.client.on_publish = self._on_publish
        self.client.loop_start()
        if not self.connected.wait(20):
            raise TimeoutError("publisher could not connect")

    def _note(self, what: str) -> None:
        self.history.append(f"{time.strftime('%H:%M:%S')}.{int(time.time() * 1000) % 1000:03d} {what}")

    def _on_connect(self, client: paho.Client, userdata: object, flags: object, rc: object, props: object) -> None:
        self._note(f"connected: {rc}")
        self.connected.set()

    def _on_disconnect(self, client: paho.Client, userdata: object, flags: object, rc: object, props: object) -> None:
        self._note(f"disconnected: {rc}")
        self.connected.clear()

    def _on_publish(self, client: paho.Client, userdata: object, mid: int, rc: object, props: object) -> None:
        # paho calls this holding its own message lock: never wait on anything here that
        # a thread inside client.publish() could hold
        with self.lock:
            if mid in self.pending:
                self.pending.remove(mid)
            else:
                self.early.add(mid)

    def publish(self, topic: str, payload: bytes, qos: int = 1) -> None:
        # while the broker is away, hold on (a robot buffers); publishing into paho's reconnect
        # window can leave a message unsent behind its queued ones
        if not self.connected.wait(60):
            raise TimeoutError("publisher lost the broker for 60 s; its connection's history:\n"
                               + "\n".join(self.history))
        info = self.client.publish(topic, payload, qos=qos)
        if qos:
            with self.lock:
                if info.mid in self.early:
                    self.early.remove(info.mid)
                else:
                    self.pending.add(info.mid)

    def send(self, topics: Topics, frames: list[Frame], per_message: int = 1) -> None:
        for i in range(0, len(frames), per_message):
            chunk = frames[i:i + per_message]
            payload = encode_frame(chunk[0]) if per_message == 1 else encode_frames(chunk)
            self.publish(topics.telemetry(chunk[0].scenario_id, chunk[0].robot_id), payload)

    def flush(self, timeout: float = 60.0) -> None:
        """Wait until the broker has acknowledged everything published so far."""
        wait_until(lambda: not self.pending, timeout, f"the broker to acknowledge {len(self.pending)} messages", 0.01)

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


class Collector:
    """Subscribes to topics (QoS 1) and keeps what arrives."""

    def __init__(self, mqtt_url: str, *subscriptions: str) -> None:
        target = parse_mqtt_url(mqtt_url)
        self.messages: list[tuple[str, bytes, bool, float]] = []
        self.lock = threading.Lock()
        ready = threading.Event()
        self.client = paho_client(target, f"col-{uuid.uuid4().hex[:10]}")
        self.client.on_connect = lambda c, u, f, rc, p: c.subscribe([(s, 1) for s in subscriptions])
        self.client.on_subscribe = lambda c, u, mid, rcs, p: ready.set()

        def on_message(c, u, msg):
            with self.lock:
                self.messages.append((msg.topic, msg.payload, bool(msg.retain), time.time()))

        self.client.on_message = on_message
        self.client.connect(target.host, target.port, 30)
        self.client.loop_start()
        if not ready.wait(20):
            raise TimeoutError("collector could not subscribe")

    def take(self) -> list[tuple[str, bytes, bool, float]]:
        with self.lock:
            return list(self.messages)

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def ingest_settings(broker_url: str, influx_url: str, db: SyncInflux, prefix: str, tmp_path: Path) -> Settings:
    """Settings for an ingestor under test: its own topic prefix, database and data directory."""
    return Settings(mqtt_url=broker_url, influx_url=influx_url, influx_db=db.db, topic_prefix=prefix,
                    data_dir=tmp_path / "data")


def wait_until(check: Callable[[], bool], timeout: float, what: str, interval: float = 0.1) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(interval)


def alert_events_of(col: Collector, topics: Topics) -> list[dict[str, Any]]:
    """The alert events (not the retained state) ``col`` has received under ``topics``."""
    out = []
    for topic, payload, _, _ in col.take():
        parsed = topics.parse_alert(topic)
        if parsed and parsed[0] == "event":
            out.append(json.loads(payload))
    return out


def retained_active(mqtt_url: str, topics: Topics) -> dict[str, bytes]:
    """The retained active state under ``topics`` (alert id -> payload), as a new subscriber gets it."""
    col = Collector(mqtt_url, topics.all_active)
    time.sleep(0.5)
    got = {t.rsplit("/", 1)[1]: p for t, p, retained, _ in col.take() if retained}
    col.close()
    return got


def telemetry_count(db: SyncInflux) -> int:
    try:
        return db.count("telemetry", "seq")
    except Exception:  # noqa: BLE001 - InfluxDB restarting
        return -1


def seqs_by_robot(db: SyncInflux) -> dict[str, list[int]]:
    rows = db.query('SELECT "seq" FROM "telemetry" GROUP BY "robot"')
    out: dict[str, list[int]] = {}
    for r in rows:
        out.setdefault(r["robot"], []).append(int(r["seq"]))
    return out


def assert_exactly_once(db: SyncInflux, expected: dict[str, int]) -> None:
    """Every robot's seq 0..n-1 is stored once; nothing else is in ``telemetry``."""
    got = seqs_by_robot(db)
    assert set(got) == set(expected), (sorted(got), sorted(expected))
    for robot, n in expected.items():
        seqs = got[robot]
        assert len(seqs) == n and sorted(seqs) == list(range(n)), \
            f"{robot}: {len(seqs)} stored, {n} sent; missing {sorted(set(range(n)) - set(seqs))[:20]}"
    assert telemetry_count(db) == sum(expected.values())


P_ = TypeVar("P_", bound="IngestProcess")


def process_starter(tmp_path: Path, cls: type[P_]) -> tuple[Callable[..., P_], Callable[[], None]]:
    """A fixture's ``start(*args, name=...)`` for processes of ``cls`` (logs in ``tmp_path``), and
    the clean-up that kills any still running."""
    procs: list[P_] = []

    def start(*args: str, name: str = "ingest") -> P_:
        p = cls(tmp_path / f"{name}.log", *args).start()
        procs.append(p)
        return p

    def kill_all() -> None:
        for p in procs:
            if p.alive:
                p.kill()

    return start, kill_all


@contextlib.contextmanager
def ingestor_in_process(settings: Settings, **options: object) -> Iterator[object]:
    """Run an :class:`ingest.Ingestor` on a thread of its own; stop it gracefully on exit."""
    from ingest.service import IngestOptions, Ingestor

    holder: dict[str, object] = {}
    started = threading.Event()

    def main() -> None:
        async def go() -> None:
            # these tests name robots freely (rx, r1, ...): any robot, unless a test says otherwise
            ing = Ingestor(settings, IngestOptions(**{"robots": "*", **options}))  # type: ignore[arg-type]
            holder["ing"], holder["loop"] = ing, asyncio.get_running_loop()
            ing.loop = holder["loop"]  # type: ignore[attr-defined]  # for tests that reach into its thread
            waiter = asyncio.create_task(ing.started.wait())
            runner = asyncio.create_task(ing.run())
            await asyncio.wait([waiter, runner], return_when=asyncio.FIRST_COMPLETED)
            started.set()
            await runner

        try:
            asyncio.run(go())
        except BaseException as exc:  # noqa: BLE001 - reported to the test
            holder["error"] = exc
            started.set()

    t = threading.Thread(target=main, daemon=True)
    t.start()
    started.wait(60)
    if "error" in holder:
        raise holder["error"]  # type: ignore[misc]
    ing = holder["ing"]
    try:
        yield ing
    finally:
        loop = holder["loop"]
        loop.call_soon_threadsafe(ing.stop)  # type: ignore[attr-defined]
        t.join(30)
        assert not t.is_alive(), "ingestor did not stop"
    if "error" in holder:
        raise holder["error"]  # type: ignore[misc]


def minewatch_exe() -> list[str]:
    exe = Path(sys.executable).with_name("minewatch")
    return [str(exe)] if exe.exists() else [sys.executable, "-c", "from minewatch.cli import main; main()"]


class IngestProcess:
    """``minewatch ingest`` (or another ``command``) as a real process (for SIGKILL and restart tests)."""

    command: tuple[str, ...] = ("ingest",)

    def __init__(self, log_path: Path, *args: str, env: dict[str, str] | None = None) -> None:
        self.argv = [*minewatch_exe(), *self.command, *args]
        self.log_path = log_path
        self.env = {"MINEWATCH_ROBOTS": "*", **os.environ, **(env or {})}  # robots named freely, as above
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self: P_) -> P_:
        with open(self.log_path, "ab") as logf:
            self.proc = subprocess.Popen(self.argv, stdout=logf, stderr=subprocess.STDOUT, env=self.env,
                                         start_new_session=True)
        return self

    def kill(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)

    def terminate(self, timeout: float = 30.0) -> int:
        assert self.proc is not None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
                raise AssertionError(f"ingest did not stop on SIGTERM within {timeout:.0f} s:\n{self.log()}") from None
        return self.proc.returncode

    @property
    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")[-4000:] if self.log_path.exists() else ""


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
