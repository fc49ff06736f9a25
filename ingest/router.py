"""The message router: MQTT messages in, what they mean out. No I/O.

:meth:`Router.route` takes any number of messages (topic, payload, when they arrived) and adds
what they hold to a :class:`Routed`: the frames to store (placed in time: a robot clock that is
off is corrected, and a frame is live, late or history; named by its seq: new, late, a repeat or
a restarted robot), the frames for the live and the history detectors, robot statuses and their
lines, acknowledgement requests, robot clock changes, and the dead letters with their reasons.
Nothing is published, written or acknowledged here: the pipeline (:mod:`ingest.pipeline`) does
that with what comes out, so the router is tested without a broker or a database.

Every check of what a client may send is here, against the limits of :class:`IngestOptions`;
a new message kind is a branch of :meth:`Router._one`, a new limit a field of the options and a
check in the method of its message kind.
"""

from __future__ import annotations

import logging
import operator
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

from pydantic import ValidationError

import msgspec

from minewatch.catalogue import SCENARIOS
from minewatch.registry import RobotRegistry
from minewatch.schema import AlertAck, IncidentAck, RobotStatus
from minewatch.topics import Topics
from minewatch.wire import Frame, FrameError, FramesOnTopic, decode_frames, is_id

from ingest.consumer import Incoming
from ingest.counters import Counters
from ingest.deadletter import DeadLetter
from ingest.lines import CHANNEL_RE, RESERVED_FIELDS, status_line
from ingest.options import IngestOptions
from ingest.partition import Partition
from ingest.seqtrack import DUPLICATE, LATE, REPEATS, SeqTracker
from ingest.timing import HISTORY, RobotClocks

__all__ = ["ClockChange", "Routed", "Router", "ScenarioTally", "iso"]

log = logging.getLogger("minewatch.ingest")

_seq, _ts = operator.attrgetter("seq"), operator.attrgetter("ts")
_NS = 1_000_000_000


def iso(ns: int) -> str:
    """A time for a person (UTC, to the second), whatever the year."""
    try:
        return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(ns // _NS))
    except (OverflowError, OSError, ValueError):
        return f"{ns} ns"


@dataclass(slots=True)
class ClockChange:
    """A robot's clock correction changed (``why``), or a restored robot_clock alert is to be
    checked against it (``why`` None)."""

    robot_id: str
    scenario_id: str
    offset: int
    why: str | None
    now: int


@dataclass
class ScenarioTally:
    """What came for one scenario, and what the detectors did with it, since the last watch status."""

    frames: int = 0
    detected: int = 0
    skipped: int = 0       # repeats of readings already checked
    failed: int = 0        # frames the detectors raised on
    last_ts: int | None = None
    last_arrival: int | None = None
    published: str = ""    # the state last published


@dataclass
class Routed:
    """What routed messages hold, in the order they came. The pipeline takes the detectors' part
    (:meth:`take_for_detectors`) as it goes and the storage part when it cuts the batch."""

    # to store: every frame but the proven repeats, with its lateness and, when its clock was
    # corrected, the robot's own time (by index)
    store: list[Frame] = field(default_factory=list)
    store_late: list[bool] = field(default_factory=list)
    store_robot_ts: dict[int, int] = field(default_factory=dict)
    # for the detectors: frames not seen before, whether late, when their message arrived
    detect: list[Frame] = field(default_factory=list)
    detect_late: list[bool] = field(default_factory=list)
    detect_arrived: list[int] = field(default_factory=list)
    # which of them (by index) a robot held back: they fill a gap in its numbering behind newer frames
    detect_held: list[int] = field(default_factory=list)
    history: list[Frame] = field(default_factory=list)   # bulk history, for the history detectors
    statuses: list[tuple[RobotStatus, int | None]] = field(default_factory=list)  # and when seen
    status_lines: list[str] = field(default_factory=list)
    acks: list[tuple[AlertAck | IncidentAck, Incoming]] = field(default_factory=list)
    clock: list[ClockChange] = field(default_factory=list)
    dead: list[DeadLetter] = field(default_factory=list)
    points: int = 0
    newest_ts: int = 0

    def waiting(self) -> int:
        """Frames waiting for the live detectors."""
        return len(self.detect)

    def take_for_detectors(self) -> Routed:
        """The detectors' part so far (frames, history, statuses, acks, clock changes), leaving
        this one without it."""
        out = Routed(detect=self.detect, detect_late=self.detect_late, detect_arrived=self.detect_arrived,
                     detect_held=self.detect_held, history=self.history, statuses=self.statuses, acks=self.acks,
                     clock=self.clock)
        self.detect, self.detect_late, self.detect_arrived, self.detect_held = [], [], [], []
        self.history, self.statuses, self.acks, self.clock = [], [], [], []
        return out

    def take_dead(self) -> list[DeadLetter]:
        dead, self.dead = self.dead, []
        return dead


class Router:
    """Routes messages for one partition (see the module). Holds what routing remembers: the
    robots' clocks and numbering, the reading names taken so far, the data's clock."""

    def __init__(self, topics: Topics, options: IngestOptions, counters: Counters,
                 robots: RobotRegistry | None = None) -> None:
        self.topics = topics
        self.opts = o = options
        self.partition: Partition = o.partition
        self.counters = counters
        if o.clock not in ("wall", "data"):
            raise ValueError(f"clock must be wall or data, not {o.clock!r}")
        self.data_clock = o.clock == "data"
        self.data_now = 0  # on the data clock: the newest event time seen
        self.clocks = RobotClocks(o.clock_tolerance_s, o.late_after_s, o.live_horizon_s, settle_s=o.clock_settle_s,
                                  correct=not self.data_clock)
        self.seq = SeqTracker()
        self.history_seq = SeqTracker()
        counters.seq, counters.history_seq = self.seq.counts, self.history_seq.counts
        self.robots = robots if robots is not None else RobotRegistry(o.robots, max_robots=o.max_robots)
        self.clock_alerts: set[str] = set()  # robots with a restored robot_clock alert not yet checked
        self.tally = {sid: ScenarioTally() for sid in SCENARIOS if self.partition.owns(sid)}
        # reading names known to be channel names: the catalogue's, and those met since
        self._good_channels = {c.name for sc in SCENARIOS.values() for c in sc.channels
                               if CHANNEL_RE.match(c.name) and c.name not in RESERVED_FIELDS}
        self._frames_on = FramesOnTopic(self._good_channels)
        # telemetry topics of streams met before (ids checked, robot taken, scenario known):
        # (scenario id, robot id, the scenario's tally or None), for the one-frame fast path
        self._streams: dict[str, tuple[str, str, ScenarioTally | None]] = {}

    def now(self, wall_ns: int) -> int:
        """The ingestor's clock: ``wall_ns``, or on the data clock the newest event time seen."""
        return self.data_now if self.data_clock else wall_ns

    # -- messages ------------------------------------------------------------------------------
    def route(self, messages: Sequence[Incoming], out: Routed) -> None:
        """Add what ``messages`` hold to ``out`` (see the module)."""
        one, fast = self._one, self._one_frame
        self.counters.messages += len(messages)
        lo, hi = self.ts_window()
        lo += _NS  # a frame within a second of the window's old end goes the general way, which looks at the clock again
        for msg in messages:
            try:
                if not fast(msg, out, lo, hi):
                    one(msg, out)
            except Exception as exc:
                log.exception("could not handle a message on %s", msg.topic)
                self._dead(out, "internal_error", f"{type(exc).__name__}: {exc}", msg)

    def _one_frame(self, msg: Incoming, out: Routed, lo: int, hi: int) -> bool:
        """The common message in a few steps: one frame, on the telemetry topic of a stream met
        before, inside the window ``lo``..``hi`` (of this call), next in its robot's numbering,
        live with the robot's clock right. It is routed exactly as :meth:`_telemetry` would route
        it (True); anything else is left untouched for the general way (False)."""
        stream = self._streams.get(msg.topic)
        payload = msg.payload
        if stream is None:
            return self._learn_stream(msg.topic)
        if payload[:1] == b"[" or len(payload) > self.opts.max_message_bytes:
            return False
        sid, rid, tally = stream
        f = self._frames_on.decode_one(payload, sid, rid)
        if f is None:
            return False
        ts, seq, boot = f.ts, f.seq, f.boot
        if not lo <= ts <= hi or not self.seq.follows(rid, seq, boot) or (self.clock_alerts and rid in self.clock_alerts):
            return False
        received = max(self.data_now, ts) if self.data_clock else msg.received_ns
        if not self.clocks.live_now(rid, ts, seq, boot, received):
            return False
        self.seq.take_next(rid, seq, ts)
        self.data_now = received if self.data_clock else self.data_now
        out.store.append(f)
        out.store_late.append(False)
        out.detect.append(f)
        out.detect_late.append(False)
        out.detect_arrived.append(received)
        if ts > out.newest_ts:
            out.newest_ts = ts
        out.points += 1
        c = self.counters
        c.points += 1
        c.readings += len(f.readings)
        if tally is not None:
            tally.frames += 1
            tally.last_arrival = msg.received_ns
            if tally.last_ts is None or ts > tally.last_ts:
                tally.last_ts = ts
        return True

    def _learn_stream(self, topic: str) -> bool:
        """Remember ``topic`` for the fast path when it is the telemetry topic of a stream that may
        take it (ids, robot, scenario); False: this message goes the general way either way."""
        parsed = self.topics.parse_telemetry(topic)
        if parsed is None:
            return False
        sid, rid = parsed
        if is_id(sid) and is_id(rid) and sid in SCENARIOS and rid in self.robots.known and self.opts.max_frames >= 1:
            if len(self._streams) >= 100_000:  # robots come and go; keep it bounded
                self._streams.clear()
            self._streams[topic] = (sid, rid, self.tally.get(sid))
        return False

    def _one(self, msg: Incoming, out: Routed) -> None:
        topic = msg.topic
        topics = self.topics
        if len(msg.payload) > self.opts.max_message_bytes:
            self._dead(out, "too_large", f"{len(msg.payload)} bytes, over the limit of "
                       f"{self.opts.max_message_bytes} bytes a message", msg)
            return
        parsed = topics.parse_telemetry(topic)
        if parsed is not None:
            self._telemetry(msg, parsed[0], parsed[1], out)
        elif (robot := topics.parse_status(topic)) is not None:
            self._status(msg, robot, out)
        elif (alert := topics.parse_alert(topic)) is not None and alert[0] == "ack":
            self._ack_request(msg, AlertAck, "alert_id", alert[1], out)
        elif (inc := topics.parse_incident(topic)) is not None and inc[0] == "ack":
            self._ack_request(msg, IncidentAck, "incident_id", inc[1], out)
        elif (hist := topics.parse_history(topic)) is not None:
            self._telemetry(msg, hist[0], hist[1], out, history=True)
        else:
            self._dead(out, "bad_topic", "not a telemetry, history, status or ack topic", msg)

    def _dead(self, out: Routed, reason: str, detail: str, msg: Incoming) -> None:
        self.counters.dead(reason)
        out.dead.append(DeadLetter(reason, detail, msg.topic, msg.payload))

    # -- telemetry -----------------------------------------------------------------------------
    def _telemetry(self, msg: Incoming, scenario_id: str, robot_id: str, out: Routed, history: bool = False) -> None:
        # The common case costs one msgspec decode and a few calls per message: frames of the
        # topic's robot, known scenario, channel names seen before, the robot's clock right, seq
        # running on. Anything else goes the checked way (_checked), which names the reason.
        if robot_id not in self.robots.known and not self.robots.allows(robot_id):
            self._dead(out, "unknown_robot", self.robots.why_not(robot_id), msg)
            return
        frames = self._frames_on.decode(msg.payload, scenario_id, robot_id)
        if frames is None or scenario_id not in SCENARIOS:
            frames = self._checked(msg, scenario_id, robot_id, out)
            if frames is None:
                return
        n = len(frames)
        if n > self.opts.max_frames:
            self._dead(out, "too_many_frames", f"{n} frames, over the limit of {self.opts.max_frames} a message", msg)
            return
        raw_ts = list(map(_ts, frames))
        lo, hi = self.ts_window(history)
        # a live frame's time is judged once its robot's clock is corrected (below): a clock reset to
        # a date weeks back, or days ahead, is corrected once it stays so, not refused for ever
        clocked = not history and not self.data_clock
        if not clocked and (min(raw_ts) < lo or max(raw_ts) > hi):
            keep = self._in_window(frames, raw_ts, lo, hi, msg, out)
            if not keep:
                return
            frames, raw_ts = [frames[i] for i in keep], [raw_ts[i] for i in keep]
            n = len(frames)
        seqs = list(map(_seq, frames))
        boot = frames[0].boot
        one_boot = n == 1 or all(f.boot == boot for f in frames)
        counters = self.counters
        corrected = False
        received = msg.received_ns
        if self.data_clock:
            self.data_now = max(self.data_now, max(raw_ts))
            received = self.data_now
        if history:
            classes: list[int] | None = [HISTORY] * n
        else:
            place = self.clocks.place(robot_id, raw_ts, seqs, boot, received, floor=lo, ceiling=hi)
            classes = place.classes
            if min(raw_ts) + place.offset < lo or max(raw_ts) + place.offset > hi:  # outside even as corrected
                keep = self._in_window(frames, raw_ts, lo, hi, msg, out, place.offset)
                if not keep:  # a clock not settled yet says nothing of it (a restored alert stands)
                    return
                frames, raw_ts, seqs = [frames[i] for i in keep], [raw_ts[i] for i in keep], [seqs[i] for i in keep]
                classes = None if classes is None else [classes[i] for i in keep]
                n = len(frames)
            if place.changed is not None or robot_id in self.clock_alerts:
                self.clock_alerts.discard(robot_id)
                out.clock.append(ClockChange(robot_id, scenario_id, place.offset, place.changed, received))
            if place.offset:
                off = place.offset
                frames = [msgspec.structs.replace(f, ts=f.ts + off) for f in frames]
                corrected = True
        c = self.seq.counts
        dups0, resets0 = c.duplicates, c.resets
        store = frames
        if classes is None:  # all live
            kinds = (self.seq.observe_run(robot_id, seqs, raw_ts, boot) if one_boot else
                     [self.seq.observe(robot_id, s, t, f.boot) for s, t, f in zip(seqs, raw_ts, frames)])
            if kinds is None:
                late = [False] * n
                out.detect += frames
                out.detect_late += late
                out.detect_arrived += [received] * n
            else:
                late = [False] * n if msg.redelivered else [k == LATE for k in kinds]
                _to_detectors(frames, kinds, late, received, out, msg.redelivered)
                if DUPLICATE in kinds:
                    store, late = _not_proven_repeats(frames, kinds, late)
        else:
            late = [cls != 0 for cls in classes]
            live = [i for i, cls in enumerate(classes) if cls != HISTORY]
            old = [i for i, cls in enumerate(classes) if cls == HISTORY]
            kinds = [0] * n
            if live:
                for i in live:
                    kinds[i] = self.seq.observe(robot_id, seqs[i], raw_ts[i], frames[i].boot)
                    late[i] = late[i] or (kinds[i] == LATE and not msg.redelivered)
                _to_detectors([frames[i] for i in live], [kinds[i] for i in live], [late[i] for i in live],
                              received, out, msg.redelivered)
            if old:
                for i in old:
                    kinds[i] = self.history_seq.observe(robot_id, seqs[i], raw_ts[i], frames[i].boot)
                    if kinds[i] not in REPEATS:
                        out.history.append(frames[i])
                counters.history += len(old)
            if DUPLICATE in kinds:
                store, late = _not_proven_repeats(frames, kinds, late)
        if corrected:  # the robot's own times go with the corrected ones (how it numbers its readings)
            own = {id(f): t for f, t in zip(frames, raw_ts)}
            base = len(out.store)
            for k, f in enumerate(store):
                out.store_robot_ts[base + k] = own[id(f)]
        out.store += store
        out.store_late += late
        counters.readings += sum(len(f.readings) for f in frames)
        newest = max(map(_ts, frames)) if corrected else max(raw_ts)
        out.newest_ts = max(out.newest_ts, newest)
        out.points += n
        counters.points += n
        w = self.tally.get(scenario_id)
        if w is not None and not history:
            w.frames += n
            w.skipped += c.duplicates - dups0
            w.last_arrival = msg.received_ns
            if w.last_ts is None or newest > w.last_ts:
                w.last_ts = newest
        if c.resets != resets0:
            log.info("robot %s started its numbering again (a reboot, or a spare with its id)", robot_id)
        if True in late:
            counters.late += sum(late)

    def ts_window(self, history: bool = False, *, clock_ahead: bool = True) -> tuple[int, int]:
        """The robot times taken now: from the raw retention's start (less a margin) to a little
        ahead: ``max_clock_ahead_s`` for live frames by a robot's own clock, which the clock
        correction brings back; ``max_ahead_s`` for history, statuses and acknowledgements, taken as
        they are (and, on the data clock, ahead of the newest time seen)."""
        now = time.time_ns()
        o = self.opts
        lo = now - int(o.max_age_s * _NS)
        if self.data_clock:
            return lo, max(now, self.data_now) + int(o.max_ahead_s * _NS)
        return lo, now + int((o.max_clock_ahead_s if clock_ahead and not history else o.max_ahead_s) * _NS)

    def _in_window(self, frames: list[Frame], raw_ts: list[int], lo: int, hi: int, msg: Incoming, out: Routed,
                   offset: int | None = None) -> list[int]:
        """The indices of the frames dated inside [lo, hi], with their robot's clock correction
        ``offset`` where the frames are live and placed on their robot's clock (None: they are not);
        the message goes to the dead letters for the rest."""
        off = offset or 0
        keep = [i for i, t in enumerate(raw_ts) if lo <= t + off <= hi]
        first = next(t for t in raw_ts if not lo <= t + off <= hi)
        if offset is None:
            detail = (f"{len(frames) - len(keep)} of {len(frames)} frames dated outside the window taken now, "
                      f"{iso(lo)} to {iso(hi)} (first: {iso(first)}); {len(keep)} taken")
        else:
            fix = f", corrected by {off / _NS:+.0f} s," if off else ""
            what, side = ("older than the raw retention", "behind") if first + off < lo else ("too far ahead", "ahead")
            detail = (f"{len(frames) - len(keep)} of {len(frames)} frames dated outside {iso(lo)} to {iso(hi)}{fix} "
                      f"{what} (first: {iso(first)} by the robot's clock); {len(keep)} taken (a robot clock "
                      f"steadily {side} is corrected after --clock-settle)")
        self._dead(out, "ts_out_of_range", detail, msg)
        return keep

    def _checked(self, msg: Incoming, scenario_id: str, robot_id: str, out: Routed) -> list[Frame] | None:
        """Decode and check one telemetry message the general way: the frames, or None once the
        message is dead-lettered with the reason."""
        try:
            frames = decode_frames(msg.payload)
        except FrameError as exc:
            self._dead(out, exc.reason, exc.detail, msg)
            return None
        good = self._good_channels
        new: dict[str, None] = {}
        for f in frames:
            if f.robot_id != robot_id or f.scenario_id != scenario_id:
                self._dead(out, "topic_mismatch", f"frame of robot {f.robot_id!r} in scenario {f.scenario_id!r} on "
                           f"the topic of robot {robot_id!r} in {scenario_id!r}", msg)
                return None
            if scenario_id not in SCENARIOS:
                self._dead(out, "unknown_scenario", f"scenario {scenario_id!r} is not in the catalogue", msg)
                return None
            for k in f.readings:
                if k not in good and k not in new:
                    if k in RESERVED_FIELDS or not CHANNEL_RE.match(k):
                        self._dead(out, "bad_channel", f"reading name {k[:100]!r} is not a channel name "
                                   "(letters, digits, '_', '.', '-') or is reserved", msg)
                        return None
                    new[k] = None
        if new:  # taken all at once, or not at all
            o = self.opts
            if len(new) > o.max_new_channels or len(good) + len(new) > o.max_channels:
                self._dead(out, "too_many_channels", f"{len(new)} new reading names (first {next(iter(new))!r}); "
                           f"at most {o.max_new_channels} new in a message and {o.max_channels} in all "
                           f"({len(good)} known)", msg)
                return None
            good.update(new)
            self._frames_on.learn(new)
        return frames

    # -- statuses and acknowledgements ---------------------------------------------------------
    def _status(self, msg: Incoming, robot_id: str, out: Routed) -> None:
        if not msg.payload:
            return  # a cleared retained status
        try:
            st = RobotStatus.model_validate_json(msg.payload)
        except ValidationError as exc:
            self._dead(out, "bad_status", str(exc), msg)
            return
        if st.robot_id != robot_id:
            self._dead(out, "topic_mismatch", f"status of robot {st.robot_id!r} on the topic of {robot_id!r}", msg)
            return
        if robot_id not in self.robots.known and not self.robots.allows(robot_id):
            self._dead(out, "unknown_robot", self.robots.why_not(robot_id), msg)
            return
        if not self.partition.owns(st.scenario_id):
            return
        if st.ts is not None:
            off = self.clocks.offset(robot_id)
            if off:
                st = st.model_copy(update={"ts": max(0, st.ts + off)})
        if st.ts is not None and not self._dated_in_window("status", st.ts, msg, out):  # as stored: corrected
            return
        ln = status_line(st)
        if ln:
            out.status_lines.append(ln)
        # an old status (a retained one from long ago, history) is stored, not taken as the robot's state now
        now = self.data_now if self.data_clock else msg.received_ns
        if self.data_clock and now == 0:  # no frame seen yet: the data's clock has not started
            now = st.ts if st.ts is not None else 0
        if st.ts is None or now - st.ts <= self.clocks.horizon:
            out.statuses.append((st, now if now else None))

    def _ack_request(self, msg: Incoming, kind: type[AlertAck | IncidentAck], id_field: str, topic_id: str,
                     out: Routed) -> None:
        try:
            req = kind.model_validate_json(msg.payload)
            if getattr(req, id_field) != topic_id:
                raise ValueError(f"{id_field} {getattr(req, id_field)!r} differs from the topic's {topic_id!r}")
        except ValueError as exc:  # pydantic's ValidationError is a ValueError
            self._dead(out, "bad_ack", str(exc), msg)
            return
        if req.ts is not None and not self._dated_in_window("acknowledgement", req.ts, msg, out):
            return
        if self.partition.owns(req.scenario_id):  # an ack without a scenario goes to partition 0
            out.acks.append((req, msg))

    def _dated_in_window(self, what: str, ts: int, msg: Incoming, out: Routed) -> bool:
        """Whether a status or acknowledgement dated ``ts`` is taken; if not, it is dead-lettered."""
        lo, hi = self.ts_window(clock_ahead=False)
        if lo <= ts <= hi:
            return True
        self._dead(out, "ts_out_of_range", f"{what} dated {iso(ts)}, outside the window taken now, "
                   f"{iso(lo)} to {iso(hi)}", msg)
        return False


def _not_proven_repeats(frames: Sequence[Frame], kinds: Sequence[int],
                        late: Sequence[bool]) -> tuple[list[Frame], list[bool]]:
    """The frames to store: a proven repeat (a reading this process took, or found stored) is not
    written again; its first copy is durable before this message is acknowledged. (Written again
    it could land at another time, under a robot clock correction that has moved.) A presumed
    repeat is written again: if it was stored, it lands on itself."""
    keep = [i for i, k in enumerate(kinds) if k != DUPLICATE]
    return [frames[i] for i in keep], [late[i] for i in keep]


def _to_detectors(frames: Sequence[Frame], kinds: Sequence[int], late: Sequence[bool], received_ns: int,
                  out: Routed, redelivered: bool) -> None:
    """Frames not seen before to the detectors, each seen at ``received_ns`` (the ingestor's clock:
    its own, or the data's newest time with ``--clock data``, which a robot whose messages lag
    behind the others' does not fall silent by).

    A redelivered message's frames that fill a gap behind newer frames of their robot (a message a
    dead group worker held, which JetStream sends again only after the ack wait, behind newer
    ones) go to the history detectors instead: the live ones have already moved past them, and an
    older reading must not move the live board (raised again after the newer readings cleared it,
    such an alert would stand with nothing left to clear it). Their condition was the last
    holder's to report, and the newer readings say what holds now. First-hand, such frames (a
    robot's held-back readings) are named in ``detect_held``: the live detectors judge them apart
    from the newer readings (:meth:`detectors.DetectorSuite.process`, ``held_back``)."""
    for f, k, is_late in zip(frames, kinds, late):
        if k in REPEATS:  # a repeat is not detected twice
            continue
        if k == LATE:
            if redelivered:
                out.history.append(f)
                continue
            out.detect_held.append(len(out.detect))
        out.detect.append(f)
        out.detect_late.append(is_late)
        out.detect_arrived.append(received_ns)
