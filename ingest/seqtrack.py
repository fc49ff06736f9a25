"""Per-robot stream identity: new, late (gap-filling), repeated and restarted frames.

A robot numbers its frames ``seq`` = 0, 1, 2, ... within a *boot*. Its counter starts again when
it reboots or when it is swapped for a spare with the same id, so ``seq`` alone does not name a
reading. The tracker keeps, per robot and boot, the highest ``seq`` seen, the time of that frame,
the ranges still missing below it, and the exact ``(seq, ts)`` of the last :data:`RING` frames.
A frame is

- ``NEW`` when its ``seq`` is above the highest (a jump of more than one opens a gap of the
  skipped count), or when it starts a new boot (see below);
- ``LATE`` when it fills part of an open gap (it arrived after a frame with a higher ``seq``), or
  when it is of a boot the robot has since left and older than the newest frame of the current
  one (its backlog of that boot, arriving after newer frames: held back, as a gap-filler is);
- ``DUPLICATE`` when it is that very reading again (a QoS 1 redelivery, a robot resending): the
  same ``seq`` with the same ``ts`` as one the ring holds (a reading this tracker has seen, or one
  it was restored with as stored);
- ``PRESUMED`` (a presumed repeat) when the ring no longer holds that ``seq``, it is at or below
  the highest and its ``ts`` is not after that frame's: most likely a repeat, but not provably
  one (the ingestor does not run it through the detectors, but stores it again, in case it was
  never stored).

A *restart* begins a new boot: a frame whose ``boot`` differs from the robot's current one (a
boot seen before keeps its own numbering, for a late backlog of that boot), or, for robots that
send no ``boot``, a ``seq`` at or below the highest that is not a repeat: a different ``ts`` for a
``seq`` the ring holds, or a ``ts`` after the highest frame's. A restart is counted once and the
frame is ``NEW``. A robot without ``boot`` whose clock went back when it restarted looks like a
run of repeats: :data:`SUSPECT_RUN` such unverified repeats in a row, moving forward in time, are
taken as the restart they are (robots should send ``boot`` so that this never has to happen), and
so are they for a robot whose counter started again under the ``boot`` it sent before.

Open gaps are kept for the last ``max_ranges`` holes per boot; older holes are given up on
(counted as abandoned).
"""

from __future__ import annotations

import bisect
from array import array
from collections.abc import Sequence
from dataclasses import dataclass, field

__all__ = ["SeqTracker", "SeqCounts", "NEW", "LATE", "DUPLICATE", "PRESUMED", "REPEATS", "RING", "SUSPECT_RUN"]

NEW, LATE, DUPLICATE, PRESUMED = 0, 1, 2, 3
REPEATS = (DUPLICATE, PRESUMED)
RING = 1024         # exact (seq, ts) of the last frames of each boot, for telling repeats apart
SUSPECT_RUN = 30    # unverified repeats in a row, forward in time, that are taken as a restart
_OLD_BOOTS = 3      # boots kept besides the current one (their late backlog is still classified)


@dataclass
class SeqCounts:
    frames: int = 0
    gaps: int = 0          # seq values skipped when a higher one arrived
    late: int = 0          # skipped values that arrived afterwards, and frames of a boot since left
    duplicates: int = 0    # repeats, proven and presumed
    presumed: int = 0      # of those, presumed (not in the ring)
    resets: int = 0        # restarts: a robot's counter (or boot) started again
    abandoned: int = 0     # skipped values no longer tracked (still missing when forgotten)

    def add(self, other: SeqCounts) -> None:
        for k in self.__dataclass_fields__:
            setattr(self, k, getattr(self, k) + getattr(other, k))


@dataclass
class _Boot:
    boot: int | None
    high: int
    high_ts: int
    first: int = 0  # numbers below this were never seen (a robot first met mid-stream): late if they come
    # disjoint half-open ranges [lo, hi) of missing seq, sorted by lo
    lo: list[int] = field(default_factory=list)
    hi: list[int] = field(default_factory=list)
    ring_seq: array | None = None
    ring_ts: array | None = None

    def remember(self, seq: int, ts: int) -> None:
        if self.ring_seq is None:
            self.ring_seq = array("q", [-1]) * RING
            self.ring_ts = array("q", [0]) * RING
        i = seq % RING
        self.ring_seq[i] = seq
        self.ring_ts[i] = ts  # type: ignore[index]

    def remember_run(self, first: int, ts: Sequence[int]) -> None:
        n = len(ts)
        if n > RING:
            first, ts, n = first + n - RING, ts[n - RING:], RING
        if self.ring_seq is None:
            self.ring_seq = array("q", [-1]) * RING
            self.ring_ts = array("q", [0]) * RING
        a = first % RING
        if a + n <= RING:
            self.ring_seq[a:a + n] = array("q", range(first, first + n))
            self.ring_ts[a:a + n] = array("q", ts)  # type: ignore[index]
        else:
            for k in range(n):
                self.remember(first + k, ts[k])

    def give_up_beyond(self, max_ranges: int) -> int:
        """Keep the ``max_ranges`` highest holes, giving up on the lowest; the numbers given up."""
        extra = len(self.lo) - max_ranges
        if extra <= 0:
            return 0
        lost = sum(h - lo for lo, h in zip(self.lo[:extra], self.hi[:extra]))
        del self.lo[:extra], self.hi[:extra]
        return lost

    def recalled(self, seq: int) -> int | None:
        """The ``ts`` of ``seq`` if the ring still holds it."""
        if self.ring_seq is None or self.ring_seq[seq % RING] != seq:
            return None
        return self.ring_ts[seq % RING]  # type: ignore[index]


@dataclass
class _Robot:
    current: _Boot
    older: list[_Boot] = field(default_factory=list)
    unverified_run: int = 0    # unverified repeats in a row
    unverified_ts: int = -1    # ts of the last of them


class SeqTracker:
    def __init__(self, max_ranges: int = 1024) -> None:
        self.max_ranges = max_ranges
        self._robots: dict[str, _Robot] = {}
        self.counts = SeqCounts()

    def __len__(self) -> int:
        return len(self._robots)

    def missing(self, robot_id: str) -> int:
        """Seq values of ``robot_id``'s current boot still missing (within the tracked window)."""
        r = self._robots.get(robot_id)
        return 0 if r is None else sum(h - lo for lo, h in zip(r.current.lo, r.current.hi))

    def high(self, robot_id: str) -> int | None:
        r = self._robots.get(robot_id)
        return None if r is None else r.current.high

    def boot(self, robot_id: str) -> int | None:
        r = self._robots.get(robot_id)
        return None if r is None else r.current.boot

    def restore(self, robot_id: str, high: int, high_ts: int, boot: int | None = None,
                recent: Sequence[tuple[int, int]] = ()) -> bool:
        """Start ``robot_id`` at its newest stored frame (``high`` with time ``high_ts``, of boot
        ``boot``), unless it has been seen already; ``recent`` are stored ``(seq, ts)`` pairs of that
        boot for the ring, so that redelivered frames are recognised exactly, and the numbers
        missing between them (or below them) are open gaps again, so that frames the robot held
        back are known as late when they come. True when restored."""
        if robot_id in self._robots:
            return False
        self._robots[robot_id] = _Robot(self._restored(high, high_ts, boot, recent))
        return True

    def restore_older(self, robot_id: str, high: int, high_ts: int, boot: int,
                      recent: Sequence[tuple[int, int]] = ()) -> bool:
        """After :meth:`restore`, a boot the robot had before its current one, from its stored frames
        (as :meth:`restore`; the newest first, up to three): its backlog, when it comes, is known as
        of a boot since left (late where older than the current boot's newest), not taken for a
        restart and the newest readings. True when restored."""
        r = self._robots.get(robot_id)
        if r is None or r.current.boot in (None, boot) or len(r.older) >= _OLD_BOOTS or any(o.boot == boot for o in r.older):
            return False
        r.older.append(self._restored(high, high_ts, boot, recent))
        return True

    def _restored(self, high: int, high_ts: int, boot: int | None, recent: Sequence[tuple[int, int]]) -> _Boot:
        b = _Boot(boot, high, high_ts)
        for s, t in recent:
            if high - RING < s <= high:
                b.remember(s, t)
        seen = sorted({s for s, _ in recent if high - RING < s < high})
        for a, z in zip(seen, [*seen[1:], high]):
            if z > a + 1:
                b.lo.append(a + 1)
                b.hi.append(z)
        if seen:  # below the stored frames: the robot's backlog from before them, late when it comes
            b.first = seen[0]
        b.give_up_beyond(self.max_ranges)
        return b

    # -- classifying ------------------------------------------------------------------------------
    def observe(self, robot_id: str, seq: int, ts: int, boot: int | None = None) -> int:
        """Classify one frame: :data:`NEW`, :data:`LATE` or :data:`DUPLICATE`."""
        self.counts.frames += 1
        r = self._robots.get(robot_id)
        if r is None:
            b = _Boot(boot, seq, ts, first=seq)
            b.remember(seq, ts)
            self._robots[robot_id] = _Robot(b)
            return NEW
        b = r.current
        if boot is not None and boot != b.boot:
            if b.boot is None:
                b.boot = boot  # a robot that starts to send its boot, or a boot not stored: adopt it
            else:
                for old in r.older:
                    if old.boot == boot:
                        kind = self._classify(r, old, seq, ts, restart_ok=False)
                        if kind == NEW and ts < b.high_ts:  # new to its boot, but older than the newer boot's newest
                            self.counts.late += 1
                            return LATE
                        return kind
                return self._restart(r, seq, ts, boot)
        return self._classify(r, b, seq, ts, restart_ok=True)

    def follows(self, robot_id: str, seq: int, boot: int | None = None) -> bool:
        """Whether :meth:`observe` would find ``seq`` the next of the robot's current boot: NEW, no
        gap, no restart (what a robot sends, message after message). Changes nothing."""
        r = self._robots.get(robot_id)
        if r is None:
            return False
        b = r.current
        return seq == b.high + 1 and (boot is None or boot == b.boot)

    def take_next(self, robot_id: str, seq: int, ts: int) -> None:
        """:meth:`observe` of a frame :meth:`follows` said is the next: the same effect, no answer."""
        self.counts.frames += 1
        r = self._robots[robot_id]
        b = r.current
        b.high, b.high_ts = seq, ts
        b.remember(seq, ts)
        r.unverified_run = 0

    def _classify(self, r: _Robot, b: _Boot, seq: int, ts: int, restart_ok: bool) -> int:
        c = self.counts
        if seq > b.high:
            if seq > b.high + 1:
                c.gaps += seq - b.high - 1
                b.lo.append(b.high + 1)
                b.hi.append(seq)
                c.abandoned += b.give_up_beyond(self.max_ranges)
            b.high, b.high_ts = seq, ts
            b.remember(seq, ts)
            r.unverified_run = 0
            return NEW
        i = bisect.bisect_right(b.lo, seq) - 1
        if i >= 0 and seq < b.hi[i]:
            c.late += 1
            lo, hi = b.lo[i], b.hi[i]
            if lo == seq and hi == seq + 1:
                del b.lo[i], b.hi[i]
            elif lo == seq:
                b.lo[i] = seq + 1
            elif hi == seq + 1:
                b.hi[i] = seq
            else:
                b.hi[i] = seq
                b.lo.insert(i + 1, seq + 1)
                b.hi.insert(i + 1, hi)
            b.remember(seq, ts)
            return LATE
        known = b.recalled(seq)
        if known is not None:
            if known == ts or not restart_ok:
                c.duplicates += 1
                return DUPLICATE
            return self._restart(r, seq, ts, b.boot)  # the same number for another reading
        if ts > b.high_ts and restart_ok:
            return self._restart(r, seq, ts, b.boot)  # numbered again, and newer than anything seen
        if seq < b.first:  # below anything seen of this boot: a reading new to us, arriving late
            c.late += 1
            # the numbers between it and the lowest seen are a hole, the rest of a backlog; only for a
            # robot that sends its boot: for one that does not, this may be the start of a restart with
            # its clock gone back, whose frames must not all be taken as held back (the run rule below)
            if seq + 1 < b.first and b.boot is not None:
                b.lo.insert(0, seq + 1)
                b.hi.insert(0, b.first)
                c.abandoned += b.give_up_beyond(self.max_ranges)  # bounded, as the holes above
            b.first = seq
            b.remember(seq, ts)
            return LATE
        # not provably a repeat: a run of these moving forward in time is a restart (a robot that
        # sends its boot should have changed it; one whose counter started again under the same
        # number must not have every reading up to its old highest skip the detectors). A backlog
        # from before what this tracker knows is not such a run: below the first frame seen it is
        # late (the hole above), and a warm start restores the stored frames' holes and boots.
        if restart_ok:
            r.unverified_run = r.unverified_run + 1 if ts > r.unverified_ts else 1
            r.unverified_ts = ts
            if r.unverified_run >= SUSPECT_RUN:
                return self._restart(r, seq, ts, b.boot)
        c.duplicates += 1
        c.presumed += 1
        return PRESUMED

    def _restart(self, r: _Robot, seq: int, ts: int, boot: int | None) -> int:
        self.counts.resets += 1
        old = r.current
        if old.boot is not None:  # kept, ring and all, for a late backlog of that boot
            r.older = [old, *r.older][:_OLD_BOOTS]
        b = _Boot(boot, seq, ts, first=seq)
        b.remember(seq, ts)
        r.current = b
        r.unverified_run = 0
        r.unverified_ts = -1
        return NEW

    def observe_run(self, robot_id: str, seqs: Sequence[int], ts: Sequence[int],
                    boot: int | None = None) -> list[int] | None:
        """:meth:`observe` each frame of one message in order (one boot: ``boot``); None when every
        one is :data:`NEW`, else the kinds. A run of consecutive ``seq`` above the robot's highest of
        its current boot (what a robot sends) costs one :meth:`observe` and a copy into the ring."""
        first, n = seqs[0], len(seqs)
        if n > 1 and (seqs[-1] - first != n - 1 or list(seqs) != list(range(first, first + n))):
            return [self.observe(robot_id, s, t, boot) for s, t in zip(seqs, ts)]
        kind = self.observe(robot_id, first, ts[0], boot)
        if kind != NEW or (boot is not None and self._robots[robot_id].current.boot != boot):  # or of an older boot
            return [kind, *(self.observe(robot_id, s, t, boot) for s, t in zip(seqs[1:], ts[1:]))]
        if n > 1:  # the rest follow one by one above the new highest: all new, no gap
            b = self._robots[robot_id].current
            b.high, b.high_ts = seqs[-1], ts[-1]
            b.remember_run(first + 1, ts[1:])
            self.counts.frames += n - 1
        return None
