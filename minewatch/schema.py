"""The wire contract: telemetry frames from robots, robot status, and alert events.

These pydantic models are the one definition of every payload; the AsyncAPI document and the
API's OpenAPI schemas are generated from them. Times are integers in nanoseconds since the Unix
epoch, UTC (``ts``), the robot's clock for telemetry.
"""

from __future__ import annotations

import base64
from enum import Enum
from typing import Annotated, Any, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, StrictBool, field_validator

__all__ = [
    "ID_PATTERN",
    "AlertAck",
    "AlertEvent",
    "WatchState",
    "AlertTiming",
    "IncidentAck",
    "IncidentEvent",
    "IncidentMember",
    "IncidentState",
    "WatchStatus",
    "DeadLetter",
    "AlertKind",
    "AlertState",
    "Link",
    "RobotStatus",
    "Severity",
    "TelemetryFrame",
    "Waveform",
    "SEVERITY_RANK",
]

# Ids go into MQTT topic levels and InfluxDB tags: keep them to a safe alphabet.
ID_PATTERN = r"^[A-Za-z0-9_.-]{1,64}$"
RobotId = Annotated[str, Field(pattern=ID_PATTERN, examples=["r07"])]
ScenarioId = Annotated[str, Field(pattern=ID_PATTERN, examples=["mf01"])]
Nanos = Annotated[int, Field(ge=0, le=2**63 - 1, description="nanoseconds since the Unix epoch, UTC",
                             examples=[1795852800000000000])]


class Severity(str, Enum):
    info = "info"
    warning = "warning"
    alarm = "alarm"
    critical = "critical"


SEVERITY_RANK = {Severity.info: 0, Severity.warning: 1, Severity.alarm: 2, Severity.critical: 3}


class AlertState(str, Enum):
    raised = "raised"
    escalated = "escalated"
    acknowledged = "acknowledged"
    cleared = "cleared"


class AlertKind(str, Enum):
    gas = "gas"
    vibration = "vibration"
    ventilation = "ventilation"
    sensor_health = "sensor-health"
    robot_health = "robot-health"
    system = "system"  # the monitoring itself: readings stored but not checked by the detectors


class AlertTiming(str, Enum):
    """When the readings behind an alert event were taken, against when the ingestor saw them."""

    live = "live"  # as they arrived
    late = "late"  # readings that arrived late (a robot's backlog after a coverage hole): it happened at ts
    historical = "historical"  # bulk history (an import, a historical simulation): never on the live board


class Link(BaseModel):
    """The robot's 5G link as the robot sees it."""

    model_config = ConfigDict(extra="forbid")

    latency_ms: float = Field(ge=0, examples=[14.2])
    rssi_dbm: float = Field(ge=-150, le=0, examples=[-78.0])
    loss: float = Field(default=0.0, ge=0, le=1, description="recent packet-loss ratio")


class Waveform(BaseModel):
    """A block of vibration samples (acceleration, m/s²), base64 of little-endian values."""

    model_config = ConfigDict(extra="forbid")

    rate_hz: float = Field(gt=0, le=1_000_000, examples=[10240.0])
    dtype: Literal["f4", "i2"] = "f4"
    scale: float = Field(default=1.0, gt=0, description="multiply decoded i2 samples by this to get m/s²")
    rpm: float | None = Field(default=None, ge=0, description="shaft speed during the block, if measured")
    data: str = Field(description="base64 of the samples")

    def samples(self) -> np.ndarray:
        raw = base64.b64decode(self.data, validate=True)
        if self.dtype == "f4":
            return np.frombuffer(raw, dtype="<f4").astype(np.float64)
        return np.frombuffer(raw, dtype="<i2").astype(np.float64) * self.scale

    @classmethod
    def from_samples(cls, x: np.ndarray, rate_hz: float, rpm: float | None = None) -> Waveform:
        data = base64.b64encode(np.asarray(x, dtype="<f4").tobytes()).decode("ascii")
        return cls(rate_hz=rate_hz, dtype="f4", rpm=rpm, data=data)


class TelemetryFrame(BaseModel):
    """One robot's readings at one instant in one scenario.

    A message on ``telemetry/{scenario_id}/{robot_id}`` carries one frame or a JSON array of
    frames of that robot (a backlog after a coverage hole, or a fast sensor's samples).
    """

    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [{
        "robot_id": "r01", "scenario_id": "mf01", "boot": 1795852000000, "seq": 4211, "ts": 1795852800000000000,
        "pos_m": 118.5, "battery": 76.5, "link": {"latency_ms": 14.2, "rssi_dbm": -78.0, "loss": 0.0},
        "readings": {"ch4_t0": 0.41, "ch4_t1": 0.38, "ch4_t2": 0.33, "co": 3.0, "o2": 20.7, "t": 23.4, "ws": 1.8},
    }]})

    robot_id: RobotId
    scenario_id: ScenarioId
    boot: int | None = Field(default=None, ge=0, le=2**63 - 1, description=(
        "the robot's boot (session) number: any value that changes whenever the robot starts counting seq "
        "again (a reboot, a swap for a spare with the same id), e.g. its start time in milliseconds. "
        "(robot_id, boot, seq) names one reading; without boot a seq that goes back with a newer ts is taken "
        "as a restart"), examples=[1795852000000])
    seq: int = Field(ge=0, le=2**63 - 1, description="rises by one per frame within a boot; gaps and repeats are counted")
    ts: Nanos
    pos_m: float | None = Field(default=None, description="position along the robot's route, metres")
    battery: float | None = Field(default=None, ge=0, le=100, description="state of charge, %")
    link: Link | None = None
    readings: dict[str, float | None] = Field(
        default_factory=dict, description="channel → value in the catalogue's unit; null when the sensor gave none")
    waveforms: dict[str, Waveform] = Field(default_factory=dict)

    @field_validator("readings")
    @classmethod
    def _finite(cls, v: dict[str, float | None]) -> dict[str, float | None]:
        for k, x in v.items():
            if x is not None and (x != x or x in (float("inf"), float("-inf"))):
                raise ValueError(f"reading {k!r} is not a finite number")
        return v


class RobotStatus(BaseModel):
    """Retained on ``status/{robot_id}``; the robot's MQTT will publishes ``online: false``."""

    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [
        {"robot_id": "r01", "online": True, "ts": 1795852800000000000, "boot": 1795852000000, "scenario_id": "mf01",
         "pos_m": 118.5, "battery": 76.5, "charging": False, "link": {"latency_ms": 14.2, "rssi_dbm": -78.0, "loss": 0.0}},
        {"robot_id": "r01", "online": False},
    ]})

    robot_id: RobotId
    online: StrictBool  # true or false only: "yes", "no", 1 or 0 is refused (bad_status), not guessed at
    ts: Nanos | None = None
    boot: int | None = Field(default=None, ge=0, le=2**63 - 1, description="the boot number its frames carry")
    scenario_id: ScenarioId | None = None
    pos_m: float | None = None
    battery: float | None = Field(default=None, ge=0, le=100)
    charging: StrictBool = False
    link: Link | None = None


class AlertEvent(BaseModel):
    """One step of an alert's life: raised, escalated, acknowledged or cleared.

    ``alert_id`` is stable while the alert is active (same place, detector and channel); a new
    alert after a clear gets a new id, and no two alerts share one (it names the robot whose
    reading raised it: ``{scenario}.{channel}.{detector}.{first_ts_ms}.{robot}``). ``severity`` is the alert's current severity.
    """

    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [{
        "alert_id": "mf01.ch4_t1.gas_limit.1795852800000.r01", "kind": "gas", "detector": "gas_limit",
        "severity": "critical", "state": "escalated", "scenario_id": "mf01", "robot_id": "r01",
        "channel": "ch4_t1", "value": 1.62, "limit": 1.5, "unit": "%",
        "first_ts": 1795852800000000000, "ts": 1795852804000000000,
        "message": "Methane 1.62 % at methane, face T1 in mf01 (15101 fully-mechanised longwall) has reached the "
                   "power-cut level 1.5 % (CMSR Art.498 methane settings, longwall face T1): cut power to the face "
                   "and return roadway, withdraw people.",
        "evidence": {"rule": "CMSR Art.498 methane settings, longwall face T1"},
    }]})

    alert_id: str = Field(pattern=ID_PATTERN)
    kind: AlertKind
    detector: str
    severity: Severity
    state: AlertState
    scenario_id: ScenarioId
    robot_id: RobotId | None = None
    channel: str | None = None
    value: float | None = None
    limit: float | None = None
    unit: str | None = None
    first_ts: Nanos
    ts: Nanos
    message: str
    evidence: dict[str, Any] = Field(default_factory=dict)
    operator: str | None = Field(default=None, description="who acknowledged, on acknowledged events")
    note: str | None = Field(default=None, description="the operator's note, on acknowledged events")
    incident_id: str | None = Field(default=None, pattern=ID_PATTERN,
                                    description="the incident this alert belongs to (alerts grouped by place and cause)")
    timing: AlertTiming = Field(default=AlertTiming.live, description=(
        "live: from readings as they arrived; late: from readings that arrived late (a robot's backlog after a "
        "coverage hole), so it happened at ts and is reported now; historical: from bulk history, stored only, "
        "never on the live topics"))
    detected_ts: Nanos | None = Field(default=None, description="when the ingestor produced this event (its clock)")


class IncidentState(str, Enum):
    raised = "raised"  # its first member alert was raised
    escalated = "escalated"  # its severity rose: an operator must look (again)
    updated = "updated"  # members joined, left or changed without raising the severity
    acknowledged = "acknowledged"
    cleared = "cleared"  # every member has cleared


class IncidentMember(BaseModel):
    """One alert of an incident, as it stands."""

    model_config = ConfigDict(extra="forbid")

    alert_id: str = Field(pattern=ID_PATTERN)
    detector: str
    kind: AlertKind
    severity: Severity
    state: AlertState
    active: bool
    scenario_id: ScenarioId | None = Field(default=None, description="where (an incident may gather the "
                                           "consequences of a fan stopping at the places it ventilates)")
    channel: str | None = None
    robot_id: RobotId | None = None
    value: float | None = None
    limit: float | None = None
    unit: str | None = None
    first_ts: Nanos
    ts: Nanos
    message: str
    timing: AlertTiming = AlertTiming.live


class IncidentEvent(BaseModel):
    """One step of an incident: the alerts of one place with one cause, handled by an operator as one.

    A methane outburst at a face is one incident whatever the number of sensors and detectors that
    see it; one acknowledgement covers it. ``severity`` is the worst active member's; ``needs_ack``
    says whether an operator must acknowledge it now (it reached ``warning`` or worse and has not
    been acknowledged since it last escalated). Member alerts keep their own events on ``alerts/...``.
    """

    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [{
        "incident_id": "mf01.methane.1795852800000.r01", "place": "mf01", "scenario_id": "mf01", "cause": "methane",
        "title": "Methane at mf01, 15101 fully-mechanised longwall", "kind": "gas", "severity": "critical",
        "max_severity": "critical", "state": "escalated", "needs_ack": True, "first_ts": 1795852800000000000,
        "ts": 1795852804000000000, "timing": "live",
        "message": "Methane 1.62 % at face T1 in mf01 (15101 fully-mechanised longwall) has reached the power-cut "
                   "level 1.50 %: cut power to the face and return roadway and withdraw people.",
        "members": [{"alert_id": "mf01.ch4_t1.gas_limit.1795852800000.r01", "detector": "gas_limit", "kind": "gas",
                     "severity": "critical", "state": "escalated", "active": True, "channel": "ch4_t1",
                     "robot_id": "r01", "value": 1.62, "limit": 1.5, "unit": "%", "first_ts": 1795852800000000000,
                     "ts": 1795852804000000000, "message": "Methane 1.62 % at face T1 in mf01 ..."}],
    }]})

    incident_id: str = Field(pattern=ID_PATTERN)
    place: str = Field(pattern=ID_PATTERN, description="the scenario, or the robot for a robot's own incident")
    scenario_id: ScenarioId
    cause: str = Field(description="methane, fire, air-quality, ventilation, heat, machine, water, sensors, robot, "
                                   "monitoring or notice")
    title: str = Field(description="what and where, in plain words")
    kind: AlertKind = Field(description="the kind of its worst member")
    severity: Severity = Field(description="the worst severity among its active members")
    max_severity: Severity
    state: IncidentState
    needs_ack: bool
    first_ts: Nanos
    ts: Nanos
    timing: AlertTiming = AlertTiming.live
    message: str = Field(description="the worst active member's sentence for the operator")
    members: list[IncidentMember]
    acknowledged_by: str | None = None
    acknowledged_ts: Nanos | None = None
    note: str | None = None
    detected_ts: Nanos | None = None


class IncidentAck(BaseModel):
    """An operator's acknowledgement of an incident (all its active alerts), published by the API on
    ``incidents/ack/{incident_id}``."""

    model_config = ConfigDict(json_schema_extra={"examples": [{
        "incident_id": "mf01.methane.1795852800000.r01", "scenario_id": "mf01", "operator": "shift-lead-2",
        "note": "Power to 15101 face cut, gas patrol sent", "ts": 1795852830000000000,
    }]})

    incident_id: str = Field(pattern=ID_PATTERN, description="must equal the topic's last level")
    scenario_id: ScenarioId | None = Field(default=None, description="the incident's scenario; routes the request")
    operator: str = Field(min_length=1, max_length=64)
    note: str | None = Field(default=None, max_length=500)
    ts: Nanos | None = None


# whether a scenario is watched, and if not, why (WatchStatus.state)
WatchState = Literal["watched", "no_data", "not_detected", "detectors_off"]


class WatchStatus(BaseModel):
    """Whether the detectors are watching a scenario, retained on ``watch/{scenario_id}`` by the ingest
    process that owns it and refreshed every ``every_s``: a board shows a place as not watched when this
    says so, or when it is older than three refreshes (the ingestor is gone)."""

    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [{
        "scenario_id": "mf01", "watched": True, "state": "watched", "detail": "", "frames": 60, "detected": 60,
        "skipped": 0, "last_frame_ts": 1795852800000000000, "last_arrival_ts": 1795852800010000000,
        "ts": 1795852801000000000, "every_s": 5.0, "partition": "0/1"}]})

    scenario_id: ScenarioId
    watched: bool
    state: WatchState = Field(
        description="watched; no_data: no frame for the silence time; not_detected: frames arrive but the "
                    "detectors failed on them; detectors_off: this ingest process runs without detectors")
    detail: str = ""
    frames: int = Field(ge=0, description="frames received in the last interval")
    detected: int = Field(ge=0, description="of those, frames the detectors checked")
    skipped: int = Field(ge=0, description="frames not checked: repeats of readings already checked")
    last_frame_ts: Nanos | None = Field(default=None, description="event time of the newest frame")
    last_arrival_ts: Nanos | None = Field(default=None, description="when the newest frame arrived (ingestor clock)")
    ts: Nanos
    every_s: float
    partition: str


class AlertAck(BaseModel):
    """An operator's acknowledgement of an active alert, published by the API on
    ``alerts/ack/{alert_id}`` and applied by the ingestor (the partition owning ``scenario_id``),
    which then publishes the alert's ``acknowledged`` state."""

    model_config = ConfigDict(json_schema_extra={"examples": [{
        "alert_id": "mf01.ch4_t1.gas_limit.1795852800000.r01", "scenario_id": "mf01", "operator": "shift-lead-2",
        "note": "Power to 15101 face cut, gas patrol sent", "ts": 1795852830000000000,
    }]})

    alert_id: str = Field(pattern=ID_PATTERN, description="must equal the topic's last level")
    scenario_id: ScenarioId | None = Field(default=None, description="the alert's place; routes the request")
    operator: str = Field(min_length=1, description="who acknowledged")
    note: str | None = None
    ts: Nanos | None = Field(default=None, description="when; the ingestor's clock if absent")


class DeadLetter(BaseModel):
    """A message the ingestor rejected, published on ``deadletter/{reason}`` and counted."""

    model_config = ConfigDict(json_schema_extra={"examples": [{
        "reason": "topic_mismatch", "detail": "frame of robot 'r02' in scenario 'mf01' on the topic of r01 in mf01",
        "topic": "minewatch/v1/telemetry/mf01/r01", "payload_encoding": "utf-8",
        "payload": '{"robot_id": "r02", "scenario_id": "mf01", "seq": 1, "ts": 1795852800000000000}',
        "payload_bytes": 79, "payload_sha256": "e2a569016208213418c2ad51cead922e9ee76dcd614c86f4caa8ae0f89008e9f",
        "payload_truncated": False, "ts": 1795852800120000000, "partition": "0/1",
    }, {
        "reason": "not_json", "detail": "JSON is malformed: invalid character (byte 0)",
        "topic": "minewatch/v1/telemetry/mf01/r01", "payload_encoding": "base64", "payload": "gqhyb2JvdF9pZKNyMDE=",
        "ts": 1795852800120000000, "partition": "0/1",
    }]})

    reason: str = Field(pattern=ID_PATTERN, description="short code, also the topic's last level: not_json, invalid, "
                        "topic_mismatch, unknown_scenario, bad_status, bad_ack, ...")
    detail: str = Field(description="what was wrong, for a person")
    topic: str = Field(description="the topic the message arrived on")
    payload: str = Field(description="the message as received (at most its first 4,096 bytes): its text, or base64 "
                         "when it is not UTF-8")
    payload_encoding: Literal["utf-8", "base64"]
    payload_bytes: int = Field(default=0, ge=0, description="the whole message's size in bytes")
    payload_sha256: str = Field(default="", description="SHA-256 of the whole message, hex")
    payload_truncated: bool = Field(default=False, description="true when ``payload`` is only the message's start")
    ts: Nanos = Field(description="when the ingestor rejected it")
    partition: str = Field(description="the ingest process, as I/N")
