"""Which ingest process owns which scenario.

Scenarios are hashed to partitions with CRC-32 of the scenario id, a hash that every process,
language and restart agrees on. All of a scenario's streams land in one process, so the
detectors' per-stream state never has to move while the partition count stays the same.
"""

from __future__ import annotations

import zlib
from collections.abc import Iterable
from dataclasses import dataclass

__all__ = ["Partition", "partition_of"]


def partition_of(scenario_id: str, count: int) -> int:
    """The partition (0-based) that owns ``scenario_id`` when there are ``count`` partitions."""
    return zlib.crc32(scenario_id.encode()) % count


@dataclass(frozen=True)
class Partition:
    """Partition ``index`` of ``count`` (``--partition I/N``, 0-based ``I``)."""

    index: int = 0
    count: int = 1

    def __post_init__(self) -> None:
        if self.count < 1 or not 0 <= self.index < self.count:
            raise ValueError(f"partition {self.index}/{self.count}: need 0 <= I < N")

    @classmethod
    def parse(cls, text: str) -> Partition:
        """``"I/N"`` -> Partition; ``"0/1"`` is the whole mine."""
        index, sep, count = text.partition("/")
        try:
            if not sep:
                raise ValueError
            return cls(int(index), int(count))
        except ValueError:
            raise ValueError(f"partition must be I/N with 0 <= I < N, got {text!r}") from None

    @property
    def whole(self) -> bool:
        return self.count == 1

    def owns(self, scenario_id: str | None) -> bool:
        """Whether this partition owns ``scenario_id``; events without a scenario go to partition 0."""
        if self.count == 1:
            return True
        if scenario_id is None:
            return self.index == 0
        return partition_of(scenario_id, self.count) == self.index

    def scenarios(self, ids: Iterable[str]) -> list[str]:
        return [s for s in ids if self.owns(s)]

    def __str__(self) -> str:
        return f"{self.index}/{self.count}"

    @property
    def id_prefix(self) -> str:
        """What starts the ids of this partition's alerts and incidents: nothing (one mine's broker)."""
        return ""

    @property
    def tag(self) -> str:
        """A form usable in client ids, tags and file names."""
        return f"{self.index}of{self.count}"
