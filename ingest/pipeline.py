"""The pipeline: inbox -> router -> detectors -> writer -> acknowledgements.

One asyncio loop runs it (the MQTT client is driven by the same loop, see :mod:`ingest.consumer`).
For each batch, in order, with the batching clock of :mod:`ingest.batching`:

1. the router (:mod:`ingest.router`) turns the inbox's messages into frames, statuses,
   acknowledgement requests, clock changes and dead letters (which go out at once);
2. the detectors run over every frame not seen before, and the alert and incident events are
   published: live and late frames through the live detectors, history through detectors of
   its own whose alerts are only stored;
3. at the cut, the frames become line protocol and the lines (telemetry, derived, alert and
   incident events, robot status) go to the writer;
4. the batch's messages are acknowledged once the writer says they are durable.

Up to ``max_inflight`` batches are being written at a time; acknowledgements follow the order
the messages came in. Every ``watch_s`` it publishes, retained, whether the detectors are
watching each of its scenarios; every ``tick_s`` the detectors' time-driven checks run.
"""

from __future__ import annotations

import asyncio
import logging
import operator
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import msgspec

from minewatch.catalogue import SCENARIOS
from minewatch.schema import (AlertAck, AlertEvent, AlertKind, AlertTiming, IncidentAck, IncidentEvent, Severity, WatchState,
                              WatchStatus)
from minewatch.topics import Topics
from minewatch.wire import Frame

from ingest.alerts import publish_event, publish_incident
from ingest.batching import BatchClock, BatchPolicy
from ingest.consumer import Consumer, Incoming
from ingest.counters import Counters
from ingest.deadletter import DeadLetter
from ingest.lines import TelemetryLines, stats_line
from ingest.metrics import Metrics
from ingest.options import IngestOptions
from ingest.router import ClockChange, Routed, Router, ScenarioTally
from ingest.spool import Spool, SpoolFull
from ingest.writer import Writer

__all__ = ["Batch", "Pipeline", "catalogue_only", "load_suite", "warm_up"]

log = logging.getLogger("minewatch.ingest")

_NS = 1_000_000_000
_scenario_of = operator.attrgetter("scenario_id")
# History frames this far behind the newest the history detectors have seen (more than an
# import's robots drift apart), or this far ahead of it (a gap no robot is silent through), start
# them afresh: another stretch of time.
HISTORY_BACK_NS = 600 * _NS
HISTORY_GAP_NS = 3600 * _NS
HISTORY_STRETCHES = 4  # stretches judged at once (two robots' imports of two days sent interleaved)
WATCH_SILENCE_S = 60.0  # [P] no frame from a scenario for two 30 s polling cycles (domain §3): not watched

# The channels the detectors watch, per scenario: the catalogue's. Other reading names a robot
# sends are stored, never watched: a limit, a silence or a change of a quantity nobody has defined
# is no alarm an operator can act on, and a flood of made-up names must not become a flood of alerts.
_WATCHED = {sid: frozenset(c.name for c in sc.channels) for sid, sc in SCENARIOS.items()}


def catalogue_only(frames: list[Frame]) -> list[Frame]:
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


def load_suite(opts: IngestOptions, timing: AlertTiming = AlertTiming.live) -> Any:
    """The detector suite (None with detectors off, or when they cannot be imported)."""
    if not opts.detectors:
        return None
    try:
        from detectors import DetectorSuite
    except ImportError as exc:
        log.warning("detectors unavailable (%s): storing telemetry without detection", exc)
        return None
    suite = DetectorSuite(SCENARIOS, overrides=opts.overrides, timing=timing, repeat_hold_s=opts.repeat_hold_s,
                          id_prefix=opts.partition.id_prefix)
    if timing is AlertTiming.live:
        warm_up(DetectorSuite)
    return suite


def warm_up(suite_cls: Any) -> None:
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


@dataclass
class Batch:
    """One write: its messages (acknowledged together), what they held, and the lines to write."""

    messages: list[Incoming] = field(default_factory=list)
    routed: Routed = field(default_factory=Routed)
    lines: list[str] = field(default_factory=list)
    clock: BatchClock = field(default_factory=BatchClock)

    @property
    def points(self) -> int:
        return self.routed.points


class Pipeline:
    """Runs batches from the consumer's inbox to the writer until ``stopping`` is set (see the
    module). ``stop_left(share)``: seconds left of that share of the stop budget."""

    def __init__(self, opts: IngestOptions, topics: Topics, router: Router, consumer: Consumer, writer: Writer,
                 spool: Spool, metrics: Metrics, suite: Any, *, stats_tags: dict[str, str],
                 stopping: asyncio.Event, stop_left: Callable[[float], float]) -> None:
        self.opts = opts
        self.policy = BatchPolicy(opts.batch_size, opts.batch_ms, opts.detect_ms, opts.detect_frames, opts.step_points,
                                  opts.linger_ms)
        self.topics = topics
        self.partition = opts.partition
        self.router = router
        self.consumer = consumer
        self.writer = writer
        self.spool = spool
        self.metrics = metrics
        self.counters: Counters = metrics.counters
        self.suite = suite
        # history detectors per stretch of time, made when its first frame comes: [suite, the newest
        # frame it has seen], the one used last at the end
        self.history_suites: list[list[Any]] = []
        self.fmt = TelemetryLines()
        self.stats_tags = stats_tags
        self.stopping = stopping
        self.stop_left = stop_left
        self.inflight = 0
        self.tick_floor = 0  # the detectors' time-driven checks look no earlier than this
        self.startup_events: list[AlertEvent] = []      # what the warm start changed, published first
        self.startup_incidents: list[IncidentEvent] = []
        self._next_tick = 0.0
        self._next_stats = 0.0
        self._next_watch = 0.0
        self._points_per_message = 1.0  # running estimate, for taking a step's messages in one call

    # -- the loop ------------------------------------------------------------------------------
    async def run(self) -> None:
        # Batches wait here for their write, in order. The queue needs no bound of its own: every
        # batch holds unacknowledged messages, and the broker sends no more than Receive Maximum.
        acks: asyncio.Queue[tuple[asyncio.Task[str], Batch] | None] = asyncio.Queue()
        acker = asyncio.create_task(self._acker(acks), name="acker")
        writes = asyncio.Semaphore(self.opts.max_inflight)

        async def write(lines: list[str]) -> str:
            async with writes:
                return await self.writer.store(lines)

        tasks: set[asyncio.Task[str]] = set()
        stopping = self.stopping
        try:
            while True:
                batch = await self.collect()
                if batch is not None:
                    self.inflight += 1
                    task = asyncio.create_task(write(batch.lines))
                    tasks.add(task)
                    task.add_done_callback(tasks.discard)
                    await acks.put((task, batch))
                # stopping: what is left in the inbox is taken while a third of the budget lasts;
                # the rest is not acknowledged, and the broker sends it again next session
                if stopping.is_set() and (not self.consumer.inbox or not self.stop_left(1 / 3)):
                    break
        finally:
            await acks.put(None)
            # Writes still running when 60 % of the budget is gone (InfluxDB hanging) are cut short:
            # their batches go to the spool instead, or stay unacknowledged if it cannot take them.
            _, late = await asyncio.wait({acker}, timeout=self.stop_left(0.6) if stopping.is_set() else None)
            if late:
                if tasks:
                    log.warning("stopping: %d write(s) still waiting on InfluxDB; spooling them instead", len(tasks))
                for t in list(tasks):
                    t.cancel()
                await acker

    async def _acker(self, queue: asyncio.Queue[tuple[asyncio.Task[str], Batch] | None]) -> None:
        m, c = self.metrics, self.counters
        while True:
            item = await queue.get()
            if item is None:
                return
            task, batch = item
            try:
                await asyncio.wait({task})
            finally:
                self.inflight -= 1
                self.consumer.wake()  # a batch that has lingered is cut once no write is in flight
            outcome = self._spool_instead(batch) if task.cancelled() else task.result()
            if outcome is None:
                continue  # not durable: not acknowledged, the broker sends it again
            if outcome == "stored":
                c.stored += batch.points
            else:
                c.spooled += batch.points
            c.acked += self.consumer.ack(batch.messages)
            self.consumer.flush()
            if batch.messages:
                m.batch_latency.observe(time.monotonic() - batch.clock.first_at)
            if batch.routed.newest_ts:
                m.lag.set(max(0.0, time.time() - batch.routed.newest_ts / 1e9))
            m.spool_bytes.set(self.spool.bytes)
            m.spool_points.set(self.spool.points)
            m.influx_up.set(1 if self.writer.influx_up else 0)

    def _spool_instead(self, batch: Batch) -> str | None:
        """A batch whose write was cut short by the stop: into the spool (rewriting what InfluxDB
        may have stored is harmless), or None when the spool cannot take it."""
        try:
            self.spool.append(batch.lines)
        except (SpoolFull, OSError) as exc:
            log.error("stopping: cannot spool a batch of %d points (%s); leaving it unacknowledged", batch.points, exc)
            return None
        return "spooled"

    def take(self, batch: Batch, limit: int) -> None:
        """Route messages from the inbox into ``batch`` until it holds ``limit`` points (or the
        inbox is empty), as few router calls as the messages' size allows."""
        inbox = self.consumer.inbox
        routed = batch.routed
        while inbox and routed.points < limit:
            k = max(1, min(len(inbox), int((limit - routed.points) / self._points_per_message)))
            msgs = [inbox.popleft() for _ in range(k)]
            before = routed.points
            self.router.route(msgs, routed)
            batch.messages += msgs
            got = routed.points - before
            if got:
                self._points_per_message = 0.8 * self._points_per_message + 0.2 * (got / k)
            self._dead_letters(routed)

    async def collect(self) -> Batch | None:
        """Gather one write batch; None when there was nothing to do."""
        inbox = self.consumer.inbox
        policy = self.policy
        batch = Batch()
        clock = batch.clock
        routed = batch.routed
        while True:
            now = time.monotonic()
            if inbox:
                self.take(batch, policy.step_end(routed.points))
                policy.taken(clock, now, messages=True, undetected=True)
            idle = not inbox and self.inflight == 0  # nothing else to do: no reason to wait
            if policy.detect_due(clock, now, idle=idle, acks_waiting=bool(routed.acks),
                                 frames_waiting=routed.waiting()):
                self.detect(batch)
            self.format_taken(batch)
            if policy.full(routed.points) or self.stopping.is_set():
                break
            if inbox:
                # more waiting: take it in the next step, after one turn of the event loop. The
                # writes, their answers and the acks run in those turns (and the MQTT client
                # reads); were the inbox emptied in one go, they would wait until the robots paused.
                await asyncio.sleep(0)
                continue
            due = policy.wake_at(clock, min(self._next_tick, self._next_stats), now)
            if not batch.messages:
                if now >= due and not clock.undetected_at:
                    break
                await self.consumer.wait(max(0.0, min(due - now, 1.0)))
                continue
            if policy.cut_due(clock, now, writing=self.inflight > 0, inbox=bool(inbox)):
                break
            await self.consumer.wait(max(0.0, due - now))
        if clock.undetected_at:
            self.detect(batch)
        self.metrics.inbox.set(len(inbox))
        return self.finish(batch)

    # -- detectors -----------------------------------------------------------------------------
    def detect(self, batch: Batch) -> None:
        """Detectors over the frames, statuses and acks taken since the last pass; publish events."""
        batch.clock.undetected_at = 0.0
        work = batch.routed.take_for_detectors()
        events: list[AlertEvent] = []
        if self.startup_events:
            events += self.startup_events
            self.startup_events = []
        for ch in work.clock:
            events += self._clock_changed(ch)
        suite = self.suite
        frames = work.detect
        if suite is not None and (frames or work.statuses):
            try:
                if frames:
                    det = suite.process(catalogue_only(frames), late=work.detect_late, arrived=work.detect_arrived,
                                        held_back=work.detect_held)
                    events.extend(det.events)
                    batch.lines.extend(det.lines)
                    self._count_detected(frames, ok=True)
                for st, at in work.statuses:
                    events.extend(suite.robot_status(st, arrived=at))
            except Exception:
                log.exception("detectors failed on %d frames; the readings are stored anyway", len(frames))
                self.counters.detector_errors += 1
                self.counters.detector_skipped += len(frames)
                self._count_detected(frames, ok=False)
        if work.history:
            self._detect_history(work.history, batch)
        for req, msg in work.acks:
            events.extend(self._acknowledge(req, msg))
        self.publish(events, batch)

    def _clock_changed(self, ch: ClockChange) -> list[AlertEvent]:
        if ch.why is not None:
            self.counters.clock_corrections += 1
            log.warning("robot %s: clock %s, correction now %+.3f s", ch.robot_id, ch.why, ch.offset / _NS)
        if self.suite is None:
            return []
        return list(self.suite.robot_clock(ch.robot_id, ch.scenario_id, ch.offset, ch.now,
                                           ch.why or "checked at start"))

    def _count_detected(self, frames: Sequence[Frame], ok: bool) -> None:
        tally = self.router.tally
        for sid, n in Counter(map(_scenario_of, frames)).items():  # counted in C, a few scenarios looked up
            w = tally.get(sid)
            if w is not None:
                if ok:
                    w.detected += n
                else:
                    w.failed += n

    def _detect_history(self, frames: list[Frame], batch: Batch) -> None:
        """Bulk history through detectors of its own, in event time; its alerts are only stored."""
        if not self.opts.detectors:
            return
        # another stretch of time (an import of an earlier day after a later one, or after a gap) is
        # judged on its own: carried over, a later day's standing alert would swallow this one's
        # raises at its place, and its readings would clear that alert before it was raised. Each
        # stretch keeps its detectors, so two robots' imports of two days sent interleaved are
        # each judged as one run, not afresh at every message.
        stretches: dict[int, list[Frame]] = {}
        for f in frames:
            st = next((st for st in self.history_suites
                       if st[1] - HISTORY_BACK_NS <= f.ts <= st[1] + HISTORY_GAP_NS), None)
            if st is None:
                suite = load_suite(self.opts, AlertTiming.historical)
                if suite is None:
                    return
                st = [suite, f.ts]
                self.history_suites.append(st)
            st[1] = max(st[1], f.ts)
            stretches.setdefault(id(st), []).append(f)
        for st in [st for st in self.history_suites if id(st) in stretches]:
            self.history_suites.remove(st)
            self.history_suites.append(st)  # used last
            self._detect_stretch(st[0], stretches[id(st)], batch)
        del self.history_suites[:-HISTORY_STRETCHES]  # the stretches used longest ago: over

    def _detect_stretch(self, hs: Any, frames: list[Frame], batch: Batch) -> None:
        """One stretch of history through its detectors."""
        try:
            det = hs.process(catalogue_only(frames))
        except Exception:
            log.exception("history detectors failed on %d frames; the readings are stored anyway", len(frames))
            self.counters.detector_errors += 1
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
        self.counters.history_alerts += len(det.events)

    def _acknowledge(self, req: AlertAck | IncidentAck, msg: Incoming) -> list[AlertEvent]:
        """The events of an acknowledgement: the alert's, or every open member's of an incident
        (whose own step comes out with the incident events)."""
        if self.suite is None:
            self._dead(DeadLetter("ack_unknown_alert", "no detectors in this ingest process", msg.topic, msg.payload))
            return []
        ts = req.ts if req.ts is not None else time.time_ns()
        try:
            if isinstance(req, IncidentAck):
                events, _ = self.suite.engine.acknowledge_incident(req.incident_id, req.operator, req.note, ts)
                return list(events)
            return [self.suite.acknowledge(req.alert_id, req.operator, req.note, ts)]
        except KeyError:
            what = f"incident {req.incident_id!r}" if isinstance(req, IncidentAck) else f"alert {req.alert_id!r}"
            self._dead(DeadLetter("ack_unknown_alert", f"{what} is not active", msg.topic, msg.payload))
            return []

    def publish(self, events: list[AlertEvent], batch: Batch) -> None:
        """Publish alert events and the incident steps they made; their lines go with the batch."""
        now = time.time_ns()
        self._out(publish_event, events, now, batch)
        for ev in events:  # what the board was told; minewatch.lograte lets five a minute through, and counts the rest
            log.info("alert %s %s (%s, at %d)", ev.alert_id, ev.state.value, ev.timing.value, ev.ts)
        incidents: list[IncidentEvent] = []
        if self.startup_incidents:
            incidents, self.startup_incidents = self.startup_incidents, []
        if self.suite is not None:
            incidents += self.suite.engine.drain_incidents()
        self._out(publish_incident, incidents, now, batch)
        self.counters.alerts += len(events)
        self.counters.incidents += len(incidents)
        if events or incidents:
            self.consumer.flush()  # an alert goes out now, not after the rest of the batch's work

    def _out(self, publisher: Callable[..., str | None], items: Sequence[Any], now: int, batch: Batch) -> None:
        """Publish alert or incident events (dated ``now`` when the detectors left them undated);
        their lines go with the batch."""
        for it in items:
            if it.detected_ts is None:
                it.detected_ts = now
            ln = publisher(self.consumer.publish, self.topics, it)
            if ln:
                batch.lines.append(ln)

    # -- the cut -------------------------------------------------------------------------------
    def finish(self, batch: Batch) -> Batch | None:
        """Cut ``batch``: the timers' work (tick, watch, stats), then the frames as lines. None
        when there is nothing to write or acknowledge."""
        now = time.monotonic()
        self.metrics.mqtt_up.set(1 if self.consumer.connected.is_set() else 0)
        if now >= self._next_tick:
            self._next_tick = now + self.opts.tick_s
            if self.suite is not None:
                try:
                    now_ns = self.router.now(max(time.time_ns(), self.tick_floor))
                    if now_ns:
                        self.publish(self.suite.tick(now_ns), batch)
                except Exception:
                    log.exception("detector tick failed")
                    self.counters.detector_errors += 1
        if now >= self._next_watch:
            self._next_watch = now + self.opts.watch_s
            self._publish_watch(batch)
        if now >= self._next_stats:
            if self._next_stats:
                ln = self.stats_line()
                if ln:
                    batch.lines.append(ln)
            self._next_stats = now + self.opts.stats_interval_s
        self.format_taken(batch)
        if not batch.lines and not batch.messages:
            return None
        self.metrics.batch_points.observe(batch.points)
        return batch

    def format_taken(self, batch: Batch) -> None:
        """The frames and statuses taken so far as lines of the batch. Done after every step, not
        only at the cut: a cut then costs no more than a step, and nothing (the detectors, an
        alert waiting to go out) waits behind the formatting of a whole batch."""
        r = batch.routed
        if r.status_lines:
            batch.lines += r.status_lines
            r.status_lines = []
        if r.store:
            batch.lines += self.fmt.format_many(r.store, r.store_late, r.store_robot_ts)
            r.store, r.store_late, r.store_robot_ts = [], [], {}

    # -- side outputs --------------------------------------------------------------------------
    def _dead_letters(self, routed: Routed) -> None:
        for dl in routed.take_dead():
            self._publish_dead(dl)

    def _dead(self, dl: DeadLetter) -> None:
        self.counters.dead(dl.reason)
        self._publish_dead(dl)

    def _publish_dead(self, dl: DeadLetter) -> None:
        # one line each; a burst of them is cut down and counted by minewatch.lograte, which every
        # minewatch command puts in front of its loggers (the letters are all published and counted)
        log.info("dead letter: %r", dl)
        self.consumer.publish(self.topics.deadletter(dl.reason), dl.encode(str(self.partition)), 0, False)

    def rejected(self, rejected: Sequence[tuple[str, str]]) -> None:
        """Lines InfluxDB refused: to the dead letters, with the telemetry topic they came from
        (known by the formatter for the lines this process made)."""
        for ln, why in rejected:
            origin = self.fmt.origin(ln)
            topic = self.topics.telemetry(*origin) if origin is not None else ""
            self._dead(DeadLetter("influx_rejected", why, topic, ln.encode()))

    def stats_line(self) -> str | None:
        c = self.counters
        s = c.seq
        fields: dict[str, int | float] = {
            "received": c.points, "stored": c.stored, "spooled": c.spooled,
            "deadlettered": sum(c.deadlettered.values()), "alerts": c.alerts,
            "duplicates": s.duplicates, "gaps": s.gaps, "late": s.late, "restarts": s.resets,
            "spool_points": self.spool.points, "spool_bytes": self.spool.bytes,
            "influx_up": self.writer.influx_up, "inbox": len(self.consumer.inbox),
        }
        return stats_line(self.stats_tags, fields, time.time_ns())

    # -- whether each scenario is watched --------------------------------------------------------
    def _watch_state(self, w: ScenarioTally, now_ns: int) -> tuple[WatchState, str]:
        if self.suite is None:
            return "detectors_off", "this ingest process runs without detectors"
        if w.failed:
            return "not_detected", f"the detectors failed on {w.failed} frame(s) in the last {self.opts.watch_s:g} s"
        if w.last_arrival is None or now_ns - w.last_arrival > WATCH_SILENCE_S * _NS:
            since = "ever" if w.last_arrival is None else f"{(now_ns - w.last_arrival) / _NS:.0f} s"
            return "no_data", f"no frame for {since}"
        return "watched", ""

    def _publish_watch(self, batch: Batch) -> None:
        """``watch/{scenario}`` (retained) for each scenario of this partition, and a system alert
        for a scenario whose frames arrive but are not checked by the detectors."""
        now = time.time_ns()
        events: list[AlertEvent] = []
        for sid, w in self.router.tally.items():
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
            self.publish(events, batch)

    def _not_watched_signal(self, sid: str, on: bool, detail: str, now: int) -> list[AlertEvent]:
        from detectors.engine import Signal  # the suite is loaded, so detectors import

        sc = SCENARIOS[sid]
        where = f"{sid} ({sc.name})"
        msg = (f"Readings from {where} are being stored but not checked by the detectors ({detail}): the place is "
               f"not watched. Check the ingestor's log and watch the place by other means." if on else
               f"Readings from {where} are checked by the detectors again: the alert is cleared.")
        assert self.suite is not None
        return list(self.suite.engine.update(Signal(
            scenario_id=sid, detector="not_watched", subject=sid, kind=AlertKind.system, source="ingest",
            severity=Severity.alarm if on else None, ts=now, message=msg,
            evidence={"rule": "every frame of a watched place goes through the detectors", "detail": detail,
                      "partition": str(self.partition)})))
