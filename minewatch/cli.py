"""The ``minewatch`` command: the front door to every stage.

Each stage owns its command in its own ``cli`` module; this group imports a stage only when its
command runs, so ``minewatch --help`` stays fast.
"""

from __future__ import annotations

import importlib

import click

from minewatch import __version__

# The shared options live in minewatch.options; ingest/cli.py still imports them from here.
# TEMPORARY, removed at merge once it imports minewatch.options.
from minewatch.options import influx_options, mqtt_option, settings_from

__all__ = ["main", "COMMANDS", "influx_options", "mqtt_option", "settings_from"]

# name -> (module, attribute, one-line help)
COMMANDS: dict[str, tuple[str, str, str]] = {
    "up": ("minewatch.up", "up", "Run the whole system on this machine: broker, InfluxDB, simulator, ingestor, API."),
    "simulate": ("simulator.cli", "simulate", "Publish simulated robot telemetry (MQTT or a JSONL file)."),
    "ingest": ("ingest.cli", "ingest", "Consume telemetry, store it in InfluxDB, run the detectors, publish alerts."),
    "api": ("api.cli", "api", "Serve the control-centre API and dashboard."),
    "detect": ("detectors.cli", "detect", "Run the change detector over a CSV, in row order, no look-ahead."),
    "vibration": ("detectors.cli", "vibration", "Vibration features and diagnosis of one waveform (CSV or .npy)."),
    "replay": ("api.replay_cli", "replay", "Replay a recorded shift or window through the detectors."),
    "report": ("api.report_cli", "report", "Write a self-contained HTML report of a shift."),
    "secrets": ("minewatch.security", "secrets_command",
                "Write broker accounts and ACL, InfluxDB users, API keys and env files for a deployment."),
    "group": ("group.cli", "group",
              "A mining group: the mines' leaf nodes and forwarders, the centre's NATS cluster, `group up`."),
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
            cmd: click.Command = getattr(importlib.import_module(module), attr)
        except (ImportError, AttributeError) as exc:
            help_text, reason = COMMANDS[name][2], str(exc)  # `exc` is unbound once the except block ends

            @click.command(name=name, help=f"{help_text} (unavailable: {reason})")
            def _missing() -> None:
                raise click.ClickException(f"'{name}' is not available in this installation: {reason}")

            return _missing
        return cmd

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        rows = [(name, help_text) for name, (_, _, help_text) in COMMANDS.items()]
        with formatter.section("Commands"):
            formatter.write_dl(rows)


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="minewatch")
def main() -> None:
    """minewatch: telemetry, detectors and alerts for a coal mine's inspection robots."""
    from minewatch.redact import install

    install()  # no password, API key or token in any log line of any command
