"""Stored telemetry read back for replay: the frames that went in come out, in time order."""

from __future__ import annotations

import asyncio

import numpy as np
import pytest

from minewatch.stored import SliceReader, slice_query
from ingest.lines import TelemetryLines
from minewatch.influx import InfluxClient, InfluxError, SyncInflux, line
from minewatch.wire import Frame, LinkInfo
from tests.ingest.helpers import frames_for

from tests.api.conftest import S, T0

pytestmark = pytest.mark.integration


def test_slices_come_back_as_the_stored_frames(influx_db: SyncInflux) -> None:
    frames = frames_for("mf01", "r1", 120, t0=T0) + frames_for("vf01", "r2", 120, t0=T0 + S // 2)
    frames[5].readings["ch4_t1"] = None       # a channel without a value in one frame
    frames[6].readings["co"] = 3.0            # an integer-valued float stays a float
    frames[7] = Frame(robot_id="r1", scenario_id="mf01", seq=7, ts=frames[7].ts, readings={"t": 21.5},
                      battery=64.0, link=LinkInfo(latency_ms=12.0, rssi_dbm=-71.0))
    fmt = TelemetryLines()
    influx_db.write([fmt.format(f, late=(i == 9)) for i, f in enumerate(frames)])

    async def read() -> tuple[list[Frame], list[bool]]:
        async with InfluxClient(influx_db.url, influx_db.db) as influx:
            return await SliceReader(influx).read(T0, T0 + 200 * S)

    got, late = asyncio.run(read())
    want = sorted(frames, key=lambda f: f.ts)
    assert [(f.robot_id, f.scenario_id, f.ts, f.seq) for f in got] == [(f.robot_id, f.scenario_id, f.ts, f.seq)
                                                                      for f in want]
    for g, w in zip(got, want):
        assert {k: v for k, v in g.readings.items() if v is not None} == \
            {k: v for k, v in w.readings.items() if v is not None}
        assert all(isinstance(v, float) for v in g.readings.values() if v is not None)
        assert (g.battery, g.pos_m) == (w.battery, w.pos_m)
        assert (g.link is None) == (w.link is None)
        if g.link is not None and w.link is not None:
            assert (g.link.latency_ms, g.link.rssi_dbm) == (w.link.latency_ms, w.link.rssi_dbm)
    assert [f.seq for f, is_late in zip(got, late) if is_late] == [frames[9].seq]
    # every frame of one series carries the same channel names (None where a value is missing)
    assert len({tuple(f.readings) for f in got if f.robot_id == "r1" and f.seq != 7}) == 1


def test_a_bad_statement_is_a_clear_error(influx_db: SyncInflux) -> None:
    async def read() -> None:
        async with InfluxClient(influx_db.url, influx_db.db) as influx:
            await influx.query_series(slice_query(T0, T0 + S).replace("SELECT", "SELEC", 1))

    with pytest.raises(InfluxError, match="error parsing query"):
        asyncio.run(read())


def test_numpy_numbers_are_written_as_numbers(influx_db: SyncInflux) -> None:
    """Detector evidence carries NumPy scalars; each must be a plain number in line protocol."""
    fields = {"f64": np.float64(0.15), "f32": np.float32(2.5), "i64": np.int64(7), "flag": np.bool_(True),
              "nan": np.float64("nan"), "txt": "ok"}
    text = line("probe", {"scenario_id": "mf01"}, fields, 1_700_000_000_000_000_000)
    assert text is not None and "np." not in text
    assert "f64=0.15," in text and "f32=2.5," in text and "i64=7i" in text and "flag=true" in text
    assert "nan=" not in text
    influx_db.write([text])
    rows = influx_db.query("SELECT f64, f32, i64, flag, txt FROM probe")
    assert rows and rows[0]["f64"] == 0.15 and rows[0]["i64"] == 7 and rows[0]["flag"] is True
