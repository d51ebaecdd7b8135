"""Baseline: the per-campaign LP re-solved at every tick over the menus observed today.

Today's slot menus so far (the engine's predicted value and cost of each slot of each auction)
stand for the rest of the day; the LP (``bidding.menu_lp``) is solved with the budget the plan
allots to the traffic seen so far and the target ROI, and its optimal multiplier is bid until
the next tick. It knows the landscape but trusts the predictions fully and re-plans from a
partial day; before any menu it bids ``1 / target``.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

from quanzhan.bidding.menu_lp import solve_menus
from quanzhan.bidding.policy import CampaignSpec, Observation

_BOUNDS = (1e-3, 100.0)
_MIN_PLANNED_SHARE = 0.01
_MAX_ROWS_PER_CAMPAIGN = 500  # beyond this, an even sample of a campaign's menus stands for all


class OnlineLp:
    """LP re-solved each tick from the observed landscape."""

    name = "online_lp"
    needs_menus = True

    def __init__(self) -> None:
        self._spec: CampaignSpec | None = None
        self._k = np.zeros(0)

    def reset(self, *, campaigns: CampaignSpec, seed: int) -> None:
        self._spec = campaigns
        self._k = 1.0 / campaigns.target_roi

    def multipliers(self) -> NDArray[np.float64]:
        return self._k.copy()

    def update(self, observation: Observation) -> None:
        if self._spec is None:
            raise RuntimeError("call reset() before using the policy")
        menus = observation.menus
        if menus is None or len(menus.campaign) == 0:
            return
        spec = self._spec
        share = max(observation.planned_share, _MIN_PLANNED_SHARE)
        organic = np.where(spec.full_site, observation.gmv_organic, 0.0)
        keep, scale = _even_sample(menus.campaign, len(spec))
        solution = solve_menus(
            group=menus.campaign[keep],
            value=menus.value[keep],
            cost=menus.cost[keep],
            budget=spec.budget * share / scale,
            target_roi=spec.target_roi,
            base_gmv=organic / scale,
        )
        seen = np.bincount(menus.campaign, minlength=len(spec)) > 0
        self._k = np.where(seen, np.clip(solution.multiplier, *_BOUNDS), self._k)

    def start_day(self) -> None:
        """Yesterday's multiplier carries over until today's menus arrive."""


def _even_sample(
    campaign: NDArray[np.int64], n: int
) -> tuple[NDArray[np.int64], NDArray[np.float64]]:
    """Every ``stride``-th menu row of each campaign, in time order, at most about
    ``_MAX_ROWS_PER_CAMPAIGN`` each; and per campaign how many rows each kept one stands for."""
    order = np.argsort(campaign, kind="stable")
    counts = np.bincount(campaign, minlength=n)
    start = np.concatenate([[0], np.cumsum(counts)[:-1]])
    rank = np.arange(len(order)) - start[campaign[order]]
    stride = np.maximum(1, -(-counts // _MAX_ROWS_PER_CAMPAIGN))
    keep = np.sort(order[rank % stride[campaign[order]] == 0])
    kept = np.bincount(campaign[keep], minlength=n)
    scale: NDArray[np.float64] = counts / np.maximum(kept, 1)
    return keep.astype(np.int64), np.maximum(scale, 1.0)
