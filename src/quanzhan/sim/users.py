"""Shoppers: latent interests over categories, how active each one is, and their past clicks."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from quanzhan.sim.catalog import Catalog
from quanzhan.sim.config import UsersConfig

# How often a shopper strays from their interests to a random category.
_STRAY = 0.1


@dataclass(frozen=True, slots=True)
class Users:
    """All shoppers. ``m`` users, ``k`` interest categories each, ``d`` latent dimensions."""

    latent: NDArray[np.float32]  # (m, d) hidden
    interest: NDArray[np.int32]  # (m, k) categories
    interest_cdf: NDArray[np.float64]  # (m, k) cumulative weights over those categories
    activity_cdf: NDArray[np.float64]  # (m,) cumulative share of page views
    offsite_matched: NDArray[np.bool_]  # (m,) whether off-site traffic can be tied to the user
    n_categories: int

    def __len__(self) -> int:
        return len(self.latent)

    def sample(self, rng: np.random.Generator, size: int) -> NDArray[np.int32]:
        """Users of ``size`` page views, in proportion to activity."""
        drawn = np.searchsorted(self.activity_cdf, rng.random(size) * self.activity_cdf[-1])
        out: NDArray[np.int32] = np.minimum(drawn, len(self) - 1).astype(np.int32)
        return out

    def categories(self, user: NDArray[np.int32], rng: np.random.Generator) -> NDArray[np.int64]:
        """One category per user entry: mostly from their interests, sometimes any category."""
        cdf = self.interest_cdf[user]
        slot = (cdf < rng.random(len(user))[:, None]).sum(axis=1)
        slot = np.minimum(slot, cdf.shape[1] - 1)
        chosen: NDArray[np.int64] = self.interest[user, slot].astype(np.int64)
        stray = rng.random(len(user)) < _STRAY
        chosen[stray] = rng.integers(0, self.n_categories, size=int(stray.sum()))
        return chosen


def build_users(config: UsersConfig, catalog: Catalog, rng: np.random.Generator) -> Users:
    """Draw shoppers whose latent taste is a mix of a few category centers."""
    m, k = config.n_users, config.max_interests
    c = catalog.items.n_categories
    popularity = rng.dirichlet(np.full(c, 2.0))
    interest = rng.choice(c, size=(m, k), p=popularity).astype(np.int32)
    weights = rng.dirichlet(np.ones(k), size=m)
    counts = rng.integers(1, k + 1, size=m)
    weights[np.arange(k)[None, :] >= counts[:, None]] = 0.0
    weights /= weights.sum(axis=1, keepdims=True)
    center = catalog.category_center[interest]  # (m, k, d)
    latent = np.einsum("mk,mkd->md", weights, center) + rng.normal(0, 0.4, (m, center.shape[2]))
    activity = rng.lognormal(0.0, config.activity_sigma, size=m)
    return Users(
        latent=latent.astype(np.float32),
        interest=interest,
        interest_cdf=np.cumsum(weights, axis=1),
        activity_cdf=np.cumsum(activity),
        offsite_matched=rng.random(m) < config.offsite_match_rate,
        n_categories=c,
    )


def build_history(
    config: UsersConfig, users: Users, catalog: Catalog, rng: np.random.Generator
) -> tuple[NDArray[np.int32], NDArray[np.int32]]:
    """Past clicks the platform logged before the simulated days: ``(user, item)`` pairs.

    The engine may learn from this log as it would from any behaviour log; it holds observed
    clicks only, never the latent vectors behind them.
    """
    counts = rng.poisson(config.history_mean, size=len(users))
    user = np.repeat(np.arange(len(users), dtype=np.int32), counts)
    category = users.categories(user, rng)
    item = catalog.sample_in_category(category=category, uniform=rng.random(len(user)))
    return user, item
