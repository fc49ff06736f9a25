"""The simulation loop: mine physics, fleet, sensors, faults and the 5G link, tick by tick."""

from __future__ import annotations

import math
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from minewatch.catalogue import SCENARIOS
from minewatch.schema import Link, RobotStatus
from minewatch.shifts import ShiftCalendar, calendar_from_env
from minewatch.wire import Frame, LinkInfo, WaveBlock
from simulator.faults import FaultError, FaultSpec, resolve
from simulator.fleet import Robot, build_fleet
from simulator.injector import Injector
from simulator.labels import LabelTracker
from simulator.link import LinkModel
from simulator.mine import Mine, channel_index
from simulator.shifts import ShiftClock
from simulator.timeutil import NS
from simulator.vibration import encode_block, synthesize

__all__ = ["SimConfig", "Simulation", "Message", "StatusUpdate", "Tick", "Readings"]

STATUS_EVERY_NS = 60 * NS  # a robot's retained status is refreshed every minute
# A vibration block spans at least this many shaft revolutions, whatever ``waveform_seconds`` says:
# bearing diagnosis needs the closest fault lines two block bins apart, 1.2 revolutions for the
# catalogue's slow machines (the 60 rpm belt drum: 1.17 s), so the drum's blocks are 2 s.
WAVEFORM_MIN_REVOLUTIONS = 2.0


@dataclass
class SimConfig:
    """Everything that decides a run; the same config gives byte-identical output.

    ``start_ns`` None means now (floored to the second); pass it for reproducible runs.
    ``frames`` stops after exactly that many telemetry frames; ``duration_s`` after that much
    simulated time; with neither the run is endless.
    """

    seed: int = 1
    rate_hz: float = 1.0
    start_ns: int | None = None
    duration_s: float | None = None
    frames: int | None = None
    robots: int | None = None
    scenarios: list[str] | None = None
    faults: list[FaultSpec] = field(default_factory=list)
    waveform_rate_hz: float = 0.0
    waveform_seconds: float = 0.5
    waveform_every: int = 10
    waveform_dtype: str = "f4"
    calendar: ShiftCalendar | None = None  # default: minewatch.shifts.calendar_from_env()
    keepalive_s: float = 10.0
    backlog_chunk: int = 100
    backlog_messages_per_tick: int = 2
    # The fleet's boot number (frames' ``boot``): a run's robots start counting seq at 0, so each
    # run is a boot of its own. Default: the run's start time in milliseconds.
    boot: int | None = None

    def __post_init__(self) -> None:
        if not (0.0 < self.rate_hz <= 1000.0):
            raise ValueError("rate must be in (0, 1000] Hz")
        if self.frames is not None and self.frames < 0:
            raise ValueError("frames must be >= 0")
        if self.waveform_rate_hz and not (1000.0 <= self.waveform_rate_hz <= 200_000.0):
            raise ValueError("waveform rate must be 0 (off) or 1000-200000 Hz")
        if self.waveform_dtype not in ("f4", "i2"):
            raise ValueError("waveform dtype must be f4 or i2")
        if self.waveform_every < 1 or self.waveform_seconds <= 0:
            raise ValueError("waveform_every must be >= 1 and waveform_seconds > 0")


@dataclass(slots=True)
class Message:
    """One MQTT telemetry message: one frame, or an array of frames of one robot in one scenario."""

    robot_id: str
    scenario_id: str
    frames: list[Frame]
    backlog: bool = False


@dataclass(slots=True)
class StatusUpdate:
    """A robot status change. ``event``: ``status`` (publish retained), ``offline`` (the connection
    drops and the broker publishes the will), ``online`` (reconnect, then publish retained)."""

    robot_id: str
    event: str
    status: RobotStatus


@dataclass(slots=True)
class Readings:
    """Every robot's readings at one tick: robot ``i`` (fleet order) is in ``scenario_ids[i]`` and its
    readings are ``values[offsets[i]:offsets[i + 1]]``, in catalogue channel order; ``channels`` holds
    each value's index in the mine's flat channel arrays (:meth:`simulator.mine.Mine.names`)."""

    t_ns: int
    scenario_ids: list[str]
    offsets: np.ndarray
    channels: np.ndarray
    values: np.ndarray


@dataclass(slots=True)
class Tick:
    t_ns: int
    messages: list[Message]
    statuses: list[StatusUpdate]


class _RobotState:
    __slots__ = ("seq", "backlog", "down_since", "will_sent", "retry", "charging", "hole_since",
                 "hole_last", "offline", "last_status")

    def __init__(self) -> None:
        self.seq = 0
        self.backlog: list[Frame] = []
        self.down_since: int | None = None
        self.will_sent = False
        self.retry: Frame | None = None
        self.charging = False
        self.hole_since: int | None = None
        self.hole_last = 0
        self.offline = False
        self.last_status = -math.inf


class Simulation:
    """A run of the mine. Iterate :meth:`ticks` (or :meth:`frames`); labels after the run."""

    def __init__(self, config: SimConfig) -> None:
        self.config = config
        c = config
        seeds = np.random.SeedSequence(c.seed).spawn(3)
        self.rng_sensor = np.random.default_rng(seeds[1])
        self.link_model = LinkModel(np.random.default_rng(seeds[2]))
        self.dt = 1.0 / c.rate_hz
        self.dt_ns = round(self.dt * NS)
        self.t0 = c.start_ns if c.start_ns is not None else (time.time_ns() // NS) * NS
        self.boot = c.boot if c.boot is not None else self.t0 // 1_000_000
        self.calendar = ShiftClock(c.calendar if c.calendar is not None else calendar_from_env())
        self.fleet: list[Robot] = build_fleet(c.robots, c.scenarios)
        ids = [r.id for r in self.fleet]
        self.robot_of: dict[str, str | None] = {}
        for r in self.fleet:
            if r.kind != "patrol":
                self.robot_of.setdefault(r.route.segments[0][0], r.id)

        def robots_in(sid: str | None) -> list[str]:
            return [r.id for r in self.fleet if r.kind != "patrol" and r.route.segments[0][0] == sid]

        faults = resolve(c.faults, self.t0, channel_index, robots_in)
        self.mine = Mine(self.calendar, np.random.default_rng(seeds[0]), self.dt, self.t0,
                         rows=Injector.rows_needed(faults))
        for f in faults:
            if f.robot is not None and f.robot not in ids:
                raise FaultError(f"fault {f.fault_id}: robot {f.robot!r} is not in the fleet ({', '.join(ids[:8])}...)")
            if f.robot is not None and f.scenario is None:
                f.scenario = next(r.scenario for r in self.fleet if r.id == f.robot)
        self.faults = faults
        self.injector = Injector(self.mine, faults)
        n = len(self.fleet)
        self.tracker = LabelTracker(self.mine, faults, self.robot_of, self.injector.reach,
                                    spread_ns=(n - 1) * self.dt_ns // n,
                                    will_after_ns=round(1.5 * c.keepalive_s * NS))
        self.state = [_RobotState() for _ in self.fleet]
        self.coverage: list[dict[str, Any]] = []
        self._coverage_sent = 0
        self._last_t = self.t0
        self._sid_idx = {sid: np.arange(sl.start, sl.stop) for sid, sl in self.mine.slices.items()}
        self._names = {sid: self.mine.names[sl] for sid, sl in self.mine.slices.items()}
        n_st = max(len(r.route.stations_m) for r in self.fleet)
        n_h = max([len(r.route.holes_m) for r in self.fleet] + [1])
        self._stations = np.full((len(self.fleet), n_st), 1e9)
        self._holes = np.full((len(self.fleet), n_h, 2), -1.0)
        for ri, r in enumerate(self.fleet):
            self._stations[ri, :len(r.route.stations_m)] = r.route.stations_m
            for j, hole in enumerate(r.route.holes_m):
                self._holes[ri, j] = hole
        self._machine = {sid: sc.machine for sid, sc in SCENARIOS.items()}
        self._loss_a = 1.0 - math.exp(-self.dt / 60.0)  # the link's loss ratio: a 1-min moving average
        self._loss = np.zeros(len(self.fleet))
        self._phase = [ri * self.dt_ns // len(self.fleet) for ri in range(len(self.fleet))]
        self.frames_generated = 0
        self.readings_generated = 0
        self.finished = False

    # ------------------------------------------------------------------ public
    def frames(self) -> Iterator[list[Frame]]:
        """Frame batches in publish order, one per MQTT message (topic-free)."""
        for tick in self.ticks():
            for msg in tick.messages:
                yield msg.frames

    def labels(self) -> list[dict[str, Any]]:
        """Ground-truth records (see :mod:`simulator.labels`), complete once the run has ended."""
        return self.tracker.labels() + self.coverage

    def finished_labels(self) -> list[dict[str, Any]]:
        """Records that became final since the last call (all the rest once the run has ended)."""
        if self.finished:
            out = self.tracker.rest() + self.coverage[self._coverage_sent:]
        else:
            out = self.tracker.done(self._last_t) + self.coverage[self._coverage_sent:]
        self._coverage_sent = len(self.coverage)
        return out

    def ticks(self) -> Iterator[Tick]:
        c = self.config
        end_ns = self.t0 + round(c.duration_s * NS) if c.duration_s is not None else None
        i = 0
        while True:
            t = self.t0 + i * self.dt_ns
            if end_ns is not None and t >= end_ns:
                break
            if c.frames is not None and self.frames_generated >= c.frames:
                break
            yield self._tick(i, t)
            i += 1
        self.finished = True
        tail = self._flush(self.t0 + i * self.dt_ns)
        if tail.messages or tail.statuses:
            yield tail

    # ------------------------------------------------------------------ one step
    def readings(self) -> Iterator[Readings]:
        """The sensor readings of every robot, tick by tick, without building frames or running the
        link: the numbers the frames would carry (for fast whole-shift checks)."""
        c = self.config
        end_ns = self.t0 + round(c.duration_s * NS) if c.duration_s is not None else None
        i = 0
        while end_ns is None or self.t0 + i * self.dt_ns < end_ns:
            yield self._measure(i, self.t0 + i * self.dt_ns)
            i += 1
        self.finished = True

    def _measure(self, i: int, t: int) -> Readings:
        """Move the robots, step the mine, and read every robot's sensors (noise, resolution, faults)."""
        m = self.mine
        self._last_t = t
        if i:
            for r in self.fleet:
                r.advance(self.dt)
        eff = self.injector.effects(t)
        values = m.step(t, eff)
        self.tracker.observe(t, values)
        sids = [r.scenario for r in self.fleet]
        idx = np.concatenate([self._sid_idx[s] for s in sids])
        true = values[1, idx]
        noise = self.rng_sensor.standard_normal(len(idx)) * (m.noise_sd[idx] + m.noise_rel[idx] * np.abs(true))
        inv = m.inv_res[idx]
        x = np.rint(np.clip(true + noise, m.qlo[idx], m.qhi[idx]) * inv) / inv
        offsets = np.zeros(len(self.fleet) + 1, dtype=np.int64)
        np.cumsum([len(self._sid_idx[s]) for s in sids], out=offsets[1:])
        for f in self.injector.sensor_active(t):
            local = f.k - m.slices[f.place].start
            for ri, r in enumerate(self.fleet):
                if sids[ri] == f.scenario and (f.robot is None or f.robot == r.id):
                    pos = offsets[ri] + local
                    v = self.injector.apply_sensor(f, r.id, float(x[pos]), t)
                    v = round(v * inv[pos]) / inv[pos]
                    x[pos] = v
                    self.tracker.observe_reading(f, t + self._phase[ri], v)
        return Readings(t, sids, offsets, idx, x)

    def _tick(self, i: int, t: int) -> Tick:
        c, m = self.config, self.mine
        rd = self._measure(i, t)
        sids, offsets = rd.scenario_ids, rd.offsets
        xs = rd.values.tolist()
        offs = offsets.tolist()
        pos_a, dist, hole_a = self._geometry()
        up_a, latency_a, rssi_a, lost_a = self.link_model.sample(dist, hole_a)
        up, latency, rssi, lost = up_a.tolist(), latency_a.tolist(), rssi_a.tolist(), lost_a.tolist()
        self._loss += self._loss_a * (lost_a - self._loss)  # each link's loss ratio over the last minute
        loss = np.round(self._loss, 3).tolist()
        pos = np.round(pos_a, 1).tolist()
        battery = np.round(np.fromiter((r.battery for r in self.fleet), float, len(self.fleet)), 1).tolist()
        phase = self._phase
        run = m.drivers[2][1]
        msgs: list[Message] = []
        statuses: list[StatusUpdate] = []
        offline, outages = self.injector.offline(t), self.injector.outage(t)
        for ri, r in enumerate(self.fleet):
            st = self.state[ri]
            sid = sids[ri]
            ts = t + phase[ri]
            off = offline.get(r.id)
            if off is not None:
                self.tracker.observe_fleet(off, ts)
                if not st.offline:
                    st.offline = True
                    statuses.append(StatusUpdate(r.id, "offline", self._status(r, st, t, False, None)))
                continue
            if st.offline:
                st.offline = False
                st.will_sent = False
                statuses.append(StatusUpdate(r.id, "online", self._status(r, st, t, True, None)))
                st.last_status = t
            if c.frames is not None and self.frames_generated >= c.frames:
                continue
            names = self._names[sid]
            a, b = offs[ri], offs[ri + 1]
            outage = outages.get(r.id)
            link_up = up[ri] and outage is None
            link = LinkInfo(latency_ms=latency[ri] if link_up else 0.0, rssi_dbm=rssi[ri], loss=loss[ri])
            frame = Frame(robot_id=r.id, scenario_id=sid, seq=st.seq, ts=ts, readings=dict(zip(names, xs[a:b])),
                          pos_m=pos[ri], battery=battery[ri], link=link, boot=self.boot)
            if c.waveform_rate_hz and self._machine[sid] is not None and (i + ri) % c.waveform_every == 0:
                frame.waveforms = {"vib": self._waveform(ri, i, t, sid, float(run[m.place_index[sid]]))}
            st.seq += 1
            self.frames_generated += 1
            self.readings_generated += b - a
            if outage is not None:
                self.tracker.observe_fleet(outage, ts)
            self._send(ri, r, st, frame, t, link_up, lost[ri], not up[ri], msgs, statuses)
        return Tick(t, msgs, statuses)

    def _send(self, ri: int, r: Robot, st: _RobotState, frame: Frame, t: int, link_up: bool, lost: bool,
              hole: bool, msgs: list[Message], statuses: list[StatusUpdate]) -> None:
        if (link_up and not lost and not hole and st.hole_since is None and st.down_since is None
                and st.retry is None and not st.backlog and not st.will_sent and r.charging == st.charging
                and t - st.last_status < STATUS_EVERY_NS):
            msgs.append(Message(r.id, frame.scenario_id, [frame]))  # the usual case: sent as it is made
            return
        c = self.config
        if hole:  # no signal here (a coverage hole): a label, so late frames are accounted for
            if st.hole_since is None:
                st.hole_since = frame.ts
            st.hole_last = frame.ts
        elif st.hole_since is not None:
            self._coverage_label(r, st.hole_since, st.hole_last)
            st.hole_since = None
        if not link_up:
            if st.retry is not None:
                st.backlog.append(st.retry)
                st.retry = None
            st.backlog.append(frame)
            if st.down_since is None:
                st.down_since = t
            if not st.will_sent and t - st.down_since >= 1.5 * c.keepalive_s * NS:
                st.will_sent = True
                statuses.append(StatusUpdate(r.id, "offline", self._status(r, st, t, False, frame.link)))
            return
        st.down_since = None
        if st.will_sent:
            st.will_sent = False
            statuses.append(StatusUpdate(r.id, "online", self._status(r, st, t, True, frame.link)))
            st.last_status = t
        elif (t - st.last_status) >= STATUS_EVERY_NS or r.charging != st.charging:
            statuses.append(StatusUpdate(r.id, "status", self._status(r, st, t, True, frame.link)))
            st.last_status = t
        st.charging = r.charging
        if lost:
            held = frame
        else:
            msgs.append(Message(r.id, frame.scenario_id, [frame]))
            held = None
        if st.retry is not None:
            msgs.append(Message(r.id, st.retry.scenario_id, [st.retry]))
        st.retry = held
        for _ in range(c.backlog_messages_per_tick):
            if not st.backlog:
                break
            msgs.append(self._chunk(r.id, st))

    def _chunk(self, robot_id: str, st: _RobotState) -> Message:
        """The oldest frames of the backlog that share a scenario, up to ``backlog_chunk``."""
        sid = st.backlog[0].scenario_id
        n = 0
        limit = min(len(st.backlog), self.config.backlog_chunk)
        while n < limit and st.backlog[n].scenario_id == sid:
            n += 1
        frames, st.backlog = st.backlog[:n], st.backlog[n:]
        return Message(robot_id, sid, frames, backlog=True)

    def _flush(self, t: int) -> Tick:
        """At the end of a run every held frame is sent: nothing generated is left behind."""
        msgs: list[Message] = []
        statuses: list[StatusUpdate] = []
        for r, st in zip(self.fleet, self.state):
            if st.hole_since is not None:
                self._coverage_label(r, st.hole_since, st.hole_last)
                st.hole_since = None
            if st.retry is not None:  # the link was up at the last frame, so nothing is older than it
                st.backlog.append(st.retry)
                st.retry = None
            if st.will_sent and st.backlog:
                st.will_sent = False
                statuses.append(StatusUpdate(r.id, "online", self._status(r, st, t, True, None)))
            while st.backlog:
                msgs.append(self._chunk(r.id, st))
        return Tick(t, msgs, statuses)

    # ------------------------------------------------------------------ helpers
    def _geometry(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Position, distance of each robot to its nearest base station, and whether it is in a coverage hole."""
        pos = np.fromiter((r.pos for r in self.fleet), float, len(self.fleet))
        dist = np.min(np.abs(pos[:, None] - self._stations), axis=1)
        hole = np.any((pos[:, None] >= self._holes[:, :, 0]) & (pos[:, None] < self._holes[:, :, 1]), axis=1)
        return pos, dist, hole

    def _waveform(self, ri: int, i: int, t: int, sid: str, running: float) -> WaveBlock:
        c = self.config
        machine = SCENARIOS[sid].machine
        if machine is None:
            raise ValueError(f"{sid} has no rotating machine to take a waveform of")
        rng = np.random.default_rng([c.seed, 0x5A, ri, i])
        n = int(round(c.waveform_rate_hz * max(c.waveform_seconds, WAVEFORM_MIN_REVOLUTIONS * 60.0 / machine.rpm)))
        health = self.injector.health(sid, t)
        running = 1.0 if running >= 0.5 else 0.0
        x = synthesize(machine, c.waveform_rate_hz, n, rng, health, t0_s=(t - self.t0) / NS % 3600.0, running=running)
        return encode_block(x, c.waveform_rate_hz, round(machine.rpm * running, 1), c.waveform_dtype)

    def _status(self, r: Robot, st: _RobotState, t: int, online: bool, link: LinkInfo | None) -> RobotStatus:
        # the values are valid by construction: skip pydantic's validation (a status a minute per robot)
        return RobotStatus.model_construct(
            robot_id=r.id, online=online, ts=t, boot=self.boot, scenario_id=r.scenario, pos_m=round(r.pos, 1),
            battery=round(r.battery, 1), charging=r.charging,
            link=Link.model_construct(latency_ms=link.latency_ms, rssi_dbm=link.rssi_dbm, loss=link.loss)
            if link is not None else None)

    def _coverage_label(self, r: Robot, start: int, end: int) -> None:
        self.coverage.append({
            "fault_id": f"hole-{r.id}-{start}", "kind": "coverage_hole", "scenario_id": r.route.scenario_at(r.pos)[0],
            "robot_id": r.id, "primary": True, "channels": [], "start_ns": start, "end_ns": end,
            "inject_start_ns": start, "inject_end_ns": end, "channel_windows": {}, "extremes": {}, "deviation": {},
            "expected_severity": "info", "visible": True,
            "expected_alerts": [{"kind": "robot-health", "detector": "offline", "robot_id": r.id, "severity": "info"}]})
