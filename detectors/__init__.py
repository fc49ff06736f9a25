"""Detectors: Numba kernels over batches of many streams, and the alert engine.

``from detectors import DetectorSuite, Detection, parse_overrides`` is the interface the
ingestor (live) and the API (replay) build on.
"""

from detectors.overrides import parse_overrides
from detectors.suite import Detection, DetectorSuite

__all__ = ["Detection", "DetectorSuite", "parse_overrides"]
