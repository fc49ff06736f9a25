// The control-room page: boot, the live stream, periodic refresh, and the views (#/, #/scenario/ID, #/replay).

import { api, listOf, stream, takeKeyFromUrl, getKey, askKey, clearKey, onKey } from "./api.js";
import {
  setScenarios, setActive, applyAlert, applyReading, setRobots, applyStatus, state, on, emit, rank, isOpen,
  setIncidents, addClosedIncidents, applyIncident, incidentGone, setWatchList, applyWatch,
} from "./store.js";
import { mountBoard, tileStatus } from "./board.js";
import { mountWorklist } from "./worklist.js";
import { mountRobots } from "./robots.js";
import { mountScenario, openScenario, closeScenario } from "./scenario.js";
import { mountReplay, enterReplay, leaveReplay } from "./replay.js";
import { el, SEV_TEXT, SEV_ICON, fmtTime } from "./format.js";

const REFRESH_MS = 5000; // scenarios, robots, active alerts and open incidents, besides what the stream pushes
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

// One live stream for every view: the snapshots of active alerts, open incidents and watch states,
// then alert and incident steps, watch states, robot status, and the readings of every scenario
// (`?scenario=` lists them all), so tiles and charts move as frames come.
function openLive() {
  const ids = [...state.scenarios.keys()].sort().join(",");
  if (live && liveScenarios === ids) return;
  if (live) live.close();
  liveScenarios = ids;
  live = stream(ids ? `/stream?scenario=${encodeURIComponent(ids)}` : "/stream", {
    active: (d) => setActive(listOf(d)),
    incidents: (d) => setIncidents(listOf(d)),
    watch: (d) => (Array.isArray(d) ? setWatchList(d) : applyWatch(d)),
    alert: (a) => applyAlert(a),
    incident: (i) => applyIncident(i),
    incident_gone: (d) => incidentGone(d.incident_id),
    reading: (r) => applyReading(r),
    status: (r) => applyStatus(r),
    // the API closes a client that fell behind; reconnecting brings the active alerts again
    lagged: () => live && live.reopen(),
  }, (st) => { setConn(st); if (st === "down") scheduleRefresh(); });
}

// Scenarios (latest readings, watch states), robots, the active alerts and the open incidents,
// polled besides the stream: the board's readings come this way, and alerts and incidents stay
// right even while the stream is down.
async function refresh() {
  const asked = Date.now(); // steps taken after this are newer than the answers
  try {
    if (!state.me) { // the key's rights: Acknowledge only where it may
      state.me = await api("/me");
      emit("me");
    }
    const [scn, robots, alerts, incidents] = await Promise.all([
      api("/scenarios"), api("/robots"), api("/alerts", { query: { active: true } }), api("/incidents")]);
    // alerts first: the board's first drawing already shows them
    setActive(listOf(alerts), asked);
    setIncidents(listOf(incidents), asked);
    setRobots(listOf(robots));
    setScenarios(listOf(scn));
    if (document.getElementById("show-cleared").checked) await refreshCleared();
  } catch (e) {
    toast(`Refresh failed: ${e.message}`);
  }
}

// Incidents closed within the time cleared ones stay listed, for the "cleared" list.
async function refreshCleared() {
  const since = new Date(Date.now() - state.clearedKeep * 1000).toISOString();
  addClosedIncidents(listOf(await api("/incidents", { query: { active: false, since } })));
}

let refreshTimer = 0;
function scheduleRefresh() {
  clearTimeout(refreshTimer);
  const ms = document.body.dataset.stream === "live" ? REFRESH_MS : REFRESH_DOWN_MS;
  refreshTimer = setTimeout(async () => { await refresh(); scheduleRefresh(); }, ms);
}

// The top bar: incidents waiting for acknowledgement by severity, places not watched, places
// whose readings stopped reaching the page; the tab's title says the same in short.
function summary() {
  const toAck = { critical: 0, alarm: 0, warning: 0 };
  let worstOpen = null;
  for (const i of state.incidents.values()) {
    if (!isOpen(i)) continue;
    if (i.needs_ack && toAck[i.severity] !== undefined) toAck[i.severity]++;
    if (rank(i.severity) >= rank("warning") && (!worstOpen || rank(i.severity) > rank(worstOpen))) worstOpen = i.severity;
  }
  let unwatched = 0;
  let stale = 0;
  for (const s of state.scenarios.values()) {
    const st = tileStatus(s);
    if (!st.watch.watched) unwatched++;
    else if (st.level === "stale") stale++;
  }
  const waiting = toAck.critical + toAck.alarm + toAck.warning;
  const worst = ["critical", "alarm", "warning"].find((k) => toAck[k]) ?? worstOpen;
  document.title = `${waiting ? `(${waiting}) ` : ""}${worst ? SEV_TEXT[worst] + " · " : ""}${unwatched ? `${unwatched} NOT WATCHED · ` : ""}minewatch control room`;
  const pill = (cls, key, icon, text, title) => el("span", { class: `pill ${cls}`, "data-count": key, title },
    el("span", { "aria-hidden": "true", text: icon + " " }), text);
  document.getElementById("summary").replaceChildren(
    el("span", { class: "sum-label", text: "To acknowledge" }),
    ...(waiting ? ["critical", "alarm", "warning"].filter((k) => toAck[k]).map((k) =>
      pill(`sev-${k} unacked`, k, SEV_ICON[k], `${toAck[k]} ${SEV_TEXT[k]}`,
        `${toAck[k]} ${k} incident${toAck[k] === 1 ? "" : "s"} waiting for acknowledgement`))
      : [pill("quiet", "none", "✓", "none", "no incident waits for acknowledgement")]),
    unwatched ? pill("sev-unwatched", "unwatched", SEV_ICON.unwatched, `${unwatched} not watched`,
      "places the detectors are not watching") : "",
    stale ? pill("sev-stale", "stale", SEV_ICON.stale, `${stale} no data`, "places whose readings have not reached this page for 60 s") : "");
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
  mountWorklist();
  mountRobots();
  mountScenario();
  mountReplay(toast);
  on("alerts", summary);
  on("incidents", summary);
  on("scenarios", summary);
  on("watch", summary);
  on("show-cleared", (shown) => { if (shown) refreshCleared().catch((e) => toast(`Cleared incidents: ${e.message}`)); });
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
  setInterval(summary, 1000); // watch states age with the clock
  setInterval(clock, 1000);
  clock();
  document.body.dataset.ready = "true";
}

boot();
