// One scenario: live charts of its channels with their limits, its incidents and robots.

import { api } from "./api.js";
import { state, on, nsToSec, normScenario } from "./store.js";
import { el, fmtValue, shortLabel, SEV_TEXT, SEV_ICON, fmtAge, WATCH_REASON } from "./format.js";
import { renderWorklist, coalesce } from "./worklist.js";
import { tileStatus } from "./board.js";
import { robotCells } from "./robots.js";

let current = null; // {id, charts: Map(channel -> Chart), range, detail}
let lastRange = 900; // seconds of history shown; kept when moving between scenarios
const POINTS = 600;
const HEADROOM = 0.02; // the live window reaches a little past now, so the newest point is not on the edge

// A scenario with its channels (units, limits): from the board's list, else GET /scenarios/{id}.
export async function loadDetail(id) {
  const s = state.scenarios.get(id);
  if (s && s.channels.length) return s;
  return normScenario(await api(`/scenarios/${encodeURIComponent(id)}`));
}

// GET /telemetry/history → {channel: {t: [s], v: [mean], lo: [min], hi: [max]}}. The API sends
// {series: [{channel, unit, robot_id, ts: [ns], mean, min, max}]}; several series of one channel
// (one per robot) are merged in time order.
export function normHistory(h, channels) {
  const out = Object.fromEntries(channels.map((c) => [c, { t: [], v: [], lo: [], hi: [] }]));
  const rows = new Map(channels.map((c) => [c, []]));
  for (const s of h?.series ?? []) {
    const list = rows.get(s.channel);
    if (!list) continue;
    for (let i = 0; i < s.ts.length; i++) {
      const v = s.mean?.[i] ?? null;
      list.push([Number(s.ts[i]) / 1e9, v, s.min?.[i] ?? v, s.max?.[i] ?? v]);
    }
  }
  for (const [c, list] of rows) {
    list.sort((x, y) => x[0] - y[0]);
    const o = out[c];
    for (const [t, v, lo, hi] of list) { o.t.push(t); o.v.push(v); o.lo.push(lo); o.hi.push(hi); }
  }
  return out;
}

export async function fetchHistory(id, channels, startSec, endSec, points = POINTS, robot = null) {
  const h = await api("/telemetry/history", {
    query: {
      scenario: id, robot, channels: channels.join(","), points,
      start: new Date(startSec * 1000).toISOString(), end: new Date(endSec * 1000).toISOString(),
    },
  });
  return normHistory(h, channels);
}

const lastValue = (vals) => { for (let i = vals.length - 1; i >= 0; i--) if (vals[i] != null) return vals[i]; return undefined; };
export { lastValue };

export function buildCharts(container, detail, { xRange = null, height = 170, legend = true } = {}) {
  const charts = new Map();
  container.textContent = "";
  for (const c of detail.channels) {
    const box = el("div", { class: "chart", "data-channel": c.name });
    const head = el("div", { class: "chart-head" }, el("span", { class: "chart-title", text: `${shortLabel(c.name)} · ${c.label}` }),
      el("span", { class: "chart-value", "data-value": c.name, text: "" }));
    const plot = el("div", { class: "plot" });
    box.append(head, plot);
    container.append(box);
    charts.set(c.name, new window.MWCharts.Chart(plot, {
      label: `${shortLabel(c.name)}${c.unit ? " (" + c.unit + ")" : ""}`, unit: c.unit, limits: c.limits,
      normal: c.normal, height, xRange, legend,
    }));
  }
  return charts;
}

function setValueText(id, ch, v) {
  const d = current?.detail.channels.find((c) => c.name === ch);
  const node = document.querySelector(`#scn-charts [data-value="${CSS.escape(ch)}"]`);
  if (node) node.textContent = fmtValue(ch, v, d?.unit);
}

function drawSide() {
  if (!current) return;
  const id = current.id;
  const s = state.scenarios.get(id);
  const st = s ? tileStatus(s) : { level: "stale", watch: { watched: true } };
  const level = st.level;
  const badge = document.getElementById("scn-badge");
  badge.className = `badge big sev-${level}`;
  badge.dataset.severity = level;
  badge.dataset.watched = String(st.watch.watched);
  const reason = st.watch.watched ? "" : WATCH_REASON[st.watch.state] ?? st.watch.state;
  badge.replaceChildren(el("span", { class: "icon", "aria-hidden": "true", text: SEV_ICON[level] }), ` ${SEV_TEXT[level]}`,
    reason && level !== "unwatched" ? ` · ${SEV_ICON.unwatched} NOT WATCHED` : "", reason ? ` · ${reason}` : "");
  badge.title = st.watch.watched ? "" : st.watch.detail ?? "";
  renderWorklist(document.getElementById("scn-incidents"), document.getElementById("scn-incident-empty"),
    { scenario: id, includeCleared: true });
  const robots = [...state.robots.values()].filter((r) => r.scenario_id === id || s?.robots.includes(r.robot_id));
  document.getElementById("scn-robots").replaceChildren(...(robots.length ? robots.map((r) => {
    const c = robotCells(r);
    return el("li", { "data-robot-id": r.robot_id }, el("strong", { text: r.robot_id }),
      ` ${c.online ? "online" : "OFFLINE"} · battery ${c.battery} · ${c.link} · ${c.where}`);
  }) : [el("li", { class: "muted", text: s?.lastTs ? `last data ${fmtAge(s.lastTs)}` : "no robot here" })]));
  // alert marks on the charts
  for (const [ch, chart] of current.charts) {
    chart.setMarks([...state.alerts.values()].filter((a) => a.scenario_id === id && a.channel === ch).map((a) => ({
      t0: nsToSec(a.first_ts), t1: a.state === "cleared" ? nsToSec(a.ts) : null, severity: a.severity,
    })));
  }
}

function drawLimits(detail) {
  const dl = document.getElementById("scn-limits");
  const items = [];
  for (const c of detail.channels) {
    for (const l of window.MWCharts.flattenLimits(c.limits)) {
      items.push(el("dt", { class: `sev-${l.severity}`, text: `${shortLabel(c.name)} ${l.severity} ${l.direction === "below" ? "<" : "≥"} ${l.value} ${c.unit}` }),
        el("dd", { text: l.rule }));
    }
  }
  dl.replaceChildren(...(items.length ? items : [el("dd", { class: "muted", text: "No fixed limits on these channels." })]));
}

// Robots seen in the scenario, for the robot picker (several robots' readings of one channel
// interleave on a chart; picking one shows its sensor alone).
function fillRobots() {
  if (!current) return;
  const s = state.scenarios.get(current.id);
  const seen = new Set(s?.robots ?? []);
  for (const r of Object.values(s?.readings ?? {})) if (r.robot) seen.add(r.robot);
  for (const r of state.robots.values()) if (r.scenario_id === current.id) seen.add(r.robot_id);
  const sel = document.getElementById("scn-robot");
  const have = new Set([...sel.options].map((o) => o.value));
  for (const id of [...seen].sort()) if (!have.has(id)) sel.append(el("option", { value: id, text: id }));
  sel.value = current.robot ?? "";
}

async function loadWindow() {
  const { id, detail, range, robot } = current;
  const now = Date.now() / 1000;
  const names = detail.channels.map((c) => c.name);
  for (const chart of current.charts.values()) chart.setWindow(now - range, now + range * HEADROOM);
  try {
    const h = await fetchHistory(id, names, now - range, now, POINTS, robot);
    if (current?.id !== id || current.robot !== robot) return;
    for (const c of names) {
      const { t, v, lo, hi } = h[c];
      current.charts.get(c).setData(t, v, lo, hi);
      const last = lastValue(v);
      if (last !== undefined) setValueText(id, c, last);
    }
  } catch (e) {
    document.getElementById("scn-charts").prepend(el("p", { class: "error", text: `History not available: ${e.message}` }));
  }
}

export async function openScenario(id) {
  closeScenario();
  const title = document.getElementById("scn-title");
  title.textContent = id;
  const detail = await loadDetail(id);
  current = { id, detail, range: lastRange, charts: new Map(), robot: null };
  const pick = document.getElementById("scn-robot");
  pick.replaceChildren(el("option", { value: "", text: "all robots" }));
  fillRobots();
  title.textContent = `${id} · ${detail.name}`;
  current.charts = buildCharts(document.getElementById("scn-charts"), detail, { legend: false });
  document.querySelectorAll("#view-scenario [data-range]").forEach((b) => b.setAttribute("aria-pressed", String(Number(b.dataset.range) === current.range)));
  drawLimits(detail);
  drawSide();
  await loadWindow();
}

export function closeScenario() {
  if (!current) return;
  for (const c of current.charts.values()) c.destroy();
  current.charts.clear();
  current = null;
}

export function mountScenario() {
  on("reading", ({ scenario, event }) => {
    if (!current || current.id !== scenario || !current.charts.size) return;
    if (current.robot && event.robot_id !== current.robot) return;
    const t = nsToSec(event.ts);
    const now = Date.now() / 1000;
    for (const [ch, v] of Object.entries(event.readings ?? {})) {
      const chart = current.charts.get(ch);
      if (!chart) continue;
      const value = v !== null && typeof v === "object" ? v.value : v;
      chart.trimBefore(now - current.range);
      chart.setWindow(Math.min(now, t) - current.range, Math.max(now, t) + current.range * HEADROOM);
      chart.append(t, value);
      setValueText(scenario, ch, value);
    }
  });
  const side = coalesce(drawSide);
  on("alerts", side);
  on("incidents", side);
  on("watch", side);
  on("me", side);
  on("robots", () => { side(); fillRobots(); });
  document.getElementById("scn-robot").addEventListener("change", (ev) => {
    if (!current) return;
    current.robot = ev.target.value || null;
    for (const c of current.charts.values()) c.setData([], []);
    loadWindow();
  });
  document.querySelectorAll("#view-scenario [data-range]").forEach((b) => b.addEventListener("click", () => {
    if (!current) return;
    current.range = lastRange = Number(b.dataset.range);
    document.querySelectorAll("#view-scenario [data-range]").forEach((x) => x.setAttribute("aria-pressed", String(x === b)));
    loadWindow();
  }));
}

export function currentScenario() { return current?.id ?? null; }
