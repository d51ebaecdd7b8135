"""How long orders take after their click, learned from the orders the engine has seen.

A log-normal delay fitted by maximum likelihood to the delays of attributed orders, each one
truncated at its click's age when the fit is made (an order placed later could not have been
seen yet), so that a young log does not make orders look fast. A few pseudo-orders from a prior
keep the fit sane before there is data.

Attribution credits a click only with the orders placed within its window, so those are all the
purchase model learns to predict and all a click can ever bring: an order past the window is
never seen, however old the click. With ``window_seconds`` the fit truncates each delay at the
smaller of its click's age and the window, and ``share_arrived`` is the share of the orders
*within the window* placed by then (one from the window on). Without it, a long tail of orders
past the window would look like orders still to come, and a click old enough would be held to
orders it cannot bring.
"""

from __future__ import annotations

import math

import numpy as np
from numpy.typing import NDArray
from scipy.optimize import minimize
from scipy.special import log_ndtr, ndtr

_PRIOR_MEDIAN_SECONDS = 1800.0
_PRIOR_SIGMA = 1.0
_PRIOR_ORDERS = 20
_MIN_SECONDS = 1.0


class DelayModel:
    """Click-to-order delay distribution; ``share_arrived(age)`` is its CDF at ``age`` seconds
    within the attribution window ``window_seconds`` (none by default)."""

    def __init__(self, *, window_seconds: float = math.inf) -> None:
        if not window_seconds > 0:
            raise ValueError(f"window_seconds must be positive, not {window_seconds}")
        self.window_seconds = float(window_seconds)
        self.mu = float(np.log(_PRIOR_MEDIAN_SECONDS))
        self.sigma = _PRIOR_SIGMA
        # Pseudo-orders spread over the prior's central range.
        spread = np.linspace(-1.5, 1.5, _PRIOR_ORDERS)
        self._prior_log_delay = self.mu + self.sigma * spread

    @property
    def median_seconds(self) -> float:
        return float(np.exp(self.mu))

    def fit(self, *, delay: NDArray[np.float64], horizon: NDArray[np.float64]) -> None:
        """Fit to observed ``delay`` seconds, each observable only up to its ``horizon``."""
        if delay.shape != horizon.shape:
            raise ValueError("delay and horizon need the same shape")
        # Within the window only: an order past it is never seen, however old the click.
        horizon = np.minimum(horizon, self.window_seconds)
        keep = np.isfinite(delay) & np.isfinite(horizon) & (horizon >= delay)
        log_delay = np.log(np.maximum(delay[keep], _MIN_SECONDS))
        log_horizon = np.log(np.maximum(horizon[keep], _MIN_SECONDS))
        if len(log_delay) == 0:
            return

        def negative_log_likelihood(theta: NDArray[np.float64]) -> float:
            mu, log_sigma = theta
            sigma = np.exp(log_sigma)
            z = (log_delay - mu) / sigma
            observed = -0.5 * z**2 - log_sigma - log_ndtr((log_horizon - mu) / sigma)
            prior = -0.5 * ((self._prior_log_delay - mu) / sigma) ** 2 - log_sigma
            return float(-(observed.sum() + prior.sum()))

        start = np.array([self.mu, np.log(self.sigma)])
        result = minimize(
            negative_log_likelihood,
            start,
            method="Nelder-Mead",
            options={"xatol": 1e-4, "fatol": 1e-6},
        )
        self.mu, self.sigma = float(result.x[0]), float(np.exp(result.x[1]))

    def share_arrived(self, age: NDArray[np.float64]) -> NDArray[np.float64]:
        """Share of the orders within the window placed within ``age`` seconds of their
        click."""
        within = np.minimum(age, self.window_seconds)
        z = (np.log(np.maximum(within, _MIN_SECONDS)) - self.mu) / self.sigma
        if np.isfinite(self.window_seconds):  # in logs: a window far in the tail stays exact
            edge = (np.log(max(self.window_seconds, _MIN_SECONDS)) - self.mu) / self.sigma
            share = np.minimum(np.exp(log_ndtr(z) - log_ndtr(edge)), 1.0)
        else:
            share = ndtr(z)
        out: NDArray[np.float64] = np.where(age > 0, share, 0.0)
        return out
