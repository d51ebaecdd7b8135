"""The step book against sorting every step again: the same curves, tick after tick."""

from __future__ import annotations

import pickle

import numpy as np
import pytest
from gsp_menus import gsp_menus
from hypothesis import given, settings
from hypothesis import strategies as st
from numpy.typing import NDArray

from quanzhan.bidding.landscape import MenuSample
from quanzhan.bidding.policy import MenuView
from quanzhan.bidding.response import Response, ResponseCurve
from quanzhan.bidding.step_book import OrderedSteps, StepBook, merge

N = 3  # campaigns


def _rows(
    rng: np.random.Generator, rows: int, slots: int
) -> tuple[NDArray[np.int64], NDArray[np.float64], NDArray[np.float64]]:
    value, cost = gsp_menus(rng, rows, slots)
    # Ties across rows and campaigns: the same menus met again.
    again = rng.random(rows) < 0.2
    if rows:
        value[again], cost[again] = value[0], cost[0]
    return rng.integers(0, N, rows), value, cost


def _factors(rng: np.random.Generator, rows: int) -> dict[str, NDArray[np.float64]]:
    # Powers of two, and nothing (rows at a day's end): scaling by hand then rounds each copy
    # of a menu met again to the same threshold, as the book's does, so ties stay ties.
    weight = rng.choice([0.0, 0.25, 1.0, 2.0, 8.0], rows, p=[0.15, 0.2, 0.25, 0.2, 0.2])
    value = rng.lognormal(0.0, 0.5, N)
    value[rng.random(N) < 0.2] = 0.0  # a campaign whose value calibration fell to nothing
    return {"row_weight": weight, "value_factor": value, "cost_factor": rng.lognormal(0.0, 0.5, N)}


def _answers(curve: ResponseCurve, rng: np.random.Generator) -> list[Response]:
    return [
        curve.answer(
            budget=rng.uniform(0.0, 20.0, N),
            target_roi=rng.uniform(0.2, 3.0, N),
            base_gmv=rng.uniform(-3.0, 5.0, N),
        )
        for _ in range(6)
    ]


def _assert_same(found: list[Response], expected: list[Response]) -> None:
    for a, b in zip(found, expected, strict=True):
        np.testing.assert_array_equal(a.affordable, b.affordable)
        for name in ("low", "high", "value", "spend"):
            np.testing.assert_allclose(getattr(a, name), getattr(b, name), rtol=1e-9, atol=1e-12)


def _curve(steps: OrderedSteps) -> ResponseCurve:
    return ResponseCurve.ordered(steps.owner, steps.at, steps.d_cost, steps.d_value, N)


def _scaled_curve(
    parts: list[tuple[NDArray[np.int64], NDArray[np.float64], NDArray[np.float64]]],
    factors: list[dict[str, NDArray[np.float64]]],
) -> ResponseCurve:
    """Every row scaled by hand, all steps sorted at once: what the book must agree with."""
    campaigns, values, costs = [], [], []
    for (campaign, value, cost), f in zip(parts, factors, strict=True):
        campaigns.append(campaign)
        values.append(value * (f["row_weight"] * f["value_factor"][campaign])[:, None])
        costs.append(cost * (f["row_weight"] * f["cost_factor"][campaign])[:, None])
    width = max(v.shape[1] for v in values)

    def widened(menus: list[NDArray[np.float64]]) -> NDArray[np.float64]:
        return np.concatenate(
            [np.pad(m, ((0, 0), (0, width - m.shape[1])), constant_values=np.nan) for m in menus]
        )

    return ResponseCurve.of(np.concatenate(campaigns), widened(values), widened(costs), N)


@settings(max_examples=60, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), ticks=st.integers(1, 6), slots=st.integers(1, 4))
def test_a_book_built_tick_by_tick_answers_as_one_sort_of_every_step(
    seed: int, ticks: int, slots: int
) -> None:
    rng = np.random.default_rng(seed)
    book = StepBook()
    batches = [_rows(rng, int(rng.integers(0, 9)), slots) for _ in range(ticks)]
    for campaign, value, cost in batches:
        book.add(campaign, value, cost)
        owner, at = book.steps.owner, book.steps.at
        assert np.all(np.diff(owner) >= 0)
        assert np.all(np.diff(at)[np.diff(owner) == 0] >= 0)
    every = (
        np.concatenate([b[0] for b in batches]),
        np.concatenate([b[1] for b in batches]),
        np.concatenate([b[2] for b in batches]),
    )
    assert book.rows == len(every[0])
    np.testing.assert_array_equal(every[0][book.steps.row], book.steps.owner)
    factors = _factors(rng, book.rows)
    scaled = book.steps.scaled(**factors)
    assert np.all(np.diff(scaled.owner) >= 0)
    assert np.all(np.diff(scaled.at)[np.diff(scaled.owner) == 0] >= 0)
    answers = np.random.default_rng(seed + 1)
    _assert_same(
        _answers(_curve(scaled), answers),
        _answers(_scaled_curve([every], [factors]), np.random.default_rng(seed + 1)),
    )


@settings(max_examples=60, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), slots=st.integers(1, 4))
def test_two_books_merged_answer_as_their_rows_together(seed: int, slots: int) -> None:
    """Today's and yesterday's steps, each scaled its own way, in one curve."""
    rng = np.random.default_rng(seed)
    today, yesterday = _rows(rng, 10, slots), _rows(rng, 12, max(slots - 1, 1))
    books = []
    for campaign, value, cost in (today, yesterday):
        book = StepBook()
        book.add(campaign, value, cost)
        books.append(book)
    factors = [_factors(rng, len(today[0])), _factors(rng, len(yesterday[0]))]
    merged = merge(books[0].steps.scaled(**factors[0]), books[1].steps.scaled(**factors[1]))
    assert np.all(np.diff(merged.owner) >= 0)
    assert np.all(np.diff(merged.at)[np.diff(merged.owner) == 0] >= 0)
    _assert_same(
        _answers(_curve(merged), np.random.default_rng(seed)),
        _answers(_scaled_curve([today, yesterday], factors), np.random.default_rng(seed)),
    )


def test_ties_keep_the_order_they_arrived_in() -> None:
    first = OrderedSteps(np.array([0, 1]), np.array([0.5, 0.5]), np.ones(2), np.ones(2),
                         np.array([0, 1]))  # fmt: skip
    second = OrderedSteps(np.array([0, 1]), np.array([0.5, 0.25]), np.ones(2), np.ones(2),
                          np.array([2, 3]))  # fmt: skip
    joined = merge(first, second)
    np.testing.assert_array_equal(joined.row, [0, 2, 3, 1])
    assert merge(first, OrderedSteps.empty()) is first
    assert merge(OrderedSteps.empty(), second) is second


def test_a_sample_pickles_its_rows_and_works_its_steps_out_again() -> None:
    rng = np.random.default_rng(5)
    sample = MenuSample(n_campaigns=N, per_tick=4)
    for _ in range(3):
        campaign, value, cost = _rows(rng, 20, 3)
        sample.add(MenuView(campaign, value, cost, None, rng.random(20)))
    steps = sample.steps()
    index = sample.index()
    copy = pickle.loads(pickle.dumps(sample))
    state = sample.__getstate__()
    assert "_book" not in state
    assert len(state["_parts"]) == 1  # a day's parts stored joined, read back in one piece
    assert len(copy) == len(sample)
    for name in ("owner", "at", "d_cost", "d_value", "row"):
        np.testing.assert_array_equal(getattr(copy.steps(), name), getattr(steps, name))
    for name in ("campaign", "weight", "fraction"):
        np.testing.assert_array_equal(getattr(copy.index(), name), getattr(index, name))
    # The index's rows are the sample's, in order, and the steps number them so.
    rows = sample.rows()
    np.testing.assert_array_equal(index.campaign, rows.campaign)
    np.testing.assert_array_equal(index.weight, rows.weight)
    np.testing.assert_array_equal(rows.campaign[steps.row], steps.owner)
    with pytest.raises(IndexError):
        index.campaign[len(rows.campaign)]
