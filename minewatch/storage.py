"""Retention and downsampling in InfluxDB: raw data for a month, 5-minute statistics and alarms for a year.

The monitoring standard (AQ 6201-2019 as quoted in domain.md section 3) asks that real-time
readings be kept at least 7 days and 5-minute statistics, alarms, power cuts and fan/door changes
at least a year. :func:`ensure_storage` sets the database up for that, and is safe to run on
every start (it changes only what differs):

- retention policy ``raw`` (default, ``raw_days``, 30 unless told, one-day shards): everything
  is written here. A point older than that is refused by InfluxDB (the ingestor dead-letters it);
- retention policy ``long`` (``long_days``, 400 unless told, one-week shards);
- continuous queries ``telemetry_5m`` and ``vibration_5m``: every 5 minutes, re-compute the
  5-minute ``mean_*``, ``min_*`` and ``max_*`` of every field of the last 15 minutes (late frames
  included: a bucket is computed again until 10 minutes after it ends) into
  ``long.telemetry_5m`` / ``long.vibration_5m``, tags kept; the min/max of a ``run`` channel keeps
  every fan stop and start. Each point is read three times. (Every minute over 15 minutes read
  each point fifteen times, which at tens of thousands of points a second cost InfluxDB more
  than writing them; the history only uses these statistics for shifts older than ``raw``);
- the alert log: InfluxDB 1.x continuous queries must aggregate (a ``SELECT *`` one is accepted
  and then never writes), so :func:`copy_events` copies ``alert_events`` rows, unchanged, from
  ``raw`` into ``long``; the ingestor runs it every minute (:func:`maintain_storage`). Copies of
  the same row land once (same series and time).

Creating databases, policies and continuous queries needs an InfluxDB admin account; a
non-admin account works once they exist, since nothing is changed then.
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import Generator
from dataclasses import dataclass
from typing import Any

import click

from minewatch.influx import InfluxClient, InfluxError, SyncInflux

__all__ = [
    "RAW_RP",
    "RAW_DAYS",
    "LONG_DAYS",
    "LONG_RP",
    "DOWNSAMPLED",
    "COPIED",
    "StoragePlan",
    "ensure_storage",
    "ensure_storage_sync",
    "copy_events",
    "copy_events_sync",
    "maintain_storage",
    "bootstrap_users_sync",
    "storage_command",
]

log = logging.getLogger(__name__)

RAW_RP = "raw"
LONG_RP = "long"
# measurement in raw -> its 5-minute statistics in long
DOWNSAMPLED = {"telemetry": "telemetry_5m", "vibration": "vibration_5m"}
# measurements copied row for row into long
COPIED = ("alert_events",)
MIN_RAW_DAYS = 7  # domain.md section 3: real-time data >= 7 d
# Defaults: a month of raw data, so engineers can replay any shift of the last weeks at full
# resolution (a full fleet at 1 Hz is a few GB a month); 5-minute statistics for 400 days.
RAW_DAYS = 30
LONG_DAYS = 400
MIN_LONG_DAYS = 366  # domain.md section 3: 5-min statistics and alarms >= 1 yr


def _ident(name: str) -> str:
    return '"' + name.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _squash(query: str) -> str:
    """A CQ definition without quotes, spaces or case, to compare ours with SHOW's."""
    return re.sub(r'["\s]', "", query).lower()


@dataclass(frozen=True)
class StoragePlan:
    """What the database should look like; renders the InfluxQL that gets it there."""

    db: str
    raw_days: int = RAW_DAYS
    long_days: int = LONG_DAYS
    every: str = "5m"
    window: str = "15m"
    bucket: str = "5m"

    def __post_init__(self) -> None:
        if self.raw_days < MIN_RAW_DAYS:
            raise ValueError(f"raw data must be kept at least {MIN_RAW_DAYS} days (domain.md section 3), "
                             f"got {self.raw_days}")
        if self.long_days < MIN_LONG_DAYS:
            raise ValueError(f"5-minute statistics and alarms must be kept at least a year ({MIN_LONG_DAYS} days, "
                             f"domain.md section 3), got {self.long_days}")

    def policies(self) -> dict[str, tuple[str, str, bool]]:
        """name -> (duration, shard group duration, default), as SHOW RETENTION POLICIES prints them."""
        return {RAW_RP: (f"{self.raw_days * 24}h0m0s", "24h0m0s", True),
                LONG_RP: (f"{self.long_days * 24}h0m0s", "168h0m0s", False)}

    def continuous_queries(self) -> dict[str, str]:
        db = _ident(self.db)
        out = {}
        for source, target in DOWNSAMPLED.items():
            out[target] = (
                f"CREATE CONTINUOUS QUERY {_ident(target)} ON {db} RESAMPLE EVERY {self.every} FOR {self.window} "
                f"BEGIN SELECT mean(*), min(*), max(*) INTO {db}.{_ident(LONG_RP)}.{_ident(target)} "
                f"FROM {db}.{_ident(RAW_RP)}.{_ident(source)} GROUP BY time({self.bucket}), * END")
        return out

    def changes(self, rps: list[dict[str, Any]], cqs: list[dict[str, Any]]) -> list[str]:
        """The statements that turn the state seen (SHOW RETENTION POLICIES / CONTINUOUS QUERIES)
        into the planned one; empty when nothing differs."""
        db = _ident(self.db)
        out: list[str] = []
        have = {r["name"]: r for r in rps}
        for name, (duration, shard, default) in self.policies().items():
            days = self.raw_days if name == RAW_RP else self.long_days
            shard_spec = "1d" if name == RAW_RP else "7d"
            spec = f"DURATION {days}d REPLICATION 1 SHARD DURATION {shard_spec}{' DEFAULT' if default else ''}"
            r = have.get(name)
            if r is None:
                out.append(f"CREATE RETENTION POLICY {_ident(name)} ON {db} {spec}")
            elif (r["duration"], r["shardGroupDuration"], bool(r["default"])) != (duration, shard, default):
                out.append(f"ALTER RETENTION POLICY {_ident(name)} ON {db} {spec}")
        head = _squash(f"ON {db}")
        mine = {r["name"]: _squash(r["query"]) for r in cqs if head in _squash(r["query"])}
        for name, query in self.continuous_queries().items():
            if name in mine and mine[name] == _squash(query):
                continue
            if name in mine:
                out.append(f"DROP CONTINUOUS QUERY {_ident(name)} ON {db}")
            out.append(query)
        return out

    def copy_statements(self, window: str) -> list[str]:
        db = _ident(self.db)
        return [f"SELECT * INTO {db}.{_ident(LONG_RP)}.{_ident(m)} FROM {db}.{_ident(RAW_RP)}.{_ident(m)} "
                f"WHERE time > now() - {window} GROUP BY *" for m in COPIED]


# The set-up is written once, as a generator that yields (query, options) and is sent the rows;
# the async and the blocking client each drive it.
Step = Generator[tuple[str, dict[str, Any]], list[dict[str, Any]], list[str]]


def _setup(plan: StoragePlan) -> Step:
    ran: list[str] = []
    dbs = yield "SHOW DATABASES", {"db": ""}
    if plan.db not in {r["name"] for r in dbs}:
        stmt = f"CREATE DATABASE {_ident(plan.db)}"
        yield stmt, {"db": "", "post": True}
        ran.append(stmt)
    rps = yield f"SHOW RETENTION POLICIES ON {_ident(plan.db)}", {"db": ""}
    cqs = yield "SHOW CONTINUOUS QUERIES", {"db": plan.db}
    for stmt in plan.changes(rps, cqs):
        yield stmt, {"db": "", "post": True}
        ran.append(stmt)
    return ran


def _explain(exc: InfluxError) -> InfluxError:
    if exc.status in (401, 403):
        return InfluxError(exc.status, f"{exc.message} (setting up retention policies and continuous queries "
                                       "needs an InfluxDB admin account: MINEWATCH_INFLUX_USER / _PASSWORD)")
    return exc


async def ensure_storage(client: InfluxClient, *, raw_days: int = RAW_DAYS, long_days: int = LONG_DAYS,
                         every: str = "5m") -> list[str]:
    """Create or update the database, its ``raw``/``long`` policies and its continuous queries.

    Idempotent: returns the statements it ran, none when everything was in place.
    """
    steps = _setup(StoragePlan(client.db, raw_days=raw_days, long_days=long_days, every=every))
    try:
        query, options = next(steps)
        while True:
            rows = await client.query(query, **options)
            query, options = steps.send(rows)
    except StopIteration as done:
        ran: list[str] = done.value
    except InfluxError as exc:
        raise _explain(exc) from None
    if ran:
        log.info("storage of %s set up: %s", client.db, "; ".join(ran))
    return ran


def ensure_storage_sync(client: SyncInflux, *, raw_days: int = RAW_DAYS, long_days: int = LONG_DAYS,
                        every: str = "5m") -> list[str]:
    """:func:`ensure_storage` with the blocking client."""
    steps = _setup(StoragePlan(client.db, raw_days=raw_days, long_days=long_days, every=every))
    try:
        query, options = next(steps)
        while True:
            rows = client.query(query, **options)
            query, options = steps.send(rows)
    except StopIteration as done:
        changed: list[str] = done.value
        return changed
    except InfluxError as exc:
        raise _explain(exc) from None


def bootstrap_users_sync(url: str, db: str, *, admin: tuple[str, str],
                         users: dict[str, tuple[str, str]] | None = None, setup: bool = True) -> SyncInflux:
    """On an InfluxDB with auth on: the admin account (created if the server has no user yet),
    the database (set up by :func:`ensure_storage_sync` unless ``setup`` is false), and ``users``
    (name -> (password, privilege on ``db``: READ, WRITE or ALL)) created or updated. Returns the
    admin's client."""
    name, password = admin
    anon = SyncInflux(url, db)
    try:  # InfluxDB lets anyone create the first user, an admin, and nothing else
        anon.query(f"CREATE USER {_ident(name)} WITH PASSWORD {_quote(password)} WITH ALL PRIVILEGES", db="", post=True)
    except InfluxError as exc:
        if exc.status not in (401, 403):
            raise
    finally:
        anon.close()
    client = SyncInflux(url, db, user=name, password=password)
    if setup:
        ensure_storage_sync(client)
    else:
        client.ensure_db()
    existing = {r["user"] for r in client.query("SHOW USERS", db="")}
    for user, (pw, privilege) in (users or {}).items():
        if privilege not in ("READ", "WRITE", "ALL"):
            raise ValueError(f"privilege of {user!r} must be READ, WRITE or ALL")
        verb = f"SET PASSWORD FOR {_ident(user)} =" if user in existing else f"CREATE USER {_ident(user)} WITH PASSWORD"
        client.query(f"{verb} {_quote(pw)}", db="", post=True)
        client.query(f"GRANT {privilege} ON {_ident(db)} TO {_ident(user)}", db="", post=True)
    return client


def _quote(s: str) -> str:
    return "'" + s.replace("\\", "\\\\").replace("'", "\\'") + "'"


def _written(rows: list[dict[str, Any]]) -> int:
    return sum(int(r.get("written", 0)) for r in rows)


async def copy_events(client: InfluxClient, *, window: str = "1d") -> int:
    """Copy the last ``window`` of ``alert_events`` from ``raw`` into ``long``; rows written."""
    n = 0
    for stmt in StoragePlan(client.db).copy_statements(window):
        n += _written(await client.query(stmt, post=True))
    return n


def copy_events_sync(client: SyncInflux, *, window: str = "1d") -> int:
    return sum(_written(client.query(stmt, post=True)) for stmt in StoragePlan(client.db).copy_statements(window))


async def maintain_storage(client: InfluxClient, *, every_s: float = 60.0, window: str = "1d",
                           raw_days: int = RAW_DAYS) -> None:
    """Copy the alert log into ``long`` every ``every_s`` seconds until cancelled.

    The first pass covers all of ``raw`` (``raw_days``), so events written while no copier ran
    are copied too; later passes the last ``window``. Failures are logged and retried.
    """
    span = f"{raw_days}d"
    while True:
        try:
            await copy_events(client, window=span)
            span = window
        except Exception as exc:  # noqa: BLE001 - InfluxDB or network trouble: retry next pass
            log.warning("copying alert events into %s.%s failed (will retry): %s", client.db, LONG_RP, exc)
        await asyncio.sleep(every_s)


@click.command("storage", context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--influx-url", default=None, help="InfluxDB 1.x HTTP URL [env MINEWATCH_INFLUX_URL].")
@click.option("--influx-db", default=None, help="Database [env MINEWATCH_INFLUX_DB; default minewatch].")
@click.option("--raw-days", type=int, default=RAW_DAYS, show_default=True, help="Keep raw data this long (at least 7).")
@click.option("--long-days", type=int, default=LONG_DAYS, show_default=True,
              help="Keep 5-minute statistics and the alert log this long (at least 366).")
@click.option("--wait", type=float, default=60.0, show_default=True, help="Seconds to wait for InfluxDB to answer.")
def storage_command(influx_url: str | None, influx_db: str | None, raw_days: int, long_days: int, wait: float) -> None:
    """Create or update the database's retention policies (raw, long) and continuous queries.

    Needs an InfluxDB admin account when anything is missing or different (MINEWATCH_INFLUX_USER
    and MINEWATCH_INFLUX_PASSWORD). Safe to run any number of times; prints what it changed.
    """
    import time

    import httpx

    from minewatch.options import settings_from

    s = settings_from(influx_url=influx_url, influx_db=influx_db)
    client = SyncInflux(s.influx_url, s.influx_db, user=s.influx_user, password=s.influx_password)
    deadline = time.monotonic() + wait
    try:
        while True:
            try:
                ran = ensure_storage_sync(client, raw_days=raw_days, long_days=long_days)
                break
            except (InfluxError, ValueError) as exc:
                raise click.ClickException(str(exc)) from None
            except httpx.TransportError as exc:  # not up yet
                if time.monotonic() > deadline:
                    raise click.ClickException(f"InfluxDB at {s.influx_url} not reachable: {exc}") from None
                time.sleep(1)
    finally:
        client.close()
    click.echo("\n".join(ran) if ran else f"storage of {s.influx_db} already in place")


if __name__ == "__main__":
    storage_command()
