"""Broker accounts: the Mosquitto password files and ACLs that confine every client.

The broker has two kinds of listener, each with its own password file and ACL
(``per_listener_settings true``):

* the **public** listener (1883, TLS 8883), where robots and integrators connect. It sets
  ``use_username_as_clientid``: a client's id *is* its username, whatever id it asks for, so no
  account can take over another's session or knock another client off;
* the **service** listener (1884, TLS 8884; loopback for ``minewatch up``, the internal network in
  docker compose, never published), where the deployment's own processes connect: the ingestor
  (each partition with its persistent session), the API, the simulator and the broker's
  healthcheck. They choose their client ids (an ingestor partition holds a persistent session
  per id; the API and the simulator open several connections), so robots' and integrators'
  credentials are not valid there, and no public username may begin like a service's client id
  (``minewatch-``, ``mwsim-``, the broker's ``auto-``) or be a service's name.

Roles and what the ACL lets each do (``P`` is the topic prefix, default ``minewatch/v1``):

===========  ========  ==========================================  ===========================================
role         listener  username                                    may
===========  ========  ==========================================  ===========================================
robot        public    its robot id (``r07``)                      write ``P/telemetry/{scenario}/{robot}`` for
                                                                   its own scenarios (:data:`FLEET`, or those
                                                                   given with its account), ``P/status/{robot}``
integrator   public    its own name (``integrator``, ``scada``...)  read ``P/alerts/#``, ``P/incidents/#``,
                                                                   ``P/watch/#``
simulator    service   ``simulator``                               write ``P/telemetry/#``, ``P/status/#`` (a
                                                                   stand-in fleet identity: real robots get
                                                                   their own accounts), ``P/history/#``
ingest       service   ``ingest``                                  read telemetry, history, status, acks; write
                                                                   alerts, incidents, ``P/watch/#``,
                                                                   ``P/deadletter/#``; its own ``P/ingest/#``
api          service   ``api``                                     read alerts, incidents, watch, status,
                                                                   telemetry, dead letters; write
                                                                   ``P/alerts/ack/#``, ``P/incidents/ack/#``
healthcheck  service   ``healthcheck``                             log in (the broker's container healthcheck)
===========  ========  ==========================================  ===========================================

Nobody connects without an account (``allow_anonymous false``), and there are no ``pattern``
lines: every right is written out for the account that holds it, so a robot speaks only for
itself and only where it works, and no other account picks up a robot's rights. A robot outside
the catalogue's fleet has no telemetry right until its account is made with its scenarios
(``minewatch secrets --robot r40=mf01,mf02``). Passwords are hashed as Mosquitto 2 does
(PBKDF2-SHA512, ``$7$``).
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import re
import secrets
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import click

from minewatch.catalogue import FLEET, SCENARIOS
from minewatch.settings import API_ROLES
from minewatch.topics import DEFAULT_PREFIX, Topics

__all__ = [
    "Account",
    "BrokerAuth",
    "Role",
    "SERVICE_ROLES",
    "SERVICE_CLIENT_ID_PREFIXES",
    "PUBLIC_PORT",
    "SERVICE_PORT",
    "acl_text",
    "service_acl_text",
    "hash_password",
    "load_credentials",
    "new_secret",
    "parse_robot",
    "secrets_command",
    "password_file_text",
    "verify_password",
    "write_broker_auth",
    "write_deploy_secrets",
    "write_private",
]

Role = Literal["robot", "simulator", "ingest", "api", "integrator", "healthcheck"]
# Service accounts are named after their role and log in on the service listener only.
SERVICE_ROLES: tuple[Role, ...] = ("ingest", "api", "simulator", "healthcheck")
# How the services' client ids begin (the ingestor's minewatch-ingest-<I>of<N>, the API's
# minewatch-api-..., the simulator's mwsim-..., ids the broker assigns: auto-...). A public
# username, which is its client id, may not begin so.
SERVICE_CLIENT_ID_PREFIXES = ("minewatch-", "mwsim-", "auto-")
PUBLIC_PORT, PUBLIC_TLS_PORT = 1883, 8883
SERVICE_PORT, SERVICE_TLS_PORT = 1884, 8884
_ROBOT_ID = re.compile(r"\A[A-Za-z0-9_.-]{1,64}\Z")
# Mosquitto refuses a username containing these in ACL lines; ':' ends the name in the file.
_BAD_USER_CHARS = set("+#/: \t\n")
PBKDF2_ITERATIONS = 1000  # mosquitto_passwd's default is 101; the broker reads any count


@dataclass(frozen=True)
class Account:
    username: str
    role: Role
    password: str
    # a robot's scenarios: where it may write telemetry (empty: the fleet's, else none)
    scenarios: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if not self.username or _BAD_USER_CHARS & set(self.username):
            raise ValueError(f"username {self.username!r} may not be empty or contain + # / : or spaces")
        if self.role in SERVICE_ROLES:
            if self.username != self.role:
                raise ValueError(f"the {self.role} account must be named {self.role!r}")
        else:
            if self.username in SERVICE_ROLES:
                raise ValueError(f"{self.role} name {self.username!r} is reserved for a service account")
            if self.username.startswith(SERVICE_CLIENT_ID_PREFIXES):
                raise ValueError(f"{self.role} name {self.username!r} is reserved: names beginning "
                                 f"{', '.join(SERVICE_CLIENT_ID_PREFIXES)} are the services' client ids")
        if self.role == "robot":
            if not _ROBOT_ID.match(self.username):
                raise ValueError(f"robot account {self.username!r} must be a robot id (letters, digits, _ . -)")
            if self.username == "integrator":
                raise ValueError(f"robot id {self.username!r} is reserved for the integrator account")
            unknown = [s for s in self.scenarios if s not in SCENARIOS]
            if unknown:
                raise ValueError(f"robot {self.username}: unknown scenario(s) {', '.join(unknown)}")
        elif self.scenarios:
            raise ValueError(f"only robots have scenarios, not the {self.role} account {self.username!r}")

    def __repr__(self) -> str:
        return f"Account({self.username!r}, role={self.role!r}, password=***)"

    @property
    def service(self) -> bool:
        """Whether the account logs in on the service listener (else the public one)."""
        return self.role in SERVICE_ROLES

    @property
    def telemetry_scenarios(self) -> tuple[str, ...]:
        """Where a robot may write telemetry: its own scenarios, else the fleet's, else none."""
        if self.role != "robot":
            return ()
        return self.scenarios or FLEET.get(self.username, ())

    def mqtt_url(self, host: str = "127.0.0.1", port: int | None = None, *, tls: bool = False) -> str:
        """``mqtt://user:password@host:port`` (``mqtts://`` with TLS); passwords are URL-safe.
        The default port is the account's listener's."""
        if port is None:
            port = (SERVICE_TLS_PORT if tls else SERVICE_PORT) if self.service else (PUBLIC_TLS_PORT if tls else PUBLIC_PORT)
        return f"{'mqtts' if tls else 'mqtt'}://{self.username}:{self.password}@{host}:{port}"


def parse_robot(spec: str) -> tuple[str, tuple[str, ...]]:
    """``r40`` or ``r40=mf01,mf02``: a robot id and the scenarios it works in (empty if unsaid)."""
    rid, _, rest = spec.partition("=")
    scenarios = tuple(s.strip() for s in rest.split(",") if s.strip())
    return rid.strip(), scenarios


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


def acl_text(prefix: str = DEFAULT_PREFIX, integrators: Iterable[str] = ("integrator",),
             robots: Mapping[str, Iterable[str]] | None = None) -> str:
    """The public listener's ACL for ``prefix``: every robot of the fleet (:data:`FLEET`) and of
    ``robots`` (robot id -> its scenarios; none: the fleet's, or status only), and integrators."""
    p = Topics(prefix).prefix
    fleet = {rid: tuple(s) for rid, s in FLEET.items()}
    for rid, scenarios in (robots or {}).items():
        fleet[rid] = Account(rid, "robot", "x", tuple(scenarios)).telemetry_scenarios
    blocks = [
        f"# minewatch broker ACL of the public listener (robots, integrators), topic prefix {p}.",
        "# Generated by minewatch.security; anything not allowed here is denied. Mosquitto re-reads",
        "# this file on SIGHUP. The client id on this listener is the username.",
        "",
        "# Robots: each writes its own status, and telemetry only for the scenarios it works in (its",
        "# station, or a patrol's route). A robot without scenarios here sends status only.",
    ]
    for rid, scenarios in fleet.items():
        blocks += ["", f"user {rid}", *(f"topic write {p}/telemetry/{sid}/{rid}" for sid in scenarios),
                   f"topic write {p}/status/{rid}"]
    for name in integrators:
        Account(name, "integrator", "x")  # validates the name
        if name in fleet:
            raise ValueError(f"integrator {name!r} has a robot's name")
        blocks += [
            "",
            f"# Integrator {name}: alerts, incidents and watch states, read only; not the operators'",
            "# acknowledgement requests (the API's commands to the ingestor).",
            f"user {name}",
            f"topic deny {p}/alerts/ack/#",
            f"topic deny {p}/incidents/ack/#",
            f"topic read {p}/alerts/#",
            f"topic read {p}/incidents/#",
            f"topic read {p}/watch/#",
        ]
    return "\n".join(blocks) + "\n"


def service_acl_text(prefix: str = DEFAULT_PREFIX) -> str:
    """The service listener's ACL for ``prefix``: the ingestor, the API, the simulator, the healthcheck."""
    p = Topics(prefix).prefix
    blocks = [
        "# minewatch broker ACL of the service listener (the deployment's own processes), topic prefix",
        f"# {p}. Generated by minewatch.security; anything not allowed here is denied.",
        "",
        "# The simulator stands in for the whole fleet (real robots use their own accounts, on the",
        "# public listener).",
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
    return "\n".join(blocks) + "\n"


@dataclass
class BrokerAuth:
    """Files written by :func:`write_broker_auth` and the accounts they hold."""

    directory: Path
    password_file: Path          # the public listener's: robots and integrators
    acl_file: Path
    service_password_file: Path  # the service listener's: ingest, api, simulator, healthcheck
    service_acl_file: Path
    credentials_file: Path
    accounts: dict[str, Account]

    def __getitem__(self, username: str) -> Account:
        return self.accounts[username]

    def url(self, username: str, host: str = "127.0.0.1", port: int | None = None, *, tls: bool = False) -> str:
        return self.accounts[username].mqtt_url(host, port, tls=tls)


def new_secret() -> str:
    """A random 32-character secret, URL-safe (it goes into ``mqtt://`` URLs unquoted)."""
    return secrets.token_urlsafe(24)


def load_credentials(directory: Path) -> dict[str, Any]:
    """``credentials.json`` of ``directory`` (empty sections if there is none)."""
    path = Path(directory) / "credentials.json"
    data = json.loads(path.read_text()) if path.exists() else {}
    for section in ("mqtt", "influx", "api_keys"):
        data.setdefault(section, {})
    return data


def save_credentials(directory: Path, data: dict[str, Any]) -> Path:
    path = Path(directory) / "credentials.json"
    write_private(path, json.dumps(data, indent=2, sort_keys=True) + "\n")
    return path


def write_broker_auth(directory: Path, *, prefix: str = DEFAULT_PREFIX, robots: Iterable[str] = (),
                      integrators: Iterable[str] = ("integrator",),
                      passwords: dict[str, str] | None = None, keep_accounts: bool = False) -> BrokerAuth:
    """Write the listeners' password files and ACLs and ``credentials.json`` into ``directory``.

    ``mosquitto.passwd`` and ``mosquitto.acl`` are the public listener's (one account per robot
    and per integrator), ``mosquitto-services.passwd`` and ``mosquitto-services.acl`` the service
    listener's (``ingest``, ``api``, ``simulator``, ``healthcheck``). A robot is given as its id,
    or as ``id=scenario,scenario`` to say where it works (see :func:`parse_robot`).
    Passwords come from ``passwords``, else from the ``credentials.json`` already in the
    directory (so they survive a restart), else are drawn at random. With ``keep_accounts`` the
    robot and integrator accounts already in ``credentials.json`` stay too, with their scenarios
    (to remove one, delete its entry there and write again). ``credentials.json`` holds
    the plain passwords and is readable by its owner only; the password files hold salted
    PBKDF2 hashes of 192-bit random secrets and are world-readable, because the broker reads them
    after dropping root for its own user.
    """
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    creds = load_credentials(directory)
    known = {name: entry["password"] for name, entry in creds["mqtt"].items()}
    known.update(passwords or {})
    robot_scenarios: dict[str, tuple[str, ...]] = {}
    if keep_accounts:
        for name, entry in creds["mqtt"].items():
            if entry["role"] == "robot":
                robot_scenarios[name] = tuple(entry.get("scenarios", ()))
    for spec in robots:
        rid, scenarios = parse_robot(spec)
        if scenarios or rid not in robot_scenarios:
            robot_scenarios[rid] = scenarios
    integrators = list(integrators)
    if keep_accounts:
        had = [n for n, a in creds["mqtt"].items() if a["role"] == "integrator"]
        integrators = list(dict.fromkeys([*had, *integrators]))
    wanted: list[tuple[str, Role, tuple[str, ...]]] = [(r, r, ()) for r in SERVICE_ROLES]
    wanted += [(name, "integrator", ()) for name in integrators]
    wanted += [(rid, "robot", sc) for rid, sc in robot_scenarios.items()]
    accounts: dict[str, Account] = {}
    for name, role, scenarios in wanted:
        if name in accounts:
            raise ValueError(f"account {name!r} given twice")
        accounts[name] = Account(name, role, known.get(name) or new_secret(), scenarios)

    public = [a for a in accounts.values() if not a.service]
    services = [a for a in accounts.values() if a.service]
    pw_path, acl_path = directory / "mosquitto.passwd", directory / "mosquitto.acl"
    spw_path, sacl_path = directory / "mosquitto-services.passwd", directory / "mosquitto-services.acl"
    write_private(pw_path, password_file_text(public), mode=0o644)
    write_private(spw_path, password_file_text(services), mode=0o644)
    acl_path.write_text(acl_text(prefix, integrators, {a.username: a.scenarios for a in public if a.role == "robot"}))
    sacl_path.write_text(service_acl_text(prefix))
    creds["prefix"] = prefix
    creds["mqtt"] = {a.username: {"role": a.role, "password": a.password, **({"scenarios": list(a.scenarios)}
                                                                               if a.scenarios else {})}
                     for a in accounts.values()}
    creds_path = save_credentials(directory, creds)
    return BrokerAuth(directory, pw_path, acl_path, spw_path, sacl_path, creds_path, accounts)


def write_private(path: Path, text: str, *, mode: int = 0o600) -> None:
    """Write ``text`` to ``path`` atomically, created with ``mode`` (never briefly wider)."""
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    with os.fdopen(fd, "w") as f:
        f.write(text)
    os.chmod(tmp, mode)
    os.replace(tmp, path)




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

    The services reach the broker on its service listener, ``mqtt_host``:``mqtt_port`` (1884,
    with ``tls`` 8884). The broker's files (:func:`write_broker_auth`); InfluxDB admin, ``ingest`` (all rights on the
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
    port = mqtt_port or (SERVICE_TLS_PORT if tls else SERVICE_PORT)
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
@click.option("--robot", "robots", multiple=True, metavar="ID[=SCENARIO,...]",
              help="A robot to give its own broker account (repeatable), with the scenarios it may send "
                   "telemetry for, e.g. r40=mf01,mf02. Without them a robot of the catalogue's fleet gets "
                   "its station or patrol route, any other robot status only.")
@click.option("--integrator", "integrators", multiple=True,
              help="An integrator account name (repeatable; default: one named 'integrator').")
@click.option("--prefix", default=DEFAULT_PREFIX, show_default=True, help="Topic prefix the ACLs are written for.")
@click.option("--mqtt-host", default="mosquitto", show_default=True, help="Broker host in the services' URLs.")
@click.option("--tls", is_flag=True, help="Services reach the broker over TLS (mqtts://, port 8884) and the API serves HTTPS.")
def secrets_command(directory: Path, robots: tuple[str, ...], integrators: tuple[str, ...], prefix: str,
                    mqtt_host: str, tls: bool) -> None:
    """Write the broker's password files and ACLs, InfluxDB and API credentials and the services'
    environment files (for docker-compose.yml) into DIRECTORY (default deploy/secrets).

    Passwords are random; existing accounts and passwords are kept, so running it again only adds
    what is missing. credentials.json (readable by its owner only) lists them all.
    """
    try:
        files = write_deploy_secrets(directory, prefix=prefix, robots=robots, integrators=integrators or ("integrator",),
                                     mqtt_host=mqtt_host, tls=tls)
    except ValueError as exc:
        raise click.UsageError(str(exc)) from None
    click.echo(f"wrote the broker's password files, ACLs and credentials.json in {directory}")
    click.echo("environment files: " + ", ".join(str(p) for p in files.values()))
    accounts = load_credentials(directory)["mqtt"]
    for name, entry in accounts.items():
        if entry["role"] == "robot" and not Account(name, "robot", "x", tuple(entry.get("scenarios", ()))).telemetry_scenarios:
            click.echo(f"robot {name} is not in the catalogue's fleet and has no scenarios: it may send status only "
                       f"(give them with --robot {name}=SCENARIO,...)")
    for name in ("mosquitto.acl", "mosquitto-services.acl"):
        if (Path(directory) / name).read_text() != (_DEPLOY / name).read_text():
            click.echo(f"this ACL differs from deploy/{name}: copy {Path(directory) / name} over it")


_DEPLOY = Path(__file__).resolve().parent.parent / "deploy"

if __name__ == "__main__":
    secrets_command()
