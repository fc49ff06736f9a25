"""Replay jobs (placeholder until the engine lands)."""

from __future__ import annotations

from typing import Any


class ReplayManager:
    def __init__(self, influx: Any, metrics: Any, calendar: Any) -> None:
        self.influx = influx

    async def aclose(self) -> None:
        return None
