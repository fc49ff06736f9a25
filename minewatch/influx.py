"""InfluxDB 1.x HTTP API: line protocol out, InfluxQL in.

Speaks ``/write`` and ``/query`` only, which InfluxDB 1.x serves natively and 2.x / 3.x serve
through their 1.x-compatibility endpoints. Measurements (database ``minewatch``):

- ``telemetry``: tags ``scenario``, ``robot``, ``scenario_kind``; one float field per channel,
  plus ``seq`` (integer), ``battery``, ``pos_m``, ``latency_ms``, ``rssi_dbm``; time = robot time.
- ``vibration``: features computed from waveform blocks.
- ``robot_status``, ``alert_events``, ``ingest_stats``.
"""

from __future__ import annotations

import calendar
import gzip
import math
import numbers
import time
from collections.abc import AsyncIterator, Iterable, Iterator, Mapping
from typing import Any

import httpx
import msgspec
import numpy as np
import orjson

__all__ = ["InfluxClient", "InfluxError", "decode_series", "line", "escape_tag", "escape_key", "quote_str", "SyncInflux"]


class InfluxError(Exception):
    def __init__(self, status: int, message: str) -> None:
        text = f"InfluxDB answered {status}: {message}"
        if status == 401:  # no credentials, or wrong ones
            from minewatch.settings import credentials_hint

            text += "; " + credentials_hint("MINEWATCH_INFLUX_USER", "MINEWATCH_INFLUX_PASSWORD")
        super().__init__(text)
        self.status = status
        self.message = message


def escape_key(s: str) -> str:
    return s.replace("\\", "\\\\").replace(",", "\\,").replace("=", "\\=").replace(" ", "\\ ")


escape_tag = escape_key


def escape_measurement(s: str) -> str:
    return s.replace("\\", "\\\\").replace(",", "\\,").replace(" ", "\\ ")


def quote_str(s: str) -> str:
    return '"' + s.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'


def _field(v: Any) -> str | None:
    """One field value in line protocol, or None to leave it out (None, NaN, infinite).

    NumPy's scalars are written as the numbers they are: ``repr`` of ``np.float64`` is
    ``np.float64(0.5)`` and ``np.int64`` is no ``int``, so both go through ``numbers``.
    """
    if v is None:
        return None
    if isinstance(v, (bool, np.bool_)):
        return "true" if v else "false"
    if isinstance(v, numbers.Integral):
        return f"{int(v)}i"
    if isinstance(v, numbers.Real):
        f = float(v)
        if not math.isfinite(f):
            return None
        return repr(f)
    return quote_str(str(v))


def line(measurement: str, tags: Mapping[str, str], fields: Mapping[str, Any], ts_ns: int) -> str | None:
    """One line of line protocol; ``None`` when no field has a value (InfluxDB needs one)."""
    fs = []
    for k, v in fields.items():
        f = _field(v)
        if f is not None:
            fs.append(f"{escape_key(k)}={f}")
    if not fs:
        return None
    tag_part = "".join(f",{escape_key(k)}={escape_tag(v)}" for k, v in sorted(tags.items()) if v not in (None, ""))
    return f"{escape_measurement(measurement)}{tag_part} {','.join(fs)} {int(ts_ns)}"


Series = tuple[list[str], dict[str, str], list[list[Any]]]


def _series(payload: dict[str, Any]) -> Iterator[Series]:
    """``(columns, tags, values)`` of every series of a ``/query`` answer (JSON or MessagePack,
    one chunk or whole); a statement's error, or the answer's, raises :class:`InfluxError`."""
    for result in payload.get("results", []) or []:
        if "error" in result:
            raise InfluxError(400, result["error"])
        for series in result.get("series", []) or []:
            yield series["columns"], series.get("tags") or {}, series.get("values") or []
    if "error" in payload:
        raise InfluxError(400, payload["error"])


def _series_rows(payload: dict[str, Any]) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for cols, tags, values in _series(payload):
        for v in values:
            row = dict(zip(cols, v))
            row.update(tags)
            out.append(row)
    return out


def decode_series(content: bytes, content_type: str) -> list[Series]:
    """``(columns, tags, values)`` of every series of a ``/query`` answer in MessagePack (or, from
    a server that answered JSON instead, JSON)."""
    return list(_series(msgspec.msgpack.decode(content) if "msgpack" in content_type else orjson.loads(content)))


class InfluxClient:
    """Async client over httpx. ``write`` takes lines; ``query`` returns rows as dicts."""

    def __init__(self, url: str, db: str, *, user: str | None = None, password: str | None = None,
                 rp: str | None = None, timeout: float = 30.0, verify: bool | str = True) -> None:
        self.url = url.rstrip("/")
        self.db = db
        self.rp = rp
        # HTTP basic auth: InfluxDB 1.x reads it on every endpoint (u/p form fields of a POST
        # query are not read), and 2.x / 3.x accept it on their 1.x-compatibility API.
        self._http = httpx.AsyncClient(timeout=timeout, verify=verify, auth=(user, password or "") if user else None)

    async def aclose(self) -> None:
        await self._http.aclose()

    async def __aenter__(self) -> InfluxClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def ping(self) -> bool:
        try:
            r = await self._http.get(f"{self.url}/ping", timeout=2.0)
            return r.status_code == 204
        except httpx.HTTPError:
            return False

    async def write_body(self, body: bytes, *, gzipped: bool = False, precision: str = "ns") -> None:
        params = {"db": self.db, "precision": precision}
        if self.rp:
            params["rp"] = self.rp
        headers = {"Content-Type": "text/plain; charset=utf-8"}
        if gzipped:
            headers["Content-Encoding"] = "gzip"
        r = await self._http.post(f"{self.url}/write", params=params, content=body, headers=headers)
        if r.status_code != 204:
            raise InfluxError(r.status_code, _error_text(r))

    async def write(self, lines: Iterable[str]) -> None:
        body = "\n".join(lines).encode()
        if not body:
            return
        if len(body) > 64 * 1024:
            await self.write_body(gzip.compress(body, 1), gzipped=True)
        else:
            await self.write_body(body)

    async def query(self, q: str, *, db: str | None = None, epoch: str = "ns", post: bool = False) -> list[dict[str, Any]]:
        params = {"q": q, "db": db if db is not None else self.db, "epoch": epoch}
        if post:
            r = await self._http.post(f"{self.url}/query", data=params)
        else:
            r = await self._http.get(f"{self.url}/query", params=params)
        if r.status_code != 200:
            raise InfluxError(r.status_code, _error_text(r))
        return _series_rows(r.json())

    async def ensure_db(self) -> None:
        await self.query(f'CREATE DATABASE "{self.db}"', db="", post=True)

    async def query_series(self, q: str, *, db: str | None = None, epoch: str = "ns") -> list[Series]:
        """``(columns, tags, values)`` of every series of a bounded query, asked for as
        MessagePack (``Accept: application/x-msgpack``, InfluxDB 1.4 and later): for a
        hundred thousand rows it costs InfluxDB about a third less to encode than JSON, and
        this process less to decode, and floats stay floats (JSON writes 3.0 as 3). A server
        that answers JSON instead is read as JSON. Not streamed: bound the query (a time slice)."""
        return decode_series(*await self.query_bytes(q, db=db, epoch=epoch))

    async def query_bytes(self, q: str, *, db: str | None = None, epoch: str = "ns") -> tuple[bytes, str]:
        """The answer of :meth:`query_series` undecoded: its body and its content type (for
        :func:`decode_series`; benchmarks time reading and decoding apart)."""
        params = {"q": q, "db": db if db is not None else self.db, "epoch": epoch}
        r = await self._http.get(f"{self.url}/query", params=params,
                                 headers={"Accept": "application/x-msgpack", "Accept-Encoding": "identity"})
        if r.status_code != 200:
            raise InfluxError(r.status_code, _error_text(r))
        return r.content, r.headers.get("content-type", "")

    async def query_chunks(self, q: str, *, db: str | None = None, epoch: str = "ns", chunk_size: int = 10_000
                           ) -> AsyncIterator[Series]:
        """Stream a long query (``chunked=true``): yields ``(columns, tags, values)`` per series
        chunk as InfluxDB sends it, so a whole shift never sits in memory at once."""
        params = {"q": q, "db": db if db is not None else self.db, "epoch": epoch, "chunked": "true",
                  "chunk_size": str(chunk_size)}
        # uncompressed: on loopback, gzip costs InfluxDB more CPU than it saves
        async with self._http.stream("GET", f"{self.url}/query", params=params,
                                     headers={"Accept-Encoding": "identity"}) as r:
            if r.status_code != 200:
                await r.aread()
                raise InfluxError(r.status_code, _error_text(r))
            async for text in r.aiter_lines():
                if not text.strip():
                    continue
                for series in _series(orjson.loads(text)):
                    yield series


def _error_text(r: httpx.Response) -> str:
    try:
        if "msgpack" in r.headers.get("content-type", ""):
            return str(msgspec.msgpack.decode(r.content).get("error", r.content[:500]))
        return str(r.json().get("error", r.text))
    except (ValueError, AttributeError, msgspec.DecodeError):
        return r.text[:500]


class SyncInflux:
    """The same API, blocking: for tests, benchmarks and command-line tools."""

    def __init__(self, url: str, db: str, *, user: str | None = None, password: str | None = None,
                 timeout: float = 60.0) -> None:
        self.url = url.rstrip("/")
        self.db = db
        self._http = httpx.Client(timeout=timeout, auth=(user, password or "") if user else None)

    def close(self) -> None:
        self._http.close()

    def write(self, lines: Iterable[str], *, db: str | None = None) -> None:
        body = "\n".join(lines).encode()
        if not body:
            return
        r = self._http.post(f"{self.url}/write", params={"db": db or self.db, "precision": "ns"},
                            content=gzip.compress(body, 1), headers={"Content-Encoding": "gzip"})
        if r.status_code != 204:
            raise InfluxError(r.status_code, _error_text(r))

    def query(self, q: str, *, db: str | None = None, epoch: str = "ns", post: bool = False) -> list[dict[str, Any]]:
        params = {"q": q, "db": db if db is not None else self.db, "epoch": epoch}
        r = self._http.post(f"{self.url}/query", data=params) if post else self._http.get(f"{self.url}/query", params=params)
        if r.status_code != 200:
            raise InfluxError(r.status_code, _error_text(r))
        return _series_rows(r.json())

    def ensure_db(self, db: str | None = None) -> None:
        self.query(f'CREATE DATABASE "{db or self.db}"', db="", post=True)

    def shards(self) -> list[tuple[int, int]]:
        """(start, end) in ns of every shard of the database, of every retention policy."""
        out = []
        for row in self.query("SHOW SHARDS", db=""):
            if row.get("database") == self.db:
                start, end = (calendar.timegm(time.strptime(row[k], "%Y-%m-%dT%H:%M:%SZ"))
                              for k in ("start_time", "end_time"))
                out.append((start * 1_000_000_000, end * 1_000_000_000))
        return out

    def count(self, measurement: str, field: str, where: str = "") -> int:
        rows = self.query(f'SELECT count("{field}") FROM "{measurement}" {where}')
        return int(rows[0]["count"]) if rows else 0
