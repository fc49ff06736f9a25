"""A worker's units of one mine share its database's writes (``SharedWrites``), against a real
influxd: bodies given while a request is in flight (or before it starts) go together, each writer
hears its own outcome, and a body with a refused line fails alone."""

from __future__ import annotations

import asyncio

import pytest

from minewatch.influx import InfluxError, SyncInflux
from minewatch.services import Influxd

from ingest.group_worker import SharedWrites

pytestmark = pytest.mark.integration

T0 = 1_795_852_800_000_000_000


def _body(unit: int, n: int) -> bytes:
    return "\n".join(f"probe,unit=u{unit} v={i}i {T0 + i}" for i in range(n)).encode()


def test_units_writes_go_together_and_fail_alone(influxd: Influxd, influx_db: SyncInflux) -> None:
    async def go() -> tuple[list[BaseException | None], int]:
        client = SharedWrites(influxd.url, influx_db.db)
        try:
            bodies = [_body(u, 50) for u in range(20)]
            bodies[7] = b"probe,unit=u7 v=1i " + str(T0).encode() + b"\nprobe,unit=u7 v=oops " + str(T0 + 1).encode()
            results = await asyncio.gather(*(client.write_body(b) for b in bodies), return_exceptions=True)
            return results, client.requests
        finally:
            await client.aclose()

    results, requests = asyncio.run(go())
    failed = [i for i, r in enumerate(results) if r is not None]
    assert failed == [7] and isinstance(results[7], InfluxError) and results[7].status == 400
    # the 20 together (refused for body 7's bad line), then each alone
    assert requests == 1 + 20, requests
    rows = influx_db.query('SELECT count("v") FROM "probe" GROUP BY "unit"')
    counts = {r["unit"]: r["count"] for r in rows}
    # InfluxDB keeps a refused body's good lines (u7's first); written twice, each point is there once
    assert counts == {**{f"u{u}": 50 for u in range(20) if u != 7}, "u7": 1}, counts


def test_writes_given_together_go_in_one_request(influxd: Influxd, influx_db: SyncInflux) -> None:
    async def go() -> int:
        client = SharedWrites(influxd.url, influx_db.db)
        try:
            await asyncio.gather(*(client.write_body(_body(u, 200)) for u in range(30)))
            return client.requests
        finally:
            await client.aclose()

    requests = asyncio.run(go())
    assert requests == 1, requests  # 30 units' batches, one request
    rows = influx_db.query('SELECT count("v") FROM "probe"')
    assert rows[0]["count"] == 200 * 30  # 30 units, 200 points each, none lost
