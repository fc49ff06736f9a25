"""Settings, read once from the environment (``MINEWATCH_*``); CLI flags override them.

Below the environment comes the local env file, ``env`` in the data directory
(``MINEWATCH_DATA_DIR``, default ``.minewatch/``): ``minewatch up`` writes the URLs and
credentials of the system it runs there, so any ``minewatch`` command started beside it, in
another shell, reaches the same broker and InfluxDB. Order, strongest first: CLI flags, the
environment, the env file, the defaults. ``MINEWATCH_ENV_FILE`` names another file (empty: none).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Literal, get_args
from urllib.parse import urlsplit

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from minewatch.topics import DEFAULT_PREFIX, Topics

# The API's roles: every list of them is this one (keys, key files, the API's checks, its schema).
ApiRole = Literal["operator", "engineer", "integrator"]
API_ROLES: tuple[ApiRole, ...] = get_args(ApiRole)
# What each may do, least first: an integrator reads; an operator also acknowledges; an engineer also
# runs replays and tries limits.
API_ROLE_RANK: dict[ApiRole, int] = {"integrator": 0, "operator": 1, "engineer": 2}

__all__ = ["Settings", "MqttTarget", "parse_mqtt_url", "env_file", "credentials_hint", "DEFAULT_DATA_DIR"]

DEFAULT_DATA_DIR = Path(".minewatch")


def env_file() -> Path | None:
    """The local env file this process reads: ``$MINEWATCH_ENV_FILE`` if set (empty: none), else
    ``env`` in ``$MINEWATCH_DATA_DIR`` (default ``.minewatch/``)."""
    named = os.environ.get("MINEWATCH_ENV_FILE")
    if named is not None:
        return Path(named) if named.strip() else None
    return Path(os.environ.get("MINEWATCH_DATA_DIR") or DEFAULT_DATA_DIR) / "env"


def credentials_hint(*variables: str) -> str:
    """What to do about refused credentials: the variables to set, and the env file that was (or
    would have been) read."""
    names = " and ".join(variables)
    path = env_file()
    if path is None:
        where = "(MINEWATCH_ENV_FILE is empty: no env file is read)"
    elif path.is_file():
        where = f"(this command read {path.resolve()}; is it from the running system?)"
    else:
        where = (f"(no {path.resolve()} here: `minewatch up` writes one; run from the directory that has "
                 f"it or set MINEWATCH_DATA_DIR to its directory)")
    return f"set {names} in the environment or in the env file {where}"



class MqttTarget:
    """A parsed ``mqtt://`` or ``mqtts://`` URL: host, port, credentials, TLS."""

    def __init__(self, url: str) -> None:
        parts = urlsplit(url)
        if parts.scheme not in ("mqtt", "mqtts", "tcp", "ssl"):
            raise ValueError(f"MQTT URL must start with mqtt:// or mqtts://, got {url!r}")
        if not parts.hostname:
            raise ValueError(f"MQTT URL has no host: {url!r}")
        self.url = url
        self.tls = parts.scheme in ("mqtts", "ssl")
        self.host = parts.hostname
        self.port = parts.port or (8883 if self.tls else 1883)
        self.username = parts.username
        self.password = parts.password

    def __repr__(self) -> str:
        return f"MqttTarget({self.host}:{self.port}, tls={self.tls}, user={self.username!r})"


def parse_mqtt_url(url: str) -> MqttTarget:
    return MqttTarget(url)


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="MINEWATCH_", extra="ignore")

    mqtt_url: str = Field(default="mqtt://127.0.0.1:1883", description="broker, mqtt://user:pass@host:port or mqtts://")
    mqtt_ca: Path | None = Field(default=None, description="CA bundle for mqtts://")
    mqtt_cert: Path | None = None
    mqtt_key: Path | None = None
    topic_prefix: str = DEFAULT_PREFIX
    influx_url: str = Field(default="http://127.0.0.1:8086", description="InfluxDB 1.x HTTP API")
    influx_db: str = "minewatch"
    influx_user: str | None = None
    influx_password: str | None = None
    influx_rp: str | None = Field(default=None, description="retention policy to write raw data to (default: the database's)")
    api_keys: str = Field(default="", description="comma-separated key:role pairs (operator, engineer, integrator)")
    api_host: str = "127.0.0.1"
    api_port: int = 8000
    api_tls_cert: Path | None = None
    api_tls_key: Path | None = None
    api_max_body_bytes: int = Field(default=4 << 20, ge=1024,
                                    description="largest request body the API reads; beyond it, 413")
    api_read_timeout_s: float = Field(default=30.0, gt=0,
                                      description="a request body that stops coming for this long is answered 408")
    api_max_streams: int = Field(default=500, ge=1,
                                 description="live stream clients (SSE and WebSocket together) the API serves at once")
    api_snapshot_max: int = Field(default=1000, ge=1,
                                  description="active alerts and open incidents a stream client gets on connecting")
    robots: str = Field(default="fleet", description="the fleet registry: robot ids and patterns whose frames and "
                        "statuses are taken (fleet = the simulator's default fleet, * = any robot)")
    data_dir: Path = Field(default=Path(".minewatch"), description="spool and local state")
    metrics_port: int = Field(default=0, description="Prometheus metrics port of the ingestor; 0 = off")

    def __init__(self, **values: Any) -> None:
        if "_env_file" not in values:
            path = env_file()
            values["_env_file"] = path if path is not None and path.is_file() else None
        super().__init__(**values)

    @field_validator("mqtt_url")
    @classmethod
    def _mqtt(cls, v: str) -> str:
        MqttTarget(v)
        return v

    @field_validator("influx_url")
    @classmethod
    def _influx(cls, v: str) -> str:
        parts = urlsplit(v)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"InfluxDB URL must be http(s)://host:port, got {v!r}")
        return v.rstrip("/")

    @property
    def mqtt(self) -> MqttTarget:
        return MqttTarget(self.mqtt_url)

    @property
    def topics(self) -> Topics:
        return Topics(self.topic_prefix)

    def api_key_roles(self) -> dict[str, str]:
        out: dict[str, str] = {}
        for pair in filter(None, (p.strip() for p in self.api_keys.split(","))):
            key, sep, role = pair.rpartition(":")
            if not sep or not key or role not in API_ROLES:
                raise ValueError(f"MINEWATCH_API_KEYS entry {pair!r} must be key:role with role "
                                 f"{', '.join(API_ROLES[:-1])} or {API_ROLES[-1]}")
            out[key] = role
        return out
