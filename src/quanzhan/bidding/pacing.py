"""Baseline: proportional pacing, steering each multiplier on spend pace and ROI.

At every tick each campaign compares its spend with a planned spend (budget x the forecast
share of the day's traffic already past) and its ROI (on the engine's predicted GMV of its
clicks) with its target, and moves its multiplier by the worse of the two log-errors, scaled by
``gain`` and bounded per tick:

    k <- k * exp(clip(gain * min(log(roi / target), log(planned / spend)), -step, +step))

ROI is smoothed with a small pseudo-spend at target so that one early click does not swing it;
a campaign that has spent nothing follows its pace alone. Started part-way through a day (the
service starts a controller when a campaign is created or changed), it plans what is left of
the budget over what is left of the day (``bidding.policy.planned_spend``). It was the engine's
first controller; it is kept as a baseline.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from numpy.typing import NDArray

from quanzhan.bidding.policy import (
    CampaignSpec,
    Observation,
    basis_gmv,
    joined_at,
    planned_spend,
)

_PSEUDO_SPEND_SHARE = 0.05  # of the budget, credited at the target ROI
_PACE_SLACK_SHARE = 0.02  # of the budget, so an idle campaign's pace error stays finite
_STEP = 0.5
_BOUNDS = (1e-3, 50.0)


class ProportionalPacing:
    """One multiplier per campaign, starting at ``1 / target``: break-even on ad GMV at target."""

    name = "proportional"
    needs_menus = False

    def __init__(self, *, gain: float = 0.6) -> None:
        if not np.isfinite(gain) or gain <= 0:
            raise ValueError("gain must be finite and positive")
        self.gain = gain
        self._spec: CampaignSpec | None = None
        self._k = np.zeros(0)

    def reset(self, *, campaigns: CampaignSpec, seed: int) -> None:
        target = campaigns.target_roi
        if not np.all(np.isfinite(target) & (target > 0)):
            raise ValueError("target ROI must be finite and positive")
        self._spec = campaigns
        self._k = 1.0 / target
        self._observed = False  # whether an update has come since the reset
        # Where the spending plan starts on a day joined part-way through (``None``: midnight).
        self._plan_from: tuple[float, NDArray[np.float64]] | None = None

    def __setstate__(self, state: dict[str, Any]) -> None:
        """A controller the service pickled before it knew of days joined part-way through has
        been observing all along, from midnight."""
        self.__dict__.update({"_observed": True, "_plan_from": None, **state})

    def multipliers(self) -> NDArray[np.float64]:
        return self._k.copy()

    def update(self, observation: Observation) -> None:
        if self._spec is None:
            raise RuntimeError("call reset() before using the policy")
        spec = self._spec
        if not self._observed:
            self._observed = True
            self._plan_from = joined_at(observation)
        gmv = basis_gmv(spec, observation.gmv_predicted, observation.gmv_organic)
        pseudo = _PSEUDO_SPEND_SHARE * spec.budget
        roi = (gmv + spec.target_roi * pseudo) / (observation.spend + pseudo)
        slack = _PACE_SLACK_SHARE * spec.budget
        planned = planned_spend(spec.budget, observation.planned_share, self._plan_from)
        # Nothing spent, nothing to hold against the target: pace alone decides.
        roi_error = np.where(observation.spend > 0, np.log(roi / spec.target_roi), np.inf)
        error = np.minimum(roi_error, np.log((planned + slack) / (observation.spend + slack)))
        self._k *= np.exp(np.clip(self.gain * error, -_STEP, _STEP))
        np.clip(self._k, *_BOUNDS, out=self._k)

    def start_day(self) -> None:
        """Keep what was learned about the market; only the daily figures restart."""
        self._plan_from = None
