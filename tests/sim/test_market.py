from __future__ import annotations

import numpy as np
import pytest

from quanzhan.domain import Surface
from quanzhan.sim.config import load_scenario
from quanzhan.sim.market import Market


def _play(seed: int, ticks: int = 6) -> list[tuple[np.ndarray, ...]]:
    market = Market(load_scenario("tiny"))
    view = market.reset(seed=seed)
    trace: list[tuple[np.ndarray, ...]] = []
    for _ in range(ticks):
        batch = market.next_requests()
        assert batch is not None
        slots = int(batch.n_slots.max())
        pick = np.arange(len(batch) * slots).reshape(len(batch), slots) % len(view.campaigns)
        item = view.campaigns.item[pick].astype(np.int32)
        item[np.arange(slots)[None, :] >= batch.n_slots[:, None]] = -1
        feedback = market.serve(campaign=pick.astype(np.int32), item=item)
        orders = market.orders_until(market.clock)
        trace.append((batch.user, batch.surface, batch.time, feedback.clicked, orders.amount))
    return trace


def test_same_seed_same_market_to_the_last_digit() -> None:
    for first, second in zip(_play(5), _play(5), strict=True):
        for a, b in zip(first, second, strict=True):
            np.testing.assert_array_equal(a, b)


def test_another_seed_another_market() -> None:
    first, second = _play(5, ticks=2), _play(6, ticks=2)
    assert not np.array_equal(first[-1][0], second[-1][0])


def test_day_has_the_configured_volume_on_a_diurnal_curve() -> None:
    config = load_scenario("tiny")
    market = Market(config)
    market.reset(seed=3)
    counts = []
    while (batch := market.next_requests()) is not None:
        assert np.all(np.diff(batch.time) >= 0)
        counts.append(len(batch))
        market.serve(
            campaign=np.full((len(batch), 1), -1, np.int32),
            item=np.full((len(batch), 1), -1, np.int32),
        )
    assert sum(counts) == config.traffic.requests_per_day
    per_hour = np.add.reduceat(counts, np.arange(0, len(counts), len(counts) // 24))
    assert per_hour[4] < per_hour[21] / 3  # night trough, evening peak


def test_requests_carry_the_context_of_their_surface() -> None:
    market = Market(load_scenario("tiny"))
    market.reset(seed=2)
    batch = market.next_requests()
    assert batch is not None
    search = batch.surface == Surface.SEARCH
    assert np.all((batch.query_terms[search] >= 0).any(axis=1))
    assert np.all(batch.query_terms[~search] == -1)
    with_item = np.isin(batch.surface, [Surface.DETAIL, Surface.POST_PURCHASE, Surface.CART_FEED])
    assert np.all(batch.context_item[with_item] >= 0)
    assert np.all(batch.context_item[~with_item] == -1)
    home = batch.surface == Surface.HOME_FEED
    assert np.all(batch.user[home] >= 0)


def test_behaviour_defaults_are_near_public_figures() -> None:
    """About 4% CTR at the top slot for the items a shopper looks for, CVR of order 1%."""
    market = Market(load_scenario("tiny"))
    market.reset(seed=4)
    rng = np.random.default_rng(0)
    users = market.users.sample(rng, 20_000)
    items = market.catalog.sample_in_category(
        category=market.users.categories(users, rng), uniform=rng.random(len(users))
    )
    surface = rng.integers(0, 6, len(users)).astype(np.int8)
    ctr = market.behaviour.click_probability(user=users, item=items, surface=surface)
    cvr = market.behaviour.purchase_probability(user=users, item=items, surface=surface)
    assert 0.02 < ctr.mean() < 0.08
    assert 0.004 < cvr.mean() < 0.025


def test_serve_rejects_ads_of_the_wrong_shape() -> None:
    market = Market(load_scenario("tiny"))
    market.reset(seed=1)
    batch = market.next_requests()
    assert batch is not None
    with pytest.raises(ValueError, match="n_requests"):
        market.serve(campaign=np.zeros((1, 1), np.int32), item=np.zeros((1, 1), np.int32))


def test_negative_seed_is_refused() -> None:
    with pytest.raises(ValueError, match="non-negative"):
        Market(load_scenario("tiny")).reset(seed=-1)
