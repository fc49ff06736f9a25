"""The group view (``minewatch api --group``) against the real mosquitto and influxd: two mines'
retained incidents, alerts and watch states published under ``<base>/mines/<mine>/...`` as the
centre's workers publish them."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
import schemathesis
import schemathesis.python.asgi
from click.testing import CliRunner

from api.cli import api as api_command
from api.group import create_group_app
from api.schemas import example_of
from minewatch.influx import SyncInflux
from minewatch.schema import IncidentEvent, WatchStatus
from minewatch.services import Influxd, Mosquitto, free_port, stop_process, wait_http
from minewatch.settings import Settings
from tests.api.conftest import KEYS, T0, Publisher, alert_line, event, serve, wait_for
from tests.api.test_openapi import fuzz
from tests.ingest.helpers import Collector

S = 1_000_000_000


def incident(iid: str, severity: str, needs_ack: bool, ts: int, scenario: str = "mf01") -> IncidentEvent:
    base = example_of(IncidentEvent)
    return IncidentEvent.model_validate({**base, "incident_id": iid, "severity": severity, "max_severity": severity,
                                         "needs_ack": needs_ack, "ts": ts, "scenario_id": scenario, "place": scenario,
                                         "state": "raised" if needs_ack else "acknowledged"})


def watch(scenario: str, watched: bool, age_s: float = 0.0) -> WatchStatus:
    base = example_of(WatchStatus)
    return WatchStatus.model_validate({**base, "scenario_id": scenario, "watched": watched,
                                       "state": "watched" if watched else "no_data",
                                       "ts": time.time_ns() - int(age_s * S)})


@contextmanager
def running_group(mosquitto: Mosquitto, influxd: Influxd, **app_kw: Any) -> Iterator[tuple[str, Publisher, str, SyncInflux]]:
    """The group API on a unique topic base (its URL, a publisher on that base); a database of a
    third mine that published nothing (its id, the database)."""
    unique = uuid.uuid4().hex[:10]
    base = f"t{unique}/v1"
    stored_mine = f"s{unique}"
    db = SyncInflux(influxd.url, f"minewatch_{stored_mine}")
    db.ensure_db()
    pub = Publisher(mosquitto, base)
    s = Settings(mqtt_url=mosquitto.url, influx_url=influxd.url, influx_db=db.db, topic_prefix=base,
                 api_keys=",".join(f"{k}:{role}" for role, k in KEYS.items()))
    server, thread, url = serve(s, factory=create_group_app, **app_kw)
    try:
        wait_for(lambda: httpx.get(f"{url}/healthz").json()["mqtt"], what="the group API's MQTT connection")
        yield url, pub, stored_mine, db
    finally:
        server.should_exit = True
        thread.join(timeout=15)
        pub.close()
        db.query(f'DROP DATABASE "{db.db}"', db="", post=True)
        db.close()


@pytest.fixture
def group(mosquitto: Mosquitto, influxd: Influxd) -> Iterator[tuple[str, Publisher, str, SyncInflux]]:
    with running_group(mosquitto, influxd) as g:
        yield g


def mine_topic(base: str, mine: str, rest: str) -> str:
    return f"{base}/mines/{mine}/{rest}"


def test_group_view_counts_orders_and_forgets_closed(group: tuple[str, Publisher, str, SyncInflux]) -> None:
    url, pub, stored_mine, _ = group
    base = pub.topics.prefix
    inc_a1 = incident("mf01.methane.1", "critical", True, T0 + 5 * S)
    inc_a2 = incident("hf01.heat.2", "critical", False, T0 + 9 * S, scenario="hf01")
    inc_b1 = incident("mf02.fire.3", "alarm", True, T0 + 7 * S, scenario="mf02")
    inc_b2 = incident("mf03.water.4", "critical", True, T0 + 1 * S, scenario="mf03")
    for mine, inc in (("m001", inc_a1), ("m001", inc_a2), ("m002", inc_b1), ("m002", inc_b2)):
        pub.publish(mine_topic(base, mine, f"incidents/active/{inc.incident_id}"), inc.model_dump_json(), retain=True)
    a1 = event("mf01.ch4_t1.gas_limit.1", severity="critical")
    a2 = event("mf01.ch4_t2.gas_limit.2", severity="warning", operator="op", state="acknowledged")
    b1 = event("mf02.co.gas_limit.3", severity="alarm", scenario="mf02", channel="co")
    for mine, ev in (("m001", a1), ("m001", a2), ("m002", b1)):
        pub.publish(mine_topic(base, mine, f"alerts/active/{ev.alert_id}"), ev.model_dump_json(), retain=True)
    for mine, sc, watched in (("m001", "mf01", True), ("m001", "hf01", False), ("m002", "mf02", True)):
        pub.publish(mine_topic(base, mine, f"watch/{sc}"), watch(sc, watched).model_dump_json(), retain=True)
    # a mine whose last word, retained, is an hour old: not heard from since, whatever it said
    pub.publish(mine_topic(base, "m003", "watch/mf01"), watch("mf01", True, age_s=3600).model_dump_json(), retain=True)

    c = httpx.Client(base_url=url, headers={"X-API-Key": KEYS["integrator"]}, timeout=10)

    def mines() -> dict[str, dict]:
        return {m["mine"]: m for m in c.get("/group/mines").raise_for_status().json()["data"]}

    got = wait_for(lambda: (m := mines()) and m.get("m001", {}).get("open_incidents") == 2
                   and m.get("m002", {}).get("active_alerts") == 1 and m.get("m001", {}).get("active_alerts") == 2
                   and m.get("m002", {}).get("open_incidents") == 2 and m, what="both mines' state")
    m1, m2 = got["m001"], got["m002"]
    assert m1["incidents_by_severity"] == {"info": 0, "warning": 0, "alarm": 0, "critical": 2}
    assert m1["unacknowledged_incidents"] == 1 and m2["unacknowledged_incidents"] == 2
    assert m1["alerts_by_severity"]["critical"] == 1 and m1["alerts_by_severity"]["warning"] == 1
    assert m1["unacknowledged_alerts"] == 1 and m2["unacknowledged_alerts"] == 1
    assert m1["not_watched"] == ["hf01"] and m1["watched"] == 1
    assert m2["not_watched"] == [] and m2["watched"] == 1
    assert m1["last_heard_ts"] is not None and m1["quiet_s"] < 60
    m3 = wait_for(lambda: mines().get("m003"), what="the silent mine")
    assert m3["not_watched"] == ["mf01"] and m3["watched"] == 0 and 3500 < m3["quiet_s"] < 3700
    assert m1["prefix"] == f"{base}/mines/m001" and m1["database"] == "minewatch_m001"
    # a mine known only by its database
    assert got[stored_mine]["stored"] is True and got[stored_mine]["open_incidents"] == 0
    assert got[stored_mine]["last_heard_ts"] is None

    # every mine's incidents: needing acknowledgement first (an acknowledged critical after an
    # alarm that needs it), then severity, then the newest
    incs = c.get("/group/incidents").raise_for_status().json()["data"]
    assert [(i["mine"], i["incident_id"]) for i in incs] == [
        ("m001", "mf01.methane.1"), ("m002", "mf03.water.4"), ("m002", "mf02.fire.3"), ("m001", "hf01.heat.2")]
    only = c.get("/group/incidents", params={"mine": "m002"}).raise_for_status().json()["data"]
    assert {i["incident_id"] for i in only} == {"mf02.fire.3", "mf03.water.4"}
    one = c.get("/group/mines/m002").raise_for_status().json()
    assert one["open_incidents"] == 2

    # an incident closing (empty retained message) leaves the group view
    pub.publish(mine_topic(base, "m002", "incidents/active/mf03.water.4"), b"", retain=True)
    wait_for(lambda: mines()["m002"]["open_incidents"] == 1, what="the closed incident to leave")
    ids = [i["incident_id"] for i in c.get("/group/incidents").json()["data"]]
    assert "mf03.water.4" not in ids and len(ids) == 3
    limited = c.get("/group/incidents", params={"limit": 1}).json()
    assert limited["count"] == 3 and [i["incident_id"] for i in limited["data"]] == ["mf01.methane.1"]
    for rest in ("incidents/active/mf01.methane.1", "incidents/active/hf01.heat.2", "incidents/active/mf02.fire.3"):
        pub.publish(mine_topic(base, "m001" if "f01" in rest else "m002", rest), b"", retain=True)
    for ev, mine in ((a1, "m001"), (a2, "m001"), (b1, "m002")):
        pub.publish(mine_topic(base, mine, f"alerts/active/{ev.alert_id}"), b"", retain=True)
    wait_for(lambda: c.get("/group/incidents").json()["data"] == [], what="every incident closed")
    assert mines()["m001"]["active_alerts"] == 0
    c.close()


def test_group_bad_input_and_auth(group: tuple[str, Publisher, str, SyncInflux]) -> None:
    url, _, _, _ = group
    c = httpx.Client(base_url=url, headers={"X-API-Key": KEYS["integrator"]}, timeout=10)
    r = c.get("/group/mines/Bad.Mine")
    assert r.status_code == 422 and r.json()["detail"][0]["msg"].startswith("mine should be a mine id (1-32 lower-case")
    assert "Bad.Mine" not in r.text  # the input is not echoed
    r = c.get("/group/incidents", params={"mine": "NOT A MINE"})
    assert r.status_code == 422 and r.json()["detail"][0]["loc"] == ["query", "mine", 0]
    assert r.json()["detail"][0]["msg"].startswith("mine should be a mine id")
    r = c.get("/group/mines/m999")
    assert r.status_code == 404 and "m999" in r.json()["detail"]
    for path in ("/group/mines", "/group/incidents", "/group/mines/m001"):
        assert httpx.get(url + path).status_code == 401
        assert httpx.get(url + path, headers={"X-API-Key": "wrong"}).status_code == 401
    assert httpx.get(url + "/healthz").status_code == 200
    c.close()


def test_mine_flag_refuses_a_bad_mine_id() -> None:
    r = CliRunner().invoke(api_command, ["--mine", "Bad.Mine", "--api-keys", "k:operator"])
    assert r.exit_code == 2 and "mine id" in r.output
    r = CliRunner().invoke(api_command, ["--mine", "m001", "--group"])
    assert r.exit_code == 2 and "one or the other" in r.output


def test_group_openapi_holds(mosquitto: Mosquitto, influxd: Influxd) -> None:
    """Schemathesis over the group app's document, in process: no 5xx, responses as documented."""
    unique = uuid.uuid4().hex[:10]
    app = create_group_app(Settings(mqtt_url=mosquitto.url, influx_url=influxd.url, influx_db="_internal",
                                    topic_prefix=f"t{unique}/v1",
                                    api_keys=",".join(f"{k}:{role}" for role, k in KEYS.items())))
    schema = schemathesis.openapi.from_asgi("/openapi.json", app)
    try:
        doc = schema.raw_schema
        assert {"/group/mines", "/group/mines/{mine}", "/group/incidents", "/healthz"} == set(doc["paths"])
        for path in ("/group/mines", "/group/mines/{mine}", "/group/incidents"):
            assert {"401", "403"} <= set(doc["paths"][path]["get"]["responses"])
            fuzz(schema[path]["GET"], KEYS["integrator"])
    finally:
        schemathesis.python.asgi.shutdown_lifespans()


def test_the_commands_serve_the_group_and_one_mine(mosquitto: Mosquitto, influxd: Influxd, tmp_path: Path) -> None:
    """``minewatch api --group`` and ``minewatch api --mine M`` as processes: the mine's API reads the
    database minewatch_M and the topics <base>/mines/M, the group API lists the mine's incident."""
    unique = uuid.uuid4().hex[:10]
    base, mine = f"t{unique}/v1", f"x{unique}"
    db = SyncInflux(influxd.url, f"minewatch_{mine}")
    db.ensure_db()
    # an hour ago, not at the fixed T0: the mine's /alerts looks back from now, and T0 ages out
    when = time.time_ns() - 3600 * S
    stored = event("mf01.ch4_t1.gas_limit.9", severity="alarm", ts=when, first_ts=when)
    db.write([alert_line(stored)])
    pub = Publisher(mosquitto, base)
    inc = incident("mf01.methane.9", "critical", True, T0)
    pub.publish(f"{base}/mines/{mine}/incidents/active/{inc.incident_id}", inc.model_dump_json(), retain=True)
    env = {**os.environ, "MINEWATCH_API_KEYS": ",".join(f"{k}:{role}" for role, k in KEYS.items()),
           "MINEWATCH_TOPIC_PREFIX": base}
    procs: list[subprocess.Popen[bytes]] = []
    urls = []
    try:
        for flags in (["--mine", mine], ["--group", "--influx-db", db.db]):
            port = free_port()
            with open(tmp_path / f"api-{len(procs)}.log", "wb") as out:
                procs.append(subprocess.Popen(
                    [sys.executable, "-m", "minewatch", "api", "--mqtt-url", mosquitto.url, "--influx-url", influxd.url,
                     "--port", str(port), "--log-level", "warning", *flags],
                    env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True))
            urls.append(f"http://127.0.0.1:{port}")
        for url in urls:
            wait_http(f"{url}/healthz", timeout=30, interval=0.2)
        mine_api, group_api = (httpx.Client(base_url=u, headers={"X-API-Key": KEYS["integrator"]}, timeout=10)
                               for u in urls)
        got = wait_for(lambda: mine_api.get("/incidents").json()["data"], what="the mine's incident")
        assert [i["incident_id"] for i in got] == ["mf01.methane.9"]
        # the centre's acknowledgement goes out under the mine's prefix, where its worker takes it
        # (no worker runs here: the request is accepted and published, not yet applied)
        acks = Collector(mosquitto.url, f"{base}/mines/{mine}/incidents/ack/#")
        r = httpx.post(f"{urls[0]}/incidents/mf01.methane.9/ack", json={"operator": "centre-desk"},
                       headers={"X-API-Key": KEYS["operator"]}, timeout=10)
        assert r.status_code == 202, r.text
        wait_for(lambda: [m for m in acks.take() if m[0].endswith("/incidents/ack/mf01.methane.9")],
                 what="the acknowledgement request under the mine's prefix")
        acks.close()
        alerts = wait_for(lambda: mine_api.get("/alerts").json()["data"], what="the stored alert")
        assert [a["alert_id"] for a in alerts] == [stored.alert_id]
        incs = wait_for(lambda: group_api.get("/group/incidents").json()["data"], what="the group's incident")
        assert [(i["mine"], i["incident_id"]) for i in incs] == [(mine, "mf01.methane.9")]
        listed = {m["mine"]: m for m in group_api.get("/group/mines").json()["data"]}
        assert listed[mine]["stored"] is True and listed[mine]["open_incidents"] == 1
        mine_api.close()
        group_api.close()
    finally:
        for proc in procs:
            stop_process(proc, signal.SIGINT, 20)
        pub.publish(f"{base}/mines/{mine}/incidents/active/{inc.incident_id}", b"", retain=True)
        pub.close()
        db.query(f'DROP DATABASE "{db.db}"', db="", post=True)
        db.close()


def test_an_incident_closed_while_the_view_was_away_is_gone(fresh_broker: Mosquitto, influxd: Influxd) -> None:
    """The broker restarts; while the group view is still waiting to reconnect an incident closes
    (its retained state emptied: nothing is left to deliver). Back, the view has not kept it."""
    with running_group(fresh_broker, influxd) as (url, pub, _, _):
        base = pub.topics.prefix
        for iid in ("mf01.methane.1", "mf02.fire.2"):
            pub.publish(mine_topic(base, "m001", f"incidents/active/{iid}"),
                        incident(iid, "alarm", True, T0).model_dump_json(), retain=True)
        c = httpx.Client(base_url=url, headers={"X-API-Key": KEYS["integrator"]}, timeout=10)

        def open_ids() -> list[str]:
            return sorted(i["incident_id"] for i in c.get("/group/incidents").json()["data"])

        wait_for(lambda: open_ids() == ["mf01.methane.1", "mf02.fire.2"], what="both incidents")
        pub.client.loop_stop()
        pub.client.disconnect()
        fresh_broker.stop()
        time.sleep(4)  # the view's reconnect attempts back off (0.2, 0.5, 1, 2, 5 s)
        fresh_broker.start()
        again = Publisher(fresh_broker, base)
        try:
            again.publish(mine_topic(base, "m001", "incidents/active/mf02.fire.2"), b"", retain=True)
            assert httpx.get(f"{url}/healthz").json()["mqtt"] is False, "the view reconnected before the close"
            wait_for(lambda: httpx.get(f"{url}/healthz").json()["mqtt"], timeout=20, what="the view back")
            wait_for(lambda: open_ids() == ["mf01.methane.1"], what="the closed incident gone")
        finally:
            again.close()
            c.close()
