"""An append-only, fsync'd, bounded disk spool of line-protocol batches.

While InfluxDB cannot take a batch, the batch is appended here and the MQTT messages that carried
it are acknowledged only after the append is on disk (``fsync``), so a crash loses nothing. When
InfluxDB answers again the spool is drained oldest first.

Layout: ``seg-<number>.spool`` files in the spool directory, each a run of records::

    magic b"MWS1" | u32 body length | u32 CRC-32 of body | u32 point count | body (zlib'd lines)

A segment is deleted once every record in it is in InfluxDB. After a crash, a torn record at the
end of the last segment (its messages were never acknowledged, so the broker sends them again) is
cut off; a segment that is partly drained is drained again from its start, which is harmless
because a point written twice lands once.

The spool is bounded (``max_bytes``); a warning is logged as it passes 50, 80 and 95 % full.
When it is full, :meth:`append` refuses and the ingestor stops acknowledging, so the backlog
waits in the broker's queue instead (see ``docs/ingest.md``, "Broker settings").
"""

from __future__ import annotations

import logging
import os
import struct
import zlib
from typing import BinaryIO
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

__all__ = ["Spool", "SpoolFull", "SpoolRecord"]

log = logging.getLogger("minewatch.ingest.spool")

_MAGIC = b"MWS1"
_HEAD = struct.Struct("<4sIII")
_WARN_LEVELS = (0.5, 0.8, 0.95)


class SpoolFull(Exception):  # noqa: N818 - a state the caller handles (spool full), named as it reads
    pass


@dataclass(frozen=True)
class SpoolRecord:
    segment: int
    end: int  # offset just past this record
    points: int
    lines: list[str]


class Spool:
    def __init__(self, directory: Path, max_bytes: int = 2 << 30, segment_bytes: int = 64 << 20) -> None:
        self.dir = Path(directory)
        self.dir.mkdir(parents=True, exist_ok=True)
        self.max_bytes = max_bytes
        self.segment_bytes = segment_bytes
        self._sizes: dict[int, int] = {}     # segment number -> bytes on disk
        self._points: dict[int, int] = {}    # segment number -> points not yet drained
        self._read_pos: tuple[int, int] = (0, 0)  # (segment, offset) of the next record to drain
        self._fh: BinaryIO | None = None
        self._write_seg = 1
        self._warned = 0
        self._recover()

    # -- state ---------------------------------------------------------------------------------
    @property
    def bytes(self) -> int:
        return sum(self._sizes.values())

    @property
    def points(self) -> int:
        return sum(self._points.values())

    @property
    def pending(self) -> bool:
        return any(self._points.values())

    @property
    def fill(self) -> float:
        return self.bytes / self.max_bytes if self.max_bytes else 0.0

    def _path(self, n: int) -> Path:
        return self.dir / f"seg-{n:012d}.spool"

    def _recover(self) -> None:
        for p in sorted(self.dir.glob("seg-*.spool")):
            n = int(p.stem.split("-")[1])
            good, points = self._scan(p)
            if good < p.stat().st_size:
                log.warning("spool %s: cutting a torn record at byte %d (its messages will be redelivered)", p, good)
                with open(p, "r+b") as fh:
                    fh.truncate(good)
                    fh.flush()
                    os.fsync(fh.fileno())
            if good == 0:
                p.unlink()
                continue
            self._sizes[n] = good
            self._points[n] = points
        self._write_seg = max(self._sizes, default=0) + 1
        self._read_pos = (min(self._sizes, default=self._write_seg), 0)
        if self._sizes:
            log.warning("spool %s holds %d points from before the restart; they will be written first",
                        self.dir, self.points)

    @staticmethod
    def _scan(path: Path) -> tuple[int, int]:
        good = points = 0
        with open(path, "rb") as fh:
            data = fh.read()
        while good + _HEAD.size <= len(data):
            magic, length, crc, count = _HEAD.unpack_from(data, good)
            end = good + _HEAD.size + length
            if magic != _MAGIC or end > len(data) or zlib.crc32(data[good + _HEAD.size:end]) != crc:
                break
            good = end
            points += count
        return good, points

    # -- writing -------------------------------------------------------------------------------
    def append(self, lines: list[str]) -> None:
        """Append one batch and fsync; raise :class:`SpoolFull` if it would pass ``max_bytes``."""
        body = zlib.compress("\n".join(lines).encode(), 1)
        rec = _HEAD.pack(_MAGIC, len(body), zlib.crc32(body), len(lines)) + body
        if self.bytes + len(rec) > self.max_bytes:
            raise SpoolFull(f"spool {self.dir} is full ({self.bytes} of {self.max_bytes} bytes)")
        seg = self._write_seg
        if self._fh is not None and 0 < self._sizes.get(seg, 0) and self._sizes[seg] + len(rec) > self.segment_bytes:
            self._fh.close()
            self._fh = None
            seg = self._write_seg = seg + 1
        if self._fh is None:
            self._fh = open(self._path(seg), "ab")
        self._fh.write(rec)
        self._fh.flush()
        os.fsync(self._fh.fileno())
        self._sizes[seg] = self._sizes.get(seg, 0) + len(rec)
        self._points[seg] = self._points.get(seg, 0) + len(lines)
        self._warn()

    def _warn(self) -> None:
        fill = self.fill
        while self._warned < len(_WARN_LEVELS) and fill >= _WARN_LEVELS[self._warned]:
            log.warning("spool %s is %.0f%% full (%d of %d bytes): InfluxDB has not been taking writes; "
                        "when it is full the ingestor stops acknowledging and the broker holds the backlog",
                        self.dir, fill * 100, self.bytes, self.max_bytes)
            self._warned += 1
        while self._warned and fill < _WARN_LEVELS[self._warned - 1] * 0.5:
            self._warned -= 1

    # -- draining ------------------------------------------------------------------------------
    def peek(self, max_points: int = 20_000) -> list[SpoolRecord]:
        """The oldest records not yet drained, up to about ``max_points`` points (at least one)."""
        out: list[SpoolRecord] = []
        seg, off = self._read_pos
        total = 0
        while total < max_points:
            if seg not in self._sizes:
                later = [n for n in self._sizes if n > seg]
                if not later:
                    break
                seg, off = min(later), 0
            size = self._sizes[seg]
            if off >= size:
                nxt = [n for n in self._sizes if n > seg]
                if not nxt:
                    break
                seg, off = min(nxt), 0
                continue
            with open(self._path(seg), "rb") as fh:
                fh.seek(off)
                data = fh.read(min(size - off, 32 << 20))
            pos = 0
            while pos + _HEAD.size <= len(data) and total < max_points:
                _, length, _, count = _HEAD.unpack_from(data, pos)
                end = pos + _HEAD.size + length
                if end > len(data):
                    break
                lines = zlib.decompress(data[pos + _HEAD.size:end]).decode().split("\n")
                out.append(SpoolRecord(seg, off + end, count, lines))
                total += count
                pos = end
            if pos == 0:
                break
            off += pos
        return out

    def consume(self, records: list[SpoolRecord]) -> None:
        """Mark ``records`` (from :meth:`peek`, in order) as written; delete drained segments."""
        for r in records:
            self._points[r.segment] -= r.points
            self._read_pos = (r.segment, r.end)
            if r.end >= self._sizes[r.segment] and r.segment != self._write_seg:
                self._drop(r.segment)
        if not self.pending:
            # everything is drained: the next append starts a fresh segment
            if self._fh is not None:
                self._fh.close()
                self._fh = None
            for n in list(self._sizes):
                self._drop(n)
            self._write_seg += 1
            self._read_pos = (self._write_seg, 0)
        self._warn()

    def _drop(self, n: int) -> None:
        self._path(n).unlink(missing_ok=True)
        self._sizes.pop(n, None)
        self._points.pop(n, None)

    def iter_all(self) -> Iterator[str]:
        """Every line still in the spool, oldest first (for inspection and tests)."""
        for n in sorted(self._sizes):
            data = self._path(n).read_bytes()
            pos = 0
            while pos + _HEAD.size <= len(data):
                _, length, _, _ = _HEAD.unpack_from(data, pos)
                yield from zlib.decompress(data[pos + _HEAD.size:pos + _HEAD.size + length]).decode().split("\n")
                pos += _HEAD.size + length

    def close(self) -> None:
        if self._fh is not None:
            self._fh.close()
            self._fh = None
