"""The router and the batching policy on their own: no broker, no database."""

from __future__ import annotations

import json
import time

import msgspec
import pytest

from ingest.batching import BatchClock, BatchPolicy
from ingest.consumer import Incoming
from ingest.counters import Counters
from ingest.options import IngestOptions
from ingest.partition import Partition
from ingest.router import Routed, Router
from minewatch.topics import Topics
from minewatch.wire import encode_frame, encode_frames

from tests.ingest.helpers import frames_for

TOPICS = Topics("rt/v1")


def _router(**opts: object) -> tuple[Router, Counters]:
    counters = Counters()
    return Router(TOPICS, IngestOptions(**{"robots": "*", **opts}), counters), counters  # type: ignore[arg-type]


def _msg(topic: str, payload: bytes, mid: int = 1) -> Incoming:
    return Incoming(topic, payload, mid, 1, False, 1, time.time_ns())


def test_many_messages_in_one_call_become_frames_in_order() -> None:
    router, counters = _router()
    t0 = time.time_ns() - 5 * 10**9  # robot clocks right, frames a tenth of a second apart: all live
    a = frames_for("mf01", "r01", 40, t0=t0, step_ns=10**8)
    b = frames_for("bc03", "r02", 3, t0=t0, step_ns=10**8)
    msgs = [_msg(TOPICS.telemetry("mf01", "r01"), encode_frames(a[i:i + 20]), i) for i in (0, 20)]
    msgs += [_msg(TOPICS.telemetry("bc03", "r02"), encode_frame(f), 100 + f.seq) for f in b]
    out = Routed()
    router.route(msgs, out)
    assert [(f.robot_id, f.seq) for f in out.store] == [(f.robot_id, f.seq) for f in a + b]
    assert [(f.robot_id, f.seq) for f in out.detect] == [(f.robot_id, f.seq) for f in a + b]
    assert out.points == counters.points == 43 and counters.messages == 5
    assert counters.readings == sum(len(f.readings) for f in a + b)
    assert not out.dead and not any(out.store_late)
    assert router.tally["mf01"].frames == 40 and router.tally["bc03"].last_ts == b[-1].ts
    # the detectors' part is taken, the storage part stays
    work = out.take_for_detectors()
    assert len(work.detect) == 43 and not out.detect and len(out.store) == 43


def test_a_repeat_is_stored_once_and_detected_once() -> None:
    router, counters = _router()
    fs = frames_for("mf01", "r01", 10, t0=time.time_ns() - 60 * 10**9)
    topic = TOPICS.telemetry("mf01", "r01")
    out = Routed()
    router.route([_msg(topic, encode_frames(fs))], out)
    router.route([_msg(topic, encode_frames(fs[5:]))], out)  # the robot sends its backlog again
    assert len(out.store) == 10 and len(out.detect) == 10
    assert counters.seq.duplicates == 5 and counters.skipped() == {"duplicate": 5}
    assert router.tally["mf01"].skipped == 5


@pytest.mark.parametrize(("topic", "payload", "reason"), [
    ("rt/v1/telemetry/mf01/r01", b"{", "not_json"),
    ("rt/v1/telemetry/mf01/r01", b"x" * 2000, "too_large"),
    ("rt/v1/somewhere/else", b"{}", "bad_topic"),
    ("rt/v1/telemetry/mf02/r01", None, "topic_mismatch"),
    ("rt/v1/telemetry/mf01/r01", "frames", "too_many_frames"),
    ("rt/v1/telemetry/mf01/r01", "future", "ts_out_of_range"),
    ("rt/v1/status/r01", b'{"robot_id": "r09", "online": true}', "topic_mismatch"),
    ("rt/v1/status/r01", b'{"robot_id": 5}', "bad_status"),
    ("rt/v1/status/r01", b'{"robot_id": "r01", "online": "yes"}', "bad_status"),
    ("rt/v1/status/r01", b'{"robot_id": "r01", "online": 1}', "bad_status"),
    ("rt/v1/status/r01", b'{"robot_id": "r01", "online": true, "charging": "false"}', "bad_status"),
    ("rt/v1/alerts/ack/a1", b'{"alert_id": "a2", "operator": "x"}', "bad_ack"),
])
def test_each_refusal_is_a_dead_letter_with_its_reason(topic: str, payload: bytes | str | None, reason: str) -> None:
    router, counters = _router(max_message_bytes=1000 if reason == "too_large" else 4000, max_frames=5)
    f = frames_for("mf01", "r01", 6, t0=time.time_ns() - 60 * 10**9)
    if payload is None:
        payload = encode_frame(f[0])                       # mf01's frame on mf02's topic
    elif payload == "frames":
        payload = encode_frames(f)                         # six frames, five allowed
    elif payload == "future":
        payload = encode_frame(msgspec.structs.replace(f[0], ts=time.time_ns() + 10 * 86_400 * 10**9))
    out = Routed()
    router.route([_msg(topic, payload)], out)  # type: ignore[arg-type]
    assert [(d.reason, d.topic) for d in out.dead] == [(reason, topic)]
    assert counters.deadlettered == {reason: 1}
    assert not out.store and not out.statuses and not out.acks


def test_a_robot_outside_the_registry_is_refused() -> None:
    router, _ = _router(robots="r0[1-2]")
    out = Routed()
    fs = frames_for("mf01", "r07", 1)
    router.route([_msg(TOPICS.telemetry("mf01", "r07"), encode_frame(fs[0]))], out)
    assert [d.reason for d in out.dead] == ["unknown_robot"] and not out.store


def test_statuses_and_acks_are_routed_to_their_lists() -> None:
    router, _ = _router(partition=Partition(0, 1))
    now = time.time_ns()
    status = json.dumps({"robot_id": "r01", "online": True, "ts": now, "scenario_id": "mf01", "battery": 70.0})
    ack = json.dumps({"alert_id": "mf01.ch4.gas_limit.1", "scenario_id": "mf01", "operator": "op", "ts": now})
    out = Routed()
    router.route([_msg(TOPICS.status("r01"), status.encode()),
                  _msg(f"{TOPICS.prefix}/alerts/ack/mf01.ch4.gas_limit.1", ack.encode())], out)
    assert [(s.robot_id, s.battery) for s, _ in out.statuses] == [("r01", 70.0)]
    assert len(out.status_lines) == 1 and out.status_lines[0].startswith("robot_status,")
    assert [getattr(r, "alert_id", None) for r, _ in out.acks] == ["mf01.ch4.gas_limit.1"]
    assert not out.dead and out.points == 0


def test_a_robot_clock_far_ahead_is_corrected_and_reported() -> None:
    router, _ = _router()
    ahead = 3_600 * 10**9
    fs = frames_for("mf01", "r01", 5, t0=time.time_ns() + ahead)
    out = Routed()
    router.route([_msg(TOPICS.telemetry("mf01", "r01"), encode_frames(fs))], out)
    assert [c.robot_id for c in out.clock] == ["r01"] and out.clock[0].offset < -ahead // 2
    # stored at the corrected time, with the robot's own time beside it
    assert [out.store_robot_ts[i] for i in range(5)] == [f.ts for f in fs]
    assert all(s.ts < f.ts - ahead // 2 for s, f in zip(out.store, fs))


def test_a_robot_clock_days_ahead_is_refused_until_it_stays_that_far_ahead_then_corrected() -> None:
    router, counters = _router(clock_settle_s=3.0)
    now, ahead = time.time_ns(), 2 * 86_400 * 10**9  # further ahead than a clock is corrected at once
    topic = TOPICS.telemetry("mf01", "r01")
    fs = frames_for("mf01", "r01", 10, t0=now + ahead, step_ns=10**9)
    out = Routed()
    for i, f in enumerate(fs):  # one frame a second
        router.route([Incoming(topic, encode_frame(f), i, 1, False, 1, now + i * 10**9)], out)
    # refused (with the reason) until it has stayed that far ahead for the settle time
    assert [d.reason for d in out.dead] == ["ts_out_of_range"] * 3
    assert "steadily ahead is corrected after --clock-settle" in out.dead[0].detail
    assert [c.why for c in out.clock] == ["ahead"] and abs(out.clock[0].offset + ahead) < 10 * 10**9
    # then stored and detected at the time it arrived, with the robot's own time beside it
    assert [f.seq for f in out.store] == [f.seq for f in out.detect] == [f.seq for f in fs[3:]]
    assert [out.store_robot_ts[i] for i in range(7)] == [f.ts for f in fs[3:]]
    assert all(s.ts <= now + (i + 3) * 10**9 + 5 * 10**9 for i, s in enumerate(out.store))
    assert not any(out.store_late) and counters.deadlettered == {"ts_out_of_range": 3}


@pytest.mark.parametrize("off_s", [2 * 86_400, -40 * 86_400], ids=["days-ahead", "weeks-back"])
def test_a_restored_clock_alert_is_not_cleared_by_frames_refused_before_the_clock_settles(off_s: int) -> None:
    """After a restart the robot_clock alert of a robot whose clock is days off is restored; its
    frames are refused until the clock settles again, and must not be taken as a clock right again."""
    router, _ = _router(clock_settle_s=3.0)
    router.clock_alerts = {"r01"}
    now = time.time_ns()
    topic = TOPICS.telemetry("mf01", "r01")
    fs = frames_for("mf01", "r01", 5, t0=now + off_s * 10**9, step_ns=10**9)
    out = Routed()
    for i, f in enumerate(fs):
        router.route([Incoming(topic, encode_frame(f), i, 1, False, 1, now + i * 10**9)], out)
        if i < 3:  # refused: nothing said of the clock yet
            assert out.clock == [] and len(out.dead) == i + 1, (i, out.clock)
    assert [c.why for c in out.clock] == ["ahead" if off_s > 0 else "behind"]
    assert abs(out.clock[0].offset + off_s * 10**9) < 10 * 10**9 and len(out.store) == 2


def test_a_robot_clock_corrected_for_weeks_back_and_set_right_again_is_taken_at_once() -> None:
    """A clock reset weeks back is corrected after --clock-settle; set right again (its time from
    the network again), its frames are right as they are and taken at once, not refused as days
    ahead (the old correction added to them) for the settle time."""
    router, counters = _router(clock_settle_s=3.0)
    now, back = time.time_ns(), 40 * 86_400 * 10**9
    topic = TOPICS.telemetry("mf01", "r01")
    fs = frames_for("mf01", "r01", 10, t0=now, step_ns=10**9)
    out = Routed()
    for i, f in enumerate(fs):  # one frame a second, the first five weeks back
        f = msgspec.structs.replace(f, ts=f.ts - (back if i < 5 else 0))
        router.route([Incoming(topic, encode_frame(f), i, 1, False, 1, now + i * 10**9)], out)
    assert [c.why for c in out.clock] == ["behind", "right"]
    assert counters.deadlettered == {"ts_out_of_range": 3}  # only while the clock settled
    assert [f.seq for f in out.store] == [f.seq for f in fs[3:]]
    assert [s.ts for s in out.store[2:]] == [f.ts for f in fs[5:]]  # set right: stored as sent


@pytest.mark.parametrize("kind", ["one-frame-between-good-ones", "history"])
def test_frames_days_ahead_are_refused_when_no_clock_is_to_be_corrected(kind: str) -> None:
    router, counters = _router(clock_settle_s=3.0)
    now, ahead = time.time_ns(), 2 * 86_400 * 10**9
    history = kind == "history"
    topic = (TOPICS.history if history else TOPICS.telemetry)("mf01", "r01")
    fs = frames_for("mf01", "r01", 20, t0=now - 10**9, step_ns=0)
    out = Routed()
    for i, f in enumerate(fs):  # every other frame far ahead, or (history) every frame
        far = history or i % 2
        f = msgspec.structs.replace(f, ts=f.ts + i * 10**9 + (ahead if far else 0))
        router.route([Incoming(topic, encode_frame(f), i, 1, False, 1, now + i * 10**9)], out)
    refused = 20 if history else 10
    assert counters.deadlettered == {"ts_out_of_range": refused} and not out.clock
    assert [f.seq for f in out.store] == ([] if history else list(range(0, 20, 2)))
    assert not out.store_robot_ts and all(s.ts < now + 30 * 10**9 for s in out.store)


def test_the_batching_policy() -> None:
    p = BatchPolicy(batch_size=1000, batch_ms=100, detect_ms=10, detect_frames=50, step_points=300)
    assert p.step_end(0) == 300 and p.step_end(900) == 1000 and p.full(1000) and not p.full(999)
    clock = BatchClock()
    assert not p.detect_due(clock, 5.0, idle=True, acks_waiting=True, frames_waiting=999)  # nothing taken
    p.taken(clock, 5.0, messages=True, undetected=True)
    p.taken(clock, 5.5, messages=True, undetected=True)  # the clocks keep their first time
    assert (clock.first_at, clock.undetected_at) == (5.0, 5.0)
    assert not p.detect_due(clock, 5.005, idle=False, acks_waiting=False, frames_waiting=49)
    assert p.detect_due(clock, 5.005, idle=False, acks_waiting=False, frames_waiting=50)
    assert p.detect_due(clock, 5.005, idle=False, acks_waiting=True, frames_waiting=0)
    assert p.detect_due(clock, 5.011, idle=False, acks_waiting=False, frames_waiting=0)
    assert p.wake_at(clock, 99.0, 5.005) == pytest.approx(5.01)
    clock.undetected_at = 0.0
    assert p.wake_at(clock, 99.0, 5.005) == pytest.approx(5.025)  # the end of its linger
    assert p.wake_at(clock, 99.0, 5.03) == pytest.approx(5.1)     # lingered: its age
    assert not p.cut_due(clock, 5.01, writing=False, inbox=False)  # nothing else to do, but lingering
    assert not p.cut_due(clock, 5.05, writing=True, inbox=False)
    assert p.cut_due(clock, 5.05, writing=False, inbox=False)   # lingered, nothing else to do: cut
    assert p.cut_due(clock, 5.1, writing=True, inbox=True)      # its age is up
    eager = BatchPolicy(batch_size=1000, batch_ms=100, linger_ms=0)
    assert eager.cut_due(clock, 5.0, writing=False, inbox=False)
    with pytest.raises(ValueError, match="at least 1"):
        BatchPolicy(batch_size=0)
    with pytest.raises(ValueError, match="negative"):
        BatchPolicy(linger_ms=-1)


class _Counting(Router):
    """The router counting the messages its fast path takes."""

    fast = 0

    def _one_frame(self, msg: Incoming, out: Routed, lo: int, hi: int) -> bool:
        took = super()._one_frame(msg, out, lo, hi)
        self.fast += took
        return took


class _GeneralOnly(Router):
    """The router with its one-frame fast path off: every message goes the general way."""

    def _one_frame(self, msg: Incoming, out: Routed, lo: int, hi: int) -> bool:
        return False


def _mixed_messages(seed: int, now: int) -> list[Incoming]:
    """Messages of four robots as a fleet sends them, with what bends the common case: gaps,
    repeats, seq going back, a new boot, a clock an hour ahead or jumping back, arrays, an
    unknown reading name, a frame on another robot's topic, broken JSON, a frame far in the past."""
    import random

    rng = random.Random(seed)
    robots = [("mf01", "r01"), ("mf02", "r02"), ("bc03", "r03"), ("mf01", "r04")]
    nseq = {rid: 0 for _, rid in robots}  # each robot's next seq, its clock, its boot
    clock = {rid: now - 10 * 10**9 for _, rid in robots}
    boots: dict[str, int | None] = {rid: None for _, rid in robots}
    out = []
    for k in range(400):
        sid, rid = rng.choice(robots)
        topic = TOPICS.telemetry(sid, rid)
        ev = rng.random()
        if ev < 0.04:
            nseq[rid] += rng.randint(2, 5)  # a gap
        elif ev < 0.08:
            nseq[rid] = max(0, nseq[rid] - rng.randint(1, 4))  # repeats, or late fillers
        elif ev < 0.10:
            nseq[rid], boots[rid] = 0, rng.randint(1, 3)  # a restart with a boot
        elif ev < 0.12:
            clock[rid] += 3600 * 10**9  # the clock jumps an hour ahead
        elif ev < 0.14:
            clock[rid] -= 120 * 10**9  # and back
        clock[rid] += 10**7
        received = now + k * 10**6
        f = frames_for(sid, rid, 1, start_seq=nseq[rid], t0=clock[rid] - nseq[rid] * 10**9, step_ns=10**9)[0]
        if boots[rid] is not None:
            f = msgspec.structs.replace(f, boot=boots[rid])
        ev = rng.random()
        if ev < 0.05:
            fs = frames_for(sid, rid, 3, start_seq=nseq[rid], t0=clock[rid] - nseq[rid] * 10**9, step_ns=10**9)
            payload = encode_frames(fs)
            nseq[rid] += 2
        elif ev < 0.07:
            payload = encode_frame(msgspec.structs.replace(f, readings={**f.readings, f"x{k % 3}": 1.0}))
        elif ev < 0.09:
            payload = encode_frame(msgspec.structs.replace(f, robot_id="r09"))
        elif ev < 0.10:
            payload = b'{"robot_id": "' + rid.encode()
        elif ev < 0.11:
            payload = encode_frame(msgspec.structs.replace(f, ts=10**9))
        elif ev < 0.12:
            payload = b"   " + encode_frame(f)  # leading space: still one frame
        else:
            payload = encode_frame(f)
        nseq[rid] += 1
        out.append(Incoming(topic, payload, k + 1, 1, False, 1, received))
    return out


def _state(router: Router, out: Routed, counters: Counters) -> object:
    frame = lambda f: msgspec.to_builtins(f)  # noqa: E731
    clocks = {r: vars(c) for r, c in router.clocks._clocks.items()}
    seq = {r: (vars(x.current), [vars(b) for b in x.older], x.unverified_run, x.unverified_ts)
           for r, x in router.seq._robots.items()}
    return ([frame(f) for f in out.store], out.store_late, out.store_robot_ts, [frame(f) for f in out.detect],
            out.detect_late, out.detect_arrived, [frame(f) for f in out.history],
            [(c.robot_id, c.offset, c.why) for c in out.clock], [(d.reason, d.topic, d.payload) for d in out.dead],
            out.points, out.newest_ts, str(counters), clocks, seq, {s: vars(w) for s, w in router.tally.items()},
            router.data_now)


@pytest.mark.parametrize("clock", ["wall", "data"])
@pytest.mark.parametrize("seed", range(6))
def test_the_one_frame_fast_path_routes_exactly_as_the_general_way(seed: int, clock: str) -> None:
    now = time.time_ns()
    msgs = _mixed_messages(seed, now)
    results = []
    fast_taken = 0
    for cls in (_Counting, _GeneralOnly):
        counters = Counters()
        router = cls(TOPICS, IngestOptions(robots="r0[1-4]", clock=clock), counters)
        out = Routed()
        i = 0
        for size in [1, 7, 50, 3, 200, 139]:  # calls of every size, as the pipeline's steps make them
            router.route(msgs[i:i + size], out)
            i += size
        assert i == len(msgs)
        results.append(_state(router, out, counters))
        fast_taken = fast_taken or getattr(router, "fast", 0)
    assert fast_taken > 20  # the fast path took its share, the general way the rest
    fast, general = results
    assert fast == general


def test_the_watch_tally_counts_detected_and_failed_frames_per_scenario() -> None:
    from types import SimpleNamespace

    from ingest.pipeline import Pipeline

    router, _ = _router(partition=Partition.parse("0/1"))
    frames = frames_for("mf01", "r01", 3) + frames_for("bc03", "r02", 2)
    frames.append(msgspec.structs.replace(frames[0], scenario_id="zz99"))  # not in the catalogue: no tally
    host = SimpleNamespace(router=router)
    Pipeline._count_detected(host, frames, ok=True)  # type: ignore[arg-type]
    Pipeline._count_detected(host, frames[3:], ok=False)  # type: ignore[arg-type]
    assert (router.tally["mf01"].detected, router.tally["mf01"].failed) == (3, 0)
    assert (router.tally["bc03"].detected, router.tally["bc03"].failed) == (2, 2)
    assert "zz99" not in router.tally


def test_a_limit_of_no_frames_refuses_one_frame_messages_of_a_known_stream_too() -> None:
    router, counters = _router(max_frames=0)
    topic = TOPICS.telemetry("mf01", "r01")
    fs = frames_for("mf01", "r01", 3, t0=time.time_ns() - 3 * 10**9)
    out = Routed()
    router.route([_msg(topic, encode_frame(f), f.seq + 1) for f in fs], out)
    assert not out.store and counters.deadlettered == {"too_many_frames": 3}


def test_a_redelivered_message_behind_newer_frames_goes_to_the_history_detectors() -> None:
    """Frames sent again after newer frames of their robot were taken (JetStream's redelivery of
    what a dead worker held) fill a gap behind the live detectors: stored, not late, and checked by
    the history detectors, never the live ones. The same frames first-hand are late data, live."""
    t0 = time.time_ns() - 5 * 10**9
    fs = frames_for("mf01", "r01", 12, t0=t0, step_ns=10**8)
    for redelivered in (True, False):
        router, _ = _router()
        out = Routed()
        router.route([_msg(TOPICS.telemetry("mf01", "r01"), encode_frames(fs[:4]), 1),
                      _msg(TOPICS.telemetry("mf01", "r01"), encode_frames(fs[8:]), 2)], out)
        assert [f.seq for f in out.detect] == [0, 1, 2, 3, 8, 9, 10, 11] and not out.history
        again = Incoming(TOPICS.telemetry("mf01", "r01"), encode_frames(fs[4:8]), 3, 1, redelivered, 1,
                         time.time_ns(), redelivered)
        router.route([again], out)
        assert [f.seq for f in out.store] == [0, 1, 2, 3, 8, 9, 10, 11, 4, 5, 6, 7]
        if redelivered:
            assert [f.seq for f in out.history] == [4, 5, 6, 7]
            assert [f.seq for f in out.detect] == [0, 1, 2, 3, 8, 9, 10, 11]
            assert out.store_late[-4:] == [False] * 4
        else:
            assert not out.history
            assert [f.seq for f in out.detect][-4:] == [4, 5, 6, 7] and out.detect_late[-4:] == [True] * 4
            # named as held back, for the live detectors to judge apart from the newer readings
            assert out.detect_held == [8, 9, 10, 11]
            assert out.take_for_detectors().detect_held == [8, 9, 10, 11] and out.detect_held == []
