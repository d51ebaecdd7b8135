"""``solve_hindsight``: brute force on small instances, a duality certificate on large ones,
hand-worked cases, validation."""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass
from fractions import Fraction

import numpy as np
import pytest
from hypothesis import event, given, settings
from hypothesis import strategies as st
from numpy.typing import NDArray

from quanzhan.bidding import hindsight
from quanzhan.bidding.hindsight import HindsightSolution, HindsightSolverError, solve_hindsight

INF = math.inf


@dataclass(frozen=True)
class Problem:
    """The arguments of one ``solve_hindsight`` call."""

    value: NDArray[np.float64]
    cost: NDArray[np.float64]
    available: NDArray[np.bool_]
    budget: float
    target_roi: float
    base_gmv: float

    def solve(self) -> HindsightSolution:
        return solve_hindsight(
            value=self.value,
            cost=self.cost,
            available=self.available,
            budget=self.budget,
            target_roi=self.target_roi,
            base_gmv=self.base_gmv,
        )


def assert_feasible(problem: Problem, solution: HindsightSolution) -> None:
    """The allocation meets every constraint within 1e-9 and attains the reported figures."""
    x = solution.allocation
    assert x.shape == problem.available.shape
    assert np.all(x >= -1e-9)
    assert np.all(x[~problem.available] == 0)
    assert np.all(x.sum(axis=1) <= 1 + 1e-9)
    gmv = float(np.where(problem.available, problem.value * x, 0.0).sum())
    spend = float(np.where(problem.available, problem.cost * x, 0.0).sum())
    assert solution.value == pytest.approx(gmv, rel=1e-12, abs=1e-12)
    assert solution.spend == pytest.approx(spend, rel=1e-12, abs=1e-12)
    scale = 1.0 + gmv + spend
    assert spend <= problem.budget + 1e-9 * scale
    assert gmv + problem.base_gmv - problem.target_roi * spend >= -1e-9 * scale


def assert_duals_optimal(problem: Problem, solution: HindsightSolution) -> None:
    """Complementary slackness, and strong duality: at the reported duals the dual LP

        min  lambda B + mu G0 + sum_a max(0, max_j (1 + mu) V[a,j] - (lambda + mu R) C[a,j])

    equals the reported value, which with a feasible allocation certifies both optimal.
    """
    lam, mu = solution.budget_dual, solution.roi_dual
    assert lam >= 0 and mu >= 0
    scale = 1.0 + solution.value + solution.spend
    if problem.budget - solution.spend > 1e-7 * scale:
        assert lam == pytest.approx(0.0, abs=1e-7)
    roi_gap = solution.value + problem.base_gmv - problem.target_roi * solution.spend
    if roi_gap > 1e-7 * scale:
        assert mu == pytest.approx(0.0, abs=1e-7)
    price = lam + mu * problem.target_roi
    profit = np.where(problem.available, (1 + mu) * problem.value - price * problem.cost, 0.0)
    surplus = np.maximum(profit.max(axis=1, initial=0.0), 0.0).sum()
    budget_term = lam * problem.budget if lam > 0 else 0.0
    dual_objective = budget_term + mu * problem.base_gmv + surplus
    assert dual_objective == pytest.approx(solution.value, rel=1e-7, abs=1e-7)


# --- the brute force -------------------------------------------------------------------------
#
# The constraints see x only through (V, C) = (sum V x, sum C x), and the product of the
# per-auction simplices maps onto the convex hull of the points of the integral assignments
# (per auction: no slot or one available slot). So the optimum is the best mixture of those
# points that meets the budget and ROI rows; in the plane at most 3 points are needed
# (Caratheodory), and a point that another beats on value and cost together can be swapped for
# it in any mixture, so only the Pareto points are kept. For each set of 3, the mixture LP over
# weights w (w >= 0, sum w = 1) is solved by enumerating its vertices: sum w = 1 and 2 of its 5
# inequalities tight fix w. All in rationals, so the reference is exact.


@dataclass(frozen=True)
class Instance:
    """A hindsight LP with rational data."""

    value: list[list[Fraction]]
    cost: list[list[Fraction]]
    available: list[list[bool]]
    slots: int
    budget: Fraction | None  # None: no budget
    target_roi: Fraction
    base_gmv: Fraction

    def problem(self) -> Problem:
        shape = (len(self.value), self.slots)
        return Problem(
            value=np.array(self.value, dtype=np.float64).reshape(shape),
            cost=np.array(self.cost, dtype=np.float64).reshape(shape),
            available=np.array(self.available, dtype=np.bool_).reshape(shape),
            budget=INF if self.budget is None else float(self.budget),
            target_roi=float(self.target_roi),
            base_gmv=float(self.base_gmv),
        )


Point = tuple[Fraction, Fraction]  # (value, cost)


def assignment_points(instance: Instance) -> set[Point]:
    zero = Fraction(0)
    menus = [
        [(zero, zero)] + [(v, c) for v, c, ok in zip(vs, cs, oks, strict=True) if ok]
        for vs, cs, oks in zip(instance.value, instance.cost, instance.available, strict=True)
    ]
    return {
        (sum((v for v, _ in pick), zero), sum((c for _, c in pick), zero))
        for pick in itertools.product(*menus)
    }


def pareto(points: set[Point]) -> list[Point]:
    return [p for p in points if not any(q != p and q[0] >= p[0] and q[1] <= p[1] for q in points)]


def solve_exactly(rows: list[list[Fraction]], rhs: list[Fraction]) -> list[Fraction] | None:
    """Gauss-Jordan elimination in rationals; ``None`` if the square system is singular."""
    n = len(rows)
    aug = [[*row, b] for row, b in zip(rows, rhs, strict=True)]
    for col in range(n):
        pivot = next((r for r in range(col, n) if aug[r][col] != 0), None)
        if pivot is None:
            return None
        aug[col], aug[pivot] = aug[pivot], aug[col]
        for r in range(n):
            if r != col and aug[r][col] != 0:
                factor = aug[r][col] / aug[col][col]
                aug[r] = [a - factor * b for a, b in zip(aug[r], aug[col], strict=True)]
    return [aug[r][n] / aug[r][r] for r in range(n)]


def best_mixture(points: list[Point], instance: Instance) -> Fraction | None:
    """Max value of a mixture of ``points`` meeting both rows; ``None`` if none does."""
    k = len(points)
    inequalities = [  # a . w <= b
        ([Fraction(-1 if j == i else 0) for j in range(k)], Fraction(0)) for i in range(k)
    ]
    if instance.budget is not None:
        inequalities.append(([c for _, c in points], instance.budget))
    inequalities.append(([instance.target_roi * c - v for v, c in points], instance.base_gmv))
    best: Fraction | None = None
    for tight in itertools.combinations(inequalities, k - 1):
        rows = [[Fraction(1)] * k] + [a for a, _ in tight]
        w = solve_exactly(rows, [Fraction(1)] + [b for _, b in tight])
        if w is None or any(sum(map(Fraction.__mul__, a, w)) > b for a, b in inequalities):
            continue
        mixed = sum((w_i * v for w_i, (v, _) in zip(w, points, strict=True)), Fraction(0))
        best = mixed if best is None else max(best, mixed)
    return best


def brute_force_optimum(instance: Instance) -> Fraction:
    points = pareto(assignment_points(instance))
    sets = itertools.combinations(points, min(3, len(points)))
    return max(v for v in (best_mixture(list(s), instance) for s in sets) if v is not None)


@st.composite
def instances(draw: st.DrawFn) -> Instance:
    """Budgets as a share of the most the auctions could cost, so that either row binds."""
    m, s = draw(st.integers(0, 4)), draw(st.integers(1, 2))
    half = st.integers(0, 16).map(lambda k: Fraction(k, 2))
    grid = st.lists(st.lists(half, min_size=s, max_size=s), min_size=m, max_size=m)
    mostly_true = st.integers(0, 3).map(bool)
    flags = st.lists(st.lists(mostly_true, min_size=s, max_size=s), min_size=m, max_size=m)
    value, cost, available = draw(grid), draw(grid), draw(flags)
    dearest = [
        max((c for c, ok in zip(*row, strict=True) if ok), default=0)
        for row in zip(cost, available, strict=True)
    ]
    most = Fraction(1, 2) + sum(dearest, Fraction(0))
    return Instance(
        value=value,
        cost=cost,
        available=available,
        slots=s,
        budget=None
        if draw(st.integers(0, 3)) == 0
        else Fraction(draw(st.integers(1, 10)), 8) * most,
        target_roi=Fraction(draw(st.integers(0, 16)), 4),
        base_gmv=Fraction(draw(st.integers(0, 3)) // 2 * draw(st.integers(0, 8)), 2),
    )


def binding(problem: Problem, solution: HindsightSolution) -> str:
    """Which rows hold with equality: for the hypothesis statistics."""
    budget = solution.spend >= problem.budget - 1e-9
    gap = solution.value + problem.base_gmv - problem.target_roi * solution.spend
    roi = bool(problem.available.any()) and problem.target_roi > 0 and gap <= 1e-9
    return {(False, False): "none", (True, False): "budget", (False, True): "roi"}.get(
        (budget, roi), "both"
    )


@settings(max_examples=300, deadline=None)
@given(instance=instances())
def test_matches_the_brute_force_optimum(instance: Instance) -> None:
    problem = instance.problem()
    solution = problem.solve()
    event(f"binding: {binding(problem, solution)}")
    assert solution.value == pytest.approx(float(brute_force_optimum(instance)), rel=1e-7, abs=1e-9)
    assert_feasible(problem, solution)
    assert_duals_optimal(problem, solution)


# --- large instances: a certificate of optimality --------------------------------------------


def random_problem(
    *, seed: int, m: int, budget_share: float, target_roi: float, base_gmv: float
) -> Problem:
    """Slots of falling value, ROI between 1 and 6; budget a share of the most it could cost."""
    rng = np.random.default_rng(seed)
    value = rng.gamma(2.0, 10.0, (m, 3)) * np.array([1.0, 0.7, 0.5])
    cost = value / rng.uniform(1.0, 6.0, (m, 3))
    available = rng.random((m, 3)) < 0.8
    most = float(np.where(available, cost, 0.0).max(axis=1).sum())
    return Problem(
        value=value,
        cost=cost,
        available=available,
        budget=budget_share * most,
        target_roi=target_roi,
        base_gmv=base_gmv,
    )


@pytest.mark.parametrize(
    ("m", "budget_share", "target_roi", "base_gmv", "binds"),
    [
        (500, 0.2, 0.0, 0.0, "budget"),
        (500, INF, 3.5, 0.0, "roi"),
        (500, 0.3, 3.0, 100.0, "budget"),
        (500, 0.9, 3.5, 50.0, "roi"),
        (5000, 0.25, 3.5, 0.0, "budget"),
    ],
)
def test_large_instances_come_with_a_duality_certificate(
    m: int, budget_share: float, target_roi: float, base_gmv: float, binds: str
) -> None:
    problem = random_problem(
        seed=m, m=m, budget_share=budget_share, target_roi=target_roi, base_gmv=base_gmv
    )
    solution = problem.solve()
    assert binding(problem, solution) == binds
    assert_feasible(problem, solution)
    assert_duals_optimal(problem, solution)


# --- hand-worked cases -----------------------------------------------------------------------


def solve(
    value: list[list[float]],
    cost: list[list[float]],
    *,
    budget: float = INF,
    target_roi: float = 0.0,
    base_gmv: float = 0.0,
    available: list[list[bool]] | None = None,
) -> HindsightSolution:
    shape = np.shape(value)
    return solve_hindsight(
        value=np.array(value, dtype=np.float64),
        cost=np.array(cost, dtype=np.float64),
        available=np.ones(shape, dtype=np.bool_) if available is None else np.array(available),
        budget=budget,
        target_roi=target_roi,
        base_gmv=base_gmv,
    )


def test_budget_binding_takes_the_best_ratios_and_a_fraction_of_the_last() -> None:
    # Ratios 3, 2, 1: all of the first (cost 2), half of the second (cost 1), none of the third.
    solution = solve([[6.0], [4.0], [3.0]], [[2.0], [2.0], [3.0]], budget=3.0)
    np.testing.assert_allclose(solution.allocation, [[1.0], [0.5], [0.0]], atol=1e-9)
    assert solution.value == pytest.approx(8.0)
    assert solution.spend == pytest.approx(3.0)
    assert solution.budget_dual == pytest.approx(2.0)  # the marginal auction's ratio
    assert solution.roi_dual == 0.0  # target 0: the row is left out


def test_budget_binding_upgrades_along_the_slot_menu() -> None:
    # One auction, slots (value 10, cost 4) and (6, 2): with 3 to spend, half of each.
    solution = solve([[10.0, 6.0]], [[4.0, 2.0]], budget=3.0)
    np.testing.assert_allclose(solution.allocation, [[0.5, 0.5]], atol=1e-9)
    assert solution.value == pytest.approx(8.0)
    assert solution.budget_dual == pytest.approx(2.0)  # the upgrade's value per unit of cost


def test_roi_binding_stops_where_gmv_meets_the_target() -> None:
    # Target 2: the first auction leaves a surplus of 10 - 2 * 2 = 6, the second loses
    # 2 - 2 * 6 = 10 per unit, so 0.6 of it is taken. The dual, d value / d G0, is 2 / 10.
    solution = solve([[10.0], [2.0]], [[2.0], [6.0]], target_roi=2.0)
    np.testing.assert_allclose(solution.allocation, [[1.0], [0.6]], atol=1e-9)
    assert solution.value == pytest.approx(11.2)
    assert solution.spend == pytest.approx(5.6)
    assert solution.roi_dual == pytest.approx(0.2)
    assert solution.budget_dual == 0.0  # no budget: the row is left out


def test_base_gmv_makes_the_roi_row_slack() -> None:
    solution = solve([[10.0], [2.0]], [[2.0], [6.0]], target_roi=2.0, base_gmv=100.0)
    np.testing.assert_allclose(solution.allocation, [[1.0], [1.0]], atol=1e-9)
    assert solution.value == pytest.approx(12.0)
    assert solution.roi_dual == pytest.approx(0.0, abs=1e-9)


def test_budget_tighter_than_the_roi_row() -> None:
    # The target would allow spend 5.6 (above); a budget of 4 binds first, at a third of the
    # second auction, whose ratio 1/3 prices the budget. The ROI row is slack.
    solution = solve([[10.0], [2.0]], [[2.0], [6.0]], budget=4.0, target_roi=2.0)
    np.testing.assert_allclose(solution.allocation, [[1.0], [1.0 / 3.0]], atol=1e-9)
    assert solution.value == pytest.approx(10.0 + 2.0 / 3.0)
    assert solution.spend == pytest.approx(4.0)
    assert solution.budget_dual == pytest.approx(1.0 / 3.0)
    assert solution.roi_dual == pytest.approx(0.0, abs=1e-9)


def test_budget_and_roi_binding_together() -> None:
    # The optimum lies on the value-for-spend frontier at spend min(budget, ROI limit), so both
    # rows bind only where the budget is the ROI limit: 5.6 above. The duals are then not
    # unique, but any optimal pair prices the marginal auction at zero profit.
    solution = solve([[10.0], [2.0]], [[2.0], [6.0]], budget=5.6, target_roi=2.0)
    np.testing.assert_allclose(solution.allocation, [[1.0], [0.6]], atol=1e-9)
    assert solution.value == pytest.approx(11.2)
    lam, mu = solution.budget_dual, solution.roi_dual
    assert (1 + mu) * 2.0 - (lam + 2.0 * mu) * 6.0 == pytest.approx(0.0, abs=1e-9)


@pytest.mark.parametrize(("m", "s"), [(0, 3), (4, 0), (0, 0)])
def test_no_auctions_or_no_slots(m: int, s: int) -> None:
    solution = solve_hindsight(
        value=np.zeros((m, s)),
        cost=np.zeros((m, s)),
        available=np.ones((m, s), dtype=np.bool_),
        budget=5.0,
        target_roi=1.0,
    )
    assert (solution.value, solution.spend) == (0.0, 0.0)
    assert (solution.budget_dual, solution.roi_dual) == (0.0, 0.0)
    assert solution.allocation.shape == (m, s)


def test_nothing_available_ignores_what_the_arrays_hold() -> None:
    solution = solve(
        [[np.nan, 5.0], [3.0, -1.0]],
        [[1.0, np.inf], [np.nan, 2.0]],
        budget=10.0,
        target_roi=1.0,
        available=[[False, False], [False, False]],
    )
    assert (solution.value, solution.spend) == (0.0, 0.0)
    np.testing.assert_array_equal(solution.allocation, np.zeros((2, 2)))


def test_an_unavailable_slot_is_never_taken() -> None:
    solution = solve([[100.0, 1.0]], [[1.0, 1.0]], budget=5.0, available=[[False, True]])
    np.testing.assert_allclose(solution.allocation, [[0.0, 1.0]], atol=1e-9)
    assert solution.value == pytest.approx(1.0)


def test_no_budget_and_no_target_takes_each_auctions_best_value() -> None:
    solution = solve(
        [[3.0, 7.0, 1.0], [2.0, 2.0, 0.0], [0.0, 0.0, 0.0]],
        [[9.0, 1.0, 0.0], [5.0, 3.0, 1.0], [1.0, 1.0, 1.0]],
        available=[[True, True, True], [True, True, False], [True, True, True]],
    )
    assert solution.value == 9.0
    # Of equal values the cheaper slot; a slot worth nothing is not bought.
    np.testing.assert_array_equal(solution.allocation, [[0, 1, 0], [0, 1, 0], [0, 0, 0]])
    assert solution.spend == 4.0
    assert (solution.budget_dual, solution.roi_dual) == (0.0, 0.0)


def test_fields_are_floats_and_the_allocation_is_a_new_array() -> None:
    value = np.array([[4.0, 1.0]])
    solution = solve_hindsight(
        value=value,
        cost=np.ones((1, 2)),
        available=np.ones((1, 2), dtype=np.bool_),
        budget=1.0,
        target_roi=1.0,
    )
    fields = (solution.value, solution.spend, solution.budget_dual, solution.roi_dual)
    assert all(type(f) is float for f in fields)
    assert solution.allocation.dtype == np.float64
    assert not np.shares_memory(solution.allocation, value)


# --- validation and failure ------------------------------------------------------------------

GOOD: dict[str, object] = {
    "value": np.ones((2, 2)),
    "cost": np.ones((2, 2)),
    "available": np.ones((2, 2), dtype=np.bool_),
    "budget": 1.0,
    "target_roi": 1.0,
    "base_gmv": 0.0,
}


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"budget": 0.0}, "budget"),
        ({"budget": -1.0}, "budget"),
        ({"budget": math.nan}, "budget"),
        ({"budget": -INF}, "budget"),
        ({"target_roi": -0.5}, "target_roi"),
        ({"target_roi": INF}, "target_roi"),
        ({"target_roi": math.nan}, "target_roi"),
        ({"base_gmv": -1.0}, "base_gmv"),
        ({"base_gmv": INF}, "base_gmv"),
        ({"base_gmv": math.nan}, "base_gmv"),
        ({"available": np.ones((2, 2), dtype=np.int64)}, "bool"),
        ({"available": np.ones(4, dtype=np.bool_)}, "2-D"),
        ({"value": np.ones((2, 3))}, "value has shape"),
        ({"cost": np.ones((3, 2))}, "cost has shape"),
        ({"value": np.array([[1.0, -1.0], [1.0, 1.0]])}, "value must be"),
        ({"value": np.array([[1.0, np.nan], [1.0, 1.0]])}, "value must be"),
        ({"cost": np.array([[1.0, 1.0], [np.inf, 1.0]])}, "cost must be"),
    ],
)
def test_invalid_input_raises_value_error(change: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        solve_hindsight(**(GOOD | change))  # type: ignore[arg-type]


def test_a_solver_failure_raises(monkeypatch: pytest.MonkeyPatch) -> None:
    @dataclass
    class Failed:
        status: int = 4
        message: str = "numerical difficulties"
        x: None = None

    monkeypatch.setattr(hindsight, "linprog", lambda *args, **kwargs: Failed())
    with pytest.raises(HindsightSolverError, match="numerical difficulties") as raised:
        solve_hindsight(**GOOD)  # type: ignore[arg-type]
    assert isinstance(raised.value, RuntimeError)
