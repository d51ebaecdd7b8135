"""Properties of ``run_auction`` and agreement with a per-request pure-Python reference."""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays
from numpy.typing import NDArray

from quanzhan.engine.auction import AuctionResult, run_auction

Inputs = dict[str, Any]

BID = st.one_of(
    st.sampled_from([0.0, 0.25, 0.5, 1.0, 1.5, 2.0, 3.0, -1.0, math.nan, math.inf]),
    st.floats(min_value=0.01, max_value=10.0),
)
PCTR = st.one_of(
    st.sampled_from([0.0, 0.05, 0.1, 0.125, 0.25, 0.5, 1.0, math.nan]),
    st.floats(min_value=0.0, max_value=1.0),
)
RESERVE = st.one_of(st.sampled_from([0.0, 0.25, 0.5, 1.0]), st.floats(0.0, 2.0))
FLOOR = st.one_of(st.sampled_from([0.0, 0.05, 0.1, 0.5]), st.floats(-1.0, 1.0))
PROPERTY = settings(max_examples=200, deadline=None)


@st.composite
def auction_inputs(draw: st.DrawFn, max_n: int = 6, max_c: int = 7) -> Inputs:
    """Small random batches, with ties, duplicate items and ineligible candidates."""
    n = draw(st.integers(0, max_n))
    c = draw(st.integers(0, max_c))
    n_slots = draw(arrays(np.int64, (n,), elements=st.integers(0, 4)))
    extra = draw(st.one_of(st.none(), st.integers(0, 2)))
    needed = int(n_slots.max()) if n else 0
    return {
        "bid": draw(arrays(np.float64, (n, c), elements=BID)),
        "pctr": draw(arrays(np.float64, (n, c), elements=PCTR)),
        "item": draw(arrays(np.int64, (n, c), elements=st.integers(0, 3))),
        "valid": draw(arrays(np.bool_, (n, c), elements=st.booleans())),
        "n_slots": n_slots,
        "reserve": draw(arrays(np.float64, (n,), elements=RESERVE)),
        "relevance_floor": draw(arrays(np.float64, (n,), elements=FLOOR)),
        "max_slots": None if extra is None else needed + extra,
    }


@dataclass
class Reference:
    """Expected outcome as nested lists, one row per request."""

    winner: list[list[int]]
    price: list[list[float]]
    ecpm: list[list[float]]
    landscape_ecpm: list[list[float]]
    landscape_col: list[list[int]]


def _eligible(inp: Inputs, i: int, j: int) -> bool:
    """Rule 1, one candidate at a time."""
    b, p = float(inp["bid"][i, j]), float(inp["pctr"][i, j])
    return (
        bool(inp["valid"][i, j])
        and math.isfinite(b)
        and b > 0.0
        and b >= float(inp["reserve"][i])
        and math.isfinite(p)
        and p > 0.0
        and p >= float(inp["relevance_floor"][i])
    )


def _ranking(inp: Inputs, i: int) -> list[tuple[float, int]]:
    """Rules 2 and 3 for request ``i``: de-duplicated (eCPM, column), best first."""
    best: dict[int, tuple[float, int]] = {}
    for j in range(inp["bid"].shape[1]):
        if not _eligible(inp, i, j):
            continue
        ecpm = float(inp["bid"][i, j]) * float(inp["pctr"][i, j])
        key = int(inp["item"][i, j])
        if key not in best or ecpm > best[key][0]:
            best[key] = (ecpm, j)
    return sorted(best.values(), key=lambda t: (-t[0], t[1]))


def reference(inp: Inputs) -> Reference:
    """The rules, written as loops over requests, slots and candidates."""
    n = inp["bid"].shape[0]
    n_max = inp["max_slots"]
    if n_max is None:
        n_max = int(inp["n_slots"].max()) if n else 0
    out = Reference([], [], [], [], [])
    for i in range(n):
        ranked = _ranking(inp, i)
        top = ranked[: n_max + 1] + [(0.0, -1)] * (n_max + 1 - min(len(ranked), n_max + 1))
        out.landscape_ecpm.append([e for e, _ in top])
        out.landscape_col.append([j for _, j in top])
        winners, prices, ecpms = [-1] * n_max, [0.0] * n_max, [0.0] * n_max
        reserve = float(inp["reserve"][i])
        for s in range(min(int(inp["n_slots"][i]), len(ranked))):
            ecpm, j = ranked[s]
            price = reserve
            if s + 1 < len(ranked):
                own_bid, own_pctr = float(inp["bid"][i, j]), float(inp["pctr"][i, j])
                price = min(own_bid, max(reserve, ranked[s + 1][0] / own_pctr))
            winners[s], prices[s], ecpms[s] = j, price, ecpm
        out.winner.append(winners)
        out.price.append(prices)
        out.ecpm.append(ecpms)
    return out


def _run(inp: Inputs) -> AuctionResult:
    return run_auction(**inp)


def _as_2d(rows: list[list[float]] | list[list[int]], width: int) -> NDArray[Any]:
    return np.asarray(rows).reshape(len(rows), width)


@PROPERTY
@given(auction_inputs())
def test_matches_reference(inp: Inputs) -> None:
    got = _run(inp)
    want = reference(inp)
    n_max = got.winner.shape[1]
    np.testing.assert_array_equal(got.winner, _as_2d(want.winner, n_max))
    np.testing.assert_allclose(got.price, _as_2d(want.price, n_max), rtol=1e-12, atol=0.0)
    np.testing.assert_allclose(got.ecpm, _as_2d(want.ecpm, n_max), rtol=1e-12, atol=0.0)
    np.testing.assert_array_equal(got.landscape_col, _as_2d(want.landscape_col, n_max + 1))
    np.testing.assert_allclose(
        got.landscape_ecpm, _as_2d(want.landscape_ecpm, n_max + 1), rtol=1e-12, atol=0.0
    )


def _filled(result: AuctionResult) -> NDArray[np.bool_]:
    return result.winner >= 0


def _winner_values(matrix: NDArray[Any], result: AuctionResult) -> NDArray[Any]:
    """``matrix[i, winner[i, j]]`` for filled slots (garbage elsewhere)."""
    if matrix.shape[1] == 0:
        return np.zeros(result.winner.shape, dtype=matrix.dtype)
    return np.take_along_axis(matrix, np.maximum(result.winner, 0), axis=1)


@PROPERTY
@given(auction_inputs())
def test_price_between_reserve_and_bid(inp: Inputs) -> None:
    result = _run(inp)
    filled = _filled(result)
    reserve = np.broadcast_to(inp["reserve"][:, None], filled.shape)
    own_bid = _winner_values(inp["bid"], result)
    assert np.all(result.price[filled] >= reserve[filled])
    assert np.all(result.price[filled] <= own_bid[filled])


@PROPERTY
@given(auction_inputs())
def test_empty_slots_are_zero(inp: Inputs) -> None:
    result = _run(inp)
    empty = ~_filled(result)
    assert np.all(result.winner[empty] == -1)
    assert np.all(result.price[empty] == 0.0)
    assert np.all(result.ecpm[empty] == 0.0)


@PROPERTY
@given(auction_inputs())
def test_filled_slots_in_non_increasing_ecpm(inp: Inputs) -> None:
    result = _run(inp)
    filled = _filled(result)
    own_bid = _winner_values(inp["bid"], result)[filled]
    own_pctr = _winner_values(inp["pctr"], result)[filled]
    np.testing.assert_array_equal(result.ecpm[filled], own_bid * own_pctr)
    both = filled[:, 1:] & filled[:, :-1]
    assert np.all(result.ecpm[:, :-1][both] >= result.ecpm[:, 1:][both])


@PROPERTY
@given(auction_inputs())
def test_no_item_twice_on_a_page(inp: Inputs) -> None:
    result = _run(inp)
    items = _winner_values(inp["item"], result)
    for row_items, row_filled in zip(items, _filled(result), strict=True):
        shown = row_items[row_filled].tolist()
        assert len(shown) == len(set(shown))


@PROPERTY
@given(auction_inputs())
def test_filled_slots_are_a_prefix_within_n_slots(inp: Inputs) -> None:
    result = _run(inp)
    filled = _filled(result)
    count = filled.sum(axis=1)
    assert np.all(count <= inp["n_slots"])
    prefix = np.arange(filled.shape[1])[None, :] < count[:, None]
    np.testing.assert_array_equal(filled, prefix)


@PROPERTY
@given(auction_inputs())
def test_winners_are_eligible(inp: Inputs) -> None:
    result = _run(inp)
    for i, j in zip(*np.nonzero(_filled(result)), strict=True):
        assert _eligible(inp, int(i), int(result.winner[i, j]))


@PROPERTY
@given(auction_inputs(), st.integers(0, 4))
def test_landscape_ignores_n_slots(inp: Inputs, slots: int) -> None:
    inp["max_slots"] = 4
    before = _run(inp)
    inp["n_slots"] = np.full_like(inp["n_slots"], slots)
    after = _run(inp)
    np.testing.assert_array_equal(before.landscape_col, after.landscape_col)
    np.testing.assert_array_equal(before.landscape_ecpm, after.landscape_ecpm)


def _inputs(
    bid: list[list[float]],
    pctr: list[list[float]],
    *,
    n_slots: list[int],
    item: list[list[int]] | None = None,
    valid: list[list[bool]] | None = None,
) -> Inputs:
    bid_a = np.asarray(bid, dtype=np.float64).reshape(len(bid), -1)
    n = bid_a.shape[0]
    return {
        "bid": bid_a,
        "pctr": np.asarray(pctr, dtype=np.float64).reshape(bid_a.shape),
        "item": (
            np.asarray(item, dtype=np.int64).reshape(bid_a.shape)
            if item is not None
            else np.arange(bid_a.size, dtype=np.int64).reshape(bid_a.shape)
        ),
        "valid": (
            np.asarray(valid, dtype=np.bool_).reshape(bid_a.shape)
            if valid is not None
            else np.ones(bid_a.shape, dtype=np.bool_)
        ),
        "n_slots": np.asarray(n_slots, dtype=np.int64),
        "reserve": np.zeros(n),
        "relevance_floor": np.zeros(n),
        "max_slots": None,
    }


def test_empty_batch() -> None:
    inp = _bad(
        bid=np.zeros((0, 5)),
        pctr=np.zeros((0, 5)),
        item=np.zeros((0, 5), dtype=np.int64),
        valid=np.zeros((0, 5), dtype=np.bool_),
        n_slots=np.zeros(0, dtype=np.int64),
        reserve=np.zeros(0),
        relevance_floor=np.zeros(0),
    )
    result = _run(inp)
    assert result.winner.shape == (0, 0)
    assert result.price.shape == (0, 0)
    assert result.landscape_ecpm.shape == (0, 1)
    assert result.landscape_col.shape == (0, 1)


def test_no_candidate_columns() -> None:
    inp = _inputs([[], []], [[], []], n_slots=[2, 1])
    result = _run(inp)
    np.testing.assert_array_equal(result.winner, [[-1, -1], [-1, -1]])
    np.testing.assert_array_equal(result.price, np.zeros((2, 2)))
    np.testing.assert_array_equal(result.landscape_col, np.full((2, 3), -1))


def test_all_ineligible() -> None:
    inp = _inputs(
        [[0.0, -1.0, 1.0, 1.0, math.nan, math.inf]],
        [[0.5, 0.5, 0.5, 0.0, 0.5, 0.5]],
        n_slots=[3],
        valid=[[True, True, False, True, True, True]],
    )
    result = _run(inp)
    np.testing.assert_array_equal(result.winner, [[-1, -1, -1]])
    np.testing.assert_array_equal(result.price, np.zeros((1, 3)))
    np.testing.assert_array_equal(result.ecpm, np.zeros((1, 3)))
    np.testing.assert_array_equal(result.landscape_col, np.full((1, 4), -1))


def test_infinite_pctr_is_ineligible() -> None:
    inp = _inputs([[1.0, 1.0]], [[math.inf, 0.5]], n_slots=[1])
    result = _run(inp)
    np.testing.assert_array_equal(result.winner, [[1]])


def test_result_dtypes_and_max_slots_padding() -> None:
    inp = _inputs([[1.0, 2.0]], [[0.5, 0.5]], n_slots=[1])
    inp["max_slots"] = 3
    result = _run(inp)
    assert result.winner.dtype == np.int32
    assert result.landscape_col.dtype == np.int32
    assert result.price.dtype == np.float64
    np.testing.assert_array_equal(result.winner, [[1, -1, -1]])
    np.testing.assert_array_equal(result.landscape_col, [[1, 0, -1, -1]])


def test_inputs_not_mutated_and_read_only_accepted() -> None:
    rng = np.random.default_rng(7)
    inp = _inputs(
        rng.choice([0.5, 1.0, 2.0], size=(20, 8)).tolist(),
        rng.choice([0.1, 0.25, 0.5], size=(20, 8)).tolist(),
        n_slots=rng.integers(0, 4, 20).tolist(),
        item=rng.integers(0, 4, (20, 8)).tolist(),
    )
    inp["reserve"] = np.full(20, 0.5)
    before = {k: v.copy() for k, v in inp.items() if isinstance(v, np.ndarray)}
    for name in before:
        inp[name].setflags(write=False)
    _run(inp)
    for name, value in before.items():
        np.testing.assert_array_equal(inp[name], value)


def _bad(**changes: Any) -> Inputs:
    inp = _inputs([[1.0, 2.0], [1.0, 2.0]], [[0.5, 0.5], [0.5, 0.5]], n_slots=[1, 1])
    inp.update(changes)
    return inp


@pytest.mark.parametrize(
    ("inp", "message"),
    [
        (_bad(bid=np.ones(2)), "bid must be 2-D"),
        (_bad(pctr=np.ones((2, 3))), "pctr has shape (2, 3), expected (2, 2)"),
        (_bad(item=np.ones((1, 2), dtype=np.int64)), "item has shape"),
        (_bad(valid=np.ones((2, 2, 1), dtype=np.bool_)), "valid has shape"),
        (_bad(n_slots=np.ones(3, dtype=np.int64)), "n_slots has shape (3,), expected (2,)"),
        (_bad(reserve=np.zeros((2, 1))), "reserve has shape"),
        (_bad(relevance_floor=np.zeros(1)), "relevance_floor has shape"),
        (_bad(item=np.ones((2, 2))), "item must be an integer array"),
        (_bad(n_slots=np.ones(2)), "n_slots must be an integer array"),
        (_bad(valid=np.ones((2, 2), dtype=np.int64)), "valid must be a boolean array"),
        (_bad(n_slots=np.array([1, -1])), "n_slots must be >= 0"),
        (_bad(reserve=np.array([0.0, -0.5])), "reserve must be >= 0"),
        (_bad(reserve=np.array([0.0, math.nan])), "reserve must be >= 0"),
        (_bad(max_slots=0), "max_slots must be >= max(n_slots)"),
    ],
)
def test_invalid_input_raises(inp: Inputs, message: str) -> None:
    with pytest.raises(ValueError, match=re.escape(message)):
        _run(inp)


def test_larger_random_batch_matches_reference() -> None:
    rng = np.random.default_rng(2024)
    n, c = 400, 30
    inp = _inputs(
        rng.choice([0.25, 0.5, 1.0, 2.0, 4.0], size=(n, c)).tolist(),
        rng.choice([0.0, 0.0625, 0.125, 0.25, 0.5], size=(n, c)).tolist(),
        n_slots=rng.integers(0, 6, n).tolist(),
        item=rng.integers(0, 12, (n, c)).tolist(),
        valid=(rng.random((n, c)) < 0.8).tolist(),
    )
    inp["reserve"] = rng.choice([0.0, 0.25, 1.0], size=n)
    inp["relevance_floor"] = rng.choice([0.0, 0.1], size=n)
    got, want = _run(inp), reference(inp)
    np.testing.assert_array_equal(got.winner, want.winner)
    np.testing.assert_allclose(got.price, want.price, rtol=1e-12, atol=0.0)
    np.testing.assert_array_equal(got.landscape_col, want.landscape_col)
