"""Fast encoding and decoding of telemetry frames on the hot path.

:class:`Frame` is a msgspec struct with exactly the fields and constraints of
:class:`minewatch.schema.TelemetryFrame` (``tests/test_contract.py`` holds the two together), so
the ingestor can decode and validate tens of thousands of frames a second, and the simulator can
encode them as fast. Use the pydantic model for documentation and schemas, this for throughput.
"""

from __future__ import annotations

import math
from typing import Annotated

import msgspec

from minewatch.schema import ID_PATTERN

__all__ = ["Frame", "LinkInfo", "WaveBlock", "decode_frames", "encode_frame", "encode_frames", "FrameError"]

_Id = Annotated[str, msgspec.Meta(pattern=ID_PATTERN)]
_Nanos = Annotated[int, msgspec.Meta(ge=0, le=2**63 - 1)]


class FrameError(ValueError):
    """A payload that is not a valid telemetry frame; ``reason`` is a short topic-safe code."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail


class LinkInfo(msgspec.Struct, forbid_unknown_fields=True, omit_defaults=True, gc=False):
    latency_ms: Annotated[float, msgspec.Meta(ge=0)]
    rssi_dbm: Annotated[float, msgspec.Meta(ge=-150, le=0)]
    loss: Annotated[float, msgspec.Meta(ge=0, le=1)] = 0.0


class WaveBlock(msgspec.Struct, forbid_unknown_fields=True, omit_defaults=True, gc=False):
    rate_hz: Annotated[float, msgspec.Meta(gt=0, le=1_000_000)]
    data: str
    dtype: str = "f4"
    scale: Annotated[float, msgspec.Meta(gt=0)] = 1.0
    rpm: Annotated[float, msgspec.Meta(ge=0)] | None = None


class Frame(msgspec.Struct, forbid_unknown_fields=True, omit_defaults=True, gc=False):
    robot_id: _Id
    scenario_id: _Id
    seq: Annotated[int, msgspec.Meta(ge=0, le=2**63 - 1)]
    ts: _Nanos
    readings: dict[str, float | None] = {}
    pos_m: float | None = None
    battery: Annotated[float, msgspec.Meta(ge=0, le=100)] | None = None
    link: LinkInfo | None = None
    waveforms: dict[str, WaveBlock] = {}


_frame_dec = msgspec.json.Decoder(Frame)
_frames_dec = msgspec.json.Decoder(list[Frame])
_enc = msgspec.json.Encoder()


def _check(f: Frame) -> None:
    for k, v in f.readings.items():
        if v is not None and not math.isfinite(v):
            raise FrameError("bad_value", f"reading {k!r} is not a finite number")
    for k, w in f.waveforms.items():
        if w.dtype not in ("f4", "i2"):
            raise FrameError("bad_waveform", f"waveform {k!r} dtype must be f4 or i2, got {w.dtype!r}")


def decode_frames(payload: bytes) -> list[Frame]:
    """Decode one frame or a JSON array of frames; raise :class:`FrameError` with a reason."""
    if not payload:
        raise FrameError("empty", "empty payload")
    head = payload.lstrip()[:1]
    try:
        frames = _frames_dec.decode(payload) if head == b"[" else [_frame_dec.decode(payload)]
    except msgspec.ValidationError as exc:
        raise FrameError("invalid", str(exc)) from None
    except msgspec.DecodeError as exc:
        raise FrameError("not_json", str(exc)) from None
    if not frames:
        raise FrameError("empty", "empty array")
    for f in frames:
        _check(f)
    return frames


def encode_frame(frame: Frame) -> bytes:
    return _enc.encode(frame)


def encode_frames(frames: list[Frame]) -> bytes:
    return _enc.encode(frames)
