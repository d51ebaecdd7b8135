"""The value calibration learned over campaigns: a gamma prior fitted to every campaign's orders
(negative binomial), each campaign's posterior read at a low quantile."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.optimize import approx_fprime
from scipy.special import gammainccinv
from scipy.stats import gamma

from quanzhan.bidding.value_prior import (
    NO_ERROR,
    GammaPrior,
    ThinEvidence,
    _objective,
    fit_prior,
    posterior_quantile,
)


def test_with_no_orders_due_anywhere_the_prior_is_no_error() -> None:
    assert fit_prior(realized=np.zeros(5), due=np.zeros(5)) == NO_ERROR
    assert fit_prior(realized=np.zeros(0), due=np.zeros(0), start=GammaPrior(2.0, 0.5)) == NO_ERROR


def test_a_planted_spread_of_ratios_is_recovered() -> None:
    """600 campaigns whose true ratios follow Gamma(3, mean 0.7), due 1 to 100 orders each."""
    rng = np.random.default_rng(11)
    due = np.exp(rng.uniform(0.0, np.log(100.0), 600))
    ratio = rng.gamma(3.0, 0.7 / 3.0, 600)
    prior = fit_prior(realized=rng.poisson(due * ratio).astype(float), due=due)
    assert prior.mean == pytest.approx(0.7, rel=0.1)
    assert prior.alpha == pytest.approx(3.0, rel=0.3)


def test_the_fit_does_not_depend_on_where_it_starts() -> None:
    rng = np.random.default_rng(8)
    due = rng.uniform(1.0, 50.0, 300)
    realized = rng.poisson(due * rng.gamma(2.0, 0.4, 300)).astype(float)
    found = [
        fit_prior(realized=realized, due=due, start=start)
        for start in (NO_ERROR, GammaPrior(0.5, 0.2), GammaPrior(50.0, 3.0))
    ]
    for other in found[1:]:
        assert other.alpha == pytest.approx(found[0].alpha, rel=1e-3)
        assert other.mean == pytest.approx(found[0].mean, rel=1e-3)


def test_little_evidence_is_held_to_the_crowd_and_plenty_to_its_own_ratio() -> None:
    prior = GammaPrior(alpha=3.0, mean=0.7)
    new, proven_good, proven_poor = posterior_quantile(
        prior,
        realized=np.array([0.0, 1000.0, 400.0]),
        due=np.array([0.0, 1000.0, 1000.0]),
        quantile=0.3,
    )
    assert new == pytest.approx(gamma(3.0, scale=0.7 / 3.0).ppf(0.3))
    assert new < 0.7  # a low quantile, not the mean
    assert proven_good == pytest.approx(1.0, abs=0.05)
    assert proven_poor == pytest.approx(0.4, abs=0.03)


def test_campaigns_due_nothing_add_nothing_to_the_fit() -> None:
    rng = np.random.default_rng(2)
    due = rng.uniform(1.0, 30.0, 80)
    realized = rng.poisson(due * 0.6).astype(float)
    padded = fit_prior(
        realized=np.concatenate([realized, np.zeros(20)]),
        due=np.concatenate([due, np.zeros(20)]),
    )
    assert fit_prior(realized=realized, due=due) == padded


def test_campaigns_whose_figures_are_not_finite_are_left_out() -> None:
    rng = np.random.default_rng(6)
    due = rng.uniform(1.0, 30.0, 60)
    realized = rng.poisson(due * 0.6).astype(float)
    clean = fit_prior(realized=realized, due=due)
    dirty = fit_prior(
        realized=np.concatenate([realized, [np.inf, 3.0, np.nan]]),
        due=np.concatenate([due, [5.0, np.inf, 4.0]]),
    )
    assert dirty == clean


def test_the_gradient_is_the_objectives() -> None:
    rng = np.random.default_rng(5)
    due = rng.uniform(0.1, 20.0, 40)
    seen = rng.poisson(due * 0.8).astype(float)
    for point in ([np.log(4.0), 0.0], [np.log(0.7), -0.6], [np.log(40.0), 0.4]):
        x = np.array(point)
        numeric = approx_fprime(x, lambda p: _objective(p, seen, due)[0], 1e-6)
        np.testing.assert_allclose(_objective(x, seen, due)[1], numeric, rtol=1e-4, atol=1e-3)


@pytest.mark.parametrize("quantile", [0.0, 1.0, -0.1, 2.0, float("nan")])
def test_a_quantile_outside_zero_to_one_is_refused(quantile: float) -> None:
    with pytest.raises(ValueError, match="quantile"):
        posterior_quantile(NO_ERROR, realized=np.zeros(1), due=np.zeros(1), quantile=quantile)


@pytest.mark.parametrize(("alpha", "mean"), [(0.0, 1.0), (1.0, -1.0), (float("inf"), 1.0)])
def test_a_prior_must_be_positive_and_finite(alpha: float, mean: float) -> None:
    with pytest.raises(ValueError, match="positive and finite"):
        GammaPrior(alpha=alpha, mean=mean)


@settings(max_examples=60, deadline=None)
@given(n=st.integers(1, 50), seed=st.integers(0, 2**32 - 1), scale=st.floats(0.0, 1e4))
def test_whatever_the_orders_the_calibration_is_finite_and_rises_with_them(
    n: int, seed: int, scale: float
) -> None:
    rng = np.random.default_rng(seed)
    due = rng.exponential(scale, n) * (rng.random(n) < 0.8)
    realized = np.floor(rng.exponential(scale, n))
    prior = fit_prior(realized=realized, due=due)
    calibration = posterior_quantile(prior, realized=realized, due=due, quantile=0.3)
    assert np.all(np.isfinite(calibration)) and np.all(calibration >= 0)
    more = posterior_quantile(prior, realized=realized + 1.0, due=due, quantile=0.3)
    assert np.all(more > calibration)
    thin = ThinEvidence(alpha=7.0, half=0.1)
    widened = posterior_quantile(prior, realized=realized, due=due, quantile=0.3, thin=thin)
    assert np.all(np.isfinite(widened)) and np.all(widened >= 0)
    more = posterior_quantile(prior, realized=realized + 1.0, due=due, quantile=0.3, thin=thin)
    assert np.all(more > widened)


def test_a_campaign_due_no_order_takes_the_thin_spread_and_one_due_many_the_crowds() -> None:
    prior = GammaPrior(alpha=60.0, mean=0.9)
    thin = ThinEvidence(alpha=6.0, half=0.5)
    none, half, many = thin.shapes(prior, np.array([0.0, 0.5, 1e6]))
    assert none == pytest.approx(6.0)
    # Halfway in variance at ``half`` orders due.
    assert 1.0 / half == pytest.approx(0.5 / 60.0 + 0.5 / 6.0)
    assert many == pytest.approx(60.0, rel=1e-5)
    # A crowd already wider than the thin spread is never narrowed.
    wide = GammaPrior(alpha=3.0, mean=0.9)
    np.testing.assert_allclose(thin.shapes(wide, np.array([0.0, 0.5, 40.0])), 3.0)


def test_thin_evidence_lowers_the_quantile_of_campaigns_with_few_orders_only() -> None:
    prior = GammaPrior(alpha=60.0, mean=0.9)
    thin = ThinEvidence(alpha=6.0, half=0.5)
    realized = np.array([0.0, 0.0, 1.0, 900.0])
    due = np.array([0.0, 0.1, 1.0, 1000.0])
    crowd = posterior_quantile(prior, realized=realized, due=due, quantile=0.2)
    widened = posterior_quantile(prior, realized=realized, due=due, quantile=0.2, thin=thin)
    # Due nothing: the 20% quantile of Gamma(6, mean 0.9), well under the crowd's.
    assert widened[0] == pytest.approx(gamma(6.0, scale=0.9 / 6.0).ppf(0.2))
    assert widened[0] < crowd[0] - 0.1
    assert np.all(widened[:3] < crowd[:3])
    assert widened[3] == pytest.approx(crowd[3], rel=1e-3)  # its own orders decide
    # The median under a wider prior stays near the mean: the margin is what widens.
    median = posterior_quantile(prior, realized=realized, due=due, quantile=0.5, thin=thin)
    assert median[0] == pytest.approx(0.9, rel=0.07)


def test_without_thin_evidence_the_quantile_is_the_crowds_to_the_bit() -> None:
    """The posterior as it was computed before thin evidence: ``Gamma(alpha + realized,
    beta + due)``, its quantile by ``gammainccinv``."""
    prior = GammaPrior(alpha=37.3, mean=0.93)
    rng = np.random.default_rng(3)
    due = rng.exponential(3.0, 50)
    realized = rng.poisson(due).astype(float)
    got = posterior_quantile(prior, realized=realized, due=due, quantile=0.2)
    expected = gammainccinv(prior.alpha + realized, 0.8) / (prior.beta + due)
    np.testing.assert_array_equal(got, expected)


def test_thin_evidence_reads_odd_orders_due_as_none_or_as_plenty() -> None:
    prior = GammaPrior(alpha=60.0, mean=0.9)
    thin = ThinEvidence(alpha=6.0, half=0.5)
    shapes = thin.shapes(prior, np.array([-0.1, 0.0, np.inf]))
    np.testing.assert_allclose(shapes, [6.0, 6.0, 60.0])
    quantile = posterior_quantile(
        prior, realized=np.zeros(2), due=np.array([-0.1, 0.0]), quantile=0.2, thin=thin
    )
    assert np.all(np.isfinite(quantile)) and quantile[0] == quantile[1]


@pytest.mark.parametrize(("alpha", "half"), [(0.0, 1.0), (5.0, 0.0), (float("nan"), 1.0)])
def test_thin_evidence_must_be_positive_and_finite(alpha: float, half: float) -> None:
    with pytest.raises(ValueError, match="positive and finite"):
        ThinEvidence(alpha=alpha, half=half)


def test_a_figure_gone_astray_counts_as_no_evidence() -> None:
    """A nan or negative count of orders reads as none, as ``ThinEvidence`` reads it, rather
    than making the campaign's calibration nan."""
    prior = GammaPrior(alpha=20.0, mean=1.1)
    astray = posterior_quantile(
        prior,
        realized=np.array([np.nan, -1.0, 2.0]),
        due=np.array([3.0, np.nan, -2.0]),
        quantile=0.2,
        thin=ThinEvidence(alpha=7.0, half=0.1),
    )
    none = posterior_quantile(
        prior,
        realized=np.array([0.0, 0.0, 2.0]),
        due=np.array([3.0, 0.0, 0.0]),
        quantile=0.2,
        thin=ThinEvidence(alpha=7.0, half=0.1),
    )
    np.testing.assert_array_equal(astray, none)
