"""``PredictionRecord``: predictions against the truth, overall, by surface and over time."""

from __future__ import annotations

import numpy as np
import pytest

from quanzhan.domain import SURFACE_NAMES, Surface
from quanzhan.sim.evaluation import PredictionRecord

HOUR = 3600.0


def _add(
    record: PredictionRecord, *, surface: Surface, hour: float, predicted: float, truth: float
) -> None:
    """Ten rows of one surface served in the hour from ``hour``."""
    n = 10
    record.add(
        surface=np.full(n, surface, dtype=np.int8),
        predicted=np.full(n, predicted),
        truth=np.full(n, truth),
        outcome=np.arange(n) < 3,
        time=hour * HOUR + np.linspace(0.0, HOUR - 1.0, n),
    )


def test_calibration_over_time_is_per_surface_and_period() -> None:
    """Search is overpredicted in the first two hours and right after; home feed is served only
    in the third hour. Each period's figure is its own rows' ratio, ``None`` where a surface had
    no rows."""
    record = PredictionRecord()
    _add(record, surface=Surface.SEARCH, hour=0, predicted=0.2, truth=0.1)
    _add(record, surface=Surface.SEARCH, hour=1, predicted=0.3, truth=0.1)
    _add(record, surface=Surface.SEARCH, hour=2, predicted=0.1, truth=0.1)
    _add(record, surface=Surface.HOME_FEED, hour=2, predicted=0.05, truth=0.1)
    over = record.calibration_over_time(hours=2.0)
    assert over["search"] == pytest.approx([2.5, 1.0])
    assert over["home_feed"][0] is None and over["home_feed"][1] == pytest.approx(0.5)
    assert set(over) == set(SURFACE_NAMES)
    assert all(len(v) == 2 for v in over.values())
    # Rows past the last period asked for count in it.
    assert record.calibration_over_time(hours=1.0, periods=2)["search"] == pytest.approx(
        [2.0, (3.0 + 1.0) / 2.0]
    )
    # The whole run's calibration is the rows' ratio, whatever the periods.
    assert record.report()["by_surface"]["search"]["calibration"] == pytest.approx(2.0)


def test_bad_rows_and_periods_are_refused() -> None:
    record = PredictionRecord()
    with pytest.raises(ValueError):
        record.add(
            surface=np.zeros(3, dtype=np.int8),
            predicted=np.zeros(3),
            truth=np.zeros(3),
            outcome=np.zeros(3, dtype=bool),
            time=np.zeros(2),
        )
    assert len(record.rows()["predicted"]) == 0
    with pytest.raises(ValueError):
        record.calibration_over_time(hours=0.0)
    with pytest.raises(ValueError):
        record.calibration_over_time(hours=1.0, periods=0)
    assert record.calibration_over_time(hours=1.0) == {name: [] for name in SURFACE_NAMES}
