"""Alerts out of the ingestor: event topics, retained active state, acknowledgements, storage,
and alert ids that survive a restart."""

from __future__ import annotations

import json
import time
from pathlib import Path

import orjson
import pytest

from minewatch.influx import SyncInflux
from minewatch.schema import AlertEvent
from minewatch.services import Influxd, Mosquitto
from minewatch.topics import Topics
from minewatch.wire import Frame

from tests.ingest.helpers import (Collector, alert_events_of, Publisher, assert_exactly_once, frames_for, ingestor_in_process,
                                  ingest_settings, retained_active, wait_until)

pytestmark = pytest.mark.integration


def _methane(frames: list[Frame], value: float) -> list[Frame]:
    for f in frames:
        f.readings["ch4_t1"] = value
    return frames


def _held_back_run(scenario_id: str, robot_id: str, n: int) -> list[Frame]:
    """``n`` frames of a robot, one every 0.2 s up to a few seconds ago, methane at the face normal."""
    return _methane(frames_for(scenario_id, robot_id, n, t0=time.time_ns() - 40 * 200_000_000, step_ns=200_000_000),
                    0.3)


def _gas(col: Collector, topics: Topics) -> list[dict]:
    return [e for e in alert_events_of(col, topics) if e["detector"] == "gas_limit" and e["channel"] == "ch4_t1"]


def test_methane_alert_raised_acknowledged_cleared_and_stored(mosquitto: Mosquitto, influxd: Influxd,
                                                               influx_db: SyncInflux, prefix: str,
                                                               tmp_path: Path) -> None:
    topics = Topics(prefix)
    settings = ingest_settings(mosquitto.url, influxd.url, influx_db, prefix, tmp_path)
    col = Collector(mosquitto.url, topics.all_alert_events)
    pub = Publisher(mosquitto.url)
    t0 = time.time_ns()
    frames = frames_for("mf01", "r01", 30, t0=t0, step_ns=200_000_000)
    with ingestor_in_process(settings, client_id=f"ing-{prefix}"):
        pub.send(topics, frames[:10])
        pub.send(topics, _methane(frames[10:15], 1.7))    # above the power-cut level 1.5 %
        wait_until(lambda: any(e["severity"] == "critical" for e in _gas(col, topics)), 20, "the power-cut alert")
        raised = _gas(col, topics)[0]
        alert_id = raised["alert_id"]
        assert raised["state"] == "raised" and raised["scenario_id"] == "mf01" and raised["robot_id"] == "r01"
        AlertEvent.model_validate(raised)
        active = retained_active(mosquitto.url, topics)
        assert alert_id in active and json.loads(active[alert_id])["severity"] == "critical"

        ack = {"alert_id": alert_id, "scenario_id": "mf01", "operator": "op-li", "note": "power cut, people out",
               "ts": time.time_ns()}
        pub.publish(topics.ack(alert_id), orjson.dumps(ack))
        pub.publish(topics.ack("mf01.nope.gas_limit.1"), orjson.dumps({**ack, "alert_id": "mf01.nope.gas_limit.1"}))
        wait_until(lambda: any(e["state"] == "acknowledged" for e in _gas(col, topics)), 20, "the acknowledgement")
        acked = next(e for e in _gas(col, topics) if e["state"] == "acknowledged")
        assert (acked["alert_id"], acked["operator"], acked["note"]) == (alert_id, "op-li", "power cut, people out")
        assert json.loads(retained_active(mosquitto.url, topics)[alert_id])["state"] == "acknowledged"

        pub.send(topics, _methane(frames[15:30], 0.3))    # below the restore level 1.0 %
        wait_until(lambda: any(e["state"] == "cleared" for e in _gas(col, topics)), 20, "the clear")
        assert alert_id not in retained_active(mosquitto.url, topics)
        pub.flush()
        wait_until(lambda: influx_db.count("telemetry", "seq") >= 30, 20, "30 points")
    assert_exactly_once(influx_db, {"r01": 30})

    rows = influx_db.query(f'SELECT * FROM "alert_events" WHERE "alert_id" = \'{alert_id}\'')
    states = [r["state"] for r in rows]
    # time = event time: frames' robot time for raised / cleared, the operator's time for the ack
    assert sorted(states) == ["acknowledged", "cleared", "raised"]
    first = next(r for r in rows if r["state"] == "raised")
    assert (first["scenario"], first["kind"], first["detector"], first["channel"], first["robot_id"]) == \
        ("mf01", "gas", "gas_limit", "ch4_t1", "r01")
    assert first["value"] == pytest.approx(1.7) and first["limit"] in (1.0, 1.5) and first["unit"] == "%"
    assert first["first_ts"] == raised["first_ts"] and first["time"] == raised["ts"]
    assert json.loads(first["evidence"]) == raised["evidence"]
    assert next(r for r in rows if r["state"] == "acknowledged")["operator"] == "op-li"
    col.close()
    pub.close()


def test_alert_ids_survive_a_restart(mosquitto: Mosquitto, influxd: Influxd, influx_db: SyncInflux, prefix: str,
                                     tmp_path: Path) -> None:
    topics = Topics(prefix)
    settings = ingest_settings(mosquitto.url, influxd.url, influx_db, prefix, tmp_path)
    col = Collector(mosquitto.url, topics.all_alert_events)
    pub = Publisher(mosquitto.url)
    frames = frames_for("hf01", "r05", 40, t0=time.time_ns(), step_ns=200_000_000)
    with ingestor_in_process(settings, client_id=f"ing-{prefix}"):
        pub.send(topics, _methane(frames[:10], 1.2))          # heading T1: alarm at 1.0 %
        wait_until(lambda: bool(_gas(col, topics)), 20, "the alarm")
    alert_id = _gas(col, topics)[0]["alert_id"]
    with ingestor_in_process(settings, client_id=f"ing-{prefix}"):
        pub.send(topics, _methane(frames[10:20], 1.25))       # still high: the same alert, not a new one
        pub.send(topics, _methane(frames[20:40], 0.2))
        wait_until(lambda: any(e["state"] == "cleared" for e in _gas(col, topics)), 20, "the clear")
    gas = _gas(col, topics)
    assert {e["alert_id"] for e in gas} == {alert_id}
    assert [e["state"] for e in gas].count("raised") == 1
    col.close()
    pub.close()


def test_the_active_state_is_published_before_the_event(mosquitto: Mosquitto, prefix: str) -> None:
    """One subscriber to both the active set and the event stream, on the real broker: each raise
    and clear reaches the retained active set before the event stream, so an event anyone saw is
    always in what a restarted ingestor reads back (an ingestor stopped between the two would
    otherwise leave a raised alert that nothing clears)."""
    import paho.mqtt.client as mqtt

    from ingest.alerts import publish_event
    from minewatch.schema import AlertKind, AlertState, Severity

    topics = Topics(prefix)
    col = Collector(mosquitto.url, f"{prefix}/#")
    pub = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=f"order-{prefix.replace('/', '-')}")
    pub.connect(mosquitto.host, mosquitto.port)
    pub.loop_start()
    try:
        def send(topic: str, payload: bytes, qos: int, retain: bool) -> None:
            pub.publish(topic, payload, qos, retain)

        ids = [f"mf01.ch4_t1.gas_limit.{1795852800000 + i}" for i in range(5)]
        for i, aid in enumerate(ids):
            for state in ("raised", "cleared"):
                ev = AlertEvent(alert_id=aid, kind=AlertKind.gas, detector="gas_limit", severity=Severity.alarm,
                                state=AlertState(state), scenario_id="mf01", robot_id="r01", channel="ch4_t1",
                                value=1.6, limit=1.5, unit="%", first_ts=i, ts=i, message="methane")
                publish_event(send, topics, ev)
        wait_until(lambda: len(col.take()) >= 20, 10, "every message")
        seen: dict[str, list[str]] = {aid: [] for aid in ids}
        active = {topics.active(aid): aid for aid in ids}
        for topic, payload, _, _ in col.take():
            if topic in active:
                seen[active[topic]].append("active")
            else:
                seen[json.loads(payload)["alert_id"]].append("event")
        assert all(kinds == ["active", "event", "active", "event"] for kinds in seen.values()), seen
    finally:
        pub.loop_stop()
        pub.disconnect()
        col.close()


def test_held_back_readings_sent_after_newer_ones_leave_the_board_true(mosquitto: Mosquitto, influxd: Influxd,
                                                                       influx_db: SyncInflux, prefix: str,
                                                                       tmp_path: Path) -> None:
    """Two robots send seq 0-9 and 20-29 live and hold 10-19 back (a coverage hole), then send them.
    r01's held-back readings end past the power-cut level, its newer ones are normal: the alert is
    raised and cleared, both late, and none is left up. r02's newer readings are past it and its
    held-back ones normal: its alert stands (older readings cannot clear it) until newer ones do."""
    topics = Topics(prefix)
    settings = ingest_settings(mosquitto.url, influxd.url, influx_db, prefix, tmp_path)
    col = Collector(mosquitto.url, topics.all_alert_events)
    pub = Publisher(mosquitto.url)
    a, b = _held_back_run("mf01", "r01", 30), _held_back_run("mf02", "r02", 40)
    _methane(a[17:20], 1.7)
    _methane(b[25:30], 1.7)

    def gas(robot: str) -> list[dict]:
        return [e for e in _gas(col, topics) if e["robot_id"] == robot]

    with ingestor_in_process(settings, client_id=f"ing-{prefix}"):
        for fs in (a, b):
            pub.send(topics, fs[:10])
            pub.send(topics, fs[20:30])
        wait_until(lambda: [e["state"] for e in gas("r02")] == ["raised"], 20, "r02's alert")
        pub.send(topics, a[10:20], per_message=10)
        pub.send(topics, b[10:20], per_message=10)
        wait_until(lambda: [e["state"] for e in gas("r01")] == ["raised", "cleared"], 20, "r01's late alert, cleared")
        pub.flush()
        wait_until(lambda: influx_db.count("telemetry", "seq") >= 60, 20, "60 points")
        time.sleep(1.0)  # anything the late readings would wrongly do to r02's alert has been published
        raised, cleared = gas("r01")
        assert raised["timing"] == cleared["timing"] == "late", (raised, cleared)
        assert raised["ts"] == a[17].ts and cleared["ts"] == a[29].ts and "came late" in cleared["message"]
        assert [e["state"] for e in gas("r02")] == ["raised"]
        active = retained_active(mosquitto.url, topics)
        assert raised["alert_id"] not in active
        assert gas("r02")[0]["alert_id"] in active
        pub.send(topics, b[30:40])  # newer readings, normal: they clear it
        wait_until(lambda: [e["state"] for e in gas("r02")] == ["raised", "cleared"], 20, "r02's clear")
        pub.flush()
    assert_exactly_once(influx_db, {"r01": 30, "r02": 40})
    col.close()
    pub.close()


def test_held_back_readings_sent_a_frame_a_message_are_judged_as_one_run(mosquitto: Mosquitto, influxd: Influxd,
                                                                          influx_db: SyncInflux, prefix: str,
                                                                          tmp_path: Path) -> None:
    """A robot sends seq 0-9 and 20-29 live, then its held-back 10-19 a frame a message and a
    moment apart (each in a detector pass of its own), CO at 30 ppm in 14-16: the alarm level wants
    two readings in a row, which no one pass holds. The excursion is raised once, late, cleared at
    once, and nothing is left up."""
    topics = Topics(prefix)
    settings = ingest_settings(mosquitto.url, influxd.url, influx_db, prefix, tmp_path)
    col = Collector(mosquitto.url, topics.all_alert_events)
    pub = Publisher(mosquitto.url)
    a = _held_back_run("mf01", "r01", 30)
    for f in a[14:17]:
        f.readings["co"] = 30.0

    def co() -> list[dict]:
        return [e for e in alert_events_of(col, topics) if e["detector"] == "gas_limit" and e["channel"] == "co"]

    with ingestor_in_process(settings, client_id=f"ing-{prefix}"):
        pub.send(topics, a[:10])
        pub.send(topics, a[20:30])
        pub.flush()
        wait_until(lambda: influx_db.count("telemetry", "seq") >= 20, 20, "the live points")
        for f in a[10:20]:
            pub.send(topics, [f])
            pub.flush()
            time.sleep(0.1)
        wait_until(lambda: [e["state"] for e in co()] == ["raised", "cleared"], 20, "the late CO alarm, cleared")
        wait_until(lambda: influx_db.count("telemetry", "seq") >= 30, 20, "30 points")
        time.sleep(0.5)
        raised, cleared = co()
        assert raised["timing"] == cleared["timing"] == "late" and raised["severity"] == "alarm", (raised, cleared)
        assert raised["ts"] == a[15].ts and cleared["ts"] == a[29].ts
        assert raised["alert_id"] not in retained_active(mosquitto.url, topics)
    assert_exactly_once(influx_db, {"r01": 30})
    col.close()
    pub.close()


def test_held_back_readings_sent_after_a_restart_are_raised_late_and_cleared(mosquitto: Mosquitto, influxd: Influxd,
                                                                             influx_db: SyncInflux, prefix: str,
                                                                             tmp_path: Path) -> None:
    """A robot sends seq 0-9 and 20-29 and holds 10-19 back; the ingestor is stopped and started
    again (it warms up on what was stored), and then the held-back readings come, the last three
    past the power-cut level. They fill a hole in what was stored: the alert is raised and cleared,
    both late, not passed over as repeats of stored readings."""
    topics = Topics(prefix)
    settings = ingest_settings(mosquitto.url, influxd.url, influx_db, prefix, tmp_path)
    col = Collector(mosquitto.url, topics.all_alert_events)
    pub = Publisher(mosquitto.url)
    a = _held_back_run("mf01", "r01", 30)
    _methane(a[17:20], 1.7)
    with ingestor_in_process(settings, client_id=f"ing-{prefix}"):
        pub.send(topics, a[:10])
        pub.send(topics, a[20:30])
        pub.flush()
        wait_until(lambda: influx_db.count("telemetry", "seq") >= 20, 20, "20 points")
    with ingestor_in_process(settings, client_id=f"ing-{prefix}"):
        pub.send(topics, a[10:20], per_message=10)
        wait_until(lambda: [e["state"] for e in _gas(col, topics)] == ["raised", "cleared"], 20,
                   "the held-back readings' alert, raised and cleared")
        pub.flush()
        raised, cleared = _gas(col, topics)
        assert raised["timing"] == cleared["timing"] == "late", (raised, cleared)
        assert raised["ts"] == a[17].ts and cleared["ts"] == a[29].ts
        assert raised["alert_id"] not in retained_active(mosquitto.url, topics)
    assert_exactly_once(influx_db, {"r01": 30})
    col.close()
    pub.close()


def _alarms_by_id(events: list[dict]) -> dict[str, dict]:
    """What an integrator deduplicating by ``alert_id`` takes for alarms: the first ``raised``
    event of each id (a second one with an id it has seen is a repeat delivery to it)."""
    out: dict[str, dict] = {}
    for e in events:
        if e["state"] == "raised":
            out.setdefault(e["alert_id"], e)
    return out


def test_two_robots_late_alarms_at_one_millisecond_reach_an_integrator_as_two(mosquitto: Mosquitto,
                                                                              influxd: Influxd,
                                                                              influx_db: SyncInflux, prefix: str,
                                                                              tmp_path: Path) -> None:
    """r01 and r02 at one place send seq 0-9 and 20-29 live and hold 10-19 back, methane past the
    power-cut level in 17-19 of both (the same robot times). r01's backlog comes: a late alarm,
    raised and cleared at once. r01's newer readings then rise and fall: a live alarm. r02's backlog
    comes: a late alarm raised at r01's millisecond, another alarm. An integrator following the
    alert stream and deduplicating by ``alert_id`` sees three alarms, each under its own id, and
    nothing is left retained."""
    topics = Topics(prefix)
    settings = ingest_settings(mosquitto.url, influxd.url, influx_db, prefix, tmp_path)
    integrator = Collector(mosquitto.url, topics.all_alert_events)
    pub = Publisher(mosquitto.url)
    t0 = time.time_ns() - 50 * 200_000_000
    a = _methane(frames_for("mf01", "r01", 50, t0=t0, step_ns=200_000_000), 0.3)
    b = _methane(frames_for("mf01", "r02", 30, t0=t0, step_ns=200_000_000), 0.3)
    for fs in (a, b):
        _methane(fs[17:20], 1.7)
    _methane(a[30:32], 1.7)

    def raised(robot: str) -> list[dict]:
        return [e for e in _gas(integrator, topics) if e["robot_id"] == robot and e["state"] == "raised"]

    with ingestor_in_process(settings, client_id=f"ing-{prefix}"):
        for fs in (a, b):
            pub.send(topics, fs[:10])
            pub.send(topics, fs[20:30])
        pub.flush()
        wait_until(lambda: influx_db.count("telemetry", "seq") >= 40, 20, "the live points")
        pub.send(topics, a[10:20], per_message=10)
        wait_until(lambda: len(raised("r01")) == 1, 20, "r01's late alarm")
        pub.send(topics, a[30:50])
        wait_until(lambda: len(raised("r01")) == 2 and sum(e["state"] == "cleared" for e in _gas(integrator, topics)) == 2,
                   20, "r01's live alarm, cleared")
        pub.send(topics, b[10:20], per_message=10)
        wait_until(lambda: len(raised("r02")) == 1 and sum(e["state"] == "cleared" for e in _gas(integrator, topics)) == 3,
                   20, "r02's late alarm, cleared")
        pub.flush()
        gas = _gas(integrator, topics)
        ups = [e for e in gas if e["state"] == "raised"]
        assert [(e["robot_id"], e["timing"], e["first_ts"]) for e in ups] == [
            ("r01", "late", a[17].ts), ("r01", "live", a[30].ts), ("r02", "late", b[17].ts)], ups
        assert a[17].ts == b[17].ts
        alarms = _alarms_by_id(gas)
        assert len(alarms) == 3, sorted(alarms)
        assert alarms[ups[2]["alert_id"]]["robot_id"] == "r02"
        # each id's clear is its own alert's: one raised and one cleared per id
        for alert_id in alarms:
            assert sorted(e["state"] for e in gas if e["alert_id"] == alert_id) == ["cleared", "raised"], alert_id
        assert not [k for k in retained_active(mosquitto.url, topics) if ".gas_limit." in k]
    integrator.close()
    pub.close()


def test_a_late_alarm_dated_before_another_robots_standing_alarm_is_its_own(mosquitto: Mosquitto, influxd: Influxd,
                                                                            influx_db: SyncInflux, prefix: str,
                                                                            tmp_path: Path) -> None:
    """r02 reads methane at 1.2 % from seq 20 (an alarm, standing and retained); r01 at the same
    place sends seq 0-9 and 20-29 live at 0.3 % and its held-back 10-19 after, with 1.7 % at 12-13,
    past the power-cut level, dated before r02's alarm was raised. An integrator sees a late critical
    alert under its own id, raised and cleared; r02's alarm is neither escalated nor cleared by it,
    and its retained state is still there, at alarm."""
    topics = Topics(prefix)
    settings = ingest_settings(mosquitto.url, influxd.url, influx_db, prefix, tmp_path)
    integrator = Collector(mosquitto.url, topics.all_alert_events)
    pub = Publisher(mosquitto.url)
    a = _held_back_run("mf01", "r01", 30)
    _methane(a[12:14], 1.7)
    b = _methane(frames_for("mf01", "r02", 30, t0=a[0].ts, step_ns=200_000_000), 0.3)
    _methane(b[20:30], 1.2)
    with ingestor_in_process(settings, client_id=f"ing-{prefix}"):
        pub.send(topics, a[:10] + b[:20])
        pub.send(topics, a[20:30] + b[20:30])
        pub.flush()
        wait_until(lambda: [e["state"] for e in _gas(integrator, topics)] == ["raised"], 20, "r02's live alarm")
        [standing] = _gas(integrator, topics)
        wait_until(lambda: influx_db.count("telemetry", "seq") >= 50, 20, "the live points")
        pub.send(topics, a[10:20], per_message=10)
        wait_until(lambda: len(_gas(integrator, topics)) == 3, 20, "r01's late alert, raised and cleared")
        time.sleep(0.5)
        late = _gas(integrator, topics)[1:]
        assert [(e["state"], e["severity"], e["robot_id"], e["timing"]) for e in late] == [
            ("raised", "critical", "r01", "late"), ("cleared", "critical", "r01", "late")], late
        assert late[0]["alert_id"] == late[1]["alert_id"] != standing["alert_id"]
        assert late[0]["evidence"]["before_alert"] == late[1]["evidence"]["before_alert"] == standing["alert_id"]
        assert late[0]["first_ts"] == a[12].ts
        retained = retained_active(mosquitto.url, topics)
        gas = {k: orjson.loads(v) for k, v in retained.items() if ".gas_limit." in k}
        assert list(gas) == [standing["alert_id"]], gas
        assert (gas[standing["alert_id"]]["state"], gas[standing["alert_id"]]["severity"]) == ("raised", "alarm")
    assert_exactly_once(influx_db, {"r01": 30, "r02": 30})
    integrator.close()
    pub.close()
