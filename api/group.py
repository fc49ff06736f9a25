"""The group view at the dispatch centre (``minewatch api --group``): every mine, its open incidents.

The centre's ingest workers publish each mine's alerts, incidents and watch states on the centre's
alert broker under ``<base>/mines/<mine>/...`` with the payloads of a single mine
(``docs/group-worker.md``). This app subscribes, QoS 1, to the retained
``<base>/mines/+/incidents/active/+``, ``.../alerts/active/+`` and ``.../watch/+`` and keeps, per
mine, what is open now and when the centre last heard from it (the watch states are refreshed
every few seconds, so they are a liveness signal). An empty retained message closes an incident
or clears an alert. Mines are also found from the InfluxDB databases ``minewatch_<mine>`` the
workers make, so a mine that has stored data but published nothing since the start is listed.

Each mine's own view (scenarios, alerts, history, replay) is the single-mine API pointed at that
mine's database and prefix: ``minewatch api --mine m001`` (``docs/scale.md``).
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
import pathlib
from typing import Annotated

import aiomqtt
from fastapi import APIRouter, FastAPI, HTTPException, Path, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse
from fastapi.staticfiles import StaticFiles
from pydantic import BaseModel, Field, ValidationError

from api.deps import Reader
from api.guard import SecurityHeaders
from api.main import STATIC_DIR, invalid_request
from api.params import MINE_PATTERN
from api.routes import ui as ui_routes
from api.schemas import errors
from minewatch import __version__
from minewatch.group import check_mine
from minewatch.influx import InfluxClient
from minewatch.mqtt import aiomqtt_kwargs
from minewatch.schema import SEVERITY_RANK, AlertEvent, AlertState, IncidentEvent, Severity, WatchStatus
from minewatch.settings import Settings

__all__ = ["GroupState", "create_group_app", "DB_PREFIX"]

log = logging.getLogger("minewatch.api.group")
DB_PREFIX = "minewatch_"
GROUP_PAGE = "group.html"
WATCH_STALE_REFRESHES = 3  # as one mine's board: a place is not watched after three missed refreshes
_RETRY_S = (0.2, 0.5, 1.0, 2.0, 5.0)
_S = 1_000_000_000
_GRACE_NS = 5 * _S  # a watch state's own time may run this far behind the API's clock (as api.views)

MinePath = Annotated[str, Path(pattern=MINE_PATTERN, description="the mine id (as in minewatch_<mine>)",
                               examples=["m001"])]


@dataclass
class MineLive:
    incidents: dict[str, IncidentEvent] = field(default_factory=dict)
    alerts: dict[str, AlertEvent] = field(default_factory=dict)
    watch: dict[str, tuple[WatchStatus, int]] = field(default_factory=dict)  # scenario -> (status, heard)
    last_heard_ns: int | None = None


class GroupState:
    """What the centre's broker says of every mine; one aiomqtt client in a reconnect loop."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.base = settings.topic_prefix
        self.mines: dict[str, MineLive] = {}
        self.stored: set[str] = set()  # mines with a database, as last listed
        self.connected = asyncio.Event()
        self.bad_messages = 0
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        self._task = asyncio.create_task(self._loop(), name="group-mqtt")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)

    async def _loop(self) -> None:
        attempt = 0
        while True:
            try:
                await self._session()
                attempt = 0
            except aiomqtt.MqttError as exc:
                self.connected.clear()
                log.warning("MQTT connection to the centre's broker lost: %s; reconnecting", exc)
            await asyncio.sleep(_RETRY_S[min(attempt, len(_RETRY_S) - 1)])
            attempt += 1

    async def _session(self) -> None:
        s = self.settings
        async with aiomqtt.Client(**aiomqtt_kwargs(s.mqtt, ca=s.mqtt_ca, cert=s.mqtt_cert, key=s.mqtt_key),
                                  identifier=f"minewatch-group-api-{uuid.uuid4().hex[:8]}") as client:
            # a fresh picture from the retained states: an incident that closed while this client was
            # away left no message behind (its retained state was emptied), only its absence
            self.mines = {}
            for what in ("incidents/active/+", "alerts/active/+", "watch/+"):
                await client.subscribe(f"{self.base}/mines/+/{what}", qos=1)
            self.connected.set()
            async for msg in client.messages:
                self.apply(str(msg.topic), bytes(msg.payload or b""), time.time_ns())

    def apply(self, topic: str, payload: bytes, now_ns: int) -> None:
        """One message of ``<base>/mines/<mine>/(incidents/active|alerts/active|watch)/<id>``."""
        head = f"{self.base}/mines/"
        parts = topic[len(head):].split("/") if topic.startswith(head) else []
        try:
            mine = check_mine(parts[0]) if parts else ""
        except ValueError:
            mine = ""
        kind = "/".join(parts[1:-1])
        if not mine or kind not in ("incidents/active", "alerts/active", "watch"):
            self.bad_messages += 1
            return
        key = parts[-1]
        m = self.mines.setdefault(mine, MineLive())
        try:
            if kind == "watch":
                if payload:
                    ws = WatchStatus.model_validate_json(payload)
                    # a retained state delivered on subscribing may be hours old: it counts from
                    # when it was made (the worker's clock, a few seconds' grace), not from now
                    heard = min(now_ns, ws.ts + _GRACE_NS)
                    m.watch[key] = (ws, heard)
                    m.last_heard_ns = max(m.last_heard_ns or heard, heard)
                else:
                    m.watch.pop(key, None)
            elif kind == "incidents/active":
                if payload:
                    m.incidents[key] = IncidentEvent.model_validate_json(payload)
                else:
                    m.incidents.pop(key, None)
            elif payload:
                m.alerts[key] = AlertEvent.model_validate_json(payload)
            else:
                m.alerts.pop(key, None)
        except ValidationError:
            self.bad_messages += 1
            log.warning("left out a message on %s that is not what its topic carries", topic)

    def not_watched(self, m: MineLive, now_ns: int) -> list[str]:
        out = []
        for scenario, (ws, arrived) in m.watch.items():
            quiet = (now_ns - arrived) / _S
            if not ws.watched or quiet > WATCH_STALE_REFRESHES * ws.every_s:
                out.append(scenario)
        return sorted(out)


# ---------------------------------------------------------------------------------------- schemas

class MineSummary(BaseModel):
    """One mine as the centre sees it."""

    model_config = {"json_schema_extra": {"examples": [{
        "mine": "m001", "database": "minewatch_m001", "prefix": "minewatch/v1/mines/m001", "open_incidents": 2,
        "incidents_by_severity": {"info": 0, "warning": 1, "alarm": 0, "critical": 1}, "unacknowledged_incidents": 1,
        "active_alerts": 3, "alerts_by_severity": {"info": 0, "warning": 1, "alarm": 1, "critical": 1},
        "unacknowledged_alerts": 2, "not_watched": ["hf02"], "watched": 30, "last_heard_ts": 1795852800000000000,
        "quiet_s": 1.2, "stored": True}]}}

    mine: str
    database: str = Field(description="its InfluxDB database at the centre")
    prefix: str = Field(description="its MQTT topic prefix on the centre's alert broker")
    open_incidents: int = Field(ge=0)
    incidents_by_severity: dict[Severity, int] = Field(description="open incidents by their current severity")
    unacknowledged_incidents: int = Field(ge=0, description="open incidents that need acknowledging")
    active_alerts: int = Field(ge=0)
    alerts_by_severity: dict[Severity, int]
    unacknowledged_alerts: int = Field(ge=0, description="active alerts whose latest state is raised or escalated "
                                                     "(not acknowledged since)")
    not_watched: list[str] = Field(description="places whose detectors say they are not watched, or whose "
                                               "watch state is older than three refreshes")
    watched: int = Field(ge=0, description="places watched now")
    last_heard_ts: int | None = Field(description="when the newest watch refresh of this mine was made (ns since "
                                                  "the epoch; its ts plus 5 s, at most when it arrived); null: none")
    quiet_s: float | None = Field(description="seconds since then")
    stored: bool = Field(description="a database minewatch_<mine> exists")
    board_url: str | None = Field(default=None, description="the mine's own board (its view at the centre), "
                                                            "when the centre was given --board-url")


class MinesPublic(BaseModel):
    data: list[MineSummary]
    count: int


class GroupIncident(IncidentEvent):
    """An open incident of one mine (its retained ``incidents/active`` state) and the mine."""

    mine: str


class GroupIncidentsPublic(BaseModel):
    data: list[GroupIncident]
    count: int = Field(description="open incidents that match, before the limit")


class GroupHealth(BaseModel):
    status: str
    mqtt: bool
    influx: bool
    mines: int
    version: str


def _by_severity(items: list[Severity]) -> dict[Severity, int]:
    out = {s: 0 for s in sorted(Severity, key=SEVERITY_RANK.__getitem__)}
    for s in items:
        out[s] += 1
    return out


def summary(state: GroupState, mine: str, now_ns: int, board_url: str | None = None) -> MineSummary:
    m = state.mines.get(mine) or MineLive()
    incs = list(m.incidents.values())
    alerts = list(m.alerts.values())
    nw = state.not_watched(m, now_ns)
    return MineSummary(
        mine=mine, database=f"{DB_PREFIX}{mine}", prefix=f"{state.base}/mines/{mine}", open_incidents=len(incs),
        incidents_by_severity=_by_severity([i.severity for i in incs]),
        unacknowledged_incidents=sum(i.needs_ack for i in incs), active_alerts=len(alerts),
        alerts_by_severity=_by_severity([a.severity for a in alerts]),
        unacknowledged_alerts=sum(a.state is not AlertState.acknowledged for a in alerts), not_watched=nw,
        watched=len(m.watch) - len(nw), last_heard_ts=m.last_heard_ns,
        quiet_s=None if m.last_heard_ns is None else round((now_ns - m.last_heard_ns) / _S, 3),
        stored=mine in state.stored, board_url=board_url.replace("{mine}", mine) if board_url else None)


def board_order(i: GroupIncident) -> tuple[bool, int, int, str]:
    """As a board orders its worklist: needing acknowledgement first, then the most severe, then the newest."""
    return (not i.needs_ack, -SEVERITY_RANK[i.severity], -i.ts, i.mine)


# ----------------------------------------------------------------------------------------- routes

router = APIRouter(prefix="/group", tags=["group"])


def _group(request: Request) -> GroupState:
    return request.app.state.group


async def _refresh_stored(request: Request) -> None:
    """The mines that have a database; kept as last listed when InfluxDB does not answer."""
    influx: InfluxClient = request.app.state.influx
    try:
        rows = await influx.query("SHOW DATABASES", db="")
    except Exception as exc:  # noqa: BLE001 - the live view stands without it
        log.warning("could not list the mines' databases: %r", exc)
        return
    found = set()
    for row in rows:
        name = str(row.get("name", ""))
        if name.startswith(DB_PREFIX):
            try:
                found.add(check_mine(name[len(DB_PREFIX):]))
            except ValueError:
                continue
    _group(request).stored = found


@router.get("/mines", response_model=MinesPublic, summary="Every mine, with its open incidents and alerts",
            responses=errors())
async def list_mines(request: Request, _: Reader) -> MinesPublic:
    """Every mine the centre knows (from its broker's retained state and from the databases
    ``minewatch_<mine>``), by id: open incidents and active alerts by severity, how many need
    acknowledging, the places not watched, and when the centre last heard from it."""
    await _refresh_stored(request)
    state = _group(request)
    now = time.time_ns()
    board = request.app.state.board_url
    out = [summary(state, m, now, board) for m in sorted(set(state.mines) | state.stored)]
    return MinesPublic(data=out, count=len(out))


@router.get("/mines/{mine}", response_model=MineSummary, summary="One mine",
            responses=errors(404))
async def one_mine(request: Request, _: Reader, mine: MinePath) -> MineSummary:
    await _refresh_stored(request)
    state = _group(request)
    if mine not in state.mines and mine not in state.stored:
        raise HTTPException(404, f"no mine {mine!r} at the centre (nothing on its broker, no database "
                                 f"{DB_PREFIX}{mine})")
    return summary(state, mine, time.time_ns(), request.app.state.board_url)


@router.get("/incidents", response_model=GroupIncidentsPublic, summary="Every mine's open incidents",
            responses=errors())
async def group_incidents(
    request: Request, _: Reader,
    mine: Annotated[list[Annotated[str, Field(pattern=MINE_PATTERN)]] | None,
                    Query(description="mine ids, any of")] = None,
    severity: Annotated[list[Severity] | None, Query(description="current severity, any of")] = None,
    needs_ack: Annotated[bool | None, Query(description="only those that need (or do not need) acknowledging")] = None,
    limit: Annotated[int, Query(ge=1, le=10000)] = 1000,
) -> GroupIncidentsPublic:
    """Open incidents of every mine as a board orders them: those needing acknowledgement first,
    then by severity, then the newest. Acknowledge one in its mine's own API."""
    state = _group(request)
    out: list[GroupIncident] = []
    for name, m in state.mines.items():
        if mine and name not in mine:
            continue
        for inc in m.incidents.values():
            if severity and inc.severity not in severity:
                continue
            if needs_ack is not None and inc.needs_ack != needs_ack:
                continue
            out.append(GroupIncident(**inc.model_dump(), mine=name))
    out.sort(key=board_order)
    return GroupIncidentsPublic(data=out[:limit], count=len(out))


health_router = APIRouter(tags=["health"])


@health_router.get("/healthz", response_model=GroupHealth, summary="Liveness and readiness")
async def healthz(request: Request) -> GroupHealth:
    state = _group(request)
    influx = await request.app.state.influx.ping()
    mqtt = state.connected.is_set()
    return GroupHealth(status="ok" if mqtt and influx else "degraded", mqtt=mqtt, influx=influx,
                       mines=len(state.mines), version=__version__)


@dataclass
class _Keys:
    """What ``api.deps`` reads of the app's state: the API keys."""

    api_keys: dict[str, str]


def create_group_app(settings: Settings | None = None, *, board_url: str | None = None,
                     static_dir: pathlib.Path | None = None) -> FastAPI:
    """The group view. ``board_url``: each mine's board, ``{mine}`` standing for the mine id
    (``https://centre.example/mines/{mine}/``); the group page links to it."""
    settings = settings or Settings()
    keys = settings.api_key_roles()
    if board_url is not None and "{mine}" not in board_url:
        raise ValueError(f"the board URL {board_url!r} needs {{mine}} where the mine id goes")

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        app.state.influx = InfluxClient(settings.influx_url, settings.influx_db, user=settings.influx_user,
                                        password=settings.influx_password)
        app.state.group = GroupState(settings)
        app.state.minewatch = _Keys(keys)
        await app.state.group.start()
        try:
            yield
        finally:
            await app.state.group.stop()
            await app.state.influx.aclose()

    app = FastAPI(title="minewatch group API", version=__version__, lifespan=lifespan,
                  description="The dispatch centre's view of every mine: open incidents and alerts, places not "
                              "watched, when each mine was last heard from. Each mine's own view is its API "
                              "(`minewatch api --mine MINE` at the centre). Keys and roles as in the single-mine API.")
    app.state.board_url = board_url
    app.include_router(health_router)
    app.include_router(router)
    app.include_router(ui_routes.router)  # /js/order.js, which the page's api.js imports (through store.js)
    app.add_exception_handler(RequestValidationError, invalid_request)  # type: ignore[arg-type]
    static = static_dir or STATIC_DIR
    if (static / GROUP_PAGE).is_file():
        # the group page at /, beside the dashboard's styles and scripts (no key needed for them)
        @app.get("/", include_in_schema=False)
        async def group_page() -> FileResponse:
            return FileResponse(static / GROUP_PAGE)

        app.mount("/", StaticFiles(directory=static), name="static")
    app.add_middleware(SecurityHeaders)
    return app
