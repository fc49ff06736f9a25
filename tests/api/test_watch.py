"""Whether each place is watched: the ingestor's retained ``watch/{scenario}`` statuses, the system
alert when readings are stored but not checked, and the API's view of a silent ingestor."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from minewatch.settings import Settings
from minewatch.topics import Topics
from tests.ingest.helpers import Collector, Publisher, frames_for, ingestor_in_process, wait_until

from .conftest import Api

pytestmark = pytest.mark.integration


def _watch(col: Collector, topics: Topics) -> dict[str, dict]:
    out: dict[str, dict] = {}
    for topic, payload, _r, _at in col.take():
        sid = topics.parse_watch(topic)
        if sid is not None and payload:
            out[sid] = json.loads(payload)
    return out


def test_the_board_knows_what_is_watched_and_what_is_not(settings: Settings, start_api: Callable[..., Api],
                                                          tmp_path: Path) -> None:
    settings = settings.model_copy(update={"data_dir": tmp_path / "data"})
    topics = settings.topics
    col = Collector(settings.mqtt_url, topics.all_watch, topics.all_alert_events)
    pub = Publisher(settings.mqtt_url)
    api = start_api()
    try:
        with api.client("operator") as c:
            # no ingestor has ever spoken: nothing is watched
            watch = {s["id"]: s["watch"] for s in c.get("/scenarios").json()["data"]}
            assert {w["state"] for w in watch.values()} == {"no_ingest"} and not any(w["watched"] for w in watch.values())
            with ingestor_in_process(settings, client_id=f"ing-{topics.prefix.replace('/', '-')}", watch_s=0.5,
                                     batch_ms=20) as ing:
                for f in frames_for("mf01", "r01", 5):
                    pub.send(topics, [f])
                wait_until(lambda: _watch(col, topics).get("mf01", {}).get("state") == "watched", 10, "mf01 watched")
                got = _watch(col, topics)
                assert len(got) == 31 and got["hf01"]["state"] == "no_data" and not got["hf01"]["watched"]
                wait_until(lambda: c.get("/scenarios/mf01").json()["watch"]["watched"], 10, "the API to see it")
                assert c.get("/scenarios/hf01").json()["watch"]["state"] == "no_data"

                # the detectors fail on mf01's frames: stored, not checked, so not watched, and an alarm says so
                loop, suite = ing.loop, ing.suite  # type: ignore[attr-defined]  # the helper yields an untyped handle
                real = suite.process

                def broken(frames, **kw):
                    raise RuntimeError("a detector fault")

                loop.call_soon_threadsafe(setattr, suite, "process", broken)
                for f in frames_for("mf01", "r01", 5, start_seq=5):
                    pub.send(topics, [f])
                wait_until(lambda: _watch(col, topics)["mf01"]["state"] == "not_detected", 10, "mf01 not checked")
                alarm = [json.loads(p) for t, p, _r, _a in col.take() if topics.parse_alert(t) and p
                         and json.loads(p).get("detector") == "not_watched"]
                assert alarm and alarm[0]["kind"] == "system" and alarm[0]["severity"] == "alarm"
                assert alarm[0]["scenario_id"] == "mf01" and "not checked by the detectors" in alarm[0]["message"]
                loop.call_soon_threadsafe(setattr, suite, "process", real)
                for f in frames_for("mf01", "r01", 5, start_seq=10):
                    pub.send(topics, [f])
                wait_until(lambda: _watch(col, topics)["mf01"]["state"] == "watched", 10, "mf01 watched again")
                wait_until(lambda: any(json.loads(p).get("detector") == "not_watched" and json.loads(p)["state"] ==
                                       "cleared" for t, p, _r, _a in col.take() if topics.parse_alert(t) and p), 10,
                           "the system alarm to clear")
                # the ingestor's stats keep what it skipped
                assert getattr(ing, "counters").skipped()["detector_error"] == 5  # noqa: B009 - the helper yields an untyped handle
            # the ingestor is gone: within three of its refreshes the API says so for every place
            t0 = time.monotonic()
            wait_until(lambda: c.get("/scenarios/mf01").json()["watch"]["state"] == "no_ingest", 10, "no_ingest")
            assert time.monotonic() - t0 < 5
    finally:
        col.close()
        pub.close()
