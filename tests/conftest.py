"""Fixtures that start real mosquitto, influxd and nats-server processes on free loopback ports."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from minewatch.influx import SyncInflux
from minewatch.services import Influxd, Mosquitto, NatsServer

if TYPE_CHECKING:
    from group.servers import Centre
    from tests.group.topo import ForwardProcess, Mine

OUTPUT = Path(os.environ.get("MINEWATCH_TEST_OUTPUT", Path(__file__).resolve().parent.parent / "test-output"))


@pytest.fixture(scope="session")
def test_output() -> Path:
    OUTPUT.mkdir(parents=True, exist_ok=True)
    return OUTPUT


@pytest.fixture(scope="session")
def mosquitto(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Mosquitto]:
    """One broker for the session; tests keep apart by a unique topic prefix each."""
    with Mosquitto(tmp_path_factory.mktemp("mosquitto")) as broker:
        yield broker


@pytest.fixture(scope="session")
def influxd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Influxd]:
    """One InfluxDB for the session; tests keep apart by a unique database each."""
    with Influxd(tmp_path_factory.mktemp("influxd")) as server:
        yield server


@pytest.fixture
def fresh_broker(tmp_path: Path) -> Iterator[Mosquitto]:
    """A broker of the test's own, for tests that stop or restart it."""
    with Mosquitto(tmp_path / "mosquitto") as broker:
        yield broker


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


# The group deployment's servers (tests/group), rendered by the same code `minewatch group up` runs
# (group.servers); one set per test module.
@pytest.fixture(scope="module")
def nats_single(tmp_path_factory: pytest.TempPathFactory) -> Iterator[NatsServer]:
    """One JetStream server, alone."""
    with NatsServer(tmp_path_factory.mktemp("nats")) as server:
        yield server


@pytest.fixture(scope="module")
def centre(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Centre]:
    """The group centre's three-node cluster (JetStream domain ``centre``)."""
    from group.servers import Centre

    with Centre(tmp_path_factory.mktemp("centre")) as c:
        yield c


@pytest.fixture(scope="module")
def mine(centre: Centre, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Mine]:
    """A mine's leaf node with its own domain and stream ``MINE``, sourced into the centre's ``GROUP``."""
    import asyncio

    from group.servers import LeafNode
    from tests.group.topo import Mine, setup_streams

    mine_id = f"m{uuid.uuid4().hex[:6]}"
    m = Mine(mine_id, LeafNode(mine_id, tmp_path_factory.mktemp(mine_id), centre.leaf_urls))
    with m.leaf:
        asyncio.run(setup_streams(centre, m))
        yield m


@pytest.fixture
def forwarders() -> Iterator[list[ForwardProcess]]:
    """Forwarder processes a test starts; any still running at its end are killed."""
    procs: list[ForwardProcess] = []
    yield procs
    for p in procs:
        if p.alive:
            p.kill()
