"""The mine's physics: a normal shift stays inside every limit; shifts and ventilation drive the gas."""

from __future__ import annotations

import numpy as np

from minewatch.catalogue import SCENARIOS
from simulator.engine import SimConfig, Simulation
from simulator.faults import load_faults
from simulator.labels import limit_severity
from simulator.shifts import ShiftClock
from simulator.timeutil import NS, iso_ns

NIGHT_SHIFT = iso_ns("2026-11-26T16:00:00Z")  # 00:00 local (UTC+8): the night production shift


def extremes(sim: Simulation) -> dict[tuple[str, str], list[float]]:
    out: dict[tuple[str, str], list[float]] = {}
    for batch in sim.frames():
        for f in batch:
            for ch, v in f.readings.items():
                lo_hi = out.setdefault((f.scenario_id, ch), [v, v])
                if v < lo_hi[0]:
                    lo_hi[0] = v
                elif v > lo_hi[1]:
                    lo_hi[1] = v
    return out


def test_a_normal_production_shift_of_the_whole_mine_crosses_no_limit() -> None:
    """Zero limit crossings: every reading of every robot over 8 hours, frames every 5 s (domain §5)."""
    sim = Simulation(SimConfig(seed=21, start_ns=NIGHT_SHIFT, duration_s=8 * 3600, rate_hz=0.2))
    seen = extremes(sim)
    assert {sid for sid, _ in seen} == set(SCENARIOS)
    assert sim.frames_generated == 5760 * len(sim.fleet)
    crossings = []
    for (sid, name), (lo, hi) in seen.items():
        ch = SCENARIOS[sid].channel(name)
        assert ch.low <= lo <= hi <= ch.high, (sid, name, lo, hi)
        for lim in ch.limits:
            hit = limit_severity(lim, lo, hi)
            if hit:
                crossings.append((sid, name, lo, hi, hit))
    assert crossings == []
    assert sim.labels() == [] or {r["kind"] for r in sim.labels()} == {"coverage_hole"}


def test_production_raises_methane_dust_and_runs_the_district_belts() -> None:
    cal = ShiftClock()
    day = iso_ns("2026-11-27T00:00:00Z")  # 08:00 local: the maintenance shift starts
    assert cal.at(day).kind == "maintenance" and cal.at(day - 1).kind == "production"
    sim = Simulation(SimConfig(seed=2, start_ns=day - 8 * 3600 * NS, duration_s=16 * 3600, rate_hz=0.05,
                               scenarios=["mf01", "bc04"]))
    by_kind: dict[str, dict[str, list[float]]] = {"production": {}, "maintenance": {}}
    for batch in sim.frames():
        for f in batch:
            kind = cal.at(f.ts).kind
            # skip the ramps round the handovers
            if abs(f.ts - day) < 3600 * NS:
                continue
            for ch in ("ch4_t1", "du", "speed"):
                if ch in f.readings:
                    by_kind[kind].setdefault(ch, []).append(f.readings[ch])
    prod, maint = by_kind["production"], by_kind["maintenance"]
    assert np.mean(prod["ch4_t1"]) > np.mean(maint["ch4_t1"]) + 0.1
    assert np.mean(prod["du"]) > 2 * np.mean(maint["du"])
    assert np.median(prod["speed"]) > 2.9 and max(maint["speed"]) < 0.1  # the gate belt stands still


def test_a_main_fan_trip_starves_the_faces_and_methane_climbs() -> None:
    faults = load_faults([{"kind": "main_fan_stoppage", "scenario": "vf01", "start": "+5m", "duration": "20m"}])
    sim = Simulation(SimConfig(seed=4, start_ns=NIGHT_SHIFT + 2 * 3600 * NS, duration_s=3600, rate_hz=0.2,
                               scenarios=["vf01", "mf01", "ra02"], faults=faults))
    frames = [f for batch in sim.frames() for f in batch]
    t0 = sim.t0
    fan = [f for f in frames if f.scenario_id == "vf01"]
    face = [f for f in frames if f.scenario_id == "mf01"]
    during = lambda f: t0 + 15 * 60 * NS <= f.ts < t0 + 25 * 60 * NS  # noqa: E731
    before = lambda f: f.ts < t0 + 5 * 60 * NS  # noqa: E731
    assert all(f.readings["run_a"] == 0.0 for f in fan if during(f))
    assert max(f.readings["dp"] for f in fan if during(f)) < 0.3
    assert np.median([f.readings["ws"] for f in face if during(f)]) < 0.25  # below the face minimum (domain §2)
    ch4_before = np.mean([f.readings["ch4_t1"] for f in face if before(f)])
    assert max(f.readings["ch4_t1"] for f in face if during(f)) > 1.5 > 3 * ch4_before  # past the power cut
    # after the restart the methane is flushed out again
    late = [f.readings["ch4_t1"] for f in face if f.ts > t0 + 45 * 60 * NS]
    assert max(late) < 1.0
