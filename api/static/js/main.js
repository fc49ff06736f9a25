// The control-room page: boot, the live stream, periodic refresh, and the views (#/, #/scenario/ID, #/replay).

import { api, listOf, stream, takeKeyFromUrl, getKey, askKey, clearKey, onKey } from "./api.js";
import { setScenarios, setActive, applyAlert, applyReading, setRobots, applyStatus, state, worstFor, isStale, on } from "./store.js";
import { mountBoard } from "./board.js";
import { mountAlerts } from "./alerts.js";
import { mountRobots } from "./robots.js";
import { mountScenario, openScenario, closeScenario } from "./scenario.js";
import { mountReplay, enterReplay, leaveReplay } from "./replay.js";
import { el, SEV_TEXT, fmtTime } from "./format.js";

const REFRESH_MS = 5000; // scenarios, robots and active alerts, besides what the stream pushes
const REFRESH_DOWN_MS = 2000; // the same while the stream is down
let live = null;
let liveScenarios = null;

export function toast(text, ms = 4000) {
  const t = document.getElementById("toast");
  t.textContent = text;
  t.hidden = false;
  clearTimeout(toast.timer);
  toast.timer = setTimeout(() => { t.hidden = true; }, ms);
}

// A stream not live for this long is shown as lost: the page is then not a live picture.
const LOST_AFTER_MS = 3000;
let lostTimer = 0;

function setConn(s) {
  const c = document.getElementById("conn");
  c.dataset.state = s;
  c.querySelector(".label").textContent = { live: "live", connecting: "connecting…", down: "stream down" }[s] ?? s;
  document.body.dataset.stream = s;
  if (s === "live") {
    clearTimeout(lostTimer);
    lostTimer = 0;
    delete document.body.dataset.lost;
  } else if (document.body.dataset.lost) {
    c.querySelector(".label").textContent = "NOT LIVE – reconnecting";
  } else if (!lostTimer) { // counted from the moment it stopped being live, through the retries
    lostTimer = setTimeout(() => {
      lostTimer = 0;
      document.body.dataset.lost = "true";
      c.querySelector(".label").textContent = "NOT LIVE – reconnecting";
    }, LOST_AFTER_MS);
  }
}

// One live stream for every view: the active-alert snapshot, alert events, robot status, and the
// readings of every scenario (`?scenario=` lists them all), so tiles and charts move as frames come.
function openLive() {
  const ids = [...state.scenarios.keys()].sort().join(",");
  if (live && liveScenarios === ids) return;
  if (live) live.close();
  liveScenarios = ids;
  live = stream(ids ? `/stream?scenario=${encodeURIComponent(ids)}` : "/stream", {
    active: (d) => setActive(listOf(d)),
    alert: (a) => applyAlert(a),
    reading: (r) => applyReading(r),
    status: (r) => applyStatus(r),
    // the API closes a client that fell behind; reconnecting brings the active alerts again
    lagged: () => live && live.reopen(),
  }, (st) => { setConn(st); if (st === "down") scheduleRefresh(); });
}

// Scenarios (latest readings), robots and the active alerts, polled besides the stream: the
// board's readings come this way, and alerts stay right even while the stream is down.
async function refresh() {
  const asOf = (Date.now() - 5000) * 1e6; // allow for clock skew between browser and server
  try {
    if (!state.me) state.me = await api("/me"); // the key's rights: Acknowledge only where it may
    const [scn, robots, alerts] = await Promise.all([api("/scenarios"), api("/robots"), api("/alerts", { query: { active: true } })]);
    setScenarios(listOf(scn));
    setRobots(listOf(robots));
    setActive(listOf(alerts), asOf);
  } catch (e) {
    toast(`Refresh failed: ${e.message}`);
  }
}

let refreshTimer = 0;
function scheduleRefresh() {
  clearTimeout(refreshTimer);
  const ms = document.body.dataset.stream === "live" ? REFRESH_MS : REFRESH_DOWN_MS;
  refreshTimer = setTimeout(async () => { await refresh(); scheduleRefresh(); }, ms);
}

function summary() {
  const counts = { critical: 0, alarm: 0, warning: 0, stale: 0 };
  for (const s of state.scenarios.values()) {
    const w = worstFor(s.id);
    if (w && counts[w.severity] !== undefined) counts[w.severity]++;
    else if (!w && isStale(s)) counts.stale++;
  }
  const unacked = [...state.alerts.values()].filter((a) => (a.state === "raised" || a.state === "escalated") && !a.acknowledged_by).length;
  // a background tab still tells: the title carries what waits for an operator
  const worst = counts.critical ? "CRITICAL" : counts.alarm ? "ALARM" : counts.warning ? "WARNING" : "";
  document.title = `${unacked ? `(${unacked}) ` : ""}${worst ? worst + " · " : ""}minewatch control room`;
  document.getElementById("summary").replaceChildren(
    ...["critical", "alarm", "warning", "stale"].filter((k) => counts[k]).map((k) =>
      el("span", { class: `pill sev-${k}`, "data-count": k, text: `${counts[k]} ${SEV_TEXT[k]}` })),
    unacked ? el("span", { class: "pill unacked", text: `${unacked} to acknowledge` }) : "");
}

function route() {
  const hash = location.hash || "#/";
  const m = hash.match(/^#\/scenario\/([^/?]+)/);
  const view = m ? "scenario" : hash.startsWith("#/replay") ? "replay" : "board";
  document.querySelectorAll(".view").forEach((v) => { v.hidden = v.dataset.view !== view; });
  document.querySelectorAll("[data-nav]").forEach((a) => a.classList.toggle("active", a.dataset.nav === view));
  document.body.dataset.view = view;
  if (view !== "scenario") closeScenario();
  if (view !== "replay") leaveReplay();
  if (view === "scenario") {
    const id = decodeURIComponent(m[1]);
    openScenario(id).catch((e) => toast(`Cannot open ${id}: ${e.message}`));
  } else if (view === "replay") {
    enterReplay(hash);
  }
}

function clock() {
  document.getElementById("clock").textContent = fmtTime(Date.now() * 1e6);
}

// Times on the page are mine time: the shift calendar's offset from UTC.
async function mineTime() {
  try {
    const s = await api("/shifts");
    if (typeof s?.tz_offset_h === "number") {
      window.MWCharts.setTzOffset(s.tz_offset_h);
      const h = s.tz_offset_h;
      document.getElementById("tz").textContent = `mine time UTC${h >= 0 ? "+" : ""}${h}`;
    }
  } catch { /* browser time, then */ }
}

async function boot() {
  takeKeyFromUrl();
  if (!getKey()) await askKey();
  await mineTime();
  mountBoard(document.getElementById("board"));
  mountAlerts();
  mountRobots();
  mountScenario();
  mountReplay(toast);
  on("alerts", summary);
  on("scenarios", summary);
  document.getElementById("signout").addEventListener("click", async () => {
    clearKey();
    await askKey("Enter a new API key.");
  });
  onKey(() => { state.me = null; if (live) live.reopen(); refresh(); });
  await refresh();
  openLive();
  on("scenarios", openLive); // a no-op unless the set of scenarios changed
  window.addEventListener("hashchange", route);
  route();
  scheduleRefresh();
  setInterval(summary, 5000);
  setInterval(clock, 1000);
  clock();
  document.body.dataset.ready = "true";
}

boot();
