"""A slow, obvious reference for the drift of a sensor against its own baseline
(:mod:`detectors.selfdrift`): one stream's values walked in plain Python, a baseline per run state
of the place's machine kept in a dict, the checkpoints as a growing list."""

from __future__ import annotations

import math
from typing import Any


def selfdrift_changes(samples: list[tuple[int, float, float]], cfg: dict[str, Any]) -> list[int]:
    """Per ``(t_ns, value, run indicator reading)`` sample: 1 when the drift alert rises, 0 when it
    clears, -1 otherwise.

    ``cfg``: ``tol``, ``warmup``, ``alpha_base``, ``alpha_fast``, ``step_s``, ``hold_s``, ``gap_s``,
    ``settle_s``, ``run_thr`` (NaN: one baseline whatever the machine does)."""
    codes: list[int] = []
    warm: dict[int, list[float]] = {0: [], 1: []}  # per run state, its warm-up's values
    base: dict[int, float] = {}  # per run state, its baseline once learned
    fast = 0.0
    carry = 0.0  # the offset the sensor had when the machine last started or stopped
    running = 0
    switched_at: int | None = None
    checkpoints: list[float] = []
    judged_ns = 0  # judged time since the last checkpoint
    last_judged: int | None = None
    last_t: int | None = None
    raised = False
    calm_since: int | None = None
    for t, v, r in samples:
        if not math.isfinite(v) or not math.isfinite(cfg["tol"]):
            codes.append(-1)
            continue
        if not raised and last_t is not None and (t - last_t) / 1e9 > cfg["gap_s"]:
            warm, base = {0: [], 1: []}, {}
            switched_at = last_judged = None
        last_t = t
        if math.isfinite(cfg["run_thr"]) and math.isfinite(r) and (r >= cfg["run_thr"]) != bool(running):
            carry = fast - base[running] if running in base else 0.0
            running = 1 - running
            if running in base:
                fast = base[running] + carry
            switched_at, last_judged = t, None
        if switched_at is not None and (t - switched_at) / 1e9 < cfg["settle_s"]:
            codes.append(-1)
            continue
        if running not in base:
            warm[running].append(v)
            if (1 - running) not in base:
                carry, checkpoints, judged_ns, calm_since = 0.0, [], 0, None
            if len(warm[running]) == cfg["warmup"]:
                base[running] = sum(warm[running]) / len(warm[running]) - carry
                fast = base[running] + carry
            last_judged = None
            codes.append(-1)
            continue
        fast = fast + cfg["alpha_fast"] * (v - fast)
        dev = fast - base[running]
        if last_judged is not None:
            judged_ns += t - last_judged
        last_judged = t
        at_checkpoint = judged_ns * 1e-9 >= cfg["step_s"]
        if at_checkpoint:
            checkpoints.append(dev)
            judged_ns = 0
        code = -1
        if not raised:
            if at_checkpoint and len(checkpoints) >= 4:
                last4 = checkpoints[-4:]
                side = 1.0 if last4[-1] > 0 else -1.0
                steps = [side * (b - a) for a, b in zip(last4, last4[1:])]
                steady = (cfg["tol"] <= side * last4[-1] <= 2.0 * cfg["tol"] and all(d >= cfg["tol"] / 6 for d in steps)
                          and max(steps) <= 3.0 * min(steps))
            else:
                steady = False
            if steady:
                raised, calm_since, code = True, None, 1
            elif abs(dev) < cfg["tol"] / 2:
                base[running] = base[running] + cfg["alpha_base"] * (v - base[running])
        elif abs(dev) < cfg["tol"] / 2:
            if calm_since is None:
                calm_since = t
            if (t - calm_since) / 1e9 >= cfg["hold_s"]:
                raised, calm_since, code = False, None, 0
        else:
            calm_since = None
        codes.append(code)
    return codes
