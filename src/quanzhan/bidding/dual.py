"""Budget and ROI duals turned into one bid multiplier per campaign, by feedback alone.

The per-campaign LP (``bidding.menu_lp``) has Lagrangian bid ``v (1 + mu) / (lambda + mu R)``:
a uniform multiplier ``k`` on value. At the optimum either the budget binds (``mu = 0``,
``k = 1 / lambda``: the largest ``k`` that spends the budget by midnight) or the ROI binds
(``lambda = 0``, ``k = (1 + mu) / (mu R)``: the largest ``k`` whose ROI is still the target), so
``k = min(k_budget, k_roi)``. The policy tracks both faces in log space at every tick:

- ``k_budget`` follows spend against a *planned* spend, ``budget x planned_share``: the traffic
  forecast's share of the day already past, so spend follows the day's traffic curve;
- ``k_roi`` follows the estimated ROI of what it has bought lately (the last few hours, not the
  day's average, which no bid can mend once a morning went badly) against the target. Orders
  arrive minutes to hours after the click, so GMV is estimated as the engine's predicted GMV of
  the clicks bought, scaled by how the orders that should have arrived by now (under the
  learned delay distribution) compare with those that did: no reaction to orders that are
  merely late, and a campaign whose predictions run hot or cold is corrected as evidence
  accumulates, across days. That ratio is the median of the campaign's posterior under the
  prior the driver fits over every campaign's orders (``Observation.value_prior``,
  ``bidding.value_prior``): a campaign's own few orders are mostly noise;
- campaigns with little history bid up by a bounded exploration share until they have clicks;
- a multiplier that wins nothing learns nothing about ROI: a campaign without recent clicks
  and behind its plan raises its ROI face gradually, up to break-even (one click, on its own,
  at target). Past it, only evidence lifts the face: without clicks nothing says a dearer bid
  pays, and every auction it would win past break-even is bought at a loss.

It needs nothing but the campaign's own figures and the platform's prior, so the service runs
it (its control loop fits the prior from the store); the simulator's default
(``bidding.landscape``) reads the same duals off the auction landscape instead.

Each face is held within a factor of the applied multiplier so the idle one cannot wind up.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

from quanzhan.bidding.policy import (
    CampaignSpec,
    Observation,
    basis_gmv,
    joined_at,
    orders_to_date,
    planned_spend,
)
from quanzhan.bidding.value_prior import NO_ERROR, GammaPrior, posterior_quantile

_GAIN = 0.35
_STEP = 0.35
# Of a campaign's posterior value calibration: the median. The landscape policy's 20% quantile
# made this one too timid: on steady (seed 1) it spent 4.5% of budgets and
# its median efficiency fell 0.425 -> 0.295, where the median gave 0.480 (docs/bidding.md).
_VALUE_QUANTILE = 0.5
_SLACK_SHARE = 0.02  # of the budget, keeps the pace error finite for idle campaigns
_WINDUP = 2.0  # a face may sit at most this factor above the applied multiplier
_BOUNDS = (1e-3, 100.0)
_DECAY = 0.92  # per tick: recent ROI weighs the last few hours (half-life ~8 ticks)
_PSEUDO_SPEND_SHARE = 0.02  # of the budget, credited at the target ROI
_EXPLORE_CLICKS = 10.0  # campaigns with fewer clicks to date explore
_EXPLORE_BOOST = 1.2
_EXPLORE_SHARE = 0.1  # of the budget a day, at most, spent exploring
_QUIET_CLICKS = 0.5  # fewer recent (decayed) clicks than this: the ROI face has no evidence
_DRIFT = 0.1  # per tick, the quiet ROI face's rise while behind the spending plan
_DRIFT_CAP = 1.0  # times break-even (1 / target): no rise past it without evidence


class DualPacing:
    """Budget-and-ROI dual pacing with delay-corrected GMV, steered by feedback."""

    name = "dual"
    needs_menus = False
    # The service stores policies pickled; one pickled by an older version lacks these: it
    # plans without a prior until an observation brings one, and takes its next tick's
    # figures as the start of its recent window.
    _value_prior: GammaPrior = NO_ERROR
    _last_predicted: NDArray[np.float64] | None = None
    _last_organic: NDArray[np.float64] | None = None
    _observed = True
    _plan_from: tuple[float, NDArray[np.float64]] | None = None

    def __init__(self) -> None:
        self._spec: CampaignSpec | None = None
        self._log_budget = np.zeros(0)
        self._log_roi = np.zeros(0)
        self._orders_seen = np.zeros(0)
        self._orders_due = np.zeros(0)
        self._clicks_before = np.zeros(0)
        self._value_prior = NO_ERROR
        self._today: Observation | None = None

    def reset(self, *, campaigns: CampaignSpec, seed: int) -> None:
        n = len(campaigns)
        self._spec = campaigns
        self._log_roi = -np.log(campaigns.target_roi)
        self._log_budget = self._log_roi + np.log(_WINDUP)
        self._orders_seen = np.zeros(n)
        self._orders_due = np.zeros(n)
        self._clicks_before = np.zeros(n)
        self._value_prior = NO_ERROR
        self._today = None
        self._last_spend = np.zeros(n)
        self._last_predicted, self._last_organic = np.zeros(n), np.zeros(n)
        self._recent_spend, self._recent_gmv = np.zeros(n), np.zeros(n)
        self._last_clicks, self._recent_clicks = np.zeros(n), np.zeros(n)
        self._observed = False  # whether an update has come since the reset
        # Where the spending plan starts on a day the policy joined part-way through: the
        # share of the day then and the spend so far (``None``: from midnight and nothing).
        self._plan_from = None

    def multipliers(self) -> NDArray[np.float64]:
        k = np.exp(np.minimum(self._log_budget, self._log_roi))
        if self._today is not None and self._spec is not None:
            clicks = self._clicks_before + self._today.clicks
            exploring = (clicks < _EXPLORE_CLICKS) & (
                self._today.spend < _EXPLORE_SHARE * self._spec.budget
            )
            k = np.where(exploring, k * _EXPLORE_BOOST, k)
        out: NDArray[np.float64] = np.clip(k, *_BOUNDS)
        return out

    def update(self, observation: Observation) -> None:
        spec = self._require()
        self._today = observation
        if observation.value_prior is not None:
            self._value_prior = observation.value_prior
        if not self._observed:
            self._observed = True
            # Started part-way through the day (the service starts a controller when a
            # campaign is created or changed): the hours before are no plan it fell behind.
            self._plan_from = joined_at(observation)
        slack = _SLACK_SHARE * spec.budget
        planned = self._planned(observation)
        pace = np.log((planned + slack) / (observation.spend + slack))
        self._log_budget += np.clip(_GAIN * pace, -_STEP, _STEP)
        roi_error = self._recent_roi_error(observation)
        roi_step = np.clip(_GAIN * roi_error, -_STEP, _STEP)
        # A multiplier that wins nothing learns nothing about ROI: without that evidence, a
        # campaign behind its plan bids up, gradually, so the first clicks it wins are cheap.
        self._recent_clicks = _DECAY * self._recent_clicks + observation.clicks - self._last_clicks
        self._last_clicks = observation.clicks.copy()
        quiet = (self._recent_clicks < _QUIET_CLICKS) & (pace > 0) & (roi_error >= 0)
        room = np.log(_DRIFT_CAP / spec.target_roi) - self._log_roi
        roi_step = np.where(
            quiet & (room > 0), np.maximum(roi_step, np.minimum(_DRIFT, room)), roi_step
        )
        # Ahead of the spending plan, a good ROI is no reason to bid up.
        self._log_roi += np.where(pace < 0, np.minimum(roi_step, 0.0), roi_step)
        applied = np.minimum(self._log_budget, self._log_roi) + np.log(_WINDUP)
        np.minimum(self._log_budget, applied, out=self._log_budget)
        np.minimum(self._log_roi, applied, out=self._log_roi)
        low, high = np.log(_BOUNDS[0]), np.log(_BOUNDS[1])
        np.clip(self._log_budget, low, high, out=self._log_budget)
        np.clip(self._log_roi, low, high, out=self._log_roi)

    def _planned(self, observation: Observation) -> NDArray[np.float64]:
        """The spend planned by now (``bidding.policy.planned_spend``)."""
        return planned_spend(self._require().budget, observation.planned_share, self._plan_from)

    def start_day(self) -> None:
        self._plan_from = None
        if self._today is not None:
            self._orders_seen += self._today.orders_realized
            self._orders_due += self._today.orders_arrived
            self._clicks_before += self._today.clicks
        self._today = None
        self._last_spend = np.zeros_like(self._last_spend)  # today's figures start at zero
        self._last_predicted = np.zeros_like(self._last_spend)
        self._last_organic = np.zeros_like(self._last_spend)
        self._last_clicks = np.zeros_like(self._last_clicks)

    def calibration(self) -> NDArray[np.float64]:
        """Realized over predicted orders to date: how far to trust predicted GMV, the median
        of each campaign's posterior under the latest prior observed (four pseudo-orders of no
        error until one is)."""
        seen, due = orders_to_date(self._orders_seen, self._orders_due, self._today)
        return posterior_quantile(
            self._value_prior, realized=seen, due=due, quantile=_VALUE_QUANTILE
        )

    def _recent_roi_error(self, observation: Observation) -> NDArray[np.float64]:
        """Log of recent ROI over target: what the current multiplier is buying.

        Today's cumulative ROI would not do: once a morning bought below target, no bid now can
        mend the average fast, and steering on it only drives the multiplier to nothing. The
        tick's increments of spend and estimated GMV are smoothed over a few hours instead; a
        pseudo-spend at target keeps a quiet campaign's estimate near the target. The tick's
        predicted GMV is valued at the calibration of now, and what was bought before keeps the
        value it was counted at: a calibration that moves (with orders, or a refitted prior)
        does not read as a tick of sudden earnings or losses.
        """
        spec = self._require()
        if self._last_predicted is None or self._last_organic is None:
            self._last_spend = observation.spend.copy()
            self._last_predicted = observation.gmv_predicted.copy()
            self._last_organic = observation.gmv_organic.copy()
        spent = observation.spend - self._last_spend
        earned = basis_gmv(
            spec,
            (observation.gmv_predicted - self._last_predicted) * self.calibration(),
            observation.gmv_organic - self._last_organic,
        )
        self._last_spend = observation.spend.copy()
        self._last_predicted = observation.gmv_predicted.copy()
        self._last_organic = observation.gmv_organic.copy()
        self._recent_spend = _DECAY * self._recent_spend + spent
        self._recent_gmv = _DECAY * self._recent_gmv + earned
        pseudo = _PSEUDO_SPEND_SHARE * spec.budget
        roi = (self._recent_gmv + spec.target_roi * pseudo) / (self._recent_spend + pseudo)
        out: NDArray[np.float64] = np.log(np.maximum(roi, 1e-9) / spec.target_roi)
        return out

    def _require(self) -> CampaignSpec:
        if self._spec is None:
            raise RuntimeError("call reset() before using the policy")
        return self._spec
