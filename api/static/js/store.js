// The page's live picture: scenarios with their latest readings, active alerts, robots.
// Views subscribe to changes; the stream and the periodic refresh feed it.

export const SEVERITIES = ["info", "warning", "alarm", "critical"];
export const GROUPS = ["faces", "headings", "fans", "belts", "pumps", "substations", "returns", "other"];
export const GROUP_LABELS = {
  faces: "Faces", headings: "Headings", fans: "Fans", belts: "Belts", pumps: "Pumps",
  substations: "Substations", returns: "Returns", other: "Other",
};
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
  robots: new Map(), // robot_id -> status
  clearedKeep: 3600, // seconds a cleared alert stays listed (when shown)
  me: null, // the key's role and rights (GET /me); null until known
};

// --- scenarios -----------------------------------------------------------------------------

// Channels as the API describes them: [{name, label, unit, limits, normal, quantity}].
export function normChannels(list) {
  return (list || []).map((c) => ({
    name: c.name ?? c.channel, label: c.label ?? c.name, unit: c.unit ?? "", limits: c.limits ?? [],
    normal: c.normal ?? null, quantity: c.quantity,
  }));
}

// Latest readings: {ch: {value, ts, robot_id}} (the API's), or {ch: value}; units from the channels.
function normReadings(s, channels) {
  const out = {};
  const units = Object.fromEntries(channels.map((c) => [c.name, c.unit]));
  for (const [ch, v] of Object.entries(s.readings ?? {})) {
    if (v !== null && typeof v === "object") out[ch] = { value: v.value, unit: v.unit ?? units[ch] ?? "", ts: v.ts ?? null, robot: v.robot_id };
    else out[ch] = { value: v, unit: units[ch] ?? "", ts: null };
  }
  return out;
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
    units: Object.fromEntries(channels.map((c) => [c.name, c.unit])),
    readings,
    lastTs,
    robots: (s.robots ?? []).map((r) => (typeof r === "string" ? r : r.robot_id)),
    apiStatus: s.status ?? null,
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
  }
  emit("scenarios");
}

// A telemetry frame (or the API's reading event) for one scenario.
export function applyReading(ev) {
  const sid = ev.scenario_id ?? ev.scenario;
  const s = state.scenarios.get(sid);
  if (!s) return;
  const ts = ev.ts ?? null;
  const readings = ev.readings ?? ev.values ?? {};
  for (const [ch, v] of Object.entries(readings)) {
    const value = v !== null && typeof v === "object" ? v.value : v;
    s.readings[ch] = { value, ts, unit: s.units[ch] ?? "", robot: ev.robot_id };
  }
  if (ts != null && (s.lastTs == null || Number(ts) >= Number(s.lastTs))) s.lastTs = ts;
  const rid = ev.robot_id ?? ev.robot;
  if (rid && !s.robots.includes(rid)) s.robots.push(rid);
  emit("reading", { scenario: sid, event: ev });
}

export function isStale(s, nowSec = Date.now() / 1000) {
  if (s.lastTs == null) return true;
  return nowSec - nsToSec(s.lastTs) > STALE_AFTER_S;
}

// --- alerts --------------------------------------------------------------------------------

// A snapshot of the active alerts (the stream's first message, or GET /alerts?active=true taken
// at asOfNs) replaces what we had: an active alert missing from it has gone, unless an event
// newer than the snapshot brought it. Cleared alerts stay for display.
export function setActive(list, asOfNs = Infinity) {
  const ids = new Set(list.map((a) => a.alert_id));
  for (const [id, a] of state.alerts) if (isActive(a) && !ids.has(id) && Number(a.ts) <= asOfNs) state.alerts.delete(id);
  for (const a of list) {
    const old = state.alerts.get(a.alert_id);
    if (!old || Number(old.ts) <= Number(a.ts)) state.alerts.set(a.alert_id, a);
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
  state.alerts.set(a.alert_id, { ...a, acknowledged_by: ackedBy(a) ?? ackedBy(old) });
  prune();
  emit("alerts", a);
}

function prune() {
  const cutoff = Date.now() / 1000 - state.clearedKeep;
  for (const [id, a] of state.alerts) if (!isActive(a) && nsToSec(a.ts) < cutoff) state.alerts.delete(id);
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
