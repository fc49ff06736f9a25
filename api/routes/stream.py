"""Live streams: ``GET /stream`` (Server-Sent Events) and ``WS /ws`` (the same messages as JSON).

Every message is ``{"type", "data"}`` (over SSE, ``type`` is the event name):

- ``active``: first, on every (re)connection: the active alerts (list of AlertPublic);
- ``incidents``: second, on every (re)connection: the open incidents (list of IncidentPublic, in
  worklist order);
- ``watch``: third, on every (re)connection: whether each scenario is watched (list of WatchStatus),
  then each scenario's status as the ingestor refreshes it;
- ``alert``: each alert event (AlertEvent) as the ingestor publishes it;
- ``incident``: each incident step (IncidentPublic) as the ingestor publishes it, and
  ``incident_gone`` (``{"incident_id"}``) when an open incident's retained state is removed;
- ``status``: a robot's status (RobotStatus) when it changes;
- ``reading``: each telemetry frame of the scenarios subscribed to (``?scenario=mf01,hf01`` or,
  on the WebSocket, ``{"subscribe": "mf01"}`` / ``{"unsubscribe": "mf01"}``);
- ``lagged``: the client fell too far behind and the server closes; reconnect.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from typing import Annotated, Any

import orjson
from fastapi import APIRouter, Depends, HTTPException, Query, WebSocket, WebSocketDisconnect
from fastapi.sse import ServerSentEvent

from api.deps import Reader, StateDep, authenticate, get_state, key_of
from api.hub import Message, Slots, Subscriber
from api.params import bad
from api.schemas import errors
from api.sse import EVENTS_DOC, PING, EventStream, event_stream, next_or_ping
from minewatch.catalogue import SCENARIOS

def close_reason(text: str, limit: int = 123) -> str:
    """``text`` as a WebSocket close reason: at most ``limit`` UTF-8 bytes (the protocol's 123),
    cut at a word boundary and marked with an ellipsis when it is longer."""
    if len(text.encode()) <= limit:
        return text
    room = limit - len("…".encode())
    cut = text.encode()[:room].decode(errors="ignore")
    if " " in cut:
        cut = cut[:cut.rindex(" ")]
    return cut.rstrip(" ,;:") + "…"


log = logging.getLogger("minewatch.api.stream")

router = APIRouter(tags=["stream"])

ScenariosQ = Annotated[str | None, Query(description="comma-separated scenario ids whose live readings to "
                                         "stream as `reading` events", examples=["mf01"])]


def _scenarios(value: str | list[str] | None) -> set[str]:
    if value is None:
        return set()
    items = value.split(",") if isinstance(value, str) else value
    out = {s.strip() for s in items if isinstance(s, str) and s.strip()}
    unknown = sorted(out - set(SCENARIOS))
    if unknown:
        raise ValueError(f"unknown scenario {', '.join(map(repr, unknown))}; known: {', '.join(SCENARIOS)}")
    return out


def snapshots(state: Any) -> list[tuple[str, str]]:
    """What a client gets first on every (re)connection, as ``(type, JSON of data)``: active
    alerts, open incidents (each at most ``api_snapshot_max``, worst first), watch states.

    Built once per change of the live state and shared by every client that connects before
    the next change, so a crowd of clients costs one copy, not one each."""
    live = state.live
    cached = live.snapshot_cache
    if cached is not None and cached[0] == live.version:
        return cached[1]
    n = state.settings.api_snapshot_max
    out = [("active", orjson.dumps([a.model_dump(mode="json") for a in live.book.active_public()[:n]]).decode()),
           ("incidents", orjson.dumps([i.model_dump(mode="json") for i in live.incidents.active_public()[:n]]).decode()),
           ("watch", orjson.dumps([ws.model_dump(mode="json") for ws, _ in live.watch.values()]).decode())]
    live.snapshot_cache = (live.version, out)
    return out


def sse(msg: Message) -> ServerSentEvent:
    return ServerSentEvent(event=msg["type"], raw_data=orjson.dumps(msg["data"]).decode())


def full(what: str) -> str:
    return (f"{what}: the API serves at most this many live stream clients at once; "
            "try again later (MINEWATCH_API_MAX_STREAMS)")


async def stream_slot(state: StateDep) -> AsyncIterator[Slots]:
    """A place among the stream clients, taken as the request is let in and given back when the
    response ends, however it ends (the stream runs out, the client goes, the request fails);
    503 when every place is taken."""
    slots = state.live.slots
    if not slots.take():
        raise HTTPException(503, full(f"{slots.limit} streams are open"), headers={"Retry-After": "5"})
    try:
        yield slots
    finally:
        slots.give()


StreamSlot = Annotated[Slots, Depends(stream_slot)]


def stream_scenarios(scenario: ScenariosQ = None) -> set[str]:
    try:
        return _scenarios(scenario)
    except ValueError as exc:
        raise bad(str(exc), "scenario") from None


@router.get("/stream", response_class=EventStream, responses={**EVENTS_DOC, **errors(503, streaming=True)},
            summary="Live alert events (and readings) as Server-Sent Events")
async def stream(state: StateDep, _: Reader, scenarios: Annotated[set[str], Depends(stream_scenarios)],
                 slots: StreamSlot) -> EventStream:
    """Server-Sent Events: first an `active` event with the active alerts, then `alert` events,
    `status` events and, for the scenarios in `scenario`, `reading` events. Browsers pass the key
    as `?api_key=` or the `minewatch_api_key` cookie (EventSource cannot send headers). A comment
    line every 15 s keeps an idle stream open through proxies."""
    # subscribed here, before the snapshots are taken, so no event can fall between the two
    return event_stream(_live_events(state, state.live.hub.subscribe(scenarios)))


async def _live_events(state: Any, sub: Subscriber) -> AsyncIterator[ServerSentEvent | object]:
    try:
        (kind, data), *rest = snapshots(state)
        yield ServerSentEvent(retry=2000, event=kind, raw_data=data)
        for kind, data in rest:
            yield ServerSentEvent(event=kind, raw_data=data)
        while True:
            msg = await next_or_ping(sub)
            if msg is PING:
                yield PING
                continue
            assert isinstance(msg, dict)
            yield sse(msg)
            if msg["type"] == "lagged":
                return
    finally:
        state.live.hub.unsubscribe(sub)
        log.debug("a live stream client went away")


@router.websocket("/ws")
async def ws(websocket: WebSocket) -> None:
    """The same messages as ``/stream`` as JSON text frames. The key comes as ``?api_key=``, the
    ``minewatch_api_key`` cookie or an ``X-API-Key`` / ``Authorization`` header; without a
    valid one the socket is closed with code 4401. Send ``{"subscribe": "mf01"}`` (or a list)
    to get that scenario's readings, ``{"unsubscribe": "mf01"}`` to stop."""
    state = get_state(websocket)
    try:
        authenticate(state.api_keys, key_of(websocket))
        scenarios = _scenarios(websocket.query_params.get("scenario"))
    except HTTPException as exc:
        # accept first, so that a browser sees the close code (a refused handshake shows as 1006)
        await websocket.accept()
        await websocket.close(code=4401 if exc.status_code == 401 else 4403, reason=close_reason(str(exc.detail)))
        return
    except ValueError as exc:
        await websocket.accept()
        await websocket.close(code=4422, reason=close_reason(str(exc)))
        return
    await websocket.accept()
    if not state.live.slots.take():
        # 1013: try again later
        await websocket.close(code=1013, reason=close_reason(full(f"{state.live.slots.limit} streams")))
        return
    sub = state.live.hub.subscribe(scenarios)
    try:
        for kind, data in snapshots(state):
            await websocket.send_text(f'{{"type":"{kind}","data":{data}}}')
        reader = asyncio.create_task(_read_commands(websocket, sub))
        try:
            while not reader.done():
                getter = asyncio.ensure_future(sub.get())
                done, _ = await asyncio.wait({getter, reader}, return_when=asyncio.FIRST_COMPLETED)
                if getter not in done:
                    getter.cancel()
                    break
                msg = getter.result()
                await websocket.send_text(orjson.dumps(msg).decode())
                if msg["type"] == "lagged":
                    await websocket.close(code=4000, reason="lagged")
                    break
        finally:
            reader.cancel()
            with contextlib.suppress(asyncio.CancelledError, WebSocketDisconnect, RuntimeError):
                await reader
    except (WebSocketDisconnect, RuntimeError):
        pass
    finally:
        state.live.hub.unsubscribe(sub)
        state.live.slots.give()


_SEND = 'send {"subscribe": "mf01"} or {"unsubscribe": "mf01"} (a list also works)'


async def _read_commands(websocket: WebSocket, sub: Subscriber) -> None:
    while True:
        msg = await websocket.receive()
        if msg["type"] == "websocket.disconnect":
            raise WebSocketDisconnect(msg.get("code", 1000))
        text, data = msg.get("text"), msg.get("bytes")
        raw: str | bytes = text if text is not None else data or b""
        try:
            if len(raw) > 4096:
                raise ValueError("a command is a small JSON object, at most 4 KiB")
            try:
                cmd = orjson.loads(raw)
            except orjson.JSONDecodeError:  # its words are the parser's, not the client's
                raise ValueError(f"a command is JSON: {_SEND}") from None
            if not isinstance(cmd, dict) or not ({"subscribe", "unsubscribe"} & cmd.keys()):
                raise ValueError(_SEND)
            add = _scenarios(_as_list(cmd, "subscribe"))
            drop = _scenarios(_as_list(cmd, "unsubscribe"))
        except ValueError as exc:  # orjson.JSONDecodeError is a ValueError
            sub.put({"type": "error", "data": {"detail": str(exc)}})
            continue
        sub.scenarios = (sub.scenarios | add) - drop
        sub.put({"type": "subscribed", "data": {"scenarios": sorted(sub.scenarios)}})


def _as_list(cmd: dict[str, Any], key: str) -> list[str] | None:
    """The scenario ids of a command's ``key`` (None: not in it); null, a blank id or anything but
    ids is refused (it names no scenario: answered ``subscribed``, it would look obeyed)."""
    if key not in cmd:
        return None
    v = cmd[key]
    items = [v] if isinstance(v, str) else v
    if isinstance(items, list) and all(isinstance(x, str) and x.strip() for x in items):
        return items
    raise ValueError(f"subscribe / unsubscribe take a scenario id or a list of them, not {orjson.dumps(v).decode()[:64]}")
