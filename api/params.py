"""Checking query parameters: each failure is a 422 with a sentence saying what to send."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Literal

from fastapi.exceptions import RequestValidationError

from api.times import parse_time
from minewatch.catalogue import SCENARIOS, Scenario

__all__ = ["bad", "excerpt", "MINE_PATTERN", "ROBOT_PATTERN", "SCENARIO_IDS", "ScenarioName", "SHIFT_PATTERN", "CHANNELS_PATTERN",
           "time_or_422", "window_or_422", "scenario_or_422", "channels_or_422", "robot_or_422", "EXTRA_FIELDS"]

# Telemetry fields that are not channels of a scenario but may be asked for like one.
EXTRA_FIELDS = {"battery": "%", "pos_m": "m", "latency_ms": "ms", "rssi_dbm": "dBm"}
# for the OpenAPI document (ECMA-262: `$` is the end of the input); checked here with fullmatch,
# as Python's `$` also matches before a final newline
ROBOT_PATTERN = r"^[A-Za-z0-9_.-]{1,64}$"
MINE_PATTERN = r"^[a-z0-9][a-z0-9_-]{0,31}$"  # a mine id of the group (minewatch.group.check_mine)
_ROBOT = re.compile(r"[A-Za-z0-9_.-]{1,64}")
SCENARIO_IDS = list(SCENARIOS)
if TYPE_CHECKING:
    ScenarioName = str  # the ids are known at run time only
else:
    ScenarioName = Literal[tuple(SCENARIO_IDS)]  # the document lists them as an enum
# a shift id, YYYY-MM-DD:NAME (names as minewatch.shifts allows them); one that is well formed but
# names no shift of the calendar is a 404
# every channel name of the catalogue (and the extra fields): a name that is no channel anywhere
# is refused by the pattern; one of another scenario gives an empty series
_UNITS = {c.name: c.unit for s in reversed(SCENARIOS.values()) for c in s.channels}
_CHANNEL = "(?:" + "|".join(sorted({c.name for s in SCENARIOS.values() for c in s.channels} | set(EXTRA_FIELDS),
                                   key=lambda n: (-len(n), n))) + ")"
CHANNELS_PATTERN = rf"^{_CHANNEL}(?:,{_CHANNEL}){{0,63}}$"
SHIFT_PATTERN = r"^[0-9]{4}-[0-9]{2}-[0-9]{2}:[a-z0-9_-]{1,32}$"
EXCERPT = 40


def excerpt(value: object, n: int = EXCERPT) -> str:
    """``repr`` of ``value`` cut to its first ``n`` characters, for error messages that name what
    was sent without sending it all back."""
    text = value if isinstance(value, str) else str(value)
    if len(text) <= n:
        return repr(text)
    return f"{text[:n]!r}... ({len(text):,} characters)"


def bad(detail: str, param: str = "query") -> RequestValidationError:
    """A 422 shaped like FastAPI's own validation errors (so the OpenAPI schema holds), with
    ``detail[0].msg`` saying what was wrong and ``loc`` where: the query parameter ``param``, the
    query as a whole (``"query"``) or the request body (``"body"``)."""
    loc = [param] if param in ("query", "body") else ["query", param]
    return RequestValidationError([{"loc": loc, "msg": detail, "type": "value_error"}])


def time_or_422(value: str | None, what: str) -> int | None:
    if value is None:
        return None
    try:
        return parse_time(value, what)
    except ValueError as exc:
        raise bad(str(exc), what) from None


def window_or_422(start: str | None, end: str | None, *, max_s: float | None = None) -> tuple[int, int]:
    """``[start, end)`` in ns; both required, end after start, at most ``max_s`` long."""
    if start is None or end is None:
        raise bad("give both start and end (ISO 8601 or ns)", "start" if start is None else "end")
    t0, t1 = time_or_422(start, "start"), time_or_422(end, "end")
    assert t0 is not None and t1 is not None
    if t1 <= t0:
        raise bad("end must be after start", "end")
    if max_s is not None and (t1 - t0) > max_s * 1e9:
        raise bad(f"the window may be at most {max_s / 86400:g} days long", "end")
    return t0, t1


def scenario_or_422(scenario_id: str) -> Scenario:
    sc = SCENARIOS.get(scenario_id)
    if sc is None:
        raise bad(f"unknown scenario {excerpt(scenario_id)}; known: {', '.join(SCENARIOS)}", "scenario")
    return sc


def robot_or_422(robot_id: str | None) -> str | None:
    if robot_id is not None and not _ROBOT.fullmatch(robot_id):
        raise bad(f"robot {excerpt(robot_id)} is not a robot id (letters, digits, '_', '.', '-')", "robot")
    return robot_id


def channels_or_422(sc: Scenario, channels: str | None) -> list[tuple[str, str]]:
    """``(name, unit)`` of the channels asked for (comma-separated), default all of ``sc``."""
    if not channels:
        return [(c.name, c.unit) for c in sc.channels]
    out: list[tuple[str, str]] = []
    for name in (c.strip() for c in channels.split(",")):
        if not name:
            continue
        if name in sc.channel_map:
            out.append((name, sc.channel_map[name].unit))
        elif name in EXTRA_FIELDS:
            out.append((name, EXTRA_FIELDS[name]))
        elif name in _UNITS:  # a channel of another scenario: asked for, so answered, with no data
            out.append((name, _UNITS[name]))
        else:
            known = ", ".join([*sc.channel_map, *EXTRA_FIELDS])
            raise bad(f"{sc.id} has no channel {excerpt(name)}; it has {known}", "channels")
    if not out:
        raise bad("channels is empty", "channels")
    return list(dict.fromkeys(out))
