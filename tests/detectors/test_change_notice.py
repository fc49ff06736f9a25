"""A change notice says what changed: the level, one value, the noise or a value that is not a
number, in its message and in its evidence's ``test``, through the detector suite."""

from __future__ import annotations

import numpy as np
import pytest

from detectors import DetectorSuite
from minewatch.schema import AlertEvent
from tests.detectors.conftest import S, T0, series

DT_S = 5.0
BASE = 300  # values of dust at 7.5 mg/m³ before the change


def _raised(after: np.ndarray, seed: int = 11) -> tuple[AlertEvent, int]:
    """The first change notice on mf01's dust after ``BASE`` steady values, and its value's index
    in ``after``."""
    rng = np.random.default_rng(seed)
    values = np.round(np.r_[7.5 + rng.normal(0, 0.2, BASE), after], 1)
    events = DetectorSuite().process(series("r01", "mf01", "du", values, dt_s=DT_S)).events
    notices = [e for e in events if e.detector == "change" and e.state.value == "raised"]
    assert notices, "the change must raise a notice"
    return notices[0], int((notices[0].ts - T0) // int(DT_S * S)) - BASE


def _steady(n: int, mean: float = 7.5, seed: int = 12) -> np.ndarray:
    return np.asarray(mean + np.random.default_rng(seed).normal(0, 0.2, n))


@pytest.mark.parametrize(("to", "word", "test"), [(10.5, "risen", "rise"), (4.5, "fallen", "fall"),
                                                  (8.5, "risen", "rise")])
def test_a_level_shift_says_risen_or_fallen(to: float, word: str, test: str) -> None:
    """A large step (its |z| large at once, so the noise test passes first) and a small one (the
    CUSUM's) are both a level change."""
    ev, k = _raised(_steady(150, to))
    assert 0 <= k < 40 and ev.evidence["test"] == test
    assert ev.message.startswith(f"Dust in mf01 (15101 fully-mechanised longwall) has {word} from its usual ")
    assert f"to {ev.value:.1f} mg/m³: check whether the change is real" in ev.message
    assert "spike" not in ev.message and "varying" not in ev.message


def test_a_spike_says_jumped() -> None:
    after = _steady(100)
    after[10:12] = 30.0
    ev, k = _raised(after)
    assert k == 11 and ev.value == 30.0 and ev.evidence["test"] == "spike"
    assert "jumped to 30.0 mg/m³ (usual 7." in ev.message and "risen" not in ev.message
    after[10:12] = 1.0
    ev, k = _raised(after)
    assert k == 11 and ev.evidence["test"] == "spike" and "dropped to 1.0 mg/m³ (usual 7." in ev.message


def test_noisier_values_with_the_same_mean_say_varying() -> None:
    rng = np.random.default_rng(13)
    ev, k = _raised(7.5 + rng.normal(0, 1.0, 150))
    assert ev.evidence["test"] == "noise" and k >= 2
    assert "is varying about" in ev.message and "times as much as usual around its usual 7." in ev.message
    assert "has risen" not in ev.message and "has fallen" not in ev.message and "jumped" not in ev.message


def test_a_noise_notice_at_the_usual_value_does_not_contradict_itself() -> None:
    """The defect: louder noise raised at a value equal to the usual level read "changed from its
    usual 7.5 mg/m³ to 7.5 mg/m³"."""
    ev, _ = _raised(np.tile([9.0, 6.0, 7.5, 7.5], 40))
    assert ev.value == 7.5, "the case needs the notice raised at a value of 7.5"
    assert ev.evidence["test"] == "noise"
    assert "to 7.5 mg/m³" not in ev.message and "changed from" not in ev.message
    times = float(ev.message.split("varying about ")[1].split(" times")[0])
    assert 2.5 <= times < 6.0  # the noise's |z| at least VAR_RATIO times its usual, clipped at V_CLIP
    assert ev.message.endswith("(now 7.5 mg/m³): check whether the change is real or the sensor is failing.")


def test_values_that_are_not_numbers_say_so() -> None:
    after = np.r_[_steady(10), np.inf, np.inf, _steady(20)]
    ev, k = _raised(after)
    assert k == 11 and ev.value is None and ev.evidence["test"] == "nonfinite"
    assert "read inf, not a number (usual 7." in ev.message and "check the sensor" in ev.message


def test_the_clearing_names_no_test() -> None:
    rng = np.random.default_rng(14)
    values = np.round(np.r_[7.5 + rng.normal(0, 0.2, BASE), 7.5 + rng.normal(0, 1.0, 150)], 1)
    events = [e for e in DetectorSuite().process(series("r01", "mf01", "du", values, dt_s=DT_S)).events
              if e.detector == "change"]
    assert [e.state.value for e in events][:2] == ["raised", "cleared"]
    assert events[0].evidence["test"] == "noise" and "test" not in events[1].evidence
    assert "is steady again at" in events[1].message
