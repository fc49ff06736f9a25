"""The mine's physics: a normal shift stays inside every limit; shifts and ventilation drive the gas."""

from __future__ import annotations

from typing import Any

import numpy as np

from minewatch.catalogue import SCENARIOS
from minewatch.wire import Frame
from simulator.engine import SimConfig, Simulation
from simulator.faults import load_faults
from simulator.labels import limit_severity
from simulator.shifts import ShiftClock
from simulator.timeutil import NS, iso_ns

NIGHT_SHIFT = iso_ns("2026-11-26T16:00:00Z")  # 00:00 local (UTC+8): the night production shift



def _at(f: Frame, ch: str) -> float:
    """Channel ``ch`` of frame ``f``, which must carry it."""
    v = f.readings[ch]
    assert v is not None, (f.robot_id, f.ts, ch)
    return v

def test_a_normal_production_shift_of_the_whole_mine_crosses_no_limit() -> None:
    """Zero limit crossings: every reading of every robot over 8 hours, a reading every 5 s (domain §5).

    ``Simulation.readings()`` gives the very numbers the frames carry (noise, resolution, sensor
    range applied), without building frames, so the whole shift takes seconds."""
    sim = Simulation(SimConfig(seed=21, start_ns=NIGHT_SHIFT, duration_s=8 * 3600, rate_hz=0.2))
    m = sim.mine
    lo, hi = np.full(m.K, np.inf), np.full(m.K, -np.inf)
    ticks = 0
    for rd in sim.readings():
        np.minimum.at(lo, rd.channels, rd.values)
        np.maximum.at(hi, rd.channels, rd.values)
        ticks += 1
    assert ticks == 5760
    assert np.isfinite(hi).all()  # every channel of every scenario was read
    crossings = []
    for k, (sid, name) in enumerate(zip((m.scenario_ids[p] for p in m.place_of), m.names)):
        ch = SCENARIOS[sid].channel(name)
        assert ch.low <= lo[k] <= hi[k] <= ch.high, (sid, name, lo[k], hi[k])
        for lim in ch.limits:
            hit = limit_severity(lim, float(lo[k]), float(hi[k]))
            if hit:
                crossings.append((sid, name, lo[k], hi[k], hit))
    assert crossings == []
    # and the shift is alive: methane and dust at the face move with the cutting
    face = m.channel_index("mf01", "ch4_t1")
    assert hi[face] - lo[face] > 0.2


def _kind(cal: ShiftClock, t_ns: int) -> str:
    shift = cal.at(t_ns)
    assert shift is not None  # the default calendar covers the day
    return shift.kind


def test_production_raises_methane_dust_and_runs_the_district_belts() -> None:
    cal = ShiftClock()
    day = iso_ns("2026-11-27T00:00:00Z")  # 08:00 local: the maintenance shift starts
    assert _kind(cal, day) == "maintenance" and _kind(cal, day - 1) == "production"
    sim = Simulation(SimConfig(seed=2, start_ns=day - 8 * 3600 * NS, duration_s=16 * 3600, rate_hz=0.05,
                               scenarios=["mf01", "bc04"]))
    by_kind: dict[str, dict[str, list[float]]] = {"production": {}, "maintenance": {}}
    for batch in sim.frames():
        for f in batch:
            kind = _kind(cal, f.ts)
            # skip the ramps round the handovers
            if abs(f.ts - day) < 3600 * NS:
                continue
            for ch in ("ch4_t1", "du", "speed"):
                if ch in f.readings:
                    by_kind[kind].setdefault(ch, []).append(_at(f, ch))
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

    def during(f: Frame) -> bool:
        return t0 + 15 * 60 * NS <= f.ts < t0 + 25 * 60 * NS

    def before(f: Frame) -> bool:
        return f.ts < t0 + 5 * 60 * NS

    assert all(f.readings["run_a"] == 0.0 for f in fan if during(f))
    assert max(_at(f, "dp") for f in fan if during(f)) < 0.3
    assert np.median([f.readings["ws"] for f in face if during(f)]) < 0.25  # below the face minimum (domain §2)
    ch4_before = np.mean([f.readings["ch4_t1"] for f in face if before(f)])
    assert max(_at(f, "ch4_t1") for f in face if during(f)) > 1.5 > 3 * ch4_before  # past the power cut
    # after the restart the methane is flushed out again
    late = [_at(f, "ch4_t1") for f in face if f.ts > t0 + 45 * 60 * NS]
    assert max(late) < 1.0


def test_readings_are_the_numbers_the_frames_carry() -> None:
    cfg: dict[str, Any] = dict(seed=8, start_ns=NIGHT_SHIFT, duration_s=300, rate_hz=1.0,
               faults=load_faults([{"kind": "sensor_drift", "scenario": "mf01", "channel": "co", "start": "+1m",
                                    "duration": "2m", "peak": 5}]))
    frames = {(f.robot_id, f.ts): f for batch in Simulation(SimConfig(**cfg)).frames() for f in batch}
    sim = Simulation(SimConfig(**cfg))
    checked = 0
    for rd in sim.readings():
        for ri, r in enumerate(sim.fleet):
            f = frames[(r.id, rd.t_ns + ri * sim.dt_ns // len(sim.fleet))]
            assert f.scenario_id == rd.scenario_ids[ri]
            assert list(f.readings.values()) == rd.values[rd.offsets[ri]:rd.offsets[ri + 1]].tolist()
            checked += 1
    assert checked == len(frames) == 300 * len(sim.fleet)


def test_a_calendar_without_a_night_shift_leaves_the_faces_idle_between_shifts() -> None:
    """Between the swing and the day shift (no night shift, domain §6) nobody cuts: no
    production, the belts stand; the last complete shift before the gap is the swing shift."""
    from minewatch.shifts import ShiftCalendar, parse_shifts

    cal = ShiftClock(ShiftCalendar(parse_shifts("day@08:00-16:00/maintenance,swing@16:00-24:00/production")))
    gap = iso_ns("2026-12-31T18:00:00Z")  # 02:00 local on 1 January: between shifts
    assert cal.at(gap) is None and cal.production_level(gap) == 0.0
    assert cal.previous(gap).id == "2026-12-31:swing" and cal.previous(gap, 2).id == "2026-12-31:day"
    day = iso_ns("2027-01-01T00:00:00Z")
    assert cal.previous(day + 60 * NS).id == "2026-12-31:swing"  # the gap is no shift
    sim = Simulation(SimConfig(seed=3, start_ns=gap - 3 * 3600 * NS, duration_s=6 * 3600, rate_hz=0.01,
                               scenarios=["mf01", "bc04"], calendar=cal.calendar))
    frames = [f for batch in sim.frames() for f in batch]
    assert max(f.ts for f in frames) > gap + 2 * 3600 * NS  # the whole run, through the new year
    speeds = [_at(f, "speed") for f in frames if "speed" in f.readings and abs(f.ts - gap) < 3600 * NS]
    assert speeds and max(speeds) < 0.1  # the district belt stands still
