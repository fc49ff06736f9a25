"""Sending an operator's acknowledgement to the ingestor and waiting for its confirmation, for the
alert and incident routes alike."""

from __future__ import annotations

import time
from typing import Any

from fastapi import HTTPException
from fastapi.responses import JSONResponse

from api.schemas import AckAccepted, AckRequest

__all__ = ["send_ack"]


async def send_ack(state: Any, target_id: str, scenario_id: str, latest_ts: int, body: AckRequest, *,
                   incident: bool) -> Any | JSONResponse:
    """Publish the request and wait a few seconds for the acknowledged event: the event, or a 202
    answer when it has not come back in time (it then shows on the streams when it does); 503 when
    the broker is not reachable."""
    # after the event it acknowledges, even if the robot's clock runs ahead of ours
    ts = max(time.time_ns(), latest_ts + 1)
    operator = body.operator.strip()
    try:
        ev = await state.live.request_ack(target_id, scenario_id, operator, body.note, ts, state.ack_wait_s,
                                          incident=incident)
    except ConnectionError as exc:
        state.metrics.acks.labels("unavailable").inc()
        raise HTTPException(503, str(exc)) from None
    if ev is None:
        state.metrics.acks.labels("pending").inc()
        accepted = AckAccepted(incident_id=target_id if incident else None, alert_id=None if incident else target_id,
                               operator=operator, note=body.note, ts=ts)
        return JSONResponse(accepted.model_dump(exclude_none=True), status_code=202)
    state.metrics.acks.labels("confirmed").inc()
    return ev
