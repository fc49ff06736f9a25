"""Fixtures of the ingest tests."""

from __future__ import annotations


from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.ingest.helpers import IngestProcess, process_starter


@pytest.fixture
def ingest_process(tmp_path: Path) -> Iterator[Callable[..., IngestProcess]]:
    """Start ``minewatch ingest`` subprocesses; any still running at the end are killed."""
    start, kill_all = process_starter(tmp_path, IngestProcess)
    yield start
    kill_all()
