"""The robot fleet: rail robots on belts and in machine rooms, crawlers at the faces, patrols.

Every scenario has a robot of its own (``r01``..``r31`` in catalogue order), so all 31 are
reported on at the frame rate; four patrol robots (``p01``..``p04``) walk loops through several
scenarios, stopping in each. Speeds follow domain §5 (rail robots 0.5-1.5 m/s [U]).

Battery [P, after the belt robot of domain §5: > 20 km per charge, contactless charging]:
moving drains 0.004 %/m (25 km per charge), the on-board electronics 0.8 %/h. A robot whose
battery falls below its threshold goes to its charger (position 0 of its route) and charges at
1 %/min up to 95 %.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property

import numpy as np

from minewatch.catalogue import SCENARIOS, ScenarioKind

__all__ = ["Route", "Robot", "default_fleet", "build_fleet", "PATROLS"]

DRAIN_PER_M = 0.004
DRAIN_PER_S = 0.8 / 3600.0
CHARGE_PER_S = 1.0 / 60.0


@dataclass(frozen=True)
class Route:
    """Segments ``(scenario_id, length_m)`` laid end to end; ``loop`` routes wrap, others shuttle.

    ``dwell_s`` is a stop at the middle of each segment (a patrol's inspection stop).
    ``stations_m``: 5G base stations along the route; ``holes_m``: stretches with no signal.
    """

    segments: tuple[tuple[str, float], ...]
    loop: bool = False
    dwell_s: float = 0.0
    stations_m: tuple[float, ...] = ()
    holes_m: tuple[tuple[float, float], ...] = ()

    @cached_property
    def length(self) -> float:
        return sum(length for _, length in self.segments)

    def scenario_at(self, pos: float) -> tuple[str, int]:
        acc = 0.0
        for i, (sid, length) in enumerate(self.segments):
            acc += length
            if pos < acc:
                return sid, i
        return self.segments[-1][0], len(self.segments) - 1

    def segment_mid(self, i: int) -> float:
        return sum(length for _, length in self.segments[:i]) + self.segments[i][1] / 2.0


# (route length m, speed m/s) of a robot stationed in a scenario of this kind [P]
_STATION = {
    ScenarioKind.belt: (1000.0, 1.0), ScenarioKind.main_fan: (40.0, 0.5), ScenarioKind.local_fan: (20.0, 0.3),
    ScenarioKind.pump: (40.0, 0.5), ScenarioKind.substation: (60.0, 0.5), ScenarioKind.compressor: (30.0, 0.5),
    ScenarioKind.drainage: (30.0, 0.5), ScenarioKind.mining_face: (200.0, 0.3), ScenarioKind.heading: (50.0, 0.2),
    ScenarioKind.air_return: (100.0, 0.3), ScenarioKind.bunker: (30.0, 0.3),
}

# Patrol loops [P]: routes through a district, with base stations every 450 m (domain §5:
# 400-500 m per station in roadways [C]) and a stretch behind a door or bend with no signal.
PATROLS: dict[str, Route] = {
    "p01": Route((("mf01", 250.0), ("ra03", 400.0), ("ss03", 100.0), ("bc04", 600.0), ("mf03", 200.0)), loop=True,
                 dwell_s=60.0, stations_m=(0.0, 450.0, 900.0, 1350.0), holes_m=((1500.0, 1560.0),)),
    "p02": Route((("hf01", 300.0), ("lf01", 50.0), ("hf02", 300.0), ("lf02", 50.0), ("ra02", 500.0)), loop=True,
                 dwell_s=60.0, stations_m=(0.0, 450.0, 900.0)),
    "p03": Route((("mf02", 250.0), ("ra01", 400.0), ("hf03", 300.0), ("lf03", 50.0), ("hf04", 300.0),
                  ("lf04", 50.0)), loop=True, dwell_s=60.0, stations_m=(0.0, 450.0, 900.0),
                 holes_m=((1150.0, 1220.0),)),
    "p04": Route((("ss01", 80.0), ("pr01", 60.0), ("bc01", 500.0), ("bc02", 500.0), ("cb01", 60.0), ("ac01", 60.0),
                  ("gd01", 60.0), ("vf02", 80.0)), loop=True, dwell_s=45.0,
                 stations_m=(0.0, 450.0, 900.0, 1350.0)),
}


@dataclass
class Robot:
    id: str
    kind: str  # rail | crawler | patrol
    route: Route
    speed: float
    battery: float = 90.0
    charge_below: float = 30.0
    pos: float = 0.0
    direction: float = 1.0
    charging: bool = False
    dwell_left: float = 0.0
    visited: int = -1
    moving: bool = field(default=False, init=False)

    @property
    def scenario(self) -> str:
        if len(self.route.segments) == 1:
            return self.route.segments[0][0]
        return self.route.scenario_at(self.pos)[0]

    def advance(self, dt: float) -> None:
        """Move ``dt`` seconds along the route; drain, go to the charger, charge."""
        self.battery = max(0.0, self.battery - DRAIN_PER_S * dt)
        if self.charging:
            self.moving = False
            self.battery = min(95.0, self.battery + CHARGE_PER_S * dt)
            if self.battery >= 95.0:
                self.charging = False
            return
        if self.dwell_left > 0.0:
            self.moving = False
            self.dwell_left = max(0.0, self.dwell_left - dt)
            return
        heading_home = self.battery < self.charge_below
        step = self.speed * dt
        length = self.route.length
        self.moving = True
        if self.route.loop:
            old = self.pos
            self.pos += step
            if heading_home and self.pos >= length:
                self.pos, self.charging = 0.0, True
                return
            self.pos %= length
            _, seg = self.route.scenario_at(self.pos)
            mid = self.route.segment_mid(seg)
            if self.route.dwell_s and old < mid <= self.pos and seg != self.visited:
                self.pos, self.dwell_left, self.visited = mid, self.route.dwell_s, seg
        else:
            if heading_home:
                self.direction = -1.0
            self.pos += self.direction * step
            if self.pos >= length:
                self.pos, self.direction = 2 * length - self.pos, -1.0
            if self.pos <= 0.0:
                self.pos, self.direction = -self.pos, 1.0
                if heading_home:
                    self.pos, self.charging = 0.0, True
        self.battery = max(0.0, self.battery - DRAIN_PER_M * step)


def _stationed(i: int, sid: str, extra: int = 0) -> Robot:
    kind = SCENARIOS[sid].kind
    length, speed = _STATION[kind]
    rail = kind in (ScenarioKind.belt, ScenarioKind.main_fan, ScenarioKind.pump, ScenarioKind.compressor,
                    ScenarioKind.drainage, ScenarioKind.substation, ScenarioKind.local_fan)
    stations = tuple(float(x) for x in np.arange(225.0, length, 450.0)) if length > 450.0 else (length / 2.0,)
    route = Route(((sid, length),), stations_m=stations)
    # spread starting states so the fleet does not charge in lock-step
    battery = 55.0 + (i * 37 % 40)
    pos = (i * 0.37 % 1.0) * length
    return Robot(f"r{i + 1:02d}", "rail" if rail else "crawler", route, speed, battery=battery, pos=pos)


def default_fleet() -> list[Robot]:
    robots = [_stationed(i, sid) for i, sid in enumerate(SCENARIOS)]
    for j, (rid, route) in enumerate(PATROLS.items()):
        robots.append(Robot(rid, "patrol", route, 1.0, battery=70.0 + 7 * j, charge_below=35.0,
                            pos=route.length * j / 4.0 % route.length))
    return robots


def build_fleet(robots: int | None = None, scenarios: list[str] | None = None) -> list[Robot]:
    """The default fleet, restricted to ``scenarios`` (stationed robots only) and sized to ``robots``.

    More robots than the default adds stationed robots round-robin over the scenarios
    (``r32``, ``r33``, ...): a denser fleet over the same mine.
    """
    fleet = default_fleet()
    if scenarios:
        unknown = [s for s in scenarios if s not in SCENARIOS]
        if unknown:
            raise ValueError(f"unknown scenario(s) {', '.join(unknown)}; known: {', '.join(SCENARIOS)}")
        fleet = [r for r in fleet if r.kind != "patrol" and r.scenario in scenarios]
    if robots is None:
        return fleet
    if robots < 1:
        raise ValueError("--robots must be at least 1")
    if robots <= len(fleet):
        return fleet[:robots]
    pool = scenarios or list(SCENARIOS)
    i = 0
    while len(fleet) < robots:
        fleet.append(_stationed(len(SCENARIOS) + i, pool[i % len(pool)]))
        i += 1
    return fleet
