"""Repeated log lines: a few go through each interval, then one line with the count."""

from __future__ import annotations

import logging
import subprocess
import sys

from minewatch.lograte import RateLimiter

BURST_SCRIPT = r"""
import logging, sys
from minewatch.redact import install
logging.basicConfig(level=logging.INFO, stream=sys.stdout, format="%(levelname)s %(name)s: %(message)s")
install()
log = logging.getLogger("mqtt")
for i in range(10000):
    log.warning("Message queue is full. Discarding message.")
for i in range(3):
    logging.getLogger("minewatch.x").info("robot %s seen", f"r{i:02d}")
"""


def test_a_burst_of_one_line_is_five_lines_and_a_count() -> None:
    out = subprocess.run([sys.executable, "-c", BURST_SCRIPT], capture_output=True, text=True, timeout=60,
                         check=True).stdout.splitlines()
    full = [line for line in out if line == "WARNING mqtt: Message queue is full. Discarding message."]
    assert len(full) == 5
    summary = [line for line in out if "repeated" in line]
    assert summary == ["WARNING mqtt: Message queue is full. Discarding message. "
                       "(repeated 9995 more times in 60 s, not logged)"]
    # other lines are untouched, and one format with changing arguments is one line
    assert [line for line in out if "robot" in line] == [f"INFO minewatch.x: robot r{i:02d} seen" for i in range(3)]
    assert len(out) == 5 + 1 + 3


def test_the_count_comes_when_the_interval_is_over_and_the_next_interval_starts_afresh() -> None:
    now = [1000.0]
    limiter = RateLimiter(burst=2, interval_s=10, clock=lambda: now[0])
    log = logging.getLogger("minewatch.test.lograte")

    def rec(msg: str) -> logging.LogRecord:
        return log.makeRecord(log.name, logging.WARNING, __file__, 1, msg, (), None)

    assert [limiter.allow(log, rec("full"))[0] for _ in range(5)] == [True, True, False, False, False]
    now[0] += 9.9
    ok, due = limiter.allow(log, rec("full"))
    assert not ok and due == []
    now[0] += 0.2
    ok, due = limiter.allow(log, rec("other"))
    assert ok and len(due) == 1
    assert limiter.summary(due[0]).getMessage() == "full (repeated 4 more times in 10 s, not logged)"
    assert limiter.allow(log, rec("full"))[0]  # a new interval
    assert limiter.flush() == []
