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
import json
import logging
import time
from collections import deque
from collections.abc import Callable, Iterable
from typing import Any

from ingest.consumer import Incoming
from ingest.mqttrx import Receiver
from minewatch.mqtt import tls_context
from minewatch.settings import Settings

__all__ = ["AlertLink", "JsInbox", "ack_route", "delivery"]

log = logging.getLogger("minewatch.group.worker")


def delivery(reply: str) -> tuple[int, int]:
    """(the stream's time of a JetStream message, in ns since the epoch: when it came into the
    stream, i.e. to the centre; how many times it has been delivered), read from its
    acknowledgement subject ``$JS.ACK.<stream>.<consumer>.<delivered>.<stream seq>.<consumer
    seq>.<time>.<pending>`` (or the form with ``<domain>.<account hash>.`` after ``$JS.ACK.`` and a
    token at the end); (0, 1) when the subject is not one of those."""
    tokens = reply.split(".")
    if len(tokens) == 9:
        delivered, ts = tokens[4], tokens[7]
    elif len(tokens) >= 11:
        delivered, ts = tokens[6], tokens[9]
    else:
        return 0, 1
    try:
        return int(ts), int(delivered)
    except ValueError:
        return 0, 1


class AlertLink(Receiver):
    """The worker's MQTT 5 connection to the centre's alert broker: its publishes (QoS 1 kept
    until the broker has it, through reconnections), and the operators' acknowledgements of every
    mine (``<base>/mines/+/alerts/ack/+`` and ``.../incidents/ack/+``), which the worker hands to
    the unit owning the alert."""

    def __init__(self, settings: Settings, client_id: str) -> None:
        target = settings.mqtt
        tls = tls_context(settings.mqtt_ca, settings.mqtt_cert, settings.mqtt_key) if target.tls else None
        mines = f"{settings.topics.prefix}/mines/+"
        super().__init__(target, client_id, [(f"{mines}/alerts/ack/+", 1), (f"{mines}/incidents/ack/+", 1)],
                         tls=tls, session_expiry_s=0)


def ack_route(topic: str, payload: bytes, base: str) -> tuple[str, str | None] | None:
    """An operator's acknowledgement on the centre's alert broker: (its mine, the scenario it names,
    None when it names none or cannot be read: the router says why); None when ``topic`` is not
    ``<base>/mines/<mine>/(alerts|incidents)/ack/<id>``."""
    head = base + "/mines/"
    if not topic.startswith(head):
        return None
    parts = topic[len(head):].split("/")
    if len(parts) != 4 or parts[1] not in ("alerts", "incidents") or parts[2] != "ack" or not parts[0]:
        return None
    try:
        body = json.loads(payload)
    except ValueError:
        return parts[0], None
    scenario = body.get("scenario_id") if isinstance(body, dict) else None
    return parts[0], scenario if isinstance(scenario, str) and scenario else None


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
    def put(self, topic: str, payload: bytes, msg: Any | None, arrived_ns: int = 0, redelivered: bool = False) -> None:
        """A message for the pipeline; ``msg`` the JetStream message to acknowledge (None: nothing
        to). ``arrived_ns``: when it came to the centre (the stream's time of it; 0: now), taken as
        its time of receipt, so that neither a worker catching up nor a redelivery (``redelivered``:
        delivered before, to this worker or another) makes its frames late; only a late arrival at
        the centre does."""
        mid = 0
        if msg is not None:
            self._next_mid += 1
            mid = self._next_mid
            self._pending[mid] = msg
        self.inbox.append(Incoming(topic, payload, mid, 1 if msg is not None else 0, redelivered, 0,
                                   arrived_ns or time.time_ns(), redelivered))
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
