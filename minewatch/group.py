"""The group deployment's names: partitions and NATS subjects (bottom layer, no I/O).

A mining group's frames travel on NATS subjects (payload = the MQTT payload, unchanged):

- ``mw.<mine>.<part>.telemetry.<scenario>.<robot>``
- ``mw.<mine>.<part>.history.<scenario>.<robot>``
- ``mw.<mine>.status.<robot>`` (not partitioned)

``<part>`` = :func:`group_partition`, the CRC-32 of ``"<mine>/<scenario>"`` modulo the group's
partition count ``P`` (a setting of the whole group, fixed once chosen): all of one mine's
scenario's streams land in one partition, hence in one ingest worker at the centre.
"""

from __future__ import annotations

import re
import zlib
from dataclasses import dataclass

__all__ = ["DEFAULT_PARTITIONS", "GROUP_STREAM", "GroupSubject", "group_partition", "mine_prefix", "parse_subject",
           "partition_filter", "status_subject", "telemetry_subject", "history_subject", "check_mine"]

DEFAULT_PARTITIONS = 16
GROUP_STREAM = "GROUP"
_MINE = re.compile(r"\A[a-z0-9][a-z0-9_-]{0,31}\Z")
_TOKEN = re.compile(r"\A[A-Za-z0-9_-]{1,64}\Z")


def check_mine(mine: str) -> str:
    """``mine`` if it can be a mine id (a subject token, a JetStream domain, part of a database name)."""
    if not _MINE.match(mine):
        raise ValueError(f"mine id {mine!r}: lower-case letters, digits, '_' or '-', 1-32, starting with a letter "
                         f"or digit")
    return mine


def _token(value: str, what: str) -> str:
    if not _TOKEN.match(value):
        raise ValueError(f"{what} {value!r} cannot be a subject token (letters, digits, '_', '-'; 1-64)")
    return value


def group_partition(mine: str, scenario_id: str, partitions: int) -> int:
    """The partition (0-based) of a mine's scenario among ``partitions``."""
    if partitions < 1:
        raise ValueError(f"partition count must be at least 1, got {partitions}")
    return zlib.crc32(f"{mine}/{scenario_id}".encode()) % partitions


def telemetry_subject(mine: str, scenario_id: str, robot_id: str, partitions: int) -> str:
    p = group_partition(mine, scenario_id, partitions)
    return f"mw.{check_mine(mine)}.{p}.telemetry.{_token(scenario_id, 'scenario')}.{_token(robot_id, 'robot')}"


def history_subject(mine: str, scenario_id: str, robot_id: str, partitions: int) -> str:
    p = group_partition(mine, scenario_id, partitions)
    return f"mw.{check_mine(mine)}.{p}.history.{_token(scenario_id, 'scenario')}.{_token(robot_id, 'robot')}"


def status_subject(mine: str, robot_id: str) -> str:
    return f"mw.{check_mine(mine)}.status.{_token(robot_id, 'robot')}"


def partition_filter(part: int) -> str:
    """The filter of partition ``part``'s durable consumer on the ``GROUP`` stream."""
    return f"mw.*.{part}.>"


def mine_prefix(mine: str, base: str = "minewatch/v1") -> str:
    """The MQTT topic prefix of one mine at the centre: ``minewatch/v1/mines/<mine>``."""
    return f"{base}/mines/{check_mine(mine)}"


@dataclass(frozen=True, slots=True)
class GroupSubject:
    """A parsed subject: ``kind`` is telemetry, history or status (``part`` -1 and ``scenario_id``
    empty for a status)."""

    mine: str
    part: int
    kind: str
    scenario_id: str
    robot_id: str

    def topic(self, prefix: str) -> str:
        """The MQTT topic the message had at its mine, under ``prefix``."""
        if self.kind == "status":
            return f"{prefix}/status/{self.robot_id}"
        return f"{prefix}/{self.kind}/{self.scenario_id}/{self.robot_id}"


def parse_subject(subject: str) -> GroupSubject | None:
    """The parts of a group subject; None when it is not one."""
    t = subject.split(".")
    if len(t) == 4 and t[0] == "mw" and t[2] == "status":
        return GroupSubject(t[1], -1, "status", "", t[3])
    if len(t) != 6 or t[0] != "mw" or t[3] not in ("telemetry", "history") or not t[2].isdigit():
        return None
    return GroupSubject(t[1], int(t[2]), t[3], t[4], t[5])
