"""The pure parts of the worker's JetStream side: a delivery's stream time and count read from its
acknowledgement subject, and an operator's acknowledgement routed to its mine and scenario."""

from __future__ import annotations

import orjson
import pytest

from ingest.jsconsumer import ack_route, delivery

TM = 1_795_852_800_123_456_789


@pytest.mark.parametrize(("reply", "want"), [
    (f"$JS.ACK.GROUP.part-3.1.41.17.{TM}.5", (TM, 1)),                    # nats-server 2.9's form
    (f"$JS.ACK.GROUP.part-3.4.41.17.{TM}.0", (TM, 4)),                    # delivered a fourth time
    (f"$JS.ACK.centre.ACCHASH.GROUP.part-3.2.41.17.{TM}.0.tok", (TM, 2)),  # with domain and account hash
    ("_INBOX.abc.def", (0, 1)),                                            # not an acknowledgement subject
    ("$JS.ACK.GROUP.part-3.x.41.17.y.5", (0, 1)),
])
def test_delivery_read_from_the_ack_subject(reply: str, want: tuple[int, int]) -> None:
    assert delivery(reply) == want


def test_ack_routed_to_its_mine_and_scenario() -> None:
    body = orjson.dumps({"alert_id": "mf01.ch4_t1.gas_limit.1", "scenario_id": "mf01", "operator": "op"})
    assert ack_route("minewatch/v1/mines/m007/alerts/ack/mf01.ch4_t1.gas_limit.1", body, "minewatch/v1") == \
        ("m007", "mf01")
    assert ack_route("minewatch/v1/mines/m007/incidents/ack/x", orjson.dumps({"incident_id": "x"}),
                     "minewatch/v1") == ("m007", None)
    assert ack_route("minewatch/v1/mines/m007/alerts/ack/x", b"not json", "minewatch/v1") == ("m007", None)
    assert ack_route("minewatch/v1/mines/m007/alerts/active/x", body, "minewatch/v1") is None
    assert ack_route("other/v1/mines/m007/alerts/ack/x", body, "minewatch/v1") is None
    assert ack_route("minewatch/v1/mines//alerts/ack/x", body, "minewatch/v1") is None
