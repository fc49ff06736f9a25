"""Building the public views of scenarios and robots from the catalogue and the live state."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

from api.schemas import (ChannelPublic, LatestReading, LimitPublic, QuantityDisplay, RobotPublic, ScenarioPublic,
                         WatchPublic)
from minewatch.catalogue import QUANTITIES, Channel, Scenario
from minewatch.schema import SEVERITY_RANK, Link, Severity
from minewatch.wire import Frame

if TYPE_CHECKING:
    from api.live import LiveState

__all__ = ["scenario_public", "robot_public", "channel_public", "latest_readings", "merge_readings", "watch_public",
           "beyond"]


def channel_public(c: Channel) -> ChannelPublic:
    q = QUANTITIES[c.quantity]
    return ChannelPublic(
        name=c.name, label=c.label, quantity=c.quantity, unit=c.unit,
        display=QuantityDisplay(decimals=q.decimals, short=q.short, unit=q.unit, signed=q.signed),
        low=c.low, high=c.high, normal=c.normal,
        limits=[LimitPublic(direction=lim.direction, levels=dict(lim.levels), restore=lim.restore, rule=lim.rule,
                            action=lim.action) for lim in c.limits])


def beyond(c: Channel | None, value: float | None) -> Severity | None:
    """The most severe limit level of channel ``c`` that ``value`` is at or past (air velocity by
    its size: its sign is the direction of the flow)."""
    if c is None or value is None:
        return None
    v = abs(value) if QUANTITIES[c.quantity].signed else value
    worst: Severity | None = None
    for lim in c.limits:
        for sev, thr in lim.levels:
            met = v >= thr if lim.direction == "above" else v < thr
            if met and (worst is None or SEVERITY_RANK[Severity(sev)] > SEVERITY_RANK[worst]):
                worst = Severity(sev)
    return worst


def latest_readings(frames: list[Frame], sc: Scenario | None = None) -> dict[str, LatestReading]:
    """Per channel, the value of the newest frame that carried it (and the limit level it is past)."""
    out: dict[str, LatestReading] = {}
    cmap = sc.channel_map if sc is not None else {}
    for f in sorted(frames, key=lambda f: f.ts):
        for ch, v in f.readings.items():
            out[ch] = LatestReading(value=v, ts=f.ts, robot_id=f.robot_id, beyond=beyond(cmap.get(ch), v))
    return out


WATCH_STALE_REFRESHES = 3


def watch_public(live: LiveState, scenario_id: str) -> WatchPublic:
    """Whether the detectors watch ``scenario_id``, from the ingestor's retained ``watch/{scenario}``:
    not when it says so, when it has not said anything, or when it last spoke more than three of its
    refreshes ago (the ingest process is stopped or cut off)."""
    got = live.watch.get(scenario_id)
    if got is None:
        return WatchPublic(watched=False, state="no_ingest", detail="no word from the ingest process that owns it")
    ws, arrived = got
    now = time.time_ns()
    quiet = (now - max(arrived if ws.ts is None else min(arrived, ws.ts + 5_000_000_000), 0)) / 1e9
    if quiet > WATCH_STALE_REFRESHES * ws.every_s:
        return WatchPublic(watched=False, state="no_ingest", ts=ws.ts,
                           detail=f"the ingest process {ws.partition} has not reported for {quiet:.0f} s")
    return WatchPublic(watched=ws.watched, state=ws.state, detail=ws.detail, ts=ws.ts)


def merge_readings(*sources: dict[str, LatestReading]) -> dict[str, LatestReading]:
    out: dict[str, LatestReading] = {}
    for src in sources:
        for ch, r in src.items():
            if ch not in out or r.ts > out[ch].ts:
                out[ch] = r
    return out


def robot_public(live: LiveState, robot_id: str) -> RobotPublic:
    st = live.robots.get(robot_id)
    f = live.robot_frame(robot_id)
    out = RobotPublic(robot_id=robot_id, online=bool(st.online) if st else f is not None)
    if st is not None:
        out.scenario_id, out.pos_m, out.battery, out.charging = st.scenario_id, st.pos_m, st.battery, st.charging
        out.link, out.status_ts = st.link, st.ts
    if f is not None and (st is None or st.ts is None or f.ts >= st.ts):
        # the frame is newer than the status: it says where the robot is now
        out.scenario_id = f.scenario_id
        out.pos_m = f.pos_m if f.pos_m is not None else out.pos_m
        out.battery = f.battery if f.battery is not None else out.battery
        if f.link is not None:
            out.link = Link(latency_ms=f.link.latency_ms, rssi_dbm=f.link.rssi_dbm, loss=f.link.loss)
    if f is not None:
        out.last_seen_ts, out.seq = f.ts, f.seq
    return out


def scenario_public(live: LiveState, sc: Scenario, robots: list[RobotPublic] | None = None) -> ScenarioPublic:
    active = [a.public() for a in live.book.active() if a.latest.scenario_id == sc.id]
    active.sort(key=lambda a: (-SEVERITY_RANK[a.severity], -a.ts))
    worst = active[0] if active else None
    if robots is None:
        robots = [robot_public(live, r) for r in live.robot_ids()]
    return ScenarioPublic(
        id=sc.id, name=sc.name, kind=sc.kind.value, group=sc.kind.group,
        machine=sc.machine.name if sc.machine else None, channels=[channel_public(c) for c in sc.channels],
        status=worst.severity.value if worst else "ok", worst_alert=worst, active_alerts=len(active),
        readings=latest_readings(live.frames_of(sc.id), sc), watch=watch_public(live, sc.id),
        robots=sorted(r.robot_id for r in robots if r.online and r.scenario_id == sc.id))
