"""Baseline: PID on ROI, with no notion of pacing.

Each tick, per campaign, the error is the log of today's ROI over the target. GMV is the
engine's predicted GMV of today's clicks times the campaign's value calibration, the one the
other policies use (realized over due orders to date under the driver's value prior,
``bidding.value_prior``), read at its posterior mean: orders still on their way do not read as a
loss. The item's organic GMV counts on the full-site basis, and a small pseudo-spend at target
keeps one early click from swinging it. The multiplier is break-even at predicted value,
corrected by feedback:

    k = exp(log(1 / target) + Kp e + Ki sum(e) + Kd de)

The error is bounded, and so is the integral, so the multiplier stays within ``e^2`` of
break-even; the integral also stops growing while the multiplier is pinned at the engine's
bounds in the error's direction (anti-windup, for targets far outside the usual). The
derivative starts afresh each day, as the figures do. Budgets are left to the ledger's cap: a
campaign whose budget binds buys at the multiplier its ROI allows until the money is gone,
however early in the day, which is the fault that pacing (``dual``, ``landscape``) is there to
avoid.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from numpy.typing import NDArray

from quanzhan.bidding.policy import CampaignSpec, Observation, basis_gmv, orders_to_date
from quanzhan.bidding.value_prior import NO_ERROR, GammaPrior

_KP, _KI, _KD = 0.3, 0.05, 0.1
_ERROR_BOUND = 1.0  # in log ROI: one tick's error counts at most e-fold
_INTEGRAL_BOUND = 30.0  # in error-ticks: the integral moves the multiplier at most e^1.5 fold
_PSEUDO_SPEND_SHARE = 0.02  # of the budget, credited at the target ROI
_BOUNDS = (1e-3, 100.0)


class PidRoi:
    """PID on each campaign's ROI of the day, value measured on calibrated predictions."""

    name = "pid_roi"
    needs_menus = False

    def __init__(self) -> None:
        self._spec: CampaignSpec | None = None
        self._log_base = np.zeros(0)
        self._integral = np.zeros(0)
        self._previous = np.zeros(0)
        self._k = np.zeros(0)
        self._orders_seen = np.zeros(0)
        self._orders_due = np.zeros(0)
        self._value_prior: GammaPrior = NO_ERROR
        self._today: Observation | None = None

    def reset(self, *, campaigns: CampaignSpec, seed: int) -> None:
        target = campaigns.target_roi
        if not np.all(np.isfinite(target) & (target > 0)):
            raise ValueError("target ROI must be finite and positive")
        n = len(campaigns)
        self._spec = campaigns
        self._log_base = np.log(1.0 / target)
        self._integral, self._previous = np.zeros(n), np.zeros(n)
        self._orders_seen, self._orders_due = np.zeros(n), np.zeros(n)
        self._value_prior = NO_ERROR
        self._today = None
        self._k = np.exp(self._log_base)

    def multipliers(self) -> NDArray[np.float64]:
        return self._k.copy()

    def update(self, observation: Observation) -> None:
        if self._spec is None:
            raise RuntimeError("call reset() before using the policy")
        spec = self._spec
        self._today = observation
        if observation.value_prior is not None:
            self._value_prior = observation.value_prior
        value = observation.gmv_predicted * self.calibration()
        gmv = basis_gmv(spec, value, observation.gmv_organic)
        pseudo = _PSEUDO_SPEND_SHARE * spec.budget
        spent = observation.spend + pseudo
        # Nothing spent on a budget of nothing: nothing to measure, no error.
        roi = np.where(
            spent > 0,
            (gmv + spec.target_roi * pseudo) / np.where(spent > 0, spent, 1.0),
            spec.target_roi,
        )
        error = np.clip(
            np.log(np.maximum(roi, 1e-12) / spec.target_roi), -_ERROR_BOUND, _ERROR_BOUND
        )
        # Anti-windup: no further integral in the direction the multiplier is pinned at.
        pinned_low = (self._k <= _BOUNDS[0]) & (error < 0)
        pinned_high = (self._k >= _BOUNDS[1]) & (error > 0)
        growing = ~(pinned_low | pinned_high)
        self._integral = np.clip(
            self._integral + np.where(growing, error, 0.0), -_INTEGRAL_BOUND, _INTEGRAL_BOUND
        )
        control = _KP * error + _KI * self._integral + _KD * (error - self._previous)
        self._previous = error
        self._k = np.clip(np.exp(self._log_base + control), *_BOUNDS)

    def start_day(self) -> None:
        if self._today is not None:
            self._orders_seen += self._today.orders_realized
            self._orders_due += self._today.orders_arrived
        self._today = None
        self._previous = np.zeros_like(self._previous)

    def __setstate__(self, state: dict[str, Any]) -> None:
        """A controller the service pickled before GMV was measured on calibrated predictions
        summed errors of realized ROI, a different error: it starts its sum again, with no
        orders to date, from its multiplier's base."""
        if "_log_base" not in state:
            state = dict(state)
            n = len(state["_k"])
            state.update(
                _log_base=np.log(state.pop("_base")),
                _integral=np.zeros(n),
                _previous=np.zeros(n),
                _orders_seen=np.zeros(n),
                _orders_due=np.zeros(n),
                _value_prior=NO_ERROR,
                _today=None,
            )
        self.__dict__.update(state)

    def calibration(self) -> NDArray[np.float64]:
        """Realized over due orders to date: each campaign's posterior mean under the latest
        value prior observed (four pseudo-orders of no error until one is). A measurement, not
        a margin: the error is what the feedback is for."""
        seen, due = orders_to_date(self._orders_seen, self._orders_due, self._today)
        prior = self._value_prior
        out: NDArray[np.float64] = (prior.alpha + seen) / (prior.beta + due)
        return out
