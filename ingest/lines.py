"""Line protocol for what the ingestor stores (layout in ``docs/ingest.md``, "Storage layout").

The telemetry formatter is the hot path: ids are already checked against the topic-safe id
alphabet and channel names against :data:`CHANNEL_RE`, so nothing needs escaping, and each
stream's measurement-and-tags prefix is built once.

:meth:`TelemetryLines.format` formats one frame and is the reference;
:meth:`TelemetryLines.format_many` formats a whole batch with one msgspec encode (see there) and
gives the same text.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Sequence

import msgspec

from minewatch.catalogue import SCENARIOS, Scenario
from minewatch.influx import line
from minewatch.schema import AlertEvent, IncidentEvent, RobotStatus
from minewatch.wire import Frame

__all__ = ["TelemetryLines", "CHANNEL_RE", "RESERVED_FIELDS", "status_line", "alert_line", "incident_line",
           "stats_line"]

# A channel becomes an InfluxDB field key: keep to the id alphabet so no escaping is needed.
CHANNEL_RE = re.compile(r"\A[A-Za-z0-9_.-]{1,64}\Z")
# Fields of ``telemetry`` that are not channels; a reading may not take these names.
RESERVED_FIELDS = frozenset({"seq", "boot", "robot_ts", "battery", "pos_m", "latency_ms", "rssi_dbm", "late", "time"})


class _Row(msgspec.Struct, omit_defaults=True, gc=False, rename={"readings": "", "ts": "?"}):
    """One telemetry point laid out so that its JSON, put through :data:`_TO_LINES`, is the point's
    line protocol (see :meth:`TelemetryLines.format_many`)."""

    readings: dict[str, float | None]
    seq: tuple[int]
    boot: tuple[int] | None = None
    battery: float | None = None
    pos_m: float | None = None
    latency_ms: float | None = None
    rssi_dbm: float | None = None
    late: bool = False
    robot_ts: tuple[int] | None = None
    ts: int = -1  # always written: a frame's ts is >= 0


# JSON -> line protocol: ':' -> '=' and ']' -> 'i' (the seq tuple's closing bracket is the integer
# suffix); quotes, braces and '[' go.
_TO_LINES = bytes.maketrans(b":]", b"=i")
_DROP = b'"{}['
_row_enc = msgspec.json.Encoder()


class TelemetryLines:
    """Format frames as ``telemetry`` points: tags scenario, robot, scenario_kind."""

    def __init__(self, scenarios: dict[str, Scenario] | None = None) -> None:
        self.scenarios = SCENARIOS if scenarios is None else scenarios
        self._prefix: dict[tuple[str, str], str] = {}
        self._origin: dict[str, tuple[str, str]] = {}  # the other way round

    def prefix(self, scenario_id: str, robot_id: str) -> str:
        key = (scenario_id, robot_id)
        p = self._prefix.get(key)
        if p is None:
            if len(self._prefix) >= 100_000:  # robots come and go; keep the cache bounded
                self._prefix.clear()
                self._origin.clear()
            kind = self.scenarios[scenario_id].kind.value
            p = self._prefix[key] = f"telemetry,robot={robot_id},scenario={scenario_id},scenario_kind={kind} "
            self._origin[p] = key
        return p

    def origin(self, line: str) -> tuple[str, str] | None:
        """``(scenario_id, robot_id)`` of a telemetry line this formatter made lately (its prefix is
        still known), else None."""
        head, sep, _ = line.partition(" ")
        return self._origin.get(head + sep) if sep else None

    def format(self, f: Frame, late: bool = False, robot_ts: int | None = None) -> str:
        """One frame's point. ``robot_ts``: the robot's own time, when the ingestor corrected the
        robot's clock (the point's time is then the corrected one)."""
        fields = [f"{k}={v!r}" for k, v in f.readings.items() if v is not None]
        fields.append(f"seq={f.seq}i")
        if f.boot is not None:
            fields.append(f"boot={f.boot}i")
        if f.battery is not None:
            fields.append(f"battery={float(f.battery)!r}")
        if f.pos_m is not None:
            fields.append(f"pos_m={float(f.pos_m)!r}")
        link = f.link
        if link is not None:
            fields.append(f"latency_ms={float(link.latency_ms)!r},rssi_dbm={float(link.rssi_dbm)!r}")
        if late:
            fields.append("late=true")
        if robot_ts is not None:
            fields.append(f"robot_ts={robot_ts}i")
        return f"{self.prefix(f.scenario_id, f.robot_id)}{','.join(fields)} {f.ts}"

    def format_many(self, frames: Sequence[Frame], late: Sequence[bool],
                    robot_ts: dict[int, int] | None = None) -> list[str]:
        """``[self.format(f, l, robot_ts.get(i)) for i, (f, l) in enumerate(zip(frames, late))]``,
        with the numbers written by one msgspec call instead of a ``repr`` each.

        Each frame becomes a :class:`_Row`, whose JSON is ``{"":{"ch4":0.41,"co":3.0},"seq":[7],
        "battery":76.5,...,"late":true,"?":1795852800000000123}``. Dropping quotes, braces and
        ``[``, and turning ``:`` into ``=`` and ``]`` into ``i`` leaves
        ``=ch4=0.41,co=3.0,seq=7i,battery=76.5,...,late=true,?=1795852800000000123``: ``,?=``
        becomes the space before the time and ``,=`` (an empty key: only the readings' own) starts
        each point. ``None`` fields are left out by ``omit_defaults``; a frame with a ``None``
        reading is formatted by :meth:`format` instead. Numbers are taken as
        they are: frames as decoded carry floats (``3.0``, never ``3``) and ``late`` holds bools.

        msgspec and ``repr`` write every float in its shortest round-trip form; the text is the
        same for magnitudes from 1e-4 to below 1e16 and for 0 (all the mine's sensors). Outside that
        range msgspec writes ``1e16`` / ``0.00001`` / ``1e-7`` where ``repr`` writes ``1e+16`` /
        ``1e-05`` / ``1e-07``: the same float64 to InfluxDB.
        """
        if not frames:
            return []
        prefix = self.prefix
        rows: list[_Row] = []
        pres: list[str] = []
        add_row, add_pre = rows.append, pres.append
        last_sid = last_rid = pre = ""
        rts = robot_ts or {}
        for i, (f, is_late) in enumerate(zip(frames, late)):
            link = f.link
            boot = None if f.boot is None else (f.boot,)
            rt = (rts[i],) if rts and i in rts else None
            if link is None:
                add_row(_Row(f.readings, (f.seq,), boot, f.battery, f.pos_m, None, None, is_late, rt, f.ts))
            else:
                add_row(_Row(f.readings, (f.seq,), boot, f.battery, f.pos_m, link.latency_ms, link.rssi_dbm, is_late,
                             rt, f.ts))
            sid, rid = f.scenario_id, f.robot_id
            if sid != last_sid or rid != last_rid:
                pre, last_sid, last_rid = prefix(sid, rid), sid, rid
            add_pre(pre)
        text = _row_enc.encode(rows).translate(_TO_LINES, _DROP).replace(b",?=", b" ").decode()
        if "=," in text:  # a frame without readings: "=,seq=" (only there is '=' followed by ',')
            text = text.replace("=,seq=", "=seq=")
        parts = text[1:-1].split(",=")
        fmt = self.format
        if len(parts) != len(rows):  # a reading name the ingestor would have refused ('', quotes, ...)
            return [fmt(f, is_late, rts.get(i)) for i, (f, is_late) in enumerate(zip(frames, late))]
        lines = [p + s for p, s in zip(pres, parts)]
        if "=null" in text:
            for i, f in enumerate(frames):
                if None in f.readings.values():
                    lines[i] = fmt(f, late[i], rts.get(i))
        return lines


def status_line(s: RobotStatus, now_ns: int | None = None) -> str | None:
    """``robot_status``: tags robot, scenario; fields online, charging, battery, pos_m, link."""
    link = s.link
    fields = {"online": s.online, "charging": s.charging, "battery": s.battery, "pos_m": s.pos_m,
              "latency_ms": link.latency_ms if link else None, "rssi_dbm": link.rssi_dbm if link else None,
              "loss": link.loss if link else None}
    tags = {"robot": s.robot_id, "scenario": s.scenario_id or ""}
    return line("robot_status", tags, fields, s.ts if s.ts is not None else (now_ns or time.time_ns()))


def alert_line(ev: AlertEvent) -> str | None:
    """``alert_events``: one point per alert step, read back by the API to rebuild its alert view."""
    # alert_id is a tag: two alerts of one place stepping in the same frame (methane at T0 and at
    # the shearer crossing together) share every other tag and the time, and as fields they would
    # overwrite each other (same series and timestamp).
    # timing is a tag (live events have none) so readers of the live picture can leave history out.
    tags = {"scenario": ev.scenario_id, "kind": ev.kind.value, "severity": ev.severity.value,
            "state": ev.state.value, "detector": ev.detector, "alert_id": ev.alert_id}
    if ev.timing.value != "live":
        tags["timing"] = ev.timing.value
    fields = {"channel": ev.channel, "robot_id": ev.robot_id,
              "value": None if ev.value is None else float(ev.value),
              "limit": None if ev.limit is None else float(ev.limit), "unit": ev.unit,
              "first_ts": int(ev.first_ts), "message": ev.message,
              "evidence": json.dumps(ev.evidence, separators=(",", ":"), sort_keys=True, default=str),
              "operator": ev.operator, "note": ev.note, "incident_id": ev.incident_id,
              "detected_ts": None if ev.detected_ts is None else int(ev.detected_ts)}
    return line("alert_events", tags, fields, ev.ts)


def incident_line(inc: IncidentEvent) -> str | None:
    """``incident_events``: one point per incident step (the whole event as JSON in ``event``)."""
    tags = {"scenario": inc.scenario_id, "cause": inc.cause, "severity": inc.severity.value, "state": inc.state.value,
            "incident_id": inc.incident_id}
    if inc.timing.value != "live":
        tags["timing"] = inc.timing.value
    fields = {"title": inc.title, "first_ts": int(inc.first_ts), "needs_ack": inc.needs_ack,
              "event": inc.model_dump_json(exclude_none=True)}
    return line("incident_events", tags, fields, inc.ts)


def stats_line(tags: dict[str, str], fields: dict[str, int | float], now_ns: int) -> str | None:
    return line("ingest_stats", tags, fields, now_ns)
