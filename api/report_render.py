"""The shift report as one self-contained HTML file an engineer can open anywhere and share: it
inlines the charting library, the chart code (``static/js/charts.js``), the report's own script and
style (``static/js/report.js``, ``static/report.css``) and the data (:mod:`api.report`), so it needs no
network and no server to open.
"""

from __future__ import annotations

import html
import json
from collections import Counter
from collections.abc import Callable
from datetime import datetime, timezone
from pathlib import Path

from api.report import DEFAULT_POINTS, ReportData, collect
from api.ui import GROUPS, SEVERITIES
from minewatch.influx import SyncInflux
from minewatch.shifts import Shift

__all__ = ["render", "write_report"]

STATIC = Path(__file__).resolve().parent / "static"
_NS = 1_000_000_000
KINDS = ["gas", "ventilation", "vibration", "sensor-health", "robot-health"]


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
        over = end is None or end >= data.shift.end_ns
        dur = "active at end" if over else f"{(end - a['first_ts']) / 60 / _NS:.1f} min"
        value = "" if a["value"] is None else f"{a['value']:g} {html.escape(a['unit'])}"
        limit = "" if a["limit"] is None else f"{a['limit']:g} {html.escape(a['unit'])}"
        ack = ("" if not a["operator"]
               else f"{html.escape(a['operator'])} {_local(a['ack_ts'], data.tz_offset_h, '%H:%M:%S')}")
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
    tiles = "".join(f'<div class="stat sev-{k}"><b>{counts.get(k, 0)}</b><span>{k}</span></div>'
                    for k in reversed(SEVERITIES) if k != "info")
    online = [r["uptime"] for r in data.robots if r["uptime"] is not None]
    tiles += f'<div class="stat"><b>{len(data.alerts)}</b><span>alerts</span></div>'
    uptime = _pct(sum(online) / len(online)) if online else "–"
    tiles += f'<div class="stat"><b>{uptime}</b><span>robot uptime (mean)</span></div>'
    payload = {"shift": s.id, "tz_offset_h": data.tz_offset_h, "start": s.start_ns // _NS, "end": s.end_ns // _NS,
               "interval_s": data.interval_s, "groups": GROUPS, "scenarios": data.scenarios, "alerts": data.alerts}
    blob = json.dumps(payload, separators=(",", ":"), allow_nan=False).replace("</", "<\\/")
    title = f"Shift report {s.id}"
    tz = f"UTC{data.tz_offset_h:+g}"
    return _TEMPLATE.format(
        title=html.escape(title),
        uplot_css=(STATIC / "vendor/uplot/uPlot.min.css").read_text(),
        css=(STATIC / "report.css").read_text(),
        shift_line=html.escape(f"{s.id} ({s.kind}): {_local(s.start_ns, data.tz_offset_h)} – "
                               f"{_local(s.end_ns, data.tz_offset_h)} mine time ({tz}); "
                               f"{s.start.strftime('%Y-%m-%d %H:%M')} – {s.end.strftime('%Y-%m-%d %H:%M')} UTC"),
        generated=html.escape(_local(data.generated_ns, data.tz_offset_h, "%Y-%m-%d %H:%M:%S") + f" ({tz})"),
        interval=data.interval_s, tz=tz, tiles=tiles, counts=_counts_table(data), alerts=_alerts_table(data),
        robots=_robots_table(data), data=blob,
        uplot_js=_inline_script((STATIC / "vendor/uplot/uPlot.iife.min.js").read_text()),
        uplot_license=html.escape((STATIC / "vendor/uplot/LICENSE").read_text()),
        charts_js=_inline_script((STATIC / "js/charts.js").read_text()),
        report_js=_inline_script((STATIC / "js/report.js").read_text()),
    )


def write_report(influx: SyncInflux, shift: Shift, out: Path, *, tz_offset_h: float = 8.0,
                 points: int = DEFAULT_POINTS, on_step: Callable[[str], None] | None = None) -> ReportData:
    data = collect(influx, shift, tz_offset_h=tz_offset_h, points=points, on_step=on_step)
    out.write_text(render(data), encoding="utf-8")
    return data


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
