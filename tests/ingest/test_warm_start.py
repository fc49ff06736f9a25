"""An ingestor that starts again picks up where the stored readings leave off: detectors that need
history (here the stuck-sensor check, which learns a sensor's noise from 100 values and then
needs two minutes of repeats) work from its first frames, because it warms up on the last minutes
stored in InfluxDB."""

from __future__ import annotations

import json
import random
import time
from pathlib import Path

import pytest

from minewatch.influx import SyncInflux
from minewatch.services import Influxd, Mosquitto
from minewatch.topics import Topics
from minewatch.wire import Frame

from tests.ingest.helpers import Collector, Publisher, ingest_settings, ingestor_in_process, wait_until

pytestmark = pytest.mark.integration
S = 1_000_000_000


def _frames(n_noise: int, n_stuck: int, t0: int) -> list[Frame]:
    """ra01's CO sensor: noisy for ``n_noise`` seconds, then stuck at one value."""
    rng = random.Random(5)
    out = []
    for i in range(n_noise + n_stuck):
        co = round(rng.uniform(2.0, 6.0), 0) if i < n_noise else 4.0
        out.append(Frame(robot_id="r21", scenario_id="ra01", seq=i, boot=1, ts=t0 + i * S,
                         readings={"ch4": 0.3, "co2": 0.3, "co": co, "ws": 4.0, "t": 20.0}))
    return out


@pytest.mark.parametrize("warmup", [600.0, 0.0], ids=["warm", "cold"])
def test_a_stuck_sensor_is_found_right_after_a_restart(mosquitto: Mosquitto, influxd: Influxd,
                                                       influx_db: SyncInflux, prefix: str, tmp_path: Path,
                                                       warmup: float) -> None:
    topics = Topics(prefix)
    settings = ingest_settings(mosquitto.url, influxd.url, influx_db, prefix, tmp_path)
    t0 = time.time_ns() - 290 * S
    frames = _frames(150, 135, t0)  # ends 5 s ago: inside the live horizon
    before, after = frames[:200], frames[200:]
    pub = Publisher(mosquitto.url)
    col = Collector(mosquitto.url, topics.all_alert_events)
    cid = f"ing-{prefix.split('/')[0]}"
    try:
        with ingestor_in_process(settings, client_id=cid, batch_ms=20):
            pub.send(topics, before, per_message=20)
            wait_until(lambda: influx_db.count("telemetry", "seq") >= len(before), 20, "the first part stored")
        stuck = []
        with ingestor_in_process(settings, client_id=cid, batch_ms=20, warmup_s=warmup):
            pub.send(topics, after, per_message=20)
            wait_until(lambda: influx_db.count("telemetry", "seq") >= len(frames), 20, "the rest stored")
            time.sleep(1)
            stuck = [json.loads(p) for t, p, _r, _at in col.take() if p and topics.parse_alert(t)
                     and json.loads(p).get("detector") == "sensor_stuck"]
        if warmup:
            assert stuck and stuck[0]["channel"] == "co" and stuck[0]["state"] == "raised", stuck
            assert stuck[0]["ts"] >= t0 + 270 * S  # two minutes into the repeats, on a frame after the restart
        else:  # started cold, the check has not learned the sensor yet: the reason for the warm-up
            assert not stuck, stuck
    finally:
        col.close()
        pub.close()


def test_on_the_data_clock_a_status_before_any_frame_does_not_start_the_deadman_at_zero(
        mosquitto: Mosquitto, influxd: Influxd, influx_db: SyncInflux, prefix: str, tmp_path: Path) -> None:
    """``--clock data``: the data's clock starts with the first frame; a robot's status that comes
    first (a retained one, as at every start) must not date the robot's last sign of life to 1970."""
    from minewatch.schema import RobotStatus

    topics = Topics(prefix)
    settings = ingest_settings(mosquitto.url, influxd.url, influx_db, prefix, tmp_path)
    pub = Publisher(mosquitto.url)
    col = Collector(mosquitto.url, topics.all_alert_events)
    t0 = time.time_ns() - 3600 * S
    try:
        with ingestor_in_process(settings, client_id=f"ing-{prefix.split('/')[0]}", batch_ms=20, clock="data"):
            pub.publish(topics.status("r31"), RobotStatus(robot_id="r31", online=True).model_dump_json().encode())
            time.sleep(1.5)  # the status is taken, a tick or two pass with no frame yet
            frames = [Frame(robot_id="r31", scenario_id="ra01", seq=i, ts=t0 + i * S, readings={"co": 3.0})
                      for i in range(30)]
            pub.send(topics, frames, per_message=10)
            wait_until(lambda: influx_db.count("telemetry", "seq") >= 30, 20, "the frames stored")
            time.sleep(1.5)
        offline = [json.loads(p) for t, p, _r, _at in col.take() if p and topics.parse_alert(t)
                   and json.loads(p).get("detector") == "robot_offline"]
        assert offline == [], offline
    finally:
        col.close()
        pub.close()
