"""DetectorSuite: every detector over batches of frames, feeding one alert engine.

The suite is what ``ingest`` runs live and ``api`` runs in replay. It orchestrates stages and
the registered detectors (:data:`detectors.registry.REGISTRY`); per batch of frames from many
robots and scenarios, in any order:

1. :class:`~detectors.batching.Batching` flattens the frames into plain arrays per stream
   family (stream, time, value, frame), creating streams as readings first appear; a replay
   hands over the columns it read instead (:meth:`DetectorSuite.process_columns`), flattened
   straight into the same arrays, and from here on both entries share every stage;
2. :class:`~detectors.vibration_stage.VibrationStage` turns waveform blocks into features (the
   ``vibration`` lines) and the limit samples of the vibration rules;
3. each detector runs its compiled kernel over its family, sorted once by (stream, time);
4. :class:`~detectors.robots.RobotLiveness` follows each robot's frames (silences, the
   deadman) and the robots that left a place;
5. the detectors' and the robots' signals, put in event-time order (:class:`EventOrder`), run
   through the :class:`~detectors.engine.AlertEngine`.

All state is carried between calls, so the same frames give the same alerts however they are
split into batches.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np

from detectors.base import ROBOTS, Detector, EventOrder, Inputs, Pending, Setup, StreamDetector, event_order
from detectors.batching import Batch, Batching
from detectors.drift import DriftDetector
from detectors.engine import AlertEngine, Signal
from detectors.incidents import Grouping
from detectors.limits import LimitDetector
from detectors.overrides import Overrides
from detectors.registry import REGISTRY
from detectors.robots import RobotLiveness
from detectors.rules import ROBOT_RULES, channel_rules
from detectors.vibration_stage import VibrationStage
from minewatch.catalogue import QUANTITIES, SCENARIOS, Scenario, upstream_fans
from minewatch.schema import AlertEvent, AlertKind, AlertTiming, IncidentEvent, RobotStatus
from minewatch.wire import Frame, Origin, WaveBlock

if TYPE_CHECKING:
    from minewatch.stored import FrameColumns

__all__ = ["Detection", "DetectorSuite"]


@dataclass
class Detection:
    """What one batch produced: alert events in event-time order, and line protocol for the
    derived measurements (``vibration`` features)."""

    events: list[AlertEvent] = field(default_factory=list)
    lines: list[str] = field(default_factory=list)


# Incident causes: what an operator handles as one thing at one place (detectors.incidents); a
# gas's is its quantity's (Quantity.cause).
CAUSE_TITLES = {
    "methane": "Methane", "fire": "Signs of fire (CO, smoke)", "air-quality": "Air quality (O2, CO2)",
    "ventilation": "Ventilation", "heat": "Heat", "machine": "Machine condition", "water": "Water level",
    "sensors": "Sensor faults", "robot": "Robot", "monitoring": "Monitoring", "notice": "Unusual changes",
}


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
    id_prefix
        Put before every alert and incident id (the mine, at the group's centre).
    batching, liveness
        The classes of the flattening and robot liveness stages (:class:`detectors.batching.Batching`,
        :class:`detectors.robots.RobotLiveness`); a test puts its slow restatements in their place.
    """

    def __init__(self, scenarios: Mapping[str, Scenario] = SCENARIOS, overrides: Mapping[str, float] | None = None,
                 *, timing: AlertTiming = AlertTiming.live, repeat_hold_s: float = 120.0, id_prefix: str = "",
                 batching: type[Batching] = Batching, liveness: type[RobotLiveness] = RobotLiveness) -> None:
        _warm_up()
        self.scenarios = dict(scenarios)
        self.overrides = dict(overrides or {})
        self.timing = timing  # what the alerts of frames not marked late are: live, or historical (bulk history)
        self._ov = Overrides(self.overrides, self.scenarios)
        self._ov.check_all_match()
        self.rules = channel_rules(self.scenarios, self._ov)
        self.engine = AlertEngine(flap_hold_s=repeat_hold_s, group=self.group,
                                  upstream=lambda ev: upstream_fans(ev.scenario_id), id_prefix=id_prefix)
        setup = Setup(self.scenarios, self._ov, timing, self.rules)
        # the registered detectors (detectors.base), and which of them raises each kind of alert
        self.detectors: dict[str, Detector] = {name: cls(setup) for name, cls in REGISTRY.items()}
        self._by_alert = {alert: det for det in self.detectors.values() for alert in det.alerts}
        drift, limits = self.detectors[DriftDetector.name], self.detectors[LimitDetector.name]
        assert isinstance(drift, DriftDetector) and isinstance(limits, LimitDetector)
        self.drift = drift  # its pair streams are made as frames are flattened
        self.limits = limits  # and the limit streams, the vibration rules' samples and the robots' own
        limits.bind(self.engine)
        # the stages around the detectors: robots' liveness, flattening, vibration features
        self.robots = liveness(self.scenarios, timing)
        on_base = [det for det in self.detectors.values() if isinstance(det, StreamDetector)]
        self.batching = batching(self.scenarios, on_base, limits, drift, self.robots)
        self.vibration = VibrationStage(self.scenarios, limits)

    # -- batches ---------------------------------------------------------------------------
    def process(self, frames: Sequence[Frame], *, late: Sequence[bool] | None = None,
                arrived: Sequence[int] | None = None, held_back: Sequence[int] = ()) -> Detection:
        """Run every detector over a batch of frames (any robots, scenarios and order).

        ``late`` flags frames that arrived late (their alerts are marked late). ``arrived`` is
        when each frame reached the ingestor (its clock): whether a robot is still reporting is
        judged by it, so a backlog being worked off does not look like a silent robot. Without it
        (replay), by the frames' own times. ``held_back``: the frames (by index) that a robot held
        back and sent after newer ones (they fill a gap in its numbering); where their readings
        are older than the newest a limit stream has had, they do not move its live level
        (:class:`detectors.limits.LimitDetector`)."""
        if late is not None and len(late) != len(frames):
            raise ValueError(f"late has {len(late)} flags for {len(frames)} frames")
        if arrived is not None and len(arrived) != len(frames):
            raise ValueError(f"arrived has {len(arrived)} times for {len(frames)} frames")
        if any(not 0 <= i < len(frames) for i in held_back):
            raise ValueError(f"held_back names frames outside the {len(frames)} given: {list(held_back)}")
        if not frames:
            return Detection()
        batch = self.batching.flatten(frames)
        batch.clock = batch.ts if arrived is None else np.asarray(arrived, dtype=np.int64)
        lines = self.vibration(batch, frames)
        self.limits.held_back = held_back
        try:
            return Detection(events=self._detect(batch, frames, late), lines=lines)
        finally:
            self.limits.held_back = ()

    def process_columns(self, cols: FrameColumns) -> Detection:
        """:meth:`process` of stored frames given as columns (:class:`minewatch.stored.FrameColumns`,
        as a replay reads them), their ``late`` flags among them: the same stages, the same
        events, without a Python object per frame. Judged by the frames' own times, as
        :meth:`process` without ``arrived``. Until every series' shape is known to the flattening
        (the first frames of a robot at a place), the frames are built and go through
        :meth:`process`."""
        if not len(cols):
            return Detection()
        batch = self.batching.flatten_columns(cols)
        if batch is None:
            return self.process(cols.frames(), late=cols.late_flags())
        batch.clock = batch.ts
        return Detection(events=self._detect(batch, cols.senders(), cols.late_flags()))

    def _detect(self, batch: Batch, frames: Sequence[Origin], late: Sequence[bool] | None) -> list[AlertEvent]:
        """The stages after flattening, for either entry: the detectors over their sorted
        families, the robots' liveness, and the signals through the alert engine in event order."""
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
        self.robots.frames(frames, batch.robots, batch.clock, clock_now, pending)
        for sig in self.robots.departed(clock_now, self.engine, self._forget_state):
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
        return events

    def flatten(self, frames: Sequence[Frame]) -> Batch:
        """A batch's samples per stream family (:meth:`detectors.batching.Batching.flatten`)."""
        return self.batching.flatten(frames)

    def deadman(self, now: int) -> list[Signal]:
        """Robots that fell silent by ``now`` (:meth:`detectors.robots.RobotLiveness.deadman`)."""
        return self.robots.deadman(now)

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

    # -- time, robots, operators ------------------------------------------------------------
    def tick(self, now_ns: int) -> list[AlertEvent]:
        """Time-driven checks at ``now_ns`` (wall clock live, data time in replay): a robot that
        has sent nothing for 60 s, and held clears of flapping alerts."""
        events: list[AlertEvent] = []
        sigs = self.robots.deadman(now_ns) + self.robots.departed(now_ns, self.engine, self._forget_state)
        for sig in sorted(sigs, key=lambda s: s.ts):
            events.extend(self.engine.update(sig))
        events.extend(self.engine.advance(now_ns))
        return events

    def _forget_state(self, ev: AlertEvent, rid: str) -> None:
        det = self._by_alert.get(ev.detector)
        if det is not None:
            det.forget(ev, rid)

    def robot_status(self, status: RobotStatus, arrived: int | None = None) -> list[AlertEvent]:
        """A robot's retained status: online/offline, battery and 5G link. ``arrived``: when it
        reached the ingestor (live), which then counts as the robot's sign of life instead of its
        own ``ts``."""
        step = self.robots.status(status, arrived)
        if step is None:
            return []  # the will of a robot never seen reporting: nothing has changed
        sigs, ts, where = step
        vals = {"battery": None if status.charging else status.battery}
        if status.link is not None:
            vals.update(link_latency_ms=status.link.latency_ms, link_rssi_dbm=status.link.rssi_dbm,
                        link_loss=status.link.loss)
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

    def robot_clock(self, robot_id: str, scenario_id: str, offset_ns: int, ts: int, why: str) -> list[AlertEvent]:
        """The ingestor's correction of a robot's clock (``offset_ns`` added to its times; 0: its clock
        is right again): a ``robot_clock`` warning while a correction stands."""
        return self.engine.update(self.robots.clock_signal(robot_id, scenario_id, offset_ns, ts, why))

    def give_robots_until(self, ts: int) -> None:
        """Count every robot being watched as seen at ``ts`` at the latest: an ingestor that starts
        gives each robot it knows from stored data a full silence time to show up (its queued
        messages come first) before calling it silent."""
        self.robots.give_until(ts)

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
                self.robots.seed(ev)
