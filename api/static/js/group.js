// The group view: every mine of the group as the centre sees it, and every mine's open incidents
// (GET /group/mines, GET /group/incidents of `minewatch api --group`), refreshed every 5 s. Each
// mine links to its own board when the centre was started with --board-url.

import { api, listOf, takeKeyFromUrl } from "./api.js";

const EVERY_MS = 5000;
const QUIET_S = 15; // three of the workers' 5 s watch refreshes

function cell(tr, text, cls) {
  const td = document.createElement("td");
  td.textContent = text;
  if (cls) td.className = cls;
  tr.appendChild(td);
  return td;
}

function heard(m) {
  if (m.quiet_s === null || m.quiet_s === undefined) return "never";
  const s = Math.round(m.quiet_s);
  return s < 2 ? "now" : `${s} s ago`;
}

function mineRow(m) {
  const tr = document.createElement("tr");
  tr.dataset.mine = m.mine;
  const quiet = m.quiet_s === null || m.quiet_s > QUIET_S;
  tr.classList.toggle("quiet", quiet);
  cell(tr, m.mine, "mine");
  cell(tr, String(m.open_incidents), "open");
  cell(tr, String(m.unacknowledged_incidents), m.unacknowledged_incidents ? "needs-ack" : "");
  for (const sev of ["critical", "alarm", "warning"]) {
    cell(tr, String(m.incidents_by_severity[sev] || 0), m.incidents_by_severity[sev] ? `sev-${sev}` : "");
  }
  cell(tr, String(m.active_alerts), "alerts");
  cell(tr, m.not_watched.length ? m.not_watched.join(", ") : "-", "not-watched");
  cell(tr, heard(m), quiet ? "heard stale" : "heard");
  const td = cell(tr, "", "board");
  if (m.board_url) {
    const a = document.createElement("a");
    a.href = m.board_url;
    a.textContent = "board";
    td.appendChild(a);
  }
  return tr;
}

function incidentRow(i) {
  const tr = document.createElement("tr");
  tr.dataset.incident = i.incident_id;
  cell(tr, i.mine, "mine");
  cell(tr, i.severity, `sev-${i.severity}`);
  cell(tr, i.needs_ack ? "yes" : "", i.needs_ack ? "needs-ack" : "");
  cell(tr, i.title, "title");
  return tr;
}

async function refresh() {
  const error = document.getElementById("group-error");
  try {
    const [mines, incidents] = await Promise.all([api("/group/mines"), api("/group/incidents")]);
    document.querySelector("#mines tbody").replaceChildren(...listOf(mines).map(mineRow));
    document.querySelector("#incidents tbody").replaceChildren(...listOf(incidents).map(incidentRow));
    const need = listOf(incidents).filter((i) => i.needs_ack).length;
    document.getElementById("group-summary").textContent =
      `${listOf(mines).length} mines, ${incidents.count} open incidents, ${need} to acknowledge`;
    document.getElementById("group-updated").textContent = `updated ${new Date().toISOString().slice(11, 19)} UTC`;
    error.textContent = "";
  } catch (e) {
    error.textContent = `could not load the group view: ${e.message}`;
  }
}

takeKeyFromUrl();
refresh();
setInterval(refresh, EVERY_MS);
