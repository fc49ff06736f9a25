"""Readings a robot held back, from the router's numbering to the live detectors, as the pipeline
runs them (:meth:`ingest.pipeline.Pipeline.detect`): no broker, no database."""

from __future__ import annotations

import time

import msgspec

from detectors import DetectorSuite
from ingest.consumer import Incoming
from ingest.counters import Counters
from ingest.options import IngestOptions
from ingest.pipeline import catalogue_only
from ingest.router import Routed, Router
from ingest.seqtrack import SUSPECT_RUN
from ingest.warmstart import restore_seq_from
from minewatch.schema import AlertEvent, Severity
from minewatch.topics import Topics
from minewatch.wire import Frame, encode_frames

from tests.ingest.helpers import frames_for

TOPICS = Topics("rt/v1")
S = 1_000_000_000
TOPIC = TOPICS.telemetry("mf01", "r01")


def _frames(ch4: list[float], *, start_seq: int, t0: int, boot: int | None = None) -> list[Frame]:
    """A robot's frames at mf01, one a second from ``t0`` (frame ``i`` at ``t0 + i`` s), methane at
    the face as given."""
    fs = frames_for("mf01", "r01", len(ch4), start_seq=start_seq, t0=t0 - start_seq * S)
    return [msgspec.structs.replace(f, boot=boot, readings={**f.readings, "ch4_t1": v}) for f, v in zip(fs, ch4)]


class _Live:
    """A router and the live detectors, each message routed and detected in its own pass."""

    def __init__(self) -> None:
        self.router = Router(TOPICS, IngestOptions(robots="*"), Counters())
        self.suite = DetectorSuite()
        self.routed = Routed()
        self.mid = 0

    def send(self, frames: list[Frame], *, redelivered: bool = False) -> list[AlertEvent]:
        self.mid += 1
        self.router.route([Incoming(TOPIC, encode_frames(frames), self.mid, 1, redelivered, 1, time.time_ns(),
                                    redelivered)], self.routed)
        work = self.routed.take_for_detectors()
        if not work.detect:
            return []
        det = self.suite.process(catalogue_only(work.detect), late=work.detect_late, arrived=work.detect_arrived,
                                 held_back=work.detect_held)
        return [e for e in det.events if e.detector == "gas_limit"]


def _states(events: list[AlertEvent]) -> list[tuple[str, str]]:
    return [(e.state.value, e.severity.value) for e in events]


def test_the_last_boots_backlog_after_a_reboot_does_not_clear_a_standing_methane_alarm() -> None:
    """A robot reads methane normally (boot 1), loses its link and holds its next readings, reboots
    (boot 2) and reads 1.6 % at the face: the alarm is raised. Then the backlog of boot 1, older and
    normal, arrives. It is behind the newer boot's readings: it must not clear the alarm."""
    t0 = time.time_ns() - 40 * S
    live = _Live()
    assert live.send(_frames([0.3] * 10, start_seq=0, t0=t0, boot=1)) == []
    raised = live.send(_frames([1.6] * 3, start_seq=0, t0=t0 + 20 * S, boot=2))
    assert _states(raised) == [("raised", "critical")]
    backlog = _frames([0.3] * 5, start_seq=10, t0=t0 + 10 * S, boot=1)
    assert live.send(backlog) == []
    assert [e.severity for e in live.suite.active() if e.detector == "gas_limit"] == [Severity.critical]
    assert live.routed.store_late[-5:] == [True] * 5  # stored, marked late
    # the newer boot's readings decide
    assert _states(live.send(_frames([0.3] * 3, start_seq=3, t0=t0 + 23 * S, boot=2))) == [("cleared", "critical")]


def test_the_last_boots_backlog_past_the_limit_after_a_reboot_leaves_no_alarm_standing() -> None:
    """The other way round: the backlog of the last boot read 1.6 % and the new boot reads normal.
    What the backlog shows happened and is over: raised late, and cleared at once."""
    t0 = time.time_ns() - 40 * S
    live = _Live()
    live.send(_frames([0.3] * 10, start_seq=0, t0=t0, boot=1))
    assert live.send(_frames([0.3] * 5, start_seq=0, t0=t0 + 20 * S, boot=2)) == []
    events = live.send(_frames([1.6] * 3, start_seq=10, t0=t0 + 10 * S, boot=1))
    assert _states(events) == [("raised", "critical"), ("cleared", "critical")]
    assert all(e.timing.value == "late" for e in events)
    assert live.suite.active() == []
    # numbering of the new boot goes on undisturbed: its next frame is new, no restart counted
    resets = live.router.seq.counts.resets
    assert live.send(_frames([0.3], start_seq=5, t0=t0 + 25 * S, boot=2)) == []
    assert live.router.seq.counts.resets == resets == 1 and live.router.seq.high("r01") == 5


def test_held_back_readings_after_a_restart_are_judged_as_held_back() -> None:
    """The robot held back seq 10-14 and sent 15-19; the ingestor restarted and warmed up on what
    was stored (0-9 and 15-19). Then the held-back readings come, with 1.6 % at the face: the
    alarm happened, so it is raised, marked late, and cleared at the newest reading."""
    t0 = time.time_ns() - 40 * S
    stored = _frames([0.3] * 10, start_seq=0, t0=t0, boot=1) + _frames([0.3] * 5, start_seq=15, t0=t0 + 15 * S,
                                                                         boot=1)
    live = _Live()
    restore_seq_from(live.router.seq, stored, {})
    live.suite.process(stored, late=[False] * len(stored))  # the warm-up
    events = live.send(_frames([1.6] * 5, start_seq=10, t0=t0 + 10 * S, boot=1))
    assert _states(events) == [("raised", "critical"), ("cleared", "critical")]
    assert events[0].ts == t0 + 10 * S and events[1].ts == t0 + 19 * S
    assert live.suite.active() == []


def test_a_long_backlog_from_before_the_warm_up_does_not_restart_a_robots_numbering() -> None:
    """The ingestor restarted and warmed up on seq 100-119 of boot 1, in which the methane alarm
    stands. Then the robot's backlog from before the warm-up comes, seq 40-79, older and normal.
    A robot that sends its boot says by it that it has not restarted: the backlog must not be
    taken for a restart (and so for the newest readings), nor clear the alarm."""
    t0 = time.time_ns() - 200 * S
    stored = _frames([1.6] * 20, start_seq=100, t0=t0 + 100 * S, boot=1)
    live = _Live()
    restore_seq_from(live.router.seq, stored, {})
    live.suite.process(stored, late=[False] * len(stored))  # the warm-up
    assert [e.severity for e in live.suite.active() if e.detector == "gas_limit"] == [Severity.critical]
    for k in range(40, 80, 10):
        assert live.send(_frames([0.3] * 10, start_seq=k, t0=t0 + k * S, boot=1)) == []
    assert [e.severity for e in live.suite.active() if e.detector == "gas_limit"] == [Severity.critical]
    assert live.router.seq.counts.resets == 0 and live.router.seq.high("r01") == 119
    # the robot's next frame follows on
    assert live.send(_frames([1.6], start_seq=120, t0=t0 + 120 * S, boot=1)) == []
    assert live.router.seq.counts.gaps == 0


def test_a_backlog_from_before_the_warm_up_past_the_limit_is_raised_late_and_cleared() -> None:
    """As above, the warm-up's readings normal and the backlog from before them at 1.6 %: the
    alarm happened, and every one of those readings is judged, not passed over as a repeat."""
    t0 = time.time_ns() - 200 * S
    stored = _frames([0.3] * 20, start_seq=100, t0=t0 + 100 * S, boot=1)
    live = _Live()
    restore_seq_from(live.router.seq, stored, {})
    live.suite.process(stored, late=[False] * len(stored))
    events = live.send(_frames([0.3] * 5 + [1.6] * 5, start_seq=40, t0=t0 + 40 * S, boot=1))
    assert _states(events) == [("raised", "critical"), ("cleared", "critical")]
    assert events[0].ts == t0 + 45 * S and events[1].ts == t0 + 119 * S
    assert live.router.seq.counts.duplicates == 0 and live.router.seq.counts.late == 10


def test_the_backlog_of_a_robot_first_met_mid_stream_is_judged_frame_by_frame() -> None:
    """The ingestor first meets the robot at seq 100 (nothing stored of it), then its backlog comes
    in order, oldest first: every frame is late, not only the first."""
    t0 = time.time_ns() - 200 * S
    live = _Live()
    live.send(_frames([0.3] * 10, start_seq=100, t0=t0 + 100 * S, boot=1))
    events = live.send(_frames([0.3] * 5 + [1.6] * 5, start_seq=40, t0=t0 + 40 * S, boot=1))
    assert _states(events) == [("raised", "critical"), ("cleared", "critical")]
    assert live.router.seq.counts.late == 10 and live.router.seq.counts.duplicates == 0
    assert live.routed.store_late[-10:] == [True] * 10


def test_a_robot_without_boot_that_restarts_with_its_clock_back_after_a_warm_start_raises_its_alarm() -> None:
    """The ingestor warmed up on seq 100-119 of a robot that sends no boot. The robot restarts with
    its clock gone back (dated before the stored frames) and reads 1.6 % at the face, one frame a
    message. Its frames are its newest readings, not a backlog: after at most the unverified run
    (SUSPECT_RUN) they are taken as the restart they are, and the alarm stands."""
    t0 = time.time_ns() - 200 * S
    stored = _frames([0.3] * 20, start_seq=100, t0=t0 + 100 * S)
    live = _Live()
    restore_seq_from(live.router.seq, stored, {})
    live.suite.process(stored, late=[False] * len(stored))
    for k in range(SUSPECT_RUN + 5):
        live.send(_frames([1.6], start_seq=k, t0=t0 + 50 * S + k * S))
    assert [e.severity for e in live.suite.active() if e.detector == "gas_limit"] == [Severity.critical]
    assert live.router.seq.counts.resets == 1


def test_the_last_boots_backlog_after_a_reboot_and_a_warm_start_does_not_clear_a_standing_methane_alarm() -> None:
    """As the first test, with the ingestor restarted between the reboot and the backlog: it warmed
    up on boot 1's seq 0-9 and boot 2's 0-2 (the alarm stands). Boot 1's backlog is still known as
    held back, not taken for a restart and the newest readings."""
    t0 = time.time_ns() - 40 * S
    stored = _frames([0.3] * 10, start_seq=0, t0=t0, boot=1) + _frames([1.6] * 3, start_seq=0, t0=t0 + 20 * S, boot=2)
    live = _Live()
    restore_seq_from(live.router.seq, stored, {})
    live.suite.process(stored, late=[False] * len(stored))  # the warm-up
    assert [e.severity for e in live.suite.active() if e.detector == "gas_limit"] == [Severity.critical]
    assert live.send(_frames([0.3] * 5, start_seq=10, t0=t0 + 10 * S, boot=1)) == []
    assert [e.severity for e in live.suite.active() if e.detector == "gas_limit"] == [Severity.critical]
    assert live.router.seq.boot("r01") == 2 and live.router.seq.counts.late == 5
    assert live.router.seq.counts.resets == 0
    # the newer boot's readings decide, and its numbering goes on
    assert _states(live.send(_frames([0.3] * 3, start_seq=3, t0=t0 + 23 * S, boot=2))) == [("cleared", "critical")]
    assert live.router.seq.follows("r01", 6, 2)
