"""Parsing of durations (``30s``, ``5m``, ``1h30m``, ``8h``) and times (``+30s`` or ISO 8601)."""

from __future__ import annotations

import re
from datetime import datetime, timezone

__all__ = ["NS", "parse_duration_s", "parse_time_ns", "iso_ns", "ns_iso"]

NS = 1_000_000_000
_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h|d)")
_UNIT_S = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}


def parse_duration_s(text: str | float | int) -> float:
    """Seconds in ``text``: a bare number of seconds or parts like ``1h30m``, ``90s``, ``2.5m``."""
    if isinstance(text, (int, float)):
        value = float(text)
    else:
        s = text.strip().lower().replace(" ", "")
        try:
            value = float(s)
        except ValueError:
            pos, value = 0, 0.0
            for m in _PART.finditer(s):
                if m.start() != pos:
                    break
                value += float(m.group(1)) * _UNIT_S[m.group(2)]
                pos = m.end()
            if pos != len(s) or not s:
                raise ValueError(f"bad duration {text!r}: use seconds or parts like 90s, 5m, 1h30m") from None
    if value < 0:
        raise ValueError(f"duration {text!r} is negative")
    return value


def iso_ns(text: str) -> int:
    """Nanoseconds since the epoch of an ISO 8601 time; a time without a zone is UTC."""
    s = text.strip()
    if s.endswith(("Z", "z")):
        s = s[:-1] + "+00:00"
    try:
        dt = datetime.fromisoformat(s)
    except ValueError:
        raise ValueError(f"bad time {text!r}: use ISO 8601, e.g. 2026-11-27T08:00:00Z") from None
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=timezone.utc)
    delta = dt - datetime(1970, 1, 1, tzinfo=timezone.utc)
    return (delta.days * 86400 + delta.seconds) * NS + delta.microseconds * 1000


def ns_iso(ns: int) -> str:
    secs, rem = divmod(ns, NS)
    base = datetime.fromtimestamp(secs, tz=timezone.utc).strftime("%Y-%m-%dT%H:%M:%S")
    return f"{base}.{rem // 1_000_000:03d}Z" if rem else f"{base}Z"


def parse_time_ns(text: str | int, run_start_ns: int) -> int:
    """A fault time: ``+30s`` / ``+5m`` relative to the run start, ISO 8601, or integer ns."""
    if isinstance(text, int):
        return text
    s = str(text).strip()
    if s.startswith("+"):
        return run_start_ns + round(parse_duration_s(s[1:]) * NS)
    return iso_ns(s)
