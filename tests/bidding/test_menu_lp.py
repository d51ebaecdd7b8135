"""``solve_menus`` against HiGHS (``solve_hindsight``) on random instances, the multiplier it
returns, and ``hull_increments`` worked by hand."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from numpy.typing import NDArray

from quanzhan.bidding.hindsight import solve_hindsight
from quanzhan.bidding.menu_lp import MenuProblem, hull_increments, solve_menus

NAN = math.nan
INF = math.inf


# --- hull_increments by hand -----------------------------------------------------------------


def _increments(
    menus: list[list[tuple[float, float]]],
) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """``hull_increments`` of menus written as ``(value, cost)`` per slot."""
    table = np.array(menus, dtype=np.float64)
    return hull_increments(table[:, :, 0], table[:, :, 1])


def test_a_menu_on_its_hull_climbs_slot_by_slot() -> None:
    # (0,0) -> (2,6) -> (4,10): slopes 3 then 2, both points on the hull; the top slot last.
    d_cost, d_value = _increments([[(10.0, 4.0), (6.0, 2.0)]])
    np.testing.assert_allclose(d_cost, [[2.0, 2.0]])
    np.testing.assert_allclose(d_value, [[6.0, 4.0]])


def test_a_slot_under_the_hull_is_skipped() -> None:
    # (1.5, 3) lies under the chord from (0,0) to (2,6) (slope 2 < 3), so it never appears;
    # (3, 5) costs more than (2, 6) and is worth less: dominated outright.
    d_cost, d_value = _increments([[(10.0, 4.0), (6.0, 2.0), (3.0, 1.5), (5.0, 3.0)]])
    np.testing.assert_allclose(d_cost, [[2.0, 2.0, 0.0, 0.0]])
    np.testing.assert_allclose(d_value, [[6.0, 4.0, 0.0, 0.0]])


def test_a_slot_that_jumps_over_a_steeper_one_is_taken_in_one_step() -> None:
    # From (0,0): slot 0 has slope 12/6 = 2, slot 1 slope 2/2 = 1: slot 0 is taken directly.
    d_cost, d_value = _increments([[(12.0, 6.0), (2.0, 2.0)]])
    np.testing.assert_allclose(d_cost, [[6.0, 0.0]])
    np.testing.assert_allclose(d_value, [[12.0, 0.0]])


def test_an_unavailable_slot_is_skipped() -> None:
    # The top slot is absent; (0.25, 2) has slope 8, then (1, 4) adds (0.75, 2).
    d_cost, d_value = _increments([[(NAN, NAN), (4.0, 1.0), (2.0, 0.25)]])
    np.testing.assert_allclose(d_cost, [[0.25, 0.75, 0.0]])
    np.testing.assert_allclose(d_value, [[2.0, 2.0, 0.0]])
    # Absent in value only, or in cost only, is absent as well.
    d_cost, d_value = _increments([[(NAN, 1.0), (4.0, NAN), (2.0, 0.25)]])
    np.testing.assert_allclose(d_cost, [[0.25, 0.0, 0.0]])
    np.testing.assert_allclose(d_value, [[2.0, 0.0, 0.0]])


def test_a_menu_with_no_slot_has_no_increment() -> None:
    d_cost, d_value = _increments([[(NAN, NAN), (NAN, NAN)], [(0.0, 1.0), (NAN, NAN)]])
    np.testing.assert_array_equal(d_cost, np.zeros((2, 2)))
    np.testing.assert_array_equal(d_value, np.zeros((2, 2)))


def test_a_free_slot_comes_first() -> None:
    # A slot at no cost is an infinite slope: it is taken before anything that costs.
    d_cost, d_value = _increments([[(3.0, 1.0), (1.0, 0.0)]])
    np.testing.assert_allclose(d_cost, [[0.0, 1.0]])
    np.testing.assert_allclose(d_value, [[1.0, 2.0]])


def test_rows_are_independent() -> None:
    d_cost, d_value = _increments(
        [[(10.0, 4.0), (6.0, 2.0)], [(NAN, NAN), (5.0, 1.0)], [(1.0, 3.0), (2.0, 1.0)]]
    )
    np.testing.assert_allclose(d_cost, [[2.0, 2.0], [1.0, 0.0], [1.0, 0.0]])
    np.testing.assert_allclose(d_value, [[6.0, 4.0], [5.0, 0.0], [2.0, 0.0]])


@st.composite
def menus(draw: st.DrawFn) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """``(m, s)`` value and cost, ``nan`` where a slot is absent, some slots free."""
    m, s = draw(st.integers(1, 8)), draw(st.integers(1, 4))
    cells = m * s
    value = np.array(draw(st.lists(st.floats(0.01, 50.0), min_size=cells, max_size=cells)))
    cost = np.array(
        draw(
            st.lists(st.one_of(st.just(0.0), st.floats(0.01, 20.0)), min_size=cells, max_size=cells)
        )
    )
    absent = np.array(draw(st.lists(st.booleans(), min_size=cells, max_size=cells)))
    value[absent] = NAN
    cost[absent] = NAN
    return value.reshape(m, s), cost.reshape(m, s)


@settings(max_examples=150, deadline=None)
@given(menus())
def test_increments_climb_a_concave_hull_to_the_best_slot(
    menu: tuple[NDArray[np.float64], NDArray[np.float64]],
) -> None:
    """Increments are non-negative, their ratios dC/dV rise (a concave hull), and they sum to
    the most valuable slot's value (and, among the slots worth that much, the cheapest cost)."""
    value, cost = menu
    d_cost, d_value = hull_increments(value, cost)
    assert d_cost.shape == d_value.shape == value.shape
    assert np.all(d_cost >= 0) and np.all(d_value >= 0)
    for a in range(len(value)):
        usable = np.isfinite(value[a]) & np.isfinite(cost[a])
        used = d_value[a] > 0
        assert np.all(d_cost[a][~used] == 0)
        # Used increments come first and the marginal cost per value rises.
        assert np.all(used[: used.sum()])
        ratio = d_cost[a][used] / d_value[a][used]
        assert np.all(np.diff(ratio) >= -1e-12 * (1 + np.abs(ratio[1:])))
        if not usable.any():
            assert not used.any()
            continue
        best = value[a][usable].max()
        cheapest = cost[a][usable & (value[a] == best)].min()
        assert d_value[a].sum() == pytest.approx(best, rel=1e-12)
        assert d_cost[a].sum() == pytest.approx(cheapest, rel=1e-12, abs=1e-12)


# --- solve_menus against HiGHS ---------------------------------------------------------------


def _rows(problem: MenuProblem, campaign: int) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """One campaign's menu rows: their values and costs."""
    mine = problem.group == campaign
    return problem.value[mine], problem.cost[mine]


def _hindsight(instance: MenuProblem, campaign: int) -> float:
    value, cost = _rows(instance, campaign)
    available = np.isfinite(value) & np.isfinite(cost)
    return solve_hindsight(
        value=value,
        cost=cost,
        available=available,
        budget=float(instance.budget[campaign]),
        target_roi=float(instance.target_roi[campaign]),
        base_gmv=float(instance.base_gmv[campaign]),
    ).value


@st.composite
def instances(draw: st.DrawFn, *, most_campaigns: int, zero_base: bool) -> MenuProblem:
    """Random GSP-like menus (the top slot worth and costing the most) for 1 to
    ``most_campaigns`` campaigns, rows shuffled between them, a quarter of the slots absent, a
    few free. Budgets are none, ample or a share of what the menus could spend; targets from
    none to above what most slots return; base GMV zero (``zero_base``) or positive."""
    n = draw(st.integers(1, most_campaigns))
    s = draw(st.integers(1, 3))
    group = np.array(draw(st.lists(st.integers(0, n - 1), max_size=30)), dtype=np.int64)
    m = len(group)
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    value = rng.lognormal(0.0, 1.0, (m, 1)) * rng.uniform(0.3, 1.0, (m, s)).cumprod(axis=1)
    cost = value / rng.lognormal(1.0, 0.8, (m, s))
    cost[rng.random((m, s)) < 0.05] = 0.0
    absent = rng.random((m, s)) < 0.25
    value[absent] = NAN
    cost[absent] = NAN
    top = np.max(np.where(absent, 0.0, cost), axis=1, initial=0.0)
    most = np.bincount(group, weights=top, minlength=n)
    budget = np.empty(n)
    for c in range(n):
        kind = draw(st.sampled_from(["none", "ample", "binding"]))
        if kind == "none":
            budget[c] = INF
        elif kind == "ample":
            budget[c] = 2.0 * most[c] + 1.0
        else:
            budget[c] = max(most[c] * draw(st.floats(0.05, 0.9)), 1e-3)
    targets = st.sampled_from([0.0, 1.0, 2.5, 4.0, 8.0]) | st.floats(0.5, 10.0)
    target = np.array(draw(st.lists(targets, min_size=n, max_size=n)))
    if zero_base:
        base = np.zeros(n)
    else:
        base = np.array(draw(st.lists(st.floats(0.01, 20.0), min_size=n, max_size=n)))
    return MenuProblem(
        group=group, value=value, cost=cost, budget=budget, target_roi=target, base_gmv=base
    )


def _best_response(
    value: NDArray[np.float64], cost: NDArray[np.float64], k: float
) -> tuple[float, float]:
    """Spend and value when every auction takes the slot of most ``k V - C``, if positive
    (``k`` infinite: the most valuable slot, the cheapest of ties)."""
    usable = np.isfinite(value) & np.isfinite(cost) & (value > 0)
    if not usable.any():
        return 0.0, 0.0
    if math.isinf(k):
        v = np.where(usable, value, -INF)
        best = v.max(axis=1, keepdims=True)
        c = np.where(usable & (v == best), cost, INF)
        slot = np.argmin(c, axis=1)
        take = usable.any(axis=1)
    else:
        profit = np.where(usable, k * np.nan_to_num(value) - np.nan_to_num(cost), -INF)
        slot = np.argmax(profit, axis=1)
        take = profit[np.arange(len(slot)), slot] > 0
    rows = np.flatnonzero(take)
    return float(cost[rows, slot[rows]].sum()), float(value[rows, slot[rows]].sum())


def _check_against_highs(instance: MenuProblem) -> None:
    solution = solve_menus(instance)
    n = len(instance.budget)
    assert solution.value.shape == solution.spend.shape == solution.multiplier.shape == (n,)
    for c in range(n):
        value, cost = _rows(instance, c)
        exact = _hindsight(instance, c)
        assert solution.value[c] == pytest.approx(exact, rel=1e-6, abs=1e-9), c
        # The reported spend meets both constraints.
        scale = 1.0 + solution.value[c] + solution.spend[c]
        assert solution.spend[c] <= instance.budget[c] * (1 + 1e-9) + 1e-12
        slack = (
            solution.value[c] + instance.base_gmv[c] - instance.target_roi[c] * solution.spend[c]
        )
        assert slack >= -1e-9 * scale
        # Bidding the multiplier reproduces the optimum: just below it every auction takes its
        # hull point and spends no more, just above it no less (the gap is the one increment
        # the optimum takes in part).
        k = float(solution.multiplier[c])
        assert k >= 0
        if k == 0:
            assert solution.value[c] == solution.spend[c] == 0
            assert _best_response(value, cost, INF) == (0.0, 0.0)
            continue
        low = _best_response(value, cost, k * (1 - 1e-9))
        high = _best_response(value, cost, k * (1 + 1e-9)) if k < INF else low
        assert low[0] - 1e-9 * scale <= solution.spend[c] <= high[0] + 1e-9 * scale
        assert low[1] - 1e-9 * scale <= solution.value[c] <= high[1] + 1e-9 * scale


@settings(max_examples=150, deadline=None)
@given(instances(most_campaigns=4, zero_base=False))
def test_agrees_with_highs_for_several_campaigns(instance: MenuProblem) -> None:
    _check_against_highs(instance)


@settings(max_examples=100, deadline=None)
@given(instances(most_campaigns=1, zero_base=True))
def test_agrees_with_highs_for_one_campaign_without_base_gmv(instance: MenuProblem) -> None:
    _check_against_highs(instance)


@settings(max_examples=100, deadline=None, derandomize=True, database=None)
@given(instances(most_campaigns=4, zero_base=True))
def test_agrees_with_highs_for_several_campaigns_without_base_gmv(instance: MenuProblem) -> None:
    _check_against_highs(instance)


def test_a_campaign_sorted_after_another_still_gets_its_optimum() -> None:
    """Campaign 1's one slot returns 10 times its cost against a target of 2 and costs a
    thousandth of its budget: the optimum takes it whole, whatever campaign 0 holds."""
    solution = solve_menus(
        MenuProblem(
            group=np.array([0, 1]),
            value=np.array([[0.1], [0.1]]),
            cost=np.array([[0.03], [0.01]]),
            budget=np.array([10.0, 10.0]),
            target_roi=np.array([2.0, 2.0]),
            base_gmv=np.zeros(2),
        )
    )
    np.testing.assert_allclose(solution.value, [0.1, 0.1])
    np.testing.assert_allclose(solution.spend, [0.03, 0.01])


def test_hand_worked_budget_and_roi_cuts() -> None:
    """One campaign, three single-slot auctions with ROI 5, 3 and 1.5 (costs 1, 2, 4).

    Budget 2, no target: the first auction whole, half the second: value 5 + 3, multiplier
    1/3. Target 2.5, no budget: after the first two (value 11, spend 3, slack 11 - 7.5 = 3.5)
    the third drains 2.5 x 4 - 6 = 4 of slack: 7/8 of it, value 11 + 5.25."""
    value = np.array([[5.0], [6.0], [6.0]])
    cost = np.array([[1.0], [2.0], [4.0]])
    group = np.zeros(3, dtype=np.int64)
    by_budget = solve_menus(MenuProblem(
        group=group, value=value, cost=cost, budget=np.array([2.0]),
        target_roi=np.array([0.0]), base_gmv=np.array([0.0]),
    ))  # fmt: skip
    np.testing.assert_allclose(by_budget.value, [8.0])
    np.testing.assert_allclose(by_budget.spend, [2.0])
    np.testing.assert_allclose(by_budget.multiplier, [1 / 3])
    by_roi = solve_menus(MenuProblem(
        group=group, value=value, cost=cost, budget=np.array([INF]),
        target_roi=np.array([2.5]), base_gmv=np.array([0.0]),
    ))  # fmt: skip
    np.testing.assert_allclose(by_roi.value, [11.0 + 5.25])
    np.testing.assert_allclose(by_roi.spend, [3.0 + 3.5])
    np.testing.assert_allclose(by_roi.multiplier, [4 / 6])
    free = solve_menus(MenuProblem(
        group=group, value=value, cost=cost, budget=np.array([INF]),
        target_roi=np.array([0.0]), base_gmv=np.array([0.0]),
    ))  # fmt: skip
    np.testing.assert_allclose(free.value, [17.0])
    assert free.multiplier[0] == INF


def test_a_campaign_without_menus_gets_nothing() -> None:
    solution = solve_menus(
        MenuProblem(
            group=np.array([1, 1]),
            value=np.array([[2.0, 1.0], [NAN, 1.0]]),
            cost=np.array([[0.5, 0.1], [NAN, 0.2]]),
            budget=np.array([5.0, 5.0, 5.0]),
            target_roi=np.array([1.0, 1.0, 1.0]),
            base_gmv=np.array([1.0, 1.0, 1.0]),
        )
    )
    assert solution.value[0] == solution.spend[0] == solution.multiplier[0] == 0.0
    assert solution.value[2] == solution.spend[2] == solution.multiplier[2] == 0.0
    np.testing.assert_allclose(solution.value[1], 3.0)


@pytest.mark.parametrize(
    "change",
    [
        {"budget": np.ones(1)},
        {"target_roi": np.ones(3)},
        {"base_gmv": np.ones(1)},
        {"group": np.array([0])},
        {"group": np.array([0, 2])},
        {"group": np.array([-1, 0])},
        {"cost": np.ones((2, 3))},
    ],
)
def test_inconsistent_input_is_refused(change: dict[str, NDArray[np.float64]]) -> None:
    arguments = {
        "group": np.array([0, 1]),
        "value": np.ones((2, 2)),
        "cost": np.ones((2, 2)),
        "budget": np.ones(2),
        "target_roi": np.ones(2),
        "base_gmv": np.zeros(2),
    } | change
    with pytest.raises(ValueError):
        solve_menus(MenuProblem(**arguments))
