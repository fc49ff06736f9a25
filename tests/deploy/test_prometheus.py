"""deploy/prometheus: the scrape configuration and alert rules pass promtool, the rules' unit tests
pass, and a real Prometheus scrapes a running ingestor with the shipped rules loaded."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from minewatch.influx import SyncInflux
from minewatch.services import Influxd, Mosquitto, free_port
from minewatch.topics import Topics
from tests.ingest.helpers import IngestProcess, Publisher, frames_for, telemetry_count, wait_until

ROOT = Path(__file__).resolve().parents[2]
PROM = ROOT / "deploy" / "prometheus"
PROMTOOL = shutil.which("promtool") or "/usr/bin/promtool"
PROMETHEUS = shutil.which("prometheus") or "/usr/bin/prometheus"
ALERTS = {"MinewatchIngestDown", "MinewatchIngestSpoolFilling", "MinewatchIngestDeadLetters",
          "MinewatchIngestFramesSkipped", "MinewatchInfluxDown", "MinewatchIngestBrokerLost"}


def promtool(*args: str) -> str:
    r = subprocess.run([PROMTOOL, *args], capture_output=True, text=True, timeout=60, cwd=PROM)
    assert r.returncode == 0, r.stdout + r.stderr
    return r.stdout + r.stderr


def test_promtool_checks_the_config_and_the_rules() -> None:
    assert "SUCCESS" in promtool("check", "config", "prometheus.yml")
    assert "SUCCESS" in promtool("check", "rules", "alerts.yml")


def test_the_rules_unit_tests_pass() -> None:
    assert "SUCCESS" in promtool("test", "rules", "alerts_test.yml")


def test_the_rules_cover_the_ingestors_failures_and_name_metrics_that_exist() -> None:
    rules = [r for g in yaml.safe_load((PROM / "alerts.yml").read_text())["groups"] for r in g["rules"]]
    assert ALERTS <= {r["alert"] for r in rules}
    config = yaml.safe_load((PROM / "prometheus.yml").read_text())
    assert {j["job_name"] for j in config["scrape_configs"]} == {"minewatch-ingest", "minewatch-api"}


@pytest.mark.integration
def test_a_real_prometheus_scrapes_a_running_ingestor(mosquitto: Mosquitto, influxd: Influxd, influx_db: SyncInflux,
                                                      prefix: str, tmp_path: Path) -> None:
    metrics_port, prom_port = free_port(), free_port()
    ingest = IngestProcess(tmp_path / "ingest.log", "--mqtt-url", mosquitto.url, "--influx-url", influxd.url,
                           "--influx-db", influx_db.db, "--topic-prefix", prefix, "--client-id", f"ing-{prefix}",
                           "--spool-dir", str(tmp_path / "spool"), "--metrics-port", str(metrics_port),
                           "--batch-ms", "50").start()
    config = tmp_path / "prometheus.yml"
    shutil.copy(PROM / "alerts.yml", tmp_path / "alerts.yml")
    config.write_text(yaml.safe_dump({
        "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
        "rule_files": ["alerts.yml"],
        "scrape_configs": [{"job_name": "minewatch-ingest",
                            "static_configs": [{"targets": [f"127.0.0.1:{metrics_port}"]}]}]}))
    log = open(tmp_path / "prometheus.log", "wb")
    prom = subprocess.Popen([PROMETHEUS, f"--config.file={config}", f"--storage.tsdb.path={tmp_path / 'tsdb'}",
                             f"--web.listen-address=127.0.0.1:{prom_port}"],
                            stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    log.close()
    api = f"http://127.0.0.1:{prom_port}/api/v1"

    def query(q: str) -> list[dict[str, Any]]:
        try:
            body = httpx.get(f"{api}/query", params={"query": q}, timeout=5).json()
        except httpx.HTTPError:
            return []
        assert body["status"] == "success", body
        return body["data"]["result"]

    pub = Publisher(mosquitto.url)
    try:
        wait_until(lambda: "connected to the broker" in ingest.log(), 30, "ingest to connect")
        pub.send(Topics(prefix), frames_for("mf01", "r01", 20))
        pub.flush()
        wait_until(lambda: telemetry_count(influx_db) == 20, 60, "20 frames stored")

        def target_up() -> bool:
            try:
                targets = httpx.get(f"{api}/targets", timeout=5).json()["data"]["activeTargets"]
            except httpx.HTTPError:
                return False
            return any(t["labels"]["job"] == "minewatch-ingest" and t["health"] == "up" for t in targets)

        wait_until(target_up, 60, "Prometheus to scrape the ingestor")
        wait_until(lambda: bool(query("minewatch_ingest_points_stored_total >= 20")), 30, "points stored in Prometheus")
        (influx,) = query("minewatch_ingest_influx_up")
        assert influx["value"][1] == "1" and influx["metric"]["job"] == "minewatch-ingest"
        assert query("up{job='minewatch-ingest'}")[0]["value"][1] == "1"
        assert not query("{__name__=~'minewatch_ingest_.*_created'}")
        # the shipped rules are loaded and evaluated without error, and none fires on a healthy ingestor
        groups = httpx.get(f"{api}/rules", timeout=5).json()["data"]["groups"]
        loaded = {r["name"]: r for g in groups for r in g["rules"]}
        assert ALERTS <= set(loaded)
        def evaluated() -> bool:
            groups = httpx.get(f"{api}/rules", timeout=5).json()["data"]["groups"]
            return all(not r["lastEvaluation"].startswith("0001") for g in groups for r in g["rules"])

        wait_until(evaluated, 30, "the rules evaluated")
        rules = {r["name"]: r for g in httpx.get(f"{api}/rules", timeout=5).json()["data"]["groups"]
                 for r in g["rules"]}
        assert all(r["health"] in ("ok", "unknown") for r in rules.values()), rules
        assert not [r for r in rules.values() if r["state"] == "firing"], rules
        # every ingestor series the rules name is one the ingestor serves
        text = httpx.get(f"http://127.0.0.1:{metrics_port}/metrics").text
        served = set(re.findall(r"^# TYPE (\S+) \w+$", text, re.M))
        named = set(re.findall(r"minewatch_ingest_\w+", (PROM / "alerts.yml").read_text()))
        assert named and named <= served, named - served
    finally:
        pub.close()
        prom.terminate()
        prom.wait(30)
        assert ingest.terminate() == 0, ingest.log()
