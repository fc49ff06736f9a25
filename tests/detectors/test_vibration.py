"""Vibration features: kernels against references, known signals, and diagnosis of defects."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

from detectors.vibration import analyse, band_velocity_power, block_stats, peak_energy
from minewatch.catalogue import BEARINGS, SCENARIOS, Bearing, Machine
from minewatch.wire import Frame
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


def machine_of(sid: str) -> Machine:
    """The machine a scenario watches (every scenario used here has one)."""
    m = SCENARIOS[sid].machine
    assert m is not None, sid
    return m


def synth(sid: str, rng: np.random.Generator, *, imbalance: float = 0.0, defect: str | None = None,
          impact: float = 0.0, rate: float = 10240.0, n: int = 16384) -> np.ndarray:
    """Shaft harmonics + noise, and impacts at a defect frequency ringing a 2.8 kHz resonance."""
    m = machine_of(sid)
    fr = m.rpm / 60
    t = np.arange(n) / rate
    x = 0.3 * rng.standard_normal(n)
    for h, a in ((1, 1.0), (2, 0.5), (3, 0.3)):
        gain = 2 * np.pi * fr * h * 1.2e-3 * a * (1 + imbalance if h == 1 else 1)
        x += gain * np.sin(2 * np.pi * fr * h * t + rng.random() * 6)
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
    m = machine_of(sid)
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


def _vib_frame(i: int, x: np.ndarray, sid: str = "pr01") -> Frame:
    import base64

    from minewatch.wire import Frame, WaveBlock
    from tests.detectors.conftest import frame

    f = frame("r11", sid, i, {"tb": 50.0}, dt_s=30.0)
    data = base64.b64encode(np.asarray(x, dtype="<f4").tobytes()).decode()
    return Frame(robot_id=f.robot_id, scenario_id=sid, seq=i, ts=f.ts, readings=f.readings,
                 waveforms={"vib": WaveBlock(rate_hz=10240.0, data=data, rpm=machine_of(sid).rpm)})


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


# -- the envelope analysis at any rate: kernels against the slow references, generated bearings ----------

@pytest.mark.parametrize("rate, n, f_lo, width, pieces", [(8192.0, 1024, 300.0, 500.0, 1), (12000.0, 1500, 0.0, 1400.0, 1),
                                                         (5000.0, 777, 120.0, 300.0, 1), (8192.0, 1024, 300.0, 700.0, 4),
                                                         (6000.0, 600, 100.0, 900.0, 2)])
def test_kurtogram_matches_reference(rng: np.random.Generator, rate: float, n: int, f_lo: float, width: float,
                                     pieces: int) -> None:
    from detectors.vibration import kurtogram
    from tests.detectors import naive_vibration as nv

    x = rng.standard_t(4, n)
    x[:: 97] += 8.0 * np.sin(np.arange(len(x[:: 97])))
    got = kurtogram(np.fft.rfft(x - x.mean()), n, rate, f_lo, width, pieces)
    want = np.array(nv.kurtogram(x.tolist(), rate, f_lo, width, pieces))
    assert got.shape == want.shape and got.shape[0] > 5
    np.testing.assert_allclose(got, want, rtol=1e-9, atol=1e-9)


def test_kurtogram_in_pieces_ignores_a_lone_knock(rng: np.random.Generator) -> None:
    """Repeating impacts ringing 3 kHz against one big knock: whole-block kurtosis picks the knock's
    wide band, the median over eight stretches the resonance."""
    from detectors.vibration import kurtogram

    rate, n = 24000.0, 48000
    x = rng.standard_normal(n)
    train = np.zeros(n)
    train[np.arange(100, n, 240)] = 1.0
    t = np.arange(400) / rate
    x += np.convolve(train, 3.0 * np.exp(-t * 900) * np.sin(2 * np.pi * 3000 * t))[:n]
    x[20000] += 400.0
    spec = np.fft.rfft(x - x.mean())
    whole = kurtogram(spec, n, rate, 500.0, 600.0)
    pieces = kurtogram(spec, n, rate, 500.0, 600.0, 8)
    assert not whole[np.argmax(whole[:, 2]), 0] <= 3000.0 <= whole[np.argmax(whole[:, 2]), 1]
    assert pieces[np.argmax(pieces[:, 2]), 0] <= 3000.0 <= pieces[np.argmax(pieces[:, 2]), 1]
    with pytest.raises(ValueError, match="power of two"):
        kurtogram(spec, n, rate, 500.0, 600.0, 3)


@pytest.mark.parametrize("n, lo, hi", [(4096, 1000.0, 1500.0), (1000, 700.0, 2100.0), (2048, 5.0, 4095.0)])
def test_complex_envelope_is_the_band_analytic_signal_at_a_reduced_rate(rng: np.random.Generator, n: int, lo: float,
                                                                         hi: float) -> None:
    """|c|² at the reduced rate is the full-rate analytic band signal's |.|², sampled at the same instants."""
    from detectors.vibration import complex_envelope
    from tests.detectors import naive_vibration as nv

    rate = 8192.0
    x = rng.standard_normal(n) + 3.0 * np.sin(2 * np.pi * 1234.5 * np.arange(n) / rate)
    c, c_rate = complex_envelope(np.fft.rfft(x - x.mean()), n, rate, lo, hi)
    full = nv.analytic_band(x, rate, lo, hi)
    t_c = np.arange(c.shape[0]) / c_rate
    assert c.shape[0] >= 2 * int((hi - lo) / (rate / n))
    # the full-rate envelope at the reduced-rate instants: band-limited, so its DFT interpolates exactly
    coef = np.fft.fft(np.abs(full) ** 2) / n
    k = np.fft.fftfreq(n, 1.0 / n)
    at = np.real(np.exp(2j * np.pi * np.outer(t_c, k) * rate / n) @ coef)
    np.testing.assert_allclose(np.abs(c) ** 2, at, rtol=1e-8, atol=1e-8 * float(np.max(at)))
    on_grid = np.isclose((t_c * rate) % 1.0, 0.0) | np.isclose((t_c * rate) % 1.0, 1.0)
    idx = np.round(t_c[on_grid] * rate).astype(int)
    assert on_grid.sum() >= 2
    np.testing.assert_allclose(np.abs(c[on_grid]) ** 2, np.abs(full[idx]) ** 2, rtol=1e-8, atol=1e-9)


@pytest.mark.parametrize("n, seg", [(300, 64), (64, 64), (50, 64), (257, 32)])
def test_envelope_spectrum_matches_reference_welch(rng: np.random.Generator, n: int, seg: int) -> None:
    from detectors.vibration import envelope_spectrum
    from tests.detectors import naive_vibration as nv

    y = rng.exponential(2.0, n) + np.cos(2 * np.pi * 0.1 * np.arange(n))
    got, df = envelope_spectrum(y, 500.0, seg)
    want, want_df = nv.welch(y.tolist(), 500.0, seg)
    assert df == want_df
    np.testing.assert_allclose(got, want, rtol=1e-9, atol=1e-12)


def test_shaft_speed_is_found_within_the_tolerance(rng: np.random.Generator) -> None:
    from detectors.vibration import low_spectrum, shaft_rate

    rate, n, fr = 12000.0, 24000, 24.37
    t = np.arange(n) / rate
    x = rng.standard_normal(n) + sum(a * np.sin(2 * np.pi * h * fr * t + h) for h, a in ((1, 0.2), (2, 0.1), (3, 0.15)))
    x += 0.5 * np.sin(2 * np.pi * 25.0 * 0.5 * t)  # a line off the comb, within the window of 1x/2
    p, df = low_spectrum(np.fft.rfft(x), n, rate, 3.5 * 27.0)
    for given in (fr * 0.91, fr * 1.08, fr):
        got, db = shaft_rate(p, df, given, 0.1)
        assert got == pytest.approx(fr, rel=2e-3) and db > 10
    assert shaft_rate(p, df, fr * 0.91, 0.0) == (fr * 0.91, 0.0)  # no tolerance: the given speed
    assert shaft_rate(p, df, 40.0, 0.05)[0] == 40.0  # nothing there: the given speed stays


def test_envelope_resolution_follows_the_bearing_lines_not_the_block() -> None:
    """6205 at 1797 rpm: FTF 11.9 Hz is the closest pair; ten bins across it whatever the rate."""
    from detectors.vibration import RESOLUTION_STEPS, resolution_hz

    b = BEARINGS["6205"]
    ftf = 1797 / 60 * b.orders()["ftf"]
    assert resolution_hz(b, 1797.0) == pytest.approx(ftf / RESOLUTION_STEPS)
    x = np.random.default_rng(5).standard_normal(48000 * 4)
    feats = [analyse(x[:int(rate * 4)], rate, 1797.0, b) for rate in (12000.0, 48000.0)]
    for f in feats:
        assert ftf / RESOLUTION_STEPS / 2 < f.evidence["envelope_df_hz"] <= ftf / RESOLUTION_STEPS
        assert f.evidence["segments"] > 1  # 4 s blocks: averaged, not finer than needed


BEARING_RATES = (12000.0, 25600.0, 48000.0)


@pytest.mark.parametrize("rate", BEARING_RATES)
def test_generated_bearings_are_diagnosed_at_any_rate(rate: float) -> None:
    """Machines with their own resonance, heavy-tailed noise, gear tones; speed given 6-9 % off."""
    from tests.detectors.bearing_signals import DEFECTS, machines, signal

    rng = np.random.default_rng(int(rate) + 1)
    wrong = []
    for m in machines(rate, rng, 4):
        for defect in (None, "outer", "inner", "ball"):
            x = signal(m, rate, 2.0, rng, defect, snr_db=0.0)
            given = m.rpm * rng.choice([-1, 1]) * rng.uniform(0.06, 0.09) + m.rpm
            f = analyse(x, rate, given, m.bearing, rpm_tolerance=0.1)
            want = DEFECTS[defect] if defect else "healthy"
            if f.diagnosis != want:
                wrong.append((m, defect, f.diagnosis))
            assert f.rpm == pytest.approx(m.rpm, rel=5e-3), (m, f.evidence)
    assert not wrong


def test_evidence_names_peak_harmonics_and_sidebands() -> None:
    from tests.detectors.bearing_signals import Machine, signal

    rate = 25600.0
    m = Machine(BEARINGS["6205"], 1797.0, 3500.0, 0.05, 23)
    fr = m.rpm / 60
    o = m.bearing.orders()
    rng = np.random.default_rng(11)
    feats = {d: analyse(signal(m, rate, 4.0, rng, d, snr_db=3.0), rate, m.rpm, m.bearing)
             for d in ("outer", "inner", "ball", None)}
    for d, name, f0 in (("outer", "bpfo", o["bpfo"]), ("inner", "bpfi", o["bpfi"]), ("ball", "bsf", 2 * o["bsf"])):
        ev = feats[d].evidence
        assert ev["fault"] == name
        assert ev["peak_hz"] == pytest.approx(f0 * fr, rel=0.015)
        assert ev["peak_over_floor_db"] > 10 and 1 in ev["harmonics"] and len(ev["harmonics"]) >= 2
        band = ev["band_hz"]
        assert band is not None
        assert 3000.0 < np.mean(band) < 4000.0 or band[0] <= 3500 <= band[1]
        assert 0.5 < feats[d].confidence <= 1.0
    assert feats["inner"].evidence["sidebands"]["rate"] == "shaft"
    assert feats["inner"].evidence["sidebands"]["found"] >= 1
    assert feats["inner"].evidence["sidebands"]["spacing_hz"] == pytest.approx(fr)
    assert feats["ball"].evidence["sidebands"]["rate"] == "cage"
    assert feats["ball"].evidence["sidebands"]["found"] >= 1
    assert "sidebands" not in feats["outer"].evidence
    assert feats[None].diagnosis == "healthy" and "fault" not in feats[None].evidence and feats[None].confidence > 0.5


def test_simulator_defects_at_48_khz_are_not_called_healthy() -> None:
    """The simulator's own blocks at a high rate (its resonance far below the Nyquist)."""
    from simulator.vibration import Health, synthesize

    for sid, defect, want in (("lf01", "outer", "outer race"), ("pr01", "outer", "outer race"),
                              ("lf02", "inner", "inner race"), ("vf01", "ball", "ball")):
        m = machine_of(sid)
        x = synthesize(m, 48000.0, 96000, np.random.default_rng(3), Health(defect=defect, impact=6.0))
        assert analyse(x, 48000.0, m.rpm, m.bearing, m.iso_group, m.support).diagnosis == want, sid


def test_noise_alone_with_an_approximate_speed_is_healthy() -> None:
    rng = np.random.default_rng(13)
    for rate in BEARING_RATES:
        for name in BEARINGS:
            x = rng.standard_t(3.5, int(rate * 2))
            f = analyse(x, rate, 1480.0, BEARINGS[name], rpm_tolerance=0.1)
            assert f.diagnosis == "healthy", (rate, name, f.bpfo_snr_db, f.bpfi_snr_db, f.bsf_snr_db)


def test_a_rate_too_low_for_the_fault_lines_says_so() -> None:
    f = analyse(np.random.default_rng(1).standard_normal(4000), 1000.0, 2950.0, BEARINGS["6205"])
    assert f.diagnosis == "healthy" and f.evidence["band_hz"] is None and "too low a rate" in f.evidence["note"]
    assert f.confidence > 0.5


def test_analyse_rejects_a_bad_rpm_tolerance() -> None:
    with pytest.raises(ValueError, match="rpm tolerance"):
        analyse(np.zeros(100), 1000.0, 1500.0, BEARINGS["6205"], rpm_tolerance=0.7)


def test_vibration_command_at_48_khz_with_an_approximate_speed(tmp_path: Path) -> None:
    import json

    from click.testing import CliRunner

    from minewatch.cli import main
    from tests.detectors.bearing_signals import Machine, signal

    m = Machine(BEARINGS["6205"], 1797.0, 3200.0, 0.05, 29)
    np.save(tmp_path / "w.npy", signal(m, 48000.0, 2.0, np.random.default_rng(21), "outer", snr_db=0.0))
    args = ["vibration", "--input", str(tmp_path / "w.npy"), "--rate", "48000", "--rpm", "1680"]
    res = CliRunner().invoke(main, [*args, "--rpm-tolerance", "0.1"])
    assert res.exit_code == 0, res.output
    out = json.loads(res.output)
    assert out["diagnosis"] == "outer race" and 0.5 < out["confidence"] <= 1.0
    assert out["rpm"] == pytest.approx(1797.0, rel=3e-3) and out["evidence"]["rpm_given"] == 1680.0
    assert out["evidence"]["peak_hz"] == pytest.approx(1797 / 60 * BEARINGS["6205"].orders()["bpfo"], rel=0.015)
    assert out["evidence"]["band_hz"][0] < 3200.0 < out["evidence"]["band_hz"][1]
    bad = CliRunner().invoke(main, [*args, "--rpm-tolerance", "0.7"])
    assert bad.exit_code != 0 and "--rpm-tolerance" in bad.output


@pytest.mark.parametrize("rate", [5000.0, 100000.0])
def test_generated_bearings_at_the_ends_of_the_rate_range(rate: float) -> None:
    from tests.detectors.bearing_signals import DEFECTS, machines, signal

    rng = np.random.default_rng(int(rate) + 2)
    got, want = [], []
    for m in machines(rate, rng, 2):
        for defect in (None, "outer", "inner", "ball"):
            x = signal(m, rate, 1.5, rng, defect, snr_db=0.0)
            got.append(analyse(x, rate, m.rpm * 1.05, m.bearing, rpm_tolerance=0.1).diagnosis)
            want.append(DEFECTS[defect] if defect else "healthy")
    assert got == want


def test_chance_level_is_the_noise_bin_quantile() -> None:
    from detectors.vibration import _chance_level

    # one segment: a bin over its mean is exponential, P(X > x) = exp(-x)
    assert _chance_level(1, 1e-3) == pytest.approx(-math.log(1e-3), rel=1e-9)
    # more segments: the Gamma(K)/K tail, summed term by term in the reference
    for k, p in ((2, 1e-2), (5, 1e-4), (12, 1e-3)):
        x = _chance_level(k, p)
        tail = math.exp(-k * x) * sum((k * x) ** j / math.factorial(j) for j in range(k))
        assert tail == pytest.approx(p, rel=1e-6)
        # and against the spectrum of noise itself: that share of averaged bins passes it
        bins = np.random.default_rng(k).gamma(k, 1.0 / k, 400_000)
        assert (bins > x).mean() == pytest.approx(p, rel=0.25, abs=3e-5)


def test_search_allowance_grows_with_the_bands_tried_and_shrinks_with_averaging() -> None:
    from detectors.vibration import search_allowance_db

    assert search_allowance_db(1, 1) == 0.0
    one = [search_allowance_db(1, b) for b in (2, 6, 30)]
    assert 0.0 < one[0] < one[1] < one[2] < 3.0
    assert search_allowance_db(16, 30) < one[2]


def _machines() -> dict[tuple[float, str], Machine]:
    """Every rpm and bearing the catalogue's machines have, one machine each."""
    return {(sc.machine.rpm, sc.machine.bearing.name): sc.machine for sc in SCENARIOS.values() if sc.machine}


@pytest.mark.parametrize("rate, seconds, blocks", [(4096.0, 0.5, 150), (4096.0, 2.0, 40)])
def test_healthy_simulator_blocks_of_every_machine_stay_under_the_restore_level(rate: float, seconds: float,
                                                                                 blocks: int) -> None:
    """The simulator's healthy blocks, every machine of the catalogue (the 60 rpm belt drum among
    them: fault lines of a few Hz, many narrow bands tried), at the shift's rate and block length
    and a longer one: no block's best fault SNR reaches the bearing rule's restore level, let alone
    its threshold. The drum's 0.5 s blocks cannot tell its fault lines apart (1.7 Hz, a block bin
    is 2 Hz) and say so; its 2 s blocks are analysed."""
    from detectors.rules import vibration_rules
    from detectors.vibration import BEARING_SNR_DB, analyse_blocks
    from simulator.vibration import Health, synthesize

    rules = vibration_rules(SCENARIOS["bc01"])
    assert rules is not None
    restore = rules[1].restore
    assert restore < BEARING_SNR_DB
    machines = _machines()
    assert (60.0, "22228") in machines
    n = int(rate * seconds)
    for (rpm, bearing), m in machines.items():
        rng = np.random.default_rng([int(rpm), len(bearing)])
        xs = [synthesize(m, rate, n, rng, Health(), t0_s=7.0 * i) for i in range(blocks)]
        feats = analyse_blocks(xs, [rate] * blocks, [rpm] * blocks, [m.bearing] * blocks,
                               [(m.iso_group, m.support)] * blocks)
        worst = max(max(f.bpfo_snr_db, f.bpfi_snr_db, f.bsf_snr_db) for f in feats)
        assert worst < restore, f"{rpm:g} rpm, {bearing}: a healthy block reaches {worst:.1f} dB"
        assert {f.diagnosis for f in feats} <= {"healthy", "imbalance"}
        short = "too short to tell the bearing's fault lines apart" in str(feats[0].evidence.get("note"))
        assert short == (rpm == 60.0 and seconds < 1.0), (rpm, seconds, feats[0].evidence)


def test_shift_lock_raises_bearing_alerts_only_at_the_shifts_bearing_faults() -> None:
    """The stored shift (the behaviour lock's fixture): bearing-fault alerts only at the
    scenarios the shift's fault set gives a bearing fault, each raised and cleared once."""
    from simulator.faults import LIBRARY
    from tests.detectors.data.shift_lock import load

    faulted = {spec["scenario"] for spec in LIBRARY["shift"] if spec["kind"] == "bearing_fault"}
    events = [e for e in load()[:-1] if e["detector"] == "bearing_fault"]
    assert events and {e["scenario_id"] for e in events} <= faulted
    for sid in {e["scenario_id"] for e in events}:
        states = [e["state"] for e in events if e["scenario_id"] == sid]
        assert states.count("raised") == 1 and states.count("cleared") == 1, (sid, states)


@pytest.mark.parametrize("defect, name", [("outer", "outer race"), ("inner", "inner race"), ("ball", "ball")])
def test_the_belt_drums_defects_are_found_in_blocks_long_enough(defect: str, name: str) -> None:
    """The allowance for the drum's many bands does not hide its real defects: in 2 s blocks
    (0.5 Hz bins, its fault lines 1.7 Hz and more apart) the simulator's drum defects are named."""
    from detectors.vibration import analyse_blocks
    from simulator.vibration import Health, synthesize

    m = SCENARIOS["bc01"].machine
    assert m is not None and m.rpm == 60.0
    rng = np.random.default_rng(3)
    xs = [synthesize(m, 4096.0, 8192, rng, Health(defect=defect, impact=10.0), t0_s=7.0 * i) for i in range(6)]
    feats = analyse_blocks(xs, [4096.0] * 6, [m.rpm] * 6, [m.bearing] * 6, [(m.iso_group, m.support)] * 6)
    assert [f.diagnosis for f in feats] == [name] * 6
