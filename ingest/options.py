"""How one ingest process runs: the ``minewatch ingest`` flags, and every limit on what a client
may send, in one place (a new limit is a field here, checked in :mod:`ingest.router`)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from minewatch.storage import RAW_DAYS

from ingest.partition import Partition

__all__ = ["IngestOptions"]


@dataclass
class IngestOptions:
    """How one ingest process runs (the ``minewatch ingest`` flags)."""

    partition: Partition = field(default_factory=Partition)
    client_id: str | None = None          # default minewatch-ingest-<I>of<N>
    spool_dir: Path | None = None         # default <data_dir>/spool/<client_id>
    spool_max_bytes: int = 2 << 30
    metrics_port: int | None = None       # default settings.metrics_port; 0 = off
    metrics_host: str = "127.0.0.1"
    batch_size: int = 10_000              # points (against 5,000: about 8 % more throughput)
    batch_ms: float = 100.0
    # The detectors run over what has been taken at once when nothing else is waiting, else once
    # ``detect_ms`` has passed since its first frame or ``detect_frames`` frames wait: a busy
    # mine's frames go through them in hundreds (a call has a fixed cost of about half a
    # millisecond), and an alert waits at most ``detect_ms`` for it.
    detect_ms: float = 10.0
    detect_frames: int = 1000
    # Messages are taken from the inbox in steps of about this many points (some milliseconds of
    # work), with a turn of the event loop between steps for the writes and acknowledgements.
    step_points: int = 500
    # A batch is cut when no write is in flight and nothing waits only once it is this old: a busy
    # mine's writes then hold some hundreds of points or more, instead of tens (see ingest.batching).
    linger_ms: float = 25.0
    max_inflight: int = 2                 # batches being written at once
    receive_maximum: int | None = None    # default enough for max_inflight + 1 full batches
    session_expiry_s: int = 7 * 24 * 3600
    detectors: bool = True
    overrides: dict[str, float] | None = None
    repeat_hold_s: float = 120.0          # the clear of an alert raised twice within 10 min waits this long
    late_after_s: float = 30.0            # older robot time than this is marked late (domain §3: 30 s cycle)
    # [P] older than this (by a clock-corrected robot time) is bulk history: stored and detected by
    # detectors of its own, never on the live board. A robot's backlog of a shorter hole is late data.
    live_horizon_s: float = 3600.0
    clock_tolerance_s: float = 5.0        # [P] a robot clock further ahead than this is corrected
    clock_settle_s: float = 30.0          # [P] a robot this steadily behind for this long has its clock corrected
    warmup_s: float = 600.0               # at start, the detectors warm up on this much stored telemetry; 0 = off
    watch_s: float = 5.0                  # how often watch/{scenario} is published
    # "wall": the ingestor's clock is its own (live). "data": its clock is the newest event time it
    # has seen, for running a recorded or simulated mine through the live path faster than real
    # time (benchmarks, tests, demos at --speed N): no robot clock is corrected, and lateness, the
    # live horizon and the dead-robot check go by data time.
    clock: str = "wall"
    seq_restore_s: float = 86_400.0       # at start, each robot's last stored seq of this long; 0 = off
    tick_s: float = 1.0
    stats_interval_s: float = 10.0
    restore_alerts: bool = True
    # What a client may send (anything beyond goes to the dead-letter topic with its reason):
    robots: str = "fleet"                 # the fleet registry (minewatch.registry): frames of other robots are refused
    max_robots: int = 10_000              # robots taken at most, whatever the registry's patterns allow
    max_message_bytes: int = 4 << 20      # too_large
    max_frames: int = 10_000              # frames in one message: too_many_frames
    max_channels: int = 1024              # reading names ever taken (each is an InfluxDB field): too_many_channels
    max_new_channels: int = 16            # reading names not known before, in one message: too_many_channels
    # ts_out_of_range: a frame (status, acknowledgement) older than the raw retention (InfluxDB would
    # refuse it, and its alerts with it) or further ahead than ``max_clock_ahead_s`` by the robot's own
    # clock (a clock up to that far ahead is corrected at once, with a robot_clock alert; one further
    # ahead, or that far behind, once it stays so for ``clock_settle_s``); what is stored is never
    # more than ``max_ahead_s`` ahead of the ingestor's clock (no shard out in the future)
    max_age_s: float = (RAW_DAYS - 1) * 86_400.0 - 3_600.0  # less a day: a corrected clock moves frames back
    max_clock_ahead_s: float = 86_400.0
    max_ahead_s: float = 300.0
    max_packet_bytes: int = 16 << 20      # the broker's packet limit when it does not say its own (MQTT 5 CONNACK)
    stop_timeout_s: float = 5.0           # SIGTERM to exit, at most (a watchdog ends the process 3 s later)

    def resolved_client_id(self) -> str:
        return self.client_id or f"minewatch-ingest-{self.partition.tag}"
