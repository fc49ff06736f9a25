"""``minewatch group forward``: a mine's MQTT telemetry into its leaf node's stream ``MINE``.

Subscribes to the mine's broker as a service account (persistent session, QoS 1, the ingestor's
own client :class:`ingest.consumer.Consumer`) to ``<prefix>/telemetry/+/+``,
``<prefix>/history/+/+`` and ``<prefix>/status/+``, publishes each message unchanged to its
subject (:func:`minewatch.group.subject_for_topic`) in the leaf's JetStream, and acknowledges the
MQTT message only after the stream's PubAck. Each publish carries ``Nats-Msg-Id``
(:func:`minewatch.group.msg_id`): after a crash the broker sends the unacknowledged messages again
and the stream drops those it already holds (duplicate window 10 minutes), so ``MINE`` has every
message once.

A batch (what the inbox holds, at most ``batch`` messages) is published together, in arrival
order, on one connection: the leaf stores it in that order. A publish that fails (the leaf
restarting) is tried again, alone, until it is stored; the batch's later messages that were stored
stay acknowledged, so only under such a failure can a message land after one that came later.
"""

from __future__ import annotations

import asyncio
import logging
import signal
import time
from dataclasses import dataclass, field

import nats
from nats.aio.client import Client as NatsClient
from nats.js import JetStreamContext
from nats.js.api import PubAck

from ingest.consumer import Consumer, Incoming
from minewatch.group import DEFAULT_PARTITIONS, check_mine, mqtt_subscriptions, msg_id, subject_for_topic
from minewatch.settings import Settings

__all__ = ["ForwardOptions", "Forwarder", "run"]

log = logging.getLogger("minewatch.group.forward")


@dataclass
class ForwardOptions:
    mine: str
    nats_urls: list[str]
    partitions: int = DEFAULT_PARTITIONS
    client_id: str | None = None
    batch: int = 2000
    publish_timeout_s: float = 5.0
    stop_timeout_s: float = 5.0
    receive_maximum: int = 10_000
    create_stream: bool = True

    def __post_init__(self) -> None:
        check_mine(self.mine)
        if not self.nats_urls:
            raise ValueError("the forwarder needs the leaf node's NATS URL")


@dataclass
class Counters:
    forwarded: int = 0  # stored in MINE (PubAck, new)
    duplicates: int = 0  # PubAck of a message MINE already held
    skipped: int = 0  # topics the group does not carry (the mine's ingestor dead-letters them)
    retries: int = 0  # publishes tried again
    started: float = field(default_factory=time.monotonic)


class Forwarder:
    def __init__(self, settings: Settings, opts: ForwardOptions) -> None:
        self.settings = settings
        self.opts = opts
        self.prefix = settings.topic_prefix
        self.client_id = opts.client_id or f"minewatch-forward-{opts.mine}"
        self.rx = Consumer(settings, self.client_id, [(t, 1) for t in mqtt_subscriptions(self.prefix)],
                           receive_maximum=opts.receive_maximum)
        self.nc: NatsClient | None = None
        self.js: JetStreamContext | None = None
        self.counters = Counters()
        self._stopping = asyncio.Event()

    def stop(self) -> None:
        self._stopping.set()
        self.rx.stop_accepting()
        self.rx.wake()

    async def connect(self) -> None:
        """The leaf node (retried until it answers, reconnecting for ever after) and its ``MINE``."""
        from group.streams import ensure_mine_stream

        async def error(exc: Exception) -> None:
            log.warning("leaf node: %s", exc or type(exc).__name__)

        # nats-py tries the servers again and again until one answers; a stop meanwhile ends the wait
        connecting = asyncio.ensure_future(nats.connect(
            self.opts.nats_urls, name=self.client_id, max_reconnect_attempts=-1, reconnect_time_wait=0.5,
            connect_timeout=2, allow_reconnect=True, error_cb=error))
        stopping = asyncio.ensure_future(self._stopping.wait())
        await asyncio.wait({connecting, stopping}, return_when=asyncio.FIRST_COMPLETED)
        stopping.cancel()
        if not connecting.done():
            connecting.cancel()
            raise ConnectionError(f"stopped before the leaf node at {', '.join(self.opts.nats_urls)} answered")
        self.nc = connecting.result()
        self.js = self.nc.jetstream(timeout=self.opts.publish_timeout_s)
        while self.opts.create_stream and not self._stopping.is_set():
            try:
                await ensure_mine_stream(self.js, self.opts.mine)
                break
            except (nats.errors.Error, TimeoutError) as exc:
                log.warning("the leaf's stream is not ready (%s); again in 1 s", exc)
                await asyncio.sleep(1.0)

    async def _publish(self, subject: str, m: Incoming) -> PubAck:
        assert self.js is not None
        return await self.js.publish(subject, m.payload, headers={"Nats-Msg-Id": msg_id(m.topic, m.payload)})

    def _count(self, ack: PubAck) -> None:
        if ack.duplicate:
            self.counters.duplicates += 1
        else:
            self.counters.forwarded += 1

    async def forward_batch(self, batch: list[Incoming]) -> None:
        """Publish ``batch`` and acknowledge it once every message of it is in ``MINE``."""
        o = self.opts
        subjects: list[str | None] = []
        for m in batch:
            try:
                subjects.append(subject_for_topic(o.mine, m.topic, self.prefix, o.partitions))
            except ValueError as exc:
                self.counters.skipped += 1
                log.warning("not forwarding %s: %s", m.topic[:200], exc)
                subjects.append(None)
        todo = [(s, m) for s, m in zip(subjects, batch) if s is not None]
        results = await asyncio.gather(*(self._publish(s, m) for s, m in todo), return_exceptions=True)
        stored = [m for s, m in zip(subjects, batch) if s is None]
        for (s, m), r in zip(todo, results):
            if isinstance(r, BaseException):
                if not isinstance(r, (nats.errors.Error, TimeoutError, OSError)):
                    raise r
                if not await self._retry(s, m, r):
                    continue  # stopping: not acknowledged, the broker sends it again
            else:
                self._count(r)
            stored.append(m)
        self.rx.ack(stored)

    async def _retry(self, subject: str, m: Incoming, first: BaseException) -> bool:
        """Publish again until stored (True) or asked to stop (False)."""
        delay, exc = 0.2, first
        while not self._stopping.is_set():
            log.warning("publishing to %s failed (%s); again in %.1f s", subject, exc or type(exc).__name__, delay)
            await asyncio.sleep(delay)
            delay = min(2.0, delay * 2)
            self.counters.retries += 1
            try:
                self._count(await self._publish(subject, m))
                return True
            except (nats.errors.Error, TimeoutError, OSError) as e:
                exc = e
        return False

    async def run(self) -> None:
        await self.connect()
        await self.rx.start()
        log.info("forwarding mine %s: %s -> %s (%d partitions)", self.opts.mine, self.settings.mqtt,
                 ", ".join(self.opts.nats_urls), self.opts.partitions)
        last_log = time.monotonic()
        try:
            while True:
                await self.rx.wait(0.5)
                inbox = self.rx.inbox
                if not inbox:
                    if self._stopping.is_set():
                        break
                    continue
                batch = [inbox.popleft() for _ in range(min(len(inbox), self.opts.batch))]
                await self.forward_batch(batch)
                if time.monotonic() - last_log > 30:
                    last_log = time.monotonic()
                    c = self.counters
                    log.info("forwarded %d, duplicates %d, skipped %d, retries %d", c.forwarded, c.duplicates,
                             c.skipped, c.retries)
        finally:
            await self.rx.close(self.opts.stop_timeout_s)
            if self.nc is not None:
                await self.nc.drain()


async def run(settings: Settings, opts: ForwardOptions) -> Counters:
    """Forward until SIGTERM or SIGINT: the batch in hand is stored and acknowledged, then exit."""
    fwd = Forwarder(settings, opts)
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, fwd.stop)
    await fwd.run()
    return fwd.counters
