"""The mine: its 31 scenarios, their channels (with units) and the limits that apply to each.

Every limit cites where its number comes from. The tags follow ``shared/domain.md``:
``[C]`` found in the named source, ``[U]`` unconfirmed (kept configurable), ``[P]`` a proposal of
this project. Section numbers (``domain §1.2``) point into that file.

Severity of a limit level: ``warning`` < ``alarm`` < ``critical``. For methane the regulation has
two levels, the alarm and the power cut: ``alarm`` is the alarm level and ``critical`` is the
power-cut level (the alert tells the operator that power must be, or has been, cut).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from enum import Enum
from typing import Literal

__all__ = [
    "BEARINGS",
    "FLEET",
    "ISO_10816_3",
    "MACHINE_RUN",
    "SET_POINT_LEVELS",
    "PATROL_ROUTES",
    "QUANTITIES",
    "SCENARIOS",
    "VENTILATION",
    "Bearing",
    "Channel",
    "Limit",
    "Machine",
    "Quantity",
    "QuantityKind",
    "Scenario",
    "ScenarioKind",
    "get_scenario",
    "quantity",
    "upstream_fans",
]


class ScenarioKind(str, Enum):
    mining_face = "mining_face"
    heading = "heading"
    local_fan = "local_fan"
    main_fan = "main_fan"
    belt = "belt"
    pump = "pump"
    substation = "substation"
    air_return = "return"
    drainage = "drainage"
    bunker = "bunker"
    compressor = "compressor"

    @property
    def group(self) -> str:
        """The board group a control room shows this kind under."""
        return _GROUPS[self]


_GROUPS = {
    ScenarioKind.mining_face: "faces",
    ScenarioKind.heading: "headings",
    ScenarioKind.local_fan: "fans",
    ScenarioKind.main_fan: "fans",
    ScenarioKind.belt: "belts",
    ScenarioKind.pump: "pumps",
    ScenarioKind.substation: "substations",
    ScenarioKind.air_return: "returns",
    ScenarioKind.drainage: "other",
    ScenarioKind.bunker: "other",
    ScenarioKind.compressor: "other",
}


class QuantityKind(str, Enum):
    """What a quantity is about, which decides the kind of alert its limits raise."""

    gas = "gas"                  # gases in the air: alerts of kind gas
    smoke = "smoke"              # a smoke sensor: alerts of kind gas
    ventilation = "ventilation"  # airflow, fan pressure, run signals, the air's humidity and dust
    heat = "heat"                # air temperature (the heat rule): alerts of kind ventilation
    equipment = "equipment"      # machines' temperatures, currents, flows and levels: kind vibration
    water = "water"              # sump levels: kind vibration (machine condition)

    @property
    def alert_kind(self) -> str:
        """The contract's alert kind (``minewatch.schema.AlertKind`` value) of its limit alerts."""
        return _ALERT_KINDS[self]


_ALERT_KINDS = {QuantityKind.gas: "gas", QuantityKind.smoke: "gas", QuantityKind.ventilation: "ventilation",
                QuantityKind.heat: "ventilation", QuantityKind.equipment: "vibration", QuantityKind.water: "vibration"}


@dataclass(frozen=True)
class Quantity:
    """Everything a quantity means, for the detectors, the simulator, the API and the board.

    ``low``/``high``: the range the sensor can report (outside it, a sensor fault, domain §1.4);
    ``resolution``: its step (and so the decimals it is shown with). ``kind``: what it is about
    (:class:`QuantityKind`). ``limit_name``: the stem of its fixed-limit alerts' detector name
    (``gas`` -> ``gas_limit``); a quantity without one cannot carry limits (an error when the
    rules are built). ``rise_per_min``: the rate of rise that alerts (per minute, in its unit),
    None for no rate-of-rise detection [P]. Health: ``stuck`` whether a run of equal values is
    suspect (not for two-valued signals), ``spikes`` whether the physics cannot jump so a lone
    spike is a sensor fault, ``blind`` the severity of a sensor-health alert (``alarm`` where a
    blind sensor means gas monitoring has stopped). ``cause``: the incident cause of its alerts
    (gases). ``change_notice``: the change detector watches it where it has no limit.
    ``noise``: the simulator's sensor noise (1 sigma, in its unit, and a relative part) [U].
    ``signed``: the sign is a direction (air velocity), the limits apply to the size.
    ``drift``: how far (a share of a channel's normal band) a sensor's reading may walk, slowly
    and steadily, from its own long baseline before it is called drifted (``detectors.selfdrift``);
    None where a drift cannot be told from the process (two-valued signals) [P].
    ``short``: its short name on the board.
    """

    code: str
    name: str
    unit: str
    low: float
    high: float
    resolution: float
    source: str
    kind: QuantityKind = QuantityKind.equipment
    limit_name: str | None = None
    rise_per_min: float | None = None
    stuck: bool = True
    spikes: bool = False
    blind: Literal["warning", "alarm"] = "warning"
    cause: str | None = None
    change_notice: bool = False
    noise: tuple[float, float] = (0.0, 0.0)
    signed: bool = False
    short: str = ""
    drift: float | None = 0.5

    @property
    def decimals(self) -> int:
        """Decimals a value is shown with: as many as the resolution has."""
        return max(0, -math.floor(math.log10(self.resolution) + 1e-9))


_GAS = QuantityKind.gas
_VENT = QuantityKind.ventilation
_EQ = QuantityKind.equipment

# Sensor ranges, domain §1.4. Anything outside [low, high] is physically impossible for the
# sensor and is a sensor-health fault, not a hazard. Rates of rise [P] (no regulation gives a
# rate): methane 0.1 %/min, CO 2 ppm/min, CO2 0.05 %/min. Sensor noise [U]: catalytic CH4
# repeats to about a resolution step, electrochemical CO to under 1 ppm, anemometers see
# turbulence of a few percent.
QUANTITIES: dict[str, Quantity] = {
    q.code: q
    for q in (
        Quantity("ch4", "methane", "%", 0.0, 4.0, 0.01, "catalytic CH4 0-4 %, AQ 6203-2006 [C]", _GAS, "gas",
                 rise_per_min=0.1, spikes=True, blind="alarm", cause="methane", noise=(0.006, 0.0), short="CH₄"),
        Quantity("ch4_hr", "methane (high range)", "%", 0.0, 100.0, 0.1, "laser/thermal-conductivity CH4 0-100 % [U]",
                 _GAS, "gas", spikes=True, blind="alarm", cause="methane", noise=(0.2, 0.0), short="CH₄"),
        Quantity("co", "carbon monoxide", "ppm", 0.0, 1000.0, 1.0, "electrochemical CO 0-1000 ppm, GTH1000 [U]", _GAS,
                 "gas", rise_per_min=2.0, spikes=True, blind="alarm", cause="fire", noise=(0.4, 0.0), short="CO"),
        Quantity("o2", "oxygen", "%", 0.0, 25.0, 0.1, "O2 0-25 %, GYW25 [C name, U range]", _GAS, "gas", spikes=True,
                 blind="alarm", cause="air-quality", noise=(0.03, 0.0), short="O₂"),
        Quantity("co2", "carbon dioxide", "%", 0.0, 5.0, 0.01, "IR CO2 0-5 % [U]", _GAS, "gas", rise_per_min=0.05,
                 spikes=True, cause="air-quality", noise=(0.006, 0.0), short="CO₂"),
        Quantity("t", "temperature", "°C", 0.0, 50.0, 0.1, "temperature 0-50 °C, GYW50 [C name, U range]",
                 QuantityKind.heat, "temperature", spikes=True, noise=(0.05, 0.0), short="Temp"),
        Quantity("t_hot", "equipment temperature", "°C", 0.0, 200.0, 0.1, "IR / RTD on equipment 0-200 °C [U]", _EQ,
                 "machine_temperature", spikes=True, noise=(0.15, 0.0), short="Temp"),
        Quantity("rh", "relative humidity", "%", 0.0, 100.0, 0.1, "RH 0-100 % [U]", _VENT, spikes=True,
                 change_notice=True, noise=(0.4, 0.0), short="RH"),
        Quantity("ws", "air velocity", "m/s", -15.0, 15.0, 0.01, "wind speed 0.3-15 m/s, signed for direction [U]",
                 _VENT, "air_velocity", noise=(0.02, 0.02), signed=True, short="Air"),
        Quantity("dp", "pressure difference", "kPa", 0.0, 10.0, 0.001, "negative pressure 0-10 kPa [U]", _VENT,
                 "fan_pressure", noise=(0.004, 0.003), short="ΔP"),
        Quantity("du", "dust", "mg/m³", 0.0, 1000.0, 0.1, "dust 0-1000 mg/m³ [U]", _VENT, change_notice=True,
                 noise=(0.05, 0.06), short="Dust"),
        Quantity("sm", "smoke", "", 0.0, 1.0, 1.0, "on/off smoke sensor [U]", QuantityKind.smoke, "smoke",
                 stuck=False, cause="fire", short="Smoke", drift=None),
        Quantity("i", "current", "A", 0.0, 2000.0, 0.1, "motor current [U]", _EQ, noise=(0.2, 0.005),
                 short="Current"),
        Quantity("run", "running", "", 0.0, 1.0, 1.0, "on/off run signal, domain §1.4 outstation on/off [C]", _VENT,
                 stuck=False, short="Run", drift=None),
        Quantity("wl", "water level", "m", 0.0, 10.0, 0.01, "sump level 0-10 m [U]", QuantityKind.water,
                 "water_level", noise=(0.004, 0.0), short="Water"),
        Quantity("fl", "flow", "m³/h", 0.0, 2000.0, 0.1, "flow 0-2000 m³/h [U]", _EQ, noise=(0.5, 0.01),
                 short="Flow"),
        Quantity("speed", "belt speed", "m/s", 0.0, 6.0, 0.01, "belt speed 0-6 m/s [U]", _EQ, noise=(0.005, 0.0),
                 short="Belt"),
        Quantity("p_bar", "pressure", "bar", 0.0, 16.0, 0.01, "receiver pressure 0-16 bar [U]", _EQ,
                 noise=(0.01, 0.0), short="Receiver"),
        Quantity("level", "bunker level", "m", 0.0, 30.0, 0.01, "bunker level 0-30 m [U]", _EQ, noise=(0.03, 0.0),
                 short="Level"),
    )
}


def quantity(code: str) -> Quantity:
    """The quantity ``code``; ``KeyError`` naming it and the known ones if there is none."""
    q = QUANTITIES.get(code)
    if q is None:
        raise KeyError(f"unknown quantity {code!r}; known: {', '.join(QUANTITIES)}")
    return q


Direction = Literal["above", "below"]


@dataclass(frozen=True)
class Limit:
    """A fixed limit on one channel.

    ``levels`` maps a severity to the threshold at which it applies: for ``above`` the value is
    in violation when ``value >= threshold``, for ``below`` when ``value < threshold``. ``restore``
    is where the alert clears (``value < restore`` for ``above``, ``value >= restore`` for
    ``below``): the hysteresis band between the lowest level and ``restore`` keeps an alert from
    flapping on noise.
    """

    direction: Direction
    levels: tuple[tuple[str, float], ...]
    restore: float
    rule: str
    action: str = ""

    def level(self, severity: str) -> float | None:
        for sev, thr in self.levels:
            if sev == severity:
                return thr
        return None

    @property
    def lowest(self) -> float:
        """The threshold of the least severe level: where an alert first rises."""
        thresholds = [thr for _, thr in self.levels]
        return min(thresholds) if self.direction == "above" else max(thresholds)


@dataclass(frozen=True)
class Channel:
    """One reading a robot reports in a scenario (a key of the frame's ``readings``)."""

    name: str
    quantity: str
    label: str
    normal: tuple[float, float]
    limits: tuple[Limit, ...] = ()

    def __post_init__(self) -> None:
        if self.quantity not in QUANTITIES:
            raise ValueError(f"channel {self.name!r} measures unknown quantity {self.quantity!r}; add it to "
                             f"minewatch.catalogue.QUANTITIES (known: {', '.join(QUANTITIES)})")

    @property
    def unit(self) -> str:
        return QUANTITIES[self.quantity].unit

    @property
    def low(self) -> float:
        return QUANTITIES[self.quantity].low

    @property
    def high(self) -> float:
        return QUANTITIES[self.quantity].high


@dataclass(frozen=True)
class Bearing:
    """Rolling-element bearing geometry: balls ``n``, ball diameter ``d`` and pitch diameter
    ``D`` in mm, contact angle in degrees. Fault frequencies as multiples of shaft speed follow
    the standard kinematics (domain §4)."""

    name: str
    n: int
    d: float
    D: float
    angle: float = 0.0

    def orders(self) -> dict[str, float]:
        import math

        r = self.d / self.D * math.cos(math.radians(self.angle))
        return {
            "ftf": 0.5 * (1 - r),
            "bpfo": self.n / 2 * (1 - r),
            "bpfi": self.n / 2 * (1 + r),
            "bsf": self.D / (2 * self.d) * (1 - r * r),
        }


# 6205 geometry from domain §4 [C]; the larger ones are catalogue-typical values [U].
BEARINGS: dict[str, Bearing] = {
    b.name: b
    for b in (
        Bearing("6205", 9, 7.938, 38.5),
        Bearing("6312", 8, 22.225, 85.0),
        Bearing("6316", 8, 28.575, 125.0),
        Bearing("22228", 19, 30.0, 195.0, 10.0),
    )
}


@dataclass(frozen=True)
class Machine:
    """A rotating machine whose vibration a robot measures (ISO 10816-3 group and support)."""

    name: str
    rpm: float
    power_kw: float
    iso_group: int
    support: Literal["rigid", "flexible"]
    bearing: Bearing
    channel: str = "vib"

    @property
    def band_low_hz(self) -> float:
        # ISO 10816-3: 10-1000 Hz, 2-1000 Hz below 600 rpm (domain §4) [C]
        return 2.0 if self.rpm < 600 else 10.0

    @property
    def zone_limits(self) -> tuple[float, float, float]:
        """A/B, B/C and C/D boundaries in mm/s RMS, domain §4 table [C]."""
        return ISO_10816_3[(self.iso_group, self.support)]


ISO_10816_3: dict[tuple[int, str], tuple[float, float, float]] = {
    (1, "rigid"): (2.3, 4.5, 7.1),
    (1, "flexible"): (3.5, 7.1, 11.0),
    (2, "rigid"): (1.4, 2.8, 4.5),
    (2, "flexible"): (2.3, 4.5, 7.1),
}


@dataclass(frozen=True)
class Scenario:
    id: str
    name: str
    kind: ScenarioKind
    channels: tuple[Channel, ...]
    machine: Machine | None = None
    notes: str = ""
    channel_map: dict[str, Channel] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "channel_map", {c.name: c for c in self.channels})
        if len(self.channel_map) != len(self.channels):
            raise ValueError(f"{self.id}: duplicate channel names")

    def channel(self, name: str) -> Channel:
        return self.channel_map[name]


# --------------------------------------------------------------------------------------------
# Limits, each with its rule. Methane: domain §1.2 (CMSR Art.498 table as reproduced) [C,
# secondary]. ``restore`` is the regulation's re-energise level.

def _ch4(alarm: float, cut: float | None, restore: float, place: str, action: str) -> Limit:
    levels: list[tuple[str, float]] = []
    if cut is not None and cut <= alarm:
        levels.append(("critical", cut))
    else:
        levels.append(("alarm", alarm))
        if cut is not None:
            levels.append(("critical", cut))
    return Limit("above", tuple(levels), restore, f"CMSR Art.498 methane settings, {place}", action)


CH4_FACE_T1 = _ch4(1.0, 1.5, 1.0, "longwall face T1", "cut power to the face and return roadway and withdraw people")
CH4_CORNER_T0 = _ch4(1.0, 1.5, 1.0, "return corner T0", "cut power to the face and return roadway and withdraw people")
CH4_FACE_T2 = _ch4(1.0, 1.0, 1.0, "face return roadway T2", "cut power to the face and return roadway")
CH4_SHEARER = _ch4(1.0, 1.5, 1.0, "shearer on-board", "cut the shearer's supply")
CH4_HEADING_T1 = _ch4(1.0, 1.5, 1.0, "heading face T1", "cut all non-IS equipment in the heading")
CH4_HEADING_T2 = _ch4(1.0, 1.0, 1.0, "heading return T2", "cut all non-IS equipment in the heading")
CH4_LOCAL_FAN = _ch4(0.5, 0.5, 0.5, "before local fan of a series-fed heading", "cut the heading's equipment")
CH4_DRAINAGE_ROADWAY = _ch4(2.5, 2.5, 2.5, "dedicated gas-drainage roadway", "cut power to the face")
CH4_MAIN_RETURN = _ch4(0.75, None, 0.75, "main / wing return", "find the cause at once")
CH4_DISTRICT_RETURN = _ch4(1.0, 1.0, 1.0, "mid return roadway", "stop work, withdraw people and deal with the gas")
CH4_CHAMBER = _ch4(0.5, 0.5, 0.5, "intake side of an electrical chamber", "cut power to the chamber")
CH4_BELT = _ch4(1.0, 1.5, 1.0, "within 20 m of a motor or switch (CMSR 2010 Art.138)", "stop the belt and cut power")
CH4_BUNKER = _ch4(1.5, 1.5, 1.5, "underground coal bunker", "cut the bunker conveyors")

# Other gases, domain §1.3 (CMSR 2011 table) [C]. Warning levels and restore margins are [P]:
# an early notice at 75 % of the limit and a clear margin so noise cannot flap the alert.
CO_LIMIT = Limit("above", (("warning", 18.0), ("alarm", 24.0)), 18.0, "CMSR 2011 table: CO ≤ 24 ppm (0.0024 %)",
                 "find the source (spontaneous combustion, fire, blasting fumes), withdraw if rising")
O2_LIMIT = Limit("below", (("alarm", 20.0), ("critical", 19.5)), 20.2,
                 "CMSR 2011 table: O2 ≥ 20 % in working intake air; 19.5 % oxygen-deficient (30 CFR 75.321) [U]",
                 "withdraw people to fresh air, check ventilation")
CO2_FACE = Limit("above", (("warning", 1.0), ("critical", 1.5)), 1.0,
                 "CMSR 2010 Art.139: CO2 ≥ 1.5 % in face airflow → stop, withdraw", "stop work and withdraw")
CO2_RETURN = Limit("above", (("alarm", 0.75),), 0.7, "CMSR 2010 Art.135: main/wing return CO2 > 0.75 %",
                   "find the cause at once")
CO2_DISTRICT_RETURN = Limit("above", (("warning", 0.75), ("critical", 1.5)), 0.7,
                            "CMSR 2010 Art.136: district return CO2 > 1.5 % → stop, withdraw", "stop work and withdraw")

# Heat, domain §2 (CMSR, safety-standardisation scoring form) [C].
T_FACE = Limit("above", (("warning", 26.0), ("alarm", 30.0)), 25.5,
               "CMSR heat rule: face > 26 °C shorter hours, > 30 °C stop work", "shorten hours / stop work")
T_CHAMBER = Limit("above", (("warning", 30.0), ("alarm", 34.0)), 29.5,
                  "CMSR heat rule: electrical chamber > 30 °C shorter hours, > 34 °C stop work", "shorten hours / stop work")
TB_MAIN_FAN = Limit("above", (("warning", 70.0), ("alarm", 75.0)), 68.0,
                    "NMSA 2023 main-fan inspection spec: motor rolling bearing ≤ 75 °C (warning 70 [P])",
                    "check lubrication, plan a change-over to the standby fan")
TB_GENERAL = Limit("above", (("warning", 80.0), ("alarm", 90.0)), 78.0, "rolling-bearing temperature 80/90 °C [U]",
                   "check lubrication and load")
T_BUSBAR = Limit("above", (("alarm", 65.0),), 62.0, "busbar joint limit 65 °C (Zhaoxian chamber robot practice, domain §5) [C]",
                 "reduce load, tighten the joint at the next outage")
T_COMPRESSOR = Limit("above", (("warning", 110.0), ("alarm", 120.0)), 105.0,
                     "CMSR: screw compressor discharge ≤ 120 °C (AQ 1029-2019 §7.7.4 temperature protection) [U]",
                     "stop the compressor, check cooling")
T_DRUM = Limit("above", (("warning", 60.0), ("alarm", 70.0)), 58.0, "belt drum surface 60/70 °C [U]",
               "stop the belt, check the drum for slip or seized idlers")
SMOKE = Limit("above", (("critical", 0.5),), 0.5, "smoke detected at a belt or chamber (CMSR belt fire protection) [U]",
              "stop the belt, send the fire team")
WL_SUMP = Limit("above", (("warning", 3.0), ("alarm", 3.5)), 2.8, "sump high level 3.0/3.5 m [P]",
                "start the standby pump")


def _ws(lo: float | None, hi: float, roadway: str) -> tuple[Limit, ...]:
    rule = f"CMSR Art.136 air-velocity table, {roadway}: {lo if lo is not None else '–'}–{hi} m/s"
    out = [Limit("above", (("alarm", hi),), hi * 0.95, rule, "adjust regulators, check the ventilation network")]
    if lo is not None:
        out.append(Limit("below", (("alarm", lo),), lo * 1.2, rule,
                         "restore the airflow (check fans, doors, regulators); stop work if methane rises"))
    return tuple(out)


WS_FACE = _ws(0.25, 4.0, "longwall faces; coal / half-coal headings")
WS_ROCK = _ws(0.15, 4.0, "rock headings")
WS_CONVEYOR = _ws(0.25, 6.0, "conveyor roadways; district intakes/returns")
WS_MAIN = _ws(None, 8.0, "main intakes/returns")
WS_FAN_DRIFT = _ws(None, 15.0, "fan drifts without hoisting")

# --------------------------------------------------------------------------------------------
# Channels. Normal bands are the simulator's quiet-air operating ranges [P].

def ch(name: str, quantity: str, label: str, normal: tuple[float, float], *limits: Limit) -> Channel:
    return Channel(name, quantity, label, normal, tuple(limits))


def _co(label: str = "carbon monoxide") -> Channel:
    return ch("co", "co", label, (0.0, 6.0), CO_LIMIT)


def _o2() -> Channel:
    return ch("o2", "o2", "oxygen", (20.5, 20.9), O2_LIMIT)


def _temp(limit: Limit, normal: tuple[float, float] = (18.0, 24.0)) -> Channel:
    return ch("t", "t", "air temperature", normal, limit)


def _dust(normal: tuple[float, float] = (0.5, 3.0)) -> Channel:
    return ch("du", "du", "dust", normal)


def _ws_ch(limits: tuple[Limit, ...], normal: tuple[float, float]) -> Channel:
    return ch("ws", "ws", "air velocity", normal, *limits)


def _face(extra: tuple[Channel, ...] = ()) -> tuple[Channel, ...]:
    return (
        ch("ch4_t0", "ch4", "methane, return corner T0", (0.15, 0.55), CH4_CORNER_T0),
        ch("ch4_t1", "ch4", "methane, face T1", (0.15, 0.55), CH4_FACE_T1),
        ch("ch4_t2", "ch4", "methane, return roadway T2", (0.1, 0.5), CH4_FACE_T2),
        ch("ch4_shearer", "ch4", "methane, shearer on-board", (0.15, 0.55), CH4_SHEARER),
        _co(),
        _o2(),
        _temp(T_FACE, (20.0, 24.5)),
        _ws_ch(WS_FACE, (1.2, 2.5)),
        _dust((2.0, 8.0)),
        ch("rh", "rh", "relative humidity", (75.0, 95.0)),
    ) + extra


def _heading(ch4_count: int = 2, rock: bool = False, extra: tuple[Channel, ...] = ()) -> tuple[Channel, ...]:
    ch4s: tuple[Channel, ...]
    if ch4_count == 2:
        ch4s = (
            ch("ch4_t1", "ch4", "methane, heading face T1", (0.1, 0.5), CH4_HEADING_T1),
            ch("ch4_t2", "ch4", "methane, heading return T2", (0.1, 0.45), CH4_HEADING_T2),
        )
    elif ch4_count == 3:
        ch4s = (
            ch("ch4_t1", "ch4", "methane, heading face T1", (0.1, 0.5), CH4_HEADING_T1),
            ch("ch4_t1b", "ch4", "methane, second roadway face T1", (0.1, 0.5), CH4_HEADING_T1),
            ch("ch4_t2", "ch4", "methane, heading return T2", (0.1, 0.45), CH4_HEADING_T2),
        )
    else:
        ch4s = (ch("ch4_t1", "ch4", "methane, heading face T1", (0.05, 0.35), CH4_HEADING_T1),)
    return ch4s + (
        _co(),
        _dust((1.5, 6.0)),
        _ws_ch(WS_ROCK if rock else WS_FACE, (0.6, 1.5)),
        _temp(T_FACE, (19.0, 24.0)),
    ) + extra


def _local_fan() -> tuple[Channel, ...]:
    return (
        ch("run", "run", "local fan running", (1.0, 1.0)),
        ch("dp", "dp", "duct pressure", (1.2, 1.8)),
        ch("i", "i", "motor current", (40.0, 55.0)),
        ch("tb", "t_hot", "bearing temperature", (40.0, 55.0), TB_GENERAL),
        ch("ch4", "ch4", "methane at fan inlet", (0.02, 0.2), CH4_LOCAL_FAN),
    )


def _main_fan() -> tuple[Channel, ...]:
    return (
        ch("dp", "dp", "fan static pressure", (2.0, 2.6)),
        _ws_ch(WS_FAN_DRIFT, (7.0, 10.0)),
        ch("run_a", "run", "fan A running", (1.0, 1.0)),
        ch("run_b", "run", "fan B (standby) running", (0.0, 0.0)),
        ch("tb", "t_hot", "motor bearing temperature", (45.0, 60.0), TB_MAIN_FAN),
        ch("i", "i", "motor current", (180.0, 220.0)),
        _temp(T_CHAMBER, (16.0, 24.0)),
    )


def _belt(with_ch4: bool) -> tuple[Channel, ...]:
    out: tuple[Channel, ...] = (
        ch("sm", "sm", "smoke", (0.0, 0.0), SMOKE),
        _co(),
        _temp(T_CHAMBER, (17.0, 25.0)),
        ch("tb", "t_hot", "drum bearing temperature", (35.0, 50.0), TB_GENERAL),
        ch("t_drum", "t_hot", "drive drum surface temperature", (30.0, 45.0), T_DRUM),
        ch("speed", "speed", "belt speed", (3.0, 3.2)),
    )
    if with_ch4:
        out = out + (ch("ch4", "ch4", "methane at the drive", (0.05, 0.3), CH4_BELT),)
    return out


def _pump() -> tuple[Channel, ...]:
    return (
        ch("wl", "wl", "sump water level", (1.0, 2.2), WL_SUMP),
        ch("fl", "fl", "discharge flow", (300.0, 450.0)),
        ch("dp", "dp", "discharge pressure", (5.0, 6.5)),
        ch("tb", "t_hot", "pump bearing temperature", (40.0, 60.0), TB_GENERAL),
        ch("i", "i", "motor current", (25.0, 35.0)),
        _temp(T_CHAMBER, (18.0, 26.0)),
    )


def _substation() -> tuple[Channel, ...]:
    return (
        _temp(T_CHAMBER, (20.0, 27.0)),
        _co(),
        ch("sm", "sm", "smoke", (0.0, 0.0), SMOKE),
        ch("i", "i", "feeder current", (150.0, 300.0)),
        ch("t_busbar", "t_hot", "busbar joint temperature (IR)", (35.0, 52.0), T_BUSBAR),
    )


def _return(ch4_limit: Limit, co2_limit: Limit, ws: tuple[Limit, ...], with_t: bool = True) -> tuple[Channel, ...]:
    out: tuple[Channel, ...] = (
        ch("ch4", "ch4", "methane in return air", (0.15, 0.45), ch4_limit),
        ch("co2", "co2", "carbon dioxide in return air", (0.15, 0.4), co2_limit),
        _co(),
        _ws_ch(ws, (2.0, 4.0)),
    )
    if with_t:
        out = out + (_temp(T_FACE, (20.0, 24.0)),)
    return out


# Machines, domain §4 (ISO 10816-3 groups). Ratings are typical for the class of machine [U].
MAIN_FAN = Machine("main fan (2 x 800 kW axial)", 740.0, 800.0, 1, "rigid", BEARINGS["22228"])
LOCAL_FAN = Machine("local fan (2 x 30 kW contra-rotating)", 2950.0, 30.0, 2, "flexible", BEARINGS["6205"])
PUMP = Machine("main drainage pump (400 kW multistage)", 1480.0, 400.0, 1, "rigid", BEARINGS["6316"])
SUMP_PUMP = Machine("face sump pump (37 kW submersible)", 2950.0, 37.0, 2, "flexible", BEARINGS["6205"])
BELT_DRUM = Machine("belt drive drum (2 x 400 kW)", 60.0, 800.0, 1, "rigid", BEARINGS["22228"])
COMPRESSOR = Machine("screw air compressor (250 kW)", 2980.0, 250.0, 2, "rigid", BEARINGS["6312"])
VACUUM_PUMP = Machine("water-ring vacuum pump (110 kW)", 590.0, 110.0, 2, "rigid", BEARINGS["6312"])


def _sc(id_: str, name: str, kind: ScenarioKind, channels: tuple[Channel, ...], machine: Machine | None = None,
        notes: str = "") -> Scenario:
    return Scenario(id_, name, kind, channels, machine, notes)


K = ScenarioKind
_LIST: list[Scenario] = [
    _sc("mf01", "15101 fully-mechanised longwall", K.mining_face, _face()),
    _sc("mf02", "15103 top-coal caving face", K.mining_face,
        _face((ch("co2", "co2", "carbon dioxide (goaf)", (0.2, 0.6), CO2_FACE),))),
    _sc("mf03", "15105 face being equipped", K.mining_face, (
        ch("ch4", "ch4", "methane, face T1", (0.1, 0.4), CH4_FACE_T1), _co(), _temp(T_FACE, (19.0, 23.0)),
        _ws_ch(WS_FACE, (0.8, 1.8)))),
    _sc("hf01", "15107 tailgate heading (roadheader)", K.heading, _heading()),
    _sc("hf02", "15107 headgate heading", K.heading, _heading()),
    _sc("hf03", "rock roadway heading", K.heading, _heading(1, rock=True)),
    _sc("hf04", "twin-roadway continuous-miner heading", K.heading, _heading(3)),
    _sc("hf05", "drainage-roadway heading", K.heading, (
        ch("ch4_t1", "ch4", "methane, drainage roadway", (0.3, 1.2), CH4_DRAINAGE_ROADWAY),
        _co(), _ws_ch(WS_FACE, (0.6, 1.4)),
        ch("wl", "wl", "water level in the heading", (0.1, 0.4)))),
    _sc("lf01", "local fan of the 15107 tailgate heading", K.local_fan, _local_fan(), LOCAL_FAN),
    _sc("lf02", "local fan of the 15107 headgate heading", K.local_fan, _local_fan(), LOCAL_FAN),
    _sc("lf03", "local fan of the rock roadway heading", K.local_fan, _local_fan(), LOCAL_FAN),
    _sc("lf04", "local fan of the continuous-miner heading", K.local_fan, _local_fan(), LOCAL_FAN),
    _sc("vf01", "north shaft main fan room", K.main_fan, _main_fan(), MAIN_FAN),
    _sc("vf02", "central shaft main fan room", K.main_fan, _main_fan(), MAIN_FAN),
    _sc("bc01", "main inclined-shaft belt", K.belt, _belt(False), BELT_DRUM),
    _sc("bc02", "main roadway belt", K.belt, _belt(False), BELT_DRUM),
    _sc("bc03", "district belt", K.belt, _belt(True), BELT_DRUM),
    _sc("bc04", "15101 gate belt", K.belt, _belt(True), BELT_DRUM),
    _sc("bc05", "transfer point to the bunker", K.belt, (
        ch("ch4", "ch4", "methane at the transfer", (0.05, 0.3), CH4_BELT), _dust((1.0, 5.0)),
        ch("sm", "sm", "smoke", (0.0, 0.0), SMOKE), _co())),
    _sc("pr01", "central pump room", K.pump, _pump(), PUMP),
    _sc("pr02", "district pump room", K.pump, _pump(), PUMP),
    _sc("pr03", "face sump pumps", K.pump, (
        ch("wl", "wl", "sump water level", (0.8, 2.0), WL_SUMP), ch("i", "i", "pump current", (55.0, 70.0))), SUMP_PUMP),
    _sc("ss01", "central substation", K.substation, _substation()),
    _sc("ss02", "district substation", K.substation, _substation()),
    _sc("ss03", "face mobile substation train", K.substation, (
        _temp(T_CHAMBER, (20.0, 27.0)), ch("ch4", "ch4", "methane at the substation", (0.05, 0.3), CH4_CHAMBER),
        _co(), ch("i", "i", "feeder current", (200.0, 350.0)))),
    _sc("ra01", "main return at the fan shaft", K.air_return, _return(CH4_MAIN_RETURN, CO2_RETURN, WS_MAIN)),
    _sc("ra02", "wing return", K.air_return, _return(CH4_MAIN_RETURN, CO2_RETURN, WS_MAIN)),
    _sc("ra03", "district return", K.air_return,
        _return(CH4_DISTRICT_RETURN, CO2_DISTRICT_RETURN, WS_CONVEYOR, with_t=False)),
    _sc("gd01", "underground gas-drainage station", K.drainage, (
        ch("ch4_pipe", "ch4_hr", "methane in the drainage pipe", (25.0, 40.0)),
        ch("ch4", "ch4", "methane in the station air", (0.05, 0.3), CH4_CHAMBER),
        ch("dp", "dp", "pipe suction", (1.5, 2.5)),
        ch("fl", "fl", "mixture flow", (600.0, 900.0)),
        _temp(T_CHAMBER, (18.0, 26.0))), VACUUM_PUMP),
    _sc("cb01", "coal bunker", K.bunker, (
        ch("ch4", "ch4", "methane above the bunker", (0.1, 0.6), CH4_BUNKER), _co(),
        ch("level", "level", "bunker fill level", (5.0, 20.0)))),
    _sc("ac01", "air-compressor chamber", K.compressor, (
        ch("t_discharge", "t_hot", "compressor discharge temperature", (80.0, 95.0), T_COMPRESSOR),
        _temp(T_CHAMBER, (20.0, 28.0)),
        ch("tb", "t_hot", "compressor bearing temperature", (45.0, 65.0), TB_GENERAL),
        ch("p", "p_bar", "air receiver pressure", (6.5, 7.5))), COMPRESSOR),
]

SCENARIOS: dict[str, Scenario] = {s.id: s for s in _LIST}
assert len(SCENARIOS) == 31, len(SCENARIOS)


# The ventilation network's first facts [P]: the main fan whose split ventilates each place (two
# main fans, each with a standby unit, domain §2) and, for a heading, the local fan that feeds it.
# A fan that stops takes the air of every place it ventilates: the methane, CO and air-velocity
# alerts that follow there are consequences of it (detectors.incidents groups them with it).
VENTILATION: dict[str, tuple[str, str | None]] = {
    "mf01": ("vf01", None), "mf02": ("vf02", None), "mf03": ("vf01", None),
    "hf01": ("vf01", "lf01"), "hf02": ("vf01", "lf02"), "hf03": ("vf02", "lf03"), "hf04": ("vf02", "lf04"),
    "hf05": ("vf02", None),
    "lf01": ("vf01", None), "lf02": ("vf01", None), "lf03": ("vf02", None), "lf04": ("vf02", None),
    "vf01": ("vf01", None), "vf02": ("vf02", None),
    "bc01": ("vf02", None), "bc02": ("vf02", None), "bc03": ("vf01", None), "bc04": ("vf01", None),
    "bc05": ("vf02", None),
    "pr01": ("vf02", None), "pr02": ("vf01", None), "pr03": ("vf01", None),
    "ss01": ("vf02", None), "ss02": ("vf01", None), "ss03": ("vf01", None),
    "ra01": ("vf02", None), "ra02": ("vf01", None), "ra03": ("vf01", None),
    "gd01": ("vf02", None), "cb01": ("vf02", None), "ac01": ("vf02", None),
}
assert set(VENTILATION) == set(SCENARIOS), set(VENTILATION) ^ set(SCENARIOS)


# Machines that start and stop in normal work [P]: the channel whose reading says the machine
# runs (above half the low end of its normal band: a motor's current, a belt's speed, a fan's
# run signal), and the channels whose level follows its run state within seconds (the machine's
# own current, flow, pressure and speed; not the air around it, and not its temperatures, which
# follow over tens of minutes). Pumps start and stop on their sump level, belts with the
# production shifts, local fans only when they trip. The baseline-drift detector keeps one
# baseline per run state for the followers, and takes a steady walk of any other channel of the
# place soon after a start or stop for the machine's doing (detectors.selfdrift). The
# compressor's load and unload show in no on/off reading and the main fans run throughout:
# neither is here.
MACHINE_RUN: dict[str, tuple[str, tuple[str, ...]]] = {
    **{sid: ("i", ("i", "fl", "dp")) for sid in ("pr01", "pr02")},
    "pr03": ("i", ("i",)),
    **{sid: ("speed", ("speed",)) for sid in ("bc01", "bc02", "bc03", "bc04")},
    **{sid: ("run", ("dp", "i")) for sid in ("lf01", "lf02", "lf03", "lf04")},
}
assert all(c in SCENARIOS[sid].channel_map for sid, (run, follow) in MACHINE_RUN.items() for c in (run, *follow))
# Levels a machine moves between its set points [P]: a sump filling until its pump starts and
# emptying until it stops, an air receiver charged and drawn down by its compressor. Their own
# course is a steady walk of the whole band, so a sensor's drift cannot be told from it by the
# reading alone (detectors.selfdrift leaves them out).
SET_POINT_LEVELS: frozenset[tuple[str, str]] = frozenset(
    {("pr01", "wl"), ("pr02", "wl"), ("pr03", "wl"), ("ac01", "p")})


def upstream_fans(scenario_id: str) -> tuple[str, ...]:
    """The fans whose air reaches ``scenario_id``, nearest first: its local fan, then its main fan
    (neither for the fan's own place)."""
    main, local = VENTILATION.get(scenario_id, (None, None))
    return tuple(f for f in (local, main) if f is not None and f != scenario_id)


# The fleet [P]: every scenario has a robot stationed in it (``r01``..``r31`` in catalogue order),
# and four patrol robots walk loops through a district, stopping in each scenario on the way. The
# simulator moves them (simulator/fleet.py, whose routes a test holds equal to these), and the
# broker's ACL (minewatch.security) lets each write telemetry only for the scenarios listed here.
PATROL_ROUTES: dict[str, tuple[str, ...]] = {
    "p01": ("mf01", "ra03", "ss03", "bc04", "mf03"),
    "p02": ("hf01", "lf01", "hf02", "lf02", "ra02"),
    "p03": ("mf02", "ra01", "hf03", "lf03", "hf04", "lf04"),
    "p04": ("ss01", "pr01", "bc01", "bc02", "cb01", "ac01", "gd01", "vf02"),
}
FLEET: dict[str, tuple[str, ...]] = {
    **{f"r{i + 1:02d}": (sid,) for i, sid in enumerate(SCENARIOS)},
    **PATROL_ROUTES,
}
assert all(sid in SCENARIOS for route in PATROL_ROUTES.values() for sid in route)


def get_scenario(scenario_id: str) -> Scenario:
    try:
        return SCENARIOS[scenario_id]
    except KeyError:
        raise KeyError(f"unknown scenario {scenario_id!r}; known: {', '.join(SCENARIOS)}") from None
