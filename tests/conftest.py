"""Fixtures that start real mosquitto and influxd processes on free loopback ports."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from minewatch.influx import SyncInflux
from minewatch.services import Influxd, Mosquitto

OUTPUT = Path(os.environ.get("MINEWATCH_TEST_OUTPUT", Path(__file__).resolve().parent.parent / "test-output"))


@pytest.fixture(scope="session")
def test_output() -> Path:
    OUTPUT.mkdir(parents=True, exist_ok=True)
    return OUTPUT


@pytest.fixture(scope="session")
def mosquitto(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Mosquitto]:
    """One broker for the session; tests keep apart by a unique topic prefix each."""
    broker = Mosquitto(tmp_path_factory.mktemp("mosquitto"))
    broker.start()
    yield broker
    broker.stop()


@pytest.fixture(scope="session")
def influxd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Influxd]:
    """One InfluxDB for the session; tests keep apart by a unique database each."""
    server = Influxd(tmp_path_factory.mktemp("influxd"))
    server.start()
    yield server
    server.stop()


@pytest.fixture
def fresh_broker(tmp_path: Path) -> Iterator[Mosquitto]:
    """A broker of the test's own, for tests that stop or restart it."""
    broker = Mosquitto(tmp_path / "mosquitto")
    broker.start()
    yield broker
    broker.stop()


@pytest.fixture
def fresh_influxd(tmp_path: Path) -> Iterator[Influxd]:
    """An InfluxDB of the test's own, for tests that stop or restart it."""
    server = Influxd(tmp_path / "influxd")
    server.start()
    yield server
    server.stop()


@pytest.fixture
def unique() -> str:
    return uuid.uuid4().hex[:10]


@pytest.fixture
def prefix(unique: str) -> str:
    return f"t{unique}/v1"


@pytest.fixture
def influx_db(influxd: Influxd, unique: str) -> Iterator[SyncInflux]:
    client = SyncInflux(influxd.url, f"db_{unique}")
    client.ensure_db()
    yield client
    client.query(f'DROP DATABASE "{client.db}"', db="", post=True)
    client.close()
