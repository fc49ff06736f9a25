"""What the deployment's security costs: MQTT over TLS against plain MQTT, on the shipped broker
configuration (deploy/mosquitto.conf, the ACL, a password file, the TLS listener of
deploy/mosquitto-tls.conf with certificates from deploy/make-certs.sh).

Figures (one JSON line each, medians of ``--runs`` runs, plain and TLS alternating):

- ``mqtt_login_ms``: connect + CONNACK for one account (PBKDF2-SHA512 password check included);
- ``mqtt_qos1_publish_rate``: a robot account publishing ``--messages`` QoS 1 telemetry frames
  (one JSON frame each, as the simulator sends them) as fast as the broker acknowledges them,
  with an ingest account subscribed (so the ACL is checked on the way in and the way out);
- ``tls_over_plain``: the TLS figure divided by the plain one, for each.

    python bench/broker_security.py [--runs 5] [--messages 5000]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import paho.mqtt.client as paho

from minewatch.mqtt import paho_client
from minewatch.services import free_port
from minewatch.settings import MqttTarget
from minewatch.topics import Topics
from tests.deploy.conftest import deploy_tls_snippet, start_deploy_broker
from tests.deploy.tls import make_certs

FRAME = json.dumps({"robot_id": "r01", "scenario_id": "mf01", "seq": 1, "ts": 1795852800000000000, "pos_m": 118.5,
                    "battery": 76.5, "link": {"latency_ms": 14.2, "rssi_dbm": -78.0, "loss": 0.0},
                    "readings": {"ch4_t0": 0.41, "ch4_t1": 0.38, "ch4_t2": 0.33, "co": 3.0, "o2": 20.7, "t": 23.4,
                                 "ws": 1.8}}).encode()


def _connect(url: str, ca: Path | None) -> tuple[paho.Client, float]:
    target = MqttTarget(url)
    client = paho_client(target, ca=ca)
    done = threading.Event()
    client.on_connect = lambda *a: done.set()
    t0 = time.perf_counter()
    client.connect(target.host, target.port)
    client.loop_start()
    if not done.wait(10):
        raise TimeoutError(url)
    return client, (time.perf_counter() - t0) * 1000


def _publish_rate(url: str, sub_url: str, ca: Path | None, n: int) -> float:
    sub, _ = _connect(sub_url, ca)
    got = threading.Event()
    count = [0]

    def on_message(*a: object) -> None:
        count[0] += 1
        if count[0] == n:
            got.set()

    sub.on_message = on_message
    sub.subscribe(Topics().all_telemetry, qos=1)
    time.sleep(0.2)
    pub, _ = _connect(url, ca)
    acked = threading.Event()
    acks = [0]

    def on_publish(*a: object) -> None:
        acks[0] += 1
        if acks[0] == n:
            acked.set()

    pub.on_publish = on_publish
    topic = Topics().telemetry("mf01", "r01")
    t0 = time.perf_counter()
    for _ in range(n):
        pub.publish(topic, FRAME, qos=1)
    if not (acked.wait(120) and got.wait(120)):
        raise TimeoutError("messages not acknowledged or not delivered")
    rate = n / (time.perf_counter() - t0)
    for c in (pub, sub):
        c.disconnect()
        c.loop_stop()
    return rate


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--messages", type=int, default=5000)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        make_certs(root / "secrets" / "tls")
        tls_port, tls_service_port = free_port(), free_port()
        b = start_deploy_broker(root, {"tls.conf": deploy_tls_snippet(root / "secrets", tls_port, tls_service_port)})
        ca = root / "secrets" / "tls" / "ca.crt"
        try:
            results: dict[str, dict[str, list[float]]] = {"plain": {"login": [], "rate": []}, "tls": {"login": [], "rate": []}}
            for _ in range(args.runs):
                for transport in ("plain", "tls"):
                    tls = transport == "tls"
                    port = tls_port if tls else b.broker.port
                    service_port = tls_service_port if tls else b.service_port
                    cafile = ca if tls else None
                    client, ms = _connect(b.auth.url("r01", port=port, tls=tls), cafile)
                    client.disconnect()
                    client.loop_stop()
                    results[transport]["login"].append(ms)
                    results[transport]["rate"].append(_publish_rate(b.auth.url("r01", port=port, tls=tls),
                                                                    b.auth.url("ingest", port=service_port, tls=tls), cafile,
                                                                    args.messages))
        finally:
            b.broker.stop()
    cond = {"runs": args.runs, "messages": args.messages, "broker": "mosquitto 2.0.11, deploy/mosquitto.conf + ACL",
            "client": "paho-mqtt 2, MQTT 5, loopback"}
    med = {t: {k: statistics.median(v) for k, v in r.items()} for t, r in results.items()}
    for t in ("plain", "tls"):
        print(json.dumps({"name": "mqtt_login_ms", "value": round(med[t]["login"], 2), "unit": "ms", "transport": t, **cond}))
        print(json.dumps({"name": "mqtt_qos1_publish_rate", "value": round(med[t]["rate"]), "unit": "msg/s",
                          "transport": t, **cond}))
    for k, name in (("login", "mqtt_login_ms"), ("rate", "mqtt_qos1_publish_rate")):
        print(json.dumps({"name": "tls_over_plain", "value": round(med["tls"][k] / med["plain"][k], 3), "unit": "ratio",
                          "of": name, **cond}))


if __name__ == "__main__":
    main()
