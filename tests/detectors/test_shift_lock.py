"""The behaviour lock: the suite gives, event by event, the alerts stored for an 8-hour faulted
shift (``data/shift_lock.py`` made them)."""

from __future__ import annotations

import os

import pytest

from tests.detectors.data.shift_lock import load, replay


@pytest.mark.skipif(os.environ.get("NUMBA_DISABLE_JIT") == "1",
                    reason="interpreted, the shift takes many minutes; the conformance test runs every kernel "
                           "interpreted against the compiled one")
def test_the_shift_gives_the_stored_alerts() -> None:
    stored = load()
    got = list(replay())
    assert len(stored) > 100  # a shift with every fault kind raises and clears many alerts
    assert got[-1] == stored[-1], "frames or vibration features differ"
    for i, (a, b) in enumerate(zip(got[:-1], stored[:-1])):
        assert a == b, f"event {i} differs:\n got    {a}\n stored {b}"
    assert len(got) == len(stored)
