"""A telemetry frame as stream clients get it: shared by the live state and the replays."""

from __future__ import annotations

from typing import Any

from minewatch.wire import Frame

__all__ = ["frame_json"]


def frame_json(f: Frame, key: tuple[str, str] | None = None) -> dict[str, Any]:
    """A frame as stream clients get it (``reading`` messages): no link, no waveforms. With
    ``key``, the (scenario, robot) of the topic it came on names it."""
    scenario_id, robot_id = key if key is not None else (f.scenario_id, f.robot_id)
    return {"robot_id": robot_id, "scenario_id": scenario_id, "seq": f.seq, "ts": f.ts, "pos_m": f.pos_m,
            "battery": f.battery, "readings": f.readings}
