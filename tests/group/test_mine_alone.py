"""A mine cut off from the centre still raises its own alerts on time (issue #19).

Real processes: the mine's mosquitto with its own ingestor (the unchanged single-machine one, as
``minewatch group up`` runs it) and the forwarder into its leaf node, and the centre's three-node
cluster. With the leaf's link to the centre cut, a methane excursion over the power-cut level
(ch4 >= 1.5 % at a mining face, domain §2) reaches the mine's own alert topics within 2 s of its
publish; once the link is back, the centre's ``GROUP`` gets every frame the mine sent during the cut.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from group.servers import Centre
from minewatch.group import GROUP_STREAM, parse_subject
from minewatch.influx import SyncInflux
from minewatch.services import Influxd, Mosquitto
from minewatch.topics import Topics
from minewatch.wire import decode_frames

from tests.group.topo import ForwardProcess, Mine, read_stream, stream_count
from tests.ingest.helpers import Collector, IngestProcess, Publisher, frames_for, telemetry_count, wait_until

pytestmark = pytest.mark.integration

ON_TIME_S = 2.0
POWER_CUT_CH4 = 1.7  # over the power-cut level 1.5 % (domain §2)
STEP_NS = 200_000_000


def _group_seqs(centre: Centre, mine: str, robot: str) -> list[int]:
    """The seqs of ``robot``'s telemetry frames from ``mine`` in GROUP, in stream order."""
    out: list[int] = []
    for subject, payload in read_stream(centre.urls, GROUP_STREAM):
        parsed = parse_subject(subject)
        if parsed is not None and parsed.mine == mine and parsed.kind == "telemetry" and parsed.robot_id == robot:
            out += [f.seq for f in decode_frames(payload)]
    return out


def _power_cut_alerts(col: Collector, topics: Topics) -> list[tuple[dict, float]]:
    """The critical methane alert events ``col`` got, with the wall time each arrived."""
    out = []
    for topic, payload, _, arrived in col.take():
        parsed = topics.parse_alert(topic)
        if parsed is None or parsed[0] != "event":
            continue
        event = json.loads(payload)
        if event["detector"] == "gas_limit" and event["channel"] == "ch4_t1" and event["severity"] == "critical":
            out.append((event, arrived))
    return out


def test_a_mine_cut_off_from_the_centre_raises_its_own_alert_on_time(mosquitto: Mosquitto, influxd: Influxd,
                                                                      influx_db: SyncInflux, centre: Centre,
                                                                      mine: Mine, tmp_path: Path, prefix: str,
                                                                      unique: str,
                                                                      forwarders: list[ForwardProcess]) -> None:
    topics = Topics(prefix)
    robot = f"r{unique[:6]}"
    ingest = IngestProcess(tmp_path / "ingest.log", "--mqtt-url", mosquitto.url, "--influx-url", influxd.url,
                           "--influx-db", influx_db.db, "--topic-prefix", prefix, "--client-id", f"ing-{unique}",
                           env={"MINEWATCH_ENV_FILE": "", "MINEWATCH_DATA_DIR": str(tmp_path / "ingest")})
    fwd = ForwardProcess(tmp_path / "forward.log", "--mine", mine.id, "--nats", mine.leaf.url, "--mqtt-url",
                         mosquitto.url, "--topic-prefix", prefix, "--client-id", f"fw-{unique}")
    forwarders.append(fwd)
    col = pub = None
    try:
        ingest.start()
        fwd.start()
        wait_until(lambda: "connected to the broker" in ingest.log() or not ingest.alive, 30, "the mine's ingestor")
        wait_until(lambda: "forwarding mine" in fwd.log() or not fwd.alive, 30, "the forwarder")
        assert ingest.alive, ingest.log()
        assert fwd.alive, fwd.log()
        col = Collector(mosquitto.url, topics.all_alert_events)
        pub = Publisher(mosquitto.url)
        frames = frames_for("mf01", robot, 40, t0=time.time_ns(), step_ns=STEP_NS)

        pub.send(topics, frames[:10])  # linked: both paths work before the cut
        pub.flush()
        wait_until(lambda: telemetry_count(influx_db) >= 10, 20, "the mine's ingestor to store the first frames")
        wait_until(lambda: len(_group_seqs(centre, mine.id, robot)) >= 10, 20, "the first frames in GROUP")
        in_group_before = stream_count(centre.urls, GROUP_STREAM)

        mine.cut()
        try:
            pub.send(topics, frames[10:20])
            for f in frames[20:25]:
                f.readings["ch4_t1"] = POWER_CUT_CH4
            published = time.time()
            pub.send(topics, frames[20:25])
            wait_until(lambda: bool(_power_cut_alerts(col, topics)), 10, "the mine's own power-cut alert")
            event, arrived = _power_cut_alerts(col, topics)[0]
            pub.send(topics, frames[25:40])  # methane back to normal, still cut off
            pub.flush()
            wait_until(lambda: telemetry_count(influx_db) >= 40, 20, "the mine's ingestor to store every frame")
            still_cut = stream_count(centre.urls, GROUP_STREAM)
        finally:
            mine.restore()

        assert (event["state"], event["robot_id"], event["scenario_id"]) == ("raised", robot, "mf01")
        assert event["value"] == pytest.approx(POWER_CUT_CH4)
        assert arrived - published <= ON_TIME_S, f"the alert came {arrived - published:.2f} s after the excursion"
        assert still_cut == in_group_before, "the link to the centre was not cut"

        wait_until(lambda: len(_group_seqs(centre, mine.id, robot)) >= 40, 30, "the cut's backlog in GROUP")
        assert _group_seqs(centre, mine.id, robot) == list(range(40))
        assert stream_count(centre.urls, GROUP_STREAM) == in_group_before + 30
        assert fwd.terminate() == 0
        assert ingest.terminate() == 0
    finally:
        for c in (col, pub):
            if c is not None:
                c.close()
        if ingest.alive:
            ingest.kill()
