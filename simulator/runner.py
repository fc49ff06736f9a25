"""Drive a simulation into its sinks: real time, accelerated, or as fast as possible."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from simulator.engine import Simulation, Tick
from simulator.sinks import MqttSink
from simulator.timeutil import NS

__all__ = ["Sink", "Summary", "run"]


class Sink(Protocol):
    def write(self, tick: Tick) -> None: ...

    def close(self) -> None: ...


@dataclass
class Summary:
    frames: int
    messages: int
    readings: int
    seconds: float
    simulated_s: float
    max_lag_s: float = 0.0  # paced runs: the most a tick was written after its due time
    mean_lag_s: float = 0.0  # and on average

    def as_dict(self) -> dict[str, float | int]:
        out: dict[str, float | int] = {"frames": self.frames, "messages": self.messages, "readings": self.readings,
                                       "seconds": round(self.seconds, 3), "simulated_s": round(self.simulated_s, 3)}
        if self.max_lag_s:
            out["max_lag_s"] = round(self.max_lag_s, 3)
            out["mean_lag_s"] = round(self.mean_lag_s, 4)
        return out


def run(sim: Simulation, sinks: list[Sink], speed: float | None = None,
        should_stop: Callable[[], bool] = lambda: False) -> Summary:
    """Write every tick to every sink; ``speed`` simulated seconds per wall second (None: max).

    MQTT sinks are pumped while waiting and drained (every publish acknowledged) at the end.
    Sinks are not closed here.
    """
    mqtt = [s for s in sinks if isinstance(s, MqttSink)]
    wall0 = time.monotonic()
    messages = 0
    last_t = sim.t0
    max_lag = sum_lag = 0.0
    ticks = 0
    for tick in sim.ticks():
        if speed is not None:
            due = wall0 + (tick.t_ns - sim.t0) / NS / speed
            while not should_stop():
                left = due - time.monotonic()
                if left <= 0:
                    break
                if mqtt:
                    for m in mqtt:
                        m.pump(min(left, 0.05) / len(mqtt))
                else:
                    time.sleep(min(left, 0.05))
        for sink in sinks:
            sink.write(tick)
        if speed is not None:
            lag = max(0.0, time.monotonic() - due)
            max_lag = max(max_lag, lag)
            sum_lag += lag
            ticks += 1
        messages += len(tick.messages)
        last_t = tick.t_ns
        if should_stop():
            break
    for m in mqtt:
        m.drain()
    return Summary(sim.frames_generated, messages, sim.readings_generated, time.monotonic() - wall0,
                   (last_t - sim.t0) / NS, max_lag, sum_lag / max(1, ticks))
