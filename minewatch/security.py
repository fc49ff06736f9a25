"""Broker accounts: the Mosquitto password file and ACL that confine every client.

Roles and what the ACL lets each do (``P`` is the topic prefix, default ``minewatch/v1``):

===========  ===========================================  ==============================================
role         username                                     may
===========  ===========================================  ==============================================
robot        its robot id (``r07``)                       write ``P/telemetry/+/{robot}``, ``P/status/{robot}``
simulator    ``simulator``                                write ``P/telemetry/#``, ``P/status/#`` (a stand-in
                                                          fleet identity: real robots get their own accounts),
                                                          ``P/history/#`` (loading history)
ingest       ``ingest``                                   read telemetry, history, status, acks; write alerts,
                                                          incidents, ``P/watch/#``, ``P/deadletter/#``; its own
                                                          ``P/ingest/#``
api          ``api``                                      read alerts, incidents, watch, status, telemetry, dead
                                                          letters; write ``P/alerts/ack/#``, ``P/incidents/ack/#``
integrator   its own name (``integrator``, ``scada``...)   read ``P/alerts/#``, ``P/incidents/#``, ``P/watch/#``
healthcheck  ``healthcheck``                              log in (the broker's container healthcheck); nothing
===========  ===========================================  ==============================================

Nobody connects without an account (``allow_anonymous false``). The robot rules are Mosquitto
``pattern`` lines with ``%u``, so adding a robot needs only a password entry; because pattern
lines apply to every user, the integrator and healthcheck accounts also get explicit ``deny``
lines (Mosquitto checks a user's denials before any pattern), and robot ids may not take a
service's name. Passwords are hashed as Mosquitto 2 does (PBKDF2-SHA512, ``$7$``).
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import re
import secrets
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import click

from minewatch.topics import DEFAULT_PREFIX, Topics

__all__ = [
    "Account",
    "BrokerAuth",
    "Role",
    "SERVICE_ROLES",
    "acl_text",
    "hash_password",
    "load_credentials",
    "new_secret",
    "secrets_command",
    "password_file_text",
    "verify_password",
    "write_broker_auth",
    "write_deploy_secrets",
    "write_private",
]

Role = Literal["robot", "simulator", "ingest", "api", "integrator", "healthcheck"]
# Service accounts are named after their role.
SERVICE_ROLES: tuple[Role, ...] = ("ingest", "api", "simulator", "healthcheck")
_ROBOT_ID = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")
# Mosquitto refuses pattern ACLs to a username containing these; ':' ends the name in the file.
_BAD_USER_CHARS = set("+#/: \t\n")
PBKDF2_ITERATIONS = 1000  # mosquitto_passwd's default is 101; the broker reads any count


@dataclass(frozen=True)
class Account:
    username: str
    role: Role
    password: str

    def __post_init__(self) -> None:
        if not self.username or _BAD_USER_CHARS & set(self.username):
            raise ValueError(f"username {self.username!r} may not be empty or contain + # / : or spaces")
        if self.role == "robot":
            if not _ROBOT_ID.match(self.username):
                raise ValueError(f"robot account {self.username!r} must be a robot id (letters, digits, _ . -)")
            if self.username in SERVICE_ROLES or self.username == "integrator":
                raise ValueError(f"robot id {self.username!r} is reserved for a service account")
        if self.role in SERVICE_ROLES and self.username != self.role:
            raise ValueError(f"the {self.role} account must be named {self.role!r}")

    def __repr__(self) -> str:
        return f"Account({self.username!r}, role={self.role!r}, password=***)"

    def mqtt_url(self, host: str = "127.0.0.1", port: int | None = None, *, tls: bool = False) -> str:
        """``mqtt://user:password@host:port`` (``mqtts://`` with TLS); passwords are URL-safe."""
        port = port or (8883 if tls else 1883)
        return f"{'mqtts' if tls else 'mqtt'}://{self.username}:{self.password}@{host}:{port}"


def hash_password(password: str, *, iterations: int = PBKDF2_ITERATIONS, salt: bytes | None = None) -> str:
    """The ``$7$`` PBKDF2-SHA512 hash Mosquitto 2 stores in its password file."""
    salt = salt if salt is not None else os.urandom(12)
    digest = hashlib.pbkdf2_hmac("sha512", password.encode(), salt, iterations)
    return f"$7${iterations}${base64.b64encode(salt).decode()}${base64.b64encode(digest).decode()}"


def verify_password(password: str, hashed: str) -> bool:
    try:
        _, kind, iterations, salt, digest = hashed.split("$")
    except ValueError:
        return False
    if kind != "7":
        return False
    expect = hashlib.pbkdf2_hmac("sha512", password.encode(), base64.b64decode(salt), int(iterations))
    return secrets.compare_digest(base64.b64encode(expect).decode(), digest)


def password_file_text(accounts: Iterable[Account]) -> str:
    return "".join(f"{a.username}:{hash_password(a.password)}\n" for a in accounts)


def acl_text(prefix: str = DEFAULT_PREFIX, integrators: Iterable[str] = ("integrator",)) -> str:
    """The Mosquitto ACL for ``prefix``: robot patterns, service accounts and integrators."""
    p = Topics(prefix).prefix
    blocks = [
        f"# minewatch broker ACL for topic prefix {p}. Generated by minewatch.security; anything not",
        "# allowed here is denied. Mosquitto re-reads this file on SIGHUP.",
        "",
        "# Robots: the username is the robot id; a robot speaks only for itself.",
        f"pattern write {p}/telemetry/+/%u",
        f"pattern write {p}/status/%u",
        "",
        "# The simulator stands in for the whole fleet (real robots use their own accounts).",
        "user simulator",
        f"topic write {p}/telemetry/#",
        f"topic write {p}/status/#",
        f"topic write {p}/history/#",
        "",
        "# The ingestor: reads telemetry, history, status and acknowledgements; writes alerts,",
        "# incidents, whether it watches each place, and dead letters.",
        "user ingest",
        f"topic read {p}/telemetry/#",
        f"topic read {p}/history/#",
        f"topic read {p}/status/#",
        f"topic readwrite {p}/alerts/#",
        f"topic readwrite {p}/incidents/#",
        f"topic readwrite {p}/watch/#",
        f"topic write {p}/deadletter/#",
        "# Its own scratch topics (the marker that ends its read of the retained active alerts).",
        f"topic readwrite {p}/ingest/#",
        "",
        "# The API: reads alerts, incidents, watch states, status, live telemetry and dead letters;",
        "# publishes operators' acknowledgements.",
        "user api",
        f"topic read {p}/alerts/#",
        f"topic read {p}/incidents/#",
        f"topic read {p}/watch/#",
        f"topic read {p}/status/#",
        f"topic read {p}/telemetry/#",
        f"topic read {p}/deadletter/#",
        f"topic write {p}/alerts/ack/#",
        f"topic write {p}/incidents/ack/#",
        "",
        "# The broker's healthcheck only logs in.",
        "user healthcheck",
        "topic deny #",
    ]
    for name in integrators:
        Account(name, "integrator", "x")  # validates the name
        blocks += [
            "",
            f"# Integrator {name}: alerts, incidents and watch states, read only. The denials keep the",
            "# robot patterns above from applying to this account.",
            f"user {name}",
            f"topic read {p}/alerts/#",
            f"topic read {p}/incidents/#",
            f"topic read {p}/watch/#",
            f"topic deny {p}/telemetry/#",
            f"topic deny {p}/status/#",
        ]
    return "\n".join(blocks) + "\n"


@dataclass
class BrokerAuth:
    """Files written by :func:`write_broker_auth` and the accounts they hold."""

    directory: Path
    password_file: Path
    acl_file: Path
    credentials_file: Path
    accounts: dict[str, Account]

    def __getitem__(self, username: str) -> Account:
        return self.accounts[username]

    def url(self, username: str, host: str = "127.0.0.1", port: int | None = None, *, tls: bool = False) -> str:
        return self.accounts[username].mqtt_url(host, port, tls=tls)


def new_secret() -> str:
    """A random 32-character secret, URL-safe (it goes into ``mqtt://`` URLs unquoted)."""
    return secrets.token_urlsafe(24)


def load_credentials(directory: Path) -> dict:
    """``credentials.json`` of ``directory`` (empty sections if there is none)."""
    path = Path(directory) / "credentials.json"
    data = json.loads(path.read_text()) if path.exists() else {}
    for section in ("mqtt", "influx", "api_keys"):
        data.setdefault(section, {})
    return data


def save_credentials(directory: Path, data: dict) -> Path:
    path = Path(directory) / "credentials.json"
    write_private(path, json.dumps(data, indent=2, sort_keys=True) + "\n")
    return path


def write_broker_auth(directory: Path, *, prefix: str = DEFAULT_PREFIX, robots: Iterable[str] = (),
                      integrators: Iterable[str] = ("integrator",),
                      passwords: dict[str, str] | None = None, keep_accounts: bool = False) -> BrokerAuth:
    """Write ``mosquitto.passwd``, ``mosquitto.acl`` and ``credentials.json`` into ``directory``.

    Accounts: ``ingest``, ``api``, ``simulator``, ``healthcheck``, one per integrator name and
    one per robot id.
    Passwords come from ``passwords``, else from the ``credentials.json`` already in the
    directory (so they survive a restart), else are drawn at random. With ``keep_accounts`` the
    robot and integrator accounts already in ``credentials.json`` stay too (to remove one, delete
    its entry there and write again). ``credentials.json`` holds
    the plain passwords and is readable by its owner only; the password file holds salted
    PBKDF2 hashes of 192-bit random secrets and is world-readable, because the broker reads it
    after dropping root for its own user.
    """
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    creds = load_credentials(directory)
    known = {name: entry["password"] for name, entry in creds["mqtt"].items()}
    known.update(passwords or {})
    robots, integrators = list(robots), list(integrators)
    if keep_accounts:
        had = {role: [n for n, a in creds["mqtt"].items() if a["role"] == role] for role in ("robot", "integrator")}
        robots = list(dict.fromkeys([*had["robot"], *robots]))
        integrators = list(dict.fromkeys([*had["integrator"], *integrators]))
    wanted: list[tuple[str, Role]] = [(r, r) for r in SERVICE_ROLES]
    wanted += [(name, "integrator") for name in integrators]
    wanted += [(rid, "robot") for rid in robots]
    accounts: dict[str, Account] = {}
    for name, role in wanted:
        if name in accounts:
            raise ValueError(f"account {name!r} given twice")
        accounts[name] = Account(name, role, known.get(name) or new_secret())

    pw_path, acl_path = directory / "mosquitto.passwd", directory / "mosquitto.acl"
    write_private(pw_path, password_file_text(accounts.values()), mode=0o644)
    acl_path.write_text(acl_text(prefix, integrators))
    creds["prefix"] = prefix
    creds["mqtt"] = {a.username: {"role": a.role, "password": a.password} for a in accounts.values()}
    creds_path = save_credentials(directory, creds)
    return BrokerAuth(directory, pw_path, acl_path, creds_path, accounts)


def write_private(path: Path, text: str, *, mode: int = 0o600) -> None:
    """Write ``text`` to ``path`` atomically, created with ``mode`` (never briefly wider)."""
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    with os.fdopen(fd, "w") as f:
        f.write(text)
    os.chmod(tmp, mode)
    os.replace(tmp, path)


API_ROLES = ("operator", "engineer", "integrator")


def _env_file(path: Path, values: dict[str, str]) -> None:
    for k, v in values.items():
        if any(c in v for c in "\n\"'$` "):
            raise ValueError(f"{k} value cannot go into an env file unquoted")
    write_private(path, "".join(f"{k}={v}\n" for k, v in values.items()))


def write_deploy_secrets(directory: Path, *, prefix: str = DEFAULT_PREFIX, robots: Iterable[str] = (),
                         integrators: Iterable[str] = ("integrator",), mqtt_host: str = "mosquitto",
                         mqtt_port: int | None = None, tls: bool = False,
                         influx_url: str = "http://influxdb:8086", influx_db: str = "minewatch",
                         tls_dir: str = "/run/secrets/minewatch/tls") -> dict[str, Path]:
    """Everything a docker-compose deployment needs, in ``directory`` (``deploy/secrets``).

    The broker's files (:func:`write_broker_auth`); InfluxDB admin, ``ingest`` (all rights on the
    database) and ``api`` (read) passwords; one API key per role; and an environment file per
    service (``mosquitto.env``, ``influxdb.env``, ``ingest.env``, ``api.env``, ``simulator.env``,
    ``storage.env``). Existing secrets and accounts are kept, so running it again only adds what
    is missing (remove an account by deleting it from ``credentials.json`` and running again).
    Returns the environment files by service.
    """
    directory = Path(directory)
    auth = write_broker_auth(directory, prefix=prefix, robots=robots, integrators=integrators, keep_accounts=True)
    creds = load_credentials(directory)
    for user in ("admin", "ingest", "api"):
        creds["influx"].setdefault(user, new_secret())
    for role in API_ROLES:
        creds["api_keys"].setdefault(role, f"{role[:3]}-{new_secret()}")
    save_credentials(directory, creds)
    influx = creds["influx"]
    port = mqtt_port or (8883 if tls else 1883)
    common = {"MINEWATCH_TOPIC_PREFIX": prefix, "MINEWATCH_INFLUX_URL": influx_url, "MINEWATCH_INFLUX_DB": influx_db}
    if tls:
        common["MINEWATCH_MQTT_CA"] = f"{tls_dir}/ca.crt"
    env = {
        "mosquitto": {"HEALTHCHECK_PASSWORD": auth["healthcheck"].password},
        "influxdb": {"INFLUXDB_HTTP_AUTH_ENABLED": "true", "INFLUXDB_DB": influx_db,
                     "INFLUXDB_ADMIN_USER": "admin", "INFLUXDB_ADMIN_PASSWORD": influx["admin"],
                     "INFLUXDB_USER": "ingest", "INFLUXDB_USER_PASSWORD": influx["ingest"],
                     "INFLUXDB_READ_USER": "api", "INFLUXDB_READ_USER_PASSWORD": influx["api"]},
        "storage": {**common, "MINEWATCH_INFLUX_USER": "admin", "MINEWATCH_INFLUX_PASSWORD": influx["admin"]},
        "ingest": {**common, "MINEWATCH_MQTT_URL": auth.url("ingest", mqtt_host, port, tls=tls),
                   "MINEWATCH_INFLUX_USER": "ingest", "MINEWATCH_INFLUX_PASSWORD": influx["ingest"]},
        "api": {**common, "MINEWATCH_MQTT_URL": auth.url("api", mqtt_host, port, tls=tls),
                "MINEWATCH_INFLUX_USER": "api", "MINEWATCH_INFLUX_PASSWORD": influx["api"],
                "MINEWATCH_API_KEYS": ",".join(f"{k}:{r}" for r, k in creds["api_keys"].items()),
                **({"MINEWATCH_API_TLS_CERT": f"{tls_dir}/server.crt", "MINEWATCH_API_TLS_KEY": f"{tls_dir}/server.key",
                    "MINEWATCH_API_TLS_CA": f"{tls_dir}/ca.crt"} if tls else {})},
        "simulator": {**common, "MINEWATCH_MQTT_URL": auth.url("simulator", mqtt_host, port, tls=tls)},
    }
    out = {}
    for service, values in env.items():
        out[service] = directory / f"{service}.env"
        _env_file(out[service], values)
    return out


@click.command("secrets", context_settings={"help_option_names": ["-h", "--help"]})
@click.argument("directory", type=click.Path(path_type=Path), default=Path("deploy/secrets"))
@click.option("--robot", "robots", multiple=True, help="A robot id to give its own broker account (repeatable).")
@click.option("--integrator", "integrators", multiple=True,
              help="An integrator account name (repeatable; default: one named 'integrator').")
@click.option("--prefix", default=DEFAULT_PREFIX, show_default=True, help="Topic prefix the ACL is written for.")
@click.option("--mqtt-host", default="mosquitto", show_default=True, help="Broker host in the services' URLs.")
@click.option("--tls", is_flag=True, help="Services reach the broker over TLS (mqtts://, port 8883) and the API serves HTTPS.")
def secrets_command(directory: Path, robots: tuple[str, ...], integrators: tuple[str, ...], prefix: str,
                    mqtt_host: str, tls: bool) -> None:
    """Write the broker's password file and ACL, InfluxDB and API credentials and the services'
    environment files (for docker-compose.yml) into DIRECTORY (default deploy/secrets).

    Passwords are random; existing accounts and passwords are kept, so running it again only adds
    what is missing. credentials.json (readable by its owner only) lists them all.
    """
    try:
        files = write_deploy_secrets(directory, prefix=prefix, robots=robots, integrators=integrators or ("integrator",),
                                     mqtt_host=mqtt_host, tls=tls)
    except ValueError as exc:
        raise click.UsageError(str(exc)) from None
    click.echo(f"wrote the broker's password file, ACL and credentials.json in {directory}")
    click.echo("environment files: " + ", ".join(str(p) for p in files.values()))
    names = [n for n, a in load_credentials(directory)["mqtt"].items() if a["role"] == "integrator"]
    if acl_text(prefix, names) != acl_text():
        click.echo(f"this ACL differs from deploy/mosquitto.acl: copy {directory / 'mosquitto.acl'} over it")


if __name__ == "__main__":
    secrets_command()
