"""A slow, obvious reference for the drift of a sensor against its own baseline
(:mod:`detectors.selfdrift`): one stream's values walked in plain Python, with the checkpoints
kept as a growing list."""

from __future__ import annotations

import math
from typing import Any


def selfdrift_changes(samples: list[tuple[int, float]], cfg: dict[str, Any]) -> list[int]:
    """Per ``(t_ns, value)`` sample: 1 when the drift alert rises, 0 when it clears, -1 otherwise.

    ``cfg``: ``tol``, ``warmup``, ``alpha_base``, ``alpha_fast``, ``step_s``, ``hold_s``, ``gap_s``."""
    codes: list[int] = []
    warm: list[float] = []  # the warm-up's values; their mean is the first baseline
    base = fast = 0.0
    checkpoints: list[float] = []
    last_checkpoint_t = 0
    last_t: int | None = None
    raised = False
    calm_since: int | None = None
    for t, v in samples:
        if not math.isfinite(v) or not math.isfinite(cfg["tol"]):
            codes.append(-1)
            continue
        if not raised and last_t is not None and (t - last_t) / 1e9 > cfg["gap_s"]:
            warm = []
        last_t = t
        if len(warm) < cfg["warmup"]:
            warm.append(v)
            base = fast = sum(warm) / len(warm)
            checkpoints = []
            last_checkpoint_t = t
            calm_since = None
            codes.append(-1)
            continue
        fast = fast + cfg["alpha_fast"] * (v - fast)
        dev = fast - base
        at_checkpoint = (t - last_checkpoint_t) / 1e9 >= cfg["step_s"]
        if at_checkpoint:
            checkpoints.append(dev)
            last_checkpoint_t = t
        code = -1
        if not raised:
            if at_checkpoint and len(checkpoints) >= 4:
                last4 = checkpoints[-4:]
                side = 1.0 if last4[-1] > 0 else -1.0
                steps = [side * (b - a) for a, b in zip(last4, last4[1:])]
                steady = (side * last4[-1] >= cfg["tol"] and all(d >= cfg["tol"] / 6 for d in steps)
                          and max(steps) <= 2.0 * min(steps))
            else:
                steady = False
            if steady:
                raised, calm_since, code = True, None, 1
            elif abs(dev) < cfg["tol"] / 2:
                base = base + cfg["alpha_base"] * (v - base)
        elif abs(dev) < cfg["tol"] / 2:
            if calm_since is None:
                calm_since = t
            if (t - calm_since) / 1e9 >= cfg["hold_s"]:
                raised, calm_since, code = False, None, 0
        else:
            calm_since = None
        codes.append(code)
    return codes
