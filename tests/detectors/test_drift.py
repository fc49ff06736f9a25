"""Drift against a neighbouring sensor: kernel against the reference, and in the suite."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from detectors import DetectorSuite
from detectors._state import StreamTable
from detectors.drift import DRIFT_ARGS, DRIFT_COLUMNS, drift_kernel
from tests import naive
from tests.detectors.conftest import S, T0, frame

CFG = {"tol": 0.2, "gas_a": 0.8, "gas_b": 0.8, "warmup": 30, "alpha_base": 0.01, "alpha_recent": 0.1,
       "hold_s": 60.0, "gap_s": 300.0}


@pytest.mark.parametrize("seed", [41, 42])
def test_drift_kernel_matches_reference(seed: int) -> None:
    rng = np.random.default_rng(seed)
    n = 3000
    t = (np.cumsum(rng.choice([2, 2, 2, 400], n, p=[0.33, 0.33, 0.333, 0.007])) * S).astype(np.int64)
    a = 0.4 + rng.normal(0, 0.01, n)
    b = 0.3 + rng.normal(0, 0.01, n)
    for _ in range(8):  # drifts that come and go, gas events, bad values
        i = int(rng.integers(0, n - 300))
        a[i:i + 300] += np.linspace(0, rng.uniform(-0.5, 0.5), 300)
        j = int(rng.integers(0, n - 20))
        b[j:j + 20] = 1.2
    a[rng.random(n) < 0.01] = np.nan
    b[rng.random(n) < 0.005] = np.inf
    tab = StreamTable(DRIFT_COLUMNS)
    tab.add(0)
    for k, v in CFG.items():
        tab[k][0] = v
    out, aux = np.empty(n, dtype=np.int8), np.empty(n)
    args: list[Any] = [np.zeros(n, dtype=np.int64), t, a, b, *(tab[c] for c in DRIFT_ARGS), out, aux]
    drift_kernel(*args)
    want = naive.drift_changes(list(zip(t.tolist(), a.tolist(), b.tolist())), CFG)
    assert out.tolist() == want
    assert want.count(1) >= 2 and want.count(0) >= 1


def test_suite_flags_a_drifting_face_sensor_not_a_steady_one() -> None:
    rng = np.random.default_rng(3)
    n = 900  # 30 min at 2 s
    t1 = 0.35 + rng.normal(0, 0.006, n)
    t1[400:] += np.linspace(0, 0.45, n - 400)  # T1 drifts up by 0.45 % over the last 17 min
    frames = [frame("r01", "mf01", i, {"ch4_t0": round(0.4 + rng.normal(0, 0.006), 2), "ch4_t1": round(float(t1[i]), 2)},
                    dt_s=2.0) for i in range(n)]
    d = DetectorSuite().process(frames)
    drift = [e for e in d.events if e.detector == "sensor_drift"]
    assert [(e.state.value, e.severity.value) for e in drift] == [("raised", "alarm")]
    ev = drift[0]
    assert ev.channel == "ch4_t0" and ev.evidence["neighbour"] == "ch4_t1"
    assert ev.alert_id.startswith("mf01.ch4_t0.ch4_t1.sensor_drift.")
    assert 400 * 2 < (ev.ts - T0) / S < n * 2 and "drifted apart" in ev.message
    steady = [frame("r01", "mf01", i, {"ch4_t0": 0.4, "ch4_t1": round(0.35 + rng.normal(0, 0.006), 2)}, dt_s=2.0)
              for i in range(n)]
    assert [e for e in DetectorSuite().process(steady).events if e.detector == "sensor_drift"] == []
