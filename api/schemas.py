"""Response and request models of the API: one ``*Public`` per resource and a list wrapper
``*sPublic(data, count)``. Alert events themselves are :class:`minewatch.schema.AlertEvent`."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from api.times import MAX_NS_DOC, TIME_PATTERN
from minewatch.schema import AlertEvent, AlertKind, AlertState, AlertTiming, IncidentEvent, Link, Severity
from minewatch.settings import ApiRole

__all__ = [
    "AckAccepted", "AckRequest", "AlertDetail", "AlertPublic", "AlertsPublic", "ChannelPublic", "ErrorModel",
    "QuantityDisplay",
    "IncidentPublic", "IncidentsPublic", "IncidentDetail", "WatchPublic",
    "Health", "LimitPublic", "Me", "ReplayCreate", "Role", "ReplayDiff", "ReplayPublic", "ReplaysPublic", "RobotPublic",
    "RobotsPublic", "ScenarioPublic", "ScenariosPublic", "ShiftPublic", "ShiftsPublic", "TelemetryLatest",
    "TelemetryHistory", "SeriesPublic", "LatestReading",
]

Nanos = int
Role = ApiRole



def example_of(model: type[BaseModel]) -> dict[str, Any]:
    """The first example of ``model``'s JSON schema (``json_schema_extra``)."""
    extra = model.model_config.get("json_schema_extra")
    examples = extra.get("examples") if isinstance(extra, dict) else None
    if not (isinstance(examples, list) and examples and isinstance(examples[0], dict)):
        raise TypeError(f"{model.__name__} has no example")
    return examples[0]

class ErrorModel(BaseModel):
    """Every 4xx/5xx answer other than request validation (422) has this body."""

    model_config = ConfigDict(json_schema_extra={"examples": [{"detail": "unknown API key"}]})

    detail: str = Field(examples=["no API key: send it in the X-API-Key header"])


def errors(*codes: int, streaming: bool = False) -> dict[int | str, dict[str, Any]]:
    """OpenAPI ``responses`` entries for the given error codes (401 and 403 always). For a route
    whose success is not JSON (a stream, a CSV file), ``streaming`` states the errors' JSON
    content explicitly instead of letting them take the route's media type."""
    text = {
        400: "The body is not readable JSON", 401: "No API key, or an unknown one", 403: "The key's role may not do this",
        404: "Not found",
        409: "Conflict with the current state", 429: "Too many running jobs",
        503: "A backing service (MQTT broker or InfluxDB) is unreachable",
    }
    out: dict[int | str, dict[str, Any]] = {}
    for c in (401, 403, *codes):
        if streaming:
            out[c] = {"description": text.get(c, "Error"),
                      "content": {"application/json": {"schema": {"$ref": "#/components/schemas/ErrorModel"}}}}
        else:
            out[c] = {"model": ErrorModel, "description": text.get(c, "Error")}
    return out


class Health(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [
        {"status": "ok", "mqtt": True, "influx": True, "alerts_loaded": True, "active_alerts": 2, "version": "0.1.0"}]})

    status: Literal["ok", "degraded"] = Field(description="ok when both the broker and InfluxDB are reachable")
    mqtt: bool = Field(description="the alert subscriber is connected to the broker")
    influx: bool = Field(description="InfluxDB answers /ping")
    alerts_loaded: bool = Field(description="the alert view was built from alert_events at start-up")
    active_alerts: int
    version: str


class Me(BaseModel):
    """Who the key is: what the page shows and hides by."""
    model_config = ConfigDict(json_schema_extra={"examples": [
        {"role": "operator", "key_id": "3f2a9c1e", "acknowledge": True, "start_replays": False}]})

    role: Role = Field(description="the key's role")
    key_id: str = Field(description="a short digest of the key (safe to show and log; not the key)")
    acknowledge: bool = Field(description="may acknowledge alerts (operator and engineer)")
    start_replays: bool = Field(description="may start and cancel replays (engineer)")


# ----------------------------------------------------------------------------- alerts

class AlertPublic(BaseModel):
    """An alert: its latest event plus a summary of its life so far."""

    model_config = ConfigDict(json_schema_extra={"examples": [{
        "alert_id": "mf01.ch4_t1.gas_limit.1795852800000.r01", "kind": "gas", "detector": "gas_limit",
        "severity": "critical", "state": "acknowledged", "scenario_id": "mf01", "robot_id": "r01",
        "channel": "ch4_t1", "value": 1.62, "limit": 1.5, "unit": "%", "first_ts": 1795852800000000000,
        "ts": 1795852810000000000, "message": "Methane 1.62 % at face T1 in mf01 has reached the power-cut level 1.5 %.",
        "evidence": {}, "operator": "Wang Li", "note": "power cut confirmed", "active": True,
        "max_severity": "critical", "acknowledged_by": "Wang Li", "acknowledged_ts": 1795852810000000000,
        "cleared_ts": None, "events": 3,
    }]})

    alert_id: str
    kind: AlertKind
    detector: str
    severity: Severity = Field(description="current severity")
    state: AlertState = Field(description="state of the latest event")
    scenario_id: str
    robot_id: str | None = None
    channel: str | None = None
    value: float | None = None
    limit: float | None = None
    unit: str | None = None
    first_ts: Nanos = Field(description="when the alert was first raised, ns since the epoch")
    ts: Nanos = Field(description="time of the latest event, ns since the epoch")
    message: str
    evidence: dict[str, Any] = Field(default_factory=dict)
    operator: str | None = None
    note: str | None = None
    incident_id: str | None = Field(default=None, description="the incident the alert belongs to")
    timing: AlertTiming = Field(default=AlertTiming.live, description="live, or late: it happened at ts and was "
                                                                      "reported when it arrived (detected_ts)")
    detected_ts: Nanos | None = None
    active: bool = Field(description="not cleared yet")
    max_severity: Severity = Field(description="the highest severity the alert reached")
    acknowledged_by: str | None = None
    acknowledged_ts: Nanos | None = None
    cleared_ts: Nanos | None = None
    events: int = Field(ge=1, description="number of events in its history")


class AlertsPublic(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [{"data": [], "count": 0}]})

    data: list[AlertPublic]
    count: int


class AlertDetail(AlertPublic):
    """An alert with its whole event history, oldest first."""

    model_config = ConfigDict(json_schema_extra={"examples": [{
        "alert_id": "mf01.ch4_t1.gas_limit.1795852800000.r01", "kind": "gas", "detector": "gas_limit",
        "severity": "alarm", "state": "cleared", "scenario_id": "mf01", "robot_id": "r01", "channel": "ch4_t1",
        "value": 0.8, "limit": 1.0, "unit": "%", "first_ts": 1795852800000000000, "ts": 1795852900000000000,
        "message": "Methane at face T1 in mf01 is below the restore level 1 %: the alert is cleared.",
        "evidence": {}, "active": False, "max_severity": "alarm", "cleared_ts": 1795852900000000000, "events": 1,
        "history": [{
            "alert_id": "mf01.ch4_t1.gas_limit.1795852800000.r01", "kind": "gas", "detector": "gas_limit",
            "severity": "alarm", "state": "cleared", "scenario_id": "mf01", "robot_id": "r01", "channel": "ch4_t1",
            "value": 0.8, "limit": 1.0, "unit": "%", "first_ts": 1795852800000000000, "ts": 1795852900000000000,
            "message": "Methane at face T1 in mf01 is below the restore level 1 %: the alert is cleared.",
            "evidence": {}}]}]})

    history: list[AlertEvent]


class AckRequest(BaseModel):
    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [
        {"operator": "Wang Li", "note": "power cut confirmed with the face, deputy sent"}]})

    operator: str = Field(min_length=1, max_length=100, pattern=r"\S", description="the operator's name")
    note: str = Field(default="", max_length=2000, description="what was done")


class AckAccepted(BaseModel):
    """The acknowledgement was published; the ingestor has not confirmed it yet."""

    model_config = ConfigDict(json_schema_extra={"examples": [{
        "alert_id": "mf01.ch4_t1.gas_limit.1795852800000.r01", "status": "pending", "operator": "Wang Li",
        "note": "power cut confirmed", "ts": 1795852810000000000}]})

    alert_id: str | None = None
    incident_id: str | None = None
    status: Literal["pending"] = "pending"
    operator: str
    note: str
    ts: Nanos


# ----------------------------------------------------------------------------- incidents

class IncidentPublic(IncidentEvent):
    """An incident: its latest step (members included) and whether it is still open."""

    model_config = ConfigDict(json_schema_extra={"examples": [{
        **example_of(IncidentEvent), "active": True, "events": 2}]})

    active: bool = Field(description="not cleared yet")
    events: int = Field(ge=1, description="number of steps in its history")


class IncidentDetail(IncidentPublic):
    """An incident with every step of its history, oldest first."""

    model_config = ConfigDict(json_schema_extra={"examples": [{
        **example_of(IncidentPublic), "history": [example_of(IncidentEvent)]}]})

    history: list[IncidentEvent]


class IncidentsPublic(BaseModel):
    """Incidents in the order an operator works them: those needing acknowledgement first, then
    by severity, then the newest first."""

    model_config = ConfigDict(json_schema_extra={"examples": [{"data": [], "count": 0}]})

    data: list[IncidentPublic]
    count: int


# ----------------------------------------------------------------------------- scenarios

class WatchPublic(BaseModel):
    """Whether the detectors are watching a scenario (from the ingestor's ``watch/{scenario}``)."""

    model_config = ConfigDict(json_schema_extra={"examples": [
        {"watched": True, "state": "watched", "detail": "", "ts": 1795852800000000000}]})

    watched: bool
    state: Literal["watched", "no_data", "not_detected", "detectors_off", "no_ingest"] = Field(
        description="watched; no_data: no frame for a minute; not_detected: frames arrive but the detectors "
                    "failed on them; detectors_off: the ingest process runs without detectors; no_ingest: no "
                    "word from the ingest process that owns it (stopped, or cut off)")
    detail: str = ""
    ts: Nanos | None = Field(default=None, description="when the ingestor last said so")


class LimitPublic(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [{
        "direction": "above", "levels": {"alarm": 1.0, "critical": 1.5}, "restore": 1.0,
        "rule": "CMSR Art.498 methane settings, longwall face T1", "action": "cut power, withdraw people"}]})

    direction: Literal["above", "below"]
    levels: dict[str, float] = Field(description="severity → threshold", examples=[{"alarm": 1.0, "critical": 1.5}])
    restore: float = Field(description="where the alert clears")
    rule: str
    action: str


class QuantityDisplay(BaseModel):
    """How a channel's values are shown: its quantity's entry in the catalogue
    (``minewatch.catalogue.QUANTITIES``)."""

    model_config = ConfigDict(json_schema_extra={"examples": [
        {"decimals": 2, "short": "CH₄", "unit": "%", "signed": False}]})

    decimals: int = Field(ge=0, description="decimals a value is shown with (as many as the sensor's resolution has)")
    short: str = Field(description="the quantity's short name on the board")
    unit: str = Field(examples=["%"])
    signed: bool = Field(description="the sign is a direction (air velocity); limits apply to the size")


class ChannelPublic(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [{
        "name": "ch4_t1", "label": "methane, face T1", "quantity": "ch4", "unit": "%",
        "display": {"decimals": 2, "short": "CH₄", "unit": "%", "signed": False}, "low": 0.0, "high": 4.0,
        "normal": [0.15, 0.55], "limits": [{"direction": "above", "levels": {"alarm": 1.0, "critical": 1.5},
                                           "restore": 1.0, "rule": "CMSR Art.498 methane settings, longwall face T1",
                                           "action": "cut power to the face and return roadway, withdraw people"}]}]})

    name: str = Field(examples=["ch4_t1"])
    label: str = Field(examples=["methane, face T1"])
    quantity: str
    unit: str = Field(examples=["%"])
    display: QuantityDisplay
    low: float = Field(description="sensor range low")
    high: float = Field(description="sensor range high")
    normal: tuple[float, float] = Field(description="normal operating band")
    limits: list[LimitPublic]


class LatestReading(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [
        {"value": 0.41, "ts": 1795852800000000000, "robot_id": "r01"},
        {"value": 1.12, "ts": 1795852800000000000, "robot_id": "r01", "beyond": "alarm"}]})

    value: float | None
    ts: Nanos
    robot_id: str
    beyond: Severity | None = Field(default=None, description="the most severe limit level this value is at or "
                                    "past (the catalogue's limits), whether or not an alert stands for it")


class ScenarioPublic(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [{
        "id": "mf01", "name": "15101 fully-mechanised longwall", "kind": "mining_face", "group": "faces",
        "machine": None, "channels": [], "status": "ok", "worst_alert": None, "active_alerts": 0,
        "watch": {"watched": True, "state": "watched", "detail": "", "ts": 1795852800000000000},
        "readings": {"ch4_t1": {"value": 0.41, "ts": 1795852800000000000, "robot_id": "r01"}}, "robots": ["r01"]}]})

    id: str = Field(examples=["mf01"])
    name: str = Field(examples=["15101 fully-mechanised longwall"])
    kind: str = Field(examples=["mining_face"])
    group: str = Field(examples=["faces"])
    machine: str | None = None
    channels: list[ChannelPublic]
    status: Literal["ok", "info", "warning", "alarm", "critical"] = Field(
        description="severity of the worst active alert, or ok")
    worst_alert: AlertPublic | None = None
    active_alerts: int
    watch: WatchPublic = Field(description="whether the detectors are watching it: a board shows a place that is "
                                           "not watched as such, never as ok")
    readings: dict[str, LatestReading] = Field(description="latest value of each channel seen")
    robots: list[str] = Field(description="robots online in the scenario now")


class ScenariosPublic(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [{"data": [], "count": 31}]})

    data: list[ScenarioPublic]
    count: int


# ----------------------------------------------------------------------------- robots

class RobotPublic(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [{
        "robot_id": "r01", "online": True, "scenario_id": "mf01", "pos_m": 118.5, "battery": 76.5,
        "charging": False, "link": {"latency_ms": 14.2, "rssi_dbm": -78.0, "loss": 0.0},
        "status_ts": 1795852800000000000, "last_seen_ts": 1795852801000000000, "seq": 4211}]})

    robot_id: str
    online: bool
    scenario_id: str | None = None
    pos_m: float | None = None
    battery: float | None = None
    charging: bool = False
    link: Link | None = None
    status_ts: Nanos | None = Field(default=None, description="time of the last status message")
    last_seen_ts: Nanos | None = Field(default=None, description="time of the last telemetry frame seen live")
    seq: int | None = None


class RobotsPublic(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [{"data": [], "count": 35}]})

    data: list[RobotPublic]
    count: int


# ----------------------------------------------------------------------------- telemetry

class TelemetryLatest(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [{
        "scenario_id": "mf01", "readings": {"ch4_t1": {"value": 0.41, "ts": 1795852800000000000, "robot_id": "r01"},
                                            "co": {"value": 3.0, "ts": 1795852800000000000, "robot_id": "r01"}}}]})

    scenario_id: str
    readings: dict[str, LatestReading]


class SeriesPublic(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [{
        "channel": "ch4_t1", "unit": "%", "robot_id": None, "ts": [1795852800000000000, 1795852860000000000],
        "mean": [0.41, 0.43], "min": [0.38, 0.40], "max": [0.45, 0.47]}]})

    channel: str
    unit: str
    robot_id: str | None = None
    ts: list[Nanos] = Field(description="start of each time bucket")
    mean: list[float | None]
    min: list[float | None]
    max: list[float | None]


class TelemetryHistory(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [{
        "scenario_id": "mf01", "robot_id": None, "start": 1795852800000000000, "end": 1795852920000000000,
        "interval_ns": 60000000000, "series": []}]})

    scenario_id: str
    robot_id: str | None = None
    start: Nanos
    end: Nanos
    interval_ns: int = Field(description="width of a bucket (GROUP BY time())")
    source: Literal["raw", "5m"] = Field(default="raw", description="raw readings, or the 5-minute statistics "
                                         "kept for a year once the raw data has expired")
    series: list[SeriesPublic]


# ----------------------------------------------------------------------------- shifts

class ShiftPublic(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [{
        "id": "2026-11-27:night", "day": "2026-11-27", "name": "night", "kind": "production",
        "start": "2026-11-26T16:00:00Z", "end": "2026-11-27T00:00:00Z",
        "start_ns": 1795795200000000000, "end_ns": 1795824000000000000}]})

    id: str
    day: str
    name: str
    kind: Literal["production", "maintenance"]
    start: str = Field(description="UTC, ISO 8601")
    end: str
    start_ns: Nanos
    end_ns: Nanos


class ShiftsPublic(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [{"data": [], "count": 0, "tz_offset_h": 8.0}]})

    data: list[ShiftPublic]
    count: int
    tz_offset_h: float = Field(description="mine local time offset from UTC")


# ----------------------------------------------------------------------------- replays

_SHIFT = r"^[0-9]{4}-[0-9]{2}-[0-9]{2}:[a-z0-9_-]{1,32}$"  # api.params.SHIFT_PATTERN
OVERRIDE_KEY = (r"^[A-Za-z0-9_*?\[\]-]{1,32}\.[A-Za-z0-9_*?\[\]-]{1,32}"
                r"\.(warning|alarm|critical|restore|rise|debounce|spike_k|stuck_s|change_h|change_warmup|drift_tol"
                r"|selfdrift_tol)"
                r"(\.(high|low))?$")  # detectors.overrides: LEVEL_FIELDS + SETTING_FIELDS


def _shift_or_window(schema: dict[str, Any]) -> None:
    schema["oneOf"] = [
        {"title": "a shift", "required": ["shift"], "not": {"anyOf": [{"required": ["start"]}, {"required": ["end"]}]}},
        {"title": "a window", "required": ["start", "end"], "not": {"required": ["shift"]}},
    ]
    for name in ("shift", "start", "end"):  # absent when not given: never null
        schema["properties"][name].pop("default", None)
    schema["examples"] = [
        {"shift": "2026-11-27:night", "overrides": {"mf01.ch4_t1.critical": 1.2}, "speed": None},
        {"start": "2026-11-27T00:00:00Z", "end": "2026-11-27T01:00:00Z", "speed": 100}]


class ReplayCreate(BaseModel):
    """A shift, or a window of ``start`` and ``end`` (end after start, at most 7 days), never both."""

    model_config = ConfigDict(extra="forbid", json_schema_extra=_shift_or_window)

    shift: str = Field(default=None, pattern=_SHIFT,  # type: ignore[assignment]  # absent, never null
                       description="YYYY-MM-DD:NAME, a shift of the calendar; or give start and end")
    start: Annotated[str, Field(pattern=TIME_PATTERN)] | Annotated[int, Field(ge=0, le=MAX_NS_DOC)] = Field(
        default=None, description="window start, ISO 8601 or ns")  # type: ignore[assignment]  # absent, never null
    end: Annotated[str, Field(pattern=TIME_PATTERN)] | Annotated[int, Field(ge=0, le=MAX_NS_DOC)] = Field(
        default=None, description="window end (exclusive), ISO 8601 or ns; one not after start is an empty "
        "window, one more than 7 days after it is cut to 7 days")  # type: ignore[assignment]  # absent, never null
    overrides: dict[Annotated[str, Field(pattern=OVERRIDE_KEY)], Annotated[float, Field(allow_inf_nan=False)]] = Field(
        default_factory=dict, max_length=200, json_schema_extra={"additionalProperties": False},
        description="detector limit overrides, SCENARIO.CHANNEL.FIELD[.high|.low] as the detectors define them "
        "(e.g. mf01.ch4_t1.critical; shell patterns allowed); each must match at least one limit")
    speed: float | None = Field(default=None, ge=1, le=1000,
                                description="null: as fast as possible; else data seconds per wall second")

    @model_validator(mode="after")
    def _one_of(self) -> ReplayCreate:
        if self.shift is not None and (self.start is not None or self.end is not None):
            raise ValueError("give a shift or a start and end, not both")
        if self.shift is None and (self.start is None or self.end is None):
            raise ValueError("give a shift (YYYY-MM-DD:NAME) or both start and end")
        return self


class ReplayDiff(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [{
        "same": 12, "missed": 0, "new": 3, "not_compared": 2, "tolerance_s": 2.0, "missed_alerts": [],
        "new_alerts": ["ra01.ch4.gas_limit.1795853100000"]}]})

    same: int = Field(description="alerts found by the replay that match one recorded live")
    missed: int = Field(description="alerts recorded live that the replay did not find")
    new: int = Field(description="alerts the replay found that were not recorded live")
    not_compared: int = Field(description="alerts of kinds the stored readings cannot reproduce "
                              "(vibration needs waveforms, robot health the status messages)")
    tolerance_s: float = Field(description="first_ts tolerance of a match")
    missed_alerts: list[AlertPublic] = Field(default_factory=list)
    new_alerts: list[str] = Field(default_factory=list, description="alert ids of the new alerts")


class ReplayPublic(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [{
        "id": "rp-3f2a1c9d", "state": "done", "shift": "2026-11-27:night", "start": 1795795200000000000,
        "end": 1795824000000000000, "overrides": {}, "speed": None, "progress": 1.0, "frames": 575000,
        "data_ts": 1795824000000000000, "elapsed_s": 21.4, "x_realtime": 1345.8, "alert_count": 0, "alerts": [],
        "diff": None,
        "error": None, "created_by": "engineer"}]})

    id: str
    state: Literal["queued", "running", "done", "failed", "cancelled"]
    shift: str | None
    start: Nanos
    end: Nanos
    overrides: dict[str, float]
    speed: float | None = None
    progress: float = Field(ge=0, le=1)
    frames: int = Field(description="frames fed to the detectors so far (a frame: one robot's telemetry "
                        "message, its readings of one moment; one stored telemetry row)")
    data_ts: Nanos | None = Field(default=None, description="data time reached")
    elapsed_s: float
    x_realtime: float | None = Field(default=None, description="data time covered / wall time taken")
    alert_count: int = Field(description="alert events the detectors produced so far")
    alerts: list[AlertEvent] = Field(description="every alert event the detectors produced, in order "
                                     "(left out of the list of replays)")
    diff: ReplayDiff | None = Field(default=None, description="against the alerts recorded live; when done")
    error: str | None = None
    note: str | None = Field(default=None, description="what a person should know about the result, e.g. that "
                             "the window held no stored telemetry (a replay of nothing is done, with zeros)")
    created_by: str


class ReplaysPublic(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [{"data": [], "count": 0}]})

    data: list[ReplayPublic]
    count: int
