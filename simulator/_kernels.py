"""Compiled inner loops of the mine's step (one pass over every channel and twin row)."""

from __future__ import annotations

import math

import numpy as np
from numba import njit

# transforms of the equilibrium, see simulator.mine._FORM
F_NONE, F_INV_Q, F_MUL_Q, F_HEAT_Q, F_RUN_MUL, F_RUN_AMB, F_RUN2, F_STEP, F_STEP_MUL, F_STEP_ADD, F_PUMP_DP, \
    F_FAN_DP, F_FAN_A, F_FAN_B, F_ZERO, F_STATE = range(16)

Q_FLOOR = 0.03  # gas equilibrium never divides by less than this
AMBIENT_T = 22.0  # strata / chamber air temperature a stopped machine cools to [U]
GAS_Q_FLOOR = 0.05  # the gas lag's time constant V/Q stops growing below this airflow


@njit(cache=True)
def equilibrium(forms: np.ndarray, base: np.ndarray, gain: np.ndarray, c_in: np.ndarray, lo: np.ndarray,
                span: np.ndarray, place_of: np.ndarray, fan_of: np.ndarray, p: np.ndarray, q: np.ndarray,
                run: np.ndarray, fan_a: np.ndarray, fan_b: np.ndarray, fan_d: np.ndarray, eq: np.ndarray) -> None:
    rows, cols = eq.shape
    for k in range(cols):
        pl = place_of[k]
        target = base[k] + gain[k] * p[pl]
        form = forms[k]
        for r in range(rows):
            qq = q[r, pl]
            rr = run[r, pl]
            v = target
            if form == F_INV_Q:
                aq = max(abs(qq), Q_FLOOR)
                v = c_in[k] + (target - c_in[k]) / aq
            elif form == F_MUL_Q:
                v = target * qq
            elif form == F_HEAT_Q:
                v = target + 1.5 * (1.0 - min(abs(qq), 1.0))
            elif form == F_RUN_MUL:
                v = target * rr
            elif form == F_RUN_AMB:
                v = AMBIENT_T + (target - AMBIENT_T) * min(rr, 1.0)
            elif form == F_RUN2:
                v = target * rr * rr
            elif form == F_STEP:
                v = 1.0 if rr > 0.5 else 0.0
            elif form == F_STEP_MUL:
                v = target if rr > 0.5 else 0.0
            elif form == F_STEP_ADD:
                v = target + (0.5 * span[k] if rr > 0.5 else 0.0)
            elif form == F_PUMP_DP:
                v = target if rr > 0.5 else 0.1 * lo[k]
            elif form == F_FAN_DP or form == F_FAN_A or form == F_FAN_B:
                f = fan_of[k]
                a = fan_a[r, f]
                b = fan_b[r, f]
                if form == F_FAN_DP:
                    s2 = max(a, b) ** 2
                    if fan_d[r, f] <= 0.0:
                        s2 *= 0.6
                    v = target * max(s2, 0.02)
                elif form == F_FAN_A:
                    v = 1.0 if a > 0.5 else 0.0
                else:
                    v = 1.0 if b > 0.5 else 0.0
            elif form == F_ZERO:
                v = 0.0
            eq[r, k] = v


@njit(cache=True)
def relax(value: np.ndarray, eq: np.ndarray, alpha: np.ndarray, tau: np.ndarray, is_gas: np.ndarray,
          q: np.ndarray, place_of: np.ndarray, dt: float) -> None:
    """First-order lag towards the equilibrium; a gas's time constant is V/Q (slower in less air)."""
    rows, cols = value.shape
    for r in range(rows):
        for k in range(cols):
            a = alpha[k]
            if is_gas[k]:
                a = 1.0 - math.exp(-dt * max(abs(q[r, place_of[k]]), GAS_Q_FLOOR) / tau[k])
            value[r, k] += (eq[r, k] - value[r, k]) * a
