"""Sensor series the simulator does not make, for the change detector's tests and bench.

:func:`background` draws a clean series: a daily cycle (two harmonics), the mine's shift
pattern (production 16-24 and 00-08, maintenance 08-16: domain.md §6) as a level change with
20-minute ramps and more noise in production, a trend, Gaussian, heavy-tailed (Student t, 3
degrees of freedom) or autocorrelated (AR(1)) noise, optional quantisation, jittered
(irregular) sampling and a patrol robot's visits (a few hours present, then hours away). Each
series has its own offset and scale (1e-3 to 1e3), so one threshold has to work for all.

:func:`inject` adds one change at a sample index: a persistent level ``shift``, a one-value
``spike``, a ``trend`` break (a new slope from there on) or a ``variance`` change (the noise
four times larger from there on), sized in standard deviations of the series' own noise where
the change starts (``SIZES``; a shift of 3 to 6 sigma, well clear of the noise, where the daily
cycle spans 4 to 16 units and the shift pattern 1 to 6).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["KINDS", "NOISES", "SIZES", "VARIANCE_RATIO", "Series", "background", "inject"]

S = 1_000_000_000
DAY_S = 86_400
T0 = 1_795_852_800 * S  # 2026-11-28 00:00 UTC
KINDS = ("shift", "spike", "trend", "variance")
NOISES = ("gauss", "t3", "ar1")
# injected sizes, in the noise's standard deviations where the change starts: a level shift, a
# one-value spike, a trend break's slope per value; a variance change makes the noise 4 times larger
SIZES = {"shift": (3.0, 6.0), "spike": (25.0, 40.0), "trend": (0.1, 0.2)}
VARIANCE_RATIO = 4.0


@dataclass
class Series:
    t: np.ndarray  # int64 ns, non-decreasing
    x: np.ndarray  # float64
    noise: np.ndarray  # the noise alone, before scaling (so changes can be sized by it)
    scale: float  # multiply noise units by this to get the series' units
    kind: str  # noise kind
    sd: np.ndarray  # the noise's standard deviation at each value, in noise units (1.3 in production)


def _shift_pattern(hour: np.ndarray) -> np.ndarray:
    """1 in production shifts, 0 in maintenance (08-16), with 20-minute ramps at 08 and 16."""
    ramp = 20.0 / 60.0
    up = np.clip((hour - 16.0) / ramp, 0.0, 1.0)  # 16:00 -> 16:20
    down = np.clip((hour - 8.0) / ramp, 0.0, 1.0)  # 08:00 -> 08:20
    return np.where(hour < 8.0, 1.0, np.where(hour < 16.0, 1.0 - down, up))


def background(rng: np.random.Generator, n: int, *, dt_s: float = 300.0, noise: str = "gauss",
               jitter: float = 0.3, patrol: bool = False, quantise: bool = False, daily: float | None = None,
               shifts: float | None = None, trend_per_day: float | None = None, noise_free: bool = False) -> Series:
    """A clean series of ``n`` values about ``dt_s`` apart (jittered by ``jitter`` of that)."""
    if noise not in NOISES:
        raise ValueError(f"noise must be one of {NOISES}")
    steps = dt_s * (1.0 + jitter * rng.uniform(-1.0, 1.0, n))
    if patrol:  # present for 2-6 h, away for 1-10 h
        k = 0
        while k < n:
            stay = int(rng.uniform(2, 6) * 3600 / dt_s)
            k += max(stay, 1)
            if k < n:
                steps[k] += rng.uniform(1, 10) * 3600
    t_s = np.cumsum(steps) + rng.uniform(0, DAY_S)
    hour = (t_s % DAY_S) / 3600.0
    ph = 2 * np.pi * hour / 24.0
    a1 = rng.uniform(2.0, 8.0) if daily is None else daily
    a2 = a1 * rng.uniform(0.1, 0.5)
    p1, p2 = rng.uniform(0, 2 * np.pi, 2)
    level = a1 * np.sin(ph + p1) + a2 * np.sin(2 * ph + p2)
    level += (rng.uniform(1.0, 6.0) if shifts is None else shifts) * _shift_pattern(hour)
    slope = rng.uniform(-2.0, 2.0) if trend_per_day is None else trend_per_day
    level += slope * (t_s - t_s[0]) / DAY_S
    if noise == "gauss":
        e = rng.normal(0.0, 1.0, n)
    elif noise == "t3":
        e = rng.standard_t(3, n) / np.sqrt(3.0)
    else:
        w = rng.normal(0.0, 1.0, n)
        e = np.empty(n)
        acc = 0.0
        for i in range(n):
            acc = 0.7 * acc + w[i]
            e[i] = acc
        e *= np.sqrt(1 - 0.49)
    sd = np.where(_shift_pattern(hour) > 0.5, 1.3, 1.0)  # production is noisier
    e = e * sd
    if noise_free:
        e = np.zeros(n)
    scale = float(10.0 ** rng.uniform(-3, 3))
    offset = float(rng.uniform(-5, 50)) * scale * 10
    x = offset + scale * (level + e)
    if quantise:
        x = np.round(x / (0.1 * scale)) * (0.1 * scale)
    t = (T0 + np.round(t_s * S)).astype(np.int64)
    return Series(t=t, x=x, noise=e, scale=scale, kind=noise, sd=sd)


def inject(rng: np.random.Generator, ser: Series, kind: str, at: int) -> np.ndarray:
    """``ser.x`` with one change of ``kind`` from index ``at`` on, sized in standard deviations of
    the noise where it starts (production's noise is 1.3 times maintenance's)."""
    x = ser.x.copy()
    sign = rng.choice([-1.0, 1.0])
    unit = ser.scale * float(ser.sd[at])
    if kind == "shift":
        x[at:] += sign * rng.uniform(*SIZES["shift"]) * unit
    elif kind == "spike":
        x[at] += sign * rng.uniform(*SIZES["spike"]) * unit
    elif kind == "trend":
        x[at:] += sign * rng.uniform(*SIZES["trend"]) * unit * np.arange(x.shape[0] - at)
    elif kind == "variance":
        x[at:] += (VARIANCE_RATIO - 1.0) * ser.scale * ser.noise[at:]
    else:
        raise ValueError(f"kind must be one of {KINDS}")
    return x
