"""``/alerts``: the live alert view, filters over history, one alert's events, acknowledging."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, HTTPException, Path, Query
from fastapi.responses import JSONResponse

from api.acks import send_ack
from api.alertbook import AlertBook, stored_events
from api.deps import CurrentOperator, Reader, StateDep
from api.schemas import AckAccepted, AckRequest, AlertDetail, AlertPublic, AlertsPublic, errors
from api.params import ScenarioName, time_or_422
from api.times import TIME_HELP, TIME_PATTERN
from minewatch.schema import ID_PATTERN, AlertKind, AlertState, AlertTiming, Severity

router = APIRouter(prefix="/alerts", tags=["alerts"])

AlertIdPath = Annotated[str, Path(pattern=ID_PATTERN, description="the alert's stable id",
                                  examples=["mf01.ch4_t1.gas_limit.1795852800000.r01"])]


@router.get("", response_model=AlertsPublic, responses=errors(), summary="Alerts, filtered")
async def list_alerts(
    state: StateDep, _: Reader,
    alert_state: Annotated[list[AlertState] | None, Query(alias="state", description="latest state, any of")] = None,
    severity: Annotated[list[Severity] | None, Query(description="current severity, any of")] = None,
    kind: Annotated[list[AlertKind] | None, Query(description="any of")] = None,
    scenario: Annotated[list[ScenarioName] | None, Query(description="scenario ids, any of")] = None,
    since: Annotated[str | None, Query(pattern=TIME_PATTERN, description=f"alive at or after this time; {TIME_HELP}")
                     ] = None,
    until: Annotated[str | None, Query(pattern=TIME_PATTERN, description=f"raised before this time; {TIME_HELP}")] = None,
    active: Annotated[bool | None, Query(description="true: only alerts not cleared; false: only cleared")] = None,
    timing: Annotated[list[AlertTiming] | None, Query(
        description="any of live, late, historical (default: live and late; historical alerts come from loaded "
                    "history, stored only, and are read from InfluxDB)")] = None,
    limit: Annotated[int, Query(ge=1, le=10000, description="at most this many, newest first")] = 1000,
) -> AlertsPublic:
    """Alerts (one entry per alert, as its latest event plus a summary), newest event first.

    Without ``since`` this is the view kept in memory: a week of ``alert_events`` loaded at
    start-up plus every event since. An earlier ``since`` reads the older events from InfluxDB."""
    t0, t1 = time_or_422(since, "since"), time_or_422(until, "until")
    if t0 is not None and t1 is not None and t1 <= t0:
        return AlertsPublic(data=[], count=0)  # alive after since and raised before until: none
    timings = set(timing or (AlertTiming.live, AlertTiming.late))
    book = state.live.book
    if AlertTiming.historical in timings:
        lo = t0 if t0 is not None else (book.horizon_ns or 0)
        book = AlertBook(include_historical=True)
        book.apply_all(await stored_events(state.influx, f"time >= {lo}" + (f" AND time < {t1}" if t1 else "")))
    elif t0 is not None and book.horizon_ns is not None and t0 < book.horizon_ns:
        older = AlertBook()
        older.apply_all(await stored_events(
            state.influx, f"time >= {t0} AND time < {min(book.horizon_ns, t1 or book.horizon_ns)}"))
        for a in book:
            older.apply_all(a.events)
        book = older
    out: list[AlertPublic] = []
    for a in book:
        p = a.public()
        if alert_state and p.state not in alert_state:
            continue
        if severity and p.severity not in severity:
            continue
        if kind and p.kind not in kind:
            continue
        if scenario and p.scenario_id not in scenario:
            continue
        if active is not None and p.active != active:
            continue
        if p.timing not in timings:
            continue
        if t0 is not None and not p.active and p.ts < t0:
            continue
        if t1 is not None and p.first_ts >= t1:
            continue
        out.append(p)
    out.sort(key=lambda p: p.ts, reverse=True)
    out = out[:limit]
    return AlertsPublic(data=out, count=len(out))


@router.get("/{alert_id}", response_model=AlertDetail, responses=errors(404), summary="One alert with its history")
async def get_alert(alert_id: AlertIdPath, state: StateDep, _: Reader) -> AlertDetail:
    a = state.live.book.get(alert_id)
    if a is not None:
        return a.detail()
    # older than the look-back window: ask InfluxDB
    one = AlertBook()
    one.apply_all(await stored_events(state.influx, f"\"alert_id\" = '{alert_id}'"))
    found = one.get(alert_id)
    if found is None:
        raise HTTPException(404, f"no alert {alert_id!r}")
    return found.detail()


@router.post("/{alert_id}/ack", response_model=AlertPublic, summary="Acknowledge an active alert",
             responses={**errors(400, 404, 409, 503),
                        202: {"model": AckAccepted, "description": "Published; the ingestor has not confirmed yet"}})
async def acknowledge(alert_id: AlertIdPath, body: AckRequest, state: StateDep, who: CurrentOperator
                      ) -> AlertPublic | JSONResponse:
    """Publish an acknowledgement request (QoS 1 on ``alerts/ack/{alert_id}``). The ingestor owns
    the alert's state: it applies the request and publishes the acknowledged event, which this
    call waits a few seconds for and returns (200). If it has not come back in time: 202, and it
    will appear on the streams when it does."""
    a = state.live.book.get(alert_id)
    if a is None or not a.active:
        state.metrics.acks.labels("not_found").inc()
        raise HTTPException(404, f"no active alert {alert_id!r}" + (" (it has cleared)" if a else ""))
    if a.acknowledged:
        ack = next(e for e in reversed(a.events) if e.state == AlertState.acknowledged)
        state.metrics.acks.labels("conflict").inc()
        raise HTTPException(409, f"alert {alert_id!r} was already acknowledged by {ack.operator or 'someone'}")
    got = await send_ack(state, alert_id, a.latest.scenario_id, a.latest.ts, body, incident=False)
    if isinstance(got, JSONResponse):
        return got
    confirmed = state.live.book.get(alert_id)
    assert confirmed is not None
    return confirmed.public()
