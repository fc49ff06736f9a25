"""Per-robot ``seq`` tracking: gaps, duplicates and late (gap-filling) frames.

A robot numbers its frames ``seq`` = 0, 1, 2, ... For each robot the tracker keeps the highest
``seq`` seen and the ranges still missing below it. A frame is

- ``new`` when it is above the highest (a jump of more than one opens a gap of the skipped count),
- ``late`` when it fills part of an open gap (it arrived after a frame with a higher ``seq``),
- ``duplicate`` otherwise (already seen, e.g. a QoS 1 redelivery).

Open gaps are kept for the last ``max_ranges`` holes per robot; older holes are given up on
(counted as lost). A ``seq`` more than ``reset_window`` below the highest is taken as a robot
that restarted its numbering: the robot's state starts again and a reset is counted.
"""

from __future__ import annotations

import bisect
from collections.abc import Sequence
from dataclasses import dataclass, field

__all__ = ["SeqTracker", "SeqCounts", "NEW", "LATE", "DUPLICATE"]

NEW, LATE, DUPLICATE = 0, 1, 2


@dataclass
class SeqCounts:
    frames: int = 0
    gaps: int = 0          # seq values skipped when a higher one arrived
    late: int = 0          # skipped values that arrived afterwards
    duplicates: int = 0
    resets: int = 0
    abandoned: int = 0     # skipped values no longer tracked (still missing when forgotten)

    def add(self, other: SeqCounts) -> None:
        for k in self.__dataclass_fields__:
            setattr(self, k, getattr(self, k) + getattr(other, k))


@dataclass
class _Robot:
    high: int
    # disjoint half-open ranges [lo, hi) of missing seq, sorted by lo
    lo: list[int] = field(default_factory=list)
    hi: list[int] = field(default_factory=list)


class SeqTracker:
    def __init__(self, max_ranges: int = 1024, reset_window: int = 10_000_000) -> None:
        self.max_ranges = max_ranges
        self.reset_window = reset_window
        self._robots: dict[str, _Robot] = {}
        self.counts = SeqCounts()

    def missing(self, robot_id: str) -> int:
        """Seq values of ``robot_id`` still missing (within the tracked window)."""
        r = self._robots.get(robot_id)
        return 0 if r is None else sum(h - lo for lo, h in zip(r.lo, r.hi))

    def restore(self, robot_id: str, high: int) -> bool:
        """Start ``robot_id`` at ``high`` (its highest ``seq`` already stored), unless it has been
        seen already; True when restored. Frames up to ``high`` then count as duplicates."""
        if robot_id in self._robots:
            return False
        self._robots[robot_id] = _Robot(high)
        return True

    def high(self, robot_id: str) -> int | None:
        r = self._robots.get(robot_id)
        return None if r is None else r.high

    def observe(self, robot_id: str, seq: int) -> int:
        """Classify one frame: :data:`NEW`, :data:`LATE` or :data:`DUPLICATE`."""
        c = self.counts
        c.frames += 1
        r = self._robots.get(robot_id)
        if r is None:
            self._robots[robot_id] = _Robot(seq)
            return NEW
        if seq > r.high:
            if seq > r.high + 1:
                c.gaps += seq - r.high - 1
                r.lo.append(r.high + 1)
                r.hi.append(seq)
                if len(r.lo) > self.max_ranges:
                    c.abandoned += r.hi[0] - r.lo[0]
                    del r.lo[0], r.hi[0]
            r.high = seq
            return NEW
        if seq < r.high - self.reset_window:
            c.resets += 1
            self._robots[robot_id] = _Robot(seq)
            return NEW
        i = bisect.bisect_right(r.lo, seq) - 1
        if i < 0 or seq >= r.hi[i]:
            c.duplicates += 1
            return DUPLICATE
        c.late += 1
        lo, hi = r.lo[i], r.hi[i]
        if lo == seq and hi == seq + 1:
            del r.lo[i], r.hi[i]
        elif lo == seq:
            r.lo[i] = seq + 1
        elif hi == seq + 1:
            r.hi[i] = seq
        else:
            r.hi[i] = seq
            r.lo.insert(i + 1, seq + 1)
            r.hi.insert(i + 1, hi)
        return LATE

    def observe_run(self, robot_id: str, seqs: Sequence[int]) -> list[int] | None:
        """:meth:`observe` each of ``seqs`` in order (the frames of one message); None when every
        one is :data:`NEW`, else the kinds. A run of consecutive ``seq`` above the robot's highest
        (what a robot sends) costs one :meth:`observe`, whatever its length."""
        first, n = seqs[0], len(seqs)
        if n > 1 and (seqs[-1] - first != n - 1 or list(seqs) != list(range(first, first + n))):
            return [self.observe(robot_id, s) for s in seqs]
        kind = self.observe(robot_id, first)
        if kind != NEW:
            return [kind, *(self.observe(robot_id, s) for s in seqs[1:])]
        if n > 1:  # the rest follow one by one above the new highest: all new, no gap
            self._robots[robot_id].high = seqs[-1]
            self.counts.frames += n - 1
        return None
