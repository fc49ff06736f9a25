"""MQTT over TLS with the shipped listener (deploy/mosquitto-tls.conf) and deploy/make-certs.sh."""

from __future__ import annotations

import random
import ssl
from pathlib import Path

import pytest

from minewatch.topics import Topics

from .conftest import DeployBroker
from .probe import Session, login
from .tls import make_certs

pytestmark = pytest.mark.integration
NOT_AUTHORIZED = 135


def _url(b: DeployBroker, port: int, user: str) -> str:
    """``user``'s URL on its own TLS listener: ``port`` (public) or the service one."""
    return b.auth.url(user, port=b.tls_service_port if b.auth[user].service else port, tls=True)


def test_robot_telemetry_over_tls_reaches_the_ingestor(tls_broker: tuple[DeployBroker, int]) -> None:
    b, port = tls_broker
    ca = b.auth.directory / "tls" / "ca.crt"
    topic = Topics().telemetry("mf01", "r01")
    with Session(_url(b, port, "ingest"), ca=ca) as ingest, Session(_url(b, port, "r01"), ca=ca) as robot:
        assert ingest.accepted and robot.accepted
        ingest.subscribe(Topics().all_telemetry)
        assert robot.publish(topic, b'{"robot_id": "r01"}') == 0
        assert ingest.wait_for(topic).payload == b'{"robot_id": "r01"}'


def test_the_ingestors_consumer_over_tls(tls_broker: tuple[DeployBroker, int]) -> None:
    """The ingestor's consumer (ingest.mqttrx on asyncio streams) over TLS: the bytes come out of
    TLS records of up to 16 kB, read here 5 bytes at a time, so records and packets split
    everywhere; every message must still arrive whole and in order."""
    import asyncio

    from ingest.consumer import Consumer
    from minewatch.settings import Settings

    b, port = tls_broker
    ca = b.auth.directory / "tls" / "ca.crt"
    topic = Topics().telemetry("mf01", "r01")
    rng = random.Random(3)
    payloads = [rng.randbytes(n) for n in (1, 100, 16_000, 16_500, 40_000, 300_000,
                                           *[rng.randrange(1, 5000) for _ in range(300)])]
    got: list[bytes] = []

    async def main() -> None:
        consumer = Consumer(Settings(mqtt_url=_url(b, port, "ingest"), mqtt_ca=ca), "ingest-tls-test",
                            [(Topics().all_telemetry, 1)], read_size=5)
        await consumer.start(20)
        with Session(_url(b, port, "r01"), ca=ca) as robot:
            assert robot.accepted
            for p in payloads:
                robot.client.publish(topic, p, qos=1)
            loop = asyncio.get_running_loop()
            deadline = loop.time() + 30
            while len(got) < len(payloads) and loop.time() < deadline:
                await consumer.wait(0.2)
                taken = list(consumer.inbox)
                consumer.inbox.clear()
                got.extend(m.payload for m in taken)
                consumer.ack(taken)
        await consumer.close(5)

    asyncio.run(main())
    assert got == payloads


def test_tls_listener_still_demands_an_account(tls_broker: tuple[DeployBroker, int]) -> None:
    b, port = tls_broker
    ca = b.auth.directory / "tls" / "ca.crt"
    assert login(f"mqtts://127.0.0.1:{port}", ca=ca) == NOT_AUTHORIZED
    assert login(f"mqtts://r01:wrong@127.0.0.1:{port}", ca=ca) == NOT_AUTHORIZED


def test_only_the_deployments_ca_is_trusted(tls_broker: tuple[DeployBroker, int], tmp_path: Path) -> None:
    b, port = tls_broker
    ca = b.auth.directory / "tls" / "ca.crt"
    with Session(_url(b, port, "r01").replace("127.0.0.1", "localhost"), ca=ca) as by_name:
        assert by_name.accepted  # the certificate carries localhost as well as 127.0.0.1
    with pytest.raises(ssl.SSLCertVerificationError, match="certificate verify failed"):
        Session(_url(b, port, "r01"))  # the system's CAs only
    stranger = make_certs(tmp_path / "other")  # another private CA
    with pytest.raises(ssl.SSLCertVerificationError, match="certificate verify failed"):
        Session(_url(b, port, "r01"), ca=stranger.ca)


def test_plain_mqtt_to_the_tls_port_gets_no_session(tls_broker: tuple[DeployBroker, int]) -> None:
    b, port = tls_broker
    with pytest.raises((TimeoutError, OSError)):
        Session(b.auth.url("r01", port=port), timeout=1.0)
