"""A broker running the shipped deploy/ configuration, with accounts from minewatch.security."""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from minewatch.security import BrokerAuth, write_broker_auth
from minewatch.services import DEPLOY, Mosquitto, free_port, wait_port

from .tls import make_certs

ROBOTS = ("r01", "r02", "p01")  # r01 stationed at mf01, r02 at mf02, p01 patrols mf01 ra03 ss03 bc04 mf03


def deploy_mosquitto_config(data_dir: Path, secrets_dir: Path, conf_d: Path, port: int, service_port: int) -> str:
    """deploy/mosquitto.conf with its container paths moved under temporary directories and its
    listeners (public, service) on free loopback ports; nothing else changed."""
    text = (DEPLOY / "mosquitto.conf").read_text()
    for old, new in (("/mosquitto/config/secrets/", f"{secrets_dir}/"),
                     ("/mosquitto/config/mosquitto.acl", str(DEPLOY / "mosquitto.acl")),
                     ("/mosquitto/config/mosquitto-services.acl", str(DEPLOY / "mosquitto-services.acl")),
                     ("/mosquitto/config/conf.d", str(conf_d)),
                     ("/mosquitto/data/", f"{data_dir}/")):
        assert old in text, old
        text = text.replace(old, new)
    for default, given in ((1883, port), (1884, service_port)):
        assert f"\nlistener {default}\n" in text
        text = text.replace(f"\nlistener {default}\n", f"\nlistener {given} 127.0.0.1\n")
    if os.geteuid() == 0:  # see Mosquitto.render_config
        text += "user root\n"
    return text


@dataclass
class DeployBroker:
    broker: Mosquitto
    auth: BrokerAuth
    conf_d: Path
    service_port: int
    tls_service_port: int | None = None  # with the TLS listeners of deploy/mosquitto-tls.conf

    def url(self, user: str, *, password: str | None = None, listener: str | None = None) -> str:
        """``user``'s URL on its own listener (``listener``: "public" or "service" to choose)."""
        if listener is None:
            listener = "service" if user in self.auth.accounts and self.auth[user].service else "public"
        port = self.service_port if listener == "service" else self.broker.port
        if password is not None:
            return f"mqtt://{user}:{password}@127.0.0.1:{port}"
        return self.auth.url(user, port=port)

    @property
    def anonymous_url(self) -> str:
        return self.broker.url

    @property
    def anonymous_service_url(self) -> str:
        return f"mqtt://127.0.0.1:{self.service_port}"


def start_deploy_broker(root: Path, conf_snippets: dict[str, str] | None = None, port: int | None = None,
                        service_port: int | None = None) -> DeployBroker:
    """The shipped broker configuration, with accounts in ``root/secrets`` (kept if already there)."""
    auth = write_broker_auth(root / "secrets", robots=ROBOTS)
    conf_d = root / "conf.d"
    conf_d.mkdir(parents=True, exist_ok=True)
    for name, text in (conf_snippets or {}).items():
        (conf_d / name).write_text(text)
    port = port or free_port()
    service_port = service_port or free_port()
    data = root / "data"
    data.mkdir(parents=True, exist_ok=True)
    broker = Mosquitto(root / "broker", port,
                       config=deploy_mosquitto_config(data, auth.directory, conf_d, port, service_port))
    broker.start()
    wait_port("127.0.0.1", service_port)
    return DeployBroker(broker, auth, conf_d, service_port)


@pytest.fixture(scope="module")
def deploy_broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DeployBroker]:
    """The broker of deploy/mosquitto.conf + deploy/mosquitto*.acl, with fresh password files."""
    b = start_deploy_broker(tmp_path_factory.mktemp("deploy-broker"))
    yield b
    b.broker.stop()


def deploy_tls_snippet(secrets_dir: Path, port: int, service_port: int) -> str:
    """deploy/mosquitto-tls.conf with its paths and ports moved like the main file's."""
    text = (DEPLOY / "mosquitto-tls.conf").read_text()
    for old in ("/mosquitto/config/secrets/tls/", "/mosquitto/config/secrets/", "\nlistener 8883\n", "\nlistener 8884\n"):
        assert old in text, old
    text = text.replace("/mosquitto/config/secrets/", f"{secrets_dir}/")
    for old, new in (("/mosquitto/config/mosquitto.acl", str(DEPLOY / "mosquitto.acl")),
                     ("/mosquitto/config/mosquitto-services.acl", str(DEPLOY / "mosquitto-services.acl"))):
        assert old in text, old
        text = text.replace(old, new)
    return (text.replace("\nlistener 8883\n", f"\nlistener {port} 127.0.0.1\n")
                .replace("\nlistener 8884\n", f"\nlistener {service_port} 127.0.0.1\n"))


@pytest.fixture(scope="module")
def tls_broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[DeployBroker, int]]:
    """The deploy broker with the shipped TLS listeners enabled; yields it and the public TLS port
    (the service one is ``tls_service_port``). Certificates from deploy/make-certs.sh
    are in ``auth.directory / "tls"``."""
    root = tmp_path_factory.mktemp("tls-broker")
    make_certs(root / "secrets" / "tls")
    port, service_port = free_port(), free_port()
    b = start_deploy_broker(root, {"tls.conf": deploy_tls_snippet(root / "secrets", port, service_port)})
    b.tls_service_port = service_port
    wait_port("127.0.0.1", service_port)
    yield b, port
    b.broker.stop()


def deploy_influxdb_config(data_dir: Path, port: int, rpc_port: int) -> str:
    """deploy/influxdb.conf with its paths under ``data_dir`` and its ports on loopback."""
    text = (DEPLOY / "influxdb.conf").read_text()
    for old, new in (("/var/lib/influxdb/", f"{data_dir}/"), ('bind-address = ":8086"', f'bind-address = "127.0.0.1:{port}"'),
                     ('bind-address = "127.0.0.1:8088"', f'bind-address = "127.0.0.1:{rpc_port}"')):
        assert old in text, old
        text = text.replace(old, new)
    return text
