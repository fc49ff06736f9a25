"""Applies the resolved faults to each step of the mine and to the readings.

Physics faults change row 1 of the mine's twin (:class:`simulator.mine.Effects`); sensor faults
change the readings a robot reports; fleet faults (robot offline, 5G outage) change what is sent.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from minewatch.catalogue import QUANTITIES, SCENARIOS
from simulator.faults import (PHYSICS, SENSOR, ActiveFault, fan_index, hump_shape, local_fan_index,
                              outburst_shape)
from simulator.layout import DOWNSTREAM, LOCAL_FANS, PLACES
from simulator.mine import Effects, Mine
from simulator.timeutil import NS
from simulator.vibration import Health, imbalance_for

__all__ = ["Injector"]


def _cut_level(mine: Mine, sid: str, channel: str) -> float:
    ch = SCENARIOS[sid].channel(channel)
    if not ch.limits:
        return ch.normal[1] * 2.0
    lim = ch.limits[0]
    return max(thr for _, thr in lim.levels)


class Injector:
    def __init__(self, mine: Mine, faults: list[ActiveFault]) -> None:
        self.mine = mine
        self.faults = sorted(faults, key=lambda f: f.start_ns)
        self.physics = [f for f in self.faults if f.kind in PHYSICS]
        if mine.rows != self.rows_needed(faults):
            raise ValueError(f"the mine has {mine.rows} rows, {self.rows_needed(faults)} needed")
        for j, f in enumerate(self.physics):
            # the mine row that shows this fault alone (row 1 when it is the only one)
            f.row = 1 if len(self.physics) == 1 else 2 + j
        self.sensor = [f for f in self.faults if f.kind in SENSOR]
        self.robot_offline = [f for f in self.faults if f.kind == "robot_offline"]
        self.link_outage = [f for f in self.faults if f.kind == "link_outage"]
        for f in self.faults:
            self._prepare(f)

    def _prepare(self, f: ActiveFault) -> None:
        m = self.mine
        if f.kind == "methane_outburst":
            if f.spec.peak is None:
                f.spec.peak = _cut_level(m, f.place, f.channel_name) + 0.3
            sl = m.slices[f.place]
            for k in range(sl.start, sl.stop):
                if k != f.k and m.quantity[k] == "ch4":
                    name = m.names[k]
                    factor, delay = (0.6, 20.0) if name.endswith("t2") else (0.8, 8.0)
                    f.related.append((k, factor, delay))

    def reach(self, f: ActiveFault) -> np.ndarray:
        """Channels (bool mask over the mine's flat arrays) that fault ``f`` can move: its place, the
        places its fan ventilates, and everything downstream of those."""
        m = self.mine
        places = {f.place}
        if f.kind in ("main_fan_stoppage", "airflow_reversal"):
            places |= {sid for sid in m.scenario_ids if PLACES[sid].fan == f.place}
        if f.kind == "local_fan_stoppage":
            places.add(LOCAL_FANS[f.place])
        todo = list(places)
        while todo:
            for dst, _, _ in DOWNSTREAM.get(todo.pop(), ()):
                if dst not in places:
                    places.add(dst)
                    todo.append(dst)
        idx = [m.place_index[sid] for sid in places]
        return np.isin(m.place_of, idx)

    @staticmethod
    def rows_needed(faults: list[ActiveFault]) -> int:
        """Rows of the mine's twin: nominal, all faults, and one per physics fault if several."""
        n = sum(1 for f in faults if f.kind in PHYSICS)
        return 2 if n <= 1 else 2 + n

    # --------------------------------------------------------------- physics
    def effects(self, t_ns: int) -> Effects:
        m = self.mine
        eff = m.no_effects()
        for f in self.physics:
            if not f.active(t_ns):
                continue
            rows = [0] if f.row == 1 else [0, f.row - 1]
            self._apply(f, t_ns, eff, rows)
        return eff

    def _apply(self, f: ActiveFault, t_ns: int, eff: Effects, rows: list[int]) -> None:
        m = self.mine
        kind, u = f.kind, f.u(t_ns)
        into_s = (t_ns - f.start_ns) / NS
        now = float(m.value[1, f.k] + m.wander[f.k]) if f.k >= 0 else 0.0
        add_direct, add_eq = eff.add_direct[rows], eff.add_eq[rows]
        if kind == "methane_outburst":
            if f.amplitude is None:
                peak = f.spec.peak
                if peak is None:
                    raise ValueError(f"{f.fault_id}: no peak (set when the injector is made)")
                f.amplitude = max(0.0, peak * 1.04 + 0.02 - now)
            add_direct[:, f.k] += f.amplitude * outburst_shape(into_s, f.duration_s)
            for k, factor, delay in f.related:
                add_direct[:, k] += f.amplitude * factor * outburst_shape(into_s - delay, f.duration_s)
        elif kind == "methane_buildup":
            if f.amplitude is None:
                airflow = f.spec.params.get("airflow")
                if airflow is None:
                    peak = f.spec.peak if f.spec.peak is not None else _cut_level(m, f.place, f.channel_name) + 0.2
                    c_in = float(m.c_in[f.k])
                    airflow = (now - c_in) / max(1e-6, peak * 1.15 - c_in)
                f.amplitude = float(min(0.9, max(0.05, airflow)))
            if u < 0.65:
                eff.branch_q[rows, m.place_index[f.place]] *= f.amplitude
        elif kind == "co_rise":
            if f.amplitude is None:
                f.amplitude = max(0.0, (f.spec.peak if f.spec.peak is not None else 30.0) * 1.03 - now)
            h = hump_shape(u)
            add_eq[:, f.k] += f.amplitude * h
            self._add_named(add_eq, f.place, "co2", 0.004 * f.amplitude * h)
            self._add_named(add_eq, f.place, "t", 1.5 * h)
            self._add_named(add_eq, f.place, "o2", -0.01 * f.amplitude * h)
        elif kind == "o2_depletion":
            if f.amplitude is None:
                f.amplitude = max(0.0, now - (f.spec.peak if f.spec.peak is not None else 19.3) + 0.05)
            h = hump_shape(u, 0.5, 0.9)
            add_direct[:, f.k] -= f.amplitude * h
            self._add_named(add_direct, f.place, "co2", 0.3 * f.amplitude * h)
        elif kind == "main_fan_stoppage":
            i = fan_index(f.place)
            eff.fan_run[rows, i] = 0.0
            after = f.spec.params.get("standby_after")
            if after is not None and into_s >= _seconds(after):
                eff.fan_standby[rows, i] = 1.0
        elif kind == "local_fan_stoppage":
            eff.local_run[rows, local_fan_index(f.place)] = 0.0
        elif kind == "airflow_reversal":
            eff.fan_dir[rows, fan_index(f.place)] = -1.0
        elif kind == "bearing_fault":
            heat = 12.0 * u ** 3  # the bearing warms as the defect spreads [U]
            if f.k >= 0:
                add_eq[:, f.k] += heat
        elif kind == "belt_drum_overheating":
            if f.amplitude is None:
                f.amplitude = max(0.0, (f.spec.peak if f.spec.peak is not None else 75.0) * 1.02 - now)
            h = hump_shape(u, 0.6, 0.95)
            add_direct[:, f.k] += f.amplitude * h
            self._add_named(add_direct, f.place, "tb", 0.25 * f.amplitude * h)
        eff.add_direct[rows], eff.add_eq[rows] = add_direct, add_eq

    def _add_named(self, arr: np.ndarray, sid: str, name: str, value: float) -> None:
        sl = self.mine.slices[sid]
        names = self.mine.names[sl]
        if name in names:
            arr[:, sl.start + names.index(name)] += value

    def health(self, sid: str, t_ns: int) -> Health:
        """The machine's condition in ``sid`` at ``t_ns`` (for its vibration)."""
        h = Health()
        for f in self.physics:
            if f.scenario != sid or not f.active(t_ns):
                continue
            if f.kind == "bearing_fault":
                peak = f.spec.peak if f.spec.peak is not None else 25.0
                # exponential growth from 10 % to 100 % of the final impact over the window
                h.defect, h.impact = f.spec.params.get("defect", "outer"), peak * 0.1 * 10.0 ** f.u(t_ns)
            elif f.kind == "imbalance":
                h.imbalance = imbalance_peak(f) * min(1.0, f.u(t_ns) / 0.6)
        return h

    # --------------------------------------------------------------- readings
    def sensor_active(self, t_ns: int) -> list[ActiveFault]:
        return [f for f in self.sensor if f.active(t_ns)]

    def apply_sensor(self, f: ActiveFault, robot_id: str, value: float, t_ns: int) -> float:
        """The reading the faulty sensor gives instead of ``value``."""
        if f.kind == "sensor_stuck":
            return f.stuck.setdefault(robot_id, value)
        q = QUANTITIES[SCENARIOS[f.place].channel(f.channel_name).quantity]
        if f.kind == "sensor_drift":
            ch = SCENARIOS[f.place].channel(f.channel_name)
            peak = f.spec.peak if f.spec.peak is not None else ch.normal[1] - ch.normal[0]
            return value + peak * f.u(t_ns)
        bad = f.spec.params.get("value")
        return float(bad) if bad is not None else q.high + 0.25 * (q.high - q.low)

    def offline(self, t_ns: int) -> dict[str, ActiveFault]:
        """Robots dead at ``t_ns``, with the fault that took them."""
        return {f.robot_id: f for f in self.robot_offline if f.active(t_ns)}

    def outage(self, t_ns: int) -> dict[str, ActiveFault]:
        """Robots whose 5G link is out at ``t_ns``."""
        return {f.robot_id: f for f in self.link_outage if f.active(t_ns)}


def imbalance_peak(f: ActiveFault) -> float:
    """The imbalance an imbalance fault reaches (extra 1x), from its ``peak`` velocity RMS."""
    machine = f.machine
    v = f.spec.peak if f.spec.peak is not None else 1.1 * machine.zone_limits[2]
    return imbalance_for(machine, v)


def _seconds(v: Any) -> float:
    from simulator.timeutil import parse_duration_s

    return parse_duration_s(v)
