"""``/shifts``: the shift calendar (domain §6), configured with ``MINEWATCH_SHIFTS``."""

from __future__ import annotations

import time
from datetime import datetime, timezone
from typing import Annotated

from fastapi import APIRouter, HTTPException, Path, Query

from api.deps import Reader, StateDep
from api.params import SHIFT_PATTERN, time_or_422
from api.schemas import ShiftPublic, ShiftsPublic, errors
from api.times import TIME_HELP, TIME_PATTERN, iso
from minewatch.shifts import NoShiftError, Shift

router = APIRouter(prefix="/shifts", tags=["shifts"])
_DAY = 86400 * 1_000_000_000
MAX_DAYS = 366


def shift_public(s: Shift) -> ShiftPublic:
    return ShiftPublic(id=s.id, day=s.day.isoformat(), name=s.name, kind=s.kind, start=iso(s.start_ns),
                       end=iso(s.end_ns), start_ns=s.start_ns, end_ns=s.end_ns)


def _dt(ns: int) -> datetime:
    return datetime.fromtimestamp(ns / 1e9, tz=timezone.utc)


@router.get("", response_model=ShiftsPublic, responses=errors(), summary="Shifts overlapping a window")
async def list_shifts(
    state: StateDep, _: Reader,
    from_: Annotated[str | None, Query(alias="from", pattern=TIME_PATTERN,
                                       description=f"default: a day ago; {TIME_HELP}")] = None,
    to: Annotated[str | None, Query(pattern=TIME_PATTERN, description=f"default: a day ahead; {TIME_HELP}; a `to` "
                                    f"not after `from` gives none, one more than {MAX_DAYS} days after it the first "
                                    f"{MAX_DAYS} days")] = None,
) -> ShiftsPublic:
    """Every shift that overlaps ``[from, to)``, oldest first (at most a year's worth)."""
    now = time.time_ns()
    t0 = time_or_422(from_, "from")
    t1 = time_or_422(to, "to")
    t0 = now - _DAY if t0 is None else t0
    t1 = now + _DAY if t1 is None else t1
    t1 = min(t1, t0 + MAX_DAYS * _DAY)  # at most a year's worth, from `from` on
    cal = state.calendar
    data = [shift_public(s) for s in cal.between(_dt(t0), _dt(t1))]
    return ShiftsPublic(data=data, count=len(data), tz_offset_h=cal.tz.utcoffset(None).total_seconds() / 3600)


@router.get("/current", response_model=ShiftPublic, responses=errors(404), summary="The shift in progress")
async def current_shift(state: StateDep, _: Reader) -> ShiftPublic:
    """The shift running now; 404 between shifts, where a calendar leaves the day uncovered."""
    try:
        return shift_public(state.calendar.at_ns(time.time_ns()))
    except NoShiftError as exc:
        raise HTTPException(404, str(exc)) from None


@router.get("/{shift_id}", response_model=ShiftPublic, responses=errors(404), summary="One shift")
async def get_shift(shift_id: Annotated[str, Path(pattern=SHIFT_PATTERN, description="YYYY-MM-DD:NAME",
                                                  examples=["2026-11-27:night"])],
                    state: StateDep, _: Reader) -> ShiftPublic:
    try:
        return shift_public(state.calendar.parse(shift_id))
    except (ValueError, OverflowError) as exc:
        raise HTTPException(404, str(exc)) from None
