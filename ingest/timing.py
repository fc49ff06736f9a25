"""Robot clocks, and how old each frame is: live, late or history.

A frame's ``ts`` is the robot's clock and is what InfluxDB stores and the detectors run on. A clock
can be wrong: set an hour ahead, jumped back, or up from a reboot without time. :class:`RobotClocks`
keeps a correction per robot, applied to every frame's ``ts`` before anything else sees it, and
places each frame against the ingestor's own clock (the time its message arrived):

* **ahead**: the newest frame of a message is later than its arrival by more than ``tolerance_s``.
  No reading comes from the future, so the robot's clock is ahead: the correction takes off what
  is beyond the tolerance (the newest frame lands ``tolerance_s`` after its arrival, so frames
  before and after the correction stay in order; the spacing of the frames is kept). A clock
  further ahead than the caller's ``ceiling`` (days: a GPS week roll-over, or garbage) is
  corrected only once it has stayed the same amount ahead for ``settle_s`` of arrivals.
* **jumped back**: the robot's numbering goes on (same boot, ``seq`` rising) but its time went back
  by more than ``tolerance_s``. A backlog never does that (its times rise with its numbers), so
  the clock jumped: the correction puts the newest frame at the arrival time.
* **behind from the start**: every message arrives the same time (more than ``late_after_s``)
  behind its newest frame, for ``settle_s`` of arrivals. A robot's backlog after a coverage hole
  is sent faster than real time, so how far behind it is shrinks as it drains; a clock that is
  behind stays behind by the same amount. Then the correction takes up the lag. (A clock less
  than ``late_after_s`` behind is left alone: its frames count as live anyway.)
* **right again**: the raw clock agrees with the arrival time within ``tolerance_s``: no correction.

The corrected age of a frame (arrival time minus corrected ``ts``) says what it is:
``live`` up to ``late_after_s``, ``late`` (a backlog: detected in event time, and its alerts are
marked late) up to ``horizon_s``, and ``history`` beyond (stored and detected in event time by
detectors of their own; never on the live board).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

__all__ = ["RobotClocks", "Placement", "LIVE", "LATE", "HISTORY"]

LIVE, LATE, HISTORY = 0, 1, 2
_NS = 1_000_000_000


@dataclass
class _Clock:
    offset: int = 0           # ns added to the robot's ts
    last_boot: int | None = None
    last_seq: int = -1
    last_ts: int = -1         # raw ts of the newest frame seen
    off_since: int = -1       # arrival of the first message of a run off by the same amount
    off_lag: int = 0          # (behind, or days ahead: a clock corrected once it stays so)
    off_n: int = 0


@dataclass
class Placement:
    """Where one message's frames go: the correction (ns) to add to each ``ts``, each frame's class
    (:data:`LIVE`, :data:`LATE`, :data:`HISTORY`), and whether the correction just changed (then
    ``changed`` holds the reason: ``ahead``, ``jumped back``, ``behind``, ``right``)."""

    offset: int
    classes: list[int] | None  # None: every frame live
    changed: str | None = None


class RobotClocks:
    def __init__(self, tolerance_s: float = 5.0, late_after_s: float = 30.0, horizon_s: float = 3600.0,
                 settle_s: float = 30.0, correct: bool = True) -> None:
        if not 0 < late_after_s < horizon_s:
            raise ValueError("need 0 < late_after_s < horizon_s")
        self.tolerance = int(tolerance_s * _NS)
        self.late_after = int(late_after_s * _NS)
        self.horizon = int(horizon_s * _NS)
        self.settle = int(settle_s * _NS)
        self.correct = correct  # False: the frames' times are the clock (an ingestor on the data's clock)
        self._clocks: dict[str, _Clock] = {}

    def offset(self, robot_id: str) -> int:
        c = self._clocks.get(robot_id)
        return 0 if c is None else c.offset

    def live_now(self, robot_id: str, ts: int, seq: int, boot: int | None, received_ns: int) -> bool:
        """:meth:`place` of a one-frame message of a robot seen before, when that places the frame
        live with no correction and no change of it (a robot whose clock is right: nearly every
        message), with the same effect on the robot's clock; False, with nothing changed, otherwise
        (then :meth:`place` says what it is)."""
        c = self._clocks.get(robot_id)
        if c is None:
            return False
        lag = received_ns - ts
        if not self.correct:
            return lag <= self.late_after
        if c.offset or not -self.tolerance <= lag <= self.late_after:
            return False
        c.off_since = -1
        if ts >= c.last_ts or boot != c.last_boot or seq > c.last_seq:
            c.last_ts, c.last_seq, c.last_boot = ts, seq, boot
        return True

    def place(self, robot_id: str, ts: Sequence[int], seq: Sequence[int], boot: int | None,
              received_ns: int, floor: int | None = None, ceiling: int | None = None) -> Placement:
        """Place one message's frames (``ts`` and ``seq`` in message order) that arrived at
        ``received_ns``. A clock that jumps back to before ``floor`` (older than anything that may
        be stored: a reset real-time clock, or garbage), or that is after ``ceiling`` even with its
        correction (days ahead: a GPS week roll-over, a clock set wrong, or garbage; a correction
        for a clock behind is not added here, so one set right again is right at once), is corrected
        only once it has stayed that far off for the settle time, never at once; the frames it
        leaves outside are the caller's to refuse."""
        c = self._clocks.get(robot_id)
        if c is None:
            c = self._clocks[robot_id] = _Clock()
        newest = max(ts)
        settled = False
        # days ahead even as corrected; a clock corrected as behind is judged by its own time (one
        # set right again, or less than a day ahead, is not made days ahead by the old correction)
        ahead = min(c.offset, 0)
        if ceiling is not None and self.correct and newest + ahead > ceiling:
            settled = self._steady(c, received_ns - newest, received_ns)
            if not settled:
                ts_in = [t for t in ts if t + ahead <= ceiling]
                if not ts_in:  # nothing else in the message: left as it is (for the caller to refuse)
                    return Placement(c.offset, None, None)
                newest = max(ts_in)  # the rest of the message is placed as usual
        if not self.correct:
            age = received_ns - min(ts)
            if age <= self.late_after:
                return Placement(0, None, None)
            return Placement(0, [HISTORY if received_ns - t > self.horizon else LATE if received_ns - t > self.late_after
                                 else LIVE for t in ts], None)
        raw_lag = received_ns - newest
        lag = raw_lag - c.offset  # how old the newest frame is, with the correction
        tol = self.tolerance
        changed = None
        if settled:
            c.offset, changed = raw_lag + tol, "ahead"
        elif -tol <= raw_lag <= tol:
            c.off_since = -1
            if c.offset:
                c.offset, changed = 0, "right"
        elif lag < -tol:  # from the future even with the correction: the clock is (further) ahead
            # only what is beyond the tolerance is taken off, so the frames before (up to the
            # tolerance ahead, uncorrected) and after the correction stay in order
            c.off_since = -1
            new = raw_lag + tol
            if c.offset == 0 or abs(new - c.offset) > tol:
                changed = "ahead"
            c.offset = new
        elif lag > self.late_after:
            continues = c.last_seq >= 0 and boot == c.last_boot and seq[0] > c.last_seq
            if continues and min(ts) < c.last_ts - tol and (floor is None or min(ts) >= floor):
                c.offset, changed = raw_lag, "jumped back"
                c.off_since = -1
            elif self._steady(c, raw_lag, received_ns):
                c.offset, changed = raw_lag, "behind"
        else:
            c.off_since = -1
        if newest >= c.last_ts or boot != c.last_boot or seq[-1] > c.last_seq:
            c.last_ts, c.last_seq, c.last_boot = newest, seq[-1], boot
        off = c.offset
        oldest_age = received_ns - (min(ts) + off)
        if oldest_age <= self.late_after:
            return Placement(off, None, changed)
        classes = []
        for t in ts:
            age = received_ns - (t + off)
            classes.append(HISTORY if age > self.horizon else LATE if age > self.late_after else LIVE)
        return Placement(off, classes, changed)

    def _steady(self, c: _Clock, raw_lag: int, received_ns: int) -> bool:
        """Count one more message ``raw_lag`` off its arrival: True (and the count starts again)
        once the clock has been off by the same amount, within the tolerance, for the settle time
        and at least three messages."""
        if c.off_since < 0 or abs(raw_lag - c.off_lag) > self.tolerance:
            c.off_since, c.off_lag, c.off_n = received_ns, raw_lag, 1
            return False
        c.off_n += 1
        if received_ns - c.off_since >= self.settle and c.off_n >= 3:
            c.off_since = -1
            return True
        return False
