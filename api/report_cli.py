"""``minewatch report``: the shift report written to a file, reading InfluxDB directly (the API need
not run)."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from api.report import DEFAULT_POINTS
from api.report_render import write_report
from minewatch.catalogue import SCENARIOS
from minewatch.influx import InfluxError, SyncInflux
from minewatch.options import influx_options, settings_from
from minewatch.shifts import ShiftCalendar, calendar_from_env

__all__ = ["report"]


@click.command("report")
@click.option("--shift", "shift_id", required=True, metavar="YYYY-MM-DD:NAME",
              help="The shift to report, named by the date it starts and its name (e.g. 2026-11-27:night); "
                   "shift times follow MINEWATCH_SHIFTS and MINEWATCH_TZ_OFFSET.")
@click.option("--out", "out", type=click.Path(dir_okay=False, writable=True, path_type=Path), required=True,
              help="The HTML file to write (self-contained: open it in any browser, no server needed).")
@influx_options
@click.option("--points", type=click.IntRange(10, 5000), default=DEFAULT_POINTS, show_default=True,
              help="Points per chart (the shift is cut into this many buckets).")
@click.option("--progress/--quiet", "progress", default=None,
              help="A progress bar on standard error, a step per scenario "
                   "[default: when standard error is a terminal].")
def report(shift_id: str, out: Path, influx_url: str | None, influx_db: str | None, points: int,
           progress: bool | None) -> None:
    """Write a self-contained HTML report of a shift: per-scenario charts of every channel with
    its limits, the alerts on a timeline and in a table, counts by kind and severity, and each
    robot's uptime. Reads InfluxDB directly; the API need not be running."""
    import httpx

    try:
        calendar: ShiftCalendar = calendar_from_env()
    except ValueError as exc:
        raise click.UsageError(str(exc)) from None
    try:
        shift = calendar.parse(shift_id)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--shift") from None
    settings = settings_from(influx_url=influx_url, influx_db=influx_db)
    influx = SyncInflux(settings.influx_url, settings.influx_db, user=settings.influx_user,
                        password=settings.influx_password)
    show = progress if progress is not None else sys.stderr.isatty()
    bar = click.progressbar(length=len(SCENARIOS) + 2, label=f"report {shift.id}", file=sys.stderr,
                            item_show_func=lambda name: name or "") if show else None
    try:
        if bar is not None:
            bar.__enter__()
        data = write_report(influx, shift, out, tz_offset_h=calendar.tz.utcoffset(None).total_seconds() / 3600,
                            points=points, on_step=(lambda name: bar.update(1, name)) if bar is not None else None)
    except httpx.HTTPError as exc:
        raise click.ClickException(f"InfluxDB at {settings.influx_url} is unreachable: {exc}") from None
    except InfluxError as exc:
        raise click.ClickException(str(exc)) from None
    except OSError as exc:
        raise click.ClickException(f"cannot write {out}: {exc.strerror or exc}") from None
    finally:
        if bar is not None:
            bar.__exit__(None, None, None)
        influx.close()
    with_data = sum(1 for s in data.scenarios if s["channels"])
    click.echo(f"wrote {out}: shift {shift.id}, {with_data}/{len(data.scenarios)} scenarios with data, "
               f"{len(data.alerts)} alerts, {len(data.robots)} robots")
