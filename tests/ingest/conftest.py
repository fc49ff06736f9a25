"""Fixtures of the ingest tests."""

from __future__ import annotations


from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

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

