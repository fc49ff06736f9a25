"""Prometheus metrics of one ingest process (``--metrics-port``), names ``minewatch_ingest_*``."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from typing import Any

from prometheus_client import CollectorRegistry, Gauge, Histogram, disable_created_metrics, start_http_server
from prometheus_client.core import CounterMetricFamily
from prometheus_client.registry import Collector

from ingest.counters import Counters

__all__ = ["Metrics"]

log = logging.getLogger("minewatch.ingest.metrics")

disable_created_metrics()  # no ``_created`` series beside the counters and histograms


# name (after minewatch_ingest_), help, and how to read it from the counters
_COUNTERS: tuple[tuple[str, str, Callable[[Counters], int]], ...] = (
    ("messages_received", "MQTT messages received", lambda c: c.messages),
    ("points_received", "frames (points) decoded from telemetry messages", lambda c: c.points),
    ("readings_received", "channel readings in the received frames", lambda c: c.readings),
    ("points_stored", "telemetry points written to InfluxDB directly", lambda c: c.stored),
    ("points_spooled", "telemetry points appended to the disk spool", lambda c: c.spooled),
    ("points_drained", "spooled lines (points of any measurement) later written to InfluxDB", lambda c: c.drained),
    ("duplicates", "frames that repeat a reading already seen (the same boot, seq and ts)",
     lambda c: c.seq.duplicates),
    ("robot_restarts", "robots that started their numbering again (a reboot, a spare)", lambda c: c.seq.resets),
    ("clock_corrections", "changes of a robot's clock correction", lambda c: c.clock_corrections),
    ("history_frames", "frames taken as bulk history (history topic, or older than the live horizon)",
     lambda c: c.history),
    ("history_alert_events", "alert events of bulk history (stored only)", lambda c: c.history_alerts),
    ("incident_events", "incident events published", lambda c: c.incidents),
    ("seq_gaps", "seq values skipped when a higher one arrived", lambda c: c.seq.gaps),
    ("late", "frames marked late (filled a gap, or older than the late threshold)", lambda c: c.late),
    ("alert_events", "alert events published", lambda c: c.alerts),
    ("messages_acked", "MQTT messages acknowledged", lambda c: c.acked),
    ("detector_errors", "batches whose detector run raised", lambda c: c.detector_errors),
)


class _CountersCollector(Collector):
    """The counters as Prometheus counters (``minewatch_ingest_*_total``), read at each scrape."""

    def __init__(self, counters: Counters, partition: str) -> None:
        self.counters = counters
        self.partition = partition

    def collect(self) -> Iterator[CounterMetricFamily]:
        c, p = self.counters, self.partition
        for name, doc, read in _COUNTERS:
            fam = CounterMetricFamily(f"minewatch_ingest_{name}", doc, labels=("partition",))
            fam.add_metric((p,), read(c))
            yield fam
        fam = CounterMetricFamily("minewatch_ingest_deadlettered", "messages or lines sent to the dead-letter topic",
                                  labels=("partition", "reason"))
        for reason, n in sorted(c.deadlettered.items()):
            fam.add_metric((p, reason), n)
        yield fam
        fam = CounterMetricFamily("minewatch_ingest_frames_skipped", "frames stored but not run through the "
                                  "detectors, by reason: duplicate (a reading already checked), detector_error",
                                  labels=("partition", "reason"))
        for reason, n in c.skipped().items():
            fam.add_metric((p, reason), n)
        yield fam


class Metrics:
    """The Prometheus side of one ingest process: the :class:`Counters` (read at each scrape),
    and the histograms and gauges, which are only set."""

    def __init__(self, partition: str, counters: Counters | None = None) -> None:
        self.registry = r = CollectorRegistry()
        lab = {"partition": partition}
        self.partition = partition
        self.counters = counters if counters is not None else Counters()
        r.register(_CountersCollector(self.counters, partition))
        self.batch_latency = Histogram(
            "minewatch_ingest_batch_latency_seconds", "first message of a batch received -> batch acknowledged",
            ("partition",), registry=r,
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)).labels(**lab)
        self.batch_points = Histogram(
            "minewatch_ingest_batch_points", "points per batch", ("partition",), registry=r,
            buckets=(1, 10, 100, 500, 1000, 2500, 5000, 10000, 20000)).labels(**lab)
        self.lag = Gauge("minewatch_ingest_lag_seconds", "wall clock minus the robot time of the newest frame stored",
                         ("partition",), registry=r).labels(**lab)
        self.inbox = Gauge("minewatch_ingest_inbox_messages", "messages received and not yet in a batch",
                           ("partition",), registry=r).labels(**lab)
        self.spool_bytes = Gauge("minewatch_ingest_spool_bytes", "bytes in the disk spool", ("partition",),
                                 registry=r).labels(**lab)
        self.spool_limit = Gauge("minewatch_ingest_spool_limit_bytes", "the disk spool's size limit (--spool-max-mb)",
                                 ("partition",), registry=r).labels(**lab)
        self.spool_points = Gauge("minewatch_ingest_spool_points", "points waiting in the disk spool",
                                  ("partition",), registry=r).labels(**lab)
        self.influx_up = Gauge("minewatch_ingest_influx_up", "1 while InfluxDB takes writes", ("partition",),
                               registry=r).labels(**lab)
        self.mqtt_up = Gauge("minewatch_ingest_mqtt_connected", "1 while connected to the broker", ("partition",),
                             registry=r).labels(**lab)
        self.mqtt_connects = Gauge("minewatch_ingest_mqtt_connects", "connections made to the broker since the "
                                   "start (more than 1: the broker was lost and found again)", ("partition",),
                                   registry=r).labels(**lab)
        self.publish_dropped = Gauge("minewatch_ingest_publish_dropped", "messages not published because they were "
                                     "over the broker's packet limit", ("partition",), registry=r).labels(**lab)
        self._server: Any = None

    def value(self, name: str, **labels: str) -> float:
        """The current value of sample ``name`` (with this partition's label), 0 when absent."""
        v = self.registry.get_sample_value(name, {"partition": self.partition, **labels})
        return 0.0 if v is None else v

    def serve(self, port: int, host: str = "127.0.0.1") -> None:
        server = start_http_server(port, addr=host, registry=self.registry)
        self._server = server[0] if isinstance(server, tuple) else None
        log.info("metrics on http://%s:%d/metrics", host, port)

    def close(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
