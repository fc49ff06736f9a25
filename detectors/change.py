"""A statistical change detector for channels without fixed limits.

Robust two-sided CUSUM on standardised residuals, plus a one-sample outlier test:

* the stream's level ``m`` and scale ``d`` (mean absolute deviation) are learned during a
  warm-up of ``warmup`` values (running mean), then tracked by exponential smoothing with
  ``alpha``; values judged anomalous, or while the evidence is past half the threshold, are
  *not* learned ("protect"), so a slow climb cannot teach the detector that it is normal;
* each value gives ``z = (x - m) / sigma`` with ``sigma = 1.2533 d`` (the Gaussian ratio of
  standard to mean absolute deviation), floored at half the finest step seen between two
  values (a quantised sensor that barely moves is not infinitely precise) and at a millionth
  of the level; everything is learned from the series itself, which makes the detector
  scale-free: multiplying a series by any factor leaves its scores unchanged;
* ``S+ = max(0, S+ + min(z, 4) - k)`` and ``S- = max(0, S- - max(z, -4) - k)`` accumulate
  small persistent shifts that a windowed z-score never sees (clipping ``z`` at 4 keeps one
  outlier from looking like a shift);
* the evidence ``T = max(S+, S-) / h, |z| / spike)`` is mapped to a score
  ``1 - 2 ** -T`` in ``[0, 1)``: 0.5 exactly at the decision threshold, higher is more
  anomalous; a value is anomalous when ``T >= 1``; ±inf scores 1;
* after ``warmup`` consecutive anomalous values the change is taken as the new normal: the
  detector starts a fresh warm-up (scores 0 meanwhile); so it does after a gap in time of more
  than ``gap`` (a patrol robot back in a scenario after its round).

No value is ever used before its own score is computed (no look-ahead). The alert state of a
stream rises after 2 consecutive anomalous values and clears after 5 consecutive normal ones.
This beats a windowed z-score twice over: the z-score's window learns a drift as it happens,
and with heavy-tailed noise its variance estimate swings so it both misses small shifts and
fires on noise (``bench/detection_quality.py`` measures both on the same series).

Examples
--------
>>> import numpy as np
>>> rng = np.random.default_rng(1)
>>> x = np.r_[rng.normal(10, 1, 200), rng.normal(12, 1, 100)]
>>> det = ChangeDetector()
>>> score, alert = det.score_many(x)
>>> bool(alert[:200].any()), int(np.argmax(alert)) - 200 < 40
(False, True)
>>> score2, _ = ChangeDetector().score_many(x * 1000.0)
>>> bool(np.allclose(score, score2))
True
"""

from __future__ import annotations

import math

import numpy as np

from detectors._jit import jit

__all__ = ["CHANGE_ARGS", "CHANGE_COLUMNS", "ChangeDetector", "change_kernel", "to_score"]

SIGMA_PER_MAD = 1.2533
Z_CLIP = 4.0
ALERT_ON = 2
ALERT_OFF = 5
LEARN_BELOW = 0.5


@jit
def change_kernel(stream, t, x, on, warmup, k, h, spike, alpha, gap,
                  n, m, d, s_hi, s_lo, run_bad, state, on_count, off_count, last, step, t_last, score, code,
                  level):  # noqa: ANN001, ANN201
    """Score a batch. ``score[i]`` is the evidence ``T`` (0 for NaN and warm-up, inf for
    ±inf; :func:`to_score` maps it to [0, 1]), ``code[i]`` the alert state change at ``i``
    (1 raised, 0 cleared, -1 none), ``level[i]`` the learned level the value was compared with."""
    n_changes = 0
    for i in range(x.shape[0]):
        s = stream[i]
        v = x[i]
        mean = m[s]
        score[i] = 0.0
        code[i] = -1
        level[i] = mean
        if not on[s] or v != v:
            continue
        if t_last[s] >= 0 and t[i] - t_last[s] > gap[s]:
            # back after a gap (a patrol robot returning): what it knew is stale, learn afresh
            n[s] = 0
            mean = 0.0
            m[s] = 0.0
            d[s] = 0.0
            s_hi[s] = 0.0
            s_lo[s] = 0.0
            run_bad[s] = 0
        t_last[s] = t[i]
        bad = False
        if np.isfinite(v):
            jump = abs(v - last[s])
            if jump > 0.0 and jump < step[s]:
                step[s] = jump  # the finest step seen: the sensor's resolution, learned
            last[s] = v
            seen = n[s]
            if seen < warmup[s]:
                seen += 1
                n[s] = seen
                dev = abs(v - mean)
                m[s] = mean + (v - mean) / seen
                if seen > 1:
                    d[s] += (dev - d[s]) / (seen - 1)
            else:
                sigma = SIGMA_PER_MAD * d[s]
                floor = 1e-6 * abs(mean)
                half_step = 0.5 * step[s]
                if half_step > floor and half_step < np.inf:
                    floor = half_step
                if floor < 1e-300:
                    floor = 1e-300
                if sigma < floor:
                    sigma = floor
                z = (v - mean) / sigma
                zc = min(max(z, -Z_CLIP), Z_CLIP)
                kk = k[s]
                up = max(0.0, s_hi[s] + zc - kk)
                down = max(0.0, s_lo[s] - zc - kk)
                s_hi[s] = up
                s_lo[s] = down
                ev = max(max(up, down) / h[s], abs(z) / spike[s])
                score[i] = ev
                if ev >= 1.0:
                    bad = True
                    run = run_bad[s] + 1
                    run_bad[s] = run
                    if run >= warmup[s]:  # the change has lasted: it is the new normal
                        n[s] = 0
                        m[s] = 0.0
                        d[s] = 0.0
                        s_hi[s] = 0.0
                        s_lo[s] = 0.0
                        run_bad[s] = 0
                else:
                    run_bad[s] = 0
                    if ev < LEARN_BELOW:  # evidence building up is not learned either
                        a = alpha[s]
                        dev = abs(v - mean)
                        m[s] = mean + a * (v - mean)
                        d[s] += a * (dev - d[s])
        else:
            score[i] = np.inf
            bad = True
        if bad:
            on_n = on_count[s] + 1
            on_count[s] = on_n
            off_count[s] = 0
            if state[s] == 0 and on_n >= ALERT_ON:
                state[s] = 1
                code[i] = 1
                n_changes += 1
        else:
            on_count[s] = 0
            off_n = off_count[s] + 1
            off_count[s] = off_n
            if state[s] == 1 and off_n >= ALERT_OFF:
                state[s] = 0
                code[i] = 0
                n_changes += 1
    return n_changes


CHANGE_COLUMNS = {
    "c_on": (np.bool_, (), False),
    "c_warmup": (np.int64, (), 30),
    "c_k": (np.float64, (), 0.5),
    "c_h": (np.float64, (), 20.0),
    "c_spike": (np.float64, (), 12.0),
    "c_alpha": (np.float64, (), 0.02),
    "c_gap": (np.int64, (), 2**62),
    "c_n": (np.int64, (), 0),
    "c_m": (np.float64, (), 0.0),
    "c_d": (np.float64, (), 0.0),
    "c_s_hi": (np.float64, (), 0.0),
    "c_s_lo": (np.float64, (), 0.0),
    "c_run_bad": (np.int64, (), 0),
    "c_state": (np.int8, (), 0),
    "c_on_count": (np.int64, (), 0),
    "c_off_count": (np.int64, (), 0),
    "c_last": (np.float64, (), np.nan),
    "c_step": (np.float64, (), np.inf),
    "c_t_last": (np.int64, (), -1),
}
CHANGE_ARGS = tuple(CHANGE_COLUMNS)


def to_score(evidence: np.ndarray) -> np.ndarray:
    """Map the kernel's evidence ``T`` to the score ``1 - 2 ** -T`` in [0, 1] (vectorised)."""
    return -np.expm1(-np.log(2.0) * np.asarray(evidence, dtype=np.float64))


class ChangeDetector:
    """One stream's change detector (see the module docstring for the rule).

    Parameters
    ----------
    warmup
        Values learned before any score; also how long a change lasts before it is the new normal.
    k
        CUSUM allowance, in standard deviations (half the smallest shift worth catching).
    h
        CUSUM decision threshold.
    spike
        A single value this many standard deviations away is anomalous on its own.
    alpha
        Smoothing of level and scale after the warm-up.
    """

    def __init__(self, warmup: int = 30, k: float = 0.5, h: float = 20.0, spike: float = 12.0, alpha: float = 0.02) -> None:
        if warmup < 2:
            raise ValueError("warmup must be at least 2")
        if not (k >= 0 and h > 0 and spike > 0 and 0 < alpha < 1):
            raise ValueError("need k >= 0, h > 0, spike > 0 and 0 < alpha < 1")
        self.warmup = warmup
        self.k = k
        self.h = h
        self.spike = spike
        self.alpha = alpha
        self.state_ = {name: np.full(1, fill, dtype=dt) for name, (dt, _, fill) in CHANGE_COLUMNS.items()}
        for name, value in (("c_on", True), ("c_warmup", warmup), ("c_k", k), ("c_h", h), ("c_spike", spike),
                            ("c_alpha", alpha)):
            self.state_[name][0] = value

    def score_many(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Scores and 0/1 anomaly flags of the next values, in order (state carries on)."""
        x = np.ascontiguousarray(x, dtype=np.float64)
        score = np.empty(x.shape[0])
        code = np.empty(x.shape[0], dtype=np.int8)
        level = np.empty(x.shape[0])
        start = int(self.state_["c_t_last"][0]) + 1
        t = np.arange(start, start + x.shape[0], dtype=np.int64)  # one step per value: no gaps
        change_kernel(np.zeros(x.shape[0], dtype=np.int64), t, x, *(self.state_[c] for c in CHANGE_ARGS), score, code,
                      level)
        alert = (score >= 1.0).astype(np.int8)
        return to_score(score), alert

    def score_one(self, x: float) -> float:
        """Score one value (and learn from it, unless it is anomalous)."""
        return float(self.score_many(np.array([x]))[0][0])
