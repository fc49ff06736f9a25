"""Ground truth: for every injected fault, where and when the data really deviates.

One JSON line per fault and affected scenario (a fan stoppage affects the fan room and every
place its split ventilates)::

    {"fault_id": "f01-methane_outburst-mf01", "kind": "methane_outburst", "scenario_id": "mf01",
     "robot_id": "r01", "primary": true, "channels": ["ch4_t0", "ch4_t1", "ch4_t2", "ch4_shearer"],
     "start_ns": ..., "end_ns": ..., "inject_start_ns": ..., "inject_end_ns": ...,
     "channel_windows": {"ch4_t1": [start_ns, end_ns], ...}, "extremes": {"ch4_t1": 1.89, ...},
     "expected_severity": "critical",
     "expected_alerts": [{"kind": "gas", "detector": "limit", "channel": "ch4_t1", "severity": "critical",
                          "limit": 1.5}, ...]}

Windows: for physics faults, ``channel_windows`` holds, per channel, the first and last frame
time at which the fault moved the channel's true value by at least half its resolution
(measured on the fault's own row of the mine's twin against the fault-free row, see
:mod:`simulator.mine`); ``start_ns``/``end_ns`` span the windows of the channels that should
alert (of all labelled channels when none should). For sensor faults: when the sensor's reading
was altered; for fleet faults: the frames the robot lost or held back. ``extremes`` is the
fault's value farthest from the fault-free one, per channel, and ``deviation`` how far that is. ``expected_alerts`` lists what
a correct system
raises: catalogue limit crossings of those extremes plus the fault's own signature (fan
stoppage, airflow reversal, bearing defect frequency, sensor health, robot offline).
``expected_severity`` is the highest of them (``info`` when nothing should alert).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from minewatch.catalogue import QUANTITIES, SCENARIOS, Limit
from minewatch.schema import SEVERITY_RANK, Severity
from simulator.faults import FLEET, PHYSICS, SENSOR, ActiveFault
from simulator.injector import imbalance_peak
from simulator.mine import Mine
from simulator.vibration import DEFECT_ORDER, Health, fault_frequency_hz, iso_zone, velocity_rms_mm_s

__all__ = ["LabelTracker", "limit_severity", "quantity_kind"]



def quantity_kind(quantity: str) -> str:
    """The alert kind a limit on this quantity raises (gas, ventilation, or equipment → vibration):
    its kind's (:attr:`minewatch.catalogue.QuantityKind.alert_kind`)."""
    return QUANTITIES[quantity].kind.alert_kind


def limit_severity(limit: Limit, lo: float, hi: float) -> tuple[str, float] | None:
    """The most severe level of ``limit`` crossed by a value ranging over [lo, hi]."""
    best: tuple[str, float] | None = None
    for sev, thr in limit.levels:
        crossed = hi >= thr if limit.direction == "above" else lo < thr
        if crossed and (best is None or SEVERITY_RANK[Severity(sev)] > SEVERITY_RANK[Severity(best[0])]):
            best = (sev, thr)
    return best


class _Track:
    def __init__(self, n: int) -> None:
        self.first = np.full(n, -1, dtype=np.int64)
        self.last = np.full(n, -1, dtype=np.int64)
        self.hi = np.full(n, -np.inf)
        self.lo = np.full(n, np.inf)
        self.dev = np.zeros(n)  # largest |faulted - nominal|
        self.far = np.zeros(n)  # the faulted value there
        self.closed = False


class LabelTracker:
    """Measures each fault's footprint as the run goes; :meth:`labels` gives the JSONL records."""

    def __init__(self, mine: Mine, faults: list[ActiveFault], robot_of: dict[str, str | None],
                 reach: Any = None, spread_ns: int = 0, will_after_ns: int = 0) -> None:
        self.mine = mine
        self.will_after_ns = will_after_ns  # a link down this long makes the broker publish the will
        self.spread_ns = spread_ns  # frames of one tick carry times up to this much after it
        self.faults = faults
        self.robot_of = robot_of
        self.thr = 0.5 * mine.res
        self.tracks = {f.fault_id: _Track(mine.K) for f in faults}
        everywhere = np.ones(mine.K, dtype=bool)
        self.reach = {f.fault_id: reach(f) if reach is not None and f.kind in PHYSICS else everywhere for f in faults}
        self.physics = [f for f in faults if f.kind in PHYSICS]
        self._reach_rows = np.array([self.reach[f.fault_id] for f in self.physics]).reshape(len(self.physics), mine.K)
        self.sensor_seen: dict[str, list[tuple[int, float]]] = {f.fault_id: [] for f in faults if f.kind in SENSOR}
        self.fleet_seen: dict[str, list[int]] = {f.fault_id: [] for f in faults if f.kind in FLEET}
        self._emitted: set[str] = set()

    def observe(self, t_ns: int, values: np.ndarray) -> None:
        """Record the twin's deviation at ``t_ns`` against every physics fault still showing.

        Each fault is measured on its own row of the twin (that fault alone against no fault), inside
        its reach, from its start until, after its end, no deviation is left."""
        live = [f for f in self.physics if t_ns >= f.start_ns and not self.tracks[f.fault_id].closed]
        if not live:
            return
        rows = values[[f.row for f in live]]
        dev = np.abs(rows - values[0])
        moved = (dev > self.thr) & self._reach_rows[[self.physics.index(f) for f in live]]
        any_moved = moved.any(axis=1)
        for j, f in enumerate(live):
            tr = self.tracks[f.fault_id]
            if not any_moved[j]:
                if t_ns >= f.end_ns:
                    tr.closed = True
                continue
            idx = np.flatnonzero(moved[j])
            row, d = rows[j], dev[j]
            tr.first[idx] = np.where(tr.first[idx] < 0, t_ns, tr.first[idx])
            tr.last[idx] = t_ns
            tr.hi[idx] = np.maximum(tr.hi[idx], row[idx])
            tr.lo[idx] = np.minimum(tr.lo[idx], row[idx])
            bigger = idx[d[idx] > tr.dev[idx]]
            tr.dev[bigger] = d[bigger]
            tr.far[bigger] = row[bigger]

    def observe_reading(self, f: ActiveFault, t_ns: int, value: float) -> None:
        self.sensor_seen[f.fault_id].append((t_ns, value))

    def observe_fleet(self, f: ActiveFault, t_ns: int) -> None:
        self.fleet_seen[f.fault_id].append(t_ns)

    # ------------------------------------------------------------------ records
    def labels(self) -> list[dict[str, Any]]:
        """Every fault's records as they stand (final once the run is over)."""
        return [rec for f in self.faults for rec in self._records(f)]

    def done(self, t_ns: int) -> list[dict[str, Any]]:
        """Records of the faults that finished showing since the last call, for writing as the run
        goes: a physics fault once no deviation of it is left, others once their window is over."""
        out = []
        for f in self.faults:
            if f.fault_id in self._emitted:
                continue
            over = self.tracks[f.fault_id].closed if f.kind in PHYSICS else t_ns > f.end_ns + self.spread_ns
            if over:
                self._emitted.add(f.fault_id)
                out.extend(self._records(f))
        return out

    def rest(self) -> list[dict[str, Any]]:
        """Records of the faults not yet given by :meth:`done` (at the end of a run)."""
        out = [rec for f in self.faults if f.fault_id not in self._emitted for rec in self._records(f)]
        self._emitted.update(f.fault_id for f in self.faults)
        return out

    def _records(self, f: ActiveFault) -> list[dict[str, Any]]:
        if f.kind in PHYSICS:
            return self._physics(f)
        return [self._sensor(f) if f.kind in SENSOR else self._fleet(f)]

    def _base(self, f: ActiveFault, sid: str | None, primary: bool = True) -> dict[str, Any]:
        return {"fault_id": f.fault_id, "kind": f.kind, "scenario_id": sid,
                "robot_id": f.robot if f.robot else self.robot_of.get(sid) if sid else None,
                "primary": primary, "channels": [], "start_ns": f.start_ns, "end_ns": f.end_ns,
                "inject_start_ns": f.start_ns, "inject_end_ns": f.end_ns, "channel_windows": {},
                "extremes": {}, "deviation": {}, "expected_severity": "info", "expected_alerts": [], "visible": True}

    def _physics(self, f: ActiveFault) -> list[dict[str, Any]]:
        m = self.mine
        tr = self.tracks[f.fault_id]
        touched = np.flatnonzero(tr.first >= 0)
        by_scenario: dict[str, list[int]] = {}
        for k in touched.tolist():
            by_scenario.setdefault(m.scenario_ids[m.place_of[k]], []).append(k)
        if f.scenario not in by_scenario:
            rec = self._base(f, f.scenario)
            rec["visible"] = False
            rec["channels"] = [f.channel] if f.channel else []
            self._signature(f, rec)
            return [rec]
        order = [f.scenario] + [s for s in m.scenario_ids if s in by_scenario and s != f.scenario]
        out = []
        for sid in order:
            ks = by_scenario[sid]
            rec = self._base(f, sid, primary=sid == f.scenario)
            rec["channels"] = [m.names[k] for k in ks]
            rec["channel_windows"] = {m.names[k]: [int(tr.first[k]), int(tr.last[k]) + self.spread_ns] for k in ks}
            for k in ks:
                ch = SCENARIOS[sid].channel(m.names[k])
                rec["extremes"][ch.name] = round(float(tr.far[k]), 4)
                rec["deviation"][ch.name] = round(float(tr.dev[k]), 4)
                for lim in ch.limits:
                    hit = limit_severity(lim, float(tr.lo[k]), float(tr.hi[k]))
                    if hit:
                        rec["expected_alerts"].append({"kind": quantity_kind(ch.quantity), "detector": "limit",
                                                       "channel": ch.name, "severity": hit[0], "limit": hit[1]})
            if "ws" in rec["channels"] and tr.lo[m.channel_index(sid, "ws")] < 0 < m.value[0, m.channel_index(sid, "ws")]:
                rec["expected_alerts"].append({"kind": "ventilation", "detector": "airflow_reversal", "channel": "ws",
                                               "severity": "alarm"})
            if rec["primary"]:
                self._signature(f, rec)
            self._finish(rec)
            self._window(rec)
            out.append(rec)
        return out

    def _signature(self, f: ActiveFault, rec: dict[str, Any]) -> None:
        """Alerts that follow from the kind of fault rather than a catalogue limit."""
        alerts = rec["expected_alerts"]
        if f.kind == "main_fan_stoppage":
            alerts.append({"kind": "ventilation", "detector": "fan_stoppage", "channel": "run_a", "severity": "critical"})
        elif f.kind == "local_fan_stoppage":
            alerts.append({"kind": "ventilation", "detector": "fan_stoppage", "channel": "run", "severity": "alarm"})
        elif f.kind == "imbalance":
            machine = f.machine
            v = velocity_rms_mm_s(machine, Health(imbalance=imbalance_peak(f)))
            zone = iso_zone(machine, v)
            sev = {"A": "info", "B": "info", "C": "warning", "D": "alarm"}[zone]
            alerts.append({"kind": "vibration", "detector": "iso_velocity", "channel": "vib", "severity": sev,
                           "velocity_mm_s": round(v, 2), "zone": zone})
            self._vib_channel(f, rec)
        elif f.kind == "bearing_fault":
            machine = f.machine
            defect = f.spec.params.get("defect", "outer")
            alerts.append({"kind": "vibration", "detector": "bearing_envelope", "channel": "vib", "severity": "warning",
                           "defect": defect, "fault_order": DEFECT_ORDER[defect],
                           "fault_hz": round(fault_frequency_hz(machine, defect), 3)})
            self._vib_channel(f, rec)
        self._finish(rec)

    @staticmethod
    def _vib_channel(f: ActiveFault, rec: dict[str, Any]) -> None:
        """A machine fault shows in the waveforms (``vib``) for its whole window."""
        if "vib" not in rec["channels"]:
            rec["channels"].insert(0, "vib")
            rec["channel_windows"]["vib"] = [f.start_ns, f.end_ns]
            rec["start_ns"] = min(rec["start_ns"], f.start_ns)
            rec["end_ns"] = max(rec["end_ns"], f.end_ns)
            rec["visible"] = True

    @staticmethod
    def _window(rec: dict[str, Any]) -> None:
        """start/end: where the channels that should alert deviate (all labelled channels if none
        should); slow tails of other channels (air temperature after a fan stop) stay in
        ``channel_windows``."""
        alerting = {a.get("channel") for a in rec["expected_alerts"]} & set(rec["channel_windows"])
        wins = [w for ch, w in rec["channel_windows"].items() if ch in alerting or not alerting]
        if wins:
            rec["start_ns"] = min(w[0] for w in wins)
            rec["end_ns"] = max(w[1] for w in wins)

    @staticmethod
    def _finish(rec: dict[str, Any]) -> None:
        # one entry per (detector, channel): the most severe
        best: dict[tuple[str, str], dict[str, Any]] = {}
        for a in rec["expected_alerts"]:
            key = (a["detector"], a.get("channel") or "")
            if key not in best or SEVERITY_RANK[Severity(a["severity"])] > SEVERITY_RANK[Severity(best[key]["severity"])]:
                best[key] = a
        rec["expected_alerts"] = list(best.values())
        sev = "info"
        for a in rec["expected_alerts"]:
            if SEVERITY_RANK[Severity(a["severity"])] > SEVERITY_RANK[Severity(sev)]:
                sev = a["severity"]
        rec["expected_severity"] = sev

    def _sensor(self, f: ActiveFault) -> dict[str, Any]:
        rec = self._base(f, f.scenario)
        rec["channels"] = [f.channel]
        seen = self.sensor_seen[f.fault_id]
        detector = {"sensor_stuck": "stuck", "sensor_drift": "drift", "sensor_out_of_range": "out_of_range"}[f.kind]
        if f.kind == "sensor_drift":
            res = self.mine.res[f.k]
            seen = [(t, v) for t, v in seen if (t - f.start_ns) / max(1, f.end_ns - f.start_ns) * abs(
                f.spec.peak if f.spec.peak is not None else 1.0) >= 0.5 * res] or seen
        if seen:
            rec["start_ns"], rec["end_ns"] = seen[0][0], seen[-1][0]
            values = [v for _, v in seen]
            rec["extremes"][f.channel] = float(max(values, key=abs) if f.kind != "sensor_stuck" else values[0])
        else:
            rec["visible"] = False
        rec["channel_windows"] = {f.channel: [rec["start_ns"], rec["end_ns"]]}
        rec["expected_alerts"].append({"kind": "sensor-health", "detector": detector, "channel": f.channel,
                                       "severity": "warning"})
        self._finish(rec)
        return rec

    def _fleet(self, f: ActiveFault) -> dict[str, Any]:
        rec = self._base(f, f.scenario)
        seen = self.fleet_seen[f.fault_id]
        if seen:
            rec["start_ns"], rec["end_ns"] = seen[0], seen[-1]
        else:
            rec["visible"] = False
        if f.kind == "robot_offline" or f.end_ns - f.start_ns >= self.will_after_ns:
            rec["expected_alerts"].append({"kind": "robot-health", "detector": "offline", "robot_id": rec["robot_id"],
                                           "severity": "warning"})
        if f.kind == "link_outage":
            rec["expected_alerts"].append({"kind": "robot-health", "detector": "late_frames",
                                           "robot_id": rec["robot_id"], "severity": "info"})
        self._finish(rec)
        return rec
