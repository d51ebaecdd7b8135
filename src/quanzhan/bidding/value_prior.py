"""How much of its predicted value a campaign truly buys, learned from every campaign's orders.

A campaign's value calibration is its realized orders over the orders its bought clicks were
predicted to bring. Most campaigns are due a few orders a day, a third of them under one over
three days, so their own ratio is mostly Poisson noise: how far to trust it depends on how much
campaigns really differ, which no campaign can tell from its own orders, but all of them can.

So the ratios are taken to follow a gamma distribution over campaigns, ``GammaPrior``, fitted
to all their orders at once by ``fit_prior`` (empirical Bayes: each campaign's realized orders
are Poisson given its ratio, so over campaigns they are negative binomial), and a campaign's
calibration is a low quantile of its posterior, ``Gamma(alpha + realized, beta + due)``
(``posterior_quantile``). ``alpha`` is how many orders the crowd's ratio is worth against a
campaign's own: on a ``steady`` run it rises from 4 to about 45 over three days with a mean
near 1 (campaigns differ by about 15%, far less than their few orders suggest), so a campaign
is held near the crowd until it has dozens of orders of its own. Weak priors on the fit keep
it at ``NO_ERROR``, four pseudo-orders at a ratio of one, until the orders say otherwise.

The crowd's spread is what the campaigns with orders show, and it does not hold for those
without. A campaign due hardly an order has an item the models know little of, its purchase
odds read off its category and its past popularity, and its error is its item's own: on a
``steady`` run (seed 1, the benchmark's menus) a campaign's log ratio of true to predicted value
per click spread 0.38 over the quarter of campaigns due under a third of an order in three
days, against 0.14-0.16 over the other quarters, while the fitted prior held them all to
about 0.12. Their orders cannot show it (a campaign due no order tells nothing of how far off
it is), so ``posterior_quantile`` can widen the prior of a campaign with ``thin`` evidence
towards a given spread, by as much as its due orders fall short of a given count
(``ThinEvidence``).

The prior is the platform's, as the engine's models are, fitted by whatever drives the policy:
the simulator's observer over every steered campaign's orders to date (``bidding.observer``),
the service's control loop over every campaign's clicks of the last week (``api.control``). A
policy reads it off its observations.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray
from scipy.optimize import minimize
from scipy.special import digamma, gammainccinv, gammaln

# Spreads of the Gaussian priors on log alpha and log mean, centred on no error.
_LOG_ALPHA_SD = 1.0
_LOG_MEAN_SD = 0.5
# A spread wider than exponential (alpha < 1) would have a campaign without orders plan at
# almost nothing, and so never earn the evidence to bid again.
_ALPHA_BOUNDS = (1.0, 200.0)
_LOG_MEAN_BOUNDS = (-5.0, 3.0)


@dataclass(frozen=True, slots=True)
class GammaPrior:
    """Campaigns' ratios of realized to predicted orders: ``Gamma(alpha, alpha / mean)``."""

    alpha: float
    mean: float

    def __post_init__(self) -> None:
        if not (np.isfinite(self.alpha) and self.alpha > 0):
            raise ValueError(f"alpha must be positive and finite, not {self.alpha}")
        if not (np.isfinite(self.mean) and self.mean > 0):
            raise ValueError(f"mean must be positive and finite, not {self.mean}")

    @property
    def beta(self) -> float:
        return self.alpha / self.mean


NO_ERROR = GammaPrior(alpha=4.0, mean=1.0)


@dataclass(frozen=True, slots=True)
class ThinEvidence:
    """How wide a campaign's prior is while it has few orders due: ``alpha`` is the prior's
    shape for a campaign due none (its ratio's spread about ``1 / sqrt(alpha)``; the crowd's
    where that is wider already), and a campaign due ``due`` orders blends that variance with
    the crowd's in the weights ``half / (half + due)`` and ``due / (half + due)``: at ``half``
    orders due it is halfway."""

    alpha: float
    half: float

    def __post_init__(self) -> None:
        if not (np.isfinite(self.alpha) and self.alpha > 0):
            raise ValueError(f"alpha must be positive and finite, not {self.alpha}")
        if not (np.isfinite(self.half) and self.half > 0):
            raise ValueError(f"half must be positive and finite, not {self.half}")

    def shapes(self, prior: GammaPrior, due: NDArray[np.float64]) -> NDArray[np.float64]:
        """Each campaign's prior shape ``(n,)``: never narrower than the crowd's. A campaign
        due nothing, or less (a figure gone astray), counts as due none, one due infinitely
        many as known."""
        widest = min(self.alpha, prior.alpha)
        owed = np.maximum(due, 0.0)
        counted = np.where(np.isfinite(owed), owed, 0.0)
        known = np.where(np.isinf(owed), 1.0, counted / (counted + self.half))
        out: NDArray[np.float64] = 1.0 / (known / prior.alpha + (1.0 - known) / widest)
        return out


def fit_prior(
    *,
    realized: NDArray[np.float64],
    due: NDArray[np.float64],
    start: GammaPrior = NO_ERROR,
) -> GammaPrior:
    """The prior by maximum a posteriori over the campaigns ``(n,)`` due any order, searched
    from ``start`` (the last fit, say); ``NO_ERROR`` where none is due anything. Campaigns
    whose figures are not finite are left out; where the search ends on no finite point,
    ``start`` stands."""
    used = (due > 0) & np.isfinite(due) & np.isfinite(realized)
    if not used.any():
        return NO_ERROR
    seen, owed = np.maximum(realized[used], 0.0), due[used]
    found = minimize(
        _objective, np.log([start.alpha, start.mean]), args=(seen, owed), jac=True,
        method="L-BFGS-B", bounds=[tuple(np.log(_ALPHA_BOUNDS)), _LOG_MEAN_BOUNDS],
    )  # fmt: skip
    if not np.all(np.isfinite(found.x)):
        return start
    alpha, mean = np.exp(found.x)
    return GammaPrior(alpha=float(alpha), mean=float(mean))


def posterior_quantile(
    prior: GammaPrior,
    *,
    realized: NDArray[np.float64],
    due: NDArray[np.float64],
    quantile: float,
    thin: ThinEvidence | None = None,
) -> NDArray[np.float64]:
    """Per campaign ``(n,)``: the ``quantile`` of its posterior ratio of realized to due orders,
    its prior widened where its evidence is ``thin`` (none: the crowd's for all)."""
    if not 0.0 < quantile < 1.0:
        raise ValueError(f"quantile must lie in (0, 1), not {quantile}")
    alpha = prior.alpha if thin is None else thin.shapes(prior, due)
    # A figure gone astray (negative, nan) counts as none, as in ``ThinEvidence.shapes``.
    shape = alpha + np.where(realized > 0, realized, 0.0)
    rate = alpha / prior.mean + np.where(due > 0, due, 0.0)
    out: NDArray[np.float64] = gammainccinv(shape, 1.0 - quantile) / rate
    return out


def _objective(
    point: NDArray[np.float64], seen: NDArray[np.float64], due: NDArray[np.float64]
) -> tuple[float, NDArray[np.float64]]:
    """Negative log posterior of ``(log alpha, log mean)`` and its gradient."""
    log_alpha, log_mean = point
    alpha, mean = np.exp(log_alpha), np.exp(log_mean)
    beta = alpha / mean
    # Negative binomial log likelihood, less the terms without alpha or beta.
    ll = np.sum(gammaln(alpha + seen) - gammaln(alpha) + alpha * np.log(beta))
    ll -= np.sum((alpha + seen) * np.log(beta + due))
    d_alpha = np.sum(digamma(alpha + seen) - digamma(alpha) + np.log(beta) - np.log(beta + due))
    d_beta = np.sum(alpha / beta - (alpha + seen) / (beta + due))
    # In (log alpha, log mean), with beta = alpha / mean.
    g_log_alpha = alpha * d_alpha + beta * d_beta
    g_log_mean = -beta * d_beta
    a_off = (log_alpha - np.log(NO_ERROR.alpha)) / _LOG_ALPHA_SD
    m_off = (log_mean - np.log(NO_ERROR.mean)) / _LOG_MEAN_SD
    value = -ll + 0.5 * (a_off**2 + m_off**2)
    gradient = np.array([-g_log_alpha + a_off / _LOG_ALPHA_SD, -g_log_mean + m_off / _LOG_MEAN_SD])
    return float(value), gradient
