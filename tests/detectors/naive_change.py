"""Plain-Python restatement of ``detectors.change.change_kernel`` for one stream.

Slow and obvious on purpose: a dict of named state, lists for the daily profile, ``math`` for
everything, one branch per rule as the module docstring states it. The tests compare the kernel
with it value by value.
"""

from __future__ import annotations

import math


def change_scores(times, values, *, warmup=30, k=0.75, h=12.0, spike=12.0, alpha=0.02, gamma=0.25,
                  period=86_400 * 10**9, gap=0):
    """Scores (evidence ``T``), alert-state codes, expected values and, where a notice rises, the
    test that raised it (``why``: the ``WHY_*`` code of the raising value's largest evidence, 0 elsewhere)
    of one stream's values.

    ``times`` in integer nanoseconds; ``gap`` 0 means none, below 0 automatic (``GAP_FACTOR`` usual spacings)."""
    from detectors import change as c

    bins = c.PROFILE_BINS
    profile = [0.0] * bins
    weight = [0.0] * bins
    st = {"n": 0, "ready": False, "level": 0.0, "dev": 0.0, "spread": 0.0, "fast": 0.0, "fast_dev": 0.0,
          "visit_dev": 0.0, "slow": 0.0, "spacing": 0.0, "q": 0.0, "avg_z": 0.0, "avg_z_size": c.M_IID, "z2": 1.0, "zz": 0.0,
          "prev_z": 0.0, "avg_abs_z": c.V_MEAN, "up": 0.0,
          "down": 0.0, "held": 0, "alerting": False, "on": 0, "off": 0, "last": math.nan, "step": math.inf,
          "t_last": -1}
    scores, codes, expected, whys = [], [], [], []

    def season(t):
        """(left bin, right bin, weight of the right one, profile value) at time ``t``."""
        if period <= 0:
            return 0, 0, 0.0, 0.0
        pos = (t % period) * (bins / period) - 0.5
        left = math.floor(pos)
        right_w = pos - left
        i0 = int(left) % bins
        i1 = (i0 + 1) % bins
        a, b = profile[i0], profile[i1]
        if weight[i0] <= 0:  # never learned: the neighbour's value
            a = b
        elif weight[i1] <= 0:
            b = a
        return i0, i1, right_w, (1.0 - right_w) * a + right_w * b

    for t, x in zip(times, values):
        i0, i1, right_w, sv = season(t)
        expected.append(st["level"] + sv)
        score, code = 0.0, -1
        evidence = {}  # each test's evidence at this value, by its why code
        if x != x:
            scores.append(score)
            codes.append(code)
            whys.append(c.WHY_NONE)
            continue
        dt = 0
        if st["t_last"] >= 0:
            dt = t - st["t_last"]
            if gap > 0:
                limit = gap
            elif gap == 0:  # no gap rule
                limit = math.inf
            else:  # automatic
                limit = math.inf if st["spacing"] <= 0 else c.GAP_FACTOR * st["spacing"]
            if 0 < dt <= limit:
                st["spacing"] = dt if st["spacing"] <= 0 else st["spacing"] + c.SPACING_RATE * (dt - st["spacing"])
            if dt > limit:  # a gap: learn the level again, keep the rest (the slow level relative to it)
                if st["ready"] and st["n"] >= max(2, (warmup + 3) // 4):
                    st["slow"] -= st["level"]
                st.update(n=0, up=0.0, down=0.0, avg_z=0.0, prev_z=0.0, avg_abs_z=c.V_MEAN, held=0)
                dt = 0
        st["t_last"] = t
        bad = False
        if math.isinf(x):
            score, bad = math.inf, True
            evidence = {c.WHY_NONFINITE: math.inf}
        else:
            if 0 < abs(x - st["last"]) < st["step"]:
                st["step"] = abs(x - st["last"])
            st["last"] = x
            y = x - sv
            need = warmup if not st["ready"] else max(2, (warmup + 3) // 4)
            if st["n"] < need:
                st["n"] += 1
                seen = st["n"]
                old_mean = st["level"] if seen > 1 else 0.0
                if not st["ready"] and seen > 1:
                    st["dev"] += (abs(y - old_mean) - st["dev"]) / (seen - 1)
                if st["ready"]:  # back after a gap: this visit's mean absolute deviation
                    st["visit_dev"] = 0.0 if seen == 1 else \
                        st["visit_dev"] + (abs(y - old_mean) - st["visit_dev"]) / (seen - 1)
                st["level"] = old_mean + (y - old_mean) / seen
                st["fast"] = st["level"]
                if seen == 1:
                    st["fast_dev"] = st["dev"]
                    if not st["ready"]:
                        st["slow"] = y
                if seen == need:
                    if not st["ready"]:
                        st.update(ready=True, slow=st["level"], fast_dev=st["dev"], spread=st["dev"],
                                  q=c.Q_GAUSS * c.SIGMA_PER_MAD * st["dev"], avg_z_size=c.M_IID, z2=1.0, zz=0.0)
                    else:
                        st["slow"] += st["level"]
                        if st["visit_dev"] > st["dev"] > 0.0:  # louder now: the scale and tail grow with it
                            st["q"] *= st["visit_dev"] / st["dev"]
                            st["dev"] = st["visit_dev"]
                        st["fast_dev"] = st["dev"]
                    st.update(avg_z=0.0, prev_z=0.0, avg_abs_z=c.V_MEAN, up=0.0, down=0.0, held=0)
            else:
                level = st["level"]
                r = y - level
                floor = max(1e-6 * abs(level + sv), c.FLOOR_SHARE * st["spread"])
                if floor < 0.5 * st["step"] < math.inf:
                    floor = 0.5 * st["step"]
                sigma = max(c.SIGMA_PER_MAD * st["dev"], floor, 1e-300)
                z = r / sigma
                zc = max(-c.Z_CLIP, min(c.Z_CLIP, z))
                st["avg_z"] += c.M_RATE * (zc - st["avg_z"])
                inflation = max(1.0, st["avg_z_size"] / c.M_IID)
                # the CUSUM of the innovation: z less what the previous z predicts (AR(1) on the residuals)
                prev_z = st["prev_z"]
                st["prev_z"] = zc
                phi = min(max(st["zz"] / st["z2"], 0.0), c.PHI_MAX) if st["z2"] > 0 else 0.0
                innovation = max(-c.Z_CLIP, min(c.Z_CLIP, (zc - phi * prev_z) / math.sqrt(1.0 - phi * phi)))
                st["up"] = max(0.0, st["up"] + innovation - k)
                st["down"] = max(0.0, st["down"] - innovation - k)
                st["avg_abs_z"] += c.V_RATE * (min(abs(z), c.V_CLIP) - st["avg_abs_z"])
                tail = min(max(st["q"] / (c.Q_GAUSS * sigma), 1.0), c.TAIL_MAX)
                shifted = max(st["up"], st["down"]) / h
                spiked = abs(z) / (spike * tail)
                shift_or_spike = max(shifted, spiked)
                noisier = st["avg_abs_z"] / (c.VAR_RATIO * c.V_MEAN)
                # in order of precedence: the first of equal evidences names the test
                evidence = {c.WHY_RISE if st["up"] >= st["down"] else c.WHY_FALL: shifted, c.WHY_SPIKE: spiked,
                            c.WHY_NOISE: noisier}
                # louder values leaning one way while the CUSUM builds: a large step, not noise
                leaning = shifted >= c.LEARN_BELOW and abs(st["avg_z"]) >= c.LEAN_SHARE * st["avg_abs_z"]
                step_sign = st["avg_z"]
                score = max(shift_or_spike, noisier)
                bad = score >= 1.0
                building = shift_or_spike >= c.LEARN_BELOW or abs(st["avg_z"]) >= c.M_PROTECT * c.M_IID * inflation
                protect = score >= 1.0 or (building and st["held"] < c.SOFT_HOLD)
                far = abs(y - st["fast"])
                st["fast"] += c.FAST_RATE * (y - st["fast"])
                st["fast_dev"] += c.FAST_RATE * (far - st["fast_dev"])
                if protect:
                    st["held"] += 1
                    if st["held"] >= warmup:  # re-baseline on the recent values
                        if st["fast_dev"] > 0 and st["dev"] > 0:
                            st["q"] = tail * c.Q_GAUSS * c.SIGMA_PER_MAD * st["fast_dev"]
                            st["dev"] = st["fast_dev"]
                        st["slow"] += st["fast"] - level
                        st["level"] = st["fast"]
                        st.update(avg_z=0.0, prev_z=0.0, avg_abs_z=c.V_MEAN, up=0.0, down=0.0, held=0)
                else:
                    st["held"] = 0
                    st["level"] = level + alpha * r
                    if st["avg_abs_z"] < c.D_HOLD * c.V_MEAN:
                        st["dev"] += c.SCALE_RATE * (min(abs(r), c.D_CLIP * sigma) - st["dev"])
                    st["avg_z_size"] += c.SCALE_RATE * (abs(st["avg_z"]) - st["avg_z_size"])
                    st["z2"] += c.SCALE_RATE * (zc * zc - st["z2"])
                    st["zz"] += c.SCALE_RATE * (zc * prev_z - st["zz"])
                    st["spread"] += c.SCALE_RATE * (abs(x - st["slow"]) - st["spread"])
                    if abs(r) > st["q"]:
                        st["q"] += c.Q_RATE * sigma * (1.0 - c.Q_LEVEL)
                    else:
                        st["q"] -= c.Q_RATE * sigma * c.Q_LEVEL
                    st["q"] = min(st["q"], c.TAIL_MAX * c.Q_GAUSS * sigma)
                if period > 0 and dt > 0:
                    span = period / bins
                    share = min(dt, span) / span
                    target = x - st["slow"]
                    for b, part in ((i0, (1.0 - right_w) * share), (i1, right_w * share)):
                        gain = gamma
                        if not protect or weight[b] < 1.0:
                            weight[b] += part
                            if weight[b] > 0:
                                gain = max(gamma, 1.0 / weight[b])
                        err = target - profile[b]
                        if weight[b] >= 1.0:  # the bin knows its time: clipped
                            err = max(-c.PROFILE_CLIP * sigma, min(c.PROFILE_CLIP * sigma, err))
                        profile[b] += gain * part * err
                    if (1.0 - right_w) * weight[i0] + right_w * weight[i1] >= 1.0:
                        st["slow"] += min(1.0, dt / period) * (y - st["slow"])
        if bad:
            st["on"], st["off"] = st["on"] + 1, 0
            if not st["alerting"] and st["on"] >= c.ALERT_ON:
                st["alerting"], code = True, 1
        else:
            st["on"], st["off"] = 0, st["off"] + 1
            if st["alerting"] and st["off"] >= c.ALERT_OFF:
                st["alerting"], code = False, 0
        why = c.WHY_NONE
        if code == 1:  # the largest evidence of the raising value (max keeps the first of equals)
            why = max(evidence, key=lambda w: evidence[w])
            if why == c.WHY_NOISE and leaning:
                why = c.WHY_RISE if step_sign > 0 else c.WHY_FALL
        scores.append(score)
        codes.append(code)
        whys.append(why)
    return scores, codes, expected, whys
