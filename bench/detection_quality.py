"""Detection quality on simulated shifts: recall, precision and delay per fault kind, and
false alerts per shift on fault-free shifts.

For each seed the simulator (``simulator.engine``) runs one shift with faults and one without.
The faulty shift gets every fault kind of the simulator once, at a scenario drawn by the seed,
in two lanes that do not share scenarios (ventilation and gas faults one after another with
15 min between them; machine, sensor and robot faults likewise with 10 min), so that each
fault's ground-truth labels (``simulator.labels``) describe that fault alone. Frames go
through :class:`detectors.DetectorSuite` one simulator tick at a time, as the ingestor batches
them live (backlog frames flagged late), robot statuses through ``robot_status`` and data
time through ``tick``.

Delays are reported for the fault's own place (``labels: primary``) and for every place it
reached (``labels: all``: downstream places, where the label starts at the first measurable
deviation and the alert comes when a limit is crossed, often much later by the physics).

Matching: an alert (a ``raised`` or ``escalated`` event) belongs to a label when it is at the
label's scenario (robot faults: the label's robot), on one of its channels (or on a
machine-level or robot-level alert where the label has such a cause), between the label's
start and its end plus ``--grace`` seconds. A label with expected alerts is *detected* when an
alert belongs to it; the delay is the first such alert's event time minus the label's start
(the first frame at which the fault moved the data). An alert that belongs to no label is
false. Coverage holes of the patrol robots' routes are labelled by the simulator too.

Figures (one JSON line each): ``detection_recall``, ``detection_precision``,
``detection_delay_median_s`` and ``detection_delay_p95_s`` per fault kind; ``drift_recall`` (the
``sensor_drift`` recall again, under its own name); ``limit_violation_recall``
(every catalogue limit a fault pushed a channel past, at every place, must alert);
``methane_power_cut_delay_p95_s`` (event time from the first reading at or above the power-cut
level to the critical alert) and ``detector_batch_wall_p95_s`` (wall-clock time of one
``process`` call, what the ingestor adds to that); ``false_alerts_per_shift`` on the fault-free
shifts (per 8 h, all severities); and the change detector against a windowed z-score on the
same synthetic series.

    python bench/detection_quality.py [--seeds 3] [--hours 8] [--rate 0.5] [--kinds K1,K2] [--trials 40]

``--kinds`` schedules only some fault kinds and ``--trials`` sets the change detector's series per
seed (the smoke run in the tests uses two kinds, a quarter-hour fault-free shift and a few series).
The comparison's false alarms before the step are ``heavy_tail_ar1_false_alarms_per_10k``.

The change detector on seasonal series and bearing diagnosis, by the code of their detailed
benchmarks: ``change_false_alarms_per_10k``, ``change_recall`` and ``change_delay_samples`` per
injected kind and over all (:func:`bench.change_quality.figures`, the ``seasonal`` detector only;
``--change-series`` per noise kind, ``--change-days``, ``--change-dt``, ``--change-probation-days``),
and ``bearing_accuracy``, ``bearing_healthy_false_fault_rate`` and ``bearing_analyse_ms`` per sample
rate (:func:`bench.bearing.run_all`; ``--bearing-rates``, ``--bearing-machines``, ``--bearing-snrs``,
``--bearing-seconds``, ``--bearing-rpm-error``). Targets: at most 1 false alarm per 10k values,
recall at least 0.9 (each line says ``target`` and ``meets``), bearings named right at every rate
(``bench/bearing.py``'s target, 0.95 of the faulty recordings, and no healthy one called faulty).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import numpy as np

from bench import bearing, change_quality
from detectors import DetectorSuite
from detectors.change import ChangeDetector
from minewatch.catalogue import SCENARIOS, ScenarioKind
from minewatch.schema import AlertEvent, AlertState
from simulator.engine import SimConfig, Simulation
from simulator.faults import load_faults

NS = 1_000_000_000
T0 = 1_795_852_800_000_000_000  # a shift start (UTC)
LANE_A = ["methane_outburst", "methane_buildup", "co_rise", "o2_depletion", "main_fan_stoppage",
          "local_fan_stoppage", "airflow_reversal", "belt_drum_overheating"]
LANE_B = ["bearing_fault", "sensor_stuck", "sensor_drift", "sensor_out_of_range", "robot_offline", "link_outage"]
DURATION_MIN = {"methane_outburst": 1.5, "methane_buildup": 15, "co_rise": 30, "o2_depletion": 20,
                "main_fan_stoppage": 10, "local_fan_stoppage": 8, "airflow_reversal": 10, "belt_drum_overheating": 30,
                "bearing_fault": 40, "sensor_stuck": 10, "sensor_drift": 30, "sensor_out_of_range": 5,
                "robot_offline": 5, "link_outage": 3}
# alerts that carry no channel, or a derived one, and the label channels they stand for
DERIVED = {"fan": {"run_a", "run_b", "run"}, "vib": {"tb", "vib"}}


def candidates(kind: str) -> list[tuple[str, str | None]]:
    out: list[tuple[str, str | None]] = []
    for sid, sc in SCENARIOS.items():
        names = [c.name for c in sc.channels]
        if kind in ("methane_outburst", "methane_buildup"):
            out += [(sid, n) for n in ("ch4_t1", "ch4") if n in names][:1] if sc.kind in (
                ScenarioKind.mining_face, ScenarioKind.heading) else []
        elif kind == "co_rise" and "co" in names:
            out.append((sid, "co"))
        elif kind == "o2_depletion" and "o2" in names:
            out.append((sid, "o2"))
        elif kind in ("main_fan_stoppage", "airflow_reversal") and sc.kind is ScenarioKind.main_fan:
            out.append((sid, None))
        elif kind == "local_fan_stoppage" and sc.kind is ScenarioKind.local_fan:
            out.append((sid, None))
        elif kind == "belt_drum_overheating" and "t_drum" in names:
            out.append((sid, "t_drum"))
        elif kind == "bearing_fault" and sc.machine is not None:
            out.append((sid, None))
        elif kind in ("sensor_stuck", "sensor_drift", "sensor_out_of_range"):
            out += [(sid, c.name) for c in sc.channels if c.quantity not in ("run", "sm")]
        elif kind in ("robot_offline", "link_outage"):
            out.append((sid, None))
    return out


def schedule(seed: int, kinds: set[str] | None = None) -> list[dict[str, Any]]:
    """Every fault kind (or every one of ``kinds``) once, in two lanes over disjoint scenarios,
    times relative to the start."""
    rng = np.random.default_rng(seed)
    faults: list[dict[str, Any]] = []
    used: set[str] = set()
    for full_lane, gap_min in ((LANE_A, 15.0), (LANE_B, 10.0)):
        lane = [k for k in full_lane if kinds is None or k in kinds]
        if not lane:
            continue
        t_min = 20.0  # detectors warm up first
        for kind in rng.permutation(lane):
            kind = str(kind)
            options = [c for c in candidates(kind) if c[0] not in used]
            sid, channel = options[int(rng.integers(len(options)))]
            if kind in ("main_fan_stoppage", "airflow_reversal", "methane_outburst", "methane_buildup"):
                used.add(sid)
            spec: dict[str, Any] = {"kind": kind, "scenario": sid, "start": f"+{t_min:.1f}m",
                                    "duration": f"{DURATION_MIN[kind] * 60:.0f}s"}
            if channel:
                spec["channel"] = channel
            if kind == "main_fan_stoppage" and rng.random() < 0.5:
                spec["standby_after"] = "4m"
            if kind == "bearing_fault":
                spec["defect"] = str(rng.choice(["outer", "inner", "ball"]))
            faults.append(spec)
            used.add(sid)
            t_min += DURATION_MIN[kind] + gap_min
    return faults


def run(seed: int, faults: list[dict[str, Any]] | str, hours: float, rate: float, start_ns: int = T0,
        scenarios: list[str] | None = None) -> dict[str, Any]:
    """One simulated run through a :class:`DetectorSuite`, a simulator tick at a time. ``faults``
    is a fault list or a fault source for :func:`simulator.faults.load_faults` (``builtin:shift``)."""
    sim = Simulation(SimConfig(seed=seed, rate_hz=rate, start_ns=start_ns, duration_s=hours * 3600,
                               faults=load_faults(faults) if faults else [], waveform_rate_hz=10240.0,
                               waveform_every=max(1, int(30 * rate)), scenarios=scenarios))
    suite = DetectorSuite()
    events: list[AlertEvent] = []
    walls: list[float] = []
    cut_first: dict[tuple[str, str], int] = {}
    cut_delays: list[float] = []
    cut_levels = {key: [thr for sev, thr in rules[0].levels if sev.value == "critical"]
                  for key, rules in suite.rules.items() if rules and rules[0].power_cut}
    for tick in sim.ticks():
        frames = [f for m in tick.messages for f in m.frames]
        late = [m.backlog for m in tick.messages for _ in m.frames]
        for st in tick.statuses:
            events += suite.robot_status(st.status)
        for f in frames:
            for ch, v in f.readings.items():
                lv = cut_levels.get((f.scenario_id, ch))
                if lv and v is not None and v >= lv[0]:
                    cut_first.setdefault((f.scenario_id, ch), f.ts)
        a = time.perf_counter()
        d = suite.process(frames, late=late)
        walls.append(time.perf_counter() - a)
        for e in d.events + suite.tick(tick.t_ns):
            events.append(e)
            key = (e.scenario_id, e.channel or "")
            if e.detector == "gas_limit" and e.severity.value == "critical" and key in cut_first and \
                    e.state in (AlertState.raised, AlertState.escalated):
                cut_delays.append((e.ts - cut_first.pop(key)) / NS)
            if e.state is AlertState.cleared:
                cut_first.pop(key, None)
    return {"events": events, "labels": sim.labels(), "walls": walls, "cut_delays": cut_delays,
            "frames": sim.frames_generated}


def belongs(e: AlertEvent, lab: dict[str, Any], grace_s: float) -> bool:
    if not lab["start_ns"] - 5 * NS <= e.ts <= lab["end_ns"] + grace_s * NS:
        return False
    if lab["kind"] in ("robot_offline", "link_outage", "coverage_hole"):
        return e.robot_id == lab["robot_id"] and e.kind.value == "robot-health"
    if e.scenario_id != lab["scenario_id"]:
        return False
    chans = set(lab.get("channels") or [])
    if e.channel is None or e.channel in chans:
        return True
    return bool(DERIVED.get(e.channel, set()) & chans) or (e.channel in DERIVED and lab["kind"] in (
        "bearing_fault", "main_fan_stoppage", "local_fan_stoppage", "airflow_reversal"))


def scored_labels(labels: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The labels recall is scored on: faults with expected alerts (not the patrols' coverage holes)."""
    return [lab for lab in labels if lab.get("expected_alerts") and lab["kind"] != "coverage_hole"]


def label_alerts(lab: dict[str, Any], events: list[AlertEvent], grace_s: float) -> list[AlertEvent]:
    """The ``raised`` and ``escalated`` events that belong to ``lab``: it is detected when there is one."""
    return [e for e in events if e.state in (AlertState.raised, AlertState.escalated) and belongs(e, lab, grace_s)]


def pct(values: list[float], q: float) -> float | None:
    return round(float(np.percentile(values, q)), 2) if values else None


def emit(name: str, value: Any, unit: str, **cond: Any) -> None:
    print(json.dumps({"name": name, "value": value, "unit": unit, **cond}), flush=True)


def quality(seeds: list[int], hours: float, rate: float, grace_s: float, kinds: set[str] | None = None) -> None:
    detected: dict[str, list[bool]] = defaultdict(list)
    delays: dict[str, list[float]] = defaultdict(list)
    primary_delays: dict[str, list[float]] = defaultdict(list)
    tp: dict[str, int] = defaultdict(int)
    tp_detectors: dict[str, set[str]] = defaultdict(set)
    false_by_detector: dict[str, int] = defaultdict(int)
    limit_hits: list[bool] = []
    cut_delays: list[float] = []
    walls: list[float] = []
    false_free: list[int] = []
    free_detail: dict[str, int] = defaultdict(int)
    drift_by_seed: dict[int, list[bool]] = {}
    unlabelled_by_seed: dict[int, int] = {}
    for seed in seeds:
        plan = schedule(seed, kinds)
        fault_hours = max(hours, (max(float(f["start"][1:-1]) + DURATION_MIN[f["kind"]] for f in plan) + 15) / 60)
        res = run(seed, plan, fault_hours, rate)
        walls += res["walls"]
        cut_delays += res["cut_delays"]
        labels = res["labels"]
        for lab in scored_labels(labels):
            mine = label_alerts(lab, res["events"], grace_s)
            detected[lab["kind"]].append(bool(mine))
            if lab["kind"] == "sensor_drift":
                drift_by_seed.setdefault(seed, []).append(bool(mine))
            if mine:
                delay = max(0.0, (min(e.ts for e in mine) - lab["start_ns"]) / NS)
                delays[lab["kind"]].append(delay)
                if lab.get("primary"):
                    primary_delays[lab["kind"]].append(delay)
            for exp in lab["expected_alerts"]:
                if exp.get("detector") == "limit":
                    limit_hits.append(any(e.channel == exp["channel"] and e.detector.endswith(("_limit", "_high", "_low"))
                                          for e in mine))
        for e in (e for e in res["events"] if e.state is AlertState.raised):
            owners = [lab["kind"] for lab in labels if belongs(e, lab, grace_s)]
            if owners:
                for kind in set(owners):
                    tp[kind] += 1
                    tp_detectors[kind].add(e.detector)
            else:
                false_by_detector[e.detector] += 1
                unlabelled_by_seed[seed] = unlabelled_by_seed.get(seed, 0) + 1
        free = run(seed + 1000, [], hours, rate)
        walls += free["walls"]
        holes = [lab for lab in free["labels"] if lab["kind"] == "coverage_hole"]
        n_false = 0
        for e in free["events"]:
            if e.state is AlertState.raised and not any(belongs(e, lab, grace_s) for lab in holes):
                n_false += 1
                free_detail[f"{e.scenario_id}.{e.channel}.{e.detector}"] += 1
        false_free.append(n_false)
    cond = {"seeds": len(seeds), "rate_hz": rate, "grace_s": grace_s}
    for kind in sorted(detected):
        emit("detection_recall", round(sum(detected[kind]) / len(detected[kind]), 3), "ratio", kind=kind,
             labels=len(detected[kind]), **cond)
        fp = sum(false_by_detector[d] for d in tp_detectors[kind])
        emit("detection_precision", round(tp[kind] / (tp[kind] + fp), 3) if tp[kind] + fp else None, "ratio",
             kind=kind, alerts=tp[kind] + fp, **cond)
        for where, values in (("primary", primary_delays[kind]), ("all", delays[kind])):
            emit("detection_delay_median_s", pct(values, 50), "s", kind=kind, labels=where, n=len(values), **cond)
            emit("detection_delay_p95_s", pct(values, 95), "s", kind=kind, labels=where, n=len(values), **cond)
    if "sensor_drift" in detected:
        emit("drift_recall", round(sum(detected["sensor_drift"]) / len(detected["sensor_drift"]), 3), "ratio",
             kind="sensor_drift", labels=len(detected["sensor_drift"]),
             per_seed={s: round(sum(v) / len(v), 3) for s, v in drift_by_seed.items()}, **cond)
    all_tp = sum(tp.values())
    all_fp = sum(false_by_detector.values())
    emit("detection_precision", round(all_tp / (all_tp + all_fp), 3) if all_tp + all_fp else None, "ratio",
         kind="all", alerts=all_tp + all_fp, false_by_detector=dict(false_by_detector),
         unlabelled_per_seed={s: unlabelled_by_seed.get(s, 0) for s in seeds}, **cond)
    emit("limit_violation_recall", round(sum(limit_hits) / len(limit_hits), 3) if limit_hits else None, "ratio",
         violations=len(limit_hits), **cond)
    emit("methane_power_cut_delay_p95_s", pct(cut_delays, 95), "s", alerts=len(cut_delays), clock="event time", **cond)
    emit("detector_batch_wall_p95_s", pct(walls, 95), "s", batches=len(walls), clock="wall", **cond)
    emit("false_alerts_per_shift", round(statistics.mean(false_free) * 8 / hours, 2), "alerts/8h", hours=hours,
         shifts=len(false_free), per_shift=false_free, detail=dict(free_detail), **cond)


def zscore_flags(x: np.ndarray, window: int = 60, z: float = 4.0) -> np.ndarray:
    """The peer: a trailing-window z-score (window excludes the value itself)."""
    flags = np.zeros(len(x), dtype=bool)
    for i in range(window, len(x)):
        w = x[i - window:i]
        sd = w.std()
        flags[i] = sd > 0 and abs(x[i] - w.mean()) / sd >= z
    return flags


def change_vs_zscore(seeds: list[int], trials: int = 40) -> None:
    """Steps of 0.5-3 noise sigmas in AR(1) noise with heavy tails: detection within 60 values
    of the change, false alarms per 10,000 values before it, and delay; the change detector at
    its defaults against a 60-value trailing z-score at |z| >= 4 and >= 6."""
    out: dict[str, dict[str, list[float]]] = {k: defaultdict(list) for k in ("cusum", "zscore-4", "zscore-6")}
    for seed in seeds:
        rng = np.random.default_rng(seed)
        for _ in range(trials):
            n, at = 1500, 1200
            e = rng.standard_t(5, n) * 0.7
            ar = np.zeros(n)
            for i in range(1, n):
                ar[i] = 0.5 * ar[i - 1] + e[i]
            shift = rng.uniform(0.5, 3.0) * ar[:at].std()
            x = 50.0 + ar
            x[at:] += shift
            _, a = ChangeDetector().score_many(x)
            flags = {"cusum": a.astype(bool), "zscore-4": zscore_flags(x, z=4.0), "zscore-6": zscore_flags(x, z=6.0)}
            for name, f in flags.items():
                hit = np.flatnonzero(f[at:at + 60])
                out[name]["detected"].append(float(hit.size > 0))
                if hit.size:
                    out[name]["delay"].append(float(hit[0]))
                onsets = np.flatnonzero(f[60:at] & ~np.r_[False, f[60:at - 1]])
                out[name]["false"].append(onsets.size / (at - 60) * 10_000)
    for name, m in out.items():
        emit("change_detection_rate", round(statistics.mean(m["detected"]), 3), "ratio", detector=name,
             series=len(m["detected"]), window_values=60)
        emit("heavy_tail_ar1_false_alarms_per_10k", round(statistics.mean(m["false"]), 2), "alarms/10k values",
             detector=name)
        emit("change_delay_median_values", pct(m["delay"], 50), "values", detector=name)


def seasonal_and_bearings(args: argparse.Namespace) -> None:
    """The change detector's figures on seasonal series and bearing diagnosis per sample rate."""
    bearings = bearing.run_all(args, "bearing-")
    for f in change_quality.figures(["seasonal"], **change_quality.size_options(args, "change-")):
        if f["name"] == "change_false_alarms_per_10k":
            f.update(target=1.0, meets=f["value"] <= 1.0)
        elif f["name"] == "change_recall":
            f.update(target=0.9, meets=f["value"] >= 0.9)
        print(json.dumps(f), flush=True)
    for f in bearings:
        print(json.dumps(f), flush=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=int, default=3, help="number of seeds (a faulty and a fault-free shift each)")
    ap.add_argument("--hours", type=float, default=8.0, help="length of a shift, hours")
    ap.add_argument("--rate", type=float, default=0.5, help="frames per second per robot")
    ap.add_argument("--grace", type=float, default=120.0, help="seconds after a label's end an alert still counts")
    ap.add_argument("--skip-shifts", action="store_true", help="no simulated shifts: the series and recordings only")
    ap.add_argument("--kinds", default=None, help="comma-separated fault kinds to schedule (default: every kind)")
    ap.add_argument("--trials", type=int, default=40, help="change-detector series per seed")
    change_quality.add_size_options(ap, "change-")
    bearing.add_size_options(ap, "bearing-")
    args = ap.parse_args()
    seeds = list(range(1, args.seeds + 1))
    kinds = None
    if args.kinds:
        kinds = {k.strip() for k in args.kinds.split(",") if k.strip()}
        unknown = kinds - set(LANE_A) - set(LANE_B)
        if unknown:
            ap.error(f"unknown fault kinds: {', '.join(sorted(unknown))}")
    try:
        seasonal_and_bearings(args)
    except ValueError as e:
        ap.error(str(e))
    change_vs_zscore(seeds, args.trials)
    if not args.skip_shifts:
        quality(seeds, args.hours, args.rate, args.grace, kinds)


if __name__ == "__main__":
    main()
