"""The mosquitto_sub commands of docs/integrators.md, run as written against the TLS deploy broker.

Only the port and the CA file's path are changed (and ``-d`` added, to see the SUBACK).
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import threading
import time
from pathlib import Path

import pytest

from minewatch.schema import AlertEvent, IncidentEvent
from minewatch.services import find_program
from minewatch.topics import Topics

from .conftest import DeployBroker
from .probe import publish_once

pytestmark = pytest.mark.integration

DOC = Path(__file__).resolve().parents[2] / "docs" / "integrators.md"
COMMANDS = [b.strip() for b in re.findall(r"```sh\n(.*?)```", DOC.read_text(), re.S) if b.startswith("mosquitto_sub")]
T = Topics()
EVENT = AlertEvent.model_json_schema()["examples"][0]
INCIDENT = IncidentEvent.model_json_schema()["examples"][0]


def _command(kind: str) -> str:
    """The documented command: ``live`` (events of alerts and incidents), ``active`` (the active
    alerts) or ``persistent`` (the live one on a persistent session)."""
    (cmd,) = [c for c in COMMANDS if (" -c " in c) == (kind == "persistent")
              and ("alerts/active/+" in c) == (kind == "active")]
    return cmd


class Sub:
    """A documented mosquitto_sub command running in the background, its output collected."""

    def __init__(self, cmd: str, b: DeployBroker, port: int, *extra: str, ready: str = "received SUBACK") -> None:
        assert "-p 8883" in cmd and "--cafile ca.crt" in cmd, cmd
        ca = b.auth.directory / "tls" / "ca.crt"
        cmd = cmd.replace("-p 8883", f"-p {port}").replace("--cafile ca.crt", f"--cafile {ca}")
        cmd = cmd.replace("mosquitto_sub", find_program("mosquitto_sub"), 1) + " -d " + " ".join(extra)
        env = {**os.environ, "MINEWATCH_HOST": "127.0.0.1", "MINEWATCH_PASSWORD": b.auth["integrator"].password}
        # stdbuf: mosquitto_sub's stdout is block-buffered into a pipe; the SUBACK line must show at once.
        self.proc = subprocess.Popen(["sh", "-c", "exec stdbuf -oL " + cmd], stdout=subprocess.PIPE,
                                     stderr=subprocess.STDOUT, env=env,
                                     text=True)
        self.lines: list[str] = []
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()
        self.wait(lambda ln: ready in ln)

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.append(line.rstrip("\n"))

    def wait(self, pred, timeout: float = 5.0) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                self.reader.join(2)  # the output is all there
            for ln in list(self.lines):
                if pred(ln):
                    return ln
            if self.proc.poll() is not None:
                break
            time.sleep(0.02)
        raise AssertionError(f"not seen; exit {self.proc.poll()}, output: {self.lines}")

    def messages(self) -> list[str]:
        return [ln for ln in self.lines if ln.startswith(T.prefix)]

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(5)
        self.reader.join(2)
        assert self.proc.stdout is not None
        self.proc.stdout.close()


def test_the_doc_has_the_three_commands() -> None:
    assert len(COMMANDS) == 3
    assert {_command(k) for k in ("live", "active", "persistent")} == set(COMMANDS)
    for cmd in COMMANDS:  # the broker takes the username as the client id
        assert " -i " not in cmd or " -i integrator " in cmd


def test_alerts_and_incidents_in_one_connection_as_documented(tls_broker: tuple[DeployBroker, int]) -> None:
    b, port = tls_broker
    ingest = b.url("ingest")
    live = Sub(_command("live"), b, port)
    try:
        topic = T.incident(INCIDENT["scenario_id"], INCIDENT["cause"])
        publish_once(ingest, topic, json.dumps(INCIDENT).encode())
        line = live.wait(lambda ln: ln.startswith(topic + " "))
        got = IncidentEvent.model_validate_json(line.split(" ", 1)[1])
        assert got.needs_ack and got.members[0].alert_id == EVENT["alert_id"]
        event_topic = T.alert(EVENT["scenario_id"], EVENT["kind"])
        publish_once(ingest, event_topic, json.dumps(EVENT).encode())
        line = live.wait(lambda ln: ln.startswith(event_topic + " "))
        assert AlertEvent.model_validate_json(line.split(" ", 1)[1]).severity.value == "critical"
    finally:
        live.stop()


def test_active_alerts_as_documented(tls_broker: tuple[DeployBroker, int]) -> None:
    b, port = tls_broker
    ingest = b.url("ingest")
    active_topic = T.active(EVENT["alert_id"])
    publish_once(ingest, active_topic, json.dumps(EVENT).encode(), retain=True)
    active = Sub(_command("active"), b, port)
    try:
        # The retained state reaches a new subscriber at once.
        line = active.wait(lambda ln: ln.startswith(active_topic + " "))
        assert json.loads(line.split(" ", 1)[1])["alert_id"] == EVENT["alert_id"]
        event_topic = T.alert(EVENT["scenario_id"], EVENT["kind"])
        publish_once(ingest, event_topic, json.dumps(EVENT).encode())
        # Clearing: an empty retained message, which mosquitto_sub -v shows as (null).
        publish_once(ingest, active_topic, b"", retain=True)
        active.wait(lambda ln: ln == f"{active_topic} (null)")
        assert all(not m.startswith(event_topic) for m in active.messages())
    finally:
        active.stop()
        publish_once(ingest, active_topic, b"", retain=True)


def test_a_second_connection_of_the_account_closes_the_first(tls_broker: tuple[DeployBroker, int]) -> None:
    """Why the doc says one connection per account: the client id is the username, so the broker
    closes the first connection when a second one logs in (mosquitto_sub reconnects, and the two
    then keep pushing each other off)."""
    b, port = tls_broker
    first = Sub(_command("live"), b, port)
    try:
        second = Sub(_command("active"), b, port)
        # the first is closed and connects again (mosquitto_sub's -d shows a second CONNECT)
        first.wait(lambda ln: sum("sending CONNECT" in x for x in first.lines) >= 2)
        second.stop()
    finally:
        first.stop()


def test_a_persistent_session_gets_what_was_published_while_away(tls_broker: tuple[DeployBroker, int]) -> None:
    b, port = tls_broker
    first = Sub(_command("persistent"), b, port)
    first.stop()  # disconnect; the session stays on the broker
    topic = T.alert("ra01", "gas")
    publish_once(b.url("ingest"), topic, json.dumps({**EVENT, "scenario_id": "ra01"}).encode())
    # The queued alert comes right after the CONNACK, before the SUBACK.
    again = Sub(_command("persistent"), b, port, "-C 1", ready="received CONNACK")
    try:
        line = again.wait(lambda ln: ln.startswith("{"))  # no -v in this command: payload only
        assert json.loads(line)["scenario_id"] == "ra01"
    finally:
        again.stop()
