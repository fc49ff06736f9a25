"""Reading stored telemetry back as frames: for replay, and for an ingestor warming up its detectors.

One InfluxQL statement per scenario selects only that scenario's channels (and ``seq``, ``boot``,
``battery``, ``pos_m``, ``latency_ms``, ``rssi_dbm``, ``late``), ``GROUP BY scenario, robot``,
asked for as MessagePack (:meth:`minewatch.influx.InfluxClient.query_series`); the rows become
:class:`minewatch.wire.Frame` objects again, in time order.

Per hour of the default mine's data (126,000 frames) this costs about 0.4 s of this process's
CPU to decode and 0.5 s to build the frames, on the 2-core development machine with the
collector tuned as the services run it (:mod:`minewatch.runtime`); InfluxDB answers a 10-minute
slice in about 0.15 s of its own. Building the frames in a worker process was tried and dropped:
decoding them from MessagePack costs the replay about as much as building them.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
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
    the same channel names, which is what their compiled path keys on."""
    frames: list[Frame] = []
    late: list[bool] = []
    ts: list[int] = []
    own: dict[int, int] = {}
    for cols, tags, values in chunks:
        robot, scenario = tags.get("robot", ""), tags.get("scenario", "")
        if not values or not robot or not scenario:
            continue
        idx = {c: i for i, c in enumerate(cols)}
        ti, si, boi = idx["time"], idx.get("seq", -1), idx.get("boot", -1)
        bi, pi = idx.get("battery", -1), idx.get("pos_m", -1)
        li, ri, lti = idx.get("latency_ms", -1), idx.get("rssi_dbm", -1), idx.get("late", -1)
        rti = idx.get("robot_ts", -1)
        chans = [c for c in cols if c not in META and c != "time"]
        at = [idx[c] for c in chans]
        run = bool(at) and at == list(range(at[0], at[0] + len(at)))  # channels side by side, as selected
        a, b = (at[0], at[-1] + 1) if run else (0, 0)
        add, add_late, add_ts = frames.append, late.append, ts.append
        for v in values:
            v.append(None)  # index -1: a column this statement did not return
            lat, rssi = v[li], v[ri]
            s = v[si]
            add(Frame(robot_id=robot, scenario_id=scenario, ts=v[ti], seq=s if s is not None else 0, boot=v[boi],
                      readings=dict(zip(chans, v[a:b] if run else [v[i] for i in at])),
                      battery=v[bi], pos_m=v[pi],
                      link=None if lat is None or rssi is None else LinkInfo(latency_ms=lat, rssi_dbm=rssi)))
            add_late(v[lti] is True)
            add_ts(v[ti])
            if robot_ts is not None and v[rti] is not None:
                own[len(frames) - 1] = int(v[rti])
    if not frames:
        return [], []
    order = np.argsort(np.asarray(ts, dtype=np.int64), kind="stable").tolist()
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
