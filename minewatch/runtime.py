"""Process-wide settings of the long-running services (ingest, api, replay).

They make and drop hundreds of thousands of small objects a second (frames, rows, lines). With
CPython's default thresholds the cyclic garbage collector runs every 700 allocations and, as
the objects of a batch in flight survive into the older generations, rescans them again and
again: a third of a replay's CPU went there. None of these objects form cycles, so collect the
young generation every 10,000 allocations, and move everything that exists once a service has
started (the catalogue, compiled kernels, clients) out of the collector's sight.
"""

from __future__ import annotations

import gc

__all__ = ["tune_gc"]


def tune_gc(*, freeze: bool = True) -> None:
    """Collect less often and, with ``freeze``, set aside what exists now (see the module
    docstring). A process that builds and drops whole applications (tests) should not freeze:
    frozen objects are never collected."""
    if freeze:
        gc.collect()
        gc.freeze()
    gc.set_threshold(10_000, 20, 20)
