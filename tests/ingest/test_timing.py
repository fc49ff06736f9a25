"""Robot clocks: corrections, and frames placed as live, late or history."""

from __future__ import annotations

from ingest.timing import HISTORY, LATE, LIVE, RobotClocks

S = 1_000_000_000
NOW = 1_800_000_000 * S


class Robot:
    """A robot sending one frame a second, ``clock`` seconds off, through a clock tracker."""

    def __init__(self, clocks: RobotClocks, name: str = "r1") -> None:
        self.clocks, self.name = clocks, name
        self.seq = 0
        self.t = NOW  # true time
        self.off = 0  # its clock minus true time (s)
        self.window_s: float | None = None  # how far ahead of its arrival a frame is taken (None: any)

    def send(self, n: int = 1, latency_s: float = 0.02):
        out = []
        for _ in range(n):
            self.t += S
            self.seq += 1
            ts = self.t + self.off * S
            arrival = self.t + int(latency_s * S)
            ceiling = None if self.window_s is None else arrival + int(self.window_s * S)
            out.append(self.clocks.place(self.name, [ts], [self.seq], None, arrival, ceiling=ceiling))
        return out


def test_a_right_clock_is_left_alone_and_its_frames_are_live() -> None:
    r = Robot(RobotClocks())
    for p in r.send(100):
        assert p.offset == 0 and p.classes is None and p.changed is None


def test_a_clock_an_hour_ahead_is_corrected_at_its_first_frame_and_back_when_right() -> None:
    r = Robot(RobotClocks(tolerance_s=5.0))
    r.send(10)
    r.off = 3600
    first, *rest = r.send(20)
    assert first.changed == "ahead" and first.classes is None
    # the newest frame lands at its arrival plus the tolerance: in order with the frames before
    assert abs((r.t - 19 * S + 3600 * S + first.offset) - (r.t - 19 * S + 5 * S)) < S
    assert all(p.changed is None and p.offset == first.offset for p in rest[1:])
    r.off = 0  # set right again
    p = r.send(1)[0]
    assert p.changed == "right" and p.offset == 0


def test_a_clock_that_jumps_back_is_corrected_at_once() -> None:
    r = Robot(RobotClocks())
    r.send(30)
    r.off = -3600
    p, q = r.send(2)
    assert p.changed == "jumped back" and abs(p.offset - 3600 * S) < S and p.classes is None
    assert q.changed is None and q.offset == p.offset
    r.off = 0
    assert r.send(1)[0].changed == "right"


def test_a_clock_behind_from_the_start_is_corrected_once_it_stays_behind() -> None:
    clocks = RobotClocks(settle_s=30.0)
    r = Robot(clocks)
    r.off = -7200  # up two hours behind, and no jump to see
    first = r.send(1)[0]
    assert first.classes == [HISTORY]  # two hours old, as far as anyone can tell yet
    placements = r.send(40)
    fixed = [p for p in placements if p.changed == "behind"]
    assert len(fixed) == 1 and abs(fixed[0].offset - 7200 * S) < S
    assert placements[-1].classes is None and placements[-1].offset == fixed[0].offset


def test_a_backlog_is_late_not_a_clock_and_older_than_the_horizon_is_history() -> None:
    clocks = RobotClocks(late_after_s=30.0, horizon_s=3600.0)
    r = Robot(clocks)
    r.send(10)
    # a coverage hole of 20 min: the robot keeps reading, then sends its backlog fast, 60 a message
    hole = []
    for _ in range(1200):
        r.t += S
        r.seq += 1
        hole.append((r.t, r.seq))
    arrive = r.t + S
    placements = []
    for i in range(0, 1200, 60):
        chunk = hole[i:i + 60]
        placements.append(clocks.place("r1", [t for t, _ in chunk], [s for _, s in chunk], None, arrive))
        arrive += S // 10  # ten messages a second: the lag shrinks as it drains
    assert all(p.offset == 0 and p.changed is None for p in placements)
    assert placements[0].classes == [LATE] * 60
    assert placements[-1].classes is not None and placements[-1].classes[-1] == LIVE
    # a robot that was out of reach for two hours: the oldest part of its backlog is history
    far = clocks.place("r2", [NOW - 7200 * S, NOW - 1800 * S, NOW - 10 * S], [1, 2, 3], None, NOW)
    assert far.classes == [HISTORY, LATE, LIVE] and far.offset == 0


def _a_day_window() -> Robot:
    """A robot with its clock right for 10 frames, placed with a window a day ahead: a day ahead is
    corrected at once; further, only once it stays so."""
    r = Robot(RobotClocks(tolerance_s=5.0, settle_s=30.0))
    r.window_s = 86400.0
    r.send(10)
    return r


def test_a_clock_days_ahead_is_corrected_only_once_it_stays_that_far_ahead() -> None:
    r = _a_day_window()
    r.off = 2 * 86400  # a GPS week roll-over, an RTC set wrong
    placements = r.send(40)
    fixed = [i for i, p in enumerate(placements) if p.changed is not None]
    assert len(fixed) == 1 and placements[fixed[0]].changed == "ahead"
    assert 29 <= fixed[0] <= 31, fixed  # after 30 s of it, not before
    assert all(p.offset == 0 for p in placements[:fixed[0]])
    # the newest frame lands at its arrival plus the tolerance, and the correction stands
    assert abs(placements[-1].offset + (2 * 86400 - 5) * S) < S
    assert all(p.offset == placements[-1].offset and p.classes is None for p in placements[fixed[0]:])
    r.off = 0
    assert r.send(1)[0].changed == "right"


def test_a_single_frame_days_ahead_between_good_ones_is_never_a_correction() -> None:
    r = _a_day_window()
    for _ in range(40):  # garbage now and then, for longer than the settle time
        r.off = 30 * 86400
        bad = r.send(1)[0]
        r.off = 0
        good = r.send(1)[0]
        assert (bad.offset, bad.changed, good.offset, good.changed) == (0, None, 0, None)
    # an hour ahead is within the window: corrected at its first frame, as ever
    r.off = 3600
    assert r.send(1)[0].changed == "ahead"


def test_a_clock_corrected_for_weeks_back_is_right_at_once_when_set_right_again() -> None:
    r = _a_day_window()
    r.off = -21 * 86400  # a real-time clock reset weeks back: its numbering goes on
    assert [p.changed for p in r.send(5) if p.changed] == ["jumped back"]
    r.off = 0  # its time from the network again: right as it is, not days ahead by the correction
    first, *rest = r.send(5)
    assert (first.changed, first.offset, first.classes) == ("right", 0, None)
    assert all((p.changed, p.offset) == (None, 0) for p in rest)
    r.off = -21 * 86400
    r.send(5)
    r.off = 3600  # or an hour ahead: corrected at once, as any clock within the window
    p = r.send(1)[0]
    assert p.changed == "ahead" and abs(p.offset + (3600 - 5) * S) < S
