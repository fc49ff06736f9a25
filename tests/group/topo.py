"""Helpers of the group tests: a mine's leaf node, the forwarder as a process, stream readers."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from pathlib import Path

import nats
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy

from group.servers import Centre, LeafNode
from group.streams import ensure_group_stream, ensure_mine_stream
from tests.ingest.helpers import IngestProcess, minewatch_exe, wait_until

__all__ = ["Mine", "setup_streams", "ForwardProcess", "read_stream", "stream_count", "wait_until"]


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


async def setup_streams(centre: Centre, mine: Mine, timeout: float = 30.0) -> None:
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


class ForwardProcess(IngestProcess):
    """``minewatch group forward`` as a real process (for SIGKILL and restart)."""

    def __init__(self, log_path: Path, *args: str) -> None:
        super().__init__(log_path, env={"MINEWATCH_ENV_FILE": ""})
        self.argv = [*minewatch_exe(), "group", "forward", *args]

    def start(self) -> ForwardProcess:
        super().start()
        return self


async def _read(urls: list[str], stream: str, subject: str, domain: str | None) -> list[tuple[str, bytes]]:
    nc = await nats.connect(urls, connect_timeout=5)
    try:
        js = nc.jetstream(domain=domain, timeout=10)
        info = await js.stream_info(stream)
        total = info.state.messages
        sub = await js.pull_subscribe(subject, stream=stream, config=ConsumerConfig(
            deliver_policy=DeliverPolicy.ALL, ack_policy=AckPolicy.NONE, inactive_threshold=30.0))
        out: list[tuple[str, bytes]] = []
        seen = 0
        while seen < total:
            try:
                msgs = await sub.fetch(1000, timeout=2)
            except nats.errors.TimeoutError:
                break
            for m in msgs:
                seen = max(seen, m.metadata.sequence.stream)
                out.append((m.subject, m.data))
        await sub.unsubscribe()
        return out
    finally:
        await nc.close()


def read_stream(urls: list[str] | str, stream: str, subject: str = ">", domain: str | None = None,
                ) -> list[tuple[str, bytes]]:
    """Every message of ``stream`` on ``subject``, in stream order: (subject, payload)."""
    return asyncio.run(_read([urls] if isinstance(urls, str) else urls, stream, subject, domain))


async def _count(urls: list[str], stream: str, domain: str | None) -> int:
    nc = await nats.connect(urls, connect_timeout=5)
    try:
        return (await nc.jetstream(domain=domain, timeout=5).stream_info(stream)).state.messages
    finally:
        await nc.close()


def stream_count(urls: list[str] | str, stream: str, domain: str | None = None) -> int:
    """How many messages ``stream`` holds (-1 when it cannot be asked just now)."""
    try:
        return asyncio.run(_count([urls] if isinstance(urls, str) else urls, stream, domain))
    except (nats.errors.Error, OSError, TimeoutError):
        return -1
