"""The shift report: one self-contained HTML file an engineer can open anywhere and share.

``minewatch report --shift 2026-11-27:night --out report.html`` reads InfluxDB directly (the API
need not run): each scenario's channels downsampled over the shift (bucket mean, min and max, so
a short methane peak survives the downsampling), the alerts whose life overlaps the shift, and
robot status for uptime. The file inlines the charting library, the chart code and the data: it
needs no network and no server to open.
"""

from __future__ import annotations

import asyncio
import html
import json
import math
import sys
import time
from collections import Counter, defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Annotated, Any

import click
from fastapi import APIRouter, HTTPException, Query
from fastapi.responses import HTMLResponse

from api.alertbook import AlertBook, event_from_row
from api.deps import Reader, StateDep
from api.params import SHIFT_PATTERN
from api.schemas import errors
from minewatch.catalogue import SCENARIOS, Scenario
from minewatch.influx import InfluxError, SyncInflux
from minewatch.schema import SEVERITY_RANK, AlertEvent, AlertState, Severity
from minewatch.shifts import Shift, ShiftCalendar, calendar_from_env
from minewatch.storage import DOWNSAMPLED, LONG_RP

__all__ = ["report", "router", "ReportData", "collect", "render", "write_report", "DEFAULT_POINTS"]

STATIC = Path(__file__).resolve().parent / "static"
_NS = 1_000_000_000
# Points per chart: 8 h in 80 s buckets. Each bucket keeps its min and max as well as its mean.
DEFAULT_POINTS = 360
# Buckets of the long-term 5-minute statistics (minewatch.storage).
LONG_BUCKET_S = 300
# Alerts raised up to this long before the shift and still active in it are part of its story.
ALERT_LOOKBACK_NS = 24 * 3600 * _NS
SEVERITIES = [s.value for s in sorted(Severity, key=SEVERITY_RANK.__getitem__)]
KINDS = ["gas", "ventilation", "vibration", "sensor-health", "robot-health"]


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
    out = []
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


# ------------------------------------------------------------------------------------ writing

def _local(ns: int, tz_offset_h: float, fmt: str = "%Y-%m-%d %H:%M") -> str:
    from datetime import timedelta

    return datetime.fromtimestamp(ns / _NS, tz=timezone(timedelta(hours=tz_offset_h))).strftime(fmt)


def _pct(x: float | None) -> str:
    return "–" if x is None else f"{100 * x:.1f} %"


def _table(head: list[str], rows: list[list[str]], cls: str = "") -> str:
    th = "".join(f"<th>{html.escape(h)}</th>" for h in head)
    body = "".join("<tr>" + "".join(f"<td>{c}</td>" for c in r) + "</tr>" for r in rows)
    return f'<table class="{cls}"><thead><tr>{th}</tr></thead><tbody>{body}</tbody></table>'


def _counts_table(data: ReportData) -> str:
    counts = data.counts()
    sevs = [s for s in SEVERITIES if s != "info"] + (["info"] if any("info" in v for v in counts.values()) else [])
    kinds = [k for k in KINDS if k in counts] + sorted(k for k in counts if k not in KINDS)
    rows = []
    for k in kinds:
        rows.append([html.escape(k)] + [str(counts[k].get(s, 0)) for s in sevs] + [f"<b>{sum(counts[k].values())}</b>"])
    rows.append(["<b>all</b>"] + [f"<b>{sum(counts[k].get(s, 0) for k in kinds)}</b>" for s in sevs]
                + [f"<b>{len(data.alerts)}</b>"])
    return _table(["kind"] + sevs + ["total"], rows, "counts")


def _alerts_table(data: ReportData) -> str:
    if not data.alerts:
        return '<p class="muted">No alerts in this shift.</p>'
    rows = []
    for a in data.alerts:
        end = a["cleared_ts"]
        dur = "active at end" if end is None or end >= data.shift.end_ns else f"{(end - a['first_ts']) / 60 / _NS:.1f} min"
        value = "" if a["value"] is None else f"{a['value']:g} {html.escape(a['unit'])}"
        limit = "" if a["limit"] is None else f"{a['limit']:g} {html.escape(a['unit'])}"
        ack = "" if not a["operator"] else f"{html.escape(a['operator'])} {_local(a['ack_ts'], data.tz_offset_h, '%H:%M:%S')}"
        rows.append([_local(a["first_ts"], data.tz_offset_h, "%H:%M:%S"),
                     f'<span class="sev sev-{a["severity"]}">{a["severity"].upper()}</span>',
                     html.escape(a["scenario_id"]), html.escape(a["channel"] or a["kind"]), value, limit, dur, ack,
                     html.escape(a["message"])])
    return _table(["raised", "severity", "scenario", "channel", "worst", "limit", "duration", "acknowledged",
                   "message"], rows, "alerts")


def _robots_table(data: ReportData) -> str:
    if not data.robots:
        return '<p class="muted">No robot reported in this shift.</p>'
    rows = [[html.escape(r["robot_id"]), _pct(r["uptime"]), _pct(r["reporting"]), str(r["frames"]),
             "–" if r["min_battery"] is None else f"{r['min_battery']:.0f} %"] for r in data.robots]
    return _table(["robot", "online (status)", "sending data (minutes)", "frames", "lowest battery"], rows, "robots")


def _inline_script(text: str) -> str:
    return text.replace("</script", "<\\/script")


def render(data: ReportData) -> str:
    s = data.shift
    counts = Counter(a["severity"] for a in data.alerts)
    tiles = "".join(
        f'<div class="stat sev-{k}"><b>{counts.get(k, 0)}</b><span>{k}</span></div>' for k in ("critical", "alarm", "warning"))
    online = [r["uptime"] for r in data.robots if r["uptime"] is not None]
    tiles += f'<div class="stat"><b>{len(data.alerts)}</b><span>alerts</span></div>'
    tiles += f'<div class="stat"><b>{_pct(sum(online) / len(online)) if online else "–"}</b><span>robot uptime (mean)</span></div>'
    payload = {"shift": s.id, "tz_offset_h": data.tz_offset_h, "start": s.start_ns // _NS, "end": s.end_ns // _NS, "interval_s": data.interval_s,
               "scenarios": data.scenarios, "alerts": data.alerts}
    blob = json.dumps(payload, separators=(",", ":"), allow_nan=False).replace("</", "<\\/")
    title = f"Shift report {s.id}"
    tz = f"UTC{data.tz_offset_h:+g}"
    return _TEMPLATE.format(
        title=html.escape(title),
        uplot_css=(STATIC / "vendor/uplot/uPlot.min.css").read_text(),
        css=_CSS,
        shift_line=html.escape(f"{s.id} ({s.kind}): {_local(s.start_ns, data.tz_offset_h)} – "
                               f"{_local(s.end_ns, data.tz_offset_h)} mine time ({tz}); "
                               f"{s.start.strftime('%Y-%m-%d %H:%M')} – {s.end.strftime('%Y-%m-%d %H:%M')} UTC"),
        generated=html.escape(_local(data.generated_ns, data.tz_offset_h, "%Y-%m-%d %H:%M:%S") + f" ({tz})"),
        interval=data.interval_s, tz=tz, tiles=tiles, counts=_counts_table(data), alerts=_alerts_table(data),
        robots=_robots_table(data), data=blob,
        uplot_js=_inline_script((STATIC / "vendor/uplot/uPlot.iife.min.js").read_text()),
        uplot_license=html.escape((STATIC / "vendor/uplot/LICENSE").read_text()),
        charts_js=_inline_script((STATIC / "js/charts.js").read_text()),
        report_js=_inline_script(_JS),
    )


def write_report(influx: SyncInflux, shift: Shift, out: Path, *, tz_offset_h: float = 8.0,
                 points: int = DEFAULT_POINTS, on_step: Callable[[str], None] | None = None) -> ReportData:
    data = collect(influx, shift, tz_offset_h=tz_offset_h, points=points, on_step=on_step)
    out.write_text(render(data), encoding="utf-8")
    return data


_CSS = """
:root { --critical:#c62828; --alarm:#ef6c00; --warning:#f9a825; --info:#1565c0; --ok:#2e7d32; --stale:#757575;
        --line:#d0d4d8; --muted:#5f6368; --sev: var(--stale); --sev-fg:#fff; }
body { font-family: system-ui, "Segoe UI", Roboto, "Noto Sans", sans-serif; margin: 1.5rem auto; max-width: 1200px;
       color: #1b1f23; padding: 0 1rem; }
h1 { margin: 0 0 .2rem; } h2 { margin: 1.8rem 0 .6rem; border-bottom: 2px solid var(--line); padding-bottom: .2rem; }
h3 { margin: 1.2rem 0 .4rem; }
.muted { color: var(--muted); }
.stats { display: flex; gap: .8rem; flex-wrap: wrap; margin: 1rem 0; }
.stat { border: 1px solid var(--line); border-left: 8px solid var(--sev); border-radius: 8px; padding: .5rem .9rem; min-width: 8rem; }
.stat b { display: block; font-size: 1.7rem; } .stat span { color: var(--muted); }
.sev-critical { --sev: var(--critical); } .sev-alarm { --sev: var(--alarm); } .sev-warning { --sev: var(--warning); --sev-fg:#111; }
.sev-info { --sev: var(--info); }
.sev { background: var(--sev); color: var(--sev-fg); padding: 0 .4rem; border-radius: 4px; font-weight: 700; font-size: .85rem; }
table { border-collapse: collapse; width: 100%; font-size: .9rem; }
th, td { text-align: left; padding: .3rem .45rem; border-bottom: 1px solid var(--line); vertical-align: top; }
th { background: #f3f4f6; } table.counts td, table.robots td { font-variant-numeric: tabular-nums; }
table.counts { width: auto; } table.counts td:not(:first-child) { text-align: right; }
.charts { display: grid; grid-template-columns: repeat(auto-fill, minmax(540px, 1fr)); gap: .6rem; }
.chart { border: 1px solid var(--line); border-radius: 8px; padding: .3rem .4rem; break-inside: avoid; }
.chart-head { font-weight: 650; font-size: .95rem; }
.u-title { display: none; } .u-legend { font-size: .78rem; }
.mw-timeline { position: relative; display: flex; flex-direction: column; gap: 3px; padding-top: 1.4rem; }
.mw-tl-axis { position: absolute; top: 0; left: 0; right: 0; height: 1.2rem; border-bottom: 1px solid var(--line); }
.mw-tl-axis span { position: absolute; transform: translateX(-50%); font-size: .72rem; color: var(--muted); }
.mw-tl-axis span:first-child { transform: none; } .mw-tl-axis span:last-child { transform: translateX(-100%); }
.mw-tl-lane { position: relative; height: 1.3rem; background: #f6f7f8; }
.mw-tl-bar { position: absolute; top: 2px; bottom: 2px; border-radius: 3px; background: var(--sev); min-width: 3px; }
.mw-tl-text { position: absolute; left: 4px; top: 1px; font-size: .75rem; white-space: nowrap; text-shadow: 0 0 3px #fff, 0 0 3px #fff; }
.chart-head .peak { float: right; font-weight: 700; font-variant-numeric: tabular-nums; }
.nodata { color: var(--muted); font-style: italic; }
details.licence { margin-top: 2rem; color: var(--muted); font-size: .8rem; } details.licence pre { white-space: pre-wrap; }
@media print { .charts { grid-template-columns: 1fr 1fr; } .chart { width: auto; } }
"""

_JS = """
(function () {
  "use strict";
  var data = JSON.parse(document.getElementById("mw-data").textContent);
  var C = window.MWCharts;
  C.setTheme("light");
  C.setTzOffset(data.tz_offset_h);
  var bars = data.alerts.map(function (a) {
    return { id: a.alert_id, t0: a.first_ts / 1e9, t1: a.cleared_ts != null ? a.cleared_ts / 1e9 : null,
             severity: a.severity, label: a.scenario_id + " " + (a.channel || a.kind), channel: a.channel, scenario: a.scenario_id };
  });
  C.timeline(document.getElementById("timeline"), bars, data.start, data.end);
  var GROUPS = ["faces", "headings", "fans", "belts", "pumps", "substations", "returns", "other"];
  var root = document.getElementById("scenarios");
  var drawn = 0;
  GROUPS.forEach(function (g) {
    var list = data.scenarios.filter(function (s) { return s.group === g; });
    if (!list.length) return;
    var h = document.createElement("h3"); h.textContent = g.charAt(0).toUpperCase() + g.slice(1); root.appendChild(h);
    list.forEach(function (s) {
      var sec = document.createElement("section");
      sec.className = "scenario"; sec.setAttribute("data-scenario-id", s.id);
      var title = document.createElement("h4"); title.textContent = s.id + " \\u00b7 " + s.name; sec.appendChild(title);
      if (s.source) {
        var src = document.createElement("p"); src.className = "muted";
        src.textContent = "From the 5-minute statistics (" + s.source + "): the raw readings of this shift are no longer kept.";
        sec.appendChild(src);
      }
      var names = Object.keys(s.channels);
      if (!names.length) {
        var p = document.createElement("p"); p.className = "nodata"; p.textContent = "No readings recorded in this shift.";
        sec.appendChild(p); root.appendChild(sec); return;
      }
      var grid = document.createElement("div"); grid.className = "charts"; sec.appendChild(grid);
      root.appendChild(sec);
      names.forEach(function (ch) {
        var info = s.meta[ch] || {};
        var box = document.createElement("div"); box.className = "chart"; box.setAttribute("data-channel", ch);
        var head = document.createElement("div"); head.className = "chart-head";
        head.textContent = ch + " \\u00b7 " + (info.label || ch) + (info.unit ? " (" + info.unit + ")" : "");
        var plot = document.createElement("div"); box.appendChild(head); box.appendChild(plot); grid.appendChild(box);
        var chart = new C.Chart(plot, { label: ch, unit: info.unit, limits: info.limits, normal: info.normal,
                                        height: 170, xRange: [data.start, data.end] });
        var v = s.channels[ch];
        chart.setData(s.t, v[0], v[1], v[2]);
        // the highest reading of the shift, printed: a short peak is the point of the chart
        var pk = chart.peak();
        if (pk) {
          var peak = document.createElement("span"); peak.className = "peak";
          peak.setAttribute("data-peak", String(pk.v));
          peak.textContent = "max " + (+pk.v).toFixed(2) + (info.unit ? " " + info.unit : "") + " at " + C.fmtClock(pk.t).slice(0, 5);
          head.appendChild(peak);
        }
        chart.setMarks(bars.filter(function (b) { return b.scenario === s.id && b.channel === ch; }).map(function (b) {
          return { t0: b.t0, t1: b.t1, severity: b.severity };
        }));
        drawn++;
      });
    });
  });
  document.body.setAttribute("data-charts", String(drawn));
  document.body.setAttribute("data-ready", "true");
})();
"""

_TEMPLATE = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{title}</title>
<style>{uplot_css}</style>
<style>{css}</style>
</head>
<body>
<header>
<h1>{title}</h1>
<p>{shift_line}</p>
<p class="muted">Generated {generated} by minewatch. Charts show each channel's mean per {interval} s bucket,
with the bucket's minimum and maximum as a band, times in 24-hour mine time ({tz}); limits are drawn as lines, alerts as
shaded spans with a strip in their colour under the line, and each chart's highest reading is marked and printed.</p>
</header>
<div class="stats">{tiles}</div>
<h2>Alerts by kind and severity</h2>
<p class="muted">Each alert counted once, at the highest severity it reached.</p>
{counts}
<h2>Alert timeline</h2>
<div id="timeline"></div>
{alerts}
<h2>Robots</h2>
{robots}
<h2>Scenarios</h2>
<div id="scenarios"></div>
<details class="licence"><summary>uPlot licence (charts)</summary><pre>{uplot_license}</pre></details>
<script type="application/json" id="mw-data">{data}</script>
<script>{uplot_js}</script>
<script>{charts_js}</script>
<script>{report_js}</script>
</body>
</html>
"""


# ------------------------------------------------------------------------------------ API route

router = APIRouter(tags=["shifts"])


@router.get("/report", response_class=HTMLResponse, summary="Shift report (one self-contained HTML file)",
            responses=errors(404, 503, streaming=True))
async def shift_report(
    state: StateDep, _: Reader,
    shift: Annotated[str, Query(pattern=SHIFT_PATTERN, description="YYYY-MM-DD:NAME (a shift of the calendar)",
                                examples=["2026-11-27:night"])],
    points: Annotated[int, Query(ge=10, le=5000, description="points per chart")] = DEFAULT_POINTS,
) -> HTMLResponse:
    """The report ``minewatch report`` writes, for the shift named, served for the browser (the
    replay view links here). Reads InfluxDB like the command does."""
    try:
        sh = state.calendar.parse(shift)
    except (ValueError, OverflowError) as exc:
        raise HTTPException(404, str(exc)) from None
    settings = state.settings
    tz = state.calendar.tz.utcoffset(None).total_seconds() / 3600

    def build() -> str:
        influx = SyncInflux(settings.influx_url, settings.influx_db, user=settings.influx_user,
                            password=settings.influx_password)
        try:
            return render(collect(influx, sh, tz_offset_h=tz, points=points))
        finally:
            influx.close()

    body = await asyncio.to_thread(build)
    name = f"minewatch-report-{sh.id.replace(':', '-')}.html"
    return HTMLResponse(body, headers={"Content-Disposition": f'inline; filename="{name}"'})


# ------------------------------------------------------------------------------------ command


@click.command("report")
@click.option("--shift", "shift_id", required=True, metavar="YYYY-MM-DD:NAME",
              help="The shift to report, named by the date it starts and its name (e.g. 2026-11-27:night); "
                   "shift times follow MINEWATCH_SHIFTS and MINEWATCH_TZ_OFFSET.")
@click.option("--out", "out", type=click.Path(dir_okay=False, writable=True, path_type=Path), required=True,
              help="The HTML file to write (self-contained: open it in any browser, no server needed).")
@click.option("--influx-url", default=None,
              help="InfluxDB 1.x HTTP URL [env MINEWATCH_INFLUX_URL; default http://127.0.0.1:8086].")
@click.option("--influx-db", default=None, help="Database [env MINEWATCH_INFLUX_DB; default minewatch].")
@click.option("--points", type=click.IntRange(10, 5000), default=DEFAULT_POINTS, show_default=True,
              help="Points per chart (the shift is cut into this many buckets).")
@click.option("--progress/--quiet", "progress", default=None,
              help="A progress bar on standard error, a step per scenario [default: when standard error is a terminal].")
def report(shift_id: str, out: Path, influx_url: str | None, influx_db: str | None, points: int,
           progress: bool | None) -> None:
    """Write a self-contained HTML report of a shift: per-scenario charts of every channel with
    its limits, the alerts on a timeline and in a table, counts by kind and severity, and each
    robot's uptime. Reads InfluxDB directly; the API need not be running."""
    import httpx

    from minewatch.options import settings_from

    calendar: ShiftCalendar = calendar_from_env()
    try:
        shift = calendar.parse(shift_id)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--shift") from None
    settings = settings_from(influx_url=influx_url, influx_db=influx_db)
    influx = SyncInflux(settings.influx_url, settings.influx_db, user=settings.influx_user,
                        password=settings.influx_password)
    show = progress if progress is not None else sys.stderr.isatty()
    bar = click.progressbar(length=len(SCENARIOS) + 2, label=f"report {shift.id}", file=sys.stderr,
                            item_show_func=lambda name: name or "") if show else None
    try:
        if bar is not None:
            bar.__enter__()
        data = write_report(influx, shift, out, tz_offset_h=calendar.tz.utcoffset(None).total_seconds() / 3600,
                            points=points, on_step=(lambda name: bar.update(1, name)) if bar is not None else None)
    except httpx.HTTPError as exc:
        raise click.ClickException(f"InfluxDB at {settings.influx_url} is unreachable: {exc}") from None
    except InfluxError as exc:
        raise click.ClickException(str(exc)) from None
    except OSError as exc:
        raise click.ClickException(f"cannot write {out}: {exc.strerror or exc}") from None
    finally:
        if bar is not None:
            bar.__exit__(None, None, None)
        influx.close()
    with_data = sum(1 for s in data.scenarios if s["channels"])
    click.echo(f"wrote {out}: shift {shift.id}, {with_data}/{len(data.scenarios)} scenarios with data, "
               f"{len(data.alerts)} alerts, {len(data.robots)} robots")
