"""Stream identity: which frames are new, late, repeats, or a restarted robot."""

from __future__ import annotations

import random
from typing import Any

from ingest.seqtrack import DUPLICATE, LATE, NEW, PRESUMED, REPEATS, RING, SUSPECT_RUN, SeqTracker

S = 1_000_000_000
T = 1_800_000_000 * S


def test_gaps_late_and_repeats() -> None:
    t = SeqTracker()
    assert [t.observe("r1", s, T + s * S) for s in (0, 1, 2)] == [NEW, NEW, NEW]
    assert t.observe("r1", 6, T + 6 * S) == NEW            # 3, 4, 5 missing
    assert t.counts.gaps == 3 and t.missing("r1") == 3
    assert t.observe("r1", 4, T + 4 * S) == LATE           # fills the middle of the hole
    assert t.observe("r1", 4, T + 4 * S) == DUPLICATE
    assert t.observe("r1", 3, T + 3 * S) == LATE
    assert t.observe("r1", 5, T + 5 * S) == LATE
    assert t.missing("r1") == 0
    assert t.observe("r1", 2, T + 2 * S) == DUPLICATE
    assert t.observe("r1", 6, T + 6 * S) == DUPLICATE
    assert (t.counts.late, t.counts.duplicates, t.counts.frames, t.counts.resets) == (3, 3, 10, 0)
    assert t.observe("r2", 100, T) == NEW                  # robots are independent
    assert t.high("r1") == 6 and t.high("r2") == 100


def test_a_rebooted_robot_is_new_at_once_and_counted_once() -> None:
    t = SeqTracker()
    for s in range(5000):
        t.observe("r", s, T + s * S)
    later = T + 6000 * S
    kinds = [t.observe("r", s, later + s * S) for s in range(100)]  # counter from 0, clock right
    assert kinds == [NEW] * 100 and t.counts.resets == 1 and t.counts.duplicates == 0


def test_a_reboot_with_its_clock_set_back_is_new_when_the_ring_knows_the_numbers() -> None:
    t = SeqTracker()
    for s in range(500):
        t.observe("r", s, T + s * S)
    back = T - 3600 * S  # the robot's clock came up an hour behind: numbers seen, times not
    assert [t.observe("r", s, back + s * S) for s in range(50)] == [NEW] * 50
    assert t.counts.resets == 1 and t.counts.duplicates == 0


def test_unprovable_repeats_moving_forward_in_time_are_a_restart() -> None:
    t = SeqTracker()
    for s in range(RING + 5000):  # seq 0.. left the ring long ago
        t.observe("r", s, T + s * S)
    back = T  # a reboot whose clock came back before the highest frame, and no boot number
    kinds = [t.observe("r", s, back + s * S + 1) for s in range(SUSPECT_RUN + 10)]
    assert kinds == [PRESUMED] * (SUSPECT_RUN - 1) + [NEW] * 11
    assert t.counts.resets == 1


def test_a_restart_under_the_same_boot_number_is_found_as_soon_as_without_one() -> None:
    # a robot that counts again from 0 but sends the boot number it sent before (a fault of the
    # robot), its clock set back: its readings are new; at most a run of them skips the detectors
    # before the restart is seen, not every number up to the old highest
    t = SeqTracker()
    t.observe("r", 0, T, 7)
    t.observe_run("r", list(range(1, 100_000)), [T + s * S for s in range(1, 100_000)], 7)
    back = T - 86_400 * S
    kinds = [t.observe("r", s, back + s * S, 7) for s in range(SUSPECT_RUN + 10)]
    assert kinds == [PRESUMED] * (SUSPECT_RUN - 1) + [NEW] * 11
    assert t.counts.resets == 1


def test_a_redelivery_is_a_repeat_and_not_a_restart() -> None:
    t = SeqTracker()
    for s in range(3000):
        t.observe("r", s, T + s * S)
    assert [t.observe("r", s, T + s * S) for s in range(2990, 3000)] == [DUPLICATE] * 10
    # older than the ring: no proof, but its time is not after the newest: presumed a repeat
    assert t.observe("r", 5, T + 5 * S) == PRESUMED and t.counts.presumed == 1
    assert t.counts.resets == 0


def test_a_clock_jump_back_without_a_restart_is_just_new_frames() -> None:
    t = SeqTracker()
    for s in range(100):
        t.observe("r", s, T + s * S)
    back = T - 3600 * S
    assert [t.observe("r", s, back + s * S) for s in range(100, 200)] == [NEW] * 100
    assert t.observe("r", 150, back + 150 * S) == DUPLICATE  # redelivered after the jump
    assert t.observe("r", 50, T + 50 * S) == DUPLICATE       # and from before it (the ring knows it)
    assert t.counts.resets == 0


def test_boots_name_their_streams() -> None:
    t = SeqTracker()
    for s in range(100):
        t.observe("r", s, T + s * S, boot=7)
    # a spare with the same id, its clock an hour behind, numbering from 0 under its own boot
    back = T - 3600 * S
    assert [t.observe("r", s, back + s * S, boot=9) for s in range(10)] == [NEW] * 10
    assert t.counts.resets == 1 and t.boot("r") == 9
    # the first robot's backlog, late: its own boot's numbering still holds (dated after the spare's
    # newest, it is new; dated before it, it is late, held back behind the spare's newer frames)
    assert t.observe("r", 100, T + 100 * S, boot=7) == NEW
    assert t.observe("r", 99, T + 99 * S, boot=7) == DUPLICATE
    assert t.observe("r", 5, back + 5 * S, boot=9) == DUPLICATE
    assert t.observe("r", 101, back + S, boot=7) == LATE
    # a message of that backlog leaves the current boot's numbering as it was
    assert t.observe_run("r", [102, 103, 104], [T + k * S for k in (102, 103, 104)], boot=7) == [NEW] * 3
    assert t.high("r") == 9 and t.boot("r") == 9 and t.observe("r", 10, back + 10 * S, boot=9) == NEW
    assert t.counts.resets == 1
    # back to a boot not kept: a restart
    assert t.observe("r", 0, T + 10_000 * S, boot=11) == NEW and t.counts.resets == 2


def test_restore_continues_counting_and_knows_redeliveries_exactly() -> None:
    t = SeqTracker()
    recent = [(s, T + s * S) for s in range(950, 1000)]
    assert t.restore("r1", 999, T + 999 * S, boot=None, recent=recent)
    assert t.observe("r1", 990, T + 990 * S) == DUPLICATE       # stored but unacknowledged: sent again
    assert t.observe("r1", 1000, T + 1000 * S) == NEW
    assert t.observe("r1", 1003, T + 1003 * S) == NEW and t.counts.gaps == 2
    assert not t.restore("r1", 7, T) and t.high("r1") == 1003   # a robot already seen keeps its state
    # a robot that rebooted while the ingestor was away: counter from 0, clock right
    assert t.restore("r2", 500, T + 500 * S)
    assert t.observe("r2", 0, T + 900 * S) == NEW and t.counts.resets == 1
    # one whose clock came up behind: a number the ring knows, another time
    t.restore("r3", 999, T + 999 * S, recent=recent)
    assert t.observe("r3", 960, T - 50 * S) == NEW and t.counts.resets == 2


def test_restore_opens_the_gaps_between_the_stored_frames_again() -> None:
    # stored: 0-9 and 15-19; 10-14 were held back by the robot when the ingestor stopped
    t = SeqTracker()
    recent = [(s, T + s * S) for s in [*range(10), *range(15, 20)]]
    assert t.restore("r", 19, T + 19 * S, boot=1, recent=recent) and t.missing("r") == 5
    assert [t.observe("r", s, T + s * S, boot=1) for s in range(10, 15)] == [LATE] * 5
    assert t.observe("r", 12, T + 12 * S, boot=1) == DUPLICATE and t.missing("r") == 0
    assert t.counts.late == 5 and t.counts.gaps == 0  # the gap was counted by the last process


def test_a_backlog_below_the_first_frame_seen_is_late_in_any_order_and_its_holes_are_bounded() -> None:
    t = SeqTracker(max_ranges=16)
    t.observe("r", 100, T + 100 * S, boot=1)  # first met mid-stream
    assert [t.observe("r", s, T + s * S, boot=1) for s in range(40, 100)] == [LATE] * 60
    assert t.missing("r") == 0 and t.counts.duplicates == 0
    # numbers going down two at a time, each below the lowest seen: the holes they leave are bounded
    u = SeqTracker(max_ranges=16)
    u.observe("r", 10**12, T, boot=1)
    assert [u.observe("r", 10**12 - 2 * k, T - k * S, boot=1) for k in range(1, 500)] == [LATE] * 499
    assert u.missing("r") == 16 and u.counts.abandoned == 499 - 16


def test_two_robots_in_one_place_one_rebooting() -> None:
    t = SeqTracker()
    kinds: dict[str, list[Any]] = {"a": [], "b": []}
    for s in range(200):
        kinds["a"].append(t.observe("a", s, T + s * S))
        sb = s if s < 100 else s - 100  # b reboots halfway
        kinds["b"].append(t.observe("b", sb, T + s * S))
    assert kinds["a"] == [NEW] * 200 and kinds["b"] == [NEW] * 200
    assert t.counts.resets == 1 and t.counts.duplicates == 0


class Reference:
    """The contract stated plainly: a frame is a repeat when that very reading (robot, boot, seq,
    ts) was seen before; every reading seen once is new or late."""

    def __init__(self) -> None:
        self.seen: set[tuple[str, int | None, int, int]] = set()

    def is_repeat(self, robot: str, boot: int | None, seq: int, ts: int) -> bool:
        key = (robot, boot, seq, ts)
        if key in self.seen:
            return True
        self.seen.add(key)
        return False


def _fleet_traffic(rng: random.Random, with_boot: bool, n: int = 6000) -> list[tuple[str, int | None, int, int]]:
    """What robots send and a broker delivers: streams in order, holes filled later, redeliveries of
    recent frames, reboots (counter from 0, clock sometimes set back)."""
    robots: dict[str, dict[str, Any]] = {r: {"boot": 1, "seq": 0, "clock": T + i * 1000 * S, "sent": []}
                                         for i, r in enumerate("abc")}
    out: list[tuple[str, int | None, int, int]] = []
    for _ in range(n):
        r = rng.choice("abc")
        st = robots[r]
        k = rng.random()
        boot = st["boot"] if with_boot else None
        if k < 0.75:
            st["seq"] += rng.choice((1, 1, 1, 1, 2))  # sometimes a frame lost on the way (a gap)
            st["clock"] += S
            st["sent"].append((st["seq"], st["clock"]))
            out.append((r, boot, st["seq"], st["clock"]))
        elif k < 0.93 and st["sent"]:
            s, ts = rng.choice(st["sent"][-200:])  # a redelivery of something recent
            out.append((r, boot, s, ts))
        elif k < 0.97 and st["sent"] and st["sent"][-1][0] > 0:
            s, ts = st["sent"][-1]
            out.append((r, boot, s - 1, ts - S))  # the frame of a gap arriving late (or a repeat)
        else:
            st["boot"] += 1
            st["seq"] = 0
            st["clock"] += rng.choice((S, -3600 * S)) if with_boot else S  # without boot the clock stays right
            st["sent"] = [(0, st["clock"])]
            out.append((r, st["boot"] if with_boot else None, 0, st["clock"]))
    return out


def test_against_the_reference_with_and_without_boot() -> None:
    for with_boot in (True, False):
        for seed in range(4):
            rng = random.Random(seed)
            t, ref = SeqTracker(), Reference()
            for robot, boot, seq, ts in _fleet_traffic(rng, with_boot):
                kind = t.observe(robot, seq, ts, boot)
                assert (kind in REPEATS) == ref.is_repeat(robot, boot, seq, ts), (with_boot, seed, robot, seq, ts)


def test_observe_run_is_observe_one_by_one() -> None:
    rng = random.Random(3)
    one, run = SeqTracker(max_ranges=8), SeqTracker(max_ranges=8)
    nxt = {"a": 0, "b": 0}
    clock = {"a": T, "b": T}
    for _ in range(3000):
        robot = rng.choice("ab")
        k = rng.random()
        if k < 0.6:    # what a robot sends: the next ones in order, sometimes after a hole
            start = nxt[robot] + (rng.randrange(1, 5) if rng.random() < 0.1 else 0)
            seqs = list(range(start, start + rng.randrange(1, 25)))
        elif k < 0.8:  # a redelivery or a backlog filling a hole
            start = max(0, nxt[robot] - rng.randrange(1, 40))
            seqs = list(range(start, start + rng.randrange(1, 10)))
        elif k < 0.9:
            seqs = [rng.randrange(0, nxt[robot] + 30) for _ in range(rng.randrange(1, 6))]
        else:          # a restart: numbering from 0, later in time
            seqs = [0, 1, 2]
            clock[robot] += 10_000 * S
        ts = [clock[robot] + s * S for s in seqs]
        expect = [one.observe(robot, s, x) for s, x in zip(seqs, ts)]
        got = run.observe_run(robot, seqs, ts)
        assert (got if got is not None else [NEW] * len(seqs)) == expect, seqs
        assert got is not None or all(x == NEW for x in expect)
        nxt[robot] = max(nxt[robot], max(seqs) + 1) if seqs != [0, 1, 2] else 3
        assert run.counts == one.counts and run.high(robot) == one.high(robot)
        assert run.missing(robot) == one.missing(robot)
