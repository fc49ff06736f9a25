"""``minewatch api``: serve the control-centre API (and the dashboard, when it is installed)."""

from __future__ import annotations

import secrets

import click

from minewatch.options import influx_options, mqtt_option, settings_from

__all__ = ["api"]


@click.command("api")
@mqtt_option
@influx_options
@click.option("--host", default=None, help="Address to listen on [env MINEWATCH_API_HOST; default 127.0.0.1].")
@click.option("--port", type=int, default=None, help="Port [env MINEWATCH_API_PORT; default 8000].")
@click.option("--topic-prefix", default=None, help="MQTT topic prefix [env MINEWATCH_TOPIC_PREFIX; default minewatch/v1].")
@click.option("--api-keys", default=None,
              help="Comma-separated key:role pairs, roles operator, engineer, integrator [env MINEWATCH_API_KEYS]. "
                   "With none, a random operator key is made up and printed.")
@click.option("--tls-cert", type=click.Path(exists=True, dir_okay=False), default=None,
              help="Serve HTTPS with this certificate [env MINEWATCH_API_TLS_CERT].")
@click.option("--tls-key", type=click.Path(exists=True, dir_okay=False), default=None,
              help="Private key of the certificate [env MINEWATCH_API_TLS_KEY].")
@click.option("--group", "group", is_flag=True,
              help="Serve the dispatch centre's group view (/group/mines, /group/incidents) of every mine under "
                   "<topic-prefix>/mines/+ on the centre's alert broker (docs/scale.md).")
@click.option("--board-url", default=None,
              help="With --group: each mine's board, {mine} standing for the mine id "
                   "(e.g. https://centre.example/mines/{mine}/); the group page links to it.")
@click.option("--mine", default=None,
              help="At the centre: serve one mine's view, its database minewatch_MINE and its topics "
                   "<topic-prefix>/mines/MINE (sets --influx-db and the prefix).")
@click.option("--log-level", type=click.Choice(["debug", "info", "warning", "error"]), default="info", show_default=True)
def api(mqtt_url: str | None, influx_url: str | None, influx_db: str | None, host: str | None, port: int | None,
        topic_prefix: str | None, api_keys: str | None, tls_cert: str | None, tls_key: str | None,
        group: bool, board_url: str | None, mine: str | None, log_level: str) -> None:
    """Serve the control-centre API: live alerts and scenario state from the MQTT alert topics,
    history from InfluxDB, shift replay through the detectors, SSE and WebSocket streams.

    The OpenAPI document is at /openapi.json, interactive docs at /docs. Every endpoint but
    /healthz and /metrics needs an API key (X-API-Key header, Authorization: Bearer, ?api_key=
    or the minewatch_api_key cookie)."""
    import uvicorn

    from api.group import create_group_app
    from api.main import create_app
    from minewatch.shifts import calendar_from_env
    from minewatch.redact import install, redact

    install()

    settings = settings_from(mqtt_url=mqtt_url, influx_url=influx_url, influx_db=influx_db, api_host=host,
                             api_port=port, topic_prefix=topic_prefix, api_keys=api_keys, api_tls_cert=tls_cert,
                             api_tls_key=tls_key)
    if group and mine:
        raise click.UsageError("--group serves every mine; --mine one of them: give one or the other")
    if board_url is not None and (not group or "{mine}" not in board_url):
        raise click.UsageError("--board-url goes with --group and needs {mine} where the mine id goes")
    if mine is not None:
        from minewatch.group import mine_prefix

        if influx_db:
            raise click.UsageError("--mine sets the database (minewatch_MINE): leave out --influx-db")
        try:
            prefix = mine_prefix(mine, settings.topic_prefix)
        except ValueError as exc:
            raise click.UsageError(str(exc)) from None
        settings = settings.model_copy(update={"influx_db": f"minewatch_{mine}", "topic_prefix": prefix})
    try:
        keys = settings.api_key_roles()
    except ValueError as exc:
        raise click.UsageError(str(exc)) from None
    if not keys:
        key = secrets.token_urlsafe(18)
        settings = settings.model_copy(update={"api_keys": f"{key}:operator"})
        click.echo(f"no API keys configured (MINEWATCH_API_KEYS); this run's operator key: {key}", err=True)
    if bool(settings.api_tls_cert) != bool(settings.api_tls_key):
        raise click.UsageError("HTTPS needs both --tls-cert and --tls-key")
    scheme = "https" if settings.api_tls_cert else "http"
    click.echo(redact(f"minewatch api on {scheme}://{settings.api_host}:{settings.api_port} "
                      f"(broker {settings.mqtt_url}, InfluxDB {settings.influx_url}/{settings.influx_db})"), err=True)
    try:
        calendar = calendar_from_env()
    except ValueError as exc:
        raise click.UsageError(str(exc)) from None
    app = create_group_app(settings, board_url=board_url) if group else create_app(settings, calendar=calendar)
    uvicorn.run(app, host=settings.api_host, port=settings.api_port, log_level=log_level,
                ssl_certfile=str(settings.api_tls_cert) if settings.api_tls_cert else None,
                ssl_keyfile=str(settings.api_tls_key) if settings.api_tls_key else None,
                proxy_headers=False, ws="websockets-sansio", timeout_keep_alive=5,
                # streams never end by themselves: give them a moment, then close them
                timeout_graceful_shutdown=5)
