"""The shift calendar over HTTP."""

from __future__ import annotations

import pytest

from .conftest import Api

pytestmark = pytest.mark.integration


def test_shifts_of_a_day_and_one_shift(shared_api: Api) -> None:
    api = shared_api
    with api.client("integrator") as c:
        got = c.get("/shifts", params={"from": "2026-11-26T16:00:00Z", "to": "2026-11-27T16:00:00Z"}).json()
        assert [s["id"] for s in got["data"]] == ["2026-11-27:night", "2026-11-27:day", "2026-11-27:swing"]
        assert got["tz_offset_h"] == 8.0
        night = c.get("/shifts/2026-11-27:night").json()
        assert night["start"] == "2026-11-26T16:00:00.000Z" and night["kind"] == "production"
        assert night["end_ns"] - night["start_ns"] == 8 * 3600 * 10**9
        assert c.get("/shifts/2026-11-27:lunch").status_code == 404
        assert c.get("/shifts/2026-02-30:night").status_code == 404
        assert c.get("/shifts/tomorrow").status_code == 422  # not YYYY-MM-DD:NAME
        assert c.get("/shifts", params={"from": ""}).status_code == 422
        backwards = c.get("/shifts", params={"from": "2026-01-01", "to": "2025-01-01"})
        assert backwards.status_code == 200 and backwards.json()["data"] == []  # an empty window
        year = c.get("/shifts", params={"from": "2026-01-01", "to": "2036-01-01"}).json()["data"]
        assert 3 * 365 <= len(year) <= 3 * 368  # at most a year's worth, from `from` on
        assert c.get("/shifts/current").json()["id"].count(":") == 1
