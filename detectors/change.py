"""A streaming change and anomaly detector for sensor channels without fixed limits.

Each stream learns, online and from its own values only, what it should read now and how far
its readings usually stray, and scores each new value against that before learning from it
(no look-ahead):

* **expected value** ``L + S(t)``: a level ``L`` (exponential smoothing with ``alpha`` per value)
  plus a daily profile ``S`` of ``PROFILE_BINS`` bins over the ``period`` (24 h by default; 0
  turns it off), read by linear interpolation at the value's *timestamp*, so irregular
  sampling and gaps place a value correctly in its cycle. Each bin is an average of ``x`` minus
  a slow level (one period's time constant) over the values near its centre, weighted by the
  time each value stands for (a day of 1-second readings teaches it as much as a day of
  5-minute ones): a plain average until the bin has seen a whole period, then smoothing at
  ``gamma`` per period. The slow level follows the values only where the profile knows the
  time of day (before, it would follow the cycle itself). The three 8-hour shifts of a mine
  (domain.md §6) are a harmonic of the day, so the daily profile holds them too;
* **scale** ``sigma = 1.2533 d``: ``d`` is a smoothed mean absolute residual (each residual
  clipped at ``D_CLIP`` sigma, so heavy tails do not inflate it), floored at half the finest
  step seen between two values, a millionth of the level and ``FLOOR_SHARE`` of how far the
  values stray from their slow level (a quantised or noise-free series is not infinitely
  precise);
* three tests of the standardised residual ``z = (x - L - S) / sigma``, combined into one
  evidence ``T`` (the largest, each divided by its threshold):

  - *shift*: a two-sided CUSUM (allowance ``k``, threshold ``h``) of the residual's
    *innovation* ``(z - phi z') / sqrt(1 - phi^2)`` clipped at ``Z_CLIP``, where ``z'`` is the
    previous value's ``z`` and ``phi`` the lag-1 correlation of ``z`` learned on normal values
    (between 0 and ``PHI_MAX``): noise that comes in runs (AR(1)) is whitened before it is
    summed, so its runs do not accumulate as a shift would, while a shift still adds
    ``(1 - phi) / sqrt(1 - phi^2)`` of its size at every value;
  - *spike*: ``|z| >= spike`` times the learned tail heaviness ``q / (2.576 sigma)`` (between 1
    and ``TAIL_MAX``), with ``q`` an online 99th percentile of ``|x - L - S|``: one threshold
    holds for Gaussian and for heavy-tailed noise;
  - *variance*: a short moving average of ``|z|`` (clipped at ``V_CLIP``) ``VAR_RATIO`` times
    its usual 0.8;

* the score is ``1 - 2 ** -T`` in ``[0, 1)``: 0.5 exactly at the decision threshold whatever the
  stream (every test is relative to what the stream learned), ±inf scores 1;
* anomalous values (``T >= 1``, or the variance test at its threshold) are not learned, nor are
  up to ``SOFT_HOLD`` values in a row whose shift or spike evidence is past ``LEARN_BELOW`` or
  whose short moving average of ``z`` is ``M_PROTECT`` times its usual size (a shift or a
  slow climb cannot teach the detector that it is normal before the CUSUM has seen it); the noise's scale does not grow
  while its moving average is ``D_HOLD`` times the usual. After ``warmup`` unlearned values
  in a row the change is taken as the new normal:
  level and scale jump to those of the recent values (a short moving average), the profile is
  kept and scoring goes on;
* the first ``warmup`` values of a stream are learned (running mean and mean deviation), not
  scored. By default a pause in time changes nothing: the level and the daily profile place
  the values after it (a shift that starts while a patrol robot is away is still a shift).
  With ``gap`` set (``> 0``: that many ns; ``< 0``: ``GAP_FACTOR`` times the stream's usual
  spacing), after a longer pause the level is learned again, over a quarter of the warm-up,
  and so is the noise's scale where the values are now louder than it (a patrol robot back at
  a face whose shearer started cutting while it was away; the tail grows with it); the daily
  profile is kept, and so is a larger scale (it shrinks at the usual rate).

Everything is relative to the series itself, so the detector is scale-free: multiplying a
series by any factor leaves its scores unchanged. The alert state of a stream rises after
``ALERT_ON`` consecutive anomalous values and clears after ``ALERT_OFF`` consecutive normal
ones. ``bench/change_quality.py`` measures false alarms, recall and delay on seasonal series
with injected changes, against the previous detector and simple peers.

Examples
--------
>>> import numpy as np
>>> rng = np.random.default_rng(1)
>>> x = np.r_[rng.normal(10, 1, 200), rng.normal(14, 1, 100)]
>>> det = ChangeDetector()
>>> score, alert = det.score_many(x)
>>> bool(alert[:200].any()), int(np.argmax(alert)) - 200 < 20
(False, True)
>>> score2, _ = ChangeDetector().score_many(x * 1000.0)
>>> bool(np.allclose(score, score2))
True
"""

from __future__ import annotations

import numpy as np

from detectors._jit import Arr, jit

__all__ = ["CHANGE_ARGS", "CHANGE_COLUMNS", "WHY_NAMES", "ChangeDetector", "change_kernel", "to_score"]

DAY_NS = 86_400 * 1_000_000_000
PROFILE_BINS = 96  # 15 min bins over a day [P]: a shift change is a ramp of two bins, not a step
SIGMA_PER_MAD = 1.2533  # Gaussian ratio of standard to mean absolute deviation
Z_CLIP = 4.0  # one outlier must not look like a shift to the CUSUM
D_CLIP = 4.0  # residuals past this many sigmas teach the scale no more than this
V_CLIP = 6.0
PROFILE_CLIP = 3.0  # nor the profile more than this
V_MEAN = 1.0 / SIGMA_PER_MAD  # what |z| averages to when the scale is right
V_RATE = 0.05
D_HOLD = 1.5  # the scale is not learned while |z| averages this many times its usual size
VAR_RATIO = 2.5  # noise 2.5 times its usual size is a change [P]
M_RATE = 0.1  # the short moving average of z whose size measures how z comes in runs
M_IID = V_MEAN * (M_RATE / (2.0 - M_RATE)) ** 0.5  # its mean |.| for independent Gaussian z
FLOOR_SHARE = 0.01  # sigma is at least this share of how far values stray from their daily mean
PHI_MAX = 0.9  # the residuals' learned lag-1 correlation is taken at most this high
M_PROTECT = 5.0  # nor while the short average of z is this many times its usual size (for up to SOFT_HOLD) [P]
SCALE_RATE = 0.01  # scale, tail and run-size learning per value
Q_LEVEL = 0.01  # the tail quantile learned: 99th percentile of |residual|
Q_RATE = 0.1
Q_GAUSS = 2.5758  # the 99th percentile of |z| for Gaussian z
TAIL_MAX = 3.0  # the spike threshold grows at most this much for heavy tails [P]
FAST_RATE = 0.1  # level and deviation of the recent values, taken over at a re-baseline
LEARN_BELOW = 0.5
SOFT_HOLD = 5  # values a building evidence (below the threshold) may hold learning back [P]
GAP_FACTOR = 20.0  # an automatic gap: this many usual spacings without a value [P]
SPACING_RATE = 0.05
ALERT_ON = 2
ALERT_OFF = 5
# which test raised a notice (the kernel's ``why`` output, at the raising value; 0 elsewhere)
WHY_NONE, WHY_RISE, WHY_FALL, WHY_SPIKE, WHY_NOISE, WHY_NONFINITE = 0, 1, 2, 3, 4, 5
#: the tests' names, by ``why`` code, as a notice's evidence gives them (``"test"``)
WHY_NAMES = ("", "rise", "fall", "spike", "noise", "nonfinite")
LEAN_SHARE = 0.6  # noisier values whose z averages this share of their |z| lean one way: a level change [P]


@jit
def _profile_at(prof: Arr, weight: Arr, phase: float) -> tuple[int, int, float, float]:
    """Linear interpolation of one stream's cyclic profile between bin centres (phase in bins);
    a bin never learned takes its neighbour's value."""
    nb = prof.shape[0]
    pos = phase - 0.5
    lo = np.floor(pos)
    w = pos - lo
    i0 = int(lo)
    if i0 < 0:
        i0 += nb
    i1 = i0 + 1
    if i1 >= nb:
        i1 -= nb
    a = prof[i0]
    b = prof[i1]
    if weight[i0] <= 0.0:
        a = b
    elif weight[i1] <= 0.0:
        b = a
    return i0, i1, w, (1.0 - w) * a + w * b


@jit
def _fresh_tests() -> tuple[float, float, float, float, float, int]:
    """The tests' running values after a warm-up, a re-baseline or a gap: the short averages of
    ``z`` and ``|z|``, the previous ``z``, both CUSUM sums and the run of unlearned values."""
    return 0.0, 0.0, V_MEAN, 0.0, 0.0, 0


@jit
def _why(v_i: float, up: float, down: float, h: float, ev_spike: float, ev_var: float, mzv: float) -> int:
    """Which test a raising value is anomalous by (see :func:`change_kernel`'s ``why``)."""
    if not np.isfinite(v_i):
        return WHY_NONFINITE
    ev_level = max(up, down) / h
    if ev_level >= ev_spike and ev_level >= ev_var:
        return WHY_RISE if up >= down else WHY_FALL
    if ev_spike >= ev_var:
        return WHY_SPIKE
    # a large step makes |z| large before its CUSUM reaches h: louder values that lean one way,
    # with the CUSUM building, are a level change
    if ev_level >= LEARN_BELOW and abs(mzv) >= LEAN_SHARE * VAR_RATIO * V_MEAN * ev_var:
        return WHY_RISE if mzv > 0.0 else WHY_FALL
    return WHY_NOISE


@jit
def change_kernel(stream: Arr, t: Arr, x: Arr, on: Arr, warmup: Arr, k: Arr, h: Arr, spike: Arr, alpha: Arr,
                  gamma: Arr, period: Arr, gap: Arr, n: Arr, ready: Arr, m: Arr, d: Arr, spread: Arr, fast: Arr,
                  fdev: Arr, slow: Arr, prof: Arr, weight: Arr, spacing: Arr, q: Arr, mz: Arr, sm: Arr, c0: Arr,
                  c1: Arr, zprev: Arr, v: Arr, s_hi: Arr, s_lo: Arr, held: Arr, state: Arr, on_count: Arr,
                  off_count: Arr, last: Arr, step: Arr, t_last: Arr, t_phase: Arr, t_ns: Arr, score: Arr, code: Arr,
                  level: Arr, why: Arr) -> int:
    """Score a batch sorted by stream then time. ``score[i]`` is the evidence ``T`` (0 for NaN and
    warm-up, inf for ±inf; :func:`to_score` maps it to [0, 1]), ``code[i]`` the alert state change
    at ``i`` (1 raised, 0 cleared, -1 none), ``level[i]`` the value expected there.

    ``why[i]`` is written only where a notice is raised (``code[i] == 1``), so pass it zeroed
    (``WHY_NONE`` elsewhere): the test with the largest evidence at that value, each divided by its
    threshold as in ``T`` (the level's CUSUM ``WHY_RISE`` or ``WHY_FALL`` by which sum is larger,
    the spike ``WHY_SPIKE``, the noise ``WHY_NOISE``; a tie goes to the first of these), or
    ``WHY_NONFINITE`` for ±inf. A large step raises the noise test first (its ``|z|`` are large at
    once, while the CUSUM needs several values): where the noise test is the largest but the
    CUSUM is building (past ``LEARN_BELOW``) and the short average of ``z`` is at least
    ``LEAN_SHARE`` of the average ``|z|`` (the values lean one way), it is reported as the level's
    rise or fall, by the sign of that average. A notice rises at the ``ALERT_ON``-th anomalous value
    in a row, so the test is that value's: the values before it may have been anomalous by another."""
    n_changes = 0
    # the tests' evidence at the latest scored value, read only where a notice rises
    up = 0.0
    down = 0.0
    ev_spike = 0.0
    ev_var = 0.0
    mzv = 0.0
    nb = prof.shape[1]
    inv_nb = 1.0 / nb
    size = x.shape[0]
    start = 0
    while start < size:
        # one run of a stream's values: its state is read once, kept in locals, written back once
        s = stream[start]
        end = start + 1
        while end < size and stream[end] == s:
            end += 1
        pr = prof[s]
        wt = weight[s]
        on_s = on[s]
        warmup_s = warmup[s]
        k_s = k[s]
        h_s = h[s]
        spike_s = spike[s]
        alpha_s = alpha[s]
        gamma_s = gamma[s]
        period_s = period[s]
        gap_s = gap[s]
        n_s = n[s]
        ready_s = ready[s]
        m_s = m[s]
        d_s = d[s]
        spread_s = spread[s]
        fast_s = fast[s]
        fdev_s = fdev[s]
        slow_s = slow[s]
        spacing_s = spacing[s]
        q_s = q[s]
        mz_s = mz[s]
        sm_s = sm[s]
        c0_s = c0[s]
        c1_s = c1[s]
        zprev_s = zprev[s]
        v_s = v[s]
        s_hi_s = s_hi[s]
        s_lo_s = s_lo[s]
        held_s = held[s]
        state_s = state[s]
        on_count_s = on_count[s]
        off_count_s = off_count[s]
        last_s = last[s]
        step_s = step[s]
        t_last_s = t_last[s]
        t_phase_s = t_phase[s]
        t_ns_s = t_ns[s]
        bins_per_ns_s = nb / period_s if period_s > 0 else 0.0
        for i in range(start, end):
            v_i = x[i]
            score[i] = 0.0
            code[i] = -1
            per = period_s
            sv = 0.0
            phase = 0.0
            bins_per_ns = 0.0
            i0 = 0
            i1 = 0
            w = 0.0
            if per > 0:
                # the time of day, in ns, carried on from the previous value (a division only after a jump)
                step_t = t[i] - t_phase_s
                if t_phase_s < 0 or step_t < 0 or step_t >= per:
                    ph = t[i] % per  # Python's %: never negative
                else:
                    ph = t_ns_s + step_t
                    if ph >= per:
                        ph -= per
                t_phase_s = t[i]
                t_ns_s = ph
                bins_per_ns = bins_per_ns_s
                phase = ph * bins_per_ns
                i0, i1, w, sv = _profile_at(pr, wt, phase)
            level[i] = m_s + sv
            if not on_s or v_i != v_i:
                continue
            dt = 0
            if t_last_s >= 0:
                dt = t[i] - t_last_s
                limit = gap_s
                if limit == 0:  # no gap rule: the level and profile place the values after any pause
                    limit = np.inf
                elif limit < 0:  # automatic: GAP_FACTOR times the stream's usual spacing
                    limit = np.inf if spacing_s <= 0.0 else GAP_FACTOR * spacing_s
                if dt > 0 and dt <= limit:
                    if spacing_s <= 0.0:
                        spacing_s = dt
                    else:
                        spacing_s += SPACING_RATE * (dt - spacing_s)
                if dt > limit:
                    # back after a gap (a patrol robot returning): the level is stale, the profile is not
                    if ready_s and n_s >= max(2, (warmup_s + 3) // 4):
                        slow_s -= m_s  # the slow level kept relative to the level until that is learned again
                    n_s = 0
                    mz_s, zprev_s, v_s, s_hi_s, s_lo_s, held_s = _fresh_tests()
                    dt = 0
            t_last_s = t[i]
            bad = False
            if np.isfinite(v_i):
                jump = abs(v_i - last_s)
                if jump > 0.0 and jump < step_s:
                    step_s = jump  # the finest step seen: the sensor's resolution, learned
                last_s = v_i
                y = v_i - sv  # the value without its time of day
                need = warmup_s if not ready_s else max(2, (warmup_s + 3) // 4)
                seen = n_s
                if seen < need:
                    seen += 1
                    n_s = seen
                    mean = m_s if seen > 1 else 0.0
                    if seen > 1:
                        if not ready_s:
                            d_s += (abs(y - mean) - d_s) / (seen - 1)
                        else:  # back after a gap: the noise of this visit, measured as at the warm-up
                            fdev_s += (abs(y - mean) - fdev_s) / (seen - 1)
                    mean += (y - mean) / seen
                    m_s = mean
                    fast_s = mean
                    if seen == 1:
                        fdev_s = 0.0 if ready_s else d_s
                        if not ready_s:
                            slow_s = y
                    if seen == need:
                        if not ready_s:
                            ready_s = True
                            slow_s = mean
                            fdev_s = d_s
                            spread_s = d_s
                            q_s = Q_GAUSS * SIGMA_PER_MAD * d_s
                            sm_s = M_IID
                            c0_s = 1.0
                            c1_s = 0.0
                        else:
                            slow_s += mean
                            if fdev_s > d_s > 0.0:
                                # louder than the scale learned before the gap: the place's conditions
                                # moved on while the robot was away (a shearer cutting since), not news
                                q_s *= fdev_s / d_s
                                d_s = fdev_s
                            fdev_s = d_s
                        mz_s, zprev_s, v_s, s_hi_s, s_lo_s, held_s = _fresh_tests()
                else:
                    mean = m_s
                    r = y - mean
                    sigma = SIGMA_PER_MAD * d_s
                    floor = max(1e-6 * abs(mean + sv), FLOOR_SHARE * spread_s)
                    half_step = 0.5 * step_s
                    if half_step > floor and half_step < np.inf:
                        floor = half_step
                    if floor < 1e-300:
                        floor = 1e-300
                    if sigma < floor:
                        sigma = floor
                    inv_sigma = 1.0 / sigma
                    z = r * inv_sigma
                    az = abs(z)
                    zc = min(max(z, -Z_CLIP), Z_CLIP)
                    mzv = mz_s + M_RATE * (zc - mz_s)
                    mz_s = mzv
                    infl = sm_s * (1.0 / M_IID)
                    if infl < 1.0:
                        infl = 1.0
                    # the CUSUM sums the residual's innovation: z less what the previous z predicts of it
                    # (an AR(1) learned on the residuals), so noise that comes in runs is whitened
                    zp = zprev_s
                    zprev_s = zc
                    phi = 0.0
                    if c0_s > 0.0:
                        phi = min(max(c1_s / c0_s, 0.0), PHI_MAX)
                    zi = (zc - phi * zp) / np.sqrt(1.0 - phi * phi)
                    zi = min(max(zi, -Z_CLIP), Z_CLIP)
                    kk = k_s
                    up = max(0.0, s_hi_s + zi - kk)
                    down = max(0.0, s_lo_s - zi - kk)
                    s_hi_s = up
                    s_lo_s = down
                    vv = v_s + V_RATE * (min(az, V_CLIP) - v_s)
                    v_s = vv
                    tail = min(max(q_s * inv_sigma * (1.0 / Q_GAUSS), 1.0), TAIL_MAX)
                    ev_spike = az / (spike_s * tail)
                    ev = max(max(up, down) / h_s, ev_spike)
                    ev_var = vv * (1.0 / (VAR_RATIO * V_MEAN))
                    building = ev >= LEARN_BELOW or abs(mzv) >= M_PROTECT * M_IID * infl
                    protect = ev >= 1.0 or ev_var >= 1.0 or (building and held_s < SOFT_HOLD)
                    if ev_var > ev:
                        ev = ev_var
                    score[i] = ev
                    bad = ev >= 1.0
                    dev = abs(y - fast_s)
                    fast_s += FAST_RATE * (y - fast_s)
                    fdev_s += FAST_RATE * (dev - fdev_s)
                    if protect:  # anomalous, or evidence of a shift building up: not learned
                        run = held_s + 1
                        held_s = run
                        if run >= warmup_s:  # the change has lasted: it is the new normal
                            new_d = fdev_s
                            if new_d > 0.0 and d_s > 0.0:
                                q_s = tail * Q_GAUSS * SIGMA_PER_MAD * new_d
                                d_s = new_d
                            slow_s += fast_s - mean
                            m_s = fast_s
                            mz_s, zprev_s, v_s, s_hi_s, s_lo_s, held_s = _fresh_tests()
                    else:
                        held_s = 0
                        a = alpha_s
                        m_s = mean + a * r
                        if vv < D_HOLD * V_MEAN:  # the noise growing is not learned while it may be a change
                            d_s += SCALE_RATE * (min(abs(r), D_CLIP * sigma) - d_s)
                        sm_s += SCALE_RATE * (abs(mzv) - sm_s)
                        c0_s += SCALE_RATE * (zc * zc - c0_s)
                        c1_s += SCALE_RATE * (zc * zp - c1_s)
                        spread_s += SCALE_RATE * (abs(v_i - slow_s) - spread_s)
                        if abs(r) > q_s:
                            q_s += Q_RATE * sigma * (1.0 - Q_LEVEL)
                        else:
                            q_s -= Q_RATE * sigma * Q_LEVEL
                        q_s = min(q_s, TAIL_MAX * Q_GAUSS * sigma)
                    if per > 0 and dt > 0:
                        # the profile learns x minus the slow level, by the time this value stands for,
                        # even from anomalous values (clipped, and slowly: a change that comes back daily is the cycle)
                        frac = dt * bins_per_ns
                        if frac > 1.0:
                            frac = 1.0
                        sl = slow_s
                        target = v_i - sl
                        # each bin averages what it saw until it has seen a period's worth, then smooths
                        w0 = (1.0 - w) * frac
                        w1 = w * frac
                        # (a bin that has not seen a whole period yet learns whatever comes; after that,
                        # what it sees while the stream is anomalous counts only at the slow rate)
                        g0 = gamma_s
                        if not protect or wt[i0] < 1.0:
                            wt[i0] += w0
                            if wt[i0] > 0.0 and wt[i0] * g0 < 1.0:
                                g0 = 1.0 / wt[i0]
                        g1 = gamma_s
                        if not protect or wt[i1] < 1.0:
                            wt[i1] += w1
                            if wt[i1] > 0.0 and wt[i1] * g1 < 1.0:
                                g1 = 1.0 / wt[i1]
                        # each bin moves toward the value minus the slow level (clipped once it knows its time)
                        e0 = target - pr[i0]
                        if wt[i0] >= 1.0:
                            e0 = min(max(e0, -PROFILE_CLIP * sigma), PROFILE_CLIP * sigma)
                        e1 = target - pr[i1]
                        if wt[i1] >= 1.0:
                            e1 = min(max(e1, -PROFILE_CLIP * sigma), PROFILE_CLIP * sigma)
                        pr[i0] += g0 * w0 * e0
                        pr[i1] += g1 * w1 * e1
                        if (1.0 - w) * wt[i0] + w * wt[i1] >= 1.0:
                            # the slow level follows the values without their time of day once the
                            # profile knows this time of day: before, it would follow the cycle itself
                            rate = dt * bins_per_ns * inv_nb
                            if rate > 1.0:
                                rate = 1.0
                            slow_s = sl + rate * (y - sl)
            else:
                score[i] = np.inf
                bad = True
            if bad:
                on_n = on_count_s + 1
                on_count_s = on_n
                off_count_s = 0
                if state_s == 0 and on_n >= ALERT_ON:
                    state_s = 1
                    code[i] = 1
                    n_changes += 1
                    why[i] = _why(v_i, up, down, h_s, ev_spike, ev_var, mzv)
            else:
                on_count_s = 0
                off_n = off_count_s + 1
                off_count_s = off_n
                if state_s == 1 and off_n >= ALERT_OFF:
                    state_s = 0
                    code[i] = 0
                    n_changes += 1
        n[s] = n_s
        ready[s] = ready_s
        m[s] = m_s
        d[s] = d_s
        spread[s] = spread_s
        fast[s] = fast_s
        fdev[s] = fdev_s
        slow[s] = slow_s
        spacing[s] = spacing_s
        q[s] = q_s
        mz[s] = mz_s
        sm[s] = sm_s
        c0[s] = c0_s
        c1[s] = c1_s
        zprev[s] = zprev_s
        v[s] = v_s
        s_hi[s] = s_hi_s
        s_lo[s] = s_lo_s
        held[s] = held_s
        state[s] = state_s
        on_count[s] = on_count_s
        off_count[s] = off_count_s
        last[s] = last_s
        step[s] = step_s
        t_last[s] = t_last_s
        t_phase[s] = t_phase_s
        t_ns[s] = t_ns_s
        start = end
    return n_changes


CHANGE_COLUMNS = {
    # configuration
    "c_on": (np.bool_, (), False),
    "c_warmup": (np.int64, (), 30),
    "c_k": (np.float64, (), 0.75),
    "c_h": (np.float64, (), 12.0),
    "c_spike": (np.float64, (), 12.0),
    "c_alpha": (np.float64, (), 0.02),
    "c_gamma": (np.float64, (), 0.25),
    "c_period": (np.int64, (), DAY_NS),
    "c_gap": (np.int64, (), 0),  # 0: no gap rule; > 0: ns; < 0: automatic
    # state
    "c_n": (np.int64, (), 0),
    "c_ready": (np.bool_, (), False),
    "c_m": (np.float64, (), 0.0),
    "c_d": (np.float64, (), 0.0),
    "c_spread": (np.float64, (), 0.0),
    "c_fast": (np.float64, (), 0.0),
    "c_fdev": (np.float64, (), 0.0),
    "c_slow": (np.float64, (), 0.0),
    "c_prof": (np.float64, (PROFILE_BINS,), 0.0),
    "c_weight": (np.float64, (PROFILE_BINS,), 0.0),
    "c_spacing": (np.float64, (), 0.0),
    "c_q": (np.float64, (), 0.0),
    "c_mz": (np.float64, (), 0.0),
    "c_sm": (np.float64, (), M_IID),
    "c_c0": (np.float64, (), 1.0),
    "c_c1": (np.float64, (), 0.0),
    "c_zprev": (np.float64, (), 0.0),
    "c_v": (np.float64, (), V_MEAN),
    "c_s_hi": (np.float64, (), 0.0),
    "c_s_lo": (np.float64, (), 0.0),
    "c_held": (np.int64, (), 0),
    "c_state": (np.int8, (), 0),
    "c_on_count": (np.int64, (), 0),
    "c_off_count": (np.int64, (), 0),
    "c_last": (np.float64, (), np.nan),
    "c_step": (np.float64, (), np.inf),
    "c_t_last": (np.int64, (), -1),
    "c_t_phase": (np.int64, (), -1),
    "c_t_ns": (np.int64, (), 0),
}
CHANGE_ARGS = tuple(CHANGE_COLUMNS)


def to_score(evidence: np.ndarray) -> np.ndarray:
    """Map the kernel's evidence ``T`` to the score ``1 - 2 ** -T`` in [0, 1] (vectorised)."""
    out: np.ndarray = -np.expm1(-np.log(2.0) * np.asarray(evidence, dtype=np.float64))
    return out


class ChangeDetector:
    """One stream's change detector (see the module docstring for the rule).

    Parameters
    ----------
    warmup
        Values learned before any score; also how long a change lasts before it is the new normal.
    k
        CUSUM allowance, in standard deviations (half the smallest shift worth catching).
    h
        CUSUM decision threshold.
    spike
        A single value this many standard deviations away (more where the noise has heavy
        tails) is anomalous on its own.
    alpha
        Smoothing of the level.
    gamma
        How much of its error the daily profile learns per period.
    period_s
        Length of the cycle in seconds (0: no profile).
    gap_s
        A pause longer than this between two values restarts the level's warm-up (None: never; the
        level and the daily profile place the values after any pause).
    """

    def __init__(self, warmup: int = 30, k: float = 0.75, h: float = 12.0, spike: float = 12.0, alpha: float = 0.02,
                 gamma: float = 0.25, period_s: float = 86_400.0, gap_s: float | None = None) -> None:
        if warmup < 2:
            raise ValueError("warmup must be at least 2")
        if not (k >= 0 and h > 0 and spike > 0 and 0 < alpha < 1 and 0 <= gamma <= 1):
            raise ValueError("need k >= 0, h > 0, spike > 0, 0 < alpha < 1 and 0 <= gamma <= 1")
        if not (period_s >= 0 and np.isfinite(period_s)) or (gap_s is not None and not gap_s > 0):
            raise ValueError("need a finite period_s >= 0 and gap_s > 0")
        self.warmup, self.k, self.h, self.spike, self.alpha, self.gamma = warmup, k, h, spike, alpha, gamma
        self.state_: dict[str, np.ndarray] = {name: np.full((1, *shape), fill, dtype=dt)
                                              for name, (dt, shape, fill) in CHANGE_COLUMNS.items()}
        gap = 0 if gap_s is None else int(round(gap_s * 1e9))
        for name, value in (("c_on", True), ("c_warmup", warmup), ("c_k", k), ("c_h", h), ("c_spike", spike),
                            ("c_alpha", alpha), ("c_gamma", gamma), ("c_period", int(round(period_s * 1e9))),
                            ("c_gap", gap)):
            self.state_[name][0] = value

    def score_many(self, x: np.ndarray, t: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Scores and 0/1 anomaly flags of the next values, in order (state carries on).

        ``t``: their times, as ``datetime64`` or integer nanoseconds, non-decreasing and after
        the previous batch's; without it the values are one second apart."""
        x = np.ascontiguousarray(x, dtype=np.float64)
        if x.ndim != 1:
            raise ValueError(f"expected a 1-D series, got shape {x.shape}")
        prev = int(self.state_["c_t_last"][0])
        if t is None:
            start = prev + 1_000_000_000 if prev >= 0 else 0
            t = start + np.arange(x.shape[0], dtype=np.int64) * 1_000_000_000
        else:
            t = np.asarray(t)
            if np.issubdtype(t.dtype, np.datetime64):
                t = t.astype("datetime64[ns]").astype(np.int64)
            elif not np.issubdtype(t.dtype, np.integer):
                raise ValueError("t must be datetime64 or integer nanoseconds")
            t = np.ascontiguousarray(t, dtype=np.int64)
            if t.shape != x.shape:
                raise ValueError(f"t has shape {t.shape}, the values {x.shape}")
            if t.size and (np.any(np.diff(t) < 0) or t[0] < prev or t[0] < 0):
                raise ValueError("times must be non-negative, non-decreasing and not before the previous batch")
        score = np.empty(x.shape[0])
        code = np.empty(x.shape[0], dtype=np.int8)
        level = np.empty(x.shape[0])
        why = np.zeros(x.shape[0], dtype=np.int8)
        args: list[np.ndarray] = [np.zeros(x.shape[0], dtype=np.int64), t, x, *(self.state_[c] for c in CHANGE_ARGS),
                                  score, code, level, why]
        change_kernel(*args)
        alert = (score >= 1.0).astype(np.int8)
        return to_score(score), alert

    def score_one(self, x: float, t: int | None = None) -> float:
        """Score one value (and learn from it, unless it is anomalous)."""
        return float(self.score_many(np.array([x]), None if t is None else np.array([t], dtype=np.int64))[0][0])
