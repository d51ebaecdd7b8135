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
