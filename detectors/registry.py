"""Every detector of the suite: importing a detector's module registers it
(:func:`detectors.base.register`). A new detector is a module with one registered class, and its
import here."""

from __future__ import annotations

from detectors import changes, drift, health, limits, rise, selfdrift
from detectors.base import REGISTRY

__all__ = ["MODULES", "REGISTRY"]

MODULES = (limits, health, rise, changes, drift, selfdrift)
