"""CPU per point of each stage of the ingestor's hot path, old against new, in one process.

No broker, no database: the messages of ``bench/ingest_throughput.py`` (mining-face robots,
``--frames-per-message`` frames of one robot per message, built by its ``simulated_frames``,
``replicate`` and ``messages``) go through each stage in batches of ``--batch`` points, as
``minewatch ingest`` cuts them, with the collector set up as the ingestor sets it
(``minewatch.runtime.tune_gc``: freeze, then thresholds 10,000/20/20). CPU time is ``time.process_time``.

Stages, each timed alone over the same batches:

* ``decode``: ``wire.decode_frames`` per message (old) / ``wire.FramesOnTopic.decode`` (new: ids
  compared with the topic's, reading names with the known channels, while decoding);
* ``checks``: frames on the topic's robot and scenario, known scenario, channel names: a loop
  per frame and reading (old) / the scenario once per message (new);
* ``seq``: seq tracking, late marking, counts: ``SeqTracker.observe`` per frame (old) /
  ``SeqTracker.observe_run`` per message (new);
* ``format``: ``TelemetryLines.format`` per frame (old) / ``TelemetryLines.format_many`` per batch;
* ``join``: ``"\\n".join(lines).encode()``, the writer's request body (the same in both);
* ``total``: the sum of the above;
* ``service``: the real router (``Router.route``, each batch's messages in one call) plus the
  formatting at the cut (new only: everything above plus limits, counters and bookkeeping;
  detectors off);
* ``detectors``: ``DetectorSuite.process`` over each batch (``--no-detectors`` to skip); it runs
  in the old pass too, so that both carry the same load, and is reported from the new one.

Prints one JSON line per figure, the median over ``--runs``: ``ingest_cpu_us_per_point`` with
the stage and variant (``old``, ``new``, or ``current`` for the detectors) as conditions, and for
each stage ``ingest_cpu_speedup`` (old / new, same run).

    .venv/bin/python bench/ingest_cpu.py [--points 100000] [--runs 5]
"""

from __future__ import annotations

import argparse
import gc
import json
import operator
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from ingest_throughput import PREFIX, messages, replicate, simulated_frames

from ingest.consumer import Incoming
from ingest.lines import CHANNEL_RE, RESERVED_FIELDS, TelemetryLines
from ingest.seqtrack import DUPLICATE, LATE, NEW, SeqTracker
from minewatch.catalogue import SCENARIOS
from minewatch.runtime import tune_gc
from minewatch.topics import Topics
from minewatch.wire import Frame, FramesOnTopic, decode_frames

LATE_AFTER_NS = 30 * 10**9
_readings, _seq, _ts = operator.attrgetter("readings"), operator.attrgetter("seq"), operator.attrgetter("ts")

Msg = tuple[str, str, str, bytes, int]  # topic, scenario, robot, payload, received_ns


def emit(name: str, value: float, unit: str, **cond: object) -> None:
    print(json.dumps({"name": name, "value": round(value, 3), "unit": unit, **cond}), flush=True)


# -- the stages, old and new -------------------------------------------------------------------------
def checks_old(batch: list[Msg], decoded: list[list[Frame]], good: set[str]) -> None:
    for (_, sid, rid, _, _), frames in zip(batch, decoded):
        for f in frames:
            if f.robot_id != rid or f.scenario_id != sid:
                raise AssertionError("topic_mismatch")
            if sid not in SCENARIOS:
                raise AssertionError("unknown_scenario")
            for k in f.readings:
                if k not in good:
                    if k in RESERVED_FIELDS or not CHANNEL_RE.match(k):
                        raise AssertionError("bad_channel")
                    good.add(k)


def checks_new(batch: list[Msg], decoded: list[list[Frame]], good: set[str]) -> None:
    # the ids and the reading names are vouched for by FramesOnTopic.decode; the scenario is left
    for m in batch:
        if m[1] not in SCENARIOS:
            raise AssertionError("unknown_scenario")


def seq_old(batch: list[Msg], decoded: list[list[Frame]], tracker: SeqTracker,
            out: tuple[list[Frame], list[bool], list[Frame], list[bool]]) -> None:
    store, store_late, detect, detect_late = out
    newest = readings = 0
    observe = tracker.observe
    for (_, _, rid, _, received), frames in zip(batch, decoded):
        stale = received - LATE_AFTER_NS
        for f in frames:
            kind = observe(rid, f.seq, f.ts, f.boot)
            late = kind == LATE or f.ts < stale
            store.append(f)
            store_late.append(late)
            readings += len(f.readings)
            if f.ts > newest:
                newest = f.ts
            if kind != DUPLICATE:
                detect.append(f)
                detect_late.append(late)


def seq_new(  # what Router._telemetry does after decoding
batch: list[Msg], decoded: list[list[Frame]], tracker: SeqTracker,
            out: tuple[list[Frame], list[bool], list[Frame], list[bool]]) -> None:
    store, store_late, detect, detect_late = out
    newest = readings = 0
    for (_, _, rid, _, received), frames in zip(batch, decoded):
        n = len(frames)
        ts = list(map(_ts, frames))
        stale = received - LATE_AFTER_NS
        kinds = tracker.observe_run(rid, list(map(_seq, frames)), ts, frames[0].boot)
        if kinds is None and min(ts) >= stale:
            late = [False] * n
            detect += frames
            detect_late += late
        else:
            late = [k == LATE or t < stale for k, t in zip(kinds or [NEW] * n, ts)]
            for f, k, is_late in zip(frames, kinds or [NEW] * n, late):
                if k != DUPLICATE:
                    detect.append(f)
                    detect_late.append(is_late)
        store += frames
        store_late += late
        readings += sum(map(len, map(_readings, frames)))
        newest = max(newest, max(ts))


# -- one run -----------------------------------------------------------------------------------------
class Clock:
    def __init__(self) -> None:
        self.spent: dict[tuple[str, str], float] = {}

    def time(self, stage: str, variant: str, fn: Callable[[], Any]) -> Any:
        t0 = time.process_time()
        out = fn()
        self.spent[(stage, variant)] = self.spent.get((stage, variant), 0.0) + time.process_time() - t0
        return out


def _decode_old(batch: list[Msg]) -> list[list[Frame]]:
    return [decode_frames(m[3]) for m in batch]


def _format_old(fmt: TelemetryLines, frames: list[Frame], late: list[bool]) -> list[str]:
    return [fmt.format(f, is_late) for f, is_late in zip(frames, late)]


def one_pass(variant: str, batches: list[list[Msg]], clock: Clock, suite: Any) -> list[list[str]]:
    """Every batch through the stages of ``variant``; the lines of each batch. One variant at a
    time, so the objects one keeps alive do not weigh on the other's garbage collections."""
    fmt, tracker, good = TelemetryLines(), SeqTracker(), set[str]()
    # what the ingestor starts with: the catalogue's channel names
    on_topic = FramesOnTopic(c.name for sc in SCENARIOS.values() for c in sc.channels)
    out: list[list[str]] = []
    for batch in batches:
        if variant == "old":
            dec = clock.time("decode", variant, lambda: _decode_old(batch))  # noqa: B023
            clock.time("checks", variant, lambda: checks_old(batch, dec, good))  # noqa: B023
        else:
            dec = clock.time("decode", variant, lambda: [on_topic.decode(m[3], m[1], m[2]) for m in batch])  # noqa: B023
            assert all(d is not None for d in dec)
            clock.time("checks", variant, lambda: checks_new(batch, dec, good))  # noqa: B023
        kept: tuple[list[Frame], list[bool], list[Frame], list[bool]] = ([], [], [], [])
        step = seq_old if variant == "old" else seq_new
        clock.time("seq", variant, lambda: step(batch, dec, tracker, kept))  # noqa: B023
        if variant == "old":
            lines = clock.time("format", variant, lambda: _format_old(fmt, kept[0], kept[1]))  # noqa: B023
        else:
            lines = clock.time("format", variant, lambda: fmt.format_many(kept[0], kept[1]))  # noqa: B023
        clock.time("join", variant, lambda: "\n".join(lines).encode())  # noqa: B023
        if suite is not None:  # in both passes, so both run under the same load; reported from the new one
            clock.time("detectors", "current" if variant == "new" else "old-pass", lambda: suite.process(kept[2], late=kept[3]))  # noqa: B023
        out.append(lines)
    return out


def one_run(batches: list[list[Msg]], suite_cls: Any, tmp: Path) -> dict[tuple[str, str], float]:
    clock = Clock()
    lines_old = one_pass("old", batches, clock, suite_cls(SCENARIOS) if suite_cls is not None else None)
    gc.collect()
    lines_new = one_pass("new", batches, clock, suite_cls(SCENARIOS) if suite_cls is not None else None)
    assert lines_new == lines_old
    del lines_old, lines_new
    gc.collect()
    for variant in ("old", "new"):
        clock.spent[("total", variant)] = sum(v for (stage, var), v in clock.spent.items()
                                              if var == variant and stage != "total")
    clock.spent.pop(("detectors", "old-pass"), None)
    clock.spent[("service", "new")] = service_run(batches, tmp)
    return clock.spent


def service_run(batches: list[list[Msg]], tmp: Path) -> float:
    """CPU of the ingestor's own path over the batches (detectors off): the real router
    (:class:`ingest.router.Router`) taking each batch's messages in one call, and the frames
    formatted as the pipeline does at the cut."""
    from ingest.counters import Counters
    from ingest.lines import TelemetryLines
    from ingest.options import IngestOptions
    from ingest.router import Routed, Router

    # the load names its robots freely (copies of the fleet)
    counters = Counters()
    router = Router(Topics(PREFIX), IngestOptions(detectors=False, spool_dir=tmp / "spool", robots="*"), counters)
    fmt = TelemetryLines()
    spent = 0.0
    for batch in batches:
        msgs = [Incoming(topic, payload, i, 1, False, 0, received) for i, (topic, _, _, payload, received) in
                enumerate(batch)]
        t0 = time.process_time()
        routed = Routed()
        router.route(msgs, routed)
        lines = routed.status_lines + fmt.format_many(routed.store, routed.store_late, routed.store_robot_ts)
        spent += time.process_time() - t0
        assert len(lines) == routed.points and not routed.dead, routed.dead[:1]
    return spent


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--points", type=int, default=100_000)
    ap.add_argument("--frames-per-message", type=int, default=20)
    ap.add_argument("--batch", type=int, default=5000, help="points per batch (the ingestor's --batch-size)")
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--no-detectors", action="store_true")
    args = ap.parse_args()

    base = simulated_frames(20_000, 40, args.seed)
    frames = replicate(base, args.points)
    readings_per_point = sum(len(f.readings) for f in frames) / len(frames)
    topics = Topics(PREFIX)
    batches: list[list[Msg]] = [[]]
    points = 0
    for topic, payload in messages(frames, args.frames_per_message, topics):
        sid, rid = topics.parse_telemetry(topic)  # type: ignore[misc]
        decoded = decode_frames(payload)
        n = len(decoded)
        if points + n > args.batch and batches[-1]:
            batches.append([])
            points = 0
        # received as the robot sends it: just after its newest frame (the frames run some minutes
        # ahead of the clock; an earlier arrival time would have the ingestor correct robot clocks)
        batches[-1].append((topic, sid, rid, payload, max(f.ts for f in decoded) + 10_000_000))
        points += n
    del frames, base

    suite_cls = None
    if not args.no_detectors:
        from detectors import DetectorSuite

        from ingest.pipeline import warm_up

        warm_up(DetectorSuite)
        suite_cls = DetectorSuite

    tune_gc()
    runs: list[dict[tuple[str, str], float]] = []
    with tempfile.TemporaryDirectory() as d:
        for i in range(args.runs):
            runs.append(one_run(batches, suite_cls, Path(d) / f"run{i}"))
            gc.collect()
    n_points = args.points
    cond = {"points": n_points, "frames_per_message": args.frames_per_message, "batch_points": args.batch,
            "runs": args.runs, "readings_per_point": round(readings_per_point, 2), "gc": "frozen, 10000/20/20"}
    keys = list(runs[0])
    for stage, variant in keys:
        us = statistics.median(r[(stage, variant)] for r in runs) / n_points * 1e6
        emit("ingest_cpu_us_per_point", us, "us/point", stage=stage, variant=variant, **cond)
    for stage in dict.fromkeys(s for s, v in keys if v == "new"):
        if (stage, "old") in runs[0]:
            ratio = statistics.median(r[(stage, "old")] / r[(stage, "new")] for r in runs)
            emit("ingest_cpu_speedup", ratio, "old/new", stage=stage, **cond)


if __name__ == "__main__":
    main()
