// The board: every scenario as a tile, grouped by kind, coloured by its worst active alert; a
// place the detectors are not watching says so, and a reading past a limit is marked.

import { GROUPS, groupLabel, state, worstFor, isStale, on, isActive, rank, watchOf } from "./store.js";
import { el, fmtValue, fmtAge, keyChannels, shortLabel, SEV_TEXT, SEV_ICON, WATCH_REASON } from "./format.js";

const tiles = new Map(); // id -> element
let root = null;
let pending = new Set();
let frame = 0;

// The most severe limit level any latest reading of `s` is at or past (null: none).
function beyondOf(s) {
  let worst = null;
  for (const r of Object.values(s.readings)) if (r.beyond && (!worst || rank(r.beyond) > rank(worst))) worst = r.beyond;
  return worst;
}

// What a tile shows: `level` is the worst active alert's severity; without one, "unwatched" when
// the detectors are not watching the place (never "ok" then), "stale" when no reading has reached
// the page for a while, else "ok". `watch` says whether and why not; `beyond` is the worst limit
// level a latest reading is past, alert or not.
export function tileStatus(s, nowMs = Date.now()) {
  const worst = worstFor(s.id);
  const watch = watchOf(s.id, nowMs);
  const beyond = beyondOf(s);
  if (worst) return { level: worst.severity, worst, watch, beyond };
  if (!watch.watched) return { level: "unwatched", worst: null, watch, beyond };
  if (isStale(s, nowMs / 1000)) return { level: "stale", worst: null, watch, beyond };
  return { level: "ok", worst: null, watch, beyond };
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
    root.append(el("section", { class: "group", "data-group": group, "aria-label": groupLabel(group) },
      el("h2", { text: groupLabel(group) }), grid));
  }
}

const painted = new Map(); // id -> the watch state its tile shows

function paint(id) {
  const t = tiles.get(id);
  const s = state.scenarios.get(id);
  if (!t || !s) return;
  const { level, worst, watch, beyond } = tileStatus(s);
  const unwatched = !watch.watched;
  const reason = WATCH_REASON[watch.state] ?? watch.state;
  painted.set(id, watch.state);
  t.className = ["tile", `sev-${level}`, unwatched ? "unwatched" : "", beyond ? `has-beyond bey-${beyond}` : ""]
    .filter(Boolean).join(" ");
  t.dataset.severity = level;
  t.dataset.state = worst ? worst.state : level;
  t.dataset.watched = String(!unwatched);
  t.dataset.watchState = watch.state;
  if (beyond) t.dataset.beyond = beyond; else delete t.dataset.beyond;
  const alertChannels = new Map();
  for (const a of state.alerts.values()) {
    if (a.scenario_id === id && isActive(a) && a.channel) {
      const prev = alertChannels.get(a.channel);
      if (!prev || rank(a.severity) > rank(prev)) alertChannels.set(a.channel, a.severity);
    }
  }
  // the key readings, and any other reading past a limit (it must not hide behind the four)
  const chans = keyChannels({ ...s.readings }, 4, s.keyChannels);
  for (const [ch, r] of Object.entries(s.readings)) if (r.beyond && !chans.includes(ch)) chans.push(ch);
  const past = [];
  const readings = el("dl", { class: "readings" }, chans.map((ch) => {
    const r = s.readings[ch] || {};
    const sev = alertChannels.get(ch);
    const cls = ["reading", sev ? `sev-${sev}` : "", r.beyond ? `beyond beyond-${r.beyond}` : ""].filter(Boolean).join(" ");
    if (r.beyond) past.push(`${shortLabel(ch)} ${fmtValue(ch, r.value, r.unit)} past the ${r.beyond} level${sev ? "" : ", no alert"}`);
    return el("div", { class: cls, "data-channel": ch, "data-beyond": r.beyond || null,
                       title: r.beyond ? `at or past its ${r.beyond} level${sev ? "" : " (no alert)"}` : null },
      el("dt", { text: shortLabel(ch) }),
      el("dd", { text: fmtValue(ch, r.value, r.unit) }),
      r.beyond ? el("span", { class: "past" }, el("span", { "aria-hidden": "true", text: SEV_ICON[r.beyond] }),
        el("span", { class: "past-word", text: ` ${SEV_TEXT[r.beyond] ?? r.beyond}` })) : null);
  }));
  let badge;
  if (level === "ok" && beyond) {
    badge = el("span", { class: `badge outline sev-${beyond}` }, el("span", { class: "icon", "aria-hidden": "true", text: "◆" }),
      " PAST LIMIT");
  } else {
    badge = el("span", { class: "badge" }, el("span", { class: "icon", "aria-hidden": "true", text: SEV_ICON[level] }),
      ` ${SEV_TEXT[level]}`, worst && worst.state === "acknowledged" ? el("span", { class: "ackd", text: " · ACK" }) : null);
  }
  const band = unwatched
    ? el("div", { class: "watch-band", "data-watch-state": watch.state, title: watch.detail || reason },
      worst ? [el("span", { "aria-hidden": "true", text: SEV_ICON.unwatched }), ` NOT WATCHED · ${reason}`] : reason)
    : null;
  const robots = s.robots.length ? `robot ${s.robots.join(", ")}` : "no robot";
  t.replaceChildren(...[
    el("div", { class: "tile-head" }, el("span", { class: "tile-id", text: s.id }), badge),
    el("div", { class: "tile-name", text: s.name }),
    band,
    readings,
    el("div", { class: "tile-foot" }, el("span", { text: robots }), el("span", { class: "age", text: fmtAge(s.lastTs) })),
  ].filter(Boolean));
  const words = [
    worst ? SEV_TEXT[worst.severity] : SEV_TEXT[level],
    unwatched ? `not watched (${reason}${watch.detail ? ": " + watch.detail : ""})` : null,
    worst ? worst.message : null,
    past.length ? past.join("; ") : null,
  ].filter(Boolean);
  if (!worst && unwatched) words.splice(1, 1, `${reason}${watch.detail ? ": " + watch.detail : ""}`);
  t.title = words.join(". ");
  t.setAttribute("aria-label", `${s.id} ${s.name}: ${words.join(". ")}`);
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
  on("watch", (sid) => schedule(sid ? [sid] : state.scenarios.keys()));
  // ages and staleness move with the clock: a watch status not renewed in time is caught within
  // a second, the rest every few seconds
  setInterval(() => {
    const now = Date.now();
    schedule([...state.scenarios.keys()].filter((id) => painted.get(id) !== watchOf(id, now).state));
  }, 1000);
  setInterval(() => schedule(state.scenarios.keys()), 5000);
}
