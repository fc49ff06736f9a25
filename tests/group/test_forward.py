"""The forwarder and the group's streams with real servers: a mosquitto, the centre's three-node
cluster, a mine's leaf node (its link to the centre cut by restarting it without its leafnode remote).

Each test publishes its own numbered messages (a tag of its own in every payload) and reads back
``MINE`` on the leaf and ``GROUP`` at the centre with a plain consumer: every message exactly
once, in order per subject. The link is cut for a few seconds here (``bench/group.py`` cuts it
for a minute).
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections import defaultdict
from pathlib import Path

import nats
import pytest

from group.servers import Centre
from minewatch.group import GROUP_STREAM, MINE_STREAM, parse_subject
from minewatch.services import Mosquitto
from tests.group.topo import Mine
from tests.group.topo import ForwardProcess, read_stream, stream_count, wait_until
from tests.ingest.helpers import Publisher

pytestmark = pytest.mark.integration

SCENARIOS = ("s1", "s2", "s3")
ROBOTS = ("ra", "rb")


def _topic(prefix: str, i: int) -> str:
    return f"{prefix}/telemetry/{SCENARIOS[i % 3]}/{ROBOTS[(i // 3) % 2]}"


def _publish(broker: Mosquitto, prefix: str, tag: str, n: int, start: int = 0, pace_every: int = 0) -> Publisher:
    pub = Publisher(broker.url)
    for i in range(start, start + n):
        pub.publish(_topic(prefix, i), json.dumps({"tag": tag, "i": i}).encode())
        if pace_every and i % pace_every == 0:
            time.sleep(0.01)
    pub.flush()
    pub.close()
    return pub


def _forwarder(tmp_path: Path, broker: Mosquitto, mine: Mine, prefix: str, client_id: str,
               procs: list[ForwardProcess]) -> ForwardProcess:
    fwd = ForwardProcess(tmp_path / "forward.log", "--mine", mine.id, "--nats", mine.leaf.url, "--mqtt-url", broker.url,
                         "--topic-prefix", prefix, "--client-id", client_id, "--batch", "200").start()
    procs.append(fwd)
    wait_until(lambda: "forwarding mine" in fwd.log() or not fwd.alive, 30, "the forwarder to subscribe")
    assert fwd.alive, fwd.log()
    return fwd


def _tagged(messages: list[tuple[str, bytes]], tag: str) -> dict[str, list[int]]:
    """subject -> the message numbers of ``tag`` on it, in stream order."""
    out: dict[str, list[int]] = defaultdict(list)
    for subject, payload in messages:
        body = json.loads(payload)
        if body.get("tag") == tag:
            out[subject].append(body["i"])
    return out


def _assert_each_once_in_order(by_subject: dict[str, list[int]], n: int, mine: str, prefix: str) -> None:
    every = sorted(i for seq in by_subject.values() for i in seq)
    assert every == list(range(n)), f"{len(every)} messages of {n}, {len(every) - len(set(every))} duplicated"
    for subject, seq in by_subject.items():
        assert seq == sorted(seq), f"out of order on {subject}"
        parsed = parse_subject(subject)
        assert parsed is not None and parsed.mine == mine
        assert all(parsed.topic(prefix) == _topic(prefix, i) for i in seq)


def _wait_tagged(urls: list[str] | str, stream: str, tag: str, n: int, timeout: float,
                 domain: str | None = None) -> dict[str, list[int]]:
    got: dict[str, dict[str, list[int]]] = {}

    def done() -> bool:
        try:
            got["last"] = _tagged(read_stream(urls, stream, domain=domain), tag)
        except (nats.errors.Error, TimeoutError):  # a stream leader being elected: ask again
            return False
        return sum(len(v) for v in got["last"].values()) >= n

    try:
        wait_until(done, timeout, f"{n} messages of {tag} in {stream}", interval=0.5)
    except TimeoutError as e:
        have = sum(len(v) for v in got.get("last", {}).values())
        raise TimeoutError(f"{e}; {have} of them there at the end") from None
    return got["last"]


def test_a_forwarder_killed_mid_stream_leaves_every_message_in_mine_once(mosquitto: Mosquitto, centre: Centre,
                                                                          mine: Mine, tmp_path: Path,
                                                                          prefix: str,
                                                                          forwarders: list[ForwardProcess]) -> None:
    tag, n = uuid.uuid4().hex[:8], 3000
    fwd = _forwarder(tmp_path, mosquitto, mine, prefix, f"fw-{tag}", forwarders)
    base = stream_count(mine.leaf.url, MINE_STREAM)
    sender = threading.Thread(target=_publish, args=(mosquitto, prefix, tag, n), kwargs={"pace_every": 50})
    sender.start()
    wait_until(lambda: stream_count(mine.leaf.url, MINE_STREAM) >= base + n // 4, 30, "a quarter in MINE", 0.02)
    fwd.kill()
    killed_at = stream_count(mine.leaf.url, MINE_STREAM) - base
    fwd = _forwarder(tmp_path, mosquitto, mine, prefix, f"fw-{tag}", forwarders)
    sender.join(60)
    in_mine = _wait_tagged(mine.leaf.url, MINE_STREAM, tag, n, 30)
    assert 0 < killed_at < n, "the forwarder was not killed mid-stream"
    _assert_each_once_in_order(in_mine, n, mine.id, prefix)
    assert stream_count(mine.leaf.url, MINE_STREAM) == base + n  # nothing else stored: no duplicate at all
    in_group = _wait_tagged(centre.urls, GROUP_STREAM, tag, n, 30)
    assert in_group == in_mine
    assert fwd.terminate() == 0


def test_the_backlog_of_a_cut_link_reaches_the_centre_in_order_once_it_is_back(mosquitto: Mosquitto, centre: Centre,
                                                                                 mine: Mine, tmp_path: Path,
                                                                                 prefix: str,
                                                                          forwarders: list[ForwardProcess]) -> None:
    tag, n = uuid.uuid4().hex[:8], 2000
    fwd = _forwarder(tmp_path, mosquitto, mine, prefix, f"fw-{tag}", forwarders)
    mine.cut()
    try:
        _publish(mosquitto, prefix, tag, n)
        in_mine = _wait_tagged(mine.leaf.url, MINE_STREAM, tag, n, 30)  # the mine goes on while cut off
        time.sleep(1.0)
        assert _tagged(read_stream(centre.urls, GROUP_STREAM), tag) == {}, "the link was not cut"
    finally:
        mine.restore()
    in_group = _wait_tagged(centre.urls, GROUP_STREAM, tag, n, 40)
    _assert_each_once_in_order(in_group, n, mine.id, prefix)
    assert in_group == in_mine
    assert fwd.terminate() == 0


def test_a_centre_node_killed_mid_stream_loses_nothing_in_group(mosquitto: Mosquitto, centre: Centre, mine: Mine,
                                                                tmp_path: Path, prefix: str,
                                                                forwarders: list[ForwardProcess]) -> None:
    import asyncio

    async def leader() -> str:
        nc = await nats.connect(centre.urls)
        try:
            info = await nc.jetstream().stream_info(GROUP_STREAM)
            assert info.cluster is not None and info.cluster.leader
            return info.cluster.leader
        finally:
            await nc.close()

    tag, n = uuid.uuid4().hex[:8], 3000
    fwd = _forwarder(tmp_path, mosquitto, mine, prefix, f"fw-{tag}", forwarders)
    base = stream_count(centre.urls, GROUP_STREAM)
    sender = threading.Thread(target=_publish, args=(mosquitto, prefix, tag, n), kwargs={"pace_every": 30})
    sender.start()
    wait_until(lambda: stream_count(centre.urls, GROUP_STREAM) >= base + n // 5, 30, "a fifth in GROUP", 0.02)
    victim = asyncio.run(leader())
    centre.servers[victim].kill()  # the GROUP stream's leader: the hardest node to lose
    try:
        sender.join(60)
        # a new leader is elected and the forwarder reconnects first: slow on a loaded machine
        in_group = _wait_tagged([u for n_, u in zip(centre.nodes, centre.urls) if n_.name != victim], GROUP_STREAM,
                                tag, n, 90)
        _assert_each_once_in_order(in_group, n, mine.id, prefix)
    finally:
        centre.servers[victim].start()
    assert fwd.terminate() == 0
