"""Where the simulated telemetry goes: a JSONL file, an MQTT broker (one connection per robot).

The MQTT sink gives every robot its own MQTT 5 connection, as real robots have, so that each
one's last will (``online: false``, retained, on ``status/{robot_id}``) fires when its
connection drops. All connections are driven from one thread with ``select`` (paho's external
loop API): one process drives hundreds of robots. Telemetry and status are published QoS 1;
:meth:`MqttSink.drain` waits until the broker has acknowledged every publish.

With ``history`` the sink loads history instead: frames go to ``history/{scenario}/{robot}``
(stored and detected by the ingestor's history detectors, never on the live board), and no
status and no will are published, so the live robots of the same ids are left alone.
"""

from __future__ import annotations

import json
import os
import select
import socket
import sys
import time
import uuid
from pathlib import Path
from typing import IO, Any

import paho.mqtt.client as paho
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.reasoncodes import ReasonCode

from minewatch.mqtt import paho_client
from minewatch.schema import RobotStatus
from minewatch.settings import MqttTarget
from minewatch.topics import Topics
from minewatch.wire import encode_frame, encode_frames
from simulator.engine import Message, Simulation, Tick

__all__ = ["FileSink", "LabelSink", "MqttSink", "SinkError", "payload_of"]

MAX_OUTSTANDING = 20_000  # publishes not yet acknowledged before the producer waits
MAX_INFLIGHT = 100  # per robot connection, if the broker allows that many


class SinkError(RuntimeError):
    """The sink cannot deliver (broker unreachable, connection refused, file not writable)."""


def payload_of(msg: Message) -> bytes:
    return encode_frame(msg.frames[0]) if len(msg.frames) == 1 else encode_frames(msg.frames)


def _open(path: Path, mode: str) -> Any:
    try:
        return open(path, mode)
    except OSError as exc:
        raise SinkError(f"cannot write {path}: {exc.strerror}") from None


class FileSink:
    """One line per MQTT message, exactly the payload that would be published (a frame object or
    an array of frames): ``minewatch.wire.decode_frames(line)`` reads it back."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._f: IO[bytes] = _open(self.path, "wb")
        self.messages = 0

    def write(self, tick: Tick) -> None:
        if tick.messages:
            self._f.write(b"".join(payload_of(m) + b"\n" for m in tick.messages))
            self.messages += len(tick.messages)

    def close(self) -> None:
        self._f.close()


class ProgressSink:
    """A progress bar on standard error: the share of the run done, by frames (``--frames``) or
    by simulated time (``--duration``), with the frames so far. Writes nothing else."""

    def __init__(self, sim: Simulation, *, file: Any = None) -> None:
        import click

        c = sim.config
        self.sim = sim
        self.frames_total = c.frames
        self.t0 = sim.t0
        self.span = round(c.duration_s * 1e9) if c.duration_s is not None else None
        self.file = file or sys.stderr
        self.bar: Any = click.progressbar(length=1000, label="simulating", file=self.file, show_eta=True,
                                     item_show_func=lambda _: f"{self.sim.frames_generated:,} frames")
        self.bar.__enter__()
        self.done = 0

    def write(self, tick: Tick) -> None:
        if self.frames_total:
            share = self.sim.frames_generated / self.frames_total
        elif self.span:
            share = (tick.t_ns - self.t0) / self.span
        else:
            share = 0.0
        now = min(1000, max(0, int(share * 1000)))
        if now > self.done:
            self.bar.update(now - self.done, current_item=True)
            self.done = now

    def close(self) -> None:
        self.bar.__exit__(None, None, None)


class LabelSink:
    """Writes each fault's ground-truth records (JSONL) as soon as they are final, the rest at close,
    so a long live run's labels grow as it goes."""

    def __init__(self, path: str | Path, sim: Simulation) -> None:
        self.path = Path(path)
        self.sim = sim
        self._f: IO[str] = _open(self.path, "w")
        self.records = 0

    def write(self, tick: Tick) -> None:
        self._put(self.sim.finished_labels())

    def _put(self, records: list[dict[str, Any]]) -> None:
        for rec in records:
            self._f.write(json.dumps(rec, separators=(",", ":")) + "\n")
        if records:
            self._f.flush()
            self.records += len(records)

    def close(self) -> None:
        if self.sim.finished:
            self._put(self.sim.finished_labels())
        else:  # interrupted: what is known so far
            self._put(self.sim.tracker.rest() + self.sim.finished_labels())
        self._f.close()


class _Robot:
    __slots__ = ("id", "client", "connected", "online", "window", "outstanding")

    def __init__(self, robot_id: str, client: paho.Client) -> None:
        self.id = robot_id
        self.client = client
        self.connected = False
        self.online = True
        self.window = MAX_INFLIGHT  # publishes unacknowledged at most: the broker's Receive Maximum, if lower
        self.outstanding = 0        # publishes handed to paho and not yet acknowledged by the broker


class MqttSink:
    def __init__(self, target: MqttTarget, topics: Topics, robot_ids: list[str], *, keepalive: int = 10,
                 ca: Path | None = None, cert: Path | None = None, key: Path | None = None,
                 connect_timeout: float = 10.0, history: bool = False) -> None:
        self.target = target
        self.topics = topics
        self.history = history
        self.keepalive = keepalive
        self.connect_timeout = connect_timeout
        self.published = 0
        self.acked = 0
        self.messages = 0
        self.errors: list[str] = []
        tag = f"{os.getpid()}-{uuid.uuid4().hex[:6]}"
        self.robots: dict[str, _Robot] = {}
        for rid in robot_ids:
            client = paho_client(target, client_id=f"mwsim{'-hist' if history else ''}-{rid}-{tag}", ca=ca, cert=cert,
                                 key=key)
            if not history:
                will = RobotStatus(robot_id=rid, online=False).model_dump_json(exclude_none=True)
                client.will_set(topics.status(rid), will, qos=1, retain=True)
            client.on_publish = self._on_publish
            client.on_connect = self._on_connect
            client.on_disconnect = self._on_disconnect
            client.on_socket_open = self._on_socket_open
            client.max_inflight_messages_set(MAX_INFLIGHT)  # a window of 20 stalls a robot sending its backlog
            client.user_data_set(rid)
            self.robots[rid] = _Robot(rid, client)
        self._last_misc = 0.0

    # paho callbacks (called from pump, on this thread)
    def _on_publish(self, client: paho.Client, userdata: Any, mid: int, rc: Any, props: Any) -> None:
        self.acked += 1
        self.robots[userdata].outstanding -= 1

    def _on_connect(self, client: paho.Client, userdata: Any, flags: Any, rc: Any, props: Any) -> None:
        if rc.is_failure:
            hint = ""
            if getattr(rc, "value", None) in (4, 5, 134, 135):  # bad user name or password; not authorized
                from minewatch.settings import credentials_hint

                hint = f" ({credentials_hint('MINEWATCH_MQTT_URL (mqtt://user:password@host:port)')})"
            self.errors.append(f"{userdata}: connection refused: {rc}{hint}")
            return
        self.robots[userdata].connected = True
        # never more publishes in flight than the broker's MQTT 5 Receive Maximum (65535 if unsaid)
        # (paho's own window cannot change on an open connection: the robot keeps to it itself)
        allowed = getattr(props, "ReceiveMaximum", 65535) if props is not None else 20
        self.robots[userdata].window = max(1, min(MAX_INFLIGHT, allowed))

    @staticmethod
    def _on_socket_open(client: paho.Client, userdata: Any, sock: Any) -> None:
        # frames are small: send each at once rather than waiting for the previous one's TCP ack
        try:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        except (OSError, AttributeError):
            pass

    def _on_disconnect(self, client: paho.Client, userdata: Any, flags: Any, rc: Any, props: Any) -> None:
        self.robots[userdata].connected = False

    # ------------------------------------------------------------------ connection
    def connect(self) -> None:
        for r in self.robots.values():
            try:
                r.client.connect(self.target.host, self.target.port, keepalive=self.keepalive)
            except OSError as exc:
                raise SinkError(f"cannot reach the MQTT broker at {self.target.host}:{self.target.port}: {exc}") from None
        self._wait(lambda: all(r.connected for r in self.robots.values()) or bool(self.errors), "connect")
        if self.errors:
            raise SinkError(self.errors[0])

    def _wait(self, done: Any, what: str, timeout: float | None = None) -> None:
        deadline = time.monotonic() + (timeout or self.connect_timeout)
        while not done():
            if time.monotonic() > deadline:
                raise SinkError(f"MQTT {what} timed out after {timeout or self.connect_timeout:.0f} s "
                                f"({self.published - self.acked} publishes unacknowledged)")
            self.pump(0.05)

    def pump(self, timeout: float = 0.0) -> None:
        """Run every connection's network I/O once (waiting up to ``timeout`` for any)."""
        socks: dict[Any, _Robot] = {}
        wsocks = []
        for r in self.robots.values():
            s = r.client.socket()
            if s is None:
                continue
            socks[s] = r
            if r.client.want_write():
                wsocks.append(s)
        if socks:
            try:
                rd, wr, _ = select.select(list(socks), wsocks, [], timeout)
            except (ValueError, OSError):
                rd, wr = [], []
            for s in rd:
                socks[s].client.loop_read()
            for s in wr:
                if socks[s].client.socket() is not None:
                    socks[s].client.loop_write()
        else:
            time.sleep(timeout)  # every connection is down (a broker restart): fall through to reconnect
        now = time.monotonic()
        if now - self._last_misc > 0.5:
            self._last_misc = now
            for r in self.robots.values():
                if r.client.socket() is None:
                    if r.online:
                        self._reconnect(r)
                else:
                    r.client.loop_misc()

    def _reconnect(self, r: _Robot) -> None:
        """The broker went away (restart, network): try again; paho re-sends what was not acknowledged."""
        try:
            r.client.reconnect()
        except OSError:
            pass  # still unreachable; the next pump tries again

    # ------------------------------------------------------------------ publishing
    def write(self, tick: Tick) -> None:
        if self.history:
            for msg in tick.messages:
                r = self.robots[msg.robot_id]
                self._publish(r, self.topics.history(msg.scenario_id, msg.robot_id), payload_of(msg))
                self.messages += 1
            self.pump(0.0)
            while self.published - self.acked > MAX_OUTSTANDING:
                self.pump(0.01)
            return
        for st in tick.statuses:
            r = self.robots[st.robot_id]
            payload = st.status.model_dump_json(exclude_none=True)
            if st.event == "offline":
                # the connection drops; the broker publishes the robot's will (online: false)
                self._wait(lambda r=r: not r.outstanding, "flush before disconnect", 30.0)
                r.client.disconnect(reasoncode=ReasonCode(PacketTypes.DISCONNECT, identifier=4))
                self.pump(0.0)
                r.online = False
                continue
            if st.event == "online" and not r.online:
                r.online = True
                try:
                    r.client.reconnect()
                except OSError as exc:
                    raise SinkError(f"{r.id}: cannot reconnect: {exc}") from None
            self._publish(r, self.topics.status(r.id), payload.encode(), retain=True)
        for msg in tick.messages:
            r = self.robots[msg.robot_id]
            self._publish(r, self.topics.telemetry(msg.scenario_id, msg.robot_id), payload_of(msg))
            self.messages += 1
        self.pump(0.0)
        while self.published - self.acked > MAX_OUTSTANDING:
            self.pump(0.01)

    def _publish(self, r: _Robot, topic: str, payload: bytes, retain: bool = False) -> None:
        while r.connected and r.outstanding >= r.window:  # the broker takes no more from this robot yet
            self.pump(0.01)
        info = r.client.publish(topic, payload, qos=1, retain=retain)
        if info.rc not in (paho.MQTT_ERR_SUCCESS, paho.MQTT_ERR_NO_CONN):
            raise SinkError(f"{r.id}: publish failed: {paho.error_string(info.rc)}")
        self.published += 1
        r.outstanding += 1

    def drain(self, timeout: float = 60.0) -> None:
        """Wait until the broker has acknowledged every publish."""
        self._wait(lambda: self.acked >= self.published, "acknowledgement", timeout)

    def close(self) -> None:
        """Leave as a robot does when it stops: the broker publishes each one's will (offline)."""
        for r in self.robots.values():
            if r.online and r.client.socket() is not None:
                # with a will (code 4): the broker publishes it; loading history: a plain goodbye
                r.client.disconnect(reasoncode=ReasonCode(PacketTypes.DISCONNECT, identifier=0 if self.history else 4))
                r.online = False
        for _ in range(10):
            self.pump(0.01)
