"""Slot menus against the auction itself: bidding just above a slot's price wins that slot (or a
better one) at no more than the menu's price of the slot won; bidding just below it does not."""

from __future__ import annotations

import numpy as np
from hypothesis import example, given, settings
from hypothesis import strategies as st

from quanzhan.engine.auction import AuctionResult, run_auction
from quanzhan.engine.opportunity import slot_menus


def _auction(bid: np.ndarray, pctr: np.ndarray, n_slots: int, reserve: float) -> AuctionResult:
    n, k = bid.shape
    return run_auction(
        bid=bid,
        pctr=pctr,
        item=np.tile(np.arange(k), (n, 1)),
        valid=np.ones((n, k), bool),
        n_slots=np.full(n, n_slots),
        reserve=np.full(n, reserve),
        relevance_floor=np.zeros(n),
        max_slots=3,
    )


@settings(max_examples=150, deadline=None)
@given(
    seed=st.integers(0, 2**31 - 1),
    k=st.integers(1, 6),
    n_slots=st.integers(1, 3),
    reserve=st.sampled_from([0.0, 0.05, 0.3]),
)
@example(seed=2814819, k=6, n_slots=2, reserve=0.0)  # the top two eCPMs within 1e-6 of a tie
def test_menu_prices_are_the_thresholds_of_each_slot(
    seed: int, k: int, n_slots: int, reserve: float
) -> None:
    rng = np.random.default_rng(seed)
    bid = rng.uniform(0.01, 1.0, (1, k))
    pctr = rng.uniform(0.01, 0.1, (1, k))
    result = _auction(bid, pctr, n_slots, reserve)
    menus = slot_menus(
        request_id=np.zeros(1, np.int64),
        surface=np.zeros(1, np.int8),
        campaign=np.arange(k, dtype=np.int32)[None, :],
        eligible=np.ones((1, k), bool),
        pctr=pctr,
        pcvr=np.full((1, k), 0.01),
        landscape_ecpm=result.landscape_ecpm,
        landscape_col=result.landscape_col,
        winner=result.winner,
        n_slots=np.array([n_slots], np.int16),
        reserve=np.array([reserve]),
    )
    assert len(menus) == k
    for m in range(k):
        c = int(menus.column[m])
        assert menus.won_slot[m] == (
            list(result.winner[0]).index(c) if c in result.winner[0] else -1
        )
        for j in range(3):
            price = menus.price[m, j]
            if j >= n_slots:
                assert np.isnan(price)
                continue
            above = bid.copy()
            above[0, c] = price * (1 + 1e-6) + 1e-12
            won = _auction(above, pctr, n_slots, reserve)
            slots = list(won.winner[0])
            assert c in slots and slots.index(c) <= j
            # It pays no more than the menu's price of the slot it won: slot j's, or, where a
            # better slot's threshold lies within the bump above slot j's (a near-tie), that
            # better slot's.
            taken = slots.index(c)
            assert won.price[0, taken] <= menus.price[m, taken] * (1 + 1e-9) + 1e-12
            below = bid.copy()
            below[0, c] = price * (1 - 1e-6)
            lost = list(_auction(below, pctr, n_slots, reserve).winner[0])
            assert c not in lost[: j + 1]


def _menus_of(result: AuctionResult, pctr: np.ndarray, eligible: np.ndarray, slots: np.ndarray):
    n, k = pctr.shape
    return slot_menus(
        request_id=np.arange(n, dtype=np.int64) + 100,
        surface=np.zeros(n, np.int8),
        campaign=np.arange(n * k, dtype=np.int32).reshape(n, k),
        eligible=eligible,
        pctr=pctr,
        pcvr=np.full((n, k), 0.01),
        landscape_ecpm=result.landscape_ecpm,
        landscape_col=result.landscape_col,
        winner=result.winner,
        n_slots=slots.astype(np.int16),
        reserve=np.full(n, 0.05),
    )


@settings(max_examples=60, deadline=None)
@given(seed=st.integers(0, 2**31 - 1), n=st.integers(1, 8), k=st.integers(1, 7))
def test_a_batch_of_auctions_gives_each_request_the_menus_it_gives_alone(
    seed: int, n: int, k: int
) -> None:
    """Menus are worked out for the whole batch at once; each request's must be those of its
    auction on its own, whichever candidates bid (``valid``) and whichever get a menu."""
    rng = np.random.default_rng(seed)
    bid = rng.uniform(0.01, 1.0, (n, k))
    pctr = rng.uniform(0.01, 0.1, (n, k))
    valid = rng.random((n, k)) < 0.7
    eligible = rng.random((n, k)) < 0.7  # a spent campaign has a menu and no bid
    slots = rng.integers(0, 4, n)
    result = run_auction(
        bid=bid, pctr=pctr, item=np.tile(np.arange(k), (n, 1)), valid=valid,
        n_slots=slots, reserve=np.full(n, 0.05), relevance_floor=np.zeros(n), max_slots=3,
    )  # fmt: skip
    batch = _menus_of(result, pctr, eligible, slots)
    assert len(batch) == int(eligible.sum())
    for r in range(n):
        alone = run_auction(
            bid=bid[r : r + 1], pctr=pctr[r : r + 1], item=np.arange(k)[None, :],
            valid=valid[r : r + 1], n_slots=slots[r : r + 1], reserve=np.full(1, 0.05),
            relevance_floor=np.zeros(1), max_slots=3,
        )  # fmt: skip
        own = _menus_of(alone, pctr[r : r + 1], eligible[r : r + 1], slots[r : r + 1])
        mine = batch.row == r
        np.testing.assert_array_equal(batch.column[mine], own.column)
        np.testing.assert_array_equal(batch.won_slot[mine], own.won_slot)
        np.testing.assert_array_equal(batch.price[mine], own.price)
        np.testing.assert_array_equal(batch.campaign[mine], r * k + own.column)
        # A candidate that does not bid buys at the auction's own thresholds and won nothing.
        idle = mine & ~valid[r][batch.column]
        assert np.all(batch.won_slot[idle] == -1)


def test_pages_without_ad_slots_give_menus_with_no_slot() -> None:
    n, k = 3, 4
    pctr = np.full((n, k), 0.05)
    result = run_auction(
        bid=np.ones((n, k)), pctr=pctr, item=np.tile(np.arange(k), (n, 1)),
        valid=np.ones((n, k), bool), n_slots=np.zeros(n, np.int16), reserve=np.zeros(n),
        relevance_floor=np.zeros(n), max_slots=0,
    )  # fmt: skip
    menus = _menus_of(result, pctr, np.ones((n, k), bool), np.zeros(n, np.int16))
    assert menus.price.shape == (n * k, 0)
    assert np.all(menus.won_slot == -1)
