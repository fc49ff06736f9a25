"""How long the shift report takes for a full shift of the default fleet.

Simulates one 8-hour shift (the default fleet, 35 robots, a frame every 5 s: 201,600 frames;
cached in bench/out/, or ``--out``), stores it in a fresh influxd exactly as the ingestor formats
it, then times ``collect`` (the InfluxDB queries: 31 scenarios downsampled, alerts, robots) and
``render`` (the HTML) over several runs. Prints one JSON line per figure (medians). ``--hours``
simulates only the shift's first hours (the report still covers the whole shift; the smoke run in
the tests uses a few minutes).

    .venv/bin/python bench/report.py [--runs 3] [--hours 8] [--out DIR]
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from api.report import DEFAULT_POINTS, collect
from api.report_render import render
from ingest.lines import TelemetryLines
from minewatch.influx import SyncInflux
from minewatch.services import Influxd
from minewatch.shifts import ShiftCalendar
from minewatch.wire import decode_frames

SHIFT_ID = "2026-11-27:night"
RATE_HZ = 0.2  # a frame every 5 s per robot (domain §5: an environment frame every 1-5 s)


def shift_file(out: Path, start_iso: str, hours: float = 8.0) -> Path:
    name = f"shift-{SHIFT_ID.replace(':', '-')}-{RATE_HZ}hz" + ("" if hours == 8.0 else f"-{hours:g}h")
    path = out / f"{name}.jsonl"
    if not path.exists():
        out.mkdir(parents=True, exist_ok=True)
        subprocess.run([sys.executable, "-m", "minewatch", "simulate", "--output", str(path),
                        "--duration", f"{hours * 3600:.0f}s",
                        "--start", start_iso, "--rate", str(RATE_HZ), "--seed", "1"],
                       check=True, stdout=subprocess.DEVNULL, cwd=ROOT)
    return path


def load(db: SyncInflux, path: Path) -> int:
    fmt = TelemetryLines()
    batch: list[str] = []
    n = 0
    with path.open("rb") as f:
        for raw in f:
            for frame in decode_frames(raw):
                batch.append(fmt.format(frame))
                n += 1
            if len(batch) >= 20000:
                db.write(batch)
                batch = []
    db.write(batch)
    return n


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--hours", type=float, default=8.0, help="hours of the shift to simulate and store")
    ap.add_argument("--out", type=Path, default=ROOT / "bench" / "out", help="where the simulated shift is cached")
    args = ap.parse_args()
    shift = ShiftCalendar().parse(SHIFT_ID)
    path = shift_file(args.out, shift.start.strftime("%Y-%m-%dT%H:%M:%SZ"), args.hours)
    with tempfile.TemporaryDirectory() as tmp, Influxd(Path(tmp) / "influxd") as server:
        db = SyncInflux(server.url, "minewatch")
        db.ensure_db()
        frames = load(db, path)
        collect_s, render_s, size = [], [], 0
        for _ in range(args.runs):
            t0 = time.perf_counter()
            data = collect(db, shift)
            t1 = time.perf_counter()
            text = render(data)
            t2 = time.perf_counter()
            collect_s.append(t1 - t0)
            render_s.append(t2 - t1)
            size = len(text.encode())
        db.close()
    cond = {"frames": frames, "robots": 35, "shift_h": 8, "simulated_h": args.hours, "points": DEFAULT_POINTS,
            "runs": args.runs,
            "influxdb": "1.6 (Debian)", "cores": 2}
    print(json.dumps({"name": "report_collect", "value": round(statistics.median(collect_s), 3), "unit": "s", **cond}))
    print(json.dumps({"name": "report_render", "value": round(statistics.median(render_s), 3), "unit": "s", **cond}))
    print(json.dumps({"name": "report_size", "value": size, "unit": "bytes", **cond}))


if __name__ == "__main__":
    main()
