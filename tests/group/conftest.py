"""Fixtures of the group tests: real nats-server processes on free loopback ports, rendered by the
same code ``minewatch group up`` runs (``group.servers``); one set per test module."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator
from dataclasses import dataclass

import nats
import pytest

from group.servers import Centre, LeafNode
from group.streams import ensure_group_stream, ensure_mine_stream
from minewatch.services import NatsServer
from tests.group.helpers import ForwardProcess


@pytest.fixture(scope="module")
def nats_single(tmp_path_factory: pytest.TempPathFactory) -> Iterator[NatsServer]:
    """One JetStream server, alone."""
    server = NatsServer(tmp_path_factory.mktemp("nats"))
    server.start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def centre(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Centre]:
    """The centre's three-node cluster (domain ``centre``)."""
    c = Centre(tmp_path_factory.mktemp("centre"))
    c.start()
    yield c
    c.stop()


@dataclass
class Mine:
    """A mine's leaf node; :meth:`cut` restarts it without its link to the centre, :meth:`restore`
    with it (its stream ``MINE`` stays)."""

    id: str
    leaf: LeafNode

    def cut(self) -> None:
        self.leaf.cut()

    def restore(self) -> None:
        self.leaf.join()


async def _streams(centre: Centre, mine: Mine, timeout: float = 30.0) -> None:
    nc = await nats.connect(mine.leaf.url, connect_timeout=5)
    try:
        await ensure_mine_stream(nc.jetstream(timeout=5), mine.id)
    finally:
        await nc.close()
    nc = await nats.connect(centre.urls, connect_timeout=5)
    try:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:  # the cluster's meta leader is elected within a few seconds of its start
            try:
                await ensure_group_stream(nc.jetstream(timeout=5), [mine.id])
                return
            except (nats.errors.Error, TimeoutError):
                if loop.time() > deadline:
                    raise
                await asyncio.sleep(0.3)
    finally:
        await nc.close()


@pytest.fixture(scope="module")
def mine(centre: Centre, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Mine]:
    """A leaf node with its own domain and stream ``MINE``, sourced into the centre's ``GROUP``."""
    mine_id = f"m{uuid.uuid4().hex[:6]}"
    m = Mine(mine_id, LeafNode(mine_id, tmp_path_factory.mktemp(mine_id), centre.leaf_urls))
    m.leaf.start()
    asyncio.run(_streams(centre, m))
    yield m
    m.leaf.stop()


@pytest.fixture
def forwarders() -> Iterator[list[ForwardProcess]]:
    """Forwarder processes a test starts; any still running at its end are killed."""
    procs: list[ForwardProcess] = []
    yield procs
    for p in procs:
        if p.alive:
            p.kill()


@pytest.fixture
def unique_prefix() -> str:
    return f"t{uuid.uuid4().hex[:10]}/v1"

