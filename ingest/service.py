"""The ingestor's lifecycle: MQTT in, InfluxDB out, detectors in between, alerts back out.

An ingest process is made of parts that each do one thing:

- :class:`ingest.consumer.Consumer`: the broker connection (QoS 1, persistent session, manual
  acknowledgements), filling the inbox;
- :class:`ingest.router.Router`: messages -> frames, statuses, acknowledgement requests, clock
  changes and dead letters, with every limit on what a client may send (no I/O);
- :class:`ingest.batching.BatchPolicy`: when a batch is cut and when the detectors run (no I/O);
- :class:`ingest.pipeline.Pipeline`: the batches, from the inbox through the router and the
  detectors to the writer and back to the acknowledgements;
- :class:`ingest.writer.Writer`: durable writes (InfluxDB, or the disk spool);
- :class:`ingest.counters.Counters`: every count, read by the Prometheus metrics and the
  ``ingest_stats`` line.

:class:`Ingestor` only starts them (with the warm start of :mod:`ingest.warmstart`), stops them
within the stop budget, and keeps the storage maintenance running. ``docs/ingest.md`` says how
it keeps every reading through crashes and outages.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import socket
import threading
import time
from collections.abc import Callable
from typing import Any, TypeVar

from minewatch.catalogue import SCENARIOS
from minewatch.influx import InfluxClient
from minewatch.runtime import tune_gc
from minewatch.schema import AlertEvent, IncidentEvent
from minewatch.settings import Settings
from minewatch.storage import maintain_storage

from ingest.alerts import read_active
from ingest.consumer import Consumer
from ingest.counters import Counters
from ingest.metrics import Metrics
from ingest.options import IngestOptions
from ingest.pipeline import Pipeline, load_suite
from ingest.router import Router
from ingest.spool import Spool
from ingest.warmstart import take_over
from ingest.writer import Writer

__all__ = ["IngestOptions", "Ingestor", "run"]

log = logging.getLogger("minewatch.ingest")
T = TypeVar("T")


async def _on_daemon_thread(fn: Callable[..., T], *args: Any) -> T:
    """``fn(*args)`` on a daemon thread of its own: unlike the loop's executor, a call still running
    when the process stops (a broker that does not answer) neither delays the exit nor is waited for."""
    loop = asyncio.get_running_loop()
    fut: asyncio.Future[T] = loop.create_future()

    def settle(ok: bool, value: Any) -> None:
        if not fut.done():
            fut.set_result(value) if ok else fut.set_exception(value)

    def main() -> None:
        try:
            out: tuple[bool, Any] = (True, fn(*args))
        except BaseException as exc:  # noqa: BLE001 - handed to the awaiting coroutine
            out = (False, exc)
        try:
            loop.call_soon_threadsafe(settle, *out)
        except RuntimeError:  # the loop is closed: nobody waits any more
            pass

    threading.Thread(target=main, name=getattr(fn, "__name__", "call"), daemon=True).start()
    return await fut


class Ingestor:
    """One ingest process. ``await run()`` until :meth:`stop` (or SIGTERM/SIGINT via :func:`run`)."""

    def __init__(self, settings: Settings, options: IngestOptions | None = None) -> None:
        self.settings = settings
        self.opts = opts = options or IngestOptions()
        self.partition = opts.partition
        self.topics = settings.topics
        self.client_id = opts.resolved_client_id()
        self.counters = Counters()
        self.metrics = Metrics(str(self.partition), self.counters)
        self.router = Router(self.topics, opts, self.counters)
        self.suite = load_suite(opts)
        self._scenarios = [s for s in SCENARIOS if self.partition.owns(s)]
        self.spool = Spool(opts.spool_dir or settings.data_dir / "spool" / self.client_id, opts.spool_max_bytes)
        self.metrics.spool_limit.set(opts.spool_max_bytes)
        self.influx = InfluxClient(settings.influx_url, settings.influx_db, user=settings.influx_user,
                                   password=settings.influx_password, rp=settings.influx_rp, timeout=15.0)
        rm = opts.receive_maximum or opts.batch_size * (opts.max_inflight + 1)
        self.consumer = Consumer(settings, self.client_id, self._subscriptions(), receive_maximum=rm,
                                 session_expiry_s=opts.session_expiry_s, max_packet=opts.max_packet_bytes)
        self.metrics.mqtt_connects.set_function(lambda: self.consumer.connects)
        self.metrics.publish_dropped.set_function(lambda: self.consumer.too_large)
        self._stop = asyncio.Event()
        self._stopping = False
        self._stop_by = 0.0
        self.writer = Writer(self.influx, self.spool, on_rejected=self._rejected, on_drained=self._drained)
        self.pipeline = Pipeline(opts, self.topics, self.router, self.consumer, self.writer, self.spool, self.metrics,
                                 self.suite, stopping=self._stop, stop_left=self._stop_left,
                                 stats_tags={"partition": self.partition.tag, "host": socket.gethostname(),
                                             "client_id": self.client_id})
        self.started = asyncio.Event()
        self._storage_task: asyncio.Task[None] | None = None

    def _rejected(self, rejected: list[tuple[str, str]]) -> None:
        self.pipeline.rejected(rejected)

    def _drained(self, n: int) -> None:
        self.counters.drained += n

    # -- subscriptions -------------------------------------------------------------------------
    def _subscriptions(self) -> list[tuple[str, int]]:
        t = self.topics
        if self.partition.whole:
            subs = [(t.all_telemetry, 1), (t.all_history, 1)]
        else:
            # each process subscribes to its own scenarios only: the broker does the routing
            subs = [(t.scenario_telemetry(s), 1) for s in self.partition.scenarios(SCENARIOS)]
            subs += [(t.scenario_history(s), 1) for s in self.partition.scenarios(SCENARIOS)]
        subs += [(t.all_status, 1), (f"{t.prefix}/alerts/ack/+", 1), (f"{t.prefix}/incidents/ack/+", 1)]
        return subs

    # -- lifecycle -----------------------------------------------------------------------------
    async def run(self) -> None:
        # A stop while starting (InfluxDB or the broker slow to answer) cuts the start short.
        starting = asyncio.create_task(self._start(), name="start")
        stopped = asyncio.create_task(self._stop.wait(), name="stop-wait")
        try:
            await asyncio.wait({starting, stopped}, return_when=asyncio.FIRST_COMPLETED)
            if starting.done():
                starting.result()  # a failed start raises here
                await self.pipeline.run()
            else:
                starting.cancel()
                await asyncio.wait({starting})
                log.info("stopped while starting")
        finally:
            stopped.cancel()
            await self._shutdown()

    def stop(self) -> None:
        """Stop reading, flush, acknowledge, close, all within ``stop_timeout_s`` (safe to call from a
        signal handler on the event loop)."""
        if not self._stopping:
            self._stopping = True
            self._stop_by = time.monotonic() + self.opts.stop_timeout_s
        self.consumer.stop_accepting()
        self._stop.set()
        self.consumer.wake()

    @property
    def stopping(self) -> bool:
        return self._stopping

    def _stop_left(self, share: float = 1.0) -> float:
        """Seconds left of ``share`` of the stop budget (the whole budget when not stopping)."""
        if not self._stopping:
            return self.opts.stop_timeout_s * share
        spent = self.opts.stop_timeout_s - (self._stop_by - time.monotonic())
        return max(0.0, self.opts.stop_timeout_s * share - spent)

    async def _start(self) -> None:
        opts = self.opts
        log.info("ingest %s starting: client id %s, %d subscriptions, batch %d points / %.0f ms, spool %s",
                 self.partition, self.client_id, len(self.consumer.subscriptions), opts.batch_size,
                 opts.batch_ms, self.spool.dir)
        port = opts.metrics_port if opts.metrics_port is not None else self.settings.metrics_port
        if port:
            self.metrics.serve(port, opts.metrics_host)
        influx_ok = await self.writer.prepare()
        alerts: list[AlertEvent] = []
        incidents: list[IncidentEvent] = []
        if self.suite is not None and opts.restore_alerts:
            alerts, incidents = await _on_daemon_thread(read_active, self.settings)
            alerts = [e for e in alerts if self.partition.owns(e.scenario_id)]
            incidents = [i for i in incidents if self.partition.owns(i.scenario_id)]
        await take_over(self.influx, influx_ok, opts, self.partition, self._scenarios, self.router, self.suite,
                        self.pipeline, alerts, incidents)
        self.writer.start()
        # The catalogue, the compiled kernels and the clients live for the whole run: keep them
        # out of the collector's way, and collect the young generation less often (a batch makes
        # tens of thousands of short-lived objects).
        tune_gc()
        if self.partition.index == 0:  # one process keeps the alert log's long-term copy
            self._storage_task = asyncio.create_task(maintain_storage(self.influx), name="storage")
        await self.consumer.start()
        # every robot known from stored data gets a full silence time to show up (its queued
        # messages come first) before the time-driven checks call it silent
        self.pipeline.tick_floor = time.time_ns()
        if self.suite is not None and not self.router.data_clock:
            self.suite.give_robots_until(self.pipeline.tick_floor)
        self.metrics.mqtt_up.set(1)
        self.started.set()

    async def _shutdown(self) -> None:
        if self._storage_task is not None:
            self._storage_task.cancel()
        self.consumer.stop_accepting()
        # the spool drains into InfluxDB while budget is left (and it answers); what stays is
        # written back by the next run
        await self.writer.close(drain_timeout=self._stop_left(0.8) if self._stopping else 0.0)
        await self.consumer.close(max(0.5, self._stop_left(0.95)))
        try:
            await asyncio.wait_for(self.influx.aclose(), max(0.2, self._stop_left()))
        except TimeoutError:
            log.warning("closing the InfluxDB client timed out")
        self.metrics.close()
        c = self.counters
        log.info("ingest %s stopped: %d points received, %d stored, %d spooled, %d messages acked, "
                 "%d dead-lettered, %d alert events", self.partition, c.points, c.stored, c.spooled, c.acked,
                 sum(c.deadlettered.values()), c.alerts)


async def run(settings: Settings, options: IngestOptions | None = None, *, handle_signals: bool = True) -> Ingestor:
    """Run an ingest process until SIGTERM / SIGINT (or ``Ingestor.stop()``).

    With ``handle_signals`` (a process of its own), the first signal stops the ingestor within
    ``stop_timeout_s``; should anything still hold the process 3 s after that, a watchdog ends
    it: nothing durable is lost that way either, since only durable messages were acknowledged.
    """
    ing = Ingestor(settings, options)
    if handle_signals:
        loop = asyncio.get_running_loop()

        def on_signal() -> None:
            if not ing.stopping:
                limit = ing.opts.stop_timeout_s + 3.0
                threading.Thread(target=_watchdog, args=(limit,), name="stop-watchdog", daemon=True).start()
            ing.stop()

        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, on_signal)
    await ing.run()
    return ing


def _watchdog(limit_s: float) -> None:
    time.sleep(limit_s)
    log.error("still not stopped %.0f s after the signal: exiting now (unacknowledged messages come again)", limit_s)
    logging.shutdown()
    os._exit(1)
