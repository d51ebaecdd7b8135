"""The simulated marketplace: a Gymnasium-style environment standing in for surfaces and shoppers.

Contract::

    view = market.reset(seed=7)            # builds the market; returns what is public
    while (batch := market.next_requests()) is not None:
        feedback = market.serve(campaign=..., item=...)   # the engine's slots for that batch
        orders = market.orders_until(market.clock)        # orders whose time has come
    orders = market.remaining_orders()                    # the tail after the last page view

Every draw comes from generators spawned from the one seed at reset, so a seed fixes the run.
"""

from __future__ import annotations

from dataclasses import dataclass, fields, replace

import numpy as np
from numpy.typing import NDArray

from quanzhan.domain import N_SURFACES, CampaignTable, ItemTable, Surface
from quanzhan.engine.batch import RequestBatch
from quanzhan.engine.organic import OrganicEvents
from quanzhan.sim.behaviour import Behaviour, build_behaviour
from quanzhan.sim.campaigns import build_campaigns, campaign_start_times, new_items
from quanzhan.sim.catalog import Catalog, build_catalog
from quanzhan.sim.config import ScenarioConfig
from quanzhan.sim.traffic import HiddenContext, Traffic, tick_counts
from quanzhan.sim.users import Users, build_history, build_users

_CLICK_LAG_SECONDS = 20.0


@dataclass(frozen=True, slots=True)
class MarketView:
    """What the platform knows at the start: the public catalog, the campaigns, the past clicks."""

    items: ItemTable
    campaigns: CampaignTable
    n_users: int
    history_user: NDArray[np.int32]
    history_item: NDArray[np.int32]
    tick_seconds: float
    n_ticks: int
    history_hourly_requests: NDArray[np.int64]  # (24,) page views per hour on the day before


@dataclass(frozen=True, slots=True)
class Feedback:
    """What happened on the pages of one batch.

    Ad impressions are flat ``(m,)`` columns; the ``click_*`` columns describe the subset of them
    that were clicked, in the same order. ``true_*`` columns are hidden truth, kept for evaluation.
    Organic activity comes as per-surface totals and as the results shown, one by one, as the
    platform logs them (``organic``).
    """

    request_index: NDArray[np.int64]
    slot: NDArray[np.int64]
    clicked: NDArray[np.bool_]
    true_ctr: NDArray[np.float64]  # click odds of the impression, position included
    true_cvr: NDArray[np.float64]  # purchase odds should it be clicked
    click_id: NDArray[np.int64]
    click_time: NDArray[np.float64]
    click_user: NDArray[np.int32]  # the shopper who clicked: known once they land on the item
    click_true_cvr: NDArray[np.float64]
    click_ordered: NDArray[np.bool_]
    organic_impressions: NDArray[np.int64]  # (surfaces,)
    organic_clicks: NDArray[np.int64]  # (surfaces,)
    organic: OrganicEvents


@dataclass(frozen=True, slots=True)
class Orders:
    """Orders as the platform sees them: who bought which item, when, for how much.

    ``from_organic`` is hidden truth, for evaluation only: whether the click that caused the
    order was an organic one. Attribution never reads it.
    """

    user: NDArray[np.int32]
    item: NDArray[np.int32]
    time: NDArray[np.float64]
    amount: NDArray[np.float64]
    from_organic: NDArray[np.bool_]

    def __len__(self) -> int:
        return len(self.user)

    @staticmethod
    def empty() -> Orders:
        return Orders(
            np.zeros(0, np.int32),
            np.zeros(0, np.int32),
            np.zeros(0),
            np.zeros(0),
            np.zeros(0, bool),
        )

    def take(self, index: NDArray[np.bool_] | NDArray[np.intp]) -> Orders:
        return Orders(**{f.name: getattr(self, f.name)[index] for f in fields(Orders)})

    @staticmethod
    def concat(parts: list[Orders]) -> Orders:
        if not parts:
            return Orders.empty()
        return Orders(
            **{f.name: np.concatenate([getattr(p, f.name) for p in parts]) for f in fields(Orders)}
        )


class Market:
    """A marketplace of one scenario. Call ``reset`` before anything else."""

    def __init__(self, config: ScenarioConfig) -> None:
        self.config = config
        self.catalog: Catalog
        self.users: Users
        self.behaviour: Behaviour
        self.campaigns: CampaignTable
        self._traffic: Traffic
        self._counts: NDArray[np.int64]
        self._rng: np.random.Generator
        self._page_rng: np.random.Generator
        self._tick = 0
        self._next_id = 0
        self._next_click = 0
        self._pending: list[Orders] = []
        self._batch: tuple[RequestBatch, HiddenContext] | None = None
        self._last: tuple[RequestBatch, HiddenContext] | None = None

    @property
    def tick_seconds(self) -> float:
        return self.config.traffic.tick_minutes * 60.0

    @property
    def clock(self) -> float:
        """The end of the last tick handed out, in seconds since the first day began."""
        return self._tick * self.tick_seconds

    def reset(self, *, seed: int, past: bool = False) -> MarketView:
        """Build the whole market from ``seed`` and rewind to the first tick.

        ``past`` plays the days before the first simulated day instead: the same catalog,
        shoppers and campaigns, other page views and outcomes, and only the campaigns that were
        running then (no entrants, no campaigns of items new to the platform)."""
        if seed < 0:
            raise ValueError("seed must be non-negative")
        cfg = self.config
        # Page views draw from their own generator, apart from the outcomes of what is shown,
        # so that every policy of a benchmark meets the same shoppers at the same moments.
        streams = np.random.SeedSequence(seed).spawn(7)
        if past:
            streams[4:] = [stream.spawn(1)[0] for stream in streams[4:]]
        (
            catalog_rng,
            user_rng,
            behaviour_rng,
            campaign_rng,
            traffic_rng,
            self._rng,
            self._page_rng,
        ) = [np.random.default_rng(s) for s in streams]
        self.catalog = build_catalog(cfg.catalog, catalog_rng)
        self.users = build_users(cfg.users, self.catalog, user_rng)
        self.behaviour = build_behaviour(
            cfg.behaviour, self.catalog, self.users, behaviour_rng, surges=cfg.traffic.surges
        )
        self.campaigns = build_campaigns(
            cfg.campaigns, cfg.engine.prior_cvr, self.catalog, campaign_rng
        )
        self._campaign_start = campaign_start_times(cfg.campaigns)
        history_user, history_item = build_history(cfg.users, self.users, self.catalog, user_rng)
        # New items have no past on the platform: nobody clicked them before.
        new = new_items(cfg.campaigns, self.campaigns)
        if past:
            absent = (self._campaign_start > 0) | np.isin(self.campaigns.item, new)
            self._campaign_start = np.where(absent, np.inf, 0.0)
        known = ~np.isin(history_item, new)
        history_user, history_item = history_user[known], history_item[known]
        self._traffic = Traffic(cfg.traffic, self.catalog, self.users)
        self._counts = tick_counts(cfg.traffic, traffic_rng)
        diurnal = np.asarray(cfg.traffic.diurnal, dtype=np.float64)
        yesterday = traffic_rng.multinomial(cfg.traffic.requests_per_day, diurnal / diurnal.sum())
        self._tick, self._next_id, self._next_click = 0, 0, 0
        self._last = None
        self._pending, self._batch = [], None
        return MarketView(
            items=self.catalog.items,
            campaigns=self.campaigns,
            n_users=len(self.users),
            history_user=history_user,
            history_item=history_item,
            tick_seconds=self.tick_seconds,
            n_ticks=len(self._counts),
            history_hourly_requests=yesterday.astype(np.int64),
        )

    @property
    def n_ticks(self) -> int:
        return len(self._counts)

    def next_requests(self) -> RequestBatch | None:
        """The page views of the next tick, or ``None`` after the last one."""
        if self._tick >= len(self._counts):
            return None
        start = self._tick * self.tick_seconds
        count = int(self._counts[self._tick])
        batch, hidden = self._traffic.draw(
            start=start,
            end=start + self.tick_seconds,
            count=count,
            first_id=self._next_id,
            rng=self._page_rng,
        )
        self._tick += 1
        self._next_id += count
        self._batch = (batch, hidden)
        return batch

    def serve(self, *, campaign: NDArray[np.int32], item: NDArray[np.int32]) -> Feedback:
        """Show the engine's ads (``(n, s)``, ``-1`` empty) with the organic results, and sample."""
        if self._batch is None:
            raise RuntimeError("serve() needs a batch from next_requests() first")
        batch, hidden = self._batch
        if item.shape[0] != len(batch) or campaign.shape != item.shape:
            raise ValueError("ads must be (n_requests, n_slots) for the current batch")
        self._batch = None
        self._last = (batch, hidden)
        feedback, ad_orders = self._serve_ads(batch, hidden, item)
        organic_orders, organic = self._serve_organic(batch, hidden, item)
        self._pending.extend([ad_orders, organic_orders])
        return replace(
            feedback,
            organic_impressions=np.bincount(organic.surface, minlength=N_SURFACES),
            organic_clicks=np.bincount(organic.surface[organic.clicked], minlength=N_SURFACES),
            organic=organic,
        )

    @property
    def max_ad_slots(self) -> int:
        return max(page.ad_slots for page in self.config.traffic.pages.values())

    def campaigns_active(self) -> NDArray[np.bool_]:
        """Which campaigns have started by the start of the current tick (entrants come mid-run)."""
        started = max(self._tick - 1, 0) * self.tick_seconds  # the current tick's start
        active: NDArray[np.bool_] = self._campaign_start <= started
        return active

    def truth(
        self, *, request_index: NDArray[np.int64], item: NDArray[np.int32]
    ) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
        """Evaluation only: true click odds at the top position and purchase odds of showing
        ``item`` on rows of the batch served last."""
        if self._last is None:
            raise RuntimeError("truth() needs a served batch")
        return self._truth(*self._last, request_index, item)

    def truth_before_serving(
        self, *, request_id: NDArray[np.int64], item: NDArray[np.int32]
    ) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
        """Evaluation only: ``truth`` for the page views handed out and not yet served, by
        request id (the oracle-predictions run, which decides on the truth)."""
        if self._batch is None:
            raise RuntimeError("truth_before_serving() needs a batch from next_requests()")
        batch, hidden = self._batch
        first = int(batch.request_id[0]) if len(batch) else 0
        index = request_id.astype(np.int64) - first
        if len(index) and (index.min() < 0 or index.max() >= len(batch)):
            raise ValueError("request ids outside the current batch")
        return self._truth(batch, hidden, index, item)

    def _truth(
        self,
        batch: RequestBatch,
        hidden: HiddenContext,
        request_index: NDArray[np.int64],
        item: NDArray[np.int32],
    ) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
        surface = batch.surface[request_index]
        user = hidden.user[request_index]
        match = self._match(batch, hidden, request_index, item)
        ctr = self.behaviour.click_probability(user=user, item=item, surface=surface, match=match)
        cvr = self.behaviour.purchase_probability(
            user=user, item=item, surface=surface, time=batch.time[request_index]
        )
        return ctr, cvr

    def orders_until(self, time: float) -> Orders:
        """Orders placed up to ``time`` and not handed out before, sorted by time."""
        pending = Orders.concat(self._pending)
        due = pending.time <= time
        self._pending = [pending.take(~due)]
        return _sorted(pending.take(due))

    def remaining_orders(self) -> Orders:
        """Every order still to come (the tail after the last page view)."""
        pending = Orders.concat(self._pending)
        self._pending = []
        return _sorted(pending)

    def _serve_ads(
        self, batch: RequestBatch, hidden: HiddenContext, item: NDArray[np.int32]
    ) -> tuple[Feedback, Orders]:
        """Ad impressions and clicks; organic totals are left empty for ``serve`` to fill."""
        request_index, slot = np.nonzero(item >= 0)
        shown = item[request_index, slot]
        surface = batch.surface[request_index]
        user = hidden.user[request_index]
        match = self._match(batch, hidden, request_index, shown)
        ctr = self.behaviour.click_probability(user=user, item=shown, surface=surface, match=match)
        ctr = ctr * self.behaviour.position_factor(slot)
        clicked = self._rng.random(len(ctr)) < ctr
        n_clicks = int(clicked.sum())
        click_id = np.arange(self._next_click, self._next_click + n_clicks, dtype=np.int64)
        self._next_click += n_clicks
        click_time = batch.time[request_index[clicked]] + self._rng.exponential(
            _CLICK_LAG_SECONDS, n_clicks
        )
        all_cvr = self.behaviour.purchase_probability(
            user=user, item=shown, surface=surface, time=batch.time[request_index]
        )
        cvr = all_cvr[clicked]
        ordered = self._rng.random(n_clicks) < cvr
        orders = self._orders(
            user[clicked][ordered], shown[clicked][ordered], click_time[ordered], organic=False
        )
        feedback = Feedback(
            request_index=request_index.astype(np.int64),
            slot=slot.astype(np.int64),
            clicked=clicked,
            true_ctr=ctr,
            true_cvr=all_cvr,
            click_id=click_id,
            click_time=click_time,
            click_user=user[clicked].astype(np.int32),
            click_true_cvr=cvr,
            click_ordered=ordered,
            organic_impressions=np.zeros(N_SURFACES, np.int64),
            organic_clicks=np.zeros(N_SURFACES, np.int64),
            organic=OrganicEvents.empty(),
        )
        return feedback, orders

    def _serve_organic(
        self, batch: RequestBatch, hidden: HiddenContext, ads: NDArray[np.int32]
    ) -> tuple[Orders, OrganicEvents]:
        """Organic results below the ads; one already shown as an ad on the page is dropped.
        The platform knows each shopper as the engine does (``-1`` where it cannot tell)."""
        organic = hidden.organic
        taken = (organic[:, :, None] == ads[:, None, :]).any(axis=2) if ads.shape[1] else False
        request_index, position = np.nonzero((organic >= 0) & ~taken)
        shown = organic[request_index, position]
        surface = batch.surface[request_index]
        user = hidden.user[request_index]
        match = self._match(batch, hidden, request_index, shown)
        page_position = position + batch.n_slots[request_index]
        ctr = self.behaviour.click_probability(user=user, item=shown, surface=surface, match=match)
        ctr = ctr * self.behaviour.position_factor(page_position.astype(np.int64))
        clicked = self._rng.random(len(ctr)) < ctr
        cvr = self.behaviour.purchase_probability(
            user=user[clicked],
            item=shown[clicked],
            surface=surface[clicked],
            time=batch.time[request_index[clicked]],
        )
        ordered = self._rng.random(len(cvr)) < cvr
        click_time = batch.time[request_index[clicked]] + self._rng.exponential(
            _CLICK_LAG_SECONDS, int(clicked.sum())
        )
        orders = self._orders(
            user[clicked][ordered], shown[clicked][ordered], click_time[ordered], organic=True
        )
        shown_events = OrganicEvents(
            time=batch.time[request_index],
            surface=surface,
            user=batch.user[request_index],
            item=shown.astype(np.int32),
            position=page_position.astype(np.int64),
            clicked=clicked,
        )
        return orders, shown_events

    def _match(
        self,
        batch: RequestBatch,
        hidden: HiddenContext,
        request_index: NDArray[np.int64],
        item: NDArray[np.int32],
    ) -> NDArray[np.float64]:
        """How well each shown item answers its page's search query, in [0, 1]."""
        query = batch.query_terms[request_index]
        title = self.catalog.items.title_terms[item]
        has_term = (query[:, :, None] == title[:, None, :]).any(axis=2) & (query >= 0)
        n_terms = np.maximum((query >= 0).sum(axis=1), 1)
        term_share = has_term.sum(axis=1) / n_terms
        on_topic = self.catalog.items.category[item] == hidden.topic[request_index]
        match: NDArray[np.float64] = 0.5 * term_share + 0.5 * on_topic
        match[batch.surface[request_index] != Surface.SEARCH] = 1.0
        return match

    def _orders(
        self,
        user: NDArray[np.int32],
        item: NDArray[np.int32],
        click_time: NDArray[np.float64],
        *,
        organic: bool,
    ) -> Orders:
        delay = self.behaviour.order_delay(self._rng, len(user))
        return Orders(
            user=user.astype(np.int32),
            item=item.astype(np.int32),
            time=click_time + delay,
            amount=self.catalog.items.price[item].astype(np.float64),
            from_organic=np.full(len(user), organic),
        )


def _sorted(orders: Orders) -> Orders:
    order = np.argsort(orders.time, kind="stable")
    return orders.take(order)
