"""DetectorSuite over gas readings: levels, hysteresis, lifecycle, dedup, restore."""

from __future__ import annotations

import itertools
from typing import Any

import numpy as np
import pytest

from detectors import DetectorSuite, parse_overrides
from minewatch.schema import AlertEvent, AlertState, Severity
from minewatch.wire import Frame
from tests.detectors.conftest import S, T0, frame, series


def states(events: list[AlertEvent], detector: str = "gas_limit") -> list[tuple[str, str]]:
    return [(e.state.value, e.severity.value) for e in events if e.detector == detector]


def only(events: list[AlertEvent], detector: str = "gas_limit") -> list[AlertEvent]:
    return [e for e in events if e.detector == detector]


def test_first_power_cut_reading_is_critical_in_that_batch() -> None:
    suite = DetectorSuite()
    quiet = suite.process(series("r01", "mf01", "ch4_t1", [0.3, 0.4, 0.5]))
    assert quiet.events == []
    d = suite.process([frame("r01", "mf01", 3, {"ch4_t1": 1.62})])
    assert states(d.events) == [("raised", "critical")]
    ev = d.events[0]
    assert ev.alert_id == f"mf01.ch4_t1.gas_limit.{(T0 + 3 * S) // 1_000_000}.r01"
    assert ev.value == pytest.approx(1.62) and ev.limit == 1.5 and ev.unit == "%"
    assert ev.kind.value == "gas" and ev.robot_id == "r01" and ev.channel == "ch4_t1"
    for part in ("Methane at face T1", "1.62 %", "mf01", "15101 fully-mechanised longwall", "power-cut level 1.5 %",
                 "cut power to the face"):
        assert part in ev.message, part
    # plain words for the operator; the rule it comes from is in the evidence
    assert "CMSR" not in ev.message and "CMSR Art.498" in ev.evidence["rule"]
    assert ev.incident_id == f"mf01.methane.{(T0 + 3 * S) // 1_000_000}.r01"


def test_methane_alarm_escalate_hysteresis_clear() -> None:
    suite = DetectorSuite()
    # one reading dipping below the restore level (no band between it and the alarm level) does not
    # clear: three in a row do
    d = suite.process(series("r01", "mf01", "ch4_t1", [0.5, 1.05, 1.2, 1.55, 1.2, 1.0, 0.99, 1.0, 0.99, 0.98, 0.97,
                                                        1.3]))
    assert states(d.events) == [("raised", "alarm"), ("escalated", "critical"), ("cleared", "critical"),
                                ("raised", "alarm")]
    raised, esc, cleared, again = only(d.events)
    assert raised.alert_id == esc.alert_id == cleared.alert_id != again.alert_id
    assert cleared.ts == T0 + 10 * S and cleared.value == pytest.approx(0.97) and cleared.limit == 1.0
    assert "restore level 1 %" in cleared.message
    assert "stop electric drilling" in raised.message  # alarm-level action differs from the cut
    assert [a for a in suite.active() if a.detector == "gas_limit"] == [again]


def test_other_gases_and_oxygen_minimum() -> None:
    suite = DetectorSuite()
    frames = [frame("r01", "mf01", i, {"co": co, "o2": o2}) for i, (co, o2) in enumerate(
        [(3, 20.8), (19, 20.8), (19.5, 19.9), (25, 19.8), (25, 19.4), (10, 20.1), (10, 20.3), (10, 20.4)])]
    got = [(e.channel, e.state.value, e.severity.value) for e in only(suite.process(frames).events)]
    assert got == [
        ("co", "raised", "warning"),      # two samples >= 18 ppm (debounce)
        ("o2", "raised", "alarm"),        # two samples < 20 %
        ("co", "escalated", "alarm"),     # two samples >= 24 ppm
        ("o2", "escalated", "critical"),  # < 19.5 %: first sample
        ("co", "cleared", "alarm"),       # two samples < 18 ppm
        ("o2", "cleared", "critical"),    # two samples >= 20.2 % (20.1 is inside the band)
    ]


def test_single_noisy_sample_below_power_cut_does_not_alert_co() -> None:
    suite = DetectorSuite()
    assert only(suite.process(series("r01", "mf01", "co", [3, 30, 3, 4])).events) == []


def test_two_robots_feed_one_alert_with_worst_severity() -> None:
    suite = DetectorSuite()
    frames = [
        frame("r01", "hf01", 0, {"ch4_t1": 1.1}),
        frame("r02", "hf01", 1, {"ch4_t1": 1.7}),
        *(frame("r01", "hf01", i, {"ch4_t1": 0.4}) for i in (2, 3, 4)),  # r01 clears, r02 still critical
        frame("r02", "hf01", 5, {"ch4_t1": 1.2}),   # holds
        *(frame("r02", "hf01", i, {"ch4_t1": 0.6}) for i in (6, 7, 8)),  # the last source clears
    ]
    d = suite.process(frames)
    assert [(e.state.value, e.severity.value, e.robot_id) for e in only(d.events)] == [
        ("raised", "alarm", "r01"), ("escalated", "critical", "r02"), ("cleared", "critical", "r02")]
    assert len({e.alert_id for e in only(d.events)}) == 1


def test_acknowledge_then_escalate_then_clear() -> None:
    suite = DetectorSuite()
    (raised,) = suite.process(series("r01", "mf01", "ch4_t0", [1.1])).events
    ack = suite.acknowledge(raised.alert_id, "op.li", "checking", T0 + 5 * S)
    assert ack.state is AlertState.acknowledged and ack.operator == "op.li" and ack.note == "checking"
    assert ack.alert_id == raised.alert_id and ack.severity is Severity.alarm
    assert suite.active() == [ack]
    (esc,) = suite.process(series("r01", "mf01", "ch4_t0", [1.6], start=6)).events
    assert esc.state is AlertState.escalated and esc.alert_id == raised.alert_id
    assert suite.active()[0].state is AlertState.escalated
    (clr,) = suite.process(series("r01", "mf01", "ch4_t0", [0.5] * 3, start=7)).events
    assert clr.state is AlertState.cleared
    with pytest.raises(KeyError):
        suite.acknowledge(raised.alert_id, "op.li", None, T0 + 11 * S)
    assert suite.active() == []


def test_restore_keeps_ids_and_clears_later() -> None:
    first = DetectorSuite()
    stored = first.process(series("r01", "mf01", "ch4_t1", [0.4, 1.1, 1.6])).events
    assert len(only(stored)) == 2
    again = DetectorSuite()
    again.restore(stored)
    assert [e.alert_id for e in again.active()] == [stored[0].alert_id]
    assert again.active()[0].severity is Severity.critical
    assert stored[0].detector == "gas_limit"
    # still high after the restart: no second alert; then it clears under the same id
    d = again.process(series("r01", "mf01", "ch4_t1", [1.7, 1.3, 0.5, 0.5, 0.5], start=3))
    assert states(d.events) == [("cleared", "critical")]
    assert d.events[0].alert_id == stored[0].alert_id


def test_batch_split_gives_identical_events() -> None:
    values = [0.3, 1.0, 1.4, 1.6, 1.1, 0.9, 1.2, 0.8, 1.5, 0.2] * 3
    frames = []
    for i, v in enumerate(values):
        frames.append(frame("r01", "mf01", i, {"ch4_t1": v, "co": 10 + 5 * v, "o2": 20.9 - v}))
        frames.append(frame("r02", "mf01", i, {"ch4_t1": v * 0.9, "ch4_t2": v}, t0=T0 + S // 2))
    whole = DetectorSuite().process(frames).events
    assert len(only(whole)) > 6
    for size in (1, 3, 7):
        suite = DetectorSuite()
        got = [e for k in range(0, len(frames), size) for e in suite.process(frames[k:k + size]).events]
        assert got == whole, size


def test_late_frames_are_marked() -> None:
    suite = DetectorSuite()
    d = suite.process(series("r01", "mf01", "ch4_t1", [0.3, 1.6]), late=[True, True])
    assert d.events[0].evidence["late"] is True


def test_a_late_reading_past_the_limit_behind_newer_ones_is_raised_and_cleared() -> None:
    # a robot's held-back reading (seq 5) comes after its newer ones: the exceedance happened and is
    # over; the board gets it, marked late, and no alert is left up that no newer reading would clear
    suite = DetectorSuite()
    assert suite.process(series("r01", "mf01", "ch4_t1", [0.3] * 10)).events == []
    d = suite.process([frame("r01", "mf01", 5, {"ch4_t1": 1.6})], late=[True], held_back=[0])
    assert states(d.events) == [("raised", "critical"), ("cleared", "critical")]
    raised, cleared = d.events
    assert raised.ts == T0 + 5 * S and raised.value == 1.6 and raised.timing.value == "late"
    assert cleared.ts == T0 + 9 * S and cleared.timing.value == "late" and cleared.value is None
    assert "came late" in cleared.message and "08:00:09 UTC" in cleared.message
    assert suite.active() == []
    # the live level was not moved: the robot's next readings raise nothing, a real rise raises
    assert suite.process(series("r01", "mf01", "ch4_t1", [0.3, 0.3], start=10)).events == []
    assert states(suite.process(series("r01", "mf01", "ch4_t1", [1.6], start=12)).events) == [("raised", "critical")]


def test_late_readings_below_the_restore_level_do_not_clear_a_standing_alert() -> None:
    suite = DetectorSuite()
    d = suite.process(series("r01", "mf01", "ch4_t1", [0.3] * 8 + [1.6, 1.6]))
    assert states(d.events) == [("raised", "critical")]
    # three older readings of the quiet minutes before, sent late: the methane is still high
    d = suite.process([frame("r01", "mf01", i, {"ch4_t1": 0.3}) for i in (5, 6, 7)], late=[True] * 3,
                      held_back=[0, 1, 2])
    assert only(d.events) == []
    assert [e.severity for e in suite.active()] == [Severity.critical]
    # the newest readings decide
    d = suite.process(series("r01", "mf01", "ch4_t1", [0.3, 0.3, 0.3], start=10))
    assert states(d.events) == [("cleared", "critical")]


def test_held_back_readings_past_the_power_cut_level_escalate_the_standing_alarm() -> None:
    # the alarm stands from seq 8 (1.2 %); the robot held back seq 9-11, in which methane passed the
    # power-cut level: the alarm was critical, and the regulation keeps power off until methane is
    # below the restore level, whatever it passed through. The alert says so, marked late.
    suite = DetectorSuite()
    d = suite.process(series("r01", "mf01", "ch4_t1", [0.3] * 8 + [1.2]) + series("r01", "mf01", "ch4_t1", [1.2] * 3,
                                                                                   start=12))
    assert states(d.events) == [("raised", "alarm")]
    d = suite.process(series("r01", "mf01", "ch4_t1", [1.4, 1.8, 1.3], start=9), late=[True] * 3, held_back=[0, 1, 2])
    assert states(d.events) == [("escalated", "critical")]
    esc = d.events[0]
    assert esc.ts == T0 + 10 * S and esc.value == 1.8 and esc.timing.value == "late"
    assert [e.severity for e in only(suite.active())] == [Severity.critical]
    # the live level was not moved by the held-back readings; the newest readings clear the alarm
    assert suite.process(series("r01", "mf01", "ch4_t1", [1.2], start=15)).events == []
    d = suite.process(series("r01", "mf01", "ch4_t1", [0.3] * 3, start=16))
    assert states(d.events) == [("cleared", "critical")]


def test_held_back_readings_from_before_the_standing_alarm_do_not_escalate_it() -> None:
    # seq 3 read 1.8 %, seq 4 0.3 %: an excursion that was over before the alarm of seq 8 was raised.
    # It is reported late, an alert of its own raised and cleared; the alarm is not escalated
    suite = DetectorSuite()
    suite.process(series("r01", "mf01", "ch4_t1", [0.3] * 3) + series("r01", "mf01", "ch4_t1", [0.3] * 3 + [1.2] * 2,
                                                                       start=5))
    [alarm] = only(suite.active())
    d = suite.process(series("r01", "mf01", "ch4_t1", [1.8, 0.3], start=3), late=[True] * 2, held_back=[0, 1])
    assert late_apart(d.events, alarm) == [("raised", Severity.critical, "r01", 3), ("cleared", Severity.critical, "r01", 9)]
    assert only(suite.active()) == [alarm]


def test_a_held_back_reading_of_an_alarm_already_over_is_cleared_at_once_not_held_as_flapping() -> None:
    # live: an alarm from seq 5, cleared at seq 12; seq 7, held back, comes after: what it raises is
    # cleared at once. Were its clear held as a flapping alarm's is, an alarm whose cause was gone
    # would stand on the board for the hold.
    suite = DetectorSuite()
    live = series("r01", "mf01", "ch4_t1", [0.3] * 5 + [1.2] * 2) + series("r01", "mf01", "ch4_t1", [1.2] * 2 + [0.3] * 5,
                                                                           start=8)
    assert states(suite.process(live).events) == [("raised", "alarm"), ("cleared", "alarm")]
    d = suite.process([frame("r01", "mf01", 7, {"ch4_t1": 1.2})], late=[True], held_back=[0])
    assert states(d.events) == [("raised", "alarm"), ("cleared", "alarm")]
    assert d.events[1].ts == T0 + 14 * S and "flapping" not in d.events[1].evidence
    assert only(suite.active()) == []


def test_late_readings_of_a_stream_with_nothing_newer_are_taken_as_its_newest() -> None:
    # the robot has since moved on (its newer frames are of another place): the late readings are
    # all that place knows of it, so what they raise stands until a reading clears it
    suite = DetectorSuite()
    suite.process(series("r01", "mf02", "ch4_t1", [0.3] * 3, start=20))
    d = suite.process(series("r01", "mf01", "ch4_t1", [0.3, 1.6, 1.6]), late=[True] * 3, held_back=[0, 1, 2])
    assert states(d.events) == [("raised", "critical")]
    assert [e.scenario_id for e in suite.active()] == ["mf01"]


def test_readings_dated_late_but_not_held_back_are_taken_as_the_newest() -> None:
    # a spare robot under the same id whose clock is behind: its readings are dated before the last
    # robot's, late, until the ingestor corrects its clock; they are what the place reads now
    suite = DetectorSuite()
    suite.process(series("r01", "mf01", "ch4_t1", [0.3] * 10))
    d = suite.process(series("r01", "mf01", "ch4_t1", [1.6, 1.6], start=4), late=[True, True])
    assert states(d.events) == [("raised", "critical")]
    assert [e.severity for e in suite.active()] == [Severity.critical]


def test_overrides_change_limits() -> None:
    suite = DetectorSuite(overrides=parse_overrides(["mf01.ch4_t1.critical=1.2", "*.ch4*.alarm=0.8"]))
    d = suite.process(series("r01", "mf01", "ch4_t1", [0.5, 0.85, 1.25]))
    assert states(d.events) == [("raised", "alarm"), ("escalated", "critical")]
    assert d.events[1].limit == 1.2
    # the restore level follows a lowered alarm level down, so 0.9 holds rather than clears
    assert suite.process(series("r01", "mf01", "ch4_t1", [0.9], start=3)).events == []


@pytest.mark.parametrize("bad, why", [
    (["mf01.ch4_t1.critical"], "KEY=VALUE"),
    (["mf01.ch4_t1=1"], "SCENARIO.CHANNEL.FIELD"),
    (["mf01.ch4_t1.panic=1"], "unknown field"),
    (["mf01.ch4_t1.critical=abc"], "not a number"),
    (["mf01.ch4_t1.critical=nan"], "finite"),
    (["zz99.ch4_t1.critical=1"], "matches no channel"),
    (["mf01.ch4_t2.alarm=1"], "matches no channel"),  # T2 has only the power-cut level
    (["ra03.ws.alarm=1"], "both sides"),
    (["ra03.ws.alarm.middle=1"], "high' or 'low"),
    (["mf01.ch4_t1.spike_k=0"], "spike_k must be above 0"),
    (["mf01.ch4_t1.stuck_s=-5"], "stuck_s must be above 0"),
    (["mf01.rh.change_h=-1"], "change_h must be above 0"),
    (["mf01.rh.change_warmup=2.5"], "whole number"),
    (["mf01.ch4_t1.drift_tol=0"], "drift_tol must be above 0"),
    (["mf01.ch4_t1.change_h=30"], "matches no channel"),  # methane has limits: no change notices
    (["lf01.run.stuck_s=600"], "matches no channel"),  # a two-valued signal is never stuck
    (["mf01.co.selfdrift_tol=-1"], "selfdrift_tol must be above 0"),
    (["bc01.sm.selfdrift_tol=1"], "matches no channel"),  # a two-valued signal has no baseline drift
])
def test_parse_overrides_rejects_bad_keys(bad: list[str], why: str) -> None:
    with pytest.raises(ValueError, match=why):
        parse_overrides(bad)


def test_detector_settings_are_overridden_per_channel() -> None:
    suite = DetectorSuite(overrides=parse_overrides(["mf01.ch4_t1.stuck_s=600", "mf01.ch4*.spike_k=7",
                                                     "mf01.rh.change_warmup=90", "mf01.ch4_t1.drift_tol=0.05"]))
    suite.process([frame("r01", "mf01", 0, {"ch4_t0": 0.3, "ch4_t1": 0.3, "ch4_t2": 0.3, "rh": 80.0})])
    health, change, drift = (suite.detectors[n].table for n in ("sensor_health", "change", "sensor_drift"))
    base = suite.batching.base
    t0, t1, rh = (base.get(("mf01", "r01", c)) for c in ("ch4_t0", "ch4_t1", "rh"))
    assert health["h_stuck_s"][t1] == 600.0 and health["h_stuck_s"][t0] == 120.0
    assert health["h_spike_k"][t0] == health["h_spike_k"][t1] == 7.0
    assert change["c_warmup"][rh] == 90
    # a pair takes the smaller tolerance of its two channels: T0-T1 and T1-T2 both hold T1
    assert drift["tol"][drift.get(("mf01", "r01", "ch4_t0", "ch4_t1"))] == 0.05
    assert drift["tol"][drift.get(("mf01", "r01", "ch4_t1", "ch4_t2"))] == 0.05


def test_misordered_override_is_refused() -> None:
    with pytest.raises(ValueError, match="out of order"):
        DetectorSuite(overrides={"mf01.ch4_t1.alarm": 2.0})


def test_flapping_alert_holds_its_clear() -> None:
    suite = DetectorSuite()
    # CO dithering about its limits: raised and cleared again and again (three readings below the
    # restore level clear it: CO has no band between its restore and warning levels)
    values = [3, 30, 30, 3, 3, 3] * 6 + [3] * 5
    d = suite.process(series("r01", "mf01", "co", values, dt_s=10.0))
    co = only(d.events)
    # a second raise makes it chattering: after that one alert stays up instead of a storm, and
    # no key raises three times (ISA-18.2's chattering: three or more in a minute)
    assert states(co) == [("raised", "alarm"), ("cleared", "alarm"), ("raised", "alarm")]
    assert len({e.alert_id for e in co}) == 2
    # the held clear is released by event time once the channel stays quiet for the hold
    later = suite.process(series("r01", "mf01", "co", [3.0] * 20, dt_s=10.0, start=len(values)))
    (cleared,) = only(later.events)
    assert cleared.state.value == "cleared" and cleared.evidence["flapping"] is True
    assert cleared.alert_id == co[-1].alert_id and "Held 120 s" in cleared.message
    first_quiet = T0 + (len(values) - 6) * 10 * S  # the last clear of the dithering (its third low reading)
    assert cleared.ts == first_quiet + 120 * S


def test_patrol_leaves_and_the_stationed_robot_clears_the_alert() -> None:
    suite = DetectorSuite()
    # a patrol robot passes and reads a power-cut level, then moves on; the stationed robot
    # keeps reading the same channel below the restore level
    frames = [frame("p01", "hf01", 0, {"ch4_t1": 1.7})]
    frames += [frame("r04", "hf01", i, {"ch4_t1": 0.4}) for i in range(1, 200, 5)]
    d = suite.process(frames)
    got = only(d.events)
    assert states(got) == [("raised", "critical"), ("cleared", "critical")]
    cleared = got[1]
    assert cleared.evidence["stale_robot"] == "p01" and cleared.robot_id == "r04"
    assert 120 <= (cleared.ts - T0) / S < 130 and "has not read it for 121 s" in cleared.message
    # the same frames in small batches give the same events
    split = DetectorSuite()
    events = [e for k in range(0, len(frames), 3) for e in split.process(frames[k:k + 3]).events]
    assert only(events) == got


def test_a_robot_still_reporting_keeps_its_part() -> None:
    suite = DetectorSuite()
    frames = []
    for i in range(0, 300, 5):
        frames.append(frame("p01", "hf01", i, {"ch4_t1": 1.7}))
        frames.append(frame("r04", "hf01", i + 1, {"ch4_t1": 0.4}))
    assert states(suite.process(frames).events) == [("raised", "critical")]


def test_baseline_drift_follows_the_pumps_run_state() -> None:
    suite = DetectorSuite(overrides=parse_overrides(["pr02.fl.selfdrift_tol=60"]))
    suite.process([frame("r21", "pr02", 0, {"wl": 1.5, "fl": 380.0, "i": 30.0, "t": 22.0})])
    table, base = suite.detectors["selfdrift"].table, suite.batching.base
    fl, cur, level, air = (base.get(("pr02", "r21", c)) for c in ("fl", "i", "wl", "t"))
    assert table["sd_tol"][fl] == 60.0
    # flow and current follow the pump's current (running above half its normal 25 A)
    assert table["sd_run_thr"][fl] == table["sd_run_thr"][cur] == 12.5
    assert np.isnan(table["sd_run_thr"][air])  # the room's air has one baseline
    assert np.isinf(table["sd_tol"][level])  # the sump's level walks between set points: not watched


def _every_reading_evidence(det, stream, t, x, out, level_before, raisers, pending) -> None:
    """The stale-robot evidence restated the obvious way: every reading past the restore level,
    at level 0, of any robot in a place with an alert up (or raised in the batch) becomes
    evidence, and its resolution alone decides whether it clears anything."""
    from detectors.base import EventOrder, Pending
    from detectors.limits import _Evidence

    keys = set(raisers) | {k for k in det.engine.active_keys() if k in det.key_streams}
    slices: dict[int, tuple[int, int]] = {}
    for i, s in enumerate(stream.tolist()):
        a, _ = slices.get(s, (i, i))
        slices[s] = (a, i + 1)
    for key in keys:
        if len(det.key_streams.get(key, ())) < 2:
            continue
        for s in det.key_streams[key]:
            if s not in slices:
                continue
            a, b = slices[s]
            rule, level = det.rule[s], int(level_before[s])
            for i in range(a, b):
                if out[i] >= 0:
                    level = int(out[i])
                v = float(x[i])
                past = v < rule.restore if rule.direction == "above" else v >= rule.restore
                if past and np.isfinite(v) and level == 0:
                    pending.append(Pending(int(t[i]), EventOrder.STALE_EVIDENCE, s,
                                           _Evidence(det, key, s, int(t[i]), v, slices, t)))


def test_stale_robot_evidence_against_every_reading() -> None:
    # patrol robots raise methane and oxygen alerts at a face and move on, others come and go,
    # stationed robots read the place clear (or not) all along; only readings at a time when a
    # source of the alert is stale are made into evidence, and that must change nothing
    rng = np.random.default_rng(11)
    frames = []
    for i in range(0, 1500):
        for r in ("r01", "r02", "r03"):
            if rng.random() < 0.4 and (r != "r03" or i % 600 < 250):  # r03 goes away for minutes
                ch4 = float(rng.choice([0.3, 0.6, 0.95, 1.2, np.nan], p=[0.5, 0.4, 0.04, 0.01, 0.05]))
                o2 = float(rng.choice([20.8, 20.5, 19.7, 19.3], p=[0.6, 0.37, 0.02, 0.01]))
                frames.append(frame(r, "mf01", i, {"ch4_t1": ch4, "o2": o2}))
        if i % 300 < 20 and rng.random() < 0.5:  # a patrol passing, reading high
            p = f"p0{1 + (i // 300) % 3}"
            frames.append(frame(p, "mf01", i, {"ch4_t1": float(rng.uniform(1.0, 1.8)), "o2": 19.5}))
    for seed, sizes in ((0, [1500]), (1, [1, 7, 40]), (2, [300, 3, 900])):
        pick = np.random.default_rng(seed)
        got, ref = DetectorSuite(), DetectorSuite()
        det: Any = ref.detectors["limits"]  # the reference way put in place of the detector's own
        det._stale_evidence = _every_reading_evidence.__get__(det)
        events_got, events_ref, k = [], [], 0
        while k < len(frames):
            n = int(pick.choice(sizes))
            events_got += got.process(frames[k:k + n]).events
            events_ref += ref.process(frames[k:k + n]).events
            k += n
        assert events_got == events_ref, sizes
        stale = [e for e in events_ref if "stale_robot" in e.evidence]
        assert len(stale) >= 3 and {e.channel for e in stale} == {"ch4_t1", "o2"}, stale


def test_a_pass_of_only_held_back_readings_where_two_robots_share_a_standing_alarm() -> None:
    # r01's alarm stands where r02 reads too; a pass holds nothing but r02's held-back readings,
    # all behind its newest: none is left for the live rule, and the pass must still run (an
    # error would skip every detector for the pass's frames)
    suite = DetectorSuite()
    suite.process(series("r01", "mf01", "ch4_t1", [0.3] * 8 + [1.2] * 4) + series("r02", "mf01", "ch4_t1", [0.3] * 12))
    d = suite.process(series("r02", "mf01", "ch4_t1", [0.4, 0.3], start=9), late=[True] * 2, held_back=[0, 1])
    assert only(d.events) == []
    assert [e.severity for e in only(suite.active())] == [Severity.alarm]
    # and r01's newest readings still clear it
    assert states(suite.process(series("r01", "mf01", "ch4_t1", [0.3] * 3, start=12)).events) == [("cleared", "alarm")]


def test_another_robots_held_back_reading_from_before_the_standing_alarm_does_not_escalate_it() -> None:
    # r01's alarm stands from seq 8 (1.2 %); r02, reading the same channel, held back seq 3 at 1.8 %:
    # an excursion over before the alarm was raised. As for r01's own such readings, it is reported
    # late apart (raised and cleared under its own id): the alarm did not pass the power-cut level
    suite = DetectorSuite()
    suite.process(series("r01", "mf01", "ch4_t1", [0.3] * 8 + [1.2] * 4) + series("r02", "mf01", "ch4_t1", [0.3] * 12))
    [alarm] = only(suite.active())
    d = suite.process([frame("r02", "mf01", 3, {"ch4_t1": 1.8})], late=[True], held_back=[0])
    assert late_apart(d.events, alarm) == [("raised", Severity.critical, "r02", 3), ("cleared", Severity.critical, "r02", 11)]
    assert only(suite.active()) == [alarm]
    # one from inside the alarm does escalate it, and leaves no part of r02 in it: r01 clears it
    d = suite.process([frame("r02", "mf01", 10, {"ch4_t1": 1.8})], late=[True], held_back=[0])
    assert states(d.events) == [("escalated", "critical")]
    assert states(suite.process(series("r01", "mf01", "ch4_t1", [0.3] * 3, start=12)).events) == [("cleared", "critical")]


@pytest.mark.parametrize("held", [[3], [-1]])
def test_held_back_must_name_frames_of_the_batch(held: list[int]) -> None:
    # an index past the batch, or a negative one (which would name the last frame), is refused
    frames = series("r01", "mf01", "ch4_t1", [0.3, 0.3, 0.3])
    with pytest.raises(ValueError, match="held_back names frames outside the 3 given"):
        DetectorSuite().process(frames, held_back=held)


def test_held_back_readings_sent_a_frame_a_message_are_judged_as_one_run() -> None:
    # a robot flushes its backlog between its live frames, one held-back frame a pass: CO at 30 ppm
    # in seq 3-5 (the alarm level, 24 ppm, wants two readings in a row). Judged a pass at a time from
    # no alert, no pass would hold two; as one run, the excursion is raised once, late, and cleared
    suite = DetectorSuite()
    assert only(suite.process(series("r01", "mf01", "co", [3.0] * 10)).events) == []
    got = []
    for seq, v in ((3, 30.0), (4, 30.0), (5, 30.0), (6, 3.0), (7, 3.0)):
        got += suite.process([frame("r01", "mf01", seq, {"co": v})], late=[True], held_back=[0]).events
    assert states(got) == [("raised", "alarm"), ("cleared", "alarm")]
    raised, cleared = only(got)
    assert raised.ts == T0 + 4 * S and raised.timing.value == "late" and cleared.ts == T0 + 9 * S
    assert only(suite.active()) == []
    # the same readings in one message give the same alert
    whole = DetectorSuite()
    whole.process(series("r01", "mf01", "co", [3.0] * 10))
    d = whole.process(series("r01", "mf01", "co", [30.0, 30.0, 30.0, 3.0, 3.0], start=3), late=[True] * 5,
                      held_back=list(range(5)))
    assert [(e.state, e.severity, e.ts) for e in only(d.events)] == \
        [(e.state, e.severity, e.ts) for e in only(got)]


def test_a_held_back_run_starts_again_when_its_readings_go_back_in_time() -> None:
    # one reading past the alarm level, then an older one: not two in a row of one backlog
    suite = DetectorSuite()
    suite.process(series("r01", "mf01", "co", [3.0] * 10))
    got = suite.process([frame("r01", "mf01", 6, {"co": 30.0})], late=[True], held_back=[0]).events
    got += suite.process([frame("r01", "mf01", 3, {"co": 30.0})], late=[True], held_back=[0]).events
    assert only(got) == []


@pytest.mark.parametrize("end_of_first", [[30.0, 30.0], [30.0]], ids=["raised", "one_reading"])
def test_a_later_backlog_is_a_run_of_its_own(end_of_first: list[float]) -> None:
    # a robot's link drops twice: backlog seq 10-19 (CO at 30 ppm at its end) is sent a frame a
    # message after live 20-29, backlog 30-39 after live 40-49. The readings 20-29 lie between the
    # two: the second backlog starts a run of its own, whatever the first left
    suite = DetectorSuite()

    def send(seqs: range, values: list[float], held: bool) -> list[AlertEvent]:
        got: list[AlertEvent] = []
        for seq, v in zip(seqs, values):
            kw: dict[str, Any] = {"late": [True], "held_back": [0]} if held else {}
            got += suite.process([frame("r01", "mf01", seq, {"co": v})], **kw).events
        return got

    send(range(10), [3.0] * 10, False)
    send(range(20, 30), [3.0] * 10, False)
    first = send(range(10, 20), [3.0] * (10 - len(end_of_first)) + end_of_first, True)
    assert states(first) == ([("raised", "alarm"), ("cleared", "alarm")] if len(end_of_first) == 2 else [])
    send(range(40, 50), [3.0] * 10, False)
    # the second backlog: an excursion of its own (seq 31-34), and one reading at 30 ppm to start
    values = [3.0, 30.0, 30.0, 30.0, 30.0, 3.0, 3.0, 3.0, 3.0, 3.0]
    if len(end_of_first) == 1:
        values = [30.0] + [3.0] * 9
    second = send(range(30, 40), values, True)
    if len(end_of_first) == 2:
        assert [(e.state.value, e.ts) for e in only(second)] == [("raised", T0 + 32 * S), ("cleared", T0 + 49 * S)]
    else:
        assert only(second) == []  # seq 19 and 30 at 30 ppm are not two in a row: 20-29 read 3 ppm
    assert only(suite.active()) == []


def test_a_backlog_that_flaps_leaves_no_alarm_up() -> None:
    # methane in a held-back backlog: an alarm, cleared, and an alarm again within the repeat window;
    # the robot's newer readings (seq 30-39) are all 0.3 %. The second alarm's clear is not held as a
    # flapping alarm's is: nothing newer would clear it, and the board would show it for minutes
    suite = DetectorSuite()
    suite.process(series("r01", "mf01", "ch4_t1", [0.3] * 10))
    suite.process(series("r01", "mf01", "ch4_t1", [0.3] * 10, start=30))
    values = [1.1, 0.9, 1.6, 0.3, 0.3, 0.3, 0.9, 1.3, 0.3, 0.3, 0.3, 0.9]
    d = suite.process(series("r01", "mf01", "ch4_t1", values, start=10), late=[True] * 12, held_back=list(range(12)))
    assert [(e.state.value, e.ts) for e in only(d.events)][-2:] == [("raised", T0 + 17 * S), ("cleared", T0 + 20 * S)]
    assert only(suite.active()) == []


def send_held(suite: DetectorSuite, channel: str, values: list[float], start: int,
              pieces: list[range]) -> list[AlertEvent]:
    """Robot r01's held-back ``values`` of ``channel`` in mf01 from seq ``start`` on, each piece (of
    positions in ``values``) in a pass of its own; the events."""
    events: list[AlertEvent] = []
    for piece in pieces:
        n = len(piece)
        events += suite.process(series("r01", "mf01", channel, [values[i] for i in piece], start=start + piece[0]),
                                late=[True] * n, held_back=list(range(n))).events
    return events


@pytest.mark.parametrize("seed", range(60))
def test_a_backlog_trickled_raises_what_it_raises_in_one_message(seed: int) -> None:
    # random methane backlogs (seq 10-21, behind live 30-39 at 0.3 %) sent whole, or in random
    # pieces each in a pass of its own: the same alarms at the same times (the trickled ones each
    # cleared at once, so a move to a worse level is raised anew), and nothing left up
    rng = np.random.default_rng(seed)
    values = rng.choice([0.3, 0.9, 1.1, 1.3, 1.6, 2.1], p=[0.4, 0.1, 0.2, 0.1, 0.1, 0.1], size=12).tolist()
    cuts = sorted(set(rng.integers(1, 12, size=int(rng.integers(1, 8))).tolist()))
    got = []
    for pieces in ([range(12)], [range(a, b) for a, b in zip([0, *cuts], [*cuts, 12])]):
        suite = DetectorSuite()
        suite.process(series("r01", "mf01", "ch4_t1", [0.3] * 10))
        suite.process(series("r01", "mf01", "ch4_t1", [0.3] * 10, start=30))
        events = send_held(suite, "ch4_t1", values, 10, pieces)
        assert only(suite.active()) == [], (values, cuts)
        got.append([(e.severity, e.ts) for e in only(events) if e.state is not AlertState.cleared])
    assert got[1] == got[0], (values, cuts)


@pytest.mark.parametrize("seed", range(40))
def test_a_backlog_trickled_escalates_a_standing_alert_as_in_one_message(seed: int) -> None:
    # a CO warning stands (live seq 10-11 and 30-39 at 20 ppm); the held-back seq 12-21 come whole
    # or in random pieces, each in a pass of its own. The alarm level wants two readings in a row
    # past 24 ppm: the same escalations at the same times either way
    rng = np.random.default_rng(seed)
    values = rng.choice([10.0, 20.0, 26.0, 30.0], size=10).tolist()
    cuts = sorted(set(rng.integers(1, 10, size=int(rng.integers(1, 7))).tolist()))
    got = []
    for pieces in ([range(10)], [range(a, b) for a, b in zip([0, *cuts], [*cuts, 10])]):
        suite = DetectorSuite()
        suite.process(series("r01", "mf01", "co", [3.0] * 10 + [20.0, 20.0]))
        suite.process(series("r01", "mf01", "co", [20.0] * 10, start=30))
        events = send_held(suite, "co", values, 12, pieces)
        got.append(([(e.state, e.severity, e.ts) for e in only(events)],
                    [(e.state, e.severity) for e in only(suite.active())]))
    assert got[1] == got[0], (values, cuts)
    if any(a >= 24 and b >= 24 for a, b in zip(values, values[1:])):
        assert got[0][1] == [(AlertState.escalated, Severity.alarm)]


@pytest.mark.parametrize("excursions", [False, True])
def test_two_backlogs_sent_in_one_pass_are_runs_of_their_own(excursions: bool) -> None:
    # the robot's link dropped twice: seq 10-19 and 30-39 held back, live 0-9, 20-29 and 40-49 at
    # 3 ppm; both backlogs come in one message. CO at 30 ppm at seq 19 and 30 is not two readings in
    # a row (20-29 lie between), so no alarm; excursions in them are raised, late, and nothing is
    # left up (what the first raised is cleared at the newest reading, so the second's raise joins
    # it on the board)
    suite = DetectorSuite()
    for start in (0, 20, 40):
        suite.process(series("r01", "mf01", "co", [3.0] * 10, start=start))
    first = [3.0] * 7 + [30.0] * 3 if excursions else [3.0] * 9 + [30.0]
    second = [30.0] * 2 + [3.0] * 8 if excursions else [30.0] + [3.0] * 9
    d = suite.process(series("r01", "mf01", "co", first, start=10) + series("r01", "mf01", "co", second, start=30),
                      late=[True] * 20, held_back=list(range(20)))
    got = [(e.state.value, e.ts) for e in only(d.events)]
    if excursions:
        assert got[0] == ("raised", T0 + 18 * S) and got[-1][0] == "cleared", got
        assert all(e.timing.value == "late" for e in only(d.events))
    else:
        assert got == []
    assert only(suite.active()) == []


def test_a_backlog_whose_frames_carry_a_channel_every_other_frame_is_one_run() -> None:
    # held-back seq 10-15 sent a frame a message; CO only in the even ones, 30 ppm at 12 and 14: two
    # readings of the channel in a row, in one run of the robot's frames, as live they would be
    def held(seq: int) -> Frame:
        return frame("r01", "mf01", seq, {"co": 30.0 if seq in (12, 14) else 3.0} if seq % 2 == 0 else {"o2": 20.9})

    suite = DetectorSuite()
    suite.process(series("r01", "mf01", "co", [3.0] * 10) + series("r01", "mf01", "co", [3.0] * 10, start=20))
    got = []
    for seq in range(10, 16):
        got += suite.process([held(seq)], late=[True], held_back=[0]).events
    assert [(e.state.value, e.ts) for e in only(got)] == [("raised", T0 + 14 * S), ("cleared", T0 + 29 * S)]
    assert only(suite.active()) == []


def test_two_backlogs_in_one_pass_do_not_escalate_a_standing_alert_together() -> None:
    # a CO warning stands (20 ppm live); the link dropped twice (seq 12-19 and 30-39), live 20-29 at
    # 20 ppm between. Both backlogs come in one message: 30 ppm at seq 19 and 30 is not two readings
    # in a row, so the alarm level (two in a row past 24 ppm) is not passed
    suite = DetectorSuite()
    suite.process(series("r01", "mf01", "co", [3.0] * 10 + [20.0, 20.0]))
    for start in (20, 40):
        suite.process(series("r01", "mf01", "co", [20.0] * 10, start=start))
    d = suite.process(series("r01", "mf01", "co", [20.0] * 7 + [30.0], start=12)
                      + series("r01", "mf01", "co", [30.0] + [20.0] * 9, start=30),
                      late=[True] * 18, held_back=list(range(18)))
    assert only(d.events) == []
    assert [(e.state, e.severity) for e in only(suite.active())] == [(AlertState.raised, Severity.warning)]


def worst_alone(values: list[float]) -> int:
    """The most severe CO level (0 none, 1 warning, 2 alarm) a fresh suite raises from ``values``
    alone (robot r01's readings of one backlog, in seq order)."""
    rank = {Severity.warning: 1, Severity.alarm: 2, Severity.critical: 3}
    events = only(DetectorSuite().process(series("r01", "mf01", "co", values)).events)
    return max((rank[e.severity] for e in events if e.state is not AlertState.cleared), default=0)


@pytest.mark.parametrize("seed", range(60))
def test_backlogs_escalate_a_standing_alert_as_each_alone_would(seed: int) -> None:
    # a CO warning stands (live seq 10-11, 20-29 and 40-49 at 20 ppm); backlogs 12-19 and 30-39,
    # random, come each whole, a frame a message, or both in one message: the alert ends as severe as
    # the worst either backlog alone reaches (and a warning at least), every escalation late
    rng = np.random.default_rng(seed)
    levels, p = [10.0, 20.0, 26.0, 30.0], [0.3, 0.4, 0.15, 0.15]
    gaps = {12: rng.choice(levels, p=p, size=8).tolist(), 30: rng.choice(levels, p=p, size=10).tolist()}
    if rng.random() < 0.5:  # past the alarm level at the end of one and the start of the other
        gaps[12][-1] = gaps[30][0] = 30.0
    mode = ["whole", "trickled", "together"][seed % 3]
    suite = DetectorSuite()
    suite.process(series("r01", "mf01", "co", [3.0] * 10 + [20.0, 20.0]))
    for start in (20, 40):
        suite.process(series("r01", "mf01", "co", [20.0] * 10, start=start))
    messages = {"whole": [series("r01", "mf01", "co", v, start=a) for a, v in gaps.items()],
                "together": [[f for a, v in gaps.items() for f in series("r01", "mf01", "co", v, start=a)]],
                "trickled": [[f] for a, v in gaps.items() for f in series("r01", "mf01", "co", v, start=a)]}[mode]
    events = []
    for frames in messages:
        events += suite.process(frames, late=[True] * len(frames), held_back=list(range(len(frames)))).events
    want = {1: Severity.warning, 2: Severity.alarm}[max(1, *(worst_alone(v) for v in gaps.values()))]
    assert [e.severity for e in only(suite.active())] == [want], (mode, gaps)
    assert all(e.timing.value == "late" for e in only(events)), (mode, gaps)


RANK = {Severity.warning: 1, Severity.alarm: 2, Severity.critical: 3}


def severity_at(events: list[AlertEvent], channel: str, ts: int) -> int:
    """The most severe level (0 none) an alert of ``events`` on ``channel`` stood at, at ``ts``
    (each raise starts an alert of its own, even under an id used before)."""
    alerts: list[list[AlertEvent]] = []
    current: dict[str, int] = {}
    for e in events:
        if e.channel == channel:
            if e.state is AlertState.raised or e.alert_id not in current:
                current[e.alert_id] = len(alerts)
                alerts.append([])
            alerts[current[e.alert_id]].append(e)
    best = 0
    for steps in alerts:
        level = 0
        for e in sorted(steps, key=lambda e: e.ts):
            if e.ts > ts:
                break
            level = 0 if e.state is AlertState.cleared else RANK[e.severity]
        best = max(best, level)
    return best


@pytest.mark.parametrize("interleaved", [False, True], ids=["live_first", "interleaved"])
@pytest.mark.parametrize("seed", range(40))
def test_backlogs_raise_what_each_alone_raises_however_they_are_sent(seed: int, interleaved: bool) -> None:
    # one or two robots in mf01, methane and CO (each in about three frames of four), several gaps
    # in their numbering; each backlog is sent whole, in two pieces, a frame a message, two gaps'
    # backlogs in one message, or two gaps' frames a message each, taken in turn. The live readings
    # are all quiet, and sent first; or (one robot) a frame a pass with the backlogs' messages
    # between them, each soon after a newer frame of its robot: a backlog's reading newer than its
    # channel's newest (the live frames just after a gap seldom carry the channel) is taken by the
    # live rule, and an excursion may be split between the live and the held-back rule. Against
    # each backlog run alone through a fresh suite: every alert it raises is raised (late, or
    # stands at that time). No late alert is raised beyond what it raises; interleaved, beyond what
    # the robot's whole numbering raises through a fresh suite (live frames without the channel
    # between two backlogs' readings leave them in a row for the live rule, as for the robot's
    # sensors). Nothing is left up. With two robots (live first), a third's methane alarm and CO
    # warning stand when the backlogs come: what a backlog raises from readings dated before them is
    # still raised, late, and they stand as they were. (Interleaved with two robots, or two gaps taken
    # in turn, the live rule takes readings of either and merges them into one alert: docs/detectors.md)
    rng = np.random.default_rng(seed)
    values = {"ch4_t1": [0.3, 0.3, 0.9, 1.1, 1.3, 1.6, 2.1], "co": [3.0, 3.0, 10.0, 20.0, 26.0, 30.0]}
    if interleaved:  # CO past the alarm level more often: excursions that a split would hide
        values["co"] = [3.0, 20.0, 26.0, 30.0]
    quiet = {"ch4_t1": 0.3, "co": 3.0}
    suite, live, messages = DetectorSuite(), [], []
    alone: dict[str, list[AlertEvent]] = {}
    whole: dict[str, list[AlertEvent]] = {}
    robots = ["r01", "r02"][:1 if interleaved else int(rng.integers(1, 3))]
    for rid in robots:
        gaps, s = [], 5
        while s < 50:
            gaps.append(range(s, s + int(rng.integers(2, 8))))
            s = gaps[-1].stop + int(rng.integers(1, 6))
        held = {q for g in gaps for q in g}
        # interleaved, the live frames just after a gap seldom carry a channel (oxygen instead)
        sparse = {q for g in gaps for q in range(g.stop, g.stop + 3)} - held if interleaved else set()
        frames = {}
        for q in range(60):
            chans = [c for c in values if q >= 57 or rng.random() < (0.25 if q in sparse else 0.75)]
            chans = chans or ([] if q in sparse else ["co"])
            readings: dict[str, float | None] = {c: float(rng.choice(values[c])) if q in held else quiet[c]
                                                 for c in chans}
            frames[q] = frame(rid, "mf01", q, readings or {"o2": 20.9})
        live += [frames[q] for q in range(60) if q not in held]
        for g in gaps:
            alone.setdefault(rid, []).extend(only(DetectorSuite().process([frames[q] for q in g]).events))
        whole[rid] = only(DetectorSuite().process([frames[q] for q in range(60)]).events)
        j = 0
        while j < len(gaps):
            backlog = [frames[q] for q in gaps[j]]
            # (zipped, live first only: interleaved, a live alert raised from the later gap's backlog
            # would hide the earlier one's readings dated before it, a known limit)
            modes = ["whole", "pieces", "trickled", "together", "trickled" if interleaved else "zipped"]
            mode = modes[int(rng.integers(len(modes)))]
            if mode == "zipped" and j + 1 < len(gaps):  # two gaps' frames a message, taken in turn
                other = [frames[q] for q in gaps[j + 1]]
                messages += [[f] for pair in itertools.zip_longest(backlog, other) for f in pair if f is not None]
                j += 2
                continue
            if mode == "together" and j + 1 < len(gaps):
                backlog += [frames[q] for q in gaps[j + 1]]
                j += 1
            cut = int(rng.integers(1, len(backlog)))
            messages += {"pieces": [backlog[:cut], backlog[cut:]], "trickled": [[f] for f in backlog]}.get(
                mode, [backlog])
            j += 1
    live.sort(key=lambda f: f.ts)
    events: list[AlertEvent] = []
    if interleaved:  # each message after a newer live frame of its robot, in order, before seq 57 on
        end = min(i for i, f in enumerate(live) if f.seq >= 57)
        after: dict[str, int] = {}
        sends: dict[int, list[list[Frame]]] = {}
        for m in messages:
            newest = max(f.seq for f in m)
            first = min(i for i, f in enumerate(live) if f.robot_id == m[0].robot_id and f.seq > newest) + 1
            at = max(after.get(m[0].robot_id, 0), min(end, first + int(rng.integers(0, 4))))
            after[m[0].robot_id] = at
            sends.setdefault(at, []).append(m)
        for i in range(len(live) + 1):
            for m in sends.get(i, []):
                events += only(suite.process(m, late=[True] * len(m), held_back=list(range(len(m)))).events)
            if i < len(live):
                events += only(suite.process([live[i]]).events)
    else:
        # two robots: a third in mf01, without a backlog, reads methane and CO past their limits from
        # seq 57 (an alarm and a warning stand when the backlogs come, every reading of them dated
        # before), and back below at seq 60-62, after them
        standing = len(robots) == 2
        if standing:
            live += series("r03", "mf01", "ch4_t1", [1.2] * 3, start=57, extra={"co": 20.0})
            live.sort(key=lambda f: f.ts)
        for i in range(0, len(live), 4):
            suite.process(live[i:i + 4])
        if standing:
            assert [(e.robot_id, e.severity) for e in only(suite.active())] == \
                [("r03", Severity.alarm), ("r03", Severity.warning)]
        up = {e.alert_id for e in only(suite.active())}
        for m in messages:
            events += only(suite.process(m, late=[True] * len(m), held_back=list(range(len(m)))).events)
        if standing:
            assert [(e.robot_id, e.severity) for e in only(suite.active())] == \
                [("r03", Severity.alarm), ("r03", Severity.warning)]
            suite.process(series("r03", "mf01", "ch4_t1", [0.3] * 3, start=60, extra={"co": 3.0}))
        assert not [e for e in events if e.alert_id in up]  # the backlogs' alerts are their own
    raises = [e for e in events if e.state is not AlertState.cleared]
    assert all(e.timing.value == "late" for e in raises)
    for rid in robots:
        reference = whole[rid] if interleaved else alone.get(rid, [])
        raised = [e for e in alone.get(rid, []) if e.state is not AlertState.cleared]
        missed = [e for e in raised if severity_at(events, e.channel or "", e.ts) < RANK[e.severity]]
        false = [e for e in raises if e.robot_id == rid
                 and severity_at(reference, e.channel or "", e.ts) < RANK[e.severity]]
        assert missed == [] and false == [], rid
    assert only(suite.active()) == []


@pytest.mark.parametrize("order", ["interleaved", "later_first"])
def test_two_backlogs_trickled_are_each_one_run_in_any_order(order: str) -> None:
    # the link dropped twice (seq 10-13 and 20-23); the two backlogs come a frame a message, taken
    # in turn (10, 11, 20, 12, 13, 21, ...) or the later gap's first. CO at 30 ppm at seq 11 and 12
    # is two readings in a row of the first backlog, whatever of the second is judged between them
    # or before: raised, late, and cleared at the newest reading
    suite = DetectorSuite()
    for start in (0, 14, 24):
        suite.process(series("r01", "mf01", "co", [3.0] * (6 if start == 14 else 10), start=start))
    first = series("r01", "mf01", "co", [3.0, 30.0, 30.0, 3.0], start=10)
    second = series("r01", "mf01", "co", [3.0] * 4, start=20)
    frames = {"interleaved": [first[0], first[1], second[0], first[2], first[3], *second[1:]],
              "later_first": second + first}[order]
    got = []
    for f in frames:
        got += suite.process([f], late=[True], held_back=[0]).events
    assert [(e.state, e.severity, e.ts) for e in only(got)] == [
        (AlertState.raised, Severity.alarm, T0 + 12 * S), (AlertState.cleared, Severity.alarm, T0 + 33 * S)]
    assert only(suite.active()) == []


def test_a_backlogs_excursion_split_between_the_live_and_the_held_back_rule_is_raised() -> None:
    # live CO at 3 ppm to seq 9; live 14-15 carry no CO. The backlog's seq 10 (30 ppm) is CO's
    # newest reading, so the live rule takes it; live 16 reads 3 ppm; then seq 11 (30 ppm), 12, 13
    # come, older than CO's newest, judged apart. 30 ppm at seq 10 and 11 is two readings in a row
    # past the alarm level in the robot's numbering: raised (late), and cleared at the newest reading
    suite = DetectorSuite()
    suite.process(series("r01", "mf01", "co", [3.0] * 10) + [frame("r01", "mf01", q, {"o2": 20.9}) for q in (14, 15)])
    got = suite.process([frame("r01", "mf01", 10, {"co": 30.0})], late=[True], held_back=[0]).events
    got += suite.process([frame("r01", "mf01", 16, {"co": 3.0})]).events
    for q, v in ((11, 30.0), (12, 3.0), (13, 3.0)):
        got += suite.process([frame("r01", "mf01", q, {"co": v})], late=[True], held_back=[0]).events
    assert [(e.state, e.severity, e.ts, e.timing.value) for e in only(got)] == [
        (AlertState.raised, Severity.alarm, T0 + 11 * S, "late"), (AlertState.cleared, Severity.alarm, T0 + 16 * S, "late")]
    assert only(suite.active()) == []


@pytest.mark.parametrize("channel, low, high, taken", [("co", 3.0, 30.0, 2), ("ch4_t1", 0.3, 1.6, 1)])
def test_a_backlogs_excursion_raised_live_is_not_raised_again_by_its_held_back_rest(
        channel: str, low: float, high: float, taken: int) -> None:
    # live 14-15 carry no reading of the channel; the backlog's first frames (seq 10 on, past the
    # top level) are the channel's newest readings and raise it live; live 16-20 read low and clear
    # it. The rest of the excursion (held back, past the top level) is one excursion with what the
    # live rule raised: no second alarm, late
    suite = DetectorSuite()
    suite.process(series("r01", "mf01", channel, [low] * 10) + [frame("r01", "mf01", q, {"o2": 20.9}) for q in (14, 15)])
    got = suite.process(series("r01", "mf01", channel, [high] * taken, start=10), late=[True] * taken,
                        held_back=list(range(taken))).events
    got += suite.process(series("r01", "mf01", channel, [low] * 5, start=16)).events
    assert [e.state for e in only(got)] == [AlertState.raised, AlertState.cleared]
    for f in series("r01", "mf01", channel, [high] * (4 - taken), start=10 + taken):
        got += suite.process([f], late=[True], held_back=[0]).events
    assert [e.state for e in only(got)] == [AlertState.raised, AlertState.cleared]
    assert only(suite.active()) == []


@pytest.mark.parametrize("trickled", [False, True])
def test_held_back_readings_skipped_as_older_than_a_standing_alert_break_the_run(trickled: bool) -> None:
    # r01 held back seq 9-12 (CO 30, 3, 30, 3 ppm: never two readings in a row past 24 ppm). Sent a
    # frame a message, seq 9 is judged before r02 raises a warning at seq 11; seq 10, older than that
    # warning, adds nothing. Seq 11 must not count on from seq 9 and escalate the warning to an alarm
    suite = DetectorSuite()
    suite.process(series("r01", "mf01", "co", [3.0] * 9) + series("r01", "mf01", "co", [3.0] * 8, start=13)
                  + series("r02", "mf01", "co", [3.0] * 9))
    backlog = series("r01", "mf01", "co", [30.0, 3.0, 30.0, 3.0], start=9)
    pieces = [backlog[:1], None, *([f] for f in backlog[1:])] if trickled else [None, backlog]
    got = []
    for piece in pieces:
        if piece is None:  # r02's live readings: a warning from seq 11
            got += suite.process(series("r02", "mf01", "co", [3.0, 20.0, 20.0], start=9)).events
        else:
            got += suite.process(piece, late=[True] * len(piece), held_back=list(range(len(piece)))).events
    assert [(e.robot_id, e.state, e.severity) for e in only(got)] == [("r02", AlertState.raised, Severity.warning)]
    assert [e.severity for e in only(suite.active())] == [Severity.warning]


def test_a_held_back_reading_taken_live_does_not_make_the_next_live_alarm_flap() -> None:
    # live 14-15 carry no methane; the backlog's seq 10 (1.6 %) is methane's newest reading, so the
    # live rule takes it: raised, and cleared by live 16-18 at 0.3 %. A live alarm at seq 20, then
    # methane back to 0.3 %: one live alarm in ten minutes, so its clear is not held as flapping
    suite = DetectorSuite()
    suite.process(series("r01", "mf01", "ch4_t1", [0.3] * 10) + [frame("r01", "mf01", q, {"o2": 20.9}) for q in (14, 15)])
    got = suite.process([frame("r01", "mf01", 10, {"ch4_t1": 1.6})], late=[True], held_back=[0]).events
    got += suite.process(series("r01", "mf01", "ch4_t1", [0.3] * 3, start=16)).events
    assert states(got) == [("raised", "critical"), ("cleared", "critical")]
    d = suite.process(series("r01", "mf01", "ch4_t1", [1.6] + [0.3] * 3, start=20))
    assert states(d.events) == [("raised", "critical"), ("cleared", "critical")]
    assert "flapping" not in d.events[-1].evidence
    assert only(suite.active()) == []


def test_a_late_alarm_from_held_back_readings_does_not_make_the_next_live_one_flap() -> None:
    # held-back seq 5 read 1.6 % (raised and cleared at once, late); then a live alarm at seq 10 and
    # methane back to 0.3 %: one alarm on the board in ten minutes, not two, so its clear is not held
    suite = DetectorSuite()
    suite.process(series("r01", "mf01", "ch4_t1", [0.3] * 10))
    late = suite.process([frame("r01", "mf01", 5, {"ch4_t1": 1.6})], late=[True], held_back=[0]).events
    assert states(late) == [("raised", "critical"), ("cleared", "critical")]
    d = suite.process(series("r01", "mf01", "ch4_t1", [1.6] + [0.3] * 3, start=10))
    assert states(d.events) == [("raised", "critical"), ("cleared", "critical")]
    assert "flapping" not in d.events[-1].evidence
    assert only(suite.active()) == []


def late_apart(events: list[AlertEvent], standing: AlertEvent) -> list[tuple[str, Severity, str | None, int]]:
    """``events``' steps on ``standing``'s channel, as (state, severity, robot, seq); each checked late,
    under an id not ``standing``'s (which its evidence names), raised and cleared under one id."""
    mine = [e for e in only(events) if e.channel == standing.channel]
    assert all(e.alert_id != standing.alert_id and e.timing.value == "late" for e in mine), mine
    assert all(e.evidence["before_alert"] == standing.alert_id for e in mine), mine
    assert len({e.alert_id for e in mine}) <= 1, mine
    return [(e.state.value, e.severity, e.robot_id, (e.ts - T0) // S) for e in mine]


def send_backlog(suite: DetectorSuite, frames: list[Frame], trickled: bool) -> list[AlertEvent]:
    """Held-back ``frames``, in one message or a frame a message; the events."""
    events: list[AlertEvent] = []
    for m in [[f] for f in frames] if trickled else [frames]:
        events += suite.process(m, late=[True] * len(m), held_back=list(range(len(m)))).events
    return events


@pytest.mark.parametrize("trickled", [False, True])
@pytest.mark.parametrize("channel, low, standing, high, severity, first", [
    ("co", 3.0, 20.0, 30.0, Severity.alarm, 12), ("ch4_t1", 0.3, 1.2, 1.6, Severity.critical, 11)],
    ids=["co_alarm_before_a_warning", "methane_power_cut_before_an_alarm"])
def test_another_robots_backlog_excursion_dated_before_a_standing_alert_is_reported_late_apart(
        trickled: bool, channel: str, low: float, standing: float, high: float, severity: Severity,
        first: int) -> None:
    # r02 reads past the lowest level from seq 12 (a CO warning from seq 13; a methane alarm from 12).
    # r01's link dropped for seq 10-19; its backlog, sent after, read past the top level at seq
    # 11-12 (CO at 30 ppm two in a row: an alarm; methane at 1.6 %, past the power-cut level), from
    # before r02's alert was raised, then low again. An excursion nobody was told of: reported late,
    # an alert of its own (raised and cleared under its own id, its clear among readings dated after
    # r02's raise), and r02's alert stands as it was: not escalated by readings older than it, nor
    # cleared by the late one's clear (its retained state untouched)
    suite = DetectorSuite()
    suite.process(series("r01", "mf01", channel, [low] * 10) + series("r01", "mf01", channel, [low] * 10, start=20)
                  + series("r02", "mf01", channel, [low] * 12 + [standing] * 18))
    [alert] = only(suite.active())
    assert alert.robot_id == "r02" and RANK[alert.severity] < RANK[severity]
    got = send_backlog(suite, series("r01", "mf01", channel, [low, high, high] + [low] * 7, start=10), trickled)
    # (trickled, each pass's raise is cleared at once, at the newest reading)
    over = 29 if trickled else 15
    assert late_apart(got, alert) == [("raised", severity, "r01", first), ("cleared", severity, "r01", over)]
    assert only(suite.active()) == [alert]
    # r02's newest readings clear its alert, under its id
    d = suite.process(series("r02", "mf01", channel, [low] * 3, start=30))
    assert [(e.alert_id, e.state, e.severity) for e in only(d.events)] == \
        [(alert.alert_id, AlertState.cleared, alert.severity)]


@pytest.mark.parametrize("trickled", [False, True])
@pytest.mark.parametrize("tail", [3.0, 30.0], ids=["over_in_backlog", "high_to_its_end"])
def test_a_robots_backlog_alarm_dated_before_its_own_standing_warning_is_reported_late_apart(
        trickled: bool, tail: float) -> None:
    # r01's link dropped for seq 10-19; its live CO since reads 20 ppm, a warning from seq 21. Its
    # backlog read 30 ppm at seq 12-14 (an alarm), and 3 ppm after it, or 30 ppm to its end: worse
    # than the warning, reported late, an alert of its own, cleared (at the backlog's 3 ppm, or at the
    # newest reading); the warning stands as it was
    suite = DetectorSuite()
    suite.process(series("r01", "mf01", "co", [3.0] * 10) + series("r01", "mf01", "co", [20.0] * 10, start=20))
    [warning] = only(suite.active())
    backlog = [3.0, 3.0, 30.0, 30.0, 30.0] + [tail] * 5
    got = send_backlog(suite, series("r01", "mf01", "co", backlog, start=10), trickled)
    assert late_apart(got, warning) == [("raised", Severity.alarm, "r01", 13),
                                        ("cleared", Severity.alarm, "r01", 17 if tail < 18 and not trickled else 29)]
    if tail > 18 or trickled:  # cleared at the newest reading, which stands at the warning: says so
        assert "dated before the alert standing here" in only(got)[-1].message
    assert only(suite.active()) == [warning]
    d = suite.process(series("r01", "mf01", "co", [3.0] * 3, start=30))
    assert [(e.alert_id, e.state) for e in only(d.events)] == [(warning.alert_id, AlertState.cleared)]


@pytest.mark.parametrize("trickled", [False, True])
def test_the_start_of_a_robots_standing_alarm_in_its_backlog_is_not_raised_again(trickled: bool) -> None:
    # r01's link dropped for seq 10-19; CO passed the alarm level in it (30 ppm from seq 16) and is
    # still past it live (an alarm from seq 21). The backlog's end is the start of that alarm, raised
    # live already: no second, late alarm (its clear would say the excursion is over)
    suite = DetectorSuite()
    suite.process(series("r01", "mf01", "co", [3.0] * 10) + series("r01", "mf01", "co", [30.0] * 10, start=20))
    [alarm] = only(suite.active())
    got = send_backlog(suite, series("r01", "mf01", "co", [3.0] * 6 + [30.0] * 4, start=10), trickled)
    assert only(got) == []
    assert only(suite.active()) == [alarm]


@pytest.mark.parametrize("trickled", [False, True])
def test_a_backlog_excursion_over_before_the_robots_own_standing_alarm_is_reported(trickled: bool) -> None:
    # r01's link dropped for seq 10-14; live 15-17 read 0.3 %, then 1.6 % from seq 18 (a power-cut
    # alarm stands). The backlog read 1.2 % at seq 11-12 and 0.3 % after, and ends before methane's
    # three readings back below clear it: still an alarm where the backlog ends. The live readings
    # at 0.3 % since show that excursion over: not the start of the standing one, but an alarm of its
    # own, reported late (no worse than the standing alarm, it would be hidden as raised already)
    suite = DetectorSuite()
    suite.process(series("r01", "mf01", "ch4_t1", [0.3] * 10) + series("r01", "mf01", "ch4_t1", [0.3] * 3 + [1.6] * 3,
                                                                        start=15))
    [alarm] = only(suite.active())
    got = send_backlog(suite, series("r01", "mf01", "ch4_t1", [0.3, 1.2, 1.2, 0.3, 0.3], start=10), trickled)
    assert late_apart(got, alarm) == [("raised", Severity.alarm, "r01", 11), ("cleared", Severity.alarm, "r01", 20)]
    assert only(suite.active()) == [alarm]
