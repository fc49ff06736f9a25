"""Slow, obvious references for the envelope analysis of ``detectors.vibration``: plain loops
and NumPy's FFT, restating each rule without the fast paths (no baseband shift, no reduced
rate, no batching). Kept apart from ``tests/naive.py``."""

from __future__ import annotations

import math

import numpy as np


def analytic_band(x, rate_hz, lo_hz, hi_hz):
    """The analytic signal of ``x`` (mean removed) keeping only the bins from ``lo_hz`` to
    ``hi_hz``, at the full rate: the DFT with every other bin zeroed and the kept positive bins
    doubled, transformed back."""
    x = np.asarray(x, dtype=np.float64)
    n = len(x)
    df = rate_hz / n
    spec = np.fft.fft(x - x.mean())
    keep = np.zeros(n, dtype=np.complex128)
    for k in range(1, n // 2 + 1):
        if lo_hz - 1e-9 * df <= k * df <= hi_hz + 1e-9 * df:
            keep[k] = 2.0 * spec[k]
    return np.fft.ifft(keep)


def envelope_at(x, rate_hz, lo_hz, hi_hz, times):
    """|c(t)|² of the band's analytic signal at any instants: the band's DFT terms summed there."""
    x = np.asarray(x, dtype=np.float64)
    n = len(x)
    df = rate_hz / n
    spec = np.fft.fft(x - x.mean())
    ks = [k for k in range(1, n // 2 + 1) if lo_hz - 1e-9 * df <= k * df <= hi_hz + 1e-9 * df]
    out = []
    for t in times:
        c = sum(2.0 * spec[k] * np.exp(2j * np.pi * k * df * t) for k in ks) / n
        out.append(abs(c) ** 2)
    return out


def _sk(p2):
    m2 = sum(p2) / len(p2)
    m4 = sum(v * v for v in p2) / len(p2)
    return m4 / (m2 * m2) - 2.0 if m2 > 0 else -math.inf


def spectral_kurtosis(x, rate_hz, lo_hz, hi_hz, pieces=1):
    """mean |c|^4 / (mean |c|^2)^2 - 2 of the band's analytic signal ``c``: over the whole block
    at the full rate; with ``pieces`` > 1, the median of it over that many equal stretches, ``c``
    taken at ``m`` instants evenly over the block, ``m`` the power of two at least twice the
    band's bins."""
    if pieces == 1:
        return _sk([abs(v) ** 2 for v in analytic_band(x, rate_hz, lo_hz, hi_hz)])
    n = len(x)
    df = rate_hz / n
    bins = math.floor(hi_hz / df + 1e-9) - math.ceil(lo_hz / df - 1e-9) + 1
    m = 1
    while m < 2 * bins:
        m *= 2
    p2 = envelope_at(x, rate_hz, lo_hz, hi_hz, [j * n / rate_hz / m for j in range(m)])
    size = m // pieces
    return float(np.median([_sk(p2[i * size:(i + 1) * size]) for i in range(pieces)]))


def kurtogram(x, rate_hz, f_lo, min_width_hz, pieces=1):
    """Every band of the 1/3-binary kurtogram and its spectral kurtosis, as rows (low, high,
    kurtosis): widths half-rate/2^l and half-rate/(3·2^(l-1)) for l = 1, 2, ... while at least
    ``min_width_hz`` (and narrower than half the rate); each width in bins ``nb`` (rounded),
    bands starting at whole bins from the first at or above ``f_lo``, a third of a band apart,
    ending by the Nyquist bin."""
    n = len(x)
    df = rate_hz / n
    half = rate_hz / 2
    top = n // 2
    widths = set()
    level = 1
    while half / 2 ** level >= min_width_hz or half / (3 * 2 ** (level - 1)) >= min_width_hz:
        for w in (half / 2 ** level, half / (3 * 2 ** (level - 1))):
            if min_width_hz <= w < half:
                widths.add(w)
        level += 1
    rows = []
    for w in sorted(widths, reverse=True):
        nb = max(1, round(w / df))
        k = max(1, math.ceil(f_lo / df))
        while k + nb - 1 <= top:
            lo, hi = k * df, (k + nb - 1) * df
            rows.append((lo, hi, spectral_kurtosis(x, rate_hz, lo, hi, pieces)))
            k += max(1, nb // 3)
    return rows


def hann(m):
    """The Hann window of ``m`` points without its zero end points."""
    return [0.5 - 0.5 * math.cos(2 * math.pi * (i + 1) / (m + 1)) for i in range(m)]


def welch(y, rate_hz, seg):
    """One-sided Welch power spectrum (per bin) of ``y``: segments of ``seg`` samples (all of
    ``y`` if shorter) half overlapping, each with its mean removed and a Hann window, explicit
    DFT, averaged; scaled by 2 / (seg * sum of squared window). Returns (power, bin width)."""
    y = [float(v) for v in y]
    seg = min(seg, len(y))
    w = hann(seg)
    starts = range(0, len(y) - seg + 1, max(1, seg // 2))
    acc = [0.0] * (seg // 2 + 1)
    for s in starts:
        part = y[s:s + seg]
        mean = sum(part) / seg
        part = [(v - mean) * wi for v, wi in zip(part, w)]
        for k in range(seg // 2 + 1):
            re = sum(v * math.cos(2 * math.pi * k * j / seg) for j, v in enumerate(part))
            im = sum(v * math.sin(2 * math.pi * k * j / seg) for j, v in enumerate(part))
            acc[k] += re * re + im * im
    scale = 2.0 / (seg * sum(v * v for v in w)) / len(starts)
    return [a * scale for a in acc], rate_hz / seg
