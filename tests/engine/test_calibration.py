"""The predictor's per-surface calibration (fitted on older rows, checked on the rows since), and
its purchase model's reading of clicks whose orders may still be on their way."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
from numpy.typing import NDArray
from scipy.special import logit

from quanzhan.domain import N_SURFACES, ItemTable, Surface
from quanzhan.engine.config import EngineConfig
from quanzhan.engine.log import EventLog, Impressions
from quanzhan.engine.prediction import FEATURES, N_FEATURES, Predictor

N_CAMPAIGNS = 20
HOUR = 3600.0


def _predictor(config: EngineConfig | None = None) -> Predictor:
    n_items = N_CAMPAIGNS
    items = ItemTable(
        category=(np.arange(n_items) % 4).astype(np.int32),
        merchant=np.arange(n_items, dtype=np.int32),
        price=np.linspace(10.0, 50.0, n_items),
        title_terms=np.zeros((n_items, 1), dtype=np.int32),
        n_categories=4,
        n_terms=1,
    )
    return Predictor(
        config=EngineConfig() if config is None else config,
        items=items,
        campaign_item=np.arange(N_CAMPAIGNS, dtype=np.int32),
        max_slots=3,
        seed=0,
    )


def _impressions(
    rng: np.random.Generator, *, start: float, n: int, rate: NDArray[np.float64], first_id: int
) -> Impressions:
    """``n`` impressions over an hour from ``start``, slot 0, clicked at ``rate[surface]``."""
    surface = rng.integers(0, N_SURFACES, n).astype(np.int8)
    clicked = rng.random(n) < rate[surface]
    click_id = np.where(clicked, first_id + np.arange(n), -1).astype(np.int64)
    time = start + np.sort(rng.random(n)) * HOUR
    return Impressions(
        request_id=first_id + np.arange(n, dtype=np.int64),
        time=time,
        surface=surface,
        slot=np.zeros(n, dtype=np.int64),
        campaign=rng.integers(0, N_CAMPAIGNS, n).astype(np.int32),
        user=rng.integers(0, 100, n).astype(np.int32),
        click_id=click_id,
        click_time=np.where(clicked, time + 1.0, np.nan),
        x_ctr=_served(n),
        x_cvr=_served(n),
        pctr=np.full(n, 0.05),
        pcvr=np.full(n, 0.01),
    )


def _served(n: int) -> NDArray[np.float32]:
    """Features as served: no item lift, the category rate at the old rate, nothing else."""
    x = np.zeros((n, N_FEATURES), dtype=np.float32)
    x[:, 3] = logit(0.10)
    return x


def _predicted_over_clicks(predictor: Predictor, rows: Impressions, surface: Surface) -> float:
    """Sum of the predictor's pCTR over clicks, on ``rows`` of one surface."""
    mine = rows.take(rows.surface == surface)
    pctr, _ = predictor.predict(surface=mine.surface, x_ctr=mine.x_ctr[:, None, :],
                                x_cvr=mine.x_cvr[:, None, :])  # fmt: skip
    return float(pctr.sum() / mine.clicked.sum())


def test_a_drop_after_the_last_refresh_is_calibrated_away() -> None:
    """Clicks halve on search after the first refresh. The model refitted on the older rows
    still says the old rate; the shift measured on the rows since brings search down to the new
    rate and leaves the other surfaces where they were."""
    rng = np.random.default_rng(0)
    before = np.full(N_SURFACES, 0.10)
    after = before.copy()
    after[Surface.SEARCH] = 0.05
    log = EventLog()
    predictor = _predictor()
    log.add_impressions(_impressions(rng, start=0.0, n=60_000, rate=before, first_id=0))
    predictor.refresh(log=log, now=1 * HOUR)
    assert np.all(predictor.ctr_shift == 0.0)  # a first hour has nothing to hold out
    since = _impressions(rng, start=HOUR, n=60_000, rate=after, first_id=10**6)
    uncalibrated = _predictor()
    uncalibrated.click = predictor.click  # the same model, refitted below, with no shift
    log.add_impressions(since)
    predictor.refresh(log=log, now=2 * HOUR)
    assert _predicted_over_clicks(uncalibrated, since, Surface.SEARCH) > 1.6
    assert _predicted_over_clicks(predictor, since, Surface.SEARCH) == pytest.approx(1.0, abs=0.1)
    assert _predicted_over_clicks(predictor, since, Surface.HOME_FEED) == pytest.approx(
        1.0, abs=0.1
    )
    assert predictor.ctr_shift[Surface.SEARCH] < -0.5
    assert abs(predictor.ctr_shift[Surface.HOME_FEED]) < 0.15


def _clicks_and_orders(
    rng: np.random.Generator, *, start: float, n: int, cvr: NDArray[np.float64], first_id: int
) -> tuple[Impressions, NDArray[np.int64], NDArray[np.float64]]:
    """An hour of ``n`` clicked impressions from ``start``, the ids of the clicks that
    ordered, at ``cvr[surface]``, and their orders' times, a minute after the click."""
    rows = _impressions(rng, start=start, n=n, rate=np.ones(N_SURFACES), first_id=first_id)
    ordered = rng.random(n) < cvr[rows.surface]
    return rows, rows.click_id[ordered], rows.click_time[ordered] + 60.0


@pytest.mark.parametrize("seed", [3, 4])
def test_a_quiet_market_keeps_calibrating_its_purchases(seed: int) -> None:
    """A market of 30 orders an hour: no refresh interval holds a hundred. Orders on search
    fall to a fifth after hour 10; by the end of the day the purchase model's shift brings
    search down and leaves the other surfaces near where they were."""
    rng = np.random.default_rng(seed)
    before = np.full(N_SURFACES, 0.05)
    after = before.copy()
    after[Surface.SEARCH] = 0.01
    log = EventLog()
    predictor = _predictor()
    shifts = []
    for hour in range(24):
        cvr = before if hour < 10 else after
        rows, ordered, order_time = _clicks_and_orders(
            rng, start=hour * HOUR, n=600, cvr=cvr, first_id=hour * 10**6
        )
        log.add_impressions(rows)
        log.add_attributed_orders(ordered, order_time)
        if hour % 2 == 0:
            predictor.refresh(log=log, now=(hour + 1) * HOUR)
            shifts.append(predictor.cvr_shift.copy())
    assert len({tuple(s) for s in shifts[-4:]}) == 4  # every late refresh recalibrates
    assert predictor.cvr_shift[Surface.SEARCH] < -0.25
    others = np.delete(predictor.cvr_shift, Surface.SEARCH)
    assert abs(float(np.median(others))) < 0.2
    assert predictor.cvr_shift[Surface.SEARCH] < np.median(others) - 0.25


def test_category_rates_are_of_one_level_from_half_the_rows_or_all() -> None:
    """Models are fitted on category rates read off half the rows (out of fold) and served
    rates read off all of them. Orders come at 5% where the configured prior says 1%: both
    readings sit at 5%, not one nearer the prior than the other."""
    predictor = _predictor()
    n = 2_400  # 600 clicks per category: a few hours of a quiet market
    row = np.arange(n)
    campaign = ((row // 40) % N_CAMPAIGNS).astype(np.int32)
    # Two orders in each block of 40 clicks, one of them on an even row: 5% of all rows and
    # 5% of the even ones.
    ordered = ((row % 40) < 2).astype(np.float64)
    trials = np.ones(n)
    every = predictor._category_rates(campaign, ordered, trials, 0.01)
    half = predictor._category_rates(campaign[::2], ordered[::2], trials[::2], 0.01)
    np.testing.assert_allclose(every, half, atol=0.05)
    assert np.all(np.abs(every - logit(0.05)) < 0.1)


def _served_pcvr(predictor: Predictor, rows: Impressions) -> NDArray[np.float64]:
    """The predictor's pCVR of ``rows`` as it would serve them (its own lifts and rates)."""
    n = len(rows)
    campaign = rows.campaign[:, None]
    _, x_cvr = predictor.features(
        campaign=campaign, retrieval=np.zeros((n, 1), np.float32),
        interest=np.ones((n, 4), np.float32), affinity=np.zeros((n, 4), np.float32),
    )  # fmt: skip
    _, pcvr = predictor.predict(surface=rows.surface, x_ctr=x_cvr, x_cvr=x_cvr)
    return pcvr[:, 0]


@pytest.mark.parametrize("seed", [5, 6])
def test_the_first_hour_of_clicks_is_learned_from_before_its_orders_are_all_in(seed: int) -> None:
    """A platform's first hour: 20,000 clicks that order at 4%, each order 20 minutes after its
    click at the median (log-normal, sigma 1.2), so at the hour's end only about half of its
    orders have come. The purchase model refreshed then predicts 4%: not its 1% prior (as when
    only clicks hours old were learned from), nor the 2% that counting every click without an
    order yet as one without an order would give."""
    rng = np.random.default_rng(seed)
    rows = _impressions(rng, start=0.0, n=20_000, rate=np.ones(N_SURFACES), first_id=0)
    will_order = rng.random(len(rows)) < 0.04
    order_time = rows.click_time + rng.lognormal(np.log(20 * 60.0), 1.2, len(rows))
    placed = will_order & (order_time <= HOUR)
    assert 0.4 < placed.sum() / will_order.sum() < 0.75  # half the orders are still to come
    log = EventLog()
    log.add_impressions(rows)
    log.add_attributed_orders(rows.click_id[placed], order_time[placed])
    predictor = _predictor()
    predictor.refresh(log=log, now=HOUR)
    assert float(_served_pcvr(predictor, rows).mean()) == pytest.approx(0.04, rel=0.15)
    assert predictor.delay.median_seconds == pytest.approx(20 * 60.0, rel=0.35)


def test_orders_of_unknown_time_are_labels_but_not_delays() -> None:
    """Orders logged without a time (an event file of version 1) still label their clicks, and
    tell the delay distribution nothing: it stays at its prior."""
    rng = np.random.default_rng(7)
    rows = _impressions(rng, start=0.0, n=6_000, rate=np.ones(N_SURFACES), first_id=0)
    ordered = rng.random(len(rows)) < 0.05
    log = EventLog()
    log.add_impressions(rows)
    log.add_attributed_orders(rows.click_id[ordered], np.full(int(ordered.sum()), np.nan))
    predictor = _predictor()
    prior_median = predictor.delay.median_seconds
    predictor.refresh(log=log, now=10 * HOUR)  # every order long in
    assert predictor.delay.median_seconds == prior_median
    assert float(_served_pcvr(predictor, rows).mean()) == pytest.approx(0.05, rel=0.15)


def test_the_purchase_model_pools_a_thin_surface_towards_the_others() -> None:
    """Orders follow the shopper's interest alike on every surface; post-purchase holds 1% of
    the clicks. Refreshed with the configured pooling, the purchase model keeps that surface's
    interest weight near the shared one; with the click model's weak penalty it strays further."""
    rng = np.random.default_rng(11)
    n = 40_000
    interest = FEATURES.index("interest")
    rows = _impressions(rng, start=0.0, n=n, rate=np.ones(N_SURFACES), first_id=0)
    share = np.full(N_SURFACES, 0.99 / (N_SURFACES - 1))
    share[Surface.POST_PURCHASE] = 0.01
    x_cvr = rows.x_cvr.copy()
    x_cvr[:, interest] = rng.normal(0.0, 1.0, n)
    rows = replace(rows, surface=rng.choice(N_SURFACES, n, p=share).astype(np.int8), x_cvr=x_cvr)
    ordered = rng.random(n) < 1.0 / (1.0 + np.exp(3.0 - x_cvr[:, interest]))

    def stray(penalty: float) -> float:
        """How far post-purchase's interest weight strays from the shared one."""
        log = EventLog()
        log.add_impressions(rows)
        log.add_attributed_orders(rows.click_id[ordered], rows.click_time[ordered] + 60.0)
        predictor = _predictor(EngineConfig(purchase_deviation_l2=penalty))
        predictor.refresh(log=log, now=10 * HOUR)  # every order long in
        return abs(float(predictor.purchase.deviation[Surface.POST_PURCHASE, interest]))

    pooled = stray(EngineConfig().purchase_deviation_l2)
    unpooled = stray(EngineConfig().l2)
    assert pooled < 0.05
    assert unpooled > 3 * pooled


def test_a_click_scale_scales_every_pctr_served_and_nothing_else() -> None:
    """``click_scale`` (evaluation only: the benchmark's noise floor) multiplies every pCTR
    served, never past 1, and leaves pCVR alone."""
    predictor = _predictor()
    surface = np.arange(N_SURFACES, dtype=np.int8).repeat(3)
    x = np.random.default_rng(5).normal(0.0, 1.0, (len(surface), 2, N_FEATURES))
    x = x.astype(np.float32)
    plain_ctr, plain_cvr = predictor.predict(surface=surface, x_ctr=x, x_cvr=x)
    predictor.click_scale = 1.0 + 1e-9
    nudged_ctr, nudged_cvr = predictor.predict(surface=surface, x_ctr=x, x_cvr=x)
    np.testing.assert_array_equal(nudged_cvr, plain_cvr)
    assert np.all(nudged_ctr > plain_ctr)
    np.testing.assert_allclose(nudged_ctr / plain_ctr, 1.0 + 1e-9, rtol=1e-12)
    predictor.click_scale = 1e9
    capped, _ = predictor.predict(surface=surface, x_ctr=x, x_cvr=x)
    assert capped.max() == 1.0
