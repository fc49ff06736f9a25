"""Prometheus metrics of the API, in a registry of its own (one per app, so tests can build many).

Request metrics follow the common conventions of Prometheus HTTP instrumentation: a latency
histogram ``minewatch_api_request_duration_seconds`` and a counter ``minewatch_api_requests_total``,
labelled by method, route template (``/robots/{robot_id}``, never the raw path) and status class
(``2xx`` ... ``5xx``). Streams (SSE and WebSocket) stay out of the latency histogram, since their
duration is how long a client watched: they are counted in ``minewatch_api_streams_total`` and
``minewatch_api_streams_open``. Every label takes a bounded set of values: a method the API does not
know is ``other``, a path no route matches is ``unmatched``, a file of the control-room page is
``static``. No ``_created`` series.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, disable_created_metrics

__all__ = ["Metrics", "METHODS", "status_class"]

disable_created_metrics()

METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})


def status_class(code: int) -> str:
    """``2xx`` for 200-299 and so on; anything outside 100-599 is ``5xx`` (the API answered wrongly)."""
    return f"{code // 100}xx" if 100 <= code < 600 else "5xx"


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.requests = Counter("minewatch_api_requests_total",
                                "HTTP requests answered, by method, route template and status class",
                                ["method", "route", "status"], registry=r)
        self.latency = Histogram("minewatch_api_request_duration_seconds",
                                 "Time from a request's arrival to the end of its response, by method, route template "
                                 "and status class (streams not included)",
                                 ["method", "route", "status"], registry=r,
                                 buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10))
        self.streams = Counter("minewatch_api_streams_total", "SSE and WebSocket streams opened, by route template",
                               ["route"], registry=r)
        self.streams_open = Gauge("minewatch_api_streams_open", "SSE and WebSocket streams open now, by route template",
                                  ["route"], registry=r)
        self.mqtt_connected = Gauge("minewatch_api_mqtt_connected", "1 when the alert subscriber is connected",
                                    registry=r)
        self.active_alerts = Gauge("minewatch_api_active_alerts", "Alerts not yet cleared", registry=r)
        self.alert_events = Counter("minewatch_api_alert_events_total", "Alert events received, by state",
                                    ["state"], registry=r)
        self.bad_messages = Counter("minewatch_api_bad_messages_total", "MQTT messages that failed validation",
                                    ["topic"], registry=r)
        self.stream_clients = Gauge("minewatch_api_stream_clients", "Connected live-stream clients (SSE and WebSocket)",
                                    registry=r)
        self.acks = Counter("minewatch_api_acks_total", "Acknowledgements by outcome", ["outcome"], registry=r)
        self.replays = Counter("minewatch_api_replays_total", "Replay jobs by final state", ["state"], registry=r)
        self.replay_frames = Counter("minewatch_api_replay_frames_total",
                                     "Frames replayed (one robot's telemetry message each)", registry=r)
