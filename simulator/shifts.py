"""How hard the mine works, from the shift calendar (domain §6, :mod:`minewatch.shifts`).

Production shifts cut coal: shearers and roadheaders run, face belts carry coal, methane
emission and dust follow the cutting. The maintenance shift stops cutting and the district
belts; fans and pumps run regardless. The calendar is the project's one (``MINEWATCH_SHIFTS``,
``MINEWATCH_TZ_OFFSET``; default 3x8 in China Standard Time), so the simulated shifts are the
ones the API replays.
"""

from __future__ import annotations

import math

from minewatch.shifts import Shift, ShiftCalendar, calendar_from_env

__all__ = ["ShiftClock", "RAMP_S", "WIND_DOWN_S", "CUT_CYCLE_S"]

RAMP_S = 1800.0  # cutting builds up over the first half hour after the handover [P]
WIND_DOWN_S = 1200.0  # and stops 20 min before the shift ends, for the handover [P]
CUT_CYCLE_S = 5400.0  # one shearer pass along the face takes about 90 min [U]
_NS = 1_000_000_000


class ShiftClock:
    """The shift at a time (cached: a run asks thousands of times per shift) and the production level."""

    def __init__(self, calendar: ShiftCalendar | None = None) -> None:
        self.calendar = calendar if calendar is not None else calendar_from_env()
        self._cache: list[tuple[int, int, bool, Shift]] = []  # start_ns, end_ns, production, shift

    def _find(self, t_ns: int) -> tuple[int, int, bool, Shift]:
        for entry in self._cache:
            if entry[0] <= t_ns < entry[1]:
                return entry
        s = self.calendar.at_ns(t_ns - t_ns % _NS)  # whole seconds: exact as a float, and shifts start on minutes
        entry = (s.start_ns, s.end_ns, s.kind == "production", s)
        self._cache = (self._cache + [entry])[-4:]
        return entry

    def at(self, t_ns: int) -> Shift:
        return self._find(t_ns)[3]

    def previous(self, t_ns: int, back: int = 1) -> Shift:
        """The shift ``back`` shifts before the one running at ``t_ns`` (1 = the last complete one)."""
        shift = self.at(t_ns)
        for _ in range(back):
            shift = self.at(shift.start_ns - _NS)
        return shift

    def production_level(self, t_ns: int) -> float:
        """How hard the faces cut, 0..1: a ramp after the handover, the shearer's passes, a wind-down."""
        start, end, production, _ = self._find(t_ns)
        if not production:
            return 0.0
        into = (t_ns - start) / _NS
        left = (end - t_ns) / _NS
        ramp = min(1.0, into / RAMP_S, max(0.0, left / WIND_DOWN_S))
        return max(0.0, ramp * (0.8 + 0.2 * math.sin(2.0 * math.pi * into / CUT_CYCLE_S)))
