"""Change-detector quality on seasonal sensor series: false alarms, recall and delay.

The series come from ``tests/signals.py`` (generated, not recorded: daily cycle, the mine's
shift pattern, trend, Gaussian / heavy-tailed / autocorrelated noise, irregular sampling,
patrol gaps, quantisation; offsets and scales from 1e-3 to 1e3). Each detector scores every
series strictly in order and flags a value when its score reaches its one fixed threshold
(the same for every series):

* ``change_false_alarms_per_10k``: onsets of flagged runs per 10,000 values on the clean
  series (no injected change), after a probation of ``--probation-days`` days (what the
  detectors learn first: the daily profile);
* ``change_recall`` and ``change_delay_samples`` (median): one change injected per series,
  after the probation, of each kind, sized in standard deviations of the noise where it starts
  (production's noise is 1.3 times maintenance's): a level shift of 3-6 sigma, a spike of
  25-40, a trend break of 0.1-0.2 sigma per value, the noise four times larger; against a
  daily cycle of 2-8 sigma amplitude (plus a second harmonic) and a shift pattern of 1-6 sigma.
  Detected when a value from the change on, within ``--window`` values (the spike: the value
  itself), is flagged; per kind and overall. The sizes are in each line's conditions.

Detectors, all in the same run: ``seasonal`` (``detectors.change``, the one the suite and
``minewatch detect`` use), ``previous`` (the earlier robust CUSUM without profile or
timestamps, as restated in ``tests/naive.py``), ``zscore`` (a trailing 60-value z-score at
|z| >= 4), ``likelihood`` (an exponentially smoothed level predicts each value; its absolute
error's short average is scored against the long-run distribution of that error, an
anomaly likelihood in the manner of Numenta's, flagged at 0.9999) and ``holt-winters`` (an
additive level + 96-bin daily profile by sample time, flagged at |residual| >= 5 smoothed
standard deviations).

    python bench/change_quality.py [--series 40] [--days 8] [--dt 300]
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import sys
from collections import defaultdict
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import numpy as np

from detectors.change import ChangeDetector
from tests import naive
from tests.signals import KINDS, NOISES, SIZES, VARIANCE_RATIO, background, inject

DAY_S = 86_400


def seasonal(t: np.ndarray, x: np.ndarray) -> np.ndarray:
    return ChangeDetector().score_many(x, t)[1].astype(bool)


def previous(t: np.ndarray, x: np.ndarray) -> np.ndarray:
    scores, _ = naive.change_scores(x.tolist())
    return np.asarray(scores) >= 0.5


def zscore(t: np.ndarray, x: np.ndarray, window: int = 60, z: float = 4.0) -> np.ndarray:
    flags = np.zeros(len(x), dtype=bool)
    for i in range(window, len(x)):
        w = x[i - window:i]
        w = w[np.isfinite(w)]
        sd = w.std() if w.size > 1 else 0.0
        flags[i] = sd > 0 and abs(x[i] - w.mean()) / sd >= z
    return flags


def likelihood(t: np.ndarray, x: np.ndarray, alpha: float = 0.1, short: float = 0.2, long: float = 0.002,
               threshold: float = 0.9999, probation: int = 100) -> np.ndarray:
    flags = np.zeros(len(x), dtype=bool)
    level = math.nan
    mean = var = 0.0
    recent = 0.0
    for i, v in enumerate(x.tolist()):
        if not math.isfinite(v):
            continue
        if level != level:
            level = v
            continue
        err = abs(v - level)
        level += alpha * (v - level)
        recent += short * (err - recent)
        if i < probation:
            mean += (err - mean) / (i + 1)
            var += ((err - mean) ** 2 - var) / (i + 1)
            continue
        sd = math.sqrt(var) if var > 0 else 1e-12
        p = 0.5 * math.erfc((recent - mean) / (sd * math.sqrt(2)))  # tail probability of the recent error
        flags[i] = 1.0 - p >= threshold
        mean += long * (err - mean)
        var += long * ((err - mean) ** 2 - var)
    return flags


def holt_winters(t: np.ndarray, x: np.ndarray, alpha: float = 0.1, gamma: float = 0.3, k: float = 5.0,
                 bins: int = 96, warmup: int = 30) -> np.ndarray:
    flags = np.zeros(len(x), dtype=bool)
    prof = np.zeros(bins)
    b = ((t // 1_000_000_000) % DAY_S * bins // DAY_S).astype(np.int64)
    level = 0.0
    dev = 0.0
    seen = 0
    for i, v in enumerate(x.tolist()):
        if not math.isfinite(v):
            continue
        j = int(b[i])
        y = v - prof[j]
        if seen < warmup:
            seen += 1
            if seen > 1:
                dev += (abs(y - level) - dev) / (seen - 1)
            level += (y - level) / seen
            continue
        r = y - level
        sd = 1.2533 * dev if dev > 0 else 1e-300
        flags[i] = abs(r) >= k * sd
        level += alpha * r
        prof[j] += gamma * (v - level - prof[j])
        dev += 0.01 * (abs(r) - dev)
    return flags


DETECTORS = {"seasonal": seasonal, "previous": previous, "zscore": zscore, "likelihood": likelihood,
             "holt-winters": holt_winters}


def onsets(f: np.ndarray) -> int:
    return int((f & ~np.r_[False, f[:-1]]).sum())


SIZE_OPTIONS = ("series", "days", "dt", "probation_days")


def add_size_options(ap: argparse.ArgumentParser, prefix: str = "") -> None:
    """``--series``, ``--days``, ``--dt`` and ``--probation-days``, each after ``prefix``."""
    ap.add_argument(f"--{prefix}series", type=int, default=40, help="series per noise kind (clean, and per injected kind)")
    ap.add_argument(f"--{prefix}days", type=float, default=8.0, help="length of a series, days")
    ap.add_argument(f"--{prefix}dt", type=float, default=300.0, help="mean sampling interval, s")
    ap.add_argument(f"--{prefix}probation-days", type=float, default=3.0, help="days learned before counting")


def size_options(args: argparse.Namespace, prefix: str = "") -> dict[str, Any]:
    """The sizes :func:`add_size_options` added, as :func:`figures`' keywords."""
    return {k: getattr(args, prefix.replace("-", "_") + k) for k in SIZE_OPTIONS}


def figures(names: list[str], *, series: int, days: float, dt: float, probation_days: float, window: int = 60,
            seed: int = 1) -> list[dict[str, Any]]:
    """The figures of ``names`` (keys of :data:`DETECTORS`): ``change_false_alarms_per_10k``, then
    ``change_recall`` and ``change_delay_samples`` per injected kind and over all kinds, as dicts
    (``name``, ``value``, ``unit`` and the conditions). ``series`` per noise kind. Raises
    :class:`ValueError` for an unknown detector or a probation that leaves no room for a change."""
    unknown = set(names) - set(DETECTORS)
    if unknown or not names:
        raise ValueError(f"unknown detectors: {', '.join(sorted(unknown)) or '(none given)'}")
    n = int(days * DAY_S / dt)
    start = int(probation_days * DAY_S / dt)
    if series < 1 or not 0 < start < n - window - 1:
        raise ValueError("need at least one series, and a probation that leaves room for a change and its window")
    rng = np.random.default_rng(seed)
    false: dict[str, list[tuple[int, int]]] = defaultdict(list)
    found: dict[tuple[str, str], list[float]] = defaultdict(list)
    delay: dict[tuple[str, str], list[float]] = defaultdict(list)
    variants = [(nz, p, q) for nz in NOISES for p, q in ((False, False), (True, False), (False, True))]
    for i in range(series * len(NOISES)):
        noise, patrol, quantise = variants[i % len(variants)]
        ser = background(rng, n, dt_s=dt, noise=noise, patrol=patrol, quantise=quantise)
        for name in names:
            f = DETECTORS[name](ser.t, ser.x)
            false[name].append((onsets(f[start:]), n - start))
        for kind in KINDS:
            at = int(rng.integers(start, n - window - 1))
            x = inject(rng, ser, kind, at)
            for name in names:
                f = DETECTORS[name](ser.t, x)
                hit = np.flatnonzero(f[at:at + (1 if kind == "spike" else window)])
                found[(name, kind)].append(float(hit.size > 0))
                if hit.size:
                    delay[(name, kind)].append(float(hit[0]))
    cond = {"series": series * len(NOISES), "values_per_series": n, "dt_s": dt,
            "probation_days": probation_days, "data": "generated (tests/signals.py)",
            "sizes_sigma": {**{kind: f"{lo:g}-{hi:g}" for kind, (lo, hi) in SIZES.items()},
                            "variance": f"x{VARIANCE_RATIO:g}", "daily_amplitude": "2-8", "shift_pattern": "1-6"}}
    out: list[dict[str, Any]] = []

    def fig(name: str, value: float | None, unit: str, **more: Any) -> None:
        out.append({"name": name, "value": value, "unit": unit, **more})

    for name in names:
        alarms = sum(a for a, _ in false[name])
        values = sum(v for _, v in false[name])
        fig("change_false_alarms_per_10k", round(alarms / values * 10_000, 3), "alarms/10k values", detector=name,
            alarms=alarms, values=values, **cond)
        all_found: list[float] = []
        all_delay: list[float] = []
        for kind in KINDS:
            all_found += found[(name, kind)]
            all_delay += delay[(name, kind)]
            fig("change_recall", round(statistics.mean(found[(name, kind)]), 3), "ratio", detector=name, kind=kind,
                window_values=window, **cond)
            fig("change_delay_samples", statistics.median(delay[(name, kind)]) if delay[(name, kind)] else None,
                "values", detector=name, kind=kind, stat="median")
        fig("change_recall", round(statistics.mean(all_found), 3), "ratio", detector=name, kind="all",
            window_values=window, **cond)
        fig("change_delay_samples", statistics.median(all_delay) if all_delay else None, "values", detector=name,
            kind="all", stat="median")
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_size_options(ap)
    ap.add_argument("--window", type=int, default=60, help="values after a change within which it counts as found")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--detectors", default=",".join(DETECTORS), help="comma-separated subset of " + ",".join(DETECTORS))
    args = ap.parse_args()
    names = [d.strip() for d in args.detectors.split(",") if d.strip()]
    try:
        out = figures(names, **size_options(args), window=args.window, seed=args.seed)
    except ValueError as e:
        ap.error(str(e))
    for f in out:
        print(json.dumps(f), flush=True)


if __name__ == "__main__":
    main()
