"""The PID baseline measures ROI on calibrated predictions and keeps its integral bounded."""

from __future__ import annotations

import pickle

import numpy as np
import pytest

from quanzhan.bidding.pid import PidRoi
from quanzhan.bidding.policy import CampaignSpec, Observation
from quanzhan.domain import RoiBasis

TARGET = 4.0


def _policy(n: int = 1) -> PidRoi:
    policy = PidRoi()
    policy.reset(
        campaigns=CampaignSpec(
            budget=np.full(n, 100.0),
            target_roi=np.full(n, TARGET),
            roi_basis=np.full(n, RoiBasis.AD_ONLY, dtype=np.int8),
        ),
        seed=0,
    )
    return policy


def _tick(
    hour: float, *, spend: float, predicted: float, orders: float = 0.0, due: float = 0.0
) -> Observation:
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
        clicks=one * 10.0 * hour,
    )


def test_orders_still_on_their_way_do_not_read_as_a_loss() -> None:
    """A morning of clicks predicted at the target ROI, whose orders are not due yet, keeps
    the multiplier at break-even, where realized orders alone would have read a ROI of 0."""
    policy = _policy()
    for hour in range(1, 9):
        policy.update(_tick(hour, spend=5.0 * hour, predicted=TARGET * 5.0 * hour))
    np.testing.assert_allclose(policy.multipliers(), 1.0 / TARGET, rtol=1e-9)


def test_orders_short_of_those_due_bring_the_multiplier_down() -> None:
    """Half the orders due arrived, over many: the calibrated ROI is half the target."""
    policy = _policy()
    for hour in range(1, 9):
        policy.update(
            _tick(hour, spend=5.0 * hour, predicted=TARGET * 5.0 * hour, orders=20.0 * hour,
                  due=40.0 * hour)
        )  # fmt: skip
    assert policy.multipliers()[0] < 0.75 / TARGET
    assert 0.0 < policy.calibration()[0] < 0.6


def test_a_good_roi_raises_the_multiplier() -> None:
    policy = _policy()
    for hour in range(1, 9):
        policy.update(_tick(hour, spend=5.0 * hour, predicted=3 * TARGET * 5.0 * hour))
    assert policy.multipliers()[0] > 1.5 / TARGET


def test_a_long_loss_winds_the_integral_down_only_so_far() -> None:
    """A day of ROI far under target, then a day far over it: the multiplier stays within the
    bounded terms of break-even, and the next day brings it back above."""
    policy = _policy()
    lowest = np.inf
    for hour in range(1, 24):
        policy.update(_tick(hour, spend=5.0 * hour, predicted=0.01 * 5.0 * hour))
        lowest = min(lowest, float(policy.multipliers()[0]))
    assert lowest < 0.5 / TARGET
    bound = 0.3 * 1.0 + 0.05 * 30.0 + 0.1 * 1.0  # Kp, Ki x the integral's bound, Kd, at most
    assert lowest >= np.exp(-bound) / TARGET * (1 - 1e-12)
    policy.start_day()
    for hour in range(1, 24):
        policy.update(_tick(hour, spend=5.0 * hour, predicted=10 * TARGET * 5.0 * hour))
    assert policy.multipliers()[0] > 1.0 / TARGET


def test_past_days_orders_count_towards_the_calibration() -> None:
    policy = _policy()
    policy.update(_tick(23, spend=50.0, predicted=200.0, orders=10.0, due=40.0))
    before = policy.calibration()[0]
    policy.start_day()
    assert policy.calibration()[0] == pytest.approx(before)
    policy.update(_tick(1, spend=1.0, predicted=4.0, orders=0.0, due=0.0))
    assert policy.calibration()[0] == pytest.approx(before)


def test_a_controller_pickled_by_the_older_version_carries_on() -> None:
    """The service keeps policies pickled; the older PID summed errors of realized ROI and
    held its base as a multiplier, not its log."""
    older = PidRoi.__new__(PidRoi)
    older.__dict__.update(
        _spec=_policy()._spec,
        _base=np.full(1, 1.0 / TARGET),
        _integral=np.full(1, -20.0),
        _previous=np.full(1, -8.0),
        _k=np.full(1, 0.01),
    )
    policy = pickle.loads(pickle.dumps(older))
    policy.update(_tick(2, spend=10.0, predicted=TARGET * 10.0))
    np.testing.assert_allclose(policy.multipliers(), 1.0 / TARGET, rtol=1e-9)
    assert not hasattr(policy, "_base")
