// Replay for engineers: pick a shift or a window and a scenario, then play the recorded
// readings at a chosen speed (play, pause, seek) with the recorded alerts on a timeline.

import { api, listOf, stream } from "./api.js";
import { state, nsToSec, rank } from "./store.js";
import { el, fmtTime, fmtValue, shortLabel, SEV_TEXT, SEV_ICON, fromMineLocal, toMineLocal, parseDay, addDays } from "./format.js";
import { loadDetail, fetchHistory, buildCharts, lastValue } from "./scenario.js";

const POINTS = 1500;
let toast = () => {};
let rp = null; // {scenario, t0, t1, hist, alerts, charts, playhead, playing, speed, raf, last}
const $ = (id) => document.getElementById(id);


function shiftBounds(s) {
  const toSec = (x) => (typeof x === "number" ? (x > 1e14 ? x / 1e9 : x) : Date.parse(x) / 1000);
  return [toSec(s.start ?? s.start_ns), toSec(s.end ?? s.end_ns)];
}

// The mine-local calendar day ("YYYY-MM-DD") of a time in seconds.
const mineDay = (sec) => toMineLocal(sec).slice(0, 10);

// #rp-day holds an ISO day, typed (the browser's date picker would show its language's format):
// true when it does; otherwise the field is marked invalid and says what it takes.
function checkDay() {
  const input = $("rp-day");
  const day = parseDay(input.value);
  const why = day ? "" : `"${input.value.trim()}" is not a day: type it as YYYY-MM-DD, e.g. 2026-11-28`;
  if (day) input.value = day;
  input.setCustomValidity(why);
  $("rp-day-error").textContent = why;
  $("rp-day-error").hidden = !why;
  input.dataset.valid = String(Boolean(day));
  return Boolean(day);
}

// ‹ › and the arrow keys step the day (the field keeps the caret for typing otherwise).
function stepDay(n) {
  const input = $("rp-day");
  if (!checkDay()) return;
  input.value = addDays(input.value, n);
  loadShifts();
}

// The shifts of the day in #rp-day (mine time): any date can be picked, so a shift of any
// day can be replayed. Without a day, the day of the shift that ended last.
async function loadShifts(wanted = null) {
  const sel = $("rp-shift");
  const dayInput = $("rp-day");
  if (wanted) dayInput.value = wanted.slice(0, 10);
  if (dayInput.value && !checkDay()) return;
  if (!dayInput.value) {
    try {
      const cur = await api("/shifts/current");
      dayInput.value = mineDay(shiftBounds(cur)[0] - 1);
    } catch (e) {
      dayInput.value = mineDay(Date.now() / 1000);
    }
  }
  const from = fromMineLocal(`${dayInput.value}T00:00:00`);
  let shifts = [];
  if (Number.isFinite(from)) {
    try {
      const q = { from: new Date(from * 1000).toISOString(), to: new Date((from + 86400) * 1000).toISOString() };
      shifts = listOf(await api("/shifts", { query: q })).filter((s) => s.day === dayInput.value);
    } catch (e) {
      toast(`Shifts not available: ${e.message}`);
    }
  }
  shifts.sort((a, b) => shiftBounds(a)[0] - shiftBounds(b)[0]);
  const keep = wanted ?? sel.value;
  sel.replaceChildren(el("option", { value: "", text: "— custom window —" }), ...shifts.map((s) => {
    const [a, b] = shiftBounds(s);
    const hm = (sec) => fmtTime(sec * 1e9).slice(0, 5);
    const o = el("option", { value: s.id, text: `${s.name} · ${s.kind} · ${hm(a)}–${hm(b)}` });
    o.dataset.start = a; o.dataset.end = b;
    return o;
  }));
  sel.value = shifts.some((s) => s.id === keep) ? keep : "";
  if (!sel.value && shifts.length) {
    // the last shift of the day that has ended, else the day's first
    const ended = shifts.filter((s) => shiftBounds(s)[1] <= Date.now() / 1000);
    sel.value = (ended.length ? ended[ended.length - 1] : shifts[0]).id;
  }
  sel.dataset.day = dayInput.value;
  syncWindowInputs();
}

function syncWindowInputs() {
  const o = $("rp-shift").selectedOptions[0];
  if (o && o.value) {
    $("rp-start").value = toMineLocal(Number(o.dataset.start));
    $("rp-end").value = toMineLocal(Number(o.dataset.end));
  }
  const shift = $("rp-shift").value;
  const link = $("rp-report");
  link.hidden = !shift;
  if (shift) link.href = `/report?shift=${encodeURIComponent(shift)}`;
}

function fillScenarios() {
  const sel = $("rp-scenario");
  const keep = sel.value;
  const ids = [...state.scenarios.values()].sort((a, b) => a.id.localeCompare(b.id));
  sel.replaceChildren(...ids.map((s) => el("option", { value: s.id, text: `${s.id} · ${s.name}` })));
  if (keep) sel.value = keep;
}

// Alerts (GET /alerts: one summary per alert) → bars from first raise to clear, with the state
// each had at a given time.
export function alertBars(alerts) {
  return alerts.map((a) => ({
    id: a.alert_id, t0: nsToSec(a.first_ts), t1: a.cleared_ts != null ? nsToSec(a.cleared_ts) : a.state === "cleared" ? nsToSec(a.ts) : null,
    ack: a.acknowledged_ts != null ? nsToSec(a.acknowledged_ts) : null, severity: a.max_severity ?? a.severity,
    channel: a.channel, scenario: a.scenario_id, message: a.message, operator: a.acknowledged_by ?? a.operator,
    label: `${a.scenario_id} ${a.channel ? shortLabel(a.channel) : a.kind}`,
  }));
}

// A re-run's alert events (oldest first) as the summaries alertBars takes.
export function foldEvents(events) {
  const by = new Map();
  for (const e of events) {
    const a = by.get(e.alert_id) ?? { ...e, max_severity: e.severity, cleared_ts: null, acknowledged_ts: null };
    if (rank(e.severity) > rank(a.max_severity)) a.max_severity = e.severity;
    if (e.state === "cleared") a.cleared_ts = e.ts;
    a.state = e.state;
    by.set(e.alert_id, a);
  }
  return [...by.values()];
}

export function stateAt(b, t) {
  if (b.t1 != null && t >= b.t1) return "cleared";
  if (b.ack != null && t >= b.ack) return "acknowledged";
  return "raised";
}

// The part of [t0, t1] that holds readings or alerts, with a margin of 3 % (at least a minute) on
// each side; the whole window when they fill most of it or there are none.
export function dataSpan(hist, bars, t0, t1) {
  let lo = Infinity, hi = -Infinity;
  for (const h of Object.values(hist)) if (h.t.length) { lo = Math.min(lo, h.t[0]); hi = Math.max(hi, h.t[h.t.length - 1]); }
  for (const b of bars) { lo = Math.min(lo, b.t0); hi = Math.max(hi, b.t1 ?? b.t0); }
  if (!(hi >= lo)) return [t0, t1];
  const margin = Math.max(60, (hi - lo) * 0.03);
  const a = Math.max(t0, lo - margin), b = Math.min(t1, hi + margin);
  return b - a >= 0.8 * (t1 - t0) ? [t0, t1] : [a, b];
}

async function load(ev) {
  ev?.preventDefault();
  stop();
  const scenario = $("rp-scenario").value;
  const t0 = fromMineLocal($("rp-start").value);
  const t1 = fromMineLocal($("rp-end").value);
  if (!scenario || !(t1 > t0)) { toast("Pick a scenario and a window whose end is after its start."); return; }
  $("rp-state").textContent = "loading…";
  $("rp-load").disabled = true;
  try {
    const detail = await loadDetail(scenario);
    const names = detail.channels.map((c) => c.name);
    const [hist, alerts] = await Promise.all([
      fetchHistory(scenario, names, t0, t1, POINTS),
      api("/alerts", { query: { scenario, since: new Date(t0 * 1000).toISOString(), until: new Date(t1 * 1000).toISOString() } }),
    ]);
    if (rp) rp.charts.forEach((c) => c.destroy());
    const bars = alertBars(listOf(alerts));
    // zoom to where the data is: an hour of readings in an 8-hour window fills the charts
    const [v0, v1] = dataSpan(hist, bars, t0, t1);
    const charts = buildCharts($("rp-charts"), detail, { xRange: [v0, v1], height: 150 });
    rp = { scenario, detail, t0: v0, t1: v1, w0: t0, w1: t1, hist, bars, charts, playhead: v0, playing: false, speed: Number($("rp-speed").value), raf: 0, last: 0, rerun: null };
    const zoomed = v0 > t0 || v1 < t1;
    $("view-replay").dataset.zoomed = String(zoomed);
    $("view-replay").dataset.viewStart = String(v0);
    $("view-replay").dataset.viewEnd = String(v1);
    $("rp-zoom").textContent = zoomed
      ? `Showing ${fmtTime(v0 * 1e9, true)} – ${fmtTime(v1 * 1e9, true)}, where the readings are (window ${fmtTime(t0 * 1e9, true)} – ${fmtTime(t1 * 1e9, true)})`
      : "";
    $("rp-rerun-timeline-box").hidden = true;
    $("rp-diff").textContent = "";
    for (const [ch, chart] of charts) {
      chart.setMarks(bars.filter((b) => b.channel === ch).map((b) => ({ t0: b.t0, t1: b.t1, severity: b.severity })));
    }
    $("rp-play").disabled = false;
    $("rp-seek").disabled = false;
    $("view-replay").dataset.loaded = "true";
    const points = Object.values(hist).reduce((n, h) => n + h.t.length, 0);
    $("view-replay").dataset.points = String(points);
    $("view-replay").dataset.alerts = String(bars.length);
    const csv = new URLSearchParams({ scenario, start: new Date(t0 * 1000).toISOString(), end: new Date(t1 * 1000).toISOString() });
    $("rp-export").href = `/telemetry/export.csv?${csv}`;
    $("rp-export").hidden = false;
    const q = new URLSearchParams({ scenario, start: String(t0), end: String(t1) });
    if ($("rp-shift").value) q.set("shift", $("rp-shift").value);
    history.replaceState(null, "", `#/replay?${q}`);
    seek(v0);
    $("rp-state").textContent = points ? `${points} points, ${bars.length} alerts` : "no readings recorded in this window";
  } catch (e) {
    $("rp-state").textContent = "";
    toast(`Replay failed: ${e.message}`);
  } finally {
    $("rp-load").disabled = false;
  }
}

// Show everything recorded up to time t.
function seek(t) {
  if (!rp) return;
  rp.playhead = Math.min(rp.t1, Math.max(rp.t0, t));
  for (const [ch, chart] of rp.charts) {
    const h = rp.hist[ch];
    let n = 0;
    while (n < h.t.length && h.t[n] <= rp.playhead) n++;
    chart.setData(h.t.slice(0, n), h.v.slice(0, n), h.lo.slice(0, n), h.hi.slice(0, n));
    chart.setPlayhead(rp.playhead);
    const last = lastValue(h.v.slice(0, n));
    const node = document.querySelector(`#rp-charts [data-value="${CSS.escape(ch)}"]`);
    const unit = rp.detail.channels.find((c) => c.name === ch)?.unit;
    if (node) node.textContent = last === undefined ? "" : fmtValue(ch, last, unit);
  }
  const upTo = (bars) => bars.filter((b) => b.t0 <= rp.playhead)
    .map((b) => ({ ...b, t1: b.t1 != null && b.t1 <= rp.playhead ? b.t1 : rp.playhead }));
  const seen = rp.bars.filter((b) => b.t0 <= rp.playhead);
  window.MWCharts.timeline($("rp-timeline"), upTo(rp.bars), rp.t0, rp.t1, rp.playhead);
  if (rp.rerun) window.MWCharts.timeline($("rp-rerun-timeline"), upTo(rp.rerun), rp.t0, rp.t1, rp.playhead);
  $("rp-alerts").replaceChildren(...seen.slice().sort((a, b) => b.t0 - a.t0).map((b) => {
    const st = stateAt(b, rp.playhead);
    return el("li", { class: `alert sev-${b.severity} st-${st}`, "data-alert-id": b.id, "data-state": st, "data-severity": b.severity },
      el("div", { class: "a-head" },
        el("span", { class: "badge" }, el("span", { class: "icon", "aria-hidden": "true", text: SEV_ICON[b.severity] }), ` ${SEV_TEXT[b.severity]}`),
        el("span", { class: "a-where", text: b.label }), el("span", { class: "a-state", text: st }),
        el("time", { class: "a-time", text: fmtTime(b.t0 * 1e9) })),
      el("p", { class: "a-msg", text: b.message }));
  }));
  const frac = (rp.playhead - rp.t0) / (rp.t1 - rp.t0);
  $("rp-seek").value = String(Math.round(frac * 1000));
  $("rp-time").textContent = `${fmtTime(rp.playhead * 1e9, true)} (${Math.round(frac * 100)} %)`;
  $("view-replay").dataset.playhead = String(rp.playhead);
}

function tick(now) {
  if (!rp || !rp.playing) return;
  const dt = rp.last ? (now - rp.last) / 1000 : 0;
  rp.last = now;
  seek(rp.playhead + dt * rp.speed);
  if (rp.playhead >= rp.t1) { pause(); $("rp-state").textContent = "end of window"; return; }
  rp.raf = requestAnimationFrame(tick);
}

function play() {
  if (!rp) return;
  if (rp.playhead >= rp.t1) seek(rp.t0);
  rp.playing = true;
  rp.last = 0;
  $("rp-play").textContent = "Pause";
  $("view-replay").dataset.playing = "true";
  $("rp-state").textContent = `playing at ${rp.speed}×`;
  rp.raf = requestAnimationFrame(tick);
}

function pause() {
  if (!rp) return;
  rp.playing = false;
  cancelAnimationFrame(rp.raf);
  $("rp-play").textContent = "Play";
  $("view-replay").dataset.playing = "false";
  $("rp-state").textContent = "paused";
}

function stop() { if (rp) pause(); }

// POST /replays with the overrides over the loaded window, follow its stream, then show what
// the detectors would have raised next to what was recorded, and the API's comparison.
async function rerun(ev) {
  ev.preventDefault();
  if (!rp) { toast("Load a window first."); return; }
  const overrides = {};
  for (const raw of $("rp-overrides").value.split(/\n|,/)) {
    const line = raw.trim();
    if (!line) continue;
    const m = /^([^=\s]+)\s*=\s*(-?[0-9.]+(?:e-?\d+)?)$/i.exec(line);
    if (!m) { toast(`"${line}" is not KEY=VALUE`); return; }
    overrides[m[1]] = Number(m[2]);
  }
  const shift = $("rp-shift").value;
  const body = shift ? { shift, overrides, speed: null }
    : { start: Math.round(rp.w0 * 1e9), end: Math.round(rp.w1 * 1e9), overrides, speed: null };
  const note = $("rp-rerun-state");
  $("rp-rerun").disabled = true;
  $("rp-diff").textContent = "";
  try {
    const job = await api("/replays", { method: "POST", body });
    note.textContent = "running…";
    const done = await new Promise((resolve, reject) => {
      const s = stream(`/replays/${encodeURIComponent(job.id)}/stream`, {
        progress: (p) => { note.textContent = `running… ${Math.round((p.progress ?? 0) * 100)} %`; },
        done: (d) => { s.close(); resolve(d); },
        state: (d) => { if (["done", "failed", "cancelled"].includes(d.state)) { s.close(); resolve(d); } },
      }, (st) => { if (st === "down") { s.close(); reject(new Error("the replay stream closed")); } });
    });
    const full = await api(`/replays/${encodeURIComponent(job.id)}`);
    if (full.state !== "done") throw new Error(full.error || `replay ${full.state}`);
    const mine = foldEvents(full.alerts.filter((e) => e.scenario_id === rp.scenario));
    rp.rerun = alertBars(mine);
    $("rp-rerun-timeline-box").hidden = false;
    const d = full.diff;
    $("rp-diff").replaceChildren(
      el("span", { text: `All scenarios, against the alerts recorded live: ` }),
      el("b", { "data-diff": "same", text: String(d?.same ?? 0) }), " the same, ",
      el("b", { "data-diff": "missed", text: String(d?.missed ?? 0) }), " no longer raised, ",
      el("b", { "data-diff": "new", text: String(d?.new ?? 0) }), " new. ",
      el("span", { class: "muted", text: `${rp.rerun.length} in ${rp.scenario}; ${full.frames} frames in ${full.elapsed_s.toFixed(1)} s.` }));
    $("view-replay").dataset.rerun = String(rp.rerun.length);
    note.textContent = done.state === "done" || full.state === "done" ? "done" : full.state;
    seek(rp.playhead);
  } catch (e) {
    note.textContent = "";
    toast(e.status === 403 ? "Re-running the detectors needs an engineer key." : `Re-run failed: ${e.message}`);
  } finally {
    rerunRights();
  }
}

// Re-running starts a replay job, which needs an engineer key (GET /me says whether this is one).
function rerunRights() {
  const denied = state.me?.start_replays === false;
  const why = denied ? `Re-running the detectors needs an engineer key; this is ${state.me?.role ? "an " + state.me.role : "another"} key.` : "";
  $("rp-rerun").disabled = denied;
  $("rp-rerun").title = why;
  $("rp-rerun-why").textContent = why;
  $("rp-rerun-why").hidden = !denied;
  $("rp-rerun-box").dataset.denied = String(denied);
}

export function enterReplay(hash) {
  fillScenarios();
  const h = window.MWCharts.tzOffset();
  if (h != null) $("rp-when-note").textContent = `24-hour mine time, UTC${h >= 0 ? "+" : "−"}${Math.abs(h)}`;
  rerunRights();
  const q = new URLSearchParams(hash.split("?")[1] ?? "");
  loadShifts(q.get("shift")).then(() => {
    if (q.get("scenario")) $("rp-scenario").value = q.get("scenario");
    if (q.get("start") && q.get("end") && !q.get("shift")) {
      $("rp-shift").value = "";
      $("rp-start").value = toMineLocal(Number(q.get("start")));
      $("rp-end").value = toMineLocal(Number(q.get("end")));
    }
    if (q.get("speed")) $("rp-speed").value = q.get("speed");
    if (q.get("scenario") && !rp) load();
  });
}

export function leaveReplay() { stop(); }

export function mountReplay(toastFn) {
  toast = toastFn;
  $("replay-form").addEventListener("submit", load);
  $("rerun-form").addEventListener("submit", rerun);
  $("rp-shift").addEventListener("change", syncWindowInputs);
  $("rp-day").addEventListener("change", () => loadShifts());
  $("rp-day").addEventListener("input", () => { if (parseDay($("rp-day").value)) checkDay(); });
  $("rp-day").addEventListener("keydown", (e) => {
    if (e.key === "ArrowUp" || e.key === "ArrowDown") { e.preventDefault(); stepDay(e.key === "ArrowUp" ? 1 : -1); }
    if (e.key === "Enter") { e.preventDefault(); loadShifts(); }
  });
  $("rp-day-prev").addEventListener("click", () => stepDay(-1));
  $("rp-day-next").addEventListener("click", () => stepDay(1));
  $("rp-play").addEventListener("click", () => (rp?.playing ? pause() : play()));
  $("rp-speed").addEventListener("change", () => {
    if (!rp) return;
    rp.speed = Number($("rp-speed").value);
    if (rp.playing) $("rp-state").textContent = `playing at ${rp.speed}×`;
  });
  $("rp-seek").addEventListener("input", () => { if (rp) seek(rp.t0 + (rp.t1 - rp.t0) * Number($("rp-seek").value) / 1000); });
  for (const id of ["rp-start", "rp-end"]) $(id).addEventListener("change", () => { $("rp-shift").value = ""; syncWindowInputs(); });
}
