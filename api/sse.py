"""Server-Sent Events written by the API itself, for streams whose client may go at any moment.

FastAPI's generator streams (``response_class=EventSourceResponse`` on an ``async def`` that
yields) pass each event through two memory streams and two tasks; when the client goes while
those are full, the task forwarding events finds its reader closed before it is cancelled and
the request ends in an ``ExceptionGroup`` that the server logs as an error with a traceback. A
client going away is ordinary, so :func:`event_stream` writes the events straight from the
generator: on a disconnect the server cancels the response, the generator's ``finally`` runs,
and nothing is logged above DEBUG. Keep-alive comments come from the generator too (see
:func:`next_or_ping`), so nothing runs beside it.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator, AsyncIterator
from typing import Any

from fastapi.responses import StreamingResponse
from fastapi.sse import KEEPALIVE_COMMENT, ServerSentEvent, format_sse_event
from starlette.types import Receive, Scope, Send

from api.hub import Message, Subscriber

__all__ = ["EVENTS_DOC", "PING", "PING_S", "EventStream", "event_stream", "next_or_ping"]

PING_S = 15.0  # an idle stream sends a comment this often, so proxies keep the connection
PING = object()  # what next_or_ping returns when it is time for a keep-alive comment


async def next_or_ping(sub: Subscriber, ping_s: float = PING_S) -> Message | object:
    """The subscriber's next message, or :data:`PING` after ``ping_s`` seconds without one
    (the message stays queued: cancelling a queue's ``get`` loses nothing)."""
    try:
        return await asyncio.wait_for(sub.get(), ping_s)
    except TimeoutError:
        return PING


async def _encoded(events: AsyncIterator[ServerSentEvent | object]) -> AsyncGenerator[bytes, None]:
    try:
        async for ev in events:
            if ev is PING:
                yield KEEPALIVE_COMMENT
            else:
                assert isinstance(ev, ServerSentEvent)
                yield format_sse_event(data_str=ev.raw_data, event=ev.event, id=ev.id, retry=ev.retry,
                                       comment=ev.comment)
    finally:
        # closed by EventStream: the events' generator's clean-up (unsubscribing) runs now, in
        # the request's task, not whenever the generator is collected
        aclose = getattr(events, "aclose", None)
        if aclose is not None:
            await aclose()


class EventStream(StreamingResponse):
    """A ``text/event-stream`` response that closes its events' generator when it ends, however
    it ends (the events ran out, the client went, the server is stopping)."""

    media_type = "text/event-stream"
    body_iterator: AsyncGenerator[bytes, None]

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            await self.body_iterator.aclose()


def event_stream(events: AsyncIterator[ServerSentEvent | object]) -> EventStream:
    """``events`` (each a :class:`ServerSentEvent` with ``raw_data``, or :data:`PING`) as a
    ``text/event-stream`` response."""
    return EventStream(_encoded(events), headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})


# the OpenAPI description of a stream's success, as FastAPI gives it for its own event streams
EVENTS_DOC: dict[int | str, dict[str, Any]] = {200: {"description": "Successful Response", "content": {
    "text/event-stream": {"itemSchema": {"type": "object", "properties": {
        "data": {"type": "string"}, "event": {"type": "string"}, "id": {"type": "string"},
        "retry": {"type": "integer", "minimum": 0}}}}}}}
