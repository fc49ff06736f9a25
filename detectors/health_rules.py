"""Words and settings of the sensor-health and robot alerts."""

from __future__ import annotations

import math

from minewatch.catalogue import QUANTITIES, Channel, Scenario
from minewatch.schema import AlertKind, Severity

from detectors.rules import decimals, fmt_number, where_place

__all__ = ["HEALTH_DETECTORS", "health_severity", "health_message", "SILENCE_S", "ROBOT_SILENCE_S",
           "ROBOT_LONG_SILENCE_S", "STUCK_S"]

# [P] A stream is silent after 60 s without a value: two of the monitoring system's 30 s polling
# cycles (domain §3, AQ 6201-2019 §4.7.4). A robot is silent after the same time without any frame.
SILENCE_S = 60.0
ROBOT_SILENCE_S = 60.0
# [P] A robot silent for a minute is most often in a coverage hole of its route (a patrol robot's
# are routine): a notice, nothing to act on yet. Silent for five minutes (ten polling cycles), its
# route is not being inspected: a warning the operator acts on (EEMUA 191: an alarm needs an action).
ROBOT_LONG_SILENCE_S = 300.0
# [P] A sensor is stuck when it repeats exactly for at least two minutes (and enough repeats, see
# detectors.health): four polling cycles.
STUCK_S = 120.0

HEALTH_DETECTORS = ("sensor_range", "sensor_stuck", "sensor_spikes", "sensor_silent")


def health_severity(channel: Channel | None) -> Severity:
    """A blind methane sensor is an alarm: gas monitoring there has stopped working."""
    return Severity(QUANTITIES[channel.quantity].blind) if channel is not None else Severity.warning


def _v(value: float | None, channel: Channel | None) -> str:
    if value is None or value != value:
        return "no value"
    if not math.isfinite(value):
        return f"{value}"
    unit = channel.unit if channel else ""
    digits = decimals(channel.quantity) if channel else 3
    return f"{fmt_number(value, digits)} {unit}".rstrip()


def health_message(col: int, raised: bool, sc: Scenario, channel: Channel | None, channel_name: str, robot: str,
                   value: float | None, since_s: float | None = None) -> tuple[str, str, float | None]:
    """(message, rule, limit) for a health change in column ``col`` of the health kernel."""
    sensor = f"The {channel.label if channel else channel_name} sensor read by robot {robot} in {where_place(sc)}"
    q = QUANTITIES.get(channel.quantity) if channel else None
    if col == 0:
        rule = f"sensor range {q.low:g}-{q.high:g} {q.unit} ({q.source})" if q else "sensor range"
        if raised:
            return (f"{sensor} reports {_v(value, channel)}, outside what the sensor can measure: the reading is a "
                    f"sensor fault, not a measurement; check or replace the sensor and take a manual reading "
                    f"meanwhile.", rule, q.high if q else None)
        return f"{sensor} is back in its range at {_v(value, channel)}: the alert is cleared.", rule, None
    if col == 1:
        rule = f"stuck sensor: the same value repeated for at least {STUCK_S:g} s, far longer than its noise allows [P]"
        if raised:
            return (f"{sensor} has repeated {_v(value, channel)} for {since_s or 0:.0f} s: treat the reading as "
                    f"unknown, check the sensor and take a manual reading.", rule, None)
        return f"{sensor} is changing again ({_v(value, channel)}): the alert is cleared.", rule, None
    if col == 2:
        rule = "spiky sensor: 3 one-sample spikes within 10 min [P]"
        if raised:
            return (f"{sensor} shows repeated one-sample spikes, latest back to {_v(value, channel)}: check its "
                    f"cable and connector.", rule, None)
        return f"{sensor} has had no spike for 10 min: the alert is cleared.", rule, None
    rule = f"silent stream: no value for {SILENCE_S:g} s, two 30 s polling cycles (domain §3, AQ 6201-2019) [P]"
    if raised:
        return (f"{sensor} has sent no value for {since_s or 0:.0f} s while the robot reports: this reading is not "
                f"monitored there; check the sensor and its link.", rule, None)
    return f"{sensor} reports again ({_v(value, channel)}): the alert is cleared.", rule, None


KIND = AlertKind.sensor_health
