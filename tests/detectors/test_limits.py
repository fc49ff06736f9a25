"""The limit kernel against the plain-Python reference, on seeded data with NaN and inf."""

from __future__ import annotations

import numpy as np
import pytest

from detectors.limits import LIMIT_COLUMNS, MAX_LEVELS, calm_kernel, limit_kernel
from detectors._state import StreamTable
from tests import naive


def _random_configs(rng: np.random.Generator, n_streams: int) -> list[dict]:
    configs = []
    for _ in range(n_streams):
        above = bool(rng.integers(2))
        k = int(rng.integers(1, MAX_LEVELS + 1))
        thr = np.sort(rng.uniform(0.3, 0.9, k))
        if not above:
            thr = thr[::-1]
        band = rng.uniform(0.0, 0.1)
        restore = float(thr[0] - band if above else thr[0] + band)
        levels = [(float(t), int(rng.integers(1, 4))) for t in thr]
        configs.append({"above": above, "levels": levels, "restore": restore, "n_clear": int(rng.integers(1, 4))})
    return configs


def _table(configs: list[dict]) -> StreamTable:
    tab = StreamTable(LIMIT_COLUMNS, capacity=2)
    for c in configs:
        s, _ = tab.add(len(tab))
        for k, (t, need) in enumerate(c["levels"]):
            tab["thr"][s, k] = t
            tab["n_raise"][s, k] = need
        tab["above"][s] = c["above"]
        tab["restore"][s] = c["restore"]
        tab["n_clear"][s] = c["n_clear"]
    return tab


def _run(tab: StreamTable, stream: np.ndarray, x: np.ndarray) -> np.ndarray:
    out = np.empty(x.shape[0], dtype=np.int8)
    limit_kernel(stream, x, tab["thr"], tab["above"], tab["restore"], tab["n_raise"], tab["n_clear"],
                 tab["level"], tab["count"], tab["clear_count"], out)
    return out


def _data(rng: np.random.Generator, n_streams: int, n: int) -> tuple[np.ndarray, np.ndarray]:
    stream = np.sort(rng.integers(0, n_streams, n))
    # a random walk per stream crosses thresholds often; sprinkle NaN and +-inf
    x = np.empty(n)
    for s in range(n_streams):
        m = stream == s
        x[m] = 0.6 + np.cumsum(rng.normal(0, 0.08, m.sum()))
    bad = rng.random(n)
    x[bad < 0.03] = np.nan
    x[(bad >= 0.03) & (bad < 0.04)] = np.inf
    x[(bad >= 0.04) & (bad < 0.05)] = -np.inf
    return stream, x


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_limit_kernel_matches_reference(seed: int) -> None:
    rng = np.random.default_rng(seed)
    configs = _random_configs(rng, 12)
    stream, x = _data(rng, 12, 3000)
    got = _run(_table(configs), stream, x)
    want = naive.limit_levels(list(zip(stream.tolist(), x.tolist())), configs)
    assert got.tolist() == want
    assert (got > 0).sum() > 10 and (got == 0).sum() > 10  # the data really exercise raise and clear


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_calm_kernel_matches_reference(seed: int) -> None:
    # the newest reading back past the restore level that leaves each stream at no alert, in
    # batches (the levels before each carried from the one before)
    rng = np.random.default_rng(seed)
    configs = _random_configs(rng, 12)
    tab = _table(configs)
    got = np.full(12, -1, dtype=np.int64)
    levels: list[int] = []
    samples: list[tuple[int, int, float]] = []
    for batch in range(4):
        stream, x = _data(rng, 12, 800)
        t = np.arange(stream.shape[0], dtype=np.int64) + 10_000 * batch  # time order within each stream
        before = tab["level"].copy()
        out = _run(tab, stream, x)
        calm_kernel(stream, t, x, out, before, tab["restore"], tab["above"], got)
        for s, o in zip(stream.tolist(), out.tolist()):
            before[s] = o if o >= 0 else before[s]
            levels.append(int(before[s]))
        samples += zip(stream.tolist(), t.tolist(), x.tolist())
    order = sorted(range(len(samples)), key=lambda i: samples[i][1])
    want = naive.calm_times([samples[i] for i in order], configs, [levels[i] for i in order])
    assert {s: int(v) for s, v in enumerate(got) if v >= 0} == want
    assert len(want) >= 8 and sum(lv > 0 for lv in levels) > 100  # streams at an alert and back


def test_limit_kernel_split_into_batches_matches_one_batch(rng: np.random.Generator) -> None:
    configs = _random_configs(rng, 5)
    stream, x = _data(rng, 5, 2000)
    # samples arrive in time order, streams interleaved; a batch is sorted by stream (stably)
    stream = rng.permutation(stream)
    whole = np.empty(x.shape[0], dtype=np.int8)
    by_stream = np.argsort(stream, kind="stable")
    whole[by_stream] = _run(_table(configs), stream[by_stream], x[by_stream])
    # the same samples, per stream in the same order, cut into uneven batches
    tab = _table(configs)
    got = np.full(x.shape[0], -9, dtype=np.int8)
    cuts = np.sort(rng.choice(np.arange(1, 2000), 40, replace=False))
    for lo, hi in zip(np.r_[0, cuts], np.r_[cuts, 2000]):
        idx = np.arange(lo, hi)
        # a batch is sorted by stream; samples of one stream keep their order
        idx = idx[np.argsort(stream[idx], kind="stable")]
        got[idx] = _run(tab, stream[idx], x[idx])
    assert got.tolist() == whole.tolist()


def test_non_finite_changes_nothing() -> None:
    tab = _table([{"above": True, "levels": [(1.0, 1), (1.5, 1)], "restore": 1.0, "n_clear": 1}])
    x = np.array([1.2, np.nan, np.inf, -np.inf, 0.5, np.nan])
    assert _run(tab, np.zeros(6, dtype=np.int64), x).tolist() == [1, -1, -1, -1, 0, -1]


def test_state_table_grows_and_keeps_rows() -> None:
    tab = StreamTable(LIMIT_COLUMNS, capacity=1)
    for i in range(40):
        s, new = tab.add(("k", i))
        assert new and s == i
        tab["restore"][s] = i
    assert tab.add(("k", 7)) == (7, False)
    assert tab["restore"][:40].tolist() == list(range(40))
    assert np.isnan(tab["thr"][39]).all()
