"""The orders the browser code takes from the server: ``/js/order.js`` for the dashboard, the same
lists inlined in the shift report."""

from __future__ import annotations

import asyncio
import json
import re

import httpx

from api.main import create_app
from api.ui import GROUPS, SEVERITIES, order_module
from minewatch.catalogue import SCENARIOS, ScenarioKind
from minewatch.schema import SEVERITY_RANK, Severity
from minewatch.settings import Settings


def _exports(js: str) -> dict[str, list[str]]:
    return {m.group(1): json.loads(m.group(2)) for m in re.finditer(r"^export const (\w+) = (\[.*\]);$", js, re.M)}


def test_the_orders_come_from_the_catalogue_and_the_alert_schema() -> None:
    assert set(GROUPS) == {kind.group for kind in ScenarioKind} >= {sc.kind.group for sc in SCENARIOS.values()}
    assert len(GROUPS) == len(set(GROUPS))
    assert GROUPS[0] == ScenarioKind.mining_face.group and GROUPS[-1] == "other"
    assert [SEVERITY_RANK[Severity(s)] for s in SEVERITIES] == sorted(SEVERITY_RANK.values())
    assert _exports(order_module()) == {"GROUPS": GROUPS, "SEVERITIES": SEVERITIES}


def test_the_dashboard_gets_them_as_a_module_without_a_key() -> None:
    app = create_app(Settings(api_keys="k:operator"))

    async def get(path: str) -> httpx.Response:
        # no lifespan: the route needs neither the broker nor InfluxDB
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://127.0.0.1") as c:
            return await c.get(path)

    r = asyncio.run(get("/js/order.js"))
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("text/javascript")
    assert _exports(r.text) == {"GROUPS": GROUPS, "SEVERITIES": SEVERITIES}
    assert "/js/order.js" not in asyncio.run(get("/openapi.json")).json()["paths"]
