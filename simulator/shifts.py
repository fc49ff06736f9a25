"""The shift calendar (domain §6): which shift is on, and how hard the mine is working.

Production shifts cut coal: shearers and roadheaders run, face belts carry coal, methane
emission and dust follow the cutting. The maintenance shift stops cutting and the district
belts; fans and pumps run regardless. Shift times are local mine time (China, UTC+8), which is
where the domain's shift table comes from; telemetry timestamps stay UTC.

Patterns:

``3x8`` (default, domain §6 "traditional three shifts" [C]): 00-08 production, 08-16
maintenance, 16-24 production.
``4x6`` (domain §6 四六制 [C pattern, U times]): 00-06 production, 06-12 maintenance,
12-18 and 18-24 production.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from simulator.timeutil import NS

__all__ = ["PATTERNS", "Shift", "ShiftCalendar"]

HOUR_NS = 3600 * NS
DAY_NS = 24 * HOUR_NS

# pattern -> list of (start hour local, length h, name, kind)
PATTERNS: dict[str, tuple[tuple[int, int, str, str], ...]] = {
    "3x8": ((0, 8, "night", "production"), (8, 8, "day", "maintenance"), (16, 8, "middle", "production")),
    "4x6": ((0, 6, "first", "production"), (6, 6, "second", "maintenance"), (12, 6, "third", "production"),
            (18, 6, "fourth", "production")),
}

RAMP_S = 1800.0  # cutting builds up over the first half hour after the handover [P]
WIND_DOWN_S = 1200.0  # and stops 20 min before the shift ends, for the handover [P]
CUT_CYCLE_S = 5400.0  # one shearer pass along the face takes about 90 min [U]


@dataclass(frozen=True)
class Shift:
    name: str
    kind: str  # "production" or "maintenance"
    start_ns: int
    end_ns: int

    @property
    def production(self) -> bool:
        return self.kind == "production"


class ShiftCalendar:
    """Shifts of a pattern in local time ``utc_offset_h`` hours ahead of UTC."""

    def __init__(self, pattern: str = "3x8", utc_offset_h: float = 8.0) -> None:
        if pattern not in PATTERNS:
            raise ValueError(f"unknown shift pattern {pattern!r}; known: {', '.join(PATTERNS)}")
        self.pattern = pattern
        self.utc_offset_h = utc_offset_h
        self._offset_ns = round(utc_offset_h * HOUR_NS)
        self._table = PATTERNS[pattern]

    def at(self, t_ns: int) -> Shift:
        local = t_ns + self._offset_ns
        day0 = local - local % DAY_NS
        hour_ns = local - day0
        for start_h, length_h, name, kind in self._table:
            s = start_h * HOUR_NS
            if s <= hour_ns < s + length_h * HOUR_NS:
                start = day0 + s - self._offset_ns
                return Shift(name, kind, start, start + length_h * HOUR_NS)
        raise AssertionError("shift table does not cover the day")  # pragma: no cover

    def previous(self, t_ns: int, back: int = 1) -> Shift:
        """The shift ``back`` shifts before the one running at ``t_ns`` (1 = the last complete one)."""
        shift = self.at(t_ns)
        for _ in range(back):
            shift = self.at(shift.start_ns - 1)
        return shift

    def production_level(self, t_ns: int) -> float:
        """How hard the faces cut, 0..1: a ramp after the handover, the shearer's passes, a wind-down."""
        shift = self.at(t_ns)
        if not shift.production:
            return 0.0
        into = (t_ns - shift.start_ns) / NS
        left = (shift.end_ns - t_ns) / NS
        ramp = min(1.0, into / RAMP_S, max(0.0, left / WIND_DOWN_S))
        cycle = 0.8 + 0.2 * math.sin(2.0 * math.pi * into / CUT_CYCLE_S)
        return max(0.0, ramp * cycle)
