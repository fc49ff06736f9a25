"""Fast encoding and decoding of telemetry frames on the hot path.

:class:`Frame` is a msgspec struct with exactly the fields and constraints of
:class:`minewatch.schema.TelemetryFrame` (``tests/test_contract.py`` holds the two together), so
the ingestor can decode and validate tens of thousands of frames a second, and the simulator can
encode them as fast. Use the pydantic model for documentation and schemas, this for throughput.

:func:`decode_frames` is the general decoder. :func:`decode_frames_on` is the ingestor's hot path
for a payload that arrived on the telemetry topic of one robot: it checks the two ids once
against the topic instead of matching every frame's ids against the id pattern (msgspec calls
back into Python's ``re`` for that, which is most of the decoding time), and it vouches only for
payloads that :func:`decode_frames` would accept with every frame on that topic; for anything else
it answers None and the caller asks :func:`decode_frames` for the verdict and the reason.
"""

from __future__ import annotations

import binascii
import math
import re
from collections.abc import Iterable
from typing import Annotated, Any, Literal

import msgspec

from minewatch.schema import ID_PATTERN

__all__ = ["Frame", "LinkInfo", "WaveBlock", "decode_frames", "decode_frames_on", "FramesOnTopic", "encode_frame",
           "encode_frames", "FrameError", "is_id"]

# ``\Z``, not ``$``: in Python's ``re`` (which msgspec uses) ``$`` also matches before a final
# newline, so "r01\n" would pass here while the pydantic contract (and the topic check) refuse it.
_ID_PATTERN = ID_PATTERN.removesuffix("$") + r"\Z"
_Id = Annotated[str, msgspec.Meta(pattern=_ID_PATTERN)]
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
    boot: Annotated[int, msgspec.Meta(ge=0, le=2**63 - 1)] | None = None
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
        why = _wave_data_fault(w)
        if why:
            raise FrameError("bad_waveform", f"waveform {k!r}: {why}")


def _wave_data_fault(w: WaveBlock) -> str | None:
    """Why a block's ``data`` is not whole samples of its dtype in base64, or None."""
    try:
        raw = binascii.a2b_base64(w.data, strict_mode=True)
    except (binascii.Error, ValueError):
        return "data is not base64"
    if not raw or len(raw) % (4 if w.dtype == "f4" else 2):
        return f"data is {len(raw)} bytes, not whole {w.dtype} samples"
    return None


def _is_array(payload: bytes) -> bool:
    """Whether the JSON ``payload`` is an array (copying it only when it starts with whitespace)."""
    head = payload[:1]
    if head and head in b" \t\r\n":
        head = payload.lstrip()[:1]
    return head == b"["


def decode_frames(payload: bytes) -> list[Frame]:
    """Decode one frame or a JSON array of frames; raise :class:`FrameError` with a reason."""
    if not payload:
        raise FrameError("empty", "empty payload")
    try:
        frames = _frames_dec.decode(payload) if _is_array(payload) else [_frame_dec.decode(payload)]
    except msgspec.ValidationError as exc:
        raise FrameError("invalid", str(exc)) from None
    except msgspec.DecodeError as exc:
        raise FrameError("not_json", str(exc)) from None
    if not frames:
        raise FrameError("empty", "empty array")
    for f in frames:
        _check(f)
    return frames


# -- the ingestor's hot path -----------------------------------------------------------------------
# Every constraint of Frame except the ids' pattern, plus _check's waveform dtype. _check's finite
# readings need nothing: msgspec refuses a number beyond the float range ("Number out of range").
# gc=False: a frame holds no cycles, and a batch of them is tens of thousands of objects the
# collector would otherwise walk again and again.
class _OnTopicLink(LinkInfo, forbid_unknown_fields=True, omit_defaults=True, gc=False):
    pass


class _OnTopicWave(WaveBlock, forbid_unknown_fields=True, omit_defaults=True, gc=False):
    dtype: Literal["f4", "i2"] = "f4"


class _OnTopicFrame(Frame, forbid_unknown_fields=True, omit_defaults=True, gc=False):
    """A :class:`Frame` decoded on its robot's topic: the ids are compared with the topic's."""

    robot_id: str
    scenario_id: str
    link: _OnTopicLink | None = None
    waveforms: dict[str, _OnTopicWave] = {}  # type: ignore[assignment]  # narrowed for decoding only


_id_ok = re.compile(_ID_PATTERN).match


def _decode_on(dec: msgspec.json.Decoder[Any], one: msgspec.json.Decoder[Any], payload: bytes, scenario_id: str,
               robot_id: str) -> list[Frame] | None:
    if not (_id_ok(robot_id) and _id_ok(scenario_id)):
        return None
    try:
        frames: list[Frame] = dec.decode(payload) if _is_array(payload) else [one.decode(payload)]
    except msgspec.DecodeError:  # ValidationError included
        return None
    if not frames:
        return None
    for f in frames:
        if f.robot_id != robot_id or f.scenario_id != scenario_id:
            return None
        if f.waveforms and any(_wave_data_fault(w) for w in f.waveforms.values()):
            return None  # the checked way names the reason
    return frames


_on_topic = (msgspec.json.Decoder(list[_OnTopicFrame]), msgspec.json.Decoder(_OnTopicFrame))


def decode_frames_on(payload: bytes, scenario_id: str, robot_id: str) -> list[Frame] | None:
    """The frames of ``payload`` if :func:`decode_frames` accepts it and every frame carries
    ``scenario_id`` and ``robot_id`` (the ids of the topic it came on, which must be ids); None
    otherwise (then :func:`decode_frames` and the comparison with the topic give the reason).

    The frames are instances of a subclass of :class:`Frame`, with equal field values.
    """
    return _decode_on(*_on_topic, payload, scenario_id, robot_id)


class FramesOnTopic:
    """:func:`decode_frames_on` that also vouches for the reading names: only payloads whose every
    reading name is one of ``channels`` (checked by the caller beforehand) get frames; for the
    rest it answers None, and the caller checks the names and may :meth:`learn` them.

    The names become a ``Literal`` of the decoder's frame type, so msgspec tests each key against
    them as it decodes (and hands back one shared string per name) instead of the caller looking
    every key up afterwards. At most ``max_names`` names are learnt; past that, frames with other
    names keep taking the caller's checked way.
    """

    def __init__(self, channels: Iterable[str] = (), max_names: int = 4096) -> None:
        self.max_names = max_names
        self.names: frozenset[str] = frozenset(list(channels)[:max_names])
        self._build()

    def learn(self, names: Iterable[str]) -> None:
        new = self.names | set(names)
        if new != self.names and len(new) <= self.max_names:
            self.names = new
            self._build()

    def _build(self) -> None:
        # no names yet: a key no channel can have (a space), so any reading takes the checked way
        # types built at run time from the names seen so far: nothing a type checker can follow
        keys = Literal[tuple(sorted(self.names)) or (" ",)]  # type: ignore[valid-type]  # built at run time
        cls = msgspec.defstruct("_OnTopicFrame", [("readings", dict[keys, float | None], {})],  # type: ignore[valid-type]  # built at run time
                                bases=(_OnTopicFrame,), forbid_unknown_fields=True, omit_defaults=True, gc=False)
        self._dec = (msgspec.json.Decoder(list[cls]), msgspec.json.Decoder(cls))  # type: ignore[valid-type]  # built at run time

    def decode(self, payload: bytes, scenario_id: str, robot_id: str) -> list[Frame] | None:
        return _decode_on(*self._dec, payload, scenario_id, robot_id)

    def decode_one(self, payload: bytes, scenario_id: str, robot_id: str) -> Frame | None:
        """The frame of a one-frame payload (a JSON object), as :meth:`decode` gives it, for ids the
        caller has checked against the id pattern (:func:`is_id`); None for an array and wherever
        :meth:`decode` would answer None."""
        try:
            f: Frame = self._dec[1].decode(payload)  # type: ignore[assignment]  # a Frame subclass built at run time
        except msgspec.DecodeError:  # ValidationError included; an array as well
            return None
        if f.robot_id != robot_id or f.scenario_id != scenario_id:
            return None
        if f.waveforms and any(_wave_data_fault(w) for w in f.waveforms.values()):
            return None
        return f


def is_id(s: str) -> bool:
    """Whether ``s`` is an id (robot, scenario) of the contract's id alphabet."""
    return _id_ok(s) is not None


def encode_frame(frame: Frame) -> bytes:
    return _enc.encode(frame)


def encode_frames(frames: list[Frame]) -> bytes:
    return _enc.encode(frames)
