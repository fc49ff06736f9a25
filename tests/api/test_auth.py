"""API keys and roles: 401 without or with an unknown key, 403 for a role that may not."""

from __future__ import annotations

import httpx
import pytest

from .conftest import KEYS, Api

pytestmark = pytest.mark.integration

READ_PATHS = ["/me", "/scenarios", "/scenarios/mf01", "/robots", "/alerts"]


def test_health_and_metrics_need_no_key(shared_api: Api) -> None:
    h = httpx.get(f"{shared_api.url}/healthz").json()
    assert h["status"] == "ok" and h["mqtt"] and h["influx"] and h["alerts_loaded"]
    m = httpx.get(f"{shared_api.url}/metrics")
    assert m.status_code == 200 and "minewatch_api_active_alerts" in m.text


@pytest.mark.parametrize("path", READ_PATHS)
def test_reading_needs_a_known_key(shared_api: Api, path: str) -> None:
    none = httpx.get(f"{shared_api.url}{path}")
    assert none.status_code == 401 and "X-API-Key" in none.json()["detail"]
    assert none.headers["www-authenticate"] == "Bearer"
    assert httpx.get(f"{shared_api.url}{path}", headers={"X-API-Key": "nope"}).status_code == 401
    for role in ("integrator", "operator", "engineer"):
        assert httpx.get(f"{shared_api.url}{path}", headers={"X-API-Key": KEYS[role]}).status_code == 200, role


def test_key_in_bearer_header_query_or_cookie(shared_api: Api) -> None:
    key = KEYS["integrator"]
    assert httpx.get(f"{shared_api.url}/alerts", headers={"Authorization": f"Bearer {key}"}).status_code == 200
    assert httpx.get(f"{shared_api.url}/alerts", params={"api_key": key}).status_code == 200
    assert httpx.get(f"{shared_api.url}/alerts", cookies={"minewatch_api_key": key}).status_code == 200
    assert httpx.get(f"{shared_api.url}/alerts", headers={"Authorization": "Basic abc"}).status_code == 401


def test_integrator_may_not_acknowledge(shared_api: Api) -> None:
    with shared_api.client("integrator") as c:
        r = c.post("/alerts/mf01.x.1/ack", json={"operator": "someone"})
        assert r.status_code == 403 and "operator" in r.json()["detail"]
    with shared_api.client(None) as c:
        assert c.post("/alerts/mf01.x.1/ack", json={"operator": "someone"}).status_code == 401
    with shared_api.client("operator") as c:  # allowed, but there is no such alert
        assert c.post("/alerts/mf01.x.1/ack", json={"operator": "someone"}).status_code == 404


def test_me_tells_each_key_its_role_and_rights(shared_api: Api) -> None:
    """What /me says a role may do is what the API then allows it."""
    for role, ack, replays in (("integrator", False, False), ("operator", True, False), ("engineer", True, True)):
        with shared_api.client(role) as c:
            me = c.get("/me").json()
            assert (me["role"], me["acknowledge"], me["start_replays"]) == (role, ack, replays)
            assert len(me["key_id"]) == 8 and me["key_id"] not in KEYS[role]
            # the rights as the API enforces them: 404 (allowed, no such alert) or 403
            assert c.post("/alerts/mf01.x.1/ack", json={"operator": "someone"}).status_code == (404 if ack else 403)


def test_the_dashboard_page_is_served_without_a_key(shared_api: Api) -> None:
    page = httpx.get(f"{shared_api.url}/")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert httpx.get(f"{shared_api.url}/alerts").status_code == 401  # the API behind it still needs one
