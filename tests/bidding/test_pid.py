"""The PID baseline measures ROI on calibrated predictions and keeps its integral bounded."""

from __future__ import annotations

import pickle

import numpy as np
import pytest
from one_campaign import one_tick as _tick

from quanzhan.bidding.pid import PidRoi
from quanzhan.bidding.policy import CampaignSpec, Observation
from quanzhan.domain import RoiBasis

TARGET = 4.0


def _policy(*, target: float = TARGET, budgets: tuple[float, ...] = (100.0,)) -> PidRoi:
    n = len(budgets)
    policy = PidRoi()
    policy.reset(
        campaigns=CampaignSpec(
            budget=np.array(budgets),
            target_roi=np.full(n, target),
            roi_basis=np.full(n, RoiBasis.AD_ONLY, dtype=np.int8),
        ),
        seed=0,
    )
    return policy


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
    """Two days of ROI far under target, then days far over it: the multiplier goes no lower
    than the bounded terms allow, and comes back above break-even within as many ticks as the
    bounded integral holds."""
    policy = _policy()
    lowest = np.inf
    for _ in range(2):
        policy.start_day()
        for hour in range(1, 24):
            policy.update(_tick(hour, spend=5.0 * hour, predicted=0.01 * 5.0 * hour))
            lowest = min(lowest, float(policy.multipliers()[0]))
    # Kp x the error's bound + Ki x the integral's bound (the derivative is 0 in a steady loss).
    floor = np.exp(-(0.3 * 1.0 + 0.05 * 30.0)) / TARGET
    np.testing.assert_allclose(lowest, floor, rtol=1e-9)
    # The bounded integral unwinds in as many ticks of a good ROI as it took to fill (30).
    good_ticks = 0
    while policy.multipliers()[0] <= 1.0 / TARGET and good_ticks < 2 * 23:
        hour = good_ticks % 23 + 1
        if hour == 1:
            policy.start_day()
        policy.update(_tick(hour, spend=5.0 * hour, predicted=10 * TARGET * 5.0 * hour))
        good_ticks += 1
    assert good_ticks <= 30


def test_the_integral_holds_while_the_multiplier_is_pinned() -> None:
    """A target so high that a long loss pins the multiplier at the engine's floor (1e-3): the
    integral stops there, so a turn to a good ROI lifts the multiplier off the floor at once."""
    target = 400.0
    policy = _policy(target=target)
    for hour in range(1, 24):
        policy.update(_tick(hour, spend=5.0 * hour, predicted=0.001 * 5.0 * hour))
    assert policy.multipliers()[0] == pytest.approx(1e-3)
    policy.start_day()
    policy.update(_tick(1, spend=5.0, predicted=10 * target * 5.0))
    assert policy.multipliers()[0] > 1.5e-3


def test_multipliers_stay_within_the_engines_bounds() -> None:
    """A target so low that break-even is near the ceiling: a good ROI cannot take the
    multiplier past 100."""
    policy = _policy(target=0.02)
    for hour in range(1, 10):
        policy.update(_tick(hour, spend=5.0 * hour, predicted=5.0 * hour))
    assert policy.multipliers()[0] == pytest.approx(100.0)


def test_a_campaign_with_no_budget_keeps_a_finite_multiplier() -> None:
    policy = _policy(budgets=(0.0, 100.0))
    two = np.ones(2)
    for spend in (0.0, 1.0):
        policy.update(
            Observation(
                now=3600.0, day_fraction=0.1, planned_share=0.1, spend=two * spend,
                gmv_realized=two * 0.0, gmv_predicted=two * 0.0, orders_realized=two * 0.0,
                orders_arrived=two * 0.0, gmv_organic=two * 0.0, clicks=two * 0.0,
            )
        )  # fmt: skip
        assert np.all(np.isfinite(policy.multipliers()))


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
