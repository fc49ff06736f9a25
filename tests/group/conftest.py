"""Fixtures of the group tests: real nats-server processes (one, or a cluster of three)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from minewatch.services import NatsServer, nats_cluster

from tests.group.helpers import Js, WorkerProcess
from tests.ingest.helpers import process_starter


@pytest.fixture
def nats_server(tmp_path: Path) -> Iterator[NatsServer]:
    """A JetStream server of the test's own."""
    with NatsServer(tmp_path / "nats") as server:
        yield server


@pytest.fixture
def nats_nodes(tmp_path: Path) -> Iterator[list[NatsServer]]:
    """A three-node JetStream cluster of the test's own."""
    nodes = nats_cluster(tmp_path / "cluster")
    for n in nodes:
        n.start()
    yield nodes
    for n in nodes:
        n.stop()


@pytest.fixture
def worker_process(tmp_path: Path) -> Iterator[Callable[..., WorkerProcess]]:
    """Start ``minewatch group worker`` processes; any still running at the end are killed."""
    start, kill_all = process_starter(tmp_path, WorkerProcess)
    yield start
    kill_all()


@pytest.fixture
def js_client() -> Iterator[Callable[..., Js]]:
    """Connect test clients to NATS (``js_client(urls)``); closed at the end, failed test or not."""
    clients: list[Js] = []

    def connect(urls: list[str]) -> Js:
        c = Js(urls)
        clients.append(c)
        return c

    yield connect
    for c in clients:
        c.close()
