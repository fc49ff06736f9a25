"""How the 31 scenarios hang together: the ventilation network, what drives each place.

The catalogue lists the places; this module is the simulator's map of the mine [P]. Two main
fans (domain §2: two units each, one standby) ventilate two splits of the mine. The headings are
fed by their local fans. Returns collect the air of the districts upstream of them, so gas from
a face shows, diluted and later, in its district return.

``production`` names the work whose cutting drives a place's emissions, dust and load:
a face or heading's own name, ``district`` (the 15101/15107 district), ``mine`` (everything),
or ``None`` (does not follow production).
"""

from __future__ import annotations

from dataclasses import dataclass

from minewatch.catalogue import SCENARIOS, VENTILATION

__all__ = ["PLACES", "Place", "WORKS", "MAIN_FANS", "LOCAL_FANS", "DOWNSTREAM", "place"]

# Works that cut coal or rock in production shifts: name -> (share of full output, phase of the
# cutting cycle in s so that the faces do not cut in lock-step) [P].
WORKS: dict[str, tuple[float, float]] = {
    "mf01": (1.0, 0.0), "mf02": (0.9, 1500.0), "mf03": (0.1, 0.0),
    "hf01": (0.8, 600.0), "hf02": (0.8, 2400.0), "hf03": (0.6, 900.0), "hf04": (0.8, 3300.0), "hf05": (0.5, 4200.0),
}
GROUPS: dict[str, tuple[str, ...]] = {
    "district": ("mf01", "mf03", "hf01", "hf02"),
    "central": ("mf02", "hf03", "hf04", "hf05"),
    "mine": tuple(WORKS),
}
MAIN_FANS = ("vf01", "vf02")
LOCAL_FANS = {"lf01": "hf01", "lf02": "hf02", "lf03": "hf03", "lf04": "hf04"}


@dataclass(frozen=True)
class Place:
    scenario_id: str
    fan: str  # main fan whose split ventilates the place
    local_fan: str | None = None  # the local fan feeding a heading
    production: str | None = None  # work or group whose cutting drives the place
    machine_mode: str = "always"  # always | production_belt | main_belt | pump | compressor
    station: bool = False  # a fixed (rail) robot lives here


def _p(sid: str, fan: str, production: str | None = None, local_fan: str | None = None,
       machine_mode: str = "always") -> Place:
    # the fans are the catalogue's (minewatch.catalogue.VENTILATION), which the detectors read too
    assert VENTILATION[sid] == (fan, local_fan), (sid, VENTILATION[sid], fan, local_fan)
    return Place(sid, fan, local_fan, production, machine_mode)


PLACES: dict[str, Place] = {p.scenario_id: p for p in (
    _p("mf01", "vf01", "mf01"), _p("mf02", "vf02", "mf02"), _p("mf03", "vf01", "mf03"),
    _p("hf01", "vf01", "hf01", "lf01"), _p("hf02", "vf01", "hf02", "lf02"),
    _p("hf03", "vf02", "hf03", "lf03"), _p("hf04", "vf02", "hf04", "lf04"), _p("hf05", "vf02", "hf05"),
    _p("lf01", "vf01", "hf01"), _p("lf02", "vf01", "hf02"), _p("lf03", "vf02", "hf03"), _p("lf04", "vf02", "hf04"),
    _p("vf01", "vf01", None), _p("vf02", "vf02", None),
    _p("bc01", "vf02", "mine", machine_mode="main_belt"), _p("bc02", "vf02", "mine", machine_mode="main_belt"),
    _p("bc03", "vf01", "district", machine_mode="production_belt"),
    _p("bc04", "vf01", "mf01", machine_mode="production_belt"),
    _p("bc05", "vf02", "mine"),
    _p("pr01", "vf02", None, machine_mode="pump"), _p("pr02", "vf01", None, machine_mode="pump"),
    _p("pr03", "vf01", None, machine_mode="pump"),
    _p("ss01", "vf02", "mine"), _p("ss02", "vf01", "district"), _p("ss03", "vf01", "mf01"),
    _p("ra01", "vf02", "central"), _p("ra02", "vf01", "district"), _p("ra03", "vf01", "district"),
    _p("gd01", "vf02", None), _p("cb01", "vf02", "mine"), _p("ac01", "vf02", "mine", machine_mode="compressor"),
)}
assert set(PLACES) == set(SCENARIOS), set(SCENARIOS) ^ set(PLACES)

# Where a place's air goes next: (downstream scenario, dilution of an excess concentration,
# transit time s) [P]. A face's return air reaches its district return, that reaches the wing
# or main return at the fan shaft.
DOWNSTREAM: dict[str, tuple[tuple[str, float, float], ...]] = {
    "mf01": (("ra03", 0.45, 90.0),), "mf03": (("ra03", 0.2, 120.0),),
    "hf01": (("ra03", 0.25, 120.0),), "hf02": (("ra03", 0.25, 120.0),),
    "ra03": (("ra02", 0.5, 180.0),),
    "mf02": (("ra01", 0.35, 150.0),), "hf03": (("ra01", 0.15, 150.0),), "hf04": (("ra01", 0.15, 150.0),),
    "hf05": (("ra01", 0.15, 180.0),),
}


def place(scenario_id: str) -> Place:
    return PLACES[scenario_id]
