"""A broker running the shipped deploy/ configuration, with accounts from minewatch.security."""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from minewatch.security import BrokerAuth, write_broker_auth
from minewatch.services import DEPLOY, Mosquitto, free_port

from .tls import make_certs

ROBOTS = ("r01", "r02")


def deploy_mosquitto_config(data_dir: Path, secrets_dir: Path, conf_d: Path, port: int) -> str:
    """deploy/mosquitto.conf with its container paths moved under temporary directories and its
    listener on a free loopback port; nothing else changed."""
    text = (DEPLOY / "mosquitto.conf").read_text()
    for old, new in (("/mosquitto/config/secrets/", f"{secrets_dir}/"),
                     ("/mosquitto/config/mosquitto.acl", str(DEPLOY / "mosquitto.acl")),
                     ("/mosquitto/config/conf.d", str(conf_d)),
                     ("/mosquitto/data/", f"{data_dir}/")):
        assert old in text, old
        text = text.replace(old, new)
    assert "\nlistener 1883\n" in text
    text = text.replace("\nlistener 1883\n", f"\nlistener {port} 127.0.0.1\n")
    if os.geteuid() == 0:  # see Mosquitto.render_config
        text += "user root\n"
    return text


@dataclass
class DeployBroker:
    broker: Mosquitto
    auth: BrokerAuth
    conf_d: Path

    def url(self, user: str, *, password: str | None = None) -> str:
        if password is not None:
            return f"mqtt://{user}:{password}@127.0.0.1:{self.broker.port}"
        return self.auth.url(user, port=self.broker.port)

    @property
    def anonymous_url(self) -> str:
        return self.broker.url


def start_deploy_broker(root: Path, conf_snippets: dict[str, str] | None = None, port: int | None = None) -> DeployBroker:
    """The shipped broker configuration, with accounts in ``root/secrets`` (kept if already there)."""
    auth = write_broker_auth(root / "secrets", robots=ROBOTS)
    conf_d = root / "conf.d"
    conf_d.mkdir(parents=True, exist_ok=True)
    for name, text in (conf_snippets or {}).items():
        (conf_d / name).write_text(text)
    port = port or free_port()
    data = root / "data"
    data.mkdir(parents=True, exist_ok=True)
    broker = Mosquitto(root / "broker", port, config=deploy_mosquitto_config(data, auth.directory, conf_d, port))
    broker.start()
    return DeployBroker(broker, auth, conf_d)


@pytest.fixture(scope="module")
def deploy_broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DeployBroker]:
    """The broker of deploy/mosquitto.conf + deploy/mosquitto.acl, with a fresh password file."""
    b = start_deploy_broker(tmp_path_factory.mktemp("deploy-broker"))
    yield b
    b.broker.stop()


def deploy_tls_snippet(secrets_dir: Path, port: int) -> str:
    """deploy/mosquitto-tls.conf with its paths and port moved like the main file's."""
    text = (DEPLOY / "mosquitto-tls.conf").read_text()
    assert "/mosquitto/config/secrets/tls/" in text and "\nlistener 8883\n" in text
    return (text.replace("/mosquitto/config/secrets/tls/", f"{secrets_dir}/tls/")
                .replace("\nlistener 8883\n", f"\nlistener {port} 127.0.0.1\n"))


@pytest.fixture(scope="module")
def tls_broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[DeployBroker, int]]:
    """The deploy broker with the shipped TLS listener enabled; yields it and the TLS port.
    Certificates from deploy/make-certs.sh are in ``auth.directory / "tls"``."""
    root = tmp_path_factory.mktemp("tls-broker")
    make_certs(root / "secrets" / "tls")
    port = free_port()
    b = start_deploy_broker(root, {"tls.conf": deploy_tls_snippet(root / "secrets", port)})
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
