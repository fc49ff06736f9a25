"""deploy/grafana: provisioning files the compose stack mounts, dashboards checked against a JSON
Schema of Grafana's dashboard model, and every InfluxQL query run against a real influxd."""

from __future__ import annotations

import json
import re
import time
from pathlib import Path
from typing import Any

import httpx
import jsonschema
import pytest
import yaml

from minewatch.influx import SyncInflux
from minewatch.services import Influxd

ROOT = Path(__file__).resolve().parents[2]
GRAFANA = ROOT / "deploy" / "grafana"
DASHBOARDS = sorted((GRAFANA / "dashboards").glob("*.json"))
DATASOURCE_UIDS = {"minewatch-influxdb": "influxdb", "minewatch-prometheus": "prometheus"}

_DS = {"type": "object", "required": ["type", "uid"],
       "properties": {"type": {"enum": ["influxdb", "prometheus"]}, "uid": {"enum": list(DATASOURCE_UIDS)}}}
# Grafana's dashboard model (grafana.com/docs/grafana/latest/dashboards/build-dashboards/view-dashboard-json-model/)
SCHEMA = {
    "type": "object",
    "required": ["uid", "title", "schemaVersion", "version", "time", "templating", "panels", "tags", "timezone"],
    "properties": {
        "uid": {"type": "string", "pattern": "^[a-zA-Z0-9_-]{1,40}$"},
        "title": {"type": "string", "minLength": 1},
        "schemaVersion": {"type": "integer", "minimum": 36},
        "version": {"type": "integer"},
        "tags": {"type": "array", "items": {"type": "string"}},
        "timezone": {"enum": ["browser", "utc", ""]},
        "refresh": {"type": "string"},
        "editable": {"type": "boolean"},
        "time": {"type": "object", "required": ["from", "to"],
                 "properties": {"from": {"type": "string"}, "to": {"type": "string"}}},
        "templating": {"type": "object", "required": ["list"], "properties": {"list": {"type": "array", "items": {
            "type": "object", "required": ["name", "type", "query", "datasource"],
            "properties": {"name": {"type": "string", "pattern": "^[a-zA-Z_][a-zA-Z0-9_]*$"},
                           "type": {"enum": ["query", "custom", "constant", "interval", "datasource", "textbox"]},
                           "datasource": _DS, "query": {"type": "string", "minLength": 1}}}}}},
        "annotations": {"type": "object", "required": ["list"]},
        "panels": {"type": "array", "minItems": 1, "items": {
            "type": "object", "required": ["id", "type", "title", "datasource", "gridPos", "targets"],
            "properties": {
                "id": {"type": "integer", "minimum": 1},
                "type": {"enum": ["timeseries", "stat", "table", "barchart", "gauge", "text"]},
                "title": {"type": "string", "minLength": 1},
                "datasource": _DS,
                "gridPos": {"type": "object", "required": ["h", "w", "x", "y"], "additionalProperties": False,
                            "properties": {"h": {"type": "integer", "minimum": 1},
                                           "w": {"type": "integer", "minimum": 1, "maximum": 24},
                                           "x": {"type": "integer", "minimum": 0, "maximum": 23},
                                           "y": {"type": "integer", "minimum": 0}}},
                "fieldConfig": {"type": "object", "required": ["defaults"]},
                "targets": {"type": "array", "minItems": 1, "items": {
                    "type": "object", "required": ["refId", "datasource"],
                    "properties": {"refId": {"type": "string"}, "datasource": _DS},
                    "oneOf": [{"required": ["query", "rawQuery"], "properties": {"rawQuery": {"const": True}}},
                              {"required": ["expr"]}]}}}}},
    },
}


def dashboards() -> list[dict[str, Any]]:
    return [json.loads(p.read_text()) for p in DASHBOARDS]


def influxql(d: dict[str, Any]) -> list[str]:
    out = [v["query"] for v in d["templating"]["list"] if v["datasource"]["type"] == "influxdb"]
    for p in d["panels"]:
        out += [t["query"] for t in p["targets"] if t["datasource"]["type"] == "influxdb"]
    return out


def test_the_provisioning_names_the_datasources_the_dashboards_use() -> None:
    (ds,) = (GRAFANA / "provisioning" / "datasources").glob("*.yml")
    sources = {s["uid"]: s for s in yaml.safe_load(ds.read_text())["datasources"]}
    assert {uid: s["type"] for uid, s in sources.items()} == DATASOURCE_UIDS
    assert sources["minewatch-influxdb"]["url"] == "http://influxdb:8086"
    assert sources["minewatch-prometheus"]["url"] == "http://prometheus:9090"
    (prov,) = (GRAFANA / "provisioning" / "dashboards").glob("*.yml")
    assert yaml.safe_load(prov.read_text())["providers"][0]["options"]["path"] == "/var/lib/grafana/dashboards"


def test_the_dashboards_follow_grafanas_dashboard_model() -> None:
    ds = dashboards()
    assert {d["uid"] for d in ds} == {"minewatch-fleet", "minewatch-scenario", "minewatch-ingest"}
    for d in ds:
        jsonschema.validate(d, SCHEMA)
        ids = [p["id"] for p in d["panels"]]
        assert len(ids) == len(set(ids)), d["uid"]
        for p in d["panels"]:
            assert p["gridPos"]["x"] + p["gridPos"]["w"] <= 24, (d["uid"], p["title"])
        # every variable a query uses is defined (besides Grafana's own)
        names = {v["name"] for v in d["templating"]["list"]}
        for q in influxql(d):
            used = set(re.findall(r"\$(\w+)", q)) - {"timeFilter", "__interval"}
            assert used <= names, (d["uid"], q)
    scenario = next(d for d in ds if d["uid"] == "minewatch-scenario")
    assert {"scenario", "channel"} <= {v["name"] for v in scenario["templating"]["list"]}


def test_a_dashboard_missing_its_grid_position_is_refused() -> None:
    bad = dashboards()[0]
    del bad["panels"][0]["gridPos"]
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(bad, SCHEMA)


@pytest.mark.integration
def test_every_influxql_query_runs_on_the_projects_measurements(influxd: Influxd, influx_db: SyncInflux) -> None:
    now = time.time_ns()
    influx_db.write([
        f"telemetry,scenario=mf01,robot=r01,scenario_kind=gas ch4_t1=0.4,seq=1i,battery=80,latency_ms=12,rssi_dbm=-70 {now}",
        f"robot_status,scenario=mf01,robot=r01 online=true,loss=0.01,battery=80 {now}",
        f"alert_events,scenario=mf01,kind=gas,severity=alarm,state=raised,detector=limit,alert_id=a1 "
        f'value=1.2,limit=1.0,channel="ch4_t1",message="methane" {now}',
        f"ingest_stats,partition=0of1,host=h,client_id=c spool_bytes=0i,influx_up=true {now}"])
    values = {"scenario": "mf01", "channel": "ch4_t1"}
    queries = [q for d in dashboards() for q in influxql(d)]
    assert len(queries) >= 10
    for q in queries:
        sql = (q.replace("$timeFilter", "time > now() - 1h").replace("$__interval", "1m")
               .replace("$tag_robot", "robot"))
        sql = re.sub(r"\$(\w+)", lambda m: values[m.group(1)], sql)
        body = httpx.get(f"{influxd.url}/query", params={"q": sql, "db": influx_db.db}, timeout=10).json()
        assert "error" not in body and all("error" not in r for r in body["results"]), (q, body)
        assert any(r.get("series") for r in body["results"]), ("no rows", q)


def test_compose_runs_prometheus_and_grafana_with_the_shipped_files() -> None:
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    services = compose["services"]
    prom = services["prometheus"]
    assert "./deploy/prometheus:/etc/prometheus:ro" in prom["volumes"]
    graf = services["grafana"]
    mounts = {v.split(":")[0]: v.split(":")[1] for v in graf["volumes"]}
    assert mounts["./deploy/grafana/provisioning"] == "/etc/grafana/provisioning"
    assert mounts["./deploy/grafana/dashboards"] == "/var/lib/grafana/dashboards"
    for host in mounts:
        if host.startswith("./"):
            assert (ROOT / host).is_dir(), host
    # the scrape targets are services of the stack, on the ports they serve metrics on
    config = yaml.safe_load((ROOT / "deploy" / "prometheus" / "prometheus.yml").read_text())
    targets = [t for j in config["scrape_configs"] for c in j["static_configs"] for t in c["targets"]]
    assert {t.split(":")[0] for t in targets} <= set(services)
    assert services["ingest-0"]["environment"]["MINEWATCH_METRICS_HOST"] == "0.0.0.0"
    assert {"prometheus-data", "grafana-data"} <= set(compose["volumes"])
