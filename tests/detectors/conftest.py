from __future__ import annotations

import numpy as np
import pytest

from minewatch.wire import Frame

T0 = 1_795_852_800_000_000_000  # 2026-11-28 00:00 UTC, ns
S = 1_000_000_000


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(20261128)


def frame(robot: str, scenario: str, i: int, readings: dict[str, float | None], *, dt_s: float = 1.0,
          t0: int = T0) -> Frame:
    return Frame(robot_id=robot, scenario_id=scenario, seq=i, ts=t0 + int(i * dt_s * S), readings=readings)


def series(robot: str, scenario: str, channel: str, values, *, dt_s: float = 1.0, start: int = 0,
           extra: dict[str, float] | None = None) -> list[Frame]:
    return [frame(robot, scenario, start + i, {channel: v, **(extra or {})}, dt_s=dt_s) for i, v in enumerate(values)]
