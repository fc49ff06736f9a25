"""Hostile input: fuzzed messages against a real ``minewatch ingest``, mosquitto and influxd.

A mosquitto of the benchmark's own (with the shipped limits, ``max_packet_size`` 16 MiB), an
influxd and one ``minewatch ingest`` with its defaults (the fleet registry of the default fleet,
the size, frame, channel and time limits). The ingestor first takes ``--warm`` good frames; its
RSS then is the warmed-up level. Then ``--messages`` fuzzed messages of many kinds (below),
interleaved with good frames, sent from the robots' own topics and others; then the benchmark
waits for the ingestor to settle.

Prints one JSON line per figure:

- ``fuzz_messages``: bad messages sent, with ``kinds`` (how many of each);
- ``fuzz_deadlettered``: dead letters that arrived on ``deadletter/+`` (each bad message exactly
  once: ``meets`` says whether the count is the number sent);
- ``fuzz_good_frames_lost``: good frames sent minus good frames found in InfluxDB;
- ``ingest_rss_growth_mb``: the ingestor's RSS after the fuzz, settled, minus its warmed-up RSS
  (with the peak seen during the fuzz);
- ``broker_disconnects``: times the ingestor lost its broker connection during the run;
- ``influx_future_shards``: shards of the database that start after now (a future timestamp
  stored would make one), with the number of shards in all;
- ``api_sse_clients_rss_mb``: the API's RSS with ``--sse-clients`` live-stream clients, from
  ``bench/hostile_api.py``.

    .venv/bin/python bench/hostile.py [--messages 100000] [--warm 20000] [--seed 7]
"""

from __future__ import annotations

import argparse
import json
import random
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import httpx
import msgspec
import paho.mqtt.client as paho

from minewatch.catalogue import SCENARIOS
from minewatch.influx import SyncInflux
from minewatch.mqtt import connect_properties, paho_client
from minewatch.settings import parse_mqtt_url
from minewatch.services import Influxd, Mosquitto, free_port, stop_process
from minewatch.topics import Topics
from minewatch.wire import Frame, encode_frame, encode_frames

from hostile_api import rss_mb, sse_clients_rss

_NS = 1_000_000_000
PREFIX = "minewatch/v1"


def emit(name: str, value: float, unit: str, **cond: object) -> None:
    print(json.dumps({"name": name, "value": round(value, 3), "unit": unit, **cond}), flush=True)


class Frames:
    """Good frames of the default fleet's stationed robots, each robot's seq running on."""

    def __init__(self, rng: random.Random) -> None:
        self.rng = rng
        self.robots = [(sid, f"r{i + 1:02d}") for i, sid in enumerate(SCENARIOS)]
        self.seq: Counter[str] = Counter()
        self.t = {rid: time.time_ns() - 3_600 * _NS for _, rid in self.robots}

    def one(self, k: int | None = None) -> Frame:
        sid, rid = self.robots[self.rng.randrange(len(self.robots)) if k is None else k % len(self.robots)]
        self.seq[rid] += 1
        self.t[rid] = min(self.t[rid] + 50_000_000, time.time_ns())
        readings: dict[str, float | None] = {c.name: round(self.rng.uniform(0.1, 0.3), 3) for c in SCENARIOS[sid].channels[:6]}
        return Frame(robot_id=rid, scenario_id=sid, seq=self.seq[rid], ts=self.t[rid], readings=readings)


def fuzz(rng: random.Random, good: Frames, topics: Topics) -> tuple[str, str, bytes]:
    """One bad message: (kind, topic, payload); each is one the ingestor must dead-letter."""
    f = good.one()
    d = msgspec.to_builtins(f)
    own = topics.telemetry(f.scenario_id, f.robot_id)
    now = time.time_ns()
    kind = rng.choice(KINDS)
    if kind == "random_bytes":
        return kind, own, rng.randbytes(rng.randrange(1, 600))
    if kind == "truncated_json":
        raw = encode_frame(f)
        return kind, own, raw[:rng.randrange(1, len(raw) - 1)]
    if kind == "empty":
        return kind, own, b""
    if kind == "not_an_object":
        return kind, own, json.dumps(rng.choice([[1, 2], "x", 3, None, [[]]])).encode()
    if kind == "missing_field":
        del d[rng.choice(["robot_id", "scenario_id", "seq", "ts"])]  # (a frame without readings is valid)
    elif kind == "seq_wrong_type":
        d["seq"] = rng.choice(["12", 1.5, None, [], -1])
    elif kind == "reading_wrong_type":
        d["readings"][next(iter(d["readings"]))] = rng.choice(["high", [1], {"a": 1}, True])
    elif kind == "reading_not_finite":
        return kind, own, encode_frame(f).replace(b"}", b',"co":NaN}', 1)
    elif kind == "topic_mismatch":
        d["robot_id"] = "r02" if f.robot_id != "r02" else "r03"
    elif kind == "unknown_scenario":
        return kind, topics.telemetry("zz99", f.robot_id), msgspec.json.encode({**d, "scenario_id": "zz99"})
    elif kind == "unknown_robot":
        rid = f"x{rng.randrange(10**9):09d}"
        return kind, topics.telemetry(f.scenario_id, rid), msgspec.json.encode({**d, "robot_id": rid})
    elif kind == "bad_channel":
        d["readings"][rng.choice(["seq", "time", "a b", "é", "x,y", "late"])] = 1.0
    elif kind == "future_ts":
        d["ts"] = now + rng.randrange(2, 3_000) * 86_400 * _NS
    elif kind == "ancient_ts":
        d["ts"] = rng.randrange(1, 1_600_000_000) * _NS
    elif kind == "future_weeks":
        frames = [{**d, "seq": d["seq"] + i, "ts": now + (i + 1) * 7 * 86_400 * _NS} for i in range(400)]
        return kind, own, msgspec.json.encode(frames)
    elif kind == "too_many_frames":
        frames = [{**d, "seq": d["seq"] + i} for i in range(10_001)]
        return kind, own, msgspec.json.encode(frames)
    elif kind == "too_large":
        return kind, own, b"[" + b" " * (4 << 20) + b"]"
    elif kind == "quotes":
        return kind, own, b'"' * rng.randrange(10_000, 100_000)
    elif kind == "deep_nesting":
        n = rng.randrange(100, 5_000)
        return kind, own, b"[" * n + b"]" * n
    elif kind == "status_garbage":
        return kind, topics.status(f.robot_id), rng.choice([b"{", b"[]", b'{"online": "maybe"}', rng.randbytes(40)])
    elif kind == "status_of_another":
        return kind, topics.status(f.robot_id), json.dumps({"robot_id": "r31" if f.robot_id != "r31" else "r30",
                                                            "online": False}).encode()
    elif kind == "status_unknown_robot":
        rid = f"y{rng.randrange(10**9):09d}"
        return kind, topics.status(rid), json.dumps({"robot_id": rid, "online": False}).encode()
    elif kind == "status_future":
        return kind, topics.status(f.robot_id), json.dumps({"robot_id": f.robot_id, "online": True,
                                                            "ts": now + 400 * 86_400 * _NS}).encode()
    elif kind == "ack_garbage":
        aid = f"a{rng.randrange(10**6)}"
        return kind, f"{topics.prefix}/alerts/ack/{aid}", rng.choice([b"{}", b"null", rng.randbytes(30)])
    elif kind == "ack_unknown_alert":
        aid = f"mf01.ch4.gas_limit.{rng.randrange(10**12)}"
        return kind, f"{topics.prefix}/alerts/ack/{aid}", json.dumps({"alert_id": aid, "operator": "x"}).encode()
    elif kind == "huge_string_reading":
        d["readings"]["note"] = "x" * rng.randrange(1_000, 200_000)
    return kind, own, msgspec.json.encode(d)


KINDS = ["random_bytes", "truncated_json", "empty", "not_an_object", "missing_field", "seq_wrong_type",
         "reading_wrong_type", "reading_not_finite", "topic_mismatch", "unknown_scenario", "unknown_robot",
         "bad_channel", "future_ts", "ancient_ts", "future_weeks", "too_many_frames", "too_large", "quotes",
         "deep_nesting", "status_garbage", "status_of_another", "status_unknown_robot", "status_future",
         "ack_garbage", "ack_unknown_alert", "huge_string_reading"]
# the rare heavy ones: a few of each per run, not thousands
HEAVY = {"future_weeks": 0.002, "too_many_frames": 0.001, "too_large": 0.0005, "quotes": 0.01}


class Sender:
    """QoS 1 publisher that keeps at most ``window`` messages waiting for the broker's acknowledgement."""

    def __init__(self, url: str, window: int = 400) -> None:
        t = parse_mqtt_url(url)
        self.c = paho_client(t, f"hostile-{time.monotonic_ns()}")
        self.c.max_inflight_messages_set(window + 100)
        self.c.max_queued_messages_set(0)
        self.window = window
        self.acked = 0
        self.cv = threading.Condition()

        def on_publish(c: paho.Client, u: object, mid: int, rc: object, p: object) -> None:
            with self.cv:
                self.acked += 1
                self.cv.notify_all()

        self.c.on_publish = on_publish
        ok = threading.Event()
        self.c.on_connect = lambda c, u, f, rc, p: ok.set()
        self.c.connect(t.host, t.port, 30, properties=connect_properties(0))
        self.c.loop_start()
        if not ok.wait(20):
            raise RuntimeError("the publisher could not connect")
        self.sent = 0

    def send(self, topic: str, payload: bytes) -> None:
        info = self.c.publish(topic, payload, qos=1)
        if info.rc:
            raise RuntimeError(f"publish refused locally ({info.rc}) on {topic}")
        self.sent += 1
        with self.cv:
            if not self.cv.wait_for(lambda: self.sent - self.acked <= self.window, 60):
                raise RuntimeError(f"the broker acknowledged {self.acked} of {self.sent} messages")

    def flush(self) -> None:
        with self.cv:
            if not self.cv.wait_for(lambda: self.acked >= self.sent, 120):
                raise RuntimeError(f"the broker acknowledged {self.acked} of {self.sent} messages")

    def close(self) -> None:
        self.c.disconnect()
        self.c.loop_stop()


class Letters:
    def __init__(self, url: str, topic: str) -> None:
        t = parse_mqtt_url(url)
        self.n = 0
        self.reasons: Counter[str] = Counter()
        self.biggest = 0
        self.c = paho_client(t, f"letters-{time.monotonic_ns()}")
        ok = threading.Event()
        self.c.on_connect = lambda c, u, f, rc, p: c.subscribe(topic, 1)
        self.c.on_subscribe = lambda *a: ok.set()

        def on_message(c: paho.Client, u: object, m: paho.MQTTMessage) -> None:
            self.n += 1
            self.reasons[m.topic.rsplit("/", 1)[1]] += 1
            self.biggest = max(self.biggest, len(m.payload))

        self.c.on_message = on_message
        self.c.connect(t.host, t.port, 30)
        self.c.loop_start()
        ok.wait(20)

    def close(self) -> None:
        self.c.disconnect()
        self.c.loop_stop()


def metric(http: httpx.Client, port: int, name: str) -> float:
    total = 0.0
    for line in http.get(f"http://127.0.0.1:{port}/metrics").text.splitlines():
        if line.startswith(name) and not line.startswith("#"):
            total += float(line.rsplit(" ", 1)[1])
    return total


def run(messages: int, warm: int, seed: int, tmp: Path, timeout: float = 300.0) -> dict:
    rng = random.Random(seed)
    topics = Topics(PREFIX)
    broker, influx = Mosquitto(tmp / "mosquitto"), Influxd(tmp / "influxd")
    broker.start()
    influx.start()
    mport = free_port()
    exe = Path(sys.executable).with_name("minewatch")
    log = open(tmp / "ingest.log", "wb")
    ing = subprocess.Popen([str(exe), "ingest", "--mqtt-url", broker.url, "--influx-url", influx.url,
                            "--influx-db", "mw", "--spool-dir", str(tmp / "spool"), "--metrics-port", str(mport),
                            "--warmup", "0", "--log-level", "warning"], stdout=log, stderr=subprocess.STDOUT)
    http = httpx.Client(timeout=10)
    db = SyncInflux(influx.url, "mw")
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if metric(http, mport, "minewatch_ingest_mqtt_connected") == 1:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline or ing.poll() is not None:
                raise RuntimeError("ingest did not start:\n" + (tmp / "ingest.log").read_text()[-3000:])
            time.sleep(0.2)
        letters = Letters(broker.url, f"{PREFIX}/deadletter/+")
        pub = Sender(broker.url)
        good = Frames(rng)
        n_good = 0

        def stored() -> float:
            return metric(http, mport, "minewatch_ingest_points_stored_total")

        for i in range(warm):
            pub.send(*_good_message(topics, good.one(i)))
            n_good += 1
        pub.flush()
        _wait(lambda: stored() >= n_good, 120, "the warm-up frames")
        time.sleep(2.0)
        rss_warm = rss_mb(ing.pid)
        kinds: Counter[str] = Counter()
        peak = rss_warm
        sent_bad = 0
        while sent_bad < messages:
            if rng.random() < 0.3:
                pub.send(*_good_message(topics, good.one()))
                n_good += 1
                continue
            kind, topic, payload = fuzz(rng, good, topics)
            heavy = HEAVY.get(kind)
            if heavy is not None and rng.random() > heavy * len(KINDS):
                continue
            pub.send(topic, payload)
            kinds[kind] += 1
            sent_bad += 1
            if sent_bad % 2000 == 0:
                peak = max(peak, rss_mb(ing.pid))
        pub.flush()
        try:
            _wait(lambda: stored() >= n_good and letters.n >= sent_bad, timeout, "the frames and the dead letters")
        except RuntimeError as exc:
            raise RuntimeError(f"{exc}: {stored():.0f} of {n_good} good frames stored, {letters.n} dead letters "
                               f"of {sent_bad} ({dict(letters.reasons)}; sent {dict(kinds)})") from None
        time.sleep(3.0)
        rss_after = rss_mb(ing.pid)
        in_db = db.count("telemetry", "seq")
        connects = metric(http, mport, "minewatch_ingest_mqtt_connects")
        cond = {"warm_frames": warm, "good_frames": n_good, "seed": seed, "kinds_count": len(kinds)}
        emit("fuzz_messages", sent_bad, "messages", kinds=dict(sorted(kinds.items())), **cond)
        emit("fuzz_deadlettered", letters.n, "messages", meets=letters.n == sent_bad,
             reasons=dict(sorted(letters.reasons.items())), biggest_letter_bytes=letters.biggest, **cond)
        emit("fuzz_good_frames_lost", max(0, n_good - in_db), "frames", stored=in_db, **cond)
        emit("ingest_rss_growth_mb", rss_after - rss_warm, "MB", warm_mb=round(rss_warm, 1),
             after_mb=round(rss_after, 1), peak_mb=round(peak, 1), limit_mb=50, **cond)
        emit("broker_disconnects", max(0, connects - 1), "disconnects", **cond)
        sh = db.shards()
        now = time.time_ns()
        emit("influx_future_shards", sum(1 for s, _ in sh if s > now), "shards", shards=len(sh),
             latest_start_days=round((max(s for s, _ in sh) - now) / 86_400e9, 2) if sh else None, **cond)
        return cond
        letters.close()
        pub.close()
    finally:
        http.close()
        db.close()
        stop_process(ing, timeout=30)
        log.close()
        broker.stop()
        influx.stop()


def _good_message(topics: Topics, f: Frame) -> tuple[str, bytes]:
    return topics.telemetry(f.scenario_id, f.robot_id), encode_frames([f])


def _wait(check: Callable[[], object], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise RuntimeError(f"timed out waiting for {what}")
        time.sleep(0.2)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--messages", type=int, default=100_000, help="fuzzed messages")
    ap.add_argument("--warm", type=int, default=20_000, help="good frames before the fuzz (the RSS baseline)")
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--sse-clients", type=int, default=200, help="live-stream clients of the API at once")
    ap.add_argument("--sse-alerts", type=int, default=2000, help="active alerts stored (the stream's snapshot)")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="mw-hostile-") as d:
        run(args.messages, args.warm, args.seed, Path(d))
    with tempfile.TemporaryDirectory(prefix="mw-hostile-api-") as d:
        r = sse_clients_rss(args.sse_clients, alerts=args.sse_alerts, workdir=Path(d))
    emit("api_sse_clients_rss_mb", r["with_clients_mb"], "MB", before_mb=r["before_mb"], after_leave_mb=r["after_mb"],
         added_mb=round(r["with_clients_mb"] - r["before_mb"], 1), clients=r["clients"], alerts=r["alerts"],
         snapshot_kb=r["snapshot_kb"])


if __name__ == "__main__":
    main()
