"""The MQTT side of the ingestor: paho-mqtt 2 directly, QoS 1, a persistent session, manual acks.

paho's network loop runs in its own thread (``loop_start``) and never waits for the pipeline: it
keeps answering pings and reading packets while batches are decoded and written. Flow control is
MQTT's own: the broker has at most ``receive_maximum`` unacknowledged messages out to this client,
so the inbox can never hold more, and the rest waits in the broker's queue (bounded by bytes in
``deploy/mosquitto-limits.conf``). Nothing is acknowledged until the pipeline says the message's
readings are durable.

After a disconnect the broker sends every unacknowledged message again on the resumed session
(flagged ``dup``), reusing their packet ids. Acks still pending for messages of the old connection
are therefore dropped (``generation``): the redelivered copies are stored again (harmless) and
acknowledged instead, and an old id can never acknowledge a new message.
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
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode
from paho.mqtt.subscribeoptions import SubscribeOptions

from minewatch.mqtt import connect_properties, paho_client
from minewatch.settings import Settings

__all__ = ["Consumer", "ConsumerClient", "Incoming", "ReadAhead", "share_property_tables"]

log = logging.getLogger("minewatch.ingest.mqtt")


class ReadAhead:
    """A client socket read in large chunks.

    paho reads a packet with one ``recv`` for its first byte, one per byte of its length and one
    for the rest: four or five system calls per message, each also a hand-over of the GIL between
    paho's thread and the pipeline's. This takes whatever the kernel holds (up to ``size`` bytes)
    in one call and hands paho the bytes it asks for from that. ``pending()`` counts them, which
    is how paho's loop already learns of bytes a TLS socket holds decrypted: it does not wait in
    ``select`` while any are left. Everything else goes to the socket itself."""

    def __init__(self, sock: Any, size: int = 1 << 18) -> None:
        self._sock = sock
        self._size = size
        self._buf = b""
        self._pos = 0

    def recv(self, n: int) -> bytes:
        buf, pos = self._buf, self._pos
        if pos >= len(buf):
            data = self._sock.recv(max(n, self._size))
            if len(data) <= n:
                return data
            self._buf, buf, pos = data, data, 0
        end = min(pos + n, len(buf))
        self._pos = end
        return buf[pos:end]

    def buffered(self) -> int:
        return len(self._buf) - self._pos

    def pending(self) -> int:
        inner = getattr(self._sock, "pending", None)
        return self.buffered() + (inner() if inner is not None else 0)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._sock, name)


class ConsumerClient(paho.Client):
    """paho's client on a :class:`ReadAhead` socket: every packet already read is handled before
    the loop waits again."""

    def _create_socket(self) -> Any:
        return ReadAhead(super()._create_socket())

    def loop_read(self, max_packets: int = 1) -> MQTTErrorCode:
        rc = super().loop_read(max_packets)
        while rc == MQTTErrorCode.MQTT_ERR_SUCCESS and isinstance(self._sock, ReadAhead) and self._sock.buffered():
            rc = super().loop_read(1)
        return rc


class _SharedTables(Properties):
    """paho's ``Properties`` with its lookup tables built once. paho builds them (three tables,
    some 60 entries) anew for every MQTT 5 PUBLISH it decodes, which was about a third of its
    cost per message. The tables are only ever read, so one copy serves every instance."""

    _tables = {k: v for k, v in vars(Properties(PacketTypes.PUBLISH)).items() if k != "packetType"}
    _names = tuple(name.replace(" ", "") for name in _tables["names"])

    def __init__(self, packetType: int) -> None:  # noqa: N803 - paho's name
        vars(self).update(self._tables)
        vars(self)["packetType"] = packetType

    def clear(self) -> None:
        own = vars(self)
        for name in self._names:
            own.pop(name, None)


def share_property_tables() -> bool:
    """Have paho decode PUBLISH properties with :class:`_SharedTables` (for every client of the
    process: the result is the same). False when this paho version decodes elsewhere."""
    try:
        from paho.mqtt import _packet
    except ImportError:
        return False
    if getattr(_packet, "Properties", None) not in (Properties, _SharedTables):
        return False
    _packet.Properties = _SharedTables  # type: ignore[attr-defined]
    return True


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
                 on_connected: Callable[[bool], None] | None = None, max_packet: int = 16 * 1024 * 1024) -> None:
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
        self._lock = threading.Lock()
        self._accepting = True
        self._loop: asyncio.AbstractEventLoop | None = None
        self._wakeup: asyncio.Event | None = None
        self._want_wake = False
        share_property_tables()
        self.client = paho_client(settings.mqtt, client_id, ca=settings.mqtt_ca, cert=settings.mqtt_cert,
                                  key=settings.mqtt_key, manual_ack=True, client_class=ConsumerClient)
        self.client.max_inflight_messages_set(200)
        self.client.max_queued_messages_set(0)
        self.client.reconnect_delay_set(0.2, 5)  # type: ignore[arg-type]
        self.client.on_connect = self._on_connect
        self.client.on_disconnect = self._on_disconnect
        self.client.on_message = self._on_message
        self.client.on_subscribe = self._on_subscribe

    # -- lifecycle -----------------------------------------------------------------------------
    async def start(self, timeout: float = 30.0) -> None:
        self._loop = asyncio.get_running_loop()
        self._wakeup = asyncio.Event()
        target = self.settings.mqtt
        props = connect_properties(self.session_expiry_s, self.receive_maximum)
        # connect_async + loop_start: the loop thread connects, and reconnects after any failure
        self.client.connect_async(target.host, target.port, self.keepalive, clean_start=False, properties=props)
        self.client.loop_start()
        # ready once the broker has confirmed the subscriptions: from then on nothing is missed
        # (polled, not waited for on a thread: a stop during the wait cancels it at once)
        deadline = time.monotonic() + timeout
        while not self.subscribed.is_set():
            if time.monotonic() > deadline:
                self._stop_loop(2.0)
                raise ConnectionError(f"could not connect to the broker at {target.host}:{target.port} "
                                      f"in {timeout:.0f} s")
            await asyncio.sleep(0.02)

    def stop_accepting(self) -> None:
        """Take no new messages into the inbox; the broker keeps them for the next session."""
        with self._lock:
            self._accepting = False

    def close(self, timeout: float = 5.0) -> bool:
        """Disconnect (acknowledgements already handed to paho go out first) and stop the network
        thread, waiting at most ``timeout`` seconds; False if the thread was still running then (it
        is a daemon thread: it does not keep the process alive)."""
        self.client.disconnect()
        return self._stop_loop(timeout)

    def _stop_loop(self, timeout: float) -> bool:
        stopper = threading.Thread(target=self.client.loop_stop, name="mqtt-loop-stop", daemon=True)
        stopper.start()
        stopper.join(timeout)
        if stopper.is_alive():
            log.warning("the MQTT network thread did not stop within %.1f s; leaving it", timeout)
            return False
        return True

    def wake(self) -> None:
        """Wake :meth:`wait` now (from the event loop's thread)."""
        if self._wakeup is not None:
            self._wakeup.set()

    # -- paho callbacks (network thread) -------------------------------------------------------
    def _on_connect(self, client: paho.Client, userdata: object, flags: paho.ConnectFlags, rc: ReasonCode,
                    properties: object) -> None:
        if rc.is_failure:
            log.error("broker refused the connection: %s", rc)
            return
        with self._lock:
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
        with self._lock:
            self.generation += 1
        self.connected.clear()
        if rc.value != 0:
            log.warning("lost the broker (%s); reconnecting, unacknowledged messages will come again", rc)

    def _on_message(self, client: paho.Client, userdata: object, msg: paho.MQTTMessage) -> None:
        if not self._accepting:
            return
        self.inbox.append(Incoming(msg.topic, msg.payload, msg.mid, msg.qos, bool(msg.dup), self.generation,
                                   time.time_ns()))
        if self._want_wake:
            self._want_wake = False
            assert self._loop is not None and self._wakeup is not None
            self._loop.call_soon_threadsafe(self._wakeup.set)

    # -- pipeline side (event loop) ------------------------------------------------------------
    async def wait(self, timeout: float | None) -> None:
        """Return when the inbox has messages, or after ``timeout`` seconds."""
        assert self._wakeup is not None
        if self.inbox:
            return
        self._wakeup.clear()
        self._want_wake = True
        if self.inbox:  # arrived between the check and the flag
            self._want_wake = False
            return
        try:
            await asyncio.wait_for(self._wakeup.wait(), timeout)
        except TimeoutError:
            pass
        finally:
            self._want_wake = False

    def ack(self, messages: Iterable[Incoming]) -> int:
        """Acknowledge durable messages of the current connection; returns how many were sent."""
        n = 0
        with self._lock:
            gen = self.generation
            for m in messages:
                if m.qos and m.generation == gen:
                    self.client.ack(m.mid, m.qos)
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
