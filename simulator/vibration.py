"""Vibration waveforms of rotating machines: shaft harmonics, noise, imbalance, bearing defects.

A healthy machine's acceleration is the sum of its shaft harmonics (1x, 2x, 3x) and broadband
noise, scaled so that the broadband velocity RMS in the ISO 10816-3 band (10-1000 Hz, 2-1000 Hz
below 600 rpm, domain §4) sits in zone A at about 45 % of the A/B boundary of the machine's
group. Imbalance raises 1x.

A rolling-bearing defect is a train of impacts at its fault frequency (domain §4 kinematics,
:meth:`minewatch.catalogue.Bearing.orders`), each ringing a structural resonance (a damped
sinusoid, 2.8 kHz or 30 % of the sample rate if lower [U]). Impact spacing jitters by 1 %
(rolling elements slip). As real defects do:

* outer race (BPFO): fixed in the load zone, impacts of even strength;
* inner race (BPFI): the defect turns with the shaft through the load zone, so the impacts are
  amplitude-modulated at the shaft rate (sidebands at BPFI ± 1x);
* ball (BSF, seen at 2x BSF as the defect strikes both races): modulated at the cage rate (FTF).

The envelope spectrum of such a block therefore peaks at the fault frequency.
"""

from __future__ import annotations

import base64
import math
from dataclasses import dataclass

import numpy as np

from minewatch.catalogue import Machine
from minewatch.wire import WaveBlock

__all__ = ["Health", "fault_frequency_hz", "synthesize", "encode_block", "velocity_rms_mm_s", "imbalance_for",
           "iso_zone"]

DEFECT_ORDER = {"outer": "bpfo", "inner": "bpfi", "ball": "bsf"}


@dataclass
class Health:
    """A machine's condition during one block."""

    imbalance: float = 0.0  # extra 1x, as a multiple of the healthy 1x amplitude
    defect: str | None = None  # outer | inner | ball
    impact: float = 0.0  # peak acceleration of one impact's ringing, m/s²


def fault_frequency_hz(machine: Machine, defect: str, rpm: float | None = None) -> float:
    """The frequency the defect's impacts repeat at (the envelope-spectrum peak)."""
    fr = (rpm if rpm is not None else machine.rpm) / 60.0
    order = machine.bearing.orders()[DEFECT_ORDER[defect]]
    return fr * order * (2.0 if defect == "ball" else 1.0)


HARMONICS = ((1, 0.8), (2, 0.5), (3, 0.3))  # shaft order, share of the harmonic velocity
BROADBAND = 0.45  # share of the healthy velocity RMS that is broadband


def _levels(machine: Machine) -> tuple[float, float]:
    """Healthy in-band velocity RMS target (m/s) and the harmonics' peak velocity scale."""
    v_target = 0.45 * machine.zone_limits[0] * 1e-3  # 45 % of the A/B boundary: zone A
    return v_target, v_target * math.sqrt(1.0 - BROADBAND ** 2) * math.sqrt(2.0)


def velocity_rms_mm_s(machine: Machine, health: Health) -> float:
    """In-band (ISO 10816-3) velocity RMS the synthesized signal has, in mm/s (impacts excluded:
    they ring far above the band)."""
    v_target, v_h = _levels(machine)
    fr = machine.rpm / 60.0
    total = (v_target * BROADBAND) ** 2
    for h, share in HARMONICS:
        if machine.band_low_hz <= h * fr <= 1000.0:
            amp = v_h * share * (1.0 + health.imbalance if h == 1 else 1.0)
            total += amp * amp / 2.0
    return math.sqrt(total) * 1000.0


def imbalance_for(machine: Machine, v_mm_s: float) -> float:
    """The imbalance (extra 1x) that brings the velocity RMS to ``v_mm_s``."""
    fr = machine.rpm / 60.0
    if not machine.band_low_hz <= fr <= 1000.0:
        raise ValueError(f"{machine.name}: its 1x ({fr:.1f} Hz) is below the ISO band, imbalance does not show there")
    v_target, v_h = _levels(machine)
    other = velocity_rms_mm_s(machine, Health()) ** 2 - ((v_h * HARMONICS[0][1]) ** 2 / 2.0) * 1e6
    one = (v_h * HARMONICS[0][1]) ** 2 / 2.0 * 1e6
    return max(0.0, math.sqrt(max(0.0, v_mm_s ** 2 - other) / one) - 1.0)


def iso_zone(machine: Machine, v_mm_s: float) -> str:
    ab, bc, cd = machine.zone_limits
    return "A" if v_mm_s < ab else "B" if v_mm_s < bc else "C" if v_mm_s < cd else "D"


def _resonance_hz(rate_hz: float) -> float:
    return min(2800.0, 0.3 * rate_hz)


def synthesize(machine: Machine, rate_hz: float, n: int, rng: np.random.Generator, health: Health,
               t0_s: float = 0.0, running: float = 1.0) -> np.ndarray:
    """``n`` acceleration samples (m/s², float32) of ``machine`` at ``rate_hz``.

    Draws the same number of random values whatever the health, so a fault changes only what it
    adds. ``running`` < 1 scales the machine down (a stopped machine shows sensor noise only).
    """
    fr = machine.rpm / 60.0
    t = t0_s + np.arange(n) / rate_hz
    noise = rng.standard_normal(n)
    phases = rng.random(3) * 2.0 * math.pi
    jitter = rng.standard_normal(int(n / rate_hz * 400.0) + 8)  # enough for any fault frequency < 400 Hz

    # broadband level so that its in-band velocity RMS is the target (white acceleration density)
    f_lo, f_hi = machine.band_low_hz, min(1000.0, 0.45 * rate_hz)
    v_target, v_h = _levels(machine)
    a_bb = v_target * BROADBAND * 2.0 * math.pi * math.sqrt((rate_hz / 2.0) / (1.0 / f_lo - 1.0 / f_hi))
    x = a_bb * noise * running
    # shaft harmonics carry the rest of the velocity (velocity amplitude -> acceleration 2 pi f v)
    for (h, share), ph in zip(HARMONICS, phases):
        a_h = 2.0 * math.pi * fr * h * v_h * share * running
        if h == 1:
            a_h *= 1.0 + health.imbalance
        x += a_h * np.sin(2.0 * math.pi * fr * h * t + ph)
    x += 0.02 * noise[::-1]  # sensor electronics floor, m/s²

    if health.defect and health.impact > 0.0 and running > 0.0:
        f_def = fault_frequency_hz(machine, health.defect)
        period = 1.0 / f_def
        count = int(n / rate_hz / period) + 1
        times = (np.arange(count) + 0.5) * period + 0.01 * period * jitter[:count]
        idx = np.round(times * rate_hz).astype(np.int64)
        keep = (idx >= 0) & (idx < n)
        idx, times = idx[keep], times[keep]
        amp = np.full(len(idx), health.impact * running)
        if health.defect == "inner":
            amp *= 0.55 + 0.45 * np.cos(2.0 * math.pi * fr * (t0_s + times))
        elif health.defect == "ball":
            ftf = fr * machine.bearing.orders()["ftf"]
            amp *= 0.55 + 0.45 * np.cos(2.0 * math.pi * ftf * (t0_s + times))
        train = np.zeros(n)
        np.add.at(train, idx, amp)
        f_res = _resonance_hz(rate_hz)
        decay_s = 1.4 / f_res  # damping ratio about 0.1: the ringing dies within a few cycles
        m = int(min(n, 5.0 * decay_s * rate_hz)) + 1
        tk = np.arange(m) / rate_hz
        kernel = np.exp(-tk / decay_s) * np.sin(2.0 * math.pi * f_res * tk)
        x += np.convolve(train, kernel)[:n]
    return x.astype(np.float32)


def encode_block(x: np.ndarray, rate_hz: float, rpm: float, dtype: str = "f4") -> WaveBlock:
    """A :class:`WaveBlock` of samples: float32, or int16 with a scale (half the size)."""
    if dtype == "i2":
        peak = float(np.max(np.abs(x))) or 1.0
        scale = peak / 32767.0
        q = np.round(np.asarray(x, dtype=np.float64) / scale).astype("<i2")
        return WaveBlock(rate_hz=rate_hz, data=base64.b64encode(q.tobytes()).decode("ascii"), dtype="i2",
                         scale=scale, rpm=rpm)
    raw = np.asarray(x, dtype="<f4").tobytes()
    return WaveBlock(rate_hz=rate_hz, data=base64.b64encode(raw).decode("ascii"), rpm=rpm)
