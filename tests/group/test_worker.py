"""Group ingest workers on JetStream, as real processes against real nats-server, mosquitto and
influxd: a worker SIGKILLed and restarted, a worker added, workers removed (SIGTERM, SIGKILL), a
cluster node SIGKILLed, all mid-stream. Every frame is stored once (by robot, boot and seq), every
expected alert is published once and live, nothing else is raised."""

from __future__ import annotations

import json
import time
from collections import Counter
from collections.abc import Callable

import orjson
import pytest

from minewatch.group import mine_prefix
from minewatch.services import Influxd, Mosquitto, NatsServer
from minewatch.topics import Topics
from minewatch.wire import Frame

from tests.group.helpers import Js, WorkerProcess, alert_events, late_points, stored_keys
from tests.ingest.helpers import Collector, Publisher, SilentProxy, frames_for, retained_active, wait_until

pytestmark = pytest.mark.integration

P = 4
# (scenario, robot): each robot patrols one place; mf01's ch4_t1 is the methane channel the
# excursion goes through (power-cut level 1.5 %, restored below 1.0 %: domain §2)
ROUTES = [("mf01", "r01"), ("hf01", "r02"), ("bc01", "r03"), ("pr01", "r04"), ("ss01", "r05"), ("ra02", "r06")]
FRAMES_PER_ROUND = 4
STEP_NS = 50_000_000


class Workload:
    """Rounds of frames for each mine, stamped with the time they are sent; mine ``mines[0]``'s
    methane (or that of each of ``hot_mines``) goes over the power-cut level in rounds ``hot`` and
    back below the restore level after."""

    def __init__(self, js: Js, mines: list[str], rounds: int, hot: range, hot_mines: int = 1) -> None:
        self.js, self.mines, self.rounds, self.hot = js, mines, rounds, hot
        self.hot_mines = mines[:hot_mines]
        self.sent = 0
        self.base = time.time_ns()
        self.expected: dict[str, set[tuple[str, int, int]]] = {m: set() for m in mines}

    def round(self, i: int) -> None:
        # robot time runs with the wall clock: round i is the frames of [base + i * 0.2 s, base + (i + 1) * 0.2 s)
        delay = (self.base + i * FRAMES_PER_ROUND * STEP_NS - time.time_ns()) / 1e9
        if delay > 0:
            time.sleep(delay)
        for m in self.mines:
            frames: list[Frame] = []
            for sid, robot in ROUTES:
                fs = frames_for(sid, robot, FRAMES_PER_ROUND, start_seq=i * FRAMES_PER_ROUND,
                                t0=self.base, step_ns=STEP_NS)
                if sid == "mf01" and m in self.hot_mines:
                    for f in fs:
                        f.readings["ch4_t1"] = 1.7 if i in self.hot else 0.3
                frames += fs
            self.js.publish_frames(m, frames, P)
            self.expected[m] |= {(f.robot_id, f.boot or 0, f.seq) for f in frames}
        self.sent = i + 1

    def resume(self) -> None:
        """Robot time goes on from now (after a pause of the test's making): the rounds still to
        send are stamped as sent, not as due before the pause (which would make them late)."""
        self.base = time.time_ns() - self.sent * FRAMES_PER_ROUND * STEP_NS

    def run(self, until: int) -> None:
        for i in range(self.sent, until):
            self.round(i)

    def assert_stored_once(self, influx_url: str, timeout: float = 40.0) -> None:
        for m in self.mines:
            want = self.expected[m]
            wait_until(lambda m=m, want=want: set(stored_keys(influx_url, m)) >= want, timeout,  # type: ignore[misc]
                       f"every frame of {m} stored")
            got = Counter(stored_keys(influx_url, m))
            assert set(got) == want and all(n == 1 for n in got.values()), \
                f"{m}: {len(want - set(got))} missing, {sum(n > 1 for n in got.values())} stored twice"


def story(*procs: WorkerProcess) -> str:
    """What each worker's log says, less the HTTP requests (for a failure's message)."""
    out = []
    for p in procs:
        lines = p.log_path.read_text(errors="replace").splitlines() if p.log_path.exists() else []
        out += [f"--- {p.log_path.name}"] + [ln for ln in lines if "HTTP Request" not in ln][-60:]
    return "\n".join(out)


def assert_one_methane_alert(col: Collector, base: str, mine: str, others: list[str], *procs: WorkerProcess) -> None:
    """The excursion's alert raised once and cleared once, both live; nothing else anywhere."""
    gas = [e for e in alert_events(col, base, mine) if e["detector"] == "gas_limit" and e["channel"] == "ch4_t1"]
    states = Counter(e["state"] for e in gas)
    assert states["raised"] == 1 and states["cleared"] == 1, \
        (f"{[(e['alert_id'], e['state'], e['timing'], e['ts'], e.get('evidence', {}).get('reconciled')) for e in gas]}"
         f"\n{story(*procs)}")
    assert len({e["alert_id"] for e in gas}) == 1
    keys = [(e["alert_id"], e["state"], e.get("severity")) for e in gas]
    assert len(keys) == len(set(keys)), f"an alert event published twice: {keys}"
    assert all(e["timing"] == "live" for e in gas), [e["timing"] for e in gas]
    for m in others:
        assert not [e for e in alert_events(col, base, m) if e["detector"] == "gas_limit"]


def one_server_setup(unique: str, nats_server: NatsServer, mosquitto: Mosquitto,
                     js_client: Callable[..., Js]) -> tuple[str, list[str], Js, Collector]:
    """The topic base, two mines, the GROUP stream on one server, and a collector of every alert."""
    base = f"t{unique}/v1"
    js = js_client([nats_server.url])
    js.make_group_stream()
    return base, [f"a{unique[:6]}", f"b{unique[:6]}"], js, Collector(mosquitto.url, f"{base}/mines/+/alerts/#")


def worker_args(nats_urls: str, mosquitto: Mosquitto, influxd: Influxd | SilentProxy, base: str, wid: str, *,
                replicas: int = 1, lease_s: float = 3.0, ack_wait_s: float = 3.0) -> list[str]:
    """A worker's flags: the leases, the ack wait and the stop short, so the test is."""
    return ["--nats", nats_urls, "--partitions", str(P), "--worker-id", wid, "--mqtt-url", mosquitto.url,
            "--influx-url", influxd.url, "--topic-prefix", base, "--kv-replicas", str(replicas),
            "--lease-ttl", str(lease_s), "--renew", "0.5", "--ack-wait", str(ack_wait_s), "--stop-timeout", "3",
            "--log-level", "info"]


def test_worker_sigkilled_mid_stream_and_restarted(nats_server: NatsServer, mosquitto: Mosquitto, influxd: Influxd,
                                                   unique: str, worker_process: Callable[..., WorkerProcess],
                                                   js_client: Callable[..., Js]) -> None:
    base, mines, js, col = one_server_setup(unique, nats_server, mosquitto, js_client)
    work = Workload(js, mines, rounds=24, hot=range(6, 14))
    args = worker_args(nats_server.url, mosquitto, influxd, base, "w1")
    w1 = worker_process(*args, name="w1")
    work.run(6)
    wait_until(lambda: stored_keys(influxd.url, mines[1]) != [], 60, f"the worker storing frames\n{w1.log()}")
    work.run(8)
    wait_until(lambda: any(e["state"] == "raised" for e in alert_events(col, base, mines[0])), 30,
               f"the methane alert\n{w1.log()}")
    w1.kill()
    work.run(16)
    w1b = worker_process(*args, name="w1b")
    work.run(24)
    work.assert_stored_once(influxd.url)
    wait_until(lambda: any(e["state"] == "cleared" for e in alert_events(col, base, mines[0])), 30,
               f"the clear\n{w1b.log()}")
    time.sleep(1.0)  # anything published twice would be in by now
    assert_one_methane_alert(col, base, mines[0], mines[1:], w1, w1b)
    assert w1b.terminate() == 0, w1b.log()
    col.close()


def test_workers_added_and_removed_mid_stream(nats_server: NatsServer, mosquitto: Mosquitto, influxd: Influxd,
                                              unique: str, worker_process: Callable[..., WorkerProcess],
                                              js_client: Callable[..., Js]) -> None:
    """w1 alone; w2 joins (partitions move to it); w1 stops (SIGTERM: its partitions handed over at
    once); w3 joins; w2 is SIGKILLed (its partitions taken over once their leases expire)."""
    base, mines, js, col = one_server_setup(unique, nats_server, mosquitto, js_client)
    work = Workload(js, mines, rounds=40, hot=range(8, 22))

    def args(wid: str) -> list[str]:
        return worker_args(nats_server.url, mosquitto, influxd, base, wid)

    w1 = worker_process(*args("w1"), name="w1")
    wait_until(lambda: set(js.owners(P).values()) == {"w1"} and len(js.owners(P)) == P, 60,
               f"w1 holding every partition\n{w1.log()}")
    work.run(6)
    w2 = worker_process(*args("w2"), name="w2")
    work.run(10)
    wait_until(lambda: sorted(Counter(js.owners(P).values()).values()) == [P // 2, P // 2], 30,
               f"the partitions shared by w1 and w2: {js.owners(P)}\n{w2.log()}")
    work.run(16)
    assert w1.terminate() == 0, w1.log()
    assert "released" in w1.log() or "dropped" in w1.log()
    work.run(20)
    wait_until(lambda: set(js.owners(P).values()) == {"w2"} and len(js.owners(P)) == P, 30,
               f"w2 holding every partition: {js.owners(P)}")
    w3 = worker_process(*args("w3"), name="w3")
    work.run(28)
    wait_until(lambda: set(js.owners(P).values()) == {"w2", "w3"}, 30, f"w3 sharing: {js.owners(P)}")
    w2.kill()
    work.run(40)
    wait_until(lambda: set(js.owners(P).values()) == {"w3"} and len(js.owners(P)) == P, 30,
               f"w3 holding every partition: {js.owners(P)}\n{w3.log()}")
    work.assert_stored_once(influxd.url)
    wait_until(lambda: any(e["state"] == "cleared" for e in alert_events(col, base, mines[0])), 30,
               f"the clear\n{w3.log()}")
    time.sleep(1.0)
    assert_one_methane_alert(col, base, mines[0], mines[1:], w1, w2, w3)
    col.close()


def test_a_cluster_node_sigkilled_mid_stream(nats_nodes: list[NatsServer], mosquitto: Mosquitto, influxd: Influxd,
                                             unique: str, worker_process: Callable[..., WorkerProcess],
                                             js_client: Callable[..., Js]) -> None:
    """GROUP and the leases replicated on three nodes; the stream's leader is SIGKILLed while two
    workers consume: nothing lost, nothing stored twice, the alert once."""
    base = f"t{unique}/v1"
    mines = [f"a{unique[:6]}", f"b{unique[:6]}"]
    urls = ",".join(n.url for n in nats_nodes)
    js = js_client([n.url for n in nats_nodes])
    wait_until(lambda: _made_stream(js), 30, "the cluster to take the GROUP stream")
    col = Collector(mosquitto.url, f"{base}/mines/+/alerts/#")
    work = Workload(js, mines, rounds=30, hot=range(8, 18))
    ws = [worker_process(*worker_args(urls, mosquitto, influxd, base, w, replicas=3, lease_s=6.0), name=w)
          for w in ("w1", "w2")]
    work.run(6)
    wait_until(lambda: len(js.owners(P)) == P, 60, f"every partition held\n{ws[0].log()}")
    work.run(10)
    leader = js.stream_leader()
    victim = next(n for n in nats_nodes if n.server_name == leader)
    victim.kill()
    work.run(30)
    work.assert_stored_once(influxd.url, timeout=60)
    wait_until(lambda: any(e["state"] == "cleared" for e in alert_events(col, base, mines[0])), 30,
               f"the clear\n{ws[0].log()}\n{ws[1].log()}")
    time.sleep(1.0)
    assert_one_methane_alert(col, base, mines[0], mines[1:], *ws)
    assert all(w.alive for w in ws)
    col.close()


def _made_stream(js: Js) -> bool:
    try:
        js.make_group_stream(replicas=3)
    except Exception:  # noqa: BLE001 - no JetStream leader elected yet
        return False
    return True


def test_a_robot_moving_between_places_of_two_partitions(nats_server: NatsServer, mosquitto: Mosquitto,
                                                        influxd: Influxd, unique: str,
                                                        worker_process: Callable[..., WorkerProcess],
                                                        js_client: Callable[..., Js]) -> None:
    """A patrol robot walks between two places whose partitions differ, frame by frame, and two
    workers share the partitions: each sees every other seq of the robot, and every frame is still
    stored exactly once."""
    from minewatch.group import group_partition

    base = f"t{unique}/v1"
    mine = f"c{unique[:6]}"
    places = ["mf01", "hf01", "bc01", "pr01", "ss01", "ra02", "mf02", "hf02"]
    a = places[0]
    b = next(s for s in places if group_partition(mine, s, P) != group_partition(mine, a, P))
    js = js_client([nats_server.url])
    js.make_group_stream()
    w = worker_process(*worker_args(nats_server.url, mosquitto, influxd, base, "w1"), name="w1")
    w2 = worker_process(*worker_args(nats_server.url, mosquitto, influxd, base, "w2"), name="w2")
    wait_until(lambda: len(set(js.owners(P).values())) == 2, 30, f"the partitions shared\n{w.log()}\n{w2.log()}")
    t0 = time.time_ns()
    frames: list[Frame] = []
    for i in range(120):
        f = frames_for(a if i % 2 == 0 else b, "r09", 1, start_seq=i, t0=t0, step_ns=STEP_NS)[0]
        frames.append(f)
    for i in range(0, len(frames), 10):
        js.publish_frames(mine, frames[i:i + 10], P)
    want = {(f.robot_id, f.boot or 0, f.seq) for f in frames}
    wait_until(lambda: set(stored_keys(influxd.url, mine)) >= want, 40,
               f"every frame of the moving robot stored\n{w.log()}")
    got = Counter(stored_keys(influxd.url, mine))
    assert set(got) == want and all(n == 1 for n in got.values())
    assert w.terminate() == 0, w.log()
    assert w2.terminate() == 0, w2.log()


def test_operators_acknowledgement_reaches_the_owning_worker(
        nats_server: NatsServer, mosquitto: Mosquitto, influxd: Influxd, unique: str,
        worker_process: Callable[..., WorkerProcess], js_client: Callable[..., Js]) -> None:
    """An acknowledgement published on the centre's alert broker under the mine's prefix is applied
    by the worker holding the alert's partition: the acknowledged event once, the retained active
    state acknowledged; the same id acknowledged under another mine changes nothing there."""
    base, mines, js, col = one_server_setup(unique, nats_server, mosquitto, js_client)
    work = Workload(js, mines, rounds=40, hot=range(4, 30))
    w1 = worker_process(*worker_args(nats_server.url, mosquitto, influxd, base, "w1"), name="w1")
    work.run(2)
    wait_until(lambda: stored_keys(influxd.url, mines[1]) != [], 60, f"the worker storing frames\n{w1.log()}")
    work.resume()
    work.run(8)
    wait_until(lambda: any(e["state"] == "raised" for e in alert_events(col, base, mines[0])), 30,
               f"the methane alert\n{w1.log()}")
    raised = next(e for e in alert_events(col, base, mines[0]) if e["state"] == "raised")
    alert_id = raised["alert_id"]
    ack = {"alert_id": alert_id, "scenario_id": "mf01", "operator": "op-zhao", "note": "power cut, people out",
           "ts": time.time_ns()}
    pub = Publisher(mosquitto.url)
    for m in (mines[1], mines[0]):  # the other mine first: not its alert
        pub.publish(Topics(mine_prefix(m, base)).ack(alert_id), orjson.dumps(ack))
    pub.flush()
    work.run(14)
    wait_until(lambda: any(e["state"] == "acknowledged" for e in alert_events(col, base, mines[0])), 20,
               f"the acknowledgement\n{w1.log()}")
    acked = [e for e in alert_events(col, base, mines[0]) if e["state"] == "acknowledged"]
    assert [(e["alert_id"], e["operator"], e["note"]) for e in acked] == [(alert_id, "op-zhao", "power cut, people out")]
    active = retained_active(mosquitto.url, Topics(mine_prefix(mines[0], base)))
    assert json.loads(active[alert_id])["state"] == "acknowledged", active
    assert not [e for e in alert_events(col, base, mines[1]) if e["state"] == "acknowledged"]
    work.run(40)
    wait_until(lambda: any(e["state"] == "cleared" for e in alert_events(col, base, mines[0])), 30,
               f"the clear\n{w1.log()}")
    assert alert_id not in retained_active(mosquitto.url, Topics(mine_prefix(mines[0], base)))
    pub.close()
    col.close()


def test_two_mines_alike_reach_a_group_wide_integrator_as_two_alarms(
        nats_server: NatsServer, mosquitto: Mosquitto, influxd: Influxd, unique: str,
        worker_process: Callable[..., WorkerProcess], js_client: Callable[..., Js]) -> None:
    """Two mines with the same places and robots send the same readings at the same times, and the
    methane at both goes past the power-cut level together. An integrator following every mine's
    alerts at the centre (``<base>/mines/+/alerts/+/+``) and deduplicating by ``alert_id`` sees two
    alarms, one of each mine; each mine's alarm is raised and cleared under its own id."""
    base, mines, js, col = one_server_setup(unique, nats_server, mosquitto, js_client)
    work = Workload(js, mines, rounds=40, hot=range(4, 12), hot_mines=2)
    w1 = worker_process(*worker_args(nats_server.url, mosquitto, influxd, base, "w1"), name="w1")
    work.run(2)
    wait_until(lambda: all(stored_keys(influxd.url, m) != [] for m in mines), 60, f"the worker storing frames\n{w1.log()}")
    work.resume()
    work.run(40)

    def gas(m: str) -> list[dict]:
        return [e for e in alert_events(col, base, m) if e["detector"] == "gas_limit" and e["channel"] == "ch4_t1"]

    wait_until(lambda: all(sorted(e["state"] for e in gas(m)) == ["cleared", "raised"] for m in mines), 40,
               f"each mine's alarm, raised and cleared\n{story(w1)}")
    raised = [e for m in mines for e in gas(m) if e["state"] == "raised"]
    assert raised[0]["first_ts"] == raised[1]["first_ts"]  # alike to the nanosecond
    by_id: dict[str, dict] = {}
    for e in raised:
        by_id.setdefault(e["alert_id"], e)
    assert len(by_id) == 2, sorted(by_id)
    for m in mines:
        assert {e["alert_id"] for e in gas(m)} == {next(e["alert_id"] for e in gas(m) if e["state"] == "raised")}
        assert all(e["alert_id"].startswith(f"{m}.") and e["incident_id"].startswith(f"{m}.") for e in gas(m))
    assert w1.terminate() == 0, w1.log()
    col.close()


def test_a_redelivery_after_a_sigkill_is_not_late(
        nats_server: NatsServer, mosquitto: Mosquitto, influxd: Influxd, unique: str,
        worker_process: Callable[..., WorkerProcess], js_client: Callable[..., Js]) -> None:
    """w1's writes stall (InfluxDB silent behind a proxy) while it goes on fetching, and it is
    SIGKILLed holding those messages unacknowledged, unstored. w2 takes over and stores newer frames;
    the held ones come back after the ack wait (8 s), long past --late-after (4 s): they are stored
    once, not as late, and raise nothing (no robot_clock correction, no alert marked late)."""
    base, mines, js, col = one_server_setup(unique, nats_server, mosquitto, js_client)
    proxy = SilentProxy(influxd.url)
    work = Workload(js, mines, rounds=22, hot=range(0))
    tight = ["--late-after", "4", "--clock-settle", "1"]
    w1 = worker_process(*worker_args(nats_server.url, mosquitto, proxy, base, "w1", ack_wait_s=8), *tight, name="w1")
    work.run(2)
    wait_until(lambda: stored_keys(influxd.url, mines[1]) != [], 60, f"the worker storing frames\n{w1.log()}")
    work.resume()
    work.run(6)
    wait_until(lambda: all(set(stored_keys(influxd.url, m)) >= work.expected[m] for m in mines), 30,
               f"rounds 0-5 stored\n{w1.log()}")
    proxy.silent.set()  # from now on w1's writes wait for an answer that never comes
    work.run(10)
    held = len(mines) * len(ROUTES) * FRAMES_PER_ROUND * 4
    wait_until(lambda: js.ack_pending(P) >= held, 20, f"w1 holding rounds 6-9 unacknowledged\n{w1.log()}")
    unstored = sum(len(work.expected[m] - set(stored_keys(influxd.url, m))) for m in mines)
    assert unstored >= held, f"only {unstored} frames held unstored"
    w1.kill()
    proxy.close()
    w2 = worker_process(*worker_args(nats_server.url, mosquitto, influxd, base, "w2", ack_wait_s=8), *tight,
                        name="w2")
    wait_until(lambda: set(js.owners(P).values()) == {"w2"} and len(js.owners(P)) == P, 30,
               f"w2 holding every partition\n{w2.log()}")
    work.resume()
    work.run(22)  # newer frames, taken before the held ones come back
    work.assert_stored_once(influxd.url)
    for m in mines:
        assert late_points(influxd.url, m) == 0, f"{m}: frames stored as late\n{w2.log()}"
        events = alert_events(col, base, m)
        assert not [e for e in events if e["detector"] == "robot_clock" or e["timing"] != "live"], events
    assert w2.terminate() == 0, w2.log()
    col.close()
