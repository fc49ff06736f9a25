"""The alert view: built from alert_events at start-up, kept current from MQTT; acknowledging."""

from __future__ import annotations

import time
from collections.abc import Callable

import orjson
import pytest

from minewatch.catalogue import QUANTITIES
from minewatch.influx import SyncInflux
from minewatch.schema import AlertState

from .conftest import S, Api, Publisher, alert_line, event, wait_for

pytestmark = pytest.mark.integration


def _ids(resp: dict) -> list[str]:
    return [a["alert_id"] for a in resp["data"]]


def test_view_is_built_from_alert_events_at_start_and_kept_current_from_mqtt(
        influx_db: SyncInflux, start_api: Callable[..., Api], publisher: Publisher) -> None:
    now = time.time_ns()
    a_id, b_id, c_id = f"mf01.ch4_t1.gas_limit.{now}", f"ra01.ch4.gas_limit.{now}", f"bc03.co.gas_limit.{now}"
    influx_db.write([
        alert_line(event(a_id, "raised", "alarm", ts=now - 60 * S, first_ts=now - 60 * S)),
        alert_line(event(a_id, "escalated", "critical", ts=now - 50 * S, first_ts=now - 60 * S, value=1.6, limit=1.5)),
        alert_line(event(b_id, "raised", "alarm", ts=now - 40 * S, first_ts=now - 40 * S, scenario="ra01", channel="ch4")),
        alert_line(event(b_id, "cleared", "alarm", ts=now - 30 * S, first_ts=now - 40 * S, scenario="ra01", channel="ch4")),
    ])
    api = start_api()
    with api.client("integrator") as c:
        got = c.get("/alerts", params={"active": "true"}).json()
        assert _ids(got) == [a_id] and got["count"] == 1
        a = got["data"][0]
        assert a["severity"] == "critical" and a["max_severity"] == "critical" and a["events"] == 2
        assert a["state"] == "escalated" and a["first_ts"] == now - 60 * S and a["evidence"] == {"rule": "test"}
        assert set(_ids(c.get("/alerts").json())) == {a_id, b_id}
        assert _ids(c.get("/alerts", params={"state": "cleared"}).json()) == [b_id]
        assert _ids(c.get("/alerts", params=[("scenario", "ra01"), ("scenario", "hf01")]).json()) == [b_id]

        # live: a new alert raised over MQTT appears at once, with its place's worst state
        publisher.alert(event(c_id, "raised", "warning", ts=now, first_ts=now, scenario="bc03", channel="co",
                              value=19.0, limit=18.0))
        wait_for(lambda: c_id in _ids(c.get("/alerts", params={"active": "true"}).json()), what="live alert")
        bc03 = c.get("/scenarios/bc03").json()
        assert bc03["status"] == "warning" and bc03["worst_alert"]["alert_id"] == c_id and bc03["active_alerts"] == 1

        # and goes when it clears
        publisher.alert(event(c_id, "cleared", "warning", ts=now + S, first_ts=now, scenario="bc03", channel="co"))
        wait_for(lambda: c_id not in _ids(c.get("/alerts", params={"active": "true"}).json()), what="clear")
        assert c.get("/scenarios/bc03").json()["status"] == "ok"

        detail = c.get(f"/alerts/{c_id}").json()
        assert [e["state"] for e in detail["history"]] == ["raised", "cleared"]
        assert detail["active"] is False and detail["cleared_ts"] == now + S


def test_scenarios_are_all_31_with_the_worst_active_alert(
        influx_db: SyncInflux, start_api: Callable[..., Api]) -> None:
    now = time.time_ns()
    influx_db.write([
        alert_line(event(f"mf01.co.gas_limit.{now}", "raised", "warning", ts=now - 9 * S, first_ts=now - 9 * S,
                         channel="co")),
        alert_line(event(f"mf01.ch4_t1.gas_limit.{now}", "raised", "critical", ts=now - 5 * S, first_ts=now - 5 * S)),
    ])
    api = start_api()
    with api.client("operator") as c:
        got = c.get("/scenarios").json()
        assert got["count"] == 31 and len({s["id"] for s in got["data"]}) == 31
        mf01 = next(s for s in got["data"] if s["id"] == "mf01")
        assert mf01["status"] == "critical" and mf01["active_alerts"] == 2
        assert mf01["worst_alert"]["alert_id"] == f"mf01.ch4_t1.gas_limit.{now}"
        assert {ch["name"] for ch in mf01["channels"]} >= {"ch4_t0", "ch4_t1", "ch4_t2", "co", "o2", "ws"}
        t1 = next(ch for ch in mf01["channels"] if ch["name"] == "ch4_t1")
        assert t1["limits"][0]["levels"] == {"alarm": 1.0, "critical": 1.5}
        # each channel's display is its quantity's in the catalogue (the board's decimals)
        for ch in mf01["channels"]:
            q = QUANTITIES[ch["quantity"]]
            assert ch["display"] == {"decimals": q.decimals, "short": q.short, "unit": q.unit, "signed": q.signed}
        ws = next(ch for ch in mf01["channels"] if ch["name"] == "ws")
        assert t1["display"]["decimals"] == 2 and ws["display"]["signed"] is True
        assert all(s["status"] == "ok" for s in got["data"] if s["id"] != "mf01")
        assert c.get("/scenarios/zz99").status_code == 404


def test_acknowledge_without_an_answer_is_accepted_202_and_cleared_alert_is_404(
        start_api: Callable[..., Api], publisher: Publisher) -> None:
    now = time.time_ns()
    ev = event(f"hf01.ch4_t1.gas_limit.{now}", "raised", "alarm", ts=now, first_ts=now, scenario="hf01")
    api = start_api(ack_wait_s=0.3)
    requests: list[bytes] = []
    publisher.subscribe(publisher.topics.ack(ev.alert_id), lambda m: requests.append(bytes(m.payload)))
    publisher.alert(ev)
    with api.client("engineer") as c:
        wait_for(lambda: c.get(f"/alerts/{ev.alert_id}").status_code == 200, what="alert")
        r = c.post(f"/alerts/{ev.alert_id}/ack", json={"operator": "Li Na", "note": "checking"})
        assert r.status_code == 202 and r.json()["status"] == "pending"
        wait_for(lambda: requests, what="the ack request on the broker")
        req = orjson.loads(requests[0])
        assert req == {"alert_id": ev.alert_id, "scenario_id": "hf01", "operator": "Li Na", "note": "checking",
                       "ts": req["ts"]} and req["ts"] >= now
        publisher.alert(ev.model_copy(update={"state": AlertState.cleared, "ts": now + S}))
        wait_for(lambda: not c.get(f"/alerts/{ev.alert_id}").json()["active"], what="clear")
        gone = c.post(f"/alerts/{ev.alert_id}/ack", json={"operator": "Li Na"})
        assert gone.status_code == 404 and "cleared" in gone.json()["detail"]


