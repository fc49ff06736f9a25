/* Time-series charts with limit lines, alert marks and a play head, over uPlot.
 *
 * A classic script (not a module) so the shift report can inline it next to uPlot into one
 * self-contained file. Exposes window.MWCharts. Times are seconds since the epoch (uPlot's unit).
 */
(function (global) {
  "use strict";

  var COLORS = {
    critical: "#e53935", alarm: "#fb8c00", warning: "#fdd835", info: "#64b5f6",
    ok: "#43a047", stale: "#757575", line: "#e0e0e0", grid: "rgba(255,255,255,0.08)", axis: "#b0b0b0",
    playhead: "#80deea", band: "rgba(224,224,224,0.10)", minmax: "rgba(224,224,224,0.25)"
  };

  /* Times are shown in the browser's zone unless a fixed offset from UTC (hours) is set: the
   * shift report shows mine time wherever it is opened. */
  var tzOffsetH = null;
  function setTzOffset(h) { tzOffsetH = h; }
  function toDate(sec) {
    if (tzOffsetH == null) return new Date(sec * 1000);
    var d = new Date(sec * 1000);
    return new Date(d.getTime() + (tzOffsetH * 60 + d.getTimezoneOffset()) * 60000);
  }

  /* The page is dark; the printable shift report is light. */
  function setTheme(name) {
    if (name === "light") {
      COLORS.line = "#1b1f23"; COLORS.grid = "rgba(0,0,0,0.08)"; COLORS.axis = "#5f6368"; COLORS.playhead = "#00838f";
      COLORS.warning = "#f9a825"; COLORS.band = "rgba(0,0,0,0.10)"; COLORS.minmax = "rgba(0,0,0,0.25)";
    }
  }

  /* Limits in any of the shapes the API may send, as a flat list of
   * {severity, value, direction, restore, rule}. Accepted: the catalogue's Limit
   * ({direction, levels: [[sev, thr], ...] | {sev: thr} | [{severity, value}], restore, rule}). */
  function flattenLimits(limits) {
    var out = [];
    (limits || []).forEach(function (lim) {
      var levels = lim.levels || [];
      var pairs = [];
      if (Array.isArray(levels)) {
        levels.forEach(function (lv) {
          if (Array.isArray(lv)) pairs.push([lv[0], lv[1]]);
          else if (lv && typeof lv === "object") pairs.push([lv.severity || lv.level, lv.value != null ? lv.value : lv.threshold]);
        });
      } else {
        Object.keys(levels).forEach(function (k) { pairs.push([k, levels[k]]); });
      }
      pairs.forEach(function (p) {
        if (typeof p[1] === "number") {
          out.push({ severity: p[0], value: p[1], direction: lim.direction || "above", restore: lim.restore, rule: lim.rule || "" });
        }
      });
    });
    return out;
  }

  function yRange(limits, normal) {
    return function (u, min, max) {
      var lo = min, hi = max;
      if (lo == null || hi == null || !isFinite(lo) || !isFinite(hi)) {
        lo = normal ? normal[0] : 0; hi = normal ? normal[1] : 1;
      }
      limits.forEach(function (l) {
        if (l.value > hi) hi = l.value; if (l.value < lo) lo = l.value;
      });
      if (hi === lo) { hi = hi + 1; lo = lo - 1; }
      var pad = (hi - lo) * 0.08;
      // room under the lowest reading for the alert strip, above the highest for its label
      return [lo - pad - (hi - lo) * 0.1, hi + pad + (hi - lo) * 0.08];
    };
  }

  function drawLimits(u, limits) {
    var ctx = u.ctx, left = u.bbox.left, width = u.bbox.width;
    ctx.save();
    ctx.font = Math.round(12 * devicePixelRatio) + "px system-ui, sans-serif";
    ctx.textBaseline = "bottom";
    ctx.textAlign = "left";
    limits.forEach(function (l) {
      var y = Math.round(u.valToPos(l.value, "y", true)) + 0.5;
      if (y < u.bbox.top || y > u.bbox.top + u.bbox.height) return;
      ctx.strokeStyle = COLORS[l.severity] || COLORS.warning;
      ctx.lineWidth = 2 * devicePixelRatio;
      ctx.setLineDash(l.severity === "critical" ? [] : [8 * devicePixelRatio, 5 * devicePixelRatio]);
      ctx.beginPath(); ctx.moveTo(left, y); ctx.lineTo(left + width, y); ctx.stroke();
      ctx.fillStyle = ctx.strokeStyle;
      ctx.fillText(l.severity + " " + (l.direction === "below" ? "< " : "\u2265 ") + l.value, left + 6, y - 2);
    });
    ctx.restore();
  }

  /* Alert spans: a light shade behind the line (drawn before the series, so the line and its peak
   * stay readable) and a solid strip in the alert's colour along the bottom of the plot, in the
   * space kept free under the lowest reading, never over the line. */
  var STRIP = 6;
  function spanX(u, m) { // [x0, x1] in canvas px of an alert still active (t1 null) to the right edge; null if out of view
    var x0 = u.valToPos(m.t0, "x", true);
    var x1 = m.t1 != null ? u.valToPos(m.t1, "x", true) : u.bbox.left + u.bbox.width;
    return x1 < u.bbox.left || x0 > u.bbox.left + u.bbox.width ? null : [x0, x1];
  }
  function drawSpans(u, marks) {
    var ctx = u.ctx, top = u.bbox.top, height = u.bbox.height;
    ctx.save();
    (marks || []).forEach(function (m) {
      var x = spanX(u, m);
      if (!x) return;
      ctx.fillStyle = COLORS[m.severity] || COLORS.warning;
      ctx.globalAlpha = 0.16;
      if (x[1] - x[0] >= 2) ctx.fillRect(x[0], top, x[1] - x[0], height);
    });
    ctx.restore();
  }

  function drawMarks(u, marks, playhead) {
    var ctx = u.ctx, top = u.bbox.top, height = u.bbox.height, dpr = devicePixelRatio;
    var stripTop = top + height - STRIP * dpr;
    ctx.save();
    (marks || []).forEach(function (m) {
      var x = spanX(u, m);
      if (!x) return;
      ctx.fillStyle = COLORS[m.severity] || COLORS.warning;
      ctx.fillRect(x[0], stripTop, Math.max(3 * dpr, x[1] - x[0]), STRIP * dpr);
    });
    if (playhead != null) {
      var x = Math.round(u.valToPos(playhead, "x", true));
      ctx.fillStyle = COLORS.playhead;
      ctx.fillRect(x - dpr, top, 2 * dpr, height);
    }
    ctx.restore();
  }

  /* The highest bucket maximum in view: {i, t, v} or null. */
  function peakOf(u, range) {
    var ts = u.data[0], hi = u.data[3] || u.data[1], best = null;
    var x0 = range ? range[0] : u.scales.x.min, x1 = range ? range[1] : u.scales.x.max;
    if (x0 == null) x0 = -Infinity;
    if (x1 == null) x1 = Infinity;
    for (var i = 0; i < ts.length; i++) {
      var v = hi[i];
      if (v == null || ts[i] < x0 || ts[i] > x1) continue;
      if (best == null || v > best.v) best = { i: i, t: ts[i], v: v };
    }
    return best;
  }

  /* The peak: a small triangle above the point and its value printed beside it. */
  function drawPeak(u, peak, fmt) {
    if (!peak) return;
    var ctx = u.ctx, dpr = devicePixelRatio;
    var x = u.valToPos(peak.t, "x", true), y = u.valToPos(peak.v, "y", true);
    ctx.save();
    ctx.fillStyle = COLORS.line;
    ctx.beginPath(); ctx.moveTo(x, y - 3 * dpr); ctx.lineTo(x - 5 * dpr, y - 11 * dpr); ctx.lineTo(x + 5 * dpr, y - 11 * dpr); ctx.closePath(); ctx.fill();
    ctx.font = "600 " + Math.round(12 * dpr) + "px system-ui, sans-serif";
    ctx.textBaseline = "middle";
    var text = "max " + fmt(peak.v);
    var w = ctx.measureText(text).width;
    var right = x + 8 * dpr + w <= u.bbox.left + u.bbox.width;
    ctx.textAlign = right ? "left" : "right";
    ctx.fillText(text, right ? x + 8 * dpr : x - 8 * dpr, Math.max(u.bbox.top + 8 * dpr, y - 7 * dpr));
    ctx.restore();
  }

  /* A chart of one channel.
   * opts: {title, unit, limits (API shape), normal [lo, hi], height, xRange [t0, t1] (fixed window)} */
  function Chart(el, opts) {
    var self = this;
    this.el = el;
    this.limits = flattenLimits(opts.limits);
    this.marks = [];
    this.playhead = null;
    this.xRange = opts.xRange || null;
    this.maxPoints = opts.maxPoints || 20000;
    this.data = [[], [], [], []]; // time, value (mean of a bucket), bucket min, bucket max
    var width = Math.max(300, el.clientWidth || 600);
    var fmtNum = function (v) { return (+v).toFixed(opts.decimals != null ? opts.decimals : 2) + (opts.unit ? " " + opts.unit : ""); };
    var fmtVal = function (u, v) { return v == null ? "–" : fmtNum(v); };
    this.unit = opts.unit || "";
    this.showPeak = opts.peak !== false;
    var axis = { stroke: COLORS.axis, grid: { stroke: COLORS.grid }, ticks: { stroke: COLORS.grid },
                 font: "13px system-ui, sans-serif" };
    // the time axis in 24-hour mine time, as every other time on the page and in the report
    // (uPlot's tick format table: step in seconds, first tick, then the labels when the date changes)
    var timeTicks = [
      [3600 * 24 * 365, "{YYYY}", null, null, null, null, null, null, 1],
      [3600 * 24 * 28, "{MMM}", "\n{YYYY}", null, null, null, null, null, 1],
      [3600 * 24, "{MM}-{DD}", "\n{YYYY}", null, null, null, null, null, 1],
      [3600, "{HH}:{mm}", "\n{YYYY}-{MM}-{DD}", null, "\n{MM}-{DD}", null, null, null, 1],
      [60, "{HH}:{mm}", "\n{YYYY}-{MM}-{DD}", null, "\n{MM}-{DD}", null, null, null, 1],
      [1, ":{ss}", "\n{YYYY}-{MM}-{DD} {HH}:{mm}", null, "\n{MM}-{DD} {HH}:{mm}", null, "\n{HH}:{mm}", null, 1],
      [0.001, ":{ss}.{fff}", "\n{YYYY}-{MM}-{DD} {HH}:{mm}", null, "\n{MM}-{DD} {HH}:{mm}", null, "\n{HH}:{mm}", null, 1]
    ];
    this.u = new global.uPlot({
      title: opts.title || "",
      width: width,
      height: opts.height || 200,
      tzDate: toDate,
      legend: { show: opts.legend !== false, live: true },
      cursor: { drag: { x: true, y: false } },
      scales: {
        x: { time: true, range: function (u, min, max) { return self.xRange ? self.xRange.slice() : [min, max]; } },
        y: { range: yRange(this.limits, opts.normal) }
      },
      axes: [Object.assign({ values: timeTicks }, axis),
             // the y axis names its unit (a bare number is no reading)
             Object.assign({ size: 60, label: opts.unit || "", labelSize: opts.unit ? 22 : 0, labelFont: "600 13px system-ui, sans-serif",
                             values: function (u, vals) { return vals.map(function (v) { return +v.toFixed(3); }); } }, axis)],
      series: [{ value: "{YYYY}-{MM}-{DD} {HH}:{mm}:{ss}" }, { label: opts.label || opts.title || "value", stroke: COLORS.line, width: 2, value: fmtVal, spanGaps: false,
                     points: { size: 6, fill: COLORS.line } },
               { label: "min", stroke: COLORS.minmax, width: 1, value: fmtVal, points: { show: false } },
               { label: "max", stroke: COLORS.minmax, width: 1, value: fmtVal, points: { show: false } }],
      bands: [{ series: [3, 2], fill: COLORS.band }],
      hooks: {
        drawClear: [function (u) { drawSpans(u, self.marks); }],
        draw: [function (u) {
          drawLimits(u, self.limits);
          drawMarks(u, self.marks, self.playhead);
          var peak = self.showPeak ? peakOf(u) : null;
          drawPeak(u, peak, fmtNum);
          self.describe(u, peak);
        }]
      }
    }, this.data, el);
    if (global.ResizeObserver) {
      this._ro = new ResizeObserver(function () {
        var w = el.clientWidth; if (w > 0 && Math.abs(w - self.u.width) > 4) self.u.setSize({ width: w, height: self.u.height });
      });
      this._ro.observe(el);
    }
  }

  /* What the canvas shows, written on the plot's element for people's tools and the tests: the
   * time axis labels as drawn, the y axis unit, the peak (value, and its height in CSS px from the
   * plotting area's top), the lowest reading's height, and the top of the alert strips. */
  Chart.prototype.describe = function (u, peak) {
    var d = this.el.dataset, dpr = devicePixelRatio;
    d.xTicks = (u.axes[0]._values || []).join("|");
    d.yUnit = this.unit;
    d.yLabel = u.axes[1].label || "";
    if (peak) {
      d.peak = String(peak.v); d.peakT = String(peak.t);
      d.peakY = String(u.valToPos(peak.v, "y"));
      var lo = u.data[2] || u.data[1], lowest = null;
      for (var i = 0; i < lo.length; i++) if (lo[i] != null && (lowest == null || lo[i] < lowest)) lowest = lo[i];
      d.lowestY = String(u.valToPos(lowest, "y"));
    } else { delete d.peak; delete d.peakT; delete d.peakY; delete d.lowestY; }
    d.markTop = String(u.bbox.height / dpr - STRIP); // all heights from the plotting area's top
    d.marks = String(this.marks.length);
  };

  /* The highest bucket maximum in view, {t, v}, or null. */
  Chart.prototype.peak = function () { return peakOf(this.u, this.xRange); };

  /* Replace the data; lo/hi (bucket min and max of downsampled history) default to the values. */
  Chart.prototype.setData = function (ts, vals, lo, hi) {
    this.data = [ts.slice(), vals.slice(), (lo || vals).slice(), (hi || vals).slice()];
    this.u.setData(this.data, true);
  };

  /* Append one point (time order is kept: a late point is inserted in place). */
  Chart.prototype.append = function (t, v) {
    var d = this.data, ts = d[0], n = ts.length, i = n;
    if (n && t <= ts[n - 1]) {
      while (i > 0 && ts[i - 1] > t) i--;
      if (i > 0 && ts[i - 1] === t) { d[1][i - 1] = d[2][i - 1] = d[3][i - 1] = v; this.u.setData(d, true); return; }
    }
    for (var k = 0; k < 4; k++) d[k].splice(i, 0, k === 0 ? t : v);
    if (ts.length > this.maxPoints) { var extra = ts.length - this.maxPoints; for (k = 0; k < 4; k++) d[k].splice(0, extra); }
    this.u.setData(d, true);
  };

  /* Drop points older than t (a sliding live window). */
  Chart.prototype.trimBefore = function (t) {
    var ts = this.data[0], i = 0;
    while (i < ts.length && ts[i] < t) i++;
    if (i) for (var k = 0; k < 4; k++) this.data[k].splice(0, i);
  };

  Chart.prototype.setWindow = function (t0, t1) { this.xRange = [t0, t1]; this.u.setScale("x", { min: t0, max: t1 }); };
  Chart.prototype.setMarks = function (marks) { this.marks = marks || []; this.u.redraw(false, false); };
  Chart.prototype.setPlayhead = function (t) { this.playhead = t; this.u.redraw(false, false); };
  Chart.prototype.destroy = function () { if (this._ro) this._ro.disconnect(); this.u.destroy(); };

  /* Alerts as bars on a time axis: one lane per alert, coloured by severity, with text.
   * alerts: [{t0, t1 (null = still active), severity, label, id}] ; t0/t1 of the window in s. */
  function timeline(el, alerts, w0, w1, playhead) {
    var span = Math.max(1e-9, w1 - w0);
    el.textContent = "";
    el.classList.add("mw-timeline");
    var axis = document.createElement("div");
    axis.className = "mw-tl-axis";
    for (var k = 0; k <= 4; k++) {
      var tick = document.createElement("span");
      tick.style.left = (k * 25) + "%";
      tick.textContent = fmtClock(w0 + span * k / 4);
      axis.appendChild(tick);
    }
    el.appendChild(axis);
    alerts.slice().sort(function (a, b) { return a.t0 - b.t0; }).forEach(function (a) {
      var lane = document.createElement("div");
      lane.className = "mw-tl-lane";
      var bar = document.createElement("div");
      bar.className = "mw-tl-bar sev-" + a.severity;
      var l = Math.max(0, (a.t0 - w0) / span), r = Math.min(1, ((a.t1 != null ? a.t1 : w1) - w0) / span);
      bar.style.left = (l * 100) + "%";
      bar.style.width = Math.max(0.4, (r - l) * 100) + "%";
      bar.title = a.label;
      if (a.id) bar.setAttribute("data-alert-id", a.id);
      var text = document.createElement("span");
      text.className = "mw-tl-text";
      text.textContent = a.severity.toUpperCase() + " " + a.label;
      lane.appendChild(bar); lane.appendChild(text);
      el.appendChild(lane);
    });
    if (playhead != null) {
      var ph = document.createElement("div");
      ph.className = "mw-tl-playhead";
      ph.style.left = Math.min(100, Math.max(0, (playhead - w0) / span * 100)) + "%";
      el.appendChild(ph);
    }
  }

  function pad2(n) { return (n < 10 ? "0" : "") + n; }
  function fmtClock(sec) {
    var d = toDate(sec);
    return pad2(d.getHours()) + ":" + pad2(d.getMinutes()) + ":" + pad2(d.getSeconds());
  }

  global.MWCharts = { Chart: Chart, timeline: timeline, flattenLimits: flattenLimits, COLORS: COLORS, setTheme: setTheme, setTzOffset: setTzOffset, toDate: toDate, tzOffset: function () { return tzOffsetH; },
                      fmtClock: fmtClock };
})(window);
