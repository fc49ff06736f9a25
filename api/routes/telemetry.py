"""``/telemetry``: latest values, downsampled history, CSV export."""

from __future__ import annotations

import csv
import io
import math
from collections.abc import AsyncIterator
from typing import Annotated, Literal

from fastapi import APIRouter, Query
from fastapi.responses import StreamingResponse

from api.deps import InfluxDep, Reader, StateDep
from api.params import (CHANNELS_PATTERN, ROBOT_PATTERN, ScenarioName, channels_or_422, robot_or_422, scenario_or_422,
                        window_or_422)
from api.schemas import LatestReading, SeriesPublic, TelemetryHistory, TelemetryLatest, errors
from api.times import TIME_HELP, TIME_PATTERN, iso
from api.views import beyond, latest_readings, merge_readings
from minewatch.influx import InfluxError

router = APIRouter(prefix="/telemetry", tags=["telemetry"])

MAX_WINDOW_S = 92 * 86400  # a quarter: the longest window one request may cover
ScenarioQ = Annotated[ScenarioName, Query(description="scenario id", examples=["mf01"])]
RobotQ = Annotated[str | None, Query(pattern=ROBOT_PATTERN, description="only this robot (default: every robot in "
                                     "the scenario)", examples=["r01"])]
ChannelsQ = Annotated[str | None, Query(pattern=CHANNELS_PATTERN,
                                        description="comma-separated channels of the scenario (default: all of them); "
                                        "battery, pos_m, latency_ms and rssi_dbm too", examples=["ch4_t1,co"])]
StartQ = Annotated[str, Query(pattern=TIME_PATTERN, description=f"window start; {TIME_HELP}",
                                     examples=["2026-11-27T00:00:00Z"])]
EndQ = Annotated[str, Query(pattern=TIME_PATTERN, description=f"window end (exclusive); {TIME_HELP}; "
                                   f"after start and at most {MAX_WINDOW_S // 86400} days after it",
                                   examples=["2026-11-27T08:00:00Z"])]


def _where(scenario_id: str, robot: str | None, t0: int | None = None, t1: int | None = None) -> str:
    w = f"\"scenario\" = '{scenario_id}'"
    if robot:
        w += f" AND \"robot\" = '{robot}'"
    if t0 is not None and t1 is not None:
        w += f" AND time >= {t0} AND time < {t1}"
    return w


@router.get("/latest", response_model=TelemetryLatest, responses=errors(), summary="Latest value of each channel")
async def latest(scenario: ScenarioQ, state: StateDep, influx: InfluxDep, _: Reader,
                 robot: RobotQ = None) -> TelemetryLatest:
    """The newest stored value of every channel of the scenario (any robot, or the one given),
    merged with what arrived live since."""
    sc = scenario_or_422(scenario)
    robot = robot_or_422(robot)
    chans = channels_or_422(sc, None)
    q = "; ".join(f'SELECT last("{c}") AS "{c}" FROM "telemetry" WHERE {_where(sc.id, robot)} GROUP BY "robot"'
                  for c, _u in chans)
    stored: dict[str, LatestReading] = {}
    for row in await influx.query(q):
        for c, _u in chans:
            if c in row and (c not in stored or row["time"] > stored[c].ts):
                stored[c] = LatestReading(value=row[c], ts=row["time"], robot_id=row.get("robot", ""),
                                          beyond=beyond(sc.channel_map.get(c), row[c]))
    frames = [f for f in state.live.frames_of(sc.id) if robot is None or f.robot_id == robot]
    return TelemetryLatest(scenario_id=sc.id, readings=merge_readings(stored, latest_readings(frames, sc)))


@router.get("/history", response_model=TelemetryHistory, responses=errors(), summary="Downsampled history")
async def history(
    scenario: ScenarioQ, influx: InfluxDep, _: Reader, start: StartQ, end: EndQ, robot: RobotQ = None,
    channels: ChannelsQ = None,
    points: Annotated[int, Query(ge=1, le=20000, description="about this many buckets over the window")] = 500,
) -> TelemetryHistory:
    """Mean, min and max of each channel per time bucket (``GROUP BY time()``), the bucket
    width chosen so the window gives about ``points`` buckets. Empty buckets are left out.
    A window older than the raw data's retention is answered from the 5-minute statistics
    (``source`` = ``5m``, buckets of at least 5 minutes)."""
    sc = scenario_or_422(scenario)
    robot = robot_or_422(robot)
    chans = channels_or_422(sc, channels)
    t0, t1 = window_or_422(start, end, max_s=MAX_WINDOW_S)
    interval_ms = max(1, math.ceil((t1 - t0) / points / 1e6))
    sel = ", ".join(f'mean("{c}") AS "{c}__mean", min("{c}") AS "{c}__min", max("{c}") AS "{c}__max"' for c, _ in chans)
    rows = await influx.query(f'SELECT {sel} FROM "telemetry" WHERE {_where(sc.id, robot, t0, t1)} '
                              f"GROUP BY time({interval_ms}ms) fill(none)")
    source: Literal["raw", "5m"] = "raw"
    if not rows:
        # past the raw retention: the 5-minute statistics kept for a year (minewatch/storage.py)
        interval_ms = max(interval_ms, 300_000)
        sel = ", ".join(f'mean("mean_{c}") AS "{c}__mean", min("min_{c}") AS "{c}__min", '
                        f'max("max_{c}") AS "{c}__max"' for c, _ in chans)
        try:
            rows = await influx.query(f'SELECT {sel} FROM "long"."telemetry_5m" WHERE {_where(sc.id, robot, t0, t1)} '
                                      f"GROUP BY time({interval_ms}ms) fill(none)")
            source = "5m" if rows else "raw"
        except InfluxError:
            rows = []  # no long-term store in this database
    series = []
    for c, unit in chans:
        got = [r for r in rows if r.get(f"{c}__mean") is not None]
        series.append(SeriesPublic(channel=c, unit=unit, robot_id=robot, ts=[r["time"] for r in got],
                                   mean=[r[f"{c}__mean"] for r in got], min=[r[f"{c}__min"] for r in got],
                                   max=[r[f"{c}__max"] for r in got]))
    return TelemetryHistory(scenario_id=sc.id, robot_id=robot, start=t0, end=t1, interval_ns=interval_ms * 1_000_000,
                            source=source, series=series)


@router.get("/export.csv", response_class=StreamingResponse, summary="Raw readings of a window as CSV",
            responses={**errors(streaming=True), 200: {"content": {"text/csv": {"schema": {"type": "string"}}},
                                         "description": "time (ISO), ts_ns, robot, then one column per channel"}})
async def export_csv(scenario: ScenarioQ, influx: InfluxDep, _: Reader, start: StartQ, end: EndQ,
                     robot: RobotQ = None, channels: ChannelsQ = None) -> StreamingResponse:
    """Every stored reading of the window, in time order, streamed (``chunked=true`` from
    InfluxDB), so a long window does not sit in memory."""
    sc = scenario_or_422(scenario)
    robot = robot_or_422(robot)
    chans = [c for c, _ in channels_or_422(sc, channels)]
    t0, t1 = window_or_422(start, end, max_s=MAX_WINDOW_S)
    sel = ", ".join(f'"{c}"' for c in chans)
    q = f'SELECT {sel}, "robot" FROM "telemetry" WHERE {_where(sc.id, robot, t0, t1)}'
    chunks = influx.query_chunks(q)

    async def body() -> AsyncIterator[bytes]:
        buf = io.StringIO()
        w = csv.writer(buf, lineterminator="\n")
        w.writerow(["time", "ts_ns", "robot", *chans])
        yield buf.getvalue().encode()
        async for cols, _tags, values in chunks:
            buf.seek(0)
            buf.truncate()
            idx = {c: i for i, c in enumerate(cols)}
            ti, ri = idx["time"], idx.get("robot")
            ci = [idx.get(c) for c in chans]
            for v in values:
                w.writerow([iso(v[ti]), v[ti], v[ri] if ri is not None else "",
                            *("" if i is None or v[i] is None else v[i] for i in ci)])
            yield buf.getvalue().encode()

    name = f"{sc.id}{'-' + robot if robot else ''}-{iso(t0)[:19].replace(':', '')}.csv"
    return StreamingResponse(body(), media_type="text/csv",
                             headers={"Content-Disposition": f'attachment; filename="{name}"'})
