"""The default policy in closed loop on a small stationary market: each tick brings fresh slot
menus drawn from the same distribution, the campaign takes what its multiplier buys under GSP,
and the day is judged against the best uniform multiplier in hindsight."""

from __future__ import annotations

import pickle
from collections.abc import Callable
from dataclasses import dataclass, replace

import numpy as np
import pytest
from numpy.typing import NDArray

from quanzhan.bidding.calendar import Promotion
from quanzhan.bidding.landscape import LandscapePacing, MenuSample, even_sample
from quanzhan.bidding.menu_lp import MenuProblem
from quanzhan.bidding.policy import CampaignSpec, MenuView, Observation
from quanzhan.bidding.response import solve_response, taken_slot
from quanzhan.bidding.value_prior import NO_ERROR, GammaPrior
from quanzhan.domain import RoiBasis
from quanzhan.sim.summary import ROI_MET_TOLERANCE

DAYS, TICKS, ROWS, SLOTS = 3, 24, 80, 3


@dataclass(frozen=True)
class Day:
    """One campaign-day as it went: expected spend and true value bought, when the budget ran
    out (in ticks), and the best a uniform multiplier could have bought on the same menus."""

    spend: float
    value: float
    spent_out_at: int
    best_value: float
    organic: float = 0.0


def _tick_menus(rng: np.random.Generator, campaign: int, rows: int = ROWS) -> MenuView:
    per_click = rng.lognormal(0.0, 0.4, rows)[:, None]
    clicks = np.array([1.0, 0.7, 0.5])[None, :] * rng.uniform(0.5, 1.5, rows)[:, None]
    price = np.sort(rng.uniform(0.05, 0.6, (rows, SLOTS)), axis=1)[:, ::-1] * per_click
    return MenuView(
        campaign=np.full(rows, campaign, dtype=np.int64),
        value=clicks * per_click,
        cost=clicks * price,
    )


def _run(
    spec: CampaignSpec,
    truth: NDArray[np.float64],
    rows: Callable[[int, int], int] = lambda day, tick: ROWS,
    orders_per_value: float = 1.0,
    order_delay_ticks: int = 0,
    recalled: bool = False,
    recalled_prices: float = 1.0,
    calendar: tuple[Promotion, ...] = (),
    prices: Callable[[int, int], float] = lambda day, tick: 1.0,
    organic_per_row: float = 0.0,
) -> list[list[Day]]:
    """Three days; ``truth`` is each campaign's true value over its predicted value, which the
    orders reveal (``orders_realized``, ``orders_per_value`` of them per unit of value, each
    ``order_delay_ticks`` after its click, due as late as it arrives) and the policy must learn;
    ``rows(day, tick)`` is how many auctions each campaign meets in a tick; ``recalled``: the
    policy is handed a day of the platform's past on the same market before the first, its
    prices ``recalled_prices`` times today's (the auctions' order in it says their hours);
    ``calendar``: the promotions the policy is told of; ``prices(day, tick)``: how many times
    the menus' usual prices a tick's auctions cost; ``organic_per_row``: the item's organic
    GMV a tick brings per auction the campaign meets in it (its shoppers come with the
    traffic)."""
    n = len(spec)
    policy = LandscapePacing()
    policy.reset(campaigns=spec, seed=0)
    if recalled:
        before = [np.random.default_rng([6, c]) for c in range(n)]
        past = [_tick_menus(before[c], c) for _ in range(TICKS) for c in range(n)]
        hour = np.repeat(np.arange(TICKS), n * ROWS)
        policy.recall_day(
            MenuView(
                campaign=np.concatenate([m.campaign for m in past]),
                value=np.concatenate([m.value for m in past]),
                cost=np.concatenate([m.cost for m in past]) * recalled_prices,
                day_fraction=(hour + 0.5) / TICKS,
            )
        )
    if calendar:
        policy.expect_promotions(calendar)
    rngs = [np.random.default_rng([5, c]) for c in range(n)]
    days: list[list[Day]] = []
    # Per tick of the run: orders the tick's clicks bring (true) and were predicted to bring.
    true_orders = np.zeros((DAYS * TICKS, n))
    due_orders = np.zeros((DAYS * TICKS, n))
    for day in range(DAYS):
        if day:
            policy.start_day()
        spend, value, predicted = np.zeros(n), np.zeros(n), np.zeros(n)
        organic = np.zeros(n)
        spent_out = np.full(n, TICKS)
        menus_today = []
        for tick in range(TICKS):
            k = policy.multipliers()
            menus = [_tick_menus(rngs[c], c, rows(day, tick)) for c in range(n)]
            menus = [MenuView(m.campaign, m.value, m.cost * prices(day, tick)) for m in menus]
            menus_today += menus
            organic += organic_per_row * np.array([len(m.campaign) for m in menus])
            batch = MenuView(
                campaign=np.concatenate([m.campaign for m in menus]),
                value=np.concatenate([m.value for m in menus]),
                cost=np.concatenate([m.cost for m in menus]),
                day_fraction=np.full(sum(len(m.campaign) for m in menus), (tick + 0.5) / TICKS),
            )
            cost, got = taken_slot(k[batch.campaign], batch.value, batch.cost)
            cost_by = np.bincount(batch.campaign, weights=cost, minlength=n)
            got_by = np.bincount(batch.campaign, weights=got, minlength=n)
            room = np.maximum(spec.budget - spend, 0.0)
            share = np.where(cost_by > 0, np.minimum(1.0, room / np.maximum(cost_by, 1e-300)), 0.0)
            spend += cost_by * share
            predicted += got_by * share
            value += got_by * share * truth
            now = day * TICKS + tick
            true_orders[now] = got_by * share * truth * orders_per_value
            due_orders[now] = got_by * share * orders_per_value
            # Today's orders: those of clicks old enough, since the day began.
            window = slice(
                max(day * TICKS - order_delay_ticks, 0), max(now - order_delay_ticks + 1, 0)
            )
            spent_out = np.where(
                (spent_out == TICKS) & (spend >= spec.budget * 0.999), tick, spent_out
            )
            policy.update(
                Observation(
                    now=day * 86_400.0 + (tick + 1) * 3600.0,
                    day_fraction=(tick + 1) / TICKS,
                    planned_share=(tick + 1) / TICKS,
                    spend=spend.copy(),
                    gmv_realized=value.copy(),
                    gmv_predicted=predicted.copy(),
                    orders_realized=true_orders[window].sum(axis=0),
                    orders_arrived=due_orders[window].sum(axis=0),
                    gmv_organic=organic.copy(),
                    clicks=predicted.copy(),
                    menus=batch,
                )
            )
        best = _best_uniform(menus_today, spec, truth, np.where(spec.full_site, organic, 0.0))
        days.append(
            [
                Day(
                    float(spend[c]),
                    float(value[c]),
                    int(spent_out[c]),
                    float(best[c]),
                    float(organic[c]),
                )
                for c in range(n)
            ]
        )
    return days


def _best_uniform(
    menus: list[MenuView],
    spec: CampaignSpec,
    truth: NDArray[np.float64],
    organic: NDArray[np.float64] | None = None,
) -> NDArray[np.float64]:
    campaign = np.concatenate([m.campaign for m in menus])
    true_value = np.concatenate([m.value for m in menus]) * truth[campaign][:, None]
    best = solve_response(
        MenuProblem(
            group=campaign,
            value=true_value,
            cost=np.concatenate([m.cost for m in menus]),
            budget=spec.budget,
            target_roi=spec.target_roi,
            base_gmv=np.zeros(len(spec)) if organic is None else organic,
        )
    )
    return best.value


def _spec(
    budget: list[float], target: list[float], basis: RoiBasis = RoiBasis.AD_ONLY
) -> CampaignSpec:
    return CampaignSpec(
        budget=np.array(budget),
        target_roi=np.array(target),
        roi_basis=np.full(len(budget), basis, dtype=np.int8),
    )


def test_a_budget_bound_campaign_spends_its_budget_across_the_whole_day() -> None:
    days = _run(_spec([40.0], [1.0]), truth=np.ones(1))
    for day in days[1:]:
        (c,) = day
        assert c.spend >= 0.9 * 40.0
        assert c.spent_out_at >= TICKS - 3  # not burned by the afternoon
        assert c.value >= 0.9 * c.best_value


def test_a_first_day_whose_auctions_multiply_is_read_off_its_latest_hours() -> None:
    """On a platform's first day its models learn and a campaign meets more auctions hour by
    hour (nineteen times as many by the evening). With no yesterday to go by, the rest of the
    day must be read off the latest hours, not off the quiet start, or the budget goes on the
    dear morning auctions. (A target of 7 makes the opening guess, 1 / 7, about right, so
    the day is judged on the reading alone.)"""
    days = _run(
        _spec([40.0], [7.0]),
        truth=np.ones(1),
        rows=lambda day, tick: 10 + 8 * tick if day == 0 else ROWS,
    )
    (first,) = days[0]
    assert first.spent_out_at >= TICKS - 3
    assert first.value >= 0.9 * first.best_value


@pytest.mark.parametrize(("budget", "target"), [(40.0, 1.0), (1e6, 3.0)])
def test_a_day_recalled_from_the_platforms_past_serves_the_first_day_as_a_yesterday(
    budget: float, target: float
) -> None:
    """With the platform's last day handed over, the first day is planned as later days are:
    a budget-bound campaign spreads its budget over the whole day, a ROI-bound one buys near
    the best its target allows, from the first tick."""
    (first,) = _run(_spec([budget], [target]), truth=np.ones(1), recalled=True)[0]
    assert first.value >= 0.9 * first.best_value
    assert first.value >= 0.98 * target * first.spend
    if budget < 1e6:
        assert first.spent_out_at >= TICKS - 3


@pytest.mark.parametrize(
    ("budget", "target", "prices"),
    [(40.0, 1.0, 0.3), (40.0, 1.0, 2.0), (1e6, 3.0, 0.3), (1e6, 3.0, 0.5)],
)
def test_a_recalled_day_whose_prices_were_not_todays_is_moved_to_todays(
    budget: float, target: float, prices: float
) -> None:
    """The platform's last day was steered by another policy, whose campaigns bid otherwise:
    its auctions cost a fraction or a multiple of what today's do at the same bid. Held
    against today's auctions of the same hours, the recalled day is moved to today's prices
    within hours: a budget-bound campaign still spreads its budget over the day, a ROI-bound
    one still meets its target, and both buy near the best."""
    (first,) = _run(
        _spec([budget], [target]), truth=np.ones(1), recalled=True, recalled_prices=prices
    )[0]
    assert first.value >= 0.9 * first.best_value
    assert first.value >= ROI_MET_TOLERANCE * target * first.spend
    if budget < 1e6:
        assert first.spent_out_at >= TICKS - 3


def test_a_recalled_day_that_does_not_fit_the_policys_campaigns_changes_nothing() -> None:
    policy = LandscapePacing()
    policy.reset(campaigns=_spec([40.0], [1.0]), seed=0)
    before = policy.multipliers()
    stray = MenuView(campaign=np.array([0, 3]), value=np.ones((2, 2)), cost=np.ones((2, 2)))
    with pytest.raises(ValueError, match="campaigns"):
        policy.recall_day(stray)
    unweighed = MenuView(
        campaign=np.array([0]), value=np.ones((1, 2)), cost=np.ones((1, 2)), weight=np.ones(2)
    )
    with pytest.raises(ValueError, match="weight"):
        policy.recall_day(unweighed)
    for fraction, problem in (([0.5, 0.5], "one day fraction per row"), ([1.5], "0..1")):
        untimely = MenuView(
            campaign=np.array([0]),
            value=np.ones((1, 2)),
            cost=np.ones((1, 2)),
            day_fraction=np.array(fraction),
        )
        with pytest.raises(ValueError, match=problem):
            policy.recall_day(untimely)
    np.testing.assert_array_equal(policy.multipliers(), before)
    assert policy._yesterday_rows is None


# A promotion day, the second: five times the auctions over ticks 10-13 and 19-22.
_WINDOWS = ((10, 14), (19, 23))
_PROMOTIONS = tuple(Promotion(1, a / TICKS, b / TICKS, 5.0) for a, b in _WINDOWS)


def _promotion_rows(day: int, tick: int) -> int:
    inside = any(a <= tick < b for a, b in _WINDOWS)
    return 5 * ROWS if day == 1 and inside else ROWS


@pytest.mark.parametrize("announced", [True, False])
def test_an_announced_promotion_keeps_budget_for_its_hours(announced: bool) -> None:
    """Planned on yesterday's auctions alone, a budget-bound campaign spends its budget on the
    promotion's morning and meets its evening with little left, though the evening's auctions
    are as good as any; told of it, the campaign spreads its budget over the whole promotion
    day. The day after, planned on the promotion day's auctions, is an ordinary day again
    only where the policy knows which of them the promotion brought."""
    days = _run(
        _spec([40.0], [1.0]),
        truth=np.ones(1),
        rows=_promotion_rows,
        calendar=_PROMOTIONS if announced else (),
    )
    (promotion,), (after,) = days[1], days[2]
    if announced:
        assert promotion.value >= 0.97 * promotion.best_value
        assert promotion.spent_out_at >= 23
        assert after.value >= 0.97 * after.best_value
    else:
        assert promotion.value < 0.9 * promotion.best_value
        assert after.value < 0.95 * after.best_value


def test_a_promotion_whose_auctions_grow_dear_is_planned_at_their_new_prices() -> None:
    """From the promotion's first window on, the same auctions cost half as much again (on a
    real promotion day the models learn its readier buyers within hours, and every bid
    rises). Planned on yesterday's prices, the campaign expects the evening's auctions cheaper
    than they come and holds its bid down: money is left at midnight. Held against
    yesterday's of the same hours, today's auctions move the rest of the day's to their
    prices."""
    days = _run(
        _spec([40.0], [1.0]),
        truth=np.ones(1),
        rows=_promotion_rows,
        calendar=_PROMOTIONS,
        prices=lambda day, tick: 1.5 if day == 1 and tick >= 10 else 1.0,
    )
    (promotion,), (after,) = days[1], days[2]
    assert promotion.value >= 0.95 * promotion.best_value
    assert promotion.spend >= 0.95 * 40.0
    assert after.value >= 0.95 * after.best_value


def test_a_roi_bound_campaign_buys_a_promotion_as_any_day() -> None:
    """More auctions do not move the multiplier at which the target binds."""
    spec = _spec([1e6], [3.0])
    told = _run(spec, truth=np.ones(1), rows=_promotion_rows, calendar=_PROMOTIONS)
    untold = _run(spec, truth=np.ones(1), rows=_promotion_rows)
    for day in (1, 2):
        (a,), (b,) = told[day], untold[day]
        assert a.value >= 0.98 * 3.0 * a.spend
        assert a.value == pytest.approx(b.value, rel=0.01)


def test_a_full_site_campaign_counts_the_organic_sales_a_promotion_brings() -> None:
    """The item's organic sales come with the shoppers: the promotion's windows bring five
    times an ordinary hour's. Told of the promotion, a campaign whose target binds on the
    full-site basis counts the organic sales of the windows still ahead, and buys on the
    promotion day within 3% of what the best multiplier could have, meeting the target (at an
    ordinary day's organic pace through the rest of the day it bought 0.935 of it); the day
    after, it counts the promotion day's organic sales at an ordinary day's pace."""
    days = _run(
        _spec([1e6], [8.0], RoiBasis.FULL_SITE),
        truth=np.ones(1),
        rows=_promotion_rows,
        calendar=_PROMOTIONS,
        organic_per_row=0.8,
    )
    for day in (1, 2):
        (one,) = days[day]
        assert one.value + one.organic >= (1 - ROI_MET_TOLERANCE) * 8.0 * one.spend
        assert one.value >= 0.97 * one.best_value


def test_a_calendar_of_other_days_changes_nothing_today() -> None:
    spec = _spec([40.0, 1e6], [1.0, 3.0])
    plain = _run(spec, truth=np.ones(2))
    elsewhere = _run(spec, truth=np.ones(2), calendar=(Promotion(7, 0.2, 0.4, 3.0),))
    assert plain == elsewhere


def test_a_calendar_that_is_not_promotions_is_refused_and_changes_nothing() -> None:
    policy = LandscapePacing()
    policy.reset(campaigns=_spec([40.0], [1.0]), seed=0)
    with pytest.raises(TypeError, match="Promotion"):
        policy.expect_promotions([(1, 0.2, 0.4, 3.0)])  # type: ignore[list-item]
    assert policy._calendar == ()


def test_a_roi_bound_campaign_meets_its_target_and_buys_near_the_best() -> None:
    days = _run(_spec([1e6], [3.0]), truth=np.ones(1))
    for day in days[1:]:
        (c,) = day
        assert c.value >= 0.98 * 3.0 * c.spend
        assert c.value >= 0.85 * c.best_value
        assert c.spend < 1e5  # the budget is not what holds it


def test_over_predicted_value_is_learned_from_the_orders() -> None:
    """Predictions run at twice the truth: bidding on them would buy at half the target ROI.
    The orders tell, and from the second day the campaign meets its target in truth."""
    days = _run(_spec([1e6, 1e6], [3.0, 3.0]), truth=np.array([0.5, 1.0]))
    for day in days[1:]:
        hot, honest = day
        assert hot.value >= 0.98 * 3.0 * hot.spend
        assert hot.spend < honest.spend  # it bids lower than the campaign told the truth


def test_a_campaign_with_few_late_orders_meets_its_target_over_the_run() -> None:
    """Value runs at half the prediction; orders are few (one per hundred of value) and come
    three quarters of a day after the click, so the campaign has a handful of orders of its
    own to learn that from. Its calibration is held low until they show it (a low quantile of
    its posterior), and the run as a whole meets the target."""
    days = _run(
        _spec([1e6], [3.0]), truth=np.array([0.5]), orders_per_value=0.01, order_delay_ticks=18
    )
    value = sum(c.value for (c,) in days)
    spend = sum(c.spend for (c,) in days)
    assert spend > 0
    assert value >= ROI_MET_TOLERANCE * 3.0 * spend


def test_a_campaign_without_orders_of_its_own_plans_with_the_platforms_prior() -> None:
    """Two campaigns, no orders yet: the platform's prior says campaigns bring half the value
    predicted, so they plan with half the calibration, and bid lower, than under a prior of no
    error."""
    spec = _spec([1e6, 1e6], [3.0, 3.0])
    rng = np.random.default_rng(2)
    menus = [_tick_menus(rng, c) for c in range(2)]
    batch = MenuView(
        campaign=np.concatenate([m.campaign for m in menus]),
        value=np.concatenate([m.value for m in menus]),
        cost=np.concatenate([m.cost for m in menus]),
    )
    seen = {}
    for prior in (NO_ERROR, GammaPrior(alpha=NO_ERROR.alpha, mean=0.5)):
        policy = LandscapePacing()
        policy.reset(campaigns=spec, seed=0)
        policy.update(_quiet(2, now=3600.0, share=0.5, menus=batch, value_prior=prior))
        seen[prior.mean] = (policy.value_calibration(), policy.multipliers())
    np.testing.assert_allclose(seen[0.5][0], 0.5 * seen[1.0][0])
    assert np.all(seen[0.5][1] < seen[1.0][1])


def test_a_campaign_due_hardly_an_order_plans_with_a_wider_margin() -> None:
    """Two campaigns on the same landscape under a prior fitted on many campaigns: the one due
    no order yet plans with a lower value calibration, and bids lower, than the one whose 40
    orders due all came."""
    spec = _spec([1e6, 1e6], [3.0, 3.0])
    rng = np.random.default_rng(2)
    menu = _tick_menus(rng, 0)
    batch = MenuView(
        campaign=np.repeat(np.arange(2), len(menu.campaign)),
        value=np.concatenate([menu.value, menu.value]),
        cost=np.concatenate([menu.cost, menu.cost]),
    )
    policy = LandscapePacing()
    policy.reset(campaigns=spec, seed=0)
    tick = _quiet(2, now=3600.0, share=0.5, menus=batch, value_prior=GammaPrior(60.0, 1.0))
    policy.update(
        replace(
            tick,
            orders_realized=np.array([0.0, 40.0]),
            orders_arrived=np.array([0.0, 40.0]),
        )
    )
    thin, proven = policy.value_calibration()
    assert proven > 0.9 and thin < 0.8
    k_thin, k_proven = policy.multipliers()
    assert k_thin < k_proven


def test_the_sample_keeps_a_few_rows_per_campaign_and_weighs_them_for_all() -> None:
    campaign = np.array([0] * 10 + [1] * 3 + [2])
    keep, weight = even_sample(campaign, 4, 4)
    kept = np.bincount(campaign[keep], minlength=4)
    assert kept.tolist() == [4, 3, 1, 0]  # every third of ten: rows 0, 3, 6, 9
    np.testing.assert_allclose(weight[:3] * kept[:3], [10, 3, 1])
    sample = MenuSample(n_campaigns=4, per_tick=4)
    sample.add(MenuView(campaign=campaign, value=np.ones((14, 2)), cost=np.ones((14, 2))))
    sample.add(MenuView(campaign=np.array([3]), value=np.ones((1, 3)), cost=np.ones((1, 3))))
    rows = sample.rows(scale=2.0)
    assert len(rows.campaign) == 9 and rows.value.shape == (9, 3)
    assert np.isnan(rows.value[:8, 2]).all()  # narrower menus are padded with absent slots
    np.testing.assert_allclose(np.bincount(rows.campaign, weights=rows.weight), [20, 6, 2, 2])
    # Rows that stand for several auctions already keep standing for them.
    weighed = MenuSample(n_campaigns=1, per_tick=2)
    weighed.add(
        MenuView(
            campaign=np.zeros(4, np.int64),
            value=np.ones((4, 1)),
            cost=np.ones((4, 1)),
            weight=np.full(4, 5.0),
        )
    )
    assert weighed.view().weight is not None and weighed.view().weight.sum() == 20.0


def test_a_campaign_whose_every_click_loses_roi_stops_buying() -> None:
    """Value runs at a twentieth of the prediction: no slot meets the target, and once the
    orders say so the campaign bids under its cheapest step instead of holding its bid."""
    (first,), _, (last,) = _run(_spec([1e6], [3.0]), truth=np.array([0.05]))
    assert first.spend > 0
    assert last.spend <= 0.05 * first.spend


def test_another_campaigns_missing_menus_change_nothing() -> None:
    """Campaign 1 meets no auction on the first day. Whether campaign 0 met any that day must
    not change how campaign 1 reads its second day."""
    spec = _spec([40.0, 40.0], [1.0, 1.0])
    seen = []
    for quiet in (True, False):
        policy = LandscapePacing()
        policy.reset(campaigns=spec, seed=0)
        rng = [np.random.default_rng([9, c]) for c in range(2)]
        path = []
        for day in range(2):
            if day:
                policy.start_day()
            for tick in range(TICKS):
                first, second = _tick_menus(rng[0], 0), _tick_menus(rng[1], 1)
                menus = [] if day == 0 else [second]  # drawn either way: streams stay aligned
                if day == 1 or not quiet:
                    menus.append(first)
                batch = (
                    MenuView(
                        campaign=np.concatenate([m.campaign for m in menus]),
                        value=np.concatenate([m.value for m in menus]),
                        cost=np.concatenate([m.cost for m in menus]),
                    )
                    if menus
                    else None
                )
                share = (tick + 1) / TICKS
                policy.update(
                    Observation(
                        now=day * 86_400.0 + (tick + 1) * 3600.0,
                        day_fraction=share,
                        planned_share=share,
                        spend=np.full(2, 30.0 * share),
                        gmv_realized=np.full(2, 40.0 * share),
                        gmv_predicted=np.full(2, 40.0 * share),
                        orders_realized=np.full(2, 4.0 * share),
                        orders_arrived=np.full(2, 4.0 * share),
                        gmv_organic=np.zeros(2),
                        clicks=np.full(2, 10.0 * share),
                        menus=batch,
                    )
                )
                path.append(policy.multipliers()[1])
        seen.append(np.array(path))
    np.testing.assert_array_equal(seen[0], seen[1])


def _ticks_on(menus: Callable[[int], MenuView], spec: CampaignSpec, ticks: int) -> LandscapePacing:
    """A first day of ``ticks`` ticks on ``menus(tick)``, buying nothing; the policy after it."""
    policy = LandscapePacing()
    policy.reset(campaigns=spec, seed=0)
    for tick in range(ticks):
        share = (tick + 1) / TICKS
        policy.update(_quiet(len(spec), now=(tick + 1) * 3600.0, share=share, menus=menus(tick)))
    return policy


def _quiet(
    n: int, *, now: float, share: float, menus: MenuView, value_prior: GammaPrior | None = None
) -> Observation:
    """A tick of ``n`` campaigns that bought nothing: only ``menus`` to go by."""
    zeros = np.zeros(n)
    return Observation(
        now=now,
        day_fraction=share,
        planned_share=share,
        spend=zeros,
        gmv_realized=zeros,
        gmv_predicted=zeros,
        orders_realized=zeros,
        orders_arrived=zeros,
        gmv_organic=zeros,
        clicks=zeros,
        menus=menus,
        value_prior=value_prior,
    )


def test_a_campaign_no_slot_pays_for_bids_no_higher_than_break_even() -> None:
    """Every slot the sample holds costs ten times what one click earns at the target. The
    campaign must stay out, and not by bidding just under those dear steps: the auctions the
    sample missed would be bought at any price under such a bid."""
    spec = _spec([1e6], [3.0])
    rng = np.random.default_rng(4)

    def dear(tick: int) -> MenuView:
        menus = _tick_menus(rng, 0)
        return MenuView(campaign=menus.campaign, value=menus.value, cost=menus.value * 10.0 / 3.0)

    policy = _ticks_on(dear, spec, 12)
    break_even = policy.value_calibration() / 3.0
    assert np.all(policy.multipliers() <= break_even * (1 + 1e-9))


def test_a_sampled_row_counts_for_the_auctions_it_stands_for() -> None:
    """Menus handed over as a weighted sample (the service's) account as the same auctions
    handed over one by one (the simulator's): a row of weight 3 is three auctions bought, so
    the money charged for them stands against three times its expected cost."""
    spec = _spec([300.0, 1e6], [1.0, 3.0])
    rngs = [np.random.default_rng([9, c]) for c in range(2)]
    ticks = [[_tick_menus(rngs[c], c, rows=4) for c in range(2)] for _ in range(TICKS)]
    for sampled in (True, False):
        policy = LandscapePacing()
        policy.reset(campaigns=spec, seed=0)
        spend = np.zeros(2)
        for tick, menus in enumerate(ticks):
            rows = MenuView(
                campaign=np.concatenate([m.campaign for m in menus]),
                value=np.concatenate([m.value for m in menus]),
                cost=np.concatenate([m.cost for m in menus]),
                day_fraction=np.full(8, (tick + 0.5) / TICKS),
            )
            # Each row is three auctions, charged as expected at the multipliers used.
            cost, _ = taken_slot(policy.multipliers()[rows.campaign], rows.value, rows.cost)
            spend += 3.0 * np.bincount(rows.campaign, weights=cost, minlength=2)
            assert np.all(spend < spec.budget)
            three = np.tile(np.arange(8), 3)
            seen = (
                MenuView(rows.campaign, rows.value, rows.cost, np.full(8, 3.0), rows.day_fraction)
                if sampled
                else MenuView(
                    rows.campaign[three], rows.value[three], rows.cost[three], None,
                    np.full(24, (tick + 0.5) / TICKS),
                )
            )  # fmt: skip
            policy.update(
                Observation(
                    now=(tick + 1) * 3600.0, day_fraction=(tick + 1) / TICKS,
                    planned_share=(tick + 1) / TICKS, spend=spend.copy(),
                    gmv_realized=np.zeros(2), gmv_predicted=np.zeros(2),
                    orders_realized=np.zeros(2), orders_arrived=np.zeros(2),
                    gmv_organic=np.zeros(2), clicks=np.zeros(2), menus=seen,
                )
            )  # fmt: skip
            # Charged just what the auctions were expected to cost: nothing to correct.
            np.testing.assert_allclose(policy.spend_calibration(), 1.0, rtol=1e-9)


def test_a_slot_that_costs_nothing_is_bought_within_the_budget() -> None:
    """The lowest slot of every auction costs nothing (a reserve of 0) and the budget cannot
    afford the next slot up: the policy holds the free slot, bidding under the next step, as it
    does when that slot costs a millionth, instead of reading 'nothing affordable' and bidding
    as if there were no budget."""
    spec = _spec([200.0], [1.0])
    rows = 40
    value = np.tile([[3.0, 2.0, 1.0]], (rows, 1))
    finals = []
    for bottom in (1e-6, 0.0):
        cost = np.tile([[2.0, 1.0, bottom]], (rows, 1))  # the next steps: k = 0.5 and 0.667
        menus = MenuView(np.zeros(rows, np.int64), value, cost)
        policy = LandscapePacing()
        policy.reset(campaigns=spec, seed=0)
        spend = 0.0
        for tick in range(TICKS):
            paid, _ = taken_slot(policy.multipliers()[menus.campaign], value, cost)
            spend = min(spend + float(paid.sum()), 200.0)  # the ledger stops at the budget
            share = (tick + 1) / TICKS
            policy.update(
                replace(
                    _quiet(1, now=(tick + 1) * 3600.0, share=share, menus=menus),
                    spend=np.array([spend]),
                )
            )
        assert policy.multipliers()[0] < 0.5
        finals.append(spend)
    assert finals[1] == pytest.approx(finals[0], rel=1e-3)
    assert finals[1] < 200.0


def _afternoon(
    policy: LandscapePacing, budget: float, *, spent_before: float
) -> tuple[float, float]:
    """A policy reset at noon of a steady day (like auctions every quarter hour, each with its
    hour) steers a campaign that had spent ``spent_before`` that morning; its spend in the
    first two hours, and by midnight."""
    spec = _spec([budget], [1.0])
    policy.reset(campaigns=spec, seed=0)
    spend, early = spent_before, 0.0
    for tick in range(48, 96):
        menu = _tick_menus(np.random.default_rng(tick), 0, rows=20)
        menu = replace(menu, day_fraction=np.linspace(tick, tick + 1, 20, endpoint=False) / 96)
        paid, _ = taken_slot(policy.multipliers()[menu.campaign], menu.value, menu.cost)
        spend = min(spend + float(paid.sum()), budget)
        if tick == 55:
            early = spend - spent_before
        share = (tick + 1) / 96
        policy.update(
            replace(
                _quiet(1, now=share * 86_400.0, share=share, menus=menu), spend=np.array([spend])
            )
        )
    return early, spend


def test_a_policy_started_at_noon_paces_the_afternoon() -> None:
    """A campaign created (or changed) at noon: its first quarter hour's auctions are not the
    whole morning's, so it does not take the rest of the day for a few quarter hours and spend
    its budget's afternoon in the first two hours."""
    early, spend = _afternoon(LandscapePacing(), 150.0, spent_before=0.0)
    assert spend >= 0.95 * 150.0
    assert early <= 0.3 * 150.0


def test_a_policy_started_at_noon_does_not_take_the_mornings_spend_for_its_own() -> None:
    """A campaign restarted at noon after spending 40 that morning: what was charged before the
    restart does not enter its spend calibration, which stays at 1 where every click is charged
    what was expected."""
    policy = LandscapePacing()
    _afternoon(policy, 150.0, spent_before=40.0)
    assert policy.spend_calibration()[0] == pytest.approx(1.0, abs=0.02)


def _twins() -> tuple[CampaignSpec, Observation]:
    """Two campaigns on one landscape, a fiftieth of the day in, each having spent what its
    auctions cost at the opening multiplier, under a prior fitted on many campaigns."""
    menu = _tick_menus(np.random.default_rng(5), 0)
    batch = MenuView(
        campaign=np.repeat(np.arange(2), len(menu.campaign)),
        value=np.concatenate([menu.value, menu.value]),
        cost=np.concatenate([menu.cost, menu.cost]),
    )
    cost, _ = taken_slot(np.ones(len(batch.campaign)), batch.value, batch.cost)
    spent = np.bincount(batch.campaign, weights=cost)
    tick = _quiet(2, now=1800.0, share=0.02, menus=batch, value_prior=GammaPrior(60.0, 1.0))
    return _spec(list(20.0 * spent), [1.0, 1.0]), replace(tick, spend=spent)


def test_a_figure_gone_astray_does_not_freeze_a_campaign() -> None:
    """One nan among a day's orders and organic sales adds nothing to the campaign's past: the
    next day it calibrates and bids as it would had those figures been none."""
    spec, tick = _twins()
    spec = replace(spec, roi_basis=np.full(2, RoiBasis.FULL_SITE, dtype=np.int8))
    seen = []
    for astray in (np.nan, 0.0):
        figures = np.array([astray, 0.0])
        policy = LandscapePacing()
        policy.reset(campaigns=spec, seed=0)
        policy.update(
            replace(tick, orders_arrived=figures, orders_realized=figures, gmv_organic=figures)
        )
        policy.start_day()
        policy.update(replace(tick, spend=0.5 * tick.spend))
        seen.append((policy.value_calibration(), policy.multipliers()))
    assert np.all(np.isfinite(seen[0][0])) and np.all(np.isfinite(seen[0][1]))
    np.testing.assert_array_equal(seen[0][0], seen[1][0])
    np.testing.assert_array_equal(seen[0][1], seen[1][1])


def test_a_policy_pickled_before_its_newer_fields_resumes() -> None:
    """The service keeps each campaign's policy pickled across upgrades: a state without the
    fields added since (the day's count, the calendar, the comparison with a recalled day, the
    first update's bookkeeping) loads, and steers as the policy it was saved from."""
    spec, tick = _twins()
    policy = LandscapePacing()
    policy.reset(campaigns=spec, seed=0)
    policy.update(tick)
    state = dict(pickle.loads(pickle.dumps(policy)).__dict__)  # its own arrays
    for newer in ("_day", "_calendar", "_met_value", "_told_cost", "_observed", "_joined"):
        del state[newer]
    old = LandscapePacing.__new__(LandscapePacing)
    old.__setstate__(state)
    later = replace(tick, now=3600.0, day_fraction=0.04, planned_share=0.04)
    for each in (policy, old):
        each.update(later)
    np.testing.assert_array_equal(old.multipliers(), policy.multipliers())
    assert old.day == 0
