// The robots: online, battery, 5G link, where.

import { state, on } from "./store.js";
import { el, fmtAge } from "./format.js";

// Battery below this is flagged on the board; the robot-health detector owns the alert itself.
const LOW_BATTERY = 20;

export function robotCells(r) {
  const online = r.online !== false;
  const battery = r.battery == null ? "–" : `${Math.round(r.battery)} %`;
  const link = r.link ? `${Math.round(r.link.latency_ms)} ms · ${Math.round(r.link.rssi_dbm)} dBm` : "–";
  const where = r.scenario_id ? `${r.scenario_id}${r.pos_m != null ? ` @ ${Math.round(r.pos_m)} m` : ""}` : "–";
  return { online, battery, link, where };
}

function row(r) {
  const c = robotCells(r);
  const low = r.battery != null && r.battery < LOW_BATTERY;
  return el("tr", { "data-robot-id": r.robot_id, "data-online": String(c.online), class: c.online ? "" : "offline" },
    el("th", { scope: "row", text: r.robot_id }),
    el("td", { class: c.online ? "on" : "off", text: c.online ? (r.charging ? "charging" : "online") : "OFFLINE",
               title: (r.status_ts ?? r.ts) ? `last status ${fmtAge(r.status_ts ?? r.ts)}` : "" }),
    el("td", { class: low ? "low" : "", text: low ? `${c.battery} low` : c.battery }),
    el("td", { text: c.link }),
    el("td", {}, r.scenario_id ? el("a", { href: `#/scenario/${encodeURIComponent(r.scenario_id)}`, text: c.where }) : c.where));
}

export function mountRobots() {
  const tbody = document.querySelector("#robots tbody");
  const draw = () => {
    const list = [...state.robots.values()].sort((a, b) => String(a.robot_id).localeCompare(String(b.robot_id)));
    tbody.replaceChildren(...(list.length ? list.map(row) : [el("tr", {}, el("td", { colspan: "5", class: "muted", text: "No robots reported yet." }))]));
  };
  on("robots", draw);
  draw();
}
