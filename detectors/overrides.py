"""``--set KEY=VALUE``: change limits and detector settings for a replay.

Grammar (one override per ``--set``)::

    KEY   := SCENARIO "." CHANNEL "." FIELD [ "." SIDE ]
    VALUE := a finite number

``SCENARIO`` and ``CHANNEL`` are shell-style patterns (``*``, ``?``, ``[..]``) matched against
scenario ids and channel names of the catalogue, e.g. ``mf01``, ``hf*``, ``ch4*``. ``FIELD``
is a limit level (``warning``, ``alarm``, ``critical``; for methane ``critical`` is the
power-cut level), ``restore`` (where an alert clears), or a detector setting:

=================  =======================================================================
``rise``           methane / gas rate of rise that alerts, in the channel's unit per minute
``debounce``       consecutive samples a non-critical level must hold before it alerts
``spike_k``        sensor health: robust deviations from its level that make a value a spike
                   (> 0; channels whose quantity is watched for spikes)
``stuck_s``        sensor health: seconds a sensor must repeat one value to be stuck (> 0;
                   channels whose quantity can be stuck)
``change_h``       change notices: the CUSUM threshold (> 0; humidity and dust without limits)
``change_warmup``  change notices: values learned before the detector judges (a whole number
                   >= 1; the same channels)
``drift_tol``      drift: how far, in the channel's unit, the difference to a neighbouring
                   sensor must move (> 0; methane channels with a neighbour; a pair takes the
                   smaller of its two channels' tolerances)
``selfdrift_tol``  baseline drift: how far, in the channel's unit, a sensor may walk from its
                   own long baseline before it is called drifted (> 0; quantities with a
                   ``drift`` share: all but two-valued signals; ``detectors.selfdrift``)
=================  =======================================================================

``SIDE`` is ``high`` or ``low`` and is needed only for a channel limited on both sides (air
velocity: ``ra03.ws.alarm.low=0.3``). Later overrides win over earlier ones. A key whose
patterns match no channel with that field is an error, so a typo cannot silently leave the
limit unchanged.

Examples
--------
>>> parse_overrides(["mf01.ch4_t1.critical=1.2", "*.ch4*.alarm=0.8"])
{'mf01.ch4_t1.critical': 1.2, '*.ch4*.alarm': 0.8}
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping
from fnmatch import fnmatchcase

from minewatch.catalogue import QUANTITIES, SCENARIOS, Channel, Scenario

__all__ = ["LEVEL_FIELDS", "SETTING_FIELDS", "Overrides", "drift_channels", "parse_overrides"]

LEVEL_FIELDS = ("warning", "alarm", "critical", "restore")
SETTING_FIELDS = ("rise", "debounce", "spike_k", "stuck_s", "change_h", "change_warmup", "drift_tol",
                  "selfdrift_tol")
# settings that must be above zero, and those that must be whole numbers
_POSITIVE = frozenset({"spike_k", "stuck_s", "change_h", "change_warmup", "drift_tol", "selfdrift_tol"})
_WHOLE = frozenset({"change_warmup"})
_SIDES = ("high", "low")
_PATTERN = re.compile(r"\A[A-Za-z0-9_*?\[\]!-]+\Z")


def _split_key(key: str) -> tuple[str, str, str, str | None]:
    parts = key.split(".")
    if len(parts) not in (3, 4):
        raise ValueError(f"override key {key!r} must be SCENARIO.CHANNEL.FIELD[.high|.low], "
                         f"e.g. 'mf01.ch4_t1.critical'")
    scenario, channel, fld = parts[:3]
    side = parts[3] if len(parts) == 4 else None
    for what, pat in (("scenario", scenario), ("channel", channel)):
        if not _PATTERN.match(pat):
            raise ValueError(f"override key {key!r}: bad {what} pattern {pat!r}")
    if fld not in LEVEL_FIELDS + SETTING_FIELDS:
        raise ValueError(f"override key {key!r}: unknown field {fld!r}; use one of "
                         f"{', '.join(LEVEL_FIELDS + SETTING_FIELDS)}")
    if side is not None and side not in _SIDES:
        raise ValueError(f"override key {key!r}: side must be 'high' or 'low', got {side!r}")
    return scenario, channel, fld, side


def _check_value(key: str, fld: str, value: float) -> None:
    """``ValueError`` for a value the field cannot take."""
    if not math.isfinite(value):
        raise ValueError(f"override {key!r}: value must be finite, got {value!r}")
    if fld in _POSITIVE and value <= 0:
        raise ValueError(f"override {key!r}: {fld} must be above 0, got {value:g}")
    if fld in _WHOLE and value != int(value):
        raise ValueError(f"override {key!r}: {fld} must be a whole number, got {value:g}")


def parse_overrides(items: Iterable[str], scenarios: Mapping[str, Scenario] = SCENARIOS) -> dict[str, float]:
    """Parse ``KEY=VALUE`` strings into a dict; raise ``ValueError`` on anything malformed or
    on a key that matches nothing in ``scenarios``."""
    out: dict[str, float] = {}
    for item in items:
        key, sep, raw = item.partition("=")
        key, raw = key.strip(), raw.strip()
        if not sep or not key or not raw:
            raise ValueError(f"override {item!r} must look like KEY=VALUE, e.g. 'mf01.ch4_t1.critical=1.2'")
        try:
            value = float(raw)
        except ValueError:
            raise ValueError(f"override {item!r}: value {raw!r} is not a number") from None
        if not math.isfinite(value):
            raise ValueError(f"override {item!r}: value must be finite")
        _split_key(key)
        out[key] = value
    Overrides(out, scenarios).check_all_match()
    return out


class Overrides:
    """Resolved overrides: look up the value that applies to one channel's field."""

    def __init__(self, values: Mapping[str, float] | None, scenarios: Mapping[str, Scenario] = SCENARIOS) -> None:
        self.values = dict(values or {})
        self._scenarios = scenarios
        self._parsed = [(_split_key(k), v, k) for k, v in self.values.items()]
        for (_, _, fld, _), value, key in self._parsed:
            _check_value(key, fld, value)

    def get(self, scenario_id: str, channel: str, fld: str, side: str | None = None) -> float | None:
        """The last override for this field, or ``None``. ``side`` is the limit's side when
        the channel is limited on both sides (then an override must name it)."""
        found = None
        for (sp, cp, f, s), value, _ in self._parsed:
            if f == fld and fnmatchcase(scenario_id, sp) and fnmatchcase(channel, cp) and (s is None or s == side):
                found = value
        return found

    def check_all_match(self) -> None:
        """Raise ``ValueError`` for a key that applies to nothing in the catalogue."""
        for (sp, cp, f, s), _, key in self._parsed:
            if not any(_applies(sc, c, f, s) for sc in self._scenarios.values() if fnmatchcase(sc.id, sp)
                       for c in sc.channels if fnmatchcase(c.name, cp)):
                raise ValueError(f"override key {key!r} matches no channel with a {f!r} "
                                 f"{'(' + s + ' side) ' if s else ''}setting in the catalogue")
            if s is None and f in LEVEL_FIELDS:
                for sc in self._scenarios.values():
                    for c in sc.channels:
                        if fnmatchcase(sc.id, sp) and fnmatchcase(c.name, cp) and len({lim.direction for lim in c.limits}) > 1:
                            raise ValueError(f"override key {key!r}: {sc.id}.{c.name} is limited on both sides; "
                                             f"add .high or .low")


def drift_channels(scenario: Scenario) -> list[Channel]:
    """The channels of ``scenario`` compared for drift with a neighbour (:mod:`detectors.drift`):
    its methane channels with limits, when it has more than one."""
    ch4 = [c for c in scenario.channels if c.quantity == "ch4" and c.limits]
    return ch4 if len(ch4) > 1 else []


def _applies(scenario: Scenario, channel: Channel, fld: str, side: str | None) -> bool:
    if fld == "rise":
        return QUANTITIES[channel.quantity].rise_per_min is not None
    if fld == "debounce":
        return bool(channel.limits)
    q = QUANTITIES[channel.quantity]
    if fld == "spike_k":
        return q.spikes
    if fld == "stuck_s":
        return q.stuck
    if fld in ("change_h", "change_warmup"):
        return q.change_notice and not channel.limits
    if fld == "drift_tol":
        return channel in drift_channels(scenario)
    if fld == "selfdrift_tol":
        return q.drift is not None
    for lim in channel.limits:
        if side is not None and side != ("high" if lim.direction == "above" else "low"):
            continue
        if fld == "restore" or lim.level(fld) is not None:
            return True
    return False
