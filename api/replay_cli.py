"""``minewatch replay``: re-run the detectors over a recorded shift or window, from the terminal."""

from __future__ import annotations

import asyncio
import json
import sys
from typing import IO, Any

import click

from minewatch.options import influx_options, settings_from

__all__ = ["replay"]


@click.command("replay")
@influx_options
@click.option("--shift", "shift", default=None, metavar="YYYY-MM-DD:NAME",
              help="A shift of the calendar (MINEWATCH_SHIFTS; default night 00-08, day 08-16, swing 16-24 local).")
@click.option("--from", "start", default=None, metavar="T", help="Window start: ISO 8601 or ns since the epoch.")
@click.option("--to", "end", default=None, metavar="T", help="Window end (exclusive).")
@click.option("--speed", type=click.FloatRange(1, 1000), default=None,
              help="Pace the replay to this many data seconds per wall second (1-1000); default: as fast as possible.")
@click.option("--set", "overrides", multiple=True, metavar="KEY=VALUE",
              help="Change a limit or detector setting, e.g. mf01.ch4_t1.critical=1.2 (repeatable; see docs/detectors.md).")
@click.option("--out", type=click.File("w"), default="-", show_default=True,
              help="Write the alert events here, one JSON object per line ('-' = standard output).")
@click.option("--compare/--no-compare", default=True, show_default=True,
              help="Compare with the alerts recorded live for the window (same / missed / new).")
@click.option("--progress/--quiet", "progress", default=None,
              help="A progress bar on standard error: the share of the window covered and the frames replayed "
                   "[default: when standard error is a terminal].")
@click.option("-q", "quiet_short", is_flag=True, hidden=True)
def replay(influx_url: str | None, influx_db: str | None, shift: str | None, start: str | None, end: str | None,
           speed: float | None, overrides: tuple[str, ...], out: IO[str], compare: bool, progress: bool | None,
           quiet_short: bool) -> None:
    """Replay a recorded shift (--shift) or window (--from/--to) of stored telemetry through the
    detectors, with fresh state and any --set limit overrides, and write the alerts they raise
    as JSONL. Ends with a summary on standard error: frames replayed (a frame: one robot's
    message of readings), alerts, speed as a multiple of real time, and the difference from the
    alerts recorded live. A window with no stored telemetry says so ("note").

    \b
    Examples:
      minewatch replay --shift 2026-11-27:night --out night.jsonl
      minewatch replay --from 2026-11-27T00:00:00Z --to 2026-11-27T02:00:00Z --set 'mf01.ch4_t1.alarm=0.8'
    """
    from api.replay import check_overrides, resolve_window
    from detectors import parse_overrides
    from minewatch.shifts import calendar_from_env

    settings = settings_from(influx_url=influx_url, influx_db=influx_db)
    try:
        shift_id, t0, t1 = resolve_window(calendar_from_env(), shift, start, end)
        parsed = check_overrides(parse_overrides(overrides))
    except ValueError as exc:
        raise click.UsageError(str(exc)) from None
    label = shift_id or f"{start} .. {end}"
    quiet = quiet_short or not (progress if progress is not None else sys.stderr.isatty())
    import httpx

    from minewatch.influx import InfluxError

    try:
        summary = asyncio.run(_run(settings, t0, t1, parsed, speed, out, compare, quiet, label))
    except (httpx.HTTPError, InfluxError, RuntimeError) as exc:
        raise click.ClickException(f"replay failed: InfluxDB at {settings.influx_url}: {exc}") from None
    if "note" in summary:
        click.echo(f"replay {label}: {summary['note']}", err=True)
    click.echo(json.dumps(summary), err=True)


async def _run(settings: Any, t0: int, t1: int, overrides: dict[str, float], speed: float | None, out: IO[str],
               compare: bool, quiet: bool, label: str) -> dict[str, Any]:
    from api.replay import NO_DATA_NOTE
    from api.replay_engine import compare as compare_alerts
    from api.replay_engine import live_alerts, run_replay
    from minewatch.influx import InfluxClient
    from minewatch.runtime import tune_gc

    tune_gc()
    total_s = (t1 - t0) / 1e9
    # no time estimate: the data may fill only part of the window, so the share of the window
    # covered says little about the time left; the bar shows the share and the frames so far
    frames_so_far = 0
    bar = None if quiet else click.progressbar(length=max(1, int(total_s)), label=f"replay {label}", file=sys.stderr,
                                               show_eta=False, show_percent=True,
                                               item_show_func=lambda _: f"{frames_so_far:,} frames")
    done_s = 0

    def progress(data_ts: int, frames: int) -> None:
        nonlocal done_s, frames_so_far
        frames_so_far = frames
        now_s = int((data_ts - t0) / 1e9)
        if bar is not None and now_s > done_s:
            bar.update(now_s - done_s)
        done_s = max(done_s, now_s)

    def write(events: list[Any]) -> None:
        for e in events:
            out.write(e.model_dump_json() + "\n")

    async with InfluxClient(settings.influx_url, settings.influx_db, user=settings.influx_user,
                            password=settings.influx_password, timeout=120.0) as influx:
        if bar is not None:
            bar.__enter__()
        try:
            res = await run_replay(influx, t0, t1, overrides=overrides, speed=speed, on_progress=progress,
                                   on_alerts=write)
        finally:
            if bar is not None:
                bar.update(max(0, max(1, int(total_s)) - done_s))
                bar.__exit__(None, None, None)
        out.flush()
        summary: dict[str, Any] = {
            "window": label, "frames": res.frames, "alert_events": len(res.alerts),
            "alerts": len({e.alert_id for e in res.alerts}), "elapsed_s": round(res.elapsed_s, 3),
            "x_realtime": round(total_s / res.elapsed_s, 1) if res.elapsed_s else None,
            "frames_per_s": round(res.frames / res.elapsed_s) if res.elapsed_s else None}
        if not res.frames and not res.cancelled:
            summary["note"] = NO_DATA_NOTE
        if compare:
            cmp = compare_alerts(res.alerts, await live_alerts(influx, t0, t1), t0, t1)
            summary.update(same=len(cmp.same), missed=len(cmp.missed), new=len(cmp.new),
                           not_compared=cmp.not_compared, missed_ids=[s.alert_id for s in cmp.missed],
                           new_ids=[s.alert_id for s in cmp.new])
    return summary
