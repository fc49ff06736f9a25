"""Stored rows to frames (:func:`minewatch.stored.rows_to_frames`), held against a slow, obvious
row-by-row reference on series shaped as InfluxDB answers them: missing values, absent columns,
rows of equal time in different series, late rows and robots' own times."""

from __future__ import annotations

import random
from typing import Any

import pytest

from minewatch.influx import Series
from minewatch.stored import META, rows_to_frames
from minewatch.wire import Frame, LinkInfo


def naive_rows_to_frames(chunks: list[Series], robot_ts: dict[int, int] | None = None) -> tuple[list[Frame], list[bool]]:
    """One frame per row, a dict lookup per column; sorted by time, stable."""
    rows: list[tuple[int, Frame, bool, Any]] = []
    for cols, tags, values in chunks:
        robot, scenario = tags.get("robot", ""), tags.get("scenario", "")
        if not robot or not scenario:
            continue
        for v in values:
            row = dict(zip(cols, v))
            lat, rssi = row.get("latency_ms"), row.get("rssi_dbm")
            link = None if lat is None or rssi is None else LinkInfo(latency_ms=lat, rssi_dbm=rssi)
            f = Frame(robot_id=robot, scenario_id=scenario, ts=row["time"],
                      seq=row["seq"] if row.get("seq") is not None else 0, boot=row.get("boot"),
                      readings={c: row[c] for c in cols if c not in META and c != "time"},
                      battery=row.get("battery"), pos_m=row.get("pos_m"), link=link)
            rows.append((row["time"], f, row.get("late") is True, row.get("robot_ts")))
    rows.sort(key=lambda r: r[0])
    if robot_ts is not None:
        robot_ts.update({i: int(r[3]) for i, r in enumerate(rows) if r[3] is not None})
    return [r[1] for r in rows], [r[2] for r in rows]


def _series(rng: random.Random, robot: str, scenario: str, chans: list[str], n: int, *, meta: tuple[str, ...] = META,
            holes: float = 0.1) -> Series:
    cols = ["time", *chans, *meta]
    values = []
    t = 1_700_000_000_000_000_000 + rng.randrange(3) * 500_000_000
    for k in range(n):
        t += rng.choice([0, 1_000_000_000, 1_000_000_000, 2_000_000_000])  # repeated times too
        row: list[Any] = [t]
        for _c in chans:
            row.append(None if rng.random() < holes else rng.choice([rng.uniform(0, 5), 3.0]))
        for m in meta:
            x: Any = {"seq": k, "boot": 1_699_000_000_000_000_000, "battery": rng.uniform(5, 100),
                      "pos_m": rng.uniform(0, 900), "latency_ms": rng.uniform(1, 40), "rssi_dbm": rng.uniform(-100, -40),
                      "late": rng.random() < 0.1, "robot_ts": t - 5_000_000}[m]
            if m == "late" and not x:
                x = None  # stored only when true
            if m == "robot_ts" and rng.random() < 0.8:
                x = None  # stored only when the ingestor corrected the time
            row.append(None if m not in ("late", "robot_ts") and rng.random() < holes else x)
        values.append(row)
    return cols, {"robot": robot, "scenario": scenario}, values


@pytest.mark.parametrize("seed", range(6))
def test_frames_are_those_of_the_row_by_row_reference(seed: int) -> None:
    rng = random.Random(seed)
    holes = [0.0, 0.1, 0.5][seed % 3]
    chunks = [_series(rng, f"r{i}", sc, chans, rng.randrange(1, 80), holes=holes)
              for i, (sc, chans) in enumerate([("mf01", ["ch4_t1", "co", "t"]), ("vf01", ["airflow"]),
                                               ("hf01", ["ch4_t1", "co2", "o2", "dust"]), ("ps01", [])])]
    # a series without the link, late and robot_ts columns, one without tags, one without rows
    chunks.append(_series(rng, "r9", "mf02", ["co"], 30, meta=("seq", "battery", "pos_m"), holes=holes))
    chunks.append((["time", "co", "seq"], {"robot": "", "scenario": "mf01"}, [[1, 1.0, 1]]))
    chunks.append((["time", "co", "seq"], {"robot": "r8", "scenario": "mf01"}, []))
    own_got: dict[int, int] = {}
    own_want: dict[int, int] = {}
    got = rows_to_frames(chunks, own_got)
    want = naive_rows_to_frames(chunks, own_want)
    assert len(got[0]) == sum(len(c[2]) for c in chunks[:5]) > 0
    assert got == want
    assert own_got == own_want
    for g, w in zip(*[got[0], want[0]]):  # same types too: a stored 3.0 stays a float
        assert [type(v) for v in g.readings.values()] == [type(v) for v in w.readings.values()]
        assert type(g.seq) is int and (g.link is None) == (w.link is None)
    # every frame has its own readings dict
    assert len({id(f.readings) for f in got[0]}) == len(got[0])


def test_nothing_to_decode_is_no_frames() -> None:
    assert rows_to_frames([]) == ([], [])
    assert rows_to_frames([(["time", "co"], {"robot": "r1", "scenario": "mf01"}, [])]) == ([], [])


@pytest.mark.parametrize("seed", range(3))
def test_columns_hold_the_frames_of_the_row_by_row_reference(seed: int) -> None:
    import numpy as np

    from minewatch.stored import rows_to_columns

    rng = random.Random(seed)
    holes = [0.0, 0.1, 0.5][seed]
    chunks = [_series(rng, f"r{i}", sc, chans, rng.randrange(1, 60), holes=holes)
              for i, (sc, chans) in enumerate([("mf01", ["ch4_t1", "co", "t"]), ("vf01", ["run_a", "run_b"]),
                                               ("hf01", ["ch4_t1", "co2", "o2", "dust"]), ("ps01", [])])]
    chunks.append(_series(rng, "r9", "mf02", ["co"], 30, meta=("seq", "battery", "pos_m"), holes=holes))
    chunks.append((["time", "co", "seq"], {"robot": "", "scenario": "mf01"}, [[1, 1.0, 1]]))
    frames, late = naive_rows_to_frames(chunks)
    cols = rows_to_columns(chunks)
    assert len(cols) == len(frames) > 0
    assert cols.frames() == frames and cols.late.tolist() == late
    for i, j in [(0, 1), (3, 40), (len(frames) - 5, len(frames)), (7, 7)]:
        assert cols.take(i, j).frames() == frames[i:j]
    for i, f in enumerate(frames):
        assert cols.ts[i] == f.ts and cols.sender(int(cols.group[i])) == (f.robot_id, f.scenario_id)
        assert cols.keys[cols.group[i]] == (f.scenario_id, f.robot_id, tuple(f.readings))
        got = cols.values[cols.off[i]:cols.off[i] + len(f.readings)]
        assert np.array_equal(got, np.array(list(f.readings.values()), dtype=float), equal_nan=True)
        assert (cols.battery[i] == f.battery) if f.battery is not None else np.isnan(cols.battery[i])
        link = [f.link.latency_ms, f.link.rssi_dbm, f.link.loss] if f.link else [np.nan] * 3
        assert np.array_equal([cols.latency_ms[i], cols.rssi_dbm[i], cols.loss[i]], link, equal_nan=True)


def test_a_stored_value_that_is_not_a_number_is_a_clear_error() -> None:
    from minewatch.stored import rows_to_columns

    with pytest.raises(ValueError, match="'r1' at 'mf01' holds a value that is not a number"):
        rows_to_columns([(["time", "co", "seq"], {"robot": "r1", "scenario": "mf01"}, [[1, "high", 1]])])
    assert len(rows_to_columns([])) == 0
