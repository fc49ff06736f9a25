"""The detector suite with its batch flattening and robot silences restated frame by frame.

:func:`FrameByFrameSuite` is a :class:`detectors.DetectorSuite` whose two batch stages the
compiled path replaces are written the obvious way: :class:`FrameByFrameBatching` routes every
reading of every frame to its streams with dictionary lookups, and :class:`EveryRobotLiveness`
walks every robot's frames in time order for silences and looks at every robot at every
deadman call. The tests run both over the same frames and require the same samples and the
same alerts.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

from detectors import DetectorSuite
from detectors.base import EventOrder, Pending
from detectors.batching import Batch, Batching
from detectors.engine import Signal
from detectors.robots import GAP_NS, LONG_NS, RobotLiveness
from detectors.rules import with_fan
from minewatch.wire import Frame


def FrameByFrameSuite(**kwargs: Any) -> DetectorSuite:  # noqa: N802 - stands where a suite class stands
    """A suite with the frame-by-frame stages below."""
    return DetectorSuite(batching=FrameByFrameBatching, liveness=EveryRobotLiveness, **kwargs)


class FrameByFrameBatching(Batching):
    def flatten(self, frames: Sequence[Frame]) -> Batch:
        batch = Batch()
        lim, base, pairs = batch.lim.lists, batch.base.lists, batch.pairs.lists
        for fi, f in enumerate(frames):
            sid, rid, ts = f.scenario_id, f.robot_id, f.ts
            sc = self.scenarios.get(sid)
            if sc is None:
                continue
            readings = with_fan(sc, f.readings)
            routes = self.routes.setdefault((sid, rid), {})
            for chan, (s, _) in list(routes.items()):
                if readings.get(chan) is None:  # a routed channel without a value this time
                    for col, blank in zip(base, (s, ts, np.nan, fi)):
                        col.append(blank)
            for chan, v in readings.items():
                if v is None:
                    continue
                s, lims = routes[chan] if chan in routes else self.route(sid, rid, chan)
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
            rs = self.robot_streams_of(rid)
            extra = [] if f.battery is None else [("battery", f.battery)]
            if f.link is not None:
                extra += [("link_latency_ms", f.link.latency_ms), ("link_rssi_dbm", f.link.rssi_dbm),
                          ("link_loss", f.link.loss)]
            for name, v in extra:
                for col, w in zip(lim, (rs[name], ts, v, fi)):
                    col.append(w)
        batch.ts = np.array([f.ts for f in frames], dtype=np.int64)
        batch.robots = np.array([self.robots.robot(f.robot_id).number for f in frames], dtype=np.int64)
        return batch


class EveryRobotLiveness(RobotLiveness):
    def frames(self, frames: Sequence[Frame], robots: npt.NDArray[np.int64], clock: npt.NDArray[np.int64],
               now: int, pending: list[Pending]) -> None:
        """Every frame through the one-frame silence rule, robots in id order, each in the order it
        was seen (its arrival, or its time)."""
        seen = clock.tolist()
        for fi in sorted(range(len(frames)), key=lambda i: (frames[i].robot_id, seen[i])):
            self.frame(frames[fi], seen[fi], self.robot(frames[fi].robot_id), pending)
        for sig in self.deadman(now):
            pending.append(Pending(sig.ts, EventOrder.ROBOT, 0, sig))

    def deadman(self, now: int) -> list[Signal]:
        """Every robot looked at, every time."""
        out: list[Signal] = []
        for rid, r in self.robots.items():
            if r.last_seen < 0 or r.offline:
                continue
            if not r.silent and now - r.last_seen >= GAP_NS:
                r.silent = 1
                out.append(self.offline_signal(rid, "silence", True, r.last_seen + GAP_NS, r.scenario))
            if r.silent == 1 and now - r.last_seen >= LONG_NS:
                r.silent = 2
                out.append(self.offline_signal(rid, "silence", True, r.last_seen + LONG_NS, r.scenario, long=True))
        return out
