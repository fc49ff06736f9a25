"""Robot liveness: which robots are reporting, from where, and since when.

A stage of the suite (:class:`detectors.DetectorSuite`) beside the detectors: it keeps each
robot's last sign of life and place, and raises and clears the robot-level alerts that are not
about readings:

* ``robot_offline`` by silence (the deadman: a notice after :data:`ROBOT_SILENCE_S` without a
  frame, a warning after :data:`ROBOT_LONG_SILENCE_S`) and by the robot's own status (or its
  MQTT last will);
* ``robot_clock``, the ingestor's correction of a robot's clock;
* the end of a robot's part of the per-robot alerts of a place it has left
  (:meth:`RobotLiveness.departed`, after :data:`detectors.base.STALE_S`).

Time is the robot's frames' arrival at the ingestor live, their own times in replay.
"""

from __future__ import annotations

import operator
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from detectors.base import NS, REGISTRY, ROBOTS, STALE_S, EventOrder, Pending
from detectors.engine import AlertEngine, Signal
from detectors.health_rules import ROBOT_LONG_SILENCE_S, ROBOT_SILENCE_S
from detectors.rules import subject, where_robot
from minewatch.catalogue import Scenario
from minewatch.schema import AlertEvent, AlertKind, AlertTiming, RobotStatus, Severity
from minewatch.wire import Origin

_PLACE_ROBOT = operator.attrgetter("scenario_id", "robot_id")

__all__ = ["GAP_NS", "LONG_NS", "Robot", "RobotLiveness", "duration", "per_robot_detectors"]

GAP_NS = int(ROBOT_SILENCE_S * NS)
LONG_NS = int(ROBOT_LONG_SILENCE_S * NS)


def per_robot_detectors() -> frozenset[str]:
    """The alerts that are about what one robot's own readings show over time (a rate, a
    sensor's health, a change): once that robot has left the place (no frame from there for
    :data:`~detectors.base.STALE_S`) nobody can say they still hold, and they would stand until it
    came back; its part of them ends (and it is raised again if the robot finds the same on its
    return). Limit alerts stay until someone reads the place clear. Which alerts are such is each
    detector's word (``Detector.per_robot``)."""
    return frozenset(a for cls in REGISTRY.values() if cls.per_robot for a in cls.alerts)


def duration(seconds: float) -> str:
    """``seconds`` for an operator: ``2 h 05 min``, ``7 min``, ``40 s``."""
    if seconds >= 3600:
        h, m = divmod(round(seconds / 60), 60)
        return f"{h} h {m:02d} min"
    if seconds >= 60:
        return f"{seconds / 60:.0f} min"
    return f"{seconds:.0f} s"


@dataclass
class Robot:
    """One robot's liveness."""

    last_seen: int = -1
    scenario: str | None = None
    offline: bool = False  # by its status
    offline_at: int = -1   # when that status was seen (its arrival live, its time in replay)
    silent: int = 0       # by the deadman: 1 silent a minute (a notice), 2 five minutes (a warning)
    number: int = -1      # index in RobotLiveness.numbered


class RobotLiveness:
    """Every robot's last sign of life, silences, status and clock.

    Parameters
    ----------
    scenarios
        The catalogue (for where a robot is, in messages).
    timing
        The timing of the alerts raised here (live, or historical for bulk history).
    """

    def __init__(self, scenarios: Mapping[str, Scenario], timing: AlertTiming) -> None:
        self.scenarios = scenarios
        self.timing = timing
        self.robots: dict[str, Robot] = {}
        self.numbered: list[Robot] = []
        self.place_seen: dict[tuple[str, str], int] = {}  # (scenario, robot) -> when last seen there
        # no robot can fall silent before this time (see deadman); 0 asks for a look at the next call
        self.deadman_due = 0
        self.per_robot = per_robot_detectors()

    def robot(self, rid: str) -> Robot:
        """Robot ``rid``'s liveness, made (and numbered) when first asked for."""
        r = self.robots.get(rid)
        if r is None:
            r = self.robots[rid] = Robot(number=len(self.numbered))
            self.numbered.append(r)
        return r

    def offline_signal(self, rid: str, source: str, on: bool, ts: int, scenario_id: str | None,
                       long: bool = False) -> Signal:
        """A robot's ``robot_offline`` step: by its status (``source`` ``status``: a warning), or by
        the deadman (``silence``: a notice after a minute, a warning after five, ``long``)."""
        r = self.robot(rid)
        sid = scenario_id or r.scenario or "unknown"
        where = where_robot(rid, self.scenarios.get(sid))
        robot = where[:1].upper() + where[1:]
        severity = Severity.warning
        if source == "status":
            rule = "robot status: offline (status message or its MQTT last will)"
            msg = (f"{robot} is offline: its readings have stopped. Check the robot and cover its route by a "
                   f"manual inspection." if on else f"{robot} is back online: the alert is cleared.")
        elif long:
            rule = (f"robot deadman: no frame for {ROBOT_LONG_SILENCE_S:g} s, ten 30 s polling cycles "
                    f"(domain §3) [P]")
            msg = f"{robot} has sent nothing for {ROBOT_LONG_SILENCE_S / 60:g} min: its route is not being inspected; " \
                  f"check its 5G link and battery and cover its route by a manual inspection."
        else:
            rule = f"robot deadman: no frame for {ROBOT_SILENCE_S:g} s, two 30 s polling cycles (domain §3) [P]"
            severity = Severity.info
            msg = (f"{robot} has sent nothing for {ROBOT_SILENCE_S:g} s, most likely a coverage hole on its route; "
                   f"if it lasts {ROBOT_LONG_SILENCE_S / 60:g} min it is a warning." if on else
                   f"{robot} reports again: the alert is cleared.")
        return Signal(scenario_id=sid, place=ROBOTS, detector="robot_offline", subject=rid, kind=AlertKind.robot_health,
                      source=source, severity=severity if on else None, ts=ts, message=msg, robot_id=rid,
                      evidence={"rule": rule, "robot": rid, "by": source}, timing=self.timing)

    # -- frames ------------------------------------------------------------------------------
    def frames(self, frames: Sequence[Origin], robots: npt.NDArray[np.int64], clock: npt.NDArray[np.int64],
               now: int, pending: list[Pending]) -> None:
        """A batch's frames (``robots``: each frame's robot number, ``clock``: when it was seen):
        each robot's last-seen time, and its silences: a gap of :data:`ROBOT_SILENCE_S` or more
        between its frames (in time order) raises ``robot_offline`` at the gap's start plus that
        time, and the next frame clears it. Robots without a gap or a standing silence are updated
        in bulk; the others frame by frame (:meth:`frame`). Then the deadman at ``now``."""
        gap = GAP_NS
        order = np.lexsort((clock, robots))
        r, t = robots[order], clock[order]
        starts = np.flatnonzero(np.r_[True, r[1:] != r[:-1]])
        ends = np.r_[starts[1:], r.shape[0]]
        # groups with a gap inside: the gap between i and i + 1 within one robot
        inner = np.flatnonzero((np.diff(t) >= gap) & (r[1:] == r[:-1]))
        numbered = self.numbered
        gapped = set(np.searchsorted(starts, inner, side="right").tolist()) if inner.shape[0] else set()
        rl, tl, ol = r.tolist(), t.tolist(), order.tolist()
        keys = list(map(_PLACE_ROBOT, frames))
        moved = len(set(keys)) > starts.shape[0]  # a robot read more than one place in this batch
        walk = []  # robots whose frames go one by one: in robot id order, as their events
        for g, (a, b) in enumerate(zip(starts.tolist(), ends.tolist())):
            rob = numbered[rl[a]]
            if (g + 1) in gapped or rob.silent or rob.offline or (rob.last_seen >= 0 and tl[a] - rob.last_seen >= gap):
                walk.append((frames[ol[a]].robot_id, a, b, rob))
            elif tl[b - 1] >= rob.last_seen:
                if rob.last_seen < 0:
                    self.deadman_due = 0  # a robot first seen: watched from now on
                rob.last_seen = tl[b - 1]
                rob.scenario = sid = frames[ol[b - 1]].scenario_id
                if not moved:
                    self.place_seen[(sid, frames[ol[a]].robot_id)] = tl[b - 1]
        if moved:
            # each (place, robot)'s newest frame: the last of its key in the frames in (robot, seen)
            # order (one robot's frames from two places each count for their own place)
            place_seen = self.place_seen
            for key, t_seen in dict(zip([keys[i] for i in ol], tl)).items():
                if t_seen > place_seen.get(key, -1):
                    place_seen[key] = t_seen
        for _, a, b, rob in sorted(walk, key=lambda w: w[0]):
            for k in range(a, b):
                self.frame(frames[ol[k]], tl[k], rob, pending)
        for sig in self.deadman(now):
            pending.append(Pending(sig.ts, EventOrder.ROBOT, 0, sig))

    def frame(self, f: Origin, t: int, r: Robot, pending: list[Pending]) -> None:
        """One frame of robot ``r`` seen at ``t`` (its arrival live, its time in replay). A frame
        after the robot's offline status proves it back: its offline alert clears."""
        gap, long = GAP_NS, LONG_NS
        if r.offline and t > r.offline_at:
            r.offline = False
            pending.append(Pending(t, EventOrder.ROBOT, 1, self.offline_signal(f.robot_id, "status", False, t,
                                                                               f.scenario_id)))
            self.deadman_due = 0
        if r.last_seen >= 0 and t - r.last_seen >= gap and not r.silent and not r.offline:
            pending.append(Pending(r.last_seen + gap, EventOrder.ROBOT, 0,
                                   self.offline_signal(f.robot_id, "silence", True, r.last_seen + gap, r.scenario)))
            r.silent = 1
        if r.silent == 1 and not r.offline and t - r.last_seen >= long:
            pending.append(Pending(r.last_seen + long, EventOrder.ROBOT, 0,
                                   self.offline_signal(f.robot_id, "silence", True, r.last_seen + long, r.scenario,
                                                       long=True)))
            r.silent = 2
        if r.silent and t >= r.last_seen:
            pending.append(Pending(t, EventOrder.ROBOT, 1, self.offline_signal(f.robot_id, "silence", False, t,
                                                                               f.scenario_id)))
            r.silent = 0
            self.deadman_due = 0
        if t >= r.last_seen:
            if r.last_seen < 0:
                self.deadman_due = 0
            r.last_seen = t
            r.scenario = f.scenario_id
        if t > self.place_seen.get((f.scenario_id, f.robot_id), -1):
            self.place_seen[(f.scenario_id, f.robot_id)] = t

    def deadman(self, now: int) -> list[Signal]:
        """Robots watched (seen, neither silent nor offline) that have sent nothing for
        :data:`ROBOT_SILENCE_S` by ``now``: marked silent, with their signals.

        Every robot is looked at only once ``now`` reaches :attr:`deadman_due`, the earliest time
        any watched robot could fall silent as of the last look. A robot's ``last_seen`` only grows,
        which only moves its own due time later; whatever adds a robot to the watched ones (first
        seen, silence or offline cleared) sets ``deadman_due`` to 0 for a look at the next call.
        A batch costs nothing here per robot of the mine, only when one may be due."""
        if now < self.deadman_due:
            return []
        gap, long = GAP_NS, LONG_NS
        out = []
        due = 1 << 62
        for rid, r in self.robots.items():
            if r.last_seen < 0 or r.offline or r.silent == 2:
                continue
            if not r.silent:
                if now - r.last_seen < gap:
                    due = min(due, r.last_seen + gap)
                    continue
                r.silent = 1
                out.append(self.offline_signal(rid, "silence", True, r.last_seen + gap, r.scenario))
            if now - r.last_seen >= long:
                r.silent = 2
                out.append(self.offline_signal(rid, "silence", True, r.last_seen + long, r.scenario, long=True))
            else:
                due = min(due, r.last_seen + long)
        self.deadman_due = due
        return out

    def departed(self, now: int, engine: AlertEngine, forget: Callable[[AlertEvent, str], None]) -> list[Signal]:
        """Clears of the parts robots that left their place hold in its per-robot alerts (of
        :func:`per_robot_detectors`); ``forget`` resets their detectors' state there."""
        out: list[Signal] = []
        stale = int(STALE_S * NS)
        for key in engine.active_keys():
            sid, detector, topic = key
            if detector not in self.per_robot:
                continue
            ev = engine.get(key)
            if ev is None or ev.channel is None:
                continue
            for rid in engine.sources(key):
                last = self.place_seen.get((sid, rid))
                if last is None or now - last < stale:
                    continue
                forget(ev, rid)
                sc = self.scenarios.get(sid)
                c = sc.channel_map.get(ev.channel) if sc else None
                what = subject(sc, c) if sc is not None and c is not None else f"{ev.channel} in {sid}"
                msg = (f"{what}: robot {rid}, which saw this, has not reported from {sid} for {(now - last) / NS:.0f} s "
                       f"(it has moved on): its part of the alert is cleared, and raised again if it finds the same "
                       f"on its return.")
                out.append(Signal(scenario_id=sid, detector=detector, subject=topic, kind=ev.kind, source=rid,
                                  severity=None, ts=last + stale, message=msg, channel=ev.channel, robot_id=rid,
                                  evidence={"rule": f"a robot's own alert ends {STALE_S:g} s after it left the place [P]",
                                            "robot": rid, "left_s": round((now - last) / NS, 1)},
                                  timing=self.timing))
        return out

    # -- status, clock, restarts -------------------------------------------------------------
    def status(self, status: RobotStatus, arrived: int | None) -> tuple[list[Signal], int, str] | None:
        """A robot's retained status (online/offline): its ``robot_offline`` steps, the time they
        are at, and where the robot is. ``arrived``: when the status reached the ingestor (live),
        which then counts as the robot's sign of life instead of its own ``ts``. ``None`` for the
        will of a robot never seen reporting (nothing has changed)."""
        if not status.online and status.ts is None and status.robot_id not in self.robots:
            return None
        r = self.robot(status.robot_id)
        ts = status.ts if status.ts is not None else max(r.last_seen, 0)
        seen = arrived if arrived is not None else status.ts
        if status.scenario_id:
            r.scenario = status.scenario_id
        sigs: list[Signal] = []
        if not status.online and not r.offline:
            r.offline = True
            r.offline_at = seen if seen is not None else max(r.last_seen, 0)
            sigs.append(self.offline_signal(status.robot_id, "status", True, ts, status.scenario_id))
        elif status.online:
            if r.offline:
                r.offline = False
                self.deadman_due = 0
                sigs.append(self.offline_signal(status.robot_id, "status", False, ts, status.scenario_id))
            if r.silent and seen is not None and seen >= r.last_seen:
                r.silent = 0
                self.deadman_due = 0
                sigs.append(self.offline_signal(status.robot_id, "silence", False, ts, status.scenario_id))
            if seen is not None:
                if r.last_seen < 0:
                    self.deadman_due = 0
                r.last_seen = max(r.last_seen, seen)
        return sigs, ts, status.scenario_id or r.scenario or "unknown"

    def clock_signal(self, robot_id: str, scenario_id: str, offset_ns: int, ts: int, why: str) -> Signal:
        """The ingestor's correction of a robot's clock (``offset_ns`` added to its times; 0: its
        clock is right again): a ``robot_clock`` warning while a correction stands."""
        sid = scenario_id if scenario_id in self.scenarios else self.robot(robot_id).scenario or scenario_id
        where = where_robot(robot_id, self.scenarios.get(sid))
        off_s = -offset_ns / NS  # how far the robot's clock is ahead (negative: behind)
        rule = "robot clock against the ingestor's: more than 5 s ahead, or behind by a jump or steadily [P]"
        if offset_ns:
            side = "ahead of" if off_s > 0 else "behind"
            msg = (f"The clock of {where} is {duration(abs(off_s))} {side} the control room's ({why}): its readings "
                   f"are placed at the time they arrived. Set the robot's clock.")
        else:
            msg = f"The clock of {where} is right again: the alert is cleared."
        return Signal(scenario_id=sid, place=ROBOTS, detector="robot_clock", subject=robot_id,
                      kind=AlertKind.robot_health, source=robot_id, severity=Severity.warning if offset_ns else None,
                      ts=ts, message=msg, value=round(off_s, 3), unit="s", robot_id=robot_id,
                      evidence={"rule": rule, "robot": robot_id, "offset_s": round(off_s, 3), "why": why})

    def give_until(self, ts: int) -> None:
        """Count every robot being watched as seen at ``ts`` at the latest (an ingestor's start)."""
        for r in self.robots.values():
            if r.last_seen >= 0 and not r.silent and not r.offline and r.last_seen < ts:
                r.last_seen = ts
        self.deadman_due = 0

    def seed(self, ev: AlertEvent) -> None:
        """Put a restored ``robot_offline`` alert's state back (offline by status, or silent)."""
        if ev.robot_id is None:
            return
        r = self.robot(ev.robot_id)
        if ev.evidence.get("by") == "status":
            r.offline = True
        elif not r.silent:
            r.silent = 1 if ev.severity is Severity.info else 2
