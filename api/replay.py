"""Replay jobs: run the detectors over a recorded shift or window, in the API process.

A job runs as an asyncio task (the detector batches in a worker thread, so the API keeps
serving). It keeps its progress and alerts, and fans them out to stream clients through a hub of
its own; when done it holds the comparison with the alerts recorded live. The last
:data:`KEEP` jobs are kept; at most :data:`MAX_RUNNING` run at once.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from api.alertbook import AlertBook
from api.hub import Hub, Message
from api.replay_engine import compare, live_alerts, run_replay
from api.schemas import ReplayCreate, ReplayDiff, ReplayPublic
from api.times import parse_time
from api.frames import frame_json
from minewatch.schema import AlertEvent
from minewatch.wire import Frame

if TYPE_CHECKING:
    from api.metrics import Metrics
    from minewatch.influx import InfluxClient
    from minewatch.shifts import ShiftCalendar

__all__ = ["ReplayManager", "ReplayJob", "ReplayRefused", "resolve_window", "check_overrides",
           "MAX_RUNNING", "KEEP", "MAX_WINDOW_S"]

log = logging.getLogger("minewatch.api")
MAX_RUNNING = 2
KEEP = 50
MAX_WINDOW_S = 7 * 86400
NS = 1_000_000_000


class ReplayRefused(Exception):
    """The request cannot start a job; ``status`` is the HTTP status to answer with."""

    def __init__(self, status: int, detail: str) -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail

    def __repr__(self) -> str:
        return f"ReplayRefused({self.status}, {self.detail!r})"


NO_DATA_NOTE = "no telemetry is stored in this window: there was nothing to replay"


def resolve_window(calendar: ShiftCalendar, shift: str | None, start: str | int | None, end: str | int | None
                   ) -> tuple[str | None, int, int]:
    """``(shift id, start ns, end ns)`` from a shift id or a start and end; ``ValueError`` with a
    sentence otherwise."""
    if shift is not None:
        if start is not None or end is not None:
            raise ValueError("give a shift or a start and end, not both")
        try:
            s = calendar.parse(shift)
        except OverflowError:
            raise ValueError(f"shift {shift!r} is out of range") from None
        return s.id, s.start_ns, s.end_ns
    if start is None or end is None:
        raise ValueError("give a shift (YYYY-MM-DD:NAME) or both start and end")
    t0, t1 = parse_time(start, "start"), parse_time(end, "end")
    # an end not after the start is an empty window: nothing to replay, done at once
    t1 = max(t1, t0)
    # at most MAX_WINDOW_S: a longer window is cut to its first days (the job shows the end it took)
    return None, t0, min(t1, t0 + MAX_WINDOW_S * NS)


def check_overrides(overrides: Mapping[str, float]) -> dict[str, float]:
    """The overrides as the detectors will use them; ``ValueError`` if one is malformed or
    matches no limit."""
    from detectors import DetectorSuite, parse_overrides

    parsed = parse_overrides([f"{k}={v!r}" for k, v in overrides.items()])
    DetectorSuite(overrides=parsed)  # a key that matches nothing raises here
    return parsed


@dataclass(eq=False)
class ReplayJob:
    id: str
    shift: str | None
    start: int
    end: int
    overrides: dict[str, float]
    speed: float | None
    created_by: str
    state: str = "queued"
    error: str | None = None
    frames: int = 0
    data_ts: int | None = None
    t_started: float | None = None
    t_finished: float | None = None
    alerts: list[AlertEvent] = field(default_factory=list)
    diff: ReplayDiff | None = None
    hub: Hub = field(default_factory=Hub)
    cancel: asyncio.Event = field(default_factory=asyncio.Event)
    task: asyncio.Task[None] | None = None

    @property
    def finished(self) -> bool:
        return self.state in ("done", "failed", "cancelled")

    @property
    def elapsed_s(self) -> float:
        if self.t_started is None:
            return 0.0
        return (self.t_finished or time.perf_counter()) - self.t_started

    def public(self, with_alerts: bool = True) -> ReplayPublic:
        covered = ((self.data_ts or self.start) - self.start) / NS
        el = self.elapsed_s
        return ReplayPublic(
            id=self.id, state=self.state, shift=self.shift, start=self.start, end=self.end,  # type: ignore[arg-type]
            overrides=self.overrides, speed=self.speed,
            progress=min(1.0, max(0.0, covered * NS / max(1, self.end - self.start))), frames=self.frames,
            data_ts=self.data_ts, elapsed_s=round(el, 3), x_realtime=round(covered / el, 1) if el > 0 and covered else None,
            alert_count=len(self.alerts), alerts=list(self.alerts) if with_alerts else [], diff=self.diff,
            error=self.error, note=NO_DATA_NOTE if self.state == "done" and not self.frames else None,
            created_by=self.created_by)

    def progress_message(self) -> Message:
        p = self.public(with_alerts=False)
        return {"type": "progress", "data": {"state": p.state, "progress": p.progress, "frames": p.frames,
                                             "data_ts": p.data_ts, "elapsed_s": p.elapsed_s,
                                             "x_realtime": p.x_realtime, "alert_count": p.alert_count}}

    # sinks of run_replay
    def on_progress(self, data_ts: int, frames: int) -> None:
        self.data_ts, self.frames = data_ts, frames
        self.hub.publish(self.progress_message())

    def on_alerts(self, events: list[AlertEvent]) -> None:
        self.alerts.extend(events)
        for e in events:
            self.hub.publish({"type": "alert", "data": e.model_dump(mode="json")})

    def on_frames(self, frames: list[Frame]) -> None:
        for f in frames:
            self.hub.publish({"type": "reading", "data": frame_json(f)})


class ReplayManager:
    def __init__(self, influx: InfluxClient, metrics: Metrics, calendar: ShiftCalendar) -> None:
        self.influx = influx
        self.metrics = metrics
        self.calendar = calendar
        self._jobs: dict[str, ReplayJob] = {}
        self._warm: asyncio.Task[None] | None = None

    def warm_up(self) -> None:
        """Import the detectors (numba loads its compiled kernels) in a worker thread now, so the
        first replay does not wait for it."""
        self._warm = asyncio.create_task(asyncio.to_thread(_import_detectors), name="detectors-import")

    def list(self) -> list[ReplayJob]:
        return sorted(self._jobs.values(), key=lambda j: j.id)[::-1]

    def get(self, job_id: str) -> ReplayJob | None:
        return self._jobs.get(job_id)

    def create(self, req: ReplayCreate, created_by: str) -> ReplayJob:
        try:
            shift, start, end = resolve_window(self.calendar, req.shift, req.start, req.end)
        except ValueError as exc:
            # the body's shape is checked already: a shift that fails here is one the calendar lacks
            raise ReplayRefused(404 if req.shift is not None else 422, str(exc)) from None
        try:
            overrides = check_overrides(req.overrides)
        except ValueError as exc:
            raise ReplayRefused(422, str(exc)) from None
        except ImportError as exc:
            raise ReplayRefused(503, f"the detectors are not installed: {exc}") from None
        if sum(not j.finished for j in self._jobs.values()) >= MAX_RUNNING:
            raise ReplayRefused(429, f"{MAX_RUNNING} replays are running; wait for one or cancel it")
        job = ReplayJob(id=f"rp-{time.strftime('%Y%m%dT%H%M%S')}-{uuid.uuid4().hex[:6]}", shift=shift, start=start,
                        end=end, overrides=overrides, speed=req.speed, created_by=created_by)
        self._jobs[job.id] = job
        self._trim()
        job.task = asyncio.create_task(self._run(job), name=f"replay-{job.id}")
        return job

    def _trim(self) -> None:
        done = [j for j in self.list() if j.finished]
        for j in done[KEEP:]:
            self._jobs.pop(j.id, None)

    async def _run(self, job: ReplayJob) -> None:
        job.state = "running"
        job.t_started = time.perf_counter()
        job.hub.publish(job.progress_message())
        try:
            res = await run_replay(self.influx, job.start, job.end, overrides=job.overrides, speed=job.speed,
                                   on_progress=job.on_progress, on_alerts=job.on_alerts, on_frames=job.on_frames,
                                   cancel=job.cancel)
            job.frames = res.frames
            if res.cancelled:
                job.state = "cancelled"
            else:
                job.data_ts = job.end
                job.diff = await self.diff(job)
                job.state = "done"
        except asyncio.CancelledError:
            job.state = "cancelled"
        except Exception as exc:  # noqa: BLE001 - a job's failure is reported on the job
            log.exception("replay %s failed", job.id)
            job.state, job.error = "failed", f"{exc.__class__.__name__}: {exc}"
        finally:
            job.t_finished = time.perf_counter()
            self.metrics.replays.labels(job.state).inc()
            self.metrics.replay_frames.inc(job.frames)
            job.hub.publish({"type": "done", "data": job.public(with_alerts=False).model_dump(mode="json")})

    async def diff(self, job: ReplayJob) -> ReplayDiff:
        live = await live_alerts(self.influx, job.start, job.end)
        cmp = compare(job.alerts, live, job.start, job.end)
        book = AlertBook()
        book.apply_all(live)
        missed = [a.public() for s in cmp.missed if (a := book.get(s.alert_id)) is not None]
        return ReplayDiff(same=len(cmp.same), missed=len(cmp.missed), new=len(cmp.new),
                          not_compared=cmp.not_compared, tolerance_s=cmp.tolerance_s, missed_alerts=missed,
                          new_alerts=[s.alert_id for s in cmp.new])

    def cancel(self, job: ReplayJob) -> None:
        job.cancel.set()

    def forget(self, job: ReplayJob) -> None:
        """Drop ``job`` from the jobs kept: its id answers 404 from now on."""
        self._jobs.pop(job.id, None)

    async def aclose(self) -> None:
        tasks = [j.task for j in self._jobs.values() if j.task is not None and not j.task.done()]
        if self._warm is not None:
            tasks.append(self._warm)
        for t in tasks:
            t.cancel()
        if tasks:
            done, _ = await asyncio.wait(tasks, timeout=5.0)
            for t in done:
                if not t.cancelled():
                    t.exception()


def _import_detectors() -> None:
    try:
        import detectors  # noqa: F401
    except ImportError as exc:  # reported when a replay is asked for
        log.warning("detectors unavailable: %s", exc)
