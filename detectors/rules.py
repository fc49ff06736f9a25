"""Fixed-limit rules: the catalogue's limits and the derived ventilation and robot checks.

A :class:`Rule` is everything the limit kernel and the alert engine need about one limit:
levels (severity, threshold) in rising severity, direction, restore level, debounce, and the
words of the alert. :func:`channel_rules` resolves, per scenario and channel:

* every :class:`minewatch.catalogue.Limit` (after ``--set`` overrides): gases, O2, air
  velocity, working-place and equipment temperatures, smoke, sump level;
* ventilation checks derived here [P]: fan stoppage (a local fan's run signal; a main fan
  with neither unit running, and unit A stopped), airflow reversal (signed air velocity below
  zero), fan pressure drop (below the catalogue's normal operating band).

Debounce [P]: methane and every ``critical`` level alert on the first sample that meets them
(the regulation's local power cut must act within 2 s, domain §3, so nothing may wait for a
second reading); other levels need :data:`DEFAULT_DEBOUNCE` consecutive samples, which keeps a
single noisy reading of CO, temperature or air velocity from raising an alert, while a
sustained violation still alerts one sample later. Methane clears on the first sample below
the restore level (the regulation's re-energise rule); other channels need two. Where a rule has
no hysteresis band (its restore level is its first level, as the regulation sets many methane
places: alarm, cut and restore all at 1.0 %), a reading that dithers about it would raise and clear
every few seconds: such a rule clears after :data:`NO_BAND_CLEAR` consecutive samples past it [P],
an off-delay in place of the missing deadband (keeping power off seconds longer, never shorter).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from minewatch.catalogue import QUANTITIES, Channel, Limit, Scenario, ScenarioKind, quantity
from minewatch.schema import AlertKind, Severity

from detectors.overrides import Overrides

__all__ = ["DEFAULT_DEBOUNCE", "Rule", "channel_rules", "decimals", "ROBOT_RULES", "subject", "where_place",
           "where_robot", "fmt_value", "fmt_number"]

DEFAULT_DEBOUNCE = 2
NO_BAND_CLEAR = 3
_METHANE = ("ch4", "ch4_hr")



def limit_kind(sc: Scenario, c: Channel) -> tuple[AlertKind, str]:
    """The alert kind and the detector-name stem of a fixed limit on channel ``c`` of ``sc``, from
    its quantity (:class:`minewatch.catalogue.Quantity`: ``kind``, ``limit_name``). A quantity
    that is unknown or cannot carry limits is an error naming the channel, never a guess."""
    try:
        q = quantity(c.quantity)
    except KeyError as exc:
        raise ValueError(f"{sc.id}.{c.name}: {exc.args[0]}") from None
    if q.limit_name is None:
        raise ValueError(f"{sc.id}.{c.name} has a limit, but its quantity {q.code!r} ({q.name}) names no limit "
                         f"detector: give the quantity a limit_name in minewatch.catalogue.QUANTITIES")
    return AlertKind(q.kind.alert_kind), q.limit_name


def decimals(code: str) -> int:
    """Decimals a value of quantity ``code`` is shown with (:attr:`Quantity.decimals`)."""
    return quantity(code).decimals


def fmt_thr(value: float, unit: str) -> str:
    return f"{value:g} {unit}".rstrip()


def fmt_value(value: float | None, unit: str, digits: int) -> str:
    """A reading for an operator: on/off channels in words, others with their unit."""
    if value is None or not math.isfinite(value):
        return "no value"
    if unit == "" and digits == 0:
        return "on" if value >= 0.5 else "off"
    return f"{fmt_number(value, digits)} {unit}".rstrip()


def fmt_number(value: float, digits: int) -> str:
    """``value`` with ``digits`` decimals; one beyond any sensor's range (a fault, or a hostile
    client: 1e308) in three significant digits, not three hundred."""
    return f"{value:.3g}" if abs(value) >= 1e7 else f"{value:.{digits}f}"


def where_place(sc: Scenario) -> str:
    """``mf01 (15101 fully-mechanised longwall)``."""
    return f"{sc.id} ({sc.name})"


def subject(sc: Scenario, c: Channel) -> str:
    """What is measured and where, as the subject of an operator's sentence: ``Methane at face T1
    in mf01 (15101 fully-mechanised longwall)``, ``Bearing temperature in lf01 (...)``."""
    q = QUANTITIES[c.quantity].name
    label = c.label
    at = ""
    what = label
    for sep, prep in ((", ", "at"), (" at the ", "at the"), (" at ", "at"), (" in the ", "in the"), (" in ", "in")):
        if label.startswith(q + sep):
            what, at = q, f" {prep} {label[len(q) + len(sep):]}"
            break
    return f"{what[:1].upper()}{what[1:]}{at} in {where_place(sc)}"


def where_robot(robot_id: str, sc: Scenario | None) -> str:
    return f"robot {robot_id} in {where_place(sc)}" if sc else f"robot {robot_id}"


@dataclass(frozen=True)
class Rule:
    """One fixed limit, ready for the kernel and the engine."""

    detector: str
    kind: AlertKind
    direction: str  # "above" | "below"
    levels: tuple[tuple[Severity, float], ...]
    restore: float
    n_raise: tuple[int, ...]
    n_clear: int
    rule: str
    actions: tuple[str, ...]  # per level
    level_names: tuple[str, ...]  # per level
    what: str  # "Methane", "Air velocity", ...
    quantity: str
    unit: str
    digits: int = 2
    power_cut: bool = False  # methane rule with a power-cut level: a clear says power may be restored
    signed: bool = True  # False: the kernel sees |x| (air velocity is signed by direction)

    def message(self, k: int, value: float | None, subject: str) -> str:
        """The operator's sentence for level ``k`` (1-based), or the clear when ``k == 0``, about
        ``subject`` (what is measured, and where). Plain words: the rule behind it goes in the
        alert's evidence, not here."""
        v = fmt_value(value, self.unit, self.digits)
        if k == 0:
            if self.quantity == "run":
                return f"{subject} is running again: the alert is cleared."
            side = "below" if self.direction == "above" else "back above"
            tail = " Power may be restored." if self.power_cut else ""
            return (f"{subject} is {v}, {side} the restore level {fmt_thr(self.restore, self.unit)}: "
                    f"the alert is cleared.{tail}")
        if self.quantity == "run":
            return f"{subject} has stopped: {self.actions[k - 1]}."
        thr = self.levels[k - 1][1]
        side = "at or above" if self.direction == "above" else "below"
        return f"{subject} is {v}, {side} the {self.level_names[k - 1]} {fmt_thr(thr, self.unit)}: {self.actions[k - 1]}."


def _what(quantity: str) -> str:
    name = QUANTITIES[quantity].name
    return name[:1].upper() + name[1:]


def _levels_with_overrides(sc: Scenario, c: Channel, lim: Limit, side: str | None,
                           ov: Overrides) -> tuple[tuple[tuple[Severity, float], ...], float]:
    levels = []
    for sev, thr in lim.levels:
        o = ov.get(sc.id, c.name, sev, side)
        levels.append((Severity(sev), thr if o is None else o))
    restore = ov.get(sc.id, c.name, "restore", side)
    restore = lim.restore if restore is None else restore
    ths = [t for _, t in levels]
    # Severity must rise with the threshold: a mis-ordered override is refused, not guessed at.
    ordered = all(a <= b for a, b in zip(ths, ths[1:])) if lim.direction == "above" else \
        all(a >= b for a, b in zip(ths, ths[1:]))
    if not ordered:
        raise ValueError(f"{sc.id}.{c.name}: after overrides the levels "
                         f"{', '.join(f'{s.value}={t:g}' for s, t in levels)} are out of order")
    # A lowered level drags the restore level with it, so the hysteresis band never inverts.
    restore = min(restore, ths[0]) if lim.direction == "above" else max(restore, ths[0])
    return tuple(levels), restore


def _catalogue_rule(sc: Scenario, c: Channel, lim: Limit, side: str | None, ov: Overrides) -> Rule:
    kind, base = limit_kind(sc, c)
    levels, restore = _levels_with_overrides(sc, c, lim, side, ov)
    methane = c.quantity in _METHANE
    deb = ov.get(sc.id, c.name, "debounce")
    deb_n = DEFAULT_DEBOUNCE if deb is None else max(1, int(deb))
    power_cut = methane and any(s is Severity.critical for s, _ in levels)
    names, actions = [], []
    for sev, _ in levels:
        if methane and sev is Severity.critical:
            names.append("power-cut level")
            actions.append(lim.action)
        elif power_cut:
            names.append(f"{sev.value} level")
            # Below the power cut the regulation stops drilling and blasting (domain §1.1, CMSR 2010 Art.138).
            actions.append(f"stop electric drilling and blasting, find the cause and strengthen ventilation; "
                           f"power is cut at {fmt_thr(levels[-1][1], c.unit)}")
        else:
            names.append(f"{sev.value} level")
            actions.append(lim.action or "investigate")
    lowest = levels[0][1]
    no_band = restore >= lowest if lim.direction == "above" else restore <= lowest
    n_clear = 1 if methane else DEFAULT_DEBOUNCE
    if no_band:
        n_clear = max(n_clear, NO_BAND_CLEAR)
    return Rule(
        detector=f"{base}_{side}" if side else f"{base}_limit", kind=kind, direction=lim.direction, levels=levels,
        restore=restore, n_raise=tuple(1 if (methane or s is Severity.critical) else deb_n for s, _ in levels),
        n_clear=n_clear, rule=lim.rule, actions=tuple(actions), level_names=tuple(names),
        what=_what(c.quantity), quantity=c.quantity, unit=c.unit, digits=decimals(c.quantity), power_cut=power_cut,
        signed=not quantity(c.quantity).signed,
    )


# -- ventilation checks derived from the catalogue [P] --------------------------------------

_LOCAL_FAN_STOP = ("local fan stop rule (CMSR 2016 Art.164 [U]; domain §2 local-fan stop)",
                   "the interlock must cut all power in the fed roadway; withdraw people to through-ventilated "
                   "intake air; power back only after CH4 ≤ 1.0 % and CO2 ≤ 1.5 % held 30 min")
_MAIN_FAN_STOP = ("main-fan rule: one standby unit must start within 10 min (domain §2, NMSA 2023 main-fan spec)",
                  "stop work and cut power in the affected places, people to intake air; start the standby unit")
_REVERSAL = ("CMSR 2016 Art.159 reversal rule (domain §2): a reversal outside a planned drill is an emergency",
             "confirm whether a reversal drill is under way; if not, withdraw people from the affected district "
             "and restore the fan's normal direction")


def _binary_stop(detector: str, what: str, severity: Severity, rule_action: tuple[str, str]) -> Rule:
    return Rule(detector=detector, kind=AlertKind.ventilation, direction="below", levels=((severity, 0.5),),
                restore=0.5, n_raise=(1,), n_clear=1, rule=rule_action[0], actions=(rule_action[1],),
                level_names=("stopped state",), what=what, quantity="run", unit="", digits=0)


def _derived_rules(sc: Scenario, c: Channel) -> list[Rule]:
    out: list[Rule] = []
    if c.quantity == "ws":
        out.append(Rule(detector="airflow_reversal", kind=AlertKind.ventilation, direction="below",
                        levels=((Severity.alarm, -0.1),), restore=0.1, n_raise=(2,), n_clear=2, rule=_REVERSAL[0],
                        actions=(_REVERSAL[1],), level_names=("reversal threshold",), what="Air velocity",
                        quantity="ws", unit="m/s", digits=2))
    if c.quantity == "run" and sc.kind is ScenarioKind.local_fan:
        out.append(_binary_stop("fan_stoppage", "The local fan", Severity.critical, _LOCAL_FAN_STOP))
    if c.name == "run_a" and sc.kind is ScenarioKind.main_fan:
        out.append(_binary_stop("fan_unit_stopped", "Main fan unit A", Severity.warning, (
            _MAIN_FAN_STOP[0], "check that standby unit B has started; if not, start it now")))
    if c.quantity == "dp" and sc.kind in (ScenarioKind.main_fan, ScenarioKind.local_fan):
        lo = c.normal[0]
        # [P]: warning below 80 %, alarm below 60 % of the bottom of the normal operating band.
        out.append(Rule(detector="fan_pressure_drop", kind=AlertKind.ventilation, direction="below",
                        levels=((Severity.warning, round(0.8 * lo, 3)), (Severity.alarm, round(0.6 * lo, 3))),
                        restore=round(0.9 * lo, 3), n_raise=(DEFAULT_DEBOUNCE, DEFAULT_DEBOUNCE),
                        n_clear=DEFAULT_DEBOUNCE,
                        rule=f"fan pressure below its normal operating band {lo:g}-{c.normal[1]:g} kPa [P]",
                        actions=("check the fan, doors and regulators for a short circuit of the air",) * 2,
                        level_names=("warning level", "alarm level"), what="Fan pressure", quantity="dp", unit="kPa", digits=3))
    return out


FAN = "fan"  # a main fan's derived reading: 1 while either of its two units runs
FAN_UNITS = ("run_a", "run_b")  # the units' own run signals


def derives_fan(sc: Scenario, names: Iterable[str]) -> bool:
    """Whether readings ``names`` of ``sc`` give the derived :data:`FAN` reading: a main fan's
    with a unit's run signal among them."""
    return sc.kind is ScenarioKind.main_fan and any(n in FAN_UNITS for n in names)


def fan_running(runs: Iterable[float | None]) -> float | None:
    """The derived :data:`FAN` reading from the units' run signals: the higher of those present."""
    present = [v for v in runs if v is not None]
    return max(present) if present else None


def with_fan(sc: Scenario, readings: Mapping[str, float | None]) -> Mapping[str, float | None]:
    """``readings`` with the derived :data:`FAN` reading where ``sc`` and they give it."""
    if not derives_fan(sc, readings):
        return readings
    return {**readings, FAN: fan_running(readings.get(n) for n in FAN_UNITS)}


def channel_rules(scenarios: Mapping[str, Scenario], overrides: Overrides) -> dict[tuple[str, str], list[Rule]]:
    """Every channel's fixed-limit rules: ``(scenario_id, channel) -> [Rule, ...]``.

    Main-fan scenarios also get the derived channel ``fan`` (1 while either unit runs)."""
    out: dict[tuple[str, str], list[Rule]] = {}
    for sc in scenarios.values():
        for c in sc.channels:
            two_sided = len({lim.direction for lim in c.limits}) > 1
            rules = [_catalogue_rule(sc, c, lim, ("high" if lim.direction == "above" else "low") if two_sided else None,
                                     overrides)
                     for lim in c.limits]
            rules += _derived_rules(sc, c)
            if rules:
                out[(sc.id, c.name)] = rules
        if sc.kind is ScenarioKind.main_fan:
            out[(sc.id, FAN)] = [_binary_stop("fan_stoppage", "The main fan", Severity.critical, _MAIN_FAN_STOP)]
    return out


# -- robot health via the same kernel (pseudo-channels of a robot) ---------------------------

def _robot_rule(detector: str, direction: str, levels: Sequence[tuple[Severity, float]], restore: float, what: str,
                digits: int, unit: str, rule: str, action: str, n_raise: int = DEFAULT_DEBOUNCE) -> Rule:
    return Rule(detector=detector, kind=AlertKind.robot_health, direction=direction, levels=tuple(levels),
                restore=restore, n_raise=(n_raise,) * len(levels), n_clear=DEFAULT_DEBOUNCE, rule=rule,
                actions=(action,) * len(levels), level_names=tuple(f"{s.value} level" for s, _ in levels),
                what=what, quantity=detector, unit=unit, digits=digits)


# [P] thresholds: a robot needs reserve to reach its charger; 5G figures from domain §5 (latency
# < 20 ms is the network's design; 100 ms is five times that).
ROBOT_RULES: dict[str, Rule] = {
    "battery": _robot_rule("battery_low", "below", ((Severity.warning, 20.0), (Severity.alarm, 10.0)), 25.0,
                           "Battery", 1, "%", "robot battery reserve 20 % / 10 % [P]",
                           "send the robot to its charger", n_raise=1),
    # The link's state is a notice (info): it tells why readings may come late or stop, and the
    # robot's silence, if it comes, is what the operator acts on (robot_offline).
    "link_latency_ms": _robot_rule("link_degraded", "above", ((Severity.info, 100.0),), 80.0, "5G latency",
                                   0, "ms", "5G link latency 100 ms, 5x the 20 ms design (domain §5) [P]",
                                   "expect delayed readings"),
    "link_rssi_dbm": _robot_rule("link_weak_signal", "below", ((Severity.info, -105.0),), -100.0, "5G signal",
                                 0, "dBm", "5G signal below -105 dBm [P]",
                                 "expect a coverage hole"),
    "link_loss": _robot_rule("link_loss", "above", ((Severity.info, 0.1),), 0.05, "5G packet loss",
                             2, "", "5G packet loss 10 % [P]", "expect gaps in the readings"),
}


# -- vibration, through the same kernel: the RMS velocity and the bearing-fault SNR of each block

def vibration_rules(sc: Scenario) -> tuple[Rule, Rule] | None:
    """(zone rule, bearing rule) for a scenario's machine, or None without one."""
    m = sc.machine
    if m is None:
        return None
    ab, bc, cd = m.zone_limits
    from detectors.vibration import BEARING_SNR_DB

    zone = Rule(
        detector="vibration_zone", kind=AlertKind.vibration, direction="above",
        levels=((Severity.warning, bc), (Severity.alarm, cd)), restore=round(0.95 * bc, 3), n_raise=(1, 1),
        n_clear=DEFAULT_DEBOUNCE,
        rule=f"ISO 10816-3 group {m.iso_group} {m.support}: zone C from {bc:g} mm/s, zone D from {cd:g} mm/s "
             f"RMS velocity {m.band_low_hz:g}-1000 Hz (domain §4)",
        actions=("zone C: not fit for long-term running, plan maintenance and watch the trend",
                 "zone D: vibration severe enough to damage the machine, stop it at the next safe opportunity"),
        level_names=("zone C boundary", "zone D boundary"), what="RMS vibration velocity", quantity="vib",
        unit="mm/s", digits=2)
    bearing = Rule(
        detector="bearing_fault", kind=AlertKind.vibration, direction="above",
        levels=((Severity.warning, BEARING_SNR_DB),), restore=BEARING_SNR_DB - 3.0, n_raise=(DEFAULT_DEBOUNCE,),
        n_clear=DEFAULT_DEBOUNCE,
        rule=f"envelope spectrum at the {m.bearing.name} bearing's fault frequencies at least {BEARING_SNR_DB:g} dB "
             f"above its floor in two blocks running [P]",
        actions=("plan a bearing change, check lubrication and the bearing temperature",),
        level_names=("bearing-fault threshold",), what="Bearing-fault envelope peak", quantity="vib", unit="dB",
        digits=1)
    return zone, bearing
