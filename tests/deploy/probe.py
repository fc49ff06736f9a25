"""Small blocking MQTT probes for the security tests: log in, publish once, watch topics."""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.reasoncodes import ReasonCode

from minewatch.mqtt import paho_client
from minewatch.settings import MqttTarget

TIMEOUT = 5.0


class Session:
    """One connected paho client; ``connack`` is the broker's answer to the login."""

    def __init__(self, url: str, *, ca: Path | None = None, protocol: paho.MQTTProtocolVersion = paho.MQTTv5,
                 timeout: float = TIMEOUT, client_class: type[paho.Client] = paho.Client) -> None:
        target = MqttTarget(url)
        if protocol == paho.MQTTv5:
            self.client = paho_client(target, ca=ca, client_class=client_class)
        else:  # paho_client always speaks MQTT 5; robots in the field may not
            self.client = paho.Client(CallbackAPIVersion.VERSION2, protocol=protocol)
            self.client.username_pw_set(target.username, target.password)
        self.connected = threading.Event()
        self.closed = threading.Event()
        self.connack: ReasonCode | int | None = None
        self.acks: dict[int, ReasonCode | int] = {}
        self.acked = threading.Condition()
        self.messages: list[paho.MQTTMessage] = []
        self.client.reconnect_delay_set(0.05, 0.05)  # type: ignore[arg-type]  # paho takes seconds as a float; paho reconnects after a refused publish; don't linger
        self.client.on_connect = self._on_connect
        self.client.on_disconnect = lambda *a: self.closed.set()
        self.client.on_publish = self._on_publish
        self.client.on_message = self._on_message
        self.client.connect(target.host, target.port)
        self.client.loop_start()
        if not self.connected.wait(timeout):
            self.close()
            raise TimeoutError(f"no CONNACK from {url}")

    def _on_connect(self, client, userdata, flags, rc, props=None) -> None:
        if self.connack is None:
            self.connack = rc
        self.connected.set()
        if rc != 0:
            client.disconnect()

    def _on_publish(self, client, userdata, mid, rc, props=None) -> None:
        with self.acked:
            self.acks[mid] = rc
            self.acked.notify_all()

    def _on_message(self, client, userdata, msg: paho.MQTTMessage) -> None:
        self.messages.append(msg)

    @property
    def accepted(self) -> bool:
        return self.connack == 0

    def publish(self, topic: str, payload: bytes = b"probe", qos: int = 1, retain: bool = False) -> ReasonCode | int:
        """Publish and wait for the PUBACK; its reason code (MQTT 5) or 0 (3.1.1)."""
        info = self.client.publish(topic, payload, qos=qos, retain=retain)
        with self.acked:
            if not self.acked.wait_for(lambda: info.mid in self.acks, TIMEOUT):
                raise TimeoutError(f"no PUBACK for {topic}")
            return self.acks[info.mid]

    def subscribe(self, *filters: str) -> None:
        done = threading.Event()
        self.client.on_subscribe = lambda *a: done.set()
        self.client.subscribe([(f, 1) for f in filters])
        if not done.wait(TIMEOUT):
            raise TimeoutError(f"no SUBACK for {filters}")

    def topics(self) -> list[str]:
        return [m.topic for m in self.messages]

    def wait_for(self, topic: str, timeout: float = TIMEOUT) -> paho.MQTTMessage:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for m in self.messages:
                if m.topic == topic:
                    return m
            time.sleep(0.01)
        raise TimeoutError(f"{topic} did not arrive; got {self.topics()}")

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()

    def __enter__(self) -> Session:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def login(url: str, **kw: Any) -> ReasonCode | int:
    """The CONNACK reason for ``url``'s credentials."""
    with Session(url, **kw) as s:
        assert s.connack is not None, "no CONNACK"
        return s.connack


def publish_once(url: str, topic: str, payload: bytes = b"probe", *, protocol: paho.MQTTProtocolVersion = paho.MQTTv5,
                 retain: bool = False) -> ReasonCode | int:
    """Log in, publish one QoS 1 message, return the PUBACK reason. A fresh connection each time:
    paho drops the connection after a PUBACK that refuses the message."""
    with Session(url, protocol=protocol) as s:
        assert s.accepted, f"{url.split('@')[0]} could not log in: {s.connack}"
        return s.publish(topic, payload, retain=retain)
