"""The MQTT side of the ingestor: QoS 1, a persistent session, acknowledgements only once durable.

:class:`Consumer` is :class:`ingest.mqttrx.Receiver` (the ingestor's own MQTT 5 client on asyncio
streams and the ``mqtt5`` codec) configured from the service's :class:`Settings`: the broker's
URL, credentials and TLS files. See ``ingest/mqttrx.py`` for the protocol and
``docs/ingest.md`` ("Choosing the MQTT client") for why it is not paho.

Flow control is MQTT's own: the broker has at most ``receive_maximum`` unacknowledged messages
out to this client, so the inbox can never hold more, and the rest waits in the broker's queue
(bounded by bytes in ``deploy/mosquitto-limits.conf``). Nothing is acknowledged until the
pipeline says the message's readings are durable.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from ingest.mqttrx import Incoming, Receiver
from minewatch.mqtt import tls_context
from minewatch.settings import Settings

__all__ = ["Consumer", "Incoming"]


class Consumer(Receiver):
    def __init__(self, settings: Settings, client_id: str, subscriptions: Sequence[tuple[str, int]], *,
                 receive_maximum: int = 20_000, session_expiry_s: int = 7 * 24 * 3600, keepalive: int = 30,
                 on_connected: Callable[[bool], None] | None = None, max_packet: int = 16 * 1024 * 1024,
                 read_size: int = 1 << 18) -> None:
        target = settings.mqtt
        tls = tls_context(settings.mqtt_ca, settings.mqtt_cert, settings.mqtt_key) if target.tls else None
        super().__init__(target, client_id, subscriptions, tls=tls, receive_maximum=receive_maximum,
                         session_expiry_s=session_expiry_s, keepalive=keepalive, on_connected=on_connected,
                         max_packet=max_packet, read_size=read_size)
        self.settings = settings
