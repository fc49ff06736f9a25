"""``GET /report``: the shift report for the browser (the replay view links here)."""

from __future__ import annotations

import asyncio
from typing import Annotated

from fastapi import APIRouter, HTTPException, Query
from fastapi.responses import HTMLResponse

from api.deps import Reader, StateDep
from api.params import SHIFT_PATTERN
from api.report import DEFAULT_POINTS, collect
from api.report_render import render
from api.schemas import errors
from minewatch.influx import SyncInflux

__all__ = ["router"]

router = APIRouter(tags=["shifts"])


@router.get("/report", response_class=HTMLResponse, summary="Shift report (one self-contained HTML file)",
            responses=errors(404, 503, streaming=True))
async def shift_report(
    state: StateDep, _: Reader,
    shift: Annotated[str, Query(pattern=SHIFT_PATTERN, description="YYYY-MM-DD:NAME (a shift of the calendar)",
                                examples=["2026-11-27:night"])],
    points: Annotated[int, Query(ge=10, le=5000, description="points per chart")] = DEFAULT_POINTS,
) -> HTMLResponse:
    """The report ``minewatch report`` writes, for the shift named, served for the browser (the
    replay view links here). Reads InfluxDB like the command does."""
    try:
        sh = state.calendar.parse(shift)
    except (ValueError, OverflowError) as exc:
        raise HTTPException(404, str(exc)) from None
    settings = state.settings
    tz = state.calendar.tz.utcoffset(None).total_seconds() / 3600

    def build() -> str:
        influx = SyncInflux(settings.influx_url, settings.influx_db, user=settings.influx_user,
                            password=settings.influx_password)
        try:
            return render(collect(influx, sh, tz_offset_h=tz, points=points))
        finally:
            influx.close()

    body = await asyncio.to_thread(build)
    name = f"minewatch-report-{sh.id.replace(':', '-')}.html"
    return HTMLResponse(body, headers={"Content-Disposition": f'inline; filename="{name}"'})
