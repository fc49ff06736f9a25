"""Rate-of-rise and sensor-health kernels against the plain-Python references."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from detectors._state import StreamTable
from detectors.health import HEALTH_ARGS, HEALTH_COLUMNS, health_kernel
from detectors.rise import RISE_ARGS, RISE_COLUMNS, rise_kernel
from tests import naive

S = 1_000_000_000


def _times(rng: np.random.Generator, n: int) -> np.ndarray:
    # irregular sampling, 1-5 s, with an occasional long gap and a repeated timestamp
    dt = rng.uniform(1.0, 5.0, n)
    dt[rng.random(n) < 0.01] = 200.0
    dt[rng.random(n) < 0.01] = 0.0
    return (np.cumsum(dt) * S).astype(np.int64)


def _rise_cfg(rng: np.random.Generator) -> dict:
    target = float(rng.uniform(0.8, 1.2))
    return {"rise": float(rng.uniform(0.05, 0.3)) / 60, "target": target,
            "cut": None if rng.random() < 0.3 else target * 1.5, "horizon": 60.0, "tau_l": 8.0, "tau_b": 20.0,
            "warmup": 5, "gap_s": 60.0, "n_raise": int(rng.integers(1, 4))}


@pytest.mark.parametrize("seed", [11, 12])
def test_rise_kernel_matches_reference(seed: int) -> None:
    rng = np.random.default_rng(seed)
    n_streams, n = 6, 800
    tab = StreamTable(RISE_COLUMNS)
    cfgs = [_rise_cfg(rng) for _ in range(n_streams)]
    ts, xs, ss = [], [], []
    for s, cfg in enumerate(cfgs):
        tab.add(s)
        tab["rise_on"][s] = True
        tab["rise"][s], tab["rise_target"][s] = cfg["rise"], cfg["target"]
        tab["rise_cut"][s] = np.nan if cfg["cut"] is None else cfg["cut"]
        tab["rise_n_raise"][s] = cfg["n_raise"]
        t = _times(rng, n)
        # ramps up and down with noise, crossing the projection band many times
        x = 0.5 + 0.6 * np.sin(np.arange(n) / rng.uniform(15, 60)) ** 3 + rng.normal(0, 0.01, n)
        x[rng.random(n) < 0.02] = np.nan
        x[rng.random(n) < 0.01] = np.inf
        ts.append(t)
        xs.append(x)
        ss.append(np.full(n, s))
    stream, t, x = np.concatenate(ss), np.concatenate(ts), np.concatenate(xs)
    out, aux = np.empty(x.shape[0], dtype=np.int8), np.empty(x.shape[0])
    args: list[Any] = [stream, t, x, *(tab[c] for c in RISE_ARGS), out, aux]  # columns in the kernel's order
    rise_kernel(*args)
    changes = 0
    for s, cfg in enumerate(cfgs):
        m = stream == s
        want = naive.rise_changes(list(zip(t[m].tolist(), x[m].tolist())), cfg)
        assert out[m].tolist() == want, s
        changes += sum(w >= 0 for w in want)
    assert changes > 20


def _health_cfg(rng: np.random.Generator) -> dict:
    return {"lo": 0.0, "hi": 4.0, "tol": 0.005, "stuck_on": True, "stuck_s": 60.0, "spike_on": True,
            "spike_k": float(rng.uniform(6, 10)), "spike_window_s": 300.0, "silence_s": 30.0}


def _health_data(rng: np.random.Generator, n: int) -> tuple[np.ndarray, np.ndarray]:
    t = _times(rng, n)
    x = np.round(1.0 + 0.2 * np.sin(np.arange(n) / 40) + rng.normal(0, 0.008, n), 2)
    i = 0
    while i < n:  # faults: stuck runs, spikes, out-of-range, missing values
        r = rng.random()
        if r < 0.01:
            k = int(rng.integers(20, 120))
            x[i:i + k] = x[i]
            i += k
        elif r < 0.03:
            x[i] += rng.choice([-1, 1]) * rng.uniform(0.3, 1.0)
        elif r < 0.035:
            x[i:i + 3] = rng.choice([9.0, -1.0, np.inf, -np.inf])
        elif r < 0.05:
            x[i:i + int(rng.integers(1, 30))] = np.nan
        i += 1
    return t, x


@pytest.mark.parametrize("seed", [21, 22, 23])
def test_health_kernel_matches_reference(seed: int) -> None:
    rng = np.random.default_rng(seed)
    tab = StreamTable(HEALTH_COLUMNS)
    cfgs, ss, ts, xs = [], [], [], []
    for s in range(4):
        cfg = _health_cfg(rng)
        tab.add(s)
        for k in ("lo", "hi", "tol", "stuck_on", "stuck_s", "spike_on", "spike_k"):
            tab[f"h_{k}"][s] = cfg[k]
        tab["h_spike_window"][s], tab["h_silence_s"][s] = cfg["spike_window_s"], cfg["silence_s"]
        t, x = _health_data(rng, 1500)
        cfgs.append(cfg)
        ss.append(np.full(x.shape[0], s))
        ts.append(t)
        xs.append(x)
    stream, t, x = np.concatenate(ss), np.concatenate(ts), np.concatenate(xs)
    out, aux = np.empty((x.shape[0], 4), dtype=np.int8), np.empty(x.shape[0])
    args: list[Any] = [stream, t, x, *(tab[c] for c in HEALTH_ARGS), out, aux]  # columns in the kernel's order
    health_kernel(*args)
    seen = np.zeros(4, dtype=int)
    for s, cfg in enumerate(cfgs):
        m = stream == s
        want = naive.health_changes(list(zip(t[m].tolist(), x[m].tolist())), cfg)
        assert out[m].tolist() == want, s
        seen += (np.asarray(want) == 1).sum(axis=0)
    assert (seen > 0).all(), seen  # every condition was exercised
