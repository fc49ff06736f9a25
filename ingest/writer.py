"""The InfluxDB writer: large batches, retries, partial writes, and the disk spool.

``store(lines)`` returns once the lines are durable: written to InfluxDB (``"stored"``) or
appended to the spool (``"spooled"``); only then does the ingestor acknowledge the messages.

- Network errors, timeouts and 5xx are retried with exponential backoff and full jitter. A 5xx
  may come with the points stored anyway (InfluxDB 1.x answers 500 "timeout" under load): the
  retry rewrites them, which is harmless because a point written twice lands once.
- A 400 means some lines were refused (parse error, field type conflict, "partial write"): the
  lines InfluxDB names are handed to ``on_rejected`` (the dead-letter topic) and the rest is
  written again; if the message names none, the batch is split in halves until the refused
  lines are found.
- When retries run out, or while InfluxDB is known to be down, the batch goes to the spool. A
  drain task writes the spool back, oldest first, as soon as InfluxDB answers again; live batches
  go straight to InfluxDB again at the same time.
- When the spool is full, ``store`` keeps retrying InfluxDB and does not return: the ingestor
  stops acknowledging and the broker's queue holds the backlog.
"""

from __future__ import annotations

import asyncio
import gzip
import logging
import random
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from urllib.parse import urlsplit

import httpx

from minewatch.influx import InfluxClient, InfluxError, escape_key, escape_measurement
from minewatch.storage import ensure_storage

from ingest.spool import Spool, SpoolFull

__all__ = ["Writer", "RetryPolicy", "pick_rejected"]

log = logging.getLogger("minewatch.ingest.writer")

_UNABLE = re.compile(r"unable to parse '(.*?)': ", re.S)
_CONFLICT = re.compile(r'input field "(.+?)" on measurement "(.+?)" is type (\w+), already exists as type (\w+)')
_INVALID_FIELD = re.compile(r'invalid field name: input field "(.+?)" on measurement "(.+?)" is invalid')


def _split_head(ln: str) -> tuple[str, str]:
    """``(measurement-and-tags, fields-and-time)`` of a line: split at the first unescaped space."""
    i = 0
    while True:
        i = ln.find(" ", i)
        if i <= 0 or ln[i - 1] != "\\":
            return (ln, "") if i < 0 else (ln[:i], ln[i + 1:])
        i += 1


def pick_rejected(lines: list[str], message: str) -> list[int]:
    """Indexes of ``lines`` that InfluxDB's 400 ``message`` names as refused.

    Parse errors quote the line; a field type conflict or an invalid field name names the
    measurement and field, which picks every line of that measurement carrying that field.
    """
    named = set(_UNABLE.findall(message))
    out = {i for i, ln in enumerate(lines) if ln in named}
    for rx in (_CONFLICT, _INVALID_FIELD):
        for m in rx.finditer(message):
            key = escape_key(m.group(1)) + "="
            meas = escape_measurement(m.group(2))
            for i, ln in enumerate(lines):
                head, rest = _split_head(ln)
                if head.split(",", 1)[0] == meas and (rest.startswith(key) or "," + key in rest):
                    out.add(i)
    return sorted(out)


@dataclass
class RetryPolicy:
    """Backoff for direct writes: ``base * 2**n`` capped at ``cap``, full jitter, for ``budget_s``."""

    base_s: float = 0.1
    cap_s: float = 2.0
    budget_s: float = 3.0

    def delay(self, attempt: int) -> float:
        return random.uniform(0, min(self.cap_s, self.base_s * 2 ** attempt))


class _Retryable(Exception):  # noqa: N818 - an outcome (retry the write), not a fault
    pass


class Writer:
    def __init__(self, client: InfluxClient, spool: Spool, *, retry: RetryPolicy | None = None,
                 on_rejected: Callable[[list[tuple[str, str]]], None] | None = None,
                 on_drained: Callable[[int], None] | None = None, compress: bool | None = None,
                 drain_points: int = 20_000) -> None:
        self.client = client
        self.spool = spool
        self.retry = retry or RetryPolicy()
        self.on_rejected = on_rejected or (lambda rejected: None)
        self.on_drained = on_drained or (lambda n: None)
        host = urlsplit(client.url).hostname or ""
        # gzip saves the network, not the CPU: off on loopback, where CPU is what is short
        self.compress = compress if compress is not None else host not in ("127.0.0.1", "localhost", "::1")
        self.drain_points = drain_points
        self.down_since: float | None = None
        self._db_ready = False
        self._wake = asyncio.Event()
        self._drainer: asyncio.Task[None] | None = None
        self.stats = {"writes": 0, "retries": 0, "rejected": 0, "spooled_batches": 0, "drained_points": 0}

    # -- public --------------------------------------------------------------------------------
    def start(self) -> None:
        self._drainer = asyncio.get_running_loop().create_task(self._drain_loop(), name="spool-drain")
        if self.spool.pending:
            self._wake.set()

    async def close(self, drain_timeout: float = 0.0) -> None:
        if drain_timeout and self.spool.pending and self.down_since is None:
            deadline = time.monotonic() + drain_timeout
            while self.spool.pending and time.monotonic() < deadline:
                await asyncio.sleep(0.05)
        if self._drainer is not None:
            self._drainer.cancel()
            try:
                await self._drainer
            except asyncio.CancelledError:
                pass
        self.spool.close()

    async def prepare(self) -> bool:
        """Set up the database (retention policies, continuous queries) before the first write.
        False when InfluxDB cannot be reached: the writer then starts down, spooling until it
        answers (and sets the database up on its first write after that)."""
        try:
            await self._ensure_db()
        except Exception as exc:  # noqa: BLE001 - InfluxDB may be down at start: the spool covers it
            log.warning("InfluxDB not ready at start (%s); spooling until it is", exc)
            self._mark_down(str(exc))
            return False
        return True

    @property
    def influx_up(self) -> bool:
        return self.down_since is None

    async def store(self, lines: list[str]) -> str:
        """Make ``lines`` durable; returns ``"stored"`` or ``"spooled"``."""
        if not lines:
            return "stored"
        if self.down_since is None:
            try:
                await self._write_retrying(lines)
                return "stored"
            except _Retryable as exc:
                self._mark_down(str(exc))
            except Exception as exc:
                log.exception("unexpected failure writing a batch; spooling it")
                self._mark_down(f"{type(exc).__name__}: {exc}")
        while True:
            try:
                self.spool.append(lines)
                self.stats["spooled_batches"] += 1
                self._wake.set()
                return "spooled"
            except SpoolFull as exc:
                log.error("%s; holding back acknowledgements until InfluxDB takes writes again", exc)
            except OSError as exc:
                log.error("cannot append to the spool (%s); holding back acknowledgements", exc)
            try:  # spool unusable: keep trying InfluxDB itself
                await self._write_retrying(lines)
                self._mark_up()
                return "stored"
            except Exception:  # noqa: BLE001 - retryable or not, the batch is not given up
                await asyncio.sleep(self.retry.cap_s)

    # -- writing -------------------------------------------------------------------------------
    async def _post(self, lines: list[str]) -> None:
        if not self._db_ready:
            await self._ensure_db()
        body = "\n".join(lines).encode()
        try:
            if self.compress and len(body) > 16 << 10:
                await self.client.write_body(gzip.compress(body, 1), gzipped=True)
            else:
                await self.client.write_body(body)
            self.stats["writes"] += 1
        except httpx.HTTPError as exc:
            raise _Retryable(f"{type(exc).__name__}: {exc}") from None
        except InfluxError as exc:
            if exc.status == 404 and "database not found" in exc.message:
                self._db_ready = False
                raise _Retryable(exc.message) from None
            if exc.status >= 500 or exc.status in (401, 403, 404, 408, 413, 429):
                # 413/401/403: a configuration problem; spool rather than lose, and say so loudly
                if exc.status in (401, 403, 413):
                    log.error("InfluxDB refuses writes: %s", exc)
                raise _Retryable(f"{exc.status}: {exc.message}") from None
            raise

    async def _ensure_db(self) -> None:
        """The database with its retention policies and continuous queries (minewatch.storage)."""
        try:
            await ensure_storage(self.client)
        except httpx.HTTPError as exc:
            raise _Retryable(f"{type(exc).__name__}: {exc}") from None
        except InfluxError as exc:
            if exc.status >= 500:
                raise _Retryable(str(exc)) from None
            if exc.status not in (401, 403):
                raise
            # Not an admin account: the database must be set up by one (minewatch storage).
            log.warning("cannot set up InfluxDB storage with this account; writing to the database's default "
                        "retention policy: %s", exc)
        self._db_ready = True

    async def _write_checked(self, lines: list[str], depth: int = 0) -> None:
        """Write, sorting out a 400 into the refused lines (dead-lettered) and the rest."""
        try:
            await self._post(lines)
            return
        except InfluxError as exc:
            if exc.status != 400:
                raise
            message = exc.message
        bad = pick_rejected(lines, message)
        if bad:
            bad_set = set(bad)
            self._reject([(lines[i], message) for i in bad])
            rest = [ln for i, ln in enumerate(lines) if i not in bad_set]
            if rest and depth < 64:
                await self._write_checked(rest, depth + 1)
            return
        if len(lines) == 1 or depth >= 64:
            self._reject([(ln, message) for ln in lines])
            return
        mid = len(lines) // 2
        await self._write_checked(lines[:mid], depth + 1)
        await self._write_checked(lines[mid:], depth + 1)

    def _reject(self, rejected: list[tuple[str, str]]) -> None:
        self.stats["rejected"] += len(rejected)
        log.warning("InfluxDB refused %d line(s): %s", len(rejected), rejected[0][1][:300])
        self.on_rejected(rejected)

    async def _write_retrying(self, lines: list[str]) -> None:
        deadline = time.monotonic() + self.retry.budget_s
        attempt = 0
        while True:
            try:
                await self._write_checked(lines)
                return
            except _Retryable as exc:
                attempt += 1
                delay = self.retry.delay(attempt)
                if time.monotonic() + delay > deadline:
                    raise
                self.stats["retries"] += 1
                log.info("write failed (%s); retry %d in %.2f s", exc, attempt, delay)
                await asyncio.sleep(delay)

    # -- up / down and the drain ---------------------------------------------------------------
    def _mark_down(self, why: str) -> None:
        if self.down_since is None:
            self.down_since = time.monotonic()
            log.warning("InfluxDB unreachable (%s): spooling to %s until it returns", why, self.spool.dir)
        self._wake.set()

    def _mark_up(self) -> None:
        if self.down_since is not None:
            log.warning("InfluxDB is back after %.1f s; draining %d spooled points",
                        time.monotonic() - self.down_since, self.spool.points)
            self.down_since = None

    async def _drain_loop(self) -> None:
        attempt = 0
        while True:
            if not self.spool.pending:
                self._wake.clear()
                if self.down_since is not None:
                    # nothing to drain, but find out when InfluxDB is back so live writes resume
                    if await self.client.ping():
                        self._mark_up()
                        continue
                    await asyncio.sleep(0.5)
                    continue
                await self._wake.wait()
                continue
            records = self.spool.peek(self.drain_points)
            lines = [ln for r in records for ln in r.lines]
            try:
                await self._write_checked(lines)
            except _Retryable as exc:
                self._mark_down(str(exc))
                attempt += 1
                await asyncio.sleep(min(2.0, 0.1 * 2 ** min(attempt, 5)) * random.uniform(0.5, 1.0))
                continue
            attempt = 0
            self._mark_up()
            self.spool.consume(records)
            self.stats["drained_points"] += len(lines)
            self.on_drained(len(lines))
