"""DetectorSuite: rate of rise, ventilation, sensor health and robot checks end to end."""

from __future__ import annotations

import numpy as np

from detectors import DetectorSuite
from minewatch.schema import AlertEvent, AlertKind, Link, RobotStatus, Severity
from minewatch.wire import Frame, LinkInfo
from tests.detectors.conftest import S, T0, frame, series


def by(events: list[AlertEvent], detector: str) -> list[tuple[str, str]]:
    return [(e.state.value, e.severity.value) for e in events if e.detector == detector]


def test_fast_methane_climb_alerts_before_the_limit() -> None:
    suite = DetectorSuite()
    rng = np.random.default_rng(5)
    values = list(np.round(0.3 + rng.normal(0, 0.006, 30), 2)) + [round(0.3 + 0.01 * k, 2) for k in range(1, 80)]
    d = suite.process(series("r01", "hf01", "ch4_t1", values, dt_s=2.0))
    rise = [e for e in d.events if e.detector == "rate_of_rise"]
    limit = [e for e in d.events if e.detector == "gas_limit"]
    assert rise and limit
    assert rise[0].ts < limit[0].ts and rise[0].value is not None and rise[0].value < 1.0
    assert rise[0].kind is AlertKind.gas and "%/min" in rise[0].message and "hf01" in rise[0].message
    assert by(suite.process(series("r01", "hf01", "ch4_t1", [0.3] * 1, dt_s=2.0, start=len(values))).events,
              "rate_of_rise") == []


def test_noisy_steady_methane_never_alerts() -> None:
    suite = DetectorSuite()
    rng = np.random.default_rng(6)
    values = np.round(0.45 + 0.05 * np.sin(np.arange(3000) / 300) + rng.normal(0, 0.006, 3000), 2)
    assert suite.process(series("r01", "mf01", "ch4_t1", values, dt_s=2.0)).events == []


def test_local_fan_stoppage_and_main_fan_units() -> None:
    suite = DetectorSuite()
    d = suite.process([frame("r05", "lf02", i, {"run": v}) for i, v in enumerate([1, 1, 0, 0, 1])])
    assert by(d.events, "fan_stoppage") == [("raised", "critical"), ("cleared", "critical")]
    assert "CH4 ≤ 1.0 %" in d.events[0].message and "lf02" in d.events[0].message
    d = suite.process([frame("r06", "vf01", i, {"run_a": a, "run_b": b}) for i, (a, b) in
                       enumerate([(1, 0), (0, 0), (0, 0), (0, 1), (0, 1)])])
    assert by(d.events, "fan_stoppage") == [("raised", "critical"), ("cleared", "critical")]
    assert by(d.events, "fan_unit_stopped") == [("raised", "warning")]
    assert [e.channel for e in d.events if e.detector == "fan_stoppage"] == ["fan", "fan"]


def test_airflow_reversal_and_velocity_range_use_magnitude() -> None:
    suite = DetectorSuite()
    d = suite.process(series("r06", "vf02", "ws", [8.5, 8.4, -4.2, -4.3, -4.1, 8.0, 8.2]))
    assert by(d.events, "airflow_reversal") == [("raised", "alarm"), ("cleared", "alarm")]
    assert by(d.events, "air_velocity_limit") == []  # 4.2 m/s reversed is inside the fan drift's 15 m/s
    d = suite.process(series("r01", "mf01", "ws", [1.5, 4.5, 4.6, -4.7, 1.2, 1.3], start=10))
    assert by(d.events, "air_velocity_high") == [("raised", "alarm"), ("cleared", "alarm")]
    d = suite.process(series("r01", "mf01", "ws", [0.2, 0.1, 1.0, 1.0], start=20))
    assert by(d.events, "air_velocity_low") == [("raised", "alarm"), ("cleared", "alarm")]


def test_fan_pressure_drop() -> None:
    suite = DetectorSuite()
    d = suite.process(series("r06", "vf01", "dp", [2.3, 2.2, 1.5, 1.5, 1.1, 1.1, 2.3, 2.3]))
    assert by(d.events, "fan_pressure_drop") == [("raised", "warning"), ("escalated", "alarm"), ("cleared", "alarm")]


def test_working_place_temperature() -> None:
    suite = DetectorSuite()
    d = suite.process(series("r01", "mf01", "t", [25.0, 26.5, 26.6, 30.5, 30.6, 25.0, 25.1]))
    assert by(d.events, "temperature_limit") == [("raised", "warning"), ("escalated", "alarm"), ("cleared", "alarm")]


def test_out_of_range_and_stuck_sensor() -> None:
    suite = DetectorSuite()
    rng = np.random.default_rng(7)
    good = list(np.round(0.3 + rng.normal(0, 0.006, 100), 2))
    values = good + [5.0, 5.0] + good[:5] + [0.31] * 200 + [0.33]
    d = suite.process(series("r01", "ra01", "ch4", values, dt_s=2.0))
    assert by(d.events, "sensor_range") == [("raised", "alarm"), ("cleared", "alarm")]
    assert by(d.events, "sensor_stuck") == [("raised", "alarm"), ("cleared", "alarm")]
    stuck = [e for e in d.events if e.detector == "sensor_stuck"][0]
    assert stuck.kind is AlertKind.sensor_health and "r01" in stuck.message and stuck.evidence["for_s"] >= 120
    assert by(d.events, "gas_limit") == [("raised", "alarm"), ("cleared", "alarm")]  # 5 % is still gas first


def test_silent_channel_while_robot_reports() -> None:
    suite = DetectorSuite()
    frames = [frame("r01", "mf01", i, {"co": 3.0, "t": 22.0} if i < 10 else {"t": 22.0}, dt_s=5.0) for i in range(30)]
    frames.append(frame("r01", "mf01", 30, {"co": 3.0, "t": 22.0}, dt_s=5.0))
    d = suite.process(frames)
    assert by(d.events, "sensor_silent") == [("raised", "alarm"), ("cleared", "alarm")]  # a blind CO sensor
    raised = [e for e in d.events if e.detector == "sensor_silent"][0]
    assert raised.ts == T0 + 21 * 5 * S  # the first frame at least 60 s after the last CO value (45 s)


def test_robot_offline_battery_link_and_deadman() -> None:
    suite = DetectorSuite()
    ev = suite.robot_status(RobotStatus(robot_id="r03", online=False, ts=T0, scenario_id="hf02"))
    assert by(ev, "robot_offline") == [("raised", "warning")] and ev[0].kind is AlertKind.robot_health
    assert ev[0].alert_id.startswith("hf02.r03.robot_offline.")
    assert suite.robot_status(RobotStatus(robot_id="r03", online=False, ts=T0 + S)) == []  # dedup
    ev = suite.robot_status(RobotStatus(robot_id="r03", online=True, ts=T0 + 2 * S, scenario_id="hf02", battery=8.0))
    assert by(ev, "robot_offline") == [("cleared", "warning")]
    assert by(ev, "battery_low") == [("raised", "alarm")]
    frames = [Frame(robot_id="r03", scenario_id="hf02", seq=i, ts=T0 + (10 + i) * S, battery=30.0,
                    link=LinkInfo(latency_ms=250.0 if i < 5 else 15.0, rssi_dbm=-80.0)) for i in range(10)]
    d = suite.process(frames)
    assert by(d.events, "battery_low") == [("cleared", "alarm")]
    assert by(d.events, "link_degraded") == [("raised", "info"), ("cleared", "info")]  # a notice
    # nothing for a minute: the deadman, by data time, a notice (a coverage hole, most likely)
    ev = suite.tick(T0 + 19 * S + 61 * S)
    assert by(ev, "robot_offline") == [("raised", "info")] and ev[0].ts == T0 + 19 * S + 60 * S
    assert suite.tick(T0 + 200 * S) == []
    d = suite.process([Frame(robot_id="r03", scenario_id="hf03", seq=11, ts=T0 + 300 * S)])
    # its second raise within ten minutes: the clear waits out the chatter hold (120 s) first
    assert by(d.events, "robot_offline") == []
    later = suite.process([Frame(robot_id="r03", scenario_id="hf03", seq=11 + k, ts=T0 + (300 + 30 * k) * S)
                           for k in range(1, 5)])
    assert by(later.events, "robot_offline") == [("cleared", "info")]
    assert later.events[0].ts == T0 + 420 * S and later.events[0].evidence["flapping"] is True
    assert suite.robot_status(RobotStatus(robot_id="r09", online=True, ts=T0, link=Link(latency_ms=10, rssi_dbm=-80),
                                          charging=True, battery=5.0)) == []


def test_gap_in_frames_gives_deadman_in_one_batch_too() -> None:
    frames = [frame("r01", "mf01", i, {"co": 3.0}) for i in range(5)] + \
             [frame("r01", "mf01", i, {"co": 3.0}) for i in range(100, 105)]
    one = DetectorSuite().process(frames).events
    split = DetectorSuite()
    two = split.process(frames[:5]).events + split.tick(T0 + 80 * S) + split.process(frames[5:]).events
    assert by(one, "robot_offline") == [("raised", "info"), ("cleared", "info")]
    assert one == two


def test_a_robot_silent_for_five_minutes_is_a_warning() -> None:
    suite = DetectorSuite()
    suite.process([frame("r07", "bc02", i, {"co": 3.0}) for i in range(5)])
    assert by(suite.tick(T0 + 4 * S + 61 * S), "robot_offline") == [("raised", "info")]
    assert suite.tick(T0 + 4 * S + 299 * S) == []
    ev = suite.tick(T0 + 4 * S + 301 * S)
    assert by(ev, "robot_offline") == [("escalated", "warning")] and ev[0].ts == T0 + 304 * S
    assert "5 min" in ev[0].message and "not being inspected" in ev[0].message
    # the same in one batch: a gap of six minutes between frames
    one = DetectorSuite().process([frame("r07", "bc02", i, {"co": 3.0}) for i in (0, 1, 400, 401)]).events
    assert by(one, "robot_offline") == [("raised", "info"), ("escalated", "warning"), ("cleared", "warning")]


def test_restore_health_and_robot_alerts() -> None:
    first = DetectorSuite()
    stored = first.robot_status(RobotStatus(robot_id="r03", online=False, ts=T0, scenario_id="hf02"))
    stored += first.process(series("r01", "ra01", "ch4", [0.3, 5.0])).events
    assert {e.detector for e in stored} >= {"robot_offline", "sensor_range"}
    again = DetectorSuite()
    again.restore(stored)
    assert {e.alert_id for e in again.active()} == {e.alert_id for e in first.active()}
    cleared = again.robot_status(RobotStatus(robot_id="r03", online=True, ts=T0 + 5 * S))
    cleared += again.process(series("r01", "ra01", "ch4", [0.3, 0.3], start=2)).events
    assert sorted((e.detector, e.state.value) for e in cleared if e.detector in ("robot_offline", "sensor_range")) == [
        ("robot_offline", "cleared"), ("sensor_range", "cleared")]
    assert all(e.severity is not Severity.info for e in cleared)


def test_change_notice_on_a_channel_without_limits() -> None:
    rng = np.random.default_rng(9)
    values: np.ndarray = np.asarray(np.round(np.r_[85 + rng.normal(0, 0.4, 200), 92 + rng.normal(0, 0.4, 100)], 1))
    d = DetectorSuite().process(series("r01", "mf01", "rh", values, dt_s=5.0))
    notices = [e for e in d.events if e.detector == "change"]
    assert [(e.state.value, e.severity.value) for e in notices][:1] == [("raised", "info")]
    assert 200 <= (notices[0].ts - T0) // (5 * S) < 215
    assert "usual 85" in notices[0].message and "Relative humidity in mf01" in notices[0].message
    assert DetectorSuite().process(series("r01", "mf01", "rh", values[:200], dt_s=5.0)).events == []


def test_a_reading_of_absurd_magnitude_is_told_in_a_few_characters() -> None:
    """A robot sending CO at 1e308 ppm (a broken sensor or a hostile client) got an alarm whose
    message spelt the value out in 309 digits; every alert about it is short and says 1e+308."""
    suite = DetectorSuite()
    events = suite.process(series("r07", "hf04", "co", [3.0, 1e308, 1e308, 1e308, -1e308, 3.0])).events
    about = [e for e in events if e.channel == "co" and e.state.value == "raised"]
    assert {e.detector for e in about} >= {"gas_limit", "sensor_range"}, [e.detector for e in about]
    for e in events:
        assert len(e.message) < 400, e.message
    assert any("1e+308 ppm" in e.message for e in about), [e.message for e in about]
