"""Fault injection: the fault file, the built-in library, and what each fault does to the mine.

A fault file (JSON or YAML) is a list of faults (or ``{"faults": [...]}``)::

    [{"kind": "methane_outburst", "scenario": "mf01", "channel": "ch4_t1",
      "start": "+30s", "duration": "60s", "peak": 1.8}]

Common keys: ``kind``, ``scenario``, ``channel``, ``robot``, ``start`` (``+30s``/``+5m`` after
the run start, or ISO 8601), ``duration`` (``90s``, ``20m``, ``4h``), ``peak``, ``id``.
Kind-specific keys are listed in :data:`KINDS`. ``builtin:NAME`` in place of a file name takes
faults from :data:`LIBRARY`.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from minewatch.catalogue import SCENARIOS, ScenarioKind
from simulator.layout import LOCAL_FANS, MAIN_FANS
from simulator.timeutil import NS, parse_duration_s, parse_time_ns

if TYPE_CHECKING:
    from minewatch.catalogue import Machine

__all__ = ["FaultSpec", "FaultError", "KINDS", "LIBRARY", "load_faults", "ActiveFault", "PHYSICS", "SENSOR", "FLEET"]


class FaultError(ValueError):
    """A fault file or entry that cannot be used; the message says which entry and why."""


# kind -> (default duration, scenario kinds it applies to (None: any), extra keys with defaults, help)
KINDS: dict[str, tuple[str, tuple[str, ...] | None, dict[str, Any], str]] = {
    "methane_outburst": ("90s", None, {}, "fast methane rise above `peak` (default: the cut level + 0.3 %) at "
                         "`channel`, back below the restore level within the window"),
    "methane_buildup": ("15m", None, {"airflow": None}, "ventilation drop to `airflow` (fraction, default chosen so "
                        "methane passes `peak`) for the first 65 % of the window; methane climbs, then clears"),
    "co_rise": ("2h", None, {}, "spontaneous combustion: CO climbs to `peak` ppm (default 30), CO2 and "
                "temperature follow; treated and back to normal by the end"),
    "o2_depletion": ("20m", None, {}, "O2 falls to `peak` % (default 19.3) with CO2 rising (blackdamp)"),
    "main_fan_stoppage": ("10m", ("main_fan",), {"standby_after": None}, "unit A trips; the standby starts after "
                          "`standby_after` (never if unset); airflow falls to natural draught, methane rises downstream"),
    "local_fan_stoppage": ("8m", ("local_fan",), {}, "the local fan stops; its heading's airflow collapses, "
                           "methane climbs in the heading"),
    "airflow_reversal": ("10m", ("main_fan",), {}, "the main fan is reversed: flow reverses at 50 % of normal"),
    "bearing_fault": ("4h", None, {"defect": "outer"}, "a rolling-bearing defect (`defect`: outer, inner, ball) grows "
                      "over the window: impulses at BPFO/BPFI/BSF exciting a resonance; bearing temperature rises "
                      "late; `peak` = final impulse amplitude m/s² (default 25)"),
    "imbalance": ("2h", None, {}, "rotor imbalance grows over 60 % of the window: 1x rises until the ISO 10816-3 "
                  "velocity RMS reaches `peak` mm/s (default 1.1 x the machine's C/D boundary, zone D)"),
    "belt_drum_overheating": ("1h", ("belt",), {}, "drive drum surface heats to `peak` °C (default 75) and cools"),
    "sensor_stuck": ("10m", None, {}, "the sensor repeats its last value"),
    "sensor_drift": ("1h", None, {}, "the sensor drifts linearly, reaching an offset `peak` (default one normal "
                     "band) at the end"),
    "sensor_out_of_range": ("5m", None, {"value": None}, "the sensor reports `value`, outside its physical range "
                            "(default 125 % of the range's top)"),
    "robot_offline": ("5m", None, {}, "the robot dies: no frames, its MQTT will marks it offline; back at the end"),
    "link_outage": ("3m", None, {}, "5G outage: the robot buffers frames and sends the backlog when the link returns"),
}
PHYSICS = {"methane_outburst", "methane_buildup", "co_rise", "o2_depletion", "main_fan_stoppage",
           "local_fan_stoppage", "airflow_reversal", "bearing_fault", "imbalance", "belt_drum_overheating"}
SENSOR = {"sensor_stuck", "sensor_drift", "sensor_out_of_range"}
FLEET = {"robot_offline", "link_outage"}

# Built-in fault sets (``--faults builtin:NAME``); times relative to the run start.
LIBRARY: dict[str, list[dict[str, Any]]] = {
    "outburst": [{"kind": "methane_outburst", "scenario": "mf01", "channel": "ch4_t1", "start": "+30s",
                  "duration": "90s", "peak": 1.8}],
    "demo": [
        {"kind": "methane_outburst", "scenario": "mf01", "channel": "ch4_t1", "start": "+45s", "duration": "90s", "peak": 1.8},
        {"kind": "local_fan_stoppage", "scenario": "lf02", "start": "+6m", "duration": "8m"},
        {"kind": "belt_drum_overheating", "scenario": "bc02", "start": "+5m", "duration": "40m", "peak": 75},
        {"kind": "sensor_stuck", "scenario": "ra01", "channel": "ch4", "start": "+10m", "duration": "10m"},
        {"kind": "bearing_fault", "scenario": "pr01", "start": "+1m", "duration": "1h", "defect": "outer"},
        {"kind": "co_rise", "scenario": "mf02", "start": "+20m", "duration": "40m", "peak": 30},
        {"kind": "main_fan_stoppage", "scenario": "vf02", "start": "+45m", "duration": "6m", "standby_after": "4m"},
        {"kind": "link_outage", "scenario": "hf03", "start": "+25m", "duration": "3m"},
        {"kind": "sensor_out_of_range", "scenario": "ss02", "channel": "t", "start": "+30m", "duration": "5m"},
    ],
    "shift": [  # one of everything over an 8-hour shift
        {"kind": "methane_outburst", "scenario": "mf01", "channel": "ch4_t1", "start": "+20m", "duration": "90s", "peak": 1.8},
        {"kind": "methane_buildup", "scenario": "hf01", "start": "+40m", "duration": "15m", "peak": 1.2},
        {"kind": "co_rise", "scenario": "mf02", "start": "+1h", "duration": "2h", "peak": 30},
        {"kind": "o2_depletion", "scenario": "mf01", "start": "+1h10m", "duration": "20m", "peak": 19.3},
        {"kind": "main_fan_stoppage", "scenario": "vf01", "start": "+3h30m", "duration": "8m", "standby_after": "6m"},
        {"kind": "local_fan_stoppage", "scenario": "lf03", "start": "+1h30m", "duration": "8m"},
        {"kind": "airflow_reversal", "scenario": "vf02", "start": "+6h", "duration": "10m"},
        {"kind": "bearing_fault", "scenario": "lf01", "start": "+1h", "duration": "4h", "defect": "inner"},
        {"kind": "imbalance", "scenario": "vf01", "start": "+5h", "duration": "2h"},
        {"kind": "belt_drum_overheating", "scenario": "bc01", "start": "+2h", "duration": "1h", "peak": 75},
        {"kind": "sensor_stuck", "scenario": "ra01", "channel": "ch4", "start": "+2h30m", "duration": "20m"},
        {"kind": "sensor_drift", "scenario": "ss01", "channel": "t", "start": "+4h", "duration": "1h", "peak": 6.0},
        {"kind": "sensor_out_of_range", "scenario": "pr02", "channel": "wl", "start": "+5h", "duration": "5m"},
        {"kind": "robot_offline", "scenario": "cb01", "start": "+5h30m", "duration": "5m"},
        {"kind": "link_outage", "scenario": "gd01", "start": "+6h30m", "duration": "3m"},
    ],
}
LIBRARY.update({kind: [spec] for spec in LIBRARY["shift"] for kind in [spec["kind"]] if kind not in LIBRARY})


@dataclass
class FaultSpec:
    """One fault as written in a fault file."""

    kind: str
    scenario: str | None = None
    channel: str | None = None
    robot: str | None = None
    start: str | int = "+0s"
    duration: str | float | None = None
    peak: float | None = None
    id: str | None = None
    params: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_dict(cls, d: dict[str, Any], where: str = "fault") -> FaultSpec:
        if not isinstance(d, dict):
            raise FaultError(f"{where}: must be an object, got {type(d).__name__}")
        d = dict(d)
        kind = d.pop("kind", None)
        if kind not in KINDS:
            raise FaultError(f"{where}: unknown kind {kind!r}; known: {', '.join(KINDS)}")
        extra_keys = KINDS[kind][2]
        known = {"scenario", "channel", "robot", "start", "duration", "peak", "id"}
        params = {k: d.pop(k) for k in list(d) if k in extra_keys}
        unknown = set(d) - known
        if unknown:
            raise FaultError(f"{where}: unknown key(s) {', '.join(sorted(unknown))} for {kind}")
        peak = d.get("peak")
        if peak is not None and not isinstance(peak, (int, float)):
            raise FaultError(f"{where}: peak must be a number, got {peak!r}")
        return cls(kind=kind, scenario=d.get("scenario"), channel=d.get("channel"), robot=d.get("robot"),
                   start=d.get("start", "+0s"), duration=d.get("duration"),
                   peak=None if peak is None else float(peak), id=d.get("id"), params=params)


def load_faults(source: str | Path | list[dict[str, Any]]) -> list[FaultSpec]:
    """Faults from a JSON/YAML file, ``builtin:NAME``, or a list of dicts."""
    where = "faults"
    if isinstance(source, list):
        raw: Any = source
    else:
        text = str(source)
        if text.startswith("builtin:"):
            name = text.split(":", 1)[1]
            if name not in LIBRARY:
                raise FaultError(f"no built-in fault set {name!r}; known: {', '.join(LIBRARY)}")
            raw = LIBRARY[name]
            where = text
        else:
            path = Path(text)
            where = str(path)
            try:
                body = path.read_text()
            except OSError as exc:
                raise FaultError(f"cannot read fault file {path}: {exc.strerror}") from None
            raw = _parse(body, path)
    if isinstance(raw, dict) and "faults" in raw:
        raw = raw["faults"]
    if not isinstance(raw, list):
        raise FaultError(f"{where}: expected a list of faults")
    return [FaultSpec.from_dict(d, f"{where} entry {i}") for i, d in enumerate(raw)]


def _parse(body: str, path: Path) -> Any:
    if path.suffix.lower() in (".yaml", ".yml"):
        import yaml

        try:
            return yaml.safe_load(body)
        except yaml.YAMLError as exc:
            raise FaultError(f"{path}: not valid YAML: {exc}") from None
    try:
        return json.loads(body)
    except json.JSONDecodeError as exc:
        raise FaultError(f"{path}: not valid JSON: {exc}") from None


# ---------------------------------------------------------------------------------------- runtime

def _smooth(x: float) -> float:
    x = min(1.0, max(0.0, x))
    return x * x * (3.0 - 2.0 * x)


@dataclass
class ActiveFault:
    """A fault resolved against the mine: times in ns, indices of the channels it drives."""

    fault_id: str
    spec: FaultSpec
    start_ns: int
    end_ns: int
    scenario: str | None
    channel: str | None
    robot: str | None
    k: int = -1  # the driven channel's index in the mine's flat arrays
    amplitude: float | None = None  # decided at the start, from the value the fault finds
    related: list[tuple[int, float, float]] = field(default_factory=list)  # (channel, factor, delay s)
    stuck: dict[str, float] = field(default_factory=dict)  # robot -> held value
    row: int = 1  # the mine twin's row that shows this fault alone

    @property
    def kind(self) -> str:
        return self.spec.kind

    @property
    def place(self) -> str:
        """The scenario the fault acts in (a robot or link fault may have none)."""
        return _given(self.scenario, self, "a scenario")

    @property
    def channel_name(self) -> str:
        """The channel the fault drives."""
        return _given(self.channel, self, "a channel")

    @property
    def robot_id(self) -> str:
        """The robot a robot or link fault takes."""
        return _given(self.robot, self, "a robot")

    @property
    def machine(self) -> Machine:
        """The rotating machine of the fault's scenario (checked by :func:`resolve` for the machine faults)."""
        machine = SCENARIOS[self.place].machine
        if machine is None:
            raise ValueError(f"{self.fault_id}: {self.place} has no rotating machine")
        return machine

    @property
    def duration_s(self) -> float:
        return (self.end_ns - self.start_ns) / NS

    def u(self, t_ns: int) -> float:
        """Progress through the window, 0..1."""
        return (t_ns - self.start_ns) / max(1, self.end_ns - self.start_ns)

    def active(self, t_ns: int) -> bool:
        return self.start_ns <= t_ns < self.end_ns


def _given(value: str | None, f: ActiveFault, what: str) -> str:
    if value is None:
        raise ValueError(f"{f.fault_id}: a {f.kind} fault without {what}")
    return value


def outburst_shape(t_s: float, duration_s: float) -> float:
    """0..1: a fast rise (10 % of the window, 3-30 s), a short hold, a fall that ends at 75 %."""
    rise = min(30.0, max(3.0, 0.1 * duration_s))
    hold = 0.15 * duration_s
    fall_end = 0.75 * duration_s
    if t_s < 0 or t_s >= fall_end:
        return 0.0
    if t_s < rise:
        return _smooth(t_s / rise)
    if t_s < rise + hold:
        return 1.0
    return 1.0 - _smooth((t_s - rise - hold) / max(1e-9, fall_end - rise - hold))


def hump_shape(u: float, up: float = 0.7, down_end: float = 0.9) -> float:
    """0..1: a slow rise to ``up`` of the window, back to 0 by ``down_end``."""
    if u <= 0 or u >= down_end:
        return 0.0
    if u < up:
        return _smooth(u / up)
    return 1.0 - _smooth((u - up) / (down_end - up))


def resolve(specs: list[FaultSpec], run_start_ns: int, channel_index: Any, robots_in: Any) -> list[ActiveFault]:
    """Check every fault against the catalogue and the fleet; turn times into ns.

    ``channel_index(scenario, channel) -> int``; ``robots_in(scenario) -> list[robot ids]``.
    """
    out: list[ActiveFault] = []
    for n, spec in enumerate(specs):
        where = f"fault {n} ({spec.kind})"
        default_dur, kinds, _, _ = KINDS[spec.kind]
        try:
            start = parse_time_ns(spec.start, run_start_ns)
            dur = parse_duration_s(spec.duration if spec.duration is not None else default_dur)
        except ValueError as exc:
            raise FaultError(f"{where}: {exc}") from None
        if dur <= 0:
            raise FaultError(f"{where}: duration must be positive")
        sid = spec.scenario
        if sid is None and spec.robot is None:
            raise FaultError(f"{where}: needs a scenario (or a robot)")
        if sid is not None:
            if sid not in SCENARIOS:
                raise FaultError(f"{where}: unknown scenario {sid!r}")
            sk = SCENARIOS[sid].kind.value
            if kinds is not None and sk not in kinds:
                raise FaultError(f"{where}: applies to {', '.join(kinds)} scenarios, {sid} is a {sk}")
        machine = SCENARIOS[sid].machine if sid is not None else None
        if spec.kind in ("bearing_fault", "imbalance") and machine is None:
            raise FaultError(f"{where}: {sid} has no rotating machine")
        if spec.kind == "imbalance" and machine is not None:
            from simulator.vibration import imbalance_for

            try:
                imbalance_for(machine, 1.0)
            except ValueError as exc:
                raise FaultError(f"{where}: {exc}") from None
        if spec.kind == "bearing_fault" and spec.params.get("defect", "outer") not in ("outer", "inner", "ball"):
            raise FaultError(f"{where}: defect must be outer, inner or ball")
        channel = spec.channel or _default_channel(spec.kind, sid)
        needs = _NEEDS.get(spec.kind)
        if needs is not None and sid is not None:
            if channel is None:
                raise FaultError(f"{where}: {sid} has no {' or '.join(needs) or 'such'} channel to apply it to")
            quantity = SCENARIOS[sid].channel_map[channel].quantity if channel in SCENARIOS[sid].channel_map else None
            if quantity is not None and needs and quantity not in needs:
                raise FaultError(f"{where}: channel {channel!r} of {sid} measures {quantity}, not {' or '.join(needs)}")
        k = -1
        if channel is not None and sid is not None:
            try:
                k = channel_index(sid, channel)
            except KeyError as exc:
                raise FaultError(f"{where}: {exc.args[0]}") from None
        robot = spec.robot
        if robot is None and spec.kind in FLEET:
            robots = robots_in(sid)
            if not robots:
                raise FaultError(f"{where}: no robot of the fleet works in {sid}")
            robot = robots[0]
        fid = spec.id or f"f{n + 1:02d}-{spec.kind}-{sid or robot}"
        out.append(ActiveFault(fid, spec, start, start + round(dur * NS), sid, channel, robot, k))
    return out


# kinds that act on one channel -> the quantities it may measure (empty: any)
_NEEDS: dict[str, tuple[str, ...]] = {
    "methane_outburst": ("ch4",), "methane_buildup": ("ch4",), "co_rise": ("co",), "o2_depletion": ("o2",),
    "belt_drum_overheating": ("t_hot",), "sensor_stuck": (), "sensor_drift": (), "sensor_out_of_range": (),
}


def _default_channel(kind: str, sid: str | None) -> str | None:
    if sid is None:
        return None
    names = [c.name for c in SCENARIOS[sid].channels]

    def first(*cands: str) -> str | None:
        return next((c for c in cands if c in names), None)

    if kind in ("methane_outburst", "methane_buildup"):
        return first("ch4_t1", "ch4", "ch4_t0")
    if kind == "co_rise":
        return first("co")
    if kind == "o2_depletion":
        return first("o2")
    if kind == "belt_drum_overheating":
        return first("t_drum")
    if kind == "bearing_fault":
        return first("tb")
    if kind in ("main_fan_stoppage", "airflow_reversal"):
        return first("run_a")
    if kind == "local_fan_stoppage":
        return first("run")
    if kind in SENSOR:
        if SCENARIOS[sid].kind == ScenarioKind.main_fan:
            return "dp"
        return names[0]
    return None


def fan_index(sid: str) -> int:
    return MAIN_FANS.index(sid)


def local_fan_index(sid: str) -> int:
    return list(LOCAL_FANS).index(sid)


__all__ += ["outburst_shape", "hump_shape", "resolve", "fan_index", "local_fan_index"]
