"""``/healthz`` and ``/metrics``: no key needed (load balancers and Prometheus call them)."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import PlainTextResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from api.deps import StateDep
from api.schemas import Health
from minewatch import __version__

router = APIRouter(tags=["health"])


@router.get("/healthz", response_model=Health, summary="Liveness and readiness")
async def healthz(state: StateDep) -> Health:
    """Always 200 while the process serves; ``status`` says whether the broker and InfluxDB are
    reachable (``degraded`` if not: the API still serves what it has)."""
    influx = await state.influx.ping()
    mqtt = state.live.mqtt_connected.is_set()
    return Health(status="ok" if influx and mqtt else "degraded", mqtt=mqtt, influx=influx,
                  alerts_loaded=state.live.book.loaded, active_alerts=len(state.live.book.active()),
                  version=__version__)


@router.get("/metrics", response_class=PlainTextResponse, summary="Prometheus metrics",
            responses={200: {"content": {"text/plain": {"schema": {"type": "string"}}},
                             "description": "Prometheus text exposition format"}})
async def metrics(state: StateDep) -> Response:
    state.metrics.stream_clients.set(len(state.live.hub))
    return Response(generate_latest(state.metrics.registry), media_type=CONTENT_TYPE_LATEST)
