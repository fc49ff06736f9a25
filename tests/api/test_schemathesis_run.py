"""Schemathesis from outside, as an integrator's generated client or an adversary sees the API:
the ``schemathesis run`` command against a ``minewatch api`` process with the real mosquitto and
influxd behind it, every check, every phase (examples, coverage, fuzzing, stateful), and not one
failure. The two never-ending SSE streams are left out (test_stream.py covers them).

The rules between parameters that JSON Schema cannot state (a window's end after its start,
channels of the scenario, overrides that name a limit) are taught to the generator by
``schemathesis_hooks.py``, from the parameters' descriptions."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from minewatch.influx import SyncInflux
from minewatch.services import Influxd, Mosquitto, free_port, stop_process, wait_http

from .conftest import KEYS, T0, S

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = 12  # per operation and phase: about 30 s on the 2-core machine


@pytest.fixture(scope="module")
def api_process(mosquitto: Mosquitto, influxd: Influxd, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    unique = uuid.uuid4().hex[:10]
    db = SyncInflux(influxd.url, f"db_sr_{unique}")
    db.ensure_db()
    db.write([f"telemetry,robot=r01,scenario=mf01,scenario_kind=mining_face ch4_t1=0.3,co=2.0,seq={i}i {T0 + i * S}"
              for i in range(120)])
    port = free_port()
    env = {**os.environ, "MINEWATCH_API_KEYS": ",".join(f"{k}:{role}" for role, k in KEYS.items()),
           "MINEWATCH_TOPIC_PREFIX": f"t{unique}/v1"}
    log = tmp_path_factory.mktemp("st") / "api.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen([sys.executable, "-m", "minewatch", "api", "--mqtt-url", mosquitto.url, "--influx-url",
                                 influxd.url, "--influx-db", db.db, "--port", str(port), "--log-level", "warning"],
                                env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        wait_http(f"http://127.0.0.1:{port}/healthz", timeout=30, interval=0.2)
        yield f"http://127.0.0.1:{port}"
    finally:
        stop_process(proc, signal.SIGINT, 20)
        db.query(f'DROP DATABASE "{db.db}"', db="", post=True)
        db.close()


def test_schemathesis_finds_nothing(api_process: str, tmp_path: Path) -> None:
    cmd = [str(Path(sys.executable).with_name("schemathesis")), "run", f"{api_process}/openapi.json",
           "--header", f"X-API-Key: {KEYS['engineer']}", "--checks", "all",
           "--phases", "examples,coverage,fuzzing,stateful", "--max-examples", str(EXAMPLES),
           "--generation-deterministic", "--exclude-path-regex", "/stream$", "--workers", "1",
           "--request-timeout", "20", "--no-color"]
    env = {**os.environ, "SCHEMATHESIS_HOOKS": "tests.api.schemathesis_hooks",
           "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    done = subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    out = done.stdout + done.stderr
    summary = out[out.rfind("SUMMARY"):] if "SUMMARY" in out else out[-3000:]
    print(summary)  # the figures, with -s
    assert done.returncode == 0, out[-8000:]
    generated = re.search(r"(\d+) generated", out)
    assert generated and int(generated.group(1)) > 500, summary
    assert re.search(r"\b0 failures\b|No issues found|passed", summary), summary
