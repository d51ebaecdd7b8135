"""The default policy's ROI face steers on what the multiplier buys now, not the day's average."""

from __future__ import annotations

import numpy as np

from quanzhan.bidding.dual import DualPacing
from quanzhan.bidding.policy import CampaignSpec, Observation


def _tick(hour: float, spend: float, gmv: float) -> Observation:
    one = np.ones(1)
    return Observation(
        now=hour * 3600,
        day_fraction=hour / 24,
        planned_share=hour / 24,
        spend=one * spend,
        gmv_realized=one * 0.0,
        gmv_predicted=one * gmv,
        orders_realized=one * 0.0,
        orders_arrived=one * 0.0,
        gmv_organic=one * 0.0,
        clicks=one * 10.0,
    )


def test_a_bad_morning_does_not_drive_the_multiplier_to_nothing() -> None:
    """The morning bought at half the target; then the campaign buys nothing at all. The day's
    average ROI stays at half the target whatever it bids now, so steering on it would cut the
    multiplier tick after tick to its floor; steering on recent ROI holds it."""
    policy = DualPacing()
    policy.reset(
        campaigns=CampaignSpec(
            budget=np.array([1000.0]), target_roi=np.array([2.0]), roi_basis=np.array([0], np.int8)
        ),
        seed=0,
    )
    policy.update(_tick(0.25, spend=10.0, gmv=10.0))
    after_bad_morning = policy.multipliers()[0]
    for tick in range(2, 60):
        policy.update(_tick(tick * 0.25, spend=10.0, gmv=10.0))
    assert policy.multipliers()[0] > 0.3 * after_bad_morning  # the floor is 1e-3


def test_a_campaign_buying_below_target_bids_down() -> None:
    policy = DualPacing()
    policy.reset(
        campaigns=CampaignSpec(
            budget=np.array([1000.0]), target_roi=np.array([2.0]), roi_basis=np.array([0], np.int8)
        ),
        seed=0,
    )
    start = policy.multipliers()[0]
    for tick in range(1, 12):  # every tick buys 10 of spend for 10 of GMV: ROI 1 against 2
        policy.update(_tick(tick * 0.25, spend=10.0 * tick, gmv=10.0 * tick))
    assert policy.multipliers()[0] < start
