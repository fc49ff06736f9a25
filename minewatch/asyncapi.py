"""The AsyncAPI 3 document of minewatch's MQTT topics, generated from the pydantic contract.

``python -m minewatch.asyncapi`` writes ``docs/asyncapi.yaml`` (``--check`` fails when the
committed file is stale; ``--prefix`` documents another topic prefix). Channels, QoS and retain
flags follow :mod:`minewatch.topics`; payload schemas and examples come from
:mod:`minewatch.schema`, so the document cannot drift from what the code accepts.
"""

from __future__ import annotations

import copy
import sys
from pathlib import Path
from typing import Any

import click
import yaml
from pydantic import BaseModel

from minewatch import __version__
from minewatch.catalogue import QUANTITIES
from minewatch.schema import (AlertAck, AlertEvent, DeadLetter, IncidentAck, IncidentEvent, RobotStatus, TelemetryFrame,
                              WatchStatus)
from minewatch.topics import DEFAULT_PREFIX

__all__ = ["CHANNELS", "document", "render", "main"]

DOC_PATH = Path(__file__).resolve().parent.parent / "docs" / "asyncapi.yaml"
REF = "#/components/schemas/{model}"

# Channel id -> (address under the prefix, parameter descriptions, messages, QoS, retained,
# who publishes, description). Messages name models, or "[Model]" for a JSON array of them.
CHANNELS: dict[str, dict[str, Any]] = {
    "telemetry": {
        "address": "telemetry/{scenario_id}/{robot_id}",
        "messages": ["TelemetryFrame", "[TelemetryFrame]"], "qos": 1, "retain": False, "publisher": "robot",
        "description": "A robot's readings: one frame, or a JSON array of frames of that robot (its backlog after "
                       "a coverage hole, or a fast sensor's samples). The frame's robot_id and scenario_id must "
                       "equal the topic's; the ingestor dead-letters a frame that speaks for another robot.",
    },
    "history": {
        "address": "history/{scenario_id}/{robot_id}",
        "messages": ["TelemetryFrame", "[TelemetryFrame]"], "qos": 1, "retain": False, "publisher": "simulator",
        "description": "Bulk history (an import, a historical simulation): frames stored and run through detectors of "
                       "their own in event time, whose alerts are marked historical and only stored: they never "
                       "reach the alert topics, the board or the acknowledgement list, never mark a live robot "
                       "offline. Frames on telemetry/... older than the live horizon (an hour by default) are "
                       "taken the same way.",
    },
    "status": {
        "address": "status/{robot_id}",
        "messages": ["RobotStatus"], "qos": 1, "retain": True, "publisher": "robot",
        "description": "A robot's current status, retained; its MQTT will publishes {\"robot_id\": ..., "
                       "\"online\": false} when it drops off.",
    },
    "alertEvents": {
        "address": "alerts/{scenario_id}/{kind}",
        "messages": ["AlertEvent"], "qos": 1, "retain": False, "publisher": "ingest",
        "description": "Every step of every alert's life (raised, escalated, acknowledged, cleared), as it happens. "
                       "Subscribe to alerts/+/+ for all of them, alerts/mf01/+ for one place, alerts/+/gas for one kind "
                       "(alerts/+/+ also matches alerts/active/... and alerts/ack/...: tell them apart by the second level).",
    },
    "activeAlerts": {
        "address": "alerts/active/{alert_id}",
        "messages": ["AlertEvent"], "qos": 1, "retain": True, "publisher": "ingest",
        "description": "The current state of each active alert, retained: a new subscriber gets every active alert at "
                       "once. When the alert clears, its cleared event is followed by an empty retained message, "
                       "which removes the topic.",
    },
    "alertAcks": {
        "address": "alerts/ack/{alert_id}",
        "messages": ["AlertAck"], "qos": 1, "retain": False, "publisher": "api",
        "description": "An operator's acknowledgement, published by the API and applied by the ingestor, which then "
                       "publishes the alert's acknowledged state.",
    },
    "incidentEvents": {
        "address": "incidents/{scenario_id}/{cause}",
        "messages": ["IncidentEvent"], "qos": 1, "retain": False, "publisher": "ingest",
        "description": "Every step of every incident (alerts of one place with one cause, handled as one): raised, "
                       "escalated, updated, acknowledged, cleared, each with its member alerts. What an operator's "
                       "list shows; the member alerts keep their own events on alerts/... (incidents/+/+ also "
                       "matches incidents/active/... and incidents/ack/...: tell them apart by the second level).",
    },
    "activeIncidents": {
        "address": "incidents/active/{incident_id}",
        "messages": ["IncidentEvent"], "qos": 1, "retain": True, "publisher": "ingest",
        "description": "The current state of each open incident, retained; an empty retained message removes it "
                       "when it clears.",
    },
    "incidentAcks": {
        "address": "incidents/ack/{incident_id}",
        "messages": ["IncidentAck"], "qos": 1, "retain": False, "publisher": "api",
        "description": "An operator's acknowledgement of a whole incident, applied by the ingestor to every active "
                       "member alert.",
    },
    "watch": {
        "address": "watch/{scenario_id}",
        "messages": ["WatchStatus"], "qos": 1, "retain": True, "publisher": "ingest",
        "description": "Whether the detectors are watching a scenario, refreshed every few seconds by the ingest "
                       "process that owns it. Treat a place as not watched when this says so, or when it is older "
                       "than three of its refreshes (every_s).",
    },
    "deadLetters": {
        "address": "deadletter/{reason}",
        "messages": ["DeadLetter"], "qos": 0, "retain": False, "publisher": "ingest",
        "description": "A message the ingestor could not accept, with the reason; nothing is dropped silently.",
    },
}

PARAMETERS = {
    "scenario_id": "Scenario id from the catalogue (31 places: mf01 ... ac01).",
    "robot_id": "Robot id; also the robot's MQTT username.",
    "kind": "Alert kind: gas, vibration, ventilation, sensor-health, robot-health or system.",
    "alert_id": "Stable id of an alert while it is active; never the id of another alert.",
    "incident_id": "Stable id of an incident while it is open.",
    "cause": "Incident cause: methane, fire, air-quality, ventilation, heat, machine, water, sensors, robot, "
             "monitoring or notice.",
    "reason": "Short rejection code, e.g. not_json, invalid, robot_mismatch.",
}

MODELS: dict[str, type[BaseModel]] = {m.__name__: m for m in (TelemetryFrame, RobotStatus, AlertEvent, AlertAck,
                                                               IncidentEvent, IncidentAck, WatchStatus, DeadLetter)}

# What each account may do on the broker (deploy/mosquitto.acl, minewatch.security).
ROLES = {
    "robot": "publishes its own status, and telemetry for its own scenarios only (username = robot id)",
    "simulator": "publishes telemetry and status for the simulated fleet, and history",
    "ingest": "reads telemetry, history, status and acknowledgements; publishes alerts, incidents, watch states "
              "and dead letters",
    "api": "reads everything; publishes acknowledgements",
    "integrator": "reads alerts/#, incidents/# and watch/# only",
}


def _schemas() -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name, model in MODELS.items():
        schema = model.model_json_schema(ref_template=REF)
        out.update(schema.pop("$defs", {}))
        out[name] = schema
    return dict(sorted(out.items()))


def _readings() -> str:
    """What the keys of a frame's ``readings`` measure: every quantity of the catalogue, its unit
    and the range its sensor reports (from minewatch.catalogue.QUANTITIES)."""
    rows = "\n".join(f"| `{q.code}` | {q.name} | {q.unit or '(on/off)'} | {q.low:g} to {q.high:g} | {q.kind.value} |"
                     for q in QUANTITIES.values())
    return ("\n\nEach reading measures one quantity (the channel's, listed per scenario by the API):\n\n"
            "| quantity | what | unit | sensor range | kind |\n|---|---|---|---|---|\n" + rows)


def _message_id(spec: str) -> str:
    return spec.strip("[]") + ("Batch" if spec.startswith("[") else "")


def _message(spec: str) -> dict[str, Any]:
    name = spec.strip("[]")
    examples = MODELS[name].model_json_schema().get("examples", [])
    ref = {"$ref": REF.format(model=name)}
    if spec.startswith("["):
        payload: dict[str, Any] = {"type": "array", "minItems": 1, "items": ref}
        examples = [examples] if examples else []
        summary = f"A JSON array of {name} objects of one robot."
    else:
        payload = ref
        summary = (MODELS[name].__doc__ or name).strip().split("\n\n")[0].replace("\n", " ")
    msg: dict[str, Any] = {
        "name": _message_id(spec),
        "title": name if not spec.startswith("[") else f"{name} array",
        "summary": summary,
        "contentType": "application/json",
        "payload": payload,
        "bindings": {"mqtt": {"payloadFormatIndicator": 1, "contentType": "application/json", "bindingVersion": "0.2.0"}},
    }
    msg["examples"] = [{"name": f"{_message_id(spec)}-{i + 1}", "payload": copy.deepcopy(e)} for i, e in enumerate(examples)]
    return msg


def document(prefix: str = DEFAULT_PREFIX) -> dict[str, Any]:
    """The AsyncAPI 3.0 document as a dict."""
    channels: dict[str, Any] = {}
    operations: dict[str, Any] = {}
    messages: dict[str, Any] = {}
    for cid, ch in CHANNELS.items():
        address = f"{prefix}/{ch['address']}"
        params = [p.strip("{}") for p in ch["address"].split("/") if p.startswith("{")]
        msg_ids = [_message_id(m) for m in ch["messages"]]
        for spec in ch["messages"]:
            messages.setdefault(_message_id(spec), _message(spec))
        channels[cid] = {
            "address": address,
            "title": ch["address"],
            "description": ch["description"] + (_readings() if cid == "telemetry" else ""),
            "parameters": {p: {"description": PARAMETERS[p]} for p in params},
            "messages": {m: {"$ref": f"#/components/messages/{m}"} for m in msg_ids},
        }
        receives = ch["publisher"] in ("robot", "api")  # from minewatch's side: what it consumes
        operations[f"{'receive' if receives else 'send'}{cid[0].upper()}{cid[1:]}"] = {
            "action": "receive" if receives else "send",
            "channel": {"$ref": f"#/channels/{cid}"},
            "summary": f"Published by the {ch['publisher']}, QoS {ch['qos']}, "
                       f"{'retained' if ch['retain'] else 'not retained'}.",
            "messages": [{"$ref": f"#/channels/{cid}/messages/{m}"} for m in msg_ids],
            "bindings": {"mqtt": {"qos": ch["qos"], "retain": ch["retain"], "bindingVersion": "0.2.0"}},
        }
    roles = "\n".join(f"- **{r}**: {d}" for r, d in ROLES.items())
    return {
        "asyncapi": "3.0.0",
        "info": {
            "title": "minewatch MQTT topics",
            "version": __version__,
            "description": (
                "Telemetry from a coal mine's inspection robots and the alerts minewatch raises on it. "
                f"Every topic is under the prefix `{prefix}` (configurable). Payloads are UTF-8 JSON; "
                "times (`ts`, `first_ts`) are integer nanoseconds since the Unix epoch, UTC.\n\n"
                "Every client logs in with its own account; the broker's ACL lets each role do this and "
                f"nothing else:\n\n{roles}\n\nGenerated by `python -m minewatch.asyncapi` from minewatch.schema: "
                "do not edit by hand."),
        },
        "defaultContentType": "application/json",
        "servers": {
            "mqtt": {"host": "localhost:1883", "protocol": "mqtt", "protocolVersion": "5.0",
                     "description": "Plain MQTT (inside a trusted network only), for robots and integrators. "
                                    "The client id is the username: one connection per account.",
                     "security": [{"$ref": "#/components/securitySchemes/account"}]},
            "mqtts": {"host": "localhost:8883", "protocol": "secure-mqtt", "protocolVersion": "5.0",
                      "description": "MQTT over TLS 1.2+; clients verify the broker against the deployment's CA. "
                                     "The client id is the username: one connection per account.",
                      "security": [{"$ref": "#/components/securitySchemes/account"}]},
        },
        "channels": channels,
        "operations": operations,
        "components": {
            "schemas": _schemas(),
            "messages": messages,
            "securitySchemes": {"account": {"type": "userPassword",
                                            "description": "MQTT username and password; no anonymous access."}},
        },
    }


def render(prefix: str = DEFAULT_PREFIX) -> str:
    head = "# Generated by `python -m minewatch.asyncapi` from minewatch/schema.py; do not edit.\n"
    return head + yaml.safe_dump(document(prefix), sort_keys=False, allow_unicode=True, width=110)


@click.command()
@click.option("--out", type=click.Path(path_type=Path), default=DOC_PATH, show_default=True, help="Where to write.")
@click.option("--prefix", default=DEFAULT_PREFIX, show_default=True, help="Topic prefix to document.")
@click.option("--check", is_flag=True, help="Do not write; exit 1 if the file differs from what would be written.")
def main(out: Path, prefix: str, check: bool) -> None:
    """Write the AsyncAPI 3 document of minewatch's MQTT topics."""
    text = render(prefix)
    if check:
        if not out.exists() or out.read_text() != text:
            click.echo(f"{out} is out of date: run python -m minewatch.asyncapi", err=True)
            sys.exit(1)
        click.echo(f"{out} is up to date")
        return
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(text)
    click.echo(f"wrote {out}")


if __name__ == "__main__":
    main()
