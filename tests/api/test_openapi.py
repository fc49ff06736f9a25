"""Schemathesis over the OpenAPI document, in process against the ASGI app, with the real
mosquitto and influxd behind it: no 5xx, and every response fits its documented schema, status
code and content type. The two SSE streams never end by themselves and are covered by
test_stream.py and test_replay_stream.py instead."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest
import schemathesis
import schemathesis.python.asgi
from jsonschema import Draft202012Validator
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (content_type_conformance, response_schema_conformance,
                                               status_code_conformance)

from api.main import create_app
from minewatch.influx import SyncInflux
from minewatch.services import Influxd, Mosquitto
from minewatch.settings import Settings

from .conftest import KEYS, T0, S, alert_line, event

pytestmark = pytest.mark.integration
CHECKS = [not_a_server_error, response_schema_conformance, status_code_conformance, content_type_conformance]


@pytest.fixture(scope="module")
def api_schema(mosquitto: Mosquitto, influxd: Influxd) -> Iterator[schemathesis.BaseSchema]:
    unique = uuid.uuid4().hex[:10]
    db = SyncInflux(influxd.url, f"db_st_{unique}")
    db.ensure_db()
    # something to find: readings and an alert with its history
    db.write([f"telemetry,robot=r01,scenario=mf01,scenario_kind=mining_face ch4_t1=0.3,co=2.0,seq={i}i {T0 + i * S}"
              for i in range(120)])
    db.write([alert_line(event("mf01.ch4_t1.gas_limit.1", "raised", "alarm", ts=T0, first_ts=T0))])
    app = create_app(Settings(mqtt_url=mosquitto.url, influx_url=influxd.url, influx_db=db.db,
                              topic_prefix=f"t{unique}/v1",
                              api_keys=",".join(f"{k}:{role}" for role, k in KEYS.items())), ack_wait_s=0.2)
    schema = schemathesis.openapi.from_asgi("/openapi.json", app)
    yield schema.exclude(path_regex=r"/stream$")
    schemathesis.python.asgi.shutdown_lifespans()
    db.query(f'DROP DATABASE "{db.db}"', db="", post=True)
    db.close()


# every operation but the two never-ending SSE streams; test_the_document_is_complete holds
# this list to the document
OPERATIONS = [
    ("GET", "/healthz"), ("GET", "/metrics"), ("GET", "/me"), ("GET", "/scenarios"), ("GET", "/scenarios/{scenario_id}"),
    ("GET", "/robots"), ("GET", "/robots/{robot_id}"), ("GET", "/telemetry/latest"), ("GET", "/telemetry/history"),
    ("GET", "/telemetry/export.csv"), ("GET", "/alerts"), ("GET", "/alerts/{alert_id}"),
    ("POST", "/alerts/{alert_id}/ack"), ("GET", "/incidents"), ("GET", "/incidents/{incident_id}"),
    ("POST", "/incidents/{incident_id}/ack"), ("GET", "/shifts"), ("GET", "/shifts/current"), ("GET", "/shifts/{shift_id}"),
    ("POST", "/replays"), ("GET", "/replays"), ("GET", "/replays/{replay_id}"), ("DELETE", "/replays/{replay_id}"),
    ("GET", "/report"),
]


@pytest.mark.parametrize("method, path", OPERATIONS, ids=[f"{m} {p}" for m, p in OPERATIONS])
def test_every_endpoint_keeps_to_its_schema(api_schema: schemathesis.BaseSchema, method: str, path: str) -> None:
    fuzz(api_schema[path][method], KEYS["engineer"])


def fuzz(op: schemathesis.APIOperation, key: str) -> None:
    """Valid and invalid requests to ``op`` (fixed examples): none may break the checks."""
    strategy = st.one_of(op.as_strategy(GenerationMode.POSITIVE), op.as_strategy(GenerationMode.NEGATIVE))

    @given(case=strategy)
    @settings(max_examples=15, deadline=None, derandomize=True, database=None,
              suppress_health_check=list(HealthCheck))
    def run(case: schemathesis.Case) -> None:
        case.call_and_validate(headers={"X-API-Key": key}, checks=CHECKS)

    run()


def test_the_document_is_complete(api_schema: schemathesis.BaseSchema) -> None:
    doc = api_schema.raw_schema
    assert {"/healthz", "/metrics", "/me", "/scenarios", "/scenarios/{scenario_id}", "/robots", "/robots/{robot_id}",
            "/telemetry/latest", "/telemetry/history", "/telemetry/export.csv", "/alerts", "/alerts/{alert_id}",
            "/alerts/{alert_id}/ack", "/incidents", "/incidents/{incident_id}", "/incidents/{incident_id}/ack",
            "/shifts", "/shifts/{shift_id}", "/replays", "/replays/{replay_id}",
            "/replays/{replay_id}/stream", "/stream"} <= set(doc["paths"])
    for path, ops in doc["paths"].items():
        for method, op in ops.items():
            codes = set(op["responses"])
            assert "200" in codes or "201" in codes, (method, path)
            if path not in ("/healthz", "/metrics"):
                assert {"401", "403"} <= codes, (method, path)
                assert op.get("security"), (method, path)
            if op.get("parameters") or op.get("requestBody"):
                assert "422" in codes, (method, path)
            assert op.get("summary") and op.get("tags"), (method, path)
    schemes = doc["components"]["securitySchemes"]
    assert {"ApiKeyHeader", "Bearer", "ApiKeyQuery", "ApiKeyCookie"} <= set(schemes)
    for name in ("AlertPublic", "AlertsPublic", "AlertDetail", "ScenarioPublic", "RobotPublic", "ReplayPublic",
                 "ErrorModel", "ShiftPublic", "TelemetryHistory"):
        assert name in doc["components"]["schemas"], name
    assert doc["components"]["schemas"]["AlertPublic"].get("examples"), "AlertPublic has an example"
    # every example in the document is valid against its own schema
    registry = Registry().with_resource("mem://doc", Resource.from_contents(
        {"components": doc["components"]}, default_specification=DRAFT202012))
    with_examples = 0
    for name, sch in doc["components"]["schemas"].items():
        for example in sch.get("examples") or []:
            validator = Draft202012Validator({"$ref": f"mem://doc#/components/schemas/{name}"}, registry=registry)
            assert not list(validator.iter_errors(example)), (name, example)
            with_examples += 1
    assert with_examples >= 20
    listed = {(m.upper(), p) for p, ops in doc["paths"].items() for m in ops}
    assert listed - set(OPERATIONS) == {("GET", "/stream"), ("GET", "/replays/{replay_id}/stream")}
