"""Vibration waveforms: healthy machines sit in ISO zone A, bearing defects show at their frequency."""

from __future__ import annotations

import math

import numpy as np
import pytest

from minewatch.catalogue import SCENARIOS, Machine
from minewatch.schema import Waveform
from simulator.engine import SimConfig, Simulation
from simulator.faults import load_faults
from simulator.timeutil import NS, iso_ns
from simulator.vibration import Health, encode_block, fault_frequency_hz, imbalance_for, iso_zone, synthesize
from simulator.vibration import velocity_rms_mm_s as model_velocity

RATE = 10240.0


def envelope_spectrum(x: np.ndarray, fs: float, band: tuple[float, float]) -> tuple[np.ndarray, np.ndarray]:
    """Band-pass around the resonance, Hilbert envelope, spectrum of the envelope (the textbook method)."""
    n = len(x)
    spec = np.fft.fft(x)
    freqs = np.fft.fftfreq(n, 1.0 / fs)
    h = np.where((freqs >= band[0]) & (freqs <= band[1]), 2.0, 0.0)
    env = np.abs(np.fft.ifft(spec * h))
    env -= env.mean()
    e = np.abs(np.fft.rfft(env * np.hanning(n)))
    return np.fft.rfftfreq(n, 1.0 / fs), e


def velocity_rms_mm_s(x: np.ndarray, fs: float, lo: float, hi: float) -> float:
    """Broadband velocity RMS in the ISO band, integrating acceleration in the frequency domain."""
    spec = np.fft.rfft(x)
    f = np.fft.rfftfreq(len(x), 1.0 / fs)
    keep = (f >= lo) & (f <= hi)
    v = spec[keep] / (2j * math.pi * f[keep])
    return float(np.sqrt(2.0 * np.sum(np.abs(v) ** 2)) / len(x) * 1000.0)


def kurtosis(x: np.ndarray) -> float:
    x = x - x.mean()
    return float(np.mean(x ** 4) / np.mean(x ** 2) ** 2)



def _machine(sid: str) -> Machine:
    machine = SCENARIOS[sid].machine
    assert machine is not None, f"{sid} has no rotating machine"
    return machine

@pytest.mark.parametrize("sid, defect", [("lf01", "outer"), ("pr01", "outer"), ("lf02", "inner"), ("vf01", "ball"),
                                         ("ac01", "outer")])
def test_bearing_defect_puts_the_envelope_peak_at_its_fault_frequency(sid: str, defect: str) -> None:
    machine = _machine(sid)
    n = int(RATE * 2.0)
    x = synthesize(machine, RATE, n, np.random.default_rng(4), Health(defect=defect, impact=8.0))
    f_def = fault_frequency_hz(machine, defect)
    f, e = envelope_spectrum(x.astype(np.float64), RATE, (1800.0, 3800.0))
    fr = machine.rpm / 60.0
    search = (f > max(1.5 * fr, 20.0)) & (f < 600.0)
    peak = f[search][np.argmax(e[search])]
    assert abs(peak - f_def) <= 1.0, (sid, defect, peak, f_def)  # within two 0.5 Hz bins
    # the healthy machine has nothing there
    y = synthesize(machine, RATE, n, np.random.default_rng(4), Health())
    _, e0 = envelope_spectrum(y.astype(np.float64), RATE, (1800.0, 3800.0))
    near = np.abs(f - f_def) <= 1.0
    assert e[near].max() > 10 * e0[near].max()
    assert kurtosis(x) > 4.0 > kurtosis(y)


@pytest.mark.parametrize("sid", [s.id for s in SCENARIOS.values() if s.machine is not None])
def test_healthy_machines_are_in_iso_zone_a(sid: str) -> None:
    machine = _machine(sid)
    x = synthesize(machine, RATE, int(RATE * 4), np.random.default_rng(1), Health())
    v = velocity_rms_mm_s(x.astype(np.float64), RATE, machine.band_low_hz, 1000.0)
    assert 0.1 * machine.zone_limits[0] < v < machine.zone_limits[0], (sid, v, machine.zone_limits)


def test_int16_blocks_round_trip_within_a_quantum() -> None:
    machine = _machine("pr01")
    x = synthesize(machine, RATE, 4096, np.random.default_rng(2), Health(defect="outer", impact=5.0))
    for dtype in ("f4", "i2"):
        block = encode_block(x, RATE, machine.rpm, dtype)
        back = Waveform.model_validate({"rate_hz": block.rate_hz, "dtype": block.dtype, "scale": block.scale,
                                        "rpm": block.rpm, "data": block.data}).samples()
        assert len(back) == len(x)
        assert np.max(np.abs(back - x)) <= (block.scale if dtype == "i2" else 1e-6)


def test_simulated_bearing_fault_grows_in_the_frames() -> None:
    """Through the whole simulator: blocks on the frames, healthy before the fault, defective late in it."""
    start = iso_ns("2026-11-26T16:00:00Z")
    sim = Simulation(SimConfig(seed=9, start_ns=start, duration_s=900, rate_hz=1.0, scenarios=["lf01"],
                               waveform_rate_hz=RATE, waveform_seconds=2.0, waveform_every=30,
                               faults=load_faults([{"kind": "bearing_fault", "scenario": "lf01", "start": "+5m",
                                                    "duration": "10m", "defect": "outer"}])))
    blocks = [(f.ts, f.waveforms["vib"]) for msgs in sim.frames() for f in msgs if f.waveforms]
    assert len(blocks) == 30
    machine = _machine("lf01")
    f_def = fault_frequency_hz(machine, "outer")
    label = next(r for r in sim.labels() if r["kind"] == "bearing_fault")
    assert label["expected_alerts"][0]["fault_hz"] == pytest.approx(f_def, abs=1e-3)

    def energy_at_fault(block) -> float:
        x = Waveform(rate_hz=block.rate_hz, data=block.data, rpm=block.rpm).samples()
        f, e = envelope_spectrum(x, block.rate_hz, (1800.0, 3800.0))
        return float(e[np.abs(f - f_def) <= 1.0].max() / np.median(e[(f > 20) & (f < 600)]))

    before = [energy_at_fault(b) for ts, b in blocks if ts < label["start_ns"]]
    late = [energy_at_fault(b) for ts, b in blocks if ts > label["start_ns"] + 7 * 60 * NS and ts <= label["end_ns"]]
    assert before and late
    assert max(before) < 8 < min(late)
    assert all(b.rpm == machine.rpm and b.rate_hz == RATE for _, b in blocks)


@pytest.mark.parametrize("sid", ["vf01", "lf01", "pr01", "ac01", "gd01"])
def test_imbalance_raises_the_iso_velocity_to_the_asked_zone(sid: str) -> None:
    machine = _machine(sid)
    healthy = synthesize(machine, RATE, int(RATE * 4), np.random.default_rng(3), Health())
    target = 1.1 * machine.zone_limits[2]  # into zone D
    imb = imbalance_for(machine, target)
    x = synthesize(machine, RATE, int(RATE * 4), np.random.default_rng(3), Health(imbalance=imb))
    measured = velocity_rms_mm_s(x.astype(np.float64), RATE, machine.band_low_hz, 1000.0)
    assert measured == pytest.approx(target, rel=0.1)
    assert model_velocity(machine, Health(imbalance=imb)) == pytest.approx(target, rel=1e-6)
    assert iso_zone(machine, measured) == "D"
    assert iso_zone(machine, velocity_rms_mm_s(healthy.astype(np.float64), RATE, machine.band_low_hz, 1000.0)) == "A"
    # the rise is at 1x
    spec = np.abs(np.fft.rfft(x.astype(np.float64))) - np.abs(np.fft.rfft(healthy.astype(np.float64)))
    f = np.fft.rfftfreq(len(x), 1.0 / RATE)
    assert abs(f[np.argmax(spec)] - machine.rpm / 60.0) < 0.5


def test_imbalance_cannot_be_asked_of_a_slow_belt_drum() -> None:
    with pytest.raises(ValueError, match="below the ISO band"):
        imbalance_for(_machine("bc01"), 10.0)


def test_a_slow_machine_sends_blocks_long_enough_to_diagnose() -> None:
    """The 60 rpm belt drum's blocks span two revolutions (2 s, though 0.5 s is asked for), long
    enough for bearing diagnosis to tell its fault lines apart; a fast machine's stay as asked."""
    from detectors.vibration import analyse

    sim = Simulation(SimConfig(seed=3, start_ns=iso_ns("2026-11-26T16:00:00Z"), duration_s=120, rate_hz=1.0,
                               scenarios=["bc01", "lf01"], waveform_rate_hz=4096.0, waveform_seconds=0.5,
                               waveform_every=30))
    blocks: dict[str, list[np.ndarray]] = {"bc01": [], "lf01": []}
    for msgs in sim.frames():
        for f in msgs:
            if f.waveforms:
                w = f.waveforms["vib"]
                blocks[f.scenario_id].append(Waveform(rate_hz=w.rate_hz, data=w.data, rpm=w.rpm).samples())
    assert blocks["bc01"] and blocks["lf01"]
    assert {len(x) for x in blocks["bc01"]} == {int(4096 * 2.0)}
    assert {len(x) for x in blocks["lf01"]} == {int(4096 * 0.5)}
    drum = _machine("bc01")
    for x in blocks["bc01"]:
        feats = analyse(x.astype(np.float64), 4096.0, drum.rpm, drum.bearing)
        assert "note" not in feats.evidence, feats.evidence  # searched, not too short
        assert feats.diagnosis == "healthy"
    # the same block cut to the length asked for is too short to search
    short = analyse(blocks["bc01"][0][:2048].astype(np.float64), 4096.0, drum.rpm, drum.bearing)
    assert "too short" in str(short.evidence.get("note"))
