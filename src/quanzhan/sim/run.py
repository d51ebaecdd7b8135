"""The day loop: the market and the engine, tick by tick, with accounting in between.

Per tick: the market draws page views; the engine decides with the policy's multipliers; the
market shows the ads and samples clicks; the ledger charges them (it alone enforces budgets);
attribution credits the orders whose time has come; the policy sees the tick's figures and
moves; on schedule the engine relearns from its log. After the last tick the orders still to
come are credited too. An optional oracle records ground-truth slot menus and outcomes, for
evaluation only (the hindsight optimum), and a thin sample of requests measures retrieval's
recall against the truth; the engine and the policy never see either.
"""

from __future__ import annotations

import math
import time as clock
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
from numpy.typing import NDArray

from quanzhan.accounting.attribution import Attribution
from quanzhan.accounting.ledger import Ledger
from quanzhan.accounting.stats import Stats
from quanzhan.bidding.forecast import TrafficForecast
from quanzhan.bidding.landscape import MenuSample
from quanzhan.bidding.observer import TickObserver
from quanzhan.bidding.policy import CampaignSpec, MenuView, Policy
from quanzhan.bidding.registry import make_policy
from quanzhan.domain import DAY_SECONDS, CampaignMode
from quanzhan.engine.batch import RequestBatch
from quanzhan.engine.decision import Decided, Engine
from quanzhan.engine.eventfile import write_event_file
from quanzhan.engine.log import Impressions
from quanzhan.engine.modeldir import load_models
from quanzhan.engine.opportunity import Opportunities
from quanzhan.engine.organic import OrganicEvents
from quanzhan.sim.config import ScenarioConfig
from quanzhan.sim.evaluation import PredictionRecord
from quanzhan.sim.market import Feedback, Market, MarketView, Orders
from quanzhan.sim.oracle import Oracle
from quanzhan.sim.past import PlatformPast, play_past
from quanzhan.sim.recall import RetrievalRecall
from quanzhan.sim.traffic import promotion_calendar

Progress = Callable[[int, int], None]


@dataclass(frozen=True, slots=True)
class SimulationResult:
    """Everything a report needs from one run."""

    config: ScenarioConfig
    seed: int
    policy: str
    view: MarketView
    stats: Stats
    ledger: Ledger
    click_prediction: PredictionRecord
    purchase_prediction: PredictionRecord
    wall_seconds: float
    refreshes: int
    free_clicks: int
    oracle: Oracle
    retrieval: RetrievalRecall


class Simulation:
    """One scenario run from one seed, steered by one policy; ``run`` plays every tick.

    ``policy`` defaults to the scenario's (``engine.policy``); ``menus`` turns on the oracle
    (ground-truth slot menus for the hindsight optimum), which costs time and memory;
    ``recall`` measures retrieval's recall on a sample of requests (``sim.recall``);
    ``models`` is a model directory the engine starts from instead of its priors;
    ``oracle_predictions`` has the engine bid and rank on the true click and purchase odds
    instead of its models' (evaluation only: what prediction error costs the bidding);
    ``pctr_perturbation`` scales every pCTR the engine's models serve by ``1 +`` it (evaluation
    only: a change too small to mean anything, to measure how far chaos alone moves a run; the
    oracle's predictions are served as they are).
    """

    def __init__(
        self,
        config: ScenarioConfig,
        *,
        seed: int,
        policy: Policy | None = None,
        menus: bool = False,
        recall: bool = True,
        models: Path | None = None,
        oracle_predictions: bool = False,
        pctr_perturbation: float = 0.0,
        past: PlatformPast | None = None,
        before_start: bool = False,
        keep_organic: bool = False,
    ) -> None:
        if seed < 0:
            raise ValueError("seed must be non-negative")
        check_perturbation(pctr_perturbation)
        self.config = config
        self.seed = seed
        self.market = Market(config)
        self.view = self.market.reset(seed=seed, past=before_start)
        campaigns = self.view.campaigns
        self.engine = Engine(
            config=config.engine,
            items=self.view.items,
            campaigns=campaigns,
            n_users=self.view.n_users,
            max_slots=self.market.max_ad_slots,
            history_user=self.view.history_user,
            history_item=self.view.history_item,
            seed=seed,
        )
        if models is not None:
            load_models(models, self.engine)
        self.engine.predictor.click_scale = 1.0 + pctr_perturbation
        if past is None and not before_start:
            past = play_past(config, seed=seed)
        self._past, self._late = past, 0.0
        if past is not None:
            self.engine.record(past.impressions)
            self.engine.record_organic(past.organic)
            self.engine.record_attributed_orders(past.ordered_clicks, past.ordered_time)
            self.engine.refresh(now=0.0)
            # The run reads only the past's late orders from here on; its organic results
            # (70 million on a `large` day) are not held for the length of the run.
            self._past = replace(past, organic=OrganicEvents.empty())
        self.oracle_predictions = oracle_predictions
        if oracle_predictions:
            self.engine.prediction_override = self._true_predictions
        self.policy = make_policy(config.engine.policy) if policy is None else policy
        self.policy.reset(
            campaigns=CampaignSpec(
                budget=campaigns.budget,
                target_roi=campaigns.target_roi,
                roi_basis=campaigns.roi_basis,
            ),
            seed=seed,
        )
        recall_day = getattr(self.policy, "recall_day", None)
        if past is not None and past.landscape is not None and callable(recall_day):
            recall_day(past.landscape)
        calendar = () if before_start else promotion_calendar(config.traffic)
        expect_promotions = getattr(self.policy, "expect_promotions", None)
        if calendar and callable(expect_promotions):
            expect_promotions(calendar)
        self.ledger = Ledger(budget=campaigns.budget.copy())
        self.attribution = Attribution(window_seconds=config.engine.attribution_window_hours * 3600)
        # One hour past the last day gathers the orders that arrive after the market closes.
        self.stats = Stats(n_campaigns=len(campaigns), n_hours=24 * config.traffic.days + 1)
        self.forecast = TrafficForecast(calendar)
        self.forecast.add_day(self.view.history_hourly_requests.astype(np.float64))
        self.observer = TickObserver(
            n_campaigns=len(campaigns),
            steered=campaigns.mode == CampaignMode.FULL_SITE,
            attribution_window=config.engine.attribution_window_hours * 3600,
        )
        if past is not None:
            self.observer.carry_over(past.evidence)
        self.oracle = Oracle(market=self.market, days=config.traffic.days, enabled=menus)
        self.retrieval = RetrievalRecall(
            engine=self.engine,
            market=self.market,
            requests_per_day=config.traffic.requests_per_day,
            tick_minutes=config.traffic.tick_minutes,
            enabled=recall,
        )
        self.click_prediction = PredictionRecord()
        self.purchase_prediction = PredictionRecord()
        self._item_campaign = np.full(len(self.view.items), -1, dtype=np.int32)
        self._item_campaign[campaigns.item] = np.arange(len(campaigns), dtype=np.int32)
        # Played as a platform's past, the run keeps a sample of its last day's menus: the
        # landscape a policy taking over next morning may plan its first day on.
        self.landscape = MenuSample(n_campaigns=len(campaigns)) if before_start else None
        # The organic results shown, kept for an event file (``keep_organic``) or, in the days
        # before a run, for the run's engine to learn from.
        self.organic_kept: list[OrganicEvents] | None = None
        if keep_organic or before_start:
            self.organic_kept = [past.organic] if past is not None else []
        self._menus = menus or self.policy.needs_menus or before_start
        # The campaigns the policy steers: the full-site ones, whatever mode a benchmark runs.
        self.steered = campaigns.mode == CampaignMode.FULL_SITE
        self._next_refresh = config.engine.first_refresh_hours * 3600
        self._free_clicks = 0

    def _true_predictions(
        self, batch: RequestBatch, campaign: NDArray[np.int32]
    ) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
        """Evaluation only: the hidden truth as the engine's pCTR and pCVR, ``(n, k)``."""
        item = self.view.campaigns.item[np.maximum(campaign, 0)]
        ctr, cvr = self.market.truth_before_serving(
            request_id=np.repeat(batch.request_id, campaign.shape[1]), item=item.ravel()
        )
        return ctr.reshape(campaign.shape), cvr.reshape(campaign.shape)

    def run(self, progress: Progress | None = None) -> SimulationResult:
        started = clock.perf_counter()
        self.play(progress)
        self._credit(self.market.remaining_orders())
        return SimulationResult(
            config=self.config,
            seed=self.seed,
            policy=self.policy.name,
            view=self.view,
            stats=self.stats,
            ledger=self.ledger,
            click_prediction=self.click_prediction,
            purchase_prediction=self.purchase_prediction,
            wall_seconds=clock.perf_counter() - started,
            refreshes=self.engine.predictor.refreshes,
            free_clicks=self._free_clicks,
            oracle=self.oracle,
            retrieval=self.retrieval,
        )

    def play(self, progress: Progress | None = None) -> None:
        """Every tick of the run; the orders still to come after it are left with the market."""
        total = self.market.n_ticks
        for tick in range(total):
            self._maybe_new_day(tick)
            batch = self.market.next_requests()
            if batch is None:
                break
            self._tick(tick, batch)
            if progress is not None:
                progress(tick + 1, total)

    def write_events(self, path: Path) -> None:
        """Write the engine's log so far, with the catalog and settings, as an event file; the
        organic results shown go in with it where the run kept them (``keep_organic``)."""
        write_event_file(
            path,
            config=self.config.engine,
            items=self.view.items,
            campaigns=self.view.campaigns,
            n_users=self.view.n_users,
            max_slots=self.market.max_ad_slots,
            seed=self.seed,
            history_user=self.view.history_user,
            history_item=self.view.history_item,
            log=self.engine.log,
            end_time=self.market.clock,
            organic=OrganicEvents.concat(self.organic_kept or []),
        )

    def _maybe_new_day(self, tick: int) -> None:
        now = tick * self.market.tick_seconds
        if tick and now % DAY_SECONDS == 0:
            self.ledger.start_day()
            self.policy.start_day()
            self.forecast.end_day()
            self.observer.start_day(at=now)
            if self.landscape is not None:
                self.landscape = MenuSample(n_campaigns=self.landscape.n)

    def _tick(self, tick: int, batch: RequestBatch) -> None:
        self.forecast.observe(batch.time)
        self.stats.add_platform("requests", surface=batch.surface, time=batch.time)
        remaining = self.ledger.remaining()
        active = self.market.campaigns_active()
        decided = self.engine.decide(
            batch,
            multiplier=self.policy.multipliers(),
            remaining_budget=remaining,
            active=active,
            with_menus=self._menus,
            menu_campaigns=self.steered,
            spent_menus=self._spent_menus_read(tick),
        )
        decision = decided.decision
        self.engine.record_auctions(batch, decision)
        feedback = self.market.serve(campaign=decision.campaign, item=decision.item)
        self.engine.record_organic(feedback.organic)
        if self.organic_kept is not None:
            self.organic_kept.append(feedback.organic)
        # The campaigns that could bid in these auctions, with the engine as it just decided.
        self.retrieval.measure(tick=tick, batch=batch, live=active & (remaining > 0))
        if decided.menus is not None:
            self._note_menus(batch, decided.menus)
        self.oracle.record_impressions(batch=batch, decision=decision, feedback=feedback)
        self._account_impressions(batch, decided, feedback)
        self._credit(self.market.orders_until(self.market.clock))
        now = self.market.clock
        if self._past is not None:
            self._late_orders(self._past, self._past.late_between(self._late, now))
            self._late = now
        if now >= self._next_refresh:
            self.engine.refresh(now=now)
            self.observer.learn_delays(now=now)
            self._next_refresh += self.config.engine.refresh_hours * 3600
        self.policy.update(
            self.observer.observe(
                now=now,
                day_seconds=DAY_SECONDS,
                planned_share=self.forecast.share_elapsed(
                    (now % DAY_SECONDS or DAY_SECONDS) / DAY_SECONDS
                ),
                spend=self.ledger.spend,
            )
        )

    def _spent_menus_read(self, tick: int) -> bool:
        """Whether anyone reads the menus of campaigns out of budget at ``tick``: the oracle,
        the landscape kept for a later run, or the policy planning tomorrow on today. On a
        run's last day budgets only run out, so a spent campaign's menus there change nothing
        the policy does."""
        last_day = tick * self.market.tick_seconds // DAY_SECONDS >= self.config.traffic.days - 1
        return self.oracle.enabled or self.landscape is not None or not last_day

    def _late_orders(self, past: PlatformPast, arriving: slice) -> None:
        """Orders of the past's clicks arriving now: the engine learns from them, and the
        observer from their delays (they count towards no day of the run)."""
        self.engine.record_attributed_orders(past.late_click[arriving], past.late_time[arriving])
        self.observer.add_ad_orders(
            campaign=past.late_campaign[arriving],
            click_time=past.late_click_time[arriving],
            time=past.late_time[arriving],
            amount=np.zeros(arriving.stop - arriving.start),
        )

    def _note_menus(self, batch: RequestBatch, menus: Opportunities) -> None:
        """Menus in the engine's own predicted terms for the policy; in truth for the oracle."""
        value, cost = self.engine.menu_terms(menus)
        predicted = MenuView(
            campaign=menus.campaign.astype(np.int64),
            value=value,
            cost=cost,
            day_fraction=np.mod(batch.time[menus.row], DAY_SECONDS) / DAY_SECONDS,
        )
        if self.policy.needs_menus:
            self.observer.add_menus(predicted)
        if self.landscape is not None:
            self.landscape.add(predicted)
        self.oracle.record_menus(batch=batch, menus=menus)

    def _account_impressions(
        self, batch: RequestBatch, decided: Decided, feedback: Feedback
    ) -> None:
        decision = decided.decision
        row, slot = feedback.request_index, feedback.slot
        campaign = decision.campaign[row, slot]
        surface = batch.surface[row]
        clicked = feedback.clicked
        click_campaign, click_surface = campaign[clicked], surface[clicked]
        item = decision.item[row, slot]
        self.stats.add_campaign(
            "impressions", campaign=campaign, surface=surface, time=batch.time[row]
        )
        charged = self.ledger.charge(
            click_id=feedback.click_id,
            campaign=click_campaign,
            price=decision.price[row, slot][clicked],
            time=feedback.click_time,
        )
        self._free_clicks += int(np.sum(charged < decision.price[row, slot][clicked]))
        time = feedback.click_time
        self.stats.add_campaign("clicks", campaign=click_campaign, surface=click_surface, time=time)
        self.stats.add_campaign(
            "spend", campaign=click_campaign, surface=click_surface, time=time, value=charged
        )
        pcvr = decision.pcvr[row, slot][clicked]
        value = pcvr * self.view.items.price[item[clicked]]
        self.stats.add_campaign(
            "predicted_gmv", campaign=click_campaign, surface=click_surface, time=time, value=value
        )
        self.observer.add_clicks(campaign=click_campaign, time=time, pcvr=pcvr, value=value)
        self.attribution.record_clicks(
            click_id=feedback.click_id,
            user=feedback.click_user,
            item=item[clicked],
            campaign=click_campaign,
            surface=click_surface,
            time=time,
        )
        self._log_impressions(batch, decided, feedback)
        self.click_prediction.add(
            surface=surface,
            predicted=decision.pctr[row, slot],
            truth=feedback.true_ctr,
            outcome=clicked,
            time=batch.time[row],
        )
        self.purchase_prediction.add(
            surface=click_surface,
            predicted=pcvr,
            truth=feedback.click_true_cvr,
            outcome=feedback.click_ordered,
            time=feedback.click_time,
        )
        end = float(batch.time[-1]) if len(batch) else self.market.clock
        self.stats.add_surface_totals(
            "organic_impressions", totals=feedback.organic_impressions, time=end
        )
        self.stats.add_surface_totals("organic_clicks", totals=feedback.organic_clicks, time=end)

    def _log_impressions(self, batch: RequestBatch, decided: Decided, feedback: Feedback) -> None:
        row, slot, clicked = feedback.request_index, feedback.slot, feedback.clicked
        click_id = np.full(len(row), -1, dtype=np.int64)
        click_id[clicked] = feedback.click_id
        click_time = np.full(len(row), np.nan)
        click_time[clicked] = feedback.click_time
        self.engine.record(
            Impressions(
                request_id=batch.request_id[row],
                time=batch.time[row],
                surface=batch.surface[row],
                slot=slot,
                campaign=decided.decision.campaign[row, slot],
                user=batch.user[row],
                click_id=click_id,
                click_time=click_time,
                x_ctr=decided.x_ctr[row, slot],
                x_cvr=decided.x_cvr[row, slot],
                pctr=decided.decision.pctr[row, slot],
                pcvr=decided.decision.pcvr[row, slot],
            )
        )

    def _credit(self, orders: Orders) -> None:
        """Attribute orders: to the last ad click within the window, else organic."""
        if len(orders) == 0:
            return
        found = self.attribution.attribute(user=orders.user, item=orders.item, time=orders.time)
        ad = found.campaign >= 0
        campaign, surface, time = found.campaign[ad], found.surface[ad], orders.time[ad]
        self.stats.add_campaign("orders", campaign=campaign, surface=surface, time=time)
        self.stats.add_campaign(
            "gmv_ad", campaign=campaign, surface=surface, time=time, value=orders.amount[ad]
        )
        self.observer.add_ad_orders(
            campaign=campaign, click_time=found.click_time[ad], time=time, amount=orders.amount[ad]
        )
        organic = ~ad
        organic_campaign = self._item_campaign[orders.item[organic]]
        self.stats.add_organic_orders(
            campaign=organic_campaign, time=orders.time[organic], amount=orders.amount[organic]
        )
        in_day = orders.time[organic] < self.market.clock
        self.observer.add_organic(
            campaign=organic_campaign[in_day], amount=orders.amount[organic][in_day]
        )
        # The oracle books organic GMV by cause, not by attribution: an organic purchase that
        # last-click attribution credits to an earlier ad click is still organic in truth.
        caused = orders.from_organic
        self.oracle.record_organic(
            campaign=self._item_campaign[orders.item[caused]],
            time=orders.time[caused],
            amount=orders.amount[caused],
        )
        zeros = np.zeros(int(organic.sum()), dtype=np.int8)
        self.stats.add_platform("organic_orders", surface=zeros, time=orders.time[organic])
        self.stats.add_platform(
            "gmv_organic", surface=zeros, time=orders.time[organic], value=orders.amount[organic]
        )
        self.engine.record_attributed_orders(found.click_id[ad], time)


# A perturbation measures chaos: it must stay far too small to change what a run means.
MAX_PERTURBATION = 0.01


def check_perturbation(value: float) -> None:
    """``ValueError`` unless ``value`` is a finite relative change of at most
    ``MAX_PERTURBATION`` either way."""
    if not math.isfinite(value) or abs(value) > MAX_PERTURBATION:
        raise ValueError(
            f"a pCTR perturbation must be finite and at most {MAX_PERTURBATION} either way,"
            f" not {value}"
        )
