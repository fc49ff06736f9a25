"""``minewatch group``: the commands of a mining group's deployment (``docs/scale.md``).

``forward`` runs beside each mine, ``add-mine`` and ``streams`` set up the centre, ``up`` runs a
whole group on one machine. Each subcommand imports its module only when it runs.
"""

from __future__ import annotations

import asyncio
import importlib
import logging

import click

from minewatch.group import DEFAULT_PARTITIONS, check_mine
from group.up import up as up_command
from minewatch.options import mqtt_option, settings_from

__all__ = ["group", "SUBCOMMANDS", "worker_command", "nats_urls"]

# name -> (module, attribute, help) of subcommands that live elsewhere: the centre's ingest worker
SUBCOMMANDS: dict[str, tuple[str, str, str]] = {
    "worker": ("ingest.group_cli", "worker",
               "Ingest partitions of the centre's GROUP stream into InfluxDB, run the detectors, publish alerts."),
}


def worker_command() -> click.Command | None:
    """``minewatch group worker`` if this installation has it."""
    module, attr, _ = SUBCOMMANDS["worker"]
    try:
        cmd: click.Command = getattr(importlib.import_module(module), attr)
    except (ImportError, AttributeError):
        return None
    return cmd


def nats_urls(value: str) -> list[str]:
    """``nats://a:4222,nats://b:4222`` -> the URLs."""
    urls = [u.strip() for u in value.split(",") if u.strip()]
    for u in urls:
        if not u.startswith(("nats://", "tls://")):
            raise click.BadParameter(f"{u!r} is not a nats:// URL", param_hint="--nats")
    if not urls:
        raise click.BadParameter("no NATS URL given", param_hint="--nats")
    return urls


def _mine(ctx: click.Context, param: click.Parameter, value: str) -> str:
    try:
        return check_mine(value)
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from None


class _Group(click.Group):
    def list_commands(self, ctx: click.Context) -> list[str]:
        return [*super().list_commands(ctx), *(n for n in SUBCOMMANDS if self.get_command(ctx, n) is not None)]

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        if name in SUBCOMMANDS:
            return worker_command() if name == "worker" else None
        return super().get_command(ctx, name)


@click.group("group", cls=_Group)
def group() -> None:
    """A mining group: mines' leaf nodes and forwarders, the centre's NATS cluster (docs/scale.md)."""


def _logging(level: str) -> None:
    logging.basicConfig(level=level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")


@group.command("forward")
@click.option("--mine", required=True, callback=_mine, help="This mine's id (its JetStream domain), e.g. m001.")
@click.option("--nats", "nats_", default="nats://127.0.0.1:4222", show_default=True,
              help="The mine's leaf node (comma-separated URLs).")
@mqtt_option
@click.option("--topic-prefix", default=None, help="Topic prefix [env MINEWATCH_TOPIC_PREFIX; default minewatch/v1].")
@click.option("--partitions", type=click.IntRange(1, 4096), default=DEFAULT_PARTITIONS, show_default=True,
              help="The group's partition count (the same everywhere, fixed once chosen).")
@click.option("--client-id", default=None,
              help="MQTT client id of the persistent session [default minewatch-forward-<mine>]. Keep it stable.")
@click.option("--batch", type=click.IntRange(1, 100_000), default=2000, show_default=True,
              help="Messages published together before they are acknowledged.")
@click.option("--log-level", type=click.Choice(["debug", "info", "warning", "error"]), default="info", show_default=True)
def forward(mine: str, nats_: str, mqtt_url: str | None, topic_prefix: str | None, partitions: int,
            client_id: str | None, batch: int, log_level: str) -> None:
    """Copy the mine's telemetry, history and statuses from its broker into its leaf node's MINE stream.

    An MQTT message is acknowledged only once the stream holds it; a redelivery after a crash is
    dropped by the stream's duplicate window. SIGTERM or Ctrl-C finishes the batch in hand and exits.
    """
    from group.forward import ForwardOptions, run

    settings = settings_from(mqtt_url=mqtt_url, topic_prefix=topic_prefix)
    _logging(log_level)
    opts = ForwardOptions(mine=mine, nats_urls=nats_urls(nats_), partitions=partitions, client_id=client_id,
                          batch=batch)
    try:
        asyncio.run(run(settings, opts))
    except (ConnectionError, TimeoutError) as exc:
        raise click.ClickException(str(exc)) from None


async def _centre_streams(urls: list[str], mines: list[str], replicas: int) -> list[str]:
    import nats

    from group.streams import ensure_group_stream, sourced_mines

    nc = await nats.connect(urls, connect_timeout=5, max_reconnect_attempts=2)
    try:
        info = await ensure_group_stream(nc.jetstream(timeout=10), mines, replicas)
        return sourced_mines(info)
    finally:
        await nc.close()


@group.command("add-mine")
@click.argument("mines", nargs=-1, required=True)
@click.option("--nats", "nats_", default="nats://127.0.0.1:4222", show_default=True,
              help="The centre's cluster (comma-separated URLs).")
@click.option("--replicas", type=click.IntRange(1, 5), default=3, show_default=True,
              help="Replicas of GROUP, when this creates it.")
def add_mine(mines: tuple[str, ...], nats_: str, replicas: int) -> None:
    """Source each of MINES' MINE stream into the centre's GROUP stream (creating GROUP if missing)."""
    try:
        ids = [check_mine(m) for m in mines]
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="MINES") from None
    import nats.errors

    try:
        have = asyncio.run(_centre_streams(nats_urls(nats_), ids, replicas))
    except (OSError, TimeoutError, nats.errors.Error) as exc:
        raise click.ClickException(f"cannot set up GROUP at {nats_}: {exc}") from None
    click.echo(f"GROUP sources {len(have)} mine(s): {', '.join(have)}")


group.add_command(up_command)
