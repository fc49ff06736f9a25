"""Samples per second of each detector kernel on one core: Numba against NumPy and pure Python.

Every kernel runs over the same seeded data (many streams, NaN and inf sprinkled in) in three
implementations, in the same run:

* ``numba``: the compiled kernel (the one the suite uses);
* ``numpy``: for the limit kernel, a vectorised NumPy implementation that computes exactly the
  same outputs (checked here); the other kernels are recursive (each sample's state depends on
  the previous one: smoothing with protected learning, adaptive run lengths), which NumPy
  cannot vectorise, so their NumPy figure is the same kernel code interpreted over NumPy
  arrays (``numpy-interpreted``);
* ``python``: the plain-Python references of ``tests/naive.py`` (lists and dicts).

Prints one JSON line per kernel and implementation: ``kernel_samples_per_s`` (median of
``--repeats`` runs, by this process's CPU time on one thread, so a busy shared machine does not
lower it; the wall-clock rate and the load are conditions) with the kernel, implementation,
samples and streams as conditions, and
the speed-up of Numba over each peer measured in the same run.

    python bench/detector_kernels.py [--samples 5000000] [--repeats 5]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

os.environ.setdefault("NUMBA_NUM_THREADS", "1")
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import numpy as np

from detectors._state import StreamTable
from detectors.change import CHANGE_ARGS, CHANGE_COLUMNS, change_kernel, to_score
from detectors.health import HEALTH_ARGS, HEALTH_COLUMNS, health_kernel
from detectors.limits import LIMIT_COLUMNS, limit_kernel
from detectors.rise import RISE_ARGS, RISE_COLUMNS, rise_kernel
from detectors.selfdrift import SELFDRIFT_ARGS, SELFDRIFT_COLUMNS, selfdrift_kernel
from tests import naive
from tests.detectors import naive_change, naive_selfdrift

S = 1_000_000_000


def data(n: int, streams: int, seed: int = 7) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A batch sorted by stream then time: gas-like random walks in 0..2; each stream samples
    at its own fixed period (1, 2 or 5 s, as robots report) with one gap in twenty."""
    rng = np.random.default_rng(seed)
    stream = np.sort(rng.integers(0, streams, n)).astype(np.int64)
    period = rng.choice([1, 2, 5], streams)[stream] * S
    step = np.where(rng.random(n) < 0.05, 3 * period, period)
    t = np.cumsum(step).astype(np.int64)
    steps = rng.normal(0, 0.02, n)
    x = np.abs(0.5 + np.cumsum(steps) % 2.0 - 1.0) + 0.2
    x = np.round(x, 2)
    bad = rng.random(n)
    x[bad < 0.001] = np.nan
    x[(bad >= 0.001) & (bad < 0.0015)] = np.inf
    return stream, t, x


def limit_table(streams: int) -> StreamTable:
    tab = StreamTable(LIMIT_COLUMNS, capacity=streams)
    for s in range(streams):
        tab.add(s)
        tab["thr"][s, 0], tab["thr"][s, 1] = 1.0, 1.5
        tab["n_raise"][s, 0], tab["n_raise"][s, 1] = 2, 1
        tab["restore"][s], tab["n_clear"][s] = 0.95, 2
    return tab


def limit_numpy(stream: np.ndarray, x: np.ndarray, tab: StreamTable) -> np.ndarray:
    """The limit rule vectorised (fresh state): run lengths by maximum.accumulate, hysteresis by
    a segmented running maximum between clears. Same output as ``limit_kernel``."""
    out = np.full(x.shape[0], -1, dtype=np.int8)
    ok = np.isfinite(x)
    idx_ok = np.flatnonzero(ok)
    s, v = stream[ok], x[ok]
    n = v.shape[0]
    if n == 0:
        return out
    idx = np.arange(n)
    start = np.r_[True, s[1:] != s[:-1]]
    up = tab["above"][s]

    def runs(b: np.ndarray) -> np.ndarray:
        last = np.where(~b, idx, np.where(start, idx - 1, -1))
        np.maximum.accumulate(last, out=last)
        return np.where(b, idx - last, 0)

    raise_lvl = np.zeros(n, dtype=np.int64)
    for k in range(tab["thr"].shape[1]):
        t = tab["thr"][s, k]
        met = np.where(up, v >= t, v < t) & ~np.isnan(t)
        hit = (runs(met) >= np.maximum(tab["n_raise"][s, k], 1)) & met
        raise_lvl = np.where(hit, k + 1, raise_lvl)
    r = tab["restore"][s]
    past = np.where(up, v < r, v >= r)
    reset = (runs(past) == tab["n_clear"][s]) | start
    seg = np.cumsum(reset)
    level = np.maximum.accumulate(seg * 8 + np.where(reset & past, 0, raise_lvl)) - seg * 8
    prev = np.r_[0, level[:-1]]
    prev[start] = 0
    changed = level != prev
    out[idx_ok[changed]] = level[changed]
    return out


def timed(fn, repeats: int) -> tuple[float, float]:
    """Median CPU time of this process (one thread: the kernels run on one core) and median wall
    time of ``repeats`` runs; the CPU time does not count the time other work on a shared machine
    takes the core away."""
    cpu, wall = [], []
    for _ in range(repeats):
        a, b = time.process_time(), time.perf_counter()
        fn()
        cpu.append(time.process_time() - a)
        wall.append(time.perf_counter() - b)
    return statistics.median(cpu), statistics.median(wall)


def report(kernel: str, impl: str, n: int, streams: int, seconds: tuple[float, float], repeats: int,
           extra: dict | None = None) -> float:
    cpu, wall = seconds
    rate = n / max(cpu, 1e-9)
    print(json.dumps({"name": "kernel_samples_per_s", "value": round(rate), "unit": "samples/s", "kernel": kernel,
                      "implementation": impl, "samples": n, "streams": streams, "repeats": repeats, "cores": 1,
                      "threads": 1, "clock": "process CPU time (time.process_time), median",
                      "wall_samples_per_s": round(n / max(wall, 1e-9)), "load_1min": round(os.getloadavg()[0], 1),
                      **(extra or {})}), flush=True)
    return rate


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--samples", type=int, default=5_000_000, help="samples per Numba run")
    ap.add_argument("--slow-samples", type=int, default=100_000, help="samples per NumPy-interpreted / Python run")
    ap.add_argument("--streams", type=int, default=1000)
    ap.add_argument("--repeats", type=int, default=5)
    args = ap.parse_args()
    n, ns, streams, rep = args.samples, args.slow_samples, args.streams, args.repeats
    stream, t, x = data(n, streams)
    small = data(ns, max(1, streams * ns // n))
    s_streams = int(small[0].max()) + 1

    # -- limits
    def run_limit(st, xx, tab):
        out = np.empty(xx.shape[0], dtype=np.int8)
        limit_kernel(st, xx, tab["thr"], tab["above"], tab["restore"], tab["n_raise"], tab["n_clear"], tab["level"],
                     tab["count"], tab["clear_count"], out)
        return out

    run_limit(stream[:1000], x[:1000], limit_table(streams))  # compile / load the cache
    check = run_limit(stream, x, limit_table(streams))
    assert (limit_numpy(stream, x, limit_table(streams)) == check).all(), "NumPy limit differs from the kernel"
    r_nb = report("limit", "numba", n, streams, timed(lambda: run_limit(stream, x, limit_table(streams)), rep), rep)
    r_np = report("limit", "numpy", n, streams, timed(lambda: limit_numpy(stream, x, limit_table(streams)), rep), rep)
    cfgs = [{"levels": [(1.0, 2), (1.5, 1)], "above": True, "restore": 0.95, "n_clear": 2}] * s_streams
    pairs = list(zip(small[0].tolist(), small[2].tolist()))
    r_py = report("limit", "python", ns, s_streams, timed(lambda: naive.limit_levels(pairs, cfgs), max(1, rep // 2)),
                  max(1, rep // 2))
    ratios("limit", r_nb, {"numpy": r_np, "python": r_py})

    # -- the recursive kernels: Numba, the same code interpreted over NumPy arrays, and naive
    def table(columns: dict, on: dict, count: int) -> StreamTable:
        tab = StreamTable(columns, capacity=count)
        for s in range(count):
            tab.add(s)
            for k, v in on.items():
                tab[k][s] = v
        return tab

    specs = {
        "rise": (RISE_COLUMNS, RISE_ARGS, {"rise_on": True, "rise": 0.1 / 60, "rise_target": 1.0, "rise_cut": 1.5},
                 rise_kernel, 2),
        "health": (HEALTH_COLUMNS, HEALTH_ARGS, {"h_lo": 0.0, "h_hi": 4.0, "h_tol": 0.005, "h_stuck_on": True,
                                                  "h_spike_on": True}, health_kernel, 3),
        "change": (CHANGE_COLUMNS, CHANGE_ARGS, {"c_on": True}, change_kernel, 4),
        "selfdrift": (SELFDRIFT_COLUMNS, SELFDRIFT_ARGS, {"sd_tol": 0.2, "sd_run_thr": 0.5}, selfdrift_kernel, 5),
    }
    for name, (cols, argn, on, kernel, kind) in specs.items():
        def run(st, tt, xx, count, fn=kernel, cols=cols, argn=argn, on=on, kind=kind):
            tab = table(cols, on, count)
            m = xx.shape[0]
            if kind == 2:
                return fn(st, tt, xx, *(tab[c] for c in argn), np.empty(m, np.int8), np.empty(m))
            if kind == 3:
                return fn(st, tt, xx, *(tab[c] for c in argn), np.empty((m, 4), np.int8), np.empty(m))
            if kind == 5:  # a machine that starts and stops every 10 min
                return fn(st, tt, xx, machine_run(tt), *(tab[c] for c in argn), np.empty(m, np.int8),
                          np.empty((m, 3)))
            score = np.empty(m)
            fn(st, tt, xx, *(tab[c] for c in argn), score, np.empty(m, np.int8), np.empty(m), np.zeros(m, np.int8))
            return to_score(score)  # the kernel yields the evidence; the 0..1 score is one vectorised step

        run(stream[:1000], t[:1000], x[:1000], streams)
        r_nb = report(name, "numba", n, streams, timed(lambda: run(stream, t, x, streams), rep), rep)
        py_func = getattr(kernel, "py_func", kernel)  # the Python behind a compiled kernel (itself with the JIT off)
        r_np = report(name, "numpy-interpreted", ns, s_streams,
                      timed(lambda: run(small[0], small[1], small[2], s_streams, fn=py_func),  # noqa: B023 - timed at once
                            max(1, rep // 2)),
                      max(1, rep // 2))
        r_py = report(name, "python", ns, s_streams, timed(lambda: naive_run(name, small), max(1, rep // 2)),  # noqa: B023 - timed at once
                      max(1, rep // 2))
        ratios(name, r_nb, {"numpy-interpreted": r_np, "python": r_py})


def machine_run(t: np.ndarray) -> np.ndarray:
    """The run indicator of a machine that starts and stops every 10 min, at times ``t``."""
    return ((t // (600 * S)) % 2).astype(np.float64)


def naive_run(name: str, batch: tuple[np.ndarray, np.ndarray, np.ndarray]) -> None:
    stream, t, x = batch
    bounds = np.flatnonzero(np.r_[True, stream[1:] != stream[:-1], True])
    for a, b in zip(bounds[:-1], bounds[1:]):
        pairs = list(zip(t[a:b].tolist(), x[a:b].tolist()))
        if name == "rise":
            naive.rise_changes(pairs, {"rise": 0.1 / 60, "target": 1.0, "cut": 1.5, "horizon": 60.0, "tau_l": 8.0,
                                       "tau_b": 20.0, "warmup": 5, "gap_s": 60.0, "n_raise": 2})
        elif name == "health":
            naive.health_changes(pairs, {"lo": 0.0, "hi": 4.0, "tol": 0.005, "stuck_on": True, "stuck_s": 120.0,
                                         "spike_on": True, "spike_k": 10.0, "spike_window_s": 600.0,
                                         "silence_s": 60.0})
        elif name == "selfdrift":
            naive_selfdrift.selfdrift_changes(
                list(zip(t[a:b].tolist(), x[a:b].tolist(), machine_run(t[a:b]).tolist())),
                {"tol": 0.2, "warmup": 150, "alpha_base": 0.0005, "alpha_fast": 0.05, "step_s": 300.0, "hold_s": 300.0,
                 "gap_s": 300.0, "settle_s": 60.0, "run_thr": 0.5})
        else:
            naive_change.change_scores(t[a:b].tolist(), x[a:b].tolist())


def ratios(kernel: str, numba_rate: float, peers: dict[str, float]) -> None:
    for impl, rate in peers.items():
        print(json.dumps({"name": "kernel_speedup", "value": round(numba_rate / rate, 1), "unit": "x", "kernel": kernel,
                          "over": impl}), flush=True)


if __name__ == "__main__":
    main()
