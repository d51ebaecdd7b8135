"""``HeldOutCalibration``: per-surface shifts read off the most recent held-out intervals."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from numpy.typing import NDArray

from quanzhan.domain import N_SURFACES, Surface
from quanzhan.engine.calibration import HeldOutCalibration


def _interval(
    *, outcomes: int, predicted: float, surface: Surface = Surface.SEARCH, rows: int = 1_000
) -> dict[str, NDArray[np.generic]]:
    """``rows`` held-out rows of one surface, ``outcomes`` of them positive, the predictions
    summing to ``predicted``."""
    outcome = np.zeros(rows, dtype=bool)
    outcome[:outcomes] = True
    return {
        "surface": np.full(rows, surface, dtype=np.int8),
        "predicted": np.full(rows, predicted / rows),
        "outcome": outcome,
    }


def test_nothing_held_out_means_no_shift() -> None:
    np.testing.assert_array_equal(HeldOutCalibration(enough=100).shift(), np.zeros(N_SURFACES))


def test_a_busy_interval_is_read_alone() -> None:
    """The newest interval holds enough outcomes: an older one, overpredicted twice over,
    no longer counts."""
    calibration = HeldOutCalibration(enough=100)
    calibration.add(**_interval(outcomes=100, predicted=200.0))
    calibration.add(**_interval(outcomes=300, predicted=300.0))
    assert calibration.shift()[Surface.SEARCH] == pytest.approx(0.0, abs=1e-9)
    assert len(calibration) == 1


def test_quiet_intervals_are_read_together() -> None:
    """Intervals of 40 outcomes each, against a calibration that wants 100: the newest three
    are read, the oldest forgotten, and the shift is that of one interval holding the three."""
    calibration = HeldOutCalibration(enough=100)
    calibration.add(**_interval(outcomes=40, predicted=10.0))  # forgotten below
    for _ in range(3):
        calibration.add(**_interval(outcomes=40, predicted=80.0))
    assert len(calibration) == 3
    pooled = HeldOutCalibration(enough=100)
    pooled.add(**_interval(outcomes=120, predicted=240.0, rows=3_000))
    np.testing.assert_allclose(calibration.shift(), pooled.shift(), atol=1e-12)
    assert calibration.shift()[Surface.SEARCH] < np.log(0.6)


def test_a_thin_surface_takes_the_others_miss() -> None:
    """Search is overpredicted twice over in thousands of outcomes; off-site holds two rows and
    no outcome. Off-site's shift leans on search's rather than on its own nothing."""
    calibration = HeldOutCalibration(enough=100)
    busy = _interval(outcomes=1_000, predicted=2_000.0, rows=10_000)
    thin = _interval(outcomes=0, predicted=0.1, surface=Surface.OFFSITE, rows=2)
    calibration.add(**{k: np.concatenate([busy[k], thin[k]]) for k in busy})
    shift = calibration.shift()
    assert shift[Surface.SEARCH] == pytest.approx(np.log(0.5), abs=0.02)
    assert shift[Surface.OFFSITE] == pytest.approx(np.log(0.5), abs=0.05)
    assert shift[Surface.HOME_FEED] == pytest.approx(np.log(0.5), abs=0.02)


def test_bad_input_is_refused_and_changes_nothing() -> None:
    calibration = HeldOutCalibration(enough=100)
    calibration.add(**_interval(outcomes=50, predicted=100.0))
    before = calibration.shift()
    good = _interval(outcomes=10, predicted=10.0)
    for bad in (
        {**good, "predicted": np.full(1_000, np.nan)},
        {**good, "predicted": np.full(1_000, -1.0)},
        {**good, "outcome": good["outcome"][:-1]},
    ):
        with pytest.raises(ValueError):
            calibration.add(**bad)  # type: ignore[arg-type]
    np.testing.assert_array_equal(calibration.shift(), before)
    assert len(calibration) == 1
    with pytest.raises(ValueError):
        HeldOutCalibration(enough=0)


@settings(max_examples=60, deadline=None)
@given(
    st.lists(st.tuples(st.integers(0, 500), st.floats(0.0, 1_000.0)), min_size=1, max_size=12),
    st.floats(1.0, 2_000.0),
)
def test_shifts_stay_bounded_and_follow_the_ratio(
    intervals: list[tuple[int, float]], enough: float
) -> None:
    """Whatever the evidence, shifts are finite and within two logits; where the intervals read
    hold more outcomes than predictions the shift is not negative, and where fewer, not
    positive."""
    calibration = HeldOutCalibration(enough=enough)
    for outcomes, predicted in intervals:
        calibration.add(**_interval(outcomes=outcomes, predicted=predicted))
    shift = calibration.shift()
    assert np.all(np.isfinite(shift)) and np.all(np.abs(shift) <= 2.0 + 1e-12)
    read = intervals[-len(calibration) :]
    happened = sum(o for o, _ in read)
    expected = sum(p for _, p in read)
    if happened > expected:
        assert shift[Surface.SEARCH] >= -1e-12
    elif happened < expected:
        assert shift[Surface.SEARCH] <= 1e-12
