"""``minewatch group up --mines 2`` as a user runs it: the centre's stream GROUP fills with both
mines' simulated telemetry (and, with the centre's workers installed, the centre's database of each
mine, which the group view at the printed URL lists with the printed key), Ctrl-C stops every
process, and a second run on the same data goes on from where the first stopped (GROUP keeps what
it had and grows)."""

from __future__ import annotations

import json
import re
import signal
import subprocess
import sys
import urllib.error
import urllib.parse
import urllib.request
from collections import Counter
from pathlib import Path

import pytest

from group.cli import worker_command
from group.stack import centre_db
from minewatch.group import GROUP_STREAM, parse_subject
from tests.group.topo import read_stream, wait_until
from tests.second_run import run_second

pytestmark = pytest.mark.integration


def _by_mine(urls: list[str]) -> Counter[str]:
    try:
        msgs = read_stream(urls, GROUP_STREAM)
    except Exception:  # noqa: BLE001 - the cluster still electing its leaders: not yet
        return Counter()
    return Counter(p.mine for p in (parse_subject(s) for s, _ in msgs) if p is not None)


def _centre_has_telemetry(influx_url: str, mine: str) -> bool:
    q = urllib.parse.urlencode({"db": centre_db(mine), "q": "SELECT * FROM telemetry LIMIT 1"})
    with urllib.request.urlopen(f"{influx_url}/query?{q}", timeout=5) as r:
        return any("series" in res for res in json.loads(r.read())["results"])


def _group_view(out: str) -> tuple[str, str]:
    """The group view's URL and operator key, as ``group up`` prints them."""
    found = re.search(r"group view: (http://127\.0\.0\.1:\d+)/\?api_key=(\S+)", out)
    assert found, out
    return found[1], found[2]


def _mines_listed(url: str, key: str | None) -> list[str]:
    req = urllib.request.Request(f"{url}/group/mines", headers={"X-API-Key": key} if key else {})
    with urllib.request.urlopen(req, timeout=5) as r:
        return [m["mine"] for m in json.loads(r.read())["data"]]


def _run(home: Path, previous: Counter[str]) -> Counter[str]:
    (home / "group.json").unlink(missing_ok=True)  # the last run's: the new one writes its own once up
    home.mkdir(parents=True, exist_ok=True)
    out_path = home.parent / "group-up.out"
    with open(out_path, "wb") as out_file:
        proc = subprocess.Popen([sys.executable, "-m", "minewatch", "group", "up", "--mines", "2", "--home", str(home)],
                                stdout=out_file, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        wait_until(lambda: "Ctrl-C stops it" in out_path.read_text() or proc.poll() is not None, 120,
                   "group up to start")
        assert proc.poll() is None, out_path.read_text()
        api, key = _group_view(out_path.read_text())
        with pytest.raises(urllib.error.HTTPError) as refused:
            _mines_listed(api, None)
        assert refused.value.code == 401
        urls = json.loads((home / "group.json").read_text())["centre"]["nats"]
        seen: dict[str, Counter[str]] = {}

        def grown() -> bool:
            seen["now"] = _by_mine(urls)
            return all(seen["now"][m] >= previous[m] + 5 for m in ("m001", "m002"))

        wait_until(grown, 60, "both mines' frames in GROUP", interval=1.0)
        if worker_command() is not None:  # with the centre's workers installed: stored at the centre too
            influx = json.loads((home / "group.json").read_text())["centre"]["influx"]
            wait_until(lambda: all(_centre_has_telemetry(influx, m) for m in ("m001", "m002")), 60,
                       "the workers to store both mines' frames at the centre", interval=1.0)
            assert set(_mines_listed(api, key)) == {"m001", "m002"}  # the centre's view lists every mine
    finally:
        proc.send_signal(signal.SIGINT)
        proc.wait(timeout=60)
    out = out_path.read_text()
    assert proc.returncode == 0, out
    assert "stopping the group" in out
    return seen["now"]


def test_group_up_runs_two_mines_into_the_centre_and_again_on_the_same_data(tmp_path: Path) -> None:
    home = tmp_path / "group"
    first = _run(home, Counter())
    assert set(first) == {"m001", "m002"}
    second = _run(home, first)  # GROUP kept the first run's frames and the mines' streams resumed
    assert all(second[m] > first[m] for m in first)
    leftover = subprocess.run(["pgrep", "-f", str(home)], capture_output=True, text=True).stdout.split()
    assert leftover == [], "processes of the group still running"


def test_a_second_group_up_on_the_same_home_is_refused(tmp_path: Path) -> None:
    """While a group runs on ``--home`` (here: its lock held, as a running one holds it), another
    `group up` there would start a second InfluxDB, NATS cluster and brokers on the same data."""
    from minewatch.up import hold_home

    home = tmp_path / "group"
    lock = hold_home(home, "minewatch group up")
    try:
        rc, out, err = run_second(["group", "up", "--mines", "1", "--home", str(home), "--no-simulator"])
        assert rc == 1, out + err
        assert "already running" in err and str(home) in err, err
        assert not (home / "logs").exists() and not (home / "influxdb" / "meta").exists()
    finally:
        lock.close()
