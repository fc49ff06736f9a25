"""Fixtures of the ingest tests."""

from __future__ import annotations

import os

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from minewatch.services import Mosquitto
from tests.ingest.helpers import IngestProcess


@pytest.fixture
def ingest_process(tmp_path: Path) -> Iterator[Callable[..., IngestProcess]]:
    """Start ``minewatch ingest`` subprocesses; any still running at the end are killed."""
    procs: list[IngestProcess] = []

    def start(*args: str, name: str = "ingest") -> IngestProcess:
        p = IngestProcess(tmp_path / f"{name}.log", *args).start()
        procs.append(p)
        return p

    yield start
    for p in procs:
        if p.alive:
            p.kill()


@pytest.fixture
def durable_broker(tmp_path: Path) -> Iterator[Mosquitto]:
    """A broker of the test's own whose persistence file really is written.

    Started as root, mosquitto drops to the ``mosquitto`` user and then cannot write its
    database into a root-owned temporary directory; ``user root`` keeps it able to.
    """
    broker = Mosquitto(tmp_path / "mosquitto", extra="user root" if os.geteuid() == 0 else "")
    broker.start()
    yield broker
    broker.stop()
