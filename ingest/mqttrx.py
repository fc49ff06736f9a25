"""The ingestor's own MQTT 5 client: asyncio streams, the ``mqtt5`` codec, batched acknowledgements.

One TCP (or TLS) connection, opened with :func:`asyncio.open_connection`. CONNECT asks for a
persistent session (clean start false, a session expiry), a Receive Maximum (the broker's flow
control: at most that many unacknowledged messages out to this client) and a Maximum Packet Size
(the broker drops, rather than sends, a message over it). Each read takes up to ``read_size``
bytes and decodes every complete packet in the buffer in one go (``mqtt5.read``, about 1 µs a
PUBLISH); the messages go to :attr:`Receiver.inbox` together, and the pipeline is woken once.

Nothing is acknowledged on receipt. :meth:`Receiver.ack` queues the PUBACKs of messages the
pipeline has made durable, and :meth:`Receiver.flush` writes everything queued (acks,
publishes) in one socket write; a flush is also scheduled for the loop's next turn whenever
something is queued, so nothing waits longer than that.

After a disconnect the broker sends every unacknowledged message again on the resumed session
(flagged ``dup``), reusing their packet ids. Acks still pending for messages of the old connection
are therefore dropped (``generation``, bumped on connect and on loss): the redelivered copies are
stored again (harmless) and acknowledged instead, and an old id can never acknowledge a new
message. A lost connection is made again by :meth:`Receiver._supervise`, backoff 0.2 s to 5 s.

What the ingestor publishes (alerts, dead letters, incidents, status) goes over the same
connection: QoS 0 is written as it is (dropped while disconnected); QoS 1 is kept until the
broker's PUBACK, at most the broker's own Receive Maximum in flight, the rest queued, and sent
again (``dup``) on the next connection.
"""

from __future__ import annotations

import asyncio
import logging
import ssl
import struct
import threading
import time
from collections import OrderedDict, deque
from collections.abc import Callable, Iterable, Sequence

import msgspec
import mqtt5

from minewatch.settings import MqttTarget

__all__ = ["Incoming", "Receiver"]

log = logging.getLogger("minewatch.ingest.mqtt")

_PUBACK = struct.Struct(">HH")  # fixed header 0x40, remaining length 2, then the packet id
_PINGREQ = b"\xc0\x00"
_DISCONNECT = b"\xe0\x00"  # normal disconnection: the session stays for its expiry
_QOS1 = mqtt5.QoS.AT_LEAST_ONCE


class Incoming(msgspec.Struct, gc=False):
    """One message as received: made for every PUBLISH, so a struct built in C (a third of the cost
    of a dataclass's ``__init__``); nothing in it refers back to anything, hence ``gc=False``."""

    topic: str
    payload: bytes
    mid: int
    qos: int
    dup: bool
    generation: int
    received_ns: int


class Receiver:
    """An MQTT 5 session for the ingestor: subscribe, take QoS 1 messages in batches, acknowledge
    when told, publish what the pipeline produces.

    ``read_size``: bytes asked of the socket per read. ``max_packet``: the Maximum Packet Size
    asked of the broker, and the publish limit until the broker says its own (CONNACK).
    """

    def __init__(self, target: MqttTarget, client_id: str, subscriptions: Sequence[tuple[str, int]], *,
                 tls: ssl.SSLContext | None = None, receive_maximum: int = 20_000,
                 session_expiry_s: int = 7 * 24 * 3600, keepalive: int = 30,
                 on_connected: Callable[[bool], None] | None = None, max_packet: int = 16 * 1024 * 1024,
                 read_size: int = 1 << 18) -> None:
        if read_size < 1:
            raise ValueError(f"read_size must be at least 1 byte, got {read_size}")
        if keepalive < 1:
            raise ValueError(f"keepalive must be at least 1 s, got {keepalive}")
        self.target = target
        self.tls = tls
        self.client_id = client_id
        self.subscriptions = list(subscriptions)
        self.receive_maximum = max(1, min(65535, receive_maximum))
        self.session_expiry_s = session_expiry_s
        self.keepalive = keepalive
        self.on_connected = on_connected
        self.read_size = read_size
        self.configured_max_packet = self.max_packet = max_packet
        self.too_large = 0  # publishes dropped as over the limit
        self.inbox: deque[Incoming] = deque()
        self.generation = 0
        self.connects = 0
        self.connected = threading.Event()
        self.subscribed = threading.Event()
        self._accepting = True
        self._running = False
        self._writer: asyncio.StreamWriter | None = None
        self._supervisor: asyncio.Task[None] | None = None
        self._wakeup: asyncio.Event | None = None
        self._want_wake = False
        self._out = bytearray()  # queued for the socket: acks, publishes
        self._flush_due = False
        # QoS 1 publishes of ours: packet id -> (topic, payload, retain); in flight, then waiting
        self._inflight: OrderedDict[int, tuple[str, bytes, bool]] = OrderedDict()
        self._waiting: deque[tuple[str, bytes, bool]] = deque()
        self._next_pid = 0
        self._send_quota = 65535  # the broker's Receive Maximum for our publishes (CONNACK)
        self._last_rx = 0.0

    # -- lifecycle -----------------------------------------------------------------------------
    async def start(self, timeout: float = 30.0) -> None:
        """Connect and subscribe; return once the broker has confirmed the subscriptions (from
        then on nothing is missed). Raises ConnectionError after ``timeout`` seconds."""
        self._wakeup = asyncio.Event()
        self._running = True
        self._supervisor = asyncio.create_task(self._supervise(), name="mqtt-connection")
        deadline = time.monotonic() + timeout
        while not self.subscribed.is_set():  # polled: a stop during the wait cancels it at once
            if time.monotonic() > deadline:
                await self.close(2.0)
                raise ConnectionError(f"could not connect to the broker at {self.target.host}:{self.target.port} "
                                      f"in {timeout:.0f} s")
            await asyncio.sleep(0.02)

    def stop_accepting(self) -> None:
        """Take no new messages into the inbox; the broker keeps them for the next session."""
        self._accepting = False

    async def close(self, timeout: float = 5.0) -> bool:
        """Write what is queued (acknowledgements first), DISCONNECT, and wait at most ``timeout``
        seconds for the connection to close; False if it had to be dropped."""
        self._running = False
        deadline = time.monotonic() + timeout
        writer = self._writer
        if writer is not None and not writer.is_closing():
            self.flush()
            writer.write(_DISCONNECT)
            writer.close()
        ok = True
        if self._supervisor is not None:
            if writer is None:  # not connected: nothing to say goodbye on
                self._supervisor.cancel()
            done, _ = await asyncio.wait({self._supervisor}, timeout=max(0.0, deadline - time.monotonic()))
            if not done:
                ok = writer is None
                self._supervisor.cancel()
                await asyncio.wait({self._supervisor})
            self._supervisor = None
        if writer is not None:
            try:
                await asyncio.wait_for(writer.wait_closed(), max(0.01, deadline - time.monotonic()))
            except (TimeoutError, OSError, ssl.SSLError):
                ok = False
            if not ok:
                log.warning("the broker connection did not close within %.1f s; dropping it", timeout)
                writer.transport.abort()
        return ok

    def wake(self) -> None:
        """Wake :meth:`wait` now."""
        if self._wakeup is not None:
            self._wakeup.set()

    # -- the connection --------------------------------------------------------------------------
    async def _supervise(self) -> None:
        """Connect, and connect again whenever the connection is lost (backoff 0.2 s to 5 s)."""
        target = self.target
        delay = 0.2
        while self._running:
            try:
                reader, writer = await asyncio.wait_for(
                    asyncio.open_connection(target.host, target.port, ssl=self.tls, limit=max(self.read_size, 1 << 16)),
                    10.0)
            except (OSError, TimeoutError, ssl.SSLError) as exc:
                log.warning("cannot reach the broker at %s:%d (%s); again in %.1f s", target.host, target.port,
                            exc, delay)
            else:
                connects = self.connects
                try:
                    await self._session(reader, writer)
                except (OSError, ConnectionError, TimeoutError, ssl.SSLError, ValueError) as exc:
                    if self._running:
                        log.warning("lost the broker (%s); reconnecting, unacknowledged messages will come again",
                                    exc or type(exc).__name__)
                finally:
                    self._lost(writer)
                if self.connects > connects:  # the broker took this connection: back to a short delay
                    delay = 0.2
            if not self._running:
                break
            await asyncio.sleep(delay)
            delay = min(5.0, delay * 2)

    def _lost(self, writer: asyncio.StreamWriter) -> None:
        if self._writer is writer:
            self._writer = None
            self.generation += 1
        self.connected.clear()
        self._out.clear()  # acks of the old connection are void; our QoS 1 publishes stay in _inflight
        if not writer.is_closing():
            writer.transport.abort()

    async def _session(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        """One connection: CONNECT, CONNACK, SUBSCRIBE, then read until it ends (an exception)."""
        t = self.target
        connect = mqtt5.ConnectPacket(
            self.client_id, username=t.username or None, password=t.password.encode() if t.password else None,
            clean_start=False, keep_alive=self.keepalive, session_expiry_interval=self.session_expiry_s,
            receive_max=self.receive_maximum, max_packet_size=self.configured_max_packet)
        writer.write(connect.write())
        buf = bytearray()
        connack: mqtt5.ConnAckPacket | None = None
        deadline = time.monotonic() + 10.0
        while connack is None:
            chunk = await asyncio.wait_for(reader.read(1 << 12), max(0.01, deadline - time.monotonic()))
            if not chunk:
                raise ConnectionError("the broker closed the connection before CONNACK")
            buf += chunk
            try:
                pkt, used = mqtt5.read(memoryview(buf))
            except IndexError:
                continue
            if not isinstance(pkt, mqtt5.ConnAckPacket):
                raise ConnectionError(f"expected CONNACK, got {type(pkt).__name__}")
            connack = pkt
            del buf[:used]
        if int(connack.reason_code) >= 0x80:
            log.error("broker refused the connection: %s", connack.reason_code)
            return
        self._writer = writer
        self.generation += 1
        self.connects += 1
        self._last_rx = time.monotonic()
        log.info("connected to the broker (session %s, generation %d)",
                 "resumed" if connack.session_present else "new", self.generation)
        # a broker with a packet limit says it in CONNACK; a publish over it would cost the
        # connection (and every unacknowledged message would come again)
        self.max_packet = connack.max_packet_size or self.configured_max_packet
        self._send_quota = connack.receive_max or 65535
        # retain handling 1: retained messages only for a subscription the session did not have
        filters = [mqtt5.TopicFilter(topic, max_qos=_QOS1 if qos else mqtt5.QoS.AT_MOST_ONCE,
                                     retain_as_published=False,
                                     retain_handling=mqtt5.RetainHandling.SEND_IF_SUBSCRIPTION_NOT_EXISTS)
                   for topic, qos in self.subscriptions]
        writer.write(mqtt5.SubscribePacket(self._pid(), filters).write())
        self.connected.set()
        if self.on_connected is not None:
            self.on_connected(bool(connack.session_present))
        # our QoS 1 publishes the last connection did not see acknowledged go again, flagged dup
        for pid, (topic, payload, retain) in self._inflight.items():
            writer.write(mqtt5.PublishPacket(topic, payload, qos=_QOS1, retain=retain, packet_id=pid,
                                             duplicate=True).write())
        self._send_waiting()
        keepalive = asyncio.create_task(self._keepalive(writer), name="mqtt-keepalive")
        try:
            await self._read(reader, buf)
        finally:
            keepalive.cancel()

    async def _keepalive(self, writer: asyncio.StreamWriter) -> None:
        """PINGREQ every half keep-alive; a broker silent for 1.5 keep-alives is gone."""
        while True:
            await asyncio.sleep(self.keepalive / 2)
            if time.monotonic() - self._last_rx > self.keepalive * 1.5:
                log.warning("no word from the broker for %.0f s; dropping the connection", self.keepalive * 1.5)
                writer.transport.abort()
                return
            writer.write(_PINGREQ)

    async def _read(self, reader: asyncio.StreamReader, buf: bytearray) -> None:
        read = mqtt5.read
        size = self.read_size
        inbox = self.inbox
        publish = mqtt5.PublishPacket
        # each message its own arrival time, as it was taken from the buffer: the robots' clock
        # correction places frames by it, and messages of one read must not share one instant
        clock = time.time_ns
        while True:
            if not buf:  # what came with CONNACK is decoded before reading on
                chunk = await reader.read(size)
                if not chunk:
                    raise ConnectionError("the broker closed the connection")
                buf += chunk
            self._last_rx = time.monotonic()
            view = memoryview(buf)
            pos = 0
            end = len(buf)
            taken = 0
            gen = self.generation
            accepting = self._accepting
            try:
                while pos < end:
                    try:
                        pkt, used = read(view[pos:])
                    except IndexError:  # the rest of the packet is still to come
                        break
                    pos += used
                    if type(pkt) is publish:
                        if accepting:
                            qos1 = pkt.qos is _QOS1
                            inbox.append(Incoming(pkt.topic, pkt.payload, pkt.packet_id or 0, 1 if qos1 else 0,
                                                  pkt.duplicate, gen, clock()))
                            taken += 1
                    else:
                        self._control(pkt)
            finally:
                view.release()
            if pos:
                del buf[:pos]
            if taken and self._want_wake:
                self._want_wake = False
                assert self._wakeup is not None
                self._wakeup.set()
            if buf:  # part of a packet: the rest is still to come
                if len(buf) > self.configured_max_packet + 5:
                    raise ConnectionError(f"a packet over the limit of {self.configured_max_packet} bytes")
                chunk = await reader.read(size)
                if not chunk:
                    raise ConnectionError("the broker closed the connection")
                buf += chunk

    def _control(self, pkt: object) -> None:
        if isinstance(pkt, mqtt5.PubAckPacket):
            self._inflight.pop(pkt.packet_id, None)
            if self._waiting:
                self._send_waiting()
        elif isinstance(pkt, mqtt5.SubAckPacket):
            for (topic, _), rc in zip(self.subscriptions, pkt.reason_codes, strict=False):
                if int(rc) >= 0x80:
                    log.error("the broker refused the subscription to %s: %s (check the ACL of %s)", topic, rc,
                              self.client_id)
            self.subscribed.set()
        elif isinstance(pkt, mqtt5.DisconnectPacket):
            raise ConnectionError(f"the broker disconnected: {pkt.reason_code}")
        elif isinstance(pkt, mqtt5.PingRespPacket):
            pass
        else:
            log.warning("ignoring an unexpected %s from the broker", type(pkt).__name__)

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

    def ack(self, messages: Iterable[Incoming]) -> int:
        """Queue the PUBACKs of durable messages of the current connection (written together by
        :meth:`flush`); returns how many."""
        gen = self.generation
        if self._writer is None:
            return 0
        pack = _PUBACK.pack
        out = self._out
        before = len(out)
        for m in messages:
            if m.qos and m.generation == gen:
                out += pack(0x4002, m.mid)
        n = (len(out) - before) // 4
        if n:
            self._schedule_flush()
        return n

    def flush(self) -> None:
        """Write everything queued in one socket write, now."""
        self._flush_due = False
        if self._out and self._writer is not None:
            self._writer.write(bytes(self._out))
            self._out.clear()

    def _schedule_flush(self) -> None:
        if not self._flush_due:
            self._flush_due = True
            asyncio.get_running_loop().call_soon(self._scheduled_flush)

    def _scheduled_flush(self) -> None:
        if self._flush_due:
            self.flush()

    def publish(self, topic: str, payload: bytes, qos: int = 0, retain: bool = False) -> bool:
        """Publish, unless the packet would be over the broker's size limit: then log, count and
        drop it (False) rather than lose the connection over it. QoS 0 while disconnected is
        dropped; QoS 1 is kept until the broker has it."""
        size = len(payload) + len(topic.encode()) + 64  # fixed header, lengths, properties: generous
        if size > self.max_packet:
            self.too_large += 1
            log.error("not publishing %d bytes on %s: over the broker's packet limit of %d bytes",
                      len(payload), topic[:200], self.max_packet)
            return False
        if qos:
            self._waiting.append((topic, payload, retain))
            self._send_waiting()
        elif self._writer is not None:
            self._out += mqtt5.PublishPacket(topic, payload, qos=mqtt5.QoS.AT_MOST_ONCE, retain=retain).write()
            self._schedule_flush()
        return True

    def _send_waiting(self) -> None:
        if self._writer is None:
            return
        while self._waiting and len(self._inflight) < self._send_quota:
            topic, payload, retain = self._waiting.popleft()
            pid = self._pid()
            self._inflight[pid] = (topic, payload, retain)
            self._out += mqtt5.PublishPacket(topic, payload, qos=_QOS1, retain=retain, packet_id=pid).write()
        self._schedule_flush()

    def _pid(self) -> int:
        """A packet id not in flight (1..65535)."""
        while True:
            self._next_pid = self._next_pid % 65535 + 1
            if self._next_pid not in self._inflight:
                return self._next_pid
