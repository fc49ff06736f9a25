"""The 5G uplink of each robot: latency, jitter, loss, coverage holes, the backlog.

Path loss in a roadway is low (the tunnel guides the wave): ``rssi = -40 - 22 log10(d)`` dBm at
``d`` metres from the nearest base station [U], which keeps a station's 400-500 m of roadway
(domain §5 [C]) well above the -105 dBm the link needs. Inside a route's coverage hole the
signal is gone. Latency is 6 ms plus 1 ms per 100 m and a gamma-distributed jitter that widens
with distance (the mine's 5G: < 20 ms, domain §5 [C]). A frame is lost (and re-sent with the
next frame, so it arrives late and out of order) with a probability that climbs as the signal
fades.

When the link is down the robot keeps measuring into a backlog. After 1.5 keep-alive periods
the broker gives up on it and publishes its will (``online: false``). When the link returns
the robot reconnects, sends its newest frame first, and then the backlog, oldest first, in
arrays of up to ``chunk`` frames, a few per frame period.
"""

from __future__ import annotations

import numpy as np

__all__ = ["LinkModel", "LinkSample"]

NO_SIGNAL_DBM = -120.0
NEEDS_DBM = -105.0


class LinkSample:
    __slots__ = ("up", "latency_ms", "rssi_dbm", "lost")

    def __init__(self, up: bool, latency_ms: float, rssi_dbm: float, lost: bool) -> None:
        self.up = up
        self.latency_ms = latency_ms
        self.rssi_dbm = rssi_dbm
        self.lost = lost


class LinkModel:
    """Vectorised link draws for all robots of a fleet, one call per tick."""

    def __init__(self, rng: np.random.Generator) -> None:
        self.rng = rng

    def sample(self, distance_m: np.ndarray, in_hole: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """``(up, latency_ms, rssi_dbm, lost)`` arrays; the draws do not depend on the outcome."""
        n = len(distance_m)
        d = np.maximum(distance_m, 1.0)
        shadow = self.rng.standard_normal(n) * 2.0
        jitter = self.rng.gamma(2.0, 1.0 + d / 250.0, n)
        u = self.rng.random(n)
        rssi = -40.0 - 22.0 * np.log10(d) + shadow
        rssi = np.where(in_hole, NO_SIGNAL_DBM, np.clip(rssi, -119.0, -30.0))
        up = rssi >= NEEDS_DBM
        latency = 6.0 + d / 100.0 + jitter
        p_loss = 0.001 + 0.3 / (1.0 + np.exp((rssi + 104.0) / 1.5))
        lost = up & (u < p_loss)
        return up, np.round(latency, 1), np.round(rssi, 0), lost
