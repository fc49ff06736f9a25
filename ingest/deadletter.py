"""Dead letters: a rejected payload, why, and where it came from.

Published with QoS 0 on ``{prefix}/deadletter/{reason}`` as JSON::

    {"reason": "topic_mismatch", "detail": "...", "topic": "minewatch/v1/telemetry/mf01/r01",
     "payload": "<the message as text>", "payload_encoding": "utf-8" | "base64",
     "payload_bytes": 97, "payload_sha256": "9f2c...", "payload_truncated": false,
     "ts": 1795852800000000000, "partition": "0/1"}

``payload`` is the original bytes as UTF-8 text, or base64 when they are not UTF-8, cut to the
first ``EXCERPT_BYTES`` bytes: a dead letter is always small, whatever it is about (a message the
size of the broker's packet limit, its quotes escaped, would be over it). ``payload_bytes`` and
``payload_sha256`` name the whole message.
"""

from __future__ import annotations

import base64
import hashlib
import time

import orjson

__all__ = ["DeadLetter", "EXCERPT_BYTES", "REASONS"]

# The most of a rejected message a dead letter carries. JSON-escaped (up to 6 characters a byte)
# or base64, with the rest of the letter, it stays far below any broker's packet limit.
EXCERPT_BYTES = 4096
DETAIL_CHARS = 2000

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
    "too_large": "a message over --max-message-bytes",
    "too_many_frames": "a message of more than --max-frames frames",
    "too_many_channels": "a new reading name once --max-channels are known",
    "unknown_robot": "a robot outside the fleet registry (--robots)",
    "ts_out_of_range": "dated older than the raw retention, or ahead of the ingestor's clock past its limit",
}


class DeadLetter:
    __slots__ = ("reason", "detail", "topic", "payload")

    def __init__(self, reason: str, detail: str, topic: str, payload: bytes) -> None:
        self.reason = reason
        self.detail = detail
        self.topic = topic
        self.payload = payload

    def encode(self, partition: str, ts_ns: int | None = None) -> bytes:
        whole = self.payload
        part = whole[:EXCERPT_BYTES]
        try:
            text, enc = part.decode("utf-8"), "utf-8"
        except UnicodeDecodeError as exc:
            if len(part) < len(whole) and exc.start >= len(part) - 3:  # a character cut at the excerpt's end
                part = part[:exc.start]
                try:
                    text, enc = part.decode("utf-8"), "utf-8"
                except UnicodeDecodeError:
                    text, enc = base64.b64encode(part).decode("ascii"), "base64"
            else:
                text, enc = base64.b64encode(part).decode("ascii"), "base64"
        return orjson.dumps({"reason": self.reason, "detail": self.detail[:DETAIL_CHARS], "topic": self.topic[:1024],
                             "payload": text, "payload_encoding": enc, "payload_bytes": len(whole),
                             "payload_sha256": hashlib.sha256(whole).hexdigest(),
                             "payload_truncated": len(part) < len(whole),
                             "ts": time.time_ns() if ts_ns is None else ts_ns, "partition": partition})

    def __repr__(self) -> str:
        return f"DeadLetter({self.reason!r}, {self.detail[:80]!r}, topic={self.topic!r})"
