"""Dead letters: a rejected payload, why, and where it came from.

Published with QoS 0 on ``{prefix}/deadletter/{reason}`` as JSON::

    {"reason": "topic_mismatch", "detail": "...", "topic": "minewatch/v1/telemetry/mf01/r01",
     "payload": "<the message as text>", "payload_encoding": "utf-8" | "base64",
     "ts": 1795852800000000000, "partition": "0/1"}

``payload`` is the original bytes as UTF-8 text, or base64 when they are not UTF-8.
"""

from __future__ import annotations

import base64
import time

import orjson

__all__ = ["DeadLetter", "REASONS"]

# Reasons the ingestor gives (the decoder adds its own: not_json, invalid, empty, bad_value, ...).
REASONS = {
    "topic_mismatch": "the frame's robot or scenario differs from its topic (a robot speaking for another)",
    "unknown_scenario": "the scenario is not in the catalogue",
    "bad_channel": "a reading's name is not a valid channel name or is a reserved field",
    "bad_topic": "the topic is not a telemetry, status or acknowledgement topic",
    "bad_status": "a status payload that is not a valid robot status",
    "bad_ack": "an acknowledgement request that is not valid JSON of the documented shape",
    "ack_unknown_alert": "an acknowledgement for an alert that is not active",
    "influx_rejected": "InfluxDB refused the line (parse error, field type conflict)",
}


class DeadLetter:
    __slots__ = ("reason", "detail", "topic", "payload")

    def __init__(self, reason: str, detail: str, topic: str, payload: bytes) -> None:
        self.reason = reason
        self.detail = detail
        self.topic = topic
        self.payload = payload

    def encode(self, partition: str, ts_ns: int | None = None) -> bytes:
        try:
            text, enc = self.payload.decode("utf-8"), "utf-8"
        except UnicodeDecodeError:
            text, enc = base64.b64encode(self.payload).decode("ascii"), "base64"
        return orjson.dumps({"reason": self.reason, "detail": self.detail[:2000], "topic": self.topic,
                             "payload": text, "payload_encoding": enc,
                             "ts": time.time_ns() if ts_ns is None else ts_ns, "partition": partition})

    def __repr__(self) -> str:
        return f"DeadLetter({self.reason!r}, {self.detail[:80]!r}, topic={self.topic!r})"
