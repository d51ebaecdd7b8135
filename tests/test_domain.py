from __future__ import annotations

import math

import numpy as np
import pytest

from quanzhan.bidding.forecast import TrafficForecast
from quanzhan.domain import CampaignTable, Surface


def _table(budget: float, target: float) -> CampaignTable:
    return CampaignTable(
        item=np.array([0], np.int32),
        mode=np.array([0], np.int8),
        budget=np.array([budget]),
        target_roi=np.array([target]),
        roi_basis=np.array([0], np.int8),
        manual_cpc=np.array([0.0]),
    )


@pytest.mark.parametrize(
    ("budget", "target"),
    [(math.nan, 2.0), (10.0, math.nan), (0.0, 2.0), (10.0, -1.0), (math.inf, 2.0)],
)
def test_campaign_table_refuses_unusable_money_and_targets(budget: float, target: float) -> None:
    with pytest.raises(ValueError, match="finite and positive"):
        _table(budget, target)


def test_campaign_columns_must_line_up() -> None:
    with pytest.raises(ValueError, match="length"):
        CampaignTable(
            item=np.array([0, 1], np.int32),
            mode=np.array([0], np.int8),
            budget=np.array([1.0, 1.0]),
            target_roi=np.array([1.0, 1.0]),
            roi_basis=np.array([0, 0], np.int8),
            manual_cpc=np.array([0.0, 0.0]),
        )


def test_surface_names_parse_both_ways() -> None:
    for surface in Surface:
        assert Surface.parse(surface.label) is surface
    with pytest.raises(ValueError, match="unknown surface 'shelf'"):
        Surface.parse("shelf")


def test_forecast_refuses_a_day_with_nan() -> None:
    hourly = np.ones(24)
    hourly[3] = math.nan
    with pytest.raises(ValueError, match="finite"):
        TrafficForecast().add_day(hourly)
