"""The detector contract: one shape for every detector the suite runs.

A detector is a small object that

* declares what it reads (:class:`Inputs`: which samples of a batch) and its per-stream state
  (:attr:`Detector.columns`, ``name -> (dtype, trailing shape, fill value)``, kept in a
  :class:`~detectors._state.StreamTable`);
* configures itself from the catalogue and the ``--set`` overrides it is built with
  (:class:`Setup`);
* runs a batch through its compiled kernel behind a wrapper (``detect``) that checks the arrays
  first (the suite's ``run`` passes the batch it sorted itself without a second look), and
  turns the kernel's state changes into :class:`~detectors.engine.Signal` s, each with its
  place in the batch's event order (:class:`Pending`, :class:`EventOrder`);
* puts its state back from the stored events of active alerts (:meth:`Detector.seed`) and
  forgets a robot's part when it has left a place (:meth:`Detector.forget`).

Detectors register themselves with :func:`register`; :data:`REGISTRY` is what the suite builds
its detectors from, and what the conformance test walks.
"""

from __future__ import annotations

import enum
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar, NamedTuple, TypeVar

import numpy as np
import numpy.typing as npt

from detectors._state import StreamTable
from detectors.overrides import Overrides
from detectors.rules import Rule
from minewatch.catalogue import Channel, Scenario
from minewatch.schema import AlertEvent, AlertTiming
from minewatch.wire import Frame

__all__ = ["NS", "ROBOTS", "STALE_S",
    "REGISTRY",
    "BaseStream",
    "Columns",
    "Detector",
    "EventOrder",
    "Inputs",
    "Pending",
    "Setup",
    "StreamDetector",
    "check_batch",
    "detectors_for",
    "event_order",
    "register",
    "timing_of",
]

Columns = Mapping[str, tuple[Any, tuple[int, ...], Any]]

NS = 1_000_000_000
ROBOTS = "robots"  # the engine's place for robot-level alerts (a robot moves between scenarios)
STALE_S = 120.0  # [P] four 30 s polling cycles (domain §3) without a reading from that robot


class EventOrder(enum.IntEnum):
    """Which of the signals of one event time the alert engine takes first, in a batch.

    Within one event time a limit step comes before what the same reading shows about the
    sensor, its rate or a change, the robots' silences after the readings, evidence that can
    retire a stale robot's part of an alert after the limit steps it depends on, and drift
    (a slow, five-minute judgement) last. Ties within one order go by the pending item's own
    tie-break (a stream number, a column)."""

    LIMIT = 0
    HEALTH = 1
    RISE = 2
    ROBOT = 3
    CHANGE = 4
    STALE_EVIDENCE = 5
    DRIFT = 6


class Pending(NamedTuple):
    """A signal (or something that resolves into signals later in the batch) waiting for its
    turn: at event time ``ts``, in ``order``, then by ``tie``."""

    ts: int
    order: EventOrder
    tie: int
    item: Any


def event_order(p: Pending) -> tuple[int, int, int]:
    """The sort key of the batch's pending signals: event time, then :class:`EventOrder`, then
    the tie-break."""
    return (p.ts, int(p.order), p.tie)


class Inputs(enum.Enum):
    """The samples of a batch a detector reads."""

    LIMIT = "limit"  # (stream, time, value) per limit rule of a channel, and the robots' own readings
    BASE = "base"    # (stream, time, value) per (scenario, robot, channel), NaN where a channel is missing
    PAIRS = "pairs"  # (stream, time, value a, value b) per pair of neighbouring sensors


@dataclass(frozen=True)
class Setup:
    """What a detector is built from: the catalogue's scenarios, the ``--set`` overrides, what
    its alerts are (``live``, or ``historical`` for bulk history) and every channel's fixed-limit
    rules with the overrides applied (:func:`detectors.rules.channel_rules`)."""

    scenarios: Mapping[str, Scenario]
    overrides: Overrides
    timing: AlertTiming
    rules: Mapping[tuple[str, str], Sequence[Rule]]


def timing_of(setup: Setup, late: Sequence[bool] | None, fi: int) -> tuple[bool, AlertTiming]:
    """Whether frame ``fi`` of a batch came late, and so its alerts' timing."""
    is_late = bool(late[fi]) if late else False
    return is_late, AlertTiming.late if is_late else setup.timing


def check_batch(name: str, arrays: Mapping[str, npt.NDArray[Any]], dtypes: Mapping[str, Any], n_streams: int) -> int:
    """Check a detector's batch before its kernel sees it: every array one-dimensional, of its
    dtype, all of one length, streams within ``[0, n_streams)`` and in order (the kernels walk
    each stream's samples in time order). Returns the length; ``ValueError`` naming the array
    otherwise."""
    n = -1
    for key, a in arrays.items():
        if a.ndim != 1:
            raise ValueError(f"{name}: {key} must be one-dimensional, got shape {a.shape}")
        if a.dtype != np.dtype(dtypes[key]):
            raise ValueError(f"{name}: {key} must be {np.dtype(dtypes[key])}, got {a.dtype}")
        if n < 0:
            n = a.shape[0]
        elif a.shape[0] != n:
            raise ValueError(f"{name}: {key} has {a.shape[0]} values, the others {n}")
    stream = arrays.get("stream")
    if stream is not None and n > 0:
        if int(stream.min()) < 0 or int(stream.max()) >= n_streams:
            raise ValueError(f"{name}: stream numbers must be in [0, {n_streams}), got "
                             f"[{int(stream.min())}, {int(stream.max())}]")
        if bool(np.any(np.diff(stream) < 0)):
            raise ValueError(f"{name}: samples must be sorted by stream")
    return max(n, 0)


class Detector(ABC):
    """One detector of the suite (see the module's text)."""

    #: the registry's name of the detector
    name: ClassVar[str]
    #: the samples it reads
    inputs: ClassVar[Inputs]
    #: its signals' place among those of one event time
    order: ClassVar[EventOrder]
    #: the ``detector`` names of the alerts it raises (a class's, or an instance's where the
    #: catalogue decides them)
    alerts: frozenset[str]
    #: its per-stream state
    columns: ClassVar[Columns]
    #: its compiled kernel (``staticmethod``): the batch's input arrays, then the state columns
    #: :attr:`args`, then the output arrays; returns the number of state changes
    kernel: ClassVar[Callable[..., Any]]
    #: the state columns the kernel takes, in order
    args: ClassVar[tuple[str, ...]]
    #: the ``--set`` fields (:mod:`detectors.overrides`) it reads
    settings: ClassVar[tuple[str, ...]] = ()
    #: whether its alerts are about what one robot's own readings show over time (a rate, a
    #: sensor's health, a change): a robot's part of them ends when it leaves the place
    per_robot: ClassVar[bool] = True
    #: its per-stream state (for detectors over shared streams, the table they share)
    table: StreamTable

    def __init__(self, setup: Setup) -> None:
        self.setup = setup

    def call(self, inputs: tuple[npt.NDArray[Any], ...], outs: tuple[npt.NDArray[Any], ...]) -> int:
        """Run :attr:`kernel` over checked input arrays with the state columns :attr:`args` and
        the output arrays ``outs``: the number of state changes it reports."""
        if not inputs[0].shape[0]:
            return 0
        return int(self.kernel(*inputs, *(self.table[c] for c in self.args), *outs))

    def begin(self, frames: Sequence[Frame]) -> None:  # noqa: B027 - an optional hook, nothing by default
        """A batch of ``frames`` starts (before :meth:`run`)."""

    def finish(self) -> None:  # noqa: B027 - an optional hook, nothing by default
        """The batch's signals have gone through the alert engine."""

    @abstractmethod
    def run(self, cols: tuple[npt.NDArray[Any], ...], late: Sequence[bool] | None) -> list[Pending]:
        """The signals of a batch's samples (``cols``: its :attr:`inputs`, sorted by stream,
        time and frame index, the frame index last)."""

    @abstractmethod
    def seed(self, ev: AlertEvent) -> None:
        """Put the state behind the restored active alert ``ev`` (one of :attr:`alerts`) back in
        its raised state where it is idle, so the next reading decides whether it clears."""

    @abstractmethod
    def forget(self, ev: AlertEvent, robot: str) -> None:
        """Reset ``robot``'s state behind the active alert ``ev``: it has left the place."""


class BaseStream(NamedTuple):
    """A base stream: one channel as one robot reads it in one place (``spec`` None for a
    reading the catalogue does not know there)."""

    scenario_id: str
    robot_id: str
    channel: str
    spec: Channel | None


BASE_DTYPES = {"stream": np.int64, "t": np.int64, "x": np.float64}


class StreamDetector(Detector):
    """A detector over the base streams (:attr:`Inputs.BASE`). Several share them: the suite
    keeps one table with every such detector's columns, numbers the streams as they appear
    (``route``: the stream of ``(scenario, robot, channel)``, made when new) and has each
    detector :meth:`configure` a new one."""

    inputs: ClassVar[Inputs] = Inputs.BASE
    #: the state column each alert's raised state is kept in (:meth:`forget` resets it)
    state_columns: ClassVar[Mapping[str, str]]

    def bind(self, table: StreamTable, meta: Sequence[BaseStream], route: Callable[[str, str, str], int]) -> None:
        """Share the suite's base streams."""
        self.table, self.meta, self.route = table, meta, route

    @abstractmethod
    def configure(self, s: int, sc: Scenario, c: Channel | None) -> None:
        """Set up new stream ``s`` (``c``: its channel in ``sc``, None if the catalogue does not
        know it)."""

    def apply_settings(self, s: int, sc: Scenario, c: Channel, columns: Mapping[str, str]) -> None:
        """Write the ``--set`` fields given for ``c`` in ``sc`` into stream ``s``'s state
        (``columns``: each field's column); fields not given keep what :meth:`configure` set."""
        for fld, col in columns.items():
            v = self.setup.overrides.get(sc.id, c.name, fld)
            if v is not None:
                self.table[col][s] = v

    def check(self, stream: npt.NDArray[Any], t: npt.NDArray[Any], x: npt.NDArray[Any]) -> int:
        """:func:`check_batch` for a batch of base samples: their number."""
        return check_batch(self.name, {"stream": stream, "t": t, "x": x}, BASE_DTYPES, len(self.table))

    def forget(self, ev: AlertEvent, robot: str) -> None:
        s = self.table.get((ev.scenario_id, robot, ev.channel))
        if s is not None:
            self.table[self.state_columns[ev.detector]][s] = 0

    def stream_of(self, ev: AlertEvent) -> int | None:
        """The base stream behind alert ``ev`` (made if need be), or None where it has none."""
        if ev.scenario_id not in self.setup.scenarios or not ev.channel or ev.robot_id is None:
            return None
        return self.route(ev.scenario_id, ev.robot_id, ev.channel)


D = TypeVar("D", bound=type[Detector])

#: every detector class, by name, in the order the suite runs them
REGISTRY: dict[str, type[Detector]] = {}


def register(cls: D) -> D:
    """Class decorator: add a detector to :data:`REGISTRY` (a second one of a name is an error)."""
    if cls.name in REGISTRY:
        raise ValueError(f"a detector named {cls.name!r} is registered already")
    for attr in ("inputs", "order", "columns", "kernel", "args"):
        if not hasattr(cls, attr):
            raise TypeError(f"detector {cls.__name__} does not declare {attr}")
    REGISTRY[cls.name] = cls
    return cls


def detectors_for(alert: str) -> list[type[Detector]]:
    """The registered detectors that raise alerts named ``alert``."""
    return [cls for cls in REGISTRY.values() if alert in cls.alerts]

