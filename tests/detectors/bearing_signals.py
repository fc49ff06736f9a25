"""Bearing vibration made from the physics, independently of ``simulator.vibration``.

A defect is a train of impacts at the fault rate of the bearing's kinematics (domain §4), each
interval jittered by the rolling elements' random slip and the mean rate a little below the
kinematic one (slip); every impact rings a structural resonance (a second-order system, its
frequency and damping set per machine) and, more weakly, a second one. The impacts of an inner-race
defect are amplitude-modulated at the shaft rate (the defect turns through the load zone), those
of a ball defect at the cage rate (FTF). Around it: shaft harmonics 1x-3x, a gear-mesh-like tone
with shaft-rate sidebands, electrical line at twice 50 Hz, and heavy-tailed (Student-t) noise.

The fault's strength is given as an SNR: its power over the noise's, over the whole band.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from minewatch.catalogue import BEARINGS, Bearing

DEFECTS = {"outer": "outer race", "inner": "inner race", "ball": "ball"}


@dataclass(frozen=True)
class Machine:
    """A test machine: bearing, running speed and the structure's resonances."""

    bearing: Bearing
    rpm: float
    resonance_hz: float
    damping: float  # damping ratio of the resonance
    mesh_teeth: int  # gear-mesh tone at teeth x shaft rate


def machines(rate_hz: float, rng: np.random.Generator, count: int) -> list[Machine]:
    """``count`` machines over the catalogue's bearings and usual speeds, each with its own
    resonance between 1.5 kHz and 40 % of the rate."""
    speeds = {"6205": (1730.0, 1797.0), "6312": (1480.0, 2950.0), "6316": (990.0, 1480.0), "22228": (740.0, 990.0)}
    names = sorted(speeds)
    out = []
    for i in range(count):
        name = names[i % len(names)]
        out.append(Machine(BEARINGS[name], float(rng.choice(speeds[name])) * float(rng.uniform(0.97, 1.01)),
                           float(rng.uniform(1500.0, 0.4 * rate_hz)), float(rng.uniform(0.03, 0.08)),
                           int(rng.integers(17, 41))))
    return out


def _ring(train: np.ndarray, rate_hz: float, f_hz: float, zeta: float) -> np.ndarray:
    """``train`` through a damped resonance (impulse response ``exp(-zeta w t) sin(w_d t)``),
    by FFT convolution."""
    n = train.shape[0]
    w = 2 * math.pi * f_hz
    tail = int(min(n, 8.0 / (zeta * w) * rate_hz)) + 1
    t = np.arange(tail) / rate_hz
    h = np.exp(-zeta * w * t) * np.sin(w * math.sqrt(1 - zeta * zeta) * t)
    m = 1 << int(math.ceil(math.log2(n + tail)))
    return np.fft.irfft(np.fft.rfft(train, m) * np.fft.rfft(h, m), m)[:n]


def fault_component(machine: Machine, defect: str, rate_hz: float, n: int, rng: np.random.Generator) -> np.ndarray:
    """The impacts of a defect rung through the machine's resonances (unscaled)."""
    fr = machine.rpm / 60.0
    o = machine.bearing.orders()
    f_def = fr * {"outer": o["bpfo"], "inner": o["bpfi"], "ball": 2 * o["bsf"]}[defect]
    f_def *= 1.0 - rng.uniform(0.0, 0.01)  # mean slip
    period = 1.0 / f_def
    count = int(n / rate_hz * f_def) + 2
    intervals = period * (1.0 + 0.01 * rng.standard_normal(count))  # random slip per interval
    times = rng.uniform(0, period) + np.cumsum(intervals)
    times = times[times < n / rate_hz]
    amp = 1.0 + 0.15 * rng.standard_normal(times.size)
    depth = rng.uniform(0.4, 0.9)
    if defect == "inner":
        amp *= 1.0 - depth + depth * 0.5 * (1 + np.cos(2 * math.pi * fr * times + rng.uniform(0, 6.3)))
    elif defect == "ball":
        ftf = fr * o["ftf"]
        amp *= 1.0 - depth + depth * 0.5 * (1 + np.cos(2 * math.pi * ftf * times + rng.uniform(0, 6.3)))
    train = np.zeros(n)
    # each impact at its exact instant: split between the two nearest samples
    pos = times * rate_hz
    k = np.floor(pos).astype(np.int64)
    frac = pos - k
    keep = k + 1 < n
    np.add.at(train, k[keep], amp[keep] * (1 - frac[keep]))
    np.add.at(train, k[keep] + 1, amp[keep] * frac[keep])
    second = min(0.45 * rate_hz, machine.resonance_hz * 1.7)
    return _ring(train, rate_hz, machine.resonance_hz, machine.damping) + 0.3 * _ring(train, rate_hz, second, 0.08)


def signal(machine: Machine, rate_hz: float, seconds: float, rng: np.random.Generator, defect: str | None = None,
           snr_db: float = 0.0, noise: float = 1.0) -> np.ndarray:
    """Acceleration (m/s²) of ``machine`` for ``seconds`` at ``rate_hz``; with a ``defect``
    (outer, inner, ball) at ``snr_db`` over the noise."""
    n = int(round(seconds * rate_hz))
    fr = machine.rpm / 60.0
    t = np.arange(n) / rate_hz
    dof = rng.uniform(3.0, 6.0)
    bg = rng.standard_t(dof, n)
    bg *= noise / bg.std()
    x = bg.copy()
    for h, v_mm_s in ((1, rng.uniform(0.2, 0.6)), (2, rng.uniform(0.1, 0.4)), (3, rng.uniform(0.05, 0.3))):
        x += 2 * math.pi * fr * h * v_mm_s * 1e-3 * math.sqrt(2) * np.sin(2 * math.pi * fr * h * t + rng.uniform(0, 6.3))
    mesh = machine.mesh_teeth * fr
    if mesh < 0.45 * rate_hz:
        a = noise * rng.uniform(0.3, 1.0)
        x += a * np.sin(2 * math.pi * mesh * t) * (1 + 0.3 * np.cos(2 * math.pi * fr * t))
    x += 0.2 * noise * np.sin(2 * math.pi * 100.0 * t + rng.uniform(0, 6.3))
    if defect is not None:
        f = fault_component(machine, defect, rate_hz, n, rng)
        x += f * math.sqrt(10 ** (snr_db / 10) * float(np.mean(bg ** 2)) / float(np.mean(f ** 2)))
    return x
