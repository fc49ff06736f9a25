"""Helpers of the group tests: a GROUP stream, frames published onto it as the forwarders do, a
worker as a real process, and what reached InfluxDB and the alert broker."""

from __future__ import annotations

import asyncio
import hashlib
import threading
from collections.abc import Coroutine, Sequence
from typing import Any, TypeVar

from minewatch.group import group_partition, mine_prefix, telemetry_subject
from minewatch.influx import SyncInflux
from minewatch.topics import Topics
from minewatch.wire import Frame, encode_frame

from tests.ingest.helpers import Collector, IngestProcess, alert_events_of

T = TypeVar("T")
DUPLICATE_WINDOW_S = 600.0


class Js:
    """A NATS connection on an event loop of its own thread, for tests that are plain functions."""

    def __init__(self, urls: Sequence[str]) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        self.nc: Any = self.run(self._connect(list(urls)))
        self.js: Any = self.nc.jetstream()

    async def _connect(self, urls: list[str]) -> Any:
        import nats

        async def quiet(exc: Exception) -> None:
            # the client's default logs each failed reconnection with a traceback; formatting one on
            # this thread while pytest parses a module on its own trips CPython 3.11's parser state
            pass

        return await nats.connect(servers=urls, max_reconnect_attempts=-1, reconnect_time_wait=0.2, error_cb=quiet)

    def run(self, coro: Coroutine[Any, Any, T], timeout: float = 60.0) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def make_group_stream(self, replicas: int = 1, name: str = "GROUP") -> None:
        """The centre's stream, with the subjects of its own here (in a deployment it sources the
        mines' streams): file storage, a 10-minute duplicate window."""
        from nats.js.api import StorageType, StreamConfig

        self.run(self.js.add_stream(StreamConfig(name=name, subjects=["mw.>"], storage=StorageType.FILE,
                                                 num_replicas=replicas, duplicate_window=DUPLICATE_WINDOW_S)))

    def publish_frames(self, mine: str, frames: Sequence[Frame], partitions: int) -> None:
        """One message a frame, each PubAck awaited, ``Nats-Msg-Id`` as the forwarder sets it."""

        async def go() -> None:
            for f in frames:
                subject = telemetry_subject(mine, f.scenario_id, f.robot_id, partitions)
                payload = encode_frame(f)
                topic = Topics(mine_prefix(mine)).telemetry(f.scenario_id, f.robot_id)
                msg_id = hashlib.sha256(topic.encode() + b"\0" + payload).digest()[:16].hex()
                for attempt in range(100):
                    try:
                        await self.js.publish(subject, payload, headers={"Nats-Msg-Id": msg_id}, timeout=2.0)
                        break
                    except Exception:
                        if attempt == 99:
                            raise
                        await asyncio.sleep(0.2)

        self.run(go(), timeout=300)

    def owners(self, partitions: int, bucket: str = "group-owners") -> dict[int, str]:
        """Who holds each partition's lease now."""

        async def go() -> dict[int, str]:
            from nats.errors import TimeoutError as NatsTimeout
            from nats.js.errors import BucketNotFoundError

            try:
                kv = await self.js.key_value(bucket)
            except BucketNotFoundError:  # no worker has started yet
                return {}
            except NatsTimeout:  # a slow answer (a loaded machine, a cluster electing): asked again
                return {}
            out = {}
            for p in range(partitions):
                try:
                    entry = await kv.get(f"part.{p}")
                except Exception:  # noqa: BLE001 - free
                    continue
                if entry.value:
                    out[p] = entry.value.decode()
            return out

        return self.run(go())

    def ack_pending(self, partitions: int, stream: str = "GROUP") -> int:
        """Messages delivered by the partitions' consumers and not yet acknowledged."""

        async def go() -> int:
            n = 0
            for p in range(partitions):
                try:
                    n += (await self.js.consumer_info(stream, f"part-{p}")).num_ack_pending
                except Exception:  # noqa: BLE001 - no consumer yet: nothing delivered
                    continue
            return n

        return self.run(go())

    def stream_leader(self, name: str = "GROUP") -> str:
        info = self.run(self.js.stream_info(name))
        return info.cluster.leader

    def close(self) -> None:
        try:
            self.run(self.nc.close(), timeout=5)
        finally:
            self.loop.call_soon_threadsafe(self.loop.stop)
            self.thread.join(5)


class WorkerProcess(IngestProcess):
    """``minewatch group worker`` as a real process."""

    command = ("group", "worker")


def stored_keys(influx_url: str, mine: str) -> list[tuple[str, int, int]]:
    """Every stored telemetry point of a mine as (robot, boot, seq), repeats and all."""
    db = SyncInflux(influx_url, f"minewatch_{mine}")
    try:
        rows = db.query('SELECT "seq", "boot" FROM "telemetry" GROUP BY "robot"')
    except Exception:  # noqa: BLE001 - no database yet
        return []
    finally:
        db.close()
    return [(r["robot"], int(r.get("boot") or 0), int(r["seq"])) for r in rows]


def late_points(influx_url: str, mine: str) -> int:
    """How many of a mine's stored telemetry points are marked late."""
    db = SyncInflux(influx_url, f"minewatch_{mine}")
    try:
        rows = db.query('SELECT count("seq") FROM "telemetry" WHERE "late" = true')
    finally:
        db.close()
    return int(rows[0]["count"]) if rows else 0


def alert_events(col: Collector, base: str, mine: str) -> list[dict[str, Any]]:
    """The alert events (not the retained state) published for ``mine`` at the centre."""
    return alert_events_of(col, Topics(mine_prefix(mine, base)))


def partitions_of(mine: str, scenarios: Sequence[str], partitions: int) -> set[int]:
    return {group_partition(mine, s, partitions) for s in scenarios}
