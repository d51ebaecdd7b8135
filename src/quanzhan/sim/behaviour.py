"""The hidden truth of shopper behaviour: click and purchase odds and how long orders take.

Click odds at page position ``p`` are ``theta(p) * ctr`` with ``ctr`` a logistic function of the
shopper-item affinity (latent dot product), the item's appeal, the surface and, on search, how
well the item matches the query. Purchase odds per click follow affinity, appeal, the surface's
intent and the price against its category. None of this is visible to the engine.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray
from scipy.special import expit, logit

from quanzhan.domain import DAY_SECONDS, Surface
from quanzhan.sim.catalog import Catalog
from quanzhan.sim.config import BehaviourConfig, SurgeConfig
from quanzhan.sim.users import Users

# Logit offsets per surface (search, home, cart, post-purchase, detail, off-site): intent differs.
_CTR_OFFSET = np.array([0.25, 0.0, -0.1, -0.3, 0.05, -0.8])
_CVR_OFFSET = np.array([0.35, -0.25, 0.45, -0.2, 0.2, -0.5])
# Query match at which search odds are unchanged; a weaker match lowers them.
_MATCH_PIVOT = 0.75


@dataclass(frozen=True, slots=True)
class Behaviour:
    """Ground-truth odds. Pairs are given as equal-shaped arrays of users, items and surfaces."""

    config: BehaviourConfig
    catalog: Catalog
    users: Users
    affinity_mean: float
    affinity_scale: float
    surges: tuple[SurgeConfig, ...] = ()

    def affinity(self, user: NDArray[np.int32], item: NDArray[np.int32]) -> NDArray[np.float64]:
        """Standardised latent dot product of each (user, item) pair."""
        dot = np.einsum("...d,...d->...", self.users.latent[user], self.catalog.latent[item])
        out: NDArray[np.float64] = (
            dot.astype(np.float64) - self.affinity_mean
        ) / self.affinity_scale
        return out

    def click_probability(
        self,
        *,
        user: NDArray[np.int32],
        item: NDArray[np.int32],
        surface: NDArray[np.int8],
        match: NDArray[np.float64] | None = None,
    ) -> NDArray[np.float64]:
        """Click odds at the first position; ``match`` in [0, 1] applies to search pairs."""
        cfg = self.config
        z = logit(cfg.ctr_mean) + _CTR_OFFSET[surface]
        z = z + cfg.affinity_weight * self.affinity(user, item)
        z = z + self.catalog.quality[item]
        if match is not None:
            on_search = surface == Surface.SEARCH
            z = z + np.where(on_search, cfg.search_match_weight * (match - _MATCH_PIVOT), 0)
        out: NDArray[np.float64] = expit(z)
        return out

    def purchase_probability(
        self,
        *,
        user: NDArray[np.int32],
        item: NDArray[np.int32],
        surface: NDArray[np.int8],
        time: NDArray[np.float64] | None = None,
    ) -> NDArray[np.float64]:
        """Odds that one click ends in an order; readier during a promotion surge."""
        cfg = self.config
        items = self.catalog.items
        relative_price = np.log(
            items.price[item] / self.catalog.category_price_median[items.category[item]]
        )
        z = logit(cfg.cvr_mean) + _CVR_OFFSET[surface]
        z = z + cfg.cvr_affinity_weight * self.affinity(user, item)
        z = z + 0.5 * self.catalog.quality[item] - cfg.price_elasticity * relative_price
        odds: NDArray[np.float64] = expit(z)
        if time is not None:
            for surge in self.surges:
                start = surge.day * DAY_SECONDS + surge.start_hour * 3600.0
                end = surge.day * DAY_SECONDS + surge.end_hour * 3600.0
                inside = (time >= start) & (time < end)
                odds = np.where(inside, np.minimum(odds * surge.conversion_factor, 0.95), odds)
        return odds

    def position_factor(self, position: NDArray[np.int64]) -> NDArray[np.float64]:
        """How likely page position ``position`` (0 = top) is seen, relative to the top."""
        factor: NDArray[np.float64] = self.config.position_decay ** position.astype(np.float64)
        return factor

    def order_delay(self, rng: np.random.Generator, size: int) -> NDArray[np.float64]:
        """Seconds from click to order: log-normal, capped."""
        cfg = self.config
        delay = rng.lognormal(
            np.log(cfg.order_delay_median_minutes * 60), cfg.order_delay_sigma, size
        )
        return np.minimum(delay, cfg.order_delay_max_hours * 3600)


def build_behaviour(
    config: BehaviourConfig,
    catalog: Catalog,
    users: Users,
    rng: np.random.Generator,
    *,
    surges: tuple[SurgeConfig, ...] = (),
) -> Behaviour:
    """Fix the affinity scale on pairs a shopper would typically meet: items of their interests."""
    sample = min(20_000, len(users))
    user = rng.choice(len(users), size=sample, replace=False).astype(np.int32)
    item = catalog.sample_in_category(
        category=users.categories(user, rng), uniform=rng.random(sample)
    )
    dot = np.einsum("nd,nd->n", users.latent[user], catalog.latent[item]).astype(np.float64)
    scale = float(dot.std()) or 1.0
    return Behaviour(config, catalog, users, float(dot.mean()), scale, surges)
