"""The ``minewatch`` command: the front door to every stage.

Each stage owns its command in its own ``cli`` module; this group imports a stage only when its
command runs, so ``minewatch --help`` stays fast.
"""

from __future__ import annotations

import importlib
from typing import Any

import click

from minewatch import __version__

__all__ = ["main", "settings_from", "COMMANDS"]

# name -> (module, attribute, one-line help)
COMMANDS: dict[str, tuple[str, str, str]] = {
    "up": ("minewatch.up", "up", "Run the whole system on this machine: broker, InfluxDB, simulator, ingestor, API."),
    "simulate": ("simulator.cli", "simulate", "Publish simulated robot telemetry (MQTT or a JSONL file)."),
    "ingest": ("ingest.cli", "ingest", "Consume telemetry, store it in InfluxDB, run the detectors, publish alerts."),
    "api": ("api.cli", "api", "Serve the control-centre API and dashboard."),
    "detect": ("detectors.cli", "detect", "Run the change detector over a CSV, in row order, no look-ahead."),
    "vibration": ("detectors.cli", "vibration", "Vibration features and diagnosis of one waveform (CSV or .npy)."),
    "replay": ("api.replay_cli", "replay", "Replay a recorded shift or window through the detectors."),
    "report": ("api.report", "report", "Write a self-contained HTML report of a shift."),
    "secrets": ("minewatch.security", "secrets_command",
                "Write broker accounts and ACL, InfluxDB users, API keys and env files for a deployment."),
    "storage": ("minewatch.storage", "storage_command",
                "Create or update InfluxDB retention policies and continuous queries (admin account)."),
}


class LazyGroup(click.Group):
    def list_commands(self, ctx: click.Context) -> list[str]:
        return list(COMMANDS)

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        if name not in COMMANDS:
            return None
        module, attr, _ = COMMANDS[name]
        try:
            cmd = getattr(importlib.import_module(module), attr)
        except (ImportError, AttributeError) as exc:
            help_text = COMMANDS[name][2]

            @click.command(name=name, help=f"{help_text} (unavailable: {exc})")
            def _missing() -> None:
                raise click.ClickException(f"'{name}' is not available in this installation: {exc}")

            return _missing
        return cmd

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        rows = [(name, help_text) for name, (_, _, help_text) in COMMANDS.items()]
        with formatter.section("Commands"):
            formatter.write_dl(rows)


def settings_from(**overrides: Any):  # noqa: ANN201 - Settings, imported lazily
    """Settings from the environment, with CLI flags that were given taking precedence."""
    from pydantic import ValidationError

    from minewatch.settings import Settings

    given = {k: v for k, v in overrides.items() if v is not None}
    try:
        return Settings(**given)
    except ValidationError as exc:
        msgs = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
        raise click.UsageError(msgs) from None


def mqtt_option(f):  # noqa: ANN001, ANN201
    return click.option("--mqtt-url", default=None, help="Broker URL [env MINEWATCH_MQTT_URL; default mqtt://127.0.0.1:1883].")(f)


def influx_options(f):  # noqa: ANN001, ANN201
    f = click.option("--influx-db", default=None, help="Database [env MINEWATCH_INFLUX_DB; default minewatch].")(f)
    return click.option("--influx-url", default=None,
                        help="InfluxDB 1.x HTTP URL [env MINEWATCH_INFLUX_URL; default http://127.0.0.1:8086].")(f)


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="minewatch")
def main() -> None:
    """minewatch: telemetry, detectors and alerts for a coal mine's inspection robots."""
    from minewatch.redact import install

    install()  # no password, API key or token in any log line of any command
