"""The MQTT side of the ingestor: paho-mqtt 2, QoS 1, a persistent session, manual acks.

paho is held through its public interface only, the way aiomqtt holds it: no network thread of
its own; the event loop watches the socket (``on_socket_open`` / ``on_socket_close`` /
``on_socket_register_write`` / ``on_socket_unregister_write``) and calls ``loop_read``,
``loop_write`` and, once a second, ``loop_misc`` (keepalive). Packets are read between the
pipeline's steps (it yields to the loop every few milliseconds of work), up to
``read_budget`` messages a turn, so reading never starves the writes and acknowledgements;
what the pipeline publishes or acknowledges is written at once (:meth:`Consumer.flush`).

Flow control is MQTT's own: the broker has at most ``receive_maximum`` unacknowledged messages
out to this client, so the inbox can never hold more, and the rest waits in the broker's queue
(bounded by bytes in ``deploy/mosquitto-limits.conf``). Nothing is acknowledged until the
pipeline says the message's readings are durable.

After a disconnect the broker sends every unacknowledged message again on the resumed session
(flagged ``dup``), reusing their packet ids. Acks still pending for messages of the old connection
are therefore dropped (``generation``): the redelivered copies are stored again (harmless) and
acknowledged instead, and an old id can never acknowledge a new message. A lost connection is
made again by :meth:`Consumer._supervise`, with backoff from 0.2 s to 5 s.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import paho.mqtt.client as paho
from paho.mqtt.enums import MQTTErrorCode
from paho.mqtt.reasoncodes import ReasonCode
from paho.mqtt.subscribeoptions import SubscribeOptions

from minewatch.mqtt import connect_properties, paho_client
from minewatch.settings import Settings

__all__ = ["Consumer", "Incoming", "PahoOnLoop"]

log = logging.getLogger("minewatch.ingest.mqtt")


class PahoOnLoop:
    """A paho client driven by the running asyncio loop through paho's public socket callbacks.

    ``read_budget``: messages read at most per turn of the loop. The client's ``connect`` and
    ``reconnect`` block on the TCP (and TLS) handshake, so :meth:`connect` runs them on a thread;
    everything else runs on the loop.
    """

    def __init__(self, client: paho.Client, *, read_budget: int = 500) -> None:
        self.client = client
        self.read_budget = read_budget
        self.loop: asyncio.AbstractEventLoop | None = None
        self.sock: Any = None
        self._misc: asyncio.Task[None] | None = None
        self._progress = 0  # bumped by the owner for every message taken: reading goes on while it moves
        client.on_socket_open = self._opened
        client.on_socket_close = self._closed
        client.on_socket_register_write = self._want_write
        client.on_socket_unregister_write = self._no_write

    def attach(self) -> None:
        self.loop = asyncio.get_running_loop()
        if self._misc is None:
            self._misc = self.loop.create_task(self._keepalive(), name="mqtt-misc")

    def detach(self) -> None:
        if self._misc is not None:
            self._misc.cancel()
            self._misc = None

    def progressed(self) -> None:
        self._progress += 1

    async def connect(self, host: str, port: int, keepalive: int, **kw: Any) -> None:
        assert self.loop is not None
        await self.loop.run_in_executor(None, lambda: self.client.connect(host, port, keepalive, **kw))

    async def reconnect(self) -> None:
        assert self.loop is not None
        await self.loop.run_in_executor(None, self.client.reconnect)

    # -- paho's socket callbacks (on a connecting thread, or on the loop) ------------------------
    def _on_loop(self, fn: Callable[..., None], *args: Any) -> None:
        loop = self.loop
        assert loop is not None
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if running is loop:
            fn(*args)
        else:
            loop.call_soon_threadsafe(fn, *args)

    def _opened(self, client: paho.Client, userdata: object, sock: Any) -> None:
        self._on_loop(self._watch, sock)

    def _closed(self, client: paho.Client, userdata: object, sock: Any) -> None:
        self._on_loop(self._unwatch, sock)

    def _want_write(self, client: paho.Client, userdata: object, sock: Any) -> None:
        self._on_loop(self._add_writer, sock)

    def _no_write(self, client: paho.Client, userdata: object, sock: Any) -> None:
        self._on_loop(self._remove_writer, sock)

    def _watch(self, sock: Any) -> None:
        assert self.loop is not None
        if sock.fileno() < 0:  # closed again before the loop got to it
            return
        self.sock = sock
        self.loop.add_reader(sock, self._readable)

    def _unwatch(self, sock: Any) -> None:
        assert self.loop is not None
        if self.sock is sock:
            self.sock = None
        try:
            self.loop.remove_reader(sock)
            self.loop.remove_writer(sock)
        except (ValueError, OSError):  # already closed: nothing is registered under it any more
            pass

    def _add_writer(self, sock: Any) -> None:
        assert self.loop is not None
        if sock is self.sock:
            self.loop.add_writer(sock, self._writable)

    def _remove_writer(self, sock: Any) -> None:
        assert self.loop is not None
        try:
            self.loop.remove_writer(sock)
        except (ValueError, OSError):
            pass

    # -- the loop's side ---------------------------------------------------------------------------
    def _readable(self) -> None:
        """Read packets while messages come (up to the budget). The reader is level-triggered: a
        packet left in the socket brings the loop back here on its next turn."""
        client = self.client
        for _ in range(self.read_budget):
            before = self._progress
            if client.loop_read() != MQTTErrorCode.MQTT_ERR_SUCCESS or self._progress == before:
                break
        sock = self.sock
        # TLS: records already decrypted are in the SSL object, not the socket: the loop would
        # not wake for them
        if sock is not None and getattr(sock, "pending", None) is not None and sock.pending():
            assert self.loop is not None
            self.loop.call_soon(self._readable)

    def _writable(self) -> None:
        self.client.loop_write()

    async def _keepalive(self) -> None:
        while True:
            await asyncio.sleep(1.0)
            if self.sock is not None:
                self.client.loop_misc()


@dataclass(slots=True)
class Incoming:
    topic: str
    payload: bytes
    mid: int
    qos: int
    dup: bool
    generation: int
    received_ns: int


class Consumer:
    def __init__(self, settings: Settings, client_id: str, subscriptions: Sequence[tuple[str, int]], *,
                 receive_maximum: int = 20_000, session_expiry_s: int = 7 * 24 * 3600, keepalive: int = 30,
                 on_connected: Callable[[bool], None] | None = None, max_packet: int = 16 * 1024 * 1024,
                 read_budget: int = 500) -> None:
        self.settings = settings
        # the broker's packet limit: ``max_packet`` until the broker says its own (CONNACK)
        self.configured_max_packet = self.max_packet = max_packet
        self.too_large = 0  # publishes dropped as over the limit
        self.client_id = client_id
        self.subscriptions = list(subscriptions)
        self.receive_maximum = max(1, min(65535, receive_maximum))
        self.session_expiry_s = session_expiry_s
        self.keepalive = keepalive
        self.on_connected = on_connected
        self.inbox: deque[Incoming] = deque()
        self.generation = 0
        self.connected = threading.Event()
        self.subscribed = threading.Event()
        self.connects = 0
        self._accepting = True
        self._running = False
        self._lost: asyncio.Event | None = None
        self._supervisor: asyncio.Task[None] | None = None
        self._wakeup: asyncio.Event | None = None
        self._want_wake = False
        self.client = paho_client(settings.mqtt, client_id, ca=settings.mqtt_ca, cert=settings.mqtt_cert,
                                  key=settings.mqtt_key, manual_ack=True)
        self.client.max_inflight_messages_set(200)
        self.client.max_queued_messages_set(0)
        self.client.on_connect = self._on_connect
        self.client.on_disconnect = self._on_disconnect
        self.client.on_message = self._on_message
        self.client.on_subscribe = self._on_subscribe
        self.net = PahoOnLoop(self.client, read_budget=read_budget)

    # -- lifecycle -----------------------------------------------------------------------------
    async def start(self, timeout: float = 30.0) -> None:
        self._wakeup = asyncio.Event()
        self._lost = asyncio.Event()
        self._running = True
        self.net.attach()
        self._supervisor = asyncio.create_task(self._supervise(), name="mqtt-connection")
        target = self.settings.mqtt
        # ready once the broker has confirmed the subscriptions: from then on nothing is missed
        # (polled: a stop during the wait cancels it at once)
        deadline = time.monotonic() + timeout
        while not self.subscribed.is_set():
            if time.monotonic() > deadline:
                await self.close(2.0)
                raise ConnectionError(f"could not connect to the broker at {target.host}:{target.port} "
                                      f"in {timeout:.0f} s")
            await asyncio.sleep(0.02)

    async def _supervise(self) -> None:
        """Connect, and connect again whenever the connection is lost (backoff 0.2 s to 5 s)."""
        assert self._lost is not None
        target = self.settings.mqtt
        delay = 0.2
        first = True
        while self._running:
            try:
                if first:
                    props = connect_properties(self.session_expiry_s, self.receive_maximum)
                    await self.net.connect(target.host, target.port, self.keepalive, clean_start=False,
                                           properties=props)
                    first = False
                else:
                    await self.net.reconnect()
                delay = 0.2
                await self._lost.wait()
                self._lost.clear()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 - a broker down or unreachable: try again
                log.warning("cannot reach the broker at %s:%d (%s); again in %.1f s", target.host, target.port,
                            exc, delay)
            if not self._running:
                break
            await asyncio.sleep(delay)
            delay = min(5.0, delay * 2)

    def stop_accepting(self) -> None:
        """Take no new messages into the inbox; the broker keeps them for the next session."""
        self._accepting = False

    async def close(self, timeout: float = 5.0) -> bool:
        """Disconnect (acknowledgements already handed to paho go out first), waiting at most
        ``timeout`` seconds for the socket to close; False if it was still open then."""
        self._running = False
        if self._supervisor is not None:
            self._supervisor.cancel()
            await asyncio.wait({self._supervisor})
        self.client.disconnect()
        deadline = time.monotonic() + timeout
        while self.net.sock is not None and time.monotonic() < deadline:
            await asyncio.sleep(0.01)
        ok = self.net.sock is None
        if not ok:
            log.warning("the broker connection did not close within %.1f s; dropping it", timeout)
            sock, self.net.sock = self.net.sock, None
            self.net._unwatch(sock)
            sock.close()
        self.net.detach()
        return ok

    def wake(self) -> None:
        """Wake :meth:`wait` now."""
        if self._wakeup is not None:
            self._wakeup.set()

    # -- paho callbacks (on the event loop) ------------------------------------------------------
    def _on_connect(self, client: paho.Client, userdata: object, flags: paho.ConnectFlags, rc: ReasonCode,
                    properties: object) -> None:
        if rc.is_failure:
            log.error("broker refused the connection: %s", rc)
            return
        self.generation += 1
        self.connects += 1
        log.info("connected to the broker (session %s, generation %d)",
                 "resumed" if flags.session_present else "new", self.generation)
        # MQTT 5: a broker with a packet limit says it in CONNACK; a publish over it would cost the
        # connection (and every unacknowledged message would come again)
        limit = getattr(properties, "MaximumPacketSize", None)
        self.max_packet = int(limit) if limit else self.configured_max_packet
        # retain handling 1: retained messages only for a subscription the session did not have
        client.subscribe([(t, SubscribeOptions(qos=q, retainHandling=1)) for t, q in self.subscriptions])
        self.connected.set()
        if self.on_connected is not None:
            self.on_connected(flags.session_present)

    def _on_subscribe(self, client: paho.Client, userdata: object, mid: int, reason_codes: list[ReasonCode],
                      properties: object) -> None:
        refused = [(t, rc) for (t, _), rc in zip(self.subscriptions, reason_codes) if rc.is_failure]
        for topic, rc in refused:
            log.error("the broker refused the subscription to %s: %s (check the ACL of %s)", topic, rc, self.client_id)
        self.subscribed.set()

    def _on_disconnect(self, client: paho.Client, userdata: object, flags: object, rc: ReasonCode,
                       properties: object) -> None:
        self.generation += 1
        self.connected.clear()
        if rc.value != 0 and self._running:
            log.warning("lost the broker (%s); reconnecting, unacknowledged messages will come again", rc)
        if self._lost is not None:
            self._lost.set()

    def _on_message(self, client: paho.Client, userdata: object, msg: paho.MQTTMessage) -> None:
        self.net.progressed()
        if not self._accepting:
            return
        self.inbox.append(Incoming(msg.topic, msg.payload, msg.mid, msg.qos, bool(msg.dup), self.generation,
                                   time.time_ns()))
        if self._want_wake:
            self._want_wake = False
            assert self._wakeup is not None
            self._wakeup.set()

    # -- pipeline side ---------------------------------------------------------------------------
    async def wait(self, timeout: float | None) -> None:
        """Return when the inbox has messages, or after ``timeout`` seconds."""
        assert self._wakeup is not None
        if self.inbox:
            return
        self._wakeup.clear()
        self._want_wake = True
        try:
            await asyncio.wait_for(self._wakeup.wait(), timeout)
        except TimeoutError:
            pass
        finally:
            self._want_wake = False

    def flush(self) -> None:
        """Write what paho holds for the broker now (alerts just published, acknowledgements)
        rather than at the loop's next turn, which a long stretch of the pipeline's work delays."""
        if self.net.sock is not None and self.client.want_write():
            self.client.loop_write()

    def ack(self, messages: Iterable[Incoming]) -> int:
        """Acknowledge durable messages of the current connection; returns how many were sent."""
        n = 0
        gen = self.generation
        ack = self.client.ack
        for m in messages:
            if m.qos and m.generation == gen:
                ack(m.mid, m.qos)
                n += 1
        return n

    def publish(self, topic: str, payload: bytes, qos: int = 0, retain: bool = False) -> bool:
        """Publish, unless the packet would be over the broker's size limit: then log, count and
        drop it (False) rather than lose the connection over it."""
        size = len(payload) + len(topic.encode()) + 64  # fixed header, lengths, properties: generous
        if size > self.max_packet:
            self.too_large += 1
            log.error("not publishing %d bytes on %s: over the broker's packet limit of %d bytes",
                      len(payload), topic[:200], self.max_packet)
            return False
        self.client.publish(topic, payload, qos=qos, retain=retain)
        return True
