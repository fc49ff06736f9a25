"""``minewatch ingest``: the command that runs one ingest process."""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import os
from collections.abc import Callable
from pathlib import Path

import click

from minewatch.cli import influx_options, mqtt_option, settings_from

__all__ = ["ingest"]


def _partition(ctx: click.Context, param: click.Parameter, value: str):
    from ingest.partition import Partition

    try:
        return Partition.parse(value)
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from None


# options the group worker shares (ingest.group_cli)
batch_ms_option = click.option(
    "--batch-ms", type=click.FloatRange(0.0), default=100.0, show_default=True,
    help="Cut a batch this long after its first message (sooner when the writer is idle).")
linger_ms_option = click.option(
    "--linger-ms", type=click.FloatRange(0.0), default=25.0, show_default=True,
    help="When the writer is idle, cut a batch once it is this old (0: at once). Larger writes cost "
         "InfluxDB and the ingestor less a point; alerts never wait for a cut.")
late_after_option = click.option(
    "--late-after", type=click.FloatRange(0.0, min_open=True), default=30.0, show_default=True,
    help="Mark a frame late when its robot time is this many seconds behind the clock (a 5G backlog); "
         "frames that fill a seq gap are late too. 30 s is the monitoring system's polling cycle (domain §3).")
clock_settle_option = click.option(
    "--clock-settle", type=click.FloatRange(1.0), default=30.0, show_default=True,
    help="A robot whose frames stay the same time behind (more than --late-after), or the same time further "
         "ahead than --max-clock-ahead, for this many seconds has its clock corrected (a backlog's lag shrinks "
         "as it drains; a wrong clock's does not).")


@click.command("ingest")
@mqtt_option
@influx_options
@click.option("--topic-prefix", default=None, help="Topic prefix [env MINEWATCH_TOPIC_PREFIX; default minewatch/v1].")
@click.option("--partition", "partition", default="0/1", show_default=True, callback=_partition,
              help="This process's share I/N of the scenarios (0 <= I < N; CRC-32 of the scenario id mod N). "
                   "Run N processes, one per I, for N-fold throughput; each scenario's streams stay in one process.")
@click.option("--client-id", default=None,
              help="MQTT client id of the persistent session [default minewatch-ingest-<I>of<N>]. Keep it stable: "
                   "messages that arrive while the process is down wait in the broker under this id.")
@click.option("--spool-dir", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Disk spool used while InfluxDB is unreachable [default <data dir>/spool/<client id>].")
@click.option("--spool-max-mb", type=click.IntRange(1), default=2048, show_default=True,
              help="Spool bound; when full, acknowledgements stop and the broker holds the backlog.")
@click.option("--metrics-port", type=click.IntRange(0, 65535), default=None,
              help="Serve Prometheus metrics on this port [env MINEWATCH_METRICS_PORT; default 0 = off].")
@click.option("--metrics-host", default="127.0.0.1", show_default=True, envvar="MINEWATCH_METRICS_HOST",
              help="Address for the metrics port [env MINEWATCH_METRICS_HOST].")
@click.option("--batch-size", type=click.IntRange(1, 100_000), default=10_000, show_default=True,
              help="Cut a batch at this many points (frames).")
@batch_ms_option
@linger_ms_option
@late_after_option
@click.option("--live-horizon", type=click.FloatRange(60.0), default=3600.0, show_default=True,
              help="Frames older than this many seconds (by the robot's clock, corrected) are bulk history: stored "
                   "and run through detectors of their own whose alerts are only stored, never on the live board.")
@click.option("--clock-tolerance", type=click.FloatRange(0.0, min_open=True), default=5.0, show_default=True,
              help="A robot clock further than this ahead of the ingestor's (or jumping back) is corrected, with a "
                   "robot_clock alert.")
@clock_settle_option
@click.option("--warmup", type=click.FloatRange(0.0), default=600.0, show_default=True,
              help="At start, run this many seconds of stored telemetry through the detectors, so rate of rise, "
                   "stuck sensors, change and drift work from the first frame and restored alerts are checked "
                   "(0: start cold).")
@click.option("--clock", type=click.Choice(["wall", "data"]), default="wall", show_default=True,
              help="wall: the ingestor's own clock (live). data: the newest event time seen, for a recorded or "
                   "simulated mine sent faster than real time (simulate --speed N, benchmarks).")
@click.option("--repeat-hold", type=click.FloatRange(0.0), default=120.0, show_default=True,
              help="Seconds the clear of an alert raised twice within 10 min is held back (a re-raise meanwhile "
                   "goes on as the same alert): a dithering reading gives one standing alert, not a stream.")
@click.option("--stop-timeout", type=click.FloatRange(0.5), default=5.0, show_default=True,
              help="Seconds from SIGTERM/Ctrl-C to exit: finish the batch in hand, write or spool it, acknowledge, "
                   "disconnect. Writes still waiting on InfluxDB then go to the spool; anything not yet durable "
                   "stays unacknowledged and comes again from the broker.")
@click.option("--robots", default="fleet", show_default=True, envvar="MINEWATCH_ROBOTS",
              help="The fleet registry: robot ids and patterns (r4?, p*), comma-separated; 'fleet' is the "
                   "simulator's default fleet, '*' any robot. Other robots' frames and statuses are dead-lettered "
                   "unknown_robot [env MINEWATCH_ROBOTS].")
@click.option("--max-message-bytes", type=click.IntRange(1024), default=4 << 20, show_default=True,
              help="A bigger message is dead-lettered too_large.")
@click.option("--max-frames", type=click.IntRange(1), default=10_000, show_default=True,
              help="A message of more frames is dead-lettered too_many_frames.")
@click.option("--max-channels", type=click.IntRange(1), default=1024, show_default=True,
              help="Distinct reading names taken at most (each is an InfluxDB field); a message with a new one "
                   "past this is dead-lettered too_many_channels.")
@click.option("--max-new-channels", type=click.IntRange(1), default=16, show_default=True,
              help="Reading names not known before that one message may bring; more is dead-lettered "
                   "too_many_channels.")
@click.option("--max-age", type=click.FloatRange(60.0), default=None,
              help="Seconds: a frame, status or acknowledgement older than this is dead-lettered ts_out_of_range "
                   "[default: the raw retention less a day and an hour, which InfluxDB would refuse].")
@click.option("--max-clock-ahead", type=click.FloatRange(0.0), default=86_400.0, show_default=True,
              help="Seconds a live frame may be ahead of the ingestor's clock by its robot's clock (such a clock is "
                   "corrected at once); further ahead is dead-lettered ts_out_of_range until the clock has stayed "
                   "that far ahead for --clock-settle, then corrected.")
@click.option("--max-ahead", type=click.FloatRange(0.0), default=300.0, show_default=True,
              help="Seconds ahead of the ingestor's clock (or on --clock data, of the newest time seen) that history, "
                   "a status or an acknowledgement may be dated.")
@click.option("--max-packet-bytes", type=click.IntRange(1024), default=16 << 20, show_default=True,
              help="The broker's packet limit when it does not say its own (an MQTT 5 broker does): nothing bigger "
                   "is published.")
@click.option("--no-detectors", is_flag=True, help="Store telemetry only; run no detectors and publish no alerts.")
@click.option("--limit", "limits", multiple=True, metavar="KEY=VALUE",
              help="Override a detector limit (repeatable; same keys as the detectors' overrides).")
@click.option("--log-level", type=click.Choice(["debug", "info", "warning", "error"]), default="info", show_default=True)
def ingest(mqtt_url: str | None, influx_url: str | None, influx_db: str | None, topic_prefix: str | None, partition,
           client_id: str | None, spool_dir: Path | None, spool_max_mb: int, metrics_port: int | None, metrics_host: str,
           batch_size: int, batch_ms: float, linger_ms: float, late_after: float, live_horizon: float, clock_tolerance: float,
           clock_settle: float, warmup: float, clock: str, repeat_hold: float, stop_timeout: float, robots: str,
           max_message_bytes: int, max_frames: int, max_channels: int, max_new_channels: int, max_age: float | None,
           max_clock_ahead: float, max_ahead: float,
           max_packet_bytes: int, no_detectors: bool, limits: tuple[str, ...],
           log_level: str) -> None:
    """Consume telemetry, store every reading in InfluxDB, run the detectors, publish alerts.

    Subscribes with QoS 1 on a persistent MQTT session and acknowledges a message only after its
    readings are in InfluxDB or in the disk spool, so a crash, a broker restart or an InfluxDB
    outage loses nothing. Bad frames go to {prefix}/deadletter/{reason}. SIGTERM or Ctrl-C stops
    reading, flushes, acknowledges and exits within --stop-timeout seconds.
    """
    from minewatch.registry import RobotRegistry
    from ingest.service import IngestOptions, run

    settings = settings_from(mqtt_url=mqtt_url, influx_url=influx_url, influx_db=influx_db, topic_prefix=topic_prefix,
                             metrics_port=metrics_port)
    overrides = None
    if limits:
        try:
            from detectors.overrides import parse_overrides
        except ImportError as exc:
            raise click.UsageError(f"--limit needs the detectors: {exc}") from None
        try:
            overrides = parse_overrides(limits)
        except (KeyError, ValueError) as exc:
            raise click.BadParameter(str(exc), param_hint="--limit") from None
    logging.basicConfig(level=log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("httpx").setLevel(max(logging.WARNING, logging.getLevelName(log_level.upper())))
    opts = IngestOptions(partition=partition, client_id=client_id, spool_dir=spool_dir,
                         spool_max_bytes=spool_max_mb << 20, metrics_port=metrics_port, metrics_host=metrics_host,
                         batch_size=batch_size, batch_ms=batch_ms, linger_ms=linger_ms, late_after_s=late_after,
                         live_horizon_s=live_horizon, clock_tolerance_s=clock_tolerance, clock_settle_s=clock_settle,
                         warmup_s=warmup, clock=clock, repeat_hold_s=repeat_hold, robots=robots,
                         max_message_bytes=max_message_bytes, max_frames=max_frames, max_channels=max_channels,
                         max_new_channels=max_new_channels, max_clock_ahead_s=max_clock_ahead,
                         max_ahead_s=max_ahead, max_packet_bytes=max_packet_bytes,
                         detectors=not no_detectors, overrides=overrides, stop_timeout_s=stop_timeout)
    if max_age is not None:
        opts = dataclasses.replace(opts, max_age_s=max_age)
    try:
        RobotRegistry(robots)
    except (ValueError, ImportError) as exc:
        raise click.BadParameter(str(exc), param_hint="--robots") from None
    try:
        _profiled(lambda: asyncio.run(run(settings, opts)))
    except (ConnectionError, TimeoutError) as exc:
        raise click.ClickException(str(exc)) from None


def _profiled(fn: Callable[[], object]) -> None:
    """``fn()``; with ``MINEWATCH_INGEST_PROFILE=PATH`` in the environment, under cProfile, the
    statistics written to ``PATH.<pid>`` when it returns (for ``python -m pstats``)."""
    path = os.environ.get("MINEWATCH_INGEST_PROFILE")
    if not path:
        fn()
        return
    import cProfile

    prof = cProfile.Profile()
    try:
        prof.runcall(fn)
    finally:
        prof.dump_stats(f"{path}.{os.getpid()}")
