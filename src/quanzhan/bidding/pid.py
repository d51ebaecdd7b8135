"""Baseline: PID on realized ROI, as many auto-bidders started.

The error is the log of realized ROI (orders as they arrive, no delay correction, no
predictions) over the target; the multiplier is ``k0 * exp(Kp e + Ki sum(e) + Kd de)``.
Budgets are left to the ledger's cap. It reacts to orders that are merely late and has no
notion of pacing: the faults the default policy is built to avoid.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

from quanzhan.bidding.policy import CampaignSpec, Observation, basis_gmv

_KP, _KI, _KD = 0.3, 0.05, 0.1
_INTEGRAL_BOUND = 20.0
_BOUNDS = (1e-3, 100.0)


class PidRoi:
    """PID on realized ROI per campaign."""

    name = "pid_roi"
    needs_menus = False

    def __init__(self) -> None:
        self._spec: CampaignSpec | None = None
        self._base = np.zeros(0)
        self._integral = np.zeros(0)
        self._previous = np.zeros(0)
        self._k = np.zeros(0)

    def reset(self, *, campaigns: CampaignSpec, seed: int) -> None:
        n = len(campaigns)
        self._spec = campaigns
        self._base = 1.0 / campaigns.target_roi
        self._integral, self._previous = np.zeros(n), np.zeros(n)
        self._k = self._base.copy()

    def multipliers(self) -> NDArray[np.float64]:
        return self._k.copy()

    def update(self, observation: Observation) -> None:
        if self._spec is None:
            raise RuntimeError("call reset() before using the policy")
        spec = self._spec
        gmv = basis_gmv(spec, observation.gmv_realized, observation.gmv_organic)
        spent = observation.spend > 0
        roi = gmv / np.maximum(observation.spend, 1e-12)
        error = np.where(spent, np.log(np.maximum(roi, 1e-3) / spec.target_roi), 0.0)
        self._integral = np.clip(self._integral + error, -_INTEGRAL_BOUND, _INTEGRAL_BOUND)
        control = _KP * error + _KI * self._integral + _KD * (error - self._previous)
        self._previous = error
        self._k = np.clip(self._base * np.exp(control), *_BOUNDS)

    def start_day(self) -> None:
        self._previous = np.zeros_like(self._previous)
