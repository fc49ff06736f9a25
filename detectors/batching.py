"""A batch of frames flattened into the detectors' sample arrays, stream by stream.

A stage of the suite (:class:`detectors.DetectorSuite`): :class:`Batching` routes every reading
of a frame to its streams (the base stream of (scenario, robot, channel) for rise, health and
change; a limit stream per limit rule of the channel; drift pairs; the robot's own battery and
link streams), creating streams as readings first appear, and collects a batch's samples per
stream family in a :class:`Batch`. In the steady state every frame's shape is compiled
(:mod:`detectors.flatten`) and nothing loops in Python per frame.
"""

from __future__ import annotations

import operator
from collections.abc import Sequence
from itertools import chain
from typing import TYPE_CHECKING, cast

import numpy as np

from detectors._jit import Arr, jit
from detectors._state import StreamTable
from detectors.base import BaseStream, StreamDetector
from detectors.flatten import Cols, Shape, ShapeTable, gather_kernel
from detectors.rules import FAN, FAN_UNITS, derives_fan, fan_running, with_fan
from minewatch.catalogue import Channel, Scenario
from minewatch.wire import Frame, WaveBlock

if TYPE_CHECKING:
    from collections.abc import Mapping

    from minewatch.stored import FrameColumns

    from detectors.drift import DriftDetector
    from detectors.limits import LimitDetector
    from detectors.robots import RobotLiveness

__all__ = ["MAX_SHAPES", "Batch", "Batching", "Route", "stream_order"]

# Compiled frame shapes (a robot, a place, the reading names it sends) kept at most: a fleet has
# some hundreds; a robot sending a new combination with every frame costs a recompile, not memory.
MAX_SHAPES = 4096

_readings = operator.attrgetter("readings")

Route = tuple[int, list[tuple[int, bool]]]  # a channel's base stream, and its limit streams (stream, signed)


class Batch:
    """Samples of one batch, per stream family: (stream, time, value, frame index) for the
    limit and base streams, (stream, time, value a, value b, frame index) for drift pairs."""

    __slots__ = ("lim", "base", "pairs", "blocks", "robots", "ts", "clock")

    def __init__(self) -> None:
        self.lim = Cols((np.int64, np.int64, np.float64, np.int64))
        self.base = Cols((np.int64, np.int64, np.float64, np.int64))
        self.pairs = Cols((np.int64, np.int64, np.float64, np.float64, np.int64))
        self.blocks: list[tuple[int, WaveBlock]] = []  # (frame index, block)
        self.robots = np.empty(0, dtype=np.int64)  # per frame: the robot's number
        self.ts = np.empty(0, dtype=np.int64)      # per frame: its time
        self.clock = self.ts                       # per frame: when it was seen (live: its arrival)

    @staticmethod
    def sorted(cols: Cols) -> tuple[np.ndarray, ...]:
        """The columns sorted by (stream, time, frame index): each stream's samples in time
        order, and samples of one time in the order their frames came.

        A batch's frames nearly always come in time order for each stream, so a stable counting
        sort on the stream and a few moves (:func:`stream_order`) give that order; where they
        would not pay, the full sort."""
        arrays = cols.arrays()
        stream, t, fi = arrays[0], arrays[1], arrays[-1]
        order = np.empty(stream.shape[0], dtype=np.int64)
        if not stream_order(stream, t, fi, order):
            order = np.lexsort((fi, t, stream))
        return tuple(a[order] for a in arrays)


@jit
def stream_order(stream: Arr, t: Arr, fi: Arr, order: Arr) -> bool:
    """Write into ``order`` the samples' order by (stream, time, frame index), stable: a counting
    sort on the stream, then each stream's samples put in order by insertion. True when done;
    False (``order`` then unfinished) when the stream numbers are too sparse for a counting sort
    to pay or the samples too far out of order for insertion."""
    n = stream.shape[0]
    if n == 0:
        return True
    top = 0
    for i in range(n):
        if stream[i] > top:
            top = stream[i]
        if stream[i] < 0:
            return False
    if top > 8 * n + 4096:
        return False
    start = np.zeros(top + 2, dtype=np.int64)
    for i in range(n):
        start[stream[i] + 1] += 1
    for s in range(top + 1):
        start[s + 1] += start[s]
    for i in range(n):
        s = stream[i]
        order[start[s]] = i
        start[s] += 1
    # within a stream, into (time, frame) order by insertion: a few samples out of place (a robot's
    # frames reordered on the way) cost a few moves; many, the full sort instead
    budget = 4 * n
    for j in range(1, n):
        b = order[j]
        k = j
        while k > 0:
            a = order[k - 1]
            if stream[a] != stream[b] or t[a] < t[b] or (t[a] == t[b] and fi[a] <= fi[b]):
                break
            order[k] = a
            k -= 1
            budget -= 1
        order[k] = b
        if budget < 0:
            return False
    return True


def _with_fan(readings: dict[str, float | None], fan: tuple[int, int, int, bool]) -> list[float | None]:
    """A main fan's values with the derived ``fan`` reading (:func:`detectors.rules.fan_running`)
    at ``fan``'s position or appended."""
    values = list(readings.values())
    pa, pb, pf, appended = fan
    v = fan_running(values[p] for p in (pa, pb) if p >= 0)
    if appended:
        values.append(v)
    else:
        values[pf] = v
    return values


class Batching:
    """The streams of the base, limit and drift-pair families, and the flattening of a batch.

    Parameters
    ----------
    scenarios
        The catalogue.
    on_base
        The detectors reading the base streams (they configure each new one).
    limits, drift
        The detectors whose limit streams and pair streams frames feed.
    robots
        The robots' liveness (a frame's robot number).
    """

    def __init__(self, scenarios: Mapping[str, Scenario], on_base: Sequence[StreamDetector],
                 limits: LimitDetector, drift: DriftDetector, robots: RobotLiveness) -> None:
        self.scenarios = scenarios
        self.on_base = list(on_base)
        self.limits = limits
        self.drift = drift
        self.robots = robots
        # the base streams (scenario, robot, channel), shared by the detectors that read them
        self.base = StreamTable({name: col for det in self.on_base for name, col in det.columns.items()})
        self.base_meta: list[BaseStream] = []
        for det in self.on_base:
            det.bind(self.base, self.base_meta, lambda sid, rid, chan: self.route(sid, rid, chan)[0])
        # (scenario, robot) -> channel -> its route
        self.routes: dict[tuple[str, str], dict[str, Route]] = {}
        self.robot_streams: dict[str, dict[str, int]] = {}  # robot -> its battery and link streams
        # compiled frame shapes (detectors.flatten): (scenario, robot, channel names) -> Shape
        self._shapes: dict[tuple[str, str, tuple[str, ...]], Shape] = {}
        self._ready: dict[tuple[str, str, tuple[str, ...]], Shape] = {}  # the compiled ones
        self._shape_keys: dict[tuple[str, str], list[tuple[str, ...]]] = {}
        self._shape_table = ShapeTable()

    # -- streams ---------------------------------------------------------------------------
    def route(self, sid: str, rid: str, chan: str) -> Route:
        """Channel ``chan`` of robot ``rid`` in ``sid``: its streams, made if new."""
        routes = self.routes.setdefault((sid, rid), {})
        sc = self.scenarios[sid]
        c = sc.channel_map.get(chan)
        s, new = self.base.add((sid, rid, chan))
        if new:
            self._configure_base(s, sc, c, chan, rid)
        lims = self.limits.channel_streams(sid, rid, chan)
        routes[chan] = r = (s, lims)
        return r

    def _configure_base(self, s: int, sc: Scenario, c: Channel | None, chan: str, rid: str) -> None:
        self.base_meta.append(BaseStream(sc.id, rid, chan, c))
        for det in self.on_base:
            det.configure(s, sc, c)

    def robot_streams_of(self, rid: str) -> dict[str, int]:
        """Robot ``rid``'s battery and link limit streams, made if new."""
        rs = self.robot_streams.get(rid)
        if rs is None:
            rs = self.robot_streams[rid] = self.limits.robot_streams(rid)
        return rs

    def blocks(self, fi: int, f: Frame, batch: Batch) -> None:
        """Frame ``fi``'s waveform blocks of its place's machine, into ``batch.blocks``."""
        m = self.scenarios[f.scenario_id].machine
        if m is not None:
            for wchan, block in f.waveforms.items():
                if wchan == m.channel:
                    batch.blocks.append((fi, block))

    # -- batches ---------------------------------------------------------------------------
    def flatten(self, frames: Sequence[Frame]) -> Batch:
        """The batch's samples through :func:`gather_kernel` (``tests/detectors/reference_suite.py``
        restates it frame by frame). In the steady state every frame's shape is compiled and
        nothing here loops in Python per frame; otherwise the frames are taken in order and those
        of shapes not compiled yet go one by one (:meth:`_flatten_frame`), creating their streams."""
        batch = Batch()
        if len(self._shape_table) >= MAX_SHAPES:
            # robots come and go, or one sends ever new shapes: start afresh, between batches only
            # (a batch's frames hold their shapes' numbers in the table until it is gathered)
            self._shapes.clear()
            self._ready.clear()
            self._shape_keys.clear()
            self._shape_table = ShapeTable()
        ready = self._ready
        found = [ready.get((f.scenario_id, f.robot_id, tuple(f.readings))) for f in frames]
        # every frame's shape compiled already (the steady state), or each found or made now
        shps = cast(list[Shape], found) if None not in found else [self._shape_for(fi, f, batch)
                                                                    for fi, f in enumerate(frames)]
        batch.robots = np.array([shp.robot for shp in shps], dtype=np.int64)
        batch.ts = np.array([f.ts for f in frames], dtype=np.int64)
        pick: Sequence[int] = range(len(frames))
        if not all(shp.ready for shp in shps):
            pick = [i for i, shp in enumerate(shps) if shp.ready]
            frames, shps = [frames[i] for i in pick], [shps[i] for i in pick]
        if not pick:
            return batch
        n = len(pick)
        shapes = np.array([shp.index for shp in shps], dtype=np.int64)
        table = self._shape_table
        k = table.arrays().k_n[shapes]
        f64 = np.float64
        x: np.ndarray | None = None
        if not table.fans()[shapes].any():
            # the frames' values one after another, straight from their dicts (a None among them,
            # a reading sent as null, leaves it to the general way)
            try:
                x = np.fromiter(chain.from_iterable(map(dict.values, map(_readings, frames))), dtype=f64,
                                count=int(k.sum()))
            except TypeError:
                x = None
        if x is None:
            x = np.asarray(list(chain.from_iterable([
                f.readings.values() if shp.fan is None else _with_fan(f.readings, shp.fan)
                for f, shp in zip(frames, shps)])), dtype=f64)
        links = [f.link for f in frames]
        lat: list[float | None]
        rssi: list[float | None]
        loss: list[float | None]
        if links.count(None) == n:
            lat = rssi = loss = [None] * n
        else:
            lat = [None if k is None else k.latency_ms for k in links]
            rssi = [None if k is None else k.rssi_dbm for k in links]
            loss = [None if k is None else k.loss for k in links]
        for i in [i for i, f in enumerate(frames) if f.waveforms]:
            self.blocks(pick[i], frames[i], batch)
        off = np.concatenate([[0], np.cumsum(k)[:-1]]).astype(np.int64)  # the frames' values one after another
        self._gather(batch, shapes, np.asarray(pick, dtype=np.int64), x, off,
                     *(np.asarray(c, dtype=f64) for c in ([f.battery for f in frames], lat, rssi, loss)))
        return batch

    def flatten_columns(self, cols: FrameColumns) -> Batch | None:
        """:meth:`flatten` of stored frames given as columns (:class:`minewatch.stored.FrameColumns`):
        the same samples through the same :func:`gather_kernel`, straight from the columns. None
        if the shape of one of their series is not compiled yet: the caller then flattens their
        frames (:meth:`flatten` makes the streams and compiles the shapes)."""
        batch = Batch()
        present = np.flatnonzero(np.bincount(cols.group, minlength=len(cols.keys))).tolist()
        ready = self._ready
        found = [ready.get(cols.keys[g]) for g in present]
        if None in found:
            return None
        shps = cast(list[Shape], found)
        shape_of = np.zeros(len(cols.keys), dtype=np.int64)
        robot_of = np.zeros(len(cols.keys), dtype=np.int64)
        shape_of[present] = [shp.index for shp in shps]
        robot_of[present] = [shp.robot for shp in shps]
        batch.robots = robot_of[cols.group]
        batch.ts = cols.ts
        values, off = cols.values, cols.off
        fans = [(g, shp.fan) for g, shp in zip(present, shps) if shp.fan is not None]
        if fans:
            values, off = self._fan_columns(cols, fans)
        self._gather(batch, shape_of[cols.group], np.arange(len(cols), dtype=np.int64), values, off, cols.battery,
                     cols.latency_ms, cols.rssi_dbm, cols.loss)
        return batch

    def _fan_columns(self, cols: FrameColumns, fans: list[tuple[int, tuple[int, int, int, bool]]]
                     ) -> tuple[np.ndarray, np.ndarray]:
        """The readings of main fans' series with the derived ``fan`` reading (as :func:`_with_fan`
        gives a frame's): each such series' rows once per slice, after the slice's readings
        (kept in ``cols.derived``), and the frames' offsets into them."""
        memo: tuple[np.ndarray, dict[int, tuple[int, int]]] | None = cols.derived.get(FAN)
        values, at = memo or (cols.values, {})  # at: series -> (its first value, its width) in values
        for g, (pa, pb, pf, appended) in fans:
            if g in at:
                continue
            k, n = len(cols.keys[g][2]), len(cols.series[g].values)
            rows = values[cols.xbase[g]:cols.xbase[g] + n * k].reshape(n, k).copy()
            runs = [rows[:, p] for p in (pa, pb) if p >= 0]
            fan = runs[0] if len(runs) == 1 else np.fmax(runs[0], runs[1])  # the higher of those present
            if appended:
                rows = np.column_stack([rows, fan])
            else:
                rows[:, pf] = fan
            at[g] = (values.shape[0], rows.shape[1])
            values = np.concatenate([values, rows.ravel()])
        cols.derived[FAN] = (values, at)
        off = cols.off.copy()
        for g, _ in fans:
            mine = cols.group == g
            base, width = at[g]
            off[mine] = base + cols.row[mine] * width
        return values, off

    def _shape_for(self, fi: int, f: Frame, batch: Batch) -> Shape:
        """Frame ``fi``'s shape, compiled now if it can be; a frame whose shape is not ready is
        flattened on its own (which may create streams and so retire its place's shapes)."""
        key = (f.scenario_id, f.robot_id, tuple(f.readings))
        shp = self._shapes.get(key) or self._shape(*key)
        if not shp.ready and not shp.skip:
            self._flatten_frame(fi, f, batch)
        return shp

    def _gather(self, batch: Batch, shapes: np.ndarray, fis: np.ndarray, x: np.ndarray, off: np.ndarray,
                bat: np.ndarray, lat: np.ndarray, rssi: np.ndarray, loss: np.ndarray) -> None:
        """Run :func:`gather_kernel` over the compiled frames ``fis`` of the batch (of ``shapes``,
        their values in ``x`` from ``off``, battery and link NaN where absent) and add the samples
        to ``batch``."""
        f64, i64 = np.float64, np.int64
        tabs = self._shape_table.arrays()
        n_base = int(tabs.k_n[shapes].sum() + tabs.miss_n[shapes].sum())
        n_lim = int(tabs.lim_n[shapes].sum()) + 4 * shapes.shape[0]  # + battery and the link's three
        n_pair = int(tabs.pair_n[shapes].sum())
        base = (np.empty(n_base, i64), np.empty(n_base, i64), np.empty(n_base, f64), np.empty(n_base, i64))
        lim = (np.empty(n_lim, i64), np.empty(n_lim, i64), np.empty(n_lim, f64), np.empty(n_lim, i64))
        pairs = (np.empty(n_pair, i64), np.empty(n_pair, i64), np.empty(n_pair, f64), np.empty(n_pair, f64),
                 np.empty(n_pair, i64))
        nb, nl, npair = gather_kernel(shapes, batch.ts[fis], fis, x, off, bat, lat, rssi, loss, *tabs, *base, *lim,
                                      *pairs)
        batch.base.add(*(a[:nb] for a in base))
        batch.lim.add(*(a[:nl] for a in lim))
        batch.pairs.add(*(a[:npair] for a in pairs))

    def _shape(self, sid: str, rid: str, keys: tuple[str, ...]) -> Shape:
        """Compile the shape of a frame of robot ``rid`` in ``sid`` carrying ``keys``: ready when
        every stream its samples go to exists."""
        shp = Shape(index=-1, scenario_id=sid, robot_id=rid, keys=keys, robot=self.robots.robot(rid).number)
        self._shapes[(sid, rid, keys)] = shp
        self._shape_keys.setdefault((sid, rid), []).append(keys)
        sc = self.scenarios.get(sid)
        if sc is None:
            shp.skip = True
            return shp
        ext = list(keys)
        if derives_fan(sc, keys):
            appended = FAN not in keys
            if appended:
                ext.append(FAN)
            pa, pb = (keys.index(n) if n in keys else -1 for n in FAN_UNITS)
            shp.fan = (pa, pb, ext.index(FAN), appended)
        routes = self.routes.get((sid, rid), {})
        rs = self.robot_streams.get(rid)
        if rs is None or any(c not in routes for c in ext):
            return shp
        pos = {c: j for j, c in enumerate(ext)}
        base = [routes[c][0] for c in ext]
        miss = [s for c, (s, _) in routes.items() if c not in pos]
        lim = [(j, ls, signed) for j, c in enumerate(ext) for ls, signed in routes[c][1]]
        pairs = [(pos[ca.name], pos[cb.name], self.drift.stream(sid, rid, ca, cb))
                 for ca, cb in self.drift.pairs.get(sid, ()) if ca.name in pos and cb.name in pos]
        robot = (rs["battery"], rs["link_latency_ms"], rs["link_rssi_dbm"], rs["link_loss"])
        self._shape_table.add(shp, base, miss, lim, pairs, robot)
        shp.ready = True
        self._ready[(sid, rid, keys)] = shp
        return shp

    def _forget_shapes(self, sid: str, rid: str) -> None:
        """New streams for ``(sid, rid)``: its shapes must be compiled again."""
        for keys in self._shape_keys.pop((sid, rid), ()):
            self._shapes.pop((sid, rid, keys), None)
            self._ready.pop((sid, rid, keys), None)

    def _flatten_frame(self, fi: int, f: Frame, batch: Batch) -> None:
        """One frame's samples, creating the streams it needs (the frames of shapes not
        compiled yet)."""
        ls, lt, lx, lo = (c.append for c in batch.lim.lists)
        bs, bt, bx, bo = (c.append for c in batch.base.lists)
        sid, rid, ts = f.scenario_id, f.robot_id, f.ts
        sc = self.scenarios[sid]
        readings = with_fan(sc, f.readings)
        routes = self.routes.get((sid, rid))
        n_routes = -1 if routes is None else len(routes)
        if routes is None:
            routes = self.routes[(sid, rid)] = {}
        elif not routes.keys() <= readings.keys() or None in readings.values():
            for chan, (s, _) in routes.items():  # a channel this robot reports here is missing
                if readings.get(chan) is None:
                    bs(s), bt(ts), bx(np.nan), bo(fi)
        for chan, v in readings.items():
            if v is None:
                continue
            r = routes.get(chan)
            if r is None:
                r = self.route(sid, rid, chan)
            s, lims = r
            bs(s), bt(ts), bx(v), bo(fi)
            for ls_i, signed in lims:
                ls(ls_i), lt(ts), lx(v if signed else abs(v)), lo(fi)
        pairs = self.drift.pairs.get(sid)
        if pairs:
            ps, pt, pa, pb, po = batch.pairs.lists
            for ca, cb in pairs:
                va, vb = readings.get(ca.name), readings.get(cb.name)
                if va is not None and vb is not None:
                    ps.append(self.drift.stream(sid, rid, ca, cb))
                    pt.append(ts)
                    pa.append(va)
                    pb.append(vb)
                    po.append(fi)
        if f.waveforms:
            self.blocks(fi, f, batch)
        if rid not in self.robot_streams:
            n_routes = -2
        rs = self.robot_streams_of(rid)
        if f.battery is not None:
            ls(rs["battery"]), lt(ts), lx(f.battery), lo(fi)
        if f.link is not None:
            link = f.link
            for name, v in (("link_latency_ms", link.latency_ms), ("link_rssi_dbm", link.rssi_dbm),
                            ("link_loss", link.loss)):
                ls(rs[name]), lt(ts), lx(v), lo(fi)
        if n_routes != len(routes):
            self._forget_shapes(sid, rid)
