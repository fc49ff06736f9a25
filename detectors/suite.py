"""DetectorSuite: every detector over batches of frames, feeding one alert engine.

The suite is what ``ingest`` runs live and ``api`` runs in replay. A batch of frames from many
robots and scenarios, in any order, is flattened into plain arrays (stream, time, value),
sorted by (stream, time), and each detector's compiled kernel runs over the whole batch in one
call:

* fixed limits (:mod:`detectors.limits`) over the limit streams (scenario, robot, channel,
  rule): gases, air velocity, temperatures, fan stoppage and reversal, fan pressure, and the
  robots' battery and 5G link;
* rate of rise (:mod:`detectors.rise`) and sensor health (:mod:`detectors.health`) over the
  base streams (scenario, robot, channel);
* vibration features and diagnosis (:mod:`detectors.vibration`) over waveform blocks.

Kernel outputs (state changes, rare) become signals, put in event-time order and run through
the :class:`~detectors.engine.AlertEngine`. All state is carried between calls, so the same
frames give the same alerts however they are split into batches.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from itertools import chain
from typing import Any, cast

import numpy as np
import numpy.typing as npt

from detectors._state import StreamTable
from detectors.base import (
    NS,
    ROBOTS,
    STALE_S,
    BaseStream,
    Detector,
    EventOrder,
    Inputs,
    Pending,
    Setup,
    StreamDetector,
    event_order,
)
from detectors.drift import DriftDetector
from detectors.engine import AlertEngine, Signal
from detectors.flatten import Cols, Shape, ShapeTable, gather_kernel
from detectors.health_rules import ROBOT_LONG_SILENCE_S, ROBOT_SILENCE_S
from detectors.incidents import Grouping
from detectors.limits import VIB_INDEX, LimitDetector
from detectors.overrides import Overrides
from detectors.registry import REGISTRY
from detectors.rules import (
    FAN,
    FAN_UNITS,
    ROBOT_RULES,
    channel_rules,
    derives_fan,
    fan_running,
    subject,
    where_robot,
    with_fan,
)
from detectors.vibration import analyse_blocks
from minewatch.catalogue import QUANTITIES, SCENARIOS, Channel, Scenario, upstream_fans
from minewatch.schema import AlertEvent, AlertKind, AlertTiming, IncidentEvent, RobotStatus, Severity
from minewatch.wire import Frame, WaveBlock

__all__ = ["Detection", "DetectorSuite"]

# Compiled frame shapes (a robot, a place, the reading names it sends) kept at most: a fleet has
# some hundreds; a robot sending a new combination with every frame costs a recompile, not memory.
MAX_SHAPES = 4096

_NS = NS


@dataclass
class Detection:
    """What one batch produced: alert events in event-time order, and line protocol for the
    derived measurements (``vibration`` features)."""

    events: list[AlertEvent] = field(default_factory=list)
    lines: list[str] = field(default_factory=list)


# STALE_S: alerts about what one robot's own readings show over time (a rate, a sensor's health, a change):
# once that robot has left the place (no frame from there for STALE_S) nobody can say they still
# hold, and they would stand until it came back; its part of them ends (and it is raised again if
# the robot finds the same on its return). Limit alerts stay until someone reads the place clear.
# Which alerts are such is each detector's word (Detector.per_robot).
PER_ROBOT_DETECTORS = frozenset(a for cls in REGISTRY.values() if cls.per_robot for a in cls.alerts)

# Incident causes: what an operator handles as one thing at one place (detectors.incidents); a
# gas's is its quantity's (Quantity.cause).
CAUSE_TITLES = {
    "methane": "Methane", "fire": "Signs of fire (CO, smoke)", "air-quality": "Air quality (O2, CO2)",
    "ventilation": "Ventilation", "heat": "Heat", "machine": "Machine condition", "water": "Water level",
    "sensors": "Sensor faults", "robot": "Robot", "monitoring": "Monitoring", "notice": "Unusual changes",
}


def _duration(seconds: float) -> str:
    if seconds >= 3600:
        h, m = divmod(round(seconds / 60), 60)
        return f"{h} h {m:02d} min"
    if seconds >= 60:
        return f"{seconds / 60:.0f} min"
    return f"{seconds:.0f} s"


@dataclass
class _Robot:
    last_seen: int = -1
    scenario: str | None = None
    offline: bool = False  # by its status
    offline_at: int = -1   # when that status was seen (its arrival live, its time in replay)
    silent: int = 0       # by the deadman: 1 silent a minute (a notice), 2 five minutes (a warning)
    number: int = -1      # index in DetectorSuite._robot_list


class Batch:
    """Samples of one batch, per stream family: (stream, time, value, frame index) for the
    limit and base streams, (stream, time, value a, value b, frame index) for drift pairs."""

    __slots__ = ("lim", "base", "pairs", "blocks", "lim_sorted", "robots", "ts", "clock")

    def __init__(self) -> None:
        self.lim = Cols((np.int64, np.int64, np.float64, np.int64))
        self.base = Cols((np.int64, np.int64, np.float64, np.int64))
        self.pairs = Cols((np.int64, np.int64, np.float64, np.float64, np.int64))
        self.blocks: list[tuple[int, WaveBlock]] = []  # (frame index, block)
        self.lim_sorted: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None
        self.robots = np.empty(0, dtype=np.int64)  # per frame: the robot's number
        self.ts = np.empty(0, dtype=np.int64)      # per frame: its time
        self.clock = self.ts                       # per frame: when it was seen (live: its arrival)

    @staticmethod
    def sorted(cols: Cols) -> tuple[np.ndarray, ...]:
        """The columns sorted by (stream, time, frame index): each stream's samples in time
        order, and samples of one time in the order their frames came."""
        arrays = cols.arrays()
        order = np.lexsort((arrays[-1], arrays[1], arrays[0]))
        return tuple(a[order] for a in arrays)


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


def _samples(block: WaveBlock) -> npt.NDArray[np.float64]:
    import base64
    import binascii

    try:
        raw = base64.b64decode(block.data, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise ValueError(f"waveform is not base64: {exc}") from None
    if block.dtype == "f4":
        if len(raw) % 4:
            raise ValueError("f4 waveform length is not a multiple of 4 bytes")
        return np.frombuffer(raw, dtype="<f4").astype(np.float64)
    if len(raw) % 2:
        raise ValueError("i2 waveform length is not a multiple of 2 bytes")
    samples: npt.NDArray[np.float64] = np.frombuffer(raw, dtype="<i2").astype(np.float64) * block.scale
    return samples


_WARM = False


def _warm_up() -> None:
    """Load (or compile) every kernel once per process, through a throwaway suite, so the first
    live batch is not delayed by it (loading from Numba's cache takes about a second)."""
    global _WARM
    if _WARM:
        return
    _WARM = True
    import base64

    from minewatch.wire import LinkInfo

    suite = DetectorSuite()
    block = WaveBlock(rate_hz=2048.0, data=base64.b64encode(np.zeros(64, dtype="<f4").tobytes()).decode())
    frames = [
        Frame(robot_id="warm", scenario_id="mf01", seq=0, ts=1, battery=50.0,
              link=LinkInfo(latency_ms=10.0, rssi_dbm=-70.0), readings={"ch4_t0": 0.3, "ch4_t1": 0.3, "rh": 80.0}),
        Frame(robot_id="warm", scenario_id="pr01", seq=1, ts=2, waveforms={"vib": block}),
    ]
    suite.process(frames)


class DetectorSuite:
    """All detectors of the mine, over batches of telemetry frames.

    Parameters
    ----------
    scenarios
        The catalogue (scenario id -> :class:`minewatch.catalogue.Scenario`).
    overrides
        ``--set`` overrides (see :func:`detectors.parse_overrides`); a key that matches nothing
        raises ``ValueError``.
    timing
        What the alerts of frames not marked late are: ``live``, or ``historical`` for the
        suite an ingestor keeps for bulk history (its alerts never reach the live board).
    repeat_hold_s
        How long the clear of an alert raised twice within ten minutes is held back (an off-delay
        against chattering and repeating alerts, :class:`detectors.engine.AlertEngine`).
    """

    def __init__(self, scenarios: Mapping[str, Scenario] = SCENARIOS, overrides: Mapping[str, float] | None = None,
                 *, timing: AlertTiming = AlertTiming.live, repeat_hold_s: float = 120.0) -> None:
        _warm_up()
        self.scenarios = dict(scenarios)
        self.overrides = dict(overrides or {})
        self.timing = timing  # what the alerts of frames not marked late are: live, or historical (bulk history)
        self._ov = Overrides(self.overrides, self.scenarios)
        self._ov.check_all_match()
        self.rules = channel_rules(self.scenarios, self._ov)
        self.engine = AlertEngine(flap_hold_s=repeat_hold_s, group=self.group,
                                  upstream=lambda ev: upstream_fans(ev.scenario_id))
        # (scenario, robot) -> channel -> (base stream, [(limit stream, signed)])
        self._routes: dict[tuple[str, str], dict[str, tuple[int, list[tuple[int, bool]]]]] = {}
        self._robots: dict[str, _Robot] = {}
        self._robot_list: list[_Robot] = []
        self._place_seen: dict[tuple[str, str], int] = {}  # (scenario, robot) -> when last seen there
        self._deadman_due = 0  # no robot can fall silent before this time (see deadman)
        self._robot_streams: dict[str, dict[str, int]] = {}
        setup = Setup(self.scenarios, self._ov, timing, self.rules)
        # the registered detectors (detectors.base), and which of them raises each kind of alert
        self.detectors: dict[str, Detector] = {name: cls(setup) for name, cls in REGISTRY.items()}
        self._by_alert = {alert: det for det in self.detectors.values() for alert in det.alerts}
        # the base streams (scenario, robot, channel), shared by the detectors that read them
        self._on_base = [det for det in self.detectors.values() if isinstance(det, StreamDetector)]
        self._base = StreamTable({name: col for det in self._on_base for name, col in det.columns.items()})
        self._base_meta: list[BaseStream] = []
        for det in self._on_base:
            det.bind(self._base, self._base_meta, lambda sid, rid, chan: self._route(sid, rid, chan)[0])
        drift, limits = self.detectors[DriftDetector.name], self.detectors[LimitDetector.name]
        assert isinstance(drift, DriftDetector) and isinstance(limits, LimitDetector)
        self.drift = drift  # its pair streams are made as frames are flattened
        self.limits = limits  # and the limit streams, the vibration rules' samples and the robots' own
        limits.bind(self.engine)
        # compiled frame shapes (detectors.flatten): (scenario, robot, channel names) -> Shape
        self._shapes: dict[tuple[str, str, tuple[str, ...]], Shape] = {}
        self._ready: dict[tuple[str, str, tuple[str, ...]], Shape] = {}  # the compiled ones
        self._shape_keys: dict[tuple[str, str], list[tuple[str, ...]]] = {}
        self._shape_table = ShapeTable()

    # -- streams ---------------------------------------------------------------------------
    def _route(self, sid: str, rid: str, chan: str) -> tuple[int, list[tuple[int, bool]]]:
        routes = self._routes.setdefault((sid, rid), {})
        sc = self.scenarios[sid]
        c = sc.channel_map.get(chan)
        s, new = self._base.add((sid, rid, chan))
        if new:
            self._configure_base(s, sc, c, chan, rid)
        lims = self.limits.channel_streams(sid, rid, chan)
        routes[chan] = r = (s, lims)
        return r

    def _configure_base(self, s: int, sc: Scenario, c: Channel | None, chan: str, rid: str) -> None:
        self._base_meta.append(BaseStream(sc.id, rid, chan, c))
        for det in self._on_base:
            det.configure(s, sc, c)

    # -- batches ---------------------------------------------------------------------------
    def process(self, frames: Sequence[Frame], *, late: Sequence[bool] | None = None,
                arrived: Sequence[int] | None = None) -> Detection:
        """Run every detector over a batch of frames (any robots, scenarios and order).

        ``late`` flags frames that arrived late (their alerts are marked late). ``arrived`` is
        when each frame reached the ingestor (its clock): whether a robot is still reporting is
        judged by it, so a backlog being worked off does not look like a silent robot. Without it
        (replay), by the frames' own times."""
        if late is not None and len(late) != len(frames):
            raise ValueError(f"late has {len(late)} flags for {len(frames)} frames")
        if arrived is not None and len(arrived) != len(frames):
            raise ValueError(f"arrived has {len(arrived)} times for {len(frames)} frames")
        if not frames:
            return Detection()
        batch = self.flatten(frames)
        batch.clock = batch.ts if arrived is None else np.asarray(arrived, dtype=np.int64)
        lines = self._vibration(batch, frames)
        pending: list[Pending] = []
        inputs = {Inputs.LIMIT: batch.lim, Inputs.PAIRS: batch.pairs, Inputs.BASE: batch.base}
        ready: dict[Inputs, tuple[np.ndarray, ...]] = {}  # each family sorted once, for every detector reading it
        for det in self.detectors.values():
            det.begin(frames)
            if len(inputs[det.inputs]):
                if det.inputs not in ready:
                    ready[det.inputs] = batch.sorted(inputs[det.inputs])
                pending += det.run(ready[det.inputs], late)
        clock_now = int(batch.clock.max())
        self.robot_frames(frames, batch, clock_now, pending)
        for sig in self._departed(clock_now):
            pending.append(Pending(sig.ts, EventOrder.ROBOT, 2, sig))
        now = int(batch.ts.max())
        pending.sort(key=event_order)
        events: list[AlertEvent] = []
        for *_, item in pending:
            if isinstance(item, Signal):
                events.extend(self.engine.update(item))
            else:
                for sig in item.resolve():
                    events.extend(self.engine.update(sig))
        for det in self.detectors.values():
            det.finish()
        events.extend(self.engine.advance(now))
        events.sort(key=lambda e: e.ts)
        return Detection(events=events, lines=lines)

    def _vibration(self, batch: Batch, frames: Sequence[Frame]) -> list[str]:
        """Features of the batch's waveform blocks: line protocol, and samples for the zone and
        bearing rules (through the limit kernel with the other limits)."""
        if not batch.blocks:
            return []
        from minewatch.influx import line

        xs, rates, rpms, bearings, groups, where = [], [], [], [], [], []
        for fi, block in batch.blocks:
            f = frames[fi]
            m = self.scenarios[f.scenario_id].machine
            assert m is not None
            try:
                x = _samples(block)
            except ValueError:
                continue  # a malformed block: the ingestor's validation reports it; nothing to analyse
            if x.shape[0] < 16:
                continue
            xs.append(x)
            rates.append(block.rate_hz)
            rpms.append(block.rpm or m.rpm)
            bearings.append(m.bearing)
            groups.append((m.iso_group, m.support))
            where.append(fi)
        lines = []
        ls, lt, lx, lo = batch.lim.lists
        for fi, feats in zip(where, analyse_blocks(xs, rates, rpms, bearings, groups)):
            f = frames[fi]
            sc = self.scenarios[f.scenario_id]
            assert sc.machine is not None
            ln = line("vibration", {"scenario": sc.id, "robot": f.robot_id, "machine": sc.machine.name}, {
                "rms_mm_s": feats.rms_mm_s, "zone": feats.zone, "kurtosis": feats.kurtosis, "crest": feats.crest,
                "bpfo": feats.bpfo, "bpfi": feats.bpfi, "bsf": feats.bsf, "bpfo_snr_db": feats.bpfo_snr_db,
                "bpfi_snr_db": feats.bpfi_snr_db, "bsf_snr_db": feats.bsf_snr_db, "one_x_share": feats.one_x_share,
                "diagnosis": feats.diagnosis, "rpm": feats.rpm}, f.ts)
            if ln:
                lines.append(ln)
            zone_rule, bearing_rule = self.limits.vib_rules[sc.id]
            snr = max(feats.bpfo_snr_db, feats.bpfi_snr_db, feats.bsf_snr_db)
            for j, (rule, value) in enumerate(((zone_rule, feats.rms_mm_s), (bearing_rule, snr))):
                s = self.limits.stream((sc.id, f.robot_id, sc.machine.channel, VIB_INDEX + j), rule)
                self.limits.features[(s, f.ts)] = feats
                ls.append(s)
                lt.append(f.ts)
                lx.append(float(value))
                lo.append(fi)
        return lines

    def flatten(self, frames: Sequence[Frame]) -> Batch:
        """A stage of :meth:`process` (``tests/detectors/reference_suite.py`` restates it frame by
        frame). The batch's samples through :func:`gather_kernel`. In the steady state every frame's
        shape is compiled and nothing here loops in Python per frame; otherwise the frames are
        taken in order and those of shapes not compiled yet go one by one
        (:meth:`_flatten_frame`), creating their streams."""
        batch = Batch()
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
        values = chain.from_iterable([f.readings.values() if shp.fan is None else _with_fan(f.readings, shp.fan)
                                      for f, shp in zip(frames, shps)])
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
            self._blocks(pick[i], frames[i], batch)
        self._gather(batch, [shp.index for shp in shps], pick, list(values), [f.battery for f in frames],
                     lat, rssi, loss)
        return batch

    def _shape_for(self, fi: int, f: Frame, batch: Batch) -> Shape:
        """Frame ``fi``'s shape, compiled now if it can be; a frame whose shape is not ready is
        flattened on its own (which may create streams and so retire its place's shapes)."""
        key = (f.scenario_id, f.robot_id, tuple(f.readings))
        shp = self._shapes.get(key) or self._shape(*key)
        if not shp.ready and not shp.skip:
            self._flatten_frame(fi, f, batch)
        return shp

    def _gather(self, batch: Batch, S: list[int], FI: Sequence[int], *columns: list[Any]) -> None:  # noqa: N803
        """Run :func:`gather_kernel` over the compiled frames ``FI`` of the batch (shapes ``S``,
        their values, battery and link columns) and add the samples to ``batch``."""
        f64, i64 = np.float64, np.int64
        shapes = np.asarray(S, dtype=i64)
        fis = np.asarray(FI, dtype=i64)
        X, BAT, LAT, RSSI, LOSS = (np.asarray(c, dtype=f64) for c in columns)
        tabs = self._shape_table.arrays()
        n_base = int(tabs.k_n[shapes].sum() + tabs.miss_n[shapes].sum())
        n_lim = int(tabs.lim_n[shapes].sum()) + 4 * shapes.shape[0]  # + battery and the link's three
        n_pair = int(tabs.pair_n[shapes].sum())
        base = (np.empty(n_base, i64), np.empty(n_base, i64), np.empty(n_base, f64), np.empty(n_base, i64))
        lim = (np.empty(n_lim, i64), np.empty(n_lim, i64), np.empty(n_lim, f64), np.empty(n_lim, i64))
        pairs = (np.empty(n_pair, i64), np.empty(n_pair, i64), np.empty(n_pair, f64), np.empty(n_pair, f64),
                 np.empty(n_pair, i64))
        nb, nl, npair = gather_kernel(shapes, batch.ts[fis], fis, X, BAT, LAT, RSSI, LOSS, *tabs, *base, *lim, *pairs)
        batch.base.add(*(a[:nb] for a in base))
        batch.lim.add(*(a[:nl] for a in lim))
        batch.pairs.add(*(a[:npair] for a in pairs))

    def _shape(self, sid: str, rid: str, keys: tuple[str, ...]) -> Shape:
        """Compile the shape of a frame of robot ``rid`` in ``sid`` carrying ``keys``: ready when
        every stream its samples go to exists."""
        shp = Shape(index=-1, scenario_id=sid, robot_id=rid, keys=keys, robot=self._robot(rid).number)
        if len(self._shape_table) >= MAX_SHAPES:  # robots come and go, or one sends ever new shapes: start afresh
            self._shapes.clear()
            self._ready.clear()
            self._shape_keys.clear()
            self._shape_table = ShapeTable()
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
        routes = self._routes.get((sid, rid), {})
        rs = self._robot_streams.get(rid)
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

    def _blocks(self, fi: int, f: Frame, batch: Batch) -> None:
        m = self.scenarios[f.scenario_id].machine
        if m is not None:
            for wchan, block in f.waveforms.items():
                if wchan == m.channel:
                    batch.blocks.append((fi, block))

    def _flatten_frame(self, fi: int, f: Frame, batch: Batch) -> None:
        """One frame's samples, creating the streams it needs (the frames of shapes not
        compiled yet)."""
        ls, lt, lx, lo = (c.append for c in batch.lim.lists)
        bs, bt, bx, bo = (c.append for c in batch.base.lists)
        sid, rid, ts = f.scenario_id, f.robot_id, f.ts
        sc = self.scenarios[sid]
        readings = with_fan(sc, f.readings)
        routes = self._routes.get((sid, rid))
        n_routes = -1 if routes is None else len(routes)
        if routes is None:
            routes = self._routes[(sid, rid)] = {}
        elif not routes.keys() <= readings.keys() or None in readings.values():
            for chan, (s, _) in routes.items():  # a channel this robot reports here is missing
                if readings.get(chan) is None:
                    bs(s), bt(ts), bx(np.nan), bo(fi)
        for chan, v in readings.items():
            if v is None:
                continue
            r = routes.get(chan)
            if r is None:
                r = self._route(sid, rid, chan)
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
            self._blocks(fi, f, batch)
        rs = self._robot_streams.get(rid)
        if rs is None:
            rs = self._robot_streams[rid] = self.limits.robot_streams(rid)
            n_routes = -2
        if f.battery is not None:
            ls(rs["battery"]), lt(ts), lx(f.battery), lo(fi)
        if f.link is not None:
            link = f.link
            for name, v in (("link_latency_ms", link.latency_ms), ("link_rssi_dbm", link.rssi_dbm),
                            ("link_loss", link.loss)):
                ls(rs[name]), lt(ts), lx(v), lo(fi)
        if n_routes != len(routes):
            self._forget_shapes(sid, rid)

    # -- robots ------------------------------------------------------------------------------
    def _robot(self, rid: str) -> _Robot:
        r = self._robots.get(rid)
        if r is None:
            r = self._robots[rid] = _Robot(number=len(self._robot_list))
            self._robot_list.append(r)
        return r

    def _offline_signal(self, rid: str, source: str, on: bool, ts: int, scenario_id: str | None,
                        long: bool = False) -> Signal:
        """A robot's ``robot_offline`` step: by its status (``source`` ``status``: a warning), or by
        the deadman (``silence``: a notice after a minute, a warning after five, ``long``)."""
        r = self._robot(rid)
        sid = scenario_id or r.scenario or "unknown"
        where = where_robot(rid, self.scenarios.get(sid))
        robot = where[:1].upper() + where[1:]
        severity = Severity.warning
        if source == "status":
            rule = "robot status: offline (status message or its MQTT last will)"
            msg = (f"{robot} is offline: its readings have stopped. Check the robot and cover its route by a "
                   f"manual inspection." if on else f"{robot} is back online: the alert is cleared.")
        elif long:
            rule = (f"robot deadman: no frame for {ROBOT_LONG_SILENCE_S:g} s, ten 30 s polling cycles "
                    f"(domain §3) [P]")
            msg = f"{robot} has sent nothing for {ROBOT_LONG_SILENCE_S / 60:g} min: its route is not being inspected; " \
                  f"check its 5G link and battery and cover its route by a manual inspection."
        else:
            rule = f"robot deadman: no frame for {ROBOT_SILENCE_S:g} s, two 30 s polling cycles (domain §3) [P]"
            severity = Severity.info
            msg = (f"{robot} has sent nothing for {ROBOT_SILENCE_S:g} s, most likely a coverage hole on its route; "
                   f"if it lasts {ROBOT_LONG_SILENCE_S / 60:g} min it is a warning." if on else
                   f"{robot} reports again: the alert is cleared.")
        return Signal(scenario_id=sid, place=ROBOTS, detector="robot_offline", subject=rid, kind=AlertKind.robot_health,
                      source=source, severity=severity if on else None, ts=ts, message=msg, robot_id=rid,
                      evidence={"rule": rule, "robot": rid, "by": source}, timing=self.timing)

    def robot_clock(self, robot_id: str, scenario_id: str, offset_ns: int, ts: int, why: str) -> list[AlertEvent]:
        """The ingestor's correction of a robot's clock (``offset_ns`` added to its times; 0: its clock
        is right again): a ``robot_clock`` warning while a correction stands."""
        sid = scenario_id if scenario_id in self.scenarios else self._robot(robot_id).scenario or scenario_id
        where = where_robot(robot_id, self.scenarios.get(sid))
        off_s = -offset_ns / _NS  # how far the robot's clock is ahead (negative: behind)
        rule = "robot clock against the ingestor's: more than 5 s ahead, or behind by a jump or steadily [P]"
        if offset_ns:
            side = "ahead of" if off_s > 0 else "behind"
            msg = (f"The clock of {where} is {_duration(abs(off_s))} {side} the control room's ({why}): its readings "
                   f"are placed at the time they arrived. Set the robot's clock.")
        else:
            msg = f"The clock of {where} is right again: the alert is cleared."
        sig = Signal(scenario_id=sid, place=ROBOTS, detector="robot_clock", subject=robot_id, kind=AlertKind.robot_health,
                     source=robot_id, severity=Severity.warning if offset_ns else None, ts=ts, message=msg,
                     value=round(off_s, 3), unit="s", robot_id=robot_id,
                     evidence={"rule": rule, "robot": robot_id, "offset_s": round(off_s, 3), "why": why})
        return self.engine.update(sig)

    def group(self, ev: AlertEvent) -> Grouping:
        """The incident an alert belongs to: its place and cause (see :mod:`detectors.incidents`)."""
        if ev.kind is AlertKind.robot_health and ev.robot_id:
            return Grouping(ev.robot_id, "robot", f"Robot {ev.robot_id}")
        sc = self.scenarios.get(ev.scenario_id)
        c = sc.channel_map.get(ev.channel or "") if sc else None
        q = c.quantity if c else ""
        if ev.kind is AlertKind.system:
            cause = "monitoring"
        elif ev.detector == "change":
            cause = "notice"
        elif ev.kind is AlertKind.gas or ev.detector == "rate_of_rise":
            cause = (QUANTITIES[q].cause if q else None) or "air-quality"
        elif ev.kind is AlertKind.ventilation:
            cause = "heat" if ev.detector.startswith("temperature") else "ventilation"
        elif ev.kind is AlertKind.vibration:
            cause = "water" if ev.detector.startswith("water_level") else "machine"
        else:
            cause = "sensors"
        where = f"{sc.id}, {sc.name}" if sc else ev.scenario_id
        return Grouping(ev.scenario_id, cause, f"{CAUSE_TITLES[cause]} at {where}")

    def robot_frames(self, frames: Sequence[Frame], batch: Batch, now: int,
                     pending: list[Pending]) -> None:
        """A stage of :meth:`process`: each robot's last-seen time, and its silences: a gap of :data:`ROBOT_SILENCE_S` or
        more between its frames (in time order) raises ``robot_offline`` at the gap's start plus
        that time, and the next frame clears it. Robots without a gap or a standing silence
        are updated in bulk; the others frame by frame."""
        gap = int(ROBOT_SILENCE_S * _NS)
        order = np.lexsort((batch.clock, batch.robots))
        r, t = batch.robots[order], batch.clock[order]
        starts = np.flatnonzero(np.r_[True, r[1:] != r[:-1]])
        ends = np.r_[starts[1:], r.shape[0]]
        # groups with a gap inside: the gap between i and i + 1 within one robot
        inner = np.flatnonzero((np.diff(t) >= gap) & (r[1:] == r[:-1]))
        robots = self._robot_list
        gapped = set(np.searchsorted(starts, inner, side="right").tolist()) if inner.shape[0] else set()
        rl, tl, ol = r.tolist(), t.tolist(), order.tolist()
        walk = []  # robots whose frames go one by one: in robot id order, as their events
        for g, (a, b) in enumerate(zip(starts.tolist(), ends.tolist())):
            rob = robots[rl[a]]
            if (g + 1) in gapped or rob.silent or rob.offline or (rob.last_seen >= 0 and tl[a] - rob.last_seen >= gap):
                walk.append((frames[ol[a]].robot_id, a, b, rob))
            elif tl[b - 1] >= rob.last_seen:
                if rob.last_seen < 0:
                    self._deadman_due = 0  # a robot first seen: watched from now on
                rob.last_seen = tl[b - 1]
                rob.scenario = sid = frames[ol[b - 1]].scenario_id
                self._place_seen[(sid, frames[ol[a]].robot_id)] = tl[b - 1]
        for _, a, b, rob in sorted(walk, key=lambda w: w[0]):
            for k in range(a, b):
                self._robot_frame(frames[ol[k]], tl[k], rob, gap, pending)
        for sig in self.deadman(now):
            pending.append(Pending(sig.ts, EventOrder.ROBOT, 0, sig))

    def _robot_frame(self, f: Frame, t: int, r: _Robot, gap: int, pending: list[Pending]) -> None:
        """One frame of a robot seen at ``t`` (its arrival live, its time in replay). A frame after the
        robot's offline status proves it back: its offline alert clears."""
        if r.offline and t > r.offline_at:
            r.offline = False
            pending.append(Pending(t, EventOrder.ROBOT, 1, self._offline_signal(f.robot_id, "status", False, t, f.scenario_id)))
            self._deadman_due = 0
        if r.last_seen >= 0 and t - r.last_seen >= gap and not r.silent and not r.offline:
            pending.append(Pending(r.last_seen + gap, EventOrder.ROBOT, 0, self._offline_signal(f.robot_id, "silence", True,
                                                                         r.last_seen + gap, r.scenario)))
            r.silent = 1
        long = int(ROBOT_LONG_SILENCE_S * _NS)
        if r.silent == 1 and not r.offline and t - r.last_seen >= long:
            pending.append(Pending(r.last_seen + long, EventOrder.ROBOT, 0, self._offline_signal(f.robot_id, "silence", True,
                                                                          r.last_seen + long, r.scenario, long=True)))
            r.silent = 2
        if r.silent and t >= r.last_seen:
            pending.append(Pending(t, EventOrder.ROBOT, 1, self._offline_signal(f.robot_id, "silence", False, t, f.scenario_id)))
            r.silent = 0
            self._deadman_due = 0
        if t >= r.last_seen:
            if r.last_seen < 0:
                self._deadman_due = 0
            r.last_seen = t
            r.scenario = f.scenario_id
        if t > self._place_seen.get((f.scenario_id, f.robot_id), -1):
            self._place_seen[(f.scenario_id, f.robot_id)] = t

    def deadman(self, now: int) -> list[Signal]:
        """A stage of :meth:`process` and :meth:`tick`: robots watched (seen, neither silent nor
        offline) that have sent nothing for
        :data:`ROBOT_SILENCE_S` by ``now``: marked silent, with their signals.

        Every robot is looked at only once ``now`` reaches ``_deadman_due``, the earliest time
        any watched robot could fall silent as of the last look. A robot's ``last_seen`` only grows,
        which only moves its own due time later; whatever adds a robot to the watched ones (first
        seen, silence or offline cleared) sets ``_deadman_due`` to 0 for a look at the next call.
        A batch costs nothing here per robot of the mine, only when one may be due."""
        if now < self._deadman_due:
            return []
        gap = int(ROBOT_SILENCE_S * _NS)
        long = int(ROBOT_LONG_SILENCE_S * _NS)
        out = []
        due = 1 << 62
        for rid, r in self._robots.items():
            if r.last_seen < 0 or r.offline or r.silent == 2:
                continue
            if not r.silent:
                if now - r.last_seen < gap:
                    due = min(due, r.last_seen + gap)
                    continue
                r.silent = 1
                out.append(self._offline_signal(rid, "silence", True, r.last_seen + gap, r.scenario))
            if now - r.last_seen >= long:
                r.silent = 2
                out.append(self._offline_signal(rid, "silence", True, r.last_seen + long, r.scenario, long=True))
            else:
                due = min(due, r.last_seen + long)
        self._deadman_due = due
        return out

    # -- time, robots, operators ------------------------------------------------------------
    def tick(self, now_ns: int) -> list[AlertEvent]:
        """Time-driven checks at ``now_ns`` (wall clock live, data time in replay): a robot that
        has sent nothing for 60 s, and held clears of flapping alerts."""
        events: list[AlertEvent] = []
        for sig in sorted(self.deadman(now_ns) + self._departed(now_ns), key=lambda s: s.ts):
            events.extend(self.engine.update(sig))
        events.extend(self.engine.advance(now_ns))
        return events

    def _departed(self, now: int) -> list[Signal]:
        """Clears of the parts robots that left their place hold in its per-robot alerts
        (:data:`PER_ROBOT_DETECTORS`), with their detectors' state there reset."""
        out: list[Signal] = []
        stale = int(STALE_S * _NS)
        for key in self.engine.active_keys():
            sid, detector, topic = key
            if detector not in PER_ROBOT_DETECTORS:
                continue
            ev = self.engine.get(key)
            if ev is None or ev.channel is None:
                continue
            for rid in self.engine.sources(key):
                last = self._place_seen.get((sid, rid))
                if last is None or now - last < stale:
                    continue
                self._forget_state(ev, rid)
                sc = self.scenarios.get(sid)
                c = sc.channel_map.get(ev.channel) if sc else None
                what = subject(sc, c) if sc is not None and c is not None else f"{ev.channel} in {sid}"
                msg = (f"{what}: robot {rid}, which saw this, has not reported from {sid} for {(now - last) / _NS:.0f} s "
                       f"(it has moved on): its part of the alert is cleared, and raised again if it finds the same "
                       f"on its return.")
                out.append(Signal(scenario_id=sid, detector=detector, subject=topic, kind=ev.kind, source=rid,
                                  severity=None, ts=last + stale, message=msg, channel=ev.channel, robot_id=rid,
                                  evidence={"rule": f"a robot's own alert ends {STALE_S:g} s after it left the place [P]",
                                            "robot": rid, "left_s": round((now - last) / _NS, 1)},
                                  timing=self.timing))
        return out

    def _forget_state(self, ev: AlertEvent, rid: str) -> None:
        det = self._by_alert.get(ev.detector)
        if det is not None:
            det.forget(ev, rid)

    def robot_status(self, status: RobotStatus, arrived: int | None = None) -> list[AlertEvent]:
        """A robot's retained status: online/offline, battery and 5G link. ``arrived``: when it
        reached the ingestor (live), which then counts as the robot's sign of life instead of its
        own ``ts``."""
        if not status.online and status.ts is None and status.robot_id not in self._robots:
            return []  # the will of a robot never seen reporting: nothing has changed
        r = self._robot(status.robot_id)
        ts = status.ts if status.ts is not None else max(r.last_seen, 0)
        seen = arrived if arrived is not None else status.ts
        if status.scenario_id:
            r.scenario = status.scenario_id
        sigs: list[Signal] = []
        if not status.online and not r.offline:
            r.offline = True
            r.offline_at = seen if seen is not None else max(r.last_seen, 0)
            sigs.append(self._offline_signal(status.robot_id, "status", True, ts, status.scenario_id))
        elif status.online:
            if r.offline:
                r.offline = False
                self._deadman_due = 0
                sigs.append(self._offline_signal(status.robot_id, "status", False, ts, status.scenario_id))
            if r.silent and seen is not None and seen >= r.last_seen:
                r.silent = 0
                self._deadman_due = 0
                sigs.append(self._offline_signal(status.robot_id, "silence", False, ts, status.scenario_id))
            if seen is not None:
                if r.last_seen < 0:
                    self._deadman_due = 0
                r.last_seen = max(r.last_seen, seen)
        vals = {"battery": None if status.charging else status.battery}
        if status.link is not None:
            vals.update(link_latency_ms=status.link.latency_ms, link_rssi_dbm=status.link.rssi_dbm,
                        link_loss=status.link.loss)
        where = status.scenario_id or r.scenario or "unknown"
        for name, v in vals.items():
            if v is None:
                continue
            s = self.limits.stream(("", status.robot_id, name, 0), ROBOT_RULES[name])
            k = self.limits.step(s, float(v))
            if k >= 0:
                sigs.append(self.limits.signal(s, k, float(v), ts, where, None, 0))
        events: list[AlertEvent] = []
        for sig in sigs:
            events.extend(self.engine.update(sig))
        return events

    def give_robots_until(self, ts: int) -> None:
        """Count every robot being watched as seen at ``ts`` at the latest: an ingestor that starts
        gives each robot it knows from stored data a full silence time to show up (its queued
        messages come first) before calling it silent."""
        for r in self._robots.values():
            if r.last_seen >= 0 and not r.silent and not r.offline and r.last_seen < ts:
                r.last_seen = ts
        self._deadman_due = 0

    def acknowledge(self, alert_id: str, operator: str, note: str | None, ts_ns: int) -> AlertEvent:
        """Acknowledge an active alert; ``KeyError`` if ``alert_id`` is not active."""
        return self.engine.acknowledge(alert_id, operator, note, ts_ns)

    def active(self) -> list[AlertEvent]:
        """The current state of every active alert."""
        return self.engine.active()

    def restore(self, events: Iterable[AlertEvent], incidents: Iterable[IncidentEvent] = (), *,
                seed: bool = True) -> list[AlertEvent]:
        """Rebuild active alerts (and their incidents) from stored events after a restart, so ids
        stay stable and a condition still present does not raise a second alert. With ``seed``,
        each detector's state is put back where the alert says (:meth:`seed`), so the next
        reading past the restore level clears it. Returns the alerts now active.

        An ingestor restores without seeding, runs the last minutes of stored readings through the
        detectors (a condition seen in them joins its restored alert; one that ended in them clears
        it), and then seeds what is left."""
        restored = self.engine.restore(
            events, place_of=lambda e: ROBOTS if e.kind is AlertKind.robot_health else e.scenario_id,
            source_of=lambda e: str(e.evidence.get("by", e.robot_id or "")) if e.detector == "robot_offline"
            else e.robot_id or "", incidents=incidents)
        if seed:
            self.seed(restored)
        return restored

    def seed(self, events: Iterable[AlertEvent]) -> None:
        """Put the detector state of each active alert in ``events`` back in its raised state where
        it is idle (never lowering one that is raised), so the next reading decides: past the
        restore level it clears the alert, still in violation it keeps it without a second raise."""
        for ev in events:
            if ev.robot_id is None:
                continue
            det = self._by_alert.get(ev.detector)
            if det is not None:
                det.seed(ev)
                continue
            if ev.detector == "robot_offline":
                r = self._robot(ev.robot_id)
                if ev.evidence.get("by") == "status":
                    r.offline = True
                elif not r.silent:
                    r.silent = 1 if ev.severity is Severity.info else 2
