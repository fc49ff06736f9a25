"""Health probes for container healthchecks: ``python -m minewatch.health url URL | mqtt``.

``url`` succeeds on a 2xx answer (a self-signed API certificate is checked against
``MINEWATCH_API_TLS_CA`` when set, else not verified: the probe runs on the same host);
``mqtt`` logs in to the broker with the service's own ``MINEWATCH_MQTT_URL`` (and CA), which
proves the broker is up and the account and TLS trust still work. Exit status 0 = healthy.
"""

from __future__ import annotations

import os
import ssl
import sys
import threading
import urllib.request

__all__ = ["check_url", "check_mqtt", "main"]


def check_url(url: str, timeout: float = 5.0) -> str | None:
    """None when ``url`` answers 2xx, else what went wrong."""
    ctx = None
    if url.startswith("https:"):
        ca = os.environ.get("MINEWATCH_API_TLS_CA")
        ctx = ssl.create_default_context(cafile=ca) if ca else ssl._create_unverified_context()
    try:
        with urllib.request.urlopen(url, timeout=timeout, context=ctx) as r:
            return None if 200 <= r.status < 300 else f"{url} answered {r.status}"
    except OSError as exc:
        return f"{url}: {exc}"


def check_mqtt(timeout: float = 5.0) -> str | None:
    """None when the broker accepts this service's credentials, else what went wrong."""
    from minewatch.mqtt import paho_client
    from minewatch.settings import Settings

    s = Settings()
    target = s.mqtt
    client = paho_client(target, ca=s.mqtt_ca, cert=s.mqtt_cert, key=s.mqtt_key)
    done = threading.Event()
    result: list[object] = []

    def on_connect(c: object, userdata: object, flags: object, rc: object, props: object = None) -> None:
        result.append(rc)
        done.set()

    client.on_connect = on_connect
    try:
        client.connect(target.host, target.port, keepalive=10)
    except (OSError, ssl.SSLError) as exc:
        return f"broker {target.host}:{target.port}: {exc}"
    client.loop_start()
    try:
        if not done.wait(timeout):
            return f"broker {target.host}:{target.port}: no answer in {timeout:.0f} s"
        rc = result[0]
        return None if rc == 0 else f"broker {target.host}:{target.port} refused the login: {rc}"
    finally:
        client.disconnect()
        client.loop_stop()


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if args[:1] == ["url"] and len(args) == 2:
        problem = check_url(args[1])
    elif args == ["mqtt"]:
        problem = check_mqtt()
    else:
        print("usage: python -m minewatch.health url URL | mqtt", file=sys.stderr)
        return 2
    if problem:
        print(problem, file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
