"""The compiled batch flattening against the frame-by-frame restatement (reference_suite.py)."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from detectors import DetectorSuite
from detectors.batching import Batch
from detectors.flatten import Cols
from minewatch.catalogue import SCENARIOS
from minewatch.wire import Frame, LinkInfo
from simulator.engine import SimConfig, Simulation
from simulator.faults import load_faults
from tests.detectors.reference_suite import FrameByFrameSuite

T0 = 1_795_852_800_000_000_000
PLACES = ["mf01", "vf01", "hf04", "zz99"]  # two methane pairs, a main fan's derived reading, an unknown place
numbers = st.one_of(st.floats(-50, 120, allow_nan=False), st.sampled_from([0.0, -0.0, 1.6, 20.0]))
values = st.one_of(st.none(), numbers)


@st.composite
def batches(draw: st.DrawFn, nulls: bool = True) -> list[list[Frame]]:
    """Batches of frames of a few robots; each place's frames mostly carry one of two channel
    sets (as real robots do, so most frames take the compiled path), sometimes any other.
    ``nulls`` False: no reading is sent as null (a batch's values then take the fast way)."""
    reading = values if nulls else numbers
    def channel_set(sid: str) -> list[str]:
        names = [c.name for c in SCENARIOS[sid].channels] if sid in SCENARIOS else ["ch4", "t"]
        return draw(st.lists(st.sampled_from([*names, "fan", "odd_one"]), unique=True, max_size=8))

    usual = {sid: [channel_set(sid), channel_set(sid)] for sid in PLACES}
    out = []
    for _ in range(draw(st.integers(1, 6))):
        batch = []
        for _ in range(draw(st.integers(1, 12))):
            sid = draw(st.sampled_from(PLACES))
            keys = draw(st.sampled_from([*usual[sid], usual[sid][0], usual[sid][1], None])) or channel_set(sid)
            link = draw(st.one_of(st.none(), st.builds(LinkInfo, latency_ms=st.floats(0, 500),
                                                        rssi_dbm=st.floats(-120, 0), loss=st.floats(0, 1))))
            batch.append(Frame(robot_id=draw(st.sampled_from(["r1", "r2", "r3"])), scenario_id=sid, seq=0,
                               ts=T0 + draw(st.integers(0, 400)) * 10**9, readings={k: draw(reading) for k in keys},
                               battery=draw(st.one_of(st.none(), st.floats(0, 100))), link=link))
        out.append(batch)
    return out


def keyed(suite: DetectorSuite, batch: Batch) -> dict[str, list[Any]]:
    """The batch's samples with stream numbers replaced by the streams' keys, in a fixed order."""
    def rows(cols, table) -> list[tuple]:
        arrays = Batch.sorted(cols)
        out: list[tuple] = []
        for row in zip(*(a.tolist() for a in arrays)):
            vals = tuple("nan" if isinstance(v, float) and math.isnan(v) else v for v in row[2:])
            out.append((table.keys[row[0]], row[1], *vals))
        return sorted(out, key=repr)
    return {"lim": rows(batch.lim, suite.limits.table), "base": rows(batch.base, suite.batching.base),
            "pairs": rows(batch.pairs, suite.drift.table), "blocks": [fi for fi, _ in batch.blocks]}


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(batches())
def test_samples_match_the_frame_by_frame_flattening(parts: list[list[Frame]]) -> None:
    fast, ref = DetectorSuite(), FrameByFrameSuite()
    for batch in parts:
        assert keyed(fast, fast.flatten(batch)) == keyed(ref, ref.flatten(batch))


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(batches(nulls=False))
def test_samples_without_nulls_match_the_frame_by_frame_flattening(parts: list[list[Frame]]) -> None:
    # every batch's values straight from the frames' dicts, main fans' derived readings put in
    fast, ref = DetectorSuite(), FrameByFrameSuite()
    for batch in parts:
        assert keyed(fast, fast.flatten(batch)) == keyed(ref, ref.flatten(batch))


def stored(batch: list[Frame]) -> list[Any]:
    """The batch as InfluxDB answers for stored frames: a series per (place, robot, channel
    names), late flags among the columns (a frame with a low battery here)."""
    from minewatch.stored import META

    series: dict[tuple[str, str, tuple[str, ...]], list[list[Any]]] = {}
    for f in batch:
        link = [f.link.latency_ms, f.link.rssi_dbm] if f.link else [None, None]
        late = True if f.battery is not None and f.battery < 10 else None
        series.setdefault((f.scenario_id, f.robot_id, tuple(f.readings)), []).append(
            [f.ts, *f.readings.values(), f.seq, f.boot, f.battery, f.pos_m, *link, late, None])
    return [(["time", *keys, *META], {"scenario": sid, "robot": rid}, rows) for (sid, rid, keys), rows in series.items()]


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(batches())
def test_columns_give_the_samples_and_the_alerts_of_their_frames(parts: list[list[Frame]]) -> None:
    """The columnar entry (what a replay uses) against the frame entry over the same stored rows."""
    from minewatch.stored import rows_to_columns, rows_to_frames

    by_frames, by_columns = DetectorSuite(), DetectorSuite()
    flat_frames, flat_columns = DetectorSuite(), DetectorSuite()
    for batch in parts:
        frames, late = rows_to_frames(stored(batch))
        cols = rows_to_columns(stored(batch))
        want = keyed(flat_frames, flat_frames.flatten(frames))
        got = flat_columns.batching.flatten_columns(cols) or flat_columns.flatten(cols.frames())
        assert keyed(flat_columns, got) == want
        want_events = by_frames.process(frames, late=late).events + by_frames.tick(int(cols.ts.max()))
        got_events = by_columns.process_columns(cols).events + by_columns.tick(int(cols.ts.max()))
        assert got_events == want_events


def _simulated() -> list[Frame]:
    faults = load_faults([
        {"kind": "methane_outburst", "scenario": "mf01", "channel": "ch4_t1", "start": "+60s", "duration": "90s"},
        {"kind": "main_fan_stoppage", "scenario": "vf01", "start": "+120s", "duration": "200s", "standby_after": "150s"},
        {"kind": "robot_offline", "scenario": "cb01", "start": "+100s", "duration": "150s"},
        {"kind": "link_outage", "scenario": "hf03", "start": "+200s", "duration": "120s"},
        {"kind": "sensor_stuck", "scenario": "mf01", "channel": "ch4_t0", "start": "+30s", "duration": "400s"},
    ])
    sim = Simulation(SimConfig(seed=11, rate_hz=1.0, start_ns=T0, duration_s=600,
                               scenarios=["mf01", "vf01", "cb01", "hf03", "lf01"], faults=faults,
                               waveform_rate_hz=4096.0, waveform_every=60))
    return [f for tick in sim.ticks() for m in tick.messages for f in m.frames]


def test_alerts_match_the_frame_by_frame_suite() -> None:
    frames_ = _simulated()
    rng = np.random.default_rng(3)
    for sizes in ([len(frames_)], [1, 40, 7, 300]):
        fast, ref = DetectorSuite(), FrameByFrameSuite()
        got: list = []
        want: list = []
        k = 0
        while k < len(frames_):
            n = sizes[int(rng.integers(len(sizes)))]
            part = frames_[k:k + n]
            got += fast.process(part).events + fast.tick(part[-1].ts)
            want += ref.process(part).events + ref.tick(part[-1].ts)
            k += n
        detectors = {e.detector for e in want}
        assert {"gas_limit", "fan_stoppage", "robot_offline"} <= detectors, detectors
        assert [e.model_dump() for e in got] == [e.model_dump() for e in want]


@st.composite
def comings_and_goings(draw: st.DrawFn) -> list[tuple[str, object]]:
    """Steps of a small fleet: batches of frames of robots that start late, fall quiet for a
    while (some past the 60 s silence) and come back; status messages taking robots offline and
    online; clock ticks."""
    from minewatch.schema import RobotStatus

    robots = [f"r{i}" for i in range(draw(st.integers(2, 6)))]
    t = T0
    steps: list[tuple[str, object]] = []
    quiet_until = {r: T0 + draw(st.integers(0, 120)) * 10**9 for r in robots}  # first seen later
    for _ in range(draw(st.integers(5, 40))):
        t += draw(st.integers(1, 45)) * 10**9
        kind = draw(st.sampled_from(["frames", "frames", "frames", "status", "tick"]))
        if kind == "frames":
            batch = []
            for r in robots:
                if t < quiet_until[r]:
                    continue
                if draw(st.integers(0, 9)) == 0:
                    quiet_until[r] = t + draw(st.integers(10, 150)) * 10**9
                    continue
                batch.append(Frame(robot_id=r, scenario_id="mf01", seq=0, ts=t - draw(st.integers(0, 5)) * 10**9,
                                   readings={"ch4_t1": 0.3}))
            if batch:
                steps.append(("frames", batch))
        elif kind == "status":
            steps.append(("status", RobotStatus(robot_id=draw(st.sampled_from(robots)), scenario_id="mf01",
                                                online=draw(st.booleans()), ts=draw(st.sampled_from([t, None])))))
        else:
            steps.append(("tick", t))
    return steps


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(comings_and_goings())
def test_silences_match_looking_at_every_robot_every_time(steps: list[tuple[str, object]]) -> None:
    """The deadman looks at the fleet only when a robot may be due; the reference looks at every
    robot every time. The same robots fall silent and come back at the same times, in the same
    step (an alarm a step late is a late alarm)."""
    _same_events_each_step(steps)


def test_a_robot_back_online_is_watched_again_at_once() -> None:
    """Robot r1 goes offline, then online again without a time (its last frame is old): the
    deadman must look at it at once, not when the rest of the fleet is next due."""
    from minewatch.schema import RobotStatus

    def frames(t: int, *robots: str) -> tuple[str, object]:
        return "frames", [Frame(robot_id=r, scenario_id="mf01", seq=0, ts=T0 + t * 10**9, readings={"ch4_t1": 0.3})
                          for r in robots]

    steps = [frames(0, "r1", "r2"),
             ("status", RobotStatus(robot_id="r1", scenario_id="mf01", online=False, ts=T0 + 5 * 10**9)),
             *(frames(t, "r2") for t in range(10, 61, 10)),
             ("status", RobotStatus(robot_id="r1", scenario_id="mf01", online=True, ts=None)),
             frames(70, "r2")]
    events = _same_events_each_step(steps)
    assert [(e.detector, e.state.value, e.ts) for e in events[-1]] == [("robot_offline", "raised", T0 + 60 * 10**9)]


def _same_events_each_step(steps: list[tuple[str, object]]) -> list[list]:
    fast, ref = DetectorSuite(), FrameByFrameSuite()
    per_step = []
    for i, (kind, item) in enumerate(steps):
        got: list[Any] = []
        want: list[Any] = []
        for suite, out in ((fast, got), (ref, want)):
            if kind == "frames":
                out += suite.process(item).events  # type: ignore[arg-type]
            elif kind == "status":
                out += suite.robot_status(item)  # type: ignore[arg-type]
            else:
                out += suite.tick(item)  # type: ignore[arg-type]
        assert [e.model_dump() for e in got] == [e.model_dump() for e in want], f"step {i}: {kind}"
        per_step.append(got)
    return per_step


@settings(max_examples=300, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 12), st.integers(0, 6), st.integers(0, 9)), max_size=60),
       st.sampled_from([0, 1, 10**6]))
def test_sorted_orders_by_stream_time_and_frame_as_a_full_sort_does(rows: list[tuple[int, int, int]],
                                                                       spread: int) -> None:
    # samples in chunks as the flattening gathers them: in order, out of order, ties, sparse streams
    cols = Cols((np.int64, np.int64, np.float64, np.int64))
    for k in range(0, len(rows), 7):
        part = rows[k:k + 7]
        cols.add(np.array([r[0] * (spread or 1) for r in part], dtype=np.int64),
                 np.array([r[1] for r in part], dtype=np.int64),
                 np.arange(k, k + len(part), dtype=np.float64), np.array([r[2] for r in part], dtype=np.int64))
    got = Batch.sorted(cols)
    arrays = cols.arrays()
    want = sorted(zip(*(a.tolist() for a in arrays)), key=lambda r: (r[0], r[1], r[3], r[2]))
    # a stable order: rows equal in (stream, time, frame) stay in the order they were gathered in
    assert list(zip(*(a.tolist() for a in got))) == want


def _odd_batches(rng: np.random.Generator, n_batches: int) -> list[list[Frame]]:
    """Batches with what the compiled flattening's fast way must agree with the general way on:
    one channel set in different key orders, names outside the catalogue, one robot in two places
    in a batch, whole-number values, nulls, empty readings, a main fan's frame among others, a
    robot's frames out of time order, and many distinct shapes."""
    places = {sid: [c.name for c in SCENARIOS[sid].channels] for sid in ("mf01", "vf01", "hf04")}
    out = []
    for b in range(n_batches):
        batch = []
        for _ in range(int(rng.integers(1, 15))):
            sid = str(rng.choice(list(places)))
            names = [*places[sid], "odd_one", "fan"]
            keys = [str(k) for k in rng.choice(names, size=int(rng.integers(0, 6)), replace=False)]
            rng.shuffle(keys)
            readings: dict[str, float | None] = {}
            for k in keys:
                kind = int(rng.integers(0, 6))
                readings[k] = (None if kind == 0 else int(rng.integers(0, 3)) if kind == 1
                               else float(rng.choice([0.0, 1.6, 2.5, 20.0, 95.0])) if kind == 2
                               else float(rng.uniform(-5, 120)))
            batch.append(Frame(robot_id=str(rng.choice(["r1", "r2"])), scenario_id=sid, seq=0,
                               ts=T0 + (b * 20 + int(rng.integers(0, 25))) * 10**9, readings=readings,
                               battery=None if rng.integers(0, 2) else float(rng.uniform(0, 100))))
        out.append(batch)
    return out


def test_samples_and_alerts_match_the_frame_by_frame_suite_past_the_shape_cap(monkeypatch: Any) -> None:
    """Over many seeds, with the compiled shapes' cap low enough that it is reached inside a batch
    (the table then starts afresh while frames earlier in the batch hold numbers of the old one)."""
    import detectors.batching

    for cap in (3, 7, detectors.batching.MAX_SHAPES):
        monkeypatch.setattr(detectors.batching, "MAX_SHAPES", cap)
        for seed in range(40):
            fast, ref = DetectorSuite(), FrameByFrameSuite()
            for i, batch in enumerate(_odd_batches(np.random.default_rng(seed), 8)):
                ctx = f"cap {cap}, seed {seed}, batch {i}"
                assert keyed(fast, fast.flatten(batch)) == keyed(ref, ref.flatten(batch)), ctx
                got, want = fast.process(batch).events, ref.process(batch).events
                assert [e.model_dump() for e in got] == [e.model_dump() for e in want], ctx


def test_a_robot_reading_two_places_in_one_batch_has_not_left_either() -> None:
    """Robot r1 raises a sensor-range alarm in hf04, then sends one batch with a frame from hf04
    and a newer one from mf01 (it passes between them): its part of the hf04 alarm stands until
    it has been gone from hf04 for the stale time counted from that frame (170 s), not from the
    first (120 s)."""
    def frame(sid: str, t: int, readings: dict[str, float | None]) -> Frame:
        return Frame(robot_id="r1", scenario_id=sid, seq=0, ts=T0 + t * 10**9, readings=readings)

    steps = [[frame("hf04", 0, {"ch4_t1": 107.0})],
             [frame("hf04", 50, {"ch4_t1": 107.0}), frame("mf01", 51, {"ch4_t1": 0.3})],
             [frame("mf01", 100, {"ch4_t1": 0.3})], [frame("mf01", 150, {"ch4_t1": 0.3})]]
    for suite in (DetectorSuite(), FrameByFrameSuite()):
        events = [[(e.detector, e.state.value, e.scenario_id) for e in suite.process(batch).events] for batch in steps]
        assert ("sensor_range", "raised", "hf04") in events[0]
        assert ("sensor_range", "cleared", "hf04") not in [e for step in events[1:] for e in step]


@pytest.mark.parametrize("seed", range(40))
def test_sorted_matches_a_plain_stable_sort_on_larger_batches(seed: int) -> None:
    """Hundreds of samples: in time order, with neighbours swapped (a robot's frames reordered),
    reversed (past the insertion budget, the full sort) or at random, over few, many or sparse
    streams; against Python's stable sort by (stream, time, frame)."""
    rng = np.random.default_rng(seed)
    for _ in range(10):
        n = int(rng.integers(0, 500))
        stream = rng.integers(0, int(rng.choice([1, 3, 60, 5000, 10**6])), n).astype(np.int64)
        t = rng.integers(0, 40, n).astype(np.int64)
        how = int(rng.integers(0, 4))
        if how == 1:
            t = np.arange(n, dtype=np.int64)
            for i in rng.integers(0, max(n - 1, 1), n // 8).tolist():
                if i + 1 < n:
                    t[i], t[i + 1] = t[i + 1], t[i]
        elif how == 2:
            t = np.sort(t)[::-1].copy()
        elif how == 3:
            t = np.sort(t)
        fi = rng.integers(0, 25, n).astype(np.int64)
        cols = Cols((np.int64, np.int64, np.float64, np.int64))
        for k in range(0, n, 37):  # in chunks, as the flattening gathers them
            cols.add(stream[k:k + 37], t[k:k + 37], np.arange(k, min(n, k + 37), dtype=np.float64), fi[k:k + 37])
        want = sorted(range(n), key=lambda i: (int(stream[i]), int(t[i]), int(fi[i])))
        got = Batch.sorted(cols)
        assert got[2].astype(np.int64).tolist() == want
        assert got[0].tolist() == stream[want].tolist() and got[3].tolist() == fi[want].tolist()
