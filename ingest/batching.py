"""When a batch is cut and when the detectors run: the batching clock. No I/O.

A batch is cut when it holds ``batch_size`` points, when ``batch_ms`` has passed since its first
message, or, once ``linger_ms`` has passed since its first message, as soon as no write is in
flight and nothing else is waiting (so a quiet mine's writes are small and prompt, and a busy
one's are large). Without the linger a busy mine's stream, which empties the inbox at every turn
of the loop, was cut into writes of some tens of points, each as soon as the one before was
answered: InfluxDB's fixed cost a write (an HTTP request and a WAL sync) then made its CPU a
point half as much again as in large writes, and the ingestor's own request cost did the same.
Alerts never wait for a cut: the detectors run before it. The detectors run
while the batch fills: over what has been taken once ``detect_ms`` has passed since the oldest
of it, at once when nothing else is waiting or an acknowledgement request waits, or when
``detect_frames`` frames wait (a detector call has a fixed cost of about half a millisecond, so
a busy mine's frames go through in hundreds, and an alert waits at most ``detect_ms``).
Messages are taken from the inbox in steps of about ``step_points`` points, with a turn of the
event loop between steps for the writes and acknowledgements.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["BatchClock", "BatchPolicy"]


@dataclass
class BatchClock:
    """One batch's times (``time.monotonic()`` seconds; 0: not yet)."""

    first_at: float = 0.0       # its first message was taken
    undetected_at: float = 0.0  # the oldest frame, status or ack not yet through the detectors was taken


@dataclass(frozen=True)
class BatchPolicy:
    batch_size: int = 10_000
    batch_ms: float = 100.0
    detect_ms: float = 10.0
    detect_frames: int = 1000
    step_points: int = 500
    linger_ms: float = 25.0

    def __post_init__(self) -> None:
        if self.batch_size < 1 or self.step_points < 1 or self.detect_frames < 1:
            raise ValueError("batch_size, step_points and detect_frames must be at least 1")
        if self.batch_ms < 0 or self.detect_ms < 0 or self.linger_ms < 0:
            raise ValueError("batch_ms, detect_ms and linger_ms must not be negative")

    def step_end(self, points: int) -> int:
        """Take messages until the batch holds this many points (then yield to the loop)."""
        return min(self.batch_size, points + self.step_points)

    def full(self, points: int) -> bool:
        return points >= self.batch_size

    def taken(self, clock: BatchClock, now: float, messages: bool, undetected: bool) -> None:
        """Messages were taken at ``now``: start the clocks that were not running."""
        if undetected and not clock.undetected_at:
            clock.undetected_at = now
        if messages and not clock.first_at:
            clock.first_at = now

    def detect_due(self, clock: BatchClock, now: float, *, idle: bool, acks_waiting: bool, frames_waiting: int) -> bool:
        """Whether the detectors run now over what waits (``idle``: nothing else to do)."""
        if not clock.undetected_at:
            return False
        return (idle or acks_waiting or now - clock.undetected_at >= self.detect_ms / 1000
                or frames_waiting >= self.detect_frames)

    def cut_due(self, clock: BatchClock, now: float, *, writing: bool, inbox: bool) -> bool:
        """Whether a batch with messages is cut now: its age is up, or it has lingered and nothing
        is being written and nothing waits (neither in the inbox nor for the detectors)."""
        if now >= clock.first_at + self.batch_ms / 1000:
            return True
        return (not writing and not inbox and not clock.undetected_at
                and now >= clock.first_at + self.linger_ms / 1000)

    def wake_at(self, clock: BatchClock, timers: float, now: float) -> float:
        """When to look again, with nothing in the inbox: the next of ``timers`` (tick, stats), the
        detectors' due time and, for a batch with messages, its cut (the end of its linger, else
        of its age)."""
        due = timers
        if clock.undetected_at:
            due = min(due, clock.undetected_at + self.detect_ms / 1000)
        if clock.first_at:
            cut = clock.first_at + self.linger_ms / 1000
            if now >= cut:  # lingered: the cut waits for the write in flight, or for its age
                cut = clock.first_at + self.batch_ms / 1000
            due = min(due, cut)
        return due
