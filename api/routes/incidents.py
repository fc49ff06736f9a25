"""``/incidents``: the operator's worklist (alerts grouped by place and cause), one incident, acknowledging."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, HTTPException, Path, Query
from fastapi.responses import JSONResponse

from api.acks import send_ack
from api.deps import CurrentOperator, Reader, StateDep
from api.incidents import IncidentBook, stored_incidents, worklist_order
from api.params import ScenarioName, time_or_422
from api.schemas import AckAccepted, AckRequest, IncidentDetail, IncidentPublic, IncidentsPublic, errors
from api.times import TIME_HELP, TIME_PATTERN
from minewatch.schema import ID_PATTERN, Severity

router = APIRouter(prefix="/incidents", tags=["incidents"])

IncidentIdPath = Annotated[str, Path(pattern=ID_PATTERN, max_length=64, description="the incident's id",
                                     examples=["mf01.methane.1795852800000.r01"])]


@router.get("", response_model=IncidentsPublic, responses=errors(), summary="Incidents, as the operator works them")
async def list_incidents(
    state: StateDep, _: Reader,
    active: Annotated[bool | None, Query(description="true (default): open incidents only; false: only "
                                                      "closed ones; leave out for both with since")] = True,
    severity: Annotated[list[Severity] | None, Query(description="current severity, any of")] = None,
    scenario: Annotated[list[ScenarioName] | None, Query(description="scenario ids, any of")] = None,
    needs_ack: Annotated[bool | None, Query(description="only those that need (or do not need) acknowledging")] = None,
    since: Annotated[str | None, Query(pattern=TIME_PATTERN, description=f"alive at or after this time; {TIME_HELP}")
                     ] = None,
    limit: Annotated[int, Query(ge=1, le=10000)] = 1000,
) -> IncidentsPublic:
    """Incidents ordered as an operator works them: open first, those needing acknowledgement
    first, then by severity, then the newest first. Each lists its member alerts."""
    t0 = time_or_422(since, "since")
    book = state.live.incidents
    if t0 is not None and book.horizon_ns is not None and t0 < book.horizon_ns:
        older = IncidentBook()
        older.apply_all(await stored_incidents(state.influx, f"time >= {t0} AND time < {book.horizon_ns}"))
        for inc in book:
            older.apply_all(inc.events)
        book = older
    out: list[IncidentPublic] = []
    for inc in book:
        p = inc.public()
        if active is not None and p.active != active:
            continue
        if severity and p.severity not in severity:
            continue
        if scenario and p.scenario_id not in scenario:
            continue
        if needs_ack is not None and p.needs_ack != needs_ack:
            continue
        if t0 is not None and not p.active and p.ts < t0:
            continue
        out.append(p)
    out.sort(key=worklist_order)
    out = out[:limit]
    return IncidentsPublic(data=out, count=len(out))


@router.get("/{incident_id}", response_model=IncidentDetail, responses=errors(404),
            summary="One incident with its history")
async def get_incident(incident_id: IncidentIdPath, state: StateDep, _: Reader) -> IncidentDetail:
    inc = state.live.incidents.get(incident_id)
    if inc is None:
        one = IncidentBook()
        one.apply_all(await stored_incidents(state.influx, f"\"incident_id\" = '{incident_id}'"))
        inc = one.get(incident_id)
    if inc is None:
        raise HTTPException(404, f"no incident {incident_id!r}")
    return inc.detail()


@router.post("/{incident_id}/ack", response_model=IncidentPublic, summary="Acknowledge an incident",
             responses={**errors(400, 404, 409, 503),
                        202: {"model": AckAccepted, "description": "Published; the ingestor has not confirmed yet"}})
async def acknowledge_incident(incident_id: IncidentIdPath, body: AckRequest, state: StateDep,
                               who: CurrentOperator) -> IncidentPublic | JSONResponse:
    """Acknowledge an open incident: every one of its active alerts not acknowledged since it last
    escalated, with one request (QoS 1 on ``incidents/ack/{incident_id}``). The ingestor applies it
    and publishes the members' and the incident's acknowledged steps; this call waits a few seconds
    for them (200), else answers 202."""
    inc = state.live.incidents.get(incident_id)
    if inc is None or not inc.active:
        state.metrics.acks.labels("not_found").inc()
        raise HTTPException(404, f"no open incident {incident_id!r}" + (" (it has cleared)" if inc else ""))
    if not inc.latest.needs_ack:
        state.metrics.acks.labels("conflict").inc()
        by = inc.latest.acknowledged_by
        raise HTTPException(409, f"incident {incident_id!r} needs no acknowledgement"
                                 + (f" (acknowledged by {by})" if by else " (it is a notice)"))
    got = await send_ack(state, incident_id, inc.latest.scenario_id, inc.latest.ts, body, incident=True)
    if isinstance(got, JSONResponse):
        return got
    confirmed = state.live.incidents.get(incident_id)
    return (confirmed or inc).public()


