"""``minewatch simulate`` end to end: the file sink, determinism, and a real broker."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from minewatch.catalogue import SCENARIOS
from minewatch.mqtt import paho_client
from minewatch.schema import RobotStatus
from minewatch.settings import MqttTarget
from minewatch.topics import Topics
from minewatch.wire import decode_frames
from simulator.cli import simulate
from simulator.timeutil import iso_ns

START = "2026-11-27T00:00:00Z"


def run_cli(*args: str) -> dict:
    result = CliRunner().invoke(simulate, list(args), catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return json.loads(result.output.strip().splitlines()[-1])


def read_frames(path: Path) -> list:
    out = []
    for line in path.read_bytes().splitlines():
        out.extend(decode_frames(line))
    return out


def test_same_seed_gives_identical_bytes_and_another_seed_does_not(tmp_path: Path) -> None:
    common = ["--frames", "2000", "--start", START, "--faults", "builtin:demo", "--waveform-rate", "4096"]
    a, b, c = tmp_path / "a.jsonl", tmp_path / "b.jsonl", tmp_path / "c.jsonl"
    la, lb = tmp_path / "la.jsonl", tmp_path / "lb.jsonl"
    run_cli("--output", str(a), "--seed", "5", "--labels-out", str(la), *common)
    run_cli("--output", str(b), "--seed", "5", "--labels-out", str(lb), *common)
    run_cli("--output", str(c), "--seed", "6", *common)
    assert a.read_bytes() == b.read_bytes()
    assert la.read_bytes() == lb.read_bytes()
    assert a.read_bytes() != c.read_bytes()


def test_frames_follow_the_catalogue(tmp_path: Path) -> None:
    out = tmp_path / "f.jsonl"
    summary = run_cli("--output", str(out), "--frames", "700", "--start", START)
    frames = read_frames(out)
    assert summary["frames"] == len(frames) == 700
    assert summary["readings"] == sum(len(f.readings) for f in frames)
    assert {f.scenario_id for f in frames} == set(SCENARIOS)  # every scenario is reported on
    last_seq: dict[str, int] = {}
    for f in frames:
        sc = SCENARIOS[f.scenario_id]
        assert list(f.readings) == [c.name for c in sc.channels]
        for name, v in f.readings.items():
            ch = sc.channel(name)
            assert ch.low <= v <= ch.high
            res = {"ch4": 0.01, "co": 1.0, "o2": 0.1}.get(ch.quantity)
            if res is not None:
                assert abs(v / res - round(v / res)) < 1e-6, (name, v)
        last_seq[f.robot_id] = max(f.seq, last_seq.get(f.robot_id, -1))
    for rid in last_seq:
        seqs = sorted(f.seq for f in frames if f.robot_id == rid)
        assert seqs == list(range(len(seqs)))  # no gaps, no repeats


def test_methane_outburst_rises_above_peak_and_clears_within_its_label(tmp_path: Path) -> None:
    out, labels = tmp_path / "f.jsonl", tmp_path / "l.jsonl"
    faults = tmp_path / "faults.json"
    faults.write_text(json.dumps([{"kind": "methane_outburst", "scenario": "mf01", "channel": "ch4_t1",
                                   "start": "+30s", "duration": "60s", "peak": 1.8}]))
    run_cli("--output", str(out), "--scenarios", "mf01", "--duration", "150s", "--start", START,
            "--faults", str(faults), "--labels-out", str(labels))
    frames = [f for f in read_frames(out) if f.scenario_id == "mf01"]
    recs = [json.loads(x) for x in labels.read_text().splitlines()]
    primary = next(r for r in recs if r["primary"])
    assert primary["expected_severity"] == "critical"
    assert "ch4_t1" in primary["channels"]
    inside = [f.readings["ch4_t1"] for f in frames if primary["start_ns"] <= f.ts <= primary["end_ns"]]
    outside = [f.readings["ch4_t1"] for f in frames if not primary["start_ns"] <= f.ts <= primary["end_ns"]]
    assert max(inside) > 1.8
    assert max(outside) < 1.0
    t0 = primary["inject_start_ns"]
    after_peak = [f.readings["ch4_t1"] for f in frames if f.ts > t0 + 40 * 10**9 and f.ts < t0 + 60 * 10**9]
    assert min(after_peak) < 1.0  # back below the restore level inside the fault window


class Listener:
    """A subscriber that keeps every message of ``subscriptions``: ``(topic, payload, retained)``."""

    def __init__(self, mosquitto, name: str, *subscriptions: str) -> None:
        self.got: list[tuple[str, bytes, bool]] = []
        self.lock = threading.Lock()
        self.client = paho_client(MqttTarget(mosquitto.url), client_id=name)
        subscribed = threading.Event()

        def on_message(client, userdata, msg) -> None:
            with self.lock:
                self.got.append((msg.topic, msg.payload, msg.retain))

        self.client.on_message = on_message
        self.client.on_subscribe = lambda *a: subscribed.set()
        self.client.connect(mosquitto.host, mosquitto.port)
        self.client.subscribe([(t, 1) for t in subscriptions])
        self.client.loop_start()
        assert subscribed.wait(10)

    def messages(self) -> list[tuple[str, bytes, bool]]:
        with self.lock:
            return list(self.got)

    def close(self) -> None:
        self.client.loop_stop()
        self.client.disconnect()


@pytest.mark.integration
def test_mqtt_publishes_exactly_n_frames_with_status_and_will(mosquitto, prefix: str) -> None:
    topics = Topics(prefix)
    got: list[tuple[str, bytes, bool]] = []
    lock = threading.Lock()
    sub = paho_client(MqttTarget(mosquitto.url), client_id=f"sub-{prefix.replace('/', '-')}")
    subscribed = threading.Event()

    def on_message(client, userdata, msg) -> None:
        with lock:
            got.append((msg.topic, msg.payload, msg.retain))

    sub.on_message = on_message
    sub.on_subscribe = lambda *a: subscribed.set()
    sub.connect(mosquitto.host, mosquitto.port)
    sub.subscribe([(topics.all_telemetry, 1), (topics.all_status, 1)])
    sub.loop_start()
    try:
        assert subscribed.wait(10)
        proc = subprocess.run([str(Path(sys.executable).parent / "minewatch"), "simulate", "--mqtt-url", mosquitto.url,
                               "--topic-prefix", prefix, "--frames", "120", "--scenarios", "mf01,vf01,bc01",
                               "--speed", "max", "--seed", "3", "--start", START, "--live"],
                              capture_output=True, text=True, timeout=60)
        assert proc.returncode == 0, proc.stderr
        summary = json.loads(proc.stdout.strip().splitlines()[-1])
        assert summary["frames"] == 120
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            with lock:
                n = sum(len(decode_frames(p)) for t, p, _ in got if topics.parse_telemetry(t))
                offline = [t for t, p, _ in got if topics.parse_status(t) and p and not json.loads(p)["online"]]
            if n >= 120 and len(offline) >= 3:
                break
            time.sleep(0.05)
    finally:
        sub.loop_stop()
        sub.disconnect()
    tel = [(t, p) for t, p, _ in got if topics.parse_telemetry(t)]
    frames = [(t, f) for t, p in tel for f in decode_frames(p)]
    assert len(frames) == 120
    assert summary["messages"] == len(tel)
    for t, f in frames:
        assert topics.parse_telemetry(t) == (f.scenario_id, f.robot_id)
    statuses = [RobotStatus.model_validate_json(p) for t, p, _ in got if topics.parse_status(t) and p]
    robots = {f.robot_id for _, f in frames}
    assert {s.robot_id for s in statuses if s.online} == robots
    # the simulator leaves as robots do: each connection's will marks the robot offline
    assert {s.robot_id for s in statuses if not s.online} == robots


@pytest.mark.integration
def test_mqtt_offline_robot_and_outage_show_as_will_then_backlog(mosquitto, prefix: str, tmp_path: Path) -> None:
    topics = Topics(prefix)
    got: list[tuple[str, bytes]] = []
    lock = threading.Lock()
    sub = paho_client(MqttTarget(mosquitto.url), client_id=f"sub2-{prefix.replace('/', '-')}")
    subscribed = threading.Event()

    def on_message(client, userdata, msg) -> None:
        with lock:
            got.append((msg.topic, msg.payload))

    sub.on_message = on_message
    sub.on_subscribe = lambda *a: subscribed.set()
    sub.connect(mosquitto.host, mosquitto.port)
    sub.subscribe([(topics.all_telemetry, 1), (topics.all_status, 1)])
    sub.loop_start()
    faults = tmp_path / "faults.json"
    faults.write_text(json.dumps([
        {"kind": "robot_offline", "scenario": "gd01", "start": "+10s", "duration": "30s"},
        {"kind": "link_outage", "scenario": "ss02", "start": "+10s", "duration": "30s"},
    ]))
    try:
        assert subscribed.wait(10)
        proc = subprocess.run([str(Path(sys.executable).parent / "minewatch"), "simulate", "--mqtt-url", mosquitto.url,
                               "--topic-prefix", prefix, "--duration", "60s", "--scenarios", "gd01,ss02",
                               "--speed", "max", "--start", START, "--faults", str(faults), "--live"],
                              capture_output=True, text=True, timeout=60)
        assert proc.returncode == 0, proc.stderr
        summary = json.loads(proc.stdout.strip().splitlines()[-1])
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            with lock:
                n = sum(len(decode_frames(p)) for t, p in got if topics.parse_telemetry(t))
            if n >= summary["frames"]:
                break
            time.sleep(0.05)
    finally:
        sub.loop_stop()
        sub.disconnect()
    assert summary["frames"] == 60 + 30  # r24 loses none, r29 is dead for 30 s
    status: dict[str, Any] = {}
    for t, p in got:
        rid = topics.parse_status(t)
        if rid and p:
            status.setdefault(rid, []).append(json.loads(p)["online"])
    # dead robot and cut-off robot: online, will (offline), back online, will at the end
    for rid in ("r29", "r24"):
        flips = [s for i, s in enumerate(status[rid]) if i == 0 or s != status[rid][i - 1]]
        assert flips == [True, False, True, False], (rid, status[rid])
    arrays = [decode_frames(p) for t, p in got if topics.parse_telemetry(t) == ("ss02", "r24") and p.startswith(b"[")]
    assert arrays and sum(len(a) for a in arrays) >= 29  # the backlog of the outage
    seqs = sorted(f.seq for t, p in got if topics.parse_telemetry(t) == ("ss02", "r24") for f in decode_frames(p))
    assert seqs == list(range(60))


def test_historical_shift_runs_its_whole_length_with_past_timestamps(tmp_path: Path) -> None:
    out = tmp_path / "f.jsonl"
    summary = run_cli("--output", str(out), "--start", "2026-11-27:day", "--scenarios", "ss01", "--rate", "0.01")
    frames = read_frames(out)
    start = 1795737600 * 10**9  # 2026-11-27T00:00:00Z = 08:00 local, the day shift
    assert frames[0].ts == start
    assert summary["simulated_s"] == pytest.approx(8 * 3600 - 100)
    assert frames[-1].ts < start + 8 * 3600 * 10**9
    out2 = tmp_path / "g.jsonl"
    summary = run_cli("--output", str(out2), "--start", "shift:-1", "--scenarios", "ss01", "--rate", "0.01")
    last = read_frames(out2)[-1]
    assert last.ts < time.time_ns() and summary["frames"] == 288


def test_more_robots_than_the_default_fleet_and_bad_flags(tmp_path: Path) -> None:
    out = tmp_path / "f.jsonl"
    run_cli("--output", str(out), "--robots", "70", "--frames", "140", "--start", START)
    frames = read_frames(out)
    assert len({f.robot_id for f in frames}) == 70
    result = CliRunner().invoke(simulate, ["--output", str(out), "--frames", "1", "--scenarios", "mf01,xx9"])
    assert result.exit_code == 2 and "unknown scenario" in result.output
    result = CliRunner().invoke(simulate, ["--output", str(out), "--frames", "1", "--speed", "fast"])
    assert result.exit_code == 2 and "--speed" in result.output
    result = CliRunner().invoke(simulate, ["--output", str(out), "--frames", "1", "--start", "yesterday"])
    assert result.exit_code == 2 and "ISO 8601" in result.output


@pytest.mark.integration
def test_a_broker_restart_mid_run_loses_no_acknowledgement(fresh_broker) -> None:
    """The robots reconnect and re-send what was not acknowledged; the run still ends with every
    publish acknowledged."""
    proc = subprocess.Popen([str(Path(sys.executable).parent / "minewatch"), "simulate", "--mqtt-url", fresh_broker.url,
                             "--topic-prefix", "restart/v1", "--duration", "24s", "--scenarios", "mf01,vf01",
                             "--speed", "8", "--start", START, "--live"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        _wait_first_frame(fresh_broker, "restart/v1")  # the robots are connected and publishing
        fresh_broker.stop()
        time.sleep(1.0)
        fresh_broker.start()
        out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, err
    summary = json.loads(out.strip().splitlines()[-1])
    assert summary["frames"] == 48


def _wait_first_frame(broker, prefix: str, timeout: float = 30.0) -> None:
    import threading

    from minewatch.mqtt import paho_client
    from minewatch.settings import MqttTarget

    got = threading.Event()
    client = paho_client(MqttTarget(broker.url), "restart-watch")
    client.on_message = lambda *_: got.set()
    client.on_connect = lambda c, *_: c.subscribe(f"{prefix}/telemetry/#", qos=0)
    client.connect(broker.host, broker.port)
    client.loop_start()
    try:
        assert got.wait(timeout), "the simulator published nothing"
    finally:
        client.loop_stop()
        client.disconnect()


def test_an_unreachable_broker_is_a_clear_error() -> None:
    from minewatch.services import free_port

    result = CliRunner().invoke(simulate, ["--mqtt-url", f"mqtt://127.0.0.1:{free_port()}", "--frames", "1"])
    assert result.exit_code == 1
    assert "cannot reach the MQTT broker" in result.output


@pytest.mark.integration
def test_sigterm_ends_a_live_run_cleanly_with_labels_and_summary(mosquitto, prefix: str, tmp_path: Path) -> None:
    import signal

    labels = tmp_path / "labels.jsonl"
    proc = subprocess.Popen([str(Path(sys.executable).parent / "minewatch"), "simulate", "--mqtt-url", mosquitto.url,
                             "--topic-prefix", prefix, "--scenarios", "mf01", "--faults", "builtin:outburst",
                             "--labels-out", str(labels)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and proc.poll() is None:
            time.sleep(0.5)
            if labels.exists():  # the run is going (the file is opened once connected)
                time.sleep(2.0)
                break
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, err
    summary = json.loads(out.strip().splitlines()[-1])
    assert summary["frames"] >= 1 and summary["seconds"] > 1.0
    rec = json.loads(labels.read_text().splitlines()[0])  # the outburst had not happened yet: still labelled
    assert rec["kind"] == "methane_outburst"


def test_waveform_blocks_ride_on_machine_frames_only(tmp_path: Path) -> None:
    out = tmp_path / "f.jsonl"
    run_cli("--output", str(out), "--frames", "350", "--start", START, "--waveform-rate", "8192",
            "--waveform-every", "2", "--waveform-dtype", "i2")
    frames = read_frames(out)
    with_wave = [f for f in frames if f.waveforms]
    assert with_wave and {f.scenario_id for f in with_wave} <= {s.id for s in SCENARIOS.values() if s.machine}
    machines = [s.id for s in SCENARIOS.values() if s.machine]
    assert {f.scenario_id for f in with_wave} == set(machines)  # every machine room shows up
    for f in with_wave:
        w = f.waveforms["vib"]
        assert w.rate_hz == 8192 and w.dtype == "i2" and w.scale > 0
        # 0.5 s of int16, base64; two revolutions (2 s) of a 60 rpm belt drum
        seconds = 2 if SCENARIOS[f.scenario_id].machine.rpm == 60.0 else 0.5  # type: ignore[union-attr]
        assert len(w.data) == 4 * ((int(8192 * seconds) * 2 + 2) // 3), f.scenario_id


@pytest.mark.integration
def test_a_past_start_loads_history_and_leaves_the_live_robots_alone(mosquitto, prefix: str) -> None:
    """A historical run against a running broker: frames on history/..., no status, no will."""
    topics = Topics(prefix)
    listener = Listener(mosquitto, f"subh-{prefix.replace('/', '-')}", f"{prefix}/#")
    try:
        proc = subprocess.run([str(Path(sys.executable).parent / "minewatch"), "simulate", "--mqtt-url", mosquitto.url,
                               "--topic-prefix", prefix, "--frames", "60", "--scenarios", "mf01,vf01",
                               "--speed", "max", "--seed", "3", "--start", START],
                              capture_output=True, text=True, timeout=60)
        assert proc.returncode == 0, proc.stderr
        summary = json.loads(proc.stdout.strip().splitlines()[-1])
        assert summary["history"] is True and summary["frames"] == 60
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if sum(len(decode_frames(p)) for t, p, _ in listener.messages() if topics.parse_history(t)) >= 60:
                break
            time.sleep(0.05)
        time.sleep(0.5)  # a will would come now
    finally:
        listener.close()
    got = listener.messages()
    hist = [f for t, p, _ in got if topics.parse_history(t) for f in decode_frames(p)]
    assert len(hist) == 60 and all(f.boot == iso_ns(START) // 1_000_000 for f in hist)
    assert not [t for t, _, _ in got if not topics.parse_history(t)], "a historical run published on live topics"


def test_progress_bar_on_a_terminal_only_when_asked_for_elsewhere(tmp_path: Path) -> None:
    """--progress draws the bar on standard error up to 100 % (a pseudo-terminal, so the bar is
    drawn in full); without a terminal and without --progress, standard error stays empty."""
    import os
    import pty

    out = tmp_path / "f.jsonl"
    argv = [sys.executable, "-m", "minewatch", "simulate", "--output", str(out), "--frames", "3000"]
    quiet = subprocess.run(argv, capture_output=True, text=True, timeout=60, check=True)
    assert quiet.stderr == "" and json.loads(quiet.stdout)["frames"] == 3000
    main, sub = pty.openpty()
    proc = subprocess.Popen([*argv, "--progress"], stdout=subprocess.PIPE, stderr=sub, env={**os.environ, "COLUMNS": "100"})
    os.close(sub)
    stdout, _ = proc.communicate(timeout=60)
    seen = b""
    while True:
        try:
            chunk = os.read(main, 65536)
        except OSError:
            break
        if not chunk:
            break
        seen += chunk
    os.close(main)
    assert proc.returncode == 0 and json.loads(stdout)["frames"] == 3000
    text = seen.decode(errors="replace")
    assert "simulating" in text and "100%" in text and "3,000 frames" in text, text[-500:]
