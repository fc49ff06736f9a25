"""InfluxDB's own cost for the ingest benchmark's points, written straight to ``/write``.

The same points as ``bench/ingest_throughput.py`` (mining-face robots, 8-12 readings plus the
frame's own fields), formatted beforehand, posted in 5,000-point batches by two writers to a
fresh influxd for long enough to see whether the rate holds, then waiting for InfluxDB to fall
idle (compaction). Prints one JSON line per figure:

- ``influx_direct_sustained_points_per_s``: points over the wall time of the writes;
- ``influx_cpu_us_per_point``: influxd's CPU per point, writes and the compaction after them
  (``phase``), which is what InfluxDB takes of a 2-core machine's budget whoever writes.

    .venv/bin/python bench/influx_direct.py [--points 1800000]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import httpx

from ingest.lines import TelemetryLines
from ingest_throughput import cpu_s, emit, replicate, settle, simulated_frames
from minewatch.influx import SyncInflux
from minewatch.services import Influxd


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--points", type=int, default=1_800_000)
    ap.add_argument("--writers", type=int, default=2)
    ap.add_argument("--seed", type=int, default=7)
    args = ap.parse_args()
    frames = replicate(simulated_frames(20_000, 40, args.seed), args.points)
    lines = TelemetryLines().format_many(frames, [False] * len(frames))
    bodies = ["\n".join(lines[i:i + 5000]).encode() for i in range(0, len(lines), 5000)]
    with tempfile.TemporaryDirectory() as d:
        server = Influxd(Path(d) / "influxd")
        server.start()
        try:
            SyncInflux(server.url, "direct").ensure_db()
            settle(server)
            assert server.proc is not None  # started above
            pid = server.proc.pid
            c0, t0 = cpu_s(pid), time.perf_counter()
            with httpx.Client(timeout=300) as http:
                def post(body: bytes) -> None:
                    http.post(f"{server.url}/write", params={"db": "direct", "precision": "ns"},
                              content=body).raise_for_status()

                with ThreadPoolExecutor(args.writers) as pool:
                    list(pool.map(post, bodies))
            wall = time.perf_counter() - t0
            c1 = cpu_s(pid)
            waited = settle(server, timeout=600)
            c2 = cpu_s(pid)
        finally:
            server.stop()
    cond = {"points": len(lines), "batch": 5000, "writers": args.writers, "write_s": round(wall, 1)}
    emit("influx_direct_sustained_points_per_s", len(lines) / wall, "points/s", **cond)
    emit("influx_cpu_us_per_point", (c1 - c0) / len(lines) * 1e6, "us/point", phase="writes", **cond)
    emit("influx_cpu_us_per_point", (c2 - c0) / len(lines) * 1e6, "us/point", phase="writes and compaction",
         compaction_wait_s=round(waited, 1), **cond)


if __name__ == "__main__":
    main()
