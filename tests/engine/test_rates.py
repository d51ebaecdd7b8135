"""Item lifts shrunk towards a covariate (``rates.shrunk_lift``) and history popularity."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from numpy.typing import NDArray

from quanzhan.engine.popularity import history_popularity
from quanzhan.engine.rates import shrunk_lift


def _planted(
    seed: int, *, n_keys: int = 400, rows_per_key: int = 300, slope: float = 0.6
) -> tuple[NDArray[np.int64], NDArray[np.float64], NDArray[np.float64], NDArray[np.float64],
           NDArray[np.float64]]:  # fmt: skip
    """Keys whose true log lift is ``slope x covariate + noise``; each row expects 0.05."""
    rng = np.random.default_rng(seed)
    covariate = rng.normal(0.0, 1.0, n_keys)
    true_lift = slope * covariate + rng.normal(0.0, 0.3, n_keys)
    # Keys differ in how much they were shown: a tenth of them hardly at all.
    rows = np.where(np.arange(n_keys) % 10 == 0, 3, rows_per_key)
    key = np.repeat(np.arange(n_keys), rows)
    expected = np.full(len(key), 0.05)
    observed = (rng.random(len(key)) < expected * np.exp(true_lift[key])).astype(np.float64)
    return key, observed, expected, covariate, true_lift


def test_it_reads_the_slope_and_spread_off_the_data() -> None:
    key, observed, expected, covariate, true_lift = _planted(1)
    lift, slope, spread = shrunk_lift(
        key=key, observed=observed, expected=expected, n_keys=len(covariate), covariate=covariate
    )
    assert slope == pytest.approx(0.6, abs=0.1)
    assert spread == pytest.approx(0.3**2, abs=0.05)
    # Shrinkage beats the raw ratio, most of all on the keys with hardly any rows.
    wins = np.bincount(key, weights=observed, minlength=len(covariate))
    due = np.bincount(key, weights=expected, minlength=len(covariate))
    raw = np.log((wins + 0.5) / (due + 0.5))
    thin = np.arange(len(covariate)) % 10 == 0
    for rows in (thin, ~thin):
        assert np.mean((lift[rows] - true_lift[rows]) ** 2) < np.mean(
            (raw[rows] - true_lift[rows]) ** 2
        )
    # A key never shown sits where its covariate puts it.
    np.testing.assert_allclose(lift[thin], slope * covariate[thin], atol=0.2)


def test_a_covariate_that_says_nothing_gets_no_slope() -> None:
    key, observed, expected, _, true_lift = _planted(2, slope=0.0)
    noise = np.random.default_rng(3).normal(0.0, 1.0, len(true_lift))
    _, slope, _ = shrunk_lift(
        key=key, observed=observed, expected=expected, n_keys=len(noise), covariate=noise
    )
    assert slope < 0.1


def test_without_data_every_key_takes_its_prior() -> None:
    covariate = np.array([0.0, 1.0, -1.0])
    lift, slope, _ = shrunk_lift(
        key=np.zeros(0, dtype=np.int64), observed=np.zeros(0), expected=np.zeros(0),
        n_keys=3, covariate=covariate,
    )  # fmt: skip
    assert slope == 0.0
    np.testing.assert_array_equal(lift, np.zeros(3))


@settings(max_examples=60, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), n_keys=st.integers(1, 30))
def test_lifts_are_finite_and_follow_the_keys_own_record(seed: int, n_keys: int) -> None:
    """Any data: finite lifts, and one more success raises its key's lift."""
    rng = np.random.default_rng(seed)
    n = int(rng.integers(0, 500))
    key = rng.integers(0, n_keys, n).astype(np.int64)
    expected = rng.uniform(0.0, 0.5, n)
    observed = (rng.random(n) < expected).astype(np.float64)
    covariate = rng.normal(0.0, 1.0, n_keys)
    lift, _, spread = shrunk_lift(
        key=key, observed=observed, expected=expected, n_keys=n_keys, covariate=covariate
    )
    assert np.all(np.isfinite(lift)) and spread > 0
    more, _, _ = shrunk_lift(
        key=np.append(key, 0), observed=np.append(observed, 1.0),
        expected=np.append(expected, 0.0), n_keys=n_keys, covariate=covariate,
    )  # fmt: skip
    assert more[0] > lift[0]


def test_popularity_is_log_clicks_against_the_category_and_zero_without_history() -> None:
    category = np.array([0, 0, 0, 1, 1])
    history = np.array([0, 0, 0, 1, 3, 3, 4])  # item 0: 3 clicks, 1: 1, 2: none; 3: 2, 4: 1
    out = history_popularity(item_category=category, n_categories=2, history_item=history)
    mean0 = (np.log(4) + np.log(2)) / 2
    mean1 = (np.log(3) + np.log(2)) / 2
    np.testing.assert_allclose(
        out, [np.log(4) - mean0, np.log(2) - mean0, 0.0, np.log(3) - mean1, np.log(2) - mean1]
    )


def test_popularity_refuses_history_outside_the_catalog() -> None:
    with pytest.raises(ValueError, match="item ids"):
        history_popularity(
            item_category=np.zeros(3, dtype=np.int64), n_categories=1, history_item=np.array([3])
        )
