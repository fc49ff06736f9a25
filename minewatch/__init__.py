"""minewatch: the telemetry service of an underground coal mine's inspection robots.

This package is the shared contract (wire schema, scenario catalogue, topics, settings) and the
command-line front door. The stages live beside it: ``simulator``, ``ingest``, ``detectors``,
``api``.
"""

__version__ = "0.1.0"
