"""A recorded shift written straight into InfluxDB, for the report and replay tests.

The layout is the ingestor's (``telemetry``, ``alert_events``, ``robot_status``); alert events and
status are formatted by the ingestor's own line builders. The story: the night shift (00:00-08:00
mine time, UTC+8) of the mine day ten days before the test runs (so the tests hold on any date, and
the shift lies beyond the replay view's default day); robot r01 patrols mf01 and sends a frame a
minute; at 02:00 methane at face T1 rises past the alarm (1.0 %) and the power-cut level
(1.5 %), peaks at 1.74 %, is acknowledged by Wang Li and clears at 02:12; r01 is offline from
04:00 to 05:00 (so its uptime is 7/8); r02 patrols ra01 all shift.
"""

from __future__ import annotations

import math
import time
from datetime import datetime, timedelta
from typing import Any

from ingest.lines import TelemetryLines, alert_line, status_line
from minewatch.catalogue import SCENARIOS
from minewatch.influx import SyncInflux
from minewatch.schema import AlertEvent, AlertKind, AlertState, RobotStatus, Severity
from minewatch.shifts import ShiftCalendar
from minewatch.wire import Frame

_CAL = ShiftCalendar()
SHIFT = _CAL.occurrence(datetime.fromtimestamp(time.time(), _CAL.tz).date() - timedelta(days=10), "night")
SHIFT_ID = SHIFT.id
NS = 1_000_000_000
MIN = 60 * NS
T0 = SHIFT.start_ns
ALERT_ID = "mf01.ch4_t1.gas_limit.seeded"
EXCURSION = (T0 + 120 * MIN, T0 + 132 * MIN)  # 02:00-02:12 mine time
OFFLINE = (T0 + 240 * MIN, T0 + 300 * MIN)  # r01, 04:00-05:00
PEAK = 1.74


def ch4_t1(ts: int) -> float:
    a, b = EXCURSION
    if a <= ts < b:
        x = (ts - a) / (b - a)
        return round(0.35 + (PEAK - 0.35) * math.sin(math.pi * x), 3)
    return round(0.32 + 0.05 * math.sin(ts / (37 * MIN)), 3)


def telemetry_lines() -> list[str]:
    out: list[str] = []
    fmt = TelemetryLines()
    mf01, ra01 = SCENARIOS["mf01"], SCENARIOS["ra01"]
    for i in range(0, 480):
        ts = T0 + i * MIN + 7 * NS
        if not (OFFLINE[0] <= ts < OFFLINE[1]):
            readings: dict[str, float | None] = {
                c.name: round((c.normal[0] + c.normal[1]) / 2 + 0.1 * (c.normal[1] - c.normal[0]) * math.sin(i / 9 + k), 4)
                for k, c in enumerate(mf01.channels)}
            readings["ch4_t1"] = ch4_t1(ts)
            out.append(fmt.format(Frame(robot_id="r01", scenario_id="mf01", seq=i, ts=ts, readings=readings,
                                        battery=95.0 - i * 0.1)))
        readings = {c.name: round((c.normal[0] + c.normal[1]) / 2, 4) for c in ra01.channels}
        out.append(fmt.format(Frame(robot_id="r02", scenario_id="ra01", seq=i, ts=ts + 11 * NS, readings=readings,
                                    battery=80.0)))
    return out


def alert_event(state: str, severity: str, ts: int, value: float, limit: float, **extra: Any) -> str:
    ev = AlertEvent(alert_id=ALERT_ID, kind=AlertKind.gas, detector="gas_limit", severity=Severity(severity),
                    state=AlertState(state), scenario_id="mf01", robot_id="r01", channel="ch4_t1", value=value,
                    limit=limit, unit="%", first_ts=EXCURSION[0] + 2 * MIN, ts=ts,
                    message=f"Methane {value} % at methane, face T1 in mf01 ({state})",
                    evidence={"rule": "CMSR Art.498 methane settings, longwall face T1"}, **extra)
    out = alert_line(ev)
    assert out is not None
    return out


def alert_lines() -> list[str]:
    a = EXCURSION[0]
    return [
        alert_event("raised", "alarm", a + 2 * MIN, 1.12, 1.0),
        alert_event("escalated", "critical", a + 4 * MIN, 1.61, 1.5),
        alert_event("acknowledged", "critical", a + 5 * MIN, PEAK, 1.5, operator="Wang Li", note="power cut confirmed"),
        alert_event("cleared", "critical", a + 11 * MIN, 0.8, 1.0),
    ]


def status_lines() -> list[str]:
    def st(robot: str, online: bool, ts: int, scenario: str) -> str:
        out = status_line(RobotStatus(robot_id=robot, online=online, ts=ts, scenario_id=scenario, battery=90.0))
        assert out is not None
        return out

    return [st("r01", True, T0 - 60 * MIN, "mf01"), st("r01", False, OFFLINE[0], "mf01"),
            st("r01", True, OFFLINE[1], "mf01"), st("r02", True, T0 - 5 * MIN, "ra01")]


def seed(influx: SyncInflux) -> None:
    influx.write(telemetry_lines() + alert_lines() + status_lines())
