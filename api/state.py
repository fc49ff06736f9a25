"""What the app holds while it runs: settings, the InfluxDB client, live state, replay jobs."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from api.live import LiveState
    from api.metrics import Metrics
    from api.replay import ReplayManager
    from minewatch.influx import InfluxClient
    from minewatch.settings import Settings
    from minewatch.shifts import ShiftCalendar

__all__ = ["AppState"]


@dataclass
class AppState:
    settings: Settings
    api_keys: dict[str, str]
    influx: InfluxClient
    live: LiveState
    replays: ReplayManager
    calendar: ShiftCalendar
    metrics: Metrics
    ack_wait_s: float = 3.0
