"""Which robots the ingestor takes readings from and the API shows: the fleet registry
(``--robots`` / ``MINEWATCH_ROBOTS``).

A spec is a comma-separated list of robot ids and shell-style patterns (``r0?``, ``p*``), with
two words of its own: ``fleet``, the simulator's default fleet (a robot per catalogue scenario,
``r01`` to ``r31``, and the patrol robots ``p01`` to ``p04``), and ``*``, any robot id. Frames and
statuses from a robot outside it are dead-lettered ``unknown_robot``: a thousand made-up ids cost a
thousand dead letters, never a thousand offline alerts or per-robot state.

With ``*`` the number of robots is still bounded (``max_robots``): past it, new ids are refused
the same way, so what the ingestor and the API keep per robot cannot grow without end.
"""

from __future__ import annotations

import fnmatch
import re

from minewatch.catalogue import FLEET

__all__ = ["RobotRegistry", "fleet_ids"]


def fleet_ids() -> list[str]:
    """The default fleet (``minewatch.catalogue.FLEET``): what a mine runs when it runs the simulator."""
    return list(FLEET)


class RobotRegistry:
    def __init__(self, spec: str = "fleet", *, max_robots: int = 10_000) -> None:
        self.spec = spec
        self.max_robots = max_robots
        ids: set[str] = set()
        patterns: list[re.Pattern[str]] = []
        for part in (p.strip() for p in spec.split(",")):
            if not part:
                continue
            if part == "fleet":
                ids.update(fleet_ids())
            elif any(c in part for c in "*?["):
                patterns.append(re.compile(fnmatch.translate(part)))
            else:
                ids.add(part)
        if not ids and not patterns:
            raise ValueError(f"robot registry {spec!r} names no robot (use '*' for any)")
        self._ids = frozenset(ids)
        self._patterns = patterns
        self.known: set[str] = set(ids)  # ids taken so far (the fleet's from the start)
        self._refused: set[str] = set()

    def allows(self, robot_id: str) -> bool:
        """True for a robot of the registry (the answer is kept: this is once per message)."""
        if robot_id in self.known:
            return True
        if robot_id in self._refused:
            return False
        ok = (robot_id in self._ids or any(p.match(robot_id) for p in self._patterns)) \
            and len(self.known) < self.max_robots
        if ok:
            self.known.add(robot_id)
        elif len(self._refused) < 4096:  # remembered up to a bound; beyond, each is looked at again
            self._refused.add(robot_id)
        return ok

    def why_not(self, robot_id: str) -> str:
        if robot_id in self._ids or any(p.match(robot_id) for p in self._patterns):
            return f"robot {robot_id!r}: already taking readings from {self.max_robots} robots, the most allowed"
        return f"robot {robot_id!r} is not in the fleet registry ({self.spec}); add it with --robots / MINEWATCH_ROBOTS"
