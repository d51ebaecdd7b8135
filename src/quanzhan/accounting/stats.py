"""Running totals by campaign, surface and hour, and platform totals by surface and hour.

Every ``add_*`` takes flat ``(m,)`` columns and accumulates with ``np.bincount``; hours count
from the start of the first day (hour 25 is 01:00 on day two).
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

from quanzhan.domain import N_SURFACES


class Stats:
    """Totals for ``n_campaigns`` campaigns over ``n_hours`` hours."""

    # ``predicted_gmv`` is the engine's own expected GMV of its clicks (pCVR x price at serving):
    # a signal that arrives with the click, long before the orders do.
    CAMPAIGN_MEASURES = ("impressions", "clicks", "spend", "orders", "gmv_ad", "predicted_gmv")
    PLATFORM_MEASURES = (
        "requests", "impressions", "clicks", "spend", "orders", "gmv_ad", "predicted_gmv",
        "organic_impressions", "organic_clicks", "organic_orders", "gmv_organic",
    )  # fmt: skip

    def __init__(self, *, n_campaigns: int, n_hours: int) -> None:
        self.n_campaigns = n_campaigns
        self.n_hours = n_hours
        shape = (n_campaigns, N_SURFACES, n_hours)
        self.campaign = {m: np.zeros(shape) for m in self.CAMPAIGN_MEASURES}
        # Organic GMV of each campaign's item, by hour: it counts on the full-site basis.
        self.campaign_organic_gmv = np.zeros((n_campaigns, n_hours))
        self.platform = {m: np.zeros((N_SURFACES, n_hours)) for m in self.PLATFORM_MEASURES}

    def hour_of(self, time: NDArray[np.float64]) -> NDArray[np.int64]:
        """Hour index of each time; anything after the last hour lands in the last hour."""
        return np.clip((time // 3600).astype(np.int64), 0, self.n_hours - 1)

    def add_campaign(
        self,
        measure: str,
        *,
        campaign: NDArray[np.int32],
        surface: NDArray[np.int8],
        time: NDArray[np.float64],
        value: NDArray[np.float64] | None = None,
    ) -> None:
        """Add ``value`` (default 1 per row) to a campaign measure and to the platform's."""
        hour = self.hour_of(time)
        weights = np.ones(len(campaign)) if value is None else value
        flat = (campaign.astype(np.int64) * N_SURFACES + surface) * self.n_hours + hour
        target = self.campaign[measure]
        target += np.bincount(flat, weights=weights, minlength=target.size).reshape(target.shape)
        self.add_platform(measure, surface=surface, time=time, value=weights)

    def add_platform(
        self,
        measure: str,
        *,
        surface: NDArray[np.int8],
        time: NDArray[np.float64],
        value: NDArray[np.float64] | None = None,
    ) -> None:
        hour = self.hour_of(time)
        weights = np.ones(len(surface)) if value is None else value
        flat = surface.astype(np.int64) * self.n_hours + hour
        target = self.platform[measure]
        target += np.bincount(flat, weights=weights, minlength=target.size).reshape(target.shape)

    def add_surface_totals(self, measure: str, *, totals: NDArray[np.int64], time: float) -> None:
        """Add per-surface totals ``(surfaces,)`` of one moment to a platform measure."""
        self.platform[measure][:, int(self.hour_of(np.array([time]))[0])] += totals

    def add_organic_orders(
        self, *, campaign: NDArray[np.int32], time: NDArray[np.float64], amount: NDArray[np.float64]
    ) -> None:
        """Organic orders of campaign items (``campaign`` ``-1`` for items without one)."""
        hour = self.hour_of(time)
        has = campaign >= 0
        flat = campaign[has].astype(np.int64) * self.n_hours + hour[has]
        size = self.campaign_organic_gmv.size
        shape = self.campaign_organic_gmv.shape
        self.campaign_organic_gmv += np.bincount(flat, weights=amount[has], minlength=size).reshape(
            shape
        )

    def campaign_totals(self, measure: str, hours: slice = slice(None)) -> NDArray[np.float64]:
        """``(n_campaigns,)`` totals of a measure over the given hours."""
        out: NDArray[np.float64] = self.campaign[measure][:, :, hours].sum(axis=(1, 2))
        return out

    def organic_gmv(self, hours: slice = slice(None)) -> NDArray[np.float64]:
        out: NDArray[np.float64] = self.campaign_organic_gmv[:, hours].sum(axis=1)
        return out
