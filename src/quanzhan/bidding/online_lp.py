"""Baseline: the per-campaign LP re-solved at every tick over the menus observed today.

Today's slot menus so far (the engine's predicted value and cost of each slot of each auction,
a weighted sample of them) stand for the rest of the day; the LP (``bidding.menu_lp``) is
solved with the budget the plan allots to the traffic seen so far and the target ROI, and its
optimal multiplier is bid until the next tick. It knows the landscape but trusts the
predictions fully, re-plans from a partial day as if it could choose again what it already
bought, and reads the LP's hull where the auction is GSP; before any menu it bids
``1 / target``; started part-way through a day, it allots the auctions it has seen the budget
of the whole day so far. The default policy (``bidding.landscape``) mends each of these.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

from quanzhan.bidding.landscape import MenuSample
from quanzhan.bidding.menu_lp import MenuProblem, solve_menus
from quanzhan.bidding.policy import CampaignSpec, Observation

_BOUNDS = (1e-3, 100.0)
_MIN_PLANNED_SHARE = 0.01


class OnlineLp:
    """LP re-solved each tick from the observed landscape."""

    name = "online_lp"
    needs_menus = True

    def __init__(self) -> None:
        self._spec: CampaignSpec | None = None
        self._k = np.zeros(0)
        self._menus = MenuSample(n_campaigns=0)

    def reset(self, *, campaigns: CampaignSpec, seed: int) -> None:
        self._spec = campaigns
        self._k = 1.0 / campaigns.target_roi
        self._menus = MenuSample(n_campaigns=len(campaigns))

    def multipliers(self) -> NDArray[np.float64]:
        return self._k.copy()

    def update(self, observation: Observation) -> None:
        if self._spec is None:
            raise RuntimeError("call reset() before using the policy")
        if observation.menus is not None:
            self._menus.add(observation.menus)
        rows = self._menus.rows()
        if len(rows.campaign) == 0:
            return
        spec = self._spec
        share = max(observation.planned_share, _MIN_PLANNED_SHARE)
        organic = np.where(spec.full_site, observation.gmv_organic, 0.0)
        weight = rows.weight[:, None]
        solution = solve_menus(
            MenuProblem(
                group=rows.campaign,
                value=rows.value * weight,
                cost=rows.cost * weight,
                budget=spec.budget * share,
                target_roi=spec.target_roi,
                base_gmv=organic,
            )
        )
        seen = np.bincount(rows.campaign, minlength=len(spec)) > 0
        self._k = np.where(seen, np.clip(solution.multiplier, *_BOUNDS), self._k)

    def start_day(self) -> None:
        """Yesterday's multiplier carries over until today's menus arrive."""
        self._menus = MenuSample(n_campaigns=self._menus.n)
