"""The default policy's ROI face steers on what the multiplier buys now, not the day's average."""

from __future__ import annotations

import pickle

import numpy as np
from one_campaign import one_tick as _tick

from quanzhan.bidding.dual import DualPacing
from quanzhan.bidding.policy import CampaignSpec
from quanzhan.bidding.value_prior import GammaPrior


def _policy() -> DualPacing:
    policy = DualPacing()
    policy.reset(
        campaigns=CampaignSpec(
            budget=np.array([1000.0]), target_roi=np.array([2.0]), roi_basis=np.array([0], np.int8)
        ),
        seed=0,
    )
    return policy


def test_a_bad_morning_does_not_drive_the_multiplier_to_nothing() -> None:
    """The morning bought at half the target; then the campaign buys nothing at all. The day's
    average ROI stays at half the target whatever it bids now, so steering on it would cut the
    multiplier tick after tick to its floor; steering on recent ROI holds it. (Predicted GMV
    is given so that, once calibrated, it is what the ROI says.)"""
    policy = _policy()
    gmv = 10.0 / policy.calibration()[0]
    policy.update(_tick(0.25, spend=10.0, predicted=gmv))
    after_bad_morning = policy.multipliers()[0]
    for tick in range(2, 60):
        policy.update(_tick(tick * 0.25, spend=10.0, predicted=gmv))
    assert policy.multipliers()[0] > 0.3 * after_bad_morning  # the floor is 1e-3


def test_a_campaign_buying_below_target_bids_down() -> None:
    policy = _policy()
    start = policy.multipliers()[0]
    for tick in range(1, 12):  # every tick buys 10 of spend for 10 of GMV: ROI 1 against 2
        policy.update(_tick(tick * 0.25, spend=10.0 * tick, predicted=10.0 * tick))
    assert policy.multipliers()[0] < start


def test_a_campaign_that_wins_nothing_bids_no_higher_than_break_even() -> None:
    """Ten clicks at target in the first quarter hour, then none all day, far behind plan: for
    want of evidence the ROI face may rise, but not past break-even (1 / target), where it
    started; past it every auction won would lose ROI, and nothing says the dearer bid pays."""
    policy = _policy()
    gmv = 2.0 / policy.calibration()[0]
    for tick in range(1, 80):
        policy.update(_tick(tick * 0.25, spend=1.0, predicted=gmv))
    assert policy.multipliers()[0] <= 1.0 / 2.0 * (1 + 1e-9)


def test_the_value_calibration_leans_on_the_observed_prior() -> None:
    """Four orders due and none come: alone, that is a campaign over-predicted badly; against a
    prior that says campaigns differ little, it is mostly chance. The policy reads the prior off
    its observations and bids accordingly."""
    crowd = GammaPrior(alpha=50.0, mean=1.0)
    alone, pooled = _policy(), _policy()
    for tick in range(1, 25):
        hour = tick * 0.25
        # Predicted ROI 3 against a target of 2; none of the four orders due came.
        alone.update(_tick(hour, spend=10.0 * tick, predicted=30.0 * tick, due=4.0 * tick / 24))
        pooled.update(
            _tick(hour, spend=10.0 * tick, predicted=30.0 * tick, due=4.0 * tick / 24, prior=crowd)
        )
    assert pooled.calibration()[0] > 0.85  # 0.92: the median of Gamma(50, 54)
    assert alone.calibration()[0] < 0.5  # 0.46: the median of Gamma(4, 8)
    assert pooled.multipliers()[0] > 1.2 * alone.multipliers()[0]


def test_the_latest_prior_stays_when_an_observation_brings_none() -> None:
    crowd = GammaPrior(alpha=50.0, mean=0.6)
    policy = _policy()
    policy.update(_tick(0.25, spend=1.0, predicted=3.0, prior=crowd))
    with_prior = policy.calibration()[0]
    policy.update(_tick(0.5, spend=1.0, predicted=3.0))
    assert policy.calibration()[0] == with_prior
    assert 0.55 < with_prior < 0.6  # the median of Gamma(50, 83.3) after nothing due


def test_a_policy_pickled_before_the_prior_existed_still_steers() -> None:
    """The service keeps each campaign's policy pickled in its database across upgrades."""
    policy = _policy()
    policy.update(_tick(0.25, spend=1.0, predicted=3.0))
    # As pickled by the version before the prior, which kept today's calibrated GMV instead.
    for name in ("_value_prior", "_last_predicted", "_last_organic"):
        del policy.__dict__[name]
    policy.__dict__["_last_gmv"] = np.ones(1)
    restored = pickle.loads(pickle.dumps(policy))
    restored.update(_tick(0.5, spend=2.0, predicted=6.0))
    assert np.isfinite(restored.multipliers()).all()
    assert restored.calibration()[0] == _policy().calibration()[0]


def test_a_moved_calibration_does_not_revalue_what_was_bought_before() -> None:
    """A day of clicks bought at ROI above target, then the refitted prior lowers every
    campaign's calibration by a seventh, still above target. The clicks bought before keep
    the value they were counted at: the multiplier does not read a sudden loss and fall."""
    first = GammaPrior(alpha=200.0, mean=1.0)
    lower = GammaPrior(alpha=200.0, mean=0.86)
    policy = _policy()
    for tick in range(1, 73):  # 18 hours, each tick 10 of spend for 25 of predicted GMV
        policy.update(_tick(tick * 0.25, spend=10.0 * tick, predicted=25.0 * tick, prior=first))
    before = policy.multipliers()[0]
    calibration = policy.calibration()[0]
    for tick in range(73, 77):
        policy.update(_tick(tick * 0.25, spend=10.0 * tick, predicted=25.0 * tick, prior=lower))
    assert policy.calibration()[0] < 0.9 * calibration
    assert 25.0 * policy.calibration()[0] / 10.0 > 2.0  # still above the target
    assert policy.multipliers()[0] >= before


def test_a_policy_started_at_noon_is_not_behind_on_the_morning() -> None:
    """A campaign created at noon (the service starts a controller then) has spent nothing: the
    morning's half of the budget is no plan it fell behind, so it does not bid up to catch it.
    Each quarter hour it spends 20 times its multiplier, at a good ROI: its budget's afternoon
    pace at a multiplier of about 1, two hours of it about 167."""
    policy = _policy()
    spend = 0.0
    for tick in range(48, 56):
        spend += 20.0 * float(policy.multipliers()[0])
        policy.update(_tick((tick + 1) / 4, spend=spend, predicted=10.0 * spend))
    assert spend <= 1.1 * 1000.0 * 8 / 48


def test_a_policy_pickled_before_it_knew_a_days_start_steers_from_midnight() -> None:
    """A state stored by a version without the day's start plans from midnight, as it did."""
    policy = _policy()
    policy.update(_tick(0.25, spend=1.0, predicted=3.0))
    for name in ("_observed", "_plan_from"):
        del policy.__dict__[name]
    restored = pickle.loads(pickle.dumps(policy))
    restored.update(_tick(12.0, spend=2.0, predicted=6.0))
    twin = _policy()
    twin.update(_tick(0.25, spend=1.0, predicted=3.0))
    twin.update(_tick(12.0, spend=2.0, predicted=6.0))
    assert restored.multipliers()[0] == twin.multipliers()[0]
