"""The board (the API's alert book, folded from events by ``alert_id``) keeps two alerts apart
when they were raised on one key at one millisecond by two robots: the ids the engine gives them
differ, so the second is not taken for a repeat of the first's ``raised`` event."""

from __future__ import annotations

from api.alertbook import AlertBook
from detectors.engine import AlertEngine, Signal
from minewatch.schema import AlertKind, AlertTiming, Severity

T0 = 1_795_852_800_000_000_000
S = 1_000_000_000


def _sig(robot: str, ts: int, severity: Severity | None, timing: AlertTiming) -> Signal:
    return Signal(scenario_id="mf01", detector="gas_limit", subject="ch4_t1", kind=AlertKind.gas, source=robot,
                  robot_id=robot, severity=severity, ts=ts, message="methane", channel="ch4_t1", timing=timing,
                  may_hold=timing is AlertTiming.live)


def test_a_standing_alarm_raised_at_a_cleared_ones_millisecond_is_on_the_board_and_can_be_acknowledged() -> None:
    """r01's alarm raised at T and cleared, then the ingestor restarted (nothing retained of it);
    r02's held-back readings raise an alarm at T that stands (its newer readings are past the level
    too). The board shows r02's alarm active, apart from r01's cleared one, and acknowledging it by
    its id reaches it."""
    t = T0 + 7 * S
    before = AlertEngine()
    events = before.update(_sig("r01", t, Severity.alarm, AlertTiming.live))
    events += before.update(_sig("r01", t + 2 * S, None, AlertTiming.live))
    restarted = AlertEngine()
    restarted.restore([])
    events += restarted.update(_sig("r02", t, Severity.alarm, AlertTiming.late))
    book = AlertBook()
    assert book.apply_all(events) == 3
    active = book.active()
    assert [(a.latest.robot_id, a.latest.state.value) for a in active] == [("r02", "raised")], [a.alert_id for a in book]
    cleared = book.get(events[0].alert_id)
    assert cleared is not None and not cleared.active and {e.robot_id for e in cleared.events} == {"r01"}
    ack = restarted.acknowledge(active[0].alert_id, "op.li", None, t + 60 * S)
    assert ack.robot_id == "r02" and book.apply(ack) and book.get(active[0].alert_id).acknowledged  # type: ignore[union-attr]
