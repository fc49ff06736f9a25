"""A second ``minewatch up`` / ``group up`` started beside a running one, as a user would."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path


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


def processes_of(home: Path) -> list[int]:
    """The processes a ``minewatch up`` on ``home`` started: the servers name their configuration
    under it, the others have it as their data directory (``home`` is a test's own, so nothing
    else on the machine matches)."""
    found = []
    for d in Path("/proc").iterdir():
        if not d.name.isdigit():
            continue
        try:
            cmdline = (d / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            environ = (d / "environ").read_bytes().split(b"\0")
        except OSError:
            continue
        if str(home) in cmdline or f"MINEWATCH_DATA_DIR={home}".encode() in environ or _holds(d, home / "up.lock"):
            found.append(int(d.name))
    return found


def _holds(proc: Path, path: Path) -> bool:
    try:
        return any(os.readlink(fd) == str(path) for fd in (proc / "fd").iterdir())
    except OSError:
        return False


def stop_all(pids: Callable[[], list[int]], timeout: float = 30.0) -> None:
    """SIGTERM to every process ``pids`` names, SIGKILL to those still there after ``timeout``."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        for pid in pids():
            try:
                os.kill(pid, sig)
            except ProcessLookupError:
                pass
        deadline = time.monotonic() + timeout
        while pids() and time.monotonic() < deadline:
            time.sleep(0.2)
