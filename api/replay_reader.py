"""Reading stored telemetry back as frames, for replay.

One InfluxQL statement per scenario selects only that scenario's channels (and ``seq``,
``battery``, ``pos_m``, ``latency_ms``, ``rssi_dbm``, ``late``), ``GROUP BY scenario, robot``,
streamed with ``chunked=true``; the rows become :class:`minewatch.wire.Frame` objects again, in
time order.

Turning a million rows into frames is Python work of the same order as the detectors' own, so
for long windows it runs in a worker process (:class:`SliceReader` with ``process=True``, a
``python -m api.replay_reader`` child speaking over pipes): the worker queries InfluxDB, builds
the frames and hands them over as MessagePack, which the replay decodes in a fraction of the
time, while the detectors run on the previous slice on the other core.
"""

from __future__ import annotations

import asyncio
import os
import sys
from collections.abc import Iterable, Mapping
from typing import Any

import httpx
import msgspec
import orjson

from minewatch.catalogue import SCENARIOS, Scenario
from minewatch.wire import Frame, LinkInfo

__all__ = ["SliceReader", "slice_query", "rows_to_frames", "META"]

META = ("seq", "battery", "pos_m", "latency_ms", "rssi_dbm", "late")
Chunk = tuple[list[str], dict[str, str], list[list[Any]]]
_DECODE = msgspec.msgpack.Decoder(tuple[list[Frame], list[bool]])


def slice_query(t0: int, t1: int, scenarios: Mapping[str, Scenario] = SCENARIOS) -> str:
    out = []
    for sc in scenarios.values():
        cols = ", ".join(f'"{name}"' for name in [*(c.name for c in sc.channels), *META])
        out.append(f"SELECT {cols} FROM \"telemetry\" WHERE \"scenario\" = '{sc.id}' "
                   f'AND time >= {t0} AND time < {t1} GROUP BY "scenario", "robot"')
    return "; ".join(out)


def rows_to_frames(chunks: Iterable[Chunk]) -> tuple[list[Frame], list[bool]]:
    """Frames (and their ``late`` flags) from ``(columns, tags, values)`` series chunks, in time
    order (stable: rows of equal time keep their order)."""
    frames: list[Frame] = []
    late: list[bool] = []
    ts: list[int] = []
    for cols, tags, values in chunks:
        robot, scenario = tags.get("robot", ""), tags.get("scenario", "")
        if not values or not robot or not scenario:
            continue
        idx = {c: i for i, c in enumerate(cols)}
        ti, si = idx["time"], idx.get("seq", -1)
        bi, pi = idx.get("battery", -1), idx.get("pos_m", -1)
        li, ri, lti = idx.get("latency_ms", -1), idx.get("rssi_dbm", -1), idx.get("late", -1)
        chans = [(c, i) for c, i in idx.items() if c not in META and c != "time"]
        for v in values:
            v.append(None)  # index -1: a column this statement did not return
            lat, rssi = v[li], v[ri]
            link = LinkInfo(latency_ms=float(lat), rssi_dbm=float(rssi)) if lat is not None and rssi is not None \
                else None
            b, p, s = v[bi], v[pi], v[si]
            frames.append(Frame(robot_id=robot, scenario_id=scenario, ts=v[ti], seq=s if s is not None else 0,
                                readings={c: float(v[i]) for c, i in chans if v[i] is not None},
                                battery=None if b is None else float(b), pos_m=None if p is None else float(p),
                                link=link))
            late.append(v[lti] is True)
            ts.append(v[ti])
    order = sorted(range(len(frames)), key=ts.__getitem__)
    return [frames[i] for i in order], [late[i] for i in order]


def _chunks(lines: Iterable[bytes | str]) -> Iterable[Chunk]:
    for text in lines:
        if not text.strip():
            continue
        payload = orjson.loads(text)
        for result in payload.get("results", []):
            if "error" in result:
                raise RuntimeError(f"InfluxDB: {result['error']}")
            for series in result.get("series", []) or []:
                yield series["columns"], series.get("tags") or {}, series.get("values", [])
        if "error" in payload:
            raise RuntimeError(f"InfluxDB: {payload['error']}")


# -- the worker process ------------------------------------------------------------------------
#
# ``python -m api.replay_reader URL DB``: reads ``{"t0": ns, "t1": ns}`` lines on stdin and answers
# each with an 8-byte big-endian length and the MessagePack of ``(frames, late)`` on stdout (or a
# negative length and an error text). InfluxDB credentials come in the environment.

def _worker(url: str, db: str) -> None:
    import os
    import sys

    user = os.environ.get("MINEWATCH_INFLUX_USER")
    auth = (user, os.environ.get("MINEWATCH_INFLUX_PASSWORD") or "") if user else None
    out = sys.stdout.buffer
    with httpx.Client(timeout=300.0, auth=auth) as http:
        for line in sys.stdin:
            req = orjson.loads(line)
            params = {"q": slice_query(req["t0"], req["t1"]), "db": db, "epoch": "ns", "chunked": "true",
                      "chunk_size": "20000"}
            try:
                with http.stream("GET", f"{url}/query", params=params,
                                 headers={"Accept-Encoding": "identity"}) as r:
                    if r.status_code != 200:
                        r.read()
                        raise RuntimeError(f"InfluxDB answered {r.status_code}: {r.text[:300]}")
                    blob = msgspec.msgpack.encode(rows_to_frames(_chunks(r.iter_lines())))
                out.write(len(blob).to_bytes(8, "big", signed=True) + blob)
            except (httpx.HTTPError, RuntimeError, ValueError) as exc:
                err = f"{exc.__class__.__name__}: {exc}".encode()
                out.write((-len(err)).to_bytes(8, "big", signed=True) + err)
            out.flush()


class SliceReader:
    """Reads ``[t0, t1)`` slices as frames, in this process or in a worker process (answers
    come back in the order asked)."""

    def __init__(self, influx: Any, *, process: bool = False, auth: tuple[str, str] | None = None) -> None:
        self.influx = influx
        self.auth = auth
        self.process = process
        self._proc: asyncio.subprocess.Process | None = None
        self._lock = asyncio.Lock()

    async def _worker_proc(self) -> asyncio.subprocess.Process:
        if self._proc is None:
            env = dict(os.environ)
            env.pop("MINEWATCH_INFLUX_USER", None)
            env.pop("MINEWATCH_INFLUX_PASSWORD", None)
            if self.auth:
                env["MINEWATCH_INFLUX_USER"], env["MINEWATCH_INFLUX_PASSWORD"] = self.auth
            self._proc = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "api.replay_reader", self.influx.url, self.influx.db, env=env,
                stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE, limit=1 << 20)
        return self._proc

    async def read(self, t0: int, t1: int) -> tuple[list[Frame], list[bool]]:
        if not self.process:
            chunks = [c async for c in self.influx.query_chunks(slice_query(t0, t1), chunk_size=20_000)]
            return rows_to_frames(chunks)
        async with self._lock:  # one request at a time on the pipe; the next waits its turn
            proc = await self._worker_proc()
            assert proc.stdin is not None and proc.stdout is not None
            proc.stdin.write(orjson.dumps({"t0": t0, "t1": t1}) + b"\n")
            await proc.stdin.drain()
            n = int.from_bytes(await proc.stdout.readexactly(8), "big", signed=True)
            blob = await proc.stdout.readexactly(abs(n))
        if n < 0:
            raise RuntimeError(blob.decode(errors="replace"))
        return _DECODE.decode(blob)

    async def aclose(self) -> None:
        """End the worker: it stops at the end of its input; killed if it does not within 5 s."""
        proc, self._proc = self._proc, None
        if proc is None:
            return
        if proc.stdin is not None:
            proc.stdin.close()
        try:
            await asyncio.wait_for(proc.wait(), 5.0)
        except TimeoutError:  # still writing an answer nobody reads (a cancelled replay)
            proc.kill()
            await proc.wait()


if __name__ == "__main__":
    import sys as _sys

    _worker(_sys.argv[1], _sys.argv[2])
