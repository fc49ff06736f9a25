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

        def meets(threshold):
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
