"""``TickObserver``: today's figures per campaign, as a policy sees them at each tick."""

from __future__ import annotations

import math

import numpy as np
import pytest

from quanzhan.bidding.observer import TickObserver
from quanzhan.bidding.policy import MenuView, Observation
from quanzhan.bidding.value_prior import NO_ERROR

DAY = 86_400.0
HOUR = 3600.0


def _ints(values: list[int]) -> np.ndarray:
    return np.array(values, dtype=np.int32)


def _floats(values: list[float]) -> np.ndarray:
    return np.array(values, dtype=np.float64)


def _observe(observer: TickObserver, now: float, *, share: float = 0.5) -> Observation:
    return observer.observe(
        now=now, day_seconds=DAY, planned_share=share, spend=np.arange(observer.n, dtype=float)
    )


def test_clicks_and_predicted_gmv_are_counted_per_campaign() -> None:
    observer = TickObserver(n_campaigns=4)
    observer.add_clicks(
        campaign=_ints([0, 2, 2, 0, 1]),
        time=_floats([10.0, 20.0, 30.0, 40.0, 50.0]),
        pcvr=_floats([0.01, 0.02, 0.03, 0.04, 0.05]),
        value=_floats([1.0, 2.0, 3.0, 4.0, 5.0]),
    )
    observer.add_clicks(
        campaign=_ints([2]), time=_floats([60.0]), pcvr=_floats([0.1]), value=_floats([10.0])
    )
    seen = _observe(observer, 100.0)
    np.testing.assert_array_equal(seen.clicks, [2.0, 1.0, 3.0, 0.0])
    np.testing.assert_allclose(seen.gmv_predicted, [5.0, 5.0, 15.0, 0.0])
    assert seen.clicks.shape == seen.gmv_predicted.shape == (4,)


def test_a_tick_with_nothing_observed_is_all_zeros() -> None:
    seen = _observe(TickObserver(n_campaigns=3), 600.0, share=0.01)
    for name in (
        "gmv_realized", "gmv_predicted", "orders_realized", "orders_arrived", "gmv_organic",
        "clicks",
    ):  # fmt: skip
        np.testing.assert_array_equal(getattr(seen, name), np.zeros(3))
    assert seen.menus is None
    assert seen.planned_share == 0.01
    np.testing.assert_array_equal(seen.spend, [0.0, 1.0, 2.0])
    assert seen.now == 600.0
    assert seen.day_fraction == pytest.approx(600.0 / DAY)


def test_orders_arrived_follows_the_delay_distribution() -> None:
    observer = TickObserver(n_campaigns=3)
    now = DAY - 1.0
    median = observer.delay.median_seconds
    observer.add_clicks(
        campaign=_ints([0, 0, 1, 2]),
        time=_floats([now, now, now - median, now - DAY + 1.0]),
        pcvr=_floats([0.3, 0.2, 0.4, 0.05]),
        value=_floats([1.0, 1.0, 1.0, 1.0]),
    )
    seen = _observe(observer, now)
    # Clicks made just now: none of their orders can have come yet.
    assert seen.orders_arrived[0] == 0.0
    # Half of the orders come within the median delay.
    assert seen.orders_arrived[1] == pytest.approx(0.5 * 0.4, rel=1e-9)
    # A day on, practically all of them.
    assert seen.orders_arrived[2] == pytest.approx(0.05, rel=1e-3)
    assert seen.orders_arrived[2] <= 0.05


def test_orders_arrived_grows_with_time_towards_the_predicted_orders() -> None:
    observer = TickObserver(n_campaigns=1)
    pcvr = _floats([0.1, 0.2, 0.3])
    observer.add_clicks(
        campaign=_ints([0, 0, 0]), time=_floats([0.0, 60.0, 120.0]), pcvr=pcvr, value=pcvr
    )
    arrived = [_observe(observer, now).orders_arrived[0] for now in (120.0, 600.0, HOUR, DAY)]
    assert arrived == sorted(arrived)
    assert arrived[0] < arrived[-1]
    assert arrived[-1] == pytest.approx(pcvr.sum(), rel=1e-3)


def test_only_orders_of_todays_clicks_count_today() -> None:
    observer = TickObserver(n_campaigns=2)
    observer.add_clicks(
        campaign=_ints([0]), time=_floats([DAY - 600.0]), pcvr=_floats([0.1]), value=_floats([9.0])
    )
    observer.start_day(at=DAY)
    observer.add_ad_orders(
        campaign=_ints([0, 0, 1, 1, 1]),
        click_time=_floats([DAY - 600.0, DAY + 10.0, DAY - 1.0, DAY, DAY + 50.0]),
        time=_floats([DAY + 100.0, DAY + 200.0, DAY + 300.0, DAY + 400.0, DAY + 500.0]),
        amount=_floats([10.0, 20.0, 40.0, 80.0, 160.0]),
    )
    seen = _observe(observer, DAY + 600.0)
    np.testing.assert_array_equal(seen.orders_realized, [1.0, 2.0])
    np.testing.assert_allclose(seen.gmv_realized, [20.0, 240.0])
    # Yesterday's click is gone from today's figures too.
    np.testing.assert_array_equal(seen.clicks, [0.0, 0.0])
    np.testing.assert_array_equal(seen.gmv_predicted, [0.0, 0.0])
    assert seen.day_fraction == pytest.approx(600.0 / DAY)


def test_orders_accumulate_over_ticks_until_the_day_ends() -> None:
    observer = TickObserver(n_campaigns=1)
    for k in range(3):
        observer.add_ad_orders(
            campaign=_ints([0]),
            click_time=_floats([100.0 * k]),
            time=_floats([100.0 * k + 50.0]),
            amount=_floats([5.0]),
        )
    seen = _observe(observer, 400.0)
    assert seen.orders_realized[0] == 3.0
    assert seen.gmv_realized[0] == 15.0
    observer.start_day(at=DAY)
    cleared = _observe(observer, DAY + 1.0)
    assert cleared.orders_realized[0] == cleared.gmv_realized[0] == 0.0


def test_organic_orders_without_a_campaign_are_ignored() -> None:
    observer = TickObserver(n_campaigns=3)
    observer.add_organic(
        campaign=_ints([-1, 0, 2, -1, 2]), amount=_floats([1000.0, 3.0, 4.0, 500.0, 6.0])
    )
    observer.add_organic(campaign=_ints([-1]), amount=_floats([7.0]))
    seen = _observe(observer, 100.0)
    np.testing.assert_allclose(seen.gmv_organic, [3.0, 0.0, 10.0])
    observer.start_day(at=DAY)
    np.testing.assert_array_equal(_observe(observer, DAY + 1.0).gmv_organic, np.zeros(3))


def test_menus_are_handed_over_once_at_the_next_tick() -> None:
    observer = TickObserver(n_campaigns=2)
    first = MenuView(campaign=np.array([0, 1]), value=np.ones((2, 3)), cost=np.full((2, 3), 0.5))
    second = MenuView(
        campaign=np.array([1]), value=np.full((1, 3), 2.0), cost=np.full((1, 3), math.nan)
    )
    observer.add_menus(first)
    observer.add_menus(second)
    menus = _observe(observer, 100.0).menus
    assert menus is not None
    np.testing.assert_array_equal(menus.campaign, [0, 1, 1])
    np.testing.assert_array_equal(menus.value[:, 0], [1.0, 1.0, 2.0])
    assert menus.cost.shape == (3, 3)
    assert np.isnan(menus.cost[2]).all()
    # A tick without auctions hands over nothing: the earlier menus are not given twice.
    assert _observe(observer, 200.0).menus is None
    observer.add_menus(second)
    later = _observe(observer, 300.0).menus
    assert later is not None
    np.testing.assert_array_equal(later.campaign, [1])
    assert later.day_fraction is None  # menus that do not say when, say so


def test_menus_that_say_when_their_auctions_ran_are_handed_over_with_the_time() -> None:
    observer = TickObserver(n_campaigns=2)
    for fraction in ([0.25, 0.5], [0.75]):
        m = len(fraction)
        observer.add_menus(
            MenuView(
                campaign=np.arange(m),
                value=np.ones((m, 2)),
                cost=np.ones((m, 2)),
                day_fraction=np.array(fraction),
            )
        )
    menus = _observe(observer, 100.0).menus
    assert menus is not None and menus.day_fraction is not None
    np.testing.assert_array_equal(menus.day_fraction, [0.25, 0.5, 0.75])


def test_learning_delays_from_the_orders_seen() -> None:
    """Orders that come two hours after their click teach the observer that orders are slow,
    and the orders it expects by now follow."""
    observer = TickObserver(n_campaigns=1)
    rng = np.random.default_rng(0)
    clicks = rng.uniform(0.0, 12 * HOUR, 3000)
    delay = rng.lognormal(math.log(2 * HOUR), 0.5, 3000)
    now = 16 * HOUR
    arrived = clicks + delay <= now
    observer.add_ad_orders(
        campaign=np.zeros(int(arrived.sum()), dtype=np.int32),
        click_time=clicks[arrived],
        time=(clicks + delay)[arrived],
        amount=np.ones(int(arrived.sum())),
    )
    observer.add_clicks(
        campaign=_ints([0]), time=_floats([now - HOUR]), pcvr=_floats([1.0]), value=_floats([1.0])
    )
    before = _observe(observer, now).orders_arrived[0]
    observer.learn_delays(now=now)
    assert observer.delay.median_seconds == pytest.approx(2 * HOUR, rel=0.1)
    after = _observe(observer, now).orders_arrived[0]
    # An hour-old click: most orders due under the 30-minute prior, few under two hours.
    assert after < 0.5 < before


def _day_of_orders(
    observer: TickObserver, *, clicks: list[int], orders: list[int], day: int = 0
) -> Observation:
    """Campaign ``c`` gets ``clicks[c]`` clicks at pCVR 0.1 early in the day and ``orders[c]``
    orders on them; observed at the day's end, when all their orders are due."""
    start = day * DAY
    campaign = np.repeat(np.arange(observer.n), clicks).astype(np.int32)
    observer.add_clicks(
        campaign=campaign,
        time=np.full(len(campaign), start + 60.0),
        pcvr=np.full(len(campaign), 0.1),
        value=np.ones(len(campaign)),
    )
    bought = np.repeat(np.arange(observer.n), orders).astype(np.int32)
    observer.add_ad_orders(
        campaign=bought,
        click_time=np.full(len(bought), start + 60.0),
        time=np.full(len(bought), start + 120.0),
        amount=np.ones(len(bought)),
    )
    return _observe(observer, start + DAY - 1.0)


def test_the_value_prior_is_fitted_on_the_steered_campaigns_orders_to_date() -> None:
    """Forty steered campaigns bring half the orders they were due on the first day and all of
    them on the second; ten unsteered ones (manual CPC, say) bring twice as many, and must not
    count. Each day counts once: 15 orders of 20 due, each."""
    steered = np.arange(50) < 40
    observer = TickObserver(n_campaigns=50, steered=steered)
    assert _observe(observer, 1.0).value_prior == NO_ERROR  # nothing due yet
    clicks = [100] * 50
    first = _day_of_orders(observer, clicks=clicks, orders=[5] * 40 + [20] * 10).value_prior
    assert first is not None and first.mean == pytest.approx(0.5, rel=0.1)
    observer.start_day(at=DAY)
    second = _day_of_orders(observer, clicks=clicks, orders=[10] * 40 + [20] * 10, day=1)
    assert second.value_prior is not None
    assert second.value_prior.mean == pytest.approx(0.75, rel=0.03)
    # The figures of the day itself stay today's.
    np.testing.assert_allclose(second.orders_realized[:40], 10.0)


def test_a_steered_mask_of_the_wrong_shape_is_refused() -> None:
    with pytest.raises(ValueError, match="steered"):
        TickObserver(n_campaigns=3, steered=np.ones(4, dtype=bool))
    with pytest.raises(ValueError, match="steered"):
        TickObserver(n_campaigns=3, steered=np.array([0, 2, 1]))  # indices, not a mask


def test_a_run_starts_from_what_the_observer_before_it_learned() -> None:
    """A past day whose campaigns brought half the orders they were due, two hours after their
    clicks: the next run's observer starts from that prior and those delays before it sees an
    order of its own, while the campaigns' own figures start from zero."""
    before = TickObserver(n_campaigns=40)
    rng = np.random.default_rng(1)
    clicks = rng.uniform(-DAY, -12 * HOUR, 2000)  # the day before: they count towards no day
    delay = rng.lognormal(math.log(2 * HOUR), 0.5, 2000)
    before.add_ad_orders(
        campaign=np.zeros(2000, dtype=np.int32), click_time=clicks, time=clicks + delay,
        amount=np.ones(2000),
    )  # fmt: skip
    _day_of_orders(before, clicks=[100] * 40, orders=[5] * 40)
    before.learn_delays(now=DAY - 1.0)
    assert before.delay.median_seconds > HOUR  # most orders took two hours
    learned = before.evidence()
    np.testing.assert_allclose(learned.realized[1:], 5.0)
    assert learned.end == DAY - 1.0

    after = TickObserver(n_campaigns=40)
    after.carry_over(learned.shifted(-DAY))
    first = _observe(after, 60.0)
    assert first.value_prior is not None and first.value_prior.mean == pytest.approx(0.5, rel=0.1)
    assert after.delay.median_seconds == pytest.approx(before.delay.median_seconds, rel=1e-3)
    assert after.delay.sigma == pytest.approx(before.delay.sigma, rel=1e-3)
    np.testing.assert_array_equal(first.orders_realized, 0.0)
    # The past's evidence stays behind the prior: a run that brings every order it is due
    # moves the prior halfway from one half to one.
    _day_of_orders(after, clicks=[100] * 40, orders=[10] * 40)
    assert after.value_prior.mean == pytest.approx(0.75, rel=0.03)


def test_past_evidence_of_the_wrong_shape_is_refused_and_changes_nothing() -> None:
    observer = TickObserver(n_campaigns=3)
    wrong = TickObserver(n_campaigns=4).evidence()
    with pytest.raises(ValueError, match="one entry per campaign"):
        observer.carry_over(wrong)
    assert observer.value_prior == NO_ERROR
    assert observer.evidence().click_time.size == 0


def test_a_click_older_than_the_attribution_window_owes_all_its_orders() -> None:
    """Two hours after a click, under the prior's 30-minute median some orders are still to
    come; with a one-hour attribution window none can be."""
    windowed, open_ended = (
        TickObserver(n_campaigns=1, attribution_window=HOUR),
        TickObserver(n_campaigns=1),
    )
    for observer in (windowed, open_ended):
        observer.add_clicks(
            campaign=_ints([0]), time=_floats([0.0]), pcvr=_floats([0.5]), value=_floats([1.0])
        )
    assert _observe(windowed, 2 * HOUR).orders_arrived[0] == 0.5
    assert _observe(open_ended, 2 * HOUR).orders_arrived[0] < 0.5


def test_menus_handed_over_as_a_weighted_sample_keep_their_weights() -> None:
    """Rows that each stand for ten auctions reach the policy standing for ten, and rows
    handed over without a weight beside them for one."""
    observer = TickObserver(n_campaigns=1)
    for weight in (np.array([10.0, 10.0]), None):
        observer.add_menus(
            MenuView(
                np.zeros(2, np.int64),
                np.ones((2, 1)),
                np.full((2, 1), 0.5),
                weight=weight,
                day_fraction=np.array([0.1, 0.1]),
            )
        )
    observation = observer.observe(
        now=3600.0, day_seconds=86_400.0, planned_share=0.04, spend=np.zeros(1)
    )
    assert observation.menus is not None
    np.testing.assert_array_equal(observation.menus.weight, [10.0, 10.0, 1.0, 1.0])
