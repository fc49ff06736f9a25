"""The control-room operator's alarm load on the live stack, against ISA-18.2 / EEMUA 191
(domain.md §8): how much the operator must act on, in an upset and in steady operation, and
whether anything chatters, stands stale or goes unalerted.

Everything runs as real processes on this machine: a mosquitto and an influxd of the
benchmark's own (temporary directories, free loopback ports), ``minewatch ingest --clock data``
(its clock follows the newest event time it has seen, so a simulated shift goes through the live
path faster than real time) and ``minewatch simulate --live --speed max`` publishing the default
fleet (35 robots over all 31 scenarios, a frame a second each, a 0.5 s vibration block at
10,240 Hz every 30 s at the machines). Each run has two cases, each with its own ingestor,
database and topic prefix:

* ``demo``: the demo faults (``builtin:demo``: a methane outburst at mf01 45 s in, a local fan
  stopping, a hot belt drum, a stuck sensor, a bearing defect, CO rising, a main fan stopping, a
  5G outage, a sensor out of range) over 75 minutes;
* ``shift``: an 8-hour shift (``--hours``) with the shift faults (``builtin:shift``: one of
  every fault kind).

Simulated time starts at the beginning of the last night shift (00:00-08:00 mine time, a
production shift, in the default calendar) that is over by now, the demo an hour into it, so
every run covers the same part of the day and ends in the past. The simulator runs two minutes
past the measured window: when it exits, the MQTT will of every robot marks it offline and the
ingestor raises ``robot_offline`` for the whole fleet at each robot's last frame time. That is
the benchmark ending, not the mine, and it falls outside the window. Run ``i`` (from 0) uses
seed ``--seed + i``. The ingestor's time-driven checks (a robot gone silent, a held clear) run
once a wall-clock second, which at ``--speed max`` is every two or three simulated minutes: such
an event comes that much later in event time than at real speed (less than the 10 minutes the
stale rule allows).

A subscriber takes every alert event (``alerts/{scenario}/{kind}``) and incident event
(``incidents/{scenario}/{cause}``) with QoS 1. The simulator's ground-truth labels
(``--labels-out``) say where and when each fault showed in the data. All times are event times
(the robots' clocks), and nobody acknowledges anything. Terms:

* an *annunciation* is an incident step the operator must act on: ``raised`` or ``escalated``
  with ``needs_ack`` (severity warning or worse, not acknowledged since it last rose);
* an *upset* is ``[start, end + 10 min]`` of any label of an injected fault (the patrol
  routes' coverage holes are labelled too, but they are the mine's normal operation, not
  upsets); the *outburst upset* is that window for the demo's methane outburst (every place its
  labels name);
* an alert *belongs* to a label as ``bench/detection_quality.py`` matches them
  (:func:`detection_quality.belongs`, 120 s of grace after the label's end): same scenario (a
  robot fault: same robot, robot-health alert), one of the label's channels or a
  machine-level alert of that fault, event time inside the label's window.

Figures (one JSON line each, per case; medians over ``--runs``, every run in ``each_run``):

* ``alarm_incidents``: incidents raised;
* ``alarm_annunciations_peak_10min``: the most annunciations in any 10 minutes, within the
  outburst upset (``window: outburst upset``, for each case that has an outburst) and over the
  whole run (``window: overall``). Target <= 10: the peak after an upset, and more than 10 in
  10 minutes is a flood;
* ``alarm_annunciations_per_hour``: annunciations outside every upset per hour outside them.
  Target <= 6 ("very likely acceptable"; 12 is "maximum manageable"). The demo packs its faults
  so close that almost no time is outside an upset (the figure is null under 3 minutes): the
  shift's is the steady-operation figure;
* ``alarm_chattering``: alerts, keyed by place (the scenario, or the robot for robot-health),
  detector and channel, raised 3 or more times within 60 s. Target 0. Beside it, those raised
  twice within 60 s (``raised_twice_within_60s_each_run``): a fleeting alert the engine's
  flap hold only catches from its third raise;
* ``alarm_stale``: alerts and incidents still active after their condition has been gone for
  more than 10 minutes. An alert's condition ends at the latest end of the labels its
  ``raised`` or ``escalated`` events belong to; an alert that belongs to no label had no
  condition in the ground truth, so it counts from its own first event: it is stale once it has
  stood for 10 minutes. An incident's condition ends with the latest of its members' (every
  alert its events named). Counted over the run (``at: run``: items active at some time past
  that deadline) and at its end (``at: end``: still active at the end of the window, past the
  deadline). Target 0. (The standards' 24 hours is for a plant; a gas or ventilation alarm
  standing 10 minutes after the gas has gone is already one an operator will learn to ignore.)
* ``alarm_recall``: the fraction of labelled faults with expected alerts that got an alert
  (``raised`` or ``escalated``) belonging to them, scored as ``bench/detection_quality.py``
  scores recall. Target: the same frames through :class:`detectors.DetectorSuite` in-process, a
  simulator tick at a time (``detection_quality.run``, the reference, computed in another
  process during the live run): the live stack must not lose what the detectors find.

Each line names its target (``target``, ``target_op``), whether the median meets it (``meets``),
and what makes up the load, over all runs: the annunciations by cause, place and triggering
detector (the member alert whose step it was), how many escalated an incident to a severity it
had already reached (its worst alert cleared and came back) or came within 60 s of the same
incident's previous annunciation, and the alerts behind chattering and stale items with their
times (``t_min``: minutes into the window).

``--keep DIR`` writes what each case of each run saw (alert and incident events, labels) to
JSONL files there, for a closer look.

    .venv/bin/python bench/alarm_load.py [--runs 3] [--hours 8] [--seed 1] [--rate 1] [--keep DIR]
    .venv/bin/python bench/alarm_load.py --smoke     # the demo's outburst: 4 simulated minutes, 3 scenarios
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter, defaultdict
from concurrent.futures import Future, ProcessPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from detection_quality import belongs, emit, label_alerts, scored_labels
from ingest_throughput import Ingestors

from minewatch.schema import SEVERITY_RANK, AlertEvent, AlertState, IncidentEvent, IncidentState
from minewatch.services import Influxd, Mosquitto
from minewatch.shifts import Shift, ShiftCalendar
from minewatch.topics import Topics
from simulator.faults import LIBRARY
from tests.ingest.helpers import Collector

NS = 1_000_000_000
MIN = 60 * NS
GRACE_S = 120.0  # detection_quality's default: an alert up to 2 min after a label's end still belongs to it
UPSET_TAIL = 10 * MIN  # an upset lasts until 10 min after its label ends
PEAK_WINDOW = 10 * MIN
CHATTER_WINDOW = 60 * NS
CHATTER_RAISES = 3
STALE_AFTER = 10 * MIN
SIM_TAIL_S = 120.0  # the simulator runs this far past the window (its robots' wills fall outside)
SMOKE_SCENARIOS = ["mf01", "lf02", "hf02"]
TARGETS = {  # name: (target, op), ISA-18.2 / EEMUA 191 (domain.md §8)
    "alarm_annunciations_peak_10min": (10, "<="),
    "alarm_annunciations_per_hour": (6, "<="),
    "alarm_chattering": (0, "<="),
    "alarm_stale": (0, "<="),
}


@dataclass(frozen=True)
class Case:
    name: str
    faults: str  # builtin:NAME
    offset_s: float  # after the night shift's start
    seconds: float  # the measured window


@dataclass
class Observed:
    """One case of one run: what the subscriber saw inside the window, and the ground truth."""

    case: str
    seed: int
    start_ns: int
    end_ns: int
    alerts: list[AlertEvent]
    incidents: list[IncidentEvent]
    labels: list[dict[str, Any]]
    frames: int
    wall_s: float
    reference_recall: float | None = None
    figures: dict[str, Any] = field(default_factory=dict)


# -- time --------------------------------------------------------------------------------------------
def last_night_shift(now_ns: int, seconds: float) -> Shift:
    """The latest night shift of the default calendar that starts at least ``seconds`` before now."""
    cal = ShiftCalendar()
    shift = cal.at_ns(now_ns)
    while shift.name != "night" or shift.start_ns + int(seconds * NS) > now_ns:
        shift = cal.at_ns(shift.start_ns - NS)
    return shift


def iso(t_ns: int) -> str:
    return datetime.fromtimestamp(t_ns // NS, tz=timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def t_min(t_ns: int | None, start_ns: int) -> float | None:
    return None if t_ns is None else round((t_ns - start_ns) / MIN, 1)


# -- the live run --------------------------------------------------------------------------------------
def fault_specs(faults: str, scenarios: list[str] | None) -> list[dict[str, Any]] | str:
    """``builtin:NAME``, or with ``scenarios`` the set's faults at those scenarios (a fleet fault
    needs its robot there)."""
    if scenarios is None:
        return faults
    return [f for f in LIBRARY[faults.split(":", 1)[1]] if f["scenario"] in scenarios]


def fault_source(case: Case, scenarios: list[str] | None, tmp: Path) -> str:
    specs = fault_specs(case.faults, scenarios)
    if isinstance(specs, str):
        return specs
    path = tmp / f"faults-{case.name}.json"
    path.write_text(json.dumps(specs))
    return str(path)


def waveform_flags(rate: float) -> list[str]:
    """A vibration block every 30 s at each machine, as ``detection_quality.run`` simulates them."""
    return ["--waveform-rate", "10240", "--waveform-every", str(max(1, int(30 * rate)))]


def live_run(case: Case, seed: int, start_ns: int, rate: float, scenarios: list[str] | None,
             broker: Mosquitto, influx: Influxd, tmp: Path) -> Observed:
    tag = f"{case.name}{seed}"
    topics = Topics(f"alarmload/{tag}")
    labels_path = tmp / f"labels-{tag}.jsonl"
    end_ns = start_ns + int(case.seconds * NS)
    t0 = time.monotonic()
    ing = Ingestors(broker, influx, f"alarm_{tag}", 1, tag, tmp, extra=("--clock", "data"), prefix=topics.prefix)
    try:
        collector = Collector(broker.url, topics.all_alert_events, topics.all_incidents)
    except BaseException:
        ing.stop()
        raise
    try:
        argv = [str(Path(sys.executable).with_name("minewatch")), "simulate", "--mqtt-url", broker.url,
                "--topic-prefix", topics.prefix, "--live", "--start", iso(start_ns),
                "--duration", f"{case.seconds + SIM_TAIL_S:.0f}s", "--speed", "max", "--rate", f"{rate:g}",
                "--faults", fault_source(case, scenarios, tmp), "--labels-out", str(labels_path),
                "--seed", str(seed), *waveform_flags(rate)]
        if scenarios is not None:
            argv += ["--scenarios", ",".join(scenarios)]
        sim = subprocess.run(argv, capture_output=True, text=True, timeout=3600, cwd=ROOT)
        if sim.returncode != 0:
            raise RuntimeError(f"simulate failed ({sim.returncode}):\n{sim.stderr[-3000:]}")
        frames = int(json.loads(sim.stdout.strip().splitlines()[-1])["frames"])
        deadline = time.monotonic() + 900
        while ing.durable() < frames:  # every frame stored: its alerts went out before
            if time.monotonic() > deadline or any(p.poll() is not None for p in ing.procs):
                raise RuntimeError(f"ingest stored {ing.durable():.0f} of {frames} frames:\n"
                                   + ing.logs[0].read_text(errors="replace")[-3000:])
            time.sleep(0.2)
        seen, quiet_since = -1, time.monotonic()
        while time.monotonic() - quiet_since < 1.5:  # the last events on their way to the subscriber
            n = len(collector.take())
            if n != seen:
                seen, quiet_since = n, time.monotonic()
            time.sleep(0.1)
    finally:
        collector.close()
        ing.stop()
    alerts, incidents = decode_events(collector.take(), topics, end_ns)
    labels = [json.loads(line) for line in labels_path.read_text().splitlines() if line.strip()]
    return Observed(case.name, seed, start_ns, end_ns, alerts, incidents, labels, frames, time.monotonic() - t0)


def decode_events(messages: list[tuple[str, bytes, bool, float]], topics: Topics,
                  end_ns: int) -> tuple[list[AlertEvent], list[IncidentEvent]]:
    """Alert and incident events (not the retained active states) inside the window, in event
    time order; a QoS 1 message delivered twice counts once."""
    alerts: list[AlertEvent] = []
    incidents: list[IncidentEvent] = []
    seen: set[bytes] = set()
    for topic, payload, _, _ in messages:
        a = topics.parse_alert(topic)
        parsed = a if a is not None else topics.parse_incident(topic)
        if parsed is None or parsed[0] != "event" or payload in seen:
            continue  # an active state carries its event's very payload: only events are compared
        seen.add(payload)
        if a is not None:
            alerts.append(AlertEvent.model_validate_json(payload))
        else:
            incidents.append(IncidentEvent.model_validate_json(payload))
    return ([e for e in sorted(alerts, key=lambda e: e.ts) if e.ts < end_ns],
            [e for e in sorted(incidents, key=lambda e: e.ts) if e.ts < end_ns])


def reference_recall(seed: int, faults: str, seconds: float, rate: float, start_ns: int, end_ns: int,
                     scenarios: list[str] | None) -> float | None:
    """Recall of the same simulated frames through ``DetectorSuite`` in-process (another process)."""
    from detection_quality import run

    res = run(seed, fault_specs(faults, scenarios), seconds / 3600, rate, start_ns=start_ns, scenarios=scenarios)
    return recall(res["events"], res["labels"], end_ns)


# -- the figures -------------------------------------------------------------------------------------
def recall(alerts: list[AlertEvent], labels: list[dict[str, Any]], end_ns: int) -> float | None:
    scored = [lab for lab in scored_labels(labels) if lab["start_ns"] < end_ns]
    if not scored:
        return None
    return round(sum(bool(label_alerts(lab, alerts, GRACE_S)) for lab in scored) / len(scored), 3)


def annunciations(incidents: list[IncidentEvent]) -> list[IncidentEvent]:
    return [i for i in incidents if i.state in (IncidentState.raised, IncidentState.escalated) and i.needs_ack]


def peak(times: list[int], lo: int, hi: int, width: int = PEAK_WINDOW) -> tuple[int, int | None]:
    """The most of ``times`` in ``[lo, hi)`` within any ``width``, and where that window starts."""
    ts = sorted(t for t in times if lo <= t < hi)
    best, at, j = 0, None, 0
    for i, t in enumerate(ts):
        while ts[j] <= t - width:
            j += 1
        if i - j + 1 > best:
            best, at = i - j + 1, ts[j]
    return best, at


def merge(spans: list[tuple[int, int]]) -> list[tuple[int, int]]:
    out: list[tuple[int, int]] = []
    for a, b in sorted(spans):
        if out and a <= out[-1][1]:
            out[-1] = (out[-1][0], max(out[-1][1], b))
        else:
            out.append((a, b))
    return out


def upsets(labels: list[dict[str, Any]], lo: int, hi: int) -> list[tuple[int, int]]:
    spans = [(max(lo, lab["start_ns"]), min(hi, lab["end_ns"] + UPSET_TAIL)) for lab in labels
             if lab["kind"] != "coverage_hole" and lab.get("visible", True)]
    return merge([(a, b) for a, b in spans if a < b])


def outburst_upset(labels: list[dict[str, Any]]) -> tuple[int, int] | None:
    labs = [lab for lab in labels if lab["kind"] == "methane_outburst" and lab.get("visible", True)]
    if not labs:
        return None
    return min(lab["start_ns"] for lab in labs), max(lab["end_ns"] for lab in labs) + UPSET_TAIL


def inside(t: int, spans: list[tuple[int, int]]) -> bool:
    return any(a <= t <= b for a, b in spans)


def place(e: AlertEvent) -> str:
    """The scenario, or the robot for a robot's own health."""
    if e.kind.value == "robot-health" and e.robot_id:
        return e.robot_id
    return e.scenario_id


def trigger(inc: IncidentEvent) -> tuple[str, str]:
    """The member alert whose step an incident step is: (detector, channel)."""
    stepped = [m for m in inc.members if m.ts == inc.ts and m.active] or [m for m in inc.members if m.active] \
        or inc.members
    m = max(stepped, key=lambda m: SEVERITY_RANK[m.severity])
    return m.detector, m.channel or "-"


def chattering(alerts: list[AlertEvent], start_ns: int, raises: int = CHATTER_RAISES) -> list[dict[str, Any]]:
    """Alert keys (place, detector, channel) raised ``raises`` times within 60 s, with those times."""
    by_key: dict[tuple[str, str, str], list[int]] = defaultdict(list)
    for e in alerts:
        if e.state is AlertState.raised:
            by_key[(place(e), e.detector, e.channel or "-")].append(e.ts)
    out = []
    for key, ts in by_key.items():
        ts.sort()
        for i in range(len(ts) - raises + 1):
            if ts[i + raises - 1] - ts[i] <= CHATTER_WINDOW:
                out.append({"place": key[0], "detector": key[1], "channel": key[2], "raised": len(ts),
                            "t_min": [t_min(t, start_ns) for t in ts[i:i + raises]], "at": iso(ts[i])})
                break
    return out


def repeated(incidents: list[IncidentEvent]) -> tuple[set[int], set[int]]:
    """Annunciations (by ``id``) that escalate an incident to a severity it had already reached (its
    worst member cleared and came back), and those within 60 s of the same incident's previous one."""
    again: set[int] = set()
    quick: set[int] = set()
    prev: dict[str, IncidentEvent] = {}
    last_ann: dict[str, int] = {}
    for i in incidents:
        if i.state in (IncidentState.raised, IncidentState.escalated) and i.needs_ack:
            p = prev.get(i.incident_id)
            if i.state is IncidentState.escalated and p is not None and \
                    SEVERITY_RANK[i.severity] <= SEVERITY_RANK[p.max_severity]:
                again.add(id(i))
            if i.incident_id in last_ann and i.ts - last_ann[i.incident_id] <= CHATTER_WINDOW:
                quick.add(id(i))
            last_ann[i.incident_id] = i.ts
        prev[i.incident_id] = i
    return again, quick


@dataclass
class Standing:
    """An alert or incident's life in the window and when its condition was over."""

    kind: str  # alert | incident
    id: str
    what: str
    first_ts: int
    cleared_ts: int | None
    deadline: int  # condition gone + 10 min
    labels: list[str]
    robots: list[str]


def alert_lives(alerts: list[AlertEvent], labels: list[dict[str, Any]]) -> dict[str, Standing]:
    by_id: dict[str, list[AlertEvent]] = defaultdict(list)
    for e in alerts:
        by_id[e.alert_id].append(e)
    out = {}
    for aid, evs in by_id.items():
        rising = [e for e in evs if e.state in (AlertState.raised, AlertState.escalated)] or evs[:1]
        mine = [lab for lab in labels if any(belongs(e, lab, GRACE_S) for e in rising)]
        first = min(e.ts for e in evs)
        cleared = next((e.ts for e in evs if e.state is AlertState.cleared), None)
        gone = max(lab["end_ns"] for lab in mine) if mine else first
        e0 = evs[0]
        out[aid] = Standing("alert", aid, f"{place(e0)} {e0.detector} {e0.channel or '-'}", first, cleared,
                            gone + STALE_AFTER, sorted({lab["fault_id"] for lab in mine}),
                            sorted({e.robot_id for e in evs if e.robot_id}))
    return out


def incident_lives(incidents: list[IncidentEvent], alerts: dict[str, Standing]) -> dict[str, Standing]:
    by_id: dict[str, list[IncidentEvent]] = defaultdict(list)
    for i in incidents:
        by_id[i.incident_id].append(i)
    out = {}
    for iid, evs in by_id.items():
        members = {m.alert_id: m for i in evs for m in i.members}
        first = min(i.ts for i in evs)
        deadlines = [alerts[a].deadline if a in alerts else m.first_ts + STALE_AFTER for a, m in members.items()]
        cleared = next((i.ts for i in evs if i.state is IncidentState.cleared), None)
        faults = sorted({f for a in members if a in alerts for f in alerts[a].labels})
        robots = sorted({r for a in members if a in alerts for r in alerts[a].robots})
        out[iid] = Standing("incident", iid, f"{evs[0].place} {evs[0].cause}", first, cleared,
                            max(deadlines, default=first + STALE_AFTER), faults, robots)
    return out


def stale(lives: list[Standing], end_ns: int) -> tuple[list[Standing], list[Standing]]:
    """Items active past their deadline at some time in the window; those still so at its end."""
    over_run = [s for s in lives if (s.cleared_ts if s.cleared_ts is not None else end_ns) > s.deadline]
    at_end = [s for s in over_run if s.cleared_ts is None and end_ns > s.deadline]
    return over_run, at_end


def figures(o: Observed) -> dict[str, Any]:
    """Every figure of one case of one run, with what makes it up."""
    lo, hi = o.start_ns, o.end_ns
    ann = annunciations(o.incidents)
    f: dict[str, Any] = {"alarm_incidents": sum(i.state is IncidentState.raised for i in o.incidents)}
    f["incident_causes"] = Counter(i.cause for i in o.incidents if i.state is IncidentState.raised)
    n, at = peak([i.ts for i in ann], lo, hi)
    f["peak_overall"] = n
    f["peak_overall_items"] = [i for i in ann if at is not None and at <= i.ts < at + PEAK_WINDOW]
    f["peak_overall_at"] = at
    burst = outburst_upset(o.labels)
    if burst is not None:
        n, at = peak([i.ts for i in ann], max(lo, burst[0]), min(hi, burst[1]))
        f["peak_outburst"] = n
        f["peak_outburst_items"] = [i for i in ann if at is not None and at <= i.ts < at + PEAK_WINDOW]
        f["peak_outburst_at"] = at
        f["outburst_window_min"] = [t_min(max(lo, burst[0]), lo), t_min(min(hi, burst[1]), lo)]
    spans = upsets(o.labels, lo, hi)
    quiet_h = ((hi - lo) - sum(b - a for a, b in spans)) / NS / 3600
    outside = [i for i in ann if not inside(i.ts, spans)]
    f["quiet_hours"] = round(quiet_h, 3)
    f["per_hour"] = round(len(outside) / quiet_h, 2) if quiet_h > 0.05 else None
    f["per_hour_items"] = outside
    f["chattering"] = chattering(o.alerts, lo)
    f["twice"] = chattering(o.alerts, lo, raises=2)
    f["again"], f["quick"] = repeated(o.incidents)
    lives_a = alert_lives(o.alerts, o.labels)
    lives_i = incident_lives(o.incidents, lives_a)
    f["stale_run"], f["stale_end"] = stale(list(lives_a.values()) + list(lives_i.values()), hi)
    f["recall"] = recall(o.alerts, o.labels, hi)
    f["recall_labels"] = len([lab for lab in scored_labels(o.labels) if lab["start_ns"] < hi])
    f["missed"] = sorted({lab["fault_id"] + "@" + lab["scenario_id"] for lab in scored_labels(o.labels)
                          if lab["start_ns"] < hi and not label_alerts(lab, o.alerts, GRACE_S)})
    return f


# -- reporting ----------------------------------------------------------------------------------------
def load_mix(items: list[IncidentEvent], again: set[int], quick: set[int], top: int = 8) -> dict[str, Any]:
    """What a list of annunciations is made of: by cause, by place and cause, by triggering
    detector, and how many of them an incident had already announced (see :func:`repeated`)."""
    return {"by_cause": dict(Counter(i.cause for i in items).most_common(top)),
            "by_place": dict(Counter(f"{i.place}.{i.cause}" for i in items).most_common(top)),
            "by_detector": dict(Counter("{} {}".format(*trigger(i)) for i in items).most_common(top)),
            "escalated_again_to_a_severity_it_had": sum(id(i) in again for i in items),
            "within_60s_of_its_previous_annunciation": sum(id(i) in quick for i in items)}


def standing_examples(items: list[Standing], start_ns: int, top: int = 8) -> list[dict[str, Any]]:
    out = []
    for s in sorted(items, key=lambda s: s.first_ts)[:top]:
        out.append({"item": s.kind, "id": s.id, "what": s.what, "robots": s.robots, "faults": s.labels,
                    "first_t_min": t_min(s.first_ts, start_ns), "condition_gone_t_min": t_min(s.deadline - STALE_AFTER,
                                                                                           start_ns),
                    "cleared_t_min": t_min(s.cleared_ts, start_ns), "at": iso(s.first_ts)})
    return out


def target_fields(name: str, value: Any, target: Any = None, op: str | None = None) -> dict[str, Any]:
    if target is None:
        if name not in TARGETS:
            return {}
        target, op = TARGETS[name]
    meets = None if value is None or target is None else (value <= target if op == "<=" else value >= target)
    return {"target": target, "target_op": op, "meets": meets}


def med(values: list[Any]) -> Any:
    vals = [v for v in values if v is not None]
    if not vals:
        return None
    m = statistics.median(vals)
    return round(m, 3) if isinstance(m, float) else m


def report(case: Case, runs: list[Observed], cond: dict[str, Any]) -> None:
    fs = [r.figures for r in runs]
    c = {"run": case.name, "faults": case.faults, "hours": round(case.seconds / 3600, 3),
         "seeds": [r.seed for r in runs], "start": [iso(r.start_ns) for r in runs], **cond}

    def line(name: str, values: list[Any], unit: str, extra: dict[str, Any], target: Any = None,
             op: str | None = None, **more: Any) -> None:
        value = med(values)
        emit(name, value, unit, **more, **target_fields(name, value, target, op), each_run=values, **c, **extra)

    again = set().union(*(f["again"] for f in fs))
    quick = set().union(*(f["quick"] for f in fs))
    all_incidents: Counter[str] = sum((f["incident_causes"] for f in fs), Counter())
    raised = Counter(f"{place(e)} {e.detector} {e.channel or '-'}" for r in runs for e in r.alerts
                     if e.state is AlertState.raised)
    line("alarm_incidents", [f["alarm_incidents"] for f in fs], "incidents",
         {"by_cause_all_runs": dict(all_incidents.most_common()),
          "alerts_raised_each_run": [sum(e.state is AlertState.raised for e in r.alerts) for r in runs],
          "alerts_raised_top_all_runs": dict(raised.most_common(12))})
    if all("peak_outburst" in f for f in fs):
        line("alarm_annunciations_peak_10min", [f["peak_outburst"] for f in fs], "annunciations/10 min",
             {"window_min": [f["outburst_window_min"] for f in fs],
              "worst_10min_starts_min": [t_min(f["peak_outburst_at"], r.start_ns) for f, r in zip(fs, runs)],
              "load_all_runs": load_mix([i for f in fs for i in f["peak_outburst_items"]], again, quick)},
             window="outburst upset")
    line("alarm_annunciations_peak_10min", [f["peak_overall"] for f in fs], "annunciations/10 min",
         {"worst_10min_starts_min": [t_min(f["peak_overall_at"], r.start_ns) for f, r in zip(fs, runs)],
          "worst_10min_at": [iso(f["peak_overall_at"]) if f["peak_overall_at"] else None for f in fs],
          "load_all_runs": load_mix([i for f in fs for i in f["peak_overall_items"]], again, quick)},
         window="overall")
    line("alarm_annunciations_per_hour", [f["per_hour"] for f in fs], "annunciations/h",
         {"hours_outside_upsets": [f["quiet_hours"] for f in fs],
          "annunciations_outside_upsets": [len(f["per_hour_items"]) for f in fs],
          "load_all_runs": load_mix([i for f in fs for i in f["per_hour_items"]], again, quick, top=10)},
         window="outside upsets")
    line("alarm_chattering", [len(f["chattering"]) for f in fs], "alerts",
         {"examples": [dict(x, seed=r.seed) for f, r in zip(fs, runs) for x in f["chattering"]][:10],
          "raised_twice_within_60s_each_run": [len(f["twice"]) for f in fs],
          "raised_twice_examples": [dict(x, seed=r.seed) for f, r in zip(fs, runs) for x in f["twice"]][:10]})
    for at, key in (("run", "stale_run"), ("end", "stale_end")):
        line("alarm_stale", [len(f[key]) for f in fs], "alerts and incidents",
             {"alerts": [sum(s.kind == "alert" for s in f[key]) for f in fs],
              "incidents": [sum(s.kind == "incident" for s in f[key]) for f in fs],
              "examples": [dict(x, seed=r.seed) for f, r in zip(fs, runs)
                           for x in standing_examples(f[key], r.start_ns)][:10]}, at=at)
    ref = [r.reference_recall for r in runs]
    line("alarm_recall", [f["recall"] for f in fs], "ratio",
         {"labels": [f["recall_labels"] for f in fs], "reference_each_run": ref,
          "missed": sorted({m for f in fs for m in f["missed"]})},
         target=med(ref), op=">=", reference="the same frames through DetectorSuite in-process")


def keep(o: Observed, out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    stem = f"{o.case}-seed{o.seed}"
    (out / f"{stem}-alerts.jsonl").write_text("".join(e.model_dump_json() + "\n" for e in o.alerts))
    (out / f"{stem}-incidents.jsonl").write_text("".join(i.model_dump_json() + "\n" for i in o.incidents))
    (out / f"{stem}-labels.jsonl").write_text("".join(json.dumps(lab) + "\n" for lab in o.labels))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=3, help="runs (seed, seed + 1, ...); figures are their medians")
    ap.add_argument("--hours", type=float, default=8.0, help="length of the faulted shift")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--rate", type=float, default=1.0, help="frames per second per robot")
    ap.add_argument("--keep", type=Path, default=None, help="write each case's events and labels (JSONL) here")
    ap.add_argument("--smoke", action="store_true",
                    help=f"a few simulated minutes of the demo faults at {', '.join(SMOKE_SCENARIOS)}, one run")
    args = ap.parse_args()
    # one calendar for the simulator, its reference and the choice of night: the project's default
    # (3 x 8 h, UTC+8), whatever this shell sets
    for var in ("MINEWATCH_SHIFTS", "MINEWATCH_TZ_OFFSET"):
        os.environ.pop(var, None)
    if args.smoke:
        cases = [Case("demo", "builtin:demo", 3600.0, 240.0)]
        scenarios: list[str] | None = SMOKE_SCENARIOS
        n_runs = 1
    else:
        cases = [Case("demo", "builtin:demo", 3600.0, 75 * 60.0),
                 Case("shift", "builtin:shift", 0.0, args.hours * 3600)]
        scenarios = None
        n_runs = args.runs
    needed = max(c.offset_s + c.seconds for c in cases) + SIM_TAIL_S + 60
    night = last_night_shift(time.time_ns(), needed)
    cond = {"fleet": "default (35 robots, 31 scenarios)" if scenarios is None else f"stations at {','.join(scenarios)}",
            "rate_hz": args.rate, "waveforms": "10240 Hz, 0.5 s every 30 frames", "runs": n_runs,
            "shift": night.id, "clock": "event time",
            "stack": "mosquitto, influxd, minewatch ingest --clock data, minewatch simulate --live --speed max"}
    results: dict[str, list[Observed]] = {c.name: [] for c in cases}
    with tempfile.TemporaryDirectory() as d, ProcessPoolExecutor(1, mp_context=mp.get_context("spawn")) as pool:
        tmp = Path(d)
        broker = Mosquitto(tmp / "mosquitto")
        influx = Influxd(tmp / "influxd")
        broker.start()
        influx.start()
        try:
            for i in range(n_runs):
                seed = args.seed + i
                for case in cases:
                    start = night.start_ns + int(case.offset_s * NS)
                    ref: Future[float | None] = pool.submit(
                        reference_recall, seed, case.faults, case.seconds + SIM_TAIL_S, args.rate, start,
                        start + int(case.seconds * NS), scenarios)
                    obs = live_run(case, seed, start, args.rate, scenarios, broker, influx, tmp)
                    obs.reference_recall = ref.result()
                    obs.figures = figures(obs)
                    results[case.name].append(obs)
                    if args.keep is not None:
                        keep(obs, args.keep)
                    print(f"# run {i + 1} {case.name} (seed {seed}, from {iso(start)}): {obs.frames} frames, "
                          f"{len(obs.alerts)} alert and {len(obs.incidents)} incident events, {obs.wall_s:.0f} s",
                          file=sys.stderr, flush=True)
        finally:
            broker.stop()
            influx.stop()
    for case in cases:
        report(case, results[case.name], cond)


if __name__ == "__main__":
    main()
