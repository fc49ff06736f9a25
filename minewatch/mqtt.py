"""MQTT connection settings shared by every stage (credentials and TLS from one place).

Paho is used for the simulator's publishing and the tests' clients; aiomqtt where acking on receipt
is fine (API, subscribers). The ingestor, whose acknowledgement must wait for durability, has a
client of its own (``ingest/mqttrx.py``).
"""

from __future__ import annotations

import ssl
from pathlib import Path
from typing import Any

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from minewatch.settings import MqttTarget

__all__ = ["paho_client", "tls_context", "aiomqtt_kwargs", "connect_properties"]


def tls_context(ca: Path | None = None, cert: Path | None = None, key: Path | None = None) -> ssl.SSLContext:
    ctx = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=str(ca) if ca else None)
    if cert:
        ctx.load_cert_chain(str(cert), str(key) if key else None)
    return ctx


def paho_client(target: MqttTarget, client_id: str = "", *, ca: Path | None = None, cert: Path | None = None,
                key: Path | None = None, manual_ack: bool = False, userdata: Any = None,
                client_class: type[paho.Client] = paho.Client) -> paho.Client:
    """A paho MQTT 5 client (``client_class``, a subclass of paho's) configured for ``target``
    (not yet connected)."""
    client = client_class(CallbackAPIVersion.VERSION2, client_id=client_id, protocol=paho.MQTTv5,
                          manual_ack=manual_ack, userdata=userdata)
    if target.username:
        client.username_pw_set(target.username, target.password)
    if target.tls:
        client.tls_set_context(tls_context(ca, cert, key))
    return client


def connect_properties(session_expiry_s: int | None = None, receive_maximum: int | None = None) -> Properties:
    props = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]  # paho leaves it unannotated
    if session_expiry_s is not None:
        props.SessionExpiryInterval = session_expiry_s
    if receive_maximum is not None:
        props.ReceiveMaximum = receive_maximum
    return props


def aiomqtt_kwargs(target: MqttTarget, *, ca: Path | None = None, cert: Path | None = None,
                   key: Path | None = None) -> dict[str, Any]:
    """Keyword arguments for ``aiomqtt.Client`` reaching ``target``."""
    kw: dict[str, Any] = {"hostname": target.host, "port": target.port, "protocol": paho.MQTTv5}
    if target.username:
        kw["username"] = target.username
        kw["password"] = target.password
    if target.tls:
        kw["tls_context"] = tls_context(ca, cert, key)
    return kw
