"""The fleet registry (``--robots``): see ``minewatch.registry``, shared with the API."""

from minewatch.registry import RobotRegistry, fleet_ids

__all__ = ["RobotRegistry", "fleet_ids"]
