"""Vibration features: kernels against references, known signals, and diagnosis of defects."""

from __future__ import annotations

import math

import numpy as np
import pytest

from detectors.vibration import analyse, band_velocity_power, block_stats, peak_energy
from minewatch.catalogue import BEARINGS, SCENARIOS, Bearing
from tests import naive


def test_block_stats_match_reference(rng: np.random.Generator) -> None:
    blocks = [rng.standard_t(3, int(rng.integers(0, 300))) * 2 + 1 for _ in range(12)]
    blocks[3][5] = np.nan
    blocks[4][:] = np.inf if blocks[4].size else blocks[4]
    blocks[5] = np.full(20, 3.0)
    offsets = np.r_[0, np.cumsum([len(b) for b in blocks])].astype(np.int64)
    out = np.empty((len(blocks), 3))
    block_stats(np.concatenate(blocks), offsets, out)
    for b, block in enumerate(blocks):
        np.testing.assert_allclose(out[b], naive.block_stats(block.tolist()), rtol=1e-9, equal_nan=True)


def test_band_velocity_matches_dft_reference(rng: np.random.Generator) -> None:
    rate, n = 2048.0, 256
    x = rng.normal(0, 1, n) + 3 * np.sin(2 * np.pi * 96 * np.arange(n) / rate)
    spec = np.abs(np.fft.rfft(x - x.mean())) ** 2 * 2 / n ** 2
    spec[-1] /= 2  # the Nyquist bin is not doubled
    got = math.sqrt(band_velocity_power(spec[None, :], np.array([rate / n]), np.array([10.0]), np.array([1000.0]))[0])
    assert got == pytest.approx(naive.band_velocity_rms(x.tolist(), rate, 10.0, 1000.0), rel=1e-9)


def test_rms_velocity_of_a_sine_is_exact() -> None:
    rate, f, amp = 10240.0, 160.0, 5.0  # 5 m/s² at 160 Hz: v = a / (2 pi f)
    x = amp * np.sin(2 * np.pi * f * np.arange(10240) / rate)
    feats = analyse(x, rate, 1480.0, BEARINGS["6316"], 1, "rigid")
    assert feats.rms_mm_s == pytest.approx(amp / (2 * np.pi * f) / np.sqrt(2) * 1e3, rel=1e-6)
    assert feats.kurtosis == pytest.approx(1.5, rel=1e-3) and feats.crest == pytest.approx(np.sqrt(2), rel=1e-3)
    # outside the band (5 Hz at 1480 rpm: the band starts at 10 Hz) it does not count
    low = analyse(amp * np.sin(2 * np.pi * 5 * np.arange(10240) / rate), rate, 1480.0, BEARINGS["6316"], 1, "rigid")
    assert low.rms_mm_s < 0.01 * feats.rms_mm_s


def synth(sid: str, rng: np.random.Generator, *, imbalance: float = 0.0, defect: str | None = None,
          impact: float = 0.0, rate: float = 10240.0, n: int = 16384) -> np.ndarray:
    """Shaft harmonics + noise, and impacts at a defect frequency ringing a 2.8 kHz resonance."""
    m = SCENARIOS[sid].machine
    fr = m.rpm / 60
    t = np.arange(n) / rate
    x = 0.3 * rng.standard_normal(n)
    for h, a in ((1, 1.0), (2, 0.5), (3, 0.3)):
        x += 2 * np.pi * fr * h * 1.2e-3 * a * (1 + imbalance if h == 1 else 1) * np.sin(2 * np.pi * fr * h * t + rng.random() * 6)
    if defect:
        o = m.bearing.orders()
        f = fr * {"outer": o["bpfo"], "inner": o["bpfi"], "ball": 2 * o["bsf"]}[defect]
        idx = np.round((np.arange(int(n / rate * f) + 1) + 0.5) / f * rate).astype(int)
        idx = idx[idx < n]
        amp = np.full(len(idx), float(impact))
        if defect == "inner":
            amp *= 0.55 + 0.45 * np.cos(2 * np.pi * fr * idx / rate)
        if defect == "ball":
            amp *= 0.55 + 0.45 * np.cos(2 * np.pi * fr * o["ftf"] * idx / rate)
        train = np.zeros(n)
        np.add.at(train, idx, amp)
        tk = np.arange(int(5 * 12 / 2800 * rate) + 1) / rate
        x += np.convolve(train, np.exp(-tk * 2800 / 12) * np.sin(2 * np.pi * 2800 * tk))[:n]
    return x


@pytest.mark.parametrize("sid", ["lf01", "pr01", "vf01", "ac01"])
@pytest.mark.parametrize("case, want", [
    ({}, "healthy"), ({"imbalance": 6.0}, "imbalance"), ({"defect": "outer", "impact": 6.0}, "outer race"),
    ({"defect": "inner", "impact": 6.0}, "inner race"), ({"defect": "ball", "impact": 6.0}, "ball"),
])
def test_diagnosis_of_synthetic_machines(sid: str, case: dict, want: str) -> None:
    m = SCENARIOS[sid].machine
    feats = analyse(synth(sid, np.random.default_rng(sum(map(ord, sid))), **case), 10240.0, m.rpm, m.bearing,
                    m.iso_group, m.support)
    assert feats.diagnosis == want
    if want == "imbalance":
        assert feats.zone in "CD"
    if want == "healthy":
        assert feats.zone == "A" and 2.0 < feats.kurtosis < 4.0


def test_analyse_rejects_bad_input() -> None:
    with pytest.raises(ValueError, match="group"):
        analyse(np.zeros(100), 1000.0, 1500.0, Bearing("x", 9, 8.0, 39.0), 3, "rigid")
    with pytest.raises(ValueError, match="16 samples"):
        analyse(np.zeros(4), 1000.0, 1500.0, Bearing("x", 9, 8.0, 39.0))


def _vib_frame(i: int, x: np.ndarray, sid: str = "pr01") -> "Frame":
    import base64

    from minewatch.wire import Frame, WaveBlock
    from tests.detectors.conftest import frame

    f = frame("r11", sid, i, {"tb": 50.0}, dt_s=30.0)
    data = base64.b64encode(np.asarray(x, dtype="<f4").tobytes()).decode()
    return Frame(robot_id=f.robot_id, scenario_id=sid, seq=i, ts=f.ts, readings=f.readings,
                 waveforms={"vib": WaveBlock(rate_hz=10240.0, data=data, rpm=SCENARIOS[sid].machine.rpm)})


def test_suite_writes_vibration_lines_and_alerts() -> None:
    from detectors import DetectorSuite

    rng = np.random.default_rng(8)
    suite = DetectorSuite()
    blocks = [synth("pr01", rng) for _ in range(2)] + [synth("pr01", rng, defect="outer", impact=6.0) for _ in range(3)]
    blocks += [synth("pr01", rng, imbalance=12.0) for _ in range(2)] + [synth("pr01", rng) for _ in range(3)]
    d = suite.process([_vib_frame(i, x) for i, x in enumerate(blocks)])
    assert len(d.lines) == len(blocks)
    assert d.lines[0].startswith("vibration,machine=main\\ drainage\\ pump") and "scenario=pr01" in d.lines[0]
    assert 'diagnosis="healthy"' in d.lines[0] and 'diagnosis="outer race"' in d.lines[3]
    got = [(e.detector, e.state.value, e.severity.value) for e in d.events]
    assert got == [("bearing_fault", "raised", "warning"), ("vibration_zone", "raised", "alarm"),
                   ("bearing_fault", "cleared", "warning"), ("vibration_zone", "cleared", "alarm")]
    raised = d.events[0]
    assert raised.evidence["diagnosis"] == "outer race" and "outer race" in raised.message
    assert raised.kind.value == "vibration" and raised.channel == "vib" and "main drainage pump" in raised.message


def test_malformed_waveform_is_skipped() -> None:
    from detectors import DetectorSuite
    from minewatch.wire import Frame, WaveBlock

    f = Frame(robot_id="r11", scenario_id="pr01", seq=0, ts=1, waveforms={"vib": WaveBlock(rate_hz=100.0, data="@@@")})
    assert DetectorSuite().process([f]).lines == []


@pytest.mark.parametrize("f0, tol", [(76.1, 0.015), (163.0, 0.01), (0.5, 0.015), (900.0, 0.02)])
def test_peak_energy_matches_reference(rng: np.random.Generator, f0: float, tol: float) -> None:
    power = rng.exponential(1.0, 2049)
    power[[76, 152, 228, 163, 326]] += 40.0
    got = peak_energy(power, 1.0, f0, 3, tol)
    want = naive.peak_energy(power.tolist(), 1.0, f0, 3, tol)
    np.testing.assert_allclose(got, want, rtol=1e-12)
