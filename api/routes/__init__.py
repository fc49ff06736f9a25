"""The API's routers, one per resource; ``api_router`` includes them all."""

from __future__ import annotations

from fastapi import APIRouter

from api.routes import alerts, health, incidents, me, replays, report, robots, scenarios, shifts, stream, telemetry, ui

__all__ = ["api_router"]

api_router = APIRouter()
for _module in (health, me, scenarios, robots, telemetry, incidents, alerts, shifts, replays, stream, report, ui):
    api_router.include_router(_module.router)
