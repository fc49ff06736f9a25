"""Repeated log lines rate-limited and counted.

A burst can make the same line thousands of times a second (paho's "Message queue is full.
Discarding message." when a client's outgoing queue overflows). ``install()`` puts a
``RateLimiter`` in front of every logger of the process: the same line (the same logger, level and
message format) goes through ``burst`` times in an interval of ``interval_s`` seconds; the rest of
the interval's copies are counted, and when the interval is over one summary line says how many were
left out::

    WARNING mqtt: Message queue is full. Discarding message. (repeated 42409 more times in 60 s, not logged)

The summary is written with the next log line of the process after the interval, or at exit. Lines
with a traceback are limited the same way. At most ``max_keys`` different lines are tracked at once;
beyond that a line goes through unlimited.
"""

from __future__ import annotations

import atexit
import logging
import threading
import time
from collections.abc import Callable
from typing import Any

__all__ = ["RateLimiter", "install", "BURST", "INTERVAL_S"]

BURST = 5
INTERVAL_S = 60.0


class _Seen:
    __slots__ = ("start", "passed", "dropped", "logger", "level", "msg", "args")

    def __init__(self, start: float, logger: logging.Logger, record: logging.LogRecord) -> None:
        self.start = start
        self.passed = 0
        self.dropped = 0
        self.logger = logger
        self.level = record.levelno
        self.msg = record.msg
        self.args = record.args


class RateLimiter:
    """Decides, record by record, whether a line goes through; keeps the count of those that do not."""

    def __init__(self, *, burst: int = BURST, interval_s: float = INTERVAL_S, max_keys: int = 4096,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.burst = burst
        self.interval_s = interval_s
        self.max_keys = max_keys
        self.clock = clock
        self._seen: dict[tuple[str, int, str], _Seen] = {}
        self._lock = threading.Lock()

    def allow(self, logger: logging.Logger, record: logging.LogRecord) -> tuple[bool, list[_Seen]]:
        """Whether ``record`` goes through, and the lines whose interval is over with copies left out."""
        if getattr(record, "_summary", False):
            return True, []
        now = self.clock()
        key = (record.name, record.levelno, str(record.msg))
        with self._lock:
            due = self._expire(now)
            seen = self._seen.get(key)
            if seen is None:
                if len(self._seen) >= self.max_keys:
                    return True, due
                seen = self._seen[key] = _Seen(now, logger, record)
            if seen.passed < self.burst:
                seen.passed += 1
                return True, due
            seen.dropped += 1
            seen.args = record.args
            return False, due

    def _expire(self, now: float) -> list[_Seen]:
        due: list[_Seen] = []
        for key in [k for k, s in self._seen.items() if now - s.start >= self.interval_s]:
            s = self._seen.pop(key)
            if s.dropped:
                due.append(s)
        return due

    def flush(self) -> list[_Seen]:
        """Every line with copies left out, whatever its interval (at exit)."""
        with self._lock:
            due = [s for s in self._seen.values() if s.dropped]
            self._seen.clear()
        return due

    def summary(self, seen: _Seen) -> logging.LogRecord:
        text = seen.msg % seen.args if seen.args else str(seen.msg)
        record = seen.logger.makeRecord(
            seen.logger.name, seen.level, "(minewatch.lograte)", 0,
            "%s (repeated %d more times in %.0f s, not logged)", (text, seen.dropped, self.interval_s), None)
        record._summary = True
        return record


_limiter: RateLimiter | None = None


def _emit(records: list[_Seen]) -> None:
    assert _limiter is not None
    for seen in records:
        try:
            record = _limiter.summary(seen)
        except Exception:  # noqa: BLE001 - a bad format string: say so with the count, never raise from logging
            seen.msg, seen.args = f"{seen.msg!s} (arguments not formatted)", None
            record = _limiter.summary(seen)
        _handle(seen.logger, record)


_handle: Callable[[logging.Logger, logging.LogRecord], Any] = logging.Logger.handle


def install(*, burst: int = BURST, interval_s: float = INTERVAL_S) -> RateLimiter:
    """Rate-limit every logger of this process from now on (idempotent: the first call's limits stay)."""
    global _limiter
    if _limiter is not None:
        return _limiter
    limiter = _limiter = RateLimiter(burst=burst, interval_s=interval_s)

    def handle(self: logging.Logger, record: logging.LogRecord) -> None:
        ok, due = limiter.allow(self, record)
        if due:
            _emit(due)
        if ok:
            _handle(self, record)

    logging.Logger.handle = handle  # type: ignore[method-assign]  # installed on purpose, for every logger
    atexit.register(lambda: _emit(limiter.flush()))
    return limiter
