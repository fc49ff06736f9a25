"""The JetStream side of a group ingest worker: what the pipeline sees as its consumer.

:class:`ingest.pipeline.Pipeline` takes its messages from a consumer's ``inbox``, acknowledges
them with ``ack()`` once durable and publishes alerts with ``publish()``. :class:`JsInbox` is that
consumer for one (mine, partition) of a group worker (see :mod:`ingest.group_worker`): the
worker's fetch loop puts each JetStream message in, as an :class:`Incoming` with the MQTT topic it
had at its mine; ``ack()`` acknowledges the JetStream messages behind them; ``publish()`` goes to
the centre's alert broker through the worker's one connection (:class:`AlertLink`).

Both stop at once when the worker no longer holds the partition's lease (``holds()`` false):
nothing of a partition is acknowledged or published after losing it. What is left unacknowledged
is handed back (``nak``) so the new owner gets it without waiting out the ack wait.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import Callable, Iterable
from typing import Any

from ingest.consumer import Incoming
from ingest.mqttrx import Receiver
from minewatch.mqtt import tls_context
from minewatch.settings import Settings

__all__ = ["AlertLink", "JsInbox"]

log = logging.getLogger("minewatch.group.worker")


class AlertLink(Receiver):
    """The worker's MQTT 5 connection to the centre's alert broker: publishes only (QoS 1 kept
    until the broker has it, through reconnections). Its one subscription is a topic of its own
    nobody publishes on (the client subscribes on every connection)."""

    def __init__(self, settings: Settings, client_id: str) -> None:
        target = settings.mqtt
        tls = tls_context(settings.mqtt_ca, settings.mqtt_cert, settings.mqtt_key) if target.tls else None
        super().__init__(target, client_id, [(f"{settings.topics.prefix}/group/{client_id}/none", 0)], tls=tls,
                         session_expiry_s=0)


class JsInbox:
    """The consumer of one (mine, partition) unit: an inbox fed by the worker, acknowledgements to
    JetStream, publishes to the alert broker; both only while ``holds()``."""

    def __init__(self, link: Receiver, holds: Callable[[], bool]) -> None:
        self.link = link
        self.holds = holds
        self.inbox: deque[Incoming] = deque()
        self.connected = link.connected
        self._pending: dict[int, Any] = {}  # Incoming.mid -> the JetStream message, until acknowledged
        self._next_mid = 0
        self._wakeup = asyncio.Event()
        self._to_ack: list[Any] = []
        self._acking: asyncio.Task[None] | None = None
        self.acked = 0
        self.dropped_publishes = 0

    # -- the worker's side ---------------------------------------------------------------------
    def put(self, topic: str, payload: bytes, msg: Any | None) -> None:
        """A message for the pipeline; ``msg`` the JetStream message to acknowledge (None: nothing to)."""
        mid = 0
        if msg is not None:
            self._next_mid += 1
            mid = self._next_mid
            self._pending[mid] = msg
        self.inbox.append(Incoming(topic, payload, mid, 1 if msg is not None else 0, False, 0, time.time_ns()))
        self._wakeup.set()

    @property
    def unacked(self) -> int:
        return len(self._pending)

    async def give_back(self) -> int:
        """Hand every message not acknowledged back to JetStream (redelivered at once); forget them."""
        self.inbox.clear()
        msgs, self._pending = list(self._pending.values()), {}
        for m in msgs:
            try:
                await m.nak()
            except Exception as exc:  # noqa: BLE001 - the ack wait brings it back anyway
                log.debug("nak failed (%s); the message comes back after the ack wait", exc)
                break
        return len(msgs)

    # -- the pipeline's side (the Consumer interface) ------------------------------------------
    async def wait(self, timeout: float | None) -> None:
        if self.inbox:
            return
        self._wakeup.clear()
        try:
            await asyncio.wait_for(self._wakeup.wait(), timeout)
        except TimeoutError:
            pass

    def wake(self) -> None:
        self._wakeup.set()

    def stop_accepting(self) -> None:
        pass

    def ack(self, messages: Iterable[Incoming]) -> int:
        if not self.holds():
            return 0
        n = 0
        for m in messages:
            js = self._pending.pop(m.mid, None) if m.mid else None
            if js is not None:
                self._to_ack.append(js)
                n += 1
        if self._to_ack and self._acking is None:
            self._acking = asyncio.get_running_loop().create_task(self._send_acks(), name="js-acks")
        return n

    async def _send_acks(self) -> None:
        try:
            while self._to_ack and self.holds():
                batch, self._to_ack = self._to_ack, []
                for m in batch:
                    await m.ack()
                self.acked += len(batch)
        except Exception as exc:  # noqa: BLE001 - not acknowledged: redelivered, and known as repeats
            log.warning("acknowledging to JetStream failed (%s); those messages come again", exc)
        finally:
            self._to_ack = []
            self._acking = None

    def flush(self) -> None:
        self.link.flush()

    def publish(self, topic: str, payload: bytes, qos: int = 0, retain: bool = False) -> bool:
        if not self.holds():
            self.dropped_publishes += 1
            return False
        return self.link.publish(topic, payload, qos, retain)
