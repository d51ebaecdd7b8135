"""``DelayModel``: the click-to-order delay, fitted to right-truncated observations."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from numpy.typing import NDArray

from quanzhan.bidding.delay import DelayModel

DAY = 86_400.0
HOUR = 3600.0


def _truncated_sample(
    seed: int, *, median: float, sigma: float, n: int = 10_000
) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """A day of clicks at uniform times, log-normal delays; seen at midnight, so only the
    orders placed by then are known. Returns each seen order's delay and its click's age."""
    rng = np.random.default_rng(seed)
    click = rng.uniform(0.0, DAY, n)
    delay = rng.lognormal(math.log(median), sigma, n)
    now = DAY
    seen = click + delay <= now
    return delay[seen], now - click[seen]


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_fit_recovers_the_median_from_right_truncated_orders(seed: int) -> None:
    median, sigma = 3 * HOUR, 1.2
    delay, horizon = _truncated_sample(seed, median=median, sigma=sigma)
    assert 0.5 * 10_000 < len(delay) < 0.95 * 10_000  # truncation does bite
    # Long delays are the ones still to come: the naive median is clearly too short.
    assert np.median(delay) < 0.85 * median
    model = DelayModel()
    model.fit(delay=delay, horizon=horizon)
    assert model.median_seconds == pytest.approx(median, rel=0.1)
    assert model.sigma == pytest.approx(sigma, rel=0.15)


def test_fit_without_truncation_recovers_the_median_too() -> None:
    rng = np.random.default_rng(5)
    delay = rng.lognormal(math.log(45 * 60.0), 0.8, 5000)
    model = DelayModel()
    model.fit(delay=delay, horizon=np.full(5000, 30 * DAY))
    assert model.median_seconds == pytest.approx(45 * 60.0, rel=0.1)


def test_a_fit_moves_away_from_the_prior() -> None:
    prior = DelayModel().median_seconds
    delay, horizon = _truncated_sample(3, median=6 * HOUR, sigma=1.0)
    model = DelayModel()
    model.fit(delay=delay, horizon=horizon)
    assert model.median_seconds > 4 * prior
    # The fitted CDF says half the orders take the fitted median.
    assert float(model.share_arrived(np.array([model.median_seconds]))[0]) == pytest.approx(0.5)


def test_fit_on_nothing_usable_keeps_the_prior() -> None:
    model = DelayModel()
    mu, sigma = model.mu, model.sigma
    model.fit(delay=np.zeros(0), horizon=np.zeros(0))
    # Orders later than their click's age cannot have been seen, NaNs are not data.
    model.fit(delay=np.array([100.0, math.nan, 5.0]), horizon=np.array([50.0, 10.0, math.nan]))
    assert (model.mu, model.sigma) == (mu, sigma)


@pytest.mark.parametrize(
    ("delay", "horizon"),
    [
        (np.ones(3), np.ones(2)),
        (np.ones((2, 2)), np.ones(4)),
        (np.ones(1), np.ones((1, 1))),
    ],
)
def test_mismatched_shapes_are_refused(
    delay: NDArray[np.float64], horizon: NDArray[np.float64]
) -> None:
    model = DelayModel()
    with pytest.raises(ValueError, match="shape"):
        model.fit(delay=delay, horizon=horizon)


def _fitted(median: float, sigma: float) -> DelayModel:
    delay, horizon = _truncated_sample(4, median=median, sigma=sigma, n=3000)
    model = DelayModel()
    model.fit(delay=delay, horizon=horizon)
    return model


MODELS = {"prior": DelayModel(), "fitted": _fitted(2 * HOUR, 1.5)}


@pytest.mark.parametrize("which", sorted(MODELS))
def test_share_arrived_starts_at_zero_and_tends_to_one(which: str) -> None:
    model = MODELS[which]
    share = model.share_arrived(np.array([-100.0, 0.0, 30 * DAY, 1e12]))
    assert share[0] == share[1] == 0.0
    assert share[2] > 0.999
    assert share[3] == pytest.approx(1.0, abs=1e-12)


@pytest.mark.parametrize("which", sorted(MODELS))
def test_share_arrived_is_half_at_the_median(which: str) -> None:
    model = MODELS[which]
    median = model.median_seconds
    share = model.share_arrived(np.array([0.5 * median, median, 2 * median]))
    assert share[0] < 0.5 < share[2]
    assert share[1] == pytest.approx(0.5, abs=1e-12)


@settings(max_examples=100, deadline=None)
@given(
    st.sampled_from(sorted(MODELS)),
    st.lists(st.floats(-DAY, 60 * DAY), min_size=2, max_size=40),
)
def test_share_arrived_is_a_cdf(which: str, ages: list[float]) -> None:
    shares = MODELS[which].share_arrived(np.array(sorted(ages)))
    assert shares.shape == (len(ages),)
    assert np.all((shares >= 0.0) & (shares <= 1.0))
    assert all(a <= b for a, b in itertools.pairwise(shares.tolist()))


def _attributed_within(
    seed: int, *, median: float, sigma: float, window: float, n: int = 20_000
) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """Clicks over three days, seen at the end of the third: attribution credits only the
    orders placed within ``window`` of their click, so a long tail is never seen at all."""
    rng = np.random.default_rng(seed)
    click = rng.uniform(0.0, 3 * DAY, n)
    delay = rng.lognormal(math.log(median), sigma, n)
    now = 3 * DAY
    seen = (click + delay <= now) & (delay <= window)
    return delay[seen], now - click[seen]


def test_a_window_keeps_orders_past_it_from_looking_late() -> None:
    """Orders take 12 hours at the median with a long tail; attribution stops at a day. Told
    of the window, the fit finds the distribution and says every order within the window has
    come once a click is a day old; not told, it takes the tail that is never seen for orders
    still to come and shortens the distribution."""
    median, sigma, window = 12 * HOUR, 1.5, DAY
    delay, horizon = _attributed_within(6, median=median, sigma=sigma, window=window)
    told, untold = DelayModel(window_seconds=window), DelayModel()
    for model in (told, untold):
        model.fit(delay=delay, horizon=horizon)
    assert told.median_seconds == pytest.approx(median, rel=0.15)
    assert untold.median_seconds < 0.7 * median
    ages = np.array([window, 2 * window, 30 * DAY])
    np.testing.assert_array_equal(told.share_arrived(ages), 1.0)
    # Within the window, the share of what the window holds: a half-day-old click has brought
    # more of its orders than the whole distribution's median says.
    half_day = float(told.share_arrived(np.array([12 * HOUR]))[0])
    assert 0.5 < half_day < 1.0


def test_a_window_must_be_positive() -> None:
    for window in (0.0, -1.0, math.nan):
        with pytest.raises(ValueError, match="window_seconds"):
            DelayModel(window_seconds=window)
