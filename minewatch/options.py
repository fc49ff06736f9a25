"""The command-line options every stage shares, and the settings they override.

A stage's ``cli`` module decorates its command with these; ``minewatch.cli`` only assembles the
commands.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar

import click

if TYPE_CHECKING:
    from minewatch.settings import Settings

__all__ = ["influx_options", "mqtt_option", "settings_from"]

F = TypeVar("F", bound=Callable[..., Any])


def settings_from(**overrides: Any) -> Settings:
    """Settings from the environment, with CLI flags that were given taking precedence."""
    from pydantic import ValidationError

    from minewatch.settings import Settings

    given = {k: v for k, v in overrides.items() if v is not None}
    try:
        return Settings(**given)
    except ValidationError as exc:
        msgs = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
        raise click.UsageError(msgs) from None


def mqtt_option(f: F) -> F:
    """``--mqtt-url``."""
    return click.option("--mqtt-url", default=None,
                        help="Broker URL [env MINEWATCH_MQTT_URL; default mqtt://127.0.0.1:1883].")(f)


def influx_options(f: F) -> F:
    """``--influx-url`` and ``--influx-db``."""
    f = click.option("--influx-db", default=None, help="Database [env MINEWATCH_INFLUX_DB; default minewatch].")(f)
    return click.option("--influx-url", default=None,
                        help="InfluxDB 1.x HTTP URL [env MINEWATCH_INFLUX_URL; default http://127.0.0.1:8086].")(f)
