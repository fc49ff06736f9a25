"""What every request passes before it reaches a route: a cap on the body, the methods a path
allows, and the security headers every response carries.

- ``BodyLimit``: a declared ``Content-Length`` over the limit is answered 413 at once, before
  anything is read or any key is checked; a body without one (chunked) is counted as it is
  read and refused with 413 the moment it passes the limit. Nothing more than the limit (plus
  one network read) is ever taken in.
- ``MethodCheck``: a path that exists but not for this method is answered 405 with an ``Allow``
  header listing the methods the API serves there (the dashboard's static files are mounted at
  ``/`` and would otherwise answer for every path with their own ``GET, HEAD``).
- ``SecurityHeaders``: a Content-Security-Policy that lets the dashboard load only its own
  scripts and styles, no framing, no MIME sniffing, no referrer sent elsewhere.
"""

from __future__ import annotations

import orjson
from starlette.routing import BaseRoute, Match, Route, WebSocketRoute
from starlette.types import ASGIApp, Message, Receive, Scope, Send

__all__ = ["BodyLimit", "BodyTooLarge", "MethodCheck", "SecurityHeaders", "CSP", "DOCS_CSP"]

CSP = ("default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; "
       "font-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'")
# /docs is FastAPI's Swagger UI page: its script and styles come from a CDN, with one inline script
DOCS_CSP = ("default-src 'self'; script-src 'self' 'unsafe-inline' https://cdn.jsdelivr.net; "
            "style-src 'self' https://cdn.jsdelivr.net; img-src 'self' data: https://fastapi.tiangolo.com; "
            "connect-src 'self'; object-src 'none'; base-uri 'none'; frame-ancestors 'none'")
_HEADERS = [(b"x-content-type-options", b"nosniff"), (b"x-frame-options", b"DENY"),
            (b"referrer-policy", b"no-referrer"), (b"cross-origin-opener-policy", b"same-origin")]


async def _json(send: Send, status: int, detail: str, headers: list[tuple[bytes, bytes]] | None = None) -> None:
    body = orjson.dumps({"detail": detail})
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
                            *(headers or [])]})
    await send({"type": "http.response.body", "body": body})


class BodyTooLarge(Exception):
    """A request body went past the limit while it was being read."""

    def __init__(self, limit: int) -> None:
        super().__init__(limit)
        self.limit = limit

    def __repr__(self) -> str:
        return f"BodyTooLarge(limit={self.limit})"


def too_large(limit: int) -> str:
    return f"the request body is larger than the API accepts ({limit:,} bytes)"


class BodyLimit:
    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = self.max_bytes
        length = None
        for name, value in scope["headers"]:
            if name == b"content-length":
                length = value
                break
        if length is not None:
            try:
                declared = int(length)
            except ValueError:
                await _json(send, 400, "Content-Length is not a number", [(b"connection", b"close")])
                return
            if declared > limit:
                await _json(send, 413, too_large(limit), [(b"connection", b"close")])
                return
        seen = 0
        started = False

        async def counted() -> Message:
            nonlocal seen
            msg = await receive()
            if msg["type"] == "http.request":
                seen += len(msg.get("body", b""))
                if seen > limit:
                    raise BodyTooLarge(limit)
            return msg

        async def watch(msg: Message) -> None:
            nonlocal started
            if msg["type"] == "http.response.start":
                started = True
            await send(msg)

        try:
            await self.app(scope, counted, watch)
        except BodyTooLarge:
            if started:
                raise
            await _json(send, 413, too_large(limit), [(b"connection", b"close")])


class MethodCheck:
    def __init__(self, app: ASGIApp, routes: list[BaseRoute]) -> None:
        self.app = app
        self.routes = [r for r in routes if isinstance(r, Route) and not isinstance(r, WebSocketRoute)]

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            allowed: set[str] = set()
            for route in self.routes:
                match, _ = route.matches(scope)
                if match is Match.FULL:
                    break
                if match is Match.PARTIAL and route.methods:
                    allowed |= route.methods
            else:
                if allowed:
                    allow = ", ".join(sorted(allowed)).encode()
                    await _json(send, 405, f"{scope['method']} is not allowed here; allowed: {allow.decode()}",
                                [(b"allow", allow)])
                    return
        await self.app(scope, receive, send)


class SecurityHeaders:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        csp = (DOCS_CSP if scope["path"] in ("/docs", "/docs/oauth2-redirect") else CSP).encode()

        async def with_headers(msg: Message) -> None:
            if msg["type"] == "http.response.start":
                present = {k.lower() for k, _ in msg.get("headers", [])}
                extra = [(k, v) for k, v in [(b"content-security-policy", csp), *_HEADERS] if k not in present]
                msg = {**msg, "headers": [*msg.get("headers", []), *extra]}
            await send(msg)

        await self.app(scope, receive, with_headers)
