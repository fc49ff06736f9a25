"""MQTT topic names, built and parsed in one place.

Every topic lives under a configurable prefix (default ``minewatch/v1``):

=====================================  ======  =========  ======================================
topic                                  QoS     retained   payload
=====================================  ======  =========  ======================================
``telemetry/{scenario_id}/{robot_id}``  1       no         telemetry frame, or array of frames
``history/{scenario_id}/{robot_id}``    1       no         frames of bulk history (an import)
``status/{robot_id}``                   1       yes        robot status (will: ``online: false``)
``alerts/{scenario_id}/{kind}``         1       no         alert event
``alerts/active/{alert_id}``            1       yes        alert event (latest); empty = cleared
``alerts/ack/{alert_id}``               1       no         acknowledgement request from the API
``incidents/{scenario_id}/{cause}``     1       no         incident event
``incidents/active/{incident_id}``      1       yes        incident event (latest); empty = cleared
``incidents/ack/{incident_id}``         1       no         acknowledgement request from the API
``watch/{scenario_id}``                 1       yes        whether the detectors watch the scenario
``deadletter/{reason}``                 0       no         rejected payload and why
=====================================  ======  =========  ======================================
"""

from __future__ import annotations

import re
from dataclasses import dataclass

__all__ = ["Topics", "DEFAULT_PREFIX"]

DEFAULT_PREFIX = "minewatch/v1"
_LEVEL = re.compile(r"\A[A-Za-z0-9_.-]{1,64}\Z")


def _level(value: str, what: str) -> str:
    if not _LEVEL.match(value):
        raise ValueError(f"{what} {value!r} cannot be a topic level (letters, digits, '_', '.', '-'; 1-64)")
    return value


@dataclass(frozen=True)
class Topics:
    prefix: str = DEFAULT_PREFIX

    def __post_init__(self) -> None:
        if not self.prefix or any(c in self.prefix for c in "+#") or self.prefix.startswith("/") or self.prefix.endswith("/"):
            raise ValueError(f"bad topic prefix {self.prefix!r}")

    # builders
    def telemetry(self, scenario_id: str, robot_id: str) -> str:
        return f"{self.prefix}/telemetry/{_level(scenario_id, 'scenario')}/{_level(robot_id, 'robot')}"

    def history(self, scenario_id: str, robot_id: str) -> str:
        return f"{self.prefix}/history/{_level(scenario_id, 'scenario')}/{_level(robot_id, 'robot')}"

    def status(self, robot_id: str) -> str:
        return f"{self.prefix}/status/{_level(robot_id, 'robot')}"

    def alert(self, scenario_id: str, kind: str) -> str:
        return f"{self.prefix}/alerts/{_level(scenario_id, 'scenario')}/{_level(kind, 'kind')}"

    def active(self, alert_id: str) -> str:
        return f"{self.prefix}/alerts/active/{_level(alert_id, 'alert id')}"

    def ack(self, alert_id: str) -> str:
        return f"{self.prefix}/alerts/ack/{_level(alert_id, 'alert id')}"

    def incident(self, scenario_id: str, cause: str) -> str:
        return f"{self.prefix}/incidents/{_level(scenario_id, 'scenario')}/{_level(cause, 'cause')}"

    def incident_active(self, incident_id: str) -> str:
        return f"{self.prefix}/incidents/active/{_level(incident_id, 'incident id')}"

    def incident_ack(self, incident_id: str) -> str:
        return f"{self.prefix}/incidents/ack/{_level(incident_id, 'incident id')}"

    def watch(self, scenario_id: str) -> str:
        return f"{self.prefix}/watch/{_level(scenario_id, 'scenario')}"

    def deadletter(self, reason: str) -> str:
        return f"{self.prefix}/deadletter/{_level(reason, 'reason')}"

    # subscriptions
    @property
    def all_telemetry(self) -> str:
        return f"{self.prefix}/telemetry/+/+"

    def scenario_telemetry(self, scenario_id: str) -> str:
        return f"{self.prefix}/telemetry/{_level(scenario_id, 'scenario')}/+"

    @property
    def all_history(self) -> str:
        return f"{self.prefix}/history/+/+"

    def scenario_history(self, scenario_id: str) -> str:
        return f"{self.prefix}/history/{_level(scenario_id, 'scenario')}/+"

    @property
    def all_incidents(self) -> str:
        """Incident events on ``incidents/{scenario}/{cause}``; also matches ``active`` and ``ack``."""
        return f"{self.prefix}/incidents/+/+"

    @property
    def all_active_incidents(self) -> str:
        return f"{self.prefix}/incidents/active/+"

    @property
    def all_watch(self) -> str:
        return f"{self.prefix}/watch/+"

    @property
    def all_status(self) -> str:
        return f"{self.prefix}/status/+"

    @property
    def all_alert_events(self) -> str:
        """Alert events on ``alerts/{scenario}/{kind}``; also matches ``active`` and ``ack``, which
        :meth:`parse_alert` tells apart."""
        return f"{self.prefix}/alerts/+/+"

    @property
    def all_active(self) -> str:
        return f"{self.prefix}/alerts/active/+"

    @property
    def all_deadletter(self) -> str:
        return f"{self.prefix}/deadletter/+"

    # parsers
    def _rest(self, topic: str) -> list[str] | None:
        head = self.prefix + "/"
        if not topic.startswith(head):
            return None
        return topic[len(head):].split("/")

    def parse_telemetry(self, topic: str) -> tuple[str, str] | None:
        """``(scenario_id, robot_id)`` of a telemetry topic, else None."""
        rest = self._rest(topic)
        if rest is None or len(rest) != 3 or rest[0] != "telemetry":
            return None
        return rest[1], rest[2]

    def parse_history(self, topic: str) -> tuple[str, str] | None:
        """``(scenario_id, robot_id)`` of a history topic, else None."""
        rest = self._rest(topic)
        if rest is None or len(rest) != 3 or rest[0] != "history":
            return None
        return rest[1], rest[2]

    def parse_incident(self, topic: str) -> tuple[str, str, str] | None:
        """``("event", scenario, cause)``, ``("active", incident_id, "")`` or ``("ack", incident_id, "")``."""
        rest = self._rest(topic)
        if rest is None or len(rest) != 3 or rest[0] != "incidents":
            return None
        if rest[1] in ("active", "ack"):
            return rest[1], rest[2], ""
        return "event", rest[1], rest[2]

    def parse_watch(self, topic: str) -> str | None:
        rest = self._rest(topic)
        if rest is None or len(rest) != 2 or rest[0] != "watch":
            return None
        return rest[1]

    def parse_status(self, topic: str) -> str | None:
        rest = self._rest(topic)
        if rest is None or len(rest) != 2 or rest[0] != "status":
            return None
        return rest[1]

    def parse_alert(self, topic: str) -> tuple[str, str, str] | None:
        """``("event", scenario, kind)``, ``("active", alert_id, "")`` or ``("ack", alert_id, "")``."""
        rest = self._rest(topic)
        if rest is None or len(rest) != 3 or rest[0] != "alerts":
            return None
        if rest[1] in ("active", "ack"):
            return rest[1], rest[2], ""
        return "event", rest[1], rest[2]
