"""Alert and incident ids: made from what names the thing, never from what this process saw before.

An id is ``{head}.{first_ts_ms}``, and ``.{robot}`` when the robot whose reading started it is not
named in the head already (a robot's own alert or incident is). So the same excursion run again
(after a crash, in the warm-up on stored readings, on messages delivered again) gets the id it
had, and two robots' alerts started at one millisecond (their held-back readings, sent late) get
two, in one process or across a restart that forgot the first. An id is a topic level of at most
64 characters (:data:`minewatch.schema.ID_PATTERN`): a longer one keeps its head and ends in a
digest of the whole (:func:`fit`). Where one broker carries many mines' alerts (the group's
centre), each id starts with its mine (:func:`head`).
"""

from __future__ import annotations

import hashlib

__all__ = ["ID_MAX", "fit", "head", "name"]

ID_MAX = 64


def head(prefix: str, *parts: str) -> str:
    """The parts joined by dots, after ``prefix`` if there is one: the mine, where the alerts of
    many mines meet on one broker (the group's centre), so that two mines' alerts never share an
    id even where their places, robots and times are alike."""
    return ".".join((prefix, *parts) if prefix else parts)


def name(head: str, ts_ns: int, robot: str | None, named: str) -> str:
    """``{head}.{ts_ms}``, then ``.{robot}`` unless there is none or it is ``named`` (the subject
    or place the head names already). Not yet fitted to :data:`ID_MAX` (:func:`fit`)."""
    base = f"{head}.{ts_ns // 1_000_000}"
    return f"{base}.{robot}" if robot and robot != named else base


def fit(name: str) -> str:
    """``name`` within :data:`ID_MAX` characters: a longer one keeps its first characters and ends
    in ``-`` and 12 hex digits of a digest of the whole, so two long names that share their head
    still differ."""
    if len(name) <= ID_MAX:
        return name
    digest = hashlib.blake2b(name.encode(), digest_size=6).hexdigest()
    return f"{name[:ID_MAX - len(digest) - 1]}-{digest}"
