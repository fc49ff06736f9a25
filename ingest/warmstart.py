"""Warm start: what an ingest process takes over from the last one.

At start the ingestor restores the active alerts and incidents (retained on the broker), runs the
last ``warmup_s`` of stored readings through the detectors (so rate of rise, stuck sensors, change
and drift work from the first live frame, and an alert whose condition ended while it was down is
cleared, one still there is not raised twice), and picks up each robot's numbering where the
stored readings end (so redelivered messages count as repeats and a gap meanwhile as a gap).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Sequence
from typing import Any

from minewatch.influx import InfluxClient
from minewatch.schema import AlertEvent, AlertState, AlertTiming, IncidentEvent
from minewatch.stored import SliceReader
from minewatch.wire import Frame

from ingest.partition import Partition
from ingest.pipeline import catalogue_only
from ingest.seqtrack import SeqTracker

__all__ = ["read_recent", "reconcile", "restore_seq", "restore_seq_from", "take_over"]

log = logging.getLogger("minewatch.ingest")
_NS = 1_000_000_000


async def read_recent(influx: InfluxClient, scenarios: list[str], warmup_s: float,
                      ahead_s: float) -> tuple[list[Frame], dict[int, int]]:
    """The last ``warmup_s`` of these scenarios' stored telemetry (best effort), and the robots'
    own times of frames stored at a corrected time (by index)."""
    now = time.time_ns()
    t0 = now - int(warmup_s * _NS)
    t1 = now + int(ahead_s * _NS) + 1
    try:
        reader = SliceReader(influx, only=scenarios)
        frames, _, own = await asyncio.wait_for(reader.read_with_robot_ts(t0, t1), 60)
    except Exception as exc:  # noqa: BLE001 - the detectors then start cold; nothing is lost
        log.warning("could not read the last %.0f s of telemetry to warm up on (%s); detectors start cold",
                    warmup_s, exc)
        return [], {}
    return frames, own


def restore_seq_from(seq: SeqTracker, frames: Sequence[Frame], own: dict[int, int]) -> None:
    """Each robot's numbering from its recent stored frames: the newest, and the exact ``(seq, ts)``
    of that boot's others (the robot's own ts), so redelivered messages are known as repeats; and
    likewise the boots it left within them, so that a backlog of one is known as held back."""
    by_robot: dict[str, list[tuple[Frame, int]]] = {}
    for i, f in enumerate(frames):
        by_robot.setdefault(f.robot_id, []).append((f, own.get(i, f.ts)))
    for robot, fs in by_robot.items():
        boots: dict[int | None, list[tuple[Frame, int]]] = {}
        for p in fs:
            boots.setdefault(p[0].boot, []).append(p)
        # each boot's newest frame; the newest of all first (the current boot), then the older boots
        newest = sorted(((max(b, key=lambda p: (p[0].ts, p[0].seq)), b) for b in boots.values()),
                        key=lambda nb: (nb[0][0].ts, nb[0][0].seq), reverse=True)
        for k, ((f, f_ts), b) in enumerate(newest):
            recent = [(g.seq, t) for g, t in b]
            if k == 0:
                if not seq.restore(robot, f.seq, f_ts, f.boot, recent):
                    break
            elif f.boot is not None:  # a boot left within the warm-up: its backlog is known as such
                seq.restore_older(robot, f.seq, f_ts, f.boot, recent)


async def restore_seq(influx: InfluxClient, seq: SeqTracker, partition: Partition, restore_s: float) -> None:
    """Each robot's last stored frame of the last ``restore_s`` (this partition's scenarios; robots
    the warm-up did not see), so that counting goes on across a restart: messages the last process
    stored but had not acknowledged come again and count as repeats (and skip the detectors),
    frames missed meanwhile count as a gap, and a robot that restarted meanwhile is told from them
    by its boot or its time. Best effort: a failed query only logs."""
    if restore_s <= 0:
        return
    rp = f'"{influx.rp}".' if influx.rp else ""
    q = (f'SELECT "seq", "boot", "robot_ts" FROM {rp}"telemetry" WHERE time > now() - '
         f'{int(restore_s)}s GROUP BY "robot", "scenario" ORDER BY time DESC LIMIT 1')
    try:
        rows = await asyncio.wait_for(influx.query(q), 30)
    except Exception as exc:  # noqa: BLE001 - counting, not storage, depends on it
        log.warning("could not read the robots' last seq from InfluxDB (%s); counting starts afresh", exc)
        return
    last: dict[str, tuple[int, int, int | None]] = {}  # robot -> (time, seq, boot) of its newest frame here
    for r in rows:
        if r.get("seq") is None or not partition.owns(r.get("scenario", "")):
            continue
        t, v = int(r["time"]), int(r["seq"])
        if r.get("robot_ts") is not None:  # a corrected clock: the robot's own time names the reading
            t = int(r["robot_ts"])
        boot = int(r["boot"]) if r.get("boot") is not None else None
        if r["robot"] not in last or t > last[r["robot"]][0]:
            last[r["robot"]] = (t, v, boot)
    n = sum(seq.restore(robot, v, t, boot) for robot, (t, v, boot) in last.items())
    log.info("restored the last seq of %d robot(s) from their newest stored frame (of %d with frames in the last "
             "%d s; the others' numbering came from the frames of the warm-up)", n, len(last), int(restore_s))


def reconcile(suite: Any, frames: list[Frame], restored: list[AlertEvent],
              late_after_ns: int) -> tuple[list[AlertEvent], list[IncidentEvent]]:
    """Run the recent stored frames through the live detectors, holding the restored alerts, and
    return what that changed, for publishing: a restored alert whose condition ended clears; one
    still there goes on (a raise in the stored frames joins it, no second alert); a condition the
    stored frames show now but no alert held (the last process stopped before publishing it) is
    raised, marked late. What rose and ended within the window was the last process's to report,
    and is not reported again."""
    before = {e.alert_id for e in restored}
    restored_incidents = {i.incident_id for i in suite.engine.active_incidents()}
    try:
        det = suite.process(catalogue_only(frames), late=[False] * len(frames))
    except Exception:
        log.exception("detectors failed warming up on %d stored frames; they start cold", len(frames))
        return [], []
    now = time.time_ns()
    active = {e.alert_id for e in suite.active()}
    out: list[AlertEvent] = []
    for ev in det.events:
        if ev.alert_id in before:
            if ev.state in (AlertState.cleared, AlertState.escalated):
                out.append(ev)
        elif ev.alert_id in active:
            late = now - ev.ts > late_after_ns
            out.append(ev.model_copy(update={"timing": AlertTiming.late}) if late else ev)
    for ev in out:
        ev.evidence["reconciled"] = "at the ingestor's start, against the last stored readings"
    latest: dict[str, IncidentEvent] = {}
    for inc in suite.engine.drain_incidents():
        latest[inc.incident_id] = inc
    open_now = {i.incident_id for i in suite.engine.active_incidents()}
    incidents = [i for iid, i in latest.items() if iid in restored_incidents or iid in open_now]
    log.info("warm-up: %d event(s) and %d incident step(s) to publish", len(out), len(incidents))
    return out, incidents


async def take_over(influx: InfluxClient, influx_ok: bool, opts: Any, partition: Partition, scenarios: list[str],
                    router: Any, suite: Any, pipeline: Any, alerts: list[AlertEvent],
                    incidents: list[IncidentEvent]) -> None:
    """The warm start of one partition's pipeline (an ingest process, or a group worker's share
    of one mine): the robots' numbering, the restored active ``alerts`` and ``incidents`` (of
    this partition), and the detectors run over the last ``opts.warmup_s`` of stored readings;
    what that changed waits in ``pipeline`` to be published first."""
    frames: list[Frame] = []
    own: dict[int, int] = {}
    if influx_ok and opts.warmup_s > 0:
        frames, own = await read_recent(influx, scenarios, opts.warmup_s, opts.clock_tolerance_s)
    restore_seq_from(router.seq, frames, own)
    if influx_ok:
        await restore_seq(influx, router.seq, partition, opts.seq_restore_s)
    if suite is None:
        return
    restored = suite.restore(alerts, incidents, seed=False)
    router.clock_alerts = {e.robot_id for e in restored if e.detector == "robot_clock" and e.robot_id}
    if frames:
        events, steps = reconcile(suite, frames, restored, router.clocks.late_after)
        pipeline.startup_events, pipeline.startup_incidents = events, steps
    suite.seed(suite.active())
    # one line: the log limiter lets five of one line through a minute, and a restart holding an
    # alarm flood would otherwise name five of its alerts
    held = ", ".join(e.alert_id for e in restored[:20]) + (f" and {len(restored) - 20} more" if len(restored) > 20 else "")
    log.info("%s: restored %d active alert(s) in %d incident(s)%s; warmed up on %d stored frame(s)%s", partition,
             len(restored), len(suite.engine.active_incidents()), f" ({held})" if restored else "", len(frames),
             f" up to {max(f.ts for f in frames)}" if frames else "")
