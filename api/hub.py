"""Fan-out of live messages to stream clients (SSE and WebSocket).

Each client has a bounded queue. A client too slow to keep up is not allowed to lose alerts
silently: its queue is closed with a ``lagged`` message, and on reconnecting it gets the current
active alerts again.
"""

from __future__ import annotations

import asyncio
import ctypes
from dataclasses import dataclass, field
from typing import Any

__all__ = ["Hub", "Subscriber", "Message", "Slots"]

Message = dict[str, Any]  # {"type": "active" | "alert" | "reading" | "status" | "progress" | ..., "data": ...}
_CLOSE: Message = {"type": "lagged", "data": {"detail": "the client fell behind; reconnect to get the active alerts"}}


@dataclass(eq=False)
class Subscriber:
    scenarios: set[str] = field(default_factory=set)
    readings: bool = True
    queue: asyncio.Queue[Message] = field(default_factory=lambda: asyncio.Queue(maxsize=2000))
    closed: bool = False

    def put(self, msg: Message) -> None:
        if self.closed:
            return
        try:
            self.queue.put_nowait(msg)
        except asyncio.QueueFull:
            self.closed = True
            # make room for the closing message so the client learns why
            while not self.queue.empty():
                self.queue.get_nowait()
            self.queue.put_nowait(_CLOSE)

    async def get(self) -> Message:
        return await self.queue.get()


class Hub:
    def __init__(self) -> None:
        self._subs: set[Subscriber] = set()

    def __len__(self) -> int:
        return len(self._subs)

    def subscribe(self, scenarios: set[str] | None = None) -> Subscriber:
        s = Subscriber(scenarios=set(scenarios or ()))
        self._subs.add(s)
        return s

    def unsubscribe(self, sub: Subscriber) -> None:
        self._subs.discard(sub)

    def publish(self, msg: Message) -> None:
        for s in list(self._subs):
            s.put(msg)

    def publish_reading(self, scenario_id: str, msg: Message) -> None:
        for s in list(self._subs):
            if scenario_id in s.scenarios:
                s.put(msg)

    def watched_scenarios(self) -> set[str]:
        out: set[str] = set()
        for s in self._subs:
            out |= s.scenarios
        return out


class Slots:
    """How many stream clients (SSE and WebSocket, live and replay) may be served at once."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.taken = 0

    @property
    def full(self) -> bool:
        return self.taken >= self.limit

    def take(self) -> bool:
        """Take a place for a client being let in: False, and nothing taken, when none is free.
        The check and the count are one step, so a burst of clients cannot slip past the limit."""
        if self.taken >= self.limit:
            return False
        self.taken += 1
        return True

    def give(self) -> None:
        self.taken = max(0, self.taken - 1)
        if self.taken % 64 == 0:
            # what a crowd of clients had in buffers goes back to the system, not just to the heap
            release_memory()


def release_memory() -> None:
    """Hand freed heap memory back to the system (glibc's malloc_trim); elsewhere nothing."""
    global _trim
    if _trim is None:
        try:
            _trim = ctypes.CDLL("libc.so.6").malloc_trim
        except (OSError, AttributeError):
            _trim = False
    if _trim:
        _trim(0)


_trim: Any = None
