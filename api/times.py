"""Times in query parameters and bodies: ISO 8601 or integer nanoseconds since the Unix epoch."""

from __future__ import annotations

import re
from datetime import datetime, timedelta, timezone

__all__ = ["parse_time", "iso", "TIME_HELP", "TIME_PATTERN"]

TIME_HELP = ("ISO 8601 (`2026-11-27T00:00:00Z`, an offset or `Z`; no offset means UTC) "
             "or integer nanoseconds since the Unix epoch")
_DAY = r"(?:(?:0[13578]|1[02])-(?:0[1-9]|[12][0-9]|3[01])|(?:0[469]|11)-(?:0[1-9]|[12][0-9]|30)|02-(?:0[1-9]|1[0-9]|2[0-8]))"
_CLOCK = r"(?:[01][0-9]|2[0-3]):[0-5][0-9](?::[0-5][0-9](?:\.[0-9]{1,9})?)?"
# What parse_time accepts, for the OpenAPI document: nanoseconds (below 9e18, 2255), or an ISO 8601 date or date
# and time of 1971-2261 (the range a signed 64-bit nanosecond count holds, with room for an
# offset), an offset or Z only after a time. February 29th is accepted but not stated.
TIME_PATTERN = (rf"^(?:[0-9]{{1,18}}|[1-8][0-9]{{18}}|(?:19(?:7[1-9]|[89][0-9])|2[01][0-9]{{2}}|22[0-5][0-9]|226[01])-{_DAY}"
                rf"(?:[T ]{_CLOCK}(?:Z|z|[+-](?:[01][0-9]|2[0-3]):?[0-5][0-9])?)?)$")
MAX_NS_DOC = 9 * 10**18  # the largest count the document states: a double holds it exactly
_NS = 1_000_000_000
_INT = re.compile(r"[0-9]{1,19}")
# Year 1677 .. 2262 is what a signed 64-bit nanosecond count can hold.
_MAX_NS = 2**63 - 1
_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)


def _cut(value: object, n: int = 40) -> str:
    text = str(value)
    return repr(text) if len(text) <= n else f"{text[:n]!r}... ({len(text):,} characters)"


def parse_time(value: str | int, what: str = "time") -> int:
    """``value`` as nanoseconds since the epoch; ``ValueError`` with a sentence if it is neither
    an ISO 8601 time nor an integer count of nanoseconds."""
    if isinstance(value, int):
        ns = value
    else:
        s = value.strip()
        if _INT.fullmatch(s):
            ns = int(s)
        else:
            try:
                dt = datetime.fromisoformat(s.replace("z", "Z"))
            except ValueError:
                raise ValueError(f"{what} {_cut(value)} is neither ISO 8601 (2026-11-27T08:00:00Z) "
                                 "nor integer nanoseconds since the epoch") from None
            if dt.tzinfo is None:
                dt = dt.replace(tzinfo=timezone.utc)
            try:
                ns = (dt - _EPOCH) // timedelta(microseconds=1) * 1000
            except (OverflowError, ValueError):
                raise ValueError(f"{what} {_cut(value)} is out of range") from None
    if not 0 <= ns <= _MAX_NS:
        raise ValueError(f"{what} {_cut(value)} is out of range (1970 .. 2262)")
    return ns


def iso(ns: int) -> str:
    """``ns`` as an ISO 8601 UTC string with millisecond precision."""
    dt = datetime.fromtimestamp(ns // _NS, tz=timezone.utc)
    return dt.strftime("%Y-%m-%dT%H:%M:%S") + f".{(ns % _NS) // 1_000_000:03d}Z"
