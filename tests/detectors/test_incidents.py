"""Incidents: one outburst is one thing for the operator, acknowledged once."""

from __future__ import annotations

import re

import pytest

from detectors import DetectorSuite
from minewatch.schema import AlertState, IncidentState, Severity
from simulator.engine import SimConfig, Simulation
from simulator.faults import load_faults
from tests.detectors.conftest import S, T0, frame


def _outburst(suite: DetectorSuite, start: int = 0, n: int = 40) -> list:
    """Methane rising fast at every sensor of mf01's face, past the power cut, read by r01."""
    frames = []
    for i in range(n):
        k = max(0, i - 5)
        lvl = 0.3 + 0.06 * k if i < 30 else 0.3  # climbs 3.6 %/min, then the air clears at once
        frames.append(frame("r01", "mf01", start + i, {"ch4_t0": lvl, "ch4_t1": lvl + 0.05, "ch4_t2": lvl * 0.8,
                                                       "ch4_shearer": lvl, "co": 3.0}))
    return frames


def test_an_outburst_is_one_incident_with_every_sensor_and_detector_as_members() -> None:
    suite = DetectorSuite()
    d = suite.process(_outburst(suite))
    alerts = {e.alert_id for e in d.events}
    assert len(alerts) >= 4  # several sensors' limits and the rate of rise
    assert {e.detector for e in d.events} >= {"gas_limit", "rate_of_rise"}
    incidents = suite.engine.drain_incidents()
    assert {i.incident_id for i in incidents} == {d.events[0].incident_id}
    assert all(e.incident_id == d.events[0].incident_id for e in d.events)
    first, last = incidents[0], incidents[-1]
    assert first.state is IncidentState.raised and first.cause == "methane" and first.place == "mf01"
    assert first.title == "Methane at mf01, 15101 fully-mechanised longwall"
    # it escalates with its worst member, never later than the member's own step
    crit = next(e for e in d.events if e.severity is Severity.critical)
    esc = next(i for i in incidents if i.severity is Severity.critical)
    assert esc.state is IncidentState.escalated and esc.ts == crit.ts and esc.needs_ack
    assert "power-cut level" in esc.message
    # every member clears: so does the incident
    assert last.state is IncidentState.cleared and not last.needs_ack
    assert {m.alert_id for m in last.members} == alerts and not any(m.active for m in last.members)
    annunciations = [i for i in incidents if i.state in (IncidentState.raised, IncidentState.escalated)]
    assert len(annunciations) <= 3  # raised, then escalations of severity only


def test_one_acknowledgement_covers_the_incident_and_an_escalation_asks_again() -> None:
    suite = DetectorSuite()
    # methane past the alarm level at two sensors: one incident, alarm
    d = suite.process([frame("r01", "mf01", i, {"ch4_t0": 1.1, "ch4_t1": 1.2}) for i in range(3)])
    iid = d.events[0].incident_id
    assert iid is not None
    inc = suite.engine.drain_incidents()[-1]
    assert inc.severity is Severity.alarm and inc.needs_ack and len([m for m in inc.members if m.active]) == 2
    acks, done = suite.engine.acknowledge_incident(iid, "Wang Li", "gas patrol sent", T0 + 5 * S)
    assert [a.state for a in acks] == [AlertState.acknowledged] * 2 and {a.alert_id for a in acks} == \
        {e.alert_id for e in d.events}
    assert done.state is IncidentState.acknowledged and not done.needs_ack and done.acknowledged_by == "Wang Li"
    suite.engine.drain_incidents()
    # a third sensor joins at the same severity: the operator need not act again
    d2 = suite.process([frame("r01", "mf01", 3, {"ch4_t0": 1.1, "ch4_t1": 1.2, "ch4_shearer": 1.1})])
    assert [e.state for e in d2.events] == [AlertState.raised] and d2.events[0].incident_id == iid
    upd = suite.engine.drain_incidents()[-1]
    assert upd.state is IncidentState.updated and not upd.needs_ack
    # the power-cut level: worse than what was acknowledged, so it needs the operator again
    suite.process([frame("r01", "mf01", 4, {"ch4_t0": 1.1, "ch4_t1": 1.6, "ch4_shearer": 1.1})])
    esc = suite.engine.drain_incidents()[-1]
    assert esc.state is IncidentState.escalated and esc.severity is Severity.critical and esc.needs_ack
    with pytest.raises(KeyError):
        suite.engine.acknowledge_incident("mf01.methane.0", "x", None, T0)


def test_places_and_causes_keep_incidents_apart() -> None:
    suite = DetectorSuite()
    d = suite.process([frame("r01", "mf01", 0, {"ch4_t1": 1.2, "co": 40.0}), frame("r01", "mf01", 1, {"ch4_t1": 1.2, "co": 40.0}),
                       frame("r04", "hf01", 0, {"ch4_t1": 1.2}), frame("r04", "hf01", 1, {"ch4_t1": 1.2})])
    by_incident: dict[str, set[tuple[str, str | None]]] = {}
    for e in d.events:
        assert e.incident_id is not None
        by_incident.setdefault(e.incident_id, set()).add((e.scenario_id, e.channel))
    assert sorted(by_incident) == sorted([f"mf01.methane.{T0 // 1_000_000}.r01", f"mf01.fire.{(T0 + S) // 1_000_000}.r01",
                                          f"hf01.methane.{T0 // 1_000_000}.r04"])


def test_incidents_are_restored_with_their_acknowledgement() -> None:
    suite = DetectorSuite()
    suite.process([frame("r01", "mf01", i, {"ch4_t0": 1.1, "ch4_t1": 1.2}) for i in range(3)])
    iid = suite.active()[0].incident_id
    assert iid is not None
    suite.engine.acknowledge_incident(iid, "Wang Li", None, T0 + 5 * S)
    retained_alerts, retained_incidents = suite.active(), suite.engine.active_incidents()
    again = DetectorSuite()
    again.restore(retained_alerts, retained_incidents)
    (inc,) = again.engine.active_incidents()
    assert inc.incident_id == iid and not inc.needs_ack and inc.acknowledged_by == "Wang Li"
    # the readings come back under the restore level: the members clear, and the incident with them
    d = again.process([frame("r01", "mf01", 10 + i, {"ch4_t0": 0.4, "ch4_t1": 0.4}) for i in range(3)])
    assert sorted(e.state.value for e in d.events) == ["cleared", "cleared"]
    assert again.engine.drain_incidents()[-1].state is IncidentState.cleared


def test_rate_of_rise_is_shown_as_a_rate() -> None:
    suite = DetectorSuite()
    d = suite.process(_outburst(suite))
    rise = next(e for e in d.events if e.detector == "rate_of_rise" and e.state is AlertState.raised)
    assert rise.unit == "%/min" and rise.limit == pytest.approx(0.1)
    # the smoothed slope when it alerts: above the 0.1 %/min that alerts, below the true 3.6 %/min climb
    assert rise.value is not None and 0.1 < rise.value < 3.6 and rise.value == rise.evidence["rate_per_min"]
    assert f"rising {rise.value:.2f} %/min" in rise.message and "now " in rise.message
    assert 0.3 < rise.evidence["level"] < 1.5


MARKERS = re.compile(r"\[[PUC]\]|§|CMSR|AQ \d|domain|ISO 1|\(rule")


def test_operator_texts_carry_no_rule_markers() -> None:
    """Over a faulted hour of the simulated mine, every alert and incident speaks plain words."""
    faults = load_faults("builtin:demo")
    sim = Simulation(SimConfig(seed=3, start_ns=T0, duration_s=3600, faults=faults))
    suite = DetectorSuite()
    seen = 0
    for tick in sim.ticks():
        frames = [f for m in tick.messages for f in m.frames]
        if not frames:
            continue
        d = suite.process(frames)
        for e in d.events:
            seen += 1
            assert not MARKERS.search(e.message), e.message
            assert e.evidence.get("rule"), e
        for i in suite.engine.drain_incidents():
            assert not MARKERS.search(i.message) and not MARKERS.search(i.title), i.message
    assert seen > 5


def test_what_follows_a_fan_stopping_joins_its_incident_and_is_still_raised() -> None:
    suite = DetectorSuite()
    # vf02's fans both stop (the derived "fan" reading off): its ventilation incident opens
    d = suite.process([frame("r30", "vf02", i, {"run_a": 0.0, "run_b": 0.0, "dp": 0.2}) for i in range(2)])
    fan = next(e for e in d.events if e.detector == "fan_stoppage")
    assert fan.severity is Severity.critical
    root = fan.incident_id
    assert root is not None
    assert root.startswith("vf02.ventilation.")
    # downstream of it (mf02, ventilated by vf02): the air slows and methane climbs past the power cut
    d = suite.process([frame("r02", "mf02", 10 + i, {"ws": 0.1, "ch4_t1": 1.7, "co": 3.0}) for i in range(3)])
    consequences = [e for e in d.events if e.scenario_id == "mf02"]
    assert consequences and {e.incident_id for e in consequences} == {root}
    assert any(e.severity is Severity.critical and e.channel == "ch4_t1" for e in consequences)  # raised, not hidden
    (inc,) = suite.engine.active_incidents()
    assert inc.incident_id == root and {m.scenario_id for m in inc.members} == {"vf02", "mf02"}
    # a place not ventilated by vf02 keeps its own incident
    d = suite.process([frame("r01", "mf01", 20 + i, {"ch4_t1": 1.7}) for i in range(2)])
    assert {e.incident_id for e in d.events} == {f"mf01.methane.{(T0 + 20 * S) // 1_000_000}.r01"}


def test_a_place_with_its_own_incident_keeps_it_when_its_fan_stops() -> None:
    suite = DetectorSuite()
    d = suite.process([frame("r02", "mf02", i, {"ch4_t1": 1.2}) for i in range(2)])
    own = d.events[0].incident_id
    suite.process([frame("r30", "vf02", 5 + i, {"run_a": 0.0, "run_b": 0.0}) for i in range(2)])
    d = suite.process([frame("r02", "mf02", 10 + i, {"ch4_t1": 1.7}) for i in range(2)])
    assert {e.incident_id for e in d.events} == {own}


def test_a_member_that_comes_back_at_a_severity_already_reached_does_not_ask_again() -> None:
    suite = DetectorSuite()
    suite.process([frame("r01", "mf01", i, {"ch4_t0": 1.2, "ch4_t1": 1.2}) for i in range(2)])
    iid = suite.active()[0].incident_id
    assert iid is not None
    suite.engine.acknowledge_incident(iid, "Wang Li", None, T0 + 3 * S)
    suite.engine.drain_incidents()
    # T0 clears (three clean readings), T1 stands; then T0 comes back at the alarm level
    suite.process([frame("r01", "mf01", 3 + i, {"ch4_t0": 0.4, "ch4_t1": 1.2}) for i in range(3)])
    suite.process([frame("r01", "mf01", 6 + i, {"ch4_t0": 1.2, "ch4_t1": 1.2}) for i in range(2)])
    steps = suite.engine.drain_incidents()
    assert [i.state for i in steps] == [IncidentState.updated, IncidentState.updated]
    assert not steps[-1].needs_ack and steps[-1].incident_id == iid


def test_a_robot_that_leaves_takes_its_own_alerts_with_it_after_two_minutes() -> None:
    suite = DetectorSuite()
    # patrol robot p03 sees methane rising fast at hf03; the stationed r05 reads it steady
    rising = [frame("p03", "hf03", i, {"ch4_t1": 0.5 + 0.01 * i}) for i in range(40)]
    steady = [frame("r05", "hf03", i, {"ch4_t1": 0.5}) for i in range(40)]
    d = suite.process(rising + steady)
    rate = [e for e in d.events if e.detector == "rate_of_rise"]
    assert rate and rate[0].robot_id == "p03" and rate[-1].state is AlertState.raised
    # p03 moves on to hf04; r05 keeps reporting hf03
    d = suite.process([frame("p03", "hf04", 40 + i, {"ch4_t1": 0.3}) for i in range(150)] +
                      [frame("r05", "hf03", 40 + i, {"ch4_t1": 0.5}) for i in range(150)])
    cleared = [e for e in d.events if e.detector == "rate_of_rise" and e.state is AlertState.cleared]
    assert len(cleared) == 1 and "moved on" in cleared[0].message
    assert cleared[0].ts == T0 + (39 + 120) * S  # two minutes after its last frame there
    # back at hf03 with methane still climbing: raised again
    d = suite.process([frame("p03", "hf03", 200 + i, {"ch4_t1": 0.5 + 0.01 * i}) for i in range(40)])
    assert any(e.detector == "rate_of_rise" and e.state is AlertState.raised for e in d.events)
