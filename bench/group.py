"""A mining group's centre: frames of many mines through NATS JetStream to ``minewatch group
worker`` processes, beside one mosquitto and one ``minewatch ingest`` taking the same load.

Everything runs on this machine: one nats-server with JetStream holding the ``GROUP`` stream (the
contract's stream, given the mines' subjects directly here: the frames are published on
``mw.<mine>.<part>.telemetry.<scenario>.<robot>`` as the mines' forwarders publish them, with the
forwarders' ``Nats-Msg-Id``), ``--workers`` group workers over ``--partitions`` partitions, a
mosquitto (the centre's alert broker, and the broker of the single-machine path), an influxd.

Scaling, stated: a group of ``--mines`` mines (default 100) of ``--robots`` robots each (default 2,
where a real mine has 35: a hundred real mines' 3,500 frames/s would not leave this 2-core
machine's CPU to anything else) at one frame a second per robot.

Throughput. ``--frames`` frames of simulated mining-face robots (mf01, mf02), spread over the
mines' robots, published as fast as JetStream takes them (a publisher process, ``--window``
PubAcks awaited at a time) while the workers consume (on the data's clock: the frames are minutes
of robot time sent in seconds). ``group_frames_per_s`` is frames over the time from the first
publish to every partition's consumer having nothing pending or unacknowledged (a worker
acknowledges only what is durable); ``group_lost_frames`` is frames sent less frames found in the
mines' databases afterwards. The single-machine figures (``single_frames_per_s``,
``single_lost_frames``) are ``bench/ingest_throughput.py``'s measurement of the same frames,
one frame a message.

Alert latency. The group's live load (every robot, one frame a second, stamped with the time it
is sent) flows until the workers have caught up with it (every (mine, partition) pipeline made
and warm-started: ``caught_up_after_s``) and ``--latency-warmup`` seconds more; then, for ``--latency-seconds``, methane over and
back under the limit on a mining face of a mine in turn: the latency is from the publish of the
frame that raises (or clears) an alert to the alert event's arrival at a subscriber of the
centre's alert topics (``<prefix>/mines/+/alerts/+/+``). ``single_alert_latency_p99_ms`` is the
same on the single-machine path at the same load.

    .venv/bin/python bench/group.py [--mines 100] [--robots 2] [--workers 2] [--partitions 8]
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import multiprocessing as mp
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import msgspec

from ingest_throughput import (FACES, emit, latency, messages, methane_channels, pct, replicate, settle,
                               simulated_frames, stop_all, throughput)
from minewatch.group import mine_prefix, telemetry_subject
from minewatch.influx import SyncInflux
from minewatch.mqtt import paho_client
from minewatch.services import Influxd, Mosquitto, NatsServer
from minewatch.settings import MqttTarget
from minewatch.topics import Topics
from minewatch.wire import Frame, decode_frames, encode_frame

PREFIX = "bench/v1"


# -- JetStream side ------------------------------------------------------------------------------
def msg_id(mine: str, scenario: str, robot: str, payload: bytes) -> str:
    """The forwarder's ``Nats-Msg-Id``: the first 16 bytes of sha256(topic NUL payload), in hex."""
    topic = Topics(mine_prefix(mine)).telemetry(scenario, robot)
    return hashlib.sha256(topic.encode() + b"\0" + payload).digest()[:16].hex()


def js_messages(frames: list[Frame], mine_of: dict[str, str], partitions: int) -> list[tuple[str, bytes, str]]:
    out = []
    for f in frames:
        mine = mine_of[f.robot_id]
        payload = encode_frame(f)
        out.append((telemetry_subject(mine, f.scenario_id, f.robot_id, partitions), payload,
                    msg_id(mine, f.scenario_id, f.robot_id, payload)))
    return out


def js_publish_all(url: str, path: str, window: int, rate_msgs: float, restamp: bool,
                   done: "mp.Queue[tuple[float, float]]") -> None:
    """Child process: publish every (subject, payload, msg id) in ``path``, ``window`` PubAcks
    awaited at a time; ``rate_msgs`` messages/s (each frame stamped with its send time when
    ``restamp``), or as fast as JetStream takes them when 0."""
    import nats

    data = msgspec.msgpack.decode(Path(path).read_bytes(), type=list[tuple[str, bytes, str]])

    async def go() -> None:
        nc = await nats.connect(url, max_reconnect_attempts=-1)
        js = nc.jetstream()
        t0 = time.monotonic()
        for i in range(0, len(data), window):
            if rate_msgs:
                wait = t0 + i / rate_msgs - time.monotonic()
                if wait > 0:
                    await asyncio.sleep(wait)
            chunk = data[i:i + window]
            if restamp:
                now = time.time_ns()
                chunk = [(s, encode_frame(msgspec.structs.replace(decode_frames(p)[0], ts=now)), f"{m}.{now}")
                         for s, p, m in chunk]
            await asyncio.gather(*(js.publish(s, p, headers={"Nats-Msg-Id": m}, timeout=30) for s, p, m in chunk))
        done.put((time.monotonic() - t0, time.process_time()))
        await nc.close()

    asyncio.run(go())


def drained(url: str, partitions: int, stream: str = "GROUP") -> tuple[bool, int, int]:
    """Whether every partition's consumer has nothing pending or unacknowledged, the stream's
    message count, and the messages pending or unacknowledged over all partitions."""
    import nats

    async def go() -> tuple[bool, int, int]:
        nc = await nats.connect(url)
        try:
            js = nc.jetstream()
            info = await js.stream_info(stream)
            backlog, made = 0, True
            for p in range(partitions):
                try:
                    ci = await js.consumer_info(stream, f"part-{p}")
                except Exception:  # noqa: BLE001 - not made yet: no worker has taken it
                    made = False
                    continue
                backlog += ci.num_pending + ci.num_ack_pending
            return made and backlog == 0, info.state.messages, backlog
        finally:
            await nc.close()

    return asyncio.run(go())


def make_stream(url: str) -> None:
    import nats
    from nats.js.api import StorageType, StreamConfig

    async def go() -> None:
        nc = await nats.connect(url)
        await nc.jetstream().add_stream(StreamConfig(name="GROUP", subjects=["mw.>"], storage=StorageType.FILE,
                                                     duplicate_window=600.0))
        await nc.close()

    asyncio.run(go())


class Workers:
    """``--workers`` group worker processes, up once every partition is held."""

    def __init__(self, nats: NatsServer, broker: Mosquitto, influx: Influxd, n: int, partitions: int, tag: str,
                 tmp: Path, clock: str) -> None:
        exe = Path(sys.executable).with_name("minewatch")
        self.logs = [tmp / f"worker-{tag}-{i}.log" for i in range(n)]
        self.procs = []
        for i in range(n):
            with open(self.logs[i], "wb") as log:
                self.procs.append(subprocess.Popen(
                    [str(exe), "group", "worker", "--nats", nats.url, "--partitions", str(partitions),
                     "--worker-id", f"{tag}{i}", "--mqtt-url", broker.url, "--influx-url", influx.url,
                     "--topic-prefix", PREFIX, "--kv-replicas", "1", "--clock", clock,
                     "--spool-dir", str(tmp / f"spool-{tag}-{i}"), "--log-level", "warning"],
                    stdout=log, stderr=subprocess.STDOUT))
        deadline = time.monotonic() + 120
        while len(self.owners(nats.url, partitions)) < partitions:
            if time.monotonic() > deadline or any(p.poll() is not None for p in self.procs):
                raise RuntimeError("workers did not start:\n" + "\n".join(x.read_text()[-2000:] for x in self.logs))
            time.sleep(0.3)

    @staticmethod
    def owners(url: str, partitions: int) -> dict[int, str]:
        import nats

        async def go() -> dict[int, str]:
            nc = await nats.connect(url)
            try:
                kv = await nc.jetstream().key_value("group-owners")
                out = {}
                for p in range(partitions):
                    try:
                        out[p] = ((await kv.get(f"part.{p}")).value or b"").decode()
                    except Exception:  # noqa: BLE001 - free
                        pass
                return out
            except Exception:  # noqa: BLE001 - no bucket yet
                return {}
            finally:
                await nc.close()

        return asyncio.run(go())

    def stop(self) -> None:
        stop_all(self.procs)


def mines_of(frames: list[Frame], mines: list[str]) -> dict[str, str]:
    robots = sorted({f.robot_id for f in frames})
    return {r: mines[i % len(mines)] for i, r in enumerate(robots)}


def group_throughput(nats: NatsServer, broker: Mosquitto, influx: Influxd, frames: list[Frame], args: argparse.Namespace,
                     tmp: Path) -> tuple[float, int]:
    mines = [f"t{i:03d}" for i in range(args.mines)]
    mine_of = mines_of(frames, mines)
    path = tmp / "group-throughput.msgpack"
    path.write_bytes(msgspec.msgpack.encode(js_messages(frames, mine_of, args.partitions)))
    ws = Workers(nats, broker, influx, args.workers, args.partitions, "t", tmp, "data")
    try:
        _, before, _ = drained(nats.url, args.partitions)
        done: "mp.Queue[tuple[float, float]]" = mp.Queue()
        pub = mp.Process(target=js_publish_all, args=(nats.url, str(path), args.window, 0.0, False, done))
        t0 = time.monotonic()
        pub.start()
        while True:
            ok, n, _ = drained(nats.url, args.partitions)
            if ok and n >= before + len(frames):
                break
            if time.monotonic() - t0 > 900:
                raise RuntimeError("the workers did not finish in 15 minutes")
            if pub.exitcode not in (None, 0):
                raise RuntimeError(f"the publisher failed (exit code {pub.exitcode})")
            time.sleep(0.25)
        elapsed = time.monotonic() - t0
        pub.join(60)
    finally:
        ws.stop()
    stored = 0
    for m in sorted(set(mine_of.values())):
        db = SyncInflux(influx.url, f"minewatch_{m}", timeout=300)
        try:
            stored += db.count("telemetry", "seq")
        except Exception:  # noqa: BLE001 - a mine with nothing stored has no database
            pass
        db.close()
    return len(frames) / elapsed, len(frames) - stored


def group_latency(nats: NatsServer, broker: Mosquitto, influx: Influxd, base: list[Frame], args: argparse.Namespace,
                  tmp: Path, caught_up: dict[str, float]) -> list[float]:
    """Latencies (ms) of the alert events of methane frames, from their publish to the centre's
    alert topic, under the group's live load."""
    mines = [f"m{i:03d}" for i in range(args.mines)]
    robots = [f"r{j:02d}" for j in range(args.robots)]
    load_fps = args.mines * args.robots
    n_load = int(load_fps * (args.latency_seconds + args.latency_warmup + 5))
    load = [msgspec.structs.replace(base[k % len(base)], robot_id=robots[(k // len(mines)) % len(robots)], seq=k)
            for k in range(n_load)]
    mine_of_k = [mines[k % len(mines)] for k in range(n_load)]
    msgs = []
    for k, f in enumerate(load):
        payload = encode_frame(f)
        msgs.append((telemetry_subject(mine_of_k[k], f.scenario_id, f.robot_id, args.partitions), payload,
                     f"{k}"))
    path = tmp / "group-load.msgpack"
    path.write_bytes(msgspec.msgpack.encode(msgs))
    ws = Workers(nats, broker, influx, args.workers, args.partitions, "l", tmp, "wall")
    lat: list[float] = []
    lock = threading.Lock()
    sub = paho_client(MqttTarget(broker.url), "bench-group-sub")

    def on_message(c, u, msg) -> None:
        now = time.time_ns()
        ev = json.loads(msg.payload)
        if ev.get("detector") == "gas_limit" and ev.get("robot_id", "").startswith("lat"):
            with lock:
                lat.append((now - ev["ts"]) / 1e6)

    sub.on_message = on_message
    sub.connect(broker.host, broker.port, 30)
    sub.subscribe(f"{PREFIX}/mines/+/alerts/+/+", qos=1)
    sub.loop_start()
    loader = mp.Process(target=js_publish_all, args=(nats.url, str(path), max(1, load_fps // 10), load_fps, True,
                                                     mp.Queue()))
    try:
        loader.start()
        # steady state first: every (mine, partition) unit made and warm-started (a hundred mines'
        # units take a while), the workers caught up to within a second of the load
        t_wait = time.monotonic()
        time.sleep(1.0)
        while time.monotonic() - t_wait < 300 and drained(nats.url, args.partitions)[2] > max(10, load_fps):
            time.sleep(0.5)
        caught_up["s"] = round(time.monotonic() - t_wait, 1)
        time.sleep(args.latency_warmup)
        combos = [(sid, ch) for sid, ch in methane_channels() if sid in FACES]
        seq = 0
        t_end = time.monotonic() + args.latency_seconds
        steps = [(m, sc, v) for m in mines for sc in combos for v in (1.8, 0.1)]
        gap = args.latency_seconds / max(1, min(len(steps), int(args.latency_seconds * args.alerts_per_s)))

        async def alerts() -> None:
            import nats as natsio

            nonlocal seq
            nc = await natsio.connect(nats.url)
            js = nc.jetstream()
            for mine, (sid, chan), value in steps:
                if time.monotonic() > t_end:
                    break
                f = Frame(robot_id=f"lat{sid}", scenario_id=sid, seq=seq, ts=time.time_ns(), readings={chan: value})
                seq += 1
                await js.publish(telemetry_subject(mine, sid, f.robot_id, args.partitions), encode_frame(f))
                await asyncio.sleep(gap)
            await nc.close()

        asyncio.run(alerts())
        time.sleep(2.0)
    finally:
        loader.terminate()
        loader.join()
        sub.disconnect()
        sub.loop_stop()
        ws.stop()
    return lat


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--mines", type=int, default=100)
    ap.add_argument("--robots", type=int, default=2, help="robots per mine (a real mine: 35)")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--partitions", type=int, default=8)
    ap.add_argument("--frames", type=int, default=40_000, help="frames per throughput run")
    ap.add_argument("--window", type=int, default=500, help="PubAcks awaited at a time by the publisher")
    ap.add_argument("--latency-seconds", type=float, default=20.0)
    ap.add_argument("--latency-warmup", type=float, default=10.0)
    ap.add_argument("--alerts-per-s", type=float, default=4.0)
    ap.add_argument("--seed", type=int, default=7)
    args = ap.parse_args()
    cores = os.cpu_count() or 1
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        broker = Mosquitto(tmp / "mosquitto")
        influx = Influxd(tmp / "influxd")
        nats = NatsServer(tmp / "nats")
        for s in (broker, influx, nats):
            s.start()
        try:
            make_stream(nats.url)
            # each of the group's robots gets an equal share of the frames (40 simulated robots copied)
            per_robot = max(1, args.frames // (args.mines * args.robots))
            base = simulated_frames(min(20_000, 40 * per_robot), 40, args.seed)
            frames = replicate(base, args.frames)
            cond = {"mines": args.mines, "robots_per_mine": args.robots, "workers": args.workers,
                    "partitions": args.partitions, "frames": args.frames, "cores": cores, "nats_nodes": 1,
                    "scaling": f"{args.mines} mines of {args.robots} robots at 1 frame/s (a real mine has 35 "
                               f"robots): {args.mines * args.robots} frames/s of live load on {cores} cores"}
            caught_up: dict[str, float] = {}
            lat_g = group_latency(nats, broker, influx, base, args, tmp, caught_up)
            settle(broker, influx)
            lat_s = latency(broker, influx, 1, float(args.mines * args.robots), args.latency_seconds, base, 1, tmp,
                            "single", args.latency_warmup)
            settle(broker, influx)
            g_fps, g_lost = group_throughput(nats, broker, influx, frames, args, tmp)
            settle(broker, influx)
            payload = tmp / "single.msgpack"
            msgs = messages(frames, 1, Topics("bench/v1"))
            payload.write_bytes(msgspec.msgpack.encode(msgs))
            s_fps, s_lost, _ = throughput(broker, influx, frames, payload, len(msgs), 1, 0, tmp)
            single = {**cond, "path": "one mosquitto + one minewatch ingest, the same frames, one a message"}
            emit("group_frames_per_s", g_fps, "frames/s", units=f"up to {args.mines * args.partitions} (mine, partition) "
                 "pipelines, each made and warm-started within the run", **cond)
            emit("group_lost_frames", g_lost, "frames", **cond)
            emit("group_alert_latency_p99_ms", pct(lat_g, 99) if lat_g else float("nan"), "ms", samples=len(lat_g),
                 p50_ms=round(pct(lat_g, 50), 1) if lat_g else None, warmup_s=args.latency_warmup,
                 caught_up_after_s=caught_up.get("s"), **cond)
            emit("single_frames_per_s", s_fps, "frames/s", **single)
            emit("single_lost_frames", s_lost, "frames", **single)
            emit("single_alert_latency_p99_ms", pct(lat_s, 99) if lat_s else float("nan"), "ms", samples=len(lat_s),
                 p50_ms=round(pct(lat_s, 50), 1) if lat_s else None, **single)
        finally:
            for s in (nats, influx, broker):
                s.stop()


if __name__ == "__main__":
    main()
