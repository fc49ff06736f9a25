"""The shift calendar over HTTP."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timezone

import pytest

from minewatch.shifts import ShiftCalendar, parse_shifts

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


def test_the_current_shift_between_shifts_is_a_404_that_says_so(start_api: Callable[..., Api]) -> None:
    """A calendar need not cover the day (some groups have dropped the 00-08 shift, domain §6):
    between shifts there is no current one, which is not a server error."""
    now = datetime.now(timezone.utc)
    m = now.hour * 60 + now.minute
    hhmm = lambda mins: f"{mins % 1440 // 60:02d}:{mins % 60:02d}"  # noqa: E731
    cal = ShiftCalendar(parse_shifts(f"only@{hhmm(m + 120)}-{hhmm(m + 180)}/production"), tz_offset_h=0)
    api = start_api(calendar=cal)
    with api.client("integrator") as c:
        r = c.get("/shifts/current")
        assert r.status_code == 404, r.text
        assert "no shift runs" in r.json()["detail"] and "the next starts at" in r.json()["detail"]
        assert c.get("/shifts", params={"from": now.isoformat()[:19] + "Z"}).json()["data"][0]["name"] == "only"
