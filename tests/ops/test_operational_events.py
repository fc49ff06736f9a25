"""The events of a mine's ordinary week, with real mosquitto, influxd and ``minewatch ingest``
processes. After each, a methane outburst past the power-cut level raises its critical alert
within 2 s of the reading that crossed (domain §3: a local power cut acts within 2 s), and no
alert from before stays active once its condition is gone."""

from __future__ import annotations

import json
import signal
import subprocess
import time

import httpx
import msgspec
import pytest

from minewatch.schema import AlertTiming
from minewatch.services import free_port
from tests.ingest.helpers import minewatch_exe, wait_until
from tests.ops.conftest import Stack
from tests.ops.harness import Observer, Robot, assert_nothing_stale, end_outburst, outburst_alerted_within

pytestmark = pytest.mark.integration


def warm(robot: Robot, seconds: float = 3.0) -> None:
    """Let a streaming robot's frames reach the detectors for a while."""
    time.sleep(seconds)


@pytest.mark.parametrize("boot", [None, "new"], ids=["no-boot-number", "boot-number"])
def test_a_robot_that_reboots_is_watched_from_its_first_frame(stack: Stack, boot: str | None) -> None:
    port = free_port()
    stack.ingest("--metrics-port", str(port))
    robot = Robot(stack.pub, stack.topics, "r11", "mf01", boot=1 if boot else None).stream()
    try:
        warm(robot)
        alert = outburst_alerted_within(robot, stack.obs)
        end_outburst(robot, stack.obs, alert["alert_id"])
        # the robot reboots: its counter starts from 0 again (a new boot number, or none at all)
        robot.reboot(boot=2 if boot else None)
        warm(robot, 2)
        again = outburst_alerted_within(robot, stack.obs)
        assert again["alert_id"] != alert["alert_id"]
        end_outburst(robot, stack.obs, again["alert_id"])
        assert_nothing_stale(stack.obs)
    finally:
        robot.stop()
    metrics = httpx.get(f"http://127.0.0.1:{port}/metrics").text
    assert 'minewatch_ingest_robot_restarts_total{partition="0/1"} 1.0' in metrics
    assert 'minewatch_ingest_frames_skipped_total{partition="0/1",reason="detector_error"}' not in metrics


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGKILL], ids=["SIGTERM", "SIGKILL"])
def test_an_ingestor_stopped_mid_outburst_clears_what_ended_and_raises_nothing_twice(stack: Stack, sig: int) -> None:
    proc = stack.ingest()
    robot = Robot(stack.pub, stack.topics, "r12", "hf02", boot=7).stream()
    try:
        warm(robot)
        alert = outburst_alerted_within(robot, stack.obs)
        incident = alert["incident_id"]
        # the ingestor goes down while the outburst is on; the air clears while it is away
        if sig == signal.SIGKILL:
            proc.kill()
        else:
            assert proc.terminate() == 0, proc.log()
        time.sleep(2)
        robot.methane(None)
        time.sleep(3)
        t_back = time.time()
        stack.ingest()
        # the alert raised before clears (a normal clear), its incident with it; it is not raised twice
        # (the frames the broker kept meanwhile may raise what the last process never saw, e.g. the
        # rate of rise: those are new)
        wait_until(lambda: any(a["alert_id"] == alert["alert_id"] and a["state"] == "cleared"
                               for a in stack.obs.alerts(after=t_back - 1)), 15, "the restored alert to clear")
        assert not [a for a in stack.obs.alerts(after=t_back - 1) if a["state"] == "raised"
                    and (a["detector"], a["channel"]) == (alert["detector"], alert["channel"])]
        wait_until(lambda: incident not in stack.obs.active("incidents"), 10, "the incident to close")
        assert_nothing_stale(stack.obs)
        # and the next outburst is alerted as fast as ever
        again = outburst_alerted_within(robot, stack.obs)
        end_outburst(robot, stack.obs, again["alert_id"])
        assert_nothing_stale(stack.obs)
    finally:
        robot.stop()


def test_an_alert_that_still_stands_after_a_restart_goes_on_and_clears_later(stack: Stack) -> None:
    proc = stack.ingest()
    robot = Robot(stack.pub, stack.topics, "r13", "mf01", boot=3).stream()
    try:
        warm(robot)
        alert = outburst_alerted_within(robot, stack.obs)
        proc.kill()
        time.sleep(1)
        t_back = time.time()
        stack.ingest()
        time.sleep(3)
        # still in the outburst: the same alert goes on, no second one
        same = [a for a in stack.obs.alerts(after=t_back) if a["state"] == "raised"
                and (a["detector"], a["channel"]) == (alert["detector"], alert["channel"])]
        assert same == [], same
        assert alert["alert_id"] in stack.obs.active("alerts")
        end_outburst(robot, stack.obs, alert["alert_id"])
        assert_nothing_stale(stack.obs)
    finally:
        robot.stop()


def test_a_broker_restart_loses_no_alert_and_leaves_none_stale(own_broker_stack: Stack) -> None:
    stack = own_broker_stack
    stack.ingest()
    robot = Robot(stack.pub, stack.topics, "r14", "hf01", boot=5).stream()
    try:
        warm(robot)
        outburst_alerted_within(robot, stack.obs)
        stack.broker.stop()
        robot.methane(None)
        time.sleep(1)
        stack.broker.start()
        # a subscriber that comes after the restart sees the retained state: the alert is gone
        stack.obs.close()
        stack.obs = Observer.start(stack.broker.url, stack.topics)
        assert_nothing_stale(stack.obs, timeout=30)
        again = outburst_alerted_within(robot, stack.obs)
        end_outburst(robot, stack.obs, again["alert_id"])
        assert_nothing_stale(stack.obs)
    finally:
        robot.stop()


def _clock_told_then_outburst_alerted_live(stack: Stack, robot: Robot, timeout: float) -> None:
    """The operator is told the robot's clock is off; its outburst is alerted live all the same."""
    clock = stack.obs.first_alert(lambda e: e["detector"] == "robot_clock" and e["state"] == "raised", 0, timeout)
    assert clock.payload["robot_id"] == robot.robot_id
    alert = outburst_alerted_within(robot, stack.obs)
    assert alert["timing"] == AlertTiming.live.value
    end_outburst(robot, stack.obs, alert["alert_id"])


@pytest.mark.parametrize("jump_s", [3600.0, -3600.0], ids=["an-hour-ahead", "an-hour-back"])
def test_a_robot_clock_that_jumps_an_hour_and_back(stack: Stack, jump_s: float) -> None:
    stack.ingest()
    robot = Robot(stack.pub, stack.topics, "r15", "hf04", boot=9).stream()
    try:
        warm(robot)
        robot.clock_s = jump_s
        warm(robot, 2)
        # its readings are placed when they arrived, and the operator is told its clock is off
        _clock_told_then_outburst_alerted_live(stack, robot, 10)
        robot.clock_s = 0.0  # set right again
        wait_until(lambda: any(a["detector"] == "robot_clock" and a["state"] == "cleared" for a in stack.obs.alerts()),
                   10, "the clock alert to clear")
        warm(robot, 2)
        again = outburst_alerted_within(robot, stack.obs)
        end_outburst(robot, stack.obs, again["alert_id"])
        assert_nothing_stale(stack.obs)
    finally:
        robot.stop()
    # nothing stored an hour away from when it was read
    rows = stack.db.query('SELECT max("ch4_t1"), count("seq") FROM "telemetry" WHERE time > now() + 10m')
    assert not rows or not rows[0].get("count"), rows
    back = stack.db.query('SELECT count("seq") FROM "telemetry" WHERE time < now() - 50m')
    assert not back or not back[0].get("count"), back


def test_two_robots_in_one_place_one_rebooting(stack: Stack) -> None:
    stack.ingest()
    a = Robot(stack.pub, stack.topics, "r16", "hf03", seed=1).stream(0.25)
    b = Robot(stack.pub, stack.topics, "r17", "hf03", seed=2).stream(0.25)
    try:
        warm(a)
        b.reboot()  # no boot number: the counter goes back with newer times
        warm(b, 2)
        alert = outburst_alerted_within(b, stack.obs)
        assert alert["robot_id"] == "r17"
        end_outburst(b, stack.obs, alert["alert_id"])
        assert_nothing_stale(stack.obs)
    finally:
        a.stop()
        b.stop()


def test_a_spare_robot_with_the_same_id_and_its_clock_behind(stack: Stack) -> None:
    stack.ingest("--clock-settle", "8")
    old = Robot(stack.pub, stack.topics, "r18", "mf02", boot=100).stream(0.1)
    warm(old, 3)
    old.stop()
    # the spare: the same id, its own boot, its counter from 0, its clock two minutes behind
    spare = Robot(stack.pub, stack.topics, "r18", "mf02", boot=200, clock_s=-120.0).stream(0.2)
    try:
        # two minutes behind looks like a backlog at first; a clock that stays behind is corrected
        wait_until(lambda: any(a["detector"] == "robot_clock" and a["state"] == "raised" for a in stack.obs.alerts()),
                   25, "the spare's clock to be found behind")
        alert = outburst_alerted_within(spare, stack.obs)
        assert alert["timing"] == "live"
        end_outburst(spare, stack.obs, alert["alert_id"])
        assert_nothing_stale(stack.obs, allow=lambda a: a.get("detector") == "robot_clock")
    finally:
        spare.stop()


def test_a_historical_simulation_through_the_live_stack_stays_off_the_live_picture(stack: Stack) -> None:
    stack.ingest()
    robot = Robot(stack.pub, stack.topics, "r01", "mf01", boot=11).stream()  # a live robot with a simulated id
    try:
        warm(robot)
        t0 = time.time()
        out = subprocess.run([*minewatch_exe(), "simulate", "--mqtt-url", stack.broker.url, "--topic-prefix",
                              stack.topics.prefix, "--start", "shift:-1", "--speed", "max", "--duration", "20m",
                              "--scenarios", "mf01,hf02", "--faults", "builtin:outburst", "--seed", "4"],
                             capture_output=True, text=True, timeout=120)
        assert out.returncode == 0, out.stderr
        summary = json.loads(out.stdout.strip().splitlines()[-1])
        assert summary["history"] is True and summary["frames"] > 1000
        wait_until(lambda: (stack.db.count("telemetry", "seq") or 0) >= summary["frames"], 60, "the history stored")
        time.sleep(2)
        # nothing of it on the live topics: no alert, no incident, no robot offline
        assert stack.obs.events(after=t0) == []
        assert stack.obs.active("alerts") == {} and stack.obs.active("incidents") == {}
        # its alerts are stored, marked historical
        hist = stack.db.query('SELECT * FROM "alert_events" WHERE "timing" = \'historical\'')
        assert hist and any(r["kind"] == "gas" for r in hist)
        # the live robot of the same id is watched as before
        alert = outburst_alerted_within(robot, stack.obs)
        end_outburst(robot, stack.obs, alert["alert_id"])
        assert_nothing_stale(stack.obs)
    finally:
        robot.stop()


def test_history_of_an_earlier_day_loaded_after_a_later_one_is_judged_on_its_own(stack: Stack) -> None:
    """An import's last readings at a place were high (robot r05), so its alert stands in the
    history detectors when the import ends. Another import, of the day before (robot r01), crosses
    the same limit at that place: its alarm is raised and cleared in its own time, not swallowed
    by the standing alert of the later day, and the later day's alert gets no event dated before
    it was raised."""
    from minewatch.wire import Frame

    stack.ingest()
    s = 1_000_000_000
    later = (time.time_ns() // s - 3 * 3600) * s  # older than the live horizon: history
    earlier = later - 86400 * s

    def frames(robot: str, t0: int, values: list[float]) -> list[Frame]:
        return [Frame(robot_id=robot, scenario_id="mf01", boot=t0 // s, seq=i, ts=t0 + i * s,
                      readings={"ch4_t1": v}) for i, v in enumerate(values)]

    def publish(fs: list[Frame]) -> None:
        stack.pub.publish(stack.topics.history("mf01", fs[0].robot_id), msgspec.json.encode(fs))
        stack.pub.flush()

    def historical() -> list[dict]:
        return stack.db.query('SELECT * FROM "alert_events" WHERE "timing" = \'historical\' AND "detector" = '
                              '\'gas_limit\' AND "channel" = \'ch4_t1\'') or []

    publish(frames("r05", later, [0.3] * 5 + [1.7] * 10))  # ends high: its alert stands
    wait_until(lambda: any(r["state"] == "raised" for r in historical()), 30, "the later day's alarm")
    publish(frames("r01", earlier, [0.3] * 5 + [1.7] * 10 + [0.3] * 10))
    wait_until(lambda: (stack.db.count("telemetry", "seq") or 0) >= 40, 30, "both imports stored")

    def of_earlier_day(state: str) -> list[dict]:
        return [r for r in historical() if r["state"] == state and earlier <= r["first_ts"] < later]

    wait_until(lambda: bool(of_earlier_day("raised") and of_earlier_day("cleared")), 30,
               f"the earlier day's alarm raised and cleared: {historical()}")
    assert [r for r in historical() if r["time"] < r["first_ts"]] == [], historical()


def test_a_robot_whose_clock_was_reset_weeks_back_is_corrected_and_watched(stack: Stack) -> None:
    """A robot's real-time clock lost after a battery change starts at a date weeks back, older than
    the raw retention. Its frames cannot be stored at their own time; before, every one was
    dead-lettered for ever and its methane never reached the detectors. Now its clock is corrected
    like any clock steadily behind (after --clock-settle), and its readings are watched."""
    stack.ingest("--clock-settle", "3")
    robot = Robot(stack.pub, stack.topics, "r16", "hf04", boot=5, clock_s=-40 * 86400.0).stream()
    try:
        warm(robot, 5)
        _clock_told_then_outburst_alerted_live(stack, robot, 15)
    finally:
        robot.stop()
    # nothing stored weeks back: what came before the correction was refused, with its reason
    old = stack.db.query('SELECT count("seq") FROM "telemetry" WHERE time < now() - 50m')
    assert not old or not old[0].get("count"), old


def test_a_robot_whose_clock_is_two_days_ahead_is_corrected_and_watched(stack: Stack) -> None:
    """A robot's real-time clock two days ahead (a GPS week roll-over, an RTC set wrong): further
    ahead than a clock is corrected at once. Before, every frame was dead-lettered for ever, its
    methane never reached the detectors and the robot was shown offline. Now its clock is corrected
    once it has stayed that far ahead for --clock-settle, and its readings are watched."""
    ahead_s = 2 * 86400.0
    stack.ingest("--clock-settle", "3")
    robot = Robot(stack.pub, stack.topics, "r17", "hf03", boot=2, clock_s=ahead_s).stream()
    try:
        warm(robot, 5)
        _clock_told_then_outburst_alerted_live(stack, robot, 15)
        # the operator is told how far ahead the clock is
        clock = stack.obs.first_alert(lambda e: e["detector"] == "robot_clock" and e["state"] == "raised", 0, 1)
        assert abs(clock.payload["value"] - ahead_s) < 60, clock.payload
    finally:
        robot.stop()
    # stored at the times they arrived, nothing two days in the future
    now = stack.db.query('SELECT count("seq") FROM "telemetry" WHERE time > now() - 10m AND time < now() + 1m')
    assert now and now[0].get("count", 0) > 10, now
    future = stack.db.query('SELECT count("seq") FROM "telemetry" WHERE time > now() + 10m')
    assert not future or not future[0].get("count"), future


def test_two_robots_histories_of_two_days_sent_interleaved_are_each_judged_as_one_run(stack: Stack) -> None:
    """r01 imports the day before while r05 imports a later stretch, their frames a message each,
    taken in turn: r01's methane alarm is one alarm, raised and cleared in the earlier day, not
    one alarm a reading, none cleared (the history detectors started afresh at every message)."""
    from minewatch.wire import Frame

    stack.ingest()
    s = 1_000_000_000
    later = (time.time_ns() // s - 3 * 3600) * s  # older than the live horizon: history
    earlier = later - 86400 * s
    days = {"r01": (earlier, [0.3] * 3 + [1.7] * 4 + [0.3] * 4), "r05": (later, [0.3] * 11)}
    for i in range(11):
        for robot, (t0, values) in days.items():
            f = Frame(robot_id=robot, scenario_id="mf01", boot=t0 // s, seq=i, ts=t0 + i * s,
                      readings={"ch4_t1": values[i]})
            stack.pub.publish(stack.topics.history("mf01", robot), msgspec.json.encode([f]))
        stack.pub.flush()
        time.sleep(0.05)

    def historical() -> list[dict]:
        return stack.db.query('SELECT * FROM "alert_events" WHERE "timing" = \'historical\' AND "detector" = '
                              '\'gas_limit\' AND "channel" = \'ch4_t1\'') or []

    wait_until(lambda: (stack.db.count("telemetry", "seq") or 0) >= 22, 30, "both imports stored")
    wait_until(lambda: any(r["state"] == "cleared" for r in historical()), 30, f"the alarm cleared: {historical()}")
    time.sleep(1.0)  # any further raise of the same readings stored by now
    rows = historical()
    assert sorted(r["state"] for r in rows) == ["cleared", "raised"], rows
    raised, cleared = (next(r["time"] for r in rows if r["state"] == st) for st in ("raised", "cleared"))
    assert raised == earlier + 3 * s and earlier + 7 * s <= cleared <= earlier + 10 * s, rows  # in its own day
    assert len({r["alert_id"] for r in rows}) == 1, rows
