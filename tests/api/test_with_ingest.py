"""The API with the real ingestor (and simulator) behind it: acknowledging round trip, and replay
of a recorded shift reproducing the alerts raised live."""

from __future__ import annotations

import json
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from api.times import iso
from minewatch.influx import SyncInflux
from minewatch.settings import Settings
from minewatch.shifts import ShiftCalendar
from minewatch.wire import encode_frames
from tests.ingest.helpers import frames_for, ingestor_in_process, minewatch_exe

from .conftest import Api, Publisher, wait_for

pytestmark = pytest.mark.integration

# a recorded shift: the night shift (a production shift, whose gas the simulator makes higher than a
# maintenance shift's) of two days ago, inside the raw data's retention, whatever the time of day now
SHIFT = ShiftCalendar().at_ns(time.time_ns() - 2 * 86400 * 10**9).id.split(":")[0] + ":night"
FAULTS = [
    {"kind": "methane_outburst", "scenario": "mf01", "channel": "ch4_t1", "start": "+2m", "duration": "90s", "peak": 1.8},
    {"kind": "sensor_stuck", "scenario": "ra01", "channel": "ch4", "start": "+3m", "duration": "4m"},
]


@pytest.fixture
def ingestor(settings: Settings, tmp_path: Path) -> Iterator[object]:
    s = settings.model_copy(update={"data_dir": tmp_path / "ingest"})
    with ingestor_in_process(s, client_id=f"ing-{s.topic_prefix.replace('/', '-')}", batch_ms=50) as ing:
        yield ing


def test_acknowledging_round_trip_through_the_ingestor(
        ingestor: object, api: Api, publisher: Publisher) -> None:
    frames = frames_for("hf02", "r31", 12, t0=time.time_ns() - 20 * 10**9)
    for f in frames[2:]:
        f.readings["ch4_t1"] = 1.3  # heading face T1: alarm 1.0, power cut 1.5
    publisher.publish(publisher.topics.telemetry("hf02", "r31"), encode_frames(frames))
    with api.client("operator") as c:
        got = wait_for(lambda: c.get("/alerts", params={"active": "true", "scenario": "hf02"}).json()["data"],
                       what="the ingestor's alert")
        alert = got[0]
        assert alert["channel"] == "ch4_t1" and alert["severity"] == "alarm" and alert["state"] == "raised"
        r = c.post(f"/alerts/{alert['alert_id']}/ack", json={"operator": "Zhao Min", "note": "deputy on the way"})
        assert r.status_code == 200, r.text
        assert r.json()["state"] == "acknowledged" and r.json()["acknowledged_by"] == "Zhao Min"
        again = c.post(f"/alerts/{alert['alert_id']}/ack", json={"operator": "Li Na"})
        assert again.status_code == 409 and "Zhao Min" in again.json()["detail"]
        assert c.post("/alerts/hf02.nothing.1/ack", json={"operator": "Li Na"}).status_code == 404
        assert c.post(f"/alerts/{alert['alert_id']}/ack", json={"operator": " "}).status_code == 422
        hist = c.get(f"/alerts/{alert['alert_id']}").json()["history"]
        assert [e["state"] for e in hist] == ["raised", "acknowledged"] and hist[1]["note"] == "deputy on the way"


def _simulate(settings: Settings, tmp_path: Path, start_ns: int, minutes: int) -> int:
    faults = tmp_path / "faults.json"
    faults.write_text(json.dumps(FAULTS))
    out = subprocess.run(
        [*minewatch_exe(), "simulate", "--mqtt-url", settings.mqtt_url, "--topic-prefix", settings.topic_prefix,
         "--start", iso(start_ns), "--speed", "max", "--duration", f"{minutes}m", "--scenarios", "mf01,ra01",
         "--faults", str(faults), "--seed", "3"],
        capture_output=True, text=True, timeout=120, check=True)
    return int(json.loads(out.stdout.strip().splitlines()[-1])["frames"])


def _replay(c: httpx.Client, body: dict[str, Any]) -> dict[str, Any]:
    r = c.post("/replays", json=body)
    assert r.status_code == 201, r.text
    job = r.json()
    done = wait_for(lambda: (j := c.get(f"/replays/{job['id']}").json())["state"] not in ("queued", "running") and j,
                    timeout=60, what="the replay")
    assert done["state"] == "done", done
    return done


def test_replaying_a_recorded_shift_reproduces_the_alerts_recorded_for_it(
        ingestor: object, settings: Settings, start_api: Callable[..., Api], influx_db: SyncInflux,
        tmp_path: Path) -> None:
    """A past shift loaded as history through the running ingestor: its alerts are recorded (as
    historical, never on the live board), and replaying the shift gives the same alerts."""
    shift = ShiftCalendar().parse(SHIFT)
    frames = _simulate(settings, tmp_path, shift.start_ns, 8)
    wait_for(lambda: influx_db.count("telemetry", "seq") == frames, timeout=60, what="every frame stored")
    live = wait_for(lambda: influx_db.query('SELECT * FROM "alert_events"'), what="alerts recorded")
    api = start_api()
    with api.client("engineer") as c:
        window = {"since": shift.start_ns, "until": shift.end_ns}
        # history is not on the live picture: no alert, no incident, no robot marked offline
        assert c.get("/alerts", params=window).json()["data"] == []
        assert c.get("/alerts", params={"active": "true"}).json()["data"] == []
        assert c.get("/incidents").json()["data"] == []
        recorded = c.get("/alerts", params={**window, "timing": "historical"}).json()["data"]
        assert recorded and all(a["timing"] == "historical" for a in recorded)
        gas = [a for a in recorded if a["detector"] == "gas_limit" and a["scenario_id"] == "mf01"]
        assert "critical" in {a["max_severity"] for a in gas}, recorded

        same = _replay(c, {"shift": SHIFT})
        assert same["frames"] == frames and same["progress"] == 1.0
        d = same["diff"]
        assert d["missed"] == 0 and d["new"] == 0, (d, [e for e in same["alerts"] if e["alert_id"] in d["new_alerts"]],
                                                    recorded)
        comparable = {a["alert_id"] for a in recorded if a["kind"] not in ("vibration", "robot-health")}
        assert d["same"] == len(comparable) >= 2
        assert {e["alert_id"] for e in same["alerts"]} >= comparable

        lowered = _replay(c, {"shift": SHIFT, "overrides": {"ra01.ch4.alarm": 0.3}})
        d2 = lowered["diff"]
        assert d2["missed"] == 0 and d2["same"] == d["same"] and d2["new"] >= 1, d2
        new = [e for e in lowered["alerts"] if e["alert_id"] in d2["new_alerts"]]
        assert new and all(e["scenario_id"] == "ra01" and e["channel"] == "ch4" for e in new)
        assert all(e["limit"] == 0.3 for e in new if e["state"] == "raised")
    assert len(live) >= 2
