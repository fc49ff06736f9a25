"""``/replays``: re-run the detectors over a recorded shift or window (engineers)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from typing import Annotated, Any

import orjson
from fastapi import APIRouter, Depends, HTTPException, Path, Query, status
from fastapi.sse import ServerSentEvent

from api.deps import CurrentEngineer, Reader, StateDep
from api.params import bad, excerpt
from api.replay import ReplayJob, ReplayRefused
from api.routes.stream import StreamSlot
from api.schemas import ReplayCreate, ReplayPublic, ReplaysPublic, errors
from api.sse import EVENTS_DOC, PING, EventStream, event_stream, next_or_ping

router = APIRouter(prefix="/replays", tags=["replays"])
log = logging.getLogger("minewatch.api")

JobPath = Annotated[str, Path(max_length=64, description="the replay's id",
                              examples=["rp-20261128T093000-3f2a1c"])]


def _job(state: StateDep, replay_id: str) -> ReplayJob:
    job = state.replays.get(replay_id)
    if job is None:
        raise HTTPException(404, f"no replay {excerpt(replay_id)} (the last 50 are kept, until deleted)")
    return job


@router.post("", response_model=ReplayPublic, status_code=status.HTTP_201_CREATED,
             responses=errors(400, 404, 413, 429, 503),
             summary="Start a replay")
async def create_replay(body: ReplayCreate, state: StateDep, who: CurrentEngineer) -> ReplayPublic:
    """Start re-running the detectors, with fresh state and any limit ``overrides``, over a
    shift (``YYYY-MM-DD:NAME``) or a ``start``/``end`` window (at most 7 days) of stored
    telemetry; a shift the calendar does not have is a 404. ``speed`` null runs as fast as possible;
    a number (1-1000) paces the run to that
    many data seconds per wall second and streams readings on ``/replays/{id}/stream``. When
    done, ``diff`` compares the alerts found with those recorded live (see docs/api.md)."""
    try:
        job = state.replays.create(body, created_by=who.role)
    except ReplayRefused as exc:
        if exc.status == 422:
            raise bad(exc.detail, "body") from None
        raise HTTPException(exc.status, exc.detail) from None
    return job.public()


@router.get("", response_model=ReplaysPublic, responses=errors(), summary="Replays, newest first")
async def list_replays(state: StateDep, _: Reader) -> ReplaysPublic:
    """The replays kept (running ones and the last 50 finished), without their alert lists."""
    data = [j.public(with_alerts=False) for j in state.replays.list()]
    return ReplaysPublic(data=data, count=len(data))


@router.get("/{replay_id}", response_model=ReplayPublic, responses=errors(404), summary="One replay")
async def get_replay(replay_id: JobPath, state: StateDep, _: Reader,
                     alerts: Annotated[bool, Query(description="include the alert events")] = True) -> ReplayPublic:
    return _job(state, replay_id).public(with_alerts=alerts)


@router.delete("/{replay_id}", response_model=ReplayPublic, responses=errors(404),
               summary="Cancel and delete a replay")
async def cancel_replay(replay_id: JobPath, state: StateDep, _: CurrentEngineer) -> ReplayPublic:
    """Stop a running replay (it ends ``cancelled`` within a batch) and delete it, running or
    finished; the answer is its last state. From then on its id answers 404, like any unknown
    replay (its stream, if one is open, ends with ``done``)."""
    job = _job(state, replay_id)
    state.replays.cancel(job)
    if job.task is not None and not job.finished:
        try:
            await asyncio.wait_for(asyncio.shield(job.task), 5.0)
        except TimeoutError:
            pass
    state.replays.forget(job)
    return job.public(with_alerts=False)


def _sse(msg: dict[str, Any]) -> ServerSentEvent:
    return ServerSentEvent(event=msg["type"], raw_data=orjson.dumps(msg["data"]).decode())


def _replay_job(replay_id: JobPath, state: StateDep) -> ReplayJob:
    return _job(state, replay_id)


@router.get("/{replay_id}/stream", response_class=EventStream,
            responses={**EVENTS_DOC, **errors(404, 503, streaming=True)},
            summary="A replay's progress, alerts and readings as Server-Sent Events")
async def stream_replay(job: Annotated[ReplayJob, Depends(_replay_job)], _: Reader, slots: StreamSlot
                        ) -> EventStream:
    """First a `state` event (the replay so far, with its alerts), then `progress`, `alert`
    and, for a paced replay, `reading` events (the latest frame of each robot every tenth of a
    wall second), and a final `done` event with the result; then the stream ends. A comment
    line every 15 s keeps an idle stream open through proxies."""
    return event_stream(_replay_events(job))


async def _replay_events(job: ReplayJob) -> AsyncIterator[ServerSentEvent | object]:
    sub = job.hub.subscribe()
    ended = False
    try:
        yield ServerSentEvent(event="state", raw_data=job.public().model_dump_json())
        if job.finished:
            yield ServerSentEvent(event="done", raw_data=job.public(with_alerts=False).model_dump_json())
            ended = True
            return
        while True:
            msg = await next_or_ping(sub)
            if msg is PING:
                yield PING
                continue
            yield _sse(msg)  # type: ignore[arg-type]
            if msg["type"] in ("done", "lagged"):  # type: ignore[index]
                ended = True
                return
    finally:
        job.hub.unsubscribe(sub)
        if not ended:
            log.debug("replay %s: a stream client went away", job.id)
