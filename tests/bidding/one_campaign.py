"""One campaign's figures at an hour of its day, for the policies' unit tests."""

from __future__ import annotations

import numpy as np

from quanzhan.bidding.policy import Observation
from quanzhan.bidding.value_prior import GammaPrior


def one_tick(
    hour: float,
    *,
    spend: float,
    predicted: float,
    orders: float = 0.0,
    due: float = 0.0,
    clicks: float = 10.0,
    prior: GammaPrior | None = None,
) -> Observation:
    """Today so far at ``hour``: spend, predicted GMV, orders realized and due, no organic GMV,
    no realized GMV, no menus; the plan's share is the day's."""
    one = np.ones(1)
    return Observation(
        now=hour * 3600,
        day_fraction=hour / 24,
        planned_share=hour / 24,
        spend=one * spend,
        gmv_realized=one * 0.0,
        gmv_predicted=one * predicted,
        orders_realized=one * orders,
        orders_arrived=one * due,
        gmv_organic=one * 0.0,
        clicks=one * clicks,
        value_prior=prior,
    )
