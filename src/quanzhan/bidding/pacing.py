"""Proportional pacing: the first controller, steering each multiplier on spend pace and ROI.

At every tick each campaign compares its spend with a planned spend (budget x the share of the
day's traffic already past, from ``plan``) and its ROI with its target, and moves its multiplier
by the worse of the two log-errors, scaled by ``gain`` and bounded per tick:

    k <- k * exp(clip(gain * min(log(roi / target), log(planned / spend)), -step, +step))

ROI is smoothed with a small pseudo-spend at target so that one early click does not swing it;
a campaign that has spent nothing follows its pace alone.
It is a sound baseline; the dual-based controller of the auto-bidding work replaces it.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from numpy.typing import NDArray

from quanzhan.bidding.controller import CampaignState

_PSEUDO_SPEND_SHARE = 0.05  # of the budget, credited at the target ROI
_PACE_SLACK_SHARE = 0.02  # of the budget, so an idle campaign's pace error stays finite
_STEP = 0.5
_BOUNDS = (1e-3, 50.0)


class ProportionalPacing:
    """One multiplier per campaign, starting at ``1 / target``: break-even on ad GMV at target."""

    def __init__(
        self,
        *,
        target_roi: NDArray[np.float64],
        gain: float,
        plan: Callable[[float], float] | None = None,
    ) -> None:
        if not np.all(np.isfinite(target_roi) & (target_roi > 0)):
            raise ValueError("target ROI must be finite and positive")
        self._initial = 1.0 / target_roi
        self._k = self._initial.copy()
        self.gain = gain
        self.plan = plan or (lambda fraction: fraction)

    def multipliers(self) -> NDArray[np.float64]:
        return self._k.copy()

    def update(self, state: CampaignState) -> None:
        pseudo = _PSEUDO_SPEND_SHARE * state.budget
        roi = (state.gmv + state.target_roi * pseudo) / (state.spend + pseudo)
        slack = _PACE_SLACK_SHARE * state.budget
        planned = state.budget * self.plan(state.day_fraction)
        # Nothing spent, nothing to hold against the target: pace alone decides.
        roi_error = np.where(state.spend > 0, np.log(roi / state.target_roi), np.inf)
        error = np.minimum(roi_error, np.log((planned + slack) / (state.spend + slack)))
        self._k *= np.exp(np.clip(self.gain * error, -_STEP, _STEP))
        np.clip(self._k, *_BOUNDS, out=self._k)

    def start_day(self) -> None:
        """Keep what was learned about the market; only the daily figures restart."""
