"""The ingestor: MQTT in, InfluxDB out, detectors in between, alerts back out.

One asyncio loop runs the pipeline; paho's network thread only fills the inbox (see
:mod:`ingest.consumer`). A batch is cut when it holds ``batch_size`` points, when ``batch_ms``
has passed since its first message, or at once when no write is in flight and nothing else is
waiting (so a quiet mine gets its alerts without waiting for a timer, and a busy one gets large
writes). For each batch, in order:

1. decode and check every message (dead letters go out at once); place each frame in time
   (:mod:`ingest.timing`: a robot clock that is off is corrected, and a frame is live, late or
   history) and name it (:mod:`ingest.seqtrack`: new, late, a repeat, or a restarted robot);
2. run the detectors over every frame not seen before, and publish the alert and incident
   events: live and late frames through the live detectors, history through detectors of its own
   whose alerts are only stored;
3. hand the lines (telemetry, derived, alert and incident events, robot status) to the writer,
4. acknowledge the batch's messages once the writer says they are durable.

Up to ``max_inflight`` batches are being written at a time; acknowledgements follow the order
the messages came in.

At start the ingestor restores the active alerts and incidents (retained on the broker), runs the
last ``warmup_s`` of stored readings through the detectors (so rate of rise, stuck sensors, change
and drift work from the first live frame, and an alert whose condition ended while it was down is
cleared, one still there is not raised twice), and publishes what that changed. Every
``watch_s`` it publishes, retained, whether the detectors are watching each of its scenarios.
"""

from __future__ import annotations

import asyncio
import logging
import operator
import os
import signal
import socket
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from pydantic import ValidationError

import msgspec

from minewatch.catalogue import SCENARIOS
from minewatch.influx import InfluxClient
from minewatch.schema import (AlertAck, AlertEvent, AlertKind, AlertState, AlertTiming, IncidentAck, IncidentEvent,
                              RobotStatus, Severity, WatchStatus)
from minewatch.settings import Settings
from minewatch.runtime import tune_gc
from minewatch.storage import RAW_DAYS, maintain_storage
from minewatch.stored import SliceReader
from minewatch.wire import Frame, FrameError, FramesOnTopic, decode_frames

from ingest.alerts import publish_event, publish_incident, read_active
from ingest.consumer import Consumer, Incoming
from ingest.deadletter import DeadLetter
from ingest.lines import CHANNEL_RE, RESERVED_FIELDS, TelemetryLines, stats_line, status_line
from ingest.metrics import Metrics
from ingest.partition import Partition
from minewatch.registry import RobotRegistry
from ingest.seqtrack import DUPLICATE, LATE, REPEATS, SeqTracker
from ingest.spool import Spool, SpoolFull
from ingest.timing import HISTORY, RobotClocks
from ingest.writer import Writer

__all__ = ["IngestOptions", "Ingestor", "run"]

log = logging.getLogger("minewatch.ingest")
T = TypeVar("T")

_readings, _seq, _ts = operator.attrgetter("readings"), operator.attrgetter("seq"), operator.attrgetter("ts")
_NS = 1_000_000_000


# The channels the detectors watch, per scenario: the catalogue's. Other reading names a robot
# sends are stored, never watched: a limit, a silence or a change of a quantity nobody has defined
# is no alarm an operator can act on, and a flood of made-up names must not become a flood of alerts.
_WATCHED = {sid: frozenset(c.name for c in sc.channels) for sid, sc in SCENARIOS.items()}


def _catalogue_only(frames: list[Frame]) -> list[Frame]:
    """``frames`` with only the catalogue's channels of their scenario in their readings (the same
    list when every frame already has only those, as a robot's frames do)."""
    watched = _WATCHED
    if all(f.readings.keys() <= watched.get(f.scenario_id, f.readings.keys()) for f in frames):
        return frames
    out = []
    for f in frames:
        w = watched.get(f.scenario_id)
        if w is None or f.readings.keys() <= w:
            out.append(f)
        else:
            out.append(msgspec.structs.replace(f, readings={k: v for k, v in f.readings.items() if k in w}))
    return out


def _iso(ns: int) -> str:
    """A time for a person (UTC, to the second), whatever the year."""
    try:
        return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(ns // _NS))
    except (OverflowError, OSError, ValueError):
        return f"{ns} ns"
WATCH_SILENCE_S = 60.0  # [P] no frame from a scenario for two 30 s polling cycles (domain §3): not watched


@dataclass
class IngestOptions:
    """How one ingest process runs (the ``minewatch ingest`` flags)."""

    partition: Partition = field(default_factory=Partition)
    client_id: str | None = None          # default minewatch-ingest-<I>of<N>
    spool_dir: Path | None = None         # default <data_dir>/spool/<client_id>
    spool_max_bytes: int = 2 << 30
    metrics_port: int | None = None       # default settings.metrics_port; 0 = off
    metrics_host: str = "127.0.0.1"
    batch_size: int = 10_000              # points (against 5,000: about 8 % more throughput)
    batch_ms: float = 100.0
    # The detectors run over what has been taken at once when nothing else is waiting, else once
    # ``detect_ms`` has passed since its first frame or ``detect_frames`` frames wait: a busy
    # mine's frames go through them in hundreds (a call has a fixed cost of about half a
    # millisecond), and an alert waits at most ``detect_ms`` for it.
    detect_ms: float = 10.0
    detect_frames: int = 1000
    # Messages are taken from the inbox in steps of about this many points (some milliseconds of
    # work), with a turn of the event loop between steps for the writes and acknowledgements.
    step_points: int = 500
    max_inflight: int = 2                 # batches being written at once
    receive_maximum: int | None = None    # default enough for max_inflight + 1 full batches
    session_expiry_s: int = 7 * 24 * 3600
    detectors: bool = True
    overrides: dict[str, float] | None = None
    repeat_hold_s: float = 120.0          # the clear of an alert raised twice within 10 min waits this long
    late_after_s: float = 30.0            # older robot time than this is marked late (domain §3: 30 s cycle)
    # [P] older than this (by a clock-corrected robot time) is bulk history: stored and detected by
    # detectors of its own, never on the live board. A robot's backlog of a shorter hole is late data.
    live_horizon_s: float = 3600.0
    clock_tolerance_s: float = 5.0        # [P] a robot clock further ahead than this is corrected
    clock_settle_s: float = 30.0          # [P] a robot this steadily behind for this long has its clock corrected
    warmup_s: float = 600.0               # at start, the detectors warm up on this much stored telemetry; 0 = off
    watch_s: float = 5.0                  # how often watch/{scenario} is published
    # "wall": the ingestor's clock is its own (live). "data": its clock is the newest event time it
    # has seen, for running a recorded or simulated mine through the live path faster than real
    # time (benchmarks, tests, demos at --speed N): no robot clock is corrected, and lateness, the
    # live horizon and the dead-robot check go by data time.
    clock: str = "wall"
    seq_restore_s: float = 86_400.0       # at start, each robot's last stored seq of this long; 0 = off
    tick_s: float = 1.0
    stats_interval_s: float = 10.0
    restore_alerts: bool = True
    # What a client may send (anything beyond goes to the dead-letter topic with its reason):
    robots: str = "fleet"                 # the fleet registry (minewatch.registry): frames of other robots are refused
    max_robots: int = 10_000              # robots taken at most, whatever the registry's patterns allow
    max_message_bytes: int = 4 << 20      # too_large
    max_frames: int = 10_000              # frames in one message: too_many_frames
    max_channels: int = 1024              # reading names ever taken (each is an InfluxDB field): too_many_channels
    max_new_channels: int = 16            # reading names not known before, in one message: too_many_channels
    # ts_out_of_range: a frame (status, acknowledgement) older than the raw retention (InfluxDB would
    # refuse it, and its alerts with it) or further ahead than ``max_clock_ahead_s`` by the robot's own
    # clock (a clock up to that far ahead is corrected, with a robot_clock alert); what is stored is
    # never more than ``max_ahead_s`` ahead of the ingestor's clock (no shard out in the future)
    max_age_s: float = (RAW_DAYS - 1) * 86_400.0 - 3_600.0  # less a day: a corrected clock moves frames back
    max_clock_ahead_s: float = 86_400.0
    max_ahead_s: float = 300.0
    max_packet_bytes: int = 16 << 20      # the broker's packet limit when it does not say its own (MQTT 5 CONNACK)
    stop_timeout_s: float = 5.0           # SIGTERM to exit, at most (a watchdog ends the process 3 s later)

    def resolved_client_id(self) -> str:
        return self.client_id or f"minewatch-ingest-{self.partition.tag}"


@dataclass
class _Batch:
    messages: list[Incoming] = field(default_factory=list)
    frames: list[Frame] = field(default_factory=list)    # for the detectors (seq duplicates left out)
    late: list[bool] = field(default_factory=list)
    arrived: list[int] = field(default_factory=list)     # per frame: when its message arrived
    history: list[Frame] = field(default_factory=list)   # bulk history, for the history detectors
    history_done: int = 0
    events: list[AlertEvent] = field(default_factory=list)  # events from outside the detector pass
    points_frames: list[Frame] = field(default_factory=list)  # for storage (all), formatted at the cut
    points_late: list[bool] = field(default_factory=list)
    points_robot_ts: dict[int, int] = field(default_factory=dict)  # index in points_frames -> robot's own ts
    lines: list[str] = field(default_factory=list)
    statuses: list[tuple[RobotStatus, int | None]] = field(default_factory=list)  # and when seen
    acks: list[tuple[AlertAck | IncidentAck, Incoming]] = field(default_factory=list)
    detected: int = 0        # frames, statuses and acks already through the detectors
    statuses_done: int = 0
    acks_done: int = 0
    points: int = 0
    readings: int = 0
    newest_ts: int = 0
    first_at: float = 0.0
    undetected_at: float = 0.0  # when the oldest frame, status or ack not yet detected was taken


@dataclass
class _Watch:
    """What the detectors did with one scenario's frames since the last watch status."""

    frames: int = 0
    detected: int = 0
    skipped: int = 0       # repeats of readings already checked
    failed: int = 0        # frames the detectors raised on
    last_ts: int | None = None
    last_arrival: int | None = None
    published: str = ""    # the state last published


async def _on_daemon_thread(fn: Callable[..., T], *args: Any) -> T:
    """``fn(*args)`` on a daemon thread of its own: unlike the loop's executor, a call still running
    when the process stops (a broker that does not answer) neither delays the exit nor is waited for."""
    loop = asyncio.get_running_loop()
    fut: asyncio.Future[T] = loop.create_future()

    def settle(ok: bool, value: Any) -> None:
        if not fut.done():
            fut.set_result(value) if ok else fut.set_exception(value)

    def main() -> None:
        try:
            out: tuple[bool, Any] = (True, fn(*args))
        except BaseException as exc:  # noqa: BLE001 - handed to the awaiting coroutine
            out = (False, exc)
        try:
            loop.call_soon_threadsafe(settle, *out)
        except RuntimeError:  # the loop is closed: nobody waits any more
            pass

    threading.Thread(target=main, name=getattr(fn, "__name__", "call"), daemon=True).start()
    return await fut


def _load_suite(opts: IngestOptions, timing: AlertTiming = AlertTiming.live) -> Any:
    if not opts.detectors:
        return None
    try:
        from detectors import DetectorSuite  # type: ignore[attr-defined]
    except ImportError as exc:
        log.warning("detectors unavailable (%s): storing telemetry without detection", exc)
        return None
    suite = DetectorSuite(SCENARIOS, overrides=opts.overrides, timing=timing, repeat_hold_s=opts.repeat_hold_s)
    if timing is AlertTiming.live:
        _warm_up(DetectorSuite)
    return suite


def _warm_up(suite_cls: Any) -> None:
    """Run a throwaway suite over one normal frame of every scenario, so the kernels are compiled
    (or loaded from Numba's cache) before the first real batch, not during it."""
    t0 = time.monotonic()
    scratch = suite_cls(SCENARIOS)
    now = time.time_ns()
    frames = [Frame(robot_id="warmup", scenario_id=sid, seq=0, ts=now,
                    readings={c.name: sum(c.normal) / 2 for c in sc.channels}) for sid, sc in SCENARIOS.items()]
    scratch.process(frames, late=[False] * len(frames))
    scratch.tick(now)
    log.info("detectors ready in %.1f s", time.monotonic() - t0)


class Ingestor:
    """One ingest process. ``await run()`` until :meth:`stop` (or SIGTERM/SIGINT via :func:`run`)."""

    def __init__(self, settings: Settings, options: IngestOptions | None = None) -> None:
        self.settings = settings
        self.opts = opts = options or IngestOptions()
        self.partition = opts.partition
        self.topics = settings.topics
        self.client_id = opts.resolved_client_id()
        self.metrics = Metrics(str(self.partition))
        self.seq = SeqTracker()
        self.history_seq = SeqTracker()
        if opts.clock not in ("wall", "data"):
            raise ValueError(f"clock must be wall or data, not {opts.clock!r}")
        self.data_clock = opts.clock == "data"
        self._data_now = 0
        self.clocks = RobotClocks(opts.clock_tolerance_s, opts.late_after_s, opts.live_horizon_s,
                                  settle_s=opts.clock_settle_s, correct=not self.data_clock)
        self.fmt = TelemetryLines()
        self.suite = _load_suite(opts)
        self._history_suite: Any = None  # made when the first history frame comes
        self._scenarios = [s for s in SCENARIOS if self.partition.owns(s)]
        self._watch = {sid: _Watch() for sid in self._scenarios}
        self._next_watch = 0.0
        self._clock_alerts: set[str] = set()  # robots with a restored robot_clock alert not yet checked
        self._startup_events: list[AlertEvent] = []
        self._startup_incidents: list[IncidentEvent] = []
        self.spool = Spool(opts.spool_dir or settings.data_dir / "spool" / self.client_id, opts.spool_max_bytes)
        self.metrics.spool_limit.set(opts.spool_max_bytes)
        self.influx = InfluxClient(settings.influx_url, settings.influx_db, user=settings.influx_user,
                                   password=settings.influx_password, rp=settings.influx_rp, timeout=15.0)
        self.writer = Writer(self.influx, self.spool, on_rejected=self._rejected,
                             on_drained=self.metrics.drained.inc)
        rm = opts.receive_maximum or opts.batch_size * (opts.max_inflight + 1)
        self.consumer = Consumer(settings, self.client_id, self._subscriptions(), receive_maximum=rm,
                                 session_expiry_s=opts.session_expiry_s, max_packet=opts.max_packet_bytes)
        self.metrics.mqtt_connects.set_function(lambda: self.consumer.connects)
        self.metrics.publish_dropped.set_function(lambda: self.consumer.too_large)
        self.robots = RobotRegistry(opts.robots, max_robots=opts.max_robots)
        # reading names known to be channel names: the catalogue's, and those met since
        self._good_channels = {c.name for sc in SCENARIOS.values() for c in sc.channels
                               if CHANNEL_RE.match(c.name) and c.name not in RESERVED_FIELDS}
        self._frames_on = FramesOnTopic(self._good_channels)
        self._stop = asyncio.Event()
        self._stopping = False
        self._stop_by = 0.0
        self._inflight = 0
        self._next_tick = 0.0
        self._next_stats = 0.0
        self._tick_floor = 0  # the detectors' time-driven checks look no earlier than this
        self.started = asyncio.Event()
        self._storage_task: asyncio.Task[None] | None = None
        self.counts = {"deadlettered": 0, "stored": 0, "spooled": 0, "alerts": 0, "acked": 0, "received": 0}
        self.host = socket.gethostname()

    # -- subscriptions -------------------------------------------------------------------------
    def _subscriptions(self) -> list[tuple[str, int]]:
        t = self.topics
        if self.partition.whole:
            subs = [(t.all_telemetry, 1), (t.all_history, 1)]
        else:
            # each process subscribes to its own scenarios only: the broker does the routing
            subs = [(t.scenario_telemetry(s), 1) for s in self.partition.scenarios(SCENARIOS)]
            subs += [(t.scenario_history(s), 1) for s in self.partition.scenarios(SCENARIOS)]
        subs += [(t.all_status, 1), (f"{t.prefix}/alerts/ack/+", 1), (f"{t.prefix}/incidents/ack/+", 1)]
        return subs

    # -- lifecycle -----------------------------------------------------------------------------
    async def run(self) -> None:
        # A stop while starting (InfluxDB or the broker slow to answer) cuts the start short.
        starting = asyncio.create_task(self._start(), name="start")
        stopped = asyncio.create_task(self._stop.wait(), name="stop-wait")
        try:
            await asyncio.wait({starting, stopped}, return_when=asyncio.FIRST_COMPLETED)
            if starting.done():
                starting.result()  # a failed start raises here
                await self._pipeline()
            else:
                starting.cancel()
                await asyncio.wait({starting})
                log.info("stopped while starting")
        finally:
            stopped.cancel()
            await self._shutdown()

    def stop(self) -> None:
        """Stop reading, flush, acknowledge, close, all within ``stop_timeout_s`` (safe to call from a
        signal handler on the event loop)."""
        if not self._stopping:
            self._stopping = True
            self._stop_by = time.monotonic() + self.opts.stop_timeout_s
        self.consumer.stop_accepting()
        self._stop.set()
        self.consumer.wake()

    def _stop_left(self, share: float = 1.0) -> float:
        """Seconds left of ``share`` of the stop budget (the whole budget when not stopping)."""
        if not self._stopping:
            return self.opts.stop_timeout_s * share
        spent = self.opts.stop_timeout_s - (self._stop_by - time.monotonic())
        return max(0.0, self.opts.stop_timeout_s * share - spent)

    async def _start(self) -> None:
        opts = self.opts
        log.info("ingest %s starting: client id %s, %d subscriptions, batch %d points / %.0f ms, spool %s",
                 self.partition, self.client_id, len(self.consumer.subscriptions), opts.batch_size,
                 opts.batch_ms, self.spool.dir)
        port = opts.metrics_port if opts.metrics_port is not None else self.settings.metrics_port
        if port:
            self.metrics.serve(port, opts.metrics_host)
        influx_ok = await self.writer.prepare()
        alerts: list[AlertEvent] = []
        incidents: list[IncidentEvent] = []
        if self.suite is not None and opts.restore_alerts:
            alerts, incidents = await _on_daemon_thread(read_active, self.settings)
            alerts = [e for e in alerts if self.partition.owns(e.scenario_id)]
            incidents = [i for i in incidents if self.partition.owns(i.scenario_id)]
        frames: list[Frame] = []
        own: dict[int, int] = {}
        if influx_ok and opts.warmup_s > 0:
            frames, own = await self._read_recent()
        self._restore_seq_from(frames, own)
        if influx_ok:
            await self._restore_seq()
        if self.suite is not None:
            restored = self.suite.restore(alerts, incidents, seed=False)
            self._clock_alerts = {e.robot_id for e in restored if e.detector == "robot_clock" and e.robot_id}
            if frames:
                self._reconcile(frames, restored)
            self.suite.seed(self.suite.active())
            log.info("restored %d active alert(s) in %d incident(s); warmed up on %d stored frame(s)",
                     len(restored), len(self.suite.engine.active_incidents()), len(frames))
        self.writer.start()
        # The catalogue, the compiled kernels and the clients live for the whole run: keep them
        # out of the collector's way, and collect the young generation less often (a batch makes
        # tens of thousands of short-lived objects).
        tune_gc()
        if self.partition.index == 0:  # one process keeps the alert log's long-term copy
            self._storage_task = asyncio.create_task(maintain_storage(self.influx), name="storage")
        await self.consumer.start()
        # every robot known from stored data gets a full silence time to show up (its queued
        # messages come first) before the time-driven checks call it silent
        self._tick_floor = time.time_ns()
        if self.suite is not None and not self.data_clock:
            self.suite.give_robots_until(self._tick_floor)
        self.metrics.mqtt_up.set(1)
        self.started.set()

    async def _read_recent(self) -> tuple[list[Frame], dict[int, int]]:
        """The last ``warmup_s`` of this partition's stored telemetry (best effort), and the robots'
        own times of frames stored at a corrected time (by index)."""
        now = time.time_ns()
        t0 = now - int(self.opts.warmup_s * _NS)
        t1 = now + int(self.opts.clock_tolerance_s * _NS) + 1
        try:
            reader = SliceReader(self.influx, only=self._scenarios)
            frames, _, own = await asyncio.wait_for(reader.read_with_robot_ts(t0, t1), 60)
        except Exception as exc:  # noqa: BLE001 - the detectors then start cold; nothing is lost
            log.warning("could not read the last %.0f s of telemetry to warm up on (%s); detectors start cold",
                        self.opts.warmup_s, exc)
            return [], {}
        return frames, own

    def _restore_seq_from(self, frames: Sequence[Frame], own: dict[int, int]) -> None:
        """Each robot's numbering from its recent stored frames: the newest, and the exact
        ``(seq, ts)`` of that boot's others (the robot's own ts), so redelivered messages are known
        as repeats."""
        by_robot: dict[str, list[tuple[Frame, int]]] = {}
        for i, f in enumerate(frames):
            by_robot.setdefault(f.robot_id, []).append((f, own.get(i, f.ts)))
        for robot, fs in by_robot.items():
            newest, newest_ts = max(fs, key=lambda p: (p[0].ts, p[0].seq))
            recent = [(f.seq, t) for f, t in fs if f.boot == newest.boot]
            self.seq.restore(robot, newest.seq, newest_ts, newest.boot, recent)

    async def _restore_seq(self) -> None:
        """Each robot's last stored frame of the last ``seq_restore_s`` (this partition's
        scenarios; robots the warm-up did not see), so that counting goes on across a restart:
        messages the last process stored but had not acknowledged come again and count as
        repeats (and skip the detectors), frames missed meanwhile count as a gap, and a robot
        that restarted meanwhile is told from them by its boot or its time. Best effort: a failed
        query only logs."""
        if self.opts.seq_restore_s <= 0:
            return
        rp = f'"{self.influx.rp}".' if self.influx.rp else ""
        q = (f'SELECT "seq", "boot", "robot_ts" FROM {rp}"telemetry" WHERE time > now() - '
             f'{int(self.opts.seq_restore_s)}s GROUP BY "robot", "scenario" ORDER BY time DESC LIMIT 1')
        try:
            rows = await asyncio.wait_for(self.influx.query(q), 30)
        except Exception as exc:  # noqa: BLE001 - counting, not storage, depends on it
            log.warning("could not read the robots' last seq from InfluxDB (%s); counting starts afresh", exc)
            return
        last: dict[str, tuple[int, int, int | None]] = {}  # robot -> (time, seq, boot) of its newest frame here
        for r in rows:
            if r.get("seq") is None or not self.partition.owns(r.get("scenario", "")):
                continue
            t, v = int(r["time"]), int(r["seq"])
            if r.get("robot_ts") is not None:  # a corrected clock: the robot's own time names the reading
                t = int(r["robot_ts"])
            boot = int(r["boot"]) if r.get("boot") is not None else None
            if r["robot"] not in last or t > last[r["robot"]][0]:
                last[r["robot"]] = (t, v, boot)
        n = sum(self.seq.restore(robot, v, t, boot) for robot, (t, v, boot) in last.items())
        log.info("restored the last seq of %d robot(s)", n)

    def _reconcile(self, frames: list[Frame], restored: list[AlertEvent]) -> None:
        """Run the recent stored frames through the live detectors, holding the restored alerts,
        and keep for publishing what that changed: a restored alert whose condition ended clears;
        one still there goes on (a raise in the stored frames joins it, no second alert); a
        condition the stored frames show now but no alert held (the last process stopped before
        publishing it) is raised, marked late. What rose and ended within the window was the last
        process's to report, and is not reported again."""
        suite = self.suite
        assert suite is not None
        before = {e.alert_id for e in restored}
        restored_incidents = {i.incident_id for i in suite.engine.active_incidents()}
        try:
            det = suite.process(_catalogue_only(frames), late=[False] * len(frames))
        except Exception:  # noqa: BLE001 - a detector fault must not stop the start
            log.exception("detectors failed warming up on %d stored frames; they start cold", len(frames))
            return
        now = time.time_ns()
        active = {e.alert_id for e in suite.active()}
        out: list[AlertEvent] = []
        for ev in det.events:
            if ev.alert_id in before:
                if ev.state in (AlertState.cleared, AlertState.escalated):
                    out.append(ev)
            elif ev.alert_id in active:
                late = now - ev.ts > self.clocks.late_after
                out.append(ev.model_copy(update={"timing": AlertTiming.late}) if late else ev)
        for ev in out:
            ev.evidence["reconciled"] = "at the ingestor's start, against the last stored readings"
        latest: dict[str, IncidentEvent] = {}
        for inc in suite.engine.drain_incidents():
            latest[inc.incident_id] = inc
        open_now = {i.incident_id for i in suite.engine.active_incidents()}
        self._startup_events = out
        self._startup_incidents = [i for iid, i in latest.items() if iid in restored_incidents or iid in open_now]
        log.info("warm-up: %d event(s) and %d incident step(s) to publish", len(out), len(self._startup_incidents))

    async def _shutdown(self) -> None:
        if self._storage_task is not None:
            self._storage_task.cancel()
        self.consumer.stop_accepting()
        # the spool drains into InfluxDB while budget is left (and it answers); what stays is
        # written back by the next run
        await self.writer.close(drain_timeout=self._stop_left(0.8) if self._stopping else 0.0)
        await self.consumer.close(max(0.5, self._stop_left(0.95)))
        try:
            await asyncio.wait_for(self.influx.aclose(), max(0.2, self._stop_left()))
        except TimeoutError:
            log.warning("closing the InfluxDB client timed out")
        self.metrics.close()
        log.info("ingest %s stopped: %s", self.partition, self.counts)

    # -- the pipeline --------------------------------------------------------------------------
    async def _pipeline(self) -> None:
        # Batches wait here for their write, in order. The queue needs no bound of its own: every
        # batch holds unacknowledged messages, and the broker sends no more than Receive Maximum.
        acks: asyncio.Queue[tuple[asyncio.Task[str], _Batch] | None] = asyncio.Queue()
        acker = asyncio.create_task(self._acker(acks), name="acker")
        writes = asyncio.Semaphore(self.opts.max_inflight)

        async def write(lines: list[str]) -> str:
            async with writes:
                return await self.writer.store(lines)

        tasks: set[asyncio.Task[str]] = set()
        try:
            while True:
                batch = await self._collect()
                if batch is not None:
                    self._inflight += 1
                    task = asyncio.create_task(write(batch.lines))
                    tasks.add(task)
                    task.add_done_callback(tasks.discard)
                    await acks.put((task, batch))
                # stopping: what is left in the inbox is taken while a third of the budget lasts;
                # the rest is not acknowledged, and the broker sends it again next session
                if self._stop.is_set() and (not self.consumer.inbox or not self._stop_left(1 / 3)):
                    break
        finally:
            await acks.put(None)
            # Writes still running when 60 % of the budget is gone (InfluxDB hanging) are cut short:
            # their batches go to the spool instead, or stay unacknowledged if it cannot take them.
            _, late = await asyncio.wait({acker}, timeout=self._stop_left(0.6) if self._stopping else None)
            if late:
                if tasks:
                    log.warning("stopping: %d write(s) still waiting on InfluxDB; spooling them instead", len(tasks))
                for t in list(tasks):
                    t.cancel()
                await acker

    async def _acker(self, queue: asyncio.Queue[tuple[asyncio.Task[str], _Batch] | None]) -> None:
        m = self.metrics
        while True:
            item = await queue.get()
            if item is None:
                return
            task, batch = item
            try:
                await asyncio.wait({task})
            finally:
                self._inflight -= 1
            outcome = self._spool_instead(batch) if task.cancelled() else task.result()
            if outcome is None:
                continue  # not durable: not acknowledged, the broker sends it again
            (m.stored if outcome == "stored" else m.spooled).inc(batch.points)
            self.counts[outcome] += batch.points
            acked = self.consumer.ack(batch.messages)
            self.counts["acked"] += acked
            m.acked.inc(acked)
            if batch.messages:
                m.batch_latency.observe(time.monotonic() - batch.first_at)
            if batch.newest_ts:
                m.lag.set(max(0.0, time.time() - batch.newest_ts / 1e9))
            m.spool_bytes.set(self.spool.bytes)
            m.spool_points.set(self.spool.points)
            m.influx_up.set(1 if self.writer.influx_up else 0)

    def _spool_instead(self, batch: _Batch) -> str | None:
        """A batch whose write was cut short by the stop: into the spool (rewriting what InfluxDB
        may have stored is harmless), or None when the spool cannot take it."""
        try:
            self.spool.append(batch.lines)
        except (SpoolFull, OSError) as exc:
            log.error("stopping: cannot spool a batch of %d points (%s); leaving it unacknowledged", batch.points, exc)
            return None
        return "spooled"

    async def _collect(self) -> _Batch | None:
        """Gather one write batch; None when there was nothing to do.

        The detectors run while the batch fills, not when it is full: over what has been taken
        once ``detect_ms`` has passed since the oldest of it, or ``detect_frames`` frames wait
        (see :class:`IngestOptions`), and over the rest when the batch is cut.
        """
        inbox = self.consumer.inbox
        opts = self.opts
        batch = _Batch()
        deadline = 0.0
        detect_s = opts.detect_ms / 1000
        while True:
            now = time.monotonic()
            if inbox:
                step_end = min(opts.batch_size, batch.points + opts.step_points)
                while inbox and batch.points < step_end:
                    self._take(inbox.popleft(), batch)
                if not batch.undetected_at:
                    batch.undetected_at = now
            idle = not inbox and self._inflight == 0  # nothing else to do: no reason to wait
            if batch.undetected_at and (idle or now - batch.undetected_at >= detect_s or batch.acks[batch.acks_done:]
                                        or len(batch.frames) - batch.detected >= opts.detect_frames):
                self._detect(batch)
            if batch.messages and not batch.first_at:
                batch.first_at = now
                deadline = now + opts.batch_ms / 1000
            if batch.points >= opts.batch_size or self._stop.is_set():
                break
            if inbox:
                # more waiting: take it in the next step, after one turn of the event loop. The
                # writes, their answers and the acks run in those turns; were the inbox emptied
                # in one go, they would wait until the robots paused.
                await asyncio.sleep(0)
                continue
            due = min(self._next_tick, self._next_stats)
            if batch.undetected_at:
                due = min(due, batch.undetected_at + detect_s)
            if not batch.messages:
                if now >= due and not batch.undetected_at:
                    break
                await self.consumer.wait(max(0.0, min(due - now, 1.0)))
                continue
            if (self._inflight == 0 and not inbox and not batch.undetected_at) or now >= deadline:
                break
            await self.consumer.wait(max(0.0, min(deadline, due) - now))
        if batch.undetected_at:
            self._detect(batch)
        self.metrics.inbox.set(len(inbox))
        return self._finish(batch)

    def _detect(self, batch: _Batch) -> None:
        """Detectors over the frames, statuses and acks taken since the last pass; publish events."""
        events: list[AlertEvent] = []
        if self._startup_events:
            events += self._startup_events
            self._startup_events = []
        if batch.events:
            events += batch.events
            batch.events = []
        d = batch.detected
        frames, late, arrived = batch.frames[d:], batch.late[d:], batch.arrived[d:]
        history = batch.history[batch.history_done:]
        statuses, acks = batch.statuses[batch.statuses_done:], batch.acks[batch.acks_done:]
        batch.detected, batch.statuses_done, batch.acks_done = len(batch.frames), len(batch.statuses), len(batch.acks)
        batch.history_done = len(batch.history)
        batch.undetected_at = 0.0
        suite = self.suite
        if suite is not None and (frames or statuses):
            try:
                if frames:
                    det = suite.process(_catalogue_only(frames), late=late, arrived=arrived)
                    events.extend(det.events)
                    batch.lines.extend(det.lines)
                    self._count_detected(frames, ok=True)
                for st, at in statuses:
                    events.extend(suite.robot_status(st, arrived=at))
            except Exception:  # noqa: BLE001 - a detector fault must not stop storage
                log.exception("detectors failed on %d frames; the readings are stored anyway", len(frames))
                self.metrics.detector_errors.inc()
                self.metrics.skipped.labels(partition=str(self.partition), reason="detector_error").inc(len(frames))
                self._count_detected(frames, ok=False)
        if history:
            self._detect_history(history, batch)
        for req, msg in acks:
            events.extend(self._acknowledge(req, msg))
        self._publish(events, batch)

    def _count_detected(self, frames: Sequence[Frame], ok: bool) -> None:
        watch = self._watch
        for f in frames:
            w = watch.get(f.scenario_id)
            if w is not None:
                if ok:
                    w.detected += 1
                else:
                    w.failed += 1

    def _detect_history(self, frames: list[Frame], batch: _Batch) -> None:
        """Bulk history through detectors of its own, in event time; its alerts are only stored."""
        if not self.opts.detectors:
            return
        if self._history_suite is None:
            self._history_suite = _load_suite(self.opts, AlertTiming.historical)
            if self._history_suite is None:
                return
        hs = self._history_suite
        try:
            det = hs.process(_catalogue_only(frames))
        except Exception:  # noqa: BLE001
            log.exception("history detectors failed on %d frames; the readings are stored anyway", len(frames))
            self.metrics.detector_errors.inc()
            return
        batch.lines.extend(det.lines)
        for ev in det.events:
            ln = publish_event(self.consumer.publish, self.topics, ev)  # historical: stored only
            if ln:
                batch.lines.append(ln)
        for inc in hs.engine.drain_incidents():
            ln = publish_incident(self.consumer.publish, self.topics, inc)
            if ln:
                batch.lines.append(ln)
        self.metrics.history_alerts.inc(len(det.events))

    def _publish(self, events: list[AlertEvent], batch: _Batch) -> None:
        now = time.time_ns()
        for ev in events:
            if ev.detected_ts is None:
                ev.detected_ts = now
            ln = publish_event(self.consumer.publish, self.topics, ev)
            if ln:
                batch.lines.append(ln)
        incidents: list[IncidentEvent] = []
        if self._startup_incidents:
            incidents, self._startup_incidents = self._startup_incidents, []
        if self.suite is not None:
            incidents += self.suite.engine.drain_incidents()
        for inc in incidents:
            if inc.detected_ts is None:
                inc.detected_ts = now
            ln = publish_incident(self.consumer.publish, self.topics, inc)
            if ln:
                batch.lines.append(ln)
        if events:
            self.metrics.alerts.inc(len(events))
            self.counts["alerts"] += len(events)
        if incidents:
            self.metrics.incidents.inc(len(incidents))

    def _finish(self, batch: _Batch) -> _Batch | None:
        now = time.monotonic()
        self.metrics.mqtt_up.set(1 if self.consumer.connected.is_set() else 0)
        if now >= self._next_tick:
            self._next_tick = now + self.opts.tick_s
            if self.suite is not None:
                try:
                    now_ns = self._data_now if self.data_clock else max(time.time_ns(), self._tick_floor)
                    if now_ns:
                        self._publish(self.suite.tick(now_ns), batch)
                except Exception:  # noqa: BLE001
                    log.exception("detector tick failed")
                    self.metrics.detector_errors.inc()
        if now >= self._next_watch:
            self._next_watch = now + self.opts.watch_s
            self._publish_watch(batch)
        if now >= self._next_stats:
            if self._next_stats:
                ln = self._stats_line()
                if ln:
                    batch.lines.append(ln)
            self._next_stats = now + self.opts.stats_interval_s
        if batch.points_frames:
            batch.lines += self.fmt.format_many(batch.points_frames, batch.points_late, batch.points_robot_ts)
            batch.points_frames, batch.points_late, batch.points_robot_ts = [], [], {}
        if not batch.lines and not batch.messages:
            return None
        m = self.metrics
        m.received.inc(batch.points)
        m.readings.inc(batch.readings)
        m.batch_points.observe(batch.points)
        self.counts["received"] += batch.points
        return batch

    # -- whether each scenario is watched ---------------------------------------------------------
    def _watch_state(self, w: _Watch, now_ns: int) -> tuple[str, str]:
        if self.suite is None:
            return "detectors_off", "this ingest process runs without detectors"
        if w.failed:
            return "not_detected", f"the detectors failed on {w.failed} frame(s) in the last {self.opts.watch_s:g} s"
        if w.last_arrival is None or now_ns - w.last_arrival > WATCH_SILENCE_S * _NS:
            since = "ever" if w.last_arrival is None else f"{(now_ns - w.last_arrival) / _NS:.0f} s"
            return "no_data", f"no frame for {since}"
        return "watched", ""

    def _publish_watch(self, batch: _Batch) -> None:
        """``watch/{scenario}`` (retained) for each scenario of this partition, and a system alert
        for a scenario whose frames arrive but are not checked by the detectors."""
        now = time.time_ns()
        events: list[AlertEvent] = []
        for sid, w in self._watch.items():
            state, detail = self._watch_state(w, now)
            st = WatchStatus(scenario_id=sid, watched=state == "watched", state=state, detail=detail, frames=w.frames,
                             detected=w.detected, skipped=w.skipped, last_frame_ts=w.last_ts,
                             last_arrival_ts=w.last_arrival, ts=now, every_s=self.opts.watch_s,
                             partition=str(self.partition))
            self.consumer.publish(self.topics.watch(sid), st.model_dump_json(exclude_none=True).encode(), 1, True)
            if self.suite is not None and (state == "not_detected") != (w.published == "not_detected"):
                events += self._not_watched_signal(sid, state == "not_detected", detail, now)
            w.published = state
            w.frames = w.detected = w.skipped = w.failed = 0
        if events:
            self._publish(events, batch)

    def _not_watched_signal(self, sid: str, on: bool, detail: str, now: int) -> list[AlertEvent]:
        from detectors.engine import Signal  # the suite is loaded, so detectors import

        sc = SCENARIOS[sid]
        where = f"{sid} ({sc.name})"
        msg = (f"Readings from {where} are being stored but not checked by the detectors ({detail}): the place is "
               f"not watched. Check the ingestor's log and watch the place by other means." if on else
               f"Readings from {where} are checked by the detectors again: the alert is cleared.")
        assert self.suite is not None
        return self.suite.engine.update(Signal(
            scenario_id=sid, detector="not_watched", subject=sid, kind=AlertKind.system, source="ingest",
            severity=Severity.alarm if on else None, ts=now, message=msg,
            evidence={"rule": "every frame of a watched place goes through the detectors", "detail": detail,
                      "partition": str(self.partition)}))

    # -- one message ---------------------------------------------------------------------------
    def _take(self, msg: Incoming, batch: _Batch) -> None:
        batch.messages.append(msg)
        self.metrics.messages.inc()
        topic = msg.topic
        topics = self.topics
        if len(msg.payload) > self.opts.max_message_bytes:
            self._dead(DeadLetter("too_large", f"{len(msg.payload)} bytes, over the limit of "
                                  f"{self.opts.max_message_bytes} bytes a message", topic, msg.payload))
            return
        try:
            parsed = topics.parse_telemetry(topic)
            if parsed is not None:
                self._telemetry(msg, parsed[0], parsed[1], batch)
            elif (robot := topics.parse_status(topic)) is not None:
                self._status(msg, robot, batch)
            elif (alert := topics.parse_alert(topic)) is not None and alert[0] == "ack":
                self._ack_request(msg, alert[1], batch)
            elif (inc := topics.parse_incident(topic)) is not None and inc[0] == "ack":
                self._incident_ack_request(msg, inc[1], batch)
            elif (hist := topics.parse_history(topic)) is not None:
                self._telemetry(msg, hist[0], hist[1], batch, history=True)
            else:
                self._dead(DeadLetter("bad_topic", "not a telemetry, history, status or ack topic", topic, msg.payload))
        except Exception as exc:  # noqa: BLE001 - one bad message must not stop the rest
            log.exception("could not handle a message on %s", topic)
            self._dead(DeadLetter("internal_error", f"{type(exc).__name__}: {exc}", topic, msg.payload))

    def _telemetry(self, msg: Incoming, scenario_id: str, robot_id: str, batch: _Batch, history: bool = False) -> None:
        # The common case costs one msgspec decode and a few calls per message: frames of the
        # topic's robot, known scenario, channel names seen before, the robot's clock right, seq
        # running on. Anything else goes the checked way (_checked), which names the reason.
        if robot_id not in self.robots.known and not self.robots.allows(robot_id):
            self._dead(DeadLetter("unknown_robot", self.robots.why_not(robot_id), msg.topic, msg.payload))
            return
        frames = self._frames_on.decode(msg.payload, scenario_id, robot_id)
        if frames is None or scenario_id not in SCENARIOS:
            frames = self._checked(msg, scenario_id, robot_id)
            if frames is None:
                return
        n = len(frames)
        if n > self.opts.max_frames:
            self._dead(DeadLetter("too_many_frames", f"{n} frames, over the limit of {self.opts.max_frames} a message",
                                  msg.topic, msg.payload))
            return
        raw_ts = list(map(_ts, frames))
        lo, hi = self._ts_window(history)
        if min(raw_ts) < lo or max(raw_ts) > hi:
            frames = self._in_window(frames, raw_ts, lo, hi, msg)
            if not frames:
                return
            n = len(frames)
            raw_ts = list(map(_ts, frames))
        seqs = list(map(_seq, frames))
        boot = frames[0].boot
        one_boot = n == 1 or all(f.boot == boot for f in frames)
        m = self.metrics
        corrected = False
        received = msg.received_ns
        if self.data_clock:
            newest_raw = max(raw_ts)
            if newest_raw > self._data_now:
                self._data_now = newest_raw
            received = self._data_now
        if history:
            classes: list[int] | None = [HISTORY] * n
        else:
            place = self.clocks.place(robot_id, raw_ts, seqs, boot, received)
            if place.changed is not None or robot_id in self._clock_alerts:
                self._clock_changed(robot_id, scenario_id, place.offset, place.changed, received, batch)
            if place.offset:
                off = place.offset
                frames = [msgspec.structs.replace(f, ts=f.ts + off) for f in frames]
                corrected = True
            classes = place.classes
        c = self.seq.counts
        gaps0, dups0, resets0 = c.gaps, c.duplicates, c.resets
        store = frames
        if classes is None:  # all live
            kinds = (self.seq.observe_run(robot_id, seqs, raw_ts, boot) if one_boot else
                     [self.seq.observe(robot_id, s, t, f.boot) for s, t, f in zip(seqs, raw_ts, frames)])
            if kinds is None:
                late = [False] * n
                batch.frames += frames
                batch.late += late
                batch.arrived += [received] * n
            else:
                late = [k == LATE for k in kinds]
                self._to_detectors(frames, kinds, late, received, batch)
                if DUPLICATE in kinds:
                    store, late = self._not_proven_repeats(frames, kinds, late)
        else:
            late = [cls != 0 for cls in classes]
            live = [i for i, cls in enumerate(classes) if cls != HISTORY]
            old = [i for i, cls in enumerate(classes) if cls == HISTORY]
            kinds = [0] * n
            if live:
                for i in live:
                    kinds[i] = self.seq.observe(robot_id, seqs[i], raw_ts[i], frames[i].boot)
                    late[i] = late[i] or kinds[i] == LATE
                self._to_detectors([frames[i] for i in live], [kinds[i] for i in live], [late[i] for i in live],
                                   received, batch)
            if old:
                hc = self.history_seq.counts
                d0 = hc.duplicates
                for i in old:
                    kinds[i] = self.history_seq.observe(robot_id, seqs[i], raw_ts[i], frames[i].boot)
                    if kinds[i] not in REPEATS:
                        batch.history.append(frames[i])
                m.history.inc(len(old))
                if hc.duplicates != d0:
                    m.skipped.labels(partition=str(self.partition), reason="duplicate").inc(hc.duplicates - d0)
            if DUPLICATE in kinds:
                store, late = self._not_proven_repeats(frames, kinds, late)
        if corrected:  # the robot's own times go with the corrected ones (how it numbers its readings)
            own = {id(f): t for f, t in zip(frames, raw_ts)}
            base = len(batch.points_frames)
            for k, f in enumerate(store):
                batch.points_robot_ts[base + k] = own[id(f)]
        batch.points_frames += store
        batch.points_late += late
        batch.readings += sum(map(len, map(_readings, frames)))
        newest = max(map(_ts, frames)) if corrected else max(raw_ts)
        if newest > batch.newest_ts:
            batch.newest_ts = newest
        batch.points += n
        w = self._watch.get(scenario_id)
        if w is not None and not history:
            w.frames += n
            w.skipped += c.duplicates - dups0
            w.last_arrival = msg.received_ns
            if w.last_ts is None or newest > w.last_ts:
                w.last_ts = newest
        if c.gaps != gaps0:
            m.gaps.inc(c.gaps - gaps0)
        if c.duplicates != dups0:
            m.duplicates.inc(c.duplicates - dups0)
            m.skipped.labels(partition=str(self.partition), reason="duplicate").inc(c.duplicates - dups0)
        if c.resets != resets0:
            m.restarts.inc(c.resets - resets0)
            log.info("robot %s started its numbering again (a reboot, or a spare with its id)", robot_id)
        if any(late):
            m.late.inc(sum(late))

    def _ts_window(self, history: bool = False, *, clock_ahead: bool = True) -> tuple[int, int]:
        """The robot times taken now: from the raw retention's start (less a margin) to a little
        ahead: ``max_clock_ahead_s`` for live frames by a robot's own clock, which the clock
        correction brings back; ``max_ahead_s`` for history, statuses and acknowledgements, taken as
        they are (and, on the data clock, ahead of the newest time seen)."""
        now = time.time_ns()
        o = self.opts
        lo = now - int(o.max_age_s * _NS)
        if self.data_clock:
            return lo, max(now, self._data_now) + int(o.max_ahead_s * _NS)
        return lo, now + int((o.max_clock_ahead_s if clock_ahead and not history else o.max_ahead_s) * _NS)

    def _in_window(self, frames: list[Frame], raw_ts: list[int], lo: int, hi: int, msg: Incoming) -> list[Frame]:
        """The frames dated inside [lo, hi]; the message goes to the dead letters for the rest."""
        keep = [f for f, t in zip(frames, raw_ts) if lo <= t <= hi]
        bad = [t for t in raw_ts if not lo <= t <= hi]
        self._dead(DeadLetter("ts_out_of_range", f"{len(bad)} of {len(frames)} frames dated outside the window taken "
                              f"now, {_iso(lo)} to {_iso(hi)} (first: {_iso(bad[0])}); "
                              f"{len(keep)} taken", msg.topic, msg.payload))
        return keep

    @staticmethod
    def _not_proven_repeats(frames: Sequence[Frame], kinds: Sequence[int],
                            late: Sequence[bool]) -> tuple[list[Frame], list[bool]]:
        """The frames to store: a proven repeat (a reading this process took, or found stored) is
        not written again; its first copy is durable before this message is acknowledged. (Written
        again it could land at another time, under a robot clock correction that has moved.) A
        presumed repeat is written again: if it was stored, it lands on itself."""
        keep = [i for i, k in enumerate(kinds) if k != DUPLICATE]
        return [frames[i] for i in keep], [late[i] for i in keep]

    @staticmethod
    def _to_detectors(frames: Sequence[Frame], kinds: Sequence[int], late: Sequence[bool], received_ns: int,
                      batch: _Batch) -> None:
        """Frames not seen before to the detectors, each seen at ``received_ns`` (the ingestor's clock:
        its own, or the data's newest time with ``--clock data``, which a robot whose messages lag
        behind the others' does not fall silent by)."""
        for f, k, is_late in zip(frames, kinds, late):
            if k not in REPEATS:  # a repeat is not detected twice
                batch.frames.append(f)
                batch.late.append(is_late)
                batch.arrived.append(received_ns)

    def _clock_changed(self, robot_id: str, scenario_id: str, offset: int, why: str | None, now: int,
                       batch: _Batch) -> None:
        self._clock_alerts.discard(robot_id)
        if why is not None:
            self.metrics.clock_corrections.inc()
            log.warning("robot %s: clock %s, correction now %+.3f s", robot_id, why, offset / _NS)
        if self.suite is not None:
            batch.events += self.suite.robot_clock(robot_id, scenario_id, offset, now, why or "checked at start")

    def _checked(self, msg: Incoming, scenario_id: str, robot_id: str) -> list[Frame] | None:
        """Decode and check one telemetry message the general way: the frames, or None once the
        message is dead-lettered with the reason."""
        try:
            frames = decode_frames(msg.payload)
        except FrameError as exc:
            self._dead(DeadLetter(exc.reason, exc.detail, msg.topic, msg.payload))
            return None
        good = self._good_channels
        new: dict[str, None] = {}
        for f in frames:
            if f.robot_id != robot_id or f.scenario_id != scenario_id:
                self._dead(DeadLetter("topic_mismatch", f"frame of robot {f.robot_id!r} in scenario "
                                      f"{f.scenario_id!r} on the topic of robot {robot_id!r} in {scenario_id!r}",
                                      msg.topic, msg.payload))
                return None
            if scenario_id not in SCENARIOS:
                self._dead(DeadLetter("unknown_scenario", f"scenario {scenario_id!r} is not in the catalogue",
                                      msg.topic, msg.payload))
                return None
            for k in f.readings:
                if k not in good and k not in new:
                    if k in RESERVED_FIELDS or not CHANNEL_RE.match(k):
                        self._dead(DeadLetter("bad_channel", f"reading name {k[:100]!r} is not a channel name "
                                              "(letters, digits, '_', '.', '-') or is reserved", msg.topic, msg.payload))
                        return None
                    new[k] = None
        if new:  # taken all at once, or not at all
            o = self.opts
            if len(new) > o.max_new_channels or len(good) + len(new) > o.max_channels:
                self._dead(DeadLetter("too_many_channels", f"{len(new)} new reading names (first {next(iter(new))!r}); "
                                      f"at most {o.max_new_channels} new in a message and {o.max_channels} in all "
                                      f"({len(good)} known)", msg.topic, msg.payload))
                return None
            good.update(new)
            self._frames_on.learn(new)
        return frames

    def _status(self, msg: Incoming, robot_id: str, batch: _Batch) -> None:
        if not msg.payload:
            return  # a cleared retained status
        try:
            st = RobotStatus.model_validate_json(msg.payload)
        except ValidationError as exc:
            self._dead(DeadLetter("bad_status", str(exc), msg.topic, msg.payload))
            return
        if st.robot_id != robot_id:
            self._dead(DeadLetter("topic_mismatch", f"status of robot {st.robot_id!r} on the topic of {robot_id!r}",
                                  msg.topic, msg.payload))
            return
        if robot_id not in self.robots.known and not self.robots.allows(robot_id):
            self._dead(DeadLetter("unknown_robot", self.robots.why_not(robot_id), msg.topic, msg.payload))
            return
        if not self.partition.owns(st.scenario_id):
            return
        if st.ts is not None:
            off = self.clocks.offset(robot_id)
            if off:
                st = st.model_copy(update={"ts": max(0, st.ts + off)})
        if st.ts is not None and not self._dated_in_window("status", st.ts, msg):  # as stored: corrected
            return
        ln = status_line(st)
        if ln:
            batch.lines.append(ln)
        # an old status (a retained one from long ago, history) is stored, not taken as the robot's state now
        now = self._data_now if self.data_clock else msg.received_ns
        if self.data_clock and now == 0:  # no frame seen yet: the data's clock has not started
            now = st.ts if st.ts is not None else 0
        if st.ts is None or now - st.ts <= self.clocks.horizon:
            batch.statuses.append((st, now if now else None))

    def _ack_request(self, msg: Incoming, alert_id: str, batch: _Batch) -> None:
        try:
            req = AlertAck.model_validate_json(msg.payload)
            if req.alert_id != alert_id:
                raise ValueError(f"alert_id {req.alert_id!r} differs from the topic's {alert_id!r}")
        except ValueError as exc:  # pydantic's ValidationError is a ValueError
            self._dead(DeadLetter("bad_ack", str(exc), msg.topic, msg.payload))
            return
        if req.ts is not None and not self._dated_in_window("acknowledgement", req.ts, msg):
            return
        if self.partition.owns(req.scenario_id):  # an ack without a scenario goes to partition 0
            batch.acks.append((req, msg))

    def _incident_ack_request(self, msg: Incoming, incident_id: str, batch: _Batch) -> None:
        try:
            req = IncidentAck.model_validate_json(msg.payload)
            if req.incident_id != incident_id:
                raise ValueError(f"incident_id {req.incident_id!r} differs from the topic's {incident_id!r}")
        except ValueError as exc:
            self._dead(DeadLetter("bad_ack", str(exc), msg.topic, msg.payload))
            return
        if req.ts is not None and not self._dated_in_window("acknowledgement", req.ts, msg):
            return
        if self.partition.owns(req.scenario_id):
            batch.acks.append((req, msg))

    def _dated_in_window(self, what: str, ts: int, msg: Incoming) -> bool:
        """Whether a status or acknowledgement dated ``ts`` is taken; if not, it is dead-lettered."""
        lo, hi = self._ts_window(clock_ahead=False)
        if lo <= ts <= hi:
            return True
        self._dead(DeadLetter("ts_out_of_range", f"{what} dated {_iso(ts)}, outside the window taken now, "
                              f"{_iso(lo)} to {_iso(hi)}", msg.topic, msg.payload))
        return False

    def _acknowledge(self, req: AlertAck | IncidentAck, msg: Incoming) -> list[AlertEvent]:
        """The events of an acknowledgement: the alert's, or every open member's of an incident
        (whose own step comes out with the incident events)."""
        if self.suite is None:
            self._dead(DeadLetter("ack_unknown_alert", "no detectors in this ingest process", msg.topic, msg.payload))
            return []
        ts = req.ts if req.ts is not None else time.time_ns()
        try:
            if isinstance(req, IncidentAck):
                events, inc = self.suite.engine.acknowledge_incident(req.incident_id, req.operator, req.note, ts)
                return events
            return [self.suite.acknowledge(req.alert_id, req.operator, req.note, ts)]
        except KeyError:
            what = f"incident {req.incident_id!r}" if isinstance(req, IncidentAck) else f"alert {req.alert_id!r}"
            self._dead(DeadLetter("ack_unknown_alert", f"{what} is not active", msg.topic, msg.payload))
            return []

    # -- side outputs --------------------------------------------------------------------------
    def _dead(self, dl: DeadLetter) -> None:
        self.metrics.deadlettered(dl.reason)
        self.counts["deadlettered"] += 1
        # one line each; a burst of them is cut down and counted by minewatch.lograte, which every
        # minewatch command puts in front of its loggers (the letters are all published and counted)
        log.info("dead letter: %r", dl)
        self.consumer.publish(self.topics.deadletter(dl.reason), dl.encode(str(self.partition)), 0, False)

    def _rejected(self, rejected: Sequence[tuple[str, str]]) -> None:
        for ln, why in rejected:
            topic = ""
            if ln.startswith("telemetry,"):
                tags = dict(t.split("=", 1) for t in ln.split(" ", 1)[0].split(",")[1:] if "=" in t)
                if "scenario" in tags and "robot" in tags:
                    topic = self.topics.telemetry(tags["scenario"], tags["robot"])
            self._dead(DeadLetter("influx_rejected", why, topic, ln.encode()))

    def _stats_line(self) -> str | None:
        c = self.seq.counts
        fields: dict[str, int | float] = {
            "received": self.counts["received"], "stored": self.counts["stored"], "spooled": self.counts["spooled"],
            "deadlettered": self.counts["deadlettered"], "alerts": self.counts["alerts"],
            "duplicates": c.duplicates, "gaps": c.gaps, "late": c.late, "restarts": c.resets,
            "spool_points": self.spool.points, "spool_bytes": self.spool.bytes,
            "influx_up": self.writer.influx_up, "inbox": len(self.consumer.inbox),
        }
        return stats_line({"partition": self.partition.tag, "host": self.host, "client_id": self.client_id},
                          fields, time.time_ns())


async def run(settings: Settings, options: IngestOptions | None = None, *, handle_signals: bool = True) -> Ingestor:
    """Run an ingest process until SIGTERM / SIGINT (or ``Ingestor.stop()``).

    With ``handle_signals`` (a process of its own), the first signal stops the ingestor within
    ``stop_timeout_s``; should anything still hold the process 3 s after that, a watchdog ends
    it: nothing durable is lost that way either, since only durable messages were acknowledged.
    """
    ing = Ingestor(settings, options)
    if handle_signals:
        loop = asyncio.get_running_loop()

        def on_signal() -> None:
            if not ing._stopping:
                limit = ing.opts.stop_timeout_s + 3.0
                threading.Thread(target=_watchdog, args=(limit,), name="stop-watchdog", daemon=True).start()
            ing.stop()

        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, on_signal)
    await ing.run()
    return ing


def _watchdog(limit_s: float) -> None:
    time.sleep(limit_s)
    log.error("still not stopped %.0f s after the signal: exiting now (unacknowledged messages come again)", limit_s)
    logging.shutdown()
    os._exit(1)
