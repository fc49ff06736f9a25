"""Request metrics: duration by method, route template and status class; streams counted apart."""

from __future__ import annotations

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families
from websockets.sync.client import connect

from .conftest import KEYS, Api, wait_for
from .test_stream import SseReader

pytestmark = pytest.mark.integration


def samples(api: Api) -> list[tuple[str, dict[str, str], float]]:
    text = httpx.get(f"{api.url}/metrics").text
    return [(s.name, s.labels, s.value) for f in text_string_to_metric_families(text) for s in f.samples]


def value(api: Api, name: str, **labels: str) -> float:
    return sum(v for n, lab, v in samples(api) if n == name and all(lab.get(k) == x for k, x in labels.items()))


def test_request_metrics_by_route_template_and_status_class(api: Api) -> None:
    with api.client() as c:
        assert c.get("/robots/r01").status_code in (200, 404)
        assert c.get("/scenarios/mf01").status_code == 200
        assert c.get("/scenarios/nowhere").status_code == 404
        assert c.request("BREW", "/scenarios").status_code in (400, 405, 501)
    with httpx.Client(base_url=api.url) as anon:
        assert anon.get("/alerts").status_code == 401
    got = samples(api)
    names = {n for n, _, _ in got}
    assert "minewatch_api_request_duration_seconds_bucket" in names
    assert not [n for n in names if n.endswith("_created")]
    assert "minewatch_api_request_seconds_bucket" not in names
    routes = {lab["route"] for n, lab, _ in got if n == "minewatch_api_requests_total"}
    assert {"/robots/{robot_id}", "/scenarios/{scenario_id}", "/alerts"} <= routes
    assert not [r for r in routes if "mf01" in r or "nowhere" in r or "r01" in r]
    assert {lab["status"] for n, lab, _ in got if n == "minewatch_api_requests_total"} <= {
        "1xx", "2xx", "3xx", "4xx", "5xx"}
    assert {lab["method"] for n, lab, _ in got if n == "minewatch_api_requests_total"} <= {"GET", "other"}
    assert value(api, "minewatch_api_request_duration_seconds_count", route="/scenarios/{scenario_id}",
                 status="2xx", method="GET") == 1
    assert value(api, "minewatch_api_request_duration_seconds_count", route="/scenarios/{scenario_id}",
                 status="4xx") == 1
    assert value(api, "minewatch_api_requests_total", route="/alerts", status="4xx") == 1


def test_streams_are_counted_apart_from_request_latency(api: Api) -> None:
    with httpx.Client(base_url=api.url, cookies={"minewatch_api_key": KEYS["operator"]}) as c:
        sse = SseReader(c, "/stream")
        try:
            sse.next()
            assert value(api, "minewatch_api_streams_open", route="/stream") == 1
            with connect(api.url.replace("http://", "ws://") + f"/ws?api_key={KEYS['integrator']}") as ws:
                ws.recv(timeout=5)
                assert value(api, "minewatch_api_streams_open", route="/ws") == 1
        finally:
            sse.close()
    wait_for(lambda: value(api, "minewatch_api_streams_open") == 0, what="streams closed")
    assert value(api, "minewatch_api_streams_total", route="/stream") == 1
    assert value(api, "minewatch_api_streams_total", route="/ws") == 1
    durations = [lab for n, lab, _ in samples(api) if n == "minewatch_api_request_duration_seconds_count"]
    assert not [lab for lab in durations if lab["route"] in ("/stream", "/ws")]
    assert value(api, "minewatch_api_requests_total", route="/stream", status="2xx") == 1
