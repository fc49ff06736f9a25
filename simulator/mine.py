"""The mine's physics: every channel of every scenario, one vectorised step at a time.

Each step computes, for every catalogue channel of the 31 scenarios at once, the true
(noise-free) value from a few drivers:

* **airflow** ``q`` per place (1 = design airflow, signed: negative when reversed), from the
  main fans (natural draught 10 % when a fan stops [U]; reversed flow 50 % of normal, above the
  regulation's 40 % minimum, domain §2 [C]), the local fans of the headings and any branch
  regulator;
* **production** ``p`` per place (0..1), from the shift calendar and the works upstream;
* **running** state of each machine (belts by schedule, pumps by their sump level, the
  compressor by its receiver pressure).

Gas concentration follows emission over air volume: at equilibrium ``c = c_in + E/Q``, reached
through a first-order lag whose time constant grows as the airflow falls (``tau = V/Q``), so a
fan trip makes methane climb over minutes, not at once. Temperatures lag with their own
thermal time constants. A slow random wander (AR(1), 10 min) keeps each channel alive inside
its normal band; sensor noise and resolution are added per reading by the fleet, not here.

The model runs as a *twin*: row 0 is the mine as it would be with no fault, row 1 the mine
with all injected faults (what the sensors see), and, when there are several faults, one more
row per fault with that fault alone. All rows share every random draw, so ``row j - row 0`` is
exactly what fault j did, which is how the ground-truth label windows are measured.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from minewatch.catalogue import QUANTITIES, SCENARIOS, QuantityKind
from simulator import _kernels as _k
from simulator._kernels import (F_FAN_A, F_FAN_B, F_FAN_DP, F_HEAT_Q, F_INV_Q, F_MUL_Q, F_NONE,
                                F_PUMP_DP, F_RUN2, F_RUN_AMB, F_RUN_MUL, F_STATE, F_STEP, F_STEP_ADD, F_STEP_MUL,
                                F_ZERO)
from simulator.layout import DOWNSTREAM, GROUPS, LOCAL_FANS, MAIN_FANS, PLACES, WORKS
from simulator.shifts import ShiftClock
from simulator.timeutil import NS

__all__ = ["Mine", "Effects", "channel_index"]

NATURAL_DRAUGHT = 0.1  # flow left by natural draught when a main fan stops [U]
REVERSED_FLOW = 0.5  # reversed volume, ≥ 40 % required by CMSR 2016 Art.159 (domain §2) [C]
LOCAL_FAN_LEAK = 0.06  # diffusion into a heading whose local fan stopped [U]


# Channel models.
(GAS, CO, O2, TAIR, RH, WS, DUST, DP_MAIN, DP_LOCAL, DP_PUMP, FLAT, RUN_A, RUN_B, CURRENT, TBEAR,
 TDRUM, SPEED, ZERO, SUMP, FL_PUMP, LEVEL, RECEIVER, TDISCH, TBUS, RUN_LOCAL) = range(25)

# (time constant s, wander as a fraction of the normal band)
_DYN = {
    GAS: (45.0, 0.06), CO: (60.0, 0.05), O2: (60.0, 0.04), TAIR: (900.0, 0.04), RH: (900.0, 0.05),
    WS: (20.0, 0.05), DUST: (30.0, 0.06), DP_MAIN: (15.0, 0.03), DP_LOCAL: (5.0, 0.04), DP_PUMP: (5.0, 0.04),
    FLAT: (300.0, 0.08), RUN_A: (0.0, 0.0), RUN_B: (0.0, 0.0), RUN_LOCAL: (0.0, 0.0), CURRENT: (3.0, 0.03),
    TBEAR: (1200.0, 0.04), TDRUM: (900.0, 0.04), SPEED: (8.0, 0.0), ZERO: (0.0, 0.0), SUMP: (0.0, 0.0),
    FL_PUMP: (5.0, 0.04), LEVEL: (1800.0, 0.03), RECEIVER: (0.0, 0.0), TDISCH: (120.0, 0.04), TBUS: (900.0, 0.04),
}


# How each model turns production into an equilibrium: ``target = lo + span * (a + b * p)``,
# then a transform by airflow or running state.

_FORM = {
    GAS: (0.2, 0.55, F_INV_Q),  # emission over airflow
    CO: (0.15, 0.35, F_INV_Q),
    O2: (0.75, -0.3, F_NONE),
    TAIR: (0.3, 0.45, F_HEAT_Q),  # less air, warmer
    RH: (0.45, 0.25, F_NONE),
    WS: (0.55, 0.0, F_MUL_Q),
    DUST: (0.05, 0.85, F_NONE),  # dust follows the cutting
    DP_MAIN: (0.5, 0.0, F_FAN_DP),  # fan pressure ~ speed squared
    DP_LOCAL: (0.5, 0.0, F_RUN2),
    DP_PUMP: (0.5, 0.0, F_PUMP_DP),
    FLAT: (0.5, 0.0, F_NONE),
    RUN_A: (0.0, 0.0, F_FAN_A), RUN_B: (0.0, 0.0, F_FAN_B), RUN_LOCAL: (0.0, 0.0, F_STEP),
    CURRENT: (0.4, 0.4, F_RUN_MUL),
    TBEAR: (0.45, 0.35, F_RUN_AMB), TDRUM: (0.45, 0.35, F_RUN_AMB),
    SPEED: (0.5, 0.0, F_RUN_MUL),
    ZERO: (0.0, 0.0, F_ZERO),
    SUMP: (0.0, 0.0, F_STATE), RECEIVER: (0.0, 0.0, F_STATE),
    FL_PUMP: (0.6, 0.0, F_STEP_MUL),
    LEVEL: (0.2, 0.6, F_NONE),
    TDISCH: (0.25, 0.0, F_STEP_ADD),
    TBUS: (0.3, 0.6, F_NONE),
}


def _model(sid: str, name: str, quantity: str) -> int:
    kind = SCENARIOS[sid].kind.value
    if quantity == "ch4":
        return GAS
    if quantity == "co2":
        return GAS
    if quantity == "ch4_hr":
        return FLAT
    table = {"co": CO, "o2": O2, "t": TAIR, "rh": RH, "ws": WS, "du": DUST, "sm": ZERO, "speed": SPEED,
             "level": LEVEL, "p_bar": RECEIVER}
    if quantity in table:
        return table[quantity]
    if quantity == "run":
        return {"run_a": RUN_A, "run_b": RUN_B}.get(name, RUN_LOCAL)
    if quantity == "dp":
        return {"main_fan": DP_MAIN, "local_fan": DP_LOCAL, "pump": DP_PUMP}.get(kind, FLAT)
    if quantity == "i":
        return CURRENT
    if quantity == "t_hot":
        return {"t_drum": TDRUM, "t_busbar": TBUS, "t_discharge": TDISCH}.get(name, TBEAR)
    if quantity == "wl":
        return SUMP if kind == "pump" else FLAT
    if quantity == "fl":
        return FL_PUMP if kind == "pump" else FLAT
    if QUANTITIES[quantity].kind is QuantityKind.gas:
        return FLAT  # a trace gas without a source of its own here: steady in its normal band
    raise ValueError(f"no model for {sid}.{name} ({quantity})")


def channel_index(scenario_id: str, channel: str) -> int:
    """Index of a catalogue channel in the mine's flat arrays (scenarios in catalogue order)."""
    k = 0
    for sid, sc in SCENARIOS.items():
        if sid == scenario_id:
            names = [c.name for c in sc.channels]
            if channel not in names:
                raise KeyError(f"{scenario_id} has no channel {channel!r}; it has {', '.join(names)}")
            return k + names.index(channel)
        k += len(sc.channels)
    raise KeyError(f"unknown scenario {scenario_id!r}")


@dataclass
class Effects:
    """What the faults do to the mine in one step, for each faulted row of the twin (rows 1..)."""

    fan_run: np.ndarray  # (rows, fans) multiplier of unit A (0 = stopped)
    fan_standby: np.ndarray  # (rows, fans) 1 = standby unit B running
    fan_dir: np.ndarray  # (rows, fans) +1 or -1 (reversed)
    local_run: np.ndarray  # (rows, local fans) multiplier
    branch_q: np.ndarray  # (rows, places) airflow multiplier (a regulator, a door left open)
    add_eq: np.ndarray  # (rows, channels) added to the equilibrium (goes through the lag)
    add_direct: np.ndarray  # (rows, channels) added to the value

    @classmethod
    def none(cls, n_places: int, n_channels: int, rows: int = 1) -> Effects:
        nf, nl = len(MAIN_FANS), len(LOCAL_FANS)
        return cls(np.ones((rows, nf)), np.zeros((rows, nf)), np.ones((rows, nf)), np.ones((rows, nl)),
                   np.ones((rows, n_places)), np.zeros((rows, n_channels)), np.zeros((rows, n_channels)))


class Mine:
    """All 31 scenarios' channels in flat arrays, stepped ``dt`` seconds at a time."""

    def __init__(self, calendar: ShiftClock, rng: np.random.Generator, dt: float, t0_ns: int,
                 rows: int = 2) -> None:
        self.rows = rows
        self.calendar = calendar
        self.rng = rng
        self.dt = dt
        self.scenario_ids = list(SCENARIOS)
        self.place_index = {sid: i for i, sid in enumerate(self.scenario_ids)}
        names: list[str] = []
        places, models, lo, hi, res, qlo, qhi, nsd, nrel = [], [], [], [], [], [], [], [], []
        self.slices: dict[str, slice] = {}
        for sid in self.scenario_ids:
            sc = SCENARIOS[sid]
            start = len(names)
            for c in sc.channels:
                q = QUANTITIES[c.quantity]
                names.append(c.name)
                places.append(self.place_index[sid])
                models.append(_model(sid, c.name, c.quantity))
                lo.append(c.normal[0])
                hi.append(c.normal[1])
                res.append(q.resolution)
                qlo.append(q.low)
                qhi.append(q.high)
                sd, rel = QUANTITIES[c.quantity].noise  # sensor noise: the quantity's (catalogue)
                nsd.append(sd)
                nrel.append(rel)
            self.slices[sid] = slice(start, len(names))
        self.names = names
        self.K = len(names)
        self.S = len(self.scenario_ids)
        self.place_of = np.array(places)
        self.model = np.array(models)
        self.lo = np.array(lo)
        self.hi = np.array(hi)
        self.span = self.hi - self.lo
        self.res = np.array(res)
        self.inv_res = np.round(1.0 / self.res)
        self.qlo = np.array(qlo)
        self.qhi = np.array(qhi)
        self.noise_sd = np.array(nsd)
        self.noise_rel = np.array(nrel)
        self.tau = np.array([_DYN[m][0] for m in models])
        self.wander_sd = np.array([_DYN[m][1] for m in models]) * self.span
        self.is_gas = self.model == GAS
        self._gas = np.flatnonzero(self.is_gas)
        self._ws = np.flatnonzero(self.model == WS)
        self._ws_mid = self.lo[self._ws] + 0.55 * self.span[self._ws]
        self._alpha = np.where(self.tau > 0, 1.0 - np.exp(-dt / np.maximum(self.tau, 1e-9)), 1.0)
        quantity = [SCENARIOS[self.scenario_ids[p]].channels[k - self.slices[self.scenario_ids[p]].start].quantity
                    for k, p in enumerate(places)]
        self.quantity = quantity
        self.c_in = np.where(np.array([q == "co2" for q in quantity]), 0.04, 0.02)
        self.c_in = np.minimum(self.c_in, self.lo * 0.5)
        self._mk = {m: np.flatnonzero(self.model == m) for m in set(models)}
        self.forms = np.array([_FORM[m][2] for m in models], dtype=np.int64)
        self.form_base = self.lo + self.span * np.array([_FORM[m][0] for m in models])
        self.form_gain = self.span * np.array([_FORM[m][1] for m in models])

        # place -> main fan, local fan, production source
        self.fan_of = np.array([MAIN_FANS.index(PLACES[s].fan) for s in self.scenario_ids])
        lf_names = list(LOCAL_FANS)
        self.local_of = np.array([lf_names.index(lf) if (lf := PLACES[s].local_fan) else -1
                                  for s in self.scenario_ids])
        self.lf_place = np.array([self.place_index[lf] for lf in lf_names])
        self.fan_place = np.array([self.place_index[f] for f in MAIN_FANS])
        self.has_lf = self.local_of >= 0
        self.fan_index_of = self.fan_of[self.place_of]
        self.work_names = list(WORKS)
        sources: list[list[int]] = []
        for s in self.scenario_ids:
            src = PLACES[s].production
            if src is None:
                sources.append([])
            elif src in GROUPS:
                sources.append([self.work_names.index(w) for w in GROUPS[src]])
            else:
                sources.append([self.work_names.index(src)])
        self.prod_matrix = np.zeros((self.S, len(self.work_names)))
        for i, works in enumerate(sources):
            for w in works:
                self.prod_matrix[i, w] = 1.0 / len(works)
        self.work_share = np.array([WORKS[w][0] for w in self.work_names])
        self.work_phase_ns = [round(WORKS[w][1] * NS) for w in self.work_names]
        self.mode = [PLACES[s].machine_mode for s in self.scenario_ids]
        self._district_belts = [i for i, m in enumerate(self.mode) if m == "production_belt"]
        self._main_belts = [i for i, m in enumerate(self.mode) if m == "main_belt"]
        self.pump_places = np.array([i for i, m in enumerate(self.mode) if m == "pump"])
        self.sump_k = np.array([self.slices[self.scenario_ids[p]].start
                                + self.names[self.slices[self.scenario_ids[p]]].index("wl")
                                for p in self.pump_places])
        self.comp_places = np.array([i for i, m in enumerate(self.mode) if m == "compressor"])
        self.recv_k = self._mk.get(RECEIVER, np.array([], dtype=int))
        # downstream links: (src place, its return gas channels, dst gas channels, dilution, tau)
        self.links = []
        for src, outs in DOWNSTREAM.items():
            for dst, dil, tau in outs:
                self.links.append((self._return_gas(src), self._gas_channels(dst), dil, tau))
        self.link_state = np.zeros((rows - 1, len(self.links)))
        self._link_src = np.array([int(src[0]) for src, _, _, _ in self.links], dtype=int)
        self._link_alpha = np.array([1.0 - math.exp(-dt / tau) for _, _, _, tau in self.links])
        self._link_spread = np.zeros((len(self.links), self.K))  # link -> dilution at each downstream channel
        for i, (_, dst_k, dil, _) in enumerate(self.links):
            self._link_spread[i, dst_k] = dil
        self.wander = self.rng.standard_normal(self.K) * self.wander_sd
        # hysteresis states, one per row
        u = self.rng.random(max(len(self.pump_places), 1))[: len(self.pump_places)]
        self.sump = np.tile(self.lo[self.sump_k] + 0.15 + (self.span[self.sump_k] - 0.3) * u, (rows, 1))
        self.pump_on = np.zeros((rows, len(self.pump_places)), dtype=bool)
        self.recv = np.tile(self.lo[self.recv_k] + 0.1 + 0.5 * self.span[self.recv_k], (rows, 1))
        self.comp_loaded = np.ones((rows, len(self.recv_k)), dtype=bool)
        self._fans = np.ones((3, rows, len(MAIN_FANS)))
        self._fans[1, 0] = 0.0
        self._local = np.ones((rows, len(LOCAL_FANS)))
        self.value = np.empty((rows, self.K))
        self.value[:] = self._equilibrium(t0_ns, self.no_effects())[0]
        self.t_ns = t0_ns

    # ------------------------------------------------------------------ helpers
    def _gas_channels(self, sid: str, quantity: str = "ch4") -> np.ndarray:
        sl = self.slices[sid]
        return np.array([k for k in range(sl.start, sl.stop) if self.quantity[k] == quantity], dtype=int)

    def _return_gas(self, sid: str) -> np.ndarray:
        sl = self.slices[sid]
        names = self.names[sl]
        for pick in ("ch4_t2", "ch4", "ch4_t1"):
            if pick in names:
                return np.array([sl.start + names.index(pick)])
        return self._gas_channels(sid)

    def channel_index(self, scenario_id: str, channel: str) -> int:
        return channel_index(scenario_id, channel)

    def production(self, t_ns: int) -> np.ndarray:
        """Production level of each place, 0..1."""
        works = np.array([self.calendar.production_level(t_ns + ph) for ph in self.work_phase_ns]) * self.work_share
        return self.prod_matrix @ works

    def machine_run(self, t_ns: int) -> np.ndarray:
        """Running state of belts by the shift schedule: main belts run in production shifts and the
        first two hours of maintenance (emptying the bunker), district belts only in production [P]."""
        shift = self.calendar.at(t_ns)
        into = (t_ns - shift.start_ns) / NS if shift is not None else math.inf  # between shifts: all stand
        run = np.ones(self.S)
        production = shift is not None and shift.kind == "production"
        run[self._district_belts] = 1.0 if production and into >= 300.0 else 0.0
        run[self._main_belts] = 1.0 if production or into < 7200.0 else 0.0
        return run

    # ------------------------------------------------------------------ the step
    def _drivers(self, t_ns: int, eff: Effects) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        p = self.production(t_ns)
        run = np.empty((self.rows, self.S))
        run[:] = self.machine_run(t_ns)
        fans = self._fans  # unit A, standby B, direction; row 0 of each stays fault-free
        fans[0, 1:], fans[1, 1:], fans[2, 1:] = eff.fan_run, eff.fan_standby, eff.fan_dir
        fan_eff = np.maximum(fans[0], fans[1])
        fan_q = np.maximum(NATURAL_DRAUGHT, fan_eff * np.where(fans[2] > 0, 1.0, REVERSED_FLOW)) * fans[2]
        q = fan_q[:, self.fan_of]
        q[1:] *= eff.branch_q
        local = self._local
        local[1:] = eff.local_run
        q[:, self.has_lf] *= np.maximum(LOCAL_FAN_LEAK, local[:, self.local_of[self.has_lf]])
        run[:, self.fan_place] = fan_eff
        run[:, self.lf_place] = local
        if len(self.pump_places):
            run[:, self.pump_places] = self.pump_on
        if len(self.comp_places):
            run[:, self.comp_places] = np.where(self.comp_loaded, 1.0, 0.3)
        return q, p, run, fans

    def _equilibrium(self, t_ns: int, eff: Effects) -> np.ndarray:
        q, p, run, fans = self._drivers(t_ns, eff)
        self._last = (q, p, run, fans)
        eq = np.empty((self.rows, self.K))
        _k.equilibrium(self.forms, self.form_base, self.form_gain, self.c_in, self.lo, self.span, self.place_of,
                       self.fan_index_of, p, q, run, fans[0], fans[1], fans[2], eq)
        if len(self.sump_k):
            eq[:, self.sump_k] = self.sump
        if len(self.recv_k):
            eq[:, self.recv_k] = self.recv
        eq[1:] += eff.add_eq
        return eq

    def _integrate(self) -> None:
        """Sumps fill and pumps empty them; the compressor loads and unloads (hysteresis)."""
        dt = self.dt
        if len(self.pump_places):
            lo, span = self.lo[self.sump_k], self.span[self.sump_k]
            inflow = span / 1800.0  # a sump fills its band in 30 min [P]
            outflow = inflow + span / 900.0  # and a pump empties it in 15 min
            self.sump += dt * (inflow - outflow * self.pump_on)
            self.pump_on = np.where(self.sump >= lo + span - 0.1, True, np.where(self.sump <= lo + 0.1, False, self.pump_on))
        if len(self.recv_k):
            lo, span = self.lo[self.recv_k], self.span[self.recv_k]
            self.recv += dt * np.where(self.comp_loaded, span / 300.0, -span / 600.0)
            self.comp_loaded = np.where(self.recv >= lo + span - 0.1, False,
                                        np.where(self.recv <= lo + 0.1, True, self.comp_loaded))

    def no_effects(self) -> Effects:
        return Effects.none(self.S, self.K, self.rows - 1)

    def step(self, t_ns: int, eff: Effects) -> np.ndarray:
        """Advance to ``t_ns``; return the (rows, K) noise-free values: row 0 without faults, row 1
        with all of them (what the sensors see), rows 2.. with one fault each (for the labels)."""
        self._integrate()
        eq = self._equilibrium(t_ns, eff)
        _k.relax(self.value, eq, self._alpha, self.tau, self.is_gas, self._last[0], self.place_of, self.dt)
        a = math.exp(-self.dt / 600.0)
        self.wander = a * self.wander + math.sqrt(1.0 - a * a) * self.wander_sd * self.rng.standard_normal(self.K)
        out = self.value + self.wander
        # airflow wanders in proportion: a starved roadway's velocity does not keep the full wobble
        out[:, self._ws] = self.value[:, self._ws] * (1.0 + self.wander[self._ws] / self._ws_mid)
        out[1:] += eff.add_direct
        self._propagate(out)
        self.t_ns = t_ns
        return np.clip(out, self.qlo, self.qhi)

    def _propagate(self, out: np.ndarray) -> None:
        """Excess gas at a place (faulted minus nominal) reaches the places downstream, diluted and
        late (a first-order lag per link, fed by the previous step's values)."""
        if not len(self._link_src):
            return
        excess = out[1:, self._link_src] - out[0, self._link_src]  # (rows-1, links)
        self.link_state += (excess - self.link_state) * self._link_alpha
        if np.any(np.abs(self.link_state) > 1e-7):
            out[1:] += self.link_state @ self._link_spread

    @property
    def drivers(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """``(q, p, run, fans)`` of the last step: airflow, production and running per place."""
        return self._last
