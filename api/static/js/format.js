// Formatting for people at a control-room wall: short channel names, values with units, times.

const SHORT = {
  ch4: "CH₄", ch4_t0: "CH₄ T0", ch4_t1: "CH₄ T1", ch4_t1b: "CH₄ T1b", ch4_t2: "CH₄ T2",
  ch4_shearer: "CH₄ shearer", ch4_pipe: "CH₄ pipe", co: "CO", o2: "O₂", co2: "CO₂", t: "Temp",
  rh: "RH", ws: "Air", dp: "ΔP", du: "Dust", sm: "Smoke", i: "Current", run: "Run", run_a: "Fan A",
  run_b: "Fan B", tb: "Bearing", t_drum: "Drum", t_busbar: "Busbar", t_discharge: "Discharge",
  speed: "Belt", wl: "Water", fl: "Flow", level: "Level", p: "Receiver", vib: "Vibration",
};

// Order in which readings earn a place on a tile: gas first (a missed methane alarm is the
// worst failure), then ventilation, heat, machines.
const PRIORITY = ["ch4_t1", "ch4_t0", "ch4_t2", "ch4", "ch4_t1b", "ch4_shearer", "co", "o2", "co2", "ws",
  "run", "run_a", "dp", "sm", "wl", "t_busbar", "t_discharge", "tb", "t_drum", "speed", "t", "fl", "i", "level",
  "p", "du", "rh", "ch4_pipe", "run_b"];

export function shortLabel(ch) { return SHORT[ch] ?? ch; }

export function keyChannels(readings, n = 4, preferred = null) {
  const names = Object.keys(readings);
  if (preferred?.length) return preferred.slice(0, n);
  const score = (c) => { const i = PRIORITY.indexOf(c); return i < 0 ? 999 : i; };
  return names.sort((a, b) => score(a) - score(b)).slice(0, n);
}

const ONOFF = new Set(["run", "run_a", "run_b", "sm"]);

// How each channel's values are shown, as the API serves it with the channel (its quantity's
// `display` in the catalogue: decimals, short name, unit, signed): learnt from every scenario the
// page loads (store.normChannels). A channel of one name is one quantity wherever it is.
const DISPLAY = new Map();

export function learnDisplay(channel) {
  const d = channel?.display;
  if (d && Number.isInteger(d.decimals) && d.decimals >= 0) DISPLAY.set(channel.name, d);
}

// Decimals of a value not described by the catalogue (a rate, the robot's battery and link):
// by its size.
const bySize = (a) => (a >= 100 ? 0 : a >= 10 ? 1 : 2);

export function fmtValue(ch, value, unit) {
  if (value === null || value === undefined || Number.isNaN(value)) return "–";
  if (ONOFF.has(ch)) return ch === "sm" ? (value >= 0.5 ? "SMOKE" : "clear") : (value >= 0.5 ? "ON" : "off");
  const v = Number(value);
  const digits = DISPLAY.get(ch)?.decimals ?? bySize(Math.abs(v));
  return `${v.toFixed(digits)}${unit ? " " + unit : ""}`;
}

const pad = (n) => String(n).padStart(2, "0");

// Mine time once the page knows the mine's offset from UTC (MWCharts.setTzOffset), else the
// browser's: shifts are named in mine time, so times on the page are too.
export const mineDate = (sec) => window.MWCharts.toDate(sec);

// A calendar day typed as "YYYY-MM-DD" (ISO 8601, whatever the browser's language): the same
// text, trimmed, when it names a real day (2026-02-30 does not), else null.
export function parseDay(text) {
  const m = /^\s*(\d{4})-(\d{2})-(\d{2})\s*$/.exec(text || "");
  if (!m) return null;
  const d = new Date(Date.UTC(+m[1], +m[2] - 1, +m[3]));
  return d.getUTCFullYear() === +m[1] && d.getUTCMonth() === +m[2] - 1 && d.getUTCDate() === +m[3]
    ? `${m[1]}-${m[2]}-${m[3]}` : null;
}

// The day ``n`` days after the "YYYY-MM-DD" ``day`` (a calendar step: no clock or zone involved).
export function addDays(day, n) {
  const [y, mo, d] = day.split("-").map(Number);
  return new Date(Date.UTC(y, mo - 1, d + n)).toISOString().slice(0, 10);
}

// "YYYY-MM-DD HH:MM[:SS]" (24-hour; a "T" for the space is taken too), read as mine time, to
// seconds since the epoch. NaN for anything else, an hour past 23 included.
export function fromMineLocal(text) {
  const m = /^\s*(\d{4})-(\d{2})-(\d{2})[T ](\d{2}):(\d{2})(?::(\d{2}))?\s*$/.exec(text || "");
  if (!m || +m[4] > 23 || +m[5] > 59 || +(m[6] || 0) > 59) return NaN;
  const off = window.MWCharts.tzOffset();
  const utc = Date.UTC(+m[1], +m[2] - 1, +m[3], +m[4], +m[5], +(m[6] || 0)) / 1000;
  return off == null ? new Date(+m[1], +m[2] - 1, +m[3], +m[4], +m[5], +(m[6] || 0)).getTime() / 1000 : utc - off * 3600;
}

// Seconds since the epoch as "YYYY-MM-DD HH:MM:SS" in mine time (24-hour).
export function toMineLocal(sec) {
  const d = mineDate(sec);
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())} ${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}`;
}

export function fmtTime(ns, withDate = false) {
  if (ns == null) return "–";
  const d = mineDate(Number(ns) / 1e9);
  const t = `${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}`;
  return withDate ? `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())} ${t}` : t;
}

export function fmtAge(ns, nowMs = Date.now()) {
  if (ns == null) return "no data";
  const s = Math.max(0, Math.round(nowMs / 1000 - Number(ns) / 1e9));
  if (s < 60) return `${s} s ago`;
  if (s < 3600) return `${Math.floor(s / 60)} min ago`;
  if (s < 86400) return `${Math.floor(s / 3600)} h ago`;
  return `${Math.floor(s / 86400)} d ago`;
}

// Text and a shape for each severity, so colour is never the only cue.
export const SEV_TEXT = {
  critical: "CRITICAL", alarm: "ALARM", warning: "WARNING", info: "INFO", ok: "OK", stale: "NO DATA",
  unwatched: "NOT WATCHED",
};
export const SEV_ICON = { critical: "■", alarm: "▲", warning: "●", info: "i", ok: "✓", stale: "?", unwatched: "⊘" };

// Why a place is not watched, in short words (the watch states of the API and the ingestor).
export const WATCH_REASON = {
  no_data: "no data", no_ingest: "ingest down", detectors_off: "detectors off", not_detected: "not checked",
  watched: "watched",
};

export const STATE_TEXT = { raised: "raised", escalated: "escalated", acknowledged: "acknowledged", cleared: "cleared" };

export function el(tag, attrs = {}, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v === undefined || v === null || v === false) continue;
    if (k === "class") e.className = v;
    else if (k === "text") e.textContent = v;
    else if (k.startsWith("on") && typeof v === "function") e.addEventListener(k.slice(2), v);
    else e.setAttribute(k, v === true ? "" : v);
  }
  for (const c of children.flat()) if (c !== null && c !== undefined && c !== false) e.append(c);
  return e;
}
