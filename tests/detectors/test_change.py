"""The change detector: kernel against the reference, batch invariance, no look-ahead, scale-freedom,
seasonal series, gaps, and the same numbers with the JIT off."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from detectors._state import StreamTable
from detectors.change import CHANGE_ARGS, CHANGE_COLUMNS, DAY_NS, ChangeDetector, change_kernel, to_score
from tests.detectors import naive_change
from tests.signals import KINDS, background, inject

ROOT = Path(__file__).resolve().parents[2]
S = 1_000_000_000


def _rough(rng: np.random.Generator, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Irregular times with gaps, a daily cycle, steps, ramps, NaN, inf and outliers."""
    dt = rng.choice([60, 300, 900], p=[0.3, 0.6, 0.1]) * S * rng.uniform(0.5, 1.5, n)
    dt[rng.random(n) < 0.01] = 12 * 3600 * S  # a patrol robot's round
    t = (1_795_852_800 * S + np.cumsum(dt)).astype(np.int64)
    x = 5.0 + 2.0 * np.sin(2 * np.pi * (t % DAY_NS) / DAY_NS) + rng.standard_t(4, n) * 0.3
    for _ in range(5):
        i = int(rng.integers(50, n - 50))
        x[i:] += rng.choice([-1, 1]) * rng.uniform(0.3, 3.0)
        j = int(rng.integers(50, n - 100))
        x[j:j + 80] += np.linspace(0, rng.uniform(-2, 2), 80)
    x[rng.random(n) < 0.01] = np.nan
    x[rng.random(n) < 0.005] = np.inf
    x[rng.random(n) < 0.003] = -np.inf
    x[rng.random(n) < 0.005] = 40.0
    return t, x


def _run(tab: StreamTable, stream: np.ndarray, t: np.ndarray, x: np.ndarray) -> tuple[np.ndarray, ...]:
    score, code, level = np.empty(x.shape[0]), np.empty(x.shape[0], dtype=np.int8), np.empty(x.shape[0])
    why = np.zeros(x.shape[0], dtype=np.int8)
    args: list[np.ndarray] = [stream, t, x, *(tab[c] for c in CHANGE_ARGS), score, code, level, why]
    change_kernel(*args)
    return score, code, level, why


def _table(streams: int, **settings: float) -> StreamTable:
    tab = StreamTable(CHANGE_COLUMNS)
    for s in range(streams):
        tab.add(s)
        tab["c_on"][s] = True
        for name, value in settings.items():
            tab[name][s] = value
    return tab


@pytest.mark.parametrize(("seed", "settings"), [(31, {}), (32, {"c_gap": 3600 * S, "c_warmup": 12}),
                                                (33, {"c_period": 0, "c_alpha": 0.1, "c_gap": -1})])
def test_change_kernel_matches_reference(seed: int, settings: dict) -> None:
    rng = np.random.default_rng(seed)
    runs = [_rough(rng, 1500) for _ in range(3)]
    tab = _table(3, **settings)
    stream = np.repeat(np.arange(3), 1500)
    score, code, level, why = _run(tab, stream, np.concatenate([r[0] for r in runs]), np.concatenate([r[1] for r in runs]))
    kw = {"warmup": int(settings.get("c_warmup", 30)), "alpha": settings.get("c_alpha", CHANGE_COLUMNS["c_alpha"][2]),
          "period": int(settings.get("c_period", DAY_NS)), "gap": int(settings.get("c_gap", 0))}
    for s, (t, x) in enumerate(runs):
        want_score, want_code, want_level, want_why = naive_change.change_scores(t.tolist(), x.tolist(), **kw)
        np.testing.assert_allclose(score[stream == s], want_score, rtol=1e-9, atol=1e-12)
        np.testing.assert_allclose(level[stream == s], want_level, rtol=1e-9, atol=1e-9)
        assert code[stream == s].tolist() == want_code
        assert why[stream == s].tolist() == want_why
    assert (code == 1).sum() >= 3 and (score >= 1.0).sum() > 20 and np.isinf(score).sum() > 5
    assert len(set(why[code == 1].tolist())) >= 2 and not why[code != 1].any()  # raised by several tests


def test_batch_invariance() -> None:
    """One batch or many, cut anywhere, streams interleaved: the same scores and codes."""
    rng = np.random.default_rng(5)
    runs = [_rough(rng, 900) for _ in range(2)]
    whole = [_run(_table(1), np.zeros(900, dtype=np.int64), t, x) for t, x in runs]
    tab = _table(2)
    got: list[list[np.ndarray]] = [[], []]
    cuts = np.r_[0, np.sort(rng.choice(np.arange(1, 900), 25, replace=False)), 900]
    for a, b in zip(cuts[:-1], cuts[1:]):
        stream = np.repeat([0, 1], b - a)
        out = _run(tab, stream, np.r_[runs[0][0][a:b], runs[1][0][a:b]], np.r_[runs[0][1][a:b], runs[1][1][a:b]])
        for s in range(2):
            got[s].append(np.stack([o[stream == s].astype(np.float64) for o in out]))
    for s in range(2):
        np.testing.assert_array_equal(np.concatenate(got[s], axis=1), np.stack([o.astype(np.float64) for o in whole[s]]))


def test_no_look_ahead() -> None:
    rng = np.random.default_rng(4)
    t, x = _rough(rng, 1200)
    full, _ = ChangeDetector(warmup=25).score_many(x, t)
    det = ChangeDetector(warmup=25)
    one_by_one = [det.score_one(v, int(ti)) for v, ti in zip(x, t)]
    np.testing.assert_array_equal(full, one_by_one)
    y = x.copy()
    y[600:] += 50  # changing the future never changes a past score
    part, _ = ChangeDetector(warmup=25).score_many(y, t)
    np.testing.assert_array_equal(part[:600], full[:600])
    assert (full[:25][np.isfinite(x[:25])] == 0).all() and not np.array_equal(part[600:], full[600:])


def test_scale_invariance() -> None:
    rng = np.random.default_rng(3)
    t, x = _rough(rng, 1500)
    s1, a1 = ChangeDetector().score_many(x, t)
    s2, a2 = ChangeDetector().score_many(x * 2.0**-13, t)  # a power of two: exactly the same arithmetic
    s3, a3 = ChangeDetector().score_many(x * 1e-4, t)
    np.testing.assert_array_equal(s1, s2)
    np.testing.assert_allclose(s1, s3, atol=1e-6)
    assert a1.tolist() == a3.tolist() and a1.sum() > 10


def test_clean_daily_series_flags_nothing() -> None:
    """Two weeks of 5-minute values of a daily cycle, noise-free (the case that flooded the board
    with the detector before this one) and noisy with the mine's shift pattern, trend, heavy tails
    and a patrol robot's gaps: nothing is flagged once every time of day has been seen."""
    n = 14 * 288
    t = (np.arange(n) * 300 * S).astype(np.int64)
    x = 60.0 + 15.0 * np.sin(2 * np.pi * np.arange(n) / 288)
    _, flags = ChangeDetector().score_many(x, t)
    assert flags.sum() == 0
    rng = np.random.default_rng(8)
    for noise in ("gauss", "t3", "ar1"):
        ser = background(rng, n, noise=noise)
        _, flags = ChangeDetector().score_many(ser.x, ser.t)
        assert flags[3 * 288:].sum() == 0, noise
    # a patrol robot sees each time of day only now and then: at most one run of flags in 11 days
    ser = background(rng, n, noise="gauss", patrol=True)
    f = ChangeDetector().score_many(ser.x, ser.t)[1][3 * 288:].astype(bool)
    assert (f & ~np.r_[False, f[:-1]]).sum() <= 1


@pytest.mark.parametrize("kind", KINDS)
def test_injected_changes_are_flagged(kind: str) -> None:
    """A clear change on a seasonal background is flagged within 60 values (a spike: at once)."""
    rng = np.random.default_rng(11)
    ser = background(rng, 8 * 288, noise="gauss")
    found = 0
    for trial in range(5):
        at = 4 * 288 + 50 * trial
        x = ser.x.copy()
        if kind == "shift":
            x[at:] += 8.0 * ser.scale
        elif kind == "trend":
            x[at:] += 0.3 * ser.scale * np.arange(x.shape[0] - at)
        else:
            x = inject(rng, ser, kind, at)
        _, flags = ChangeDetector().score_many(x, ser.t)
        assert not flags[3 * 288:at].any()
        found += bool(flags[at:at + (1 if kind == "spike" else 60)].any())
    assert found >= 4


def test_a_gap_keeps_the_daily_profile() -> None:
    """A patrol robot away for hours comes back at another time of day: the profile it learned
    places its values, the level is learned again over a few values, nothing is flagged."""
    n = 6 * 288
    t = (np.arange(n) * 300 * S).astype(np.int64)
    rng = np.random.default_rng(2)
    x = 20.0 + 6.0 * np.sin(2 * np.pi * np.arange(n) / 288) + rng.normal(0, 0.3, n)
    keep = np.ones(n, dtype=bool)
    keep[4 * 288:4 * 288 + 100] = False  # 8 h 20 min away
    det = ChangeDetector(gap_s=3600)
    det.score_many(x[:4 * 288], t[:4 * 288])
    prof = det.state_["c_prof"][0].copy()
    assert np.ptp(prof) > 8.0  # the cycle is learned
    score, flags = det.score_many(x[keep][4 * 288:], t[keep][4 * 288:])
    assert det.state_["c_n"][0] > 0 and flags.sum() == 0 and (score[:8] == 0).all()
    np.testing.assert_allclose(det.state_["c_prof"][0], prof, atol=2.0)  # kept, not wiped


def test_to_score_is_half_at_the_threshold() -> None:
    assert to_score(np.array([0.0, 1.0, np.inf])).tolist() == [0.0, 0.5, 1.0]


def test_rejects_bad_input() -> None:
    with pytest.raises(ValueError):
        ChangeDetector(warmup=1)
    with pytest.raises(ValueError):
        ChangeDetector(alpha=1.5)
    with pytest.raises(ValueError):
        ChangeDetector(gap_s=0)
    det = ChangeDetector()
    with pytest.raises(ValueError, match="non-decreasing"):
        det.score_many(np.ones(3), np.array([3, 2, 1]))
    with pytest.raises(ValueError, match="shape"):
        det.score_many(np.ones(3), np.array([1, 2]))
    with pytest.raises(ValueError, match="datetime64"):
        det.score_many(np.ones(2), np.array([1.0, 2.0]))


JIT_OFF = """
import json, numpy as np
from tests.detectors.test_change import _rough, _run, _table
t, x = _rough(np.random.default_rng(21), 1200)
score, code, level, why = _run(_table(1), np.zeros(1200, dtype=np.int64), t, x)
print(json.dumps([[float(v) if np.isfinite(v) else str(v) for v in score], code.tolist(), level.tolist(),
                  why.tolist()]))
"""


def test_jit_off_gives_the_same_numbers() -> None:
    """The kernel interpreted (NUMBA_DISABLE_JIT=1) computes what the compiled one does."""
    env = {**os.environ, "NUMBA_DISABLE_JIT": "1", "PYTHONPATH": str(ROOT)}
    proc = subprocess.run([sys.executable, "-c", JIT_OFF], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    score_off, code_off, level_off, why_off = json.loads(proc.stdout)
    t, x = _rough(np.random.default_rng(21), 1200)
    score, code, level, why = _run(_table(1), np.zeros(1200, dtype=np.int64), t, x)
    assert [float(v) if np.isfinite(v) else str(v) for v in score] == score_off
    assert code.tolist() == code_off and level.tolist() == level_off and why.tolist() == why_off


def test_detect_cli_places_rows_by_their_times(tmp_path: Path) -> None:
    """``minewatch detect`` reads ISO 8601 times (and Unix seconds) and learns the daily cycle from
    them: a noise-free daily cycle with a patrol's gap flags nothing; rows out of time order are refused."""
    from click.testing import CliRunner

    from minewatch.cli import main

    i = np.r_[np.arange(600), np.arange(700, 1200)]  # 5-minute rows, an 8-hour gap
    t0 = np.datetime64("2026-11-28T00:00:00")
    stamps = [str(t0 + np.timedelta64(int(k) * 300, "s")) for k in i]
    x = 40.0 + 10.0 * np.sin(2 * np.pi * i / 288)
    src = tmp_path / "in.csv"
    src.write_text("timestamp,value\n" + "".join(f"{s}Z,{v:.4f}\n" for s, v in zip(stamps, x)))
    out = tmp_path / "out.csv"
    res = CliRunner().invoke(main, ["detect", "--input", str(src), "--out", str(out)])
    assert res.exit_code == 0, res.output
    flags = [int(r["alert"]) for r in csv_rows(out)]
    assert len(flags) == 1100 and sum(flags) == 0
    epoch = tmp_path / "epoch.csv"  # the same in Unix seconds: the same scores
    secs = (1_795_824_000 + i * 300).astype(np.int64)
    epoch.write_text("timestamp,value\n" + "".join(f"{s},{v:.4f}\n" for s, v in zip(secs, x)))
    res = CliRunner().invoke(main, ["detect", "--input", str(epoch), "--out", str(tmp_path / "e.csv")])
    assert res.exit_code == 0, res.output
    assert [r["anomaly_score"] for r in csv_rows(tmp_path / "e.csv")] == [r["anomaly_score"] for r in csv_rows(out)]
    lines = src.read_text().splitlines()
    lines[10], lines[11] = lines[11], lines[10]
    src.write_text("\n".join(lines) + "\n")
    res = CliRunner().invoke(main, ["detect", "--input", str(src), "--out", str(out)])
    assert res.exit_code != 0 and "row 12 is earlier" in res.output  # the file's line 12


def csv_rows(path: Path) -> list[dict[str, str]]:
    import csv

    with path.open(newline="") as fh:
        return list(csv.DictReader(fh))


def test_a_shift_during_a_pause_is_found_after_it() -> None:
    """By default a pause changes nothing: a level that moved 4 sigma while a patrol robot was
    away 6 hours is flagged within 60 values of its return; with a gap rule the level is learned
    again after the pause and the same values are the new normal."""
    rng = np.random.default_rng(12)
    ser = background(rng, 7 * 288, noise="gauss", trend_per_day=0.0)
    at = 5 * 288
    keep = np.ones(ser.x.shape[0], dtype=bool)
    keep[at - 72:at] = False  # away 6 h
    x = ser.x.copy()
    x[at:] += 4.0 * ser.scale * ser.sd[at]
    t, x = ser.t[keep], x[keep]
    back = at - 72
    _, flags = ChangeDetector().score_many(x, t)
    assert not flags[3 * 288:back].any() and flags[back:back + 60].any()
    _, flags = ChangeDetector(gap_s=3600).score_many(x, t)
    assert not flags[back:].any()


def test_the_residuals_correlation_is_learned() -> None:
    """AR(1) noise with coefficient 0.7: the lag-1 correlation the CUSUM whitens with is near it
    (Gaussian noise: near 0)."""
    rng = np.random.default_rng(13)
    for noise, lo, hi in (("ar1", 0.55, 0.85), ("gauss", -0.15, 0.15)):
        ser = background(rng, 6 * 288, noise=noise)
        det = ChangeDetector()
        det.score_many(ser.x, ser.t)
        phi = det.state_["c_c1"][0] / det.state_["c_c0"][0]
        assert lo < phi < hi, (noise, phi)


def test_a_patrol_back_at_a_louder_place_learns_its_noise() -> None:
    """Dust at a face whose shearer started cutting while the patrol robot was away: the level
    is three times higher and the noise grows with it. With a gap rule the robot's return learns
    both, and flags nothing; the same louder noise with no pause in between is a change."""
    rng = np.random.default_rng(21)
    quiet = 2.0 + rng.normal(0, 0.2, 150)
    loud = 7.0 + rng.normal(0, 0.5, 150)
    t = (np.r_[np.arange(150), np.arange(150) + 900] * 2 * S).astype(np.int64)  # 30 min away
    x = np.r_[quiet, loud]
    det = ChangeDetector(warmup=60, h=30.0, spike=16.0, alpha=0.1, gap_s=60)
    _, flags = det.score_many(x, t)
    assert not flags.any()
    assert det.state_["c_d"][0] > 0.3  # the louder visit's scale (0.5 / 1.2533 is 0.4)
    _, flags = ChangeDetector(warmup=60, h=30.0, spike=16.0, alpha=0.1, gap_s=60).score_many(
        np.r_[quiet, 2.0 + rng.normal(0, 0.5, 150)], (np.arange(300) * 2 * S).astype(np.int64))
    assert flags[150:].any()
