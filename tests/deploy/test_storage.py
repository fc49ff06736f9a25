"""Retention policies and continuous queries on a real influxd (domain.md section 3)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from contextlib import ExitStack
from typing import Any

import pytest

from minewatch.influx import InfluxClient, InfluxError, SyncInflux
from minewatch.services import Influxd
from minewatch.storage import LONG_RP, RAW_RP, StoragePlan, copy_events_sync, ensure_storage, ensure_storage_sync

pytestmark = pytest.mark.integration

NS = 1_000_000_000


@pytest.fixture
def db(influxd: Influxd, unique: str) -> Iterator[SyncInflux]:
    """A database name of the test's own that does not exist yet (ensure_storage creates it)."""
    client = SyncInflux(influxd.url, f"st_{unique}")
    yield client
    client.query(f'DROP DATABASE "{client.db}"', db="", post=True)
    client.close()


def _policies(c: SyncInflux) -> dict[str, tuple[str, bool]]:
    return {r["name"]: (r["duration"], r["default"]) for r in c.query(f'SHOW RETENTION POLICIES ON "{c.db}"', db="")}


def _cq_names(c: SyncInflux) -> set[str]:
    return {r["name"] for r in c.query("SHOW CONTINUOUS QUERIES", db="") if f" ON {c.db} " in r["query"]}


def test_ensure_storage_sets_up_raw_long_and_the_queries_once(influxd: Influxd, db: SyncInflux) -> None:
    async def run(**kw: Any) -> list[str]:
        async with InfluxClient(influxd.url, db.db) as client:
            return await ensure_storage(client, **kw)

    first = asyncio.run(run())
    assert first[0] == f'CREATE DATABASE "{db.db}"' and len(first) == 5, first
    assert _policies(db)[RAW_RP] == ("720h0m0s", True)  # 30 days, the default policy
    assert _policies(db)[LONG_RP] == ("9600h0m0s", False)  # 400 days
    assert _cq_names(db) == {"telemetry_5m", "vibration_5m"}
    assert asyncio.run(run()) == []  # nothing differs: nothing is run
    assert ensure_storage_sync(db) == []
    changed = asyncio.run(run(raw_days=10))
    assert changed == [f'ALTER RETENTION POLICY "raw" ON "{db.db}" DURATION 10d REPLICATION 1 SHARD DURATION 1d DEFAULT']
    assert _policies(db)[RAW_RP] == ("240h0m0s", True)


def test_a_changed_query_is_replaced(db: SyncInflux) -> None:
    ensure_storage_sync(db)
    ran = ensure_storage_sync(db, every="2m")
    assert [s.split(" CONTINUOUS")[0] for s in ran] == ["DROP", "CREATE", "DROP", "CREATE"]
    assert all("RESAMPLE EVERY 2m" in r["query"] for r in db.query("SHOW CONTINUOUS QUERIES", db="")
               if f" ON {db.db} " in r["query"])


def test_partitions_starting_together_agree(influxd: Influxd, db: SyncInflux) -> None:
    """Several ingest processes set up the same storage at once, with a changed plan: all succeed
    (InfluxDB takes a repeated identical CREATE, and a DROP of what is gone, without error)."""
    ensure_storage_sync(db)

    async def together() -> list[list[str]]:
        clients = [InfluxClient(influxd.url, db.db) for _ in range(4)]
        try:
            return await asyncio.gather(*(ensure_storage(c, every="3m") for c in clients))
        finally:
            for c in clients:
                await c.aclose()

    asyncio.run(together())
    queries = [r["query"] for r in db.query("SHOW CONTINUOUS QUERIES", db="") if f" ON {db.db} " in r["query"]]
    assert len(queries) == 2 and all("RESAMPLE EVERY 3m" in q for q in queries)
    assert ensure_storage_sync(db, every="3m") == []


def test_retention_below_the_regulation_is_refused() -> None:
    with pytest.raises(ValueError, match="at least 7 days"):
        StoragePlan("x", raw_days=3)
    with pytest.raises(ValueError, match="at least a year"):
        StoragePlan("x", long_days=90)


def test_the_server_downsamples_telemetry_into_five_minute_statistics(db: SyncInflux) -> None:
    """The continuous query itself, run by influxd (every 10 s here, every minute by default)."""
    ensure_storage_sync(db, every="10s")
    now = time.time_ns()
    bucket = (now // (300 * NS) - 1) * 300 * NS  # the last complete 5-minute bucket
    db.write([f"telemetry,robot=r01,scenario=mf01 ch4_t1={v},run=1i {bucket + i * 20 * NS}"
              for i, v in enumerate([0.4, 0.9, 0.5])]
             + [f"telemetry,robot=r01,scenario=mf01 ch4_t1=0.6,run=0i {bucket + 100 * NS}",
                f"vibration,robot=r01,scenario=vf01,point=motor_de rms_v=2.5,zone=\"A\" {bucket + 5 * NS}"])
    deadline = time.monotonic() + 40
    rows: list[dict] = []
    while time.monotonic() < deadline:
        rows = db.query(f'SELECT * FROM "{LONG_RP}"."telemetry_5m"')
        vib = db.query(f'SELECT * FROM "{LONG_RP}"."vibration_5m"')
        if rows and vib:
            break
        time.sleep(0.5)
    assert len(rows) == 1, rows
    row = rows[0]
    assert row["time"] == bucket and (row["robot"], row["scenario"]) == ("r01", "mf01")
    assert row["mean_ch4_t1"] == pytest.approx(0.6) and row["min_ch4_t1"] == 0.4 and row["max_ch4_t1"] == 0.9
    assert (row["min_run"], row["max_run"]) == (0, 1)  # a fan stop inside the 5 minutes is kept
    assert vib and vib[0]["max_rms_v"] == 2.5 and vib[0]["point"] == "motor_de"


def test_alert_events_are_copied_unchanged_into_long(db: SyncInflux) -> None:
    ensure_storage_sync(db)
    t = time.time_ns() - 120 * NS
    lines = [
        f'alert_events,scenario=mf01,kind=gas,severity=critical alert_id="a1",state="raised",value=1.62,limit=1.5,'
        f'message="Methane 1.62 % at face T1" {t}',
        f'alert_events,scenario=mf01,kind=gas,severity=critical alert_id="a1",state="cleared",value=0.8,limit=1.5,'
        f'message="Methane back below 1.0 %" {t + 1}',
    ]
    db.write(lines)
    assert copy_events_sync(db) == 2
    assert copy_events_sync(db) == 2  # copied again, stored once
    raw = db.query(f'SELECT * FROM "{RAW_RP}"."alert_events" GROUP BY *')
    long = db.query(f'SELECT * FROM "{LONG_RP}"."alert_events" GROUP BY *')
    assert long == raw and len(long) == 2 and long[1]["state"] == "cleared"


def test_with_influxdb_auth_only_an_admin_sets_up_and_a_plain_user_then_runs(tmp_path) -> None:
    with Influxd(tmp_path / "influx-auth", auth=True) as server, ExitStack() as stack:
        def client(**kw: Any) -> SyncInflux:
            c = SyncInflux(server.url, "mw", **kw)
            stack.callback(c.close)
            return c

        anon = client()
        # With no user yet, InfluxDB lets anyone create the first admin, and then nothing else.
        anon.query("CREATE USER admin WITH PASSWORD 'adm-pw' WITH ALL PRIVILEGES", db="", post=True)
        with pytest.raises(InfluxError) as refused:
            anon.query("SHOW DATABASES", db="")
        assert refused.value.status == 401
        admin = client(user="admin", password="adm-pw")
        admin.query('CREATE DATABASE "mw"', db="", post=True)
        admin.query("CREATE USER ingest WITH PASSWORD 'ing-pw'", db="", post=True)
        admin.query('GRANT ALL ON "mw" TO ingest', db="", post=True)
        plain = client(user="ingest", password="ing-pw")
        with pytest.raises(InfluxError, match="admin account"):
            ensure_storage_sync(plain)
        assert len(ensure_storage_sync(admin)) == 4
        assert ensure_storage_sync(plain) == []  # in place: the ingestor's own account is enough
        plain.write([f'alert_events,scenario=mf01 alert_id="a2",state="raised" {time.time_ns()}'])
        assert copy_events_sync(plain) == 1
