"""Shift replay speed: one full 8-hour shift of the default mine (35 robots, one frame a second
each, the simulator's ``builtin:shift`` faults) stored in a real influxd, replayed through the
detectors as fast as possible, the way ``POST /replays`` and ``minewatch replay`` run it.

Prints one JSON line per figure, the median of ``--runs`` runs:

- ``replay_x_realtime``: shift length / wall time of the replay (target: >= 5000);
- ``replay_readings_per_s``: channel readings replayed per second (the stored readings of the
  window, counted in InfluxDB, over the replay's wall time; ``frames_per_s`` beside it);
- ``replay_detectors_only_x_realtime``: the peer, measured in the same run: the detectors alone
  over the shift's first hour already in memory (the ceiling a replay could reach if reading
  InfluxDB cost nothing);
- ``replay_split_s_per_hour``: the replay's parts one after another over the first hour, in
  seconds per hour of data: ``read`` (InfluxDB's answers), ``decode``, ``build`` (the columns
  the detectors take, :func:`minewatch.stored.rows_to_columns`), ``detect``; the value is their
  sum;
- ``replay_cpu_s_per_hour``: CPU seconds per replayed hour of data, of this process (decoding,
  the detectors) and of influxd (answering), in the same runs as ``replay_x_realtime``: the
  figure that moves least with the machine's load (its wall time can be no less than the larger
  of the two on an otherwise idle machine).

The machine's load average is printed with the figures: on a shared machine they move with it.

The stored shift is kept under ``bench/out/replay-influxd`` (``--out``) and reused by later runs
(``--fresh`` rebuilds it; building takes a few minutes). ``--hours`` stores and replays only the
shift's first hours (the smoke run in the tests uses a few minutes).

    .venv/bin/python bench/replay.py [--runs 3] [--fresh] [--hours 8] [--in-flight 2] [--out DIR]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from api.replay_engine import run_replay
from ingest.lines import TelemetryLines
from minewatch.influx import InfluxClient, SyncInflux
from minewatch.runtime import tune_gc
from minewatch.services import Influxd
from minewatch.shifts import ShiftCalendar

SHIFT = "2026-11-20:night"
DB = "bench_replay"
OUT = ROOT / "bench" / "out" / "replay-influxd"


def load_shift(influx: SyncInflux, start_ns: int, seconds: float) -> int:
    """Simulate the shift and store every frame as the ingestor would (same line layout)."""
    from simulator.engine import SimConfig, Simulation
    from simulator.faults import load_faults

    influx.ensure_db()
    sim = Simulation(SimConfig(seed=1, start_ns=start_ns, duration_s=seconds, faults=load_faults("builtin:shift")))
    fmt = TelemetryLines()
    buf: list[str] = []
    n = 0
    for batch in sim.frames():
        for f in batch:
            buf.append(fmt.format(f))
        if len(buf) >= 50_000:
            influx.write(buf)
            n += len(buf)
            buf = []
    influx.write(buf)
    return n + len(buf)


def stored_readings(influx: SyncInflux, start: int, end: int) -> int:
    """Channel readings stored in ``[start, end)``: InfluxDB's count of every telemetry field
    but the frame's own (seq, battery, position, link, late)."""
    from minewatch.stored import META

    rows = influx.query(f'SELECT count(*) FROM "telemetry" WHERE time >= {start} AND time < {end}')
    return sum(int(v) for k, v in rows[0].items() if k.startswith("count_") and k[6:] not in META) if rows else 0


def cpu_of(pid: int) -> float | None:
    """CPU seconds (user and system) process ``pid`` has used, or None where /proc cannot tell."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def replay_once(url: str, start: int, end: int, server_pid: int, in_flight: int = 2
                      ) -> tuple[float, int, int, float, float | None]:
    """Wall time, frames, alert events, and the CPU seconds of this process and of influxd."""
    cpu, server = time.process_time(), cpu_of(server_pid)
    async with InfluxClient(url, DB, timeout=300.0) as influx:
        res = await run_replay(influx, start, end, in_flight=in_flight)
    server_after = cpu_of(server_pid)
    server_cpu = None if server is None or server_after is None else server_after - server
    return res.elapsed_s, res.frames, len(res.alerts), time.process_time() - cpu, server_cpu


async def split(url: str, start: int, hours: float) -> dict[str, float]:
    """The replay's parts one after another over the shift's first ``hours``, in seconds: reading
    InfluxDB's answers, decoding them, building the columns, and the detectors over them (the
    same batches and ticks as a replay). ``detect`` alone is the peer: what a replay could reach
    if reading cost nothing."""
    from api.replay_engine import SLICE_S, TICK_S, TelemetrySource, _process_columns
    from detectors import DetectorSuite
    from minewatch.influx import decode_series
    from minewatch.stored import rows_to_columns, slice_query

    end = start + int(hours * 3600e9)
    parts = dict.fromkeys(("read", "decode", "build", "detect"), 0.0)
    suite = DetectorSuite()
    async with InfluxClient(url, DB, timeout=300.0) as influx:
        for t0, t1 in await TelemetrySource(influx, start, end, slice_s=SLICE_S).bounds():
            t = time.perf_counter()
            body = await influx.query_bytes(slice_query(t0, t1))
            t, parts["read"] = time.perf_counter(), parts["read"] + time.perf_counter() - t
            series = decode_series(*body)
            t, parts["decode"] = time.perf_counter(), parts["decode"] + time.perf_counter() - t
            cols = rows_to_columns(series)
            t, parts["build"] = time.perf_counter(), parts["build"] + time.perf_counter() - t
            _process_columns(suite, cols, t0, t1, int(TICK_S * 1e9))
            parts["detect"] += time.perf_counter() - t
    return parts


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--fresh", action="store_true", help="rebuild the stored shift")
    ap.add_argument("--hours", type=float, default=8.0, help="length of the stored window (default: the shift)")
    ap.add_argument("--in-flight", type=int, default=2,
                    help="slices being read at once, the one the detectors will take next included")
    ap.add_argument("--out", type=Path, default=OUT, help="where the stored shift's influxd keeps its data")
    args = ap.parse_args()
    out = args.out
    mark = out / "loaded.json"
    shift = ShiftCalendar().parse(SHIFT)
    start = shift.start_ns
    end = start + int(args.hours * 3600e9)
    if args.fresh and out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True, exist_ok=True)
    server = Influxd(out / "data")
    server.start()
    try:
        sync = SyncInflux(server.url, DB, timeout=600.0)
        want = {"shift": SHIFT, "hours": args.hours}
        if not mark.exists() or json.loads(mark.read_text()).get("key") != want:
            t = time.perf_counter()
            sync.query(f'DROP DATABASE "{DB}"', db="", post=True)
            frames = load_shift(sync, start, args.hours * 3600)
            mark.write_text(json.dumps({"key": want, "frames": frames}))
            print(f"# stored {frames} frames in {time.perf_counter() - t:.0f} s", file=sys.stderr)
        frames = json.loads(mark.read_text())["frames"]
        n_readings = stored_readings(sync, start, end)
        sync.close()
        tune_gc(freeze=False)  # as the API and `minewatch replay` run
        assert server.proc is not None
        pid = server.proc.pid
        asyncio.run(replay_once(server.url, start, start + int(600e9), pid))  # warm up: compile the kernels
        runs = []
        splits = []
        peer_h = min(1.0, args.hours)
        for _ in range(args.runs):
            runs.append(asyncio.run(replay_once(server.url, start, end, pid, args.in_flight)))
            splits.append(asyncio.run(split(server.url, start, peer_h)))
        load = os.getloadavg()[0]
    finally:
        server.stop()
    window_s = (end - start) / 1e9
    elapsed = statistics.median(r[0] for r in runs)
    replayed = runs[0][1]
    xs = [round(window_s / r[0], 1) for r in runs]
    peers = [peer_h * 3600 / p["detect"] for p in splits]
    peer = statistics.median(peers)
    parts = {k: round(statistics.median(p[k] for p in splits) / peer_h, 3) for k in splits[0]}
    cond = {"shift": SHIFT, "hours": args.hours, "in_flight": args.in_flight, "robots": 35, "frames": frames,
            "frames_replayed": replayed,
            "readings": n_readings,
            "alert_events": runs[0][2], "runs": args.runs, "elapsed_s": [round(r[0], 2) for r in runs], "x_realtime_runs": xs,
            "cpus": os.cpu_count(), "load_avg_1m": round(load, 1)}
    x = window_s / elapsed
    print(json.dumps({"name": "replay_x_realtime", "value": round(x, 1), "unit": "x real time",
                      "target": 5000, "detectors_only_x_realtime": round(peer, 1),
                      "ratio_to_detectors_only": round(x / peer, 2), **cond}))
    print(json.dumps({"name": "replay_readings_per_s", "value": round(n_readings / elapsed), "unit": "readings/s",
                      "frames_per_s": round(replayed / elapsed), **cond}))
    print(json.dumps({"name": "replay_detectors_only_x_realtime", "value": round(peer, 1), "unit": "x real time",
                      "note": "the detectors alone over the first hour already in memory: the ceiling of a replay",
                      "runs_x_realtime": [round(p, 1) for p in peers], **cond}))
    print(json.dumps({"name": "replay_split_s_per_hour", "value": round(sum(parts.values()), 3),
                      "unit": "s per hour of data", **parts,
                      "note": "read (InfluxDB's answer), decode, build the columns, detect: one after another over the first "
                              "hour, medians; a replay overlaps reading with the rest", **cond}))
    hours = window_s / 3600
    own = [r[3] / hours for r in runs]
    served = [r[4] / hours for r in runs if r[4] is not None]
    print(json.dumps({"name": "replay_cpu_s_per_hour",
                      "value": round(statistics.median(own) + statistics.median(served), 3) if served else None,
                      "unit": "CPU s per hour of data", "replay_process": round(statistics.median(own), 3),
                      "influxd": round(statistics.median(served), 3) if served else None,
                      "replay_process_runs": [round(c, 3) for c in own], "influxd_runs": [round(c, 3) for c in served],
                      "note": "CPU time of the replaying process and of influxd over the replays, medians; "
                              "influxd None where /proc cannot tell", **cond}))


if __name__ == "__main__":
    main()
