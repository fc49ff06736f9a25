"""A group ingest worker: the mines' frames from the centre's JetStream ``GROUP`` stream into
InfluxDB (a database per mine), the detectors run, alerts out to the centre's alert broker.

The group's frames are split into ``P`` partitions by mine and scenario (:mod:`minewatch.group`);
partition ``p`` is read through the durable pull consumer ``part-<p>`` of the ``GROUP`` stream
(filter ``mw.*.<p>.>``, explicit acks, a bound on unacknowledged messages), by whichever worker
holds its lease.

**Leases** (:class:`Leases`): a NATS key-value bucket ``group-owners`` whose entries live
``lease_ttl_s`` unless renewed. Each worker keeps ``worker.<id>`` alive; holding partition ``p``
is holding the key ``part.<p>``, taken with a create (fails when anyone holds it) and renewed with
an update checked against the revision it last wrote (fails when the key has changed hands or
expired meanwhile), so two workers never both hold one. Every ``renew_s`` a worker renews, counts
the live workers and moves toward its share, ``ceil(P / live workers)``: over it, it releases
partitions; under it, it takes free ones. A lease counts as held only until ``lease_ttl_s`` less
a margin after its last successful renewal, so a worker cut off from NATS stops before anyone
else can take over.

**A unit per (mine, partition)** (:class:`MineUnit`): the existing pipeline of one ingest
process (:class:`ingest.pipeline.Pipeline` with its router, detectors and writer) over one mine's
scenarios of one partition, with that mine's topic prefix (``minewatch/v1/mines/<mine>``) and
database (``minewatch_<mine>``). It is made when the first message of that mine arrives in a
partition the worker holds, warm-started exactly like an ingest process (the active alerts
retained on the alert broker under the mine's prefix, the recent stored readings, the robots'
numbering) before it takes its first message; it is dropped, state and all, the moment the worker
stops holding the partition. Why per (mine, partition) rather than a pipeline per mine with a
partition dimension: a partition moves between workers as a whole, and with it the detectors'
state of exactly its streams; a unit is that state, so taking or losing a partition is making or
dropping units, and nothing else in the worker changes. A unit's detectors are made for its own
scenarios only (about half a millisecond each, against 80 ms for all 31).

The units of one mine write through one client of its database (:class:`SharedWrites`): at most
one request in flight per mine database, what the units give meanwhile going together in the next.

**Acknowledgements** go to JetStream only once a batch is durable (InfluxDB or the unit's disk
spool), exactly as the MQTT path; a unit whose partition is no longer held acknowledges and
publishes nothing more (:class:`ingest.jsconsumer.JsInbox`), and what it held unacknowledged is
handed back to the consumer for the next owner. Redelivered messages are known as repeats by the
warm start's seq restore, so they are stored again (harmless: a point written twice lands once)
but raise no alert twice.

A message's time of receipt is the stream's time of it (when it reached the centre), not when
the worker took it: neither a worker catching up nor a redelivery makes frames late, and a
redelivered frame filling a seq gap is not marked late for that (:func:`ingest.jsconsumer.delivery`).

Operators' acknowledgements (``<base>/mines/<mine>/alerts/ack/<id>``, ``.../incidents/ack/<id>`` on
the centre's alert broker) go to the unit of the partition of the scenario they name, in the
worker holding it, which applies them as an ingest process does.

Robot statuses (``mw.<mine>.status.<robot>``, not partitioned) come to every worker through an
ordered consumer and go to each of its units of that mine, which keep those of their own
scenarios (as a partitioned ingest process does).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import dataclasses
import gzip
import logging
import math
import signal
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from minewatch.catalogue import SCENARIOS
from minewatch.group import GROUP_STREAM, group_partition, mine_prefix, parse_subject, partition_filter
from minewatch.influx import InfluxClient, InfluxError
from minewatch.schema import AlertEvent, AlertTiming, IncidentEvent
from minewatch.settings import Settings
from minewatch.topics import Topics

from ingest.alerts import read_active
from ingest.counters import Counters
from ingest.jsconsumer import AlertLink, JsInbox, ack_route, delivery
from ingest.metrics import Metrics
from ingest.options import IngestOptions
from ingest.partition import Partition
from ingest.pipeline import Pipeline, warm_up
from ingest.router import Router
from ingest.spool import Spool
from ingest.service import _watchdog
from ingest.warmstart import take_over
from ingest.writer import Writer

__all__ = ["GroupWorker", "Leases", "MineShare", "MineUnit", "SharedWrites", "WorkerOptions", "run_worker"]

log = logging.getLogger("minewatch.group.worker")
T = TypeVar("T")


@dataclass(frozen=True)
class MineShare(Partition):
    """One mine's scenarios of group partition ``index`` of ``count``: what a :class:`MineUnit`
    owns (a :class:`Partition` to the router, the warm start and the pipeline)."""

    mine: str = ""

    def owns(self, scenario_id: str | None) -> bool:
        if scenario_id is None:
            return self.index == 0
        return group_partition(self.mine, scenario_id, self.count) == self.index

    @property
    def whole(self) -> bool:
        return False

    def __str__(self) -> str:
        return f"{self.mine}:{self.index}/{self.count}"

    @property
    def id_prefix(self) -> str:
        """The mine: the centre's broker carries every mine's alerts, and two mines' places,
        robots and times may be alike, so their ids start with it."""
        return self.mine

    @property
    def tag(self) -> str:
        return f"{self.mine}-{self.index}of{self.count}"


@dataclass
class WorkerOptions:
    """How one group worker runs (the ``minewatch group worker`` flags)."""

    nats_urls: list[str]
    worker_id: str
    partitions: int = 16
    stream: str = GROUP_STREAM
    bucket: str = "group-owners"
    kv_replicas: int = 3
    lease_ttl_s: float = 10.0
    renew_s: float = 3.0
    fetch_batch: int = 500
    fetch_wait_s: float = 1.0            # a fetch waits this long for its first message
    ack_wait_s: float = 30.0
    max_ack_pending: int = 20_000
    db_prefix: str = "minewatch_"
    spool_dir: Path | None = None        # default <data dir>/spool/group-<worker id>
    ingest: IngestOptions = field(default_factory=IngestOptions)  # the units' pipelines (partition ignored)
    stop_timeout_s: float = 5.0

    def __post_init__(self) -> None:
        if self.partitions < 1:
            raise ValueError(f"partition count must be at least 1, got {self.partitions}")
        if not self.lease_ttl_s > 2 * self.renew_s:
            raise ValueError(f"the lease ({self.lease_ttl_s:g} s) must outlast two renewals ({self.renew_s:g} s each)")
        if not self.nats_urls:
            raise ValueError("no NATS server given")


class Leases:
    """This worker's partition leases in the ``group-owners`` bucket (see the module)."""

    def __init__(self, kv: Any, worker_id: str, partitions: int, ttl_s: float) -> None:
        self.kv = kv
        self.worker_id = worker_id
        self.partitions = partitions
        self.ttl_s = ttl_s
        self.margin_s = min(2.0, ttl_s / 4)
        self.revision: dict[int, int] = {}      # partition -> revision of our last write of its key
        self.valid_until: dict[int, float] = {}  # partition -> monotonic time our hold surely lasts to

    def holds(self, part: int) -> bool:
        return part in self.revision and time.monotonic() < self.valid_until.get(part, 0.0)

    @property
    def held(self) -> list[int]:
        return sorted(self.revision)

    def _held_from(self, part: int, rev: int, asked_at: float) -> None:
        self.revision[part] = rev
        self.valid_until[part] = asked_at + self.ttl_s - self.margin_s

    def forget(self, part: int) -> None:
        self.revision.pop(part, None)
        self.valid_until.pop(part, None)

    async def heartbeat(self) -> None:
        await self.kv.put(f"worker.{self.worker_id}", self.worker_id.encode())

    async def renew(self) -> list[int]:
        """Renew every lease held; the partitions lost (changed hands, expired, or no longer surely
        ours because NATS did not answer in time)."""
        lost = []
        for part in self.held:
            asked = time.monotonic()
            try:
                rev = await self.kv.update(f"part.{part}", self.worker_id.encode(), last=self.revision[part])
            except Exception as exc:  # noqa: BLE001 - a wrong revision, or NATS away
                if _wrong_revision(exc) or not self.holds(part):
                    log.warning("partition %d: lease lost (%s)", part, type(exc).__name__)
                    lost.append(part)
                continue
            self._held_from(part, rev, asked)
        for part in self.held:  # expired while an answer was awaited
            if not self.holds(part) and part not in lost:
                lost.append(part)
        return lost

    async def survey(self) -> tuple[dict[int, str], set[str]]:
        """Each held partition's owner, and the live workers (this one always among them)."""
        owners: dict[int, str] = {}
        for part in range(self.partitions):
            try:
                entry = await self.kv.get(f"part.{part}")
            except Exception as exc:
                if not _not_found(exc):
                    raise
                continue
            if entry.value:
                owners[part] = entry.value.decode()
        live = {self.worker_id}
        try:
            keys = await self.kv.keys()
        except Exception as exc:
            if not _not_found(exc):
                raise
            keys = []
        live |= {k.split(".", 1)[1] for k in keys if k.startswith("worker.")}
        return owners, live

    async def claim(self, part: int) -> bool:
        asked = time.monotonic()
        try:
            rev = await self.kv.create(f"part.{part}", self.worker_id.encode())
        except Exception as exc:
            if _wrong_revision(exc):
                return False
            raise
        self._held_from(part, rev, asked)
        return True

    async def release(self, part: int) -> None:
        rev = self.revision.get(part)
        self.forget(part)
        if rev is None:
            return
        try:
            await self.kv.delete(f"part.{part}", last=rev)
        except Exception as exc:  # noqa: BLE001 - expires by itself
            log.info("partition %d: release not written (%s); it frees when the lease expires", part, exc)

    async def leave(self) -> None:
        for part in self.held:
            await self.release(part)
        with contextlib.suppress(Exception):
            await self.kv.delete(f"worker.{self.worker_id}")


def _wrong_revision(exc: Exception) -> bool:
    from nats.js.errors import KeyWrongLastSequenceError

    return isinstance(exc, KeyWrongLastSequenceError) or "wrong last sequence" in str(exc).lower()


def _not_found(exc: Exception) -> bool:
    from nats.js.errors import KeyNotFoundError, NoKeysError, NotFoundError

    return isinstance(exc, (KeyNotFoundError, NoKeysError, NotFoundError))


class SharedWrites(InfluxClient):
    """One mine's InfluxDB client, shared by the worker's units of that mine (one per partition
    that has the mine's frames): their writes go together. While a request to the database is
    in flight, the bodies given meanwhile wait, and go as one request when it is answered (up to
    ``max_body`` bytes a request); each writer hears its own outcome. So a worker sends at most one
    write at a time to each mine's database, the databases' requests in flight together, however
    many units write: the lines of a fetch go in a few requests, not one per unit. A request InfluxDB
    refuses as a whole for a bad line (400) is sent again body by body, so each writer learns
    which of its own lines were refused, as when it wrote alone. Compressed bodies go on their own."""

    def __init__(self, *args: Any, max_body: int = 4 << 20, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.max_body = max_body
        self.requests = 0  # write requests sent (for the stats)
        self._queued: list[tuple[bytes, asyncio.Future[None]]] = []
        self._sender: asyncio.Task[None] | None = None

    async def write_body(self, body: bytes, *, gzipped: bool = False, precision: str = "ns") -> None:
        if gzipped or precision != "ns":
            self.requests += 1
            await super().write_body(body, gzipped=gzipped, precision=precision)
            return
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._queued.append((body, fut))
        if self._sender is None:
            self._sender = asyncio.get_running_loop().create_task(self._send(), name=f"writes-{self.db}")
        await fut

    async def _send(self) -> None:
        try:
            while self._queued:
                group: list[tuple[bytes, asyncio.Future[None]]] = []
                size = 0
                while self._queued and (not group or size + len(self._queued[0][0]) <= self.max_body):
                    item = self._queued.pop(0)
                    group.append(item)
                    size += len(item[0]) + 1
                await self._send_group(group)
        finally:
            self._sender = None

    async def _post(self, body: bytes) -> None:
        self.requests += 1
        if len(body) > 64 << 10:
            await InfluxClient.write_body(self, gzip.compress(body, 1), gzipped=True)
        else:
            await InfluxClient.write_body(self, body)

    async def _send_group(self, group: list[tuple[bytes, asyncio.Future[None]]]) -> None:
        try:
            await self._post(b"\n".join(b for b, _ in group))
        except InfluxError as exc:
            if exc.status != 400 or len(group) == 1:
                _settle(group, exc)
                return
            for body, fut in group:  # a line refused: each body alone, for each writer's own answer
                try:
                    await self._post(body)
                except Exception as one:  # noqa: BLE001 - handed to that body's writer
                    _settle([(body, fut)], one)
                else:
                    _settle([(body, fut)], None)
        except Exception as exc:  # noqa: BLE001 - InfluxDB away: every writer retries or spools
            _settle(group, exc)
        else:
            _settle(group, None)


def _settle(group: list[tuple[bytes, asyncio.Future[None]]], exc: BaseException | None) -> None:
    for _, fut in group:
        if fut.done():  # its writer gave up waiting (a stop)
            continue
        if exc is None:
            fut.set_result(None)
        else:
            fut.set_exception(exc)


class MineUnit:
    """One mine's scenarios of one partition: the pipeline of an ingest process (see the module)."""

    def __init__(self, worker: GroupWorker, mine: str, part: int) -> None:
        self.worker = worker
        self.mine = mine
        self.part = part
        self.share = share = MineShare(part, worker.opts.partitions, mine)
        self.opts = opts = dataclasses.replace(worker.opts.ingest, partition=share)
        self.topics = Topics(mine_prefix(mine, worker.settings.topics.prefix))
        self.scenarios = share.scenarios(SCENARIOS)
        self.counters = worker.counters.setdefault((mine, part), Counters())
        self.metrics = Metrics(share.tag, self.counters)
        self.router = Router(self.topics, opts, self.counters)
        self.suite = worker.make_suite(self.scenarios, share.id_prefix)
        self.inbox = JsInbox(worker.link, lambda: worker.leases.holds(part))
        self.influx = worker.influx(mine)
        self.spool = Spool(worker.spool_root / share.tag, opts.spool_max_bytes)
        self.writer = Writer(self.influx, self.spool, on_rejected=self._rejected,
                             on_drained=lambda n: setattr(self.counters, "drained", self.counters.drained + n))
        self.stopping = asyncio.Event()
        self.pipeline = Pipeline(opts, self.topics, self.router, self.inbox, self.writer,  # type: ignore[arg-type]
                                 self.spool, self.metrics, self.suite, stopping=self.stopping,
                                 stop_left=lambda share: worker.opts.stop_timeout_s * share,
                                 stats_tags={"partition": share.tag, "host": worker.opts.worker_id,
                                             "client_id": f"group-{worker.opts.worker_id}"})
        self.task: asyncio.Task[None] | None = None

    def _rejected(self, rejected: list[tuple[str, str]]) -> None:
        self.pipeline.rejected(rejected)

    def start(self) -> None:
        self.task = asyncio.get_running_loop().create_task(self._run(), name=f"unit-{self.share.tag}")

    async def _run(self) -> None:
        influx_ok = await self.worker.database_ready(self.mine, self.writer)
        alerts: list[AlertEvent] = []
        incidents: list[IncidentEvent] = []
        if self.suite is not None and self.opts.restore_alerts:
            # without the active alerts, the detectors would raise again what is raised: wait for them
            while True:
                try:
                    alerts, incidents = await self.worker.active_alerts(self.mine)
                    break
                except (OSError, TimeoutError) as exc:
                    log.warning("%s: cannot read the active alerts yet (%s); trying again", self.share, exc)
                    self.worker.forget_alerts(self.mine)
                    await asyncio.sleep(1.0)
            alerts = [e for e in alerts if self.share.owns(e.scenario_id)]
            incidents = [i for i in incidents if self.share.owns(i.scenario_id)]
        await take_over(self.influx, influx_ok, self.opts, self.share, self.scenarios, self.router, self.suite,
                        self.pipeline, alerts, incidents)
        self.writer.start()
        self.pipeline.tick_floor = time.time_ns()
        if self.suite is not None and not self.router.data_clock:
            self.suite.give_robots_until(self.pipeline.tick_floor)
        await self.pipeline.run()

    async def close(self, timeout: float, *, lost: bool) -> int:
        """Stop. ``lost``: the lease is gone, so what waits in the inbox is not taken (nothing more
        is published or acknowledged anyway); otherwise the inbox is worked off first. Batches
        being written finish (or go to the spool). Returns how many messages were handed back."""
        if lost:
            self.inbox.inbox.clear()
        self.stopping.set()
        self.inbox.wake()
        if self.task is not None:
            _, late = await asyncio.wait({self.task}, timeout=timeout)
            for t in late:
                t.cancel()
                await asyncio.wait({t})
            if self.task.done() and not self.task.cancelled() and self.task.exception() is not None:
                log.error("unit %s failed: %r", self.share, self.task.exception())
        given = await self.inbox.give_back()
        await self.writer.close(drain_timeout=min(timeout, 2.0))
        return given


class GroupWorker:
    """One worker process (see the module). ``await run()`` until :meth:`stop`."""

    def __init__(self, settings: Settings, opts: WorkerOptions) -> None:
        self.settings = settings
        self.opts = opts
        self.spool_root = opts.spool_dir or settings.data_dir / "spool" / f"group-{opts.worker_id}"
        self.link = AlertLink(settings, f"minewatch-group-{opts.worker_id}")
        self.units: dict[tuple[str, int], MineUnit] = {}
        self.counters: dict[tuple[str, int], Counters] = {}
        self.fetchers: dict[int, asyncio.Task[None]] = {}
        self._unfetch: set[asyncio.Task[Any] | None] = set()  # fetch tasks told to stop after their fetch
        self._dropping: dict[int, asyncio.Task[Any]] = {}  # partitions whose units are being closed
        self._influx: dict[str, SharedWrites] = {}
        self._db: dict[str, asyncio.Future[bool]] = {}
        self._active: dict[tuple[str, int], asyncio.Task[tuple[list[AlertEvent], list[IncidentEvent]]]] = {}
        self._taken = 0  # partitions taken so far: the retained alerts are read again after each
        self._suite_cls: Any = None
        self._stop = asyncio.Event()
        self.started = asyncio.Event()
        self.nc: Any = None
        self.js: Any = None
        self.leases = Leases(None, opts.worker_id, opts.partitions, opts.lease_ttl_s)  # its bucket: the keeper's
        self.main_loop: asyncio.AbstractEventLoop | None = None
        self._keeper_loop: asyncio.AbstractEventLoop | None = None
        self._keeper_stop: asyncio.Event | None = None
        self._keeper_done: concurrent.futures.Future[None] = concurrent.futures.Future()
        self._releasing: dict[int, asyncio.Future[None]] = {}  # partitions being handed over (keeper's loop)

    # -- shared per mine -----------------------------------------------------------------------
    def influx(self, mine: str) -> SharedWrites:
        if mine not in self._influx:
            s = self.settings
            self._influx[mine] = SharedWrites(s.influx_url, f"{self.opts.db_prefix}{mine}", user=s.influx_user,
                                              password=s.influx_password, rp=s.influx_rp, timeout=15.0)
        return self._influx[mine]

    async def database_ready(self, mine: str, writer: Writer) -> bool:
        """The mine's database set up (once per process; again by a writer that finds it down)."""
        fut = self._db.get(mine)
        if fut is None or (fut.done() and not fut.result()):
            fut = self._db[mine] = asyncio.ensure_future(writer.prepare())
            return await asyncio.shield(fut)
        ok = await asyncio.shield(fut)
        if ok:
            writer._db_ready = True  # the database this writer writes to is set up
        return ok

    async def active_alerts(self, mine: str) -> tuple[list[AlertEvent], list[IncidentEvent]]:
        """The mine's active alerts and incidents retained on the alert broker, read once after
        each partition taken (a partition's units read them after it was taken, before anything
        of theirs is published)."""
        key = (mine, self._taken)
        task = self._active.get(key)
        if task is None:
            s = self.settings.model_copy(update={"topic_prefix": mine_prefix(mine, self.settings.topics.prefix)})
            task = self._active[key] = asyncio.ensure_future(_on_thread(read_active, s))
            for old in [k for k in self._active if k[0] == mine and k != key]:
                del self._active[old]
        return await asyncio.shield(task)

    def forget_alerts(self, mine: str) -> None:
        self._active.pop((mine, self._taken), None)

    def make_suite(self, scenarios: list[str], id_prefix: str) -> Any:
        if self._suite_cls is None:
            return None
        return self._suite_cls({s: SCENARIOS[s] for s in scenarios}, overrides=self.opts.ingest.overrides,
                               timing=AlertTiming.live, repeat_hold_s=self.opts.ingest.repeat_hold_s,
                               id_prefix=id_prefix)

    # -- lifecycle -----------------------------------------------------------------------------
    def stop(self) -> None:
        """Stop (from the main loop): units finish and acknowledge, leases are released."""
        self._stop.set()

    async def run(self) -> None:
        import nats

        opts = self.opts
        if opts.ingest.detectors:
            try:
                from detectors import DetectorSuite
            except ImportError as exc:
                log.warning("detectors unavailable (%s): storing telemetry without detection", exc)
            else:
                self._suite_cls = DetectorSuite
                warm_up(DetectorSuite)
        self.main_loop = asyncio.get_running_loop()
        self.nc = await nats.connect(servers=opts.nats_urls, name=f"minewatch-group-{opts.worker_id}",
                                     max_reconnect_attempts=-1, reconnect_time_wait=0.5, error_cb=_nats_error)
        self.js = self.nc.jetstream()
        await self.link.start()
        statuses = await _persist("following the robots' statuses", self._follow_statuses, self._stop)
        acks = asyncio.get_running_loop().create_task(self._follow_acks(), name="operators-acks")
        # The leases are kept on a thread of their own, with a NATS connection of its own: however
        # busy the pipelines keep this loop, a renewal is never late because of them.
        keeper = threading.Thread(target=self._keep_leases, name="leases", daemon=True)
        keeper.start()
        log.info("group worker %s: %d partitions, stream %s, leases in %s", opts.worker_id, opts.partitions,
                 opts.stream, opts.bucket)
        try:
            stopped: asyncio.Future[Any] = asyncio.ensure_future(self._stop.wait())
            done: asyncio.Future[Any] = asyncio.wrap_future(self._keeper_done)
            await asyncio.wait({stopped, done}, return_when=asyncio.FIRST_COMPLETED)
            stopped.cancel()
            self._stop_keeper()
            await done  # the keeper drops and releases every partition first
        finally:
            acks.cancel()
            with contextlib.suppress(Exception):
                await statuses.unsubscribe()
            await self._shutdown()

    # -- the lease keeper (its own thread and loop) ----------------------------------------------
    def _keep_leases(self) -> None:
        try:
            asyncio.run(self._keeper())
        except BaseException as exc:  # noqa: BLE001 - handed to the main loop
            self._keeper_done.set_exception(exc)
        else:
            self._keeper_done.set_result(None)

    def _stop_keeper(self) -> None:
        loop, event = self._keeper_loop, self._keeper_stop
        if loop is not None and event is not None:
            with contextlib.suppress(RuntimeError):  # its loop has ended already
                loop.call_soon_threadsafe(event.set)

    async def _on_main(self, coro: Any) -> Any:
        """Run ``coro`` on the worker's main loop (where the units and the fetchers live) and wait."""
        return await asyncio.wrap_future(self._to_main(coro))

    def _to_main(self, coro: Any) -> concurrent.futures.Future[Any]:
        """Start ``coro`` on the worker's main loop; the lease rounds never wait for it (however
        busy that loop is, the leases are renewed on time)."""
        assert self.main_loop is not None
        return asyncio.run_coroutine_threadsafe(coro, self.main_loop)

    async def _keeper(self) -> None:
        import nats
        from nats.js.api import KeyValueConfig, StorageType

        opts = self.opts
        self._keeper_stop = keeper_stop = asyncio.Event()
        self._keeper_loop = asyncio.get_running_loop()
        if self._stop.is_set():
            return
        nc = await nats.connect(servers=opts.nats_urls, name=f"minewatch-group-{opts.worker_id}-leases",
                                max_reconnect_attempts=-1, reconnect_time_wait=0.5, error_cb=_nats_error)
        js = nc.jetstream()
        try:
            async def bucket() -> Any:
                try:
                    return await js.key_value(opts.bucket)
                except Exception as exc:
                    if not _not_found(exc):
                        raise
                return await js.create_key_value(KeyValueConfig(
                    bucket=opts.bucket, history=1, ttl=opts.lease_ttl_s, replicas=opts.kv_replicas,
                    storage=StorageType.FILE))

            self.leases.kv = await _persist("the lease bucket", bucket, keeper_stop)
            self.started.set()
            await self._manage()
        finally:
            if self._releasing:
                await asyncio.wait(set(self._releasing.values()))
            for part in self.leases.held:
                await self._on_main(self._drop(part, lost=not self.leases.holds(part)))
            with contextlib.suppress(Exception):
                await self.leases.leave()
            with contextlib.suppress(Exception):
                await nc.close()

    async def _manage(self) -> None:
        """Heartbeat, renew, and move toward this worker's share, every ``renew_s``."""
        opts, leases = self.opts, self.leases
        stop = self._keeper_stop
        assert stop is not None
        beats = 0
        while not stop.is_set() and not self._stop.is_set():
            try:
                for part in await leases.renew():
                    leases.forget(part)
                    self._to_main(self._drop(part))
                await leases.heartbeat()
                beats += 1
                if beats > 1:  # a round of heartbeats first: a worker starting beside others sees them
                    await self._balance()
            except Exception as exc:  # noqa: BLE001 - NATS away for a moment; the leases' clocks decide
                log.warning("lease round failed (%s: %s)", type(exc).__name__, exc)
                for part in leases.held:
                    if not leases.holds(part):
                        leases.forget(part)
                        self._to_main(self._drop(part))
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), opts.renew_s if leases.held else min(opts.renew_s, 1.0))

    async def _release(self, part: int, live: int, share: int) -> None:
        try:
            await asyncio.wrap_future(self._to_main(self._drop(part, lost=False)))
            await self.leases.release(part)
            log.info("partition %d released (%d live workers, a share of %d)", part, live, share)
        finally:
            self._releasing.pop(part, None)

    async def _balance(self) -> None:
        leases = self.leases
        owners, live = await leases.survey()
        share = math.ceil(self.opts.partitions / len(live))
        held = [p for p in leases.held if p not in self._releasing]
        if len(held) > share:
            for part in sorted(held, reverse=True)[:len(held) - share]:
                # held (and renewed) while its units finish their batches; released after
                self._releasing[part] = asyncio.ensure_future(self._release(part, len(live), share))
        elif len(held) < share:
            start = group_partition(self.opts.worker_id, "", self.opts.partitions)  # spread the first claims
            order = [(start + i) % self.opts.partitions for i in range(self.opts.partitions)]
            want = share - len(held)
            for part in order:
                if want == 0:
                    break
                if part in owners or part in leases.revision:
                    continue
                if await leases.claim(part):
                    want -= 1
                    self._to_main(self._take(part))

    async def _take(self, part: int) -> None:
        """Start fetching ``part`` (its lease just taken): a fetch task of its own."""
        dropping = self._dropping.get(part)
        if dropping is not None:  # its last holding's writes first: the warm start must see them
            await asyncio.wait({dropping})
        self._taken += 1
        log.info("partition %d taken", part)
        self.fetchers[part] = asyncio.get_running_loop().create_task(self._fetch(part), name=f"fetch-{part}")

    async def _consumer(self, part: int) -> None:
        """Partition ``part``'s durable consumer on the stream, made by the first worker to take it."""
        from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy

        name = f"part-{part}"
        try:
            await self.js.consumer_info(self.opts.stream, name)
        except Exception as exc:
            if not _not_found(exc):
                raise
            await self.js.add_consumer(self.opts.stream, ConsumerConfig(
                durable_name=name, filter_subject=partition_filter(part), ack_policy=AckPolicy.EXPLICIT,
                deliver_policy=DeliverPolicy.ALL, ack_wait=self.opts.ack_wait_s,
                max_ack_pending=self.opts.max_ack_pending, max_deliver=-1))

    async def _drop(self, part: int, *, lost: bool = True) -> None:
        """Stop fetching ``part`` and drop its units (their state goes; what they held unacknowledged
        goes back to the consumer). ``lost``: the lease is no longer ours, so not one more message
        of it is acknowledged; otherwise (a release, a stop) the units finish what they hold first."""
        if lost:
            self.leases.forget(part)
        me = asyncio.current_task()
        assert me is not None
        self._dropping[part] = me
        try:
            await self._close_holding(part, lost)
        finally:
            if self._dropping.get(part) is me:
                del self._dropping[part]

    async def _close_holding(self, part: int, lost: bool) -> None:
        # everything of this holding is taken out before the first wait: a take of the partition
        # again, scheduled behind this drop, starts afresh
        task = self.fetchers.pop(part, None)
        units = [u for k, u in self.units.items() if k[1] == part]
        for u in units:
            del self.units[(u.mine, part)]
        if task is not None:
            # the fetch in progress is let finish and what it brings handed back at once: a fetch cut
            # short would leave messages delivered to nobody, to come back only after the ack wait,
            # behind newer ones
            self._unfetch.add(task)
            _, late = await asyncio.wait({task}, timeout=self.opts.fetch_wait_s + 2.0)
            for t in late:
                t.cancel()
                await asyncio.wait({t})
            self._unfetch.discard(task)
        results = await asyncio.gather(*(u.close(self.opts.stop_timeout_s, lost=lost) for u in units),
                                       return_exceptions=True)
        given = sum(r for r in results if isinstance(r, int))
        log.info("partition %d dropped: %d unit(s), %d message(s) handed back", part, len(units), given)

    async def _fetch(self, part: int) -> None:
        import nats.errors

        leases = self.leases
        me = asyncio.current_task()

        async def bind() -> Any:
            await self._consumer(part)
            return await self.js.pull_subscribe_bind(durable=f"part-{part}", stream=self.opts.stream)

        sub = None
        while sub is None and leases.holds(part) and me not in self._unfetch:
            try:
                sub = await bind()
            except Exception as exc:  # noqa: BLE001 - NATS electing a leader: again, while the lease lasts
                log.info("partition %d: consumer not ready (%s: %s); again", part, type(exc).__name__, exc)
                await asyncio.sleep(0.5)
        if sub is None:
            return
        try:
            while leases.holds(part) and me not in self._unfetch:
                try:
                    msgs = await sub.fetch(self.opts.fetch_batch, timeout=self.opts.fetch_wait_s)
                except (TimeoutError, nats.errors.TimeoutError):
                    if me in self._unfetch:
                        break
                    continue
                except Exception as exc:  # noqa: BLE001 - NATS reconnecting, a leader being elected
                    log.info("partition %d: fetch failed (%s: %s); again", part, type(exc).__name__, exc)
                    await asyncio.sleep(0.2)
                    continue
                if me in self._unfetch or not leases.holds(part):
                    for m in msgs:
                        with contextlib.suppress(Exception):
                            await m.nak()
                    break
                for m in msgs:
                    s = parse_subject(m.subject)
                    if s is None or s.part != part:
                        log.warning("partition %d: not a frame subject of this partition: %s; dropped", part,
                                    m.subject)
                        await m.term()
                        continue
                    unit = self._unit(s.mine, part)
                    arrived, times = delivery(m.reply)
                    unit.inbox.put(s.topic(unit.topics.prefix), m.data, m, arrived, times > 1)
        finally:
            with contextlib.suppress(Exception):
                await sub.unsubscribe()

    def _unit(self, mine: str, part: int) -> MineUnit:
        """The unit of ``mine`` in held partition ``part``, made (and started) on first use."""
        unit = self.units.get((mine, part))
        if unit is None:
            unit = self.units[(mine, part)] = MineUnit(self, mine, part)
            unit.start()
        return unit

    async def _follow_acks(self) -> None:
        """The operators' acknowledgements from the alert broker, each to the unit owning its
        scenario's partition (partition 0 for one naming none, as a partitioned ingestor does),
        when this worker holds it; the worker holding it otherwise applies it."""
        link, base, count = self.link, self.settings.topics.prefix, self.opts.partitions
        while not self._stop.is_set():
            await link.wait(1.0)
            msgs = list(link.inbox)
            link.inbox.clear()
            for m in msgs:
                route = ack_route(m.topic, m.payload, base)
                if route is None:
                    continue
                mine, scenario = route
                part = group_partition(mine, scenario, count) if scenario else 0
                if not self.leases.holds(part) or part not in self.fetchers:
                    continue
                try:
                    unit = self._unit(mine, part)
                except ValueError as exc:  # not a mine id
                    log.warning("acknowledgement on %s not taken: %s", m.topic, exc)
                    continue
                unit.inbox.put(m.topic, m.payload, None)
            if msgs:
                link.ack(msgs)  # handed to the unit: as safe as a frame in its inbox

    async def _follow_statuses(self) -> Any:
        from nats.js.api import DeliverPolicy

        async def on_status(m: Any) -> None:
            s = parse_subject(m.subject)
            if s is None or s.kind != "status":
                return
            for (mine, _), unit in list(self.units.items()):
                if mine == s.mine:
                    unit.inbox.put(s.topic(unit.topics.prefix), m.data, None)

        return await self.js.subscribe("mw.*.status.>", stream=self.opts.stream, cb=on_status, ordered_consumer=True,
                                       deliver_policy=DeliverPolicy.NEW)

    async def _shutdown(self) -> None:
        for part in list(self.fetchers):  # the keeper did not get to them (it failed)
            await self._drop(part, lost=True)
        await self.link.close(2.0)
        for client in self._influx.values():
            with contextlib.suppress(Exception):
                await client.aclose()
        with contextlib.suppress(Exception):
            await self.nc.drain()
        log.info("group worker %s stopped", self.opts.worker_id)


async def _nats_error(exc: Exception) -> None:
    """One line per NATS connection error (a server gone: the client reconnects to another)."""
    log.info("NATS: %s: %s", type(exc).__name__, exc)


async def _persist(what: str, fn: Callable[[], Any], stop: asyncio.Event, tries: int = 60) -> Any:
    """``await fn()`` again until it answers (NATS electing a leader, a bucket being made by
    another worker at the same moment), half a second apart; the last failure is raised."""
    for attempt in range(tries):
        try:
            return await fn()
        except Exception as exc:
            if attempt == tries - 1 or stop.is_set():
                raise
            log.info("%s: %s: %s; trying again", what, type(exc).__name__, exc)
            await asyncio.sleep(0.5)
    raise AssertionError("unreachable")


async def _on_thread(fn: Callable[..., T], *args: Any) -> T:
    return await asyncio.get_running_loop().run_in_executor(None, fn, *args)


async def run_worker(settings: Settings, opts: WorkerOptions, *, handle_signals: bool = True) -> GroupWorker:
    """Run a worker until SIGTERM / SIGINT (or ``GroupWorker.stop()``): it then drops its
    partitions (writes finished, acknowledged) and releases their leases, so the other workers
    take them at once; a watchdog ends it should anything hold it."""
    worker = GroupWorker(settings, opts)
    if handle_signals:
        loop = asyncio.get_running_loop()

        def on_signal() -> None:
            limit = opts.stop_timeout_s * 2 + 5.0
            threading.Thread(target=_watchdog, args=(limit,), name="stop-watchdog", daemon=True).start()
            worker.stop()

        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, on_signal)
    await worker.run()
    return worker
