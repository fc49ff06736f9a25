"""Schemathesis hooks: the client that reads each parameter's description.

What JSON Schema can state is in the document and is generated from it as it stands. These hooks
add the rules between parameters that the descriptions give and a schema cannot: a window's end
after its start and at most so many days after it, channels that belong to the scenario asked
for, replay overrides that name a limit. They only repair what the schema let through, so a
request that the schema already calls invalid stays invalid.
"""

from __future__ import annotations

import math
import re
from typing import Any, TypeGuard

import schemathesis

from api.replay import MAX_WINDOW_S as REPLAY_MAX_S
from api.routes.telemetry import MAX_WINDOW_S as TELEMETRY_MAX_S
from api.params import CHANNELS_PATTERN
from api.schemas import OVERRIDE_KEY
from api.times import MAX_NS_DOC, TIME_PATTERN, parse_time
from minewatch.catalogue import SCENARIOS

_WINDOWS = {"/telemetry/history": TELEMETRY_MAX_S, "/telemetry/export.csv": TELEMETRY_MAX_S, "/replays": REPLAY_MAX_S}
_EXTRA = ("battery", "pos_m", "latency_ms", "rssi_dbm")


def _path(context: Any) -> str:
    op = getattr(context, "operation", None)
    return getattr(op, "path", "") if op is not None else ""


def _valid(pattern: str, value: object) -> bool:
    return isinstance(value, str) and re.fullmatch(pattern[1:-1], value) is not None


def _time(value: object) -> TypeGuard[str | int]:
    if isinstance(value, int) and not isinstance(value, bool):
        return 0 <= value <= 2**63 - 1
    return _valid(TIME_PATTERN, value)


def _window(values: dict[str, Any], max_s: float) -> None:
    """Keep ``start`` and, from it, ``end`` inside the documented window, when both are times."""
    start, end = values.get("start"), values.get("end")
    if not (_time(start) and _time(end)):
        return
    try:
        t0, t1 = parse_time(start), parse_time(end)
    except ValueError:
        return
    if t0 < t1 <= t0 + max_s * 1e9:
        return
    t0 = min(t0, MAX_NS_DOC - int(max_s * 1e9))
    span = (abs(t1 - t0) % int(max_s * 1e9)) or 1_000_000_000
    values["start"], values["end"] = str(t0), str(t0 + span)


@schemathesis.hook
def map_query(context: Any, query: dict[str, Any] | None) -> dict[str, Any] | None:
    path = _path(context)
    if not query or path not in _WINDOWS:
        return query
    _window(query, _WINDOWS[path])
    sid = query.get("scenario")
    sc = SCENARIOS.get(sid) if isinstance(sid, str) else None
    channels = query.get("channels")
    if sc is not None and isinstance(channels, str) and _valid(CHANNELS_PATTERN, channels):
        names = [c for c in channels.split(",") if c in sc.channel_map or c in _EXTRA]
        query["channels"] = ",".join(names or [sc.channels[0].name])
    return query


@schemathesis.hook
def map_body(context: Any, body: Any) -> Any:
    if _path(context) != "/replays" or not isinstance(body, dict):
        return body
    _window(body, REPLAY_MAX_S)
    overrides = body.get("overrides")
    if isinstance(overrides, dict) and overrides and len(overrides) <= 200 and all(
            _valid(OVERRIDE_KEY, k) and isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)
            for k, v in overrides.items()):
        from api.replay import check_overrides

        try:
            check_overrides(overrides)
        except (ValueError, TypeError, KeyError):
            body["overrides"] = {}
    return body
