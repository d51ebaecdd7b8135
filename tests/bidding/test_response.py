"""The GSP bid response against brute force: what a multiplier buys, slot by slot, and the
largest multiplier within budget and ROI."""

from __future__ import annotations

import numpy as np
import pytest
from gsp_menus import gsp_menus
from hypothesis import given, settings
from hypothesis import strategies as st
from numpy.typing import NDArray

from quanzhan.bidding.menu_lp import MenuProblem, solve_menus
from quanzhan.bidding.response import response_steps, solve_response, taken_slot


def _bought(k: float, value: NDArray[np.float64], cost: NDArray[np.float64]) -> tuple[float, float]:
    """Spend and value at multiplier ``k``, straight from the GSP rule, one row at a time."""
    spend = bought = 0.0
    for v_row, c_row in zip(value, cost, strict=True):
        for v, c in zip(v_row, c_row, strict=True):  # top slot first
            if np.isfinite(v) and np.isfinite(c) and v > 0 and k * v >= c:
                spend, bought = spend + c, bought + v
                break
    return spend, bought


def test_a_row_takes_its_top_most_affordable_slot() -> None:
    value = np.array([[3.0, 2.0, 1.0], [3.0, np.nan, 1.0], [3.0, 2.0, 1.0]])
    cost = np.array([[3.0, 1.0, 0.2], [3.0, np.nan, 0.2], [0.1, 1.0, 0.2]])
    spent, got = taken_slot(np.array([0.6, 0.6, 0.6]), value, cost)
    # 1.0 / 2.0 <= 0.6 wins slot 1; slot 1 absent leaves slot 2; a cheap top slot wins it.
    np.testing.assert_array_equal(spent, [1.0, 0.2, 0.1])
    np.testing.assert_array_equal(got, [2.0, 1.0, 3.0])
    nothing, _ = taken_slot(np.array([0.1, 0.1, 0.01]), value, cost)
    np.testing.assert_array_equal(nothing, [0.0, 0.0, 0.0])


@settings(max_examples=60, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), slots=st.integers(1, 4))
def test_the_steps_of_a_row_add_up_to_what_each_multiplier_buys(seed: int, slots: int) -> None:
    rng = np.random.default_rng(seed)
    value, cost = gsp_menus(rng, 12, slots)
    steps = response_steps(value, cost)
    # Just past each step (at the step itself rounding decides) and a few anywhere.
    for k in np.concatenate([steps.at * (1 + 1e-9), rng.uniform(0.0, 3.0, 5)]):
        below = steps.at <= k
        spend, bought = _bought(float(k), value, cost)
        assert steps.d_cost[below].sum() == pytest.approx(spend, rel=1e-9, abs=1e-12)
        assert steps.d_value[below].sum() == pytest.approx(bought, rel=1e-9, abs=1e-12)


@settings(max_examples=80, deadline=None)
@given(
    seed=st.integers(0, 2**32 - 1),
    slots=st.integers(1, 3),
    budget_share=st.floats(0.05, 1.5),
    target=st.floats(0.2, 3.0),
    base=st.floats(-2.0, 4.0),
)
def test_the_largest_affordable_multiplier_matches_brute_force(
    seed: int, slots: int, budget_share: float, target: float, base: float
) -> None:
    rng = np.random.default_rng(seed)
    value, cost = gsp_menus(rng, 10, slots)
    group = rng.integers(0, 2, len(value))
    total = np.array([np.nansum(cost[group == c].max(axis=1, initial=0.0)) for c in (0, 1)])
    budget = np.maximum(total * budget_share, 1e-3)
    found = solve_response(
        MenuProblem(
            group=group,
            value=value,
            cost=cost,
            budget=budget,
            target_roi=np.full(2, target),
            base_gmv=np.full(2, base),
        )
    )
    for c in (0, 1):
        mine = group == c
        thresholds = np.sort(response_steps(value[mine], cost[mine]).at)
        feasible = []
        for k in thresholds:
            spend, bought = _bought(float(k) * (1 + 1e-9), value[mine], cost[mine])
            if spend <= budget[c] * (1 + 1e-12) and bought + base - target * spend >= -1e-9:
                feasible.append((float(k), spend, bought))
        if not feasible:
            assert found.low[c] == 0.0 and found.value[c] == 0.0
            if len(thresholds):
                assert found.high[c] == pytest.approx(thresholds[0])
            continue
        k, spend, bought = feasible[-1]
        assert found.low[c] == pytest.approx(k)
        assert found.spend[c] == pytest.approx(spend, rel=1e-9, abs=1e-12)
        assert found.value[c] == pytest.approx(bought, rel=1e-9, abs=1e-12)
        later = thresholds[thresholds > k]
        assert found.high[c] == (pytest.approx(later[0]) if len(later) else np.inf)


def test_steps_at_the_same_multiplier_are_bought_together() -> None:
    """Two auctions with one threshold: no multiplier buys one without the other, so a budget
    that covers one only affords neither."""
    value, cost = np.full((2, 1), 2.0), np.full((2, 1), 1.0)
    kwargs = {"group": np.zeros(2, dtype=np.int64), "value": value, "cost": cost}
    one = solve_response(
        MenuProblem(
            **kwargs, budget=np.array([1.5]), target_roi=np.array([1.0]), base_gmv=np.zeros(1)
        )
    )
    assert one.low[0] == 0.0 and one.spend[0] == 0.0 and one.high[0] == 0.5
    both = solve_response(
        MenuProblem(
            **kwargs, budget=np.array([2.0]), target_roi=np.array([1.0]), base_gmv=np.zeros(1)
        )
    )
    assert both.low[0] == 0.5 and both.spend[0] == 2.0 and both.high[0] == np.inf


def test_the_lp_hull_is_an_upper_bound_on_what_a_bid_buys() -> None:
    """The LP may stop below a dear step up; a GSP bid cannot, so it never buys more."""
    rng = np.random.default_rng(3)
    value, cost = gsp_menus(rng, 400, 3)
    group = np.zeros(len(value), dtype=np.int64)
    kwargs = {
        "group": group,
        "value": value,
        "cost": cost,
        "budget": np.array([20.0]),
        "target_roi": np.array([1.2]),
        "base_gmv": np.array([0.0]),
    }
    bid = solve_response(MenuProblem(**kwargs))
    hull = solve_menus(MenuProblem(**kwargs))
    assert bid.value[0] > 0
    assert bid.value[0] <= hull.value[0] * (1 + 1e-9)


def test_bad_shapes_are_refused() -> None:
    value = np.ones((2, 2))
    with pytest.raises(ValueError, match="one entry per campaign"):
        solve_response(
            MenuProblem(
                group=np.zeros(2, dtype=np.int64),
                value=value,
                cost=value,
                budget=np.ones(2),
                target_roi=np.ones(1),
                base_gmv=np.ones(2),
            )
        )
    with pytest.raises(ValueError, match=r"campaign in 0\.\.n-1"):
        solve_response(
            MenuProblem(
                group=np.array([0, 2]),
                value=value,
                cost=value,
                budget=np.ones(2),
                target_roi=np.ones(2),
                base_gmv=np.ones(2),
            )
        )


def _bought_at(
    k: float, threshold: NDArray[np.float64], value: NDArray[np.float64], cost: NDArray[np.float64]
) -> tuple[float, float]:
    """Spend and value at ``k`` where each slot is taken at its own ``threshold``."""
    spend = bought = 0.0
    for t_row, v_row, c_row in zip(threshold, value, cost, strict=True):
        for t, v, c in zip(t_row, v_row, c_row, strict=True):  # top slot first
            if np.isfinite(v) and np.isfinite(c) and v > 0 and np.isfinite(t) and k >= t:
                spend, bought = spend + c, bought + v
                break
    return spend, bought


@settings(max_examples=60, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), slots=st.integers(1, 4))
def test_steps_at_a_models_thresholds_add_up_to_what_its_bids_buy(seed: int, slots: int) -> None:
    """The engine bids on its predicted value per click, which is off by a factor per auction:
    each slot is taken at its price over the predicted value, and brings what it truly does."""
    rng = np.random.default_rng(seed)
    value, cost = gsp_menus(rng, 12, slots)
    error = rng.lognormal(0.0, 0.7, len(value))[:, None]
    threshold = cost / value / error
    steps = response_steps(value, cost, threshold)
    for k in np.concatenate([steps.at * (1 + 1e-9), rng.uniform(0.0, 3.0, 5)]):
        below = steps.at <= k
        spend, bought = _bought_at(float(k), threshold, value, cost)
        assert steps.d_cost[below].sum() == pytest.approx(spend, rel=1e-9, abs=1e-12)
        assert steps.d_value[below].sum() == pytest.approx(bought, rel=1e-9, abs=1e-12)
    # Without an error the model's thresholds are the truth's own.
    exact = response_steps(value, cost, cost / value)
    plain = response_steps(value, cost)
    np.testing.assert_array_equal(exact.at, plain.at)
    np.testing.assert_array_equal(exact.d_value, plain.d_value)
