"""The promotion calendar: windows the platform announces, and the traffic each expects."""

from __future__ import annotations

import math

import numpy as np
import pytest

from quanzhan.bidding.calendar import Promotion, traffic_factor


@pytest.mark.parametrize(
    ("day", "start", "end", "factor", "problem"),
    [
        (-1, 0.2, 0.4, 3.0, "day"),
        (0, 0.4, 0.4, 3.0, "start before end"),
        (0, 0.5, 0.4, 3.0, "start before end"),
        (0, -0.1, 0.4, 3.0, "within its day"),
        (0, 0.2, 1.1, 3.0, "within its day"),
        (0, 0.2, 0.4, 0.0, "traffic factor"),
        (0, 0.2, 0.4, math.nan, "traffic factor"),
        (0, 0.2, 0.4, math.inf, "traffic factor"),
    ],
)
def test_a_promotion_out_of_its_day_or_without_traffic_is_refused(
    day: int, start: float, end: float, factor: float, problem: str
) -> None:
    with pytest.raises(ValueError, match=problem):
        Promotion(day=day, start=start, end=end, traffic_factor=factor)


def test_the_factor_holds_inside_a_window_of_its_day_only() -> None:
    calendar = (Promotion(1, 0.25, 0.5, 3.0), Promotion(1, 0.4, 0.6, 2.0))
    fraction = np.array([0.0, 0.25, 0.3, 0.45, 0.5, 0.55, 0.6, 0.99, np.nan])
    np.testing.assert_array_equal(
        traffic_factor(calendar, 1, fraction), [1, 3, 3, 6, 2, 2, 1, 1, 1]
    )
    np.testing.assert_array_equal(traffic_factor(calendar, 0, fraction), np.ones(9))
    np.testing.assert_array_equal(traffic_factor((), 1, fraction), np.ones(9))
