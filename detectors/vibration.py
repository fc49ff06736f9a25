"""Vibration features and diagnosis from waveform blocks (acceleration, m/s²), at any sample rate.

For each block:

* **RMS velocity** over the ISO 10816-3 band (10-1000 Hz, 2-1000 Hz below 600 rpm; domain §4):
  the acceleration spectrum divided by ``2 pi f`` (integration), Parseval over the band, in
  mm/s; the **zone** (A-D) from the machine's group and support (catalogue ``ISO_10816_3``);
* **kurtosis** (3 for Gaussian, higher when impulsive) and **crest factor** of the acceleration;
* **shaft speed**: with ``rpm_tolerance`` > 0 the given speed is taken as approximate and the
  shaft rate is found in the spectrum (the strongest 1x-2x-3x comb within the tolerance), and the
  fault frequencies follow it;
* **envelope spectrum**: a fast kurtogram (:func:`kurtogram`: bands of width half-rate/2^l and
  half-rate/(3·2^(l-1)), a third of a band apart, at least :data:`MIN_BAND_FAULTS` times the
  highest fault frequency wide, above the shaft lines) ranks the bands by how impulsive their
  complex envelope is (spectral kurtosis, the median over stretches of the block so that a lone
  knock does not count); the :data:`CANDIDATES` most impulsive bands of each width are
  demodulated (analytic signal, shifted to baseband at a reduced rate) and the squared
  envelope's spectrum averaged over segments (Welch, Hann, half overlap) whose length gives
  :data:`RESOLUTION_STEPS` bins across the closest pair of the bearing's lines (FTF, shaft rate,
  the gaps between BPFO, BPFI and 2x BSF), so the resolution follows the rate and the fault
  frequencies, not the block length; the band whose envelope spectrum shows the clearest fault
  line is kept. Each envelope spectrum is first divided by the shape band noise alone gives it
  (``1 - f / width``, cut short of the band's width). The peaks at the fault frequencies (BPFO,
  BPFI, and 2x BSF, since a ball defect strikes both races; harmonics 1-3, ±1.5 % for slip or 2
  bins) are compared with the spectrum's local median level around each: the **energy** (share
  of the envelope spectrum's power) and the **SNR** in dB of each, less the **search
  allowance** (:func:`search_allowance_db`: how much higher noise alone reaches when the best of
  several bands is kept, for the segments averaged). A block too short to put the closest two
  fault lines :data:`LINE_GAP_BINS` bins apart is not searched (SNR 0) and the evidence says so;
* **diagnosis**: a bearing fault (outer race, inner race, ball) when the best fault SNR is at
  least :data:`BEARING_SNR_DB`; else imbalance when the 1x shaft line carries at least
  :data:`IMBALANCE_SHARE` of the band's velocity power and the RMS is past the A/B boundary;
  else healthy. With it a **confidence** (0-1) and the **evidence**: the demodulation band and
  its kurtosis, the envelope resolution, the shaft speed used, and for the named fault the
  envelope peak's frequency and amplitude over the floor, the harmonics found, and the
  modulation sidebands (shaft rate around BPFI, cage rate around 2x BSF). [P] thresholds, checked
  on generated defects in the tests and ``bench/bearing.py``.

The time-domain statistics and the spectral sums are Numba kernels over a batch of blocks; the
FFTs are NumPy's (Numba has none).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from itertools import pairwise
from typing import TypedDict

import numpy as np

from minewatch.catalogue import ISO_10816_3, Bearing

from detectors._jit import Arr, jit

__all__ = ["VibrationFeatures", "Evidence", "analyse", "analyse_blocks", "block_stats", "zone_of", "DIAGNOSES", "kurtogram",
           "complex_envelope", "envelope_spectrum", "shaft_rate", "low_spectrum"]

BEARING_SNR_DB = 14.0
IMBALANCE_SHARE = 0.4
HARMONICS = 3
DIAGNOSES = ("healthy", "imbalance", "outer race", "inner race", "ball")
SLIP = 0.015  # relative tolerance of a fault line: rolling elements slip 1-2 %
MIN_BAND_FAULTS = 3.5  # a demodulation band is at least this many highest fault frequencies wide
RESOLUTION_STEPS = 10.0  # envelope bins across the closest pair of bearing lines
HARMONIC_FOUND_DB = 6.0  # a harmonic or sideband counts as found this far above its floor
SHAFT_FOUND_DB = 10.0  # the shaft comb must stand this far above its floor to move the speed
WHITEN_CUT = 0.05  # the envelope spectrum is used up to this share under the band's width
LINE_GAP_BINS = 2.0  # the closest two fault lines (BPFO, BPFI, 2x BSF) are at least this many block bins apart
FALSE_ALARM = 1e-3  # chance per block of a noise bin passing the level the search allowance is set at
LINE_BINS = 5 * HARMONICS  # envelope bins searched for one fault's lines (2 bins each side of each harmonic)
CANDIDATES = 3  # bands of each kurtogram width whose envelope spectrum is examined


@jit
def block_stats(x: Arr, offsets: Arr, out: Arr) -> None:
    """Per block ``b`` (samples ``x[offsets[b]:offsets[b+1]]``), mean removed: ``out[b]`` =
    (rms, kurtosis, crest factor). Non-finite samples are skipped; an empty block gives NaN."""
    for b in range(offsets.shape[0] - 1):
        lo, hi = offsets[b], offsets[b + 1]
        n = 0
        s = 0.0
        for i in range(lo, hi):
            if np.isfinite(x[i]):
                n += 1
                s += x[i]
        if n == 0:
            out[b, 0] = np.nan
            out[b, 1] = np.nan
            out[b, 2] = np.nan
            continue
        mean = s / n
        m2 = 0.0
        m4 = 0.0
        peak = 0.0
        for i in range(lo, hi):
            v = x[i]
            if np.isfinite(v):
                d = v - mean
                d2 = d * d
                m2 += d2
                m4 += d2 * d2
                if abs(d) > peak:
                    peak = abs(d)
        m2 /= n
        m4 /= n
        rms = math.sqrt(m2)
        out[b, 0] = rms
        out[b, 1] = m4 / (m2 * m2) if m2 > 0.0 else np.nan
        out[b, 2] = peak / rms if rms > 0.0 else np.nan


@jit
def band_velocity_power(power: Arr, df: Arr, lo: Arr, hi: Arr) -> Arr:
    """Per block row of a one-sided acceleration power spectrum ``power[b, k]`` (bin width
    ``df[b]``), the velocity power summed over ``lo[b] <= f <= hi[b]``."""
    out = np.zeros(power.shape[0])
    for b in range(power.shape[0]):
        for k in range(1, power.shape[1]):
            f = k * df[b]
            if f >= lo[b] and f <= hi[b]:
                w = 2.0 * math.pi * f
                out[b] += power[b, k] / (w * w)
    return out


@jit
def peak_energy(power: Arr, df: float, f0: float, harmonics: int, tol: float) -> tuple[float, float]:
    """Energy at ``f0`` and its harmonics in a one-sided power spectrum: per harmonic the
    largest bin within ``tol`` (relative, at least 2 bins), and the local floor: the median of
    the bins within 10 % (at least 20 bins) around it. Returns (energy, floor), both summed
    over the harmonics."""
    n = power.shape[0]
    energy = 0.0
    floor = 0.0
    for h in range(1, harmonics + 1):
        fc = f0 * h
        half = max(2.0 * df, tol * fc)
        k0 = max(1, int(math.floor((fc - half) / df)))
        k1 = min(n - 1, int(math.ceil((fc + half) / df)))
        if k0 > k1:
            continue
        best = 0.0
        for k in range(k0, k1 + 1):
            if power[k] > best:
                best = power[k]
        energy += best
        wide = max(20.0 * df, 0.1 * fc)
        w0 = max(1, int(math.floor((fc - wide) / df)))
        w1 = min(n - 1, int(math.ceil((fc + wide) / df)))
        floor += np.median(power[w0:w1 + 1])
    return energy, floor


class SidebandLine(TypedDict):
    hz: float
    over_floor_db: float


class Sidebands(TypedDict):
    """Modulation sidebands around a fault's envelope peak."""

    rate: str  # "shaft" (around BPFI) or "cage" (around 2x BSF)
    spacing_hz: float
    lines: list[SidebandLine]
    found: int  # how many stand :data:`HARMONIC_FOUND_DB` over their floor


class Evidence(TypedDict, total=False):
    """What a block's diagnosis rests on; the keys present depend on how far the analysis got."""

    rpm_given: float
    rpm_used: float
    shaft_line_db: float
    band_hz: list[float] | None  # the demodulation band kept, None when no band was searched
    note: str  # why no band was searched
    band_kurtosis: float
    envelope_df_hz: float
    segments: int
    search_allowance_db: float
    fault: str  # "bpfo", "bpfi" or "bsf", for a bearing fault
    peak_hz: float
    peak_amplitude: float
    peak_over_floor_db: float
    harmonics: list[int]
    sidebands: Sidebands


@dataclass
class VibrationFeatures:
    rms_mm_s: float
    zone: str
    kurtosis: float
    crest: float
    bpfo: float
    bpfi: float
    bsf: float
    bpfo_snr_db: float
    bpfi_snr_db: float
    bsf_snr_db: float
    one_x_share: float
    diagnosis: str
    fault_hz: dict[str, float]
    rate_hz: float
    rpm: float
    samples: int
    confidence: float = math.nan
    evidence: Evidence = field(default_factory=Evidence)

    def as_dict(self) -> dict[str, object]:
        return asdict(self)


def zone_of(rms_mm_s: float, limits: tuple[float, float, float]) -> str:
    """ISO 10816-3 zone for an RMS velocity and the (A/B, B/C, C/D) boundaries."""
    if not math.isfinite(rms_mm_s):
        return "?"
    ab, bc, cd = limits
    return "A" if rms_mm_s < ab else "B" if rms_mm_s < bc else "C" if rms_mm_s < cd else "D"


def _next_pow2(k: int) -> int:
    return 1 << max(0, int(math.ceil(math.log2(max(1, k)))))


def kurtogram(spec: np.ndarray, n: int, rate_hz: float, f_lo: float, min_width_hz: float, pieces: int = 1) -> np.ndarray:
    """Spectral kurtosis of the bands of a fast kurtogram, from a block's one-sided spectrum
    ``spec`` (``np.fft.rfft`` of ``n`` samples at ``rate_hz``).

    Levels of bands of width ``rate/2 / 2^l`` and ``rate/2 / (3 * 2^(l-1))`` (the 1/3-binary
    tree), each level's bands overlapping by half, none starting below ``f_lo`` nor narrower
    than ``min_width_hz``. A band's spectral kurtosis is that of its complex envelope ``c``:
    ``mean |c|^4 / mean(|c|^2)^2 - 2`` (0 for Gaussian noise, -1 for a tone, large for impacts),
    ``c`` sampled at the reduced rate of :func:`complex_envelope`; with ``pieces`` > 1 (a power
    of two) the median of that over as many equal stretches of the block, so that one lone
    knock or noise spike does not make a band look impulsive while a defect's repeating impacts
    still do. Returns rows (low Hz, high Hz, kurtosis), empty when no band fits."""
    if pieces < 1 or pieces & (pieces - 1):
        raise ValueError(f"pieces must be a power of two, got {pieces}")
    df = rate_hz / n
    top = spec.shape[0] - 1
    rows = []
    half = 0.5 * rate_hz
    widths = []
    level = 1
    while True:
        added = False
        for div in (2.0 ** level, 3.0 * 2.0 ** (level - 1)):
            w = half / div
            if w >= min_width_hz and w < half:
                widths.append(w)
                added = True
        if not added and half / 2.0 ** level < min_width_hz:
            break
        level += 1
    for w in sorted(set(widths), reverse=True):
        nb = max(1, int(round(w / df)))  # bins per band
        step = max(1, nb // 3)
        k_first = max(1, int(math.ceil(f_lo / df)))
        starts = np.arange(k_first, top - nb + 2, step)
        if starts.size == 0:
            continue
        m = _next_pow2(2 * nb)
        # every band of the level at once: gather its bins at baseband, inverse-transform short
        idx = starts[:, None] + np.arange(nb)[None, :]
        base = np.zeros((starts.size, m), dtype=np.complex128)
        base[:, :nb] = spec[idx]
        p = np.abs(np.fft.ifft(base, axis=1)) ** 2
        p = p.reshape(starts.size, min(pieces, m), -1)
        m2 = p.mean(axis=2)
        m4 = (p * p).mean(axis=2)
        sk = np.median(np.where(m2 > 0, m4 / np.where(m2 > 0, m2 * m2, 1.0) - 2.0, -np.inf), axis=1)
        rows.append(np.column_stack([starts * df, (starts + nb - 1) * df, sk]))
    return np.concatenate(rows) if rows else np.zeros((0, 3))


def complex_envelope(spec: np.ndarray, n: int, rate_hz: float, lo_hz: float, hi_hz: float) -> tuple[np.ndarray, float]:
    """The analytic signal of ``x`` band-limited to ``lo_hz..hi_hz``, shifted to baseband and
    sampled at a reduced rate (a power of two, at least twice the band's bins, per block), from
    ``spec = np.fft.rfft(x)``: ``(c, rate of c)``. ``|c|`` is the band's envelope (m/s²), the
    same as ``|hilbert(bandpass(x))|`` at those instants."""
    df = rate_hz / n
    k0 = max(1, int(math.ceil(lo_hz / df - 1e-9)))
    k1 = min(spec.shape[0] - 1, int(math.floor(hi_hz / df + 1e-9)))
    width = k1 - k0 + 1
    if width < 1:
        raise ValueError(f"no spectral bin between {lo_hz:g} and {hi_hz:g} Hz")
    m = _next_pow2(2 * width)
    base = np.zeros(m, dtype=np.complex128)
    base[:width] = spec[k0:k1 + 1]
    return np.fft.ifft(base) * (2.0 * m / n), m / (n / rate_hz)


def envelope_spectrum(env2: np.ndarray, rate_hz: float, seg: int) -> tuple[np.ndarray, float]:
    """Welch power spectrum of a squared envelope (mean removed per segment, Hann window, half
    overlap, segments of ``seg`` samples, the whole signal if shorter): one-sided, in
    (m/s²)⁴ per bin, and its bin width in Hz."""
    n = env2.shape[0]
    seg = min(seg, n)
    step = max(1, seg // 2)
    count = 1 + (n - seg) // step
    win = np.hanning(seg + 2)[1:-1]  # periodic-like, never zero at the ends
    frames = np.lib.stride_tricks.sliding_window_view(env2, seg)[::step][:count]
    frames = frames - frames.mean(axis=1, keepdims=True)
    p = np.abs(np.fft.rfft(frames * win, axis=1)) ** 2
    p = p.mean(axis=0) * (2.0 / (seg * float(np.dot(win, win))))
    return p, rate_hz / seg


def shaft_rate(power: np.ndarray, df: float, fr0: float, tolerance: float) -> tuple[float, float]:
    """The shaft rate within ``fr0 * (1 ± tolerance)`` whose 1x, 2x and 3x lines together stand
    highest above their floors in a power spectrum (bin width ``df``), and how far (dB, the
    strongest of the three) — or ``(fr0, 0)`` when no line is found."""
    n = power.shape[0]
    if tolerance <= 0 or fr0 <= 0:
        return fr0, 0.0
    grid = np.arange(fr0 * (1 - tolerance), fr0 * (1 + tolerance) + df / 12, df / 12)
    score = np.zeros(grid.size)
    best_db = np.full(grid.size, -np.inf)
    for h in (1, 2, 3):
        lo = int(math.floor(h * fr0 * (1 - tolerance) * 0.9 / df))
        hi = int(math.ceil(h * fr0 * (1 + tolerance) * 1.1 / df))
        if hi >= n - 1 or lo < 1:
            continue
        floor = float(np.median(power[lo:hi + 1])) or 1e-300
        # the largest bin within half a bin of h·f
        pos = grid * h / df
        val = np.maximum(power[np.floor(pos).astype(np.int64)], power[np.ceil(pos).astype(np.int64)])
        db = 10.0 * np.log10(np.maximum(val, 1e-300) / floor)
        score += np.maximum(db, 0.0)
        best_db = np.maximum(best_db, db)
    i = int(np.argmax(score))
    if not np.isfinite(best_db[i]) or best_db[i] < SHAFT_FOUND_DB:
        return fr0, float(max(best_db[i], 0.0)) if np.isfinite(best_db[i]) else 0.0
    # refine on the harmonic standing highest above its floor: parabolic peak interpolation
    f = float(grid[i])
    best: tuple[float, float] | None = None  # (snr, rate) of the harmonic standing highest
    for h in (1, 2, 3):
        k = int(round(h * f / df))
        if 1 <= k < n - 1:
            lo = int(math.floor(h * fr0 * (1 - tolerance) * 0.9 / df))
            hi = int(math.ceil(h * fr0 * (1 + tolerance) * 1.1 / df))
            floor = float(np.median(power[max(1, lo):min(n, hi + 1)])) or 1e-300
            a, b, c = (float(v) for v in np.log(np.maximum(power[k - 1:k + 2], 1e-300)))
            d = a - 2 * b + c
            off = 0.5 * (a - c) / d if d < 0 else 0.0
            est = (k + max(-0.5, min(0.5, off))) * df / h
            snr = float(power[k]) / floor * h  # a higher harmonic divides the error by its order
            if best is None or snr > best[0]:
                best = (snr, est)
    return (best[1] if best else f), float(best_db[i])


def low_spectrum(spec: np.ndarray, n: int, rate_hz: float, f_max: float, pad: int = 8) -> tuple[np.ndarray, float]:
    """Power spectrum below ``f_max`` of a block (``spec = np.fft.rfft(x)``), Hann-windowed and
    interpolated ``pad`` times finer than ``rate/n`` (the block low-passed, resampled short,
    zero-padded): for locating lines to a fraction of a bin. Returns (power, bin width)."""
    df = rate_hz / n
    k = min(spec.shape[0], int(math.ceil(f_max / df)) + 2)
    m = _next_pow2(2 * k)
    y = np.fft.irfft(spec[:k], m)
    p = np.abs(np.fft.rfft(y * np.hanning(m), pad * m)) ** 2
    return p, df / pad


def _fault_hz(bearing: Bearing, rpm: float) -> dict[str, float]:
    fr = rpm / 60.0
    o = bearing.orders()
    return {"bpfo": fr * o["bpfo"], "bpfi": fr * o["bpfi"], "bsf": 2.0 * fr * o["bsf"]}


def resolution_hz(bearing: Bearing, rpm: float) -> float:
    """Envelope-spectrum bin width that puts :data:`RESOLUTION_STEPS` bins across the closest
    pair of the bearing's lines at ``rpm`` (FTF, the shaft rate, the gaps between the first
    harmonics of BPFO, BPFI and 2x BSF)."""
    fr = rpm / 60.0
    o = bearing.orders()
    lines = sorted([fr * o["bpfo"], fr * o["bpfi"], 2 * fr * o["bsf"]])
    gaps = [fr * o["ftf"], fr] + [b - a for a, b in pairwise(lines) if b - a > 0]
    return min(gaps) / RESOLUTION_STEPS


def _whiten(power: np.ndarray, df: float, width_hz: float) -> np.ndarray:
    """An envelope spectrum divided by the shape noise alone gives it, and cut where that shape
    ends. The squared envelope of a band of white noise ``width_hz`` wide has a spectrum falling
    as ``1 - f / width`` to nothing at the band's width: a floor taken as the median around a
    line would otherwise sit under the level at a low fault line (the slope) and far under it
    next to the empty bins past the width (a slow shaft's lines, a few Hz, in a narrow band)."""
    f = np.arange(power.shape[0]) * df
    keep = f <= (1.0 - WHITEN_CUT) * width_hz
    out: np.ndarray = power[keep] / (1.0 - f[keep] / width_hz)
    return out


def _chance_level(segments: int, p: float) -> float:
    """The level, over its mean, that a bin of a Welch spectrum of noise averaging ``segments``
    segments passes with probability ``p``: ``P(G / K > x) = p`` for ``G`` a Gamma(K) variate
    (``exp(-Kx) sum_j<K (Kx)^j / j!``), by bisection (half overlap taken as independent)."""
    k = max(1, segments)

    def tail(x: float) -> float:
        y = k * x
        term, total = 1.0, 1.0
        for j in range(1, k):
            term *= y / j
            total += term
        return math.exp(-y) * total

    lo, hi = 0.0, 1.0
    while tail(hi) > p:
        hi *= 2.0
    for _ in range(60):
        mid = 0.5 * (lo + hi)
        lo, hi = (mid, hi) if tail(mid) > p else (lo, mid)
    return hi


def search_allowance_db(segments: int, bands: int) -> float:
    """How much higher (dB) noise alone reaches when the fault lines are sought in the envelope
    spectra of ``bands`` bands and the best kept, than in one band's: the level a noise bin
    passes with probability :data:`FALSE_ALARM` over all the bins searched, over that level for
    one band's :data:`LINE_BINS`. The fault SNR of a block is its best band's less this, so
    that a slow machine (many narrow bands fit under its low fault lines) or a short block (one
    segment, no averaging) meets the same :data:`BEARING_SNR_DB` at the same false-alarm rate
    as any other."""
    if bands <= 1:
        return 0.0
    one = _chance_level(segments, FALSE_ALARM / LINE_BINS)
    return _db(_chance_level(segments, FALSE_ALARM / (LINE_BINS * bands)), one)


def _line(power: np.ndarray, df: float, fc: float, tol: float) -> tuple[float, float, float]:
    """(frequency, power, floor) of the largest bin within ``tol`` (relative, at least 2 bins)
    of ``fc``; the floor as :func:`peak_energy` takes it."""
    n = power.shape[0]
    half = max(2.0 * df, tol * fc)
    k0 = max(1, int(math.floor((fc - half) / df)))
    k1 = min(n - 1, int(math.ceil((fc + half) / df)))
    if k0 > k1:
        return fc, 0.0, 0.0
    k = k0 + int(np.argmax(power[k0:k1 + 1]))
    _, floor = peak_energy(power, df, k * df, 1, 0.0)
    return k * df, float(power[k]), float(floor)


def _db(a: float, b: float) -> float:
    return 10.0 * math.log10(a / b) if a > 0 and b > 0 else 0.0


def _evidence(env_pow: np.ndarray, env_df: float, name: str, f0: float, fr: float, ftf: float,
              tol: float) -> Evidence:
    """Envelope peak, harmonics and modulation sidebands of one fault line."""
    f1, p1, fl1 = _line(env_pow, env_df, f0, tol)
    found = []
    for h in range(1, HARMONICS + 1):
        _, ph, flh = _line(env_pow, env_df, f0 * h, tol)
        if _db(ph, flh) >= HARMONIC_FOUND_DB:
            found.append(h)
    ev: Evidence = {"peak_hz": f1, "peak_amplitude": math.sqrt(max(p1, 0.0)),
                    "peak_over_floor_db": _db(p1, fl1), "harmonics": found}
    mod = {"bpfi": ("shaft", fr), "bsf": ("cage", ftf)}.get(name)
    if mod is not None and mod[1] > 2 * env_df:
        side: list[SidebandLine] = []
        for sign in (-1, 1):
            fs, ps, fls = _line(env_pow, env_df, f1 + sign * mod[1], 0.0)
            side.append({"hz": fs, "over_floor_db": _db(ps, fls)})
        ev["sidebands"] = {"rate": mod[0], "spacing_hz": mod[1], "lines": side,
                           "found": sum(s["over_floor_db"] >= HARMONIC_FOUND_DB for s in side)}
    return ev


def _candidates(bands: np.ndarray, per_width: int = CANDIDATES) -> list[tuple[float, float, float]]:
    """The kurtogram's ``per_width`` most impulsive bands of each width that do not overlap
    one another, most impulsive first. The envelope spectrum of each is examined and the one
    with the clearest fault line kept: heavy-tailed noise or a lone large impact can make a band
    the most impulsive without any periodic content, and a machine's resonance is not always the
    single most impulsive band."""
    out = []
    widths = bands[:, 1] - bands[:, 0]
    for w in np.unique(np.round(widths, 6)):
        rows = bands[np.abs(widths - w) < 1e-6 * max(1.0, w)]
        taken: list[np.ndarray] = []
        for r in rows[np.argsort(-rows[:, 2])]:
            if all(r[1] < t[0] or r[0] > t[1] for t in taken):
                taken.append(r)
                if len(taken) == per_width:
                    break
        out += [(float(r[0]), float(r[1]), float(r[2])) for r in taken]
    return sorted(out, key=lambda r: -r[2])


def _confidence(snrs: dict[str, float], diagnosis: str) -> float:
    """How sure the diagnosis is, 0-1 [P]: for a fault, how far its SNR clears the threshold
    (logistic, 3 dB a step) times how far it clears the next fault; for no fault, how far the
    best fault SNR stays below the threshold."""
    ranked = sorted(snrs.values(), reverse=True)
    over = 1.0 / (1.0 + math.exp(-(ranked[0] - BEARING_SNR_DB) / 3.0))
    if diagnosis in ("outer race", "inner race", "ball"):
        apart = 1.0 - 10.0 ** (-(ranked[0] - ranked[1]) / 10.0) if len(ranked) > 1 else 1.0
        return float(over * apart)
    return float(1.0 - over)


def analyse_blocks(blocks: Sequence[np.ndarray], rates: Sequence[float], rpms: Sequence[float], bearings: Sequence[Bearing],
                   groups: Sequence[tuple[int, str]], *, rpm_tolerance: float = 0.0) -> list[VibrationFeatures]:
    """Features of many blocks; ``groups`` gives each block's ISO 10816-3 (group, support).
    ``rpm_tolerance`` (relative, e.g. 0.1) takes each given speed as approximate and finds the
    shaft rate in the spectrum within it; 0 trusts the given speed."""
    if not blocks:
        return []
    if not 0.0 <= rpm_tolerance < 0.5:
        raise ValueError(f"rpm tolerance must be in [0, 0.5), got {rpm_tolerance}")
    lens = np.array([len(b) for b in blocks], dtype=np.int64)
    offsets = np.zeros(len(blocks) + 1, dtype=np.int64)
    offsets[1:] = np.cumsum(lens)
    flat = np.concatenate([np.asarray(b, dtype=np.float64) for b in blocks])
    stats = np.empty((len(blocks), 3))
    block_stats(flat, offsets, stats)
    out = []
    for i, raw in enumerate(blocks):
        x = np.asarray(raw, dtype=np.float64)
        x = np.where(np.isfinite(x), x, 0.0)
        x = x - x.mean() if x.size else x
        rate, rpm_given = float(rates[i]), float(rpms[i])
        n = x.shape[0]
        if n < 16:
            raise ValueError(f"a vibration block needs at least 16 samples, got {n}")
        spec = np.fft.rfft(x)
        power = np.abs(spec) ** 2 * (2.0 / (n * n))  # one-sided, sums to the mean square
        power[0] /= 2.0
        df = rate / n
        fr, shaft_db = rpm_given / 60.0, 0.0
        if rpm_tolerance > 0:
            fine, fine_df = low_spectrum(spec, n, rate, 3.5 * fr * (1 + rpm_tolerance))
            fr, shaft_db = shaft_rate(fine, fine_df, fr, rpm_tolerance)
        rpm = fr * 60.0
        lo = 2.0 if rpm < 600 else 10.0
        hi = min(1000.0, 0.5 * rate)
        vpow = band_velocity_power(power[None, :], np.array([df]), np.array([lo]), np.array([hi]))[0]
        rms = math.sqrt(vpow) * 1e3
        one_x = 0.0
        if fr > 0 and vpow > 0:
            e1, _ = peak_energy(power / (2 * math.pi * np.maximum(np.arange(power.shape[0]) * df, df)) ** 2, df, fr, 1, 0.02)
            one_x = min(1.0, e1 / vpow)
        bearing = bearings[i]
        fault_hz = _fault_hz(bearing, rpm)
        top = max(fault_hz.values())
        # the residual speed uncertainty widens the fault lines' tolerance when no shaft line was found
        tol = SLIP if rpm_tolerance == 0 or shaft_db >= SHAFT_FOUND_DB else max(SLIP, rpm_tolerance)
        f_lo = max(3.0 * top, min(500.0, 0.1 * rate))
        # stretches of the block for the kurtosis: each holding at least eight impacts of the slowest fault
        pieces = 1 << max(0, min(3, int(math.log2(max(1.0, n / rate * min(fault_hz.values()) / 8.0)))))
        evidence: Evidence = {"rpm_given": rpm_given, "rpm_used": rpm, "shaft_line_db": shaft_db}
        gap = min(b - a for a, b in pairwise(sorted(fault_hz.values())))
        if n / rate * gap < LINE_GAP_BINS:
            # a block too short for the fault lines to fall in bins of their own: one line could not
            # be told from another, and the search around each would take in its neighbours' bins
            bands = np.zeros((0, 3))
            evidence.update({"band_hz": None, "note": f"a {n / rate:g} s block is too short to tell the bearing's "
                                                      f"fault lines apart ({gap:.2f} Hz apart at {rpm:.0f} rpm; "
                                                      f"needs {LINE_GAP_BINS / gap:.2f} s or more)"})
        else:
            bands = kurtogram(spec, n, rate, f_lo, MIN_BAND_FAULTS * top, pieces)
        energies = {k: 0.0 for k in fault_hz}
        snrs = {k: 0.0 for k in fault_hz}
        env_pow, env_df, segments = np.zeros(2), 1.0, 1
        seg_hz = resolution_hz(bearing, rpm)
        if not bands.shape[0] and "note" not in evidence:
            evidence.update({"band_hz": None, "note": f"no envelope band: {rate:g} Hz is too low a rate for "
                                                      f"fault lines up to {top:.0f} Hz (needs about {14 * top:.0f} Hz)"})
        tried = _candidates(bands)
        for band_lo, band_hi, sk in tried:
            c, c_rate = complex_envelope(spec, n, rate, band_lo, band_hi)
            seg = _next_pow2(int(math.ceil(c_rate / seg_hz)))
            pw, pw_df = envelope_spectrum(np.abs(c) ** 2, c_rate, seg)
            pw = _whiten(pw, pw_df, band_hi - band_lo)
            cand = {k: 0.0 for k in fault_hz}
            en = dict(cand)
            total = float(pw[1:].sum()) or 1.0
            for name, f0 in fault_hz.items():
                if f0 <= 0 or f0 * HARMONICS >= pw_df * (pw.shape[0] - 1):
                    continue
                e, floor = peak_energy(pw, pw_df, f0, HARMONICS, tol)
                en[name] = float(e) / total
                cand[name] = _db(e, floor)
            if evidence.get("band_hz") is None or max(cand.values()) > max(snrs.values()):
                snrs, energies, env_pow, env_df = cand, en, pw, pw_df
                seg = min(seg, c.shape[0])
                segments = 1 + (c.shape[0] - seg) // max(1, seg // 2)
                evidence.update({"band_hz": [band_lo, band_hi], "band_kurtosis": sk, "envelope_df_hz": pw_df,
                                 "segments": segments})
        if tried:
            allowance = search_allowance_db(segments, len(tried))
            evidence["search_allowance_db"] = allowance
            snrs = {k: max(0.0, v - allowance) for k, v in snrs.items()}
        zone = zone_of(rms, ISO_10816_3[groups[i]])
        best = max(snrs, key=lambda k: snrs[k])
        if snrs[best] >= BEARING_SNR_DB:
            diagnosis = {"bpfo": "outer race", "bpfi": "inner race", "bsf": "ball"}[best]
            evidence["fault"] = best
            evidence.update(_evidence(env_pow, env_df, best, fault_hz[best], fr, fr * bearing.orders()["ftf"], tol))
        elif one_x >= IMBALANCE_SHARE and zone != "A":
            diagnosis = "imbalance"
        else:
            diagnosis = "healthy"
        out.append(VibrationFeatures(
            rms_mm_s=rms, zone=zone, kurtosis=float(stats[i, 1]), crest=float(stats[i, 2]),
            bpfo=energies["bpfo"], bpfi=energies["bpfi"], bsf=energies["bsf"], bpfo_snr_db=snrs["bpfo"],
            bpfi_snr_db=snrs["bpfi"], bsf_snr_db=snrs["bsf"], one_x_share=one_x, diagnosis=diagnosis,
            fault_hz=fault_hz, rate_hz=rate, rpm=rpm, samples=n, confidence=_confidence(snrs, diagnosis),
            evidence=evidence))
    return out


def analyse(x: np.ndarray, rate_hz: float, rpm: float, bearing: Bearing, group: int = 2,
            support: str = "rigid", *, rpm_tolerance: float = 0.0) -> VibrationFeatures:
    """Features and diagnosis of one block."""
    if (group, support) not in ISO_10816_3:
        raise ValueError(f"ISO 10816-3 group must be 1 or 2 and support rigid or flexible, got {group}, {support!r}")
    if rate_hz <= 0 or rpm <= 0:
        raise ValueError("rate and rpm must be positive")
    return analyse_blocks([x], [rate_hz], [rpm], [bearing], [(group, support)], rpm_tolerance=rpm_tolerance)[0]
