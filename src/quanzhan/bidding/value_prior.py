"""How much of its predicted value a campaign truly buys, learned from every campaign's orders.

A campaign's value calibration is its realized orders over the orders its bought clicks were
predicted to bring. Campaigns differ a lot in it: the auction hands each the clicks it
over-rates, and some items are over-rated more than others (on ``steady`` the campaigns' true
ratios have quartiles of about 0.5, 0.8 and 1.05). A third of the campaigns are due under one
order over three days, so their own orders cannot show where in that spread they stand.

So the ratios are taken to follow a gamma distribution over campaigns, ``GammaPrior``, fitted
to all their orders at once by ``fit_prior`` (empirical Bayes: each campaign's realized orders
are Poisson given its ratio, so over campaigns they are negative binomial), and a campaign's
calibration is a low quantile of its posterior, ``Gamma(alpha + realized, beta + due)``
(``posterior_quantile``): one with little evidence of its own is held to where most campaigns
stand, one with plenty to its own ratio. Weak priors on the fit keep it at ``NO_ERROR``, four
pseudo-orders at a ratio of one, until the orders say otherwise.

The prior is the platform's, fitted over every steered campaign by whatever drives the policy
(``bidding.observer``), as the engine's models are; a policy reads it off its observations.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray
from scipy.optimize import minimize
from scipy.special import digamma, gammainccinv, gammaln

_LOG_ALPHA_SD = 1.0  # how far the data may move the prior from no error, in log
_LOG_MEAN_SD = 0.5
_ALPHA_BOUNDS = (0.3, 200.0)
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


def fit_prior(
    *,
    realized: NDArray[np.float64],
    due: NDArray[np.float64],
    start: GammaPrior = NO_ERROR,
) -> GammaPrior:
    """The prior by maximum a posteriori over the campaigns ``(n,)`` due any order, searched
    from ``start`` (the last fit, say); ``NO_ERROR`` where none is due anything."""
    used = due > 0
    if not used.any():
        return NO_ERROR
    seen, owed = np.maximum(realized[used], 0.0), due[used]
    found = minimize(
        _objective, np.log([start.alpha, start.mean]), args=(seen, owed), jac=True,
        method="L-BFGS-B", bounds=[tuple(np.log(_ALPHA_BOUNDS)), _LOG_MEAN_BOUNDS],
    )  # fmt: skip
    alpha, mean = np.exp(found.x)
    return GammaPrior(alpha=float(alpha), mean=float(mean))


def posterior_quantile(
    prior: GammaPrior,
    *,
    realized: NDArray[np.float64],
    due: NDArray[np.float64],
    quantile: float,
) -> NDArray[np.float64]:
    """Per campaign ``(n,)``: the ``quantile`` of its posterior ratio of realized to due orders."""
    if not 0.0 < quantile < 1.0:
        raise ValueError(f"quantile must lie in (0, 1), not {quantile}")
    shape = prior.alpha + np.maximum(realized, 0.0)
    rate = prior.beta + np.maximum(due, 0.0)
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
