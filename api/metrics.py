"""Prometheus metrics of the API, in a registry of its own (one per app, so tests can build many)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

__all__ = ["Metrics"]


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.requests = Counter("minewatch_api_requests_total", "HTTP requests by route and status",
                                ["method", "route", "status"], registry=r)
        self.latency = Histogram("minewatch_api_request_seconds", "HTTP request latency by route",
                                 ["route"], registry=r,
                                 buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10))
        self.mqtt_connected = Gauge("minewatch_api_mqtt_connected", "1 when the alert subscriber is connected",
                                    registry=r)
        self.active_alerts = Gauge("minewatch_api_active_alerts", "Alerts not yet cleared", registry=r)
        self.alert_events = Counter("minewatch_api_alert_events_total", "Alert events received, by state",
                                    ["state"], registry=r)
        self.bad_messages = Counter("minewatch_api_bad_messages_total", "MQTT messages that failed validation",
                                    ["topic"], registry=r)
        self.stream_clients = Gauge("minewatch_api_stream_clients", "Connected SSE and WebSocket clients",
                                    registry=r)
        self.acks = Counter("minewatch_api_acks_total", "Acknowledgements by outcome", ["outcome"], registry=r)
        self.replays = Counter("minewatch_api_replays_total", "Replay jobs by final state", ["state"], registry=r)
        self.replay_readings = Counter("minewatch_api_replay_readings_total", "Telemetry rows replayed",
                                       registry=r)
