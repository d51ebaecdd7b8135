"""Evaluation only: what the campaigns achieved and could have achieved, in ground-truth terms.

The oracle reads the market's hidden truth, so nothing it holds may reach the engine or a
policy. For every ad shown it books the *expected* GMV and spend (true click odds x true
purchase odds x price, true click odds x price per click) per campaign and day, so sampling
noise does not blur comparisons, and the organic GMV of each campaign's item by cause (orders
from organic clicks, whatever attribution later credited them to). With menus on, it also
books every full-site candidate's slot menu in true terms; over those, ``bidding.menu_lp``
gives each campaign's hindsight optimum: the most expected GMV it could have had on that day's
traffic, competitors' bids fixed, under its budget and target ROI.
"""

from __future__ import annotations

from dataclasses import dataclass, fields

import numpy as np
from numpy.typing import NDArray

from quanzhan.domain import DAY_SECONDS
from quanzhan.engine.batch import Decision, RequestBatch
from quanzhan.engine.opportunity import Opportunities
from quanzhan.sim.market import Feedback, Market


@dataclass(frozen=True, slots=True)
class TrueMenus:
    """Slot menus in truth: ``(m, s)`` expected GMV and spend per slot, ``nan`` where absent.
    ``(m,)`` per auction: ``click_value``, the true value of a click (true pCVR x price), and
    ``bid_value``, the value per click the engine bid on (its pCVR x price): a multiplier ``k``
    takes slot ``j`` where ``k x bid_value`` reaches the slot's price per click."""

    campaign: NDArray[np.int64]
    day: NDArray[np.int64]
    value: NDArray[np.float64]
    cost: NDArray[np.float64]
    click_value: NDArray[np.float64]
    bid_value: NDArray[np.float64]

    def bid_thresholds(self, rows: slice | NDArray[np.bool_] = slice(None)) -> NDArray[np.float64]:
        """The multiplier each slot of ``rows`` is taken at on the engine's bids: its price
        per click, ``cost / value x click_value``, over ``bid_value`` (``inf`` where the slot
        is absent or the bid is worth nothing)."""
        value, cost = self.value[rows], self.cost[rows]
        with np.errstate(divide="ignore", invalid="ignore"):
            ratio = self.click_value[rows] / self.bid_value[rows]
            out = cost / value * ratio[:, None]
        result: NDArray[np.float64] = np.where(np.isfinite(out) & (out >= 0), out, np.inf)
        return result


class Oracle:
    """Books expected outcomes per (campaign, day); ``enabled`` adds the true slot menus."""

    def __init__(self, *, market: Market, days: int, enabled: bool) -> None:
        self.market = market
        self.days = days
        self.enabled = enabled
        n = len(market.campaigns)
        self.value = np.zeros((n, days))
        self.spend = np.zeros((n, days))
        self.organic = np.zeros((n, days))
        self._menus: list[TrueMenus] = []

    def record_impressions(
        self, *, batch: RequestBatch, decision: Decision, feedback: Feedback
    ) -> None:
        row, slot = feedback.request_index, feedback.slot
        campaign = decision.campaign[row, slot]
        price = self.market.catalog.items.price[decision.item[row, slot]]
        day = self._day(batch.time[row])
        flat = campaign.astype(np.int64) * self.days + day
        size = self.value.size
        value = feedback.true_ctr * feedback.true_cvr * price
        spend = feedback.true_ctr * decision.price[row, slot]
        self.value += np.bincount(flat, weights=value, minlength=size).reshape(self.value.shape)
        self.spend += np.bincount(flat, weights=spend, minlength=size).reshape(self.spend.shape)

    def record_organic(
        self, *, campaign: NDArray[np.int32], time: NDArray[np.float64], amount: NDArray[np.float64]
    ) -> None:
        has = campaign >= 0
        flat = campaign[has].astype(np.int64) * self.days + self._day(time[has])
        size = self.organic.size
        self.organic += np.bincount(flat, weights=amount[has], minlength=size).reshape(
            self.organic.shape
        )

    def record_menus(self, *, batch: RequestBatch, menus: Opportunities) -> None:
        if not self.enabled or len(menus) == 0:
            return
        item = self.market.campaigns.item[menus.campaign]
        ctr, cvr = self.market.truth(request_index=menus.row, item=item)
        slots = menus.price.shape[1]
        position = self.market.behaviour.position_factor(np.arange(slots))
        clicks = ctr[:, None] * position[None, :]
        price = self.market.catalog.items.price[item]
        self._menus.append(
            TrueMenus(
                campaign=menus.campaign.astype(np.int64),
                day=self._day(batch.time[menus.row]),
                value=np.where(np.isnan(menus.price), np.nan, clicks * (cvr * price)[:, None]),
                cost=clicks * menus.price,
                click_value=cvr * price,
                bid_value=menus.pcvr * price,
            )
        )

    def menus(self) -> TrueMenus:
        if not self._menus:
            empty, none = np.zeros((0, self.market.max_ad_slots)), np.zeros(0)
            return TrueMenus(np.zeros(0, np.int64), np.zeros(0, np.int64), empty, empty, none, none)
        merged = TrueMenus(
            **{
                f.name: np.concatenate([getattr(m, f.name) for m in self._menus])
                for f in fields(TrueMenus)
            }
        )
        self._menus = [merged]
        return merged

    def _day(self, time: NDArray[np.float64]) -> NDArray[np.int64]:
        return np.clip((time // DAY_SECONDS).astype(np.int64), 0, self.days - 1)
