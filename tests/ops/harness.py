"""A mine's ordinary week, played with real processes: robots that publish like robots (their own
numbering, boot and clock), ``minewatch ingest`` as a process, and an observer of what an
operator or integrator would see on the broker (alert and incident events, retained states)."""

from __future__ import annotations

import json
import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from minewatch.catalogue import SCENARIOS
from minewatch.topics import Topics
from minewatch.wire import Frame, LinkInfo, encode_frame
from tests.ingest.helpers import Collector, IngestProcess, Publisher, wait_until

S = 1_000_000_000
# methane past the power-cut level at every methane sensor of a place (CMSR Art.498, domain §1.2)
OUTBURST = 1.8


def ingest_args(broker_url: str, influx_url: str, db: str, prefix: str, data: Path, *extra: str) -> list[str]:
    """The ingestor's command line. The hold of a repeating alert's clear is short: these tests
    raise the same alert again within minutes on purpose, and wait for each clear."""
    return ["--mqtt-url", broker_url, "--influx-url", influx_url, "--influx-db", db, "--topic-prefix", prefix,
            "--client-id", f"ing-{prefix.split('/')[0]}", "--spool-dir", str(data / "spool"), "--batch-ms", "50",
            "--log-level", "info", "--repeat-hold", "3", *extra]


def start_ingest(proc: IngestProcess, timeout: float = 60) -> IngestProcess:
    """Wait until a started ``minewatch ingest`` has warmed up and subscribed."""
    n = proc.log().count("connected to the broker")
    wait_until(lambda: proc.log().count("connected to the broker") > n or not proc.alive, timeout,
               "the ingestor to connect")
    assert proc.alive, proc.log()
    return proc


class Robot:
    """One robot publishing one frame per message: its own ``seq`` (from 0 after a reboot), its
    ``boot`` (None: it sends none) and its clock (``clock_s`` off the true time)."""

    def __init__(self, pub: Publisher, topics: Topics, robot_id: str, scenario_id: str, *, boot: int | None = None,
                 clock_s: float = 0.0, seed: int = 1) -> None:
        self.pub, self.topics = pub, topics
        self.robot_id, self.scenario_id = robot_id, scenario_id
        self.boot, self.clock_s = boot, clock_s
        self.seq = 0
        self.rng = random.Random(seed)
        self.sent: list[tuple[float, Frame]] = []  # (wall time published, frame)
        self.lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()
        self.override: dict[str, float] = {}

    def reboot(self, boot: int | None = None) -> None:
        with self.lock:
            self.seq = 0
            self.boot = boot

    def readings(self) -> dict[str, float | None]:
        sc = SCENARIOS[self.scenario_id]
        out: dict[str, float | None] = {c.name: round(self.rng.uniform(*c.normal), 3) for c in sc.channels}
        out.update(self.override)
        return out

    def send_one(self) -> tuple[float, Frame]:
        with self.lock:
            f = Frame(robot_id=self.robot_id, scenario_id=self.scenario_id, seq=self.seq, boot=self.boot,
                      ts=time.time_ns() + int(self.clock_s * S), readings=self.readings(), battery=80.0,
                      link=LinkInfo(latency_ms=12.0, rssi_dbm=-75.0))
            self.seq += 1
            self.pub.publish(self.topics.telemetry(self.scenario_id, self.robot_id), encode_frame(f))
            at = time.time()
            self.sent.append((at, f))
            return at, f

    def stream(self, every_s: float = 0.2) -> Robot:
        """Publish a frame every ``every_s`` on a thread of its own until :meth:`stop`."""
        self._stop.clear()

        def run() -> None:
            while not self._stop.is_set():
                self.send_one()
                self._stop.wait(every_s)

        self._thread = threading.Thread(target=run, daemon=True, name=f"robot-{self.robot_id}")
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(5)

    def methane(self, value: float | None) -> None:
        """Every methane sensor of its place at ``value`` from the next frame (None: back to normal)."""
        names = [c.name for c in SCENARIOS[self.scenario_id].channels if c.quantity == "ch4"]
        with self.lock:
            if value is None:
                for n in names:
                    self.override.pop(n, None)
            else:
                self.override.update({n: value for n in names})

    def first_sent(self, pred: Callable[[Frame], bool], after: float = 0.0) -> float:
        with self.lock:
            return next(at for at, f in self.sent if at >= after and pred(f))


@dataclass
class Seen:
    topic: str
    payload: dict
    at: float


@dataclass
class Observer:
    """What reaches an integrator on the broker: alert and incident events, and the retained
    active alerts and incidents (an empty retained message removes one)."""

    collector: Collector
    topics: Topics
    _done: int = field(default=0)

    @classmethod
    def start(cls, broker_url: str, topics: Topics) -> Observer:
        return cls(Collector(broker_url, topics.all_alert_events, topics.all_incidents, topics.all_watch), topics)

    def events(self, after: float = 0.0) -> list[Seen]:
        out = []
        for topic, payload, retained, at in self.collector.take():
            if at < after or retained or not payload:
                continue
            alert = self.topics.parse_alert(topic)
            inc = self.topics.parse_incident(topic)
            if (alert and alert[0] == "event") or (inc and inc[0] == "event"):
                out.append(Seen(topic, json.loads(payload), at))
        return out

    def alerts(self, after: float = 0.0) -> list[dict]:
        return [s.payload for s in self.events(after) if "alert_id" in s.payload]

    def first_alert(self, pred: Callable[[dict], bool], after: float, timeout: float) -> Seen:
        found: list[Seen] = []

        def look() -> bool:
            found[:] = [s for s in self.events(after) if "alert_id" in s.payload and pred(s.payload)]
            return bool(found)

        wait_until(look, timeout, "an alert event")
        return found[0]

    def active(self, what: str = "alerts") -> dict[str, dict]:
        """The retained state as a new subscriber would get it: id -> latest payload."""
        state: dict[str, dict] = {}
        for topic, payload, _retained, _at in self.collector.take():
            parsed = self.topics.parse_alert(topic) if what == "alerts" else self.topics.parse_incident(topic)
            if not parsed or parsed[0] != "active":
                continue
            if payload:
                state[parsed[1]] = json.loads(payload)
            else:
                state.pop(parsed[1], None)
        return state

    def close(self) -> None:
        self.collector.close()


def critical_methane(scenario_id: str) -> Callable[[dict], bool]:
    return lambda e: (e.get("scenario_id") == scenario_id and e.get("kind") == "gas" and e.get("severity") == "critical"
                      and e.get("state") in ("raised", "escalated") and (e.get("channel") or "").startswith("ch4"))


def outburst_alerted_within(robot: Robot, obs: Observer, limit_s: float = 2.0) -> dict:
    """Raise methane past the power cut at the robot's place: its critical alert must reach the
    broker within ``limit_s`` of the frame that crossed. Returns the alert event."""
    t0 = time.time()
    robot.methane(OUTBURST)
    seen = obs.first_alert(critical_methane(robot.scenario_id), after=t0, timeout=limit_s + 10)
    crossed = robot.first_sent(lambda f: any(v is not None and v >= 1.5 for k, v in f.readings.items() if k.startswith("ch4")),
                               after=t0)
    delay = seen.at - crossed
    assert delay <= limit_s, f"the power-cut alarm came {delay:.2f} s after the reading that crossed"
    return seen.payload


def end_outburst(robot: Robot, obs: Observer, alert_id: str, timeout: float = 15) -> None:
    robot.methane(None)
    wait_until(lambda: any(a["alert_id"] == alert_id and a["state"] == "cleared" for a in obs.alerts()), timeout,
               f"{alert_id} to clear")


def assert_nothing_stale(obs: Observer, timeout: float = 20, allow: Callable[[dict], bool] = lambda a: False) -> None:
    """Every retained active alert and incident is gone (the readings are normal and every robot
    reports), bar those ``allow`` names."""
    def clean() -> bool:
        return (not [a for a in obs.active("alerts").values() if not allow(a)]
                and not [i for i in obs.active("incidents").values()
                         if not all(allow(m) for m in i.get("members", []) if m.get("active"))])

    try:
        wait_until(clean, timeout, "no active alert or incident left")
    except AssertionError:
        left = [(a["alert_id"], a["state"], a["message"][:120]) for a in obs.active("alerts").values()]
        raise AssertionError(f"stale alerts: {left}") from None
