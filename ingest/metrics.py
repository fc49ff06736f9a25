"""Prometheus metrics of one ingest process (``--metrics-port``), names ``minewatch_ingest_*``."""

from __future__ import annotations

import logging
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, disable_created_metrics, start_http_server

__all__ = ["Metrics"]

log = logging.getLogger("minewatch.ingest.metrics")

disable_created_metrics()  # no ``_created`` series beside the counters and histograms


class Metrics:
    def __init__(self, partition: str) -> None:
        self.registry = r = CollectorRegistry()
        lab = {"partition": partition}

        def counter(name: str, doc: str, labels: tuple[str, ...] = ()) -> Any:
            c = Counter(f"minewatch_ingest_{name}", doc, ("partition", *labels), registry=r)
            return c.labels(**lab) if not labels else c

        self.messages = counter("messages_received", "MQTT messages received")
        self.received = counter("points_received", "frames (points) decoded from telemetry messages")
        self.readings = counter("readings_received", "channel readings in the received frames")
        self.stored = counter("points_stored", "telemetry points written to InfluxDB directly")
        self.spooled = counter("points_spooled", "telemetry points appended to the disk spool")
        self.drained = counter("points_drained", "spooled lines (points of any measurement) later written to InfluxDB")
        self._dead = counter("deadlettered", "messages or lines sent to the dead-letter topic", ("reason",))
        self.duplicates = counter("duplicates", "frames that repeat a reading already seen (the same boot, seq and ts)")
        self.skipped = Counter("minewatch_ingest_frames_skipped", "frames stored but not run through the detectors, "
                               "by reason: duplicate (a reading already checked), detector_error",
                               ("partition", "reason"), registry=r)
        self.restarts = counter("robot_restarts", "robots that started their numbering again (a reboot, a spare)")
        self.clock_corrections = counter("clock_corrections", "changes of a robot's clock correction")
        self.history = counter("history_frames", "frames taken as bulk history (history topic, or older than the "
                               "live horizon)")
        self.history_alerts = counter("history_alert_events", "alert events of bulk history (stored only)")
        self.incidents = counter("incident_events", "incident events published")
        self.gaps = counter("seq_gaps", "seq values skipped when a higher one arrived")
        self.late = counter("late", "frames marked late (filled a gap, or older than the late threshold)")
        self.alerts = counter("alert_events", "alert events published")
        self.acked = counter("messages_acked", "MQTT messages acknowledged")
        self.detector_errors = counter("detector_errors", "batches whose detector run raised")
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
        self._partition = partition
        self._server: Any = None

    def deadlettered(self, reason: str, n: int = 1) -> None:
        self._dead.labels(partition=self._partition, reason=reason).inc(n)

    def serve(self, port: int, host: str = "127.0.0.1") -> None:
        server = start_http_server(port, addr=host, registry=self.registry)
        self._server = server[0] if isinstance(server, tuple) else None
        log.info("metrics on http://%s:%d/metrics", host, port)

    def close(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
