"""MQTT clients side by side for the ingestor's receiving end: QoS 1 messages received and acknowledged.

The same broker (a mosquitto of the benchmark's own, with the deployment's limits), the same
messages (simulated mining-face frames, ``--frames-per-message`` to a message, as the robots
send them): each client connects (Receive Maximum 20,000, the ingestor's order of magnitude) and
subscribes with QoS 1, then a publisher process sends ``--messages`` messages as fast as the
broker takes them, and the client takes them all, each acknowledged (PUBACK). A client does
nothing with a message but count it; the figure is messages per second from the first publish
to the last one in, and this process's CPU per message over that time (``cpu_us_per_msg``: the
client's whole cost, network thread included). Turns alternate between the clients,
``--runs`` times; medians are printed.

Candidates:

- ``paho_thread``: paho-mqtt's own network thread (``loop_start``), acknowledging each message
  in its callback: paho used the stock way;
- ``consumer``: the ingestor's consumer (:class:`ingest.consumer.Consumer`, ``ingest/mqttrx.py``):
  its own MQTT 5 client on asyncio streams and the ``mqtt5`` codec, acknowledging what the loop
  took in a turn, the PUBACKs in one write;
- ``aiomqtt``: aiomqtt over paho (it acknowledges on receipt);
- ``gmqtt``: gmqtt's own asyncio protocol (acknowledges on receipt);
- ``mqtt5_codec``: the Rust ``mqtt5`` codec under a bare asyncio reading loop (CONNECT, then
  decode PUBLISH, answer PUBACK): the codec's ceiling, not a client (no keepalive, reconnects or
  session handling).

A candidate whose package is not installed is left out, and says so.

    .venv/bin/python bench/mqtt_clients.py [--messages 100000] [--frames-per-message 1] [--runs 3]
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.util
import json
import multiprocessing as mp
import os
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import msgspec

from ingest_throughput import emit, messages, publish_all, replicate, simulated_frames
from minewatch.mqtt import connect_properties, paho_client
from minewatch.services import Mosquitto
from minewatch.settings import MqttTarget, Settings
from minewatch.topics import Topics

PREFIX = "clients/v1"
RECEIVE_MAXIMUM = 20_000
TOPIC = f"{PREFIX}/telemetry/#"


# -- the candidates: each takes (broker, client id, n, go) and returns once n messages are in; it
# calls go() once subscribed, which starts the robots and the clock ------------------------------
def paho_thread(broker: Mosquitto, cid: str, n: int, go: Callable[[], None]) -> None:
    import paho.mqtt.client as paho

    got = [0]
    done = threading.Event()
    subscribed = threading.Event()

    def on_message(client: paho.Client, userdata: object, msg: paho.MQTTMessage) -> None:
        got[0] += 1
        if got[0] >= n:
            done.set()

    c = paho_client(MqttTarget(broker.url), cid)
    c.on_message = on_message
    c.on_subscribe = lambda *a: subscribed.set()
    c.connect(broker.host, broker.port, 30, properties=connect_properties(600, RECEIVE_MAXIMUM))
    c.loop_start()
    c.subscribe(TOPIC, 1)
    try:
        if not subscribed.wait(30):
            raise RuntimeError("paho_thread: not subscribed")
        go()
        if not done.wait(600):
            raise RuntimeError(f"paho_thread: {got[0]} of {n} messages")
    finally:
        c.disconnect()
        c.loop_stop()


def ingest_consumer(broker: Mosquitto, cid: str, n: int, go: Callable[[], None]) -> None:
    from ingest.consumer import Consumer

    async def main() -> None:
        consumer = Consumer(Settings(mqtt_url=broker.url), cid, [(TOPIC, 1)], receive_maximum=RECEIVE_MAXIMUM)
        await consumer.start(30)
        go()
        got = 0
        deadline = time.monotonic() + 600
        while got < n and time.monotonic() < deadline:
            await consumer.wait(1.0)
            taken = list(consumer.inbox)
            consumer.inbox.clear()
            got += len(taken)
            consumer.ack(taken)
            consumer.flush()
            await asyncio.sleep(0)
        await consumer.close(5)
        if got < n:
            raise RuntimeError(f"consumer: {got} of {n} messages")

    asyncio.run(main())


def aiomqtt_client(broker: Mosquitto, cid: str, n: int, go: Callable[[], None]) -> None:
    import aiomqtt

    async def main() -> None:
        got = 0
        async with aiomqtt.Client(broker.host, broker.port, identifier=cid, protocol=aiomqtt.ProtocolVersion.V5,
                                  properties=connect_properties(600, RECEIVE_MAXIMUM)) as c:
            await c.subscribe(TOPIC, qos=1)
            go()
            async for _ in c.messages:
                got += 1
                if got >= n:
                    break

    asyncio.run(asyncio.wait_for(main(), 600))


def gmqtt_client(broker: Mosquitto, cid: str, n: int, go: Callable[[], None]) -> None:
    import gmqtt  # type: ignore[import-untyped]

    async def main() -> None:
        got = [0]
        done = asyncio.Event()
        subscribed = asyncio.Event()

        def on_message(client: object, topic: str, payload: bytes, qos: int, properties: object) -> int:
            got[0] += 1
            if got[0] >= n:
                done.set()
            return 0

        c = gmqtt.Client(cid, session_expiry_interval=600, receive_maximum=RECEIVE_MAXIMUM)
        c.on_message = on_message
        c.on_subscribe = lambda *a: subscribed.set()
        await c.connect(broker.host, broker.port, keepalive=30)
        c.subscribe(TOPIC, qos=1)
        await asyncio.wait_for(subscribed.wait(), 30)
        go()
        await asyncio.wait_for(done.wait(), 600)
        await c.disconnect()

    asyncio.run(main())


def mqtt5_codec(broker: Mosquitto, cid: str, n: int, go: Callable[[], None]) -> None:
    import mqtt5

    async def main() -> None:
        reader, writer = await asyncio.open_connection(broker.host, broker.port)
        writer.write(mqtt5.ConnectPacket(cid, session_expiry_interval=600, receive_max=RECEIVE_MAXIMUM,
                                         keep_alive=30).write())
        writer.write(mqtt5.SubscribePacket(1, [mqtt5.TopicFilter(TOPIC, max_qos=mqtt5.QoS.AT_LEAST_ONCE)]).write())
        buf = bytearray()
        got = 0
        read = mqtt5.read
        while got < n:
            chunk = await reader.read(1 << 18)
            if not chunk:
                raise RuntimeError(f"mqtt5_codec: the broker closed the connection after {got} messages")
            buf += chunk
            view = memoryview(buf)
            pos = 0
            acks = []
            while True:
                try:
                    pkt, used = read(view[pos:])
                except IndexError:  # the rest of a packet is still to come
                    break
                pos += used
                if isinstance(pkt, mqtt5.PublishPacket):
                    got += 1
                    if pkt.packet_id is not None:
                        acks.append(mqtt5.PubAckPacket(pkt.packet_id).write())
                elif isinstance(pkt, mqtt5.SubAckPacket):
                    go()
            view.release()
            del buf[:pos]
            if acks:
                writer.write(b"".join(acks))
        writer.write(b"\xe0\x00")  # DISCONNECT
        await writer.drain()
        writer.close()

    asyncio.run(main())


CANDIDATES: dict[str, tuple[Callable[[Mosquitto, str, int, Callable[[], None]], None], str | None]] = {
    "paho_thread": (paho_thread, None),
    "consumer": (ingest_consumer, None),
    "aiomqtt": (aiomqtt_client, "aiomqtt"),
    "gmqtt": (gmqtt_client, "gmqtt"),
    "mqtt5_codec": (mqtt5_codec, "mqtt5"),
}


# -- one turn --------------------------------------------------------------------------------------
def turn(broker: Mosquitto, name: str, n: int, payload_file: Path, k: int) -> tuple[float, float]:
    """Messages per second and CPU µs per message of one client taking ``n`` messages as the robots
    send them (from its go to its last message in)."""
    fn = CANDIDATES[name][0]
    cid = f"bench-{name}-{k}-{os.getpid()}"
    done: mp.Queue = mp.Queue()
    pub = mp.Process(target=publish_all, args=(broker.url, str(payload_file), 2000, 0.0, done))
    start: list[float] = []

    def go() -> None:
        start.extend((time.process_time(), time.monotonic()))
        pub.start()

    try:
        fn(broker, cid, n, go)
        wall, cpu = time.monotonic() - start[1], time.process_time() - start[0]
        done.get(timeout=60)
    finally:
        pub.join(60)
        if pub.is_alive():
            pub.terminate()
    return n / wall, cpu / n * 1e6


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--messages", type=int, default=100_000)
    ap.add_argument("--frames-per-message", type=int, default=1)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--clients", default=",".join(CANDIDATES), help="comma-separated, of: " + ", ".join(CANDIDATES))
    ap.add_argument("--seed", type=int, default=7)
    args = ap.parse_args()
    names = [c for c in args.clients.split(",") if c]
    unknown = [c for c in names if c not in CANDIDATES]
    if unknown:
        ap.error(f"unknown client(s) {', '.join(unknown)}; choose from {', '.join(CANDIDATES)}")
    if args.messages < 1 or args.frames_per_message < 1 or args.runs < 1:
        ap.error("--messages, --frames-per-message and --runs must be at least 1")
    missing = [c for c in names if (mod := CANDIDATES[c][1]) and importlib.util.find_spec(mod) is None]
    for c in missing:
        print(json.dumps({"note": f"{c} left out: package {CANDIDATES[c][1]!r} is not installed"}), flush=True)
    names = [c for c in names if c not in missing]
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        broker = Mosquitto(tmp / "mosquitto")
        broker.start()
        try:
            frames = replicate(simulated_frames(2_000, 40, args.seed), args.messages * args.frames_per_message)
            msgs = messages(frames, args.frames_per_message, Topics(PREFIX))[:args.messages]
            payload_file = tmp / "payloads.msgpack"
            payload_file.write_bytes(msgspec.msgpack.encode(msgs))
            size = statistics.mean(len(p) for _, p in msgs)
            results: dict[str, list[tuple[float, float]]] = {c: [] for c in names}
            for run in range(args.runs):
                order = names if run % 2 == 0 else names[::-1]  # alternate: no client always first
                for name in order:
                    results[name].append(turn(broker, name, len(msgs), payload_file, run))
            cores = os.cpu_count() or 1
            for name, rs in results.items():
                cond = {"client": name, "messages": len(msgs), "frames_per_message": args.frames_per_message,
                        "payload_bytes": round(size), "qos": 1, "receive_maximum": RECEIVE_MAXIMUM,
                        "runs": args.runs, "cores": cores}
                emit("mqtt_client_msgs_per_s", statistics.median(r[0] for r in rs), "messages/s",
                     each_run=[round(r[0]) for r in rs], **cond)
                emit("mqtt_client_cpu_us_per_msg", statistics.median(r[1] for r in rs), "µs/message",
                     each_run=[round(r[1], 1) for r in rs], **cond)
        finally:
            broker.stop()


if __name__ == "__main__":
    main()
