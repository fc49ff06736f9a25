"""The API over HTTPS (MINEWATCH_API_TLS_CERT / _KEY), reaching the broker over MQTT+TLS, with
certificates from deploy/make-certs.sh; the compose healthcheck for it passes."""

from __future__ import annotations

import os
import ssl
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from minewatch.influx import SyncInflux
from minewatch.services import Influxd, free_port
from minewatch.stack import healthchecks

from .conftest import DeployBroker

pytestmark = pytest.mark.integration


def test_api_serves_https_and_reads_alerts_over_mqtts(tls_broker: tuple[DeployBroker, int], influxd: Influxd,
                                                      influx_db: SyncInflux, tmp_path: Path) -> None:
    b, _ = tls_broker
    tls = b.auth.directory / "tls"
    port = free_port()
    env = {**os.environ, "MINEWATCH_MQTT_URL": b.auth.url("api", port=b.tls_service_port, tls=True),
           "MINEWATCH_MQTT_CA": str(tls / "ca.crt"), "MINEWATCH_INFLUX_URL": influxd.url,
           "MINEWATCH_INFLUX_DB": influx_db.db, "MINEWATCH_API_KEYS": "tls-test-key:operator",
           "MINEWATCH_API_HOST": "127.0.0.1", "MINEWATCH_API_PORT": str(port),
           "MINEWATCH_API_TLS_CERT": str(tls / "server.crt"), "MINEWATCH_API_TLS_KEY": str(tls / "server.key"),
           "MINEWATCH_DATA_DIR": str(tmp_path)}
    log = tmp_path / "api.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen([sys.executable, "-m", "minewatch", "api"], env=env, stdout=out,
                                stderr=subprocess.STDOUT, start_new_session=True)
    base = f"https://127.0.0.1:{port}"
    try:
        with httpx.Client(verify=ssl.create_default_context(cafile=str(tls / "ca.crt")), timeout=5) as client:
            health = None
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline and proc.poll() is None:
                try:
                    health = client.get(f"{base}/healthz").json()
                    if health["mqtt"]:
                        break
                except httpx.TransportError:
                    pass
                time.sleep(0.3)
            assert health and health["mqtt"], f"{health}\n{log.read_text()[-2000:]}"  # logged in over mqtts
            assert client.get(f"{base}/scenarios").status_code == 401
            r = client.get(f"{base}/scenarios", headers={"X-API-Key": "tls-test-key"})
            assert r.status_code == 200 and len(r.json()["data"]) == 31
        with pytest.raises(httpx.ConnectError, match="CERTIFICATE_VERIFY_FAILED"):
            httpx.get(f"{base}/healthz", timeout=5)  # the system's CAs do not know this one
        with pytest.raises(httpx.HTTPError):
            httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=5)  # no plain HTTP on the port
        # The compose healthcheck of docker-compose.tls.yml, with the CA the env files name.
        check = healthchecks(api_port=port, tls=True)["api"]
        done = subprocess.run([sys.executable, *check[1:]], env={**env, "MINEWATCH_API_TLS_CA": str(tls / "ca.crt")},
                              capture_output=True, text=True, timeout=30)
        assert done.returncode == 0, done.stderr
    finally:
        proc.terminate()
        proc.wait(30)
