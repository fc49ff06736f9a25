"""The consumer's paho client reads its socket in large chunks and shares paho's property tables:
what it hands the pipeline must be exactly what paho's own client hands over."""

from __future__ import annotations

import random
import socket
import threading
import time

import paho.mqtt.client as paho
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from ingest.consumer import ConsumerClient, ReadAhead, _SharedTables, share_property_tables
from minewatch.mqtt import MqttTarget, connect_properties, paho_client
from minewatch.services import Mosquitto

from tests.ingest.helpers import wait_until


@settings(max_examples=60, deadline=None)
@given(chunks=st.lists(st.binary(min_size=1, max_size=3000), min_size=1, max_size=30),
       asks=st.lists(st.integers(1, 5000), min_size=1, max_size=200), size=st.sampled_from([1, 7, 64, 4096]))
def test_read_ahead_hands_out_the_stream_in_order(chunks: list[bytes], asks: list[int], size: int) -> None:
    """Whatever the sender's chunks and the reader's request sizes, the bytes come out in order,
    none twice and none lost, never more than asked, and ``pending`` counts what is held."""
    a, b = socket.socketpair()
    try:
        a.sendall(b"".join(chunks))
        a.shutdown(socket.SHUT_WR)
        sock = ReadAhead(b, size=size)
        want = b"".join(chunks)
        got = bytearray()
        i = 0
        while True:
            n = asks[i % len(asks)]
            i += 1
            piece = sock.recv(n)
            assert len(piece) <= n
            if not piece:
                break
            got += piece
            assert sock.pending() == sock.buffered() >= 0
        assert bytes(got) == want
        assert sock.fileno() == b.fileno()  # the rest goes to the socket
    finally:
        a.close()
        b.close()


def test_shared_tables_decode_properties_as_paho_does() -> None:
    props = Properties(PacketTypes.PUBLISH)
    props.UserProperty = [("site", "mine"), ("shift", "night")]
    props.ContentType = "application/json"
    props.MessageExpiryInterval = 600
    props.CorrelationData = b"\x00\x01"
    packed = props.pack()
    ours, theirs = _SharedTables(PacketTypes.PUBLISH), Properties(PacketTypes.PUBLISH)
    assert ours.unpack(packed)[1] == theirs.unpack(packed)[1] == len(packed)
    assert ours.json() == theirs.json() and str(ours) == str(theirs)
    ours.clear()
    assert ours.json() == {} and ours.isEmpty()
    # instances share the tables, not the values
    other = _SharedTables(PacketTypes.PUBLISH)
    assert other.names is ours.names and other.json() == {}


def _session(broker: Mosquitto, cls: type[paho.Client], cid: str, got: list[paho.MQTTMessage]) -> paho.Client:
    c = paho_client(MqttTarget(broker.url), cid, manual_ack=True, client_class=cls)

    def on_message(client: paho.Client, userdata: object, msg: paho.MQTTMessage) -> None:
        got.append(msg)
        client.ack(msg.mid, msg.qos)

    c.on_message = on_message
    subscribed = threading.Event()
    c.on_connect = lambda cl, u, f, rc, p: cl.subscribe("ra/#", 1)
    c.on_subscribe = lambda cl, u, mid, rcs, p: subscribed.set()
    c.connect(broker.host, broker.port, 30, clean_start=False, properties=connect_properties(600, 5000))
    c.loop_start()
    assert subscribed.wait(20)
    return c


@pytest.mark.integration
def test_consumer_client_receives_what_paho_receives(mosquitto: Mosquitto, unique: str) -> None:
    """The same messages (sizes from empty to beyond the read-ahead, with and without properties,
    QoS 0 and 1) reach a stock paho client and the consumer's client alike."""
    assert share_property_tables()
    rng = random.Random(5)
    sizes = [0, 1, 2, 127, 128, 16_383, 16_384, (1 << 18) - 10, (1 << 18) + 10, 600_000] + \
        [rng.randrange(1, 9000) for _ in range(2000)]
    got_stock: list[paho.MQTTMessage] = []
    got_ours: list[paho.MQTTMessage] = []
    stock = _session(mosquitto, paho.Client, f"stock-{unique}", got_stock)
    ours = _session(mosquitto, ConsumerClient, f"ours-{unique}", got_ours)
    assert isinstance(ours.socket(), ReadAhead)
    pub = paho_client(MqttTarget(mosquitto.url), f"pub-{unique}")
    pub.max_inflight_messages_set(0)
    pub.connect(mosquitto.host, mosquitto.port, 30)
    pub.loop_start()
    sent = []
    for i, n in enumerate(sizes):
        props = None
        if i % 3 == 0:
            props = Properties(PacketTypes.PUBLISH)
            props.UserProperty = [("i", str(i))]
            props.ContentType = "application/octet-stream"
        payload = rng.randbytes(n)
        topic = f"ra/{unique}/{i % 7}"
        sent.append((topic, payload, str(props) if props else "[]"))
        pub.publish(topic, payload, qos=i % 2, properties=props)
    try:
        wait_until(lambda: len(got_stock) == len(got_ours) == len(sent), 60, f"{len(sent)} messages each")
    finally:
        for c in (pub, stock, ours):
            c.disconnect()
            c.loop_stop()
    for got in (got_stock, got_ours):
        seen = [(m.topic, m.payload, str(m.properties)) for m in got]
        assert seen == sent


@pytest.mark.integration
def test_consumer_client_resumes_after_a_broker_restart(fresh_broker: Mosquitto, unique: str) -> None:
    """A new connection starts with an empty read-ahead: nothing of the old socket is handed over,
    and the session goes on."""
    got: list[paho.MQTTMessage] = []
    c = _session(fresh_broker, ConsumerClient, f"ours-{unique}", got)
    c.reconnect_delay_set(0.1, 1)
    pub = paho_client(MqttTarget(fresh_broker.url), f"pub-{unique}")
    pub.connect(fresh_broker.host, fresh_broker.port, 30)
    pub.loop_start()
    for i in range(200):
        pub.publish(f"ra/{unique}", f"a{i}".encode() * 50, qos=1).wait_for_publish(10)
    wait_until(lambda: len(got) == 200, 30, "200 messages")
    pub.disconnect()
    pub.loop_stop()
    fresh_broker.stop()
    time.sleep(0.5)
    fresh_broker.start()
    wait_until(c.is_connected, 30, "the consumer client to reconnect")
    pub = paho_client(MqttTarget(fresh_broker.url), f"pub2-{unique}")
    pub.connect(fresh_broker.host, fresh_broker.port, 30)
    pub.loop_start()
    for i in range(200):
        pub.publish(f"ra/{unique}", f"b{i}".encode() * 50, qos=1).wait_for_publish(10)
    wait_until(lambda: len(got) >= 400, 30, "200 more messages")
    pub.disconnect()
    pub.loop_stop()
    c.disconnect()
    c.loop_stop()
    # QoS 1 is at least once: a message whose PUBACK the broker had not taken in when it stopped
    # comes again after the restart. Everything else arrives once, whole and in order.
    firsts: list[bytes] = []
    for m in got:
        if m.payload in firsts:
            assert m.payload.startswith(b"a"), f"{m.payload[:8]!r}, sent after the restart, came twice"
        else:
            firsts.append(m.payload)
    assert firsts == [f"a{i}".encode() * 50 for i in range(200)] + [f"b{i}".encode() * 50 for i in range(200)]
