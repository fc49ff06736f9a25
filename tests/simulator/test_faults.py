"""Fault injection and its ground truth: every label matches what the data shows, and only it."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from minewatch.catalogue import QUANTITIES, SCENARIOS
from simulator.cli import simulate
from simulator.engine import SimConfig, Simulation
from simulator.faults import LIBRARY, FaultError, load_faults
from simulator.timeutil import NS, iso_ns

START = iso_ns("2026-11-27T00:00:00Z")  # 08:00 local: the maintenance shift begins

# One of every kind, spread so that no two faults touch the same places at the same time.
FAULTS = [
    {"kind": "methane_outburst", "scenario": "mf01", "channel": "ch4_t1", "start": "+2m", "duration": "90s", "peak": 1.8},
    {"kind": "methane_buildup", "scenario": "hf02", "start": "+3m", "duration": "12m", "peak": 1.2},
    {"kind": "co_rise", "scenario": "mf02", "start": "+1m", "duration": "20m", "peak": 30},
    {"kind": "o2_depletion", "scenario": "mf01", "start": "+25m", "duration": "10m"},
    {"kind": "main_fan_stoppage", "scenario": "vf01", "start": "+38m", "duration": "5m", "standby_after": "3m"},
    {"kind": "local_fan_stoppage", "scenario": "lf03", "start": "+2m", "duration": "6m"},
    {"kind": "airflow_reversal", "scenario": "vf02", "start": "+24m", "duration": "4m"},
    {"kind": "bearing_fault", "scenario": "pr01", "start": "+1m", "duration": "20m"},
    {"kind": "imbalance", "scenario": "lf04", "start": "+1m", "duration": "20m"},
    {"kind": "belt_drum_overheating", "scenario": "bc04", "start": "+2m", "duration": "20m"},
    {"kind": "sensor_stuck", "scenario": "ss01", "channel": "t", "start": "+3m", "duration": "5m"},
    {"kind": "sensor_drift", "scenario": "ac01", "channel": "p", "start": "+3m", "duration": "10m", "peak": 1.0},
    {"kind": "sensor_out_of_range", "scenario": "cb01", "channel": "level", "start": "+4m", "duration": "2m"},
    {"kind": "robot_offline", "scenario": "gd01", "start": "+5m", "duration": "3m"},
    {"kind": "link_outage", "scenario": "ss02", "start": "+6m", "duration": "2m"},
]
NOISELESS = {"run", "sm"}


def run(faults: list | None) -> tuple[Simulation, list]:
    sim = Simulation(SimConfig(seed=11, start_ns=START, duration_s=2700, rate_hz=0.2,
                               faults=load_faults(faults or [])))
    msgs = [m for tick in sim.ticks() for m in tick.messages]
    return sim, msgs


@pytest.fixture(scope="module")
def runs() -> tuple:
    clean_sim, clean = run(None)
    sim, msgs = run(FAULTS)
    return clean_sim, clean, sim, msgs


def test_every_labelled_fault_shows_inside_its_window_and_nowhere_else(runs: tuple) -> None:
    clean_sim, clean, sim, msgs = runs
    assert clean_sim.labels() == [] or all(r["kind"] == "coverage_hole" for r in clean_sim.labels())
    labels = sim.labels()
    by_id: dict[str, list[dict[str, Any]]] = {}
    for rec in labels:
        by_id.setdefault(rec["fault_id"], []).append(rec)
    assert len([f for f in by_id if not f.startswith("hole-")]) == len(FAULTS)
    ref = {(f.robot_id, f.ts): f for m in clean for f in m.frames}
    seen_keys = set()
    windows: dict[tuple[str, str], list[tuple[int, int, dict]]] = {}
    for rec in labels:
        for ch, (a, b) in rec["channel_windows"].items():
            windows.setdefault((rec["scenario_id"], ch), []).append((a, b, rec))
    hits: dict[tuple[str, str, str], float] = {}
    for m in msgs:
        for f in m.frames:
            key = (f.robot_id, f.ts)
            assert key in ref, f"frame {key} exists only with faults"
            seen_keys.add(key)
            base = ref[key].readings
            for ch, v in f.readings.items():
                q = SCENARIOS[f.scenario_id].channel(ch).quantity
                res = QUANTITIES[q].resolution
                d = abs(v - base[ch])
                if d <= 1e-9 or (d <= res * 1.001 and q not in NOISELESS):
                    continue  # equal, or one rounding step apart
                inside = [rec for a, b, rec in windows.get((f.scenario_id, ch), []) if a <= f.ts <= b]
                assert inside, f"{f.scenario_id}.{ch} at +{(f.ts - START) / NS:.0f}s differs by {d} outside every label"
                for rec in inside:
                    hit = (rec["fault_id"], rec["scenario_id"], ch)
                    hits[hit] = max(hits.get(hit, 0.0), d)
    # each label shows: every channel it moved by 1.5 resolution steps or more differs in the data
    for rec in labels:
        if rec["kind"] in ("robot_offline", "link_outage", "coverage_hole"):
            continue
        assert rec["visible"], rec["fault_id"]
        for ch in rec["channels"]:
            if ch == "vib":
                continue
            q = SCENARIOS[rec["scenario_id"]].channel(ch).quantity
            dev = rec["deviation"].get(ch, 1e9)
            if dev >= 1.5 * QUANTITIES[q].resolution:
                assert (rec["fault_id"], rec["scenario_id"], ch) in hits, (rec["fault_id"], rec["scenario_id"], ch, dev)
    # frames missing from the faulted run are those of the offline robot, inside its window
    offline = [r for r in labels if r["kind"] == "robot_offline"]
    missing = set(ref) - seen_keys
    assert missing
    for robot, ts in missing:
        assert any(r["robot_id"] == robot and r["start_ns"] <= ts <= r["end_ns"] for r in offline), (robot, ts)
    # frames sent late as a backlog belong to an outage or a coverage hole of that robot
    held = [r for r in labels if r["kind"] in ("link_outage", "coverage_hole")]
    backlog = [f for m in msgs if m.backlog for f in m.frames]
    assert backlog
    for f in backlog:
        assert any(r["robot_id"] == f.robot_id and r["start_ns"] <= f.ts <= r["end_ns"] for r in held), f.robot_id
    outage = next(r for r in labels if r["kind"] == "link_outage")
    assert any(f.robot_id == outage["robot_id"] for f in backlog)


def test_labels_carry_the_severity_the_catalogue_limits_demand(runs: tuple) -> None:
    labels = runs[2].labels()
    primary = {r["kind"]: r for r in labels if r["primary"]}
    assert primary["methane_outburst"]["expected_severity"] == "critical"  # 1.8 % >= the 1.5 % power cut
    assert primary["methane_outburst"]["extremes"]["ch4_t1"] > 1.8
    assert primary["o2_depletion"]["expected_severity"] == "critical"  # below 19.5 %
    assert primary["co_rise"]["expected_severity"] == "alarm"  # 30 ppm >= 24 ppm
    assert primary["main_fan_stoppage"]["expected_severity"] == "critical"
    assert primary["methane_buildup"]["expected_severity"] == "alarm"  # 1.2 % >= 1.0 % heading alarm
    assert primary["belt_drum_overheating"]["expected_severity"] == "alarm"
    assert primary["sensor_stuck"]["expected_alerts"][0]["kind"] == "sensor-health"
    imb = primary["imbalance"]["expected_alerts"][0]
    assert imb["detector"] == "iso_velocity" and imb["zone"] == "D" and primary["imbalance"]["expected_severity"] == "alarm"
    bearing = primary["bearing_fault"]["expected_alerts"][0]
    assert bearing["detector"] == "bearing_envelope" and bearing["fault_hz"] > 0
    # the fan stoppage starves its split: air velocity at the face drops below the 0.25 m/s minimum
    downstream = [r for r in labels if r["kind"] == "main_fan_stoppage" and r["scenario_id"] == "mf01"]
    assert downstream and any(a["channel"] == "ws" for a in downstream[0]["expected_alerts"])
    # the reversal turns the air round in the places that fan ventilates
    rev = [r for r in labels if r["kind"] == "airflow_reversal" and r["scenario_id"] == "ra01"]
    assert rev and rev[0]["extremes"]["ws"] < 0


def test_labels_file_is_written_by_the_command(tmp_path: Path) -> None:
    faults = tmp_path / "faults.yaml"
    faults.write_text("- kind: methane_outburst\n  scenario: hf01\n  start: +20s\n  duration: 60s\n  peak: 1.6\n")
    labels = tmp_path / "labels.jsonl"
    result = CliRunner().invoke(simulate, ["--output", str(tmp_path / "f.jsonl"), "--scenarios", "hf01",
                                           "--duration", "120s", "--start", "2026-11-27T00:00:00Z",
                                           "--faults", str(faults), "--labels-out", str(labels)])
    assert result.exit_code == 0, result.output
    recs = [json.loads(line) for line in labels.read_text().splitlines()]
    assert recs[0]["kind"] == "methane_outburst" and recs[0]["scenario_id"] == "hf01"
    assert recs[0]["expected_severity"] == "critical" and recs[0]["robot_id"] == "r04"
    assert set(recs[0]) >= {"fault_id", "kind", "scenario_id", "robot_id", "channels", "start_ns", "end_ns",
                            "expected_severity", "expected_alerts"}


@pytest.mark.parametrize("faults, message", [
    ([{"kind": "meteor_strike", "scenario": "mf01"}], "unknown kind"),
    ([{"kind": "methane_outburst", "scenario": "zz99"}], "unknown scenario"),
    ([{"kind": "o2_depletion", "scenario": "hf01"}], "no o2 channel"),
    ([{"kind": "co_rise", "scenario": "mf01", "channel": "ch4_t1"}], "not co"),
    ([{"kind": "main_fan_stoppage", "scenario": "mf01"}], "main_fan scenarios"),
    ([{"kind": "methane_outburst", "scenario": "mf01", "start": "soon"}], "bad time"),
    ([{"kind": "methane_outburst", "scenario": "mf01", "colour": "red"}], "unknown key"),
])
def test_bad_faults_are_refused_with_a_reason(faults: list, message: str) -> None:
    with pytest.raises(FaultError, match=message):
        Simulation(SimConfig(start_ns=START, frames=1, faults=load_faults(faults)))


def test_bad_fault_file_is_a_usage_error(tmp_path: Path) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    result = CliRunner().invoke(simulate, ["--output", str(tmp_path / "f.jsonl"), "--frames", "1",
                                           "--faults", str(bad)])
    assert result.exit_code == 2
    assert "not valid JSON" in result.output


def test_labels_are_written_as_each_fault_finishes(tmp_path: Path) -> None:
    from simulator.sinks import LabelSink

    faults = load_faults([
        {"kind": "methane_outburst", "scenario": "mf01", "start": "+20s", "duration": "60s", "peak": 1.7},
        {"kind": "sensor_stuck", "scenario": "mf01", "channel": "co", "start": "+30s", "duration": "30s"},
        {"kind": "local_fan_stoppage", "scenario": "lf01", "start": "+10m", "duration": "5m"},
    ])
    sim = Simulation(SimConfig(seed=3, start_ns=START, duration_s=1800, scenarios=["mf01", "lf01", "hf01"],
                               faults=faults))
    path = tmp_path / "labels.jsonl"
    sink = LabelSink(path, sim)
    written_at: dict[str, int] = {}
    for tick in sim.ticks():
        sink.write(tick)
        for line in path.read_text().splitlines():
            written_at.setdefault(json.loads(line)["fault_id"], tick.t_ns)
    sink.close()
    final = [json.loads(line) for line in path.read_text().splitlines()]
    assert sorted(map(json.dumps, final)) == sorted(map(json.dumps, sim.labels()))
    outburst = next(r for r in final if r["kind"] == "methane_outburst" and r["primary"])
    # written within a few minutes of the fault's end, long before the half-hour run ends
    assert written_at[outburst["fault_id"]] < START + 10 * 60 * NS
    assert written_at[next(r["fault_id"] for r in final if r["kind"] == "sensor_stuck")] < START + 2 * 60 * NS


@pytest.mark.parametrize("name", sorted(LIBRARY))
def test_every_built_in_fault_set_is_valid(name: str) -> None:
    sim = Simulation(SimConfig(start_ns=START, frames=1, faults=load_faults(f"builtin:{name}")))
    assert sim.faults and all(f.start_ns >= START for f in sim.faults)


def test_a_short_outage_makes_late_frames_but_no_offline_robot() -> None:
    sim = Simulation(SimConfig(seed=1, start_ns=START, duration_s=120, scenarios=["ss02"],
                               faults=load_faults([{"kind": "link_outage", "scenario": "ss02", "start": "+30s",
                                                    "duration": "8s"}])))
    ticks = list(sim.ticks())
    assert not [s for t in ticks for s in t.statuses if s.event == "offline"]
    assert [m for t in ticks for m in t.messages if m.backlog]
    (rec,) = sim.labels()
    assert [a["detector"] for a in rec["expected_alerts"]] == ["late_frames"]
    assert rec["expected_severity"] == "info"
