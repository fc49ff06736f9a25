"""Fixtures of the operational-event tests: the session's broker and InfluxDB, a database and topic
prefix of the test's own, ``minewatch ingest`` processes, a publisher and an observer."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from minewatch.influx import SyncInflux
from minewatch.services import Influxd, Mosquitto
from minewatch.topics import Topics
from tests.ingest.helpers import IngestProcess, Publisher
from tests.ops.harness import Observer, ingest_args, start_ingest


@dataclass
class Stack:
    broker: Mosquitto
    influx: Influxd
    db: SyncInflux
    topics: Topics
    pub: Publisher
    obs: Observer
    data: Path
    start: Callable[..., IngestProcess]

    def ingest(self, *extra: str) -> IngestProcess:
        return self.start(*ingest_args(self.broker.url, self.influx.url, self.db.db, self.topics.prefix, self.data,
                                       *extra))


@pytest.fixture
def processes(tmp_path: Path) -> Iterator[Callable[..., IngestProcess]]:
    procs: list[IngestProcess] = []

    def start(*args: str) -> IngestProcess:
        p = IngestProcess(tmp_path / f"ingest-{len(procs)}.log", *args).start()
        procs.append(p)
        return start_ingest(p)

    yield start
    for p in procs:
        if p.alive:
            p.kill()


def make_stack(broker: Mosquitto, influxd: Influxd, db: SyncInflux, prefix: str, tmp_path: Path,
               processes: Callable[..., IngestProcess]) -> Iterator[Stack]:
    topics = Topics(prefix)
    pub = Publisher(broker.url)
    obs = Observer.start(broker.url, topics)
    try:
        yield Stack(broker, influxd, db, topics, pub, obs, tmp_path, processes)
    finally:
        obs.close()
        pub.close()


@pytest.fixture
def stack(mosquitto: Mosquitto, influxd: Influxd, influx_db: SyncInflux, prefix: str, tmp_path: Path,
          processes: Callable[..., IngestProcess]) -> Iterator[Stack]:
    yield from make_stack(mosquitto, influxd, influx_db, prefix, tmp_path, processes)


@pytest.fixture
def own_broker_stack(fresh_broker: Mosquitto, influxd: Influxd, influx_db: SyncInflux, prefix: str, tmp_path: Path,
                     processes: Callable[..., IngestProcess]) -> Iterator[Stack]:
    """A stack whose broker the test may stop and start."""
    yield from make_stack(fresh_broker, influxd, influx_db, prefix, tmp_path, processes)
