"""The ingestor's counters, in one place.

Every count the ingestor keeps is here, as plain integers the parts add to (the router as it
takes messages, the pipeline as batches are written and acknowledged); the seq trackers keep
their own tallies (gaps, repeats, restarts) and are read, not copied. The Prometheus metrics
(:mod:`ingest.metrics`) and the ``ingest_stats`` line both read this object, so the two always
agree and nothing counts twice.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

from ingest.seqtrack import SeqCounts

__all__ = ["Counters"]


@dataclass
class Counters:
    messages: int = 0            # MQTT messages taken from the inbox
    points: int = 0              # frames (points) decoded from telemetry messages
    readings: int = 0            # channel readings in them
    late: int = 0                # frames marked late (filled a gap, or older than the late threshold)
    history: int = 0             # frames taken as bulk history
    clock_corrections: int = 0   # changes of a robot's clock correction
    stored: int = 0              # points written to InfluxDB directly
    spooled: int = 0             # points appended to the disk spool
    drained: int = 0             # spooled lines later written to InfluxDB
    acked: int = 0               # MQTT messages acknowledged
    alerts: int = 0              # alert events published
    history_alerts: int = 0      # alert events of bulk history (stored only)
    incidents: int = 0           # incident events published
    detector_errors: int = 0     # detector runs that raised
    detector_skipped: int = 0    # frames not run through the detectors because they raised
    deadlettered: Counter[str] = field(default_factory=Counter)  # by reason
    seq: SeqCounts = field(default_factory=SeqCounts)            # the live frames' seq tracker's own
    history_seq: SeqCounts = field(default_factory=SeqCounts)    # the history frames' tracker's own

    def dead(self, reason: str) -> None:
        self.deadlettered[reason] += 1

    def skipped(self) -> dict[str, int]:
        """Frames stored but not run through the detectors, by reason (only reasons seen)."""
        out = {}
        dup = self.seq.duplicates + self.history_seq.duplicates
        if dup:
            out["duplicate"] = dup
        if self.detector_skipped:
            out["detector_error"] = self.detector_skipped
        return out
