// The alert list (newest first) and acknowledging an alert.

import { api } from "./api.js";
import { state, alertsSorted, applyAlert, on, rank, emit } from "./store.js";
import { el, fmtTime, fmtValue, shortLabel, SEV_TEXT, SEV_ICON, STATE_TEXT } from "./format.js";

const OPERATOR = "minewatch.operator";
// Acknowledgements sent whose confirmation (the acknowledged event from the ingestor) is still
// to come: alert_id -> operator.
const pendingAcks = new Map();

function valueLine(a) {
  if (a.value == null) return null;
  const v = fmtValue(a.channel, a.value, a.unit);
  const lim = a.limit != null ? ` (limit ${fmtValue(a.channel, a.limit, a.unit)})` : "";
  return el("div", { class: "a-value", text: v + lim });
}

export function alertRow(a, { compact = false, onAck = null } = {}) {
  const scn = state.scenarios.get(a.scenario_id);
  const where = [a.scenario_id, a.channel ? shortLabel(a.channel) : a.kind].join(" · ");
  const open = (a.state === "raised" || a.state === "escalated") && !a.acknowledged_by;
  const pending = open && pendingAcks.has(a.alert_id);
  const canAck = onAck && open && !pending && state.me?.acknowledge === true;
  return el("li", {
    class: `alert sev-${a.severity} st-${a.state}`, "data-alert-id": a.alert_id, "data-state": a.state,
    "data-severity": a.severity, "data-scenario-id": a.scenario_id, "data-ack-pending": pending ? "true" : null,
  },
  el("div", { class: "a-head" },
    el("span", { class: "badge" }, el("span", { class: "icon", "aria-hidden": "true", text: SEV_ICON[a.severity] }), ` ${SEV_TEXT[a.severity]}`),
    el("a", { class: "a-where", href: `#/scenario/${encodeURIComponent(a.scenario_id)}`, text: where, title: scn ? scn.name : "" }),
    el("span", { class: "a-state", text: STATE_TEXT[a.state] ?? a.state }),
    el("time", { class: "a-time", datetime: new Date(Number(a.ts) / 1e6).toISOString(), text: fmtTime(a.ts), title: `first ${fmtTime(a.first_ts, true)}` })),
  valueLine(a),
  compact ? null : el("p", { class: "a-msg", text: a.message }),
  a.state === "acknowledged" && (a.operator || a.note)
    ? el("div", { class: "a-ack", text: `acknowledged by ${a.operator ?? "?"}${a.note ? ": " + a.note : ""}` })
    : a.acknowledged_by && a.state !== "cleared"
      ? el("div", { class: "a-ack", text: `acknowledged by ${a.acknowledged_by}, ${a.state} since` }) : null,
  pending ? el("div", { class: "a-ack", text: `acknowledgement sent by ${pendingAcks.get(a.alert_id)}, waiting for confirmation` }) : null,
  canAck ? el("button", { type: "button", class: "ack", onclick: () => onAck(a), text: "Acknowledge" }) : null);
}

// Rows drawn at most; an alert flood must not freeze the page (the count says what is left out).
const MAX_ROWS = 200;

export function renderList(ol, empty, opts) {
  for (const id of pendingAcks.keys()) {
    const a = state.alerts.get(id);
    if (!a || a.acknowledged_by || (a.state !== "raised" && a.state !== "escalated")) pendingAcks.delete(id);
  }
  const list = alertsSorted(opts);
  const rows = list.slice(0, MAX_ROWS).map((a) => alertRow(a, { onAck: openAck, compact: opts.compact }));
  if (list.length > MAX_ROWS) rows.push(el("li", { class: "more muted", text: `${list.length - MAX_ROWS} older alerts not shown` }));
  ol.replaceChildren(...rows);
  if (empty) empty.hidden = list.length > 0;
}

// --- acknowledge ---------------------------------------------------------------------------

let current = null;

export function openAck(a) {
  current = a;
  const dialog = document.getElementById("ack-dialog");
  document.getElementById("ack-message").textContent = a.message;
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
  try {
    const res = await api(`/alerts/${encodeURIComponent(current.alert_id)}/ack`, { method: "POST", body: { operator, note } });
    // The API answers with the acknowledged event, or with {status: "pending"} when the
    // ingestor has not confirmed it yet (the event then comes over the stream).
    if (res && res.state) applyAlert(res);
    else { pendingAcks.set(current.alert_id, operator); emit("alerts", state.alerts.get(current.alert_id)); }
    document.getElementById("ack-dialog").close();
    current = null;
  } catch (e) {
    error.textContent = e.status === 403 ? "This key may not acknowledge alerts (an operator or engineer key is needed)."
      : `Not acknowledged: ${e.message}`;
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

export function mountAlerts() {
  const ol = document.getElementById("alert-list");
  const empty = document.getElementById("alert-empty");
  const cleared = document.getElementById("show-cleared");
  const draw = () => renderList(ol, empty, { includeCleared: cleared.checked });
  on("alerts", (a) => {
    draw();
    if (a && (a.state === "raised" || a.state === "escalated") && rank(a.severity) >= rank("alarm")) beep(a.severity);
  });
  on("scenarios", draw);
  cleared.addEventListener("change", draw);
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
