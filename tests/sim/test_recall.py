"""Retrieval recall against the hidden truth: the arithmetic on hand-made cases, the truth's
wiring into the market, and the figure in the run summary."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from quanzhan.sim.config import load_scenario
from quanzhan.sim.market import Market
from quanzhan.sim.recall import recall_at, sample_rows, true_values

# Three requests over six campaigns; campaign 5 could not bid anywhere (value 0).
VALUE = np.array(
    [
        [6.0, 5.0, 4.0, 3.0, 2.0, 0.0],  # best three: 0, 1, 2
        [1.0, 2.0, 3.0, 4.0, 5.0, 0.0],  # best three: 4, 3, 2
        [0.0, 0.0, 0.0, 0.0, 7.0, 0.0],  # one campaign with any value
    ]
)


def test_recall_counts_the_best_found_in_the_first_k() -> None:
    retrieved = np.array(
        [
            [1, 5, 0, 2],  # 1 and 0 in the first three (2 comes fourth): 2 of 3
            [4, 3, 2, -1],  # all three
            [-1, -1, -1, -1],  # nothing: 0 of 1
        ],
        dtype=np.int32,
    )
    got = recall_at(retrieved=retrieved, value=VALUE, k=3)
    assert got == pytest.approx([2 / 3, 1.0, 0.0])


def test_recall_divides_by_the_campaigns_that_have_value() -> None:
    """Fewer than k campaigns with a positive value: the denominator is their number."""
    retrieved = np.array([[4, 0, 1, 2, 3, 5]] * 3, dtype=np.int32)
    got = recall_at(retrieved=retrieved, value=VALUE, k=10)
    assert got == pytest.approx([1.0, 1.0, 1.0])  # five, five and one with value, all found
    partial = recall_at(retrieved=retrieved[:, :2], value=VALUE, k=10)
    assert partial == pytest.approx([2 / 5, 2 / 5, 1.0])


def test_recall_is_undefined_where_nothing_has_value() -> None:
    got = recall_at(retrieved=np.array([[0, 1]], dtype=np.int32), value=np.zeros((1, 4)), k=2)
    assert np.isnan(got[0])


def test_recall_rejects_a_depth_below_one() -> None:
    with pytest.raises(ValueError):
        recall_at(retrieved=np.zeros((1, 1), np.int32), value=VALUE[:1], k=0)


def test_sample_rows_take_every_stride_th_request_up_to_a_cap() -> None:
    request_id = np.arange(100, 200, dtype=np.int64)
    assert sample_rows(request_id, stride=25, cap=10).tolist() == [0, 25, 50, 75]
    capped = sample_rows(request_id, stride=1, cap=5)
    assert capped.tolist() == [0, 24, 49, 74, 99]


def test_true_values_are_the_markets_truth_on_live_campaigns_only() -> None:
    market = Market(load_scenario("tiny"))
    view = market.reset(seed=4)
    batch = market.next_requests()
    assert batch is not None
    empty = np.full((len(batch), 1), -1, np.int32)
    market.serve(campaign=empty, item=empty)
    live = np.zeros(len(view.campaigns), dtype=bool)
    live[[3, 10, 40]] = True
    rows = np.array([0, 5, 7], dtype=np.int64)
    value = true_values(market, request_index=rows, live=live)
    assert value.shape == (3, len(view.campaigns))
    assert np.all(value[:, ~live] == 0.0) and np.all(value[:, live] > 0.0)
    item = view.campaigns.item[10]
    ctr, cvr = market.truth(request_index=rows, item=np.full(3, item, dtype=np.int32))
    assert value[:, 10] == pytest.approx(ctr * cvr * view.items.price[item])


def test_summary_reports_retrieval_recall(tiny_summary: dict[str, Any]) -> None:
    retrieval = tiny_summary["retrieval"]
    assert retrieval["requests_sampled"] > 0
    assert retrieval["k"] == load_scenario("tiny").engine.candidates
    for key in ("recall_at_100", "recall_at_k"):
        assert 0.0 <= retrieval[key] <= 1.0
    by_surface = retrieval["by_surface"]
    assert sum(s["requests_sampled"] for s in by_surface.values()) == retrieval["requests_sampled"]
