// The page's live picture: scenarios with their latest readings, whether each is watched, active
// alerts, incidents, robots. Views subscribe to changes; the stream and the periodic refresh feed it.

import { GROUPS, SEVERITIES } from "./order.js"; // from the server (api/ui.py)
import { learnDisplay } from "./format.js";

export { GROUPS, SEVERITIES };
export const groupLabel = (g) => g.charAt(0).toUpperCase() + g.slice(1);
// Two missed inspection cycles (domain §3: polling cycle ≤ 30 s) make a scenario's data stale.
export const STALE_AFTER_S = 60;

export const rank = (sev) => SEVERITIES.indexOf(sev);
export const isActive = (a) => a && a.state !== "cleared";
export const nsToSec = (ns) => (ns == null ? null : Number(ns) / 1e9);

const subs = new Map();
export function on(topic, fn) {
  if (!subs.has(topic)) subs.set(topic, new Set());
  subs.get(topic).add(fn);
  return () => subs.get(topic).delete(fn);
}
function emit(topic, payload) { (subs.get(topic) || []).forEach((fn) => fn(payload)); }

export const state = {
  scenarios: new Map(), // id -> scenario
  alerts: new Map(), // alert_id -> latest AlertEvent
  incidents: new Map(), // incident_id -> latest IncidentPublic
  watch: new Map(), // scenario id -> what the ingestor last said about watching it (see setWatch)
  robots: new Map(), // robot_id -> status
  clearedKeep: 3600, // seconds a cleared alert or incident stays listed (when shown)
  me: null, // the key's role and rights (GET /me); null until known
  serverOffsetMs: 0, // the server's clock minus this browser's, from the Date of API answers
};

// --- scenarios -----------------------------------------------------------------------------

// Channels as the API describes them: [{name, label, unit, limits, normal, quantity, display}].
export function normChannels(list) {
  return (list || []).map((c) => {
    const out = {
      name: c.name ?? c.channel, label: c.label ?? c.name, unit: c.unit ?? "", limits: c.limits ?? [],
      normal: c.normal ?? null, quantity: c.quantity, display: c.display ?? null,
    };
    learnDisplay(out);
    return out;
  });
}

// Latest readings: {ch: {value, ts, robot_id, beyond}} (the API's), or {ch: value}; units from the channels.
function normReadings(s, channels) {
  const out = {};
  const byName = Object.fromEntries(channels.map((c) => [c.name, c]));
  for (const [ch, v] of Object.entries(s.readings ?? {})) {
    const c = byName[ch];
    if (v !== null && typeof v === "object") {
      out[ch] = { value: v.value, unit: v.unit ?? c?.unit ?? "", ts: v.ts ?? null, robot: v.robot_id,
                  beyond: v.beyond !== undefined ? v.beyond : beyondLimit(c, v.value) };
    } else out[ch] = { value: v, unit: c?.unit ?? "", ts: null, beyond: beyondLimit(c, v) };
  }
  return out;
}

// The most severe limit level of channel `c` that `value` is at or past, or null: what the API
// sends as a latest reading's `beyond`, worked out here for readings that come on the stream.
// Air velocity counts by its size (its sign is the direction of the flow).
export function beyondLimit(c, value) {
  if (!c || value === null || value === undefined || Number.isNaN(Number(value))) return null;
  const v = c.quantity === "ws" ? Math.abs(Number(value)) : Number(value);
  let worst = null;
  for (const lim of c.limits ?? []) {
    const levels = lim.levels ?? {};
    const pairs = Array.isArray(levels) ? levels : Object.entries(levels);
    for (const [sev, thr] of pairs) {
      if (typeof thr !== "number") continue;
      const met = lim.direction === "below" ? v < thr : v >= thr;
      if (met && (worst === null || rank(sev) > rank(worst))) worst = sev;
    }
  }
  return worst;
}

export function normScenario(s) {
  const id = s.id ?? s.scenario_id;
  const channels = normChannels(s.channels);
  const readings = normReadings(s, channels);
  let lastTs = null;
  for (const r of Object.values(readings)) if (r.ts != null && (lastTs == null || Number(r.ts) > lastTs)) lastTs = Number(r.ts);
  return {
    id,
    name: s.name ?? id,
    kind: s.kind ?? "",
    group: s.group ?? "other",
    channels,
    channelMap: Object.fromEntries(channels.map((c) => [c.name, c])),
    units: Object.fromEntries(channels.map((c) => [c.name, c.unit])),
    readings,
    lastTs,
    robots: (s.robots ?? []).map((r) => (typeof r === "string" ? r : r.robot_id)),
    apiStatus: s.status ?? null,
    apiWatch: s.watch ?? null,
    keyChannels: s.key_channels ?? null,
  };
}

export function setScenarios(list) {
  for (const raw of list) {
    const s = normScenario(raw);
    const old = state.scenarios.get(s.id);
    if (old) {
      // keep fresher readings that arrived on the stream meanwhile
      for (const [ch, r] of Object.entries(old.readings)) {
        const n = s.readings[ch];
        if (!n || (r.ts != null && n.ts != null && Number(r.ts) > Number(n.ts))) s.readings[ch] = r;
      }
      if (old.lastTs != null && (s.lastTs == null || Number(old.lastTs) > Number(s.lastTs))) s.lastTs = old.lastTs;
    }
    state.scenarios.set(s.id, s);
    if (s.apiWatch) putWatch(s.id, s.apiWatch, true);
  }
  emit("scenarios");
}

// The API's reading event for one scenario. Its `scenario_id` and `robot_id` are those of the
// topic the frame came on (the API passes no frame whose own ids differ); nothing else in it
// names a place or a robot, and a value that is not a number is left out.
export function applyReading(ev) {
  const sid = ev.scenario_id;
  const rid = ev.robot_id;
  if (typeof sid !== "string" || typeof rid !== "string") return;
  const s = state.scenarios.get(sid);
  if (!s) return;
  const ts = ev.ts ?? null;
  const readings = ev.readings !== null && typeof ev.readings === "object" ? ev.readings : {};
  for (const [ch, value] of Object.entries(readings)) {
    if (typeof value !== "number" || !Number.isFinite(value)) continue;
    s.readings[ch] = { value, ts, unit: s.units[ch] ?? "", robot: rid, beyond: beyondLimit(s.channelMap[ch], value) };
  }
  if (ts != null && (s.lastTs == null || Number(ts) >= Number(s.lastTs))) s.lastTs = ts;
  if (!s.robots.includes(rid)) s.robots.push(rid);
  emit("reading", { scenario: sid, event: ev });
}

export function isStale(s, nowSec = Date.now() / 1000) {
  if (s.lastTs == null) return true;
  return nowSec - nsToSec(s.lastTs) > STALE_AFTER_S;
}

// --- alerts --------------------------------------------------------------------------------

// When this page took each alert and incident step (its own clock): a snapshot answers for what
// was known when it was asked for, not for a step that came while it was on its way. Event times
// cannot say that: a late report carries an old time.
const took = new WeakMap(); // step object -> Date.now() when taken

function keep(map, id, x) {
  took.set(x, Date.now());
  map.set(id, x);
}

// A snapshot of the active alerts (the stream's first message, or GET /alerts?active=true asked
// for at askedAtMs) replaces what we had: an active alert missing from it has gone, unless an
// event taken after the snapshot was asked for brought it. Cleared alerts stay for display.
export function setActive(list, askedAtMs = Infinity) {
  const ids = new Set(list.map((a) => a.alert_id));
  for (const [id, a] of state.alerts) if (isActive(a) && !ids.has(id) && (took.get(a) ?? 0) < askedAtMs) state.alerts.delete(id);
  for (const a of list) {
    const old = state.alerts.get(a.alert_id);
    if (!old || Number(old.ts) <= Number(a.ts)) keep(state.alerts, a.alert_id, a);
  }
  emit("alerts");
}

// Who acknowledged an alert, kept across its later events (an escalation after the
// acknowledgement is not acknowledged again: the API answers 409).
const ackedBy = (a) => a?.acknowledged_by ?? (a?.state === "acknowledged" ? a.operator ?? "?" : null);

export function applyAlert(a) {
  const old = state.alerts.get(a.alert_id);
  // events can arrive twice (stream + ack response) or out of order: keep the latest
  if (old && Number(old.ts) > Number(a.ts)) return;
  keep(state.alerts, a.alert_id, { ...a, acknowledged_by: ackedBy(a) ?? ackedBy(old) });
  prune();
  emit("alerts", a);
}

function prune() {
  const cutoff = Date.now() / 1000 - state.clearedKeep;
  for (const [id, a] of state.alerts) if (!isActive(a) && nsToSec(a.ts) < cutoff) state.alerts.delete(id);
  for (const [id, i] of state.incidents) if (!isOpen(i) && nsToSec(i.ts) < cutoff) state.incidents.delete(id);
}

export function worstFor(scenarioId) {
  let worst = null;
  for (const a of state.alerts.values()) {
    if (a.scenario_id !== scenarioId || !isActive(a)) continue;
    if (!worst || rank(a.severity) > rank(worst.severity)) worst = a;
  }
  return worst;
}

export function alertsSorted({ includeCleared = false, scenario = null } = {}) {
  return [...state.alerts.values()]
    .filter((a) => (includeCleared || isActive(a)) && (!scenario || a.scenario_id === scenario))
    .sort((a, b) => Number(b.ts) - Number(a.ts));
}


// --- whether each scenario is watched --------------------------------------------------------

// The ingestor says every `every_s` (retained `watch/{scenario}`) whether its detectors watch each
// scenario. A status not renewed for this many of its periods means the ingest process is gone.
export const WATCH_STALE_REFRESHES = 3;
const WATCH_EVERY_S = 5; // the ingestor's default period, when a status does not say
const WATCH_SKEW_MS = 5000; // a status time is trusted only this far ahead of when it arrived

// One status: the stream's WatchStatus, or a scenario's `watch` from GET /scenarios (`fromApi`:
// the API's own verdict, "no_ingest" when the status it holds has gone stale). `seenAt` is when
// this page first saw a status of that time, by the browser's clock.
function putWatch(sid, w, fromApi = false) {
  const old = state.watch.get(sid);
  const ts = w.ts ?? null;
  if (old && old.ts != null && ts != null && Number(ts) < Number(old.ts)) return;
  const same = old && ts != null && old.ts != null && Number(ts) === Number(old.ts);
  if (same && fromApi) { // the same status: only the API's verdict on its age may be news
    old.apiStale = w.state === "no_ingest";
    return;
  }
  state.watch.set(sid, {
    watched: !!w.watched, state: w.state ?? (w.watched ? "watched" : "no_ingest"), detail: w.detail ?? "",
    ts, every_s: w.every_s ?? old?.every_s ?? WATCH_EVERY_S, seenAt: same ? old.seenAt : Date.now(),
    apiStale: same ? old.apiStale : fromApi && w.state === "no_ingest",
  });
}

// The stream's first `watch` message: every status the API holds (a scenario left out has none).
export function setWatchList(list) {
  const ids = new Set(list.map((w) => w.scenario_id));
  for (const sid of [...state.watch.keys()]) if (!ids.has(sid)) state.watch.delete(sid);
  for (const w of list) putWatch(w.scenario_id, w);
  emit("watch");
}

export function applyWatch(w) {
  putWatch(w.scenario_id, w);
  emit("watch", w.scenario_id);
}

// Whether the detectors watch scenario `sid` now: {watched, state, detail}; state is one of
// watched, no_data, not_detected, detectors_off, no_ingest. No status, one the API calls stale,
// or one not renewed for WATCH_STALE_REFRESHES periods (by this page's clock) is no_ingest.
export function watchOf(sid, nowMs = Date.now()) {
  const w = state.watch.get(sid);
  if (!w) return { watched: false, state: "no_ingest", detail: "no word from the ingest process that watches it" };
  if (!w.watched && w.state === "no_ingest") return { watched: false, state: "no_ingest", detail: w.detail || "no word from the ingest process" };
  let since = w.seenAt;
  if (w.ts != null) since = Math.min(since, Number(w.ts) / 1e6 - state.serverOffsetMs + WATCH_SKEW_MS);
  const quiet = (nowMs - since) / 1000;
  if (w.apiStale || quiet > WATCH_STALE_REFRESHES * w.every_s) {
    return { watched: false, state: "no_ingest", detail: `no word from the ingest process for ${Math.max(0, Math.round(quiet))} s` };
  }
  return { watched: w.watched, state: w.watched ? "watched" : w.state, detail: w.detail };
}

// The server's clock from an answer's Date header (whole seconds: the middle of that second).
export function noteServerDate(header) {
  const t = Date.parse(header || "");
  if (!Number.isNaN(t)) state.serverOffsetMs = t + 500 - Date.now();
}

// --- incidents -----------------------------------------------------------------------------

export const isOpen = (i) => !!i && i.active !== false && i.state !== "cleared";

// Steps of one incident may come twice (stream, acknowledgement answer, polling) or out of order:
// the later one is the one with the later time, or at the same time the longer history.
const later = (a, b) => Number(a.ts) > Number(b.ts) || (Number(a.ts) === Number(b.ts) && (a.events ?? 0) >= (b.events ?? 0));

// The open incidents (the stream's `incidents` message, or GET /incidents asked for at askedAtMs):
// an open incident missing from it has gone, unless a step taken after it was asked for brought it.
export function setIncidents(list, askedAtMs = Infinity) {
  const ids = new Set(list.map((i) => i.incident_id));
  for (const [id, i] of state.incidents) if (isOpen(i) && !ids.has(id) && (took.get(i) ?? 0) < askedAtMs) state.incidents.delete(id);
  for (const i of list) {
    const old = state.incidents.get(i.incident_id);
    if (!old || later(i, old)) keep(state.incidents, i.incident_id, i);
  }
  prune();
  emit("incidents");
}

// Closed incidents (GET /incidents?active=false), for the "cleared" list: added, nothing removed.
export function addClosedIncidents(list) {
  for (const i of list) {
    const old = state.incidents.get(i.incident_id);
    if (!old || later(i, old)) keep(state.incidents, i.incident_id, i);
  }
  prune();
  emit("incidents");
}

export function applyIncident(i) {
  const old = state.incidents.get(i.incident_id);
  if (old && !later(i, old)) return false;
  keep(state.incidents, i.incident_id, i);
  prune();
  emit("incidents", i);
  return true;
}

// Its retained state was removed without a cleared step: it is no longer open.
export function incidentGone(id) {
  const i = state.incidents.get(id);
  if (!i || !isOpen(i)) return;
  keep(state.incidents, id, { ...i, active: false, needs_ack: false, gone: true });
  emit("incidents", state.incidents.get(id));
}

// The worklist order (the API's): open first; needing acknowledgement first; the most severe;
// the latest change; then by id, so equal rows keep their places whatever order steps came in.
export function worklistCompare(a, b) {
  return (isOpen(b) - isOpen(a)) || (!!b.needs_ack - !!a.needs_ack) || (rank(b.severity) - rank(a.severity))
    || (Number(b.ts) - Number(a.ts)) || String(a.incident_id).localeCompare(String(b.incident_id));
}

export function incidentsSorted({ includeCleared = false, scenario = null } = {}) {
  return [...state.incidents.values()]
    .filter((i) => (includeCleared || isOpen(i)) && (!scenario || i.scenario_id === scenario))
    .sort(worklistCompare);
}

// Open incidents that wait for an operator.
export const needsAck = (i) => isOpen(i) && !!i.needs_ack;

// --- robots --------------------------------------------------------------------------------

export function setRobots(list) {
  state.robots.clear();
  for (const r of list) state.robots.set(r.robot_id ?? r.id, r);
  emit("robots");
}

export function applyStatus(r) {
  const id = r.robot_id ?? r.id;
  state.robots.set(id, { ...(state.robots.get(id) || {}), ...r });
  emit("robots");
}

export { emit };
