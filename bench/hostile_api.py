"""What a crowd of live-stream clients costs the API: its resident memory before, with N SSE
clients connected (each having read its first snapshot), and after they have gone.

A real stack: mosquitto, influxd and the ``minewatch api`` process, with ``--alerts`` active
alerts in ``alert_events`` (loaded at start-up, so each client's first ``active`` event carries
them all). The clients are plain sockets, so the figures are the API's alone.

    .venv/bin/python bench/hostile_api.py [--clients 200] [--alerts 2000]

Prints one JSON line per figure: ``api_sse_clients_rss_mb`` (with the clients connected),
``api_sse_after_leave_rss_mb``, and the conditions (baseline, snapshot size, clients served).
"""

from __future__ import annotations

import argparse
import json
import os
import selectors
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from minewatch.influx import SyncInflux
from minewatch.services import Influxd, Mosquitto, free_port, stop_process, wait_http

KEY = "bench-integrator-key"
T0 = 1_795_852_800_000_000_000
S = 1_000_000_000


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"no VmRSS for {pid}")


def seed_alerts(db: SyncInflux, n: int) -> None:
    from ingest.lines import alert_line
    from minewatch.schema import AlertEvent, AlertKind, AlertState, Severity

    now = time.time_ns()
    lines = []
    for i in range(n):
        ts = now - (n - i) * S
        ev = AlertEvent(alert_id=f"mf01.ch4_t1.gas_limit.{i}", kind=AlertKind.gas, detector="gas_limit",
                        severity=Severity.alarm, state=AlertState.raised, scenario_id="mf01", robot_id="r01",
                        channel="ch4_t1", value=1.1, limit=1.0, unit="%", first_ts=ts, ts=ts,
                        message=f"Methane 1.1 % at ch4_t1 in mf01 (bench alert {i})", evidence={"rule": "bench"})
        line = alert_line(ev)
        if line:
            lines.append(line)
    for k in range(0, len(lines), 5000):
        db.write(lines[k:k + 5000])


def open_clients(port: int, clients: int, timeout: float = 120.0) -> tuple[list[socket.socket], int]:
    """``clients`` SSE connections, each read until its third first-message (``watch``) arrived;
    returns the sockets (kept open) and the bytes of one snapshot."""
    sel = selectors.DefaultSelector()
    socks, got = [], {}
    request = (f"GET /stream HTTP/1.1\r\nHost: 127.0.0.1\r\nX-API-Key: {KEY}\r\nAccept: text/event-stream\r\n\r\n"
               ).encode()
    for _ in range(clients):
        s = socket.create_connection(("127.0.0.1", port), timeout=10)
        s.sendall(request)
        s.setblocking(False)
        sel.register(s, selectors.EVENT_READ)
        socks.append(s)
        got[s] = bytearray()
    pending = set(socks)
    deadline = time.monotonic() + timeout
    while pending:
        if time.monotonic() > deadline:
            raise TimeoutError(f"{len(pending)} of {clients} clients did not get their snapshot")
        for key, _ in sel.select(1.0):
            conn = key.fileobj
            assert isinstance(conn, socket.socket)
            chunk = conn.recv(1 << 20)
            if not chunk:
                raise RuntimeError(f"the API closed a stream: {bytes(got[conn][:300])!r}")
            got[conn] += chunk
            if b"event: watch" in got[conn]:
                pending.discard(conn)
                sel.unregister(conn)
                if not got[conn].startswith(b"HTTP/1.1 200"):
                    raise RuntimeError(f"the API refused a stream: {bytes(got[conn][:300])!r}")
    return socks, len(got[socks[0]])


def sse_clients_rss(clients: int, *, alerts: int = 2000, settle_s: float = 3.0, workdir: Path | None = None) -> dict:
    """Start the stack, connect ``clients`` SSE clients, measure the API's RSS (MB) before, with
    them and after they left. Returns the figures and their conditions."""
    tmp = Path(workdir or tempfile.mkdtemp(prefix="minewatch-hostile-"))
    broker, influx = Mosquitto(tmp / "mosquitto"), Influxd(tmp / "influxd")
    broker.start()
    influx.start()
    proc = None
    try:
        db = SyncInflux(influx.url, "hostile")
        db.ensure_db()
        seed_alerts(db, alerts)
        db.close()
        port = free_port()
        env = {**os.environ, "MINEWATCH_API_KEYS": f"{KEY}:integrator",
               "MINEWATCH_API_MAX_STREAMS": str(clients + 10)}
        with open(tmp / "api.log", "wb") as log:
            proc = subprocess.Popen([sys.executable, "-m", "minewatch", "api", "--mqtt-url", broker.url,
                                     "--influx-url", influx.url, "--influx-db", "hostile", "--port", str(port),
                                     "--log-level", "warning"], env=env, stdout=log, stderr=subprocess.STDOUT,
                                    start_new_session=True)
        wait_http(f"http://127.0.0.1:{port}/healthz", timeout=60, interval=0.2)
        time.sleep(settle_s)
        before = rss_mb(proc.pid)
        t0 = time.monotonic()
        socks, snapshot_bytes = open_clients(port, clients)
        connect_s = time.monotonic() - t0
        time.sleep(settle_s)
        with_clients = rss_mb(proc.pid)
        for s in socks:
            s.close()
        time.sleep(settle_s)
        after = rss_mb(proc.pid)
        return {"before_mb": round(before, 1), "with_clients_mb": round(with_clients, 1), "after_mb": round(after, 1),
                "clients": clients, "alerts": alerts, "snapshot_kb": round(snapshot_bytes / 1024, 1),
                "connect_s": round(connect_s, 2)}
    finally:
        if proc is not None:
            stop_process(proc, signal.SIGINT, 20)
        broker.stop()
        influx.stop()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--clients", type=int, default=200, help="SSE clients connected at once")
    ap.add_argument("--alerts", type=int, default=2000, help="active alerts in the store (the snapshot's size)")
    args = ap.parse_args()
    r = sse_clients_rss(args.clients, alerts=args.alerts)
    cond = {"clients": r["clients"], "alerts": r["alerts"], "snapshot_kb": r["snapshot_kb"], "before_mb": r["before_mb"]}
    print(json.dumps({"name": "api_sse_clients_rss_mb", "value": r["with_clients_mb"], "unit": "MB",
                      "added_mb": round(r["with_clients_mb"] - r["before_mb"], 1), "connect_s": r["connect_s"], **cond}))
    print(json.dumps({"name": "api_sse_after_leave_rss_mb", "value": r["after_mb"], "unit": "MB",
                      "kept_mb": round(r["after_mb"] - r["before_mb"], 1), **cond}))


if __name__ == "__main__":
    main()
