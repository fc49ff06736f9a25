/* The shift report's page: the alert timeline and each scenario's charts, drawn from the data the
 * report inlines (api/report_render.py) with the charts of charts.js. A classic script: the report
 * inlines it into one self-contained file.
 */
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
  var GROUPS = data.groups;  // the board groups in order, from the server (api/ui.py)
  var root = document.getElementById("scenarios");
  var drawn = 0;
  GROUPS.forEach(function (g) {
    var list = data.scenarios.filter(function (s) { return s.group === g; });
    if (!list.length) return;
    var h = document.createElement("h3"); h.textContent = g.charAt(0).toUpperCase() + g.slice(1); root.appendChild(h);
    list.forEach(function (s) {
      var sec = document.createElement("section");
      sec.className = "scenario"; sec.setAttribute("data-scenario-id", s.id);
      var title = document.createElement("h4"); title.textContent = s.id + " \u00b7 " + s.name; sec.appendChild(title);
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
        head.textContent = ch + " \u00b7 " + (info.label || ch) + (info.unit ? " (" + info.unit + ")" : "");
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
