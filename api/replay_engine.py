"""Replaying stored telemetry through the detectors.

:class:`TelemetrySource` reads ``[start, end)`` of the ``telemetry`` measurement from InfluxDB in
slices of data time (one statement per scenario so only its channels travel) and hands them out
in time order, as columns (:class:`minewatch.stored.FrameColumns`) or as
:class:`minewatch.wire.Frame` objects, reading the next slices while the detectors work on the
current one. :func:`run_replay` feeds the columns to a fresh :class:`detectors.DetectorSuite`
(with any limit overrides) through its columnar entry (no Python object per frame), ticking it
with data time, optionally paced to a speed, and reports progress and alerts to a sink.

:func:`compare` sets the alerts found against the alerts recorded live for the window:

- an alert is summarised by (scenario, channel, detector, the highest severity it reached,
  first_ts);
- a replayed alert and a live one are the *same* when the first four agree and their first_ts
  differ by at most ``tolerance_s`` (default 2 s; the data are the same, so they normally agree
  exactly); each live alert matches at most one replayed alert, earliest first;
- live alerts left over are *missed*, replayed alerts left over are *new*;
- only alerts raised inside the window count, and only kinds the stored readings can
  reproduce: vibration alerts need the raw waveforms and robot-health alerts the status
  messages, neither of which is in ``telemetry``; they are counted as ``not_compared``;
- a live alert standing when the window opens (raised up to :data:`STANDING_LOOKBACK_S` before)
  is raised again by the replay's detectors, which start fresh, at its first reading: a replayed
  alert of the same scenario, channel and detector raised before the live one cleared is that
  alert carried over, counted as ``not_compared``, not ``new``.
"""

from __future__ import annotations

import asyncio
import bisect
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TypeVar

import msgspec
import numpy as np

from api.alertbook import AlertBook, stored_events
from minewatch.stored import SliceReader
from minewatch.catalogue import SCENARIOS
from minewatch.schema import SEVERITY_RANK, AlertEvent, AlertKind
from minewatch.wire import Frame

if TYPE_CHECKING:
    from minewatch.influx import InfluxClient
    from minewatch.stored import FrameColumns

T = TypeVar("T")

__all__ = ["TelemetrySource", "ReplayResult", "run_replay", "compare", "Comparison", "live_alerts",
           "NOT_REPLAYABLE"]

NS = 1_000_000_000
NOT_REPLAYABLE = frozenset({AlertKind.vibration, AlertKind.robot_health})
STANDING_LOOKBACK_S = 86400.0  # live alerts raised this long before a window may stand when it opens
TAIL_S = 120.0  # read on this far past the last frame (a silent robot alerts after 60 s)
# Fast replays tick the detectors every 15 s of data time: a robot silent for 75 s or more is
# always seen (the detectors' dead-man time is 60 s, and the alert carries last-seen + 60 s
# whenever it is noticed), at a tenth of the per-batch cost of ticking every second.
TICK_S = 15.0
# A fast replay reads 30 minutes of data time at a time: InfluxDB answers an 8-hour shift in about
# 27 % less CPU than in 10-minute slices (0.42 against 0.58 s per hour of data), for about 80 MB
# more memory (a slice of the default mine is about 63,000 frames as columns).
SLICE_S = 1800.0


class TelemetrySource:
    """Frames of ``[start, end)`` in time order, in slices of ``slice_s`` of data time (see
    :mod:`minewatch.stored`)."""

    def __init__(self, influx: InfluxClient, start: int, end: int, *, slice_s: float = 600.0, in_flight: int = 2) -> None:
        if end <= start:
            raise ValueError("end must be after start")
        if in_flight < 1:
            raise ValueError("in_flight must be at least 1 (the slice being read)")
        self.in_flight = in_flight
        self.influx = influx
        self.start, self.end = start, end
        self.slice_ns = max(1, int(slice_s * NS))

    async def extent(self) -> tuple[int, int] | None:
        """First and last time with data in the window (None if there is none)."""
        w = f"time >= {self.start} AND time < {self.end}"
        rows = await self.influx.query(f'SELECT first("seq") FROM "telemetry" WHERE {w}; '
                                       f'SELECT last("seq") FROM "telemetry" WHERE {w}')
        if len(rows) < 2:
            return None
        return int(rows[0]["time"]), int(rows[1]["time"])

    async def bounds(self) -> list[tuple[int, int]]:
        """``(slice_start, slice_end)`` of the slices :meth:`slices` reads: none before the first
        stored frame, none past the last (plus :data:`TAIL_S`)."""
        ext = await self.extent()
        if ext is None:
            return []
        first = self.start + (ext[0] - self.start) // self.slice_ns * self.slice_ns
        last = min(self.end, ext[1] + int(TAIL_S * NS) + 1)
        bounds = [*range(first, last, self.slice_ns), last]
        return list(zip(bounds[:-1], bounds[1:]))

    async def slices(self) -> AsyncIterator[tuple[int, int, list[Frame], list[bool]]]:
        """``(slice_start, slice_end, frames, late)`` per slice, reading ahead. Stretches of the
        window before the first and after the last stored frame (plus :data:`TAIL_S`, for the
        time-driven checks to see the silence) are not read."""
        async for t0, t1, (frames, late) in self._ahead(SliceReader(self.influx).read):
            yield t0, t1, frames, late

    async def columns(self) -> AsyncIterator[tuple[int, int, FrameColumns]]:
        """:meth:`slices` as columns (:class:`minewatch.stored.FrameColumns`): what the replay
        hands the detectors."""
        async for t0, t1, cols in self._ahead(SliceReader(self.influx).read_columns):
            yield t0, t1, cols

    async def _ahead(self, read: Callable[[int, int], Coroutine[Any, Any, T]]) -> AsyncIterator[tuple[int, int, T]]:
        """``read`` of each slice in turn, the next ``in_flight - 1`` read while one is used."""
        pairs = await self.bounds()
        ahead: list[asyncio.Task[T]] = []
        try:
            for k, (t0, t1) in enumerate(pairs):
                while len(ahead) < self.in_flight and k + len(ahead) < len(pairs):
                    ahead.append(asyncio.create_task(read(*pairs[k + len(ahead)])))
                yield t0, t1, await ahead.pop(0)
        finally:
            for t in ahead:
                t.cancel()


@dataclass
class ReplayResult:
    alerts: list[AlertEvent] = field(default_factory=list)
    frames: int = 0
    data_ts: int | None = None
    elapsed_s: float = 0.0
    cancelled: bool = False


ProgressFn = Callable[[int, int], Awaitable[None] | None]  # (data_ts, frames so far)
AlertsFn = Callable[[list[AlertEvent]], Awaitable[None] | None]
FramesFn = Callable[[list[Frame]], Awaitable[None] | None]


async def _call(fn: Callable[..., Awaitable[None] | None] | None, *args: Any) -> None:
    if fn is not None:
        r = fn(*args)
        if r is not None:
            await r


def _batches(frames: list[Frame], late: list[bool], t_from: int, t_to: int, step_ns: int
             ) -> Iterable[tuple[int, list[Frame], list[bool]]]:
    """Split time-ordered ``frames`` of ``[t_from, t_to)`` at every ``step_ns`` of data time."""
    ts = [f.ts for f in frames]
    t = t_from
    while t < t_to:
        e = min(t + step_ns, t_to)
        i, j = bisect.bisect_left(ts, t), bisect.bisect_left(ts, e)
        yield e, frames[i:j], late[i:j]
        t = e


async def run_replay(influx: InfluxClient, start: int, end: int, *, overrides: Mapping[str, float] | None = None,
                     speed: float | None = None, tick_s: float = TICK_S, slice_s: float = SLICE_S,
                     on_progress: ProgressFn | None = None, on_alerts: AlertsFn | None = None,
                     on_frames: FramesFn | None = None, cancel: asyncio.Event | None = None,
                     in_flight: int = 2) -> ReplayResult:
    """Run the detectors, fresh, over ``[start, end)``.

    As fast as possible (``speed`` None), frames go to the detectors in batches of ``tick_s`` of
    data time, each followed by a ``tick`` at the batch's end (the time-driven checks such as a
    silent robot need the clock to move as it did live), in a worker thread, while the next
    ``in_flight - 1`` slices are read (1: none, one slice after another). With a ``speed`` (data
    seconds per wall second), batches are a tenth of a wall second long and ``on_frames`` gets each batch's
    latest frame per robot, on time."""
    from detectors import DetectorSuite  # numba compiles on first import: only when replaying

    suite = DetectorSuite(SCENARIOS, overrides=dict(overrides or {}))
    res = ReplayResult()
    src = TelemetrySource(influx, start, end, slice_s=slice_s if speed is None else min(slice_s, max(10.0, speed * 5)),
                          in_flight=in_flight)
    step_ns = int(tick_s * NS) if speed is None else max(1, int(speed * 0.1 * NS))
    t_wall = time.perf_counter()
    origin: int | None = None  # data time of the first slice: the paced clock starts there
    async for t0, t1, cols in src.columns():
        if cancel is not None and cancel.is_set():
            res.cancelled = True
            break
        origin = t0 if origin is None else origin
        if speed is None:
            # the whole slice in a worker thread: the event loop (the API) keeps serving
            events = await asyncio.to_thread(_process_columns, suite, cols, t0, t1, step_ns)
            res.frames += len(cols)
            res.data_ts = t1
            if events:
                res.alerts.extend(events)
                await _call(on_alerts, events)
        else:
            for e, part in _column_batches(cols, t0, t1, step_ns):
                if cancel is not None and cancel.is_set():
                    res.cancelled = True
                    break
                events = _process_part(suite, part, e)
                res.frames += len(part)
                res.data_ts = e
                if events:
                    res.alerts.extend(events)
                    await _call(on_alerts, events)
                if on_frames is not None:
                    await _call(on_frames, _latest_per_robot(part.frames()))
                lag = (e - origin) / NS / speed - (time.perf_counter() - t_wall)
                await asyncio.sleep(max(0.0, lag))
            if res.cancelled:
                break
        await _call(on_progress, t1, res.frames)
    res.elapsed_s = time.perf_counter() - t_wall
    return res


def _process(suite: Any, frames: list[Frame], late: list[bool], now: int) -> list[AlertEvent]:
    events: list[AlertEvent] = []
    if frames:
        events.extend(suite.process(frames, late=late if any(late) else None).events)
    events.extend(suite.tick(now))
    suite.engine.drain_incidents()  # a replay reports alerts; its incidents are not kept
    return events


def _process_slice(suite: Any, frames: list[Frame], late: list[bool], t0: int, t1: int, step_ns: int
                   ) -> list[AlertEvent]:
    events: list[AlertEvent] = []
    for e, batch, blate in _batches(frames, late, t0, t1, step_ns):
        events.extend(_process(suite, batch, blate, e))
    return events


def _column_batches(cols: FrameColumns, t_from: int, t_to: int, step_ns: int) -> Iterable[tuple[int, FrameColumns]]:
    """:func:`_batches` of columns."""
    t = t_from
    while t < t_to:
        e = min(t + step_ns, t_to)
        i, j = np.searchsorted(cols.ts, [t, e]).tolist()
        yield e, cols.take(i, j)
        t = e


def _process_part(suite: Any, part: FrameColumns, now: int) -> list[AlertEvent]:
    """:func:`_process` of columns (the suite's columnar entry)."""
    events: list[AlertEvent] = []
    if len(part):
        events.extend(suite.process_columns(part).events)
    events.extend(suite.tick(now))
    suite.engine.drain_incidents()  # a replay reports alerts; its incidents are not kept
    return events


def _process_columns(suite: Any, cols: FrameColumns, t0: int, t1: int, step_ns: int) -> list[AlertEvent]:
    """:func:`_process_slice` of columns."""
    events: list[AlertEvent] = []
    for e, part in _column_batches(cols, t0, t1, step_ns):
        events.extend(_process_part(suite, part, e))
    return events


def _latest_per_robot(frames: Sequence[Frame]) -> list[Frame]:
    """Each robot's latest frame, with only the readings it has (stored frames read back carry
    ``None`` for their place's channels without a value)."""
    last: dict[str, Frame] = {}
    for f in frames:
        last[f.robot_id] = f
    return [f if None not in f.readings.values() else
            msgspec.structs.replace(f, readings={k: v for k, v in f.readings.items() if v is not None})
            for f in last.values()]


# ----------------------------------------------------------------------------- comparison

@dataclass(frozen=True)
class Summary:
    alert_id: str
    scenario_id: str
    channel: str | None
    detector: str
    severity: str  # the highest reached
    first_ts: int
    kind: AlertKind


def summarise(events: Iterable[AlertEvent]) -> list[Summary]:
    """One summary per alert id, from its events."""
    by_id: dict[str, list[AlertEvent]] = {}
    for e in events:
        by_id.setdefault(e.alert_id, []).append(e)
    out = []
    for aid, evs in by_id.items():
        top = max(evs, key=lambda e: SEVERITY_RANK[e.severity])
        first = evs[0]
        out.append(Summary(aid, first.scenario_id, first.channel, first.detector, top.severity.value,
                           min(e.first_ts for e in evs), first.kind))
    return sorted(out, key=lambda s: s.first_ts)


@dataclass
class Comparison:
    same: list[tuple[Summary, Summary]] = field(default_factory=list)  # (replayed, live)
    missed: list[Summary] = field(default_factory=list)
    new: list[Summary] = field(default_factory=list)
    not_compared: int = 0
    tolerance_s: float = 2.0


def compare(replayed: Iterable[AlertEvent], live: Iterable[AlertEvent], start: int, end: int,
            tolerance_s: float = 2.0) -> Comparison:
    """Same / missed / new, as the module docstring defines them."""
    tol = int(tolerance_s * NS)
    out = Comparison(tolerance_s=tolerance_s)
    rep = [s for s in summarise(replayed) if start <= s.first_ts < end]
    liv = []
    for s in summarise(live):
        if not start <= s.first_ts < end:
            continue
        if s.kind in NOT_REPLAYABLE:
            out.not_compared += 1
            continue
        liv.append(s)
    rep_open = [s for s in rep if s.kind not in NOT_REPLAYABLE]
    out.not_compared += len(rep) - len(rep_open)
    standing = _standing(live, start, end)
    for r in rep_open:
        hit = None
        for cand in liv:
            if (cand.scenario_id, cand.channel, cand.detector, cand.severity) == \
                    (r.scenario_id, r.channel, r.detector, r.severity) and abs(cand.first_ts - r.first_ts) <= tol:
                hit = cand
                break
        if hit is None and standing.get((r.scenario_id, r.channel, r.detector), -1) >= r.first_ts:
            out.not_compared += 1  # a live alert standing at the start, carried over
        elif hit is None:
            out.new.append(r)
        else:
            liv.remove(hit)
            out.same.append((r, hit))
    out.missed = liv
    return out


def _standing(live: Iterable[AlertEvent], start: int, end: int) -> dict[tuple[str, str | None, str], int]:
    """The live alerts standing when the window opens: (scenario, channel, detector) → when the
    alert cleared (``end`` if not in the window)."""
    last: dict[str, AlertEvent] = {}  # each alert's last event before the start
    cleared: dict[str, int] = {}  # and its first clear after it
    for e in sorted(live, key=lambda e: e.ts):
        if e.ts < start:
            last[e.alert_id] = e
        elif e.state.value == "cleared" and e.alert_id not in cleared:
            cleared[e.alert_id] = e.ts
    return {(e.scenario_id, e.channel, e.detector): cleared.get(aid, end)
            for aid, e in last.items() if e.state.value != "cleared"}


async def live_alerts(influx: InfluxClient, start: int, end: int) -> list[AlertEvent]:
    """Alert events recorded in ``[start, end)``, live or from loaded history (what the replay,
    which stops at ``end``, can be held against), and those of the day before, for the alerts
    standing when it opens."""
    book = AlertBook(include_historical=True)
    since = start - int(STANDING_LOOKBACK_S * NS)
    book.apply_all(await stored_events(influx, f"time >= {since} AND time < {end}"))
    return [e for a in book for e in a.events]
