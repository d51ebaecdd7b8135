"""The controller interface: per campaign, a bid multiplier updated at each control tick.

A controller sees only its campaigns' own figures (``CampaignState``) and answers with bid
multipliers ``k``: a full-site campaign bids ``k * pCVR * price`` per click. Budgets are enforced
by the ledger whatever a controller does; a controller's job is to spend well, not to police.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import numpy as np
from numpy.typing import NDArray


@dataclass(frozen=True, slots=True)
class CampaignState:
    """Today's figures per campaign, ``(n_campaigns,)`` each, at time ``day_fraction`` of the day.

    ``gmv`` is on each campaign's own ROI basis: ad GMV plus the item's organic GMV on the
    full-site basis, ad GMV alone on the ad-only basis.
    """

    day_fraction: float
    spend: NDArray[np.float64]
    gmv: NDArray[np.float64]
    budget: NDArray[np.float64]
    target_roi: NDArray[np.float64]


class Controller(Protocol):
    """Steers bid multipliers: ``multipliers`` before each batch, ``update`` after a tick."""

    def multipliers(self) -> NDArray[np.float64]:
        """``(n_campaigns,)`` current bid multipliers."""
        ...

    def update(self, state: CampaignState) -> None:
        """Take a tick's figures and move the multipliers."""
        ...

    def start_day(self) -> None:
        """A new day begins: daily figures start again from zero."""
        ...
