"""The shift calendar (domain §6).

Default: the traditional three shifts, 08-16 maintenance, 16-24 and 00-08 production (China
Energy News 2019-06-03 [C]). Other patterns (4x6 h, two shifts) are configured with
``MINEWATCH_SHIFTS``: comma-separated ``name@HH:MM-HH:MM/kind`` entries, e.g.
``night@00:00-08:00/production,day@08:00-16:00/maintenance,swing@16:00-24:00/production``.

Shift times are local mine time; ``MINEWATCH_TZ_OFFSET`` (hours, default +8, China Standard Time)
gives the offset from UTC. A shift is named on the date it starts: ``2026-11-27:night`` runs
from 00:00 to 08:00 local time on 27 November.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from datetime import date, datetime, timedelta, timezone
from typing import Literal

__all__ = ["ShiftDef", "Shift", "ShiftCalendar", "NoShiftError", "DEFAULT_SHIFTS", "calendar_from_env"]

ShiftKind = Literal["production", "maintenance"]
_NS = 1_000_000_000


class NoShiftError(ValueError):
    """No shift runs at that time: a calendar need not cover the day (some groups have dropped the
    00-08 shift, domain §6)."""


@dataclass(frozen=True)
class ShiftDef:
    name: str
    start_min: int  # minutes after local midnight
    end_min: int  # may be 1440 (midnight) or beyond for a shift crossing midnight
    kind: ShiftKind

    def __post_init__(self) -> None:
        if not re.fullmatch(r"[a-z0-9_-]{1,32}", self.name):
            raise ValueError(f"shift name {self.name!r}: use lower-case letters, digits, '_' or '-'")
        if not (0 <= self.start_min < 1440 and self.start_min < self.end_min <= self.start_min + 1440):
            raise ValueError(f"shift {self.name!r}: bad times")


@dataclass(frozen=True)
class Shift:
    """One occurrence of a shift: ``2026-11-27:night``."""

    day: date
    name: str
    kind: ShiftKind
    start: datetime  # UTC
    end: datetime  # UTC

    @property
    def id(self) -> str:
        return f"{self.day.isoformat()}:{self.name}"

    @property
    def start_ns(self) -> int:
        return int(self.start.timestamp()) * _NS

    @property
    def end_ns(self) -> int:
        return int(self.end.timestamp()) * _NS


DEFAULT_SHIFTS: tuple[ShiftDef, ...] = (
    ShiftDef("night", 0, 8 * 60, "production"),
    ShiftDef("day", 8 * 60, 16 * 60, "maintenance"),
    ShiftDef("swing", 16 * 60, 24 * 60, "production"),
)


def _parse_hhmm(s: str) -> int:
    m = re.fullmatch(r"(\d{1,2}):(\d{2})", s.strip())
    if not m or int(m.group(1)) > 24 or int(m.group(2)) > 59:
        raise ValueError(f"time {s!r} is not HH:MM")
    return int(m.group(1)) * 60 + int(m.group(2))


def parse_shifts(spec: str) -> tuple[ShiftDef, ...]:
    out = []
    for part in filter(None, (p.strip() for p in spec.split(","))):
        m = re.fullmatch(r"([^@]+)@([\d:]+)-([\d:]+)/(production|maintenance)", part)
        if not m:
            raise ValueError(f"shift {part!r} is not name@HH:MM-HH:MM/production|maintenance")
        start, end = _parse_hhmm(m.group(2)), _parse_hhmm(m.group(3))
        if end <= start:
            end += 1440
        out.append(ShiftDef(m.group(1), start, end, m.group(4)))  # type: ignore[arg-type]  # the pattern admits the kinds only
    if not out:
        raise ValueError("no shifts given")
    return tuple(out)


class ShiftCalendar:
    def __init__(self, shifts: tuple[ShiftDef, ...] = DEFAULT_SHIFTS, tz_offset_h: float = 8.0) -> None:
        self.shifts = shifts
        self.tz = timezone(timedelta(hours=tz_offset_h))
        names = [s.name for s in shifts]
        if len(set(names)) != len(names):
            raise ValueError("shift names must be unique")

    def occurrence(self, day: date, name: str) -> Shift:
        for d in self.shifts:
            if d.name == name:
                local0 = datetime(day.year, day.month, day.day, tzinfo=self.tz)
                start = local0 + timedelta(minutes=d.start_min)
                end = local0 + timedelta(minutes=d.end_min)
                return Shift(day, d.name, d.kind, start.astimezone(timezone.utc), end.astimezone(timezone.utc))
        raise KeyError(f"no shift named {name!r}; shifts are {', '.join(s.name for s in self.shifts)}")

    def parse(self, shift_id: str) -> Shift:
        """``YYYY-MM-DD:NAME`` → the shift occurrence."""
        day_s, sep, name = shift_id.partition(":")
        if not sep:
            raise ValueError(f"shift {shift_id!r} is not YYYY-MM-DD:NAME")
        try:
            day = date.fromisoformat(day_s)
        except ValueError:
            raise ValueError(f"shift {shift_id!r}: {day_s!r} is not a date YYYY-MM-DD") from None
        try:
            return self.occurrence(day, name)
        except KeyError as exc:
            raise ValueError(str(exc.args[0])) from None

    def at(self, when: datetime) -> Shift:
        """The shift in progress at ``when`` (aware datetime)."""
        local = when.astimezone(self.tz)
        for back in (0, 1):
            day = local.date() - timedelta(days=back)
            for d in self.shifts:
                s = self.occurrence(day, d.name)
                if s.start <= when < s.end:
                    return s
        before, after = self.gap(when)
        raise NoShiftError(f"no shift runs at {when.isoformat()}: the last ended at {before.isoformat()}, the next "
                      f"starts at {after.isoformat()}")

    def gap(self, when: datetime) -> tuple[datetime, datetime]:
        """Where no shift runs round ``when``: from the end of the last shift before it to the start of
        the next (both within a day of it, since every day has a shift)."""
        near = self.between(when - timedelta(days=1, minutes=1), when + timedelta(days=1, minutes=1))
        return (max(s.end for s in near if s.end <= when), min(s.start for s in near if s.start > when))

    def at_ns(self, ts_ns: int) -> Shift:
        return self.at(datetime.fromtimestamp(ts_ns / _NS, tz=timezone.utc))

    def between(self, start: datetime, end: datetime) -> list[Shift]:
        """Every shift overlapping [start, end), oldest first."""
        out: list[Shift] = []
        day = start.astimezone(self.tz).date() - timedelta(days=1)
        last = end.astimezone(self.tz).date()
        while day <= last:
            for d in self.shifts:
                s = self.occurrence(day, d.name)
                if s.end > start and s.start < end:
                    out.append(s)
            day += timedelta(days=1)
        return sorted(out, key=lambda s: s.start)


def calendar_from_env() -> ShiftCalendar:
    """The calendar of ``MINEWATCH_SHIFTS`` and ``MINEWATCH_TZ_OFFSET``; a bad one is an error
    naming the variable."""
    spec = os.environ.get("MINEWATCH_SHIFTS")
    tz_s = os.environ.get("MINEWATCH_TZ_OFFSET", "8")
    try:
        tz = float(tz_s)
        if not -24 < tz < 24:
            raise ValueError
    except ValueError:
        raise ValueError(f"MINEWATCH_TZ_OFFSET={tz_s[:40]!r}: give the mine's offset from UTC in hours, "
                         "between -24 and 24 (8 for China Standard Time)") from None
    try:
        return ShiftCalendar(parse_shifts(spec) if spec else DEFAULT_SHIFTS, tz)
    except ValueError as exc:
        raise ValueError(f"MINEWATCH_SHIFTS: {exc}") from None
