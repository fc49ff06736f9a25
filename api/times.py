"""Times in query parameters and bodies: ISO 8601 or integer nanoseconds since the Unix epoch."""

from __future__ import annotations

import re
from datetime import datetime, timedelta, timezone

__all__ = ["parse_time", "iso", "TIME_HELP"]

TIME_HELP = ("ISO 8601 (`2026-11-27T00:00:00Z`, an offset or `Z`; no offset means UTC) "
             "or integer nanoseconds since the Unix epoch")
_NS = 1_000_000_000
_INT = re.compile(r"^[0-9]{1,19}$")
# Year 1677 .. 2262 is what a signed 64-bit nanosecond count can hold.
_MAX_NS = 2**63 - 1
_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)


def parse_time(value: str | int, what: str = "time") -> int:
    """``value`` as nanoseconds since the epoch; ``ValueError`` with a sentence if it is neither
    an ISO 8601 time nor an integer count of nanoseconds."""
    if isinstance(value, int):
        ns = value
    else:
        s = value.strip()
        if _INT.match(s):
            ns = int(s)
        else:
            try:
                dt = datetime.fromisoformat(s.replace("z", "Z"))
            except ValueError:
                raise ValueError(f"{what} {value!r} is neither ISO 8601 (2026-11-27T08:00:00Z) "
                                 "nor integer nanoseconds since the epoch") from None
            if dt.tzinfo is None:
                dt = dt.replace(tzinfo=timezone.utc)
            try:
                ns = (dt - _EPOCH) // timedelta(microseconds=1) * 1000
            except (OverflowError, ValueError):
                raise ValueError(f"{what} {value!r} is out of range") from None
    if not 0 <= ns <= _MAX_NS:
        raise ValueError(f"{what} {value!r} is out of range (1970 .. 2262)")
    return ns


def iso(ns: int) -> str:
    """``ns`` as an ISO 8601 UTC string with millisecond precision."""
    dt = datetime.fromtimestamp(ns // _NS, tz=timezone.utc)
    return dt.strftime("%Y-%m-%dT%H:%M:%S") + f".{(ns % _NS) // 1_000_000:03d}Z"
