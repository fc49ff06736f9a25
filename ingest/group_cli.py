"""``minewatch group``: the commands of a mining group's deployment (``group worker`` here)."""

from __future__ import annotations

import asyncio
import logging
import os
import socket
from pathlib import Path

import click

from minewatch.options import mqtt_option, settings_from

from ingest.cli import batch_ms_option, clock_settle_option, late_after_option, linger_ms_option

__all__ = ["group", "worker"]


@click.group("group")
def group() -> None:
    """A mining group: many mines' frames through NATS JetStream to a centre (docs/scale.md)."""


@group.command("worker")
@click.option("--nats", "nats_urls", required=True,
              help="The centre's NATS servers, comma-separated (nats://host:port,...); any one will do.")
@click.option("--partitions", type=click.IntRange(1, 1024), default=16, show_default=True,
              help="The group's partition count P (fixed once chosen: every forwarder and worker must agree).")
@click.option("--worker-id", default=None,
              help="This worker's name in the leases [default: the host name and process id].")
@mqtt_option
@click.option("--influx-url", default=None,
              help="InfluxDB 1.x HTTP URL [env MINEWATCH_INFLUX_URL]; a database minewatch_<mine> per mine.")
@click.option("--topic-prefix", default=None,
              help="Base of the alert topics: a mine's are under <base>/mines/<mine> [default minewatch/v1].")
@click.option("--stream", default="GROUP", show_default=True, help="The JetStream stream of the group's frames.")
@click.option("--kv-replicas", type=click.IntRange(1, 5), default=3, show_default=True,
              help="Replicas of the lease bucket when this worker creates it (1 on a single NATS server).")
@click.option("--lease-ttl", type=click.FloatRange(1.0), default=10.0, show_default=True,
              help="Seconds a partition's lease lasts unless renewed (a dead worker's partitions move after this).")
@click.option("--renew", type=click.FloatRange(0.1), default=3.0, show_default=True,
              help="Seconds between lease renewals (less than half the lease).")
@click.option("--ack-wait", type=click.FloatRange(1.0), default=30.0, show_default=True,
              help="Seconds JetStream waits for a message's acknowledgement before sending it again (set when the "
                   "partition's consumer is made).")
@click.option("--fetch-batch", type=click.IntRange(1), default=500, show_default=True,
              help="Messages asked of a partition's consumer at a time.")
@click.option("--spool-dir", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Disk spool root while InfluxDB is unreachable [default <data dir>/spool/group-<worker id>].")
@click.option("--warmup", type=click.FloatRange(0.0), default=600.0, show_default=True,
              help="Seconds of stored telemetry a partition's detectors warm up on when the worker takes it.")
@click.option("--clock", type=click.Choice(["wall", "data"]), default="wall", show_default=True,
              help="As for minewatch ingest (data: the newest event time seen, for simulated mines).")
@click.option("--robots", default="*", show_default=True, envvar="MINEWATCH_ROBOTS",
              help="Robot ids and patterns taken ('*' any: each mine keeps its own fleet registry).")
@batch_ms_option
@linger_ms_option
@late_after_option
@clock_settle_option
@click.option("--no-detectors", is_flag=True, help="Store telemetry only; run no detectors and publish no alerts.")
@click.option("--stop-timeout", type=click.FloatRange(0.5), default=5.0, show_default=True,
              help="Seconds a stopping worker gives each partition to finish its batches before releasing it.")
@click.option("--log-level", type=click.Choice(["debug", "info", "warning", "error"]), default="info", show_default=True)
def worker(nats_urls: str, partitions: int, worker_id: str | None, mqtt_url: str | None, influx_url: str | None,
           topic_prefix: str | None, stream: str, kv_replicas: int, lease_ttl: float, renew: float, ack_wait: float,
           fetch_batch: int,
           spool_dir: Path | None, warmup: float, clock: str, robots: str, batch_ms: float, linger_ms: float,
           late_after: float,
           clock_settle: float, no_detectors: bool, stop_timeout: float, log_level: str) -> None:
    """An ingest worker of the group's centre: holds leases on partitions of the GROUP stream,
    stores their frames in InfluxDB (database minewatch_<mine>), runs the detectors and publishes
    alerts to the centre's broker (--mqtt-url) under <prefix>/mines/<mine>. Acknowledges to
    JetStream only what is durable; SIGTERM finishes, acknowledges and hands its partitions over."""
    from ingest.group_worker import WorkerOptions, run_worker
    from ingest.options import IngestOptions

    settings = settings_from(mqtt_url=mqtt_url, influx_url=influx_url, topic_prefix=topic_prefix)
    logging.basicConfig(level=log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("httpx").setLevel(max(logging.WARNING, logging.getLevelName(log_level.upper())))
    wid = worker_id or f"{socket.gethostname()}-{os.getpid()}"
    try:
        opts = WorkerOptions(nats_urls=[u.strip() for u in nats_urls.split(",") if u.strip()], worker_id=wid,
                             partitions=partitions, stream=stream, kv_replicas=kv_replicas, lease_ttl_s=lease_ttl,
                             renew_s=renew, ack_wait_s=ack_wait, fetch_batch=fetch_batch, spool_dir=spool_dir,
                             stop_timeout_s=stop_timeout,
                             ingest=IngestOptions(warmup_s=warmup, clock=clock, robots=robots, batch_ms=batch_ms,
                                                  linger_ms=linger_ms,
                                                  late_after_s=late_after, clock_settle_s=clock_settle,
                                                  detectors=not no_detectors, stop_timeout_s=stop_timeout))
    except ValueError as exc:
        raise click.UsageError(str(exc)) from None
    try:
        asyncio.run(run_worker(settings, opts))
    except (ConnectionError, TimeoutError) as exc:
        raise click.ClickException(str(exc)) from None
