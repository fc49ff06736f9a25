"""docs/asyncapi.yaml: current, complete, and its examples valid against the contract's schemas."""

from __future__ import annotations

from typing import Any

import jsonschema
import pytest
import yaml
from click.testing import CliRunner

from minewatch import asyncapi
from minewatch.topics import Topics

DOC = yaml.safe_load(asyncapi.DOC_PATH.read_text())

# The topic table of the design: address pattern -> (QoS, retained).
EXPECTED = {
    "minewatch/v1/telemetry/{scenario_id}/{robot_id}": (1, False),
    "minewatch/v1/status/{robot_id}": (1, True),
    "minewatch/v1/alerts/{scenario_id}/{kind}": (1, False),
    "minewatch/v1/alerts/active/{alert_id}": (1, True),
    "minewatch/v1/alerts/ack/{alert_id}": (1, False),
    "minewatch/v1/history/{scenario_id}/{robot_id}": (1, False),
    "minewatch/v1/incidents/{scenario_id}/{cause}": (1, False),
    "minewatch/v1/incidents/active/{incident_id}": (1, True),
    "minewatch/v1/incidents/ack/{incident_id}": (1, False),
    "minewatch/v1/watch/{scenario_id}": (1, True),
    "minewatch/v1/deadletter/{reason}": (0, False),
}


def _resolve(ref: str) -> Any:
    node: Any = DOC
    for part in ref.removeprefix("#/").split("/"):
        node = node[part]
    return _resolve(node["$ref"]) if "$ref" in node else node


def test_the_committed_document_is_what_the_generator_writes() -> None:
    assert asyncapi.DOC_PATH.read_text() == asyncapi.render(), "run: python -m minewatch.asyncapi"
    result = CliRunner().invoke(asyncapi.main, ["--check"])
    assert result.exit_code == 0, result.output


def test_check_fails_on_a_stale_file(tmp_path) -> None:
    stale = tmp_path / "asyncapi.yaml"
    stale.write_text(asyncapi.render().replace("qos: 1", "qos: 2", 1))
    result = CliRunner().invoke(asyncapi.main, ["--check", "--out", str(stale)])
    assert result.exit_code == 1 and "out of date" in result.output


def test_every_topic_with_its_qos_and_retain_flag() -> None:
    assert DOC["asyncapi"] == "3.0.0"
    seen = {}
    for op in DOC["operations"].values():
        channel = _resolve(op["channel"]["$ref"])
        mqtt = op["bindings"]["mqtt"]
        seen[channel["address"]] = (mqtt["qos"], mqtt["retain"])
        for m in op["messages"]:
            assert _resolve(m["$ref"])["payload"], m
    assert seen == EXPECTED
    # The addresses are the ones the code builds.
    t = Topics()
    built = [t.telemetry("mf01", "r01"), t.status("r01"), t.alert("mf01", "gas"), t.active("a1"), t.ack("a1"),
             t.deadletter("invalid")]
    patterns = [a.split("/") for a in EXPECTED]
    for topic in built:
        assert any(len(p) == len(topic.split("/")) and all(x.startswith("{") or x == y for x, y in zip(p, topic.split("/")))
                   for p in patterns), topic


def _examples() -> list[tuple[str, dict[str, Any], Any]]:
    out = []
    for name, msg in DOC["components"]["messages"].items():
        assert msg["examples"], f"message {name} has no example"
        for ex in msg["examples"]:
            out.append((f"{name}/{ex['name']}", msg["payload"], ex["payload"]))
    return out


@pytest.mark.parametrize(("name", "schema", "example"), _examples(), ids=[e[0] for e in _examples()])
def test_examples_validate_against_the_payload_schemas(name: str, schema: dict[str, Any], example: Any) -> None:
    root = {**schema, "components": DOC["components"]}  # so '#/components/schemas/...' resolves
    jsonschema.Draft202012Validator(root).validate(example)
    model = asyncapi.MODELS[name.split("/")[0].removesuffix("Batch")]
    for item in example if isinstance(example, list) else [example]:
        model.model_validate(item)  # and the contract accepts it


def test_schemas_reject_what_the_contract_rejects() -> None:
    frame = DOC["components"]["messages"]["TelemetryFrame"]
    root = {**frame["payload"], "components": DOC["components"]}
    good = frame["examples"][0]["payload"]
    validator = jsonschema.Draft202012Validator(root)
    assert validator.is_valid(good)
    assert not validator.is_valid({**good, "robot_id": "r/01"})  # not a topic level
    assert not validator.is_valid({**good, "colour": "red"})  # unknown field
    assert not validator.is_valid({k: v for k, v in good.items() if k != "ts"})
