// The board: every scenario as a tile, grouped by kind, coloured by its worst active alert.

import { GROUPS, GROUP_LABELS, state, worstFor, isStale, on, isActive, rank } from "./store.js";
import { el, fmtValue, fmtAge, keyChannels, shortLabel, SEV_TEXT, SEV_ICON } from "./format.js";

const tiles = new Map(); // id -> element
let root = null;
let pending = new Set();
let frame = 0;

export function tileStatus(s) {
  const worst = worstFor(s.id);
  if (worst) return { level: worst.severity, worst };
  if (isStale(s)) return { level: "stale", worst: null };
  return { level: "ok", worst: null };
}

function build() {
  root.textContent = "";
  tiles.clear();
  const byGroup = new Map(GROUPS.map((g) => [g, []]));
  for (const s of state.scenarios.values()) {
    if (!byGroup.has(s.group)) byGroup.set(s.group, []);
    byGroup.get(s.group).push(s);
  }
  for (const [group, list] of byGroup) {
    if (!list.length) continue;
    list.sort((a, b) => a.id.localeCompare(b.id));
    const grid = el("div", { class: "tiles" });
    for (const s of list) {
      const t = el("a", { class: "tile", href: `#/scenario/${encodeURIComponent(s.id)}`, "data-scenario-id": s.id });
      tiles.set(s.id, t);
      grid.append(t);
      paint(s.id);
    }
    root.append(el("section", { class: "group", "data-group": group, "aria-label": GROUP_LABELS[group] ?? group },
      el("h2", { text: GROUP_LABELS[group] ?? group }), grid));
  }
}

function paint(id) {
  const t = tiles.get(id);
  const s = state.scenarios.get(id);
  if (!t || !s) return;
  const { level, worst } = tileStatus(s);
  t.className = `tile sev-${level}`;
  t.dataset.severity = level;
  t.dataset.state = worst ? worst.state : level === "stale" ? "stale" : "ok";
  const alertChannels = new Map();
  for (const a of state.alerts.values()) {
    if (a.scenario_id === id && isActive(a) && a.channel) {
      const prev = alertChannels.get(a.channel);
      if (!prev || rank(a.severity) > rank(prev)) alertChannels.set(a.channel, a.severity);
    }
  }
  const chans = keyChannels({ ...s.readings }, 4, s.keyChannels);
  const readings = el("dl", { class: "readings" }, chans.map((ch) => {
    const r = s.readings[ch] || {};
    const sev = alertChannels.get(ch);
    return el("div", { class: sev ? `reading sev-${sev}` : "reading", "data-channel": ch },
      el("dt", { text: shortLabel(ch) }), el("dd", { text: fmtValue(ch, r.value, r.unit) }));
  }));
  const badge = el("span", { class: "badge" }, el("span", { class: "icon", "aria-hidden": "true", text: SEV_ICON[level] }),
    ` ${SEV_TEXT[level]}`, worst && worst.state === "acknowledged" ? el("span", { class: "ackd", text: " · ACK" }) : null);
  const robots = s.robots.length ? `robot ${s.robots.join(", ")}` : "no robot";
  t.replaceChildren(
    el("div", { class: "tile-head" }, el("span", { class: "tile-id", text: s.id }), badge),
    el("div", { class: "tile-name", text: s.name }),
    readings,
    el("div", { class: "tile-foot" }, el("span", { text: robots }), el("span", { class: "age", text: fmtAge(s.lastTs) })),
  );
  t.title = worst ? worst.message : `${s.id} ${s.name}: ${SEV_TEXT[level]}`;
  t.setAttribute("aria-label", `${s.id} ${s.name}: ${SEV_TEXT[level]}${worst ? ", " + worst.message : ""}`);
}

function schedule(ids) {
  for (const id of ids) pending.add(id);
  if (frame) return;
  frame = requestAnimationFrame(() => {
    frame = 0;
    const ids = pending; pending = new Set();
    for (const id of ids) paint(id);
  });
}

export function mountBoard(element) {
  root = element;
  on("scenarios", () => {
    const same = state.scenarios.size === tiles.size && [...state.scenarios.keys()].every((id) => tiles.has(id));
    if (same) schedule(state.scenarios.keys()); else build();
  });
  on("reading", ({ scenario }) => schedule([scenario]));
  on("alerts", (a) => schedule(a ? [a.scenario_id] : state.scenarios.keys()));
  // ages and staleness move with the clock
  setInterval(() => schedule(state.scenarios.keys()), 5000);
}
