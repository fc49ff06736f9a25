// The incident worklist: one row per incident (the alerts of one place with one cause), in the
// order an operator works them, each row opening onto its member alerts; acknowledging an
// incident (one acknowledgement covers its alerts); the sound for new alarms.

import { api } from "./api.js";
import { state, on, rank, emit, isOpen, incidentsSorted, applyIncident } from "./store.js";
import { el, fmtTime, fmtValue, shortLabel, SEV_TEXT, SEV_ICON } from "./format.js";

const OPERATOR = "minewatch.operator";
// Acknowledgements sent whose confirmation (the acknowledged step from the ingestor) is still to
// come: incident_id -> operator.
const pendingAcks = new Map();
// Incidents whose member alerts are shown, whichever list they are in.
const expanded = new Set();
// Rows drawn at most; an alarm flood must not freeze the page (the count says what is left out).
const MAX_ROWS = 200;

// --- what a row says -----------------------------------------------------------------------

const isRate = (m) => m.detector === "rate_of_rise" || /\/min$/.test(m.unit ?? "");

// A limit as the rule writes it (1.0, 1.5, 0.75, 24), with its unit.
function fmtLimit(v, unit) {
  const n = Number(v);
  const text = Number.isInteger(n) && Math.abs(n) < 10 ? n.toFixed(1) : String(Math.round(n * 1000) / 1000);
  return `${text}${unit ? " " + unit : ""}`;
}

// A member's value against its limit: "1.62 % (limit 1.5 %)"; a rate of rise as a rate,
// "rising 0.35 %/min (limit 0.2 %/min)".
export function valueText(m) {
  if (m.value === null || m.value === undefined) return "";
  const lim = m.limit != null ? ` (limit ${fmtLimit(m.limit, m.unit)})` : "";
  if (isRate(m)) return `rising ${fmtValue(null, m.value, m.unit)}${lim}`;
  return fmtValue(m.channel, m.value, m.unit) + lim;
}

// A member as the incident step listed it, or as its own alert events have it since, if newer.
function memberNow(m) {
  const a = state.alerts.get(m.alert_id);
  if (!a || Number(a.ts) < Number(m.ts)) return m;
  return {
    ...m, severity: a.severity, state: a.state, active: a.state !== "cleared", value: a.value, limit: a.limit,
    unit: a.unit, message: a.message, ts: a.ts, timing: a.timing, detected_ts: a.detected_ts,
    operator: a.operator, evidence: a.evidence,
  };
}

// The member that speaks for the incident: the most severe active one, the latest of those
// (as the incident's own message is chosen).
function worstOf(members) {
  const active = members.filter((m) => m.state !== "cleared");
  let worst = null;
  for (const m of active.length ? active : members) {
    if (!worst || rank(m.severity) > rank(worst.severity)
        || (m.severity === worst.severity && Number(m.ts) > Number(worst.ts))) worst = m;
  }
  return worst;
}

function memberLabel(m) {
  const what = m.channel ? shortLabel(m.channel) : m.robot_id ? `robot ${m.robot_id}` : m.kind;
  return isRate(m) ? `${what} rate of rise` : what;
}

const badge = (sev, cls = "badge") =>
  el("span", { class: `${cls} sev-${sev}` }, el("span", { class: "icon", "aria-hidden": "true", text: SEV_ICON[sev] }),
    ` ${SEV_TEXT[sev] ?? sev}`);

const timeEl = (ns, label) => el("time", {
  datetime: new Date(Number(ns) / 1e6).toISOString(), title: `${label} ${fmtTime(ns, true)}`, text: fmtTime(ns),
});

// A late report (from a robot's backlog): when it happened and when it was reported.
const happened = (x) => el("span", { class: "i-happened" }, "happened ", timeEl(x.first_ts ?? x.ts, "happened"));
const reported = (x) => (x.detected_ts != null
  ? el("span", { class: "i-reported" }, "reported ", timeEl(x.detected_ts, "reported")) : null);

function memberRow(m) {
  const late = m.timing === "late";
  return el("li", {
    class: `member sev-${m.severity} st-${m.state}`, "data-alert-id": m.alert_id, "data-state": m.state,
    "data-severity": m.severity, "data-timing": m.timing ?? null,
  },
  el("div", { class: "m-head" },
    badge(m.severity),
    el("span", { class: "m-what", text: memberLabel(m) }),
    el("span", { class: "m-value", text: valueText(m) }),
    el("span", { class: "m-right" },
      late ? el("span", { class: "chip late", text: "LATE" }) : null,
      el("span", { class: "m-state", text: m.state }),
      timeEl(m.ts, m.state))),
  el("p", { class: "m-msg", text: m.message }),
  late ? el("p", { class: "m-late muted" }, happened(m), reported(m) ? [", ", reported(m)] : null) : null);
}

function stateChip(inc, open, notice) {
  if (!open) return el("span", { class: "chip", text: inc.gone ? "GONE" : "CLEARED" });
  if (notice) return el("span", { class: "chip", text: "NOTICE" });
  if (inc.needs_ack) return el("span", { class: "chip attn", text: inc.state === "escalated" ? "ESCALATED" : "NEW" });
  return null;
}

function rowContent(inc, listId) {
  const id = inc.incident_id;
  const open = isOpen(inc);
  const members = (inc.members ?? []).map(memberNow);
  const active = members.filter((m) => m.state !== "cleared");
  const worst = worstOf(members);
  const notice = open && !inc.needs_ack && inc.severity === "info";
  const pending = open && inc.needs_ack && pendingAcks.has(id);
  const canAck = open && inc.needs_ack && !pending && state.me?.acknowledge === true;
  const late = inc.timing === "late";
  const membersId = `${listId}-${id}`; // the same incident may be in two lists (board, scenario view)
  const isOpenRow = expanded.has(id);

  let right = null;
  if (canAck) {
    right = el("button", { type: "button", class: "ack", "data-focus": "ack", onclick: () => openAck(inc),
                           "aria-label": `Acknowledge: ${inc.title}`, text: "Acknowledge" });
  } else if (pending) {
    right = el("span", { class: "i-ack", text: `sent by ${pendingAcks.get(id)}, waiting` });
  } else if (open && inc.needs_ack) {
    right = el("span", { class: "chip attn", text: "TO ACKNOWLEDGE" });
  } else if (inc.acknowledged_by) {
    right = el("span", { class: "i-ack", title: inc.acknowledged_ts != null
      ? `at ${fmtTime(inc.acknowledged_ts, true)}${inc.note ? ": " + inc.note : ""}` : inc.note ?? "",
    text: `acknowledged by ${inc.acknowledged_by}` });
  }

  const value = worst ? valueText(worst) : "";
  const count = active.length === members.length ? `${members.length} alert${members.length === 1 ? "" : "s"}`
    : `${members.length} alerts, ${active.length} active`;
  const facts = el("div", { class: "i-facts" },
    value ? el("span", { class: "i-value", text: value }) : null,
    el("span", { class: "i-count", text: count }),
    late ? happened(inc)
      : el("span", { class: "i-when" }, timeEl(inc.first_ts, "started"),
        fmtTime(inc.ts) !== fmtTime(inc.first_ts) ? [" → ", timeEl(inc.ts, open ? "last change" : "cleared")] : null),
    open && inc.needs_ack && inc.acknowledged_by
      ? el("span", { class: "i-ack", text: `acknowledged by ${inc.acknowledged_by} before it escalated` }) : null);

  return [
    el("div", { class: "i-head" },
      badge(inc.severity),
      late ? el("span", { class: "chip late", title: "reported late, from a robot's backlog", text: "LATE" }) : null,
      late ? reported(inc) : null,
      stateChip(inc, open, notice),
      el("span", { class: "i-right" }, right)),
    el("button", { type: "button", class: "i-title", "data-focus": "toggle", "aria-expanded": String(isOpenRow),
                   "aria-controls": membersId, title: `${inc.title}: ${inc.message}` },
      el("span", { class: "caret", "aria-hidden": "true", text: isOpenRow ? "▾" : "▸" }),
      el("span", { class: "i-title-text", text: inc.title })),
    facts,
    el("ol", { class: "i-members", id: membersId, hidden: !isOpenRow, "aria-label": `alerts of ${inc.title}` },
      members.map(memberRow)),
  ];
}

function paintRow(li, inc, listId) {
  const open = isOpen(inc);
  const notice = open && !inc.needs_ack && inc.severity === "info";
  li.className = ["inc", `sev-${inc.severity}`, open ? (inc.needs_ack ? "needs-ack" : notice ? "notice" : "acked") : "closed",
    inc.timing === "late" ? "late" : ""].filter(Boolean).join(" ");
  li.dataset.incidentId = inc.incident_id;
  li.dataset.severity = inc.severity;
  li.dataset.needsAck = String(open && !!inc.needs_ack);
  li.dataset.state = open ? inc.state : "cleared";
  li.dataset.scenarioId = inc.scenario_id;
  li.dataset.cause = inc.cause;
  li.dataset.timing = inc.timing ?? "live";
  if (open && inc.needs_ack && pendingAcks.has(inc.incident_id)) li.dataset.ackPending = "true";
  else delete li.dataset.ackPending;
  // keep the keyboard where it was when the row is drawn again
  const focus = li.contains(document.activeElement) ? document.activeElement.dataset.focus : null;
  li.replaceChildren(...rowContent(inc, listId));
  if (focus) li.querySelector(`[data-focus="${focus}"]`)?.focus();
}

// Open or close a row's list of members, at once (not at the next drawing).
function toggle(id, li) {
  const open = !expanded.has(id);
  if (open) expanded.add(id); else expanded.delete(id);
  li.querySelector(".i-members").hidden = !open;
  li.querySelector(".i-title").setAttribute("aria-expanded", String(open));
  li.querySelector(".i-title .caret").textContent = open ? "▾" : "▸";
}

// Rows are kept per incident and moved, not rebuilt from scratch, so the row an operator is on
// (its focus, whether it is open) stays put while steps come in.
const lists = new WeakMap(); // <ol> -> Map(key -> <li>)

function separator(key, text) {
  return el("li", { class: "i-sep", "data-sep": key.slice(4), text });
}

export function renderWorklist(ol, empty, { includeCleared = false, scenario = null } = {}) {
  for (const id of pendingAcks.keys()) {
    const i = state.incidents.get(id);
    if (!i || !isOpen(i) || !i.needs_ack) pendingAcks.delete(id);
  }
  let rows = lists.get(ol);
  if (!rows) { rows = new Map(); lists.set(ol, rows); }
  const all = incidentsSorted({ includeCleared, scenario });
  const list = all.slice(0, MAX_ROWS);
  const want = [];
  let section = "alarms";
  for (const inc of list) {
    const open = isOpen(inc);
    const here = !open ? "cleared" : !inc.needs_ack && inc.severity === "info" ? "notices" : "alarms";
    if (here !== section) {
      section = here;
      const key = `sep:${here}`;
      if (!rows.has(key)) rows.set(key, separator(key, here === "notices" ? "Notices: no action needed" : "Cleared"));
      want.push(key);
    }
    let li = rows.get(inc.incident_id);
    if (!li) {
      const id = inc.incident_id;
      li = el("li", {
        onclick: (ev) => {
          if (!ev.target.closest(".i-title") && ev.target.closest("button, a, .i-members")) return;
          toggle(id, ev.currentTarget);
        },
      });
      rows.set(id, li);
    }
    paintRow(li, inc, ol.id);
    want.push(inc.incident_id);
  }
  if (all.length > MAX_ROWS) {
    const key = "sep:more";
    rows.set(key, separator(key, `${all.length - MAX_ROWS} more not shown`));
    want.push(key);
  }
  const keep = new Set(want);
  for (const [key, li] of rows) if (!keep.has(key)) { li.remove(); rows.delete(key); }
  let at = ol.firstChild;
  for (const key of want) {
    const li = rows.get(key);
    if (li === at) at = at.nextSibling;
    else ol.insertBefore(li, at);
  }
  if (empty) empty.hidden = list.length > 0;
}

// --- acknowledge ---------------------------------------------------------------------------

let current = null;

export function openAck(inc) {
  current = inc;
  const dialog = document.getElementById("ack-dialog");
  const active = (inc.members ?? []).map(memberNow).filter((m) => m.state !== "cleared").length;
  document.getElementById("ack-title").textContent = "Acknowledge incident";
  document.getElementById("ack-message").replaceChildren(
    el("strong", { text: inc.title }), el("br"), inc.message, el("br"),
    el("span", { class: "muted", text: `This acknowledges its ${active} active alert${active === 1 ? "" : "s"}.` }));
  const op = document.getElementById("ack-operator");
  op.value = sessionStorage.getItem(OPERATOR) || "";
  document.getElementById("ack-note").value = "";
  document.getElementById("ack-error").textContent = "";
  document.getElementById("ack-submit").disabled = false;
  dialog.showModal();
  (op.value ? document.getElementById("ack-note") : op).focus();
}

async function submitAck(ev) {
  ev.preventDefault();
  if (!current) return;
  const operator = document.getElementById("ack-operator").value.trim();
  const note = document.getElementById("ack-note").value.trim();
  const error = document.getElementById("ack-error");
  if (!operator) { error.textContent = "Enter your name."; return; }
  sessionStorage.setItem(OPERATOR, operator);
  const button = document.getElementById("ack-submit");
  button.disabled = true;
  const id = current.incident_id;
  try {
    const res = await api(`/incidents/${encodeURIComponent(id)}/ack`, { method: "POST", body: { operator, note } });
    // The API answers with the acknowledged incident, or with {status: "pending"} when the
    // ingestor has not confirmed it yet (the step then comes over the stream).
    if (res && res.state) applyIncident(res);
    else { pendingAcks.set(id, operator); emit("incidents", state.incidents.get(id)); }
    document.getElementById("ack-dialog").close();
    current = null;
  } catch (e) {
    error.textContent = e.status === 403 ? "This key may not acknowledge (an operator or engineer key is needed)."
      : e.status === 409 ? `Nothing to acknowledge: ${e.message}`
        : e.status === 404 ? "This incident is no longer open." : `Not acknowledged: ${e.message}`;
    button.disabled = false;
  }
}

// --- sound ---------------------------------------------------------------------------------

let audio = null;
let soundOn = false;

function beep(sev) {
  if (!soundOn) return;
  audio = audio || new AudioContext();
  const o = audio.createOscillator();
  const g = audio.createGain();
  o.frequency.value = sev === "critical" ? 880 : 660;
  g.gain.value = 0.15;
  o.connect(g).connect(audio.destination);
  o.start();
  o.stop(audio.currentTime + (sev === "critical" ? 0.6 : 0.25));
}

// Draw `fn` once for a burst of changes (a timer, not an animation frame: a control-room page in
// a background tab must still be current when it is looked at).
export function coalesce(fn) {
  let timer = 0;
  return () => {
    if (timer) return;
    timer = setTimeout(() => { timer = 0; fn(); }, 0);
  };
}

export function mountWorklist() {
  const ol = document.getElementById("incident-list");
  const empty = document.getElementById("incident-empty");
  const cleared = document.getElementById("show-cleared");
  const draw = coalesce(() => renderWorklist(ol, empty, { includeCleared: cleared.checked }));
  on("incidents", (i) => {
    draw();
    if (i && isOpen(i) && i.needs_ack && (i.state === "raised" || i.state === "escalated")
        && rank(i.severity) >= rank("alarm")) beep(i.severity);
  });
  on("alerts", draw);
  on("me", draw);
  cleared.addEventListener("change", () => { draw(); emit("show-cleared", cleared.checked); });
  document.getElementById("ack-form").addEventListener("submit", submitAck);
  document.getElementById("ack-cancel").addEventListener("click", () => { document.getElementById("ack-dialog").close(); current = null; });
  const sound = document.getElementById("sound-toggle");
  sound.addEventListener("click", () => {
    soundOn = !soundOn;
    sound.setAttribute("aria-pressed", String(soundOn));
    sound.textContent = soundOn ? "Sound on" : "Sound off";
    if (soundOn) { audio = audio || new AudioContext(); audio.resume(); }
  });
  draw();
}
