"""The consumer (``ingest.mqttrx``: asyncio streams and the ``mqtt5`` codec): what it hands the
pipeline must be exactly what paho's own threaded loop hands over, across a broker restart, a
packet split over many reads and a message over the packet limit; and it acknowledges exactly
what the pipeline gives it, nothing on receipt."""

from __future__ import annotations

import asyncio
import random
import threading
import time

import paho.mqtt.client as paho
import pytest
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from ingest.consumer import Consumer, Incoming
from minewatch.mqtt import connect_properties, paho_client
from minewatch.settings import MqttTarget
from minewatch.services import Mosquitto
from minewatch.settings import Settings

from tests.ingest.helpers import wait_until


def _stock(broker: Mosquitto, cid: str, topic: str, got: list[paho.MQTTMessage]) -> paho.Client:
    c = paho_client(MqttTarget(broker.url), cid, manual_ack=True)

    def on_message(client: paho.Client, userdata: object, msg: paho.MQTTMessage) -> None:
        got.append(msg)
        client.ack(msg.mid, msg.qos)

    c.on_message = on_message
    subscribed = threading.Event()
    c.on_connect = lambda cl, u, f, rc, p: cl.subscribe(topic, 1)
    c.on_subscribe = lambda cl, u, mid, rcs, p: subscribed.set()
    c.connect(broker.host, broker.port, 30, clean_start=False, properties=connect_properties(600, 5000))
    c.loop_start()
    assert subscribed.wait(20)
    return c


def _publisher(broker: Mosquitto, cid: str) -> paho.Client:
    pub = paho_client(MqttTarget(broker.url), cid)
    pub.max_inflight_messages_set(0)
    pub.connect(broker.host, broker.port, 30)
    pub.loop_start()
    return pub


async def _drain(consumer: Consumer, into: list[Incoming], until: int, timeout: float, prefix: bytes = b"") -> None:
    """Take the consumer's inbox, acknowledging as the pipeline does, until ``until`` messages
    (whose payload starts with ``prefix``) are in."""
    deadline = time.monotonic() + timeout
    while sum(m.payload.startswith(prefix) for m in into) < until and time.monotonic() < deadline:
        await consumer.wait(0.2)
        taken = list(consumer.inbox)
        consumer.inbox.clear()
        into += taken
        consumer.ack(taken)


def _consumer(broker: Mosquitto, cid: str, topic: str, **kw: object) -> Consumer:
    settings = Settings(mqtt_url=broker.url)
    return Consumer(settings, cid, [(topic, 1)], receive_maximum=5000, **kw)  # type: ignore[arg-type]


@pytest.mark.integration
def test_consumer_receives_what_paho_receives(mosquitto: Mosquitto, unique: str) -> None:
    """The same messages (sizes from empty to beyond a socket buffer, with and without properties,
    QoS 0 and 1) reach a stock threaded paho client and the consumer alike, in order."""
    rng = random.Random(5)
    sizes = [0, 1, 2, 127, 128, 16_383, 16_384, (1 << 18) - 10, (1 << 18) + 10, 600_000] + \
        [rng.randrange(1, 9000) for _ in range(2000)]
    topic = f"ra/{unique}/#"
    got_stock: list[paho.MQTTMessage] = []
    got_ours: list[Incoming] = []
    stock = _stock(mosquitto, f"stock-{unique}", topic, got_stock)
    sent = []

    async def main() -> None:
        consumer = _consumer(mosquitto, f"ours-{unique}", topic, read_size=7)
        await consumer.start(20)
        pub = _publisher(mosquitto, f"pub-{unique}")
        try:
            for i, n in enumerate(sizes):
                props = None
                if i % 3 == 0:
                    props = Properties(PacketTypes.PUBLISH)
                    props.UserProperty = [("i", str(i))]
                    props.ContentType = "application/octet-stream"
                payload = rng.randbytes(n)
                t = f"ra/{unique}/{i % 7}"
                sent.append((t, payload, i % 2))
                pub.publish(t, payload, qos=i % 2, properties=props)
            await _drain(consumer, got_ours, len(sent), 60)
        finally:
            pub.disconnect()
            pub.loop_stop()
            assert await consumer.close(5)

    try:
        asyncio.run(main())
        wait_until(lambda: len(got_stock) == len(sent), 60, f"{len(sent)} messages")
    finally:
        stock.disconnect()
        stock.loop_stop()
    assert [(m.topic, m.payload, m.qos) for m in got_stock] == sent
    assert [(m.topic, m.payload, m.qos) for m in got_ours] == sent
    assert all(m.generation == 1 and m.received_ns > 0 for m in got_ours)


@pytest.mark.integration
def test_consumer_reconnects_after_a_broker_restart(fresh_broker: Mosquitto, unique: str) -> None:
    """The session goes on after the broker comes back: unacknowledged messages come again under a
    new generation (an ack of the old one is dropped), nothing is lost and nothing is new twice."""
    topic = f"ra/{unique}"
    got: list[Incoming] = []

    async def main() -> None:
        consumer = _consumer(fresh_broker, f"ours-{unique}", topic)
        await consumer.start(20)
        pub = _publisher(fresh_broker, f"pub-{unique}")
        for i in range(200):
            pub.publish(topic, f"a{i}".encode() * 50, qos=1).wait_for_publish(10)
        pub.disconnect()
        pub.loop_stop()
        await _drain(consumer, got, 200, 30)
        assert len(got) == 200
        held = await _held(consumer, fresh_broker)  # received, not acknowledged: comes again
        await asyncio.get_running_loop().run_in_executor(None, fresh_broker.stop)
        await asyncio.sleep(0.5)
        await asyncio.get_running_loop().run_in_executor(None, fresh_broker.start)
        deadline = time.monotonic() + 30
        while consumer.connects < 2 and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        assert consumer.connects == 2 and consumer.generation >= 3
        assert consumer.ack(held) == 0  # of the old connection: dropped
        pub = _publisher(fresh_broker, f"pub2-{unique}")
        for i in range(200):
            pub.publish(topic, f"b{i}".encode() * 50, qos=1).wait_for_publish(10)
        pub.disconnect()
        pub.loop_stop()
        await _drain(consumer, got, 200, 30, prefix=b"b")
        assert await consumer.close(5)

    asyncio.run(main())
    # QoS 1 is at least once: a message whose PUBACK the broker had not taken in when it stopped
    # comes again after the restart, flagged dup, on the new connection. Everything else arrives
    # once, whole and in order.
    firsts: list[bytes] = []
    for m in got:
        if m.payload in firsts:
            assert m.dup and m.generation >= 3 and not m.payload.startswith(b"b"), f"{m.payload[:8]!r} came twice"
        else:
            firsts.append(m.payload)
    assert firsts == [f"a{i}".encode() * 50 for i in range(200)] + [f"c{i}".encode() for i in range(5)] + \
        [f"b{i}".encode() * 50 for i in range(200)]
    redelivered = [m for m in got if m.payload.startswith(b"c") and m.dup]
    assert len(redelivered) == 5  # the held ones, never acknowledged


async def _held(consumer: Consumer, broker: Mosquitto) -> list[Incoming]:
    """Five messages taken from the inbox and not acknowledged."""
    topic = consumer.subscriptions[0][0]
    pub = _publisher(broker, f"held-{consumer.client_id}")
    for i in range(5):
        pub.publish(topic, f"c{i}".encode(), qos=1).wait_for_publish(10)
    pub.disconnect()
    pub.loop_stop()
    held: list[Incoming] = []
    deadline = time.monotonic() + 20
    while len(held) < 5 and time.monotonic() < deadline:
        await consumer.wait(0.2)
        held += consumer.inbox
        consumer.inbox.clear()
    assert [m.payload for m in held] == [f"c{i}".encode() for i in range(5)]
    return held


@pytest.mark.integration
def test_a_publish_split_across_one_byte_reads(mosquitto: Mosquitto, unique: str) -> None:
    """Read one byte at a time, every packet (CONNACK, SUBACK, PUBLISH of every length class of
    the remaining-length field) arrives in pieces and is still decoded whole and in order."""
    topic = f"one/{unique}"
    sizes = [0, 1, 100, 127, 128, 300, 16_383, 16_384, 20_000]
    sent = [(topic, bytes([i]) * n) for i, n in enumerate(sizes)]
    got: list[Incoming] = []

    async def main() -> None:
        consumer = _consumer(mosquitto, f"one-{unique}", topic, read_size=1)
        await consumer.start(20)
        pub = _publisher(mosquitto, f"pub-{unique}")
        for t, payload in sent:
            pub.publish(t, payload, qos=1)
        await _drain(consumer, got, len(sent), 60)
        pub.disconnect()
        pub.loop_stop()
        assert await consumer.close(5)

    asyncio.run(main())
    assert [(m.topic, m.payload) for m in got] == sent
    assert all(m.qos == 1 and not m.dup for m in got)


@pytest.mark.integration
def test_a_message_over_the_packet_limit_is_not_delivered_and_costs_nothing(mosquitto: Mosquitto,
                                                                             unique: str) -> None:
    """The Maximum Packet Size asked in CONNECT makes the broker drop a bigger message for this
    client: the connection stays up and the messages around it arrive."""
    topic = f"big/{unique}"
    got: list[Incoming] = []

    async def main() -> None:
        consumer = _consumer(mosquitto, f"big-{unique}", topic, max_packet=64 * 1024)
        await consumer.start(20)
        pub = _publisher(mosquitto, f"pub-{unique}")
        pub.publish(topic, b"before", qos=1)
        pub.publish(topic, b"x" * 200_000, qos=1)
        pub.publish(topic, b"y" * 60_000, qos=1)  # just under the limit
        pub.publish(topic, b"after", qos=1)
        await _drain(consumer, got, 3, 30)
        await asyncio.sleep(0.5)  # nothing more comes
        await _drain(consumer, got, 3, 0.2)
        pub.disconnect()
        pub.loop_stop()
        assert consumer.connects == 1 and consumer.connected.is_set()
        assert await consumer.close(5)

    asyncio.run(main())
    assert [m.payload for m in got] == [b"before", b"y" * 60_000, b"after"]


@pytest.mark.integration
def test_only_what_is_acknowledged_is_gone_after_a_hard_drop(mosquitto: Mosquitto, unique: str) -> None:
    """Nothing is acknowledged on receipt: of 300 messages taken, the 120 the pipeline said were
    durable are gone, the other 180 come again (dup) to the next connection of the session after
    the first one is dropped without a DISCONNECT, as a killed process drops it."""
    topic = f"ack/{unique}"
    cid = f"ack-{unique}"
    first: list[Incoming] = []
    again: list[Incoming] = []

    async def main() -> None:
        consumer = _consumer(mosquitto, cid, topic)
        await consumer.start(20)
        pub = _publisher(mosquitto, f"pub-{unique}")
        for i in range(300):
            pub.publish(topic, f"m{i}".encode(), qos=1)
        deadline = time.monotonic() + 30
        while len(first) < 300 and time.monotonic() < deadline:
            await consumer.wait(0.2)
            first.extend(consumer.inbox)
            consumer.inbox.clear()
        assert consumer.ack(first[:120]) == 120
        consumer.flush()
        await asyncio.sleep(0.5)  # the broker takes the acks in
        consumer.stop_accepting()
        assert consumer._writer is not None
        consumer._writer.transport.abort()  # no DISCONNECT: a killed process
        await consumer.close(1)
        pub.publish(topic, b"last", qos=1).wait_for_publish(10)
        pub.disconnect()
        pub.loop_stop()
        again_consumer = _consumer(mosquitto, cid, topic)
        await again_consumer.start(20)
        await _drain(again_consumer, again, 181, 30)
        await asyncio.sleep(0.3)
        await _drain(again_consumer, again, 181, 0.2)
        assert await again_consumer.close(5)

    asyncio.run(main())
    assert [m.payload for m in first] == [f"m{i}".encode() for i in range(300)]
    assert [m.payload for m in again] == [f"m{i}".encode() for i in range(120, 300)] + [b"last"]
    assert all(m.dup for m in again[:-1]) and not again[-1].dup
