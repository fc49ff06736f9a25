"""The shipped broker configuration on a real mosquitto: who may log in, publish and read what.

A refused publish must not reach anyone: each check waits for the broker's PUBACK, then for a
sentinel published afterwards by an allowed account; mosquitto routes messages one at a time, so
once the sentinel is in, a message that got through would already have been delivered too.
"""

from __future__ import annotations

import subprocess

import paho.mqtt.client as paho
import pytest

from minewatch.catalogue import FLEET
from minewatch.security import Account, acl_text, hash_password, service_acl_text, verify_password, write_broker_auth
from minewatch.services import Mosquitto
from minewatch.services import DEPLOY, find_program
from minewatch.topics import Topics

from .conftest import DeployBroker
from .probe import Session, login, publish_once

T = Topics()  # the committed ACL is for the default prefix
NOT_AUTHORIZED = 135  # MQTT 5 reason code 0x87

pytestmark = pytest.mark.integration

# (account, topic, allowed): every publish right the ACL gives or withholds that matters.
PUBLISH_RULES = [
    ("r01", T.telemetry("mf01", "r01"), True),
    ("r01", T.status("r01"), True),
    ("r01", T.telemetry("mf01", "r02"), False),  # speaking for another robot
    ("r01", T.telemetry("mf02", "r01"), False),  # a scenario not its own
    ("r01", T.history("mf01", "r01"), False),
    ("p01", T.telemetry("ra03", "p01"), True),   # on its patrol route
    ("p01", T.telemetry("mf03", "p01"), True),
    ("p01", T.telemetry("hf01", "p01"), False),  # off its route
    ("p01", T.status("p01"), True),
    ("r01", T.status("r02"), False),
    ("r01", T.alert("mf01", "gas"), False),
    ("r01", T.active("a1"), False),
    ("r01", T.ack("a1"), False),
    ("r01", T.deadletter("invalid"), False),
    ("simulator", T.telemetry("hf02", "r02"), True),
    ("simulator", T.status("r09"), True),
    ("simulator", T.alert("mf01", "gas"), False),
    ("ingest", T.alert("mf01", "gas"), True),
    ("ingest", T.active("a1"), True),
    ("ingest", T.deadletter("invalid"), True),
    ("ingest", T.telemetry("mf01", "r01"), False),
    ("ingest", f"{T.prefix}/ingest/marker/1", True),
    ("integrator", f"{T.prefix}/ingest/marker/1", False),
    ("r01", f"{T.prefix}/ingest/marker/1", False),
    ("api", T.ack("a1"), True),
    ("api", T.alert("mf01", "gas"), False),
    ("api", T.active("a1"), False),
    ("api", T.status("r01"), False),
    ("api", T.telemetry("mf01", "r01"), False),
    ("api", T.telemetry("mf01", "api"), False),
    ("api", T.status("api"), False),
    ("ingest", T.status("r01"), False),
    ("ingest", T.status("ingest"), False),
    ("ingest", T.telemetry("mf01", "ingest"), False),
    ("ingest", T.history("mf01", "r01"), False),
    ("integrator", T.alert("mf01", "gas"), False),
    ("integrator", T.active("a1"), False),
    ("integrator", T.ack("a1"), False),
    ("integrator", T.telemetry("mf01", "r01"), False),
    ("integrator", T.telemetry("mf01", "integrator"), False),  # the robot pattern, applied to its name
    ("integrator", T.status("integrator"), False),
    ("integrator", T.deadletter("invalid"), False),
    ("healthcheck", T.telemetry("mf01", "healthcheck"), False),
    ("healthcheck", T.status("healthcheck"), False),
    ("healthcheck", T.alert("mf01", "gas"), False),
    ("healthcheck", T.telemetry("mf01", "r01"), False),
    ("integrator", T.status("r01"), False),
]

# Sentinels, published by the ingest account after each probe: one per watcher.
SENTINELS = (T.deadletter("sentinel"), f"{T.prefix}/ingest/sentinel")


class Watchers:
    """The api account reads alerts, status, telemetry and dead letters; the ingest account its
    own scratch topics. Between them they see every topic a probe may reach."""

    def __init__(self, b: DeployBroker) -> None:
        self.b = b
        self.api = Session(b.url("api"))
        self.api.subscribe(f"{T.prefix}/#")
        self.ingest = Session(b.url("ingest"))
        self.ingest.subscribe(f"{T.prefix}/ingest/#")

    def settle(self) -> None:
        """Return once everything published before is delivered."""
        for topic in SENTINELS:
            publish_once(self.b.url("ingest"), topic)
        self.api.wait_for(SENTINELS[0])
        self.ingest.wait_for(SENTINELS[1])

    def topics(self) -> list[str]:
        return self.api.topics() + self.ingest.topics()

    def __enter__(self) -> Watchers:
        return self

    def __exit__(self, *exc: object) -> None:
        self.api.close()
        self.ingest.close()


def test_the_committed_acls_are_the_generated_ones() -> None:
    assert (DEPLOY / "mosquitto.acl").read_text() == acl_text()
    assert (DEPLOY / "mosquitto-services.acl").read_text() == service_acl_text()
    for text in (acl_text(), service_acl_text()):
        assert "pattern" not in text  # every right is written out for its account


def test_the_acl_fleet_is_the_simulators() -> None:
    from simulator.fleet import default_fleet

    routes = {r.id: tuple(dict.fromkeys(sid for sid, _ in r.route.segments)) for r in default_fleet()}
    assert routes == FLEET


def test_deploy_conf_keeps_every_loss_free_limit() -> None:
    def directives(text: str) -> set[str]:
        return {ln.strip() for ln in text.splitlines() if ln.strip() and not ln.startswith("#")}

    limits = directives((DEPLOY / "mosquitto-limits.conf").read_text())
    conf = directives((DEPLOY / "mosquitto.conf").read_text())
    assert limits <= conf, limits - conf
    assert "allow_anonymous false" in conf


def test_anonymous_and_wrong_passwords_are_refused(deploy_broker: DeployBroker) -> None:
    assert login(deploy_broker.anonymous_url) == NOT_AUTHORIZED
    assert login(deploy_broker.url("r01", password="guess")) == NOT_AUTHORIZED
    assert login(deploy_broker.url("nobody", password=deploy_broker.auth["r01"].password)) == NOT_AUTHORIZED
    assert login(deploy_broker.url("r01")) == 0


@pytest.mark.parametrize(("user", "topic", "allowed"), PUBLISH_RULES,
                         ids=[f"{u}->{t.removeprefix(T.prefix + '/')}" for u, t, _ in PUBLISH_RULES])
def test_publish_rights(deploy_broker: DeployBroker, user: str, topic: str, allowed: bool) -> None:
    with Watchers(deploy_broker) as watchers:
        reason = publish_once(deploy_broker.url(user), topic, f"from {user}".encode())
        watchers.settle()
        delivered = topic in watchers.topics()
    if allowed:
        assert reason < 128 and delivered, (reason, watchers.topics())
    else:
        assert reason == NOT_AUTHORIZED, reason
        assert not delivered, f"{user}'s refused message on {topic} reached a subscriber"


def test_an_mqtt311_robot_is_refused_silently_and_nothing_is_delivered(deploy_broker: DeployBroker) -> None:
    """MQTT 3.1.1 has no PUBACK reason codes: mosquitto acknowledges and drops the message."""
    other = T.telemetry("mf01", "r02")
    with Watchers(deploy_broker) as watchers:
        assert publish_once(deploy_broker.url("r01"), other, b"spoof", protocol=paho.MQTTv311) == 0
        watchers.settle()
        assert other not in watchers.topics()


def test_who_reads_what(deploy_broker: DeployBroker) -> None:
    b = deploy_broker
    topics = {"alert": T.alert("mf01", "gas"), "active": T.active("a7"), "ack": T.ack("a7"),
              "telemetry": T.telemetry("mf02", "r02"), "status": T.status("r02"), "deadletter": T.deadletter("x")}
    expected = {
        "r01": set(),
        "integrator": {"alert", "active"},  # not the operators' acknowledgement requests
        "api": set(topics),
        "ingest": {"alert", "active", "ack", "telemetry", "status"},
        "healthcheck": set(),
    }
    readers = {user: Session(b.url(user)) for user in expected}
    try:
        for s in readers.values():
            s.subscribe(f"{T.prefix}/#", f"{T.prefix}/alerts/#")
        publish_once(b.url("ingest"), topics["active"], b'{"state": "raised"}', retain=True)
        publish_once(b.url("ingest"), topics["alert"])
        publish_once(b.url("api"), topics["ack"])
        publish_once(b.url("r02"), topics["telemetry"])
        publish_once(b.url("r02"), topics["status"])
        publish_once(b.url("ingest"), topics["deadletter"])
        readers["api"].wait_for(topics["deadletter"])
        publish_once(b.url("ingest"), SENTINELS[0])
        readers["api"].wait_for(SENTINELS[0])
        for user, want in expected.items():
            got = {name for name, t in topics.items() if t in readers[user].topics()}
            assert got == want, (user, got, want)
        # Retained active-alert state published before the integrator subscribes still reaches it
        # (a second connection of the same account: the first is closed, its client id being the name).
        with Session(b.url("integrator")) as late:
            late.subscribe(T.all_active)
            late.wait_for(topics["active"])
    finally:
        publish_once(b.url("ingest"), topics["active"], b"", retain=True)  # clear the retained state
        for s in readers.values():
            s.close()


def test_robot_ids_cannot_take_a_service_name() -> None:
    for name in ("ingest", "api", "simulator", "integrator", "healthcheck", "minewatch-ingest-0of1", "mwsim-r01",
                 "auto-1234"):
        with pytest.raises(ValueError, match="reserved"):
            Account(name, "robot", "pw")
    for name in ("ingest", "minewatch-ingest-0of2", "mwsim-x", "auto-x"):
        with pytest.raises(ValueError, match="reserved"):
            Account(name, "integrator", "pw")
    with pytest.raises(ValueError):
        Account("r/01", "robot", "pw")


def test_password_hashes_are_mosquittos_own_format(tmp_path) -> None:
    """Hashes made here verify like mosquitto_passwd's, and the other way round."""
    pw_file = tmp_path / "pw"
    subprocess.run([find_program("mosquitto_passwd"), "-c", "-b", str(pw_file), "alice", "s3cret"], check=True)
    theirs = pw_file.read_text().strip().split(":", 1)[1]
    assert verify_password("s3cret", theirs) and not verify_password("s3cre", theirs)
    ours = hash_password("s3cret", iterations=101, salt=bytes(12))
    assert verify_password("s3cret", ours)
    _, kind, it, salt, digest = theirs.split("$")
    assert (kind, it) == ("7", "101") and len(salt) == len(ours.split("$")[3]) and len(digest) == 88


def test_accounts_are_kept_across_writes_when_asked(tmp_path) -> None:
    first = write_broker_auth(tmp_path, robots=["r07", "r40=mf01,ra03"], integrators=["integrator", "scada"])
    again = write_broker_auth(tmp_path, keep_accounts=True)
    assert again["r07"].password == first["r07"].password and "scada" in again.accounts
    assert "user scada" in again.acl_file.read_text()
    assert again["r40"].scenarios == ("mf01", "ra03")  # kept with the account
    assert "topic write minewatch/v1/telemetry/ra03/r40" in again.acl_file.read_text()
    fresh = write_broker_auth(tmp_path)  # exactly what is asked for
    assert "r07" not in fresh.accounts and fresh["ingest"].password == first["ingest"].password


def test_robots_outside_the_fleet_get_telemetry_only_where_their_account_says(tmp_path) -> None:
    """The generated files on a real broker with both listeners: r40 was made with its scenarios,
    r41 without any (status only), r05 of the fleet keeps its station."""
    auth = write_broker_auth(tmp_path / "secrets", robots=["r40=mf01,mf02", "r41", "r05"])
    broker = Mosquitto(tmp_path / "broker", password_file=auth.password_file, acl_file=auth.acl_file,
                       service_password_file=auth.service_password_file, service_acl_file=auth.service_acl_file)
    broker.start()
    try:
        def url(user: str) -> str:
            return auth.url(user, port=broker.service_port if auth[user].service else broker.port)

        rules = [("r40", T.telemetry("mf01", "r40"), True), ("r40", T.telemetry("mf02", "r40"), True),
                 ("r40", T.telemetry("hf01", "r40"), False), ("r40", T.status("r40"), True),
                 ("r41", T.telemetry("mf01", "r41"), False), ("r41", T.status("r41"), True),
                 ("r05", T.telemetry(FLEET["r05"][0], "r05"), True), ("r05", T.telemetry("mf01", "r05"), False),
                 ("simulator", T.telemetry("hf03", "r40"), True)]
        with Session(url("api")) as watcher:
            watcher.subscribe(f"{T.prefix}/#")
            for user, topic, allowed in rules:
                reason = publish_once(url(user), topic, f"from {user}".encode())
                assert (reason < 128) == allowed, (user, topic, reason)
            publish_once(url("ingest"), SENTINELS[0])
            watcher.wait_for(SENTINELS[0])
            delivered = set(watcher.topics())
        assert {t for _, t, ok in rules if ok} <= delivered
        assert not {t for _, t, ok in rules if not ok} & delivered
    finally:
        broker.stop()
