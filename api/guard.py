"""What every request passes before it reaches a route: a cap on the body, the methods a path
allows, and the security headers every response carries.

- ``BodyLimit``: a declared ``Content-Length`` over the limit is answered 413 at once, before
  anything is read or any key is checked; a body without one (chunked) is counted as it is
  read and refused with 413 the moment it passes the limit. Nothing more than the limit (plus
  one network read) is ever taken in. A body that stops coming (no part of it for
  ``read_timeout_s``) is answered 408 and the connection closed.
- ``MethodCheck``: a path that exists but not for this method is answered 405 with an ``Allow``
  header listing the methods the API serves there (the dashboard's static files are mounted at
  ``/`` and would otherwise answer for every path with their own ``GET, HEAD``).
- ``SecurityHeaders``: a Content-Security-Policy that lets the dashboard load only its own
  scripts and styles, no framing, no MIME sniffing, no referrer sent elsewhere.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Callable
from typing import Any

import orjson
from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

__all__ = ["BodyLimit", "BodyTooLarge", "BodyTooSlow", "MethodCheck", "SecurityHeaders", "CSP", "DOCS_CSP", "REPORT_CSP"]

CSP = ("default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; "
       "font-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'")
# /docs is FastAPI's Swagger UI page: its script and styles come from a CDN, with one inline script
DOCS_CSP = ("default-src 'self'; script-src 'self' 'unsafe-inline' https://cdn.jsdelivr.net; "
            "style-src 'self' https://cdn.jsdelivr.net; img-src 'self' data: https://fastapi.tiangolo.com; "
            "connect-src 'self'; object-src 'none'; base-uri 'none'; frame-ancestors 'none'")
# /report is a self-contained HTML file (``minewatch report``): its own inline script and styles,
# nothing loaded from anywhere
REPORT_CSP = ("default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; img-src data:; "
              "base-uri 'none'; form-action 'none'; frame-ancestors 'none'")
_CSP = {"/docs": DOCS_CSP, "/docs/oauth2-redirect": DOCS_CSP, "/report": REPORT_CSP}
_HEADERS = [(b"x-content-type-options", b"nosniff"), (b"x-frame-options", b"DENY"),
            (b"referrer-policy", b"no-referrer"), (b"cross-origin-opener-policy", b"same-origin")]


async def _json(send: Send, status: int, detail: str, headers: list[tuple[bytes, bytes]] | None = None) -> None:
    body = orjson.dumps({"detail": detail})
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
                            *(headers or [])]})
    await send({"type": "http.response.body", "body": body})


def too_large(limit: int) -> str:
    return f"the request body is larger than the API accepts ({limit:,} bytes)"


class BodyTooLarge(HTTPException):
    """A request body went past the limit while it was being read (an HTTPException, so that
    whatever is reading the body passes it on and the client gets the 413)."""

    def __init__(self, limit: int) -> None:
        super().__init__(413, too_large(limit), headers={"Connection": "close"})
        self.limit = limit

    def __repr__(self) -> str:
        return f"BodyTooLarge(limit={self.limit})"


class BodyTooSlow(HTTPException):
    """No part of the request body came for the read timeout."""

    def __init__(self, seconds: float) -> None:
        super().__init__(408, f"the request body stopped coming (nothing for {seconds:g} s)",
                         headers={"Connection": "close"})


class BodyLimit:
    def __init__(self, app: ASGIApp, max_bytes: int, read_timeout_s: float = 30.0) -> None:
        self.app = app
        self.max_bytes = max_bytes
        self.read_timeout_s = read_timeout_s

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
        body_done = False

        async def counted() -> Message:
            nonlocal seen, body_done
            if body_done:  # waiting for the client to go (a stream): no time limit
                return await receive()
            try:
                msg = await asyncio.wait_for(receive(), self.read_timeout_s)
            except TimeoutError:
                raise BodyTooSlow(self.read_timeout_s) from None
            if msg["type"] == "http.request":
                seen += len(msg.get("body", b""))
                if seen > limit:
                    raise BodyTooLarge(limit)
                body_done = not msg.get("more_body", False)
            else:
                body_done = True
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
        except BodyTooSlow as exc:
            if started:
                raise
            await _json(send, 408, str(exc.detail), [(b"connection", b"close")])


class MethodCheck:
    """405 for a documented path asked with a method it does not serve; the paths and their
    methods are read from the app's OpenAPI document, on the first request."""

    def __init__(self, app: ASGIApp, paths: Callable[[], dict[str, Any]]) -> None:
        self.app = app
        self.paths = paths
        self._table: list[tuple[re.Pattern[str], set[str]]] | None = None

    def table(self) -> list[tuple[re.Pattern[str], set[str]]]:
        if self._table is None:
            out = []
            for template, ops in self.paths().items():
                rx = re.compile(_template_regex(template))
                methods = {m.upper() for m in ops}
                if "GET" in methods:
                    methods.add("HEAD")
                out.append((rx, methods))
            self._table = out
        return self._table

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            path, method = scope["path"], scope["method"]
            allowed: set[str] = set()
            for rx, methods in self.table():
                if rx.fullmatch(path):
                    allowed |= methods
            if allowed and method not in allowed:
                allow = ", ".join(sorted(allowed))
                await _json(send, 405, f"{method} is not allowed here; allowed: {allow}", [(b"allow", allow.encode())])
                return
        await self.app(scope, receive, send)


def _template_regex(template: str) -> str:
    """``/replays/{replay_id}`` -> a regex matching its paths."""
    parts = re.split(r"(\{[^}/]+\})", template)
    return "".join("[^/]+" if p.startswith("{") else re.escape(p) for p in parts)


class SecurityHeaders:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        csp = _CSP.get(scope["path"], CSP).encode()

        async def with_headers(msg: Message) -> None:
            if msg["type"] == "http.response.start":
                present = {k.lower() for k, _ in msg.get("headers", [])}
                extra = [(k, v) for k, v in [(b"content-security-policy", csp), *_HEADERS] if k not in present]
                msg = {**msg, "headers": [*msg.get("headers", []), *extra]}
            await send(msg)

        await self.app(scope, receive, with_headers)
