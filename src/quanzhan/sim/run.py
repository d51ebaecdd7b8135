"""The day loop: the market and the engine, tick by tick, with accounting in between.

Per tick: the market draws page views; the engine decides; the market shows the ads and samples
clicks; the ledger charges them (it alone enforces budgets); attribution credits the orders whose
time has come; the controller moves the multipliers; and on schedule the engine relearns from
its log. After the last tick the orders still to come are credited too.
"""

from __future__ import annotations

import time as clock
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from quanzhan.accounting.attribution import Attribution
from quanzhan.accounting.ledger import Ledger
from quanzhan.accounting.stats import Stats
from quanzhan.bidding.controller import CampaignState
from quanzhan.bidding.forecast import TrafficForecast
from quanzhan.bidding.pacing import ProportionalPacing
from quanzhan.domain import RoiBasis
from quanzhan.engine.batch import Decision, RequestBatch
from quanzhan.engine.decision import Engine
from quanzhan.engine.log import Impressions
from quanzhan.sim.config import ScenarioConfig
from quanzhan.sim.evaluation import PredictionRecord
from quanzhan.sim.market import Feedback, Market, MarketView, Orders
from quanzhan.sim.traffic import DAY_SECONDS

Progress = Callable[[int, int], None]


@dataclass(frozen=True, slots=True)
class SimulationResult:
    """Everything a report needs from one run."""

    config: ScenarioConfig
    seed: int
    view: MarketView
    stats: Stats
    ledger: Ledger
    click_prediction: PredictionRecord
    purchase_prediction: PredictionRecord
    wall_seconds: float
    refreshes: int
    free_clicks: int
    expected_gmv_ad: NDArray[np.float64]


class Simulation:
    """One scenario run from one seed; ``run`` plays every tick."""

    def __init__(self, config: ScenarioConfig, *, seed: int) -> None:
        if seed < 0:
            raise ValueError("seed must be non-negative")
        self.config = config
        self.seed = seed
        self.market = Market(config)
        self.view = self.market.reset(seed=seed)
        campaigns = self.view.campaigns
        max_slots = max(page.ad_slots for page in config.traffic.pages.values())
        self.engine = Engine(
            config=config.engine,
            items=self.view.items,
            campaigns=campaigns,
            n_users=self.view.n_users,
            max_slots=max_slots,
            history_user=self.view.history_user,
            history_item=self.view.history_item,
            seed=seed,
        )
        self.ledger = Ledger(budget=campaigns.budget.copy())
        self.attribution = Attribution(window_seconds=config.engine.attribution_window_hours * 3600)
        # One hour past the last day gathers the orders that arrive after the market closes.
        self.stats = Stats(n_campaigns=len(campaigns), n_hours=24 * config.traffic.days + 1)
        self.forecast = TrafficForecast()
        self.forecast.add_day(self.view.history_hourly_requests.astype(np.float64))
        self.controller = ProportionalPacing(
            target_roi=campaigns.target_roi,
            gain=config.engine.pacing_gain,
            plan=self.forecast.share_elapsed,
        )
        self.click_prediction = PredictionRecord()
        self.purchase_prediction = PredictionRecord()
        self._item_campaign = np.full(len(self.view.items), -1, dtype=np.int32)
        self._item_campaign[campaigns.item] = np.arange(len(campaigns), dtype=np.int32)
        self._next_refresh = config.engine.first_refresh_hours * 3600
        self._free_clicks = 0
        # Ground-truth expected ad GMV per campaign, for evaluation only; the engine never sees it.
        self._expected_gmv = np.zeros(len(campaigns))

    def run(self, progress: Progress | None = None) -> SimulationResult:
        started = clock.perf_counter()
        total = self.market.n_ticks
        for tick in range(total):
            self._maybe_new_day(tick)
            batch = self.market.next_requests()
            if batch is None:
                break
            self._tick(batch)
            if progress is not None:
                progress(tick + 1, total)
        self._credit(self.market.remaining_orders())
        return SimulationResult(
            config=self.config,
            seed=self.seed,
            view=self.view,
            stats=self.stats,
            ledger=self.ledger,
            click_prediction=self.click_prediction,
            purchase_prediction=self.purchase_prediction,
            wall_seconds=clock.perf_counter() - started,
            refreshes=self.engine.predictor.refreshes,
            free_clicks=self._free_clicks,
            expected_gmv_ad=self._expected_gmv.copy(),
        )

    def _maybe_new_day(self, tick: int) -> None:
        if tick and (tick * self.market.tick_seconds) % DAY_SECONDS == 0:
            self.ledger.start_day()
            self.controller.start_day()
            self.forecast.end_day()

    def _tick(self, batch: RequestBatch) -> None:
        self.forecast.observe(batch.time)
        self.stats.add_platform("requests", surface=batch.surface, time=batch.time)
        decided = self.engine.decide(
            batch,
            multiplier=self.controller.multipliers(),
            remaining_budget=self.ledger.remaining(),
        )
        decision, features = decided.decision, (decided.x_ctr, decided.x_cvr)
        self.engine.record_auctions(batch, decision)
        feedback = self.market.serve(campaign=decision.campaign, item=decision.item)
        self._account_impressions(batch, decision, features, feedback)
        self._credit(self.market.orders_until(self.market.clock))
        now = self.market.clock
        self.controller.update(self._state(now))
        if now >= self._next_refresh:
            self.engine.refresh(now=now)
            self._next_refresh += self.config.engine.refresh_hours * 3600

    def _account_impressions(
        self,
        batch: RequestBatch,
        decision: Decision,
        features: tuple[NDArray[np.float32], NDArray[np.float32]],
        feedback: Feedback,
    ) -> None:
        row, slot = feedback.request_index, feedback.slot
        campaign = decision.campaign[row, slot]
        surface = batch.surface[row]
        clicked = feedback.clicked
        self.stats.add_campaign(
            "impressions", campaign=campaign, surface=surface, time=batch.time[row]
        )
        charged = self.ledger.charge(
            click_id=feedback.click_id,
            campaign=campaign[clicked],
            price=decision.price[row, slot][clicked],
            time=feedback.click_time,
        )
        self._free_clicks += int(np.sum(charged == 0))
        click_surface = surface[clicked]
        self.stats.add_campaign(
            "clicks", campaign=campaign[clicked], surface=click_surface, time=feedback.click_time
        )
        self.stats.add_campaign(
            "spend",
            campaign=campaign[clicked],
            surface=click_surface,
            time=feedback.click_time,
            value=charged,
        )
        value = (
            decision.pcvr[row, slot][clicked]
            * self.view.items.price[decision.item[row, slot][clicked]]
        )
        self.stats.add_campaign(
            "predicted_gmv",
            campaign=campaign[clicked],
            surface=click_surface,
            time=feedback.click_time,
            value=value,
        )
        self._expected_gmv += np.bincount(
            campaign[clicked],
            weights=feedback.click_true_cvr
            * self.view.items.price[decision.item[row, slot][clicked]],
            minlength=len(self._expected_gmv),
        )
        self.attribution.record_clicks(
            click_id=feedback.click_id,
            user=feedback.click_user,
            item=decision.item[row, slot][clicked],
            campaign=campaign[clicked],
            surface=click_surface,
            time=feedback.click_time,
        )
        click_id = np.full(len(row), -1, dtype=np.int64)
        click_id[clicked] = feedback.click_id
        click_time = np.full(len(row), np.nan)
        click_time[clicked] = feedback.click_time
        self.engine.record(
            Impressions(
                request_id=batch.request_id[row],
                time=batch.time[row],
                surface=surface,
                slot=slot,
                campaign=campaign,
                user=np.where(batch.user[row] >= 0, batch.user[row], -1).astype(np.int32),
                click_id=click_id,
                click_time=click_time,
                x_ctr=features[0][row, slot],
                x_cvr=features[1][row, slot],
            )
        )
        self.click_prediction.add(
            surface=surface,
            predicted=decision.pctr[row, slot],
            truth=feedback.true_ctr,
            outcome=clicked,
        )
        self.purchase_prediction.add(
            surface=click_surface,
            predicted=decision.pcvr[row, slot][clicked],
            truth=feedback.click_true_cvr,
            outcome=feedback.click_ordered,
        )
        end = float(batch.time[-1]) if len(batch) else self.market.clock
        self.stats.add_surface_totals(
            "organic_impressions", totals=feedback.organic_impressions, time=end
        )
        self.stats.add_surface_totals("organic_clicks", totals=feedback.organic_clicks, time=end)

    def _credit(self, orders: Orders) -> None:
        """Attribute orders: to the last ad click within the window, else organic."""
        if len(orders) == 0:
            return
        found = self.attribution.attribute(user=orders.user, item=orders.item, time=orders.time)
        ad = found.campaign >= 0
        self.stats.add_campaign(
            "orders", campaign=found.campaign[ad], surface=found.surface[ad], time=orders.time[ad]
        )
        self.stats.add_campaign(
            "gmv_ad",
            campaign=found.campaign[ad],
            surface=found.surface[ad],
            time=orders.time[ad],
            value=orders.amount[ad],
        )
        organic = ~ad
        self.stats.add_organic_orders(
            campaign=self._item_campaign[orders.item[organic]],
            time=orders.time[organic],
            amount=orders.amount[organic],
        )
        zeros = np.zeros(int(organic.sum()), dtype=np.int8)
        self.stats.add_platform("organic_orders", surface=zeros, time=orders.time[organic])
        self.stats.add_platform(
            "gmv_organic", surface=zeros, time=orders.time[organic], value=orders.amount[organic]
        )
        self.engine.record_attributed_orders(found.click_id[ad])

    def _state(self, now: float) -> CampaignState:
        day = int(min(now - 1e-9, DAY_SECONDS * self.config.traffic.days - 1) // DAY_SECONDS)
        hours = slice(24 * day, 24 * (day + 1))
        campaigns = self.view.campaigns
        # Orders come minutes to hours after their clicks: steer on the engine's predicted GMV
        # of the clicks bought, not on the orders that happen to have arrived.
        gmv_ad = self.stats.campaign_totals("predicted_gmv", hours)
        full_site = campaigns.roi_basis == RoiBasis.FULL_SITE
        gmv = gmv_ad + np.where(full_site, self.stats.organic_gmv(hours), 0.0)
        return CampaignState(
            day_fraction=(now - day * DAY_SECONDS) / DAY_SECONDS,
            spend=self.ledger.spend,
            gmv=gmv,
            budget=campaigns.budget,
            target_roi=campaigns.target_roi,
        )
