"""Smoothed rates per key (item, category): clicks per exposure, orders per click.

A key with little data stays near its parent's rate; ``strength`` is how many trials the parent's
rate is worth. Rates are returned as logits, ready to be model features.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray
from scipy.special import logit

_FLOOR = 1e-6


def smoothed_logit(
    *,
    key: NDArray[np.int64],
    successes: NDArray[np.float64],
    trials: NDArray[np.float64],
    n_keys: int,
    prior: NDArray[np.float64] | float,
    strength: float,
) -> NDArray[np.float64]:
    """``(n_keys,)`` logit of ``(sum successes + strength * prior) / (sum trials + strength)``."""
    wins = np.bincount(key, weights=successes, minlength=n_keys)
    tries = np.bincount(key, weights=trials, minlength=n_keys)
    rate = (wins + strength * np.asarray(prior)) / (tries + strength)
    rate = np.clip(rate, _FLOOR, 1 - _FLOOR)
    out: NDArray[np.float64] = logit(rate)
    return out


# Between-key spread (variance of log lifts) assumed before the data says otherwise, its floor.
_SPREAD_START = 0.25
_SPREAD_FLOOR = 0.01
# A key enters the estimate of slope and spread once it expects this many successes.
_MEASURED_EXPECTED = 2.0
# Pseudo-weight behind a covariate slope of zero: a slope needs data to move.
_SLOPE_RIDGE = 20.0
_MAX_SLOPE = 1.5


def shrunk_lift(
    *,
    key: NDArray[np.int64],
    observed: NDArray[np.float64],
    expected: NDArray[np.float64],
    n_keys: int,
    covariate: NDArray[np.float64],
) -> tuple[NDArray[np.float64], float, float]:
    """``(n_keys,)`` empirical-Bayes log lifts: how many more successes each key had than rows
    of it were expected to have (``expected``, per row, by a model that does not know the key),
    shrunk towards ``slope x covariate`` (per key). Returns the lifts, the slope and the spread.

    The slope and the between-key spread of lifts are read off the keys with data; a key's
    prior is worth ``1 / spread`` expected successes, which makes the prior's variance of the
    log lift the spread. So a key with little data sits where its like stand by the covariate
    (an item's past popularity), and one with much data where its own record puts it.
    """
    wins = np.bincount(key, weights=observed, minlength=n_keys)
    due = np.bincount(key, weights=expected, minlength=n_keys)
    measured = due >= _MEASURED_EXPECTED
    # Log of observed against expected successes, with Poisson noise of variance 1 / expected.
    gap = np.log((wins[measured] + 0.5) / (due[measured] + 0.5))
    noise = 1.0 / (due[measured] + 0.5)
    x = covariate[measured]
    slope, spread = 0.0, _SPREAD_START
    for _ in range(3):  # slope and spread each weight the other's estimate; a few rounds settle
        weight = 1.0 / (noise + spread)
        slope = float(np.sum(weight * x * gap) / (np.sum(weight * x * x) + _SLOPE_RIDGE))
        slope = min(max(slope, 0.0), _MAX_SLOPE)
        if len(gap) < 2:
            break
        residual = gap - slope * x
        spread = float(np.sum(weight * (residual**2 - noise)) / np.sum(weight))
        spread = max(spread, _SPREAD_FLOOR)
    strength = 1.0 / spread
    prior = np.exp(slope * covariate)
    out: NDArray[np.float64] = np.log((wins + strength * prior) / (due + strength))
    return out, slope, spread
