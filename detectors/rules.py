"""The catalogue's limits, resolved per scenario and channel into detector rules.

A :class:`LimitRule` is one :class:`minewatch.catalogue.Limit` of one channel in one scenario,
after ``--set`` overrides, with the debounce that applies and the words an alert needs: which
kind of alert, which detector, the level names, and the operator's sentence.

Debounce [P]: methane and every ``critical`` level alert on the first sample that meets them
(the regulation's local power cut must act within 2 s, domain §3, so nothing may wait for a
second reading); other levels need :data:`DEFAULT_DEBOUNCE` consecutive samples, which keeps a
single noisy reading of CO, temperature or air velocity from raising an alert while a sustained
violation still alerts one sample later. Methane clears on the first sample below the restore
level (the regulation's re-energise rule); other channels need two, against flicker.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

from minewatch.catalogue import QUANTITIES, Channel, Limit, Scenario
from minewatch.schema import AlertKind, Severity

from detectors.overrides import Overrides

__all__ = ["DEFAULT_DEBOUNCE", "LimitRule", "limit_rules", "fmt_value"]

DEFAULT_DEBOUNCE = 2
_METHANE = ("ch4", "ch4_hr")

# quantity -> (alert kind, detector base name)
_KINDS: dict[str, tuple[AlertKind, str]] = {
    "ch4": (AlertKind.gas, "gas"), "ch4_hr": (AlertKind.gas, "gas"), "co": (AlertKind.gas, "gas"),
    "o2": (AlertKind.gas, "gas"), "co2": (AlertKind.gas, "gas"), "sm": (AlertKind.gas, "smoke"),
    "ws": (AlertKind.ventilation, "air_velocity"), "dp": (AlertKind.ventilation, "fan_pressure"),
    "t": (AlertKind.ventilation, "temperature"),
    # Equipment temperatures and sump levels are machine condition; the contract's alert kinds
    # put machine condition under "vibration".
    "t_hot": (AlertKind.vibration, "machine_temperature"), "wl": (AlertKind.vibration, "water_level"),
}


def kind_of(quantity: str) -> tuple[AlertKind, str]:
    return _KINDS.get(quantity, (AlertKind.sensor_health, quantity))


def decimals(quantity: str) -> int:
    res = QUANTITIES[quantity].resolution
    return max(0, -math.floor(math.log10(res) + 1e-9))


def fmt_value(value: float | None, quantity: str, unit: str) -> str:
    if value is None or not math.isfinite(value):
        return "no value"
    text = f"{value:.{decimals(quantity)}f}"
    return f"{text} {unit}".rstrip()


def _fmt_thr(value: float, unit: str) -> str:
    return f"{value:g} {unit}".rstrip()


@dataclass(frozen=True)
class LimitRule:
    scenario: Scenario
    channel: Channel
    direction: str
    levels: tuple[tuple[Severity, float], ...]
    restore: float
    rule: str
    action: str
    n_raise: tuple[int, ...]
    n_clear: int
    detector: str
    kind: AlertKind

    @property
    def methane(self) -> bool:
        return self.channel.quantity in _METHANE

    @property
    def unit(self) -> str:
        return self.channel.unit

    def level_name(self, k: int) -> str:
        sev = self.levels[k - 1][0]
        if self.methane and sev is Severity.critical:
            return "power-cut level"
        return f"{sev.value} level"

    def place(self) -> str:
        return f"{self.channel.label} in {self.scenario.id} ({self.scenario.name})"

    def what(self) -> str:
        name = QUANTITIES[self.channel.quantity].name
        return name[:1].upper() + name[1:]

    def message(self, k: int, value: float | None) -> str:
        """The operator's sentence for level ``k`` (1-based), or the clear when ``k == 0``."""
        v = fmt_value(value, self.channel.quantity, self.unit)
        if k == 0:
            side = "below" if self.direction == "above" else "back above"
            tail = " Power may be restored." if self.methane and any(s is Severity.critical for s, _ in self.levels) else ""
            return (f"{self.what()} {v} at {self.place()} is {side} the restore level "
                    f"{_fmt_thr(self.restore, self.unit)} ({self.rule}): the alert is cleared.{tail}")
        sev, thr = self.levels[k - 1]
        action = self.action or "investigate"
        if self.methane and sev is not Severity.critical and len(self.levels) > 1:
            # Below the power cut the regulation stops drilling and blasting (domain §1.1, CMSR 2010 Art.138).
            action = (f"stop electric drilling and blasting, find the cause and strengthen ventilation; "
                      f"power is cut at {_fmt_thr(self.levels[-1][1], self.unit)}")
        verb = "has reached" if self.direction == "above" else "has fallen below"
        return (f"{self.what()} {v} at {self.place()} {verb} the {self.level_name(k)} "
                f"{_fmt_thr(thr, self.unit)} ({self.rule}): {action}.")


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


def limit_rules(scenarios: Mapping[str, Scenario], overrides: Overrides) -> dict[tuple[str, str], list[LimitRule]]:
    """Every channel's limit rules: ``(scenario_id, channel) -> [LimitRule, ...]``."""
    out: dict[tuple[str, str], list[LimitRule]] = {}
    for sc in scenarios.values():
        for c in sc.channels:
            if not c.limits:
                continue
            kind, base = kind_of(c.quantity)
            two_sided = len({lim.direction for lim in c.limits}) > 1
            rules = []
            for lim in c.limits:
                side = ("high" if lim.direction == "above" else "low") if two_sided else None
                levels, restore = _levels_with_overrides(sc, c, lim, side, overrides)
                methane = c.quantity in _METHANE
                deb = overrides.get(sc.id, c.name, "debounce")
                deb_n = DEFAULT_DEBOUNCE if deb is None else max(1, int(deb))
                n_raise = tuple(1 if (methane or sev is Severity.critical) else deb_n for sev, _ in levels)
                rules.append(LimitRule(
                    scenario=sc, channel=c, direction=lim.direction, levels=levels, restore=restore, rule=lim.rule,
                    action=lim.action, n_raise=n_raise, n_clear=1 if methane else DEFAULT_DEBOUNCE,
                    detector=f"{base}_{side}" if side else f"{base}_limit", kind=kind,
                ))
            out[(sc.id, c.name)] = rules
    return out
