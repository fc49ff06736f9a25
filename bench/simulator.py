"""Simulator throughput from one process: frames/s and readings/s, file sink and MQTT, with and
without vibration waveforms, for the default fleet and for ten times it.

Prints one JSON line per figure (median of ``--runs`` runs). ``simulator_realtime_mines`` is how
many default mines (35 robots at 1 frame/s each) one process keeps up with in real time.

    .venv/bin/python bench/simulator.py [--runs 3] [--frames 20000]
"""

from __future__ import annotations

import argparse
import json
import signal
import statistics
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from minewatch.services import Mosquitto
from minewatch.settings import MqttTarget
from minewatch.topics import Topics
from simulator.engine import SimConfig, Simulation
from simulator.fleet import default_fleet
from simulator.runner import Sink, run
from simulator.sinks import FileSink, MqttSink
from simulator.timeutil import iso_ns

START = iso_ns("2026-11-26T16:00:00Z")
WAVE_RATE = 10240.0


def once(sink: str, waveforms: bool, robots: int, frames: int, tmp: Path, broker: Mosquitto | None,
         seed: int) -> tuple[float, float, int]:
    sim = Simulation(SimConfig(seed=seed, start_ns=START, frames=frames, robots=robots,
                               waveform_rate_hz=WAVE_RATE if waveforms else 0.0))
    sinks: list[Sink] = []
    if sink == "file":
        sinks.append(FileSink(tmp / "frames.jsonl"))
    else:
        if broker is None:
            raise ValueError("an MQTT run needs a broker")
        mqtt = MqttSink(MqttTarget(broker.url), Topics(f"bench{seed}/v1"), [r.id for r in sim.fleet])
        mqtt.connect()
        sinks.append(mqtt)
    try:
        s = run(sim, sinks, speed=None)
    finally:
        for x in sinks:
            x.close()
    return s.frames / s.seconds, s.readings / s.seconds, s.frames


def realtime(robots: int, seconds: float, broker: Mosquitto) -> tuple[float, float]:
    """Run ``robots`` at 1 frame/s in real time over MQTT with waveforms; the worst lag behind schedule."""
    sim = Simulation(SimConfig(seed=1, start_ns=START, duration_s=seconds, robots=robots, waveform_rate_hz=WAVE_RATE))
    mqtt = MqttSink(MqttTarget(broker.url), Topics("benchrt/v1"), [r.id for r in sim.fleet])
    mqtt.connect()
    try:
        s = run(sim, [mqtt], speed=1.0)
        return s.max_lag_s, s.mean_lag_s
    finally:
        mqtt.close()


def main() -> None:
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(1))  # stop the broker on the way out
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--frames", type=int, default=20000, help="frames per run")
    ap.add_argument("--realtime-seconds", type=float, default=30.0,
                    help="length of the real-time run of ten mines (0: skip it)")
    args = ap.parse_args()
    base = len(default_fleet())
    Simulation(SimConfig(start_ns=START, frames=1)).frames().__next__()  # load the compiled kernels once
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        broker = Mosquitto(tmp / "mosquitto")
        broker.start()
        try:
            for sink in ("file", "mqtt"):
                for waveforms in (False, True):
                    for robots in (base, 10 * base):
                        fps, rps = [], []
                        for i in range(args.runs):
                            f, r, n = once(sink, waveforms, robots, args.frames, tmp, broker, seed=i + 1)
                            fps.append(f)
                            rps.append(r)
                        cond = {"sink": sink, "waveforms": f"{WAVE_RATE:.0f}Hz" if waveforms else "off",
                                "robots": robots, "frames_per_run": n, "runs": args.runs}
                        med = statistics.median(fps)
                        print(json.dumps({"name": "simulator_frames_per_s", "value": round(med, 1),
                                          "unit": "frames/s", **cond}), flush=True)
                        print(json.dumps({"name": "simulator_readings_per_s", "value": round(statistics.median(rps), 1),
                                          "unit": "readings/s", **cond}), flush=True)
                        # robots report at 1 frame/s each: a mine in real time needs `base` frames/s
                        print(json.dumps({"name": "simulator_realtime_mines", "value": round(med / base, 1),
                                          "unit": "default mines", **cond}), flush=True)
            if args.realtime_seconds:
                # ten default mines in real time, over MQTT, with waveforms: how far behind it ever fell
                worst, mean = realtime(10 * base, args.realtime_seconds, broker)
                cond = {"sink": "mqtt", "waveforms": f"{WAVE_RATE:.0f}Hz", "robots": 10 * base, "rate_hz": 1.0,
                        "simulated_s": args.realtime_seconds}
                print(json.dumps({"name": "simulator_realtime_max_lag_s", "value": round(worst, 3), "unit": "s",
                                  **cond}), flush=True)
                print(json.dumps({"name": "simulator_realtime_mean_lag_s", "value": round(mean, 4), "unit": "s",
                                  **cond}), flush=True)
        finally:
            broker.stop()


if __name__ == "__main__":
    main()
