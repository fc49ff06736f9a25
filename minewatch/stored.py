"""Reading stored telemetry back as frames: for replay, and for an ingestor warming up its detectors.

One InfluxQL statement per scenario selects only that scenario's channels (and ``seq``, ``boot``,
``battery``, ``pos_m``, ``latency_ms``, ``rssi_dbm``, ``late``), ``GROUP BY scenario, robot``,
asked for as MessagePack (:meth:`minewatch.influx.InfluxClient.query_series`); the rows become
:class:`minewatch.wire.Frame` objects again, in time order.

Per hour of the default mine's data (126,000 frames) this costs about 0.15 s of this process's
CPU to decode and 0.3 to 0.6 s to build the frames (on the 2-core development machine, shared,
with the collector tuned as the services run it, :mod:`minewatch.runtime`); InfluxDB answers an
hour in 0.7 to 1.3 s of its own. Building the frames is creating the objects (a dict of readings,
a link and a frame per row) more than walking the rows: the column-wise ``map`` below is 15 to
25 % cheaper than a loop over the rows. Building the frames in a worker process was
tried and dropped: decoding them from MessagePack into frames (even into a subclass without the
id checks, as arrays) costs the replay about as much as building them.
"""

from __future__ import annotations

import operator
from collections.abc import Iterable, Mapping
from itertools import repeat
from typing import Any

import numpy as np

from minewatch.catalogue import SCENARIOS, Scenario
from minewatch.influx import Series
from minewatch.wire import Frame, LinkInfo

__all__ = ["SliceReader", "slice_query", "rows_to_frames", "META"]

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


def rows_to_frames(chunks: Iterable[Series], robot_ts: dict[int, int] | None = None) -> tuple[list[Frame], list[bool]]:
    """Frames (and their ``late`` flags) from ``(columns, tags, values)`` series, in time order
    (stable: rows of equal time keep their order). With ``robot_ts``, it receives (by index in the
    result) the robot's own time of each frame stored at a time the ingestor corrected.

    A channel column without a value in a row stays in the frame's readings as ``None``: to the
    detectors that is the same as a channel not sent, and every frame of one series then has
    the same channel names, which is what their compiled path keys on.

    A series' own columns (time, seq, battery, link, ...) are transposed at once, its channels
    sliced out of each row, and its frames built from them by ``map`` over the constructors, so no
    Python code runs per row; the frames are then put in time order by one stable sort of all the
    series' times."""
    frames: list[Frame] = []
    late: list[bool] = []
    times: list[Any] = []
    own: dict[int, int] = {}
    for cols, tags, values in chunks:
        robot, scenario = tags.get("robot", ""), tags.get("scenario", "")
        if not values or not robot or not scenario:
            continue
        n = len(values)
        idx = {c: i for i, c in enumerate(cols)}
        # the frame's own columns, transposed; the channels stay rows (sliced out of each row)
        own_cols = [c for c in ("time", *META) if c in idx]
        if len(own_cols) > 1:
            columns = dict(zip(own_cols, zip(*map(operator.itemgetter(*(idx[c] for c in own_cols)), values))))
        else:
            columns = {"time": tuple(map(operator.itemgetter(idx["time"]), values))}
        none = (None,) * n

        def col(name: str, columns: dict[str, tuple[Any, ...]] = columns, none: tuple[None, ...] = none) -> tuple[Any, ...]:
            return columns.get(name, none)

        ts = columns["time"]
        seq = col("seq")
        if None in seq:
            seq = tuple(0 if s is None else s for s in seq)
        chans = tuple(c for c in cols if c not in META and c != "time")
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
        base = len(frames)
        # Frame's positional order: robot_id, scenario_id, seq, ts, readings, boot, pos_m, battery, link
        frames.extend(map(Frame, repeat(robot, n), repeat(scenario, n), seq, ts, readings, col("boot"), col("pos_m"),
                          col("battery"), links))
        late.extend(map(operator.is_, col("late"), repeat(True, n)))
        times.append(ts)
        if robot_ts is not None and "robot_ts" in columns:
            own.update((base + k, int(t)) for k, t in enumerate(col("robot_ts")) if t is not None)
    if not frames:
        return [], []
    order = np.argsort(np.concatenate([np.asarray(t, dtype=np.int64) for t in times]), kind="stable").tolist()
    if robot_ts is not None:
        where = {old: new for new, old in enumerate(order)}
        robot_ts.update({where[i]: t for i, t in own.items()})
    return [frames[i] for i in order], [late[i] for i in order]


class SliceReader:
    """Reads ``[t0, t1)`` slices of stored telemetry as frames (of the scenarios in ``only``, or all)."""

    def __init__(self, influx: Any, only: Iterable[str] | None = None) -> None:
        self.influx = influx
        self.only = None if only is None else list(only)

    async def read(self, t0: int, t1: int) -> tuple[list[Frame], list[bool]]:
        if self.only is not None and not self.only:
            return [], []
        return rows_to_frames(await self.influx.query_series(slice_query(t0, t1, only=self.only)))

    async def read_with_robot_ts(self, t0: int, t1: int) -> tuple[list[Frame], list[bool], dict[int, int]]:
        """:meth:`read`, and the robots' own times of frames stored at a corrected time (by index)."""
        own: dict[int, int] = {}
        if self.only is not None and not self.only:
            return [], [], own
        frames, late = rows_to_frames(await self.influx.query_series(slice_query(t0, t1, only=self.only)), own)
        return frames, late, own
