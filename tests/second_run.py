"""A second ``minewatch up`` / ``group up`` started beside a running one, as a user would."""

from __future__ import annotations

import signal
import subprocess
import sys


def run_second(args: list[str], *, refused_within: float = 45.0) -> tuple[int, str, str]:
    """``python -m minewatch ARGS`` until it exits: its return code, stdout and stderr. One that is
    still running after ``refused_within`` seconds came up; it is stopped with Ctrl-C, so it stops
    whatever it started, and its return code is the one it stops with."""
    proc = subprocess.Popen([sys.executable, "-m", "minewatch", *args], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, stdin=subprocess.DEVNULL)
    try:
        out, err = proc.communicate(timeout=refused_within)
    except subprocess.TimeoutExpired:
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=90)
    return proc.returncode, out, err
