"""``CategoryIndex``: an IVF index whose cells are categories, probed best bound first.

Every expectation follows the module's documentation: live campaigns listed per cell best value
first (ties by lower id), ``best[cell]`` the cell's best value (``-inf`` when empty), and a query
probing the ``_probes(budget)`` cells of highest bound ``cell_score + best``, best bound first,
laying their lists end to end and cutting at ``budget``.
"""

from __future__ import annotations

import math

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st
from numpy.typing import NDArray

from quanzhan.engine.index import _EXTRA_PROBES, CategoryIndex

PROPERTY = settings(max_examples=200, deadline=None)


def _index(cell: list[int], n_cells: int, value: list[float], live: list[bool]) -> CategoryIndex:
    return CategoryIndex(
        cell=np.asarray(cell, dtype=np.int64),
        n_cells=n_cells,
        value=np.asarray(value, dtype=np.float32),
        live=np.asarray(live, dtype=bool),
    )


def _members(
    cell: NDArray[np.int64], value: NDArray[np.float32], live: NDArray[np.bool_], n_cells: int
) -> list[list[int]]:
    """Each cell's live campaigns, best value first, ties by lower id: plain loops."""
    lists: list[list[int]] = [[] for _ in range(n_cells)]
    for c in range(len(cell)):
        if live[c]:
            lists[int(cell[c])].append(c)
    return [sorted(m, key=lambda c: (-float(value[c]), c)) for m in lists]


def _reference_probes(members: list[list[int]], budget: int) -> int:
    """The documented probe count: enough cells to fill ``budget`` at the average size of the
    cells holding a live campaign, and ``_EXTRA_PROBES`` more, at most every cell."""
    filled = max(sum(1 for m in members if m), 1)
    average = max(sum(len(m) for m in members) / filled, 1.0)
    return min(len(members), math.ceil(budget / average) + _EXTRA_PROBES)


def _reference(
    cell: NDArray[np.int64],
    value: NDArray[np.float32],
    live: NDArray[np.bool_],
    n_cells: int,
    cell_score: NDArray[np.float32],
    budget: int,
) -> list[list[int]]:
    """The documented IVF rule, one row at a time, in pure Python."""
    members = _members(cell, value, live, n_cells)
    probes = _reference_probes(members, budget)
    best = [value[m[0]] if m else np.float32(-np.inf) for m in members]
    out: list[list[int]] = []
    for row in cell_score:
        # float32 sums, as the index adds them; empty cells bound at -inf and add nothing.
        bound = [np.float32(row[c]) + np.float32(best[c]) for c in range(n_cells)]
        cells = sorted(range(n_cells), key=lambda c: -bound[c])[:probes]
        listed: list[int] = []
        for c in cells:
            listed.extend(members[c])
        listed = listed[:budget]
        out.append(listed + [-1] * (budget - len(listed)))
    return out


def _check_rows(found: NDArray[np.int32], live: NDArray[np.bool_], budget: int) -> None:
    """Structural promises that hold for any input: live campaigns only, no campaign twice in a
    row, ``-1`` only as trailing padding."""
    assert found.dtype == np.int32
    assert found.shape[1] == budget
    for row in found.tolist():
        listed = [c for c in row if c >= 0]
        assert row == listed + [-1] * (budget - len(listed))
        assert len(set(listed)) == len(listed)
        assert all(live[c] for c in listed)


@st.composite
def index_cases(draw: st.DrawFn) -> dict[str, object]:
    """Random campaigns over a few cells (some cells empty, some campaigns not live) with
    continuous random values and cell scores, so that no two bounds or values tie."""
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    n_cells = draw(st.integers(1, 9))
    n = draw(st.integers(0, 40))
    # A few cells hold most campaigns: uneven sizes make the probe count matter.
    weights = rng.random(n_cells) ** 3 + 1e-3
    cell = rng.choice(n_cells, size=n, p=weights / weights.sum()).astype(np.int64)
    value = rng.normal(0.0, draw(st.sampled_from([0.1, 1.0, 5.0])), n).astype(np.float32)
    live = rng.random(n) < draw(st.sampled_from([0.0, 0.3, 0.8, 1.0]))
    n_rows = draw(st.integers(0, 6))
    cell_score = rng.normal(0.0, draw(st.sampled_from([0.1, 1.0, 5.0])), (n_rows, n_cells))
    budget = draw(st.integers(1, n + 5))
    return {
        "cell": cell,
        "n_cells": n_cells,
        "value": value,
        "live": live,
        "cell_score": cell_score.astype(np.float32),
        "budget": budget,
    }


Case = tuple[
    NDArray[np.int64], int, NDArray[np.float32], NDArray[np.bool_], NDArray[np.float32], int
]


def _unpack(case: dict[str, object]) -> Case:
    cell, n_cells, value = case["cell"], case["n_cells"], case["value"]
    live, cell_score, budget = case["live"], case["cell_score"], case["budget"]
    assert isinstance(cell, np.ndarray) and isinstance(value, np.ndarray)
    assert isinstance(live, np.ndarray) and isinstance(cell_score, np.ndarray)
    assert isinstance(n_cells, int) and isinstance(budget, int)
    return cell, n_cells, value, live, cell_score, budget


@PROPERTY
@given(index_cases())
def test_candidates_follow_the_documented_rule(case: dict[str, object]) -> None:
    cell, n_cells, value, live, cell_score, budget = _unpack(case)
    index = CategoryIndex(cell=cell, n_cells=n_cells, value=value, live=live)
    found = index.candidates(cell_score, budget)
    assert found.shape == (len(cell_score), budget)
    assert found.tolist() == _reference(cell, value, live, n_cells, cell_score, budget)
    _check_rows(found, live, budget)


@PROPERTY
@given(index_cases())
def test_cells_list_live_campaigns_best_value_first(case: dict[str, object]) -> None:
    cell, n_cells, value, live, _, _ = _unpack(case)
    index = CategoryIndex(cell=cell, n_cells=n_cells, value=value, live=live)
    members = _members(cell, value, live, n_cells)
    assert len(index) == int(live.sum())
    for c in range(n_cells):
        assert index.best.dtype == np.float32
        if members[c]:
            assert index.best[c] == value[members[c][0]] == value[cell == c][live[cell == c]].max()
        else:
            assert index.best[c] == -np.inf


@PROPERTY
@given(index_cases(), st.integers(0, 5))
def test_a_budget_covering_every_live_campaign_returns_them_all(
    case: dict[str, object], extra: int
) -> None:
    cell, n_cells, value, live, cell_score, _ = _unpack(case)
    budget = int(live.sum()) + extra
    index = CategoryIndex(cell=cell, n_cells=n_cells, value=value, live=live)
    found = index.candidates(cell_score, budget)
    assert found.shape == (len(cell_score), budget)
    for row in found:
        assert sorted(int(c) for c in row if c >= 0) == np.flatnonzero(live).tolist()
    _check_rows(found, live, budget)
    assert found.tolist() == _reference(cell, value, live, n_cells, cell_score, budget)


def test_best_bound_first_then_value_within_a_cell() -> None:
    cell = [0, 0, 1, 1, 2, 2]
    value = [0.1, 0.9, 0.5, -0.5, 0.3, 0.8]
    index = _index(cell, 3, value, [True] * 6)
    assert index.best.tolist() == np.array([0.9, 0.5, 0.8], dtype=np.float32).tolist()
    # Bounds: row 0 -> 0.9, 1.5, 1.3 (cells 1, 2, 0); row 1 -> 1.9, 0.5, 0.9 (cells 0, 2, 1).
    cell_score = np.array([[0.0, 1.0, 0.5], [1.0, 0.0, 0.1]], dtype=np.float32)
    found = index.candidates(cell_score, 6)
    assert found.tolist() == [[2, 3, 5, 4, 1, 0], [1, 0, 5, 4, 2, 3]]
    # Cut at the budget, cell after cell.
    assert index.candidates(cell_score, 3).tolist() == [[2, 3, 5], [1, 0, 5]]


def test_the_bound_counts_the_best_value_not_only_the_cell_score() -> None:
    """Cell 0 scores higher, but cell 1's best campaign lifts its bound above cell 0's."""
    index = _index([0, 1, 1], 2, [0.0, 2.0, -3.0], [True] * 3)
    found = index.candidates(np.array([[1.0, 0.0]], dtype=np.float32), 3)
    assert found.tolist() == [[1, 2, 0]]


def test_equal_values_list_the_lower_campaign_id_first() -> None:
    index = _index([0, 0, 0, 0], 1, [0.5, 0.7, 0.5, 0.7], [True] * 4)
    assert index.candidates(np.zeros((1, 1), dtype=np.float32), 4).tolist() == [[1, 3, 0, 2]]


def test_never_lists_campaigns_that_are_not_live() -> None:
    cell = [0, 0, 0, 1, 1]
    live = [True, False, True, False, True]
    index = _index(cell, 2, [0.9, 1.0, 0.1, 1.0, 0.0], live)
    assert len(index) == 3
    # Cell 1's best live value is 0.0, not the dead campaign's 1.0.
    assert index.best.tolist() == np.array([0.9, 0.0], dtype=np.float32).tolist()
    cell_score = np.array([[1.0, 0.0], [0.0, 1.0]], dtype=np.float32)
    assert index.candidates(cell_score, 5).tolist() == [[0, 2, 4, -1, -1], [4, 0, 2, -1, -1]]


def test_empty_cells_cost_no_probe() -> None:
    """Live campaigns in the cell of lowest score are still found: empty cells rank last."""
    n_cells = 40
    index = _index([n_cells - 1] * 4, n_cells, [0.0, 0.1, 0.2, 0.3], [True] * 4)
    cell_score = np.linspace(10.0, 0.0, n_cells, dtype=np.float32)[None, :]
    assert index.candidates(cell_score, 4).tolist() == [[3, 2, 1, 0]]


def test_empty_index_and_empty_queries() -> None:
    scores = np.ones((4, 3), dtype=np.float32)
    nothing_live = _index([0, 1, 2], 3, [0.0, 0.0, 0.0], [False] * 3)
    assert len(nothing_live) == 0
    assert np.all(nothing_live.best == -np.inf)
    found = nothing_live.candidates(scores, 5)
    assert found.shape == (4, 5) and found.dtype == np.int32 and np.all(found == -1)

    no_campaigns = _index([], 3, [], [])
    found = no_campaigns.candidates(scores, 5)
    assert found.shape == (4, 5) and np.all(found == -1)

    everyone = _index([0, 1, 2], 3, [0.0, 0.0, 0.0], [True] * 3)
    found = everyone.candidates(np.zeros((0, 3), dtype=np.float32), 5)
    assert found.shape == (0, 5) and found.dtype == np.int32
