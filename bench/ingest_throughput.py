"""Ingest throughput and alert latency: simulator -> mosquitto -> ``minewatch ingest`` -> InfluxDB.

Everything runs on this machine: a mosquitto and an influxd of the benchmark's own, the
``minewatch ingest`` processes (detectors on), the publishing robots and the measurement.
Before each phase the benchmark waits for mosquitto and influxd to fall idle, so no phase pays
for the compaction of the points the one before it wrote; each ingest process's persistent
session is ended when it stops, so later runs' messages are not queued for it.

Throughput. The simulator generates the frames of mining-face robots (mf01, mf02: 10 and 11
channels, plus seq, battery, position and link, so a point carries 8-12 channel readings), copied
to as many robots as needed for ``--points`` points. A publisher process sends them as fast as
the broker takes them, QoS 1, ``--frames-per-message`` frames of one robot per message (the
contract's array form: what a robot on a slow link does with its backlog). The figure is points
landed per second from the first publish to the last point acknowledged as stored (the ingestor
on the data's clock, ``--clock data``: the frames are minutes of robot time sent in seconds); loss is
points sent minus points found in InfluxDB afterwards. In the same run InfluxDB's own ceiling is
measured: the same points, as line protocol, written straight to ``/write`` in 5,000-point
batches by ``--ceiling-writers`` concurrent writers, with the lines built beforehand; and the
broker's ceiling for one receiver: a bare paho subscriber that only counts, taking the same
messages from the same publisher (``subscriber_points_per_s``; the ingestor's share of it is
``ingest_to_subscriber_ceiling_ratio``).

Alert latency. A robot's frame carries its own timestamp (robot clock = this clock). Alert robots,
one a scenario, take every channel with a fixed limit (gases, temperatures, smoke, water level:
109 of them) past its most severe level and back below its restore level, twice, over
``--latency-seconds``: 218 raises and 109 clears (the second clears are held as flapping, and not
timed). The latency is the time from the frame's timestamp that raised or cleared an alert to the
alert event arriving at an MQTT subscriber of ``alerts/+/+``; ``alert_latency_p99_ms`` is the
99th percentile of those samples (``samples``) and ``alert_latency_max_ms`` the slowest.
Measured at the default mine's load (35 points/s: 40 robots, about 1 frame/s
each) and at 80 % of the measured maximum, sent by the throughput runs' own robots (a maximum
measured with one fleet says nothing about another's: InfluxDB's cost of a point grows with the
series), each after ``--latency-warmup`` seconds of that load. With the latency: the robots, the
load the broker took and the ingestor took while the alerts were measured
(``published_points_per_s``, ``ingested_points_per_s`` against ``load_points_per_s`` offered) and
the load's points not yet taken at the end (``backlog_points``), the cores each process used
meanwhile (``ingest_cores``, ``influxd_cores``, ``mosquitto_cores``, ``publisher_cores``) and the
ingestor's mean points a write (``points_per_write``).

Prints one JSON line per figure (medians over ``--runs``):
``ingest_points_per_s``, ``ingest_readings_per_s``, ``ingest_lost_points``,
``influx_direct_points_per_s``, ``ingest_to_ceiling_ratio``, ``subscriber_points_per_s``,
``ingest_to_subscriber_ceiling_ratio``, ``alert_latency_p50_ms``,
``alert_latency_p99_ms``, ``alert_latency_max_ms``. ``ingest_points_per_s`` carries ``cpu_us_per_point``: the CPU each
process (ingest, influxd, mosquitto, the publisher) spent per point landed during the run, which
shows where a 2-core machine's time goes.

    .venv/bin/python bench/ingest_throughput.py [--points 600000] [--partitions 2] [--runs 3]
"""

from __future__ import annotations

import argparse
import itertools
import json
import multiprocessing as mp
import os
import re
import select
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import httpx
import msgspec

from detectors.overrides import Overrides
from detectors.rules import channel_rules
from ingest.lines import TelemetryLines
from minewatch.catalogue import SCENARIOS
from minewatch.influx import SyncInflux
from minewatch.mqtt import connect_properties, paho_client
from minewatch.services import Influxd, Mosquitto, free_port
from minewatch.storage import DOWNSAMPLED
from minewatch.settings import MqttTarget
from minewatch.topics import Topics
from minewatch.wire import Frame, encode_frame, encode_frames
from simulator.engine import SimConfig, Simulation

PREFIX = "bench/v1"
FACES = ["mf01", "mf02"]
DEFAULT_MINE_FPS = 35.0  # the default fleet: 35 robots, one frame a second each


def cpu_s(pid: int) -> float:
    """CPU seconds (user + system) a process has used so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def settle(*servers: Mosquitto | Influxd, idle_share: float = 0.05, timeout: float = 180.0) -> float:
    """Wait until the servers are idle (together under ``idle_share`` of a core for a second):
    InfluxDB compacts what the last phase wrote, and the next phase should not pay for that.
    Returns the seconds waited."""
    t0 = time.monotonic()
    pids = [s.proc.pid for s in servers if s.proc is not None]
    while time.monotonic() - t0 < timeout:
        before = sum(cpu_s(p) for p in pids)
        time.sleep(1.0)
        if sum(cpu_s(p) for p in pids) - before < idle_share:
            break
    return time.monotonic() - t0


def emit(name: str, value: float, unit: str, **cond: object) -> None:
    print(json.dumps({"name": name, "value": round(value, 3), "unit": unit, **cond}), flush=True)


# -- data ------------------------------------------------------------------------------------------
def simulated_frames(n_base: int, robots: int, seed: int) -> list[Frame]:
    sim = Simulation(SimConfig(seed=seed, frames=n_base, robots=robots, scenarios=FACES, rate_hz=1.0,
                               start_ns=time.time_ns() // 10**9 * 10**9))
    return [f for batch in sim.frames() for f in batch]


def replicate(base: list[Frame], points: int) -> list[Frame]:
    """``points`` frames: copies of the simulated ones under new robot ids (r01 -> r01x3)."""
    out: list[Frame] = []
    for k in itertools.count():
        for f in base:
            if len(out) == points:
                return out
            out.append(msgspec.structs.replace(f, robot_id=f"{f.robot_id}x{k}"))
    return out


def fleet(base: list[Frame], points: int, copies: int) -> list[Frame]:
    """``points`` frames of the robots :func:`replicate` makes of ``copies`` copies of ``base``
    (r01x0 .. r01x<copies-1>, ...), each robot going round its simulated frames again as often as
    needed, its ``seq`` running on: a load as long as asked for, from a fleet of a given size."""
    period = max(f.seq for f in base) + 1
    out: list[Frame] = []
    for cycle in itertools.count():
        for f in base:
            for k in range(copies):
                if len(out) == points:
                    return out
                out.append(msgspec.structs.replace(f, robot_id=f"{f.robot_id}x{k}", seq=f.seq + cycle * period))
    return out


def grouped(frames: list[Frame], per_message: int, topics: Topics) -> list[tuple[str, list[Frame]]]:
    """Per robot, consecutive frames in arrays of ``per_message``; robots interleaved, in sending order."""
    by_robot: dict[str, list[Frame]] = {}
    for f in frames:
        by_robot.setdefault(f.robot_id, []).append(f)
    chunks = [[(topics.telemetry(fs[0].scenario_id, r), fs[i:i + per_message]) for i in range(0, len(fs), per_message)]
              for r, fs in by_robot.items()]
    return [item for round_ in itertools.zip_longest(*chunks) for item in round_ if item is not None]


def encoded(msgs: list[tuple[str, list[Frame]]]) -> list[tuple[str, bytes]]:
    return [(topic, encode_frame(fs[0]) if len(fs) == 1 else encode_frames(fs)) for topic, fs in msgs]


def messages(frames: list[Frame], per_message: int, topics: Topics) -> list[tuple[str, bytes]]:
    """Per robot, consecutive frames in arrays of ``per_message``; robots interleaved."""
    return encoded(grouped(frames, per_message, topics))


def stamped(msgs: list[tuple[str, list[Frame]]], start_ns: int, rate_msgs: float) -> list[tuple[str, list[Frame]]]:
    """The messages with their robots' clocks right: message ``j`` goes out at ``j / rate_msgs``
    after the start, and its frames end at that time, a millisecond apart."""
    out = []
    for j, (topic, fs) in enumerate(msgs):
        sent = start_ns + int(j * 1e9 / rate_msgs)
        n = len(fs)
        out.append((topic, [msgspec.structs.replace(f, ts=sent - (n - 1 - m) * 1_000_000) for m, f in enumerate(fs)]))
    return out


# -- the robots ------------------------------------------------------------------------------------
def _varint(n: int) -> bytes:
    out = bytearray()
    while True:
        n, byte = divmod(n, 128)
        out.append(byte | (128 if n else 0))
        if not n:
            return bytes(out)


def _utf8(s: str) -> bytes:
    b = s.encode()
    return len(b).to_bytes(2, "big") + b


def _packet(kind: int, body: bytes) -> bytes:
    return bytes([kind]) + _varint(len(body)) + body


def publish_all(url: str, path: str, window: int, rate_msgs: float, done: "mp.Queue[tuple[float, float]]",
                progress: Any = None) -> None:
    """Child process: publish every (topic, payload) in ``path`` with QoS 1, at most ``window``
    unacknowledged; ``rate_msgs`` messages/s, or as fast as possible when 0. ``progress`` (a shared
    integer, ``multiprocessing.RawValue``), if given, holds the messages acknowledged so far.

    The fleet's stand-in speaks MQTT 3.1.1 over a plain socket with every PUBLISH packet encoded
    up front, so that the robots, which are other machines in the mine, take as little of this
    machine's CPU as possible (paho-mqtt took about 19 µs per point, as much as a third of what
    the ingestor itself spends). Messages count as sent when the broker's PUBACK arrives."""
    data = msgspec.msgpack.decode(Path(path).read_bytes(), type=list[tuple[str, bytes]])
    target = MqttTarget(url)
    sock = socket.create_connection((target.host, target.port), timeout=30)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    # CONNECT: protocol MQTT 3.1.1, clean session, no keepalive (the run is shorter than any timeout)
    sock.sendall(_packet(0x10, _utf8("MQTT") + b"\x04\x02\x00\x00" + _utf8(f"bench-pub-{os.getpid()}")))
    connack = sock.recv(4)
    if connack[:1] != b"\x20" or connack[3:4] != b"\x00":
        raise RuntimeError(f"broker refused the publisher: {connack!r}")
    packets = [_packet(0x32, _utf8(topic) + (i % 65535 + 1).to_bytes(2, "big") + payload)
               for i, (topic, payload) in enumerate(data)]
    sock.setblocking(False)
    sent = acked = 0
    pending = inbox = b""
    t0 = time.monotonic()
    while acked < len(packets):
        allowed = len(packets) if not rate_msgs else min(len(packets), int((time.monotonic() - t0) * rate_msgs) + 1)
        n = min(allowed, acked + window) - sent
        if n > 0 and not pending:
            pending = b"".join(packets[sent:sent + n])
            sent += n
        writable = [sock] if pending else []
        r, w, _ = select.select([sock], writable, [], 0.002 if rate_msgs else 0.05)
        if w:
            k = sock.send(pending)
            pending = pending[k:]
        if r:
            got = sock.recv(1 << 16)
            if not got:
                raise RuntimeError("the broker closed the publisher's connection")
            inbox += got
            k = len(inbox) // 4  # PUBACKs only: 0x40 0x02 <packet id>, four bytes each
            if inbox[0:4 * k:4] != b"\x40" * k or inbox[1:4 * k:4] != b"\x02" * k:
                raise RuntimeError(f"unexpected packet from the broker: {inbox[:16]!r}")
            acked += k
            inbox = inbox[4 * k:]
            if progress is not None:
                progress.value = acked
    done.put((time.monotonic() - t0, time.process_time()))
    sock.sendall(b"\xe0\x00")  # DISCONNECT
    sock.close()


# -- the ingestors ---------------------------------------------------------------------------------
class Ingestors:
    def __init__(self, broker: Mosquitto, influx: Influxd, db: str, partitions: int, tag: str, tmp: Path,
                 extra: tuple[str, ...] = (), prefix: str = PREFIX) -> None:
        self.ports = [free_port() for _ in range(partitions)]
        self.broker = broker
        self.client_ids = [f"bench-{tag}-{i}" for i in range(partitions)]
        exe = Path(sys.executable).with_name("minewatch")
        self.logs = [tmp / f"ingest-{tag}-{i}.log" for i in range(partitions)]
        self.procs = []
        for i in range(partitions):
            with open(self.logs[i], "wb") as log:
                self.procs.append(subprocess.Popen(
                    [str(exe), "ingest", "--mqtt-url", broker.url, "--influx-url", influx.url, "--influx-db", db,
                     "--topic-prefix", prefix, "--partition", f"{i}/{partitions}", "--client-id", self.client_ids[i],
                     "--spool-dir", str(tmp / f"spool-{tag}-{i}"), "--metrics-port", str(self.ports[i]),
                     "--robots", "*",  # the load names its robots freely (r01x3, latmf01)
                     "--log-level", "warning", *extra], stdout=log, stderr=subprocess.STDOUT))
        self.http = httpx.Client(timeout=10)
        deadline = time.monotonic() + 120
        while not all(self._up(p) for p in self.ports):
            if time.monotonic() > deadline or any(p.poll() is not None for p in self.procs):
                raise RuntimeError("ingest did not start:\n" + "\n".join(x.read_text()[-2000:] for x in self.logs))
            time.sleep(0.2)

    def _up(self, port: int) -> bool:
        try:
            return self._values(port, "minewatch_ingest_mqtt_connected")[0] == 1
        except (httpx.HTTPError, KeyError):
            return False

    def _values(self, port: int, *names: str) -> list[float]:
        # uncompressed: the exporter would otherwise gzip every scrape, on the ingestor's CPU
        text = self.http.get(f"http://127.0.0.1:{port}/metrics", headers={"Accept-Encoding": "identity"}).text
        out = []
        for name in names:
            m = re.search(rf"^{name}(?:{{[^}}]*}})? (\S+)$", text, re.M)
            if not m:
                raise KeyError(name)
            out.append(float(m.group(1)))
        return out

    def received(self) -> float:
        """Points received so far (all partitions)."""
        return sum(self._values(p, "minewatch_ingest_points_received_total")[0] for p in self.ports)

    def durable(self) -> float:
        return sum(sum(self._values(p, "minewatch_ingest_points_stored_total", "minewatch_ingest_points_spooled_total"))
                   for p in self.ports)

    def write_batches(self) -> float:
        """Mean points per write batch so far."""
        totals = [self._values(p, "minewatch_ingest_batch_points_sum", "minewatch_ingest_batch_points_count")
                  for p in self.ports]
        return sum(t[0] for t in totals) / max(1.0, sum(t[1] for t in totals))

    def stop(self) -> None:
        """Stop the processes and end their persistent sessions: a session left behind would go
        on queueing every later run's messages in the broker (and in its autosaved database)."""
        stop_all(self.procs)
        self.http.close()
        for cid in self.client_ids:
            end_session(self.broker, cid)


def stop_all(procs: list[subprocess.Popen[bytes]]) -> None:
    """SIGTERM to every process, then wait for each (a minute at most, then SIGKILL)."""
    for p in procs:
        p.send_signal(signal.SIGTERM)
    for p in procs:
        try:
            p.wait(60)
        except subprocess.TimeoutExpired:
            p.kill()


def end_session(broker: Mosquitto, client_id: str) -> None:
    """Discard ``client_id``'s session: connect with a clean start, no session expiry, leave."""
    c = paho_client(MqttTarget(broker.url), client_id)
    c.connect(broker.host, broker.port, 30, clean_start=True)
    c.loop_start()
    deadline = time.monotonic() + 10
    while not c.is_connected() and time.monotonic() < deadline:
        time.sleep(0.02)
    c.disconnect()
    c.loop_stop()


# -- one throughput run ----------------------------------------------------------------------------
def throughput(broker: Mosquitto, influx: Influxd, frames: list[Frame], payload_file: Path, n_msgs: int,
               partitions: int, run: int, tmp: Path) -> tuple[float, int, dict[str, float]]:
    """Points/s landed, points lost, and each process's CPU per point (µs) over the run."""
    db = f"ingest{run}"
    client = SyncInflux(influx.url, db, timeout=300)
    client.ensure_db()
    # the frames are a simulated shift sent as fast as the broker takes them: the ingestor goes by
    # their clock (--clock data), as for any mine replayed faster than real time; its own clock
    # would take every robot's for one running minutes ahead and correct it
    ing = Ingestors(broker, influx, db, partitions, f"t{run}", tmp, extra=("--clock", "data"))
    try:
        done: "mp.Queue[tuple[float, float]]" = mp.Queue()
        pub = mp.Process(target=publish_all, args=(broker.url, str(payload_file), 2000, 0.0, done))
        base = ing.durable()
        assert influx.proc is not None and broker.proc is not None
        servers = {"ingest": [p.pid for p in ing.procs], "influxd": [influx.proc.pid], "mosquitto": [broker.proc.pid]}
        cpu0 = {k: sum(cpu_s(p) for p in pids) for k, pids in servers.items()}
        t0 = time.monotonic()
        pub.start()
        target = base + len(frames)  # lines stored count telemetry points (plus a few alert/stat lines)
        while ing.durable() < target:  # a scrape every 0.25 s: the ingestor pays for each
            if time.monotonic() - t0 > 900:
                raise RuntimeError("ingest did not finish in 15 minutes")
            if pub.exitcode not in (None, 0):
                raise RuntimeError(f"the publisher failed (exit code {pub.exitcode})")
            time.sleep(0.25)
        elapsed = time.monotonic() - t0
        cpu = {k: (sum(cpu_s(p) for p in pids) - cpu0[k]) / len(frames) * 1e6 for k, pids in servers.items()}
        cpu["publisher"] = done.get(timeout=60)[1] / len(frames) * 1e6
        cpu["points_per_write"] = ing.write_batches()
        pub.join(60)
    finally:
        ing.stop()
    stored = client.count("telemetry", "seq")
    retire(client)
    client.close()
    return len(frames) / elapsed, len(frames) - stored, {k: round(v, 1) for k, v in cpu.items()}


def retire(client: SyncInflux) -> None:
    """Drop a measured phase's continuous queries (the ingestor sets them up: a re-aggregation of
    the last 15 minutes every 5 minutes), so that InfluxDB does not re-read the phase's points
    during later ones. The points stay: dropping the database instead blocked InfluxDB 1.8 for
    minutes when a continuous query was writing into it."""
    for name in DOWNSAMPLED.values():
        client.query(f'DROP CONTINUOUS QUERY "{name}" ON "{client.db}"', db="", post=True)


def ceiling(influx: Influxd, frames: list[Frame], writers: int, run: int) -> float:
    db = f"ceiling{run}"
    client = SyncInflux(influx.url, db, timeout=300)
    client.ensure_db()
    fmt = TelemetryLines()
    lines = [fmt.format(f) for f in frames]
    bodies = ["\n".join(lines[i:i + 5000]).encode() for i in range(0, len(lines), 5000)]
    with httpx.Client(timeout=120) as http:
        def post(body: bytes) -> None:
            r = http.post(f"{influx.url}/write", params={"db": db, "precision": "ns"}, content=body)
            r.raise_for_status()

        t0 = time.monotonic()
        with ThreadPoolExecutor(writers) as pool:
            list(pool.map(post, bodies))
        rate = len(lines) / (time.monotonic() - t0)
    client.close()
    return rate


def subscriber(broker: Mosquitto, payload_file: Path, n_msgs: int, run: int) -> tuple[float, float]:
    """The broker's ceiling for one receiver: a bare paho subscriber (its own network thread, QoS 1,
    the ingestor's Receive Maximum) that only counts, taking the same messages from the same
    publisher. Seconds from the first publish to the last message in, and its CPU µs a message."""
    got = [0]
    done = threading.Event()
    subscribed = threading.Event()

    def on_message(client: object, userdata: object, msg: object) -> None:
        got[0] += 1
        if got[0] >= n_msgs:
            done.set()

    c = paho_client(MqttTarget(broker.url), f"bench-sub-ceiling-{run}")
    c.on_message = on_message
    c.on_subscribe = lambda *a: subscribed.set()
    c.connect(broker.host, broker.port, 30, properties=connect_properties(None, 30_000))
    c.loop_start()
    try:
        c.subscribe(f"{PREFIX}/telemetry/#", 1)
        if not subscribed.wait(30):
            raise RuntimeError("the ceiling subscriber could not subscribe")
        q: "mp.Queue[tuple[float, float]]" = mp.Queue()
        pub = mp.Process(target=publish_all, args=(broker.url, str(payload_file), 2000, 0.0, q))
        cpu0, t0 = time.process_time(), time.monotonic()
        pub.start()
        if not done.wait(900):
            raise RuntimeError(f"the ceiling subscriber got {got[0]} of {n_msgs} messages")
        elapsed, cpu = time.monotonic() - t0, time.process_time() - cpu0
        pub.join(60)
    finally:
        c.disconnect()
        c.loop_stop()
    return elapsed, cpu / n_msgs * 1e6


# -- alert latency ---------------------------------------------------------------------------------
def methane_channels() -> list[tuple[str, str]]:
    return [(sid, c.name) for sid, sc in SCENARIOS.items() for c in sc.channels
            if c.quantity == "ch4" and any(lim.levels for lim in c.limits)]


# the fixed limits the alert robots pass and come back from: one rule a channel, levels, a restore
ALERT_DETECTORS = frozenset({"gas_limit", "temperature_limit", "machine_temperature_limit", "smoke_limit",
                             "water_level_limit"})


def alert_channels() -> list[tuple[str, str, list[float]]]:
    """Each ``(scenario, channel)`` with a rule of :data:`ALERT_DETECTORS` and the readings that take
    its alert through one cycle: past its most severe level as many times as that level's debounce
    asks (raised), then past the restore level as many times as the clear's (cleared)."""
    out = []
    for (sid, chan), rules in channel_rules(SCENARIOS, Overrides(None)).items():
        rule = next((r for r in rules if r.detector in ALERT_DETECTORS), None)
        if rule is None or chan == "fan":
            continue
        worst, restore = rule.levels[-1][1], rule.restore
        sign = 1.0 if rule.direction == "above" else -1.0
        past = worst + sign * max(0.2, 0.2 * abs(worst))
        back = restore - sign * max(0.2, 0.2 * abs(restore))
        if rule.direction == "above":
            back = max(back, 0.0)  # gases and levels read no less than nothing
        out.append((sid, chan, [past] * max(rule.n_raise) + [back] * rule.n_clear))
    return out


def latency(broker: Mosquitto, influx: Influxd, partitions: int, load_pps: float, seconds: float,
            base: list[Frame], per_message: int, tmp: Path, tag: str, warmup: float,
            copies: int | None = None) -> tuple[list[float], dict[str, float]]:
    """Latencies (ms) of alert events while ``load_pps`` points/s of other traffic flow, measured
    once the load has run ``warmup`` seconds, and what the load achieved while they were measured.

    The load's robots: with ``copies``, the fleet of a throughput run (``copies`` copies of
    ``base``'s robots, each as fast as the load needs), so that a share of that run's maximum is
    offered by the robots it was measured with; else as many copies of ``base`` as the load's
    frames fill (at the default mine's load, its 40 robots at about 1 frame/s). InfluxDB's cost of
    a point grows with the series it is spread over: the same 28,000 points/s from 1,960 robots
    instead of 120 took it 0.55 core instead of 0.43, which a 2-core machine running the whole
    stack at 80 % of its maximum does not have.

    The figures besides: ``published_points_per_s`` (the load the broker took while the alerts were
    measured: the publisher holds ``load_pps`` or falls behind), ``ingested_points_per_s`` (the
    points the ingestor took meanwhile), ``backlog_points`` (load points published and not yet
    taken by the ingestor when the last alert frame went out: a backlog the alerts wait behind) and
    ``catch_up_s`` (how long the ingestor then took to take them and the alert frames: the alerts
    are listened for until then, and 2 s more, so none is left out for being late). The load's
    first seconds are a transient of their own (robots new to the ingestor, a new database's first
    compactions), hence the warmup."""
    db = f"latency{tag}"
    client = SyncInflux(influx.url, db, timeout=300)
    client.ensure_db()
    # topics of its own: the alerts a phase leaves active (a second raise's clear is held for
    # minutes), retained on the broker, would be restored into the next phase's ingestor, and the
    # alert robots' raises there would only join them, with no event to time
    prefix = f"{PREFIX}/lat{tag}"
    topics = Topics(prefix)
    ing = Ingestors(broker, influx, db, partitions, f"l{tag}", tmp, prefix=prefix)
    lat: list[float] = []
    lock = threading.Lock()
    sub = paho_client(MqttTarget(broker.url), f"bench-sub-{tag}")

    def on_message(c, u, msg) -> None:
        now = time.time_ns()
        parsed = topics.parse_alert(msg.topic)
        if parsed and parsed[0] == "event":
            ev = json.loads(msg.payload)
            # the alert robots' raises and clears (a clear held as flapping is not sent at once)
            if ev["detector"] in ALERT_DETECTORS and ev.get("robot_id", "").startswith("lat") \
                    and ev["state"] in ("raised", "cleared") and not ev.get("evidence", {}).get("flapping"):
                with lock:
                    lat.append((now - ev["ts"]) / 1e6)

    sub.on_message = on_message
    sub.connect(broker.host, broker.port, 30)
    sub.subscribe(topics.all_alert_events, qos=1)
    sub.loop_start()
    load: mp.Process | None = None
    acked = mp.RawValue("q", 0)  # load messages the broker has acknowledged
    upto = [0]  # load points in the first k messages
    robots = 0
    lat_frames = 0
    try:
        n_load = int(load_pps * (seconds + warmup + 5))
        if n_load:
            load_frames = fleet(base, n_load, copies) if copies else replicate(base, n_load)
            groups = grouped(load_frames, per_message, topics)
            upto += itertools.accumulate(len(fs) for _, fs in groups)
            robots = len({f.robot_id for f in load_frames})
            rate = len(groups) / (n_load / load_pps)
            # each frame stamped with the time its message goes out: robots whose clocks are right
            msgs = encoded(stamped(groups, time.time_ns() + 2 * 10**9, rate))
            path = tmp / f"load-{tag}.msgpack"
            path.write_bytes(msgspec.msgpack.encode(msgs))
            load = mp.Process(target=publish_all, args=(broker.url, str(path), 2000, rate, mp.Queue(), acked))
            load.start()
            time.sleep(warmup)
        assert influx.proc is not None and broker.proc is not None
        pids = {"ingest": [p.pid for p in ing.procs], "influxd": [influx.proc.pid], "mosquitto": [broker.proc.pid]}
        if load is not None and load.pid is not None:
            pids["publisher"] = [load.pid]
        cpu0 = {k: sum(cpu_s(p) for p in v) for k, v in pids.items()}
        start = (time.monotonic(), upto[acked.value], ing.received())
        pub = paho_client(MqttTarget(broker.url), f"bench-alerts-{tag}")
        pub.connect(broker.host, broker.port, 30)
        pub.loop_start()
        cycle = [(sid, chan, v) for sid, chan, values in alert_channels() for v in values]
        seq = itertools.count()
        t_end = time.monotonic() + seconds
        # every alert channel raised and cleared, twice (a third raise within 10 min is flapping)
        for sid, chan, value in cycle * 2:
            if time.monotonic() > t_end:
                break
            f = Frame(robot_id=f"lat{sid}", scenario_id=sid, seq=next(seq), ts=time.time_ns(), readings={chan: value})
            pub.publish(topics.telemetry(sid, f.robot_id), encode_frame(f), qos=1)
            lat_frames += 1
            time.sleep(seconds / (2 * len(cycle)))
        end = (time.monotonic(), upto[acked.value], ing.received() - lat_frames)
        during = {f"{k}_cores": (sum(cpu_s(p) for p in v) - cpu0[k]) / (end[0] - start[0]) for k, v in pids.items()}
        during["points_per_write"] = ing.write_batches()
        # the alerts of every frame sent: wait until the ingestor has taken the load published so
        # far and the alert frames (a backlog delays them, and an alert missed is a sample hidden)
        deadline = end[0] + 300
        while ing.received() < end[1] + lat_frames and time.monotonic() < deadline:
            time.sleep(0.25)
        caught_up = time.monotonic() - end[0]
        time.sleep(2.0)
        pub.disconnect()
        pub.loop_stop()
    finally:
        if load is not None:
            load.terminate()
            load.join()
        sub.disconnect()
        sub.loop_stop()
        ing.stop()
    retire(client)
    client.close()
    took = end[0] - start[0]
    achieved = {"robots": robots, "published_points_per_s": (end[1] - start[1]) / took,
                "ingested_points_per_s": (end[2] - start[2]) / took,
                "backlog_points": end[1] - end[2], "catch_up_s": caught_up, "alert_frames": lat_frames, **during}
    return lat, achieved


def pct(xs: list[float], q: float) -> float:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(round(q / 100 * (len(xs) - 1))))]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--points", type=int, default=600_000, help="points per throughput run")
    ap.add_argument("--frames-per-message", type=int, default=20)
    ap.add_argument("--partitions", type=int, default=1,
                    help="ingest processes side by side (--partition I/N); mf01 and mf02 hash to the same one of 2")
    ap.add_argument("--ceiling-writers", type=int, default=2)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--latency-seconds", type=float, default=30.0)
    ap.add_argument("--latency-warmup", type=float, default=15.0, help="seconds of load before measuring latency")
    ap.add_argument("--no-latency", action="store_true")
    ap.add_argument("--seed", type=int, default=7)
    args = ap.parse_args()
    cores = os.cpu_count() or 1
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        broker = Mosquitto(tmp / "mosquitto")
        influx = Influxd(tmp / "influxd")
        broker.start()
        influx.start()
        try:
            base = simulated_frames(20_000, 40, args.seed)
            frames = replicate(base, args.points)
            readings_per_point = sum(len(f.readings) for f in frames) / len(frames)
            msgs = messages(frames, args.frames_per_message, Topics(PREFIX))
            payload_file = tmp / "payloads.msgpack"
            payload_file.write_bytes(msgspec.msgpack.encode(msgs))
            lat_cond = {"partitions": args.partitions, "cores": cores}
            latencies: list[tuple[str, float, tuple[list[float], dict[str, float]]]] = []
            if not args.no_latency:
                # the mine's steady state first, on a fresh InfluxDB (not one still compacting the
                # throughput runs' points)
                latencies.append(("default_mine", DEFAULT_MINE_FPS,
                                  latency(broker, influx, args.partitions, DEFAULT_MINE_FPS, args.latency_seconds,
                                          base, 1, tmp, "default", args.latency_warmup)))
            copies = -(-args.points // len(base))  # the throughput runs' fleet: replicate's copies of base
            rates, losses, ceilings, cpus, subs, sub_cpu = [], [], [], [], [], []
            for run in range(args.runs):
                settle(broker, influx)
                pps, lost, cpu = throughput(broker, influx, frames, payload_file, len(msgs), args.partitions, run, tmp)
                rates.append(pps)
                losses.append(lost)
                cpus.append(cpu)
                settle(broker, influx)
                ceilings.append(ceiling(influx, frames, args.ceiling_writers, run))
                settle(broker, influx)
                took, us = subscriber(broker, payload_file, len(msgs), run)
                subs.append(len(frames) / took)
                sub_cpu.append(us)
            cond = {"points": args.points, "frames_per_message": args.frames_per_message,
                    "partitions": args.partitions, "detectors": True, "runs": args.runs, "cores": cores,
                    "readings_per_point": round(readings_per_point, 2)}
            pps = statistics.median(rates)
            ceil = statistics.median(ceilings)
            cpu_med = {k: round(statistics.median(c[k] for c in cpus), 1) for k in cpus[0]}
            cond["points_per_write"] = round(cpu_med.pop("points_per_write"))
            emit("ingest_points_per_s", pps, "points/s", cpu_us_per_point=cpu_med,
                 each_run=[round(r) for r in rates], **cond)
            emit("ingest_readings_per_s", pps * readings_per_point, "readings/s", **cond)
            emit("ingest_lost_points", max(losses), "points", **cond)
            emit("influx_direct_points_per_s", ceil, "points/s", batch=5000, writers=args.ceiling_writers,
                 runs=args.runs, cores=cores, each_run=[round(c) for c in ceilings])
            emit("ingest_to_ceiling_ratio", pps / ceil, "ratio", **cond)
            sub = statistics.median(subs)
            emit("subscriber_points_per_s", sub, "points/s", client="paho, network thread, counting only",
                 cpu_us_per_message=round(statistics.median(sub_cpu), 1), messages=len(msgs),
                 each_run=[round(r) for r in subs], **cond)
            emit("ingest_to_subscriber_ceiling_ratio", pps / sub, "ratio", **cond)
            if not args.no_latency:
                settle(broker, influx)
                latencies.append(("80pct_max", 0.8 * pps,
                                  latency(broker, influx, args.partitions, 0.8 * pps, args.latency_seconds, base,
                                          args.frames_per_message, tmp, "80pct", args.latency_warmup, copies)))
            for load_name, load_pps, (lat, achieved) in latencies:
                lc = {"load": load_name, "load_points_per_s": round(load_pps),
                      **{k: round(v, 1) for k, v in achieved.items()}, "samples": len(lat),
                      "warmup_s": args.latency_warmup, **lat_cond}
                emit("alert_latency_p50_ms", pct(lat, 50) if lat else float("nan"), "ms", **lc)
                emit("alert_latency_p99_ms", pct(lat, 99) if lat else float("nan"), "ms", **lc)
                emit("alert_latency_max_ms", max(lat) if lat else float("nan"), "ms", **lc)
        finally:
            broker.stop()
            influx.stop()


if __name__ == "__main__":
    main()
