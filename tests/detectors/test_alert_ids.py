"""Alert ids name one alert each: integrators deduplicate by ``alert_id``, so two excursions must
never share one, and the same excursion run again (after a crash, on the same readings) must get
the one it had."""

from __future__ import annotations

import re

import pytest

from detectors import DetectorSuite
from detectors.engine import AlertEngine, Signal
from minewatch.schema import ID_PATTERN, AlertEvent, AlertKind, AlertState, AlertTiming, Severity
from tests.detectors.conftest import S, T0, series

KEY = dict(scenario_id="mf01", detector="gas_limit", subject="ch4_t1", kind=AlertKind.gas, channel="ch4_t1")


def sig(robot: str, ts: int, severity: Severity | None, *, late: bool = False) -> Signal:
    return Signal(**KEY, source=robot, robot_id=robot, severity=severity, ts=ts, message="methane",  # type: ignore[arg-type]
                  timing=AlertTiming.late if late else AlertTiming.live, may_hold=not late)


def run(engine: AlertEngine, signals: list[Signal]) -> list[AlertEvent]:
    return [ev for s in signals for ev in engine.update(s)]


def late_excursion(robot: str, at: int, over: int) -> list[Signal]:
    """A robot's held-back readings raise at ``at``; its newer ones already show it over at ``over``."""
    return [sig(robot, at, Severity.alarm, late=True), sig(robot, over, None, late=True)]


def raised(events: list[AlertEvent]) -> list[AlertEvent]:
    return [e for e in events if e.state is AlertState.raised]


def test_two_robots_late_alerts_at_one_ms_get_two_ids_after_a_live_alert_between() -> None:
    """r01's late alert on a key is raised and cleared at once; a live alert on the key comes and
    goes; r02's late alert raised at r01's millisecond. Two excursions, two robots: two ids (an
    id reused would be dropped by an integrator as a repeat of r01's)."""
    t = T0 + 7 * S
    engine = AlertEngine()
    events = run(engine, late_excursion("r01", t, T0 + 12 * S))
    events += run(engine, [sig("r01", T0 + 20 * S, Severity.alarm), sig("r01", T0 + 21 * S, None)])
    events += run(engine, late_excursion("r02", t, T0 + 12 * S))
    ups = raised(events)
    assert [(e.robot_id, e.first_ts) for e in ups] == [("r01", t), ("r01", T0 + 20 * S), ("r02", t)]
    assert len({e.alert_id for e in ups}) == 3, [e.alert_id for e in ups]


def test_an_alert_raised_after_a_restart_at_a_cleared_ones_millisecond_gets_its_own_id() -> None:
    """r01's alert was raised and cleared before the restart (nothing of it is retained, so the
    new process knows nothing of it); r02's held-back readings then raise one at that millisecond."""
    t = T0 + 7 * S
    before = run(AlertEngine(), [sig("r01", t, Severity.alarm), sig("r01", T0 + 9 * S, None)])
    after = AlertEngine()
    after.restore([])  # the retained active alerts: none
    now = run(after, late_excursion("r02", t, T0 + 12 * S))
    assert raised(before)[0].alert_id != raised(now)[0].alert_id


def test_an_incident_opened_after_a_restart_at_a_closed_ones_millisecond_gets_its_own_id() -> None:
    """The incidents too: r01's alarm opened and closed an incident before the restart; r02's late
    alarm at that millisecond opens another, with an id of its own (a paging gateway keys on it)."""
    t = T0 + 7 * S
    before = run(AlertEngine(), [sig("r01", t, Severity.alarm), sig("r01", T0 + 9 * S, None)])
    after = AlertEngine()
    after.restore([])
    now = run(after, late_excursion("r02", t, T0 + 12 * S))
    assert raised(before)[0].incident_id != raised(now)[0].incident_id
    # and the same again after a crash: the id it had
    assert raised(run(AlertEngine(), late_excursion("r02", t, T0 + 12 * S)))[0].incident_id == raised(now)[0].incident_id


def test_an_acknowledgement_of_a_cleared_alert_does_not_reach_another_raised_at_its_millisecond() -> None:
    """An acknowledgement of r01's alert, delivered after it cleared and the ingestor restarted,
    names no active alert, even when r02's alert raised at that millisecond is up."""
    t = T0 + 7 * S
    gone = raised(run(AlertEngine(), [sig("r01", t, Severity.alarm), sig("r01", T0 + 9 * S, None)]))[0]
    after = AlertEngine()
    up = raised(after.update(sig("r02", t, Severity.alarm, late=True)))[0]
    assert up.alert_id != gone.alert_id
    with pytest.raises(KeyError):
        after.acknowledge(gone.alert_id, "op.li", None, T0 + 30 * S)
    assert after.get(("mf01", "gas_limit", "ch4_t1")).state is AlertState.raised  # type: ignore[union-attr]


def test_the_same_excursion_run_again_after_a_crash_keeps_its_id() -> None:
    """The ingestor killed and started again on the same readings: what it had raised and cleared
    (nothing of it retained) gets the ids it had; what it had raised and left up (retained, and
    restored at the start) goes on under its id when its readings come again, and clears under it."""
    first = AlertEngine()
    done = run(first, late_excursion("r01", T0 + 7 * S, T0 + 12 * S))
    done += run(first, late_excursion("r02", T0 + 7 * S, T0 + 12 * S))
    up = run(first, [sig("r01", T0 + 20 * S, Severity.alarm)])
    again = AlertEngine()
    assert [e.alert_id for e in again.restore(up)] == [up[0].alert_id]
    redo = run(AlertEngine(), late_excursion("r01", T0 + 7 * S, T0 + 12 * S) + late_excursion("r02", T0 + 7 * S, T0 + 12 * S))
    assert [(e.alert_id, e.state) for e in redo] == [(e.alert_id, e.state) for e in done]
    go_on = run(again, [sig("r01", T0 + 20 * S, Severity.alarm), sig("r01", T0 + 25 * S, None)])
    assert [(e.alert_id, e.state) for e in go_on] == [(up[0].alert_id, AlertState.cleared)]


def test_long_ids_fit_a_topic_level_and_stay_apart() -> None:
    """Long place and robot names: the id is still at most 64 characters of ``ID_PATTERN``, and two
    robots whose long names differ only at the end still get two ids."""
    place, robots = "s" * 40, ("robot-" + "x" * 30 + "-1", "robot-" + "x" * 30 + "-2")
    engine = AlertEngine()
    ids = []
    for r in robots:
        s = Signal(scenario_id=place, detector="gas_limit", subject="ch4_t1", kind=AlertKind.gas, source=r,
                   robot_id=r, severity=Severity.alarm, ts=T0, message="methane", channel="ch4_t1")
        ids += [e.alert_id for e in engine.update(s) if e.state is AlertState.raised]
        engine.update(Signal(**{**s.__dict__, "severity": None, "ts": T0 + S}))
    assert len(ids) == 2 and ids[0] != ids[1]
    assert all(re.fullmatch(ID_PATTERN, i) for i in ids), ids
    # the same long name again (a crash, the same readings): the same id
    s = Signal(scenario_id=place, detector="gas_limit", subject="ch4_t1", kind=AlertKind.gas, source=robots[0],
               robot_id=robots[0], severity=Severity.alarm, ts=T0, message="methane", channel="ch4_t1")
    assert AlertEngine().update(s)[0].alert_id == ids[0]


def test_suite_two_robots_held_back_readings_at_one_ms_with_a_live_alert_between() -> None:
    """Through the detectors: r01 and r02 send seq 0-4 and 10-14 live (normal) and hold 5-9 back,
    methane past the alarm level at seq 7 (the same robot time for both). r01's backlog comes: a
    late alert, raised and cleared at once. r01's live readings then rise and fall (a live alert).
    r02's backlog comes: its late alert is another alert, with an id of its own."""
    suite = DetectorSuite()
    for robot in ("r01", "r02"):
        suite.process(series(robot, "mf01", "ch4_t1", [0.3] * 5))
    for robot in ("r01", "r02"):
        suite.process(series(robot, "mf01", "ch4_t1", [0.3] * 5, start=10))
    backlog = [0.3, 0.3, 1.2, 0.3, 0.3]
    events = suite.process(series("r01", "mf01", "ch4_t1", backlog, start=5), late=[True] * 5,
                           held_back=range(5)).events
    events += suite.process(series("r01", "mf01", "ch4_t1", [1.2] + [0.3] * 5, start=15)).events
    events += suite.process(series("r02", "mf01", "ch4_t1", backlog, start=5), late=[True] * 5,
                            held_back=range(5)).events
    ups = [e for e in raised(events) if e.detector == "gas_limit"]
    assert [(e.robot_id, e.first_ts, e.timing) for e in ups] == [
        ("r01", T0 + 7 * S, AlertTiming.late), ("r01", T0 + 15 * S, AlertTiming.live), ("r02", T0 + 7 * S, AlertTiming.late)]
    assert len({e.alert_id for e in ups}) == 3, [e.alert_id for e in ups]
    assert suite.active() == []
