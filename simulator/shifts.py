"""How hard the mine works, from the shift calendar (domain §6, :mod:`minewatch.shifts`).

Production shifts cut coal: shearers and roadheaders run, face belts carry coal, methane
emission and dust follow the cutting. The maintenance shift stops cutting and the district
belts; fans and pumps run regardless. Between shifts, where a calendar leaves the day uncovered
(no night shift), nobody cuts and the belts stand. The calendar is the project's one (``MINEWATCH_SHIFTS``,
``MINEWATCH_TZ_OFFSET``; default 3x8 in China Standard Time), so the simulated shifts are the
ones the API replays.
"""

from __future__ import annotations

import math
from datetime import datetime, timezone

from minewatch.shifts import NoShiftError, Shift, ShiftCalendar, calendar_from_env

__all__ = ["ShiftClock", "RAMP_S", "WIND_DOWN_S", "CUT_CYCLE_S"]

RAMP_S = 1800.0  # cutting builds up over the first half hour after the handover [P]
WIND_DOWN_S = 1200.0  # and stops 20 min before the shift ends, for the handover [P]
CUT_CYCLE_S = 5400.0  # one shearer pass along the face takes about 90 min [U]
_NS = 1_000_000_000


class ShiftClock:
    """The shift at a time (cached: a run asks thousands of times per shift) and the production level."""

    def __init__(self, calendar: ShiftCalendar | None = None) -> None:
        self.calendar = calendar if calendar is not None else calendar_from_env()
        # start_ns, end_ns, production, the shift (None: between shifts)
        self._cache: list[tuple[int, int, bool, Shift | None]] = []

    def _find(self, t_ns: int) -> tuple[int, int, bool, Shift | None]:
        for cached in self._cache:
            if cached[0] <= t_ns < cached[1]:
                return cached
        whole = t_ns - t_ns % _NS  # whole seconds: exact as a float, and shifts start on minutes
        try:
            s = self.calendar.at_ns(whole)
            entry: tuple[int, int, bool, Shift | None] = (s.start_ns, s.end_ns, s.kind == "production", s)
        except NoShiftError:
            before, after = self.calendar.gap(datetime.fromtimestamp(whole / _NS, tz=timezone.utc))
            entry = (int(before.timestamp()) * _NS, int(after.timestamp()) * _NS, False, None)
        self._cache = (self._cache + [entry])[-4:]
        return entry

    def at(self, t_ns: int) -> Shift | None:
        """The shift running at ``t_ns``; None between shifts."""
        return self._find(t_ns)[3]

    def previous(self, t_ns: int, back: int = 1) -> Shift:
        """The shift ``back`` shifts before the one running at ``t_ns`` (1 = the last complete one);
        the time between shifts is none."""
        start, _, _, shift = self._find(t_ns)
        while back > 0:
            start, _, _, shift = self._find(start - _NS)
            back -= shift is not None
        assert shift is not None
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
