"""The whole suite over simulated telemetry: the same frames in any batch sizes, the same alerts."""

from __future__ import annotations

import numpy as np

from detectors import DetectorSuite
from simulator.engine import SimConfig, Simulation
from simulator.faults import load_faults

T0 = 1_795_852_800_000_000_000


def _frames() -> list:
    faults = load_faults([
        {"kind": "methane_outburst", "scenario": "mf01", "channel": "ch4_t1", "start": "+100s", "duration": "90s"},
        {"kind": "local_fan_stoppage", "scenario": "lf01", "start": "+250s", "duration": "120s"},
        {"kind": "sensor_out_of_range", "scenario": "pr01", "channel": "tb", "start": "+150s", "duration": "60s"},
    ])
    sim = Simulation(SimConfig(seed=4, rate_hz=1.0, start_ns=T0, duration_s=480, scenarios=["mf01", "lf01", "pr01"],
                               faults=faults, waveform_rate_hz=4096.0, waveform_every=30))
    return [f for tick in sim.ticks() for m in tick.messages for f in m.frames]


def test_any_batching_gives_the_same_alerts() -> None:
    frames = _frames()
    whole = DetectorSuite().process(frames)
    detectors = {e.detector for e in whole.events}
    assert {"gas_limit", "fan_stoppage", "sensor_range"} <= detectors, detectors
    assert len(whole.lines) >= 8  # vibration features of the pump and fan blocks
    rng = np.random.default_rng(0)
    for sizes in ([1], [7], [50, 3, 200, 1, 31]):
        suite = DetectorSuite()
        events, lines, k = [], [], 0
        while k < len(frames):
            n = sizes[int(rng.integers(len(sizes)))]
            d = suite.process(frames[k:k + n])
            events += d.events
            lines += d.lines
            k += n
        assert events == whole.events, sizes
        assert sorted(lines) == sorted(whole.lines)
