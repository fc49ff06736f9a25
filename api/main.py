"""The FastAPI application: ``create_app(settings)``.

The lifespan opens the InfluxDB client, builds the alert view from ``alert_events`` and starts
the MQTT subscribers (each in a reconnect loop); on the way out it cancels replay jobs and closes
everything it opened.
"""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import httpx
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.staticfiles import StaticFiles
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from api.guard import BodyLimit, MethodCheck, SecurityHeaders
from api.live import LiveState
from api.metrics import METHODS, Metrics, status_class
from api.params import CHANNELS_PATTERN, MINE_PATTERN, SCENARIO_IDS, SHIFT_PATTERN, excerpt
from api.schemas import OVERRIDE_KEY
from api.replay import ReplayManager
from api.routes import api_router
from api.state import AppState
from api.times import TIME_PATTERN
from minewatch import __version__
from minewatch.influx import InfluxClient, InfluxError
from minewatch.redact import install as redact_logs
from minewatch.schema import ID_PATTERN
from minewatch.runtime import tune_gc
from minewatch.settings import Settings
from minewatch.shifts import ShiftCalendar, calendar_from_env

__all__ = ["create_app", "invalid_request", "STATIC_DIR"]

log = logging.getLogger("minewatch.api")
STATIC_DIR = Path(__file__).resolve().parent / "static"

DESCRIPTION = """\
The control-centre API of minewatch: the live state of the mine's 31 scenarios and its robots,
alerts (filter, history, acknowledge), telemetry history and export, the shift calendar, shift
replay through the detectors, and live streams (Server-Sent Events and WebSocket).

**Authentication.** Every endpoint but `/healthz`, `/metrics`, this document (`/openapi.json`) and
its pages (`/docs`, `/redoc`) needs an API key, sent as an
`X-API-Key` header, as `Authorization: Bearer KEY`, or - for browsers, whose `EventSource`
cannot send headers - as the `api_key` query parameter or the `minewatch_api_key` cookie.
Roles: *integrator* reads; *operator* also acknowledges alerts; *engineer* also runs replays with
changed limits. No key or an unknown one: 401; a role that may not: 403.

**Times** are nanoseconds since the Unix epoch (UTC) in responses; query parameters take ISO
8601 or nanoseconds.

**Limits.** A request body may be at most 4 MiB (`MINEWATCH_API_MAX_BODY_BYTES`; more is a 413,
refused before it is read). A 422 names what was wrong and quotes at most a short excerpt of
what was sent. Rules between parameters that a schema cannot state are in each parameter's
description (a window's end after its start, and its length; channels of the scenario asked for;
replay overrides that match a limit).
"""
PATTERN_WORDS = {
    TIME_PATTERN: "ISO 8601 (2026-11-27T08:00:00Z, 1971-2261) or integer nanoseconds since the epoch",
    ID_PATTERN: "an id (1-64 letters, digits, '_', '.', '-')",
    SHIFT_PATTERN: "a shift id, YYYY-MM-DD:NAME",
    MINE_PATTERN: "a mine id (1-32 lower-case letters, digits, '_', '-', starting with a letter or digit)",
    OVERRIDE_KEY: "an override key SCENARIO.CHANNEL.FIELD[.high|.low], FIELD one of warning, alarm, critical, "
                  "restore, rise, debounce, spike_k, stuck_s, change_h, change_warmup, drift_tol, "
                  "selfdrift_tol",
    CHANNELS_PATTERN: "comma-separated channel names (of the scenario's channels, battery, pos_m, latency_ms, "
                      "rssi_dbm)",
}
MAX_MSG = 300  # characters of a validation message; what was sent is quoted as an excerpt at most

TAGS = [
    {"name": "health", "description": "Liveness and metrics (no key needed)."},
    {"name": "scenarios", "description": "The 31 working scenarios with their live state."},
    {"name": "robots", "description": "Patrol robots: online, battery, link, where."},
    {"name": "telemetry", "description": "Latest readings, downsampled history and CSV export."},
    {"name": "alerts", "description": "Alerts: live view, filters, history, acknowledgement."},
    {"name": "shifts", "description": "The shift calendar."},
    {"name": "replays", "description": "Re-run the detectors over a recorded shift or window."},
    {"name": "stream", "description": "Live alert events and readings over SSE and WebSocket."},
]


async def invalid_request(request: Request, exc: RequestValidationError) -> JSONResponse:
    """A 422 naming what was wrong, quoting at most an excerpt of what was sent (every app of the API)."""
    # FastAPI's shape (loc, msg, type), without the input it would echo in full
    out = []
    for e in exc.errors():
        msg = str(e.get("msg", ""))
        pattern = (e.get("ctx") or {}).get("pattern")
        # the parameter's name, also for an item of a list parameter (loc ends with its index)
        field = next((str(p) for p in reversed(e.get("loc", ())) if not isinstance(p, int)), "")
        if e.get("type") == "string_pattern_mismatch" and pattern in PATTERN_WORDS:
            what = "a robot id" if field == "robot" else None
            msg = f"{field} should be {PATTERN_WORDS[pattern].replace('an id', what or 'an id')}"
        elif e.get("type") == "literal_error" and field == "scenario":
            msg = f"unknown scenario {excerpt(e.get('input'))}; known: {', '.join(SCENARIO_IDS)}"
        if len(msg) > MAX_MSG:
            msg = msg[:MAX_MSG] + "..."
        # a location may be a key the client sent (of overrides): quoted short too
        loc = [p if isinstance(p, int) else (str(p) if len(str(p)) <= 64 else str(p)[:64] + "...")
               for p in e.get("loc", ())][:8]
        out.append({"loc": loc,
                    "msg": msg, "type": str(e.get("type", "value_error"))})
    return JSONResponse({"detail": out[:20]}, status_code=422)


class _Timing:
    """Request metrics by method, route template and status class; streams counted apart (see api.metrics)."""

    def __init__(self, app: ASGIApp, metrics: Metrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        m = self.metrics
        t0 = time.perf_counter()
        code = 500
        stream_route: str | None = None

        def route_of() -> str:
            route = scope.get("route")
            if route is not None and getattr(route, "path", None):
                return str(route.path)
            return "static" if scope.get("endpoint") is not None else "unmatched"

        def open_stream() -> None:
            nonlocal stream_route
            stream_route = route_of()
            m.streams.labels(stream_route).inc()
            m.streams_open.labels(stream_route).inc()

        async def send_wrapper(message: Message) -> None:
            nonlocal code
            kind = message["type"]
            if kind == "http.response.start":
                code = message["status"]
                ctype = dict(message.get("headers") or ()).get(b"content-type", b"")
                if ctype.startswith(b"text/event-stream"):
                    open_stream()
            elif kind == "websocket.accept":
                open_stream()
            await send(message)

        try:
            await self.app(scope, receive, send_wrapper)
        finally:
            if stream_route is not None:
                m.streams_open.labels(stream_route).dec()
            if scope["type"] == "http":
                method = scope["method"] if scope["method"] in METHODS else "other"
                route = stream_route or route_of()
                status = status_class(code)
                m.requests.labels(method, route, status).inc()
                if stream_route is None:
                    m.latency.labels(method, route, status).observe(time.perf_counter() - t0)


def create_app(settings: Settings | None = None, *, calendar: ShiftCalendar | None = None,
               ack_wait_s: float = 3.0, static_dir: Path | None = None) -> FastAPI:
    """The single-mine API (also a mine's view at a group's centre: ``minewatch api --mine``)."""
    settings = settings or Settings()
    redact_logs(rate_limit=False)  # `minewatch api` limits repeated lines for the whole process
    api_keys = settings.api_key_roles()
    calendar = calendar or calendar_from_env()
    metrics = Metrics()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        tune_gc(freeze=False)  # replays build frames by the hundred thousand
        influx = InfluxClient(settings.influx_url, settings.influx_db, user=settings.influx_user,
                              password=settings.influx_password)
        live = LiveState(settings, influx, metrics)
        replays = ReplayManager(influx, metrics, calendar)
        app.state.minewatch = AppState(settings, api_keys, influx, live, replays, calendar, metrics, ack_wait_s)
        await live.start()
        replays.warm_up()
        try:
            yield
        finally:
            await replays.aclose()
            await live.stop()
            await influx.aclose()

    app = FastAPI(title="minewatch control-centre API", version=__version__, description=DESCRIPTION,
                  openapi_tags=TAGS, lifespan=lifespan)
    app.include_router(api_router)

    @app.exception_handler(InfluxError)
    async def _influx_error(request: Request, exc: InfluxError) -> JSONResponse:
        # A query InfluxDB refused is the request's fault only if we let bad input through; the
        # routes validate first, so this is the database being unwell. Its words go to the log,
        # not to the client.
        log.warning("InfluxDB refused a query for %s %s: %s", request.method, request.url.path, exc.message)
        return JSONResponse({"detail": "the database could not answer this query; try again later"}, status_code=503)

    @app.exception_handler(httpx.HTTPError)
    async def _influx_down(request: Request, exc: httpx.HTTPError) -> JSONResponse:
        log.warning("InfluxDB unreachable for %s %s: %r", request.method, request.url.path, exc)
        return JSONResponse({"detail": "the database is unreachable; try again later"}, status_code=503)

    app.add_exception_handler(RequestValidationError, invalid_request)  # type: ignore[arg-type]

    static = static_dir or STATIC_DIR
    if (static / "index.html").is_file():
        app.mount("/", StaticFiles(directory=static, html=True), name="static")
    app.add_middleware(MethodCheck, paths=lambda: app.openapi()["paths"])
    app.add_middleware(BodyLimit, max_bytes=settings.api_max_body_bytes, read_timeout_s=settings.api_read_timeout_s)
    app.add_middleware(_Timing, metrics=metrics)
    app.add_middleware(SecurityHeaders)
    return app
