"""Reading stored telemetry back: as columns for replay, as frames for an ingestor warming up its
detectors (and wherever frames are wanted).

One InfluxQL statement per scenario selects only that scenario's channels (and ``seq``, ``boot``,
``battery``, ``pos_m``, ``latency_ms``, ``rssi_dbm``, ``late``), ``GROUP BY scenario, robot``,
asked for as MessagePack (:meth:`minewatch.influx.InfluxClient.query_series`). The rows become
either :class:`FrameColumns` (:func:`rows_to_columns`: what the detector suite's columnar entry
takes, no Python object per row) or :class:`minewatch.wire.Frame` objects again
(:func:`rows_to_frames`), in time order either way.

Per hour of the default mine's data (126,000 frames) decoding the answer costs about 0.06 s of
this process's CPU, the columns about 0.09 s, where building the frames cost 0.3 to 0.6 s (on
the 2-core development machine, shared, with the collector tuned as the services run it,
:mod:`minewatch.runtime`). Building the frames is creating the objects (a dict of readings, a
link and a frame per row) more than walking the rows: the column-wise ``map`` below is 15 to
25 % cheaper than a loop over the rows. Building the frames in a worker process was tried and
dropped: decoding them from MessagePack into frames (even into a subclass without the id
checks, as arrays) costs the replay about as much as building them.
"""

from __future__ import annotations

import operator
from collections.abc import Iterable, Mapping
from itertools import repeat
from typing import Any, NamedTuple

import numpy as np
import numpy.typing as npt

from minewatch.catalogue import SCENARIOS, Scenario
from minewatch.influx import Series
from minewatch.wire import Frame, LinkInfo

__all__ = ["SliceReader", "slice_query", "rows_to_frames", "rows_to_columns", "FrameColumns", "Sender", "META"]

META = ("seq", "boot", "battery", "pos_m", "latency_ms", "rssi_dbm", "late", "robot_ts")


def slice_query(t0: int, t1: int, scenarios: Mapping[str, Scenario] = SCENARIOS, only: Iterable[str] | None = None) -> str:
    """The statements reading ``[t0, t1)`` of every scenario (or of those in ``only``)."""
    keep = None if only is None else set(only)
    out = []
    for sc in scenarios.values():
        if keep is not None and sc.id not in keep:
            continue
        cols = ", ".join(f'"{name}"' for name in [*(c.name for c in sc.channels), *META])
        out.append(f"SELECT {cols} FROM \"telemetry\" WHERE \"scenario\" = '{sc.id}' "
                   f'AND time >= {t0} AND time < {t1} GROUP BY "scenario", "robot"')
    return "; ".join(out)


def _series_frames(cols: list[str], robot: str, scenario: str, values: list[list[Any]]
                   ) -> tuple[list[Frame], list[bool], dict[str, tuple[Any, ...]]]:
    """The frames of one series' rows, in its order, their ``late`` flags, and its own columns
    transposed (``time`` and those of :data:`META` it has).

    A series' own columns (time, seq, battery, link, ...) are transposed at once, its channels
    sliced out of each row, and its frames built from them by ``map`` over the constructors, so no
    Python code runs per row."""
    n = len(values)
    idx = {c: i for i, c in enumerate(cols)}
    # the frame's own columns, transposed; the channels stay rows (sliced out of each row)
    own_cols = [c for c in ("time", *META) if c in idx]
    if len(own_cols) > 1:
        columns = dict(zip(own_cols, zip(*map(operator.itemgetter(*(idx[c] for c in own_cols)), values))))
    else:
        columns = {"time": tuple(map(operator.itemgetter(idx["time"]), values))}
    none = (None,) * n

    def col(name: str) -> tuple[Any, ...]:
        return columns.get(name, none)

    seq = col("seq")
    if None in seq:
        seq = tuple(0 if s is None else s for s in seq)
    chans = channels_of(cols)
    at = [idx[c] for c in chans]
    if not at:
        readings: Iterable[dict[str, Any]] = [{} for _ in range(n)]
    else:
        rows: Iterable[Any]
        if at == list(range(at[0], at[0] + len(at))):  # side by side, as selected: one slice of each row
            rows = map(operator.itemgetter(slice(at[0], at[-1] + 1)), values)
        elif len(at) > 1:
            rows = map(operator.itemgetter(*at), values)
        else:
            rows = zip(map(operator.itemgetter(at[0]), values))
        readings = map(dict, map(zip, repeat(chans, n), rows))
    lat, rssi = col("latency_ms"), col("rssi_dbm")
    if None in lat or None in rssi:
        links: Iterable[LinkInfo | None] = [None if a is None or b is None else LinkInfo(a, b) for a, b in zip(lat, rssi)]
    else:
        links = map(LinkInfo, lat, rssi)
    # Frame's positional order: robot_id, scenario_id, seq, ts, readings, boot, pos_m, battery, link
    frames = list(map(Frame, repeat(robot, n), repeat(scenario, n), seq, columns["time"], readings, col("boot"),
                      col("pos_m"), col("battery"), links))
    late = list(map(operator.is_, col("late"), repeat(True, n)))
    return frames, late, columns


def channels_of(cols: list[str]) -> tuple[str, ...]:
    """The channel columns of a series (its columns but time and the frame's own)."""
    return tuple(c for c in cols if c not in META and c != "time")


def rows_to_frames(chunks: Iterable[Series], robot_ts: dict[int, int] | None = None) -> tuple[list[Frame], list[bool]]:
    """Frames (and their ``late`` flags) from ``(columns, tags, values)`` series, in time order
    (stable: rows of equal time keep their order). With ``robot_ts``, it receives (by index in the
    result) the robot's own time of each frame stored at a time the ingestor corrected.

    A channel column without a value in a row stays in the frame's readings as ``None``: to the
    detectors that is the same as a channel not sent, and every frame of one series then has
    the same channel names, which is what their compiled path keys on.

    Each series' frames are built at once (:func:`_series_frames`); the frames are then put in
    time order by one stable sort of all the series' times."""
    frames: list[Frame] = []
    late: list[bool] = []
    times: list[Any] = []
    own: dict[int, int] = {}
    for cols, tags, values in chunks:
        robot, scenario = tags.get("robot", ""), tags.get("scenario", "")
        if not values or not robot or not scenario:
            continue
        base = len(frames)
        got, flags, columns = _series_frames(cols, robot, scenario, values)
        frames.extend(got)
        late.extend(flags)
        times.append(columns["time"])
        if robot_ts is not None and "robot_ts" in columns:
            own.update((base + k, int(t)) for k, t in enumerate(columns["robot_ts"]) if t is not None)
    if not frames:
        return [], []
    order = np.argsort(np.concatenate([np.asarray(t, dtype=np.int64) for t in times]), kind="stable").tolist()
    if robot_ts is not None:
        where = {old: new for new, old in enumerate(order)}
        robot_ts.update({where[i]: t for i, t in own.items()})
    return [frames[i] for i in order], [late[i] for i in order]


class Sender(NamedTuple):
    """Who sent a frame: what the detector suite's stages after flattening need of it
    (:class:`minewatch.wire.Origin`)."""

    robot_id: str
    scenario_id: str


class _StoredSeries(NamedTuple):
    cols: list[str]
    robot: str
    scenario: str
    values: list[list[Any]]


class FrameColumns:
    """Stored frames as columns, in time order (stable, as :func:`rows_to_frames`): what a replay
    hands the detectors (:meth:`detectors.DetectorSuite.process_columns`) without a Python object
    per frame.

    Per frame: ``ts``; ``group``, the series it came from (``keys[group]``: its scenario, robot
    and channel names, the suite's shape key; ``sender(group)``), and ``row`` in that series;
    its readings ``values[off:off + len(channel names)]`` (NaN: no value); ``battery``,
    ``latency_ms``, ``rssi_dbm`` and ``loss`` (NaN: none; the link's three only where a row has
    both latency and RSSI, as a frame's :class:`~minewatch.wire.LinkInfo`, whose loss is then
    0); ``late``. A series' readings are side by side in ``values``, from ``xbase[group]``, a
    row each.

    :meth:`take` is a stretch of them, sharing the arrays and ``derived`` (where a reader keeps
    what it derives from a whole slice once, such as the suite's derived fan readings);
    :meth:`frames` builds the frames themselves, exactly :func:`rows_to_frames`'s.
    """

    __slots__ = ("series", "keys", "_senders", "xbase", "derived", "ts", "group", "row", "values", "off", "battery",
                 "latency_ms", "rssi_dbm", "loss", "late")

    def __init__(self, series: list[_StoredSeries], ts: npt.NDArray[np.int64], group: npt.NDArray[np.int64],
                 row: npt.NDArray[np.int64], values: npt.NDArray[np.float64], off: npt.NDArray[np.int64],
                 battery: npt.NDArray[np.float64], latency_ms: npt.NDArray[np.float64],
                 rssi_dbm: npt.NDArray[np.float64], loss: npt.NDArray[np.float64], late: npt.NDArray[np.bool_]) -> None:
        self.series = series
        self.keys = [(s.scenario, s.robot, channels_of(s.cols)) for s in series]
        self._senders = [Sender(s.robot, s.scenario) for s in series]
        widths = np.array([len(k[2]) for k in self.keys], dtype=np.int64)
        lengths = np.array([len(s.values) for s in series], dtype=np.int64)
        self.xbase = np.concatenate([[0], np.cumsum(lengths * widths)[:-1]]).astype(np.int64)
        self.derived: dict[str, Any] = {}
        self.ts, self.group, self.row, self.values, self.off = ts, group, row, values, off
        self.battery, self.latency_ms, self.rssi_dbm, self.loss, self.late = battery, latency_ms, rssi_dbm, loss, late

    def __len__(self) -> int:
        return int(self.ts.shape[0])

    def take(self, i: int, j: int) -> FrameColumns:
        """Frames ``i`` to ``j`` (excluded)."""
        cut = slice(i, j)
        out = FrameColumns.__new__(FrameColumns)
        out.series, out.keys, out._senders, out.values = self.series, self.keys, self._senders, self.values
        out.xbase, out.derived = self.xbase, self.derived
        out.ts, out.group, out.row, out.off = self.ts[cut], self.group[cut], self.row[cut], self.off[cut]
        out.battery, out.latency_ms, out.rssi_dbm = self.battery[cut], self.latency_ms[cut], self.rssi_dbm[cut]
        out.loss, out.late = self.loss[cut], self.late[cut]
        return out

    def sender(self, group: int) -> Sender:
        return self._senders[group]

    def senders(self) -> list[Sender]:
        """Each frame's sender (one shared object per series)."""
        s = self._senders
        return [s[g] for g in self.group.tolist()]

    def late_flags(self) -> list[bool] | None:
        """Each frame's ``late`` flag, or None if none came late (as the suite takes them)."""
        return self.late.tolist() if self.late.any() else None

    def frames(self) -> list[Frame]:
        """The frames themselves, in order (what :func:`rows_to_frames` gives for the same rows)."""
        out: list[Frame | None] = [None] * len(self)
        for g in np.unique(self.group).tolist():
            at = np.flatnonzero(self.group == g)
            s = self.series[g]
            rows = self.row[at].tolist()
            whole = len(rows) == len(s.values) and rows == list(range(len(rows)))  # as stored, in time order
            values = s.values if whole else [s.values[r] for r in rows]
            for p, f in zip(at.tolist(), _series_frames(s.cols, s.robot, s.scenario, values)[0]):
                out[p] = f
        return out  # type: ignore[return-value]  # every place filled: each frame belongs to one series


def rows_to_columns(chunks: Iterable[Series]) -> FrameColumns:
    """:class:`FrameColumns` from ``(columns, tags, values)`` series (what :func:`rows_to_frames`
    makes frames of): each series' rows become one float matrix at once (``None``: NaN), the
    times an integer column, and one stable sort of all the times puts the frames in order.
    A value that is not a number raises ``ValueError``."""
    series: list[_StoredSeries] = []
    parts: dict[str, list[npt.NDArray[Any]]] = {k: [] for k in ("ts", "x", "bat", "lat", "rssi", "late")}
    widths: list[int] = []
    for cols, tags, values in chunks:
        robot, scenario = tags.get("robot", ""), tags.get("scenario", "")
        if not values or not robot or not scenario:
            continue
        n = len(values)
        idx = {c: i for i, c in enumerate(cols)}
        try:
            m = np.array(values, dtype=np.float64)
        except (TypeError, ValueError) as exc:
            raise ValueError(f"stored telemetry of robot {robot!r} at {scenario!r} holds a value that is not a "
                             f"number: {exc}") from None
        nan = np.full(n, np.nan)
        own = {c: m[:, i] for c, i in idx.items() if c in META}


        at = [idx[c] for c in channels_of(cols)]
        series.append(_StoredSeries(cols, robot, scenario, values))
        widths.append(len(at))
        parts["ts"].append(np.fromiter(map(operator.itemgetter(idx["time"]), values), dtype=np.int64, count=n))
        parts["x"].append(m[:, at].ravel())
        parts["bat"].append(own.get("battery", nan))
        lat, rssi = own.get("latency_ms", nan), own.get("rssi_dbm", nan)
        link = ~(np.isnan(lat) | np.isnan(rssi))
        parts["lat"].append(np.where(link, lat, np.nan))
        parts["rssi"].append(np.where(link, rssi, np.nan))
        parts["late"].append(own.get("late", nan) == 1.0)
    if not series:
        i64, f64 = np.empty(0, np.int64), np.empty(0, np.float64)
        return FrameColumns([], i64, i64, i64, f64, i64, f64, f64, f64, f64, np.empty(0, np.bool_))
    lengths = np.array([len(s.values) for s in series], dtype=np.int64)
    starts = np.concatenate([[0], np.cumsum(lengths)[:-1]]).astype(np.int64)
    k = np.array(widths, dtype=np.int64)
    ts = np.concatenate(parts["ts"])
    order = np.argsort(ts, kind="stable")
    group = np.repeat(np.arange(len(series), dtype=np.int64), lengths)[order]
    row = order - starts[group]
    lat = np.concatenate(parts["lat"])[order]
    i64 = np.empty(0, np.int64)
    out = FrameColumns(series, ts[order], group, row, np.concatenate(parts["x"]), i64,
                       np.concatenate(parts["bat"])[order], lat, np.concatenate(parts["rssi"])[order],
                       np.where(np.isnan(lat), np.nan, 0.0), np.concatenate(parts["late"])[order])
    out.off = out.xbase[group] + row * k[group]
    return out


class SliceReader:
    """Reads ``[t0, t1)`` slices of stored telemetry as frames (of the scenarios in ``only``, or all)."""

    def __init__(self, influx: Any, only: Iterable[str] | None = None) -> None:
        self.influx = influx
        self.only = None if only is None else list(only)

    async def read(self, t0: int, t1: int) -> tuple[list[Frame], list[bool]]:
        if self.only is not None and not self.only:
            return [], []
        return rows_to_frames(await self.influx.query_series(slice_query(t0, t1, only=self.only)))

    async def read_columns(self, t0: int, t1: int) -> FrameColumns:
        """:meth:`read` as :class:`FrameColumns`."""
        if self.only is not None and not self.only:
            return rows_to_columns([])
        return rows_to_columns(await self.influx.query_series(slice_query(t0, t1, only=self.only)))

    async def read_with_robot_ts(self, t0: int, t1: int) -> tuple[list[Frame], list[bool], dict[int, int]]:
        """:meth:`read`, and the robots' own times of frames stored at a corrected time (by index)."""
        own: dict[int, int] = {}
        if self.only is not None and not self.only:
            return [], [], own
        frames, late = rows_to_frames(await self.influx.query_series(slice_query(t0, t1, only=self.only)), own)
        return frames, late, own
