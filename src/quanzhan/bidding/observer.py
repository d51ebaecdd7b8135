"""Today's figures per campaign, gathered from clicks, charges and orders, for the policy.

The observer is fed by the simulator's day loop (the service's control loop reads the same
figures from its store, ``api.control``) and turns what it was fed into an ``Observation`` at
each control tick. It learns what the platform knows across campaigns: the order-delay
distribution from the attributed orders it sees, so that the orders today's clicks *should* have
brought by now can be told apart from those still on their way, and the prior of the campaigns'
value calibrations (``bidding.value_prior``) from every steered campaign's realized and due
orders to date.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

import numpy as np
from numpy.typing import NDArray

from quanzhan.bidding.delay import DelayModel
from quanzhan.bidding.policy import MenuView, Observation
from quanzhan.bidding.value_prior import NO_ERROR, fit_prior


@dataclass(frozen=True, slots=True)
class PastEvidence:
    """What an observer learned before a run, on the run's clock: the click and order times
    ``(m,)`` of the attributed orders it saw (delays), each campaign's realized and due orders
    ``(n,)``, and ``end``, when it last observed."""

    click_time: NDArray[np.float64]
    order_time: NDArray[np.float64]
    realized: NDArray[np.float64]
    due: NDArray[np.float64]
    end: float

    def shifted(self, seconds: float) -> PastEvidence:
        """The same, its times moved by ``seconds``."""
        return replace(
            self,
            click_time=self.click_time + seconds,
            order_time=self.order_time + seconds,
            end=self.end + seconds,
        )


class TickObserver:
    """Accumulates one day at a time for ``n_campaigns``; ``start_day`` clears the day.
    ``steered`` ``(n,)`` marks the campaigns whose orders the value prior is fitted on (the
    policy's; by default all); ``attribution_window`` (seconds) bounds the orders a click can
    bring (``bidding.delay``)."""

    def __init__(
        self,
        *,
        n_campaigns: int,
        steered: NDArray[np.bool_] | None = None,
        attribution_window: float = math.inf,
    ) -> None:
        self.n = n_campaigns
        self.steered = np.ones(n_campaigns, dtype=bool) if steered is None else steered.copy()
        if self.steered.shape != (n_campaigns,) or self.steered.dtype != np.bool_:
            raise ValueError(f"steered must be a ({n_campaigns},) boolean mask")
        self.delay = DelayModel(window_seconds=attribution_window)
        self.value_prior = NO_ERROR
        # Realized and due orders of the days before today, and today's as last observed.
        self._past_orders, self._past_due = np.zeros(n_campaigns), np.zeros(n_campaigns)
        self._last_orders, self._last_due = np.zeros(n_campaigns), np.zeros(n_campaigns)
        # Orders of the platform's days before this run (``carry_over``): for the prior only.
        self._earlier_orders, self._earlier_due = np.zeros(n_campaigns), np.zeros(n_campaigns)
        self._day_start = 0.0
        self._last_observed = 0.0
        self._click_campaign: list[NDArray[np.int64]] = []
        self._click_time: list[NDArray[np.float64]] = []
        self._click_pcvr: list[NDArray[np.float64]] = []
        self._click_value: list[NDArray[np.float64]] = []
        self._orders = np.zeros(n_campaigns)
        self._gmv = np.zeros(n_campaigns)
        self._organic = np.zeros(n_campaigns)
        self._menus: list[MenuView] = []
        self._delays: list[tuple[NDArray[np.float64], NDArray[np.float64]]] = []

    def carry_over(self, past: PastEvidence) -> None:
        """Start from what the platform learned on its days before this run: the order delays
        it saw and every campaign's realized and due orders, which the value prior is fitted
        on beside this run's (a campaign's own figures in its observations stay this run's)."""
        if past.realized.shape != (self.n,) or past.due.shape != (self.n,):
            raise ValueError(f"past evidence needs one entry per campaign ({self.n})")
        if past.click_time.shape != past.order_time.shape:
            raise ValueError("past click and order times need the same shape")
        self._delays.append((past.click_time.copy(), past.order_time.copy()))
        self._earlier_orders, self._earlier_due = past.realized.copy(), past.due.copy()
        self.learn_delays(now=past.end)
        self._learn_value_prior()

    def evidence(self) -> PastEvidence:
        """What this observer has learned to date, for a run that follows it
        (``carry_over``): order delays seen and every campaign's realized and due orders."""
        click_time, order_time = self._joined_delays()
        return PastEvidence(
            click_time=click_time,
            order_time=order_time,
            realized=self._earlier_orders + self._past_orders + self._last_orders,
            due=self._earlier_due + self._past_due + self._last_due,
            end=self._last_observed,
        )

    def start_day(self, *, at: float) -> None:
        self._past_orders += self._last_orders
        self._past_due += self._last_due
        self._last_orders, self._last_due = np.zeros(self.n), np.zeros(self.n)
        self._day_start = at
        self._click_campaign, self._click_time = [], []
        self._click_pcvr, self._click_value = [], []
        self._orders = np.zeros(self.n)
        self._gmv = np.zeros(self.n)
        self._organic = np.zeros(self.n)
        self._menus = []

    def add_clicks(
        self,
        *,
        campaign: NDArray[np.int32],
        time: NDArray[np.float64],
        pcvr: NDArray[np.float64],
        value: NDArray[np.float64],
    ) -> None:
        """Ad clicks with the predicted purchase odds and predicted GMV they were bought at."""
        self._click_campaign.append(campaign.astype(np.int64))
        self._click_time.append(time)
        self._click_pcvr.append(pcvr)
        self._click_value.append(value)

    def add_ad_orders(
        self,
        *,
        campaign: NDArray[np.int32],
        click_time: NDArray[np.float64],
        time: NDArray[np.float64],
        amount: NDArray[np.float64],
    ) -> None:
        """Orders attributed to ad clicks; those of today's clicks count towards today."""
        self._delays.append((click_time, time))
        today = click_time >= self._day_start
        self._orders += np.bincount(campaign[today], minlength=self.n)
        self._gmv += np.bincount(campaign[today], weights=amount[today], minlength=self.n)

    def add_organic(self, *, campaign: NDArray[np.int32], amount: NDArray[np.float64]) -> None:
        """Organic orders of campaign items (``campaign`` -1 for items without a campaign)."""
        has = campaign >= 0
        self._organic += np.bincount(campaign[has], weights=amount[has], minlength=self.n)

    def add_menus(self, menus: MenuView) -> None:
        self._menus.append(menus)

    def learn_delays(self, *, now: float) -> None:
        """Refit the delay distribution on every attributed order seen so far."""
        if not self._delays:
            return
        click_time, order_time = self._joined_delays()
        self.delay.fit(delay=order_time - click_time, horizon=now - click_time)

    def _joined_delays(self) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
        """Click and order times of every attributed order seen, kept as one chunk."""
        if not self._delays:
            return np.zeros(0), np.zeros(0)
        joined = (_floats([d[0] for d in self._delays]), _floats([d[1] for d in self._delays]))
        self._delays = [joined]
        return joined

    def observe(
        self, *, now: float, day_seconds: float, planned_share: float, spend: NDArray[np.float64]
    ) -> Observation:
        campaign = _ints(self._click_campaign)
        time, pcvr = _floats(self._click_time), _floats(self._click_pcvr)
        value = _floats(self._click_value)
        arrived = self.delay.share_arrived(now - time)
        due = np.bincount(campaign, weights=pcvr * arrived, minlength=self.n).astype(np.float64)
        # Today's as last observed: what start_day adds to the past.
        self._last_orders, self._last_due = self._orders.copy(), due.copy()
        self._last_observed = now
        self._learn_value_prior()
        return Observation(
            now=now,
            day_fraction=(now - self._day_start) / day_seconds,
            planned_share=planned_share,
            spend=spend,
            gmv_realized=self._gmv.copy(),
            gmv_predicted=np.bincount(campaign, weights=value, minlength=self.n).astype(np.float64),
            orders_realized=self._orders.copy(),
            orders_arrived=due,
            gmv_organic=self._organic.copy(),
            clicks=np.bincount(campaign, minlength=self.n).astype(np.float64),
            menus=self._menu_view(),
            value_prior=self.value_prior,
        )

    def _learn_value_prior(self) -> None:
        """Refit the prior on the steered campaigns' orders to date, from the last fit."""
        self.value_prior = fit_prior(
            realized=(self._earlier_orders + self._past_orders + self._last_orders)[self.steered],
            due=(self._earlier_due + self._past_due + self._last_due)[self.steered],
            start=self.value_prior,
        )

    def _menu_view(self) -> MenuView | None:
        """The menus added since the previous observation; they are handed over once."""
        if not self._menus:
            return None
        parts, self._menus = self._menus, []
        timed = all(m.day_fraction is not None for m in parts)
        weighted = any(m.weight is not None for m in parts)
        return MenuView(
            campaign=np.concatenate([m.campaign for m in parts]),
            value=np.concatenate([m.value for m in parts]),
            cost=np.concatenate([m.cost for m in parts]),
            weight=np.concatenate(
                [np.ones(len(m.campaign)) if m.weight is None else m.weight for m in parts]
            )
            if weighted
            else None,
            day_fraction=np.concatenate([m.day_fraction for m in parts]) if timed else None,
        )


def _ints(parts: list[NDArray[np.int64]]) -> NDArray[np.int64]:
    return np.concatenate(parts) if parts else np.zeros(0, dtype=np.int64)


def _floats(parts: list[NDArray[np.float64]]) -> NDArray[np.float64]:
    return np.concatenate(parts) if parts else np.zeros(0)
