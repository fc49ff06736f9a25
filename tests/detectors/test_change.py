"""The change detector: kernel against the reference, scale-freedom, no look-ahead, warm-up."""

from __future__ import annotations

import numpy as np
import pytest

from detectors.change import CHANGE_ARGS, CHANGE_COLUMNS, ChangeDetector, change_kernel, to_score
from detectors._state import StreamTable
from tests import naive


def _series(rng: np.random.Generator, n: int) -> np.ndarray:
    x = 5.0 + rng.standard_t(4, n) * 0.3
    for _ in range(6):  # steps and ramps
        i = int(rng.integers(50, n - 50))
        x[i:] += rng.choice([-1, 1]) * rng.uniform(0.3, 2.0)
        j = int(rng.integers(50, n - 100))
        x[j:j + 80] += np.linspace(0, rng.uniform(-1, 1), 80)
    x[rng.random(n) < 0.01] = np.nan
    x[rng.random(n) < 0.005] = np.inf
    x[rng.random(n) < 0.005] = 40.0
    return x


@pytest.mark.parametrize("seed", [31, 32])
def test_change_kernel_matches_reference(seed: int) -> None:
    rng = np.random.default_rng(seed)
    tab = StreamTable(CHANGE_COLUMNS)
    xs = [_series(rng, 1500) for _ in range(3)]
    for s in range(3):
        tab.add(s)
        tab["c_on"][s] = True
    stream = np.repeat(np.arange(3), 1500)
    x = np.concatenate(xs)
    score, code = np.empty(x.shape[0]), np.empty(x.shape[0], dtype=np.int8)
    t = np.arange(x.shape[0], dtype=np.int64)
    change_kernel(stream, t, x, *(tab[c] for c in CHANGE_ARGS), score, code, np.empty(x.shape[0]))
    for s in range(3):
        want_score, want_code = naive.change_scores(xs[s].tolist())
        np.testing.assert_allclose(to_score(score[stream == s]), want_score, rtol=1e-9, atol=1e-12)
        assert code[stream == s].tolist() == want_code
    assert (code == 1).sum() >= 3 and (score >= 1.0).sum() > 20


def test_scale_free_and_shift_free() -> None:
    rng = np.random.default_rng(3)
    x = _series(rng, 800)
    s1, a1 = ChangeDetector().score_many(x)
    s2, a2 = ChangeDetector().score_many(x * 1e-4)
    s3, a3 = ChangeDetector().score_many(x * 250.0 + 1e4)
    np.testing.assert_allclose(s1, s2, atol=1e-9)
    assert a1.tolist() == a2.tolist()
    # a large offset raises the floor of sigma only where the series is flat; here it is not
    assert (a1 != a3).mean() < 0.01


def test_no_look_ahead_and_warmup() -> None:
    rng = np.random.default_rng(4)
    x = _series(rng, 600)
    full, _ = ChangeDetector(warmup=25).score_many(x)
    det = ChangeDetector(warmup=25)
    one_by_one = [det.score_one(v) for v in x]
    np.testing.assert_allclose(full, one_by_one)
    # changing the future never changes a past score
    y = x.copy()
    y[300:] += 50
    part, _ = ChangeDetector(warmup=25).score_many(y)
    np.testing.assert_allclose(part[:300], full[:300])
    assert (full[:25] == 0).all()


def test_rejects_bad_parameters() -> None:
    with pytest.raises(ValueError):
        ChangeDetector(warmup=1)
    with pytest.raises(ValueError):
        ChangeDetector(alpha=1.5)


def test_gap_in_time_restarts_the_warmup() -> None:
    tab = StreamTable(CHANGE_COLUMNS)
    tab.add(0)
    tab["c_on"][0], tab["c_gap"][0], tab["c_warmup"][0] = True, 100, 10
    rng = np.random.default_rng(1)
    x = np.r_[rng.normal(0, 1, 50), rng.normal(30, 1, 50)]
    t = np.r_[np.arange(50), np.arange(50) + 1000].astype(np.int64)  # the second half after a long gap
    score, code, level = np.empty(100), np.empty(100, dtype=np.int8), np.empty(100)
    change_kernel(np.zeros(100, dtype=np.int64), t, x, *(tab[c] for c in CHANGE_ARGS), score, code, level)
    assert (score[50:60] == 0).all() and (code == -1).all()  # learned afresh, no alarm for the jump
