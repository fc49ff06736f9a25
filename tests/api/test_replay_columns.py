"""The replay's columnar entry to the detectors (:meth:`detectors.DetectorSuite.process_columns`)
against the frame entry (:meth:`~detectors.DetectorSuite.process`), over the same stored data:
the same alert events, one by one."""

from __future__ import annotations

import asyncio
import random
from typing import Any

import msgspec

from detectors import DetectorSuite
from ingest.lines import TelemetryLines
from minewatch.catalogue import SCENARIOS
from minewatch.influx import SyncInflux
from minewatch.schema import AlertTiming
from simulator.engine import SimConfig, Simulation
from simulator.faults import load_faults

from .conftest import T0, S
from .test_replays import SHORT_FAULTS

def _store(influx: SyncInflux, seconds: int) -> None:
    """A faulted stretch of the default mine, stored as the ingestor stores it, with a reading
    missing from some frames and some frames flagged late (among them the methane outburst's)."""
    rng = random.Random(4)
    sim = Simulation(SimConfig(seed=4, start_ns=T0, duration_s=seconds, faults=load_faults(SHORT_FAULTS)))
    fmt = TelemetryLines()
    lines = []
    for batch in sim.frames():
        for f in batch:
            if f.readings and rng.random() < 0.05:
                gone = rng.choice(list(f.readings))
                f = msgspec.structs.replace(f, readings={k: v for k, v in f.readings.items() if k != gone})
            outburst = f.scenario_id == "mf01" and T0 + 30 * S <= f.ts < T0 + 150 * S
            lines.append(fmt.format(f, late=outburst or rng.random() < 0.01))
    influx.write(lines)


def test_the_columnar_entry_gives_the_frame_entrys_events_one_by_one(influx_db: SyncInflux) -> None:
    from api.replay_engine import TICK_S, TelemetrySource, _process_columns, _process_slice
    from minewatch.influx import InfluxClient
    from minewatch.stored import rows_to_columns, rows_to_frames, slice_query

    seconds = 10 * 60
    _store(influx_db, seconds)
    end = T0 + seconds * S
    by_frames, by_columns = DetectorSuite(SCENARIOS), DetectorSuite(SCENARIOS)
    flatten = by_columns.batching.flatten_columns
    seen: set[Any] = set()
    columnar: list[tuple[bool, bool]] = []  # per batch: flattened as columns?, a series new to the suite in it?

    def counting(cols: Any) -> Any:
        batch = flatten(cols)
        keys = {cols.keys[g] for g in set(cols.group.tolist())}
        columnar.append((batch is not None, not keys <= seen))
        seen.update(keys)
        return batch

    by_columns.batching.flatten_columns = counting  # type: ignore[method-assign]  # counts, changes nothing

    async def both() -> tuple[list[Any], list[Any]]:
        a: list[Any] = []
        b: list[Any] = []
        async with InfluxClient(influx_db.url, influx_db.db) as influx:
            for t0, t1 in await TelemetrySource(influx, T0, end, slice_s=120.0).bounds():
                series = await influx.query_series(slice_query(t0, t1))
                a.extend(_process_slice(by_frames, *rows_to_frames(series), t0, t1, int(TICK_S * S)))
                b.extend(_process_columns(by_columns, rows_to_columns(series), t0, t1, int(TICK_S * S)))
        return a, b

    want, got = asyncio.run(both())
    kinds = {e.kind for e in want}
    assert len(want) >= 20 and len(kinds) >= 4, (len(want), kinds)  # gas, ventilation, sensor, robot alerts
    assert any(e.timing is AlertTiming.late for e in want)  # the late flags reached the detectors
    for i, (g, w) in enumerate(zip(got, want)):
        assert g == w, f"event {i} differs:\n columns {g}\n frames  {w}"
    assert len(got) == len(want)
    # the columns went through as columns but in batches with a robot new to a place (the patrol
    # robots move), whose frames were built to make its streams
    assert len(columnar) >= seconds / TICK_S
    assert all(as_columns or new for as_columns, new in columnar)
    assert sum(as_columns for as_columns, _ in columnar) >= len(columnar) / 2
