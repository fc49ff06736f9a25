"""A mining group through the centre: frames of many mines from each mine's mosquitto through its
forwarder, leaf node and ``MINE`` stream to the centre's ``GROUP`` and its ``minewatch group worker``
processes, beside one mosquitto and one ``minewatch ingest`` taking the same load in the same run.

The group path is ``minewatch group up``'s own (``group.up.GroupSystem``): the centre's three NATS
nodes (``GROUP`` sourcing every mine's ``MINE``, replicas 3), its alert broker and ``--workers``
workers over ``--partitions`` partitions; per mine a mosquitto, a leaf node (JetStream domain = the
mine id, stream ``MINE``) and the forwarder. Left out: each mine's own ingestor (on real hosts it
runs at the mine; here it would take the centre's CPU) and the simulated fleets (the bench publishes
the robots' frames itself). The workers run with ``--clock data`` (the throughput frames are minutes
of robot time sent in seconds; the live frames are stamped as they are sent, so either clock reads
them alike). One InfluxDB holds the centre's databases (``minewatch_<mine>``).

Scaling, stated: a group of ``--mines`` mines (default 100) of ``--robots`` robots each (default 2,
where a real mine has 35) at one frame a second per robot, carried by ``--sites`` real mines (default
4: each a mosquitto, a leaf node and a forwarder; a leaf node is one mine's JetStream domain, so
mines cannot honestly share one): site ``i`` carries the robots of every mine ``v`` with
``v % sites == i``. A hundred real mines' 300 processes would not fit this 2-core machine.

Throughput. ``--frames`` frames of simulated robots spread over the sites' brokers, published as
fast as they take them (one publisher per site, QoS 1). ``group_frames_per_s`` is frames over the
time from the first publish to ``GROUP`` holding them all and every partition's consumer having
nothing pending or unacknowledged (a worker acknowledges only what is durable);
``group_lost_frames`` is frames sent less frames found in the centre's databases afterwards.

Live load. Every robot, one frame a second, stamped with the time it is sent, to its site's broker.
Once the workers have caught up with it (``caught_up_after_s``) and ``--latency-warmup`` seconds
more: for ``--latency-seconds``, methane over and back under the limit on a mining face of each
site in turn; ``group_alert_latency_p99_ms`` is from the robot's publish on its mine's broker to the
alert event's arrival at a subscriber of the centre's alert broker (``minewatch/v1/mines/+/alerts/#``).
Then the catch-up: the first site's leaf node is restarted without its link to the centre for
``--outage-s`` (default 60) while its robots keep publishing (its ``MINE`` keeps filling), then
with the link again; ``group_catchup_s`` is from the restore until the centre's database holds
every live frame of that mine sent up to the restore (``held_back_frames``: what ``MINE`` held that
``GROUP`` lacked at the restore).

The single path: one mosquitto and one ``minewatch ingest`` (``--clock data`` too), the same
throughput frames one a message, the same live load and methane frames on the one broker
(``single_alert_latency_p99_ms``: publish to the alert on that broker), and for the catch-up the
ingestor stopped for ``--outage-s`` and started again (its persistent session queued the backlog):
``single_catchup_s`` from the restart until its database holds every live frame sent up to it.

    .venv/bin/python bench/group.py [--mines 100] [--robots 2] [--sites 4] [--workers 2] [--partitions 8]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing as mp
import os
import sys
import tempfile
import threading
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import msgspec

from group.stack import centre_db
from group.up import GroupSystem
from ingest_throughput import (FACES, PREFIX, Ingestors, emit, encoded, grouped, messages, methane_channels, pct,
                               publish_all, replicate, retire, settle, simulated_frames, stamped, stop_all, throughput)
from minewatch.group import GROUP_STREAM, MINE_STREAM, mine_prefix, mine_subjects
from minewatch.influx import SyncInflux
from minewatch.mqtt import paho_client
from minewatch.services import Influxd, Mosquitto
from minewatch.settings import MqttTarget
from minewatch.topics import Topics
from minewatch.wire import Frame, encode_frame
from tests.group.topo import stream_count

GROUP_TOPICS = Topics("minewatch/v1")  # the forwarders' default prefix


# -- NATS at the centre ------------------------------------------------------------------------------
def _nats(urls: list[str], fn: Callable[..., Awaitable[object]]) -> object:
    import nats

    async def go() -> object:
        nc = await nats.connect(urls, connect_timeout=5)
        try:
            return await fn(nc.jetstream(timeout=10))
        finally:
            await nc.close()

    return asyncio.run(go())


def drained(urls: list[str], partitions: int) -> tuple[bool, int, int]:
    """Whether every partition's consumer has nothing pending or unacknowledged, ``GROUP``'s
    message count, and the messages pending or unacknowledged over all partitions."""

    async def go(js) -> tuple[bool, int, int]:
        info = await js.stream_info(GROUP_STREAM)
        backlog, made = 0, True
        for p in range(partitions):
            try:
                ci = await js.consumer_info(GROUP_STREAM, f"part-{p}")
            except Exception:  # noqa: BLE001 - not made yet: no worker has taken it
                made = False
                continue
            backlog += ci.num_pending + ci.num_ack_pending
        return made and backlog == 0, info.state.messages, backlog

    try:
        return _nats(urls, go)  # type: ignore[return-value]
    except Exception:  # noqa: BLE001 - a stream leader being elected: not drained
        return False, -1, -1


def group_count(urls: list[str], mine: str) -> int:
    """How many of ``mine``'s messages ``GROUP`` holds."""

    async def go(js) -> int:
        info = await js.stream_info(GROUP_STREAM, subjects_filter=mine_subjects(mine))
        return sum((info.state.subjects or {}).values())

    return _nats(urls, go)  # type: ignore[return-value]


def owners(urls: list[str], partitions: int) -> dict[int, str]:
    async def go(js) -> dict[int, str]:
        try:
            kv = await js.key_value("group-owners")
        except Exception:  # noqa: BLE001 - no bucket yet
            return {}
        out = {}
        for p in range(partitions):
            try:
                out[p] = ((await kv.get(f"part.{p}")).value or b"").decode()
            except Exception:  # noqa: BLE001 - free
                pass
        return out

    return _nats(urls, go)  # type: ignore[return-value]


def start_group(tmp: Path, args: argparse.Namespace) -> GroupSystem:
    system = GroupSystem(tmp / "group", args.sites, partitions=args.partitions, workers=args.workers, simulate=False,
                         mine_ingest=False, worker_args=["--clock", "data", "--log-level", "warning"],
                         log=lambda line: None)
    try:
        system.start()
        deadline = time.monotonic() + 180
        while len(owners(system.centre.urls, args.partitions)) < args.partitions:
            dead = system.check()
            if dead or time.monotonic() > deadline:
                raise RuntimeError(f"the group did not start: {dead or 'partitions not all held in 3 minutes'}")
            time.sleep(0.5)
    except BaseException:
        system.stop()
        raise
    return system


def stored(influx_url: str, db: str, where: str = "") -> int:
    client = SyncInflux(influx_url, db, timeout=300)
    try:
        return client.count("telemetry", "seq", where)
    except Exception:  # noqa: BLE001 - nothing stored yet: no database
        return 0
    finally:
        client.close()


def publish_sites(msgs_of: dict[str, list[tuple[str, bytes]]], url_of: Callable[[str], str], tmp: Path, tag: str,
                  window: int, rate_of: Callable[[str], float]) -> list[mp.Process]:
    """One publisher process per site: its messages to its broker."""
    procs = []
    for site, msgs in msgs_of.items():
        path = tmp / f"{tag}-{site}.msgpack"
        path.write_bytes(msgspec.msgpack.encode(msgs))
        p = mp.Process(target=publish_all, args=(url_of(site), str(path), window, rate_of(site), mp.Queue()))
        p.start()
        procs.append(p)
    return procs


def group_throughput(system: GroupSystem, frames: list[Frame], args: argparse.Namespace, tmp: Path,
                     ) -> tuple[float, int]:
    robots = sorted({f.robot_id for f in frames})
    site_of = {r: system.mines[i % len(system.mines)] for i, r in enumerate(robots)}
    msgs_of = {m: messages([f for f in frames if site_of[f.robot_id] == m], 1, GROUP_TOPICS) for m in system.mines}
    urls = system.centre.urls
    before = max(0, drained(urls, args.partitions)[1])
    t0 = time.monotonic()
    pubs = publish_sites(msgs_of, lambda m: system.brokers[m].url, tmp, "throughput",
                         max(100, 2000 // len(system.mines)), lambda m: 0.0)
    while True:
        ok, n, _ = drained(urls, args.partitions)
        if ok and n >= before + len(frames):
            break
        if time.monotonic() - t0 > 900:
            raise RuntimeError("the group did not finish in 15 minutes")
        if any(p.exitcode not in (None, 0) for p in pubs) or system.check():
            raise RuntimeError(f"the group path failed: {system.check() or 'a publisher failed'}")
        time.sleep(0.25)
    elapsed = time.monotonic() - t0
    for p in pubs:
        p.join(60)
    kept = sum(stored(system.influx.url, centre_db(m)) for m in system.mines)
    return len(frames) / elapsed, len(frames) - kept


# -- the live load: alert latency and catch-up, either path --------------------------------------------
class Live:
    """Every robot one frame a second to its site's broker, stamped with its send time; methane
    frames for the alert latency; one site cut off and restored for the catch-up.

    ``sites``: site -> (broker URL, topics); ``robots_of``: site -> its robots; ``cut`` and
    ``restore`` the outage; ``held_back`` what the outage held back; ``stored_upto(ts)`` how many
    of the cut site's live frames stamped up to ``ts`` are stored; ``backlog`` the path's backlog
    (frames) while it catches up with the load."""

    def __init__(self, sites: dict[str, tuple[str, Topics]], robots_of: dict[str, list[str]], base: list[Frame],
                 seconds: float, tmp: Path, tag: str) -> None:
        self.sites, self.tmp, self.tag = sites, tmp, tag
        self.start_ns = time.time_ns() + 2 * 10**9
        self.msgs_of: dict[str, list[tuple[str, bytes]]] = {}
        self.ts_of: dict[str, list[int]] = {}
        self.rate_of = {s: float(len(r)) for s, r in robots_of.items()}
        # each live robot replays one simulated robot's frames (its scenario and channels throughout)
        runs: dict[str, list[Frame]] = {}
        for f in base:
            runs.setdefault(f.robot_id, []).append(f)
        sims = [runs[r] for r in sorted(runs)]
        k = 0
        for site, robots in robots_of.items():
            frames = []
            own = [sims[(k + i) % len(sims)] for i in range(len(robots))]
            k += len(robots)
            for t in range(int(seconds)):
                for r, sim in zip(robots, own):
                    frames.append(msgspec.structs.replace(sim[t % len(sim)], robot_id=r, seq=t))
            groups = stamped(grouped(frames, 1, sites[site][1]), self.start_ns, self.rate_of[site])
            self.ts_of[site] = sorted(f.ts for _, fs in groups for f in fs)
            self.msgs_of[site] = encoded(groups)
        self.pubs: list[mp.Process] = []

    def start(self) -> None:
        self.pubs = publish_sites(self.msgs_of, lambda s: self.sites[s][0], self.tmp, f"live-{self.tag}", 2000,
                                  lambda s: self.rate_of[s])

    def stop(self) -> None:
        for p in self.pubs:
            p.terminate()
            p.join()

    def latency(self, alert_url: str, alert_topic: str, is_event: Callable[[str], bool], seconds: float,
                alerts_per_s: float) -> list[float]:
        """Latencies (ms) from a methane frame's publish on its site's broker to its alert event."""
        lat: list[float] = []
        lock = threading.Lock()
        target = MqttTarget(alert_url)
        sub = paho_client(target, f"bench-alerts-sub-{self.tag}")

        def on_message(c, u, msg) -> None:
            now = time.time_ns()
            if not is_event(msg.topic):
                return
            ev = json.loads(msg.payload)
            if ev.get("detector") == "gas_limit" and ev.get("robot_id", "").startswith("lat"):
                with lock:
                    lat.append((now - ev["ts"]) / 1e6)

        sub.on_message = on_message
        sub.connect(target.host, target.port, 30)
        sub.subscribe(alert_topic, qos=1)
        sub.loop_start()
        pubs = {}
        for site, (url, _) in self.sites.items():
            t = MqttTarget(url)
            pubs[site] = paho_client(t, f"bench-lat-{self.tag}-{site}")
            pubs[site].connect(t.host, t.port, 30)
            pubs[site].loop_start()
        try:
            combos = [(sid, ch) for sid, ch in methane_channels() if sid in FACES]
            # each (site, face): high then low, twice (a third raise within 10 min is flapping)
            steps = [(site, sc, v) for _ in range(2) for site in self.sites for sc in combos for v in (1.8, 0.1)]
            gap = max(seconds / len(steps), 1.0 / alerts_per_s)
            t_end = time.monotonic() + seconds
            for seq, (site, (sid, chan), value) in enumerate(steps):
                if time.monotonic() > t_end:
                    break
                f = Frame(robot_id=f"lat{sid}", scenario_id=sid, seq=seq, ts=time.time_ns(), readings={chan: value})
                pubs[site].publish(self.sites[site][1].telemetry(sid, f.robot_id), encode_frame(f), qos=1)
                time.sleep(gap)
            time.sleep(2.0)
        finally:
            for c in pubs.values():
                c.disconnect()
                c.loop_stop()
            sub.disconnect()
            sub.loop_stop()
        return lat

    def catchup(self, site: str, outage_s: float, cut: Callable[[], object], restore: Callable[[], object],
                held_back: Callable[[], int], stored_upto: Callable[[int], int], timeout: float,
                state: Callable[[], str] = lambda: "") -> tuple[float, int]:
        """Seconds from the restore until every live frame of ``site`` sent up to it is stored,
        and how many frames the outage held back."""
        cut()
        time.sleep(outage_s)
        held = held_back()
        t_restore, restore_ns = time.monotonic(), time.time_ns()
        restore()
        want = sum(1 for ts in self.ts_of[site] if ts <= restore_ns)
        while stored_upto(restore_ns) < want:
            if time.monotonic() - t_restore > timeout:
                raise RuntimeError(f"{site} did not catch up in {timeout:.0f} s "
                                   f"({stored_upto(restore_ns)} of {want} frames stored) {state()}")
            time.sleep(0.2)
        return time.monotonic() - t_restore, held


def live_seconds(args: argparse.Namespace) -> float:
    """How long the live load must be able to run: warm-up, catching up, latency, outage, catch-up."""
    return 120 + args.latency_warmup + args.latency_seconds + args.outage_s + catchup_timeout(args) + 10


def catchup_timeout(args: argparse.Namespace) -> float:
    return 3 * args.outage_s + 60


def live_robots(sites: list[str], args: argparse.Namespace) -> dict[str, list[str]]:
    """Site i carries the robots of every mine v with v % len(sites) == i."""
    out: dict[str, list[str]] = {s: [] for s in sites}
    for v in range(args.mines):
        for j in range(args.robots):
            out[sites[v % len(sites)]].append(f"lv{v:03d}r{j:02d}")
    return out


def wait_backlog(backlog: Callable[[], int], under: int, limit_s: float = 120.0) -> float:
    t0 = time.monotonic()
    time.sleep(1.0)
    while time.monotonic() - t0 < limit_s and backlog() > under:
        time.sleep(0.5)
    return round(time.monotonic() - t0, 1)


def live_where(ts: int) -> str:
    return f"WHERE \"robot\" =~ /^lv/ AND time <= {ts}"


def group_live(system: GroupSystem, base: list[Frame], args: argparse.Namespace, tmp: Path,
               ) -> tuple[list[float], float, int, float]:
    """Alert latencies (ms), catch-up seconds, frames held back, and how long the workers took to
    catch up with the live load."""
    urls = system.centre.urls
    sites = {m: (system.brokers[m].url, GROUP_TOPICS) for m in system.mines}
    live = Live(sites, live_robots(system.mines, args), base, live_seconds(args), tmp, "g")
    cut_site = system.mines[0]
    leaf = system.leaves[cut_site]
    live.start()
    try:
        caught_up = wait_backlog(lambda: drained(urls, args.partitions)[2], max(10, args.mines * args.robots))
        time.sleep(args.latency_warmup)

        def is_event(topic: str) -> bool:
            parts = topic.split("/")
            if len(parts) < 4:
                return False
            parsed = Topics(mine_prefix(parts[3])).parse_alert(topic)
            return parsed is not None and parsed[0] == "event"

        lat = live.latency(system.alerts.url, f"{GROUP_TOPICS.prefix}/mines/+/alerts/#", is_event,
                           args.latency_seconds, args.alerts_per_s)
        catchup_s, held = live.catchup(
            cut_site, args.outage_s, leaf.cut, leaf.join,
            lambda: stream_count(leaf.url, MINE_STREAM) - group_count(urls, cut_site),
            lambda ts: stored(system.influx.url, centre_db(cut_site), live_where(ts)), catchup_timeout(args),
            lambda: f"(MINE {stream_count(leaf.url, MINE_STREAM)}, GROUP {group_count(urls, cut_site)}, "
                    f"consumers' backlog {drained(urls, args.partitions)[2]})")
    finally:
        live.stop()
    return lat, catchup_s, held, caught_up


def single_live(broker: Mosquitto, influx: Influxd, base: list[Frame], args: argparse.Namespace, tmp: Path,
                ) -> tuple[list[float], float, int]:
    """The same on one mosquitto and one ingestor: latencies, catch-up seconds, frames held back."""
    db = "single_live"
    client = SyncInflux(influx.url, db, timeout=300)
    client.ensure_db()
    topics = Topics(PREFIX)
    live = Live({"single": (broker.url, topics)}, live_robots(["single"], args), base, live_seconds(args), tmp, "s")
    extra = ("--clock", "data")
    ing = [Ingestors(broker, influx, db, 1, "live", tmp, extra=extra)]

    def cut() -> None:
        stop_all(ing[0].procs)  # its persistent session stays: the broker queues the backlog
        ing[0].http.close()
        marks["cut_ns"] = time.time_ns()

    def restore() -> None:
        ing[0] = Ingestors(broker, influx, db, 1, "live", tmp, extra=extra)

    marks: dict[str, int] = {}
    live.start()
    try:
        time.sleep(args.latency_warmup)

        def is_event(topic: str) -> bool:
            parsed = topics.parse_alert(topic)
            return parsed is not None and parsed[0] == "event"

        lat = live.latency(broker.url, topics.all_alert_events, is_event, args.latency_seconds, args.alerts_per_s)
        catchup_s, held = live.catchup(
            "single", args.outage_s, cut, restore,
            lambda: sum(1 for ts in live.ts_of["single"] if marks["cut_ns"] < ts <= time.time_ns()),
            lambda ts: stored(influx.url, db, live_where(ts)), catchup_timeout(args))
    finally:
        live.stop()
        ing[0].stop()
    retire(client)
    client.close()
    return lat, catchup_s, held


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--mines", type=int, default=100, help="simulated mines")
    ap.add_argument("--robots", type=int, default=2, help="robots per mine (a real mine: 35)")
    ap.add_argument("--sites", type=int, default=4, help="real mines (broker, leaf node, forwarder) carrying them")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--partitions", type=int, default=8)
    ap.add_argument("--frames", type=int, default=20_000, help="frames per throughput run")
    ap.add_argument("--latency-seconds", type=float, default=20.0)
    ap.add_argument("--latency-warmup", type=float, default=10.0)
    ap.add_argument("--alerts-per-s", type=float, default=4.0)
    ap.add_argument("--outage-s", type=float, default=60.0, help="how long one mine's link is cut")
    ap.add_argument("--seed", type=int, default=7)
    args = ap.parse_args()
    for name in ("mines", "robots", "sites", "workers", "partitions", "frames"):
        if getattr(args, name) < 1:
            ap.error(f"--{name} must be at least 1")
    if args.sites > args.mines:
        ap.error("--sites cannot exceed --mines (each site carries at least one mine)")
    cores = os.cpu_count() or 1
    per_robot = max(1, args.frames // (args.mines * args.robots))
    base = simulated_frames(min(20_000, 40 * per_robot), 40, args.seed)
    frames = replicate(base, args.frames)
    load = args.mines * args.robots
    cond = {"mines": args.mines, "robots_per_mine": args.robots, "sites": args.sites, "workers": args.workers,
            "partitions": args.partitions, "frames": args.frames, "cores": cores, "outage_s": args.outage_s,
            "scaling": f"{args.mines} mines of {args.robots} robots at 1 frame/s (a real mine has 35 robots) "
                       f"carried by {args.sites} real mines (each a mosquitto, a leaf node with MINE, a forwarder; "
                       f"no mine ingestors): {load} frames/s of live load on {cores} cores"}
    group = {**cond, "path": "mines' mosquittos -> forwarders -> leaf nodes (MINE) -> 3-node centre (GROUP, R3) -> "
                             "group workers (--clock data) -> InfluxDB; alerts on the centre's broker"}
    single = {**cond, "path": "one mosquitto + one minewatch ingest (--clock data), the same frames, one a message"}
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        broker = Mosquitto(tmp / "mosquitto")
        influx = Influxd(tmp / "influxd")
        for s in (broker, influx):
            s.start()
        try:
            payload = tmp / "single.msgpack"
            msgs = messages(frames, 1, Topics(PREFIX))
            payload.write_bytes(msgspec.msgpack.encode(msgs))
            s_fps, s_lost, _ = throughput(broker, influx, frames, payload, len(msgs), 1, 0, tmp)
            settle(broker, influx)
            lat_s, cu_s, held_s = single_live(broker, influx, base, args, tmp)
        finally:
            for s in (influx, broker):
                s.stop()
        system = start_group(tmp, args)
        try:
            g_fps, g_lost = group_throughput(system, frames, args, tmp)
            settle(system.influx)
            lat_g, cu_g, held_g, caught_up = group_live(system, base, args, tmp)
        finally:
            system.stop()
    emit("group_frames_per_s", g_fps, "frames/s", **group)
    emit("group_lost_frames", g_lost, "frames", **group)
    emit("group_alert_latency_p99_ms", pct(lat_g, 99) if lat_g else float("nan"), "ms", samples=len(lat_g),
         p50_ms=round(pct(lat_g, 50), 1) if lat_g else None, warmup_s=args.latency_warmup,
         caught_up_after_s=caught_up, **group)
    emit("group_catchup_s", cu_g, "s", held_back_frames=held_g, cut_mine=system.mines[0], **group)
    emit("single_frames_per_s", s_fps, "frames/s", **single)
    emit("single_lost_frames", s_lost, "frames", **single)
    emit("single_alert_latency_p99_ms", pct(lat_s, 99) if lat_s else float("nan"), "ms", samples=len(lat_s),
         p50_ms=round(pct(lat_s, 50), 1) if lat_s else None, warmup_s=args.latency_warmup, **single)
    emit("single_catchup_s", cu_s, "s", held_back_frames=held_s, **single)


if __name__ == "__main__":
    main()
