"""Every benchmark in bench/ runs with tiny sizes and prints its figures, so a benchmark broken by
a change shows here and not when someone next measures.

Each script runs as a subprocess, the way it is documented, with the flags of ``SMOKE`` (its real
defaults are its own); those that need them start their own mosquitto and influxd. It must exit
0 and print only JSON lines, each with a ``name``, a numeric (or null) ``value`` and a ``unit``,
among them every figure name ``FIGURES`` expects of it.
"""

from __future__ import annotations

import functools
import importlib.util
import json
import math
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parent.parent
BENCH = ROOT / "bench"
SERVERS = pytest.mark.integration  # starts its own mosquitto and/or influxd

# script: (tiny-size flags, "{tmp}" being the test's temporary directory; needs servers)
SMOKE: dict[str, tuple[list[str], bool]] = {
    "alarm_load.py": (["--smoke"], True),
    "bearing.py": (["--machines", "1", "--snrs", "0", "--seconds", "0.5"], False),
    "change_quality.py": (["--series", "1", "--days", "4", "--dt", "900", "--probation-days", "2"], False),
    "broker_security.py": (["--runs", "1", "--messages", "200"], True),
    "detection_quality.py": (["--seeds", "1", "--hours", "0.25", "--rate", "0.2",
                              "--kinds", "methane_outburst,sensor_stuck", "--trials", "4",
                              "--change-series", "1", "--change-days", "4", "--change-dt", "900",
                              "--change-probation-days", "2", "--bearing-machines", "1", "--bearing-snrs", "0",
                              "--bearing-seconds", "0.5"], False),
    "group.py": (["--mines", "2", "--robots", "1", "--sites", "2", "--workers", "1", "--partitions", "2",
                  "--frames", "300", "--latency-seconds", "2", "--latency-warmup", "1", "--outage-s", "3"], True),
    "hostile.py": (["--messages", "600", "--warm", "200", "--sse-clients", "3", "--sse-alerts", "20"], True),
    "hostile_api.py": (["--clients", "5", "--alerts", "50"], True),
    "detector_kernels.py": (["--samples", "20000", "--slow-samples", "2000", "--streams", "50", "--repeats", "1"],
                            False),
    "influx_direct.py": (["--points", "5000"], True),
    "ingest_cpu.py": (["--points", "2000", "--runs", "1", "--batch", "500"], False),
    "ingest_throughput.py": (["--points", "3000", "--runs", "1", "--latency-seconds", "2", "--latency-warmup", "1"],
                             True),
    "mqtt_clients.py": (["--messages", "300", "--runs", "1"], True),
    "replay.py": (["--runs", "1", "--hours", "0.05", "--out", "{tmp}"], True),
    "report.py": (["--runs", "1", "--hours", "0.05", "--out", "{tmp}"], True),
    "simulator.py": (["--runs", "1", "--frames", "500", "--realtime-seconds", "2"], True),
}

FIGURES: dict[str, set[str]] = {
    "alarm_load.py": {"alarm_incidents", "alarm_annunciations_peak_10min", "alarm_annunciations_per_hour",
                      "alarm_chattering", "alarm_stale", "alarm_recall"},
    "bearing.py": {"bearing_accuracy", "bearing_healthy_false_fault_rate", "bearing_analyse_ms"},
    "broker_security.py": {"mqtt_login_ms", "mqtt_qos1_publish_rate", "tls_over_plain"},
    "change_quality.py": {"change_false_alarms_per_10k", "change_recall", "change_delay_samples"},
    "detection_quality.py": {"change_detection_rate", "heavy_tail_ar1_false_alarms_per_10k", "detection_recall",
                             "detection_precision", "limit_violation_recall", "methane_power_cut_delay_p95_s",
                             "false_alerts_per_shift", "change_false_alarms_per_10k", "change_recall",
                             "change_delay_samples", "bearing_accuracy"},
    "detector_kernels.py": {"kernel_samples_per_s", "kernel_speedup"},
    "group.py": {"group_frames_per_s", "group_lost_frames", "group_alert_latency_p99_ms", "group_catchup_s",
                 "single_frames_per_s", "single_lost_frames", "single_alert_latency_p99_ms", "single_catchup_s"},
    "hostile.py": {"fuzz_messages", "fuzz_deadlettered", "fuzz_good_frames_lost", "ingest_rss_growth_mb",
                   "broker_disconnects", "influx_future_shards", "api_sse_clients_rss_mb"},
    "hostile_api.py": {"api_sse_clients_rss_mb", "api_sse_after_leave_rss_mb"},
    "influx_direct.py": {"influx_direct_sustained_points_per_s", "influx_cpu_us_per_point"},
    "ingest_cpu.py": {"ingest_cpu_us_per_point", "ingest_cpu_speedup"},
    "ingest_throughput.py": {"ingest_points_per_s", "ingest_lost_points", "ingest_to_ceiling_ratio",
                             "subscriber_points_per_s", "ingest_to_subscriber_ceiling_ratio",
                             "alert_latency_p50_ms", "alert_latency_p99_ms", "alert_latency_max_ms"},
    "mqtt_clients.py": {"mqtt_client_msgs_per_s", "mqtt_client_cpu_us_per_msg"},
    "replay.py": {"replay_x_realtime", "replay_readings_per_s", "replay_detectors_only_x_realtime", "replay_split_s_per_hour",
                  "replay_cpu_s_per_hour"},
    "report.py": {"report_collect", "report_render", "report_size"},
    "simulator.py": {"simulator_frames_per_s", "simulator_realtime_mines", "simulator_realtime_max_lag_s"},
}


# what a smoke run must show besides well-formed figures: (name, field, predicate, why)
CHECKS: dict[str, list[tuple[str, str, Callable[[Any], bool], str]]] = {
    "alarm_load.py": [("alarm_incidents", "value", lambda v: v >= 1, "the demo's outburst opens an incident"),
                      ("alarm_recall", "meets", lambda v: v is True, "the live stack alerts what the detectors do")],
    "detection_quality.py": [("change_false_alarms_per_10k", "meets", lambda v: isinstance(v, bool),
                              "the seasonal series' false alarms are held against their target"),
                             ("change_recall", "meets", lambda v: isinstance(v, bool), "so is every recall"),
                             ("bearing_accuracy", "rate_hz", lambda v: v in (12000.0, 25600.0, 48000.0),
                              "bearings are scored at each rate, and say which")],
    "ingest_throughput.py": [("ingest_lost_points", "value", lambda v: v == 0, "no point is lost")],
    "group.py": [("group_lost_frames", "value", lambda v: v == 0, "no frame is lost on the group path"),
                 ("single_lost_frames", "value", lambda v: v == 0, "no frame is lost on the single path"),
                 ("group_catchup_s", "held_back_frames", lambda v: v > 0, "the cut link held the mine's frames back"),
                 ("single_catchup_s", "held_back_frames", lambda v: v > 0, "the stopped ingestor held frames back")],
    "hostile.py": [("fuzz_deadlettered", "meets", lambda v: v is True, "every bad message dead-lettered once"),
                   ("fuzz_good_frames_lost", "value", lambda v: v == 0, "no good frame is lost"),
                   ("broker_disconnects", "value", lambda v: v == 0, "no input costs the broker connection"),
                   ("influx_future_shards", "value", lambda v: v == 0, "no shard out in the future")],
}


def test_every_bench_script_has_a_smoke_run() -> None:
    assert {p.name for p in BENCH.glob("*.py")} == set(SMOKE) == set(FIGURES)


@pytest.mark.parametrize("script", [pytest.param(s, marks=[SERVERS] if servers else [])
                                    for s, (_, servers) in sorted(SMOKE.items())])
def test_bench_script_smoke_run(script: str, tmp_path: Path) -> None:
    args = [a.replace("{tmp}", str(tmp_path)) for a in SMOKE[script][0]]
    t0 = time.monotonic()
    proc = subprocess.run([sys.executable, str(BENCH / script), *args], cwd=ROOT, capture_output=True, text=True,
                          timeout=240)
    took = time.monotonic() - t0
    assert proc.returncode == 0, f"{script} exited {proc.returncode} after {took:.0f} s:\n{proc.stderr[-4000:]}"
    lines = [ln for ln in proc.stdout.splitlines() if ln.strip()]
    assert lines, f"{script} printed nothing"
    names = set()
    for ln in lines:
        fig = json.loads(ln)
        assert isinstance(fig, dict), ln
        assert isinstance(fig.get("name"), str) and fig["name"], ln
        assert isinstance(fig.get("unit"), str) and fig["unit"], ln
        value = fig.get("value", "missing")
        assert value is None or (isinstance(value, (int, float)) and not isinstance(value, bool)), ln
        names.add(fig["name"])
    assert FIGURES[script] <= names, f"{script}: no {sorted(FIGURES[script] - names)}"
    figures = [json.loads(ln) for ln in lines]
    assert any(isinstance(f["value"], (int, float)) and math.isfinite(f["value"]) for f in figures), \
        f"{script}: no figure has a finite value"
    for name, key, ok, why in CHECKS.get(script, []):
        for f in (f for f in figures if f["name"] == name):
            assert ok(f.get(key)), f"{script}: {name} {key}={f.get(key)!r}, but {why}"
    print(f"{script}: {took:.1f} s")


# -- the alarm-load rules, on events made by hand ------------------------------------------------------
@functools.cache
def _bench_module(script: str):
    spec = importlib.util.spec_from_file_location(f"bench_{script.removesuffix('.py')}", BENCH / script)
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = mod  # its dataclasses look their module up
    spec.loader.exec_module(mod)
    return mod


def _alarm_load():
    return _bench_module("alarm_load.py")


S = 1_000_000_000
M = 60 * S
T0 = 1_795_852_800 * S  # a fixed event time


def _alert(aid: str, state: str, t: int, *, channel: str = "ch4_t1", detector: str = "gas_limit",
           scenario: str = "mf01", robot: str = "r01", kind: str = "gas") -> object:
    from minewatch.schema import AlertEvent, AlertKind, AlertState, Severity

    return AlertEvent(alert_id=aid, kind=AlertKind(kind), detector=detector, severity=Severity.alarm,
                      state=AlertState(state), scenario_id=scenario,
                      robot_id=robot, channel=channel, first_ts=T0, ts=T0 + t, message="m")


def _label(start: int, end: int, *, scenario: str = "mf01", kind: str = "methane_outburst",
           channels: tuple[str, ...] = ("ch4_t1",)) -> dict:
    return {"fault_id": f"f-{kind}-{scenario}", "kind": kind, "scenario_id": scenario, "robot_id": "r01",
            "channels": list(channels), "start_ns": T0 + start, "end_ns": T0 + end, "visible": True,
            "expected_alerts": [{"kind": "gas", "detector": "limit", "channel": channels[0], "severity": "alarm"}]}


def test_alarm_load_peak_counts_the_worst_ten_minutes_inside_the_bounds() -> None:
    al = _alarm_load()
    times = [T0 + t for t in (0, 1 * M, 2 * M, 11 * M, 11 * M + 30 * S, 12 * M, 12 * M + S)]
    assert al.peak(times, T0, T0 + 60 * M) == (4, T0 + 11 * M)  # 11, 11:30, 12, 12:01 min (2 min is 10:01 before)
    assert al.peak(times, T0, T0 + 10 * M) == (3, T0)
    assert al.peak([], T0, T0 + M) == (0, None)


def test_alarm_load_chattering_is_three_raises_within_a_minute_of_one_key() -> None:
    al = _alarm_load()
    quick = [_alert(f"a{i}", "raised", t) for i, t in enumerate((0, 20 * S, 60 * S))]
    slow = [_alert(f"b{i}", "raised", t, channel="ch4_t2") for i, t in enumerate((0, 31 * S, 62 * S))]
    other = [_alert(f"c{i}", "raised", t, channel=f"co{i}") for i, t in enumerate((0, 1 * S, 2 * S))]
    found = al.chattering(quick + slow + other, T0)
    assert [(c["place"], c["detector"], c["channel"]) for c in found] == [("mf01", "gas_limit", "ch4_t1")]


def test_alarm_load_stale_counts_from_the_end_of_the_labels_or_from_the_raise() -> None:
    al = _alarm_load()
    labels = [_label(0, 5 * M)]
    alerts = [
        _alert("on-time", "raised", M), _alert("on-time", "cleared", 14 * M),  # gone at 5, cleared by 15: fine
        _alert("late", "raised", M, channel="ch4_t1"), _alert("late", "cleared", 16 * M),  # cleared after 15
        _alert("stuck", "raised", 2 * M),  # never cleared
        _alert("false", "raised", 30 * M, channel="co"),  # belongs to no label: stale 10 min after its raise
        _alert("brief", "raised", 40 * M, channel="co2"), _alert("brief", "cleared", 45 * M),
    ]
    lives = al.alert_lives(alerts, labels)
    assert lives["on-time"].labels == ["f-methane_outburst-mf01"] and lives["false"].labels == []
    over_run, at_end = al.stale(list(lives.values()), T0 + 60 * M)
    assert sorted(s.id for s in over_run) == ["false", "late", "stuck"]
    assert sorted(s.id for s in at_end) == ["false", "stuck"]
    assert al.stale(list(lives.values()), T0 + 39 * M)[1] == [lives["stuck"]]  # "false" is due at 40 min


def test_alarm_load_upsets_leave_out_coverage_holes_and_merge() -> None:
    al = _alarm_load()
    labels = [_label(0, 5 * M), _label(12 * M, 20 * M, scenario="ra03"),
              _label(100 * M, 101 * M, kind="coverage_hole", channels=("x",))]
    assert al.upsets(labels, T0, T0 + 120 * M) == [(T0, T0 + 30 * M)]
    assert al.outburst_upset(labels) == (T0, T0 + 30 * M)


def test_alarm_load_counts_an_incident_escalating_again_to_where_it_was() -> None:
    from minewatch.schema import AlertKind, IncidentEvent, IncidentState, Severity

    al = _alarm_load()

    def step(state: str, severity: str, worst: str, t: int, needs_ack: bool = True) -> IncidentEvent:
        return IncidentEvent(incident_id="mf01.methane.1", place="mf01", scenario_id="mf01", cause="methane",
                             title="t", kind=AlertKind.gas, severity=Severity(severity), max_severity=Severity(worst),
                             state=IncidentState(state),
                             needs_ack=needs_ack, first_ts=T0, ts=T0 + t, message="m", members=[])

    steps = [step("raised", "alarm", "alarm", 0), step("escalated", "critical", "critical", 2 * S),
             step("updated", "alarm", "critical", 3 * S), step("escalated", "critical", "critical", 4 * S),
             step("updated", "alarm", "critical", 5 * M), step("escalated", "critical", "critical", 10 * M)]
    again, quick = al.repeated(steps)
    assert again == {id(steps[3]), id(steps[5])}
    assert quick == {id(steps[1]), id(steps[3])}


def test_the_latency_bench_alert_robots_raise_and_clear_every_channel_they_take() -> None:
    # the readings of ingest_throughput's alert robots, through the detectors frame by frame: each
    # channel raised twice and cleared once (the second clear is held as flapping, and not timed).
    # A rule changed so that a cycle no longer raises or clears would leave the latency with
    # fewer samples than it says, or none.
    bench = _bench_module("ingest_throughput.py")
    from detectors import DetectorSuite
    from minewatch.wire import Frame

    channels = bench.alert_channels()
    assert len({sid for sid, _, _ in channels}) >= 20 and len(channels) >= 100
    cycle = [(sid, chan, v) for sid, chan, values in channels for v in values]
    suite = DetectorSuite()
    got: dict[tuple[str, str | None], list[str]] = {}
    for seq, (sid, chan, v) in enumerate(cycle * 2):
        f = Frame(robot_id=f"lat{sid}", scenario_id=sid, seq=seq, ts=T0 + seq * 35_000_000, readings={chan: v})
        for e in suite.process([f]).events:
            if e.detector in bench.ALERT_DETECTORS and not e.evidence.get("flapping"):
                got.setdefault((e.scenario_id, e.channel), []).append(e.state.value)
    assert {k: got.get(k) for k in ((sid, chan) for sid, chan, _ in channels)} == \
        {(sid, chan): ["raised", "cleared", "raised"] for sid, chan, _ in channels}
