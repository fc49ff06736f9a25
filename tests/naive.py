"""Slow, obvious references for the detector kernels.

Each function here restates a kernel's rule in plain Python, one stream at a time, with
dictionaries and lists, so a test can compare the compiled kernel against it on seeded data.
Written from the rule in each kernel module's docstring, not from the kernel's code.
"""

from __future__ import annotations

import math


def limit_levels(samples, configs):
    """Reference for ``detectors.limits.limit_kernel``.

    ``samples``: list of (stream, x) in processing order. ``configs[stream]``: dict with
    ``levels`` (list of (threshold, n_raise), severity rising), ``above`` (bool), ``restore``,
    ``n_clear``. Returns, per sample, the stream's new level if it changed there, else -1.
    """
    level = {}
    runs = {}
    clear_run = {}
    result = []
    for s, x in samples:
        cfg = configs[s]
        lv = level.get(s, 0)
        run = runs.setdefault(s, [0] * len(cfg["levels"]))
        if not math.isfinite(x):
            result.append(-1)
            continue

        def meets(threshold, x=x, cfg=cfg):
            return x >= threshold if cfg["above"] else x < threshold

        for k, (threshold, _) in enumerate(cfg["levels"]):
            run[k] = run[k] + 1 if meets(threshold) else 0
        past_restore = x < cfg["restore"] if cfg["above"] else x >= cfg["restore"]
        if lv > 0 and past_restore:
            clear_run[s] = clear_run.get(s, 0) + 1
            if clear_run[s] >= cfg["n_clear"]:
                level[s] = 0
                clear_run[s] = 0
                result.append(0)
            else:
                result.append(-1)
            continue
        clear_run[s] = 0
        candidates = [k + 1 for k, (_, need) in enumerate(cfg["levels"]) if run[k] >= max(need, 1)]
        best = max(candidates, default=0)
        if best > lv:
            level[s] = best
            result.append(best)
        else:
            result.append(-1)
    return result


def calm_times(samples, configs, levels):
    """Reference for ``detectors.limits.calm_kernel``: per stream, the time of its last sample
    back past the restore level (``x < restore`` above, ``x >= restore`` below) after which the
    stream stands at no alert. ``samples``: (stream, t, x) in time order; ``levels``: per sample,
    the stream's level after it. Streams with none are left out."""
    out = {}
    for (s, t, x), lv in zip(samples, levels):
        cfg = configs[s]
        back = x < cfg["restore"] if cfg["above"] else x >= cfg["restore"]
        if back and lv == 0:
            out[s] = t
    return out


def rise_changes(samples, cfg):
    """Reference for ``detectors.rise.rise_kernel`` on one stream: ``samples`` = [(t_ns, x)].

    ``cfg``: rise (unit/s), target, cut (None for none), horizon, tau_l, tau_b, warmup, gap_s,
    n_raise. Returns, per sample, the new state where it changed, else -1.
    """
    out = []
    prev_t = None
    level = slope = 0.0
    seen = 0
    state = 0
    on = off = 0
    for t, x in samples:
        if not math.isfinite(x):
            out.append(-1)
            continue
        if prev_t is None or (t - prev_t) / 1e9 > cfg["gap_s"]:
            level, slope, seen, prev_t, on, off = x, 0.0, 1, t, 0, 0
            out.append(0 if state else -1)
            state = 0
            continue
        dt = (t - prev_t) / 1e9
        if dt <= 0:
            out.append(-1)
            continue
        guess = level + slope * dt
        new_level = guess + (1 - math.exp(-dt / cfg["tau_l"])) * (x - guess)
        slope = slope + (1 - math.exp(-dt / cfg["tau_b"])) * ((new_level - level) / dt - slope)
        level = new_level
        prev_t = t
        seen += 1
        if seen < cfg["warmup"]:
            out.append(-1)
            continue
        ahead = level + slope * cfg["horizon"]
        rising = slope >= cfg["rise"] and ahead >= cfg["target"] and level >= cfg["target"] / 2
        code = (2 if cfg["cut"] is not None and ahead >= cfg["cut"] else 1) if rising else 0
        on, off = (on + 1, 0) if code else (0, off + 1)
        change = -1
        if state == 0 and code and on >= cfg["n_raise"]:
            change = code
        elif state and code > state:
            change = code
        elif state and code == 0 and off >= 2:
            change = 0
        if change >= 0:
            state = change
        out.append(change)
    return out


def health_changes(samples, cfg):
    """Reference for ``detectors.health.health_kernel`` on one stream: ``samples`` = [(t_ns, x)]
    with NaN for "frame without a value". Returns per sample a list of 4 change codes
    (range, stuck, spike, silent)."""
    from detectors.health import (REP_ALPHA, SPIKE_ALPHA, SPIKE_WARMUP, STUCK_LEARN_RUN, STUCK_MIN_RUN,
                                  STUCK_TAIL, STUCK_WARMUP)

    spikes_to_raise = 3  # three spikes within the window raise (the kernel keeps the last three, h_spikes)
    result = []
    st = {"longest": 0, "range": 0, "ok": 0, "last": None, "run": 0, "run_t0": 0, "rep": 0.5, "n": 0, "stuck": 0,
          "values": [], "cand": None, "spike_times": [], "spiky": 0, "last_t": None, "silent": 0}
    level = dev = 0.0
    for t, x in samples:
        codes = [-1, -1, -1, -1]
        result.append(codes)
        if x != x:
            if not st["silent"] and st["last_t"] is not None and (t - st["last_t"]) / 1e9 >= cfg["silence_s"]:
                st["silent"] = 1
                codes[3] = 1
            continue
        if st["silent"]:
            st["silent"] = 0
            codes[3] = 0
        back_after_gap = st["last_t"] is not None and (t - st["last_t"]) / 1e9 >= cfg["silence_s"]
        st["last_t"] = t
        if not math.isfinite(x) or not (cfg["lo"] - cfg["tol"] <= x <= cfg["hi"] + cfg["tol"]):
            st["ok"] = 0
            if not st["range"]:
                st["range"] = 1
                codes[0] = 1
            continue
        if st["range"]:
            st["ok"] += 1
            if st["ok"] >= 2:
                st["range"], st["ok"] = 0, 0
                codes[0] = 0
        if cfg["stuck_on"]:
            same = st["last"] is not None and x == st["last"] and not back_after_gap
            if same:
                st["run"] += 1
            else:
                if st["run"] < STUCK_LEARN_RUN:
                    st["longest"] = max(st["longest"], st["run"])
                st["run"], st["run_t0"] = 1, t
            if st["run"] < STUCK_LEARN_RUN and st["n"] > 0:
                st["rep"] += max(REP_ALPHA, 1 / st["n"]) * (float(same) - st["rep"])
            st["n"] += 1
            if st["stuck"] and not same:
                st["stuck"] = 0
                codes[1] = 0
            elif not st["stuck"] and st["n"] >= STUCK_WARMUP:
                r = st["rep"]
                need = math.inf if r >= 1 else (STUCK_TAIL / math.log(r) if r > 0 else 0)
                if st["run"] >= max(need, STUCK_MIN_RUN, 2 * st["longest"]) and (t - st["run_t0"]) / 1e9 >= cfg["stuck_s"]:
                    st["stuck"] = 1
                    codes[1] = 1
            st["last"] = x
        if cfg["spike_on"]:
            vals = st["values"]
            if len(vals) < SPIKE_WARMUP:
                vals.append(x)
                level = sum(vals) / len(vals)
                # mean absolute deviation of each value from the mean of the values before it
                devs = [abs(vals[j] - sum(vals[:j]) / j) for j in range(1, len(vals))]
                dev = sum(devs) / len(devs) if devs else 0.0
                continue
            sigma = max(1.25 * dev, 2 * cfg["tol"])
            far = abs(x - level)
            if st["cand"] is not None:
                cand_t, st["cand"] = st["cand"], None
                if far <= 0.5 * cfg["spike_k"] * sigma:
                    st["spike_times"] = (st["spike_times"] + [cand_t])[-spikes_to_raise:]
                    times = st["spike_times"]
                    if not st["spiky"] and len(times) == spikes_to_raise and \
                            (times[-1] - times[0]) / 1e9 <= cfg["spike_window_s"]:
                        st["spiky"] = 1
                        codes[2] = 1
                else:
                    level = x
                    continue
            if st["spiky"] and st["spike_times"] and (t - st["spike_times"][-1]) / 1e9 >= cfg["spike_window_s"]:
                st["spiky"] = 0
                codes[2] = 0
            if far > cfg["spike_k"] * sigma:
                st["cand"] = t
            else:
                level += SPIKE_ALPHA * (x - level)
                dev += SPIKE_ALPHA * (far - dev)
    return result


def change_scores(values, warmup=30, k=0.5, h=20.0, spike=12.0, alpha=0.02):
    """Reference for ``detectors.change.change_kernel`` on one stream.

    Returns (scores, codes): the score of each value and the alert-state change there."""
    from detectors.change import ALERT_OFF, ALERT_ON, LEARN_BELOW, SIGMA_PER_MAD, Z_CLIP

    scores, codes = [], []
    history = []  # warm-up values
    level = scale = 0.0
    up = down = 0.0
    bad_run = 0
    alerting = False
    on = off = 0
    previous, finest = math.nan, math.inf
    for x in values:
        score, code = 0.0, -1
        if x != x:
            scores.append(score)
            codes.append(code)
            continue
        if math.isfinite(x):
            if 0 < abs(x - previous) < finest:
                finest = abs(x - previous)
            previous = x
        bad = False
        if math.isinf(x):
            score, bad = 1.0, True
        elif len(history) < warmup:
            history.append(x)
            level = sum(history) / len(history)
            devs = [abs(history[j] - sum(history[:j]) / j) for j in range(1, len(history))]
            scale = sum(devs) / len(devs) if devs else 0.0
        else:
            sigma = max(SIGMA_PER_MAD * scale, 1e-6 * abs(level), 0.5 * finest if finest < math.inf else 0, 1e-300)
            z = (x - level) / sigma
            zc = max(-Z_CLIP, min(Z_CLIP, z))
            up = max(0.0, up + zc - k)
            down = max(0.0, down - zc - k)
            evidence = max(max(up, down) / h, abs(z) / spike)
            score = 1 - 2 ** -evidence
            if evidence >= 1:
                bad = True
                bad_run += 1
                if bad_run >= warmup:
                    history, level, scale, up, down, bad_run = [], 0.0, 0.0, 0.0, 0.0, 0
            else:
                bad_run = 0
                if evidence < LEARN_BELOW:
                    far = abs(x - level)
                    level += alpha * (x - level)
                    scale += alpha * (far - scale)
        if bad:
            on, off = on + 1, 0
            if not alerting and on >= ALERT_ON:
                alerting, code = True, 1
        else:
            on, off = 0, off + 1
            if alerting and off >= ALERT_OFF:
                alerting, code = False, 0
        scores.append(score)
        codes.append(code)
    return scores, codes


def block_stats(block):
    """Reference for ``detectors.vibration.block_stats`` on one block: (rms, kurtosis, crest)."""
    vals = [v for v in block if math.isfinite(v)]
    if not vals:
        return (math.nan, math.nan, math.nan)
    mean = sum(vals) / len(vals)
    dev = [v - mean for v in vals]
    m2 = sum(d * d for d in dev) / len(dev)
    m4 = sum(d ** 4 for d in dev) / len(dev)
    rms = math.sqrt(m2)
    return (rms, m4 / m2 ** 2 if m2 > 0 else math.nan, max(abs(d) for d in dev) / rms if rms > 0 else math.nan)


def band_velocity_rms(x, rate_hz, lo_hz, hi_hz):
    """Velocity RMS (same unit as ``x`` times seconds) in a band, by an explicit DFT: each
    acceleration component of amplitude ``A`` at ``f`` is a velocity component ``A / (2 pi f)``."""
    n = len(x)
    mean = sum(x) / n
    x = [v - mean for v in x]
    total = 0.0
    for k in range(1, n // 2 + 1):
        f = k * rate_hz / n
        if not lo_hz <= f <= hi_hz:
            continue
        re = sum(x[j] * math.cos(2 * math.pi * k * j / n) for j in range(n))
        im = -sum(x[j] * math.sin(2 * math.pi * k * j / n) for j in range(n))
        amp = 2 * math.hypot(re, im) / n  # one-sided amplitude of the sinusoid
        if k == n // 2 and n % 2 == 0:
            amp /= 2
        v_amp = amp / (2 * math.pi * f)
        total += v_amp ** 2 / 2 if not (k == n // 2 and n % 2 == 0) else v_amp ** 2
    return math.sqrt(total)


def drift_changes(samples, cfg):
    """Reference for ``detectors.drift.drift_kernel`` on one pair: ``samples`` = [(t_ns, a, b)]."""
    out = []
    diffs = []  # warm-up differences
    base = recent = 0.0
    last_t = None
    since = None
    alerting = False
    for t, a, b in samples:
        if not (math.isfinite(a) and math.isfinite(b)) or a >= cfg["gas_a"] or b >= cfg["gas_b"]:
            out.append(-1)
            continue
        if last_t is not None and (t - last_t) / 1e9 > cfg["gap_s"]:
            diffs, since = [], None
        last_t = t
        d = a - b
        if len(diffs) < cfg["warmup"]:
            diffs.append(d)
            base = recent = sum(diffs) / len(diffs)
            out.append(-1)
            continue
        recent += cfg["alpha_recent"] * (d - recent)
        off = abs(recent - base)
        change = -1
        if not alerting:
            if off >= cfg["tol"]:
                since = t if since is None else since
                if (t - since) / 1e9 >= cfg["hold_s"]:
                    alerting, since, change = True, None, 1
            else:
                since = None
                if off < cfg["tol"] / 2:
                    base += cfg["alpha_base"] * (d - base)
        elif off < cfg["tol"] / 2:
            since = t if since is None else since
            if (t - since) / 1e9 >= cfg["hold_s"]:
                alerting, since, change = False, None, 0
        else:
            since = None
        out.append(change)
    return out


def peak_energy(power, df, f0, harmonics, tol):
    """Reference for ``detectors.vibration.peak_energy``: per harmonic the largest bin within
    the tolerance, and the median of the bins within 10 % (at least 20 bins) around it."""
    n = len(power)
    energy = floor = 0.0
    for h in range(1, harmonics + 1):
        fc = f0 * h
        half = max(2 * df, tol * fc)
        lo, hi = max(1, math.floor((fc - half) / df)), min(n - 1, math.ceil((fc + half) / df))
        if lo > hi:
            continue
        energy += max(power[lo:hi + 1])
        wide = max(20 * df, 0.1 * fc)
        around = sorted(power[max(1, math.floor((fc - wide) / df)):min(n - 1, math.ceil((fc + wide) / df)) + 1])
        m = len(around)
        floor += around[m // 2] if m % 2 else (around[m // 2 - 1] + around[m // 2]) / 2
    return energy, floor
