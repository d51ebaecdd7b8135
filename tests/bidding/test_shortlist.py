"""Solving on a shortlist of menu rows gives, bit for bit, what solving every row gives,
whatever the bound: the LP (``solve_menus_within``) and the GSP response
(``solve_response_within``); and the pieces the solvers sort and sum with."""

from __future__ import annotations

from dataclasses import fields

import numpy as np
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st
from numpy.typing import NDArray

from quanzhan.bidding import shortlist
from quanzhan.bidding.menu_lp import (
    MenuProblem,
    grouped_cumsum,
    grouped_order,
    solve_all_menus,
    solve_menus,
    solve_menus_within,
)
from quanzhan.bidding.response import (
    ResponseCurve,
    respond_all,
    solve_response,
    solve_response_within,
)


def _problem(rng: np.random.Generator, *, rows: int, campaigns: int, slots: int) -> MenuProblem:
    """GSP-like menus (a higher slot brings more clicks at a dearer price), now and then a slot
    missing, free, or priced out of order; budgets from binding to none, targets from none to
    dear, organic GMV from a deficit to plenty."""
    per_click = rng.lognormal(0.0, 0.7, rows)[:, None]
    clicks = np.sort(rng.uniform(0.05, 1.0, (rows, slots)), axis=1)[:, ::-1]
    price = np.sort(rng.uniform(0.02, 3.0, (rows, slots)), axis=1)[:, ::-1] * per_click
    disorder = rng.random(rows) < 0.1
    price[disorder] = price[disorder][:, ::-1]
    value, cost = clicks * per_click, clicks * price
    cost[rng.random((rows, slots)) < 0.02] = 0.0
    absent = rng.random((rows, slots)) < 0.2
    value[absent], cost[absent] = np.nan, np.nan
    group = rng.integers(0, campaigns, rows)
    most = np.bincount(group, weights=np.nan_to_num(cost).max(axis=1), minlength=campaigns)
    budget = np.where(rng.random(campaigns) < 0.2, np.inf, most * rng.uniform(0.01, 1.2, campaigns))
    target = rng.choice([0.0, 0.5, 1.0, 2.0, 4.0], campaigns) * rng.uniform(0.8, 1.2, campaigns)
    base = rng.uniform(-3.0, 10.0, campaigns) * (rng.random(campaigns) < 0.7)
    return MenuProblem(
        group=group, value=value, cost=cost, budget=budget, target_roi=target, base_gmv=base
    )


def _bounds(rng: np.random.Generator, campaigns: int) -> NDArray[np.float64]:
    """Bounds of every kind: none, zero, too tight, about right, too loose."""
    kind = rng.integers(0, 4, campaigns)
    scale = rng.lognormal(-0.5, 1.5, campaigns)
    return np.select([kind == 0, kind == 1], [np.inf, 0.0], scale)


def _same(found: object, expected: object) -> None:
    for f in fields(expected):  # type: ignore[arg-type]
        np.testing.assert_array_equal(getattr(found, f.name), getattr(expected, f.name), f.name)


SOLVERS = {
    "lp": (solve_menus_within, solve_all_menus),
    "response": (solve_response_within, respond_all),
}


@pytest.mark.parametrize("solver", sorted(SOLVERS))
@settings(max_examples=120, deadline=None)
@given(
    seed=st.integers(0, 2**32 - 1),
    rows=st.integers(0, 400),
    campaigns=st.integers(1, 6),
    slots=st.integers(1, 4),
)
def test_the_shortlisted_answer_is_the_whole_answer(
    solver: str, seed: int, rows: int, campaigns: int, slots: int
) -> None:
    within, whole = SOLVERS[solver]
    rng = np.random.default_rng(seed)
    problem = _problem(rng, rows=rows, campaigns=campaigns, slots=slots)
    bound = _bounds(rng, campaigns)
    _same(within(problem, bound), whole(problem))


def test_a_large_problem_goes_by_the_shortlist_and_loses_nothing() -> None:
    rng = np.random.default_rng(11)
    problem = _problem(rng, rows=shortlist.FROM_ROWS + 1_000, campaigns=40, slots=3)
    _same(solve_menus(problem), solve_all_menus(problem))
    _same(solve_response(problem), respond_all(problem))


def test_the_guess_covers_campaigns_the_sample_missed() -> None:
    """A campaign with no sampled row gets no bound: all its rows are listed."""
    rng = np.random.default_rng(5)
    problem = _problem(rng, rows=64, campaigns=2, slots=2)
    group = np.zeros(64, dtype=np.int64)
    group[1] = 1  # every sampled row is campaign 0's
    lone = MenuProblem(
        group=group, value=problem.value, cost=problem.cost, budget=problem.budget,
        target_roi=problem.target_roi, base_gmv=problem.base_gmv,
    )  # fmt: skip
    bound = shortlist.guess_bound(lone, solve_all_menus)
    assert bound[1] == np.inf
    assert bound[0] >= 0.0


def test_cheapest_ratio_skips_unusable_slots() -> None:
    value = np.array([[2.0, 1.0], [np.nan, 4.0], [np.nan, np.nan]])
    cost = np.array([[1.0, 0.1], [1.0, 2.0], [1.0, 1.0]])
    usable = np.isfinite(value) & np.isfinite(cost) & (np.nan_to_num(value) > 0)
    np.testing.assert_array_equal(shortlist.cheapest_ratio(value, cost, usable), [0.1, 0.5, np.inf])


@settings(max_examples=60, deadline=None)
@given(
    seed=st.integers(0, 2**32 - 1),
    size=st.integers(0, 2_000),
    owners=st.sampled_from([1, 3, 7, 300, 70_000]),
)
@example(seed=1, size=2_000, owners=3)  # three groups of about 667 rows: sorted one by one
def test_grouped_order_is_lexsort(seed: int, size: int, owners: int) -> None:
    """Ties (few distinct keys), zeros of both signs and infinities included; groups large
    enough to be sorted one by one, and small ones."""
    rng = np.random.default_rng(seed)
    key = rng.choice([0.0, -0.0, 0.5, 1.0, np.inf, 2.5], size)
    key *= rng.choice([1.0, 1.0 + 1e-12], size)
    owner = rng.integers(0, owners, size)
    np.testing.assert_array_equal(grouped_order(key, owner, owners), np.lexsort((key, owner)))


def test_running_sums_restart_with_each_group() -> None:
    values = np.array([1.0, 2.0, 3.0, 4.0, 5.0])
    owner = np.array([0, 0, 2, 2, 2])
    np.testing.assert_array_equal(grouped_cumsum(values, owner), [1.0, 3.0, 3.0, 7.0, 12.0])


def test_a_response_curve_answers_like_the_solver_for_any_constraints() -> None:
    rng = np.random.default_rng(4)
    problem = _problem(rng, rows=500, campaigns=5, slots=3)
    curve = ResponseCurve.of(problem.group, problem.value, problem.cost, 5)
    for _ in range(5):
        budget = rng.uniform(0.1, 50.0, 5)
        base = rng.uniform(-2.0, 5.0, 5)
        asked = MenuProblem(
            group=problem.group, value=problem.value, cost=problem.cost, budget=budget,
            target_roi=problem.target_roi, base_gmv=base,
        )  # fmt: skip
        _same(curve.answer(budget=budget, target_roi=problem.target_roi, base_gmv=base),
              solve_response(asked))  # fmt: skip
