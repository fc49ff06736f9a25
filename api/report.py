"""The shift report's data, read from InfluxDB: each scenario's channels downsampled over the shift
(bucket mean, min and max, so a short methane peak survives the downsampling), the alerts whose life
overlaps the shift, and robot status for uptime.

The report is made in parts, like the replay: this module collects, :mod:`api.report_render` writes
the HTML (its CSS and JS are files under ``api/static/``), :mod:`api.routes.report` serves it and
:mod:`api.report_cli` is the ``minewatch report`` command.
"""

from __future__ import annotations

import math
import time
from collections import Counter, defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from api.alertbook import AlertBook, event_from_row
from minewatch.catalogue import SCENARIOS, Scenario
from minewatch.influx import InfluxError, SyncInflux
from minewatch.schema import AlertEvent, AlertState
from minewatch.shifts import Shift
from minewatch.storage import DOWNSAMPLED, LONG_RP

__all__ = ["ReportData", "collect", "scenario_series", "shift_alerts", "robot_uptime", "DEFAULT_POINTS"]

_NS = 1_000_000_000
# Points per chart: 8 h in 80 s buckets. Each bucket keeps its min and max as well as its mean.
DEFAULT_POINTS = 360
# Buckets of the long-term 5-minute statistics (minewatch.storage).
LONG_BUCKET_S = 300
# Alerts raised up to this long before the shift and still active in it are part of its story.
ALERT_LOOKBACK_NS = 24 * 3600 * _NS


@dataclass
class ReportData:
    shift: Shift
    tz_offset_h: float
    interval_s: int
    scenarios: list[dict[str, Any]] = field(default_factory=list)
    alerts: list[dict[str, Any]] = field(default_factory=list)
    robots: list[dict[str, Any]] = field(default_factory=list)
    generated_ns: int = field(default_factory=time.time_ns)

    def counts(self) -> dict[str, dict[str, int]]:
        """Alerts by kind and by (highest) severity."""
        c: dict[str, Counter[str]] = defaultdict(Counter)
        for a in self.alerts:
            c[a["kind"]][a["severity"]] += 1
        return {k: dict(v) for k, v in c.items()}


# ------------------------------------------------------------------------------------ reading


def _bucket_s(shift: Shift, points: int) -> int:
    return max(1, math.ceil((shift.end_ns - shift.start_ns) / _NS / max(1, points)))


def _round(x: Any) -> float | None:
    if x is None or isinstance(x, bool) or not isinstance(x, (int, float)) or not math.isfinite(x):
        return None
    return float(f"{x:.5g}")


def scenario_series(influx: SyncInflux, sc: Scenario, start_ns: int, end_ns: int, bucket_s: int) -> dict[str, Any]:
    """One scenario's channels over the window: shared bucket times (s) and per channel
    ``[mean[], min[], max[]]``; channels with no data are left out. Raw data first; a shift older
    than the raw retention falls back to the 5-minute statistics in ``long.telemetry_5m``."""
    out = _series(influx, sc, start_ns, end_ns, bucket_s, '"telemetry"', "{agg}(\"{ch}\")")
    if out["channels"]:
        return out
    try:
        long = _series(influx, sc, start_ns, end_ns, max(bucket_s, LONG_BUCKET_S),
                       f'"{LONG_RP}"."{DOWNSAMPLED["telemetry"]}"', "{agg}(\"{agg}_{ch}\")")
    except InfluxError:  # no such retention policy: storage was never set up for the long term
        return out
    if long["channels"]:
        long["source"] = f"{LONG_RP}.{DOWNSAMPLED['telemetry']}"
    return long if long["channels"] else out


def _series(influx: SyncInflux, sc: Scenario, start_ns: int, end_ns: int, bucket_s: int, measurement: str,
            field: str) -> dict[str, Any]:
    cols = []
    for c in sc.channels:
        q = c.name.replace('"', "")
        cols.append(", ".join(f'{field.format(agg=agg, ch=q)} AS "{q}__{agg}"' for agg in ("mean", "min", "max")))
    query = (f'SELECT {", ".join(cols)} FROM {measurement} WHERE "scenario" = \'{sc.id}\' '
             f"AND time >= {start_ns} AND time < {end_ns} GROUP BY time({bucket_s}s) fill(none)")
    rows = influx.query(query)
    t = [int(r["time"]) // _NS for r in rows]
    channels: dict[str, list[list[float | None]]] = {}
    for c in sc.channels:
        mean = [_round(r.get(f"{c.name}__mean")) for r in rows]
        if all(v is None for v in mean):
            continue
        channels[c.name] = [mean, [_round(r.get(f"{c.name}__min")) for r in rows],
                            [_round(r.get(f"{c.name}__max")) for r in rows]]
    return {"t": t, "channels": channels}


def _channel_meta(sc: Scenario) -> dict[str, Any]:
    return {c.name: {"label": c.label, "unit": c.unit, "normal": list(c.normal),
                     "limits": [{"direction": lim.direction, "levels": [list(lv) for lv in lim.levels],
                                 "restore": lim.restore, "rule": lim.rule} for lim in c.limits]}
            for c in sc.channels}


def shift_alerts(influx: SyncInflux, start_ns: int, end_ns: int) -> list[dict[str, Any]]:
    """Alerts whose life overlaps [start, end), folded from their ``alert_events`` the way the API
    folds them, oldest first."""
    where = f"WHERE time >= {start_ns - ALERT_LOOKBACK_NS} AND time < {end_ns}"
    rows = influx.query(f'SELECT * FROM "alert_events" {where}')
    try:  # the alert log is also copied into the long-term policy: older shifts are found there
        rows += influx.query(f'SELECT * FROM "{LONG_RP}"."alert_events" {where}')
    except InfluxError:
        pass
    book = AlertBook()  # the same event from both policies lands once
    book.apply_all(e for e in map(event_from_row, rows) if e is not None)
    out: list[dict[str, Any]] = []
    for alert in book:
        p = alert.public()
        if p.first_ts >= end_ns or (p.cleared_ts is not None and p.cleared_ts < start_ns):
            continue
        worst = next(e for e in alert.events if e.severity == p.max_severity)
        out.append({
            "alert_id": p.alert_id, "kind": p.kind.value, "detector": p.detector, "scenario_id": p.scenario_id,
            "channel": p.channel, "severity": p.max_severity.value, "state": p.state.value, "first_ts": p.first_ts,
            "cleared_ts": p.cleared_ts, "ack_ts": p.acknowledged_ts, "operator": p.acknowledged_by,
            "note": next((e.note for e in alert.events if e.state == AlertState.acknowledged), None),
            "value": _round(_peak(alert.events, worst)), "limit": _round(worst.limit), "unit": worst.unit or "",
            "message": worst.message, "rule": worst.evidence.get("rule"),
        })
    out.sort(key=lambda a: a["first_ts"])
    return out


def _peak(events: list[AlertEvent], worst: AlertEvent) -> float | None:
    """The worst value an alert saw: the highest for an upper limit, the lowest for a lower one
    (told by its most severe event, whose value is past its limit)."""
    vals = [e.value for e in events if e.value is not None]
    if not vals:
        return None
    below = worst.value is not None and worst.limit is not None and worst.value < worst.limit
    return min(vals) if below else max(vals)


def robot_uptime(influx: SyncInflux, start_ns: int, end_ns: int) -> list[dict[str, Any]]:
    """Per robot: share of the shift it was online (from ``robot_status``: the state in force at
    the start, then each change), share of minutes it sent telemetry, lowest battery, frames."""
    span = end_ns - start_ns
    before = {r["robot"]: bool(r["last"]) for r in influx.query(
        f'SELECT last("online") FROM "robot_status" WHERE time < {start_ns} GROUP BY "robot"') if r.get("robot")}
    changes: dict[str, list[tuple[int, bool]]] = defaultdict(list)
    for r in influx.query(f'SELECT "online" FROM "robot_status" WHERE time >= {start_ns} AND time < {end_ns} '
                          f'GROUP BY "robot"'):
        if r.get("robot") and r.get("online") is not None:
            changes[r["robot"]].append((int(r["time"]), bool(r["online"])))
    battery = {r["robot"]: r.get("min") for r in influx.query(
        f'SELECT min("battery") FROM "telemetry" WHERE time >= {start_ns} AND time < {end_ns} GROUP BY "robot"')
        if r.get("robot")}
    minutes: Counter[str] = Counter()
    frames: Counter[str] = Counter()
    for r in influx.query(f'SELECT count("seq") FROM "telemetry" WHERE time >= {start_ns} AND time < {end_ns} '
                          f'GROUP BY time(1m), "robot" fill(none)'):
        if r.get("robot") and r.get("count"):
            minutes[r["robot"]] += 1
            frames[r["robot"]] += int(r["count"])
    total_min = max(1, math.ceil(span / (60 * _NS)))
    out = []
    for robot in sorted(set(before) | set(changes) | set(frames)):
        uptime = None
        if robot in before or robot in changes:
            online, t, up = before.get(robot), start_ns, 0
            for ts, state in sorted(changes.get(robot, [])):
                if online:
                    up += ts - t
                online, t = state, ts
            if online:
                up += end_ns - t
            uptime = up / span
        out.append({"robot_id": robot, "uptime": uptime, "reporting": minutes[robot] / total_min,
                    "frames": frames[robot], "min_battery": _round(battery.get(robot))})
    return out


def collect(influx: SyncInflux, shift: Shift, *, tz_offset_h: float = 8.0, points: int = DEFAULT_POINTS,
            scenarios: dict[str, Scenario] | None = None, on_step: Callable[[str], None] | None = None) -> ReportData:
    """The report's data. ``on_step`` is called after each step (a scenario's series, the
    alerts, the robots) with its name: ``len(scenarios) + 2`` calls in all."""
    step = on_step or (lambda _: None)
    bucket = _bucket_s(shift, points)
    data = ReportData(shift, tz_offset_h, bucket)
    for sc in (scenarios or SCENARIOS).values():
        series = scenario_series(influx, sc, shift.start_ns, shift.end_ns, bucket)
        data.scenarios.append({"id": sc.id, "name": sc.name, "kind": sc.kind.value, "group": sc.kind.group,
                               "meta": _channel_meta(sc), **series})
        step(sc.id)
    data.alerts = shift_alerts(influx, shift.start_ns, shift.end_ns)
    step("alerts")
    data.robots = robot_uptime(influx, shift.start_ns, shift.end_ns)
    step("robots")
    return data
