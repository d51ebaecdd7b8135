"""The catalog: items with a merchant, a category, a price, a title and a hidden latent vector."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from quanzhan.domain import ItemTable
from quanzhan.sim.config import CatalogConfig


@dataclass(frozen=True, slots=True)
class Catalog:
    """All items. Public columns go to the engine through ``items``; the rest is hidden truth.

    Shapes: ``n`` items, ``c`` categories, ``d`` latent dimensions, ``t`` title terms.
    """

    items: ItemTable
    latent: NDArray[np.float32]  # (n, d) hidden
    quality: NDArray[np.float32]  # (n,) hidden appeal, shifts click and purchase odds
    category_center: NDArray[np.float32]  # (c, d) hidden
    category_terms: NDArray[np.int32]  # (c, terms_per_category) the vocabulary of each category
    category_price_median: NDArray[np.float64]  # (c,)
    _order: NDArray[np.int32]  # items sorted by category, then by id
    _offsets: NDArray[np.int64]  # (c + 1,) where each category starts in _order
    _cumulative: NDArray[np.float64]  # cumulative organic exposure along _order

    def sample_in_category(
        self, *, category: NDArray[np.int64], uniform: NDArray[np.float64]
    ) -> NDArray[np.int32]:
        """One item per entry, from the given categories, in proportion to organic exposure.

        ``category`` and ``uniform`` (draws in [0, 1)) have any equal shape; so does the result.
        """
        start = np.where(
            self._offsets[category] > 0, self._cumulative[self._offsets[category] - 1], 0.0
        )
        end = self._cumulative[self._offsets[category + 1] - 1]
        position = np.searchsorted(self._cumulative, start + uniform * (end - start), side="right")
        position = np.clip(position, self._offsets[category], self._offsets[category + 1] - 1)
        return self._order[position]


def build_catalog(config: CatalogConfig, rng: np.random.Generator) -> Catalog:
    """Draw a catalog: category sizes, latent vectors, power-law merchants, log-normal prices."""
    n, c, d = config.n_items, config.n_categories, config.latent_dim
    center = rng.normal(0.0, 1.0, size=(c, d)).astype(np.float32)
    category = _assign_categories(n, c, rng)
    latent = (center[category] + rng.normal(0.0, 0.6, size=(n, d))).astype(np.float32)
    quality = rng.normal(0.0, config.quality_sigma, size=n).astype(np.float32)
    low, high = config.category_price_median
    price_median = np.exp(rng.uniform(np.log(low), np.log(high), size=c))
    price = np.round(price_median[category] * np.exp(rng.normal(0, config.price_sigma, n)), 2)
    price = np.maximum(price, 0.5)
    terms = _category_vocabulary(config)
    items = ItemTable(
        category=category,
        merchant=_assign_merchants(config, rng),
        price=price,
        title_terms=_titles(config, category, terms, rng),
        n_categories=c,
        n_terms=c * config.terms_per_category + config.shared_terms,
    )
    exposure = np.exp(1.5 * quality.astype(np.float64)) * rng.lognormal(0.0, 0.5, size=n)
    order = np.lexsort((np.arange(n), category)).astype(np.int32)
    offsets = np.searchsorted(category[order], np.arange(c + 1)).astype(np.int64)
    return Catalog(
        items=items,
        latent=latent,
        quality=quality,
        category_center=center,
        category_terms=terms,
        category_price_median=price_median,
        _order=order,
        _offsets=offsets,
        _cumulative=np.cumsum(exposure[order]),
    )


def _assign_categories(n: int, c: int, rng: np.random.Generator) -> NDArray[np.int32]:
    """Every category gets at least one item; the rest follow log-normal category sizes."""
    weights = rng.lognormal(0.0, 0.8, size=c)
    rest = rng.choice(c, size=n - c, p=weights / weights.sum())
    category = np.concatenate([np.arange(c), rest])
    return rng.permutation(category).astype(np.int32)


def _assign_merchants(config: CatalogConfig, rng: np.random.Generator) -> NDArray[np.int32]:
    """Merchant sizes follow a power law: a few large shops hold many items."""
    ranks = np.arange(1, config.n_merchants + 1, dtype=np.float64)
    weights = ranks ** (-config.merchant_zipf)
    merchant = rng.choice(config.n_merchants, size=config.n_items, p=weights / weights.sum())
    return merchant.astype(np.int32)


def _category_vocabulary(config: CatalogConfig) -> NDArray[np.int32]:
    per = config.terms_per_category
    return np.arange(config.n_categories * per, dtype=np.int32).reshape(config.n_categories, per)


def _titles(
    config: CatalogConfig,
    category: NDArray[np.int32],
    vocabulary: NDArray[np.int32],
    rng: np.random.Generator,
) -> NDArray[np.int32]:
    """Titles: category terms drawn with a Zipf lean to the first, and one shared term."""
    n, t, per = len(category), config.title_terms, config.terms_per_category
    lean = 1.0 / np.arange(1, per + 1)
    pick = rng.choice(per, size=(n, t), p=lean / lean.sum())
    titles = vocabulary[category[:, None], pick]
    if config.shared_terms:
        shared = len(vocabulary.ravel()) + rng.integers(0, config.shared_terms, size=n)
        titles[:, -1] = shared
    return titles.astype(np.int32)
