"""``minewatch group up --mines 2`` as a user runs it: the centre's stream GROUP fills with both
mines' simulated telemetry (and, with the centre's workers installed, the centre's database of each
mine), Ctrl-C stops every process, and a second run on the same data goes on
from where the first stopped (GROUP keeps what it had and grows)."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import urllib.parse
import urllib.request
from collections import Counter
from pathlib import Path

import pytest

from group.cli import worker_command
from group.stack import centre_db
from minewatch.group import GROUP_STREAM, parse_subject
from tests.group.topo import read_stream, wait_until

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


def _run(home: Path, previous: Counter[str]) -> Counter[str]:
    (home / "group.json").unlink(missing_ok=True)  # the last run's: the new one writes its own once up
    proc = subprocess.Popen([sys.executable, "-m", "minewatch", "group", "up", "--mines", "2", "--home", str(home)],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        wait_until(lambda: (home / "group.json").exists() or proc.poll() is not None, 120, "group up to start")
        assert proc.poll() is None, proc.stdout.read().decode() if proc.stdout else ""
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
    finally:
        proc.send_signal(signal.SIGINT)
        out = proc.communicate(timeout=60)[0].decode()
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
