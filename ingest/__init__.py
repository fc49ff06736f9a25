"""Ingest: MQTT telemetry in, every reading stored in InfluxDB, detectors run, alerts published.

``minewatch ingest`` runs one process (:mod:`ingest.cli`); :class:`Ingestor` and :func:`run` are
the same thing in-process. How it keeps every reading through crashes and outages is in
``docs/ingest.md``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__all__ = ["Ingestor", "IngestOptions", "Partition", "run"]

if TYPE_CHECKING:
    from ingest.partition import Partition
    from ingest.service import IngestOptions, Ingestor, run


def __getattr__(name: str) -> Any:
    if name in ("Ingestor", "IngestOptions", "run"):
        from ingest import service

        return getattr(service, name)
    if name == "Partition":
        from ingest.partition import Partition

        return Partition
    raise AttributeError(name)
