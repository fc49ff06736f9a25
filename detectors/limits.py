"""Fixed limits with severity levels, debounce and hysteresis (gas, air, heat, machines).

One kernel serves every limit in the catalogue: methane alarm / power-cut / restore, the other
gases' maxima, the O2 minimum, air velocity out of the roadway's range, working-place and
equipment temperatures. Each stream (scenario, robot, channel, limit) carries up to
:data:`MAX_LEVELS` thresholds ordered by rising severity, a direction, a restore level and
debounce counts.

The rule, per sample of one stream, in time order:

* a non-finite sample changes nothing (the sensor-health detector reports it);
* a level is *met* by a sample when ``x >= threshold`` (direction ``above``) or
  ``x < threshold`` (``below``), as in :class:`minewatch.catalogue.Limit`; each level counts the
  consecutive samples that meet it;
* while an alert is active, ``n_clear`` consecutive samples past the restore level
  (``x < restore`` above, ``x >= restore`` below) clear it; in the band between the restore
  level and the thresholds the level holds (hysteresis);
* otherwise the stream moves up to the most severe level whose count has reached its
  ``n_raise``; it never moves down except by clearing, so an alert's severity is the worst it
  has been since it was raised (the regulation keeps power off until methane is below the
  restore level, whatever it passed through on the way down).
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

from detectors._jit import Arr, jit
from detectors._state import StreamTable
from detectors.base import (
    NS,
    ROBOTS,
    STALE_S,
    Detector,
    EventOrder,
    Inputs,
    Pending,
    Setup,
    check_batch,
    register,
    timing_of,
)
from detectors.engine import AlertEngine, Signal
from detectors.overrides import LEVEL_FIELDS
from detectors.rules import ROBOT_RULES, Rule, fmt_thr, fmt_value, subject, vibration_rules, where_place, where_robot
from detectors.vibration import VibrationFeatures
from minewatch.schema import AlertEvent, AlertKind, Severity
from minewatch.wire import Origin

__all__ = ["LIMIT_ARGS", "LIMIT_COLUMNS", "MAX_LEVELS", "LimitDetector", "calm_kernel", "limit_kernel"]

MAX_LEVELS = 3
_SATURATE = 1 << 30
_NEWEST = np.iinfo(np.int64).max  # held_live_t after readings taken live: newer than any
_OPEN_RUNS = 8  # a robot's held-back runs that a later frame can go on (the newest judged)
_PUT_BY = 4096  # held-back states of runs another run took over, kept to be taken up again


@jit
def limit_kernel(stream: Arr, x: Arr, thr: Arr, above: Arr, restore: Arr, n_raise: Arr, n_clear: Arr, level: Arr,
                 count: Arr, clear_count: Arr, out: Arr) -> int:
    """Run a batch through the limit rule.

    ``stream``/``x`` are the batch (sorted by stream, then time); ``thr``/``n_raise`` are
    ``(streams, MAX_LEVELS)`` with NaN for an unused level; ``above``/``restore``/``n_clear``
    are per stream. ``level`` (0 = no alert, k = the k-th level), ``count`` and
    ``clear_count`` are the state, updated in place. ``out[i]`` is the stream's new level
    after sample ``i`` when it changed there, else -1. Returns the number of changes.
    """
    n_changes = 0
    k_max = thr.shape[1]
    for i in range(x.shape[0]):
        s = stream[i]
        v = x[i]
        out[i] = -1
        if not np.isfinite(v):
            continue
        up = above[s]
        for k in range(k_max):
            t = thr[s, k]
            if t != t:
                count[s, k] = 0
            elif (v >= t) if up else (v < t):
                if count[s, k] < _SATURATE:
                    count[s, k] += 1
            else:
                count[s, k] = 0
        cur = level[s]
        if cur > 0:
            r = restore[s]
            if (v < r) if up else (v >= r):
                clear_count[s] += 1
                if clear_count[s] >= n_clear[s]:
                    level[s] = 0
                    clear_count[s] = 0
                    out[i] = 0
                    n_changes += 1
                continue
            clear_count[s] = 0
        for k in range(k_max - 1, cur - 1, -1):
            if count[s, k] > 0 and count[s, k] >= n_raise[s, k]:
                level[s] = k + 1
                out[i] = k + 1
                n_changes += 1
                break
    return n_changes


@jit
def calm_kernel(stream: Arr, t: Arr, x: Arr, out: Arr, level_before: Arr, restore: Arr, above: Arr,
                calm_t: Arr) -> None:
    """``calm_t[s]`` moved to the time ``t`` of each stream's newest reading in the batch (sorted by
    stream, then time; ``out`` the kernel's steps, ``level_before`` the levels before it) back past
    its restore level (``x < restore`` above, ``x >= restore`` below) that leaves the stream at no
    alert: its own step a clear, or no step and the stream at none."""
    prev = -1
    cur = 0
    for i in range(stream.shape[0]):
        s = stream[i]
        if s != prev:
            prev = s
            cur = level_before[s]
        if out[i] >= 0:
            cur = out[i]
        if cur == 0:
            v = x[i]
            if (v < restore[s]) if above[s] else (v >= restore[s]):
                calm_t[s] = t[i]


LIMIT_COLUMNS = {
    "thr": (np.float64, (MAX_LEVELS,), np.nan),
    "n_raise": (np.int32, (MAX_LEVELS,), 1),
    "above": (np.bool_, (), True),
    "restore": (np.float64, (), np.nan),
    "n_clear": (np.int32, (), 1),
    "level": (np.int8, (), 0),
    "count": (np.int32, (MAX_LEVELS,), 0),
    "clear_count": (np.int32, (), 0),
    "last_t": (np.int64, (), -1),  # the stream's last reading, for the suite (not the kernel)
    # the rule's state over the stream's held-back readings, judged apart from the live level
    # (LimitDetector._behind): carried from pass to pass while they go forward in time
    "held_level": (np.int8, (), 0),
    "held_count": (np.int32, (MAX_LEVELS,), 0),
    "held_clear_count": (np.int32, (), 0),
    "held_last_t": (np.int64, (), -1),
    "held_live_t": (np.int64, (), -1),  # the stream's newest reading when its held-back state last moved
    "held_run": (np.int64, (), -1),  # the run of the robot's held-back frames its last reading was of
    # the stream's newest live reading back past its restore level with no alert standing on it (its
    # live excursion, if one stands, began after it): whether a backlog's excursion runs on into it
    "calm_t": (np.int64, (), -1),
}


def _hms(ns: int) -> str:
    return time.strftime("%H:%M:%S", time.gmtime(ns // NS))


LIMIT_ARGS = ("thr", "above", "restore", "n_raise", "n_clear", "level", "count", "clear_count")
_BATCH_DTYPES = {"stream": np.int64, "t": np.int64, "x": np.float64}
VIB_INDEX = 100  # rule index of a machine's vibration zone rule (its bearing rule: 101), after any channel rule
Key = tuple[str, str, str, int]  # (scenario, or "" for a robot's own readings; robot; channel; rule index)


class _Evidence:
    """A reading past the restore level by a robot that is not part of an active alert: resolved
    into clears of stale robots' parts when its turn in the batch's event order comes."""

    __slots__ = ("det", "key", "s", "ts", "value", "slices", "t")

    def __init__(self, det: LimitDetector, key: tuple[str, str, str], s: int, ts: int, value: float,
                 slices: dict[int, tuple[int, int]], t: Arr) -> None:
        self.det, self.key, self.s, self.ts, self.value, self.slices, self.t = det, key, s, ts, value, slices, t

    def resolve(self) -> list[Signal]:
        det = self.det
        assert det.engine is not None
        sources = det.engine.sources(self.key)
        sid, robot, chan = det.meta[self.s]
        if not sources or robot in sources or sid is None:
            return []
        out = []
        j = det.key_index[self.s]
        for src in sources:
            src_stream = det.table.get((sid, src, chan, j))
            if src_stream is None:
                continue
            last = det.last_report(src_stream, self.ts, self.slices, self.t)
            quiet = (self.ts - last) / NS
            if last >= 0 and quiet < STALE_S:
                continue
            rule = det.rule[self.s]
            sc = det.setup.scenarios[sid]
            c = sc.channel_map.get(chan)
            what = subject(sc, c) if c else f"{chan} in {where_place(sc)}"
            v = fmt_value(self.value, rule.unit, rule.digits)
            side = "below" if rule.direction == "above" else "back above"
            msg = (f"{what} reads {v} by robot {robot}, {side} the restore level {fmt_thr(rule.restore, rule.unit)}; "
                   f"robot {src}, which raised this alert, has not read it for {quiet:.0f} s: its part of the alert "
                   f"is cleared.")
            out.append(Signal(scenario_id=sid, detector=rule.detector, subject=chan, kind=rule.kind, source=src,
                              severity=None, ts=self.ts, message=msg, value=self.value, limit=rule.restore,
                              unit=rule.unit, channel=chan, robot_id=robot, timing=det.setup.timing,
                              evidence={"rule": rule.rule, "robot": robot, "stale_robot": src,
                                        "stale_s": round(quiet, 1), "level": "restore level"}))
        return out


@register
class LimitDetector(Detector):
    """Fixed limits on limit streams (scenario, robot, channel, rule index): every limit rule of a
    channel (the catalogue's limits with the overrides, and the ventilation checks derived from
    them), a machine's vibration zone and bearing rules (fed by the suite's vibration analysis,
    whose features go into the alert), and a robot's own battery and 5G link (scenario ``""``).

    A robot that raised a limit alert may move on while the condition stands under its name: a
    reading of another robot past the restore level, when the first has not reported that
    channel for :data:`~detectors.base.STALE_S`, clears the first robot's part (judged in event
    time with the batch's other signals, :attr:`EventOrder.STALE_EVIDENCE`)."""

    name = "limits"
    inputs = Inputs.LIMIT
    order = EventOrder.LIMIT
    columns = LIMIT_COLUMNS
    kernel = staticmethod(limit_kernel)
    args = LIMIT_ARGS
    settings = (*LEVEL_FIELDS, "debounce")
    per_robot = False

    def __init__(self, setup: Setup) -> None:
        super().__init__(setup)
        self.table = StreamTable(LIMIT_COLUMNS)
        self.rule: list[Rule] = []
        self.meta: list[tuple[str | None, str, str]] = []  # (scenario or None for robot rules, robot, channel)
        self.key_index: list[int] = []
        self._key_index = np.zeros(0, dtype=np.int64)  # key_index as an array, remade as streams come
        self.key_streams: dict[tuple[str, str, str], list[int]] = {}  # engine key -> limit streams
        self.vib_rules = {sid: r for sid, sc in setup.scenarios.items() if (r := vibration_rules(sc)) is not None}
        # vibration features of the batch's blocks, by (stream, time), for the alerts they raise
        self.features: dict[tuple[int, int], VibrationFeatures] = {}
        self.alerts = frozenset([*(r.detector for rules in setup.rules.values() for r in rules),
                                 *(r.detector for r in ROBOT_RULES.values()),
                                 *(r.detector for pair in self.vib_rules.values() for r in pair)])
        self.engine: AlertEngine | None = None
        self.frames: Sequence[Origin] = ()
        self.held_back: Sequence[int] = ()  # the batch's frames a robot held back (DetectorSuite.process)
        self._sorted: tuple[Arr, Arr] | None = None
        # robot -> (boot or -1, seq) -> run: the seq that would go on each of its last few held-back
        # runs judged (:data:`_OPEN_RUNS`, the newest last), and that run's number
        self._held_frame: dict[str, dict[tuple[int, int], int]] = {}
        # (stream, run) -> the stream's held-back state in that run, put by when another run took it
        # (:meth:`_held_resume`); the newest :data:`_PUT_BY` kept
        self._held_put_by: dict[tuple[int, int], tuple[Any, ...]] = {}
        self._runs = itertools.count(1)  # numbers for held-back runs
        self._run_of: dict[int, int] = {}  # the batch's held-back frames' runs (by frame index)

    def bind(self, engine: AlertEngine) -> None:
        """The engine whose active alerts the stale-robot evidence looks at."""
        self.engine = engine

    # -- streams ---------------------------------------------------------------------------------
    def stream(self, key: Key, rule: Rule) -> int:
        """The limit stream of ``key`` under ``rule``, set up when new."""
        s, new = self.table.add(key)
        if new:
            t = self.table
            for k, (_, thr) in enumerate(rule.levels[:MAX_LEVELS]):
                t["thr"][s, k] = thr
                t["n_raise"][s, k] = rule.n_raise[k]
            t["above"][s] = rule.direction == "above"
            t["restore"][s] = rule.restore
            t["n_clear"][s] = rule.n_clear
            self.rule.append(rule)
            self.meta.append((key[0] or None, key[1], key[2]))
            self.key_index.append(key[3])
            if key[0]:
                self.key_streams.setdefault((key[0], rule.detector, key[2]), []).append(s)
        return s

    def channel_streams(self, sid: str, rid: str, chan: str) -> list[tuple[int, bool]]:
        """The limit streams of a channel read by ``rid`` in ``sid``, each with whether its rule
        takes the signed value (else its size)."""
        return [(self.stream((sid, rid, chan, j), rule), rule.signed)
                for j, rule in enumerate(self.setup.rules.get((sid, chan), ()))]

    def robot_streams(self, rid: str) -> dict[str, int]:
        """Robot ``rid``'s own limit streams, by reading (battery and the link's three)."""
        return {name: self.stream(("", rid, name, 0), rule) for name, rule in ROBOT_RULES.items()}

    # -- a batch ---------------------------------------------------------------------------------
    def begin(self, frames: Sequence[Origin]) -> None:
        self.frames = frames

    def detect(self, stream: npt.NDArray[np.int64], t: npt.NDArray[np.int64], x: npt.NDArray[np.float64], *,
               check: bool = True) -> tuple[npt.NDArray[np.int8], int]:
        """The kernel over checked arrays (``t`` is checked, the kernel needs only the order):
        per sample the stream's new level where it changed (0 cleared), else -1; and the number
        of changes."""
        n = check_batch(self.name, {"stream": stream, "t": t, "x": x}, _BATCH_DTYPES, len(self.table)) if check \
            else stream.shape[0]
        out = np.empty(n, dtype=np.int8)
        return out, self.call((stream, x), (out,))

    def step(self, s: int, value: float) -> int:
        """One reading of stream ``s`` (a robot's status): its new level, or -1."""
        out, _ = self.detect(np.array([s], dtype=np.int64), np.zeros(1, dtype=np.int64), np.array([value]),
                             check=False)  # its own stream
        return int(out[0])

    def run(self, cols: tuple[npt.NDArray[Any], ...], late: Sequence[bool] | None) -> list[Pending]:
        stream, t, x, origin = cols
        pending: list[Pending] = []
        taken = None  # held-back readings taken live (newer than their stream's newest)
        if self.held_back:
            self._run_of = self._held_runs()  # every held-back frame, whether or not a reading here is behind
            held = np.zeros(len(self.frames), dtype=np.bool_)
            held[np.asarray(self.held_back, dtype=np.int64)] = True
            taken = held[origin]
            behind = taken & (t < self.table["last_t"][stream])
            if behind.any():  # held-back readings older than their stream's newest: judged apart
                pending += self._behind(stream[behind], t[behind], x[behind], origin[behind], late)
                keep = ~behind
                stream, t, x, origin, taken = stream[keep], t[keep], x[keep], origin[keep], taken[keep]
        self._sorted = (stream, t)
        level_before = self.table["level"].copy()
        out, n = self.detect(stream, t, x, check=False)  # the suite's own sorted batch
        if taken is not None and taken.any():
            self._held_taken(stream, t, x, origin, out, level_before, np.flatnonzero(taken))
        table = self.table
        calm_kernel(stream, t, x, out, level_before, table["restore"], table["above"], table["calm_t"])
        raisers: dict[tuple[str, str, str], set[str]] = {}  # key -> robots raising it in this batch
        if n:
            for i in np.flatnonzero(out >= 0):
                s, k, ts, fi = int(stream[i]), int(out[i]), int(t[i]), int(origin[i])
                # a raise by a held-back reading (taken live) is of a robot's backlog, not chattering
                # on the board: it does not count towards the key's flapping (AlertEngine)
                hold = not (k and taken is not None and taken[i])
                sig = self.signal(s, k, float(x[i]), ts, self.frames[fi].scenario_id, late, fi, hold=hold)
                pending.append(Pending(ts, self.order, s, sig))
                if k:
                    raisers.setdefault(sig.key, set()).add(sig.source)
        self._stale_evidence(stream, t, x, out, level_before, raisers, pending)
        return pending

    def finish(self) -> None:
        if self._sorted is not None:
            stream, t = self._sorted
            np.maximum.at(self.table["last_t"], stream, t)
            self._sorted = None
        self._run_of = {}
        self.features.clear()

    def _behind(self, stream: Arr, t: Arr, x: Arr, origin: Arr, late: Sequence[bool] | None) -> list[Pending]:
        """Held-back readings older than their stream's newest (a robot's readings sent after newer
        ones, filling a gap in its numbering): they must not move the live level, which the newer
        readings have set. Only those: a reading merely dated late (a spare robot whose clock is
        behind, until the ingestor corrects it) may be the newest there is, and is taken as such. An
        alert standing on the stream goes on standing (a late reading back below the restore level
        does not clear it; one past a more severe level since it was raised escalates it,
        :meth:`_escalations`, and any other adds nothing to it). Where none stands, the late
        readings are run through the rule on their own (:meth:`_held_run`), and what they raise
        is raised, marked late, and cleared again at the stream's newest reading, which is below
        the limits: the condition happened and is over, and the board says so without leaving an
        alert up that no newer reading would clear. So are readings dated before the alert standing
        on the key (the robot's own, or another's) was raised: what they raise happened before it,
        and is a late alert of its own, kept apart from it (:attr:`Signal.apart`): the standing
        alert is neither escalated nor cleared by it."""
        table = self.table
        quiet = table["level"][stream] == 0
        since = self._raised_at(stream)[stream]  # when the alert standing on each reading's key was raised
        pending: list[Pending] = []
        # from before the alert standing on the key was raised (its own or another robot's): judged
        # as where none stands, and what they raise is a late alert of its own, kept apart from it
        before = t < since
        # its own alert stands on the key, and the reading is dated since it was raised
        standing = ~quiet & (since >= 0) & ~before
        judged = quiet | before
        if judged.any():
            s_, t_, x_, o_ = stream[judged], t[judged], x[judged], origin[judged]
            out, shown, apart, ends = self._held_run(s_, t_, x_, o_, before[judged])
            over = []
            for last, aside, first in ends:
                s = int(s_[last])
                if aside and t_[last] > table["calm_t"][s] and out[first:last + 1].max() <= table["level"][s]:
                    # the robot's own excursion, still past the limit where its backlog ends, with no
                    # live reading back past the restore level since, and no worse than the level its
                    # live readings stand at: the start of the one standing, raised live already (its
                    # clear would say it is over, which it is not)
                    shown[first:last + 1] = False
                else:
                    over.append((last, aside))
            pending += self._steps(s_, t_, x_, o_, out, late, shown, hold=False, apart=apart)
            for last, aside in over:  # a run still raised at its end: over at the newest reading
                s = int(s_[last])
                newest = int(table["last_t"][s])
                pending.append(Pending(newest, self.order, s, self.signal(
                    s, 0, float(x_[last]), newest, self.frames[int(o_[last])].scenario_id, late, int(o_[last]),
                    over=True, apart=aside)))
        if standing.any():  # after the readings before it: a run's count goes on from them
            pending += self._escalations(stream[standing], t[standing], x[standing], origin[standing], late)
        return pending

    def _held_taken(self, stream: Arr, t: Arr, x: Arr, origin: Arr, out: Arr, level_before: Arr,
                    taken: Arr) -> None:
        """Held-back readings the live rule took (indices ``taken`` into the batch ``stream``,
        ``t``, ``x``, ``origin`` that it ran, with its steps ``out`` and the live levels before it,
        ``level_before``): newer than their stream's newest, they may be the current state,
        and what they raise is the live rule's to raise. They are still readings of their robot's
        held-back run, so the run's held-back state counts them too (its steps here go nowhere): the
        run's next reading judged apart (:meth:`_held_run`, :meth:`_escalations`) counts on from
        them, and an excursion split between the live and the held-back rule is seen whole. A level
        the live rule stands at after them covers the run too: the held-back state is taken at
        least that high, so the run's later readings of the same excursion do not raise it again
        (late, after a live clear). The held-back state cannot pass the live level here: a held-back
        reading judged apart before one taken live is of another run (a live reading of the stream,
        between them in time, lies between them in the robot's numbering)."""
        table = self.table
        s, ts, o = stream[taken], t[taken], origin[taken]
        level, clear_count = table["held_level"], table["held_clear_count"]
        breaks = self._held_go_on(s, ts, o, taken=True)
        self._by_run(s, x[taken], breaks, table["restore"], level, table["held_count"], clear_count)
        for i in taken[np.r_[s[1:] != s[:-1], True]].tolist():  # each stream's last reading taken
            k = int(stream[i])
            a = int(np.searchsorted(stream, k))  # the stream's first reading in the batch
            steps = np.flatnonzero(out[a:i + 1] >= 0)
            live = int(out[a + steps[-1]]) if steps.size else int(level_before[k])  # the live level after it
            if live > level[k]:
                level[k], clear_count[k] = live, 0

    def _held_run(self, stream: Arr, t: Arr, x: Arr, origin: Arr,
                  before: Arr) -> tuple[Arr, Arr, Arr, list[tuple[int, bool, int]]]:
        """Held-back readings of streams with no alert standing through the rule on the streams'
        held-back state (``held_*``), not the live one: a robot sending its backlog a frame a
        message between its live frames is judged as one run, as if it came in one message (a rule
        that wants two readings in a row sees them across passes). A run ends, and the next
        reading starts from no alert, where the frames' numbering does not go on from one reading
        to the next (the backlogs of two gaps, with the live readings between them), and where
        :meth:`_held_go_on` says the state does not go on at all. Per reading the new level where
        it changed, else -1; per reading whether its step goes on the board (a clear of what an
        earlier pass raised does not, as that pass cleared it at once, :meth:`_behind`); per reading
        whether its step is of a late alert kept apart from the one standing on its key (raised by a
        reading dated ``before`` that one was raised, and every step after it until it clears); and
        the last reading of each run that left raised what it raised in this pass, to be cleared,
        with whether that alert is kept apart and the reading that raised it."""
        table = self.table
        level, count, clear_count = table["held_level"], table["held_count"], table["held_clear_count"]
        breaks = self._held_go_on(stream, t, origin)
        out = self._by_run(stream, x, breaks, table["restore"], level, count, clear_count)
        shown = np.ones(stream.shape[0], dtype=np.bool_)
        apart = np.zeros(stream.shape[0], dtype=np.bool_)
        on_board = np.zeros(len(table), dtype=np.bool_)  # raised in this pass and not cleared since
        aside = np.zeros(len(table), dtype=np.bool_)  # what is on the board was raised apart
        opened = np.zeros(len(table), dtype=np.int64)  # where what is on the board was raised
        ends: list[tuple[int, bool, int]] = []
        new_run = set(breaks)
        for i in sorted(new_run.union(np.flatnonzero(out >= 0).tolist())):
            s = int(stream[i])
            if i in new_run and on_board[s]:  # what the run before left on the board is over
                ends.append((i - 1, bool(aside[s]), int(opened[s])))
                on_board[s] = False
            if out[i] > 0:
                if not on_board[s]:
                    aside[s], opened[s] = before[i], i
                on_board[s] = True
                apart[i] = aside[s]
            elif out[i] == 0:
                if on_board[s]:
                    on_board[s] = False
                    apart[i] = aside[s]
                else:
                    shown[i] = False  # the clear of a level carried in from an earlier pass
        for s in np.flatnonzero(on_board).tolist():
            ends.append((int(np.flatnonzero(stream == s)[-1]), bool(aside[s]), int(opened[s])))
        return out, shown, apart, ends

    def _by_run(self, stream: Arr, x: Arr, breaks: list[int], restore: Arr, level: Arr, count: Arr,
                clear_count: Arr, *, anew: tuple[str, ...] = ("level", "count", "clear_count")) -> Arr:
        """The limit kernel over readings sorted by stream, then time, on the state ``level``,
        ``count`` and ``clear_count`` (updated in place) with ``restore`` levels: per reading the
        new level where it changed, else -1. At each of ``breaks`` (a reading starting a new run of
        its robot's held-back frames, :meth:`_held_go_on`) its stream's state named in ``anew``
        starts from nothing."""
        state = {"level": level, "count": count, "clear_count": clear_count}
        table = self.table
        out = np.empty(stream.shape[0], dtype=np.int8)
        for a, b in zip([0, *breaks], [*breaks, stream.shape[0]]):
            if a:
                for name in anew:
                    state[name][int(stream[a])] = 0
            limit_kernel(stream[a:b], x[a:b], table["thr"], table["above"], restore, table["n_raise"], table["n_clear"],
                         level, count, clear_count, out[a:b])
        return out

    def _held_go_on(self, stream: Arr, t: Arr, origin: Arr, *, taken: bool = False) -> list[int]:
        """The streams' held-back state (``held_*``) taken from no alert where the held-back
        readings ``stream``/``t`` (sorted by stream, then time; of the batch's frames ``origin``) do
        not go on from the last ones judged (:meth:`_held_run`), and moved past them: where the
        first reading of a stream here is not after the last one judged, or is after the stream's
        newest reading when its state last moved (the backlog of a later gap), or its frame is not
        of the run of held-back frames that reading's was of. The other readings here whose frame is
        of another run than the reading's before them (the backlogs of two gaps): their indices.
        ``taken``: readings the live rule took (:meth:`_held_taken`), themselves the stream's newest,
        so that only the run of their frames says whether the next one judged goes on from them."""
        table = self.table
        last, live, run_of = table["held_last_t"], table["held_live_t"], table["held_run"]
        runs = self._run_of
        run = np.array([runs.get(i, -1) for i in origin.tolist()], dtype=np.int64)
        starts, first = np.unique(stream, return_index=True)
        other = (run[first] != run_of[starts]) & (run[first] >= 0)
        if other.any():
            self._held_resume(starts[other], run[first][other])
        again = starts[(t[first] <= last[starts]) | (t[first] > live[starts]) | (run[first] != run_of[starts])
                       | (run[first] < 0)]
        self._held_anew(again)
        last[again] = -1  # a run's own readings: not those of the run before (an older gap's backlog after)
        # newer than every reading here (they are behind it; or taken live, and newest themselves)
        live[starts] = _NEWEST if taken else table["last_t"][starts]
        np.maximum.at(last, stream, t)
        run_of[starts] = run[np.r_[first[1:], stream.shape[0]] - 1]
        return np.flatnonzero(np.r_[False, (stream[1:] == stream[:-1]) & (run[1:] != run[:-1])]).tolist()

    def _held_resume(self, streams: Arr, runs: Arr) -> None:
        """``streams``' held-back state taken by another run (``runs``, one each): the state of the
        run it was in is put by, and the state of the run it goes to put back, where one was put by
        (a run that comes back, the backlogs of two gaps trickled interleaved)."""
        table = self.table
        names = ("held_level", "held_count", "held_clear_count", "held_last_t", "held_live_t")
        put_by = self._held_put_by
        for s, r in zip(streams.tolist(), runs.tolist()):
            was = int(table["held_run"][s])
            if was >= 0:
                put_by[(s, was)] = tuple(np.copy(table[name][s]) for name in names)
                if len(put_by) > _PUT_BY:
                    del put_by[next(iter(put_by))]
            state = put_by.pop((s, r), None)
            if state is not None:
                for name, v in zip(names, state):
                    table[name][s] = v
                table["held_run"][s] = r

    def _held_anew(self, streams: Arr) -> None:
        """The held-back state of ``streams`` from no alert, nothing counted."""
        table = self.table
        table["held_level"][streams], table["held_count"][streams], table["held_clear_count"][streams] = 0, 0, 0

    def _held_runs(self) -> dict[int, int]:
        """The batch's held-back frames (by index) numbered by run: the frames of a robot's boot
        whose seq follow one another, and go on from its last held-back frame judged before
        (:attr:`_held_frame`) with that one's run number: the one before, or one of the few before
        it (the backlogs of two gaps trickled interleaved, A0, A1, B0, A2: A2 goes on A's run).
        Frames without seq (none the ingestor names) are -1: no run goes on into them from an
        earlier pass."""
        mine: dict[tuple[str, int], list[tuple[int, int]]] = {}
        out: dict[int, int] = {}
        for fi in self.held_back:
            f = self.frames[fi]
            seq = getattr(f, "seq", None)
            if seq is None:
                out[fi] = -1
                continue
            boot = getattr(f, "boot", None)
            mine.setdefault((f.robot_id, -1 if boot is None else boot), []).append((seq, fi))
        for (rid, boot), frames in mine.items():
            frames.sort()
            ends = self._held_frame.setdefault(rid, {})
            number, prev = -1, None
            for seq, fi in frames:
                if prev is None or seq != prev + 1:
                    if prev is not None:
                        ends[(boot, prev + 1)] = number
                    was = ends.pop((boot, seq), None)
                    number = next(self._runs) if was is None else was
                out[fi] = number
                prev = seq
            ends[(boot, frames[-1][0] + 1)] = number
            while len(ends) > _OPEN_RUNS:
                del ends[next(iter(ends))]
        return out

    def _steps(self, stream: Arr, t: Arr, x: Arr, origin: Arr, out: Arr, late: Sequence[bool] | None,
               shown: Arr | None = None, *, hold: bool = True, apart: Arr | None = None) -> list[Pending]:
        """The signals of the steps ``out`` (of :meth:`_by_run`) of readings judged apart (those
        ``shown``, where given). ``hold`` False: their clears are never held as a flapping
        alarm's are (newer readings show the whole run over). ``apart``: per reading, whether its
        step is of a late alert kept apart from the one standing on its key (:meth:`_held_run`)."""
        pending: list[Pending] = []
        steps = out >= 0 if shown is None else (out >= 0) & shown
        for i in np.flatnonzero(steps).tolist():
            s, ts, fi = int(stream[i]), int(t[i]), int(origin[i])
            aside = apart is not None and bool(apart[i])
            pending.append(Pending(ts, self.order, s, self.signal(s, int(out[i]), float(x[i]), ts,
                                                                  self.frames[fi].scenario_id, late, fi, hold=hold,
                                                                  apart=aside)))
        return pending

    def _escalations(self, stream: Arr, t: Arr, x: Arr, origin: Arr, late: Sequence[bool] | None) -> list[Pending]:
        """Held-back readings of streams whose alert stands, dated since it was raised (those from
        before add nothing: the stream may have been back below the restore level in between): they
        cannot clear it, but those that pass a more severe level (debounce and all) escalate it,
        marked late: an alert's severity is the worst it has been since it was raised. The live
        level is not moved. The readings in a row past each level are counted on in the streams'
        held-back state, as :meth:`_held_run` counts them: a backlog sent a frame a message
        escalates as it would in one message, and a new run (:meth:`_held_go_on`) counts anew."""
        table = self.table
        breaks = self._held_go_on(stream, t, origin)
        # from the standing level (one copy: a later run does not raise again what an earlier one
        # escalated), with no restore level: only a move up is looked for; a new run counts anew
        out = self._by_run(stream, x, breaks, np.full_like(table["restore"], np.nan), table["level"].copy(),
                           table["held_count"], np.zeros_like(table["clear_count"]), anew=("count",))
        return self._steps(stream, t, x, origin, out, late)  # raises only: with no restore level nothing clears

    def _raised_at(self, stream: Arr) -> Arr:
        """Per stream number (of those in ``stream``): when the alert standing on its key was
        raised; -1 where none stands (before any reading)."""
        since = np.full(len(self.table), -1, dtype=np.int64)
        for s in np.unique(stream).tolist():
            standing = self.engine.get(self._alert_key(s)) if self.engine is not None else None
            if standing is not None:
                since[s] = standing.first_ts
        return since

    def _alert_key(self, s: int) -> tuple[str, str, str]:
        """The alert key (:attr:`detectors.engine.Signal.key`) of stream ``s``'s alerts."""
        scenario_id, robot_id, channel = self.meta[s]
        detector = self.rule[s].detector
        return (ROBOTS, detector, robot_id) if scenario_id is None else (scenario_id, detector, channel)

    def _stale_evidence(self, stream: Arr, t: Arr, x: Arr, out: Arr, level_before: Arr,
                        raisers: dict[tuple[str, str, str], set[str]], pending: list[Pending]) -> None:
        """Readings that can retire a robot's stale part in an alert (see the class's text). Only
        places with an active alert (or one raised in this batch) are looked at, and of their
        readings past the restore level at level 0 only those at a time when one of the alert's
        possible sources (its sources now, or a robot raising it in this batch) has not reported
        for :data:`STALE_S`: any other would resolve to nothing. Whole arrays at a time: in a busy
        place with an alert up, every robot's every reading is such a reading."""
        assert self.engine is not None
        keys = set(raisers) | {k for k in self.engine.active_keys() if k in self.key_streams}
        keys = {k for k in keys if len(self.key_streams.get(k, ())) >= 2}
        n = stream.shape[0]
        if not keys or not n:  # no readings left: a batch whose every limit sample was held back (run)
            return
        starts = np.flatnonzero(np.r_[True, stream[1:] != stream[:-1]])
        ends = np.r_[starts[1:], n]
        runs = stream[starts]  # each stream's samples are one run (the batch is sorted by stream)
        level = self._levels(stream, out, level_before)
        table = self.table
        restore = table["restore"][stream]
        past = np.where(table["above"][stream], x < restore, x >= restore) & np.isfinite(x) & (level == 0)
        if not past.any():
            return
        if len(self._key_index) != len(self.key_index):
            self._key_index = np.asarray(self.key_index, dtype=np.int64)
        last_t = table["last_t"]
        slices: dict[int, tuple[int, int]] = {}  # the possible sources' samples in this batch
        for key in keys:
            member = np.zeros(len(table), dtype=np.bool_)
            member[self.key_streams[key]] = True
            rows = np.flatnonzero(past & member[stream])
            if not rows.size:
                continue
            sid, _, chan = key
            sources = set(self.engine.sources(key)) | raisers.get(key, set())
            ts = t[rows]
            js = self._key_index[stream[rows]]
            stale = np.zeros(rows.size, dtype=np.bool_)
            for j in np.unique(js).tolist():
                of_j = js == j
                for src in sources:
                    ss = table.get((sid, src, chan, j))
                    if ss is None:
                        continue
                    last = np.full(rows.size, last_t[ss], dtype=np.int64)
                    r = int(np.searchsorted(runs, ss))
                    if r < runs.size and runs[r] == ss:
                        a, b = int(starts[r]), int(ends[r])
                        slices[ss] = (a, b)
                        k = np.searchsorted(t[a:b], ts, side="right") - 1
                        last = np.where(k >= 0, t[a:b][np.maximum(k, 0)], last)
                    stale |= of_j & ((last < 0) | ((ts - last) / NS >= STALE_S))
            for i in rows[stale].tolist():
                s, ts_i = int(stream[i]), int(t[i])
                pending.append(Pending(ts_i, EventOrder.STALE_EVIDENCE, s,
                                       _Evidence(self, key, s, ts_i, float(x[i]), slices, t)))

    @staticmethod
    def _levels(stream: Arr, out: Arr, level_before: Arr) -> Arr:
        """The level each reading of the sorted batch ``stream`` leaves its stream at: its own step
        (``out``), else the stream's last step before it in the batch, else the level before it."""
        n = stream.shape[0]
        starts = np.flatnonzero(np.r_[True, stream[1:] != stream[:-1]])
        pos = np.where(out >= 0, np.arange(n), -1)
        np.maximum.accumulate(pos, out=pos)
        first = np.repeat(starts, np.diff(np.r_[starts, n]))
        return np.where(pos >= first, out[np.maximum(pos, 0)], level_before[stream])

    def last_report(self, s: int, ts: int, slices: dict[int, tuple[int, int]], t: Arr) -> int:
        """When stream ``s`` last reported at or before ``ts`` (this batch, or earlier)."""
        sl = slices.get(s)
        if sl is not None:
            times = t[sl[0]:sl[1]]
            j = int(np.searchsorted(times, ts, side="right")) - 1
            if j >= 0:
                return int(times[j])
        return int(self.table["last_t"][s])

    def signal(self, s: int, k: int, value: float, ts: int, frame_scenario: str, late: Sequence[bool] | None,
               fi: int, *, over: bool = False, hold: bool = True, apart: bool = False) -> Signal:
        """Stream ``s``'s step to level ``k`` (0: cleared) at ``value``; ``frame_scenario``: where the
        frame says its robot is (a robot rule's alert is placed there). ``over``: the clear, at
        ``ts``, the stream's newest reading, of what late readings raised (:meth:`_behind`).
        ``hold`` False, or ``over``: a clear never held as a flapping alarm's is. ``apart``: of a late
        alert kept apart from the one standing on its key (:attr:`Signal.apart`), whose id goes into
        the evidence (``before_alert``)."""
        rule = self.rule[s]

        def say(k: int, v: float | None, what: str) -> str:
            if not over:
                return rule.message(k, v, what)
            if apart:
                return (f"{what}: the readings past the limit came late, dated before the alert standing here was "
                        f"raised, and the robot's newer readings (the last at {_hms(ts)} UTC) show them over: this "
                        f"late alert is cleared; the one standing is not changed by it.")
            return (f"{what}: the readings past the limit came late, and the robot's newer readings (the last "
                    f"at {_hms(ts)} UTC) raise no alert: the alert is cleared.")
        scenario_id, robot_id, channel = self.meta[s]
        evidence: dict[str, object] = {"rule": rule.rule, "robot": robot_id}
        severity: Severity | None
        if k:
            severity, limit = rule.levels[k - 1]
            evidence["level"] = rule.level_names[k - 1]
        else:
            severity, limit = None, rule.restore
            evidence["level"] = "restore level"
        evidence["restore"] = rule.restore
        is_late, timing = timing_of(self.setup, late, fi)
        if is_late:
            evidence["late"] = True
        if over:
            evidence["newer_readings_ts"] = ts
        standing = self.engine.get(self._alert_key(s)) if apart and self.engine is not None else None
        if standing is not None:  # the alert this late one is kept apart from
            evidence["before_alert"] = standing.alert_id
        if scenario_id is None:  # a robot rule: the robot is where its frame says
            here = self.setup.scenarios.get(frame_scenario)
            what = f"{rule.what} of {where_robot(robot_id, here)}"
            return Signal(scenario_id=frame_scenario, place=ROBOTS, detector=rule.detector, subject=robot_id,
                          kind=rule.kind, source=robot_id, severity=severity, ts=ts,
                          message=say(k, value, what), value=None if over else value, limit=limit, unit=rule.unit,
                          channel=None, robot_id=robot_id, evidence=evidence, timing=timing, may_hold=hold and not over,
                          apart=apart)
        sc = self.setup.scenarios[scenario_id]
        c = sc.channel_map.get(channel)
        if rule.quantity == "run":
            what = f"{rule.what} in {where_place(sc)}"
        else:
            what = subject(sc, c) if c else f"{channel} in {where_place(sc)}"
        feats = self.features.get((s, ts))
        if feats is not None and sc.machine is not None:
            what = f"{rule.what} of the {sc.machine.name} in {where_place(sc)}"
        message = say(k, value, what)
        if feats is not None and sc.machine is not None:
            diag = feats.diagnosis
            message += (f" Diagnosis: {diag}; zone {feats.zone}, {feats.rms_mm_s:.2f} mm/s, "
                        f"kurtosis {feats.kurtosis:.1f}, crest factor {feats.crest:.1f}.")
            evidence.update(diagnosis=diag, zone=feats.zone, rms_mm_s=round(feats.rms_mm_s, 3),
                            kurtosis=round(feats.kurtosis, 2), crest=round(feats.crest, 2),
                            snr_db={"bpfo": round(feats.bpfo_snr_db, 1), "bpfi": round(feats.bpfi_snr_db, 1),
                                    "bsf": round(feats.bsf_snr_db, 1)})
        return Signal(scenario_id=scenario_id, detector=rule.detector, subject=channel, kind=rule.kind, source=robot_id,
                      severity=severity, ts=ts, message=message, value=None if over else value, limit=limit,
                      unit=rule.unit, channel=channel, robot_id=robot_id, evidence=evidence, timing=timing,
                      may_hold=hold and not over, apart=apart)

    # -- restore ---------------------------------------------------------------------------------
    def seed(self, ev: AlertEvent) -> None:
        rid = ev.robot_id
        if rid is None:
            return
        if ev.kind is AlertKind.robot_health:
            for name, rule in ROBOT_RULES.items():
                if rule.detector == ev.detector:
                    self._seed(("", rid, name, 0), rule, ev.severity)
            return
        vib = self.vib_rules.get(ev.scenario_id)
        if vib is not None and ev.detector in (vib[0].detector, vib[1].detector):
            j = 0 if ev.detector == vib[0].detector else 1
            self._seed((ev.scenario_id, rid, ev.channel or "", VIB_INDEX + j), vib[j], ev.severity)
            return
        for j, rule in enumerate(self.setup.rules.get((ev.scenario_id, ev.channel or ""), ())):
            if rule.detector == ev.detector:
                self._seed((ev.scenario_id, rid, ev.channel or "", j), rule, ev.severity)

    def _seed(self, key: Key, rule: Rule, severity: Severity) -> None:
        ks = [k for k, (sev, _) in enumerate(rule.levels, start=1) if sev is severity]
        if ks:
            s = self.stream(key, rule)
            if self.table["level"][s] == 0:
                self.table["level"][s] = ks[0]

    def forget(self, ev: AlertEvent, robot: str) -> None:
        """Limit alerts stand until someone reads the place clear: a robot leaving changes nothing."""
