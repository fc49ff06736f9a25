"""The processes of a minewatch deployment and the command each runs.

One definition for ``minewatch up``, ``docker-compose.yml`` (a test holds the two equal) and the
tests that run them. Commands are the arguments after ``minewatch``; everything that differs
between a laptop and a mine (URLs with credentials, database, keys, ports, TLS) comes from
``MINEWATCH_*`` environment variables, so the command lines are the same everywhere. Only the
data directory differs (``/data`` in the containers).
"""

from __future__ import annotations

__all__ = ["service_commands", "healthchecks", "METRICS_PORT", "STORAGE_JOB"]

METRICS_PORT = 9100  # the ingestor's Prometheus port inside its container
# Run once before the services, with the InfluxDB admin account: retention policies and
# continuous queries (minewatch.storage). `minewatch up` calls the same code in-process.
STORAGE_JOB = ["storage", "--wait", "60"]


def _ingest_name(i: int, partitions: int) -> str:
    return "ingest" if partitions == 1 else f"ingest-{i}"


def service_commands(*, partitions: int = 1, data_dir: str = "/data", simulate: bool = True) -> dict[str, list[str]]:
    """Service name -> ``minewatch`` arguments, in start order.

    ``partitions`` ingest processes each own ``--partition I/N`` of the scenarios. The simulator
    runs the built-in demo faults in real time and writes their ground truth to the data directory.
    """
    if partitions < 1:
        raise ValueError("partitions must be at least 1")
    out = {_ingest_name(i, partitions): ["ingest", "--partition", f"{i}/{partitions}"] for i in range(partitions)}
    out["api"] = ["api"]
    if simulate:
        out["simulator"] = ["simulate", "--speed", "1", "--faults", "builtin:demo",
                            "--labels-out", f"{data_dir}/labels.jsonl"]
    return out


def healthchecks(*, api_port: int = 8000, metrics_port: int = METRICS_PORT, tls: bool = False) -> dict[str, list[str]]:
    """Service name -> the command that tells whether it is healthy (run inside its container)."""
    scheme = "https" if tls else "http"
    return {
        "ingest": ["python", "-m", "minewatch.health", "url", f"http://127.0.0.1:{metrics_port}/metrics"],
        "api": ["python", "-m", "minewatch.health", "url", f"{scheme}://127.0.0.1:{api_port}/healthz"],
        "simulator": ["python", "-m", "minewatch.health", "mqtt"],
    }
