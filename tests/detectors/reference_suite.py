"""The detector suite with its batch flattening restated frame by frame, reading by reading.

:class:`FrameByFrameSuite` is :class:`detectors.DetectorSuite` with the two batch steps the
compiled path replaces written the obvious way: every reading of every frame routed to its
streams with dictionary lookups, and every robot's frames walked in time order for silences.
The tests run both over the same frames and require the same samples and the same alerts.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from detectors.base import EventOrder, Pending
from detectors.rules import with_fan
from detectors.engine import Signal
from detectors.suite import Batch, DetectorSuite
from detectors.health_rules import ROBOT_LONG_SILENCE_S, ROBOT_SILENCE_S
from minewatch.wire import Frame


NS = 1_000_000_000


class FrameByFrameSuite(DetectorSuite):
    def flatten(self, frames: Sequence[Frame]) -> Batch:
        batch = Batch()
        lim, base, pairs = batch.lim.lists, batch.base.lists, batch.pairs.lists
        for fi, f in enumerate(frames):
            sid, rid, ts = f.scenario_id, f.robot_id, f.ts
            sc = self.scenarios.get(sid)
            if sc is None:
                continue
            readings = with_fan(sc, f.readings)
            routes = self._routes.setdefault((sid, rid), {})
            for chan, (s, _) in list(routes.items()):
                if readings.get(chan) is None:  # a routed channel without a value this time
                    for col, v in zip(base, (s, ts, np.nan, fi)):
                        col.append(v)
            for chan, v in readings.items():
                if v is None:
                    continue
                s, lims = routes[chan] if chan in routes else self._route(sid, rid, chan)
                for col, w in zip(base, (s, ts, v, fi)):
                    col.append(w)
                for ls, signed in lims:
                    for col, w in zip(lim, (ls, ts, v if signed else abs(v), fi)):
                        col.append(w)
            for ca, cb in self.drift.pairs.get(sid, []):
                va, vb = readings.get(ca.name), readings.get(cb.name)
                if va is not None and vb is not None:
                    for col, w in zip(pairs, (self.drift.stream(sid, rid, ca, cb), ts, va, vb, fi)):
                        col.append(w)
            if sc.machine is not None:
                for wchan, block in f.waveforms.items():
                    if wchan == sc.machine.channel:
                        batch.blocks.append((fi, block))
            if rid not in self._robot_streams:
                self._robot_streams[rid] = self.limits.robot_streams(rid)
            rs = self._robot_streams[rid]
            extra = [] if f.battery is None else [("battery", f.battery)]
            if f.link is not None:
                extra += [("link_latency_ms", f.link.latency_ms), ("link_rssi_dbm", f.link.rssi_dbm),
                          ("link_loss", f.link.loss)]
            for name, v in extra:
                for col, w in zip(lim, (rs[name], ts, v, fi)):
                    col.append(w)
        batch.ts = np.array([f.ts for f in frames], dtype=np.int64)
        return batch

    def robot_frames(self, frames: Sequence[Frame], batch: Batch, now: int, pending: list[Pending]) -> None:
        """Every frame through the one-frame silence rule, robots in id order, each in the order it
        was seen (its arrival, or its time)."""
        gap = int(ROBOT_SILENCE_S * NS)
        clock = batch.clock.tolist()
        for fi in sorted(range(len(frames)), key=lambda i: (frames[i].robot_id, clock[i])):
            self._robot_frame(frames[fi], clock[fi], self._robot(frames[fi].robot_id), gap, pending)
        for sig in self.deadman(now):
            pending.append(Pending(sig.ts, EventOrder.ROBOT, 0, sig))

    def deadman(self, now: int) -> list[Signal]:
        """Every robot looked at, every time."""
        gap = int(ROBOT_SILENCE_S * NS)
        long = int(ROBOT_LONG_SILENCE_S * NS)
        out: list[Signal] = []
        for rid, r in self._robots.items():
            if r.last_seen < 0 or r.offline:
                continue
            if not r.silent and now - r.last_seen >= gap:
                r.silent = 1
                out.append(self._offline_signal(rid, "silence", True, r.last_seen + gap, r.scenario))
            if r.silent == 1 and now - r.last_seen >= long:
                r.silent = 2
                out.append(self._offline_signal(rid, "silence", True, r.last_seen + long, r.scenario, long=True))
        return out
