"""The group's names (minewatch.group), the rendered server configurations, and ``MINE``'s
duplicate window on a real JetStream server."""

from __future__ import annotations

import asyncio
import hashlib
import zlib

import nats
import pytest

from group.servers import centre_nodes, render_centre_node, render_leaf_node
from group.streams import ensure_mine_stream, group_stream_config, sourced_mines
from minewatch.group import (MINE_STREAM, check_mine, group_partition, history_subject, msg_id, parse_subject,
                             partition_filter, status_subject, subject_for_topic, telemetry_subject)
from minewatch.services import NatsServer


def test_the_partition_is_crc32_of_mine_and_scenario_modulo_the_count() -> None:
    for mine, scenario, p in (("m001", "s1", 16), ("m042", "face-3", 16), ("m7", "x", 5)):
        assert group_partition(mine, scenario, p) == zlib.crc32(f"{mine}/{scenario}".encode()) % p
    spread = {group_partition(f"m{i:03d}", "s1", 16) for i in range(200)}
    assert spread == set(range(16))
    with pytest.raises(ValueError):
        group_partition("m001", "s1", 0)


def test_subjects_from_topics_and_back() -> None:
    prefix = "minewatch/v1"
    p = group_partition("m001", "s1", 16)
    assert subject_for_topic("m001", f"{prefix}/telemetry/s1/r42", prefix) == f"mw.m001.{p}.telemetry.s1.r42"
    assert subject_for_topic("m001", f"{prefix}/history/s1/r42", prefix) == history_subject("m001", "s1", "r42")
    assert subject_for_topic("m001", f"{prefix}/status/r42", prefix) == "mw.m001.status.r42"
    for topic in (f"{prefix}/telemetry/s1/r42", f"{prefix}/history/face.3/r.1", f"{prefix}/status/r.9"):
        s = subject_for_topic("m001", topic, prefix, 8)
        parsed = parse_subject(s)
        assert parsed is not None and parsed.topic(prefix) == topic and parsed.mine == "m001"
    assert "." not in telemetry_subject("m001", "face.3", "r1").split(".", 4)[4].replace(".r1", "")
    for bad in (f"{prefix}/alerts/s1/gas", "other/telemetry/s1/r1", f"{prefix}/telemetry/s1", f"{prefix}/status/a b"):
        with pytest.raises(ValueError):
            subject_for_topic("m001", bad, prefix)
    assert parse_subject("mw.m001.x.telemetry.s1.r1") is None and parse_subject("foo.bar") is None
    assert partition_filter(3) == "mw.*.3.>" and status_subject("m001", "r1") == "mw.m001.status.r1"


def test_mine_ids_that_cannot_be_a_domain_are_refused() -> None:
    assert check_mine("m001") == "m001"
    for bad in ("", "M001", "m.1", "m 1", "centre", "x" * 33, "-m"):
        with pytest.raises(ValueError):
            check_mine(bad)


def test_the_message_id_is_the_first_16_bytes_of_sha256_of_topic_nul_payload() -> None:
    assert msg_id("a/b", b"{}") == hashlib.sha256(b"a/b\0{}").hexdigest()[:32]
    assert msg_id("a/b", b"{}") != msg_id("a/c", b"{}") != msg_id("a/b", b"{ }")


def test_configurations_name_every_route_and_every_centre_node() -> None:
    nodes = centre_nodes(3, ports=[(4222, 6222, 7422), (4223, 6223, 7423), (4224, 6224, 7424)])
    c1 = render_centre_node(nodes[0], nodes, "/data/c1")
    assert '"nats-route://127.0.0.1:6223", "nats-route://127.0.0.1:6224"' in c1 and "6222\"]" not in c1
    assert 'domain: "centre"' in c1 and 'listen: "127.0.0.1:7422"' in c1
    leaf = render_leaf_node("m001", "127.0.0.1", 4300, "/data/m001", [n.leaf_url for n in nodes])
    assert 'domain: "m001"' in leaf and all(f"nats-leaf://127.0.0.1:{p}" in leaf for p in (7422, 7423, 7424))
    assert "remotes" not in render_leaf_node("m001", "127.0.0.1", 4300, "/data/m001", [])
    cfg = group_stream_config(["m002", "m001", "m002"])
    assert [s.external.api for s in cfg.sources or [] if s.external] == ["$JS.m001.API", "$JS.m002.API"]


def test_mine_drops_a_redelivered_message_within_its_duplicate_window(nats_single: NatsServer) -> None:
    async def go() -> tuple[list[bool], int]:
        nc = await nats.connect(nats_single.url)
        try:
            js = nc.jetstream()
            await ensure_mine_stream(js, "m001")
            await ensure_mine_stream(js, "m001")  # a second run keeps the stream
            subject, payload = telemetry_subject("m001", "s1", "r1"), b'{"seq": 1}'
            dup = [bool((await js.publish(subject, payload, headers={"Nats-Msg-Id": msg_id("t", payload)})).duplicate)
                   for _ in range(3)]
            with pytest.raises(ValueError):
                await ensure_mine_stream(js, "m002")  # another mine's stream: refused, not changed
            return dup, (await js.stream_info(MINE_STREAM)).state.messages
        finally:
            await nc.close()

    dup, stored = asyncio.run(go())
    assert dup == [False, True, True] and stored == 1


def test_sourced_mines_reads_the_sources_back() -> None:
    from nats.js.api import StreamInfo

    cfg = group_stream_config(["m003", "m001"])
    info = StreamInfo.from_response({"config": cfg.as_dict(), "state": {"messages": 0, "bytes": 0, "first_seq": 0,
                                                                         "last_seq": 0, "consumer_count": 0}})
    assert sourced_mines(info) == ["m001", "m003"]
