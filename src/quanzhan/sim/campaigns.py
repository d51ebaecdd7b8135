"""The advertisers of a scenario: which items are promoted, with what budget, target and mode."""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

from quanzhan.domain import DAY_SECONDS, CampaignMode, CampaignTable, RoiBasis
from quanzhan.sim.catalog import Catalog
from quanzhan.sim.config import CampaignsConfig


def campaign_start_times(config: CampaignsConfig) -> NDArray[np.float64]:
    """Seconds from the first day's start at which each campaign starts bidding."""
    start = [np.zeros(config.n_campaigns)]
    for entrant in config.entrants:
        start.append(np.full(entrant.count, entrant.day * DAY_SECONDS + entrant.hour * 3600.0))
    return np.concatenate(start)


def new_items(config: CampaignsConfig, campaigns: CampaignTable) -> NDArray[np.int32]:
    """Items new to the platform: the first ``new_item_share`` of the regular campaigns'."""
    count = round(config.new_item_share * config.n_campaigns)
    return campaigns.item[:count].copy()


def build_campaigns(
    config: CampaignsConfig,
    conversion_guess: float,
    catalog: Catalog,
    rng: np.random.Generator,
) -> CampaignTable:
    """One campaign per promoted item; better items are a little more likely to be promoted.

    Budgets are log-uniform over ``budget_range`` and targets uniform over ``target_roi_range``.
    Manual campaigns bid a fixed share of the item's value per click at a published average
    conversion rate (``conversion_guess``, the engine's prior): a merchant's rough guess, as in
    the older keyword-bid products.
    """
    n_regular = config.n_campaigns
    n = n_regular + sum(e.count for e in config.entrants)
    weight = np.exp(catalog.quality.astype(np.float64))
    item = rng.choice(len(catalog.quality), size=n, replace=False, p=weight / weight.sum())
    low, high = config.budget_range
    budget = np.round(np.exp(rng.uniform(np.log(low), np.log(high), size=n)), 2)
    target = np.round(rng.uniform(*config.target_roi_range, size=n), 2)
    manual = rng.random(n) < config.manual_share
    first = n_regular
    for entrant in config.entrants:  # full-site competitors that arrive later
        rows = slice(first, first + entrant.count)
        budget[rows], target[rows], manual[rows] = entrant.budget, entrant.target_roi, False
        first += entrant.count
    mode = np.where(manual, CampaignMode.MANUAL_CPC, CampaignMode.FULL_SITE).astype(np.int8)
    ad_only = rng.random(n) < config.ad_only_share
    basis = np.where(ad_only, RoiBasis.AD_ONLY, RoiBasis.FULL_SITE).astype(np.int8)
    value_per_click = conversion_guess * catalog.items.price[item]
    cpc = np.round(value_per_click * rng.uniform(*config.manual_cpc_value_share, size=n), 2)
    return CampaignTable(
        item=item.astype(np.int32),
        mode=mode,
        budget=np.maximum(budget, 0.01),
        target_roi=np.maximum(target, 0.01),
        roi_basis=basis,
        manual_cpc=np.where(manual, np.maximum(cpc, 0.01), 0.0),
    )
