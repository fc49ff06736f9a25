"""The behaviour lock: an 8-hour faulted shift through :class:`detectors.DetectorSuite`, its
alert events stored, so a change to the suite's structure can be shown to change no alert.

The shift is the simulator's built-in ``shift`` fault set (one fault of every kind) at the
scenarios those faults touch, seeded, from a fixed start (2026-11-28 00:00 UTC, the start of
the default calendar's day shift), in the default shift calendar whatever the environment says.
Frames go through the suite a simulator tick at a time as the ingestor batches them live
(robot statuses through ``robot_status``, backlog frames flagged late, data time through
``tick``), as ``bench/detection_quality.py`` does.

``shift_lock.jsonl.gz`` holds one JSON object per alert event, in order, and a last line with
the number of frames and a digest of the derived measurements (vibration features) the run
wrote. Made by::

    PYTHONPATH=. python tests/detectors/data/shift_lock.py        # writes the file next to this one
"""

from __future__ import annotations

import gzip
import hashlib
import json
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from detectors import DetectorSuite
from minewatch.shifts import ShiftCalendar
from simulator.engine import SimConfig, Simulation
from simulator.faults import LIBRARY, load_faults

PATH = Path(__file__).with_name("shift_lock.jsonl.gz")
T0 = 1_795_852_800_000_000_000  # 2026-11-28 00:00 UTC
SEED = 8
HOURS = 8.0
RATE_HZ = 0.5
# Every scenario a fault of the shift set names, and the fault set at them.
SCENARIOS = sorted({spec["scenario"] for spec in LIBRARY["shift"]})
# What is compared of each event (all of it but the free text, compared as well, and the evidence).
FIELDS = ("alert_id", "kind", "detector", "severity", "state", "scenario_id", "robot_id", "channel", "value",
          "limit", "unit", "first_ts", "ts", "message", "evidence", "incident_id", "timing")


def simulation(hours: float = HOURS) -> Simulation:
    return Simulation(SimConfig(seed=SEED, rate_hz=RATE_HZ, start_ns=T0, duration_s=hours * 3600,
                                scenarios=SCENARIOS, faults=load_faults("builtin:shift"), waveform_rate_hz=4096.0,
                                waveform_every=15, calendar=ShiftCalendar()))


def replay(hours: float = HOURS) -> Iterator[dict[str, Any]]:
    """Every alert event of the shift as a plain record, in the order the suite gave them, then a
    summary record (``{"frames": ..., "lines_sha256": ...}``)."""
    sim = simulation(hours)
    suite = DetectorSuite()
    lines = hashlib.sha256()
    frames = 0
    for tick in sim.ticks():
        for st in tick.statuses:
            yield from (record(e) for e in suite.robot_status(st.status))
        batch = [f for m in tick.messages for f in m.frames]
        late = [m.backlog for m in tick.messages for _ in m.frames]
        frames += len(batch)
        d = suite.process(batch, late=late)
        for line in sorted(d.lines):
            lines.update(line.encode() + b"\n")
        yield from (record(e) for e in d.events)
        yield from (record(e) for e in suite.tick(tick.t_ns))
    yield {"frames": frames, "lines_sha256": lines.hexdigest()}


def record(e: Any) -> dict[str, Any]:
    d = e.model_dump(mode="json")
    return {k: d[k] for k in FIELDS}


def load() -> list[dict[str, Any]]:
    with gzip.open(PATH, "rt", encoding="utf-8") as fh:
        return [json.loads(line) for line in fh]


def main() -> None:
    out = list(replay())
    with gzip.GzipFile(PATH, "wb", mtime=0) as fh:
        fh.write("".join(json.dumps(r, sort_keys=True) + "\n" for r in out).encode())
    print(f"{len(out) - 1} events, {out[-1]['frames']} frames -> {PATH}", file=sys.stderr)


if __name__ == "__main__":
    main()
