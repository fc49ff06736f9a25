"""The mine's physics: every channel of every scenario, one vectorised step at a time.

Each step computes, for every catalogue channel of the 31 scenarios at once, the true
(noise-free) value from a few drivers:

* **airflow** ``q`` per place (1 = design airflow, signed: negative when reversed), from the
  main fans (natural draught 15 % when a fan stops [U]; reversed flow 50 % of normal, above the
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
with the injected faults. Both rows share every random draw, so ``row 1 - row 0`` is exactly
what the faults did, which is how the ground-truth label windows are measured.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from minewatch.catalogue import QUANTITIES, SCENARIOS
from simulator.layout import DOWNSTREAM, GROUPS, LOCAL_FANS, MAIN_FANS, PLACES, WORKS
from simulator.shifts import ShiftCalendar
from simulator.timeutil import NS

__all__ = ["Mine", "Effects", "SENSOR_NOISE"]

NATURAL_DRAUGHT = 0.15  # flow left when a main fan stops, [U]
REVERSED_FLOW = 0.5  # reversed volume, ≥ 40 % required by CMSR 2016 Art.159 (domain §2) [C]
LOCAL_FAN_LEAK = 0.06  # diffusion into a heading whose local fan stopped [U]
Q_FLOOR = 0.03  # gas equilibrium never divides by less than this
AMBIENT_T = 22.0  # strata / chamber air temperature a stopped machine cools to [U]

# Sensor noise (1 sigma) per quantity, in its unit, and a relative part [U]: catalytic CH4
# repeats to about a resolution step, electrochemical CO to under 1 ppm, anemometers see
# turbulence of a few percent.
SENSOR_NOISE: dict[str, tuple[float, float]] = {
    "ch4": (0.006, 0.0), "ch4_hr": (0.2, 0.0), "co": (0.4, 0.0), "o2": (0.03, 0.0), "co2": (0.006, 0.0),
    "t": (0.05, 0.0), "t_hot": (0.15, 0.0), "rh": (0.4, 0.0), "ws": (0.02, 0.02), "dp": (0.004, 0.003),
    "du": (0.05, 0.06), "sm": (0.0, 0.0), "i": (0.2, 0.005), "run": (0.0, 0.0), "wl": (0.004, 0.0),
    "fl": (0.5, 0.01), "speed": (0.005, 0.0), "p_bar": (0.01, 0.0), "level": (0.03, 0.0),
}

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
    raise ValueError(f"no model for {sid}.{name} ({quantity})")


@dataclass
class Effects:
    """What the active faults do to the mine in one step (row 1 of the twin only)."""

    fan_run: np.ndarray  # per main fan, multiplier of unit A (0 = stopped)
    fan_standby: np.ndarray  # per main fan, 1 = standby unit B running
    fan_dir: np.ndarray  # per main fan, +1 or -1 (reversed)
    local_run: np.ndarray  # per local fan, multiplier
    branch_q: np.ndarray  # per place, airflow multiplier (a regulator, a door left open)
    add_eq: np.ndarray  # per channel, added to the equilibrium (goes through the lag)
    add_direct: np.ndarray  # per channel, added to the value
    extra: dict[str, float] = field(default_factory=dict)

    @classmethod
    def none(cls, n_places: int, n_channels: int) -> Effects:
        return cls(np.ones(len(MAIN_FANS)), np.zeros(len(MAIN_FANS)), np.ones(len(MAIN_FANS)),
                   np.ones(len(LOCAL_FANS)), np.ones(n_places), np.zeros(n_channels), np.zeros(n_channels))


class Mine:
    """All 31 scenarios' channels in flat arrays, stepped ``dt`` seconds at a time."""

    def __init__(self, calendar: ShiftCalendar, rng: np.random.Generator, dt: float, t0_ns: int) -> None:
        self.calendar = calendar
        self.rng = rng
        self.dt = dt
        self.scenario_ids = list(SCENARIOS)
        self.place_index = {sid: i for i, sid in enumerate(self.scenario_ids)}
        names, places, models, lo, hi, res, qlo, qhi, nsd, nrel = [], [], [], [], [], [], [], [], [], []
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
                sd, rel = SENSOR_NOISE[c.quantity]
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
        quantity = [SCENARIOS[self.scenario_ids[p]].channels[k - self.slices[self.scenario_ids[p]].start].quantity
                    for k, p in enumerate(places)]
        self.quantity = quantity
        self.c_in = np.where(np.array([q == "co2" for q in quantity]), 0.04, 0.02)
        self.c_in = np.minimum(self.c_in, self.lo * 0.5)
        self.masks = {m: self.model == m for m in set(models)}
        self._mk = {m: np.flatnonzero(self.model == m) for m in set(models)}

        # place -> main fan, local fan, production source
        self.fan_of = np.array([MAIN_FANS.index(PLACES[s].fan) for s in self.scenario_ids])
        lf_names = list(LOCAL_FANS)
        self.local_of = np.array([lf_names.index(PLACES[s].local_fan) if PLACES[s].local_fan else -1
                                  for s in self.scenario_ids])
        self.lf_place = np.array([self.place_index[lf] for lf in lf_names])
        self.fan_place = np.array([self.place_index[f] for f in MAIN_FANS])
        self.work_names = list(WORKS)
        sources = []
        for s in self.scenario_ids:
            src = PLACES[s].production
            if src is None:
                sources.append([])
            elif src in GROUPS:
                sources.append([self.work_names.index(w) for w in GROUPS[src]])
            else:
                sources.append([self.work_names.index(src)])
        self.prod_matrix = np.zeros((self.S, len(self.work_names)))
        for i, src in enumerate(sources):
            for w in src:
                self.prod_matrix[i, w] = 1.0 / len(src)
        self.has_prod = np.array([bool(s) for s in sources])
        self.work_share = np.array([WORKS[w][0] for w in self.work_names])
        self.work_phase_ns = [round(WORKS[w][1] * NS) for w in self.work_names]
        self.mode = [PLACES[s].machine_mode for s in self.scenario_ids]
        self.pump_places = np.array([i for i, m in enumerate(self.mode) if m == "pump"])
        self.sump_k = np.array([self.slices[self.scenario_ids[p]].start + self.names[self.slices[self.scenario_ids[p]]].index("wl")
                                for p in self.pump_places])
        self.comp_places = np.array([i for i, m in enumerate(self.mode) if m == "compressor"])
        self.recv_k = self._mk.get(RECEIVER, np.array([], dtype=int))
        # downstream links: (src place, its return gas channels, dst gas channels, dilution, tau)
        self.links = []
        for src, outs in DOWNSTREAM.items():
            for dst, dil, tau in outs:
                self.links.append((self._return_gas(src), self._gas_channels(dst), dil, tau))
        self.link_state = np.zeros(len(self.links))
        self.wander = self.rng.standard_normal(self.K) * self.wander_sd
        # hysteresis states, twin rows
        u = self.rng.random(max(len(self.pump_places), 1))[: len(self.pump_places)]
        self.sump = np.tile(self.lo[self.sump_k] + 0.15 + (self.span[self.sump_k] - 0.3) * u, (2, 1))
        self.pump_on = np.zeros((2, len(self.pump_places)), dtype=bool)
        self.recv = np.tile(self.lo[self.recv_k] + 0.1 + 0.5 * self.span[self.recv_k], (2, 1))
        self.comp_loaded = np.ones((2, len(self.recv_k)), dtype=bool)
        self.value = None
        self.value = self._equilibrium(t0_ns, Effects.none(self.S, self.K))[0]
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
        sl = self.slices[scenario_id]
        try:
            return sl.start + self.names[sl].index(channel)
        except ValueError:
            raise KeyError(f"{scenario_id} has no channel {channel!r}; it has {', '.join(self.names[sl])}") from None

    def production(self, t_ns: int) -> np.ndarray:
        """Production level of each place, 0..1."""
        works = np.array([self.calendar.production_level(t_ns + ph) for ph in self.work_phase_ns]) * self.work_share
        return self.prod_matrix @ works

    def machine_run(self, t_ns: int) -> np.ndarray:
        """Running state of belts by the shift schedule: main belts run in production shifts and the
        first two hours of maintenance (emptying the bunker), district belts only in production [P]."""
        shift = self.calendar.at(t_ns)
        into = (t_ns - shift.start_ns) / NS
        run = np.ones(self.S)
        for i, m in enumerate(self.mode):
            if m == "production_belt":
                run[i] = 1.0 if shift.production and into >= 300.0 else 0.0
            elif m == "main_belt":
                run[i] = 1.0 if shift.production or into < 7200.0 else 0.0
        return run

    # ------------------------------------------------------------------ the step
    def _drivers(self, t_ns: int, eff: Effects) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        p = self.production(t_ns)
        run = np.tile(self.machine_run(t_ns), (2, 1))
        # main fans: unit A (fault may stop it), standby B, direction
        fan_a = np.stack([np.ones(len(MAIN_FANS)), eff.fan_run])
        fan_b = np.stack([np.zeros(len(MAIN_FANS)), eff.fan_standby])
        fan_dir = np.stack([np.ones(len(MAIN_FANS)), eff.fan_dir])
        fan_eff = np.maximum(fan_a, fan_b)
        fan_q = np.maximum(NATURAL_DRAUGHT, fan_eff * np.where(fan_dir > 0, 1.0, REVERSED_FLOW)) * fan_dir
        local = np.stack([np.ones(len(LOCAL_FANS)), eff.local_run])
        q = fan_q[:, self.fan_of] * np.stack([np.ones(self.S), eff.branch_q])
        has_lf = self.local_of >= 0
        q[:, has_lf] *= np.maximum(LOCAL_FAN_LEAK, local[:, self.local_of[has_lf]])
        run[:, self.fan_place] = fan_eff
        run[:, self.lf_place] = local
        # pumps and compressor from their hysteresis states
        if len(self.pump_places):
            run[:, self.pump_places] = self.pump_on
        if len(self.comp_places):
            run[:, self.comp_places] = np.where(self.comp_loaded, 1.0, 0.3)
        fan_parts = (fan_a, fan_b, fan_dir)
        return q, np.tile(p, (2, 1)), run, np.stack(fan_parts)

    def _equilibrium(self, t_ns: int, eff: Effects) -> np.ndarray:
        q, p, run, fans = self._drivers(t_ns, eff)
        self._last = (q, p, run, fans)
        K = self.K
        pk = p[:, self.place_of]
        qk = q[:, self.place_of]
        rk = run[:, self.place_of]
        lo, span = self.lo, self.span
        eq = np.empty((2, K))
        m = self._mk
        aq = np.maximum(np.abs(qk), Q_FLOOR)

        def put(model: int, values: np.ndarray) -> None:
            idx = m.get(model)
            if idx is not None and len(idx):
                eq[:, idx] = values[:, idx] if values.ndim == 2 else values[idx]

        base = lo + span * (0.2 + 0.55 * pk)
        put(GAS, self.c_in + (base - self.c_in) / aq)
        put(CO, (lo + span * (0.15 + 0.35 * pk)) / aq)
        put(O2, self.hi - span * (0.25 + 0.3 * pk))
        put(TAIR, lo + span * (0.3 + 0.45 * pk) + (1.0 - np.minimum(np.abs(qk), 1.0)) * 1.5)
        put(RH, lo + span * (0.45 + 0.25 * pk))
        put(WS, (lo + span * 0.55) * qk)
        put(DUST, lo + span * (0.05 + 0.85 * pk))
        fa, fb, fd = fans[0], fans[1], fans[2]
        fan_speed = np.maximum(fa, fb)
        fan_dp = np.where(fd > 0, fan_speed ** 2, 0.6 * fan_speed ** 2)
        fan_dp = np.maximum(fan_dp, 0.02)
        dp_main = np.zeros((2, self.S))
        dp_main[:, self.fan_place] = fan_dp
        put(DP_MAIN, (lo + span * 0.5) * dp_main[:, self.place_of])
        put(DP_LOCAL, (lo + span * 0.5) * rk ** 2)
        put(DP_PUMP, np.where(rk > 0.5, lo + span * 0.5, 0.1 * lo))
        put(FLAT, np.broadcast_to(lo + span * 0.5, (2, K)))
        run_a = np.zeros((2, self.S))
        run_a[:, self.fan_place] = fa
        run_b = np.zeros((2, self.S))
        run_b[:, self.fan_place] = fb
        put(RUN_A, (run_a[:, self.place_of] > 0.5).astype(float))
        put(RUN_B, (run_b[:, self.place_of] > 0.5).astype(float))
        put(RUN_LOCAL, (rk > 0.5).astype(float))
        put(CURRENT, rk * (lo + span * (0.4 + 0.4 * pk)))
        hot = lo + span * (0.45 + 0.35 * pk)
        put(TBEAR, AMBIENT_T + (hot - AMBIENT_T) * np.minimum(rk, 1.0))
        put(TDRUM, AMBIENT_T + (hot - AMBIENT_T) * rk)
        put(SPEED, rk * (lo + span * 0.5))
        put(ZERO, np.zeros((2, K)))
        put(FL_PUMP, np.where(rk > 0.5, lo + span * 0.6, 0.0))
        put(LEVEL, lo + span * (0.2 + 0.6 * pk))
        put(TDISCH, lo + span * (0.25 + 0.5 * (rk > 0.5)))
        put(TBUS, lo + span * (0.3 + 0.6 * pk))
        if len(self.sump_k):
            eq[:, self.sump_k] = self.sump
        if len(self.recv_k):
            eq[:, self.recv_k] = self.recv
        eq[1] += eff.add_eq
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

    def step(self, t_ns: int, eff: Effects) -> np.ndarray:
        """Advance to ``t_ns``; return the (2, K) noise-free values (row 0 nominal, row 1 faulted)."""
        self._integrate()
        eq = self._equilibrium(t_ns, eff)
        q = self._last[0]
        tau = np.where(self.is_gas, self.tau / np.maximum(np.abs(q[:, self.place_of]), 0.05), self.tau)
        alpha = np.where(tau > 0, 1.0 - np.exp(-self.dt / np.maximum(tau, 1e-9)), 1.0)
        self.value = self.value + (eq - self.value) * alpha
        a = math.exp(-self.dt / 600.0)
        self.wander = a * self.wander + math.sqrt(1.0 - a * a) * self.wander_sd * self.rng.standard_normal(self.K)
        out = self.value + self.wander
        out[1] += eff.add_direct
        self._propagate(out)
        self.t_ns = t_ns
        return np.clip(out, self.qlo, self.qhi)

    def _propagate(self, out: np.ndarray) -> None:
        """Excess gas at a place (faulted minus nominal) reaches the places downstream, diluted and late."""
        for i, (src, dst, dil, tau) in enumerate(self.links):
            excess = float(np.max(out[1, src] - out[0, src])) if len(src) else 0.0
            self.link_state[i] += (excess - self.link_state[i]) * (1.0 - math.exp(-self.dt / tau))
            if len(dst) and abs(self.link_state[i]) > 1e-6:
                out[1, dst] += dil * self.link_state[i]

    @property
    def drivers(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """``(q, p, run, fans)`` of the last step: airflow, production and running per place."""
        return self._last
