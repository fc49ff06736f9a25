"""The group deployment's names: mines, partitions, NATS subjects, streams, message ids (no I/O).

A mining group runs many mines, each the single-machine stack plus a NATS leaf node whose
JetStream domain is the mine id; a forwarder copies the mine's MQTT telemetry into the leaf's
stream ``MINE``, and the centre's stream ``GROUP`` sources every mine's ``MINE``
(``docs/scale.md``). Subjects, payload = the MQTT payload unchanged:

=================================================  ==========================================
subject                                            from MQTT topic
=================================================  ==========================================
``mw.<mine>.<part>.telemetry.<scenario>.<robot>``  ``<prefix>/telemetry/<scenario>/<robot>``
``mw.<mine>.<part>.history.<scenario>.<robot>``    ``<prefix>/history/<scenario>/<robot>``
``mw.<mine>.status.<robot>``                       ``<prefix>/status/<robot>``
=================================================  ==========================================

``<part>`` = :func:`group_partition` (CRC-32 of ``<mine>/<scenario>`` modulo the group's
partition count, fixed once chosen). An MQTT topic level may hold a ``.``, which NATS takes as a
token separator: in a subject it is written ``~`` (never in a valid level) and read back.
"""

from __future__ import annotations

import hashlib
import re
import zlib
from dataclasses import dataclass

from minewatch.topics import Topics

__all__ = ["DEFAULT_PARTITIONS", "MINE_STREAM", "GROUP_STREAM", "CENTRE_DOMAIN", "SUBJECT_ROOT", "DUPLICATE_WINDOW_S",
           "GroupSubject", "check_mine", "mine_prefix", "group_partition", "telemetry_subject", "history_subject",
           "status_subject", "mine_subjects", "partition_filter", "parse_subject", "subject_for_topic",
           "msg_id", "js_api_prefix", "mqtt_subscriptions"]

DEFAULT_PARTITIONS = 16
MINE_STREAM = "MINE"
GROUP_STREAM = "GROUP"
CENTRE_DOMAIN = "centre"
SUBJECT_ROOT = "mw"
DUPLICATE_WINDOW_S = 600  # a forwarder's redelivery after a crash is dropped within this window
_MINE = re.compile(r"\A[a-z0-9][a-z0-9_-]{0,31}\Z")
_TOKEN = re.compile(r"\A[A-Za-z0-9_~-]{1,64}\Z")


def check_mine(mine: str) -> str:
    """``mine`` if it can be a mine id: a JetStream domain, a subject token, part of a database name
    (lower-case letters, digits, ``_``, ``-``; 1-32, starting with a letter or digit; not the
    centre's domain)."""
    if not _MINE.match(mine) or mine == CENTRE_DOMAIN:
        raise ValueError(f"mine id {mine!r}: lower-case letters, digits, '_' or '-', 1-32, starting with a letter "
                         f"or digit (and not {CENTRE_DOMAIN!r})")
    return mine


def _check_partitions(partitions: int) -> int:
    if partitions < 1:
        raise ValueError(f"the partition count must be at least 1, got {partitions}")
    return partitions


def group_partition(mine: str, scenario: str, partitions: int = DEFAULT_PARTITIONS) -> int:
    """The partition of a mine's scenario: ``crc32("<mine>/<scenario>") % partitions``."""
    return zlib.crc32(f"{mine}/{scenario}".encode()) % _check_partitions(partitions)


def _token(level: str, what: str) -> str:
    token = level.replace(".", "~")
    if not _TOKEN.match(token):
        raise ValueError(f"{what} {level!r} cannot be a subject token (letters, digits, '_', '.', '-'; 1-64)")
    return token


def _level(token: str) -> str:
    return token.replace("~", ".")


def telemetry_subject(mine: str, scenario: str, robot: str, partitions: int = DEFAULT_PARTITIONS) -> str:
    return (f"{SUBJECT_ROOT}.{check_mine(mine)}.{group_partition(mine, scenario, partitions)}.telemetry."
            f"{_token(scenario, 'scenario')}.{_token(robot, 'robot')}")


def history_subject(mine: str, scenario: str, robot: str, partitions: int = DEFAULT_PARTITIONS) -> str:
    return (f"{SUBJECT_ROOT}.{check_mine(mine)}.{group_partition(mine, scenario, partitions)}.history."
            f"{_token(scenario, 'scenario')}.{_token(robot, 'robot')}")


def status_subject(mine: str, robot: str) -> str:
    return f"{SUBJECT_ROOT}.{check_mine(mine)}.status.{_token(robot, 'robot')}"


def mine_subjects(mine: str) -> str:
    """The subjects of one mine's stream ``MINE``."""
    return f"{SUBJECT_ROOT}.{check_mine(mine)}.>"


def partition_filter(part: int, mine: str = "*") -> str:
    """A consumer filter for partition ``part`` (of every mine by default); statuses are not in it."""
    return f"{SUBJECT_ROOT}.{mine}.{part}.>"


def js_api_prefix(domain: str) -> str:
    """The JetStream API of a domain, as another domain reaches it."""
    return f"$JS.{domain}.API"


def mine_prefix(mine: str, base: str = "minewatch/v1") -> str:
    """The MQTT topic prefix of one mine on the centre's alert broker: ``<base>/mines/<mine>``."""
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
    if len(t) == 4 and t[0] == SUBJECT_ROOT and t[2] == "status" and _MINE.match(t[1]):
        return GroupSubject(t[1], -1, "status", "", _level(t[3]))
    if len(t) == 6 and t[0] == SUBJECT_ROOT and t[3] in ("telemetry", "history") and t[2].isdigit() and _MINE.match(t[1]):
        return GroupSubject(t[1], int(t[2]), t[3], _level(t[4]), _level(t[5]))
    return None


def subject_for_topic(mine: str, topic: str, prefix: str, partitions: int = DEFAULT_PARTITIONS) -> str:
    """The subject a mine's MQTT message goes to; ValueError for a topic the group does not carry."""
    if not topic.startswith(prefix + "/"):
        raise ValueError(f"topic {topic!r} is not under the prefix {prefix!r}")
    levels = topic[len(prefix) + 1:].split("/")
    if len(levels) == 3 and levels[0] == "telemetry":
        return telemetry_subject(mine, levels[1], levels[2], partitions)
    if len(levels) == 3 and levels[0] == "history":
        return history_subject(mine, levels[1], levels[2], partitions)
    if len(levels) == 2 and levels[0] == "status":
        return status_subject(mine, levels[1])
    raise ValueError(f"topic {topic!r} is not telemetry, history or a status")


def mqtt_subscriptions(prefix: str) -> list[str]:
    """The topic filters the forwarder subscribes to on the mine's broker."""
    Topics(prefix)  # a valid prefix
    return [f"{prefix}/telemetry/+/+", f"{prefix}/history/+/+", f"{prefix}/status/+"]


def msg_id(topic: str, payload: bytes) -> str:
    """The ``Nats-Msg-Id`` of a message: hex of the first 16 bytes of sha256(topic NUL payload), the
    same for every redelivery of it."""
    return hashlib.sha256(topic.encode() + b"\0" + payload).digest()[:16].hex()
