"""Page views: how many in each tick, on which surface, by whom, and with what context."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from quanzhan.bidding.calendar import Promotion
from quanzhan.domain import SURFACE_NAMES, Surface
from quanzhan.engine.batch import RequestBatch
from quanzhan.sim.catalog import Catalog
from quanzhan.sim.config import TrafficConfig
from quanzhan.sim.users import Users

QUERY_TERMS = 2
# Share of search results and context-led results drawn from the query's or item's category.
_ON_TOPIC = 0.85


@dataclass(frozen=True, slots=True)
class HiddenContext:
    """What the market knows of a batch and the engine does not: who really looks, at what topic."""

    user: NDArray[np.int32]  # the real viewer, known even where the request hides them
    topic: NDArray[np.int64]  # the category a search is about; -1 elsewhere
    organic: NDArray[np.int32]  # (n, o) organic results, -1 padded


def tick_counts(config: TrafficConfig, rng: np.random.Generator) -> NDArray[np.int64]:
    """Page views per tick for every day: each day's total split along the diurnal curve, with
    surges multiplying their hours (a surge day has more page views than the others)."""
    per_hour = np.asarray(config.diurnal, dtype=np.float64)
    ticks_per_day = round(1440 / config.tick_minutes)
    minute_weight = np.repeat(per_hour / per_hour.sum() / 60.0, 60)
    share = minute_weight.reshape(ticks_per_day, -1).sum(axis=1)
    share /= share.sum()
    days = []
    for day in range(config.days):
        factor = _surge_factor(config, day, ticks_per_day)
        total = round(config.requests_per_day * float(np.sum(share * factor)))
        weights = share * factor
        days.append(rng.multinomial(total, weights / weights.sum()))
    return np.concatenate(days).astype(np.int64)


def promotion_calendar(config: TrafficConfig) -> tuple[Promotion, ...]:
    """What the platform announces of the surges: each announced window and its traffic
    factor, on the run's days."""
    return tuple(
        Promotion(
            day=surge.day,
            start=surge.start_hour / 24.0,
            end=surge.end_hour / 24.0,
            traffic_factor=surge.traffic_factor,
        )
        for surge in config.surges
        if surge.announced
    )


def _surge_factor(config: TrafficConfig, day: int, ticks_per_day: int) -> NDArray[np.float64]:
    start = np.arange(ticks_per_day) * config.tick_minutes / 60.0  # tick start, in hours
    factor = np.ones(ticks_per_day)
    for surge in config.surges:
        if surge.day == day:
            inside = (start >= surge.start_hour) & (start < surge.end_hour)
            factor[inside] *= surge.traffic_factor
    return factor


@dataclass(frozen=True, slots=True)
class Traffic:
    """Draws the page views of one tick."""

    config: TrafficConfig
    catalog: Catalog
    users: Users

    def ad_slots(self) -> NDArray[np.int16]:
        return np.array([self.config.pages[s].ad_slots for s in SURFACE_NAMES], dtype=np.int16)

    def organic_slots(self) -> NDArray[np.int64]:
        return np.array([self.config.pages[s].organic_slots for s in SURFACE_NAMES], dtype=np.int64)

    def draw(
        self, *, start: float, end: float, count: int, first_id: int, rng: np.random.Generator
    ) -> tuple[RequestBatch, HiddenContext]:
        """``count`` page views in ``[start, end)``, sorted by time."""
        time = np.sort(rng.uniform(start, end, size=count))
        mix = np.array([self.config.surface_mix.get(s, 0.0) for s in SURFACE_NAMES])
        surface = rng.choice(len(mix), size=count, p=mix / mix.sum()).astype(np.int8)
        user = self.users.sample(rng, count)
        topic = self.users.categories(user, rng)
        query_terms = self._queries(surface, topic, rng)
        context_item = self._context_items(surface, topic, rng)
        visible_user = user.copy()
        offsite = surface == Surface.OFFSITE
        visible_user[offsite & ~self.users.offsite_matched[user]] = -1
        batch = RequestBatch(
            request_id=np.arange(first_id, first_id + count, dtype=np.int64),
            time=time,
            surface=surface,
            user=visible_user,
            query_terms=query_terms,
            context_item=context_item,
            n_slots=self.ad_slots()[surface],
        )
        is_search = surface == Surface.SEARCH
        hidden = HiddenContext(
            user=user,
            topic=np.where(is_search, topic, -1),
            organic=self._organic(surface, user, topic, context_item, rng),
        )
        return batch, hidden

    def _queries(
        self, surface: NDArray[np.int8], topic: NDArray[np.int64], rng: np.random.Generator
    ) -> NDArray[np.int32]:
        """Search queries: two terms from the topic's vocabulary, leaning to its common terms."""
        per = self.catalog.category_terms.shape[1]
        lean = 1.0 / np.arange(1, per + 1)
        pick = rng.choice(per, size=(len(surface), QUERY_TERMS), p=lean / lean.sum())
        terms = self.catalog.category_terms[topic[:, None], pick]
        terms[surface != Surface.SEARCH] = -1
        return terms.astype(np.int32)

    def _context_items(
        self, surface: NDArray[np.int8], topic: NDArray[np.int64], rng: np.random.Generator
    ) -> NDArray[np.int32]:
        item = self.catalog.sample_in_category(category=topic, uniform=rng.random(len(topic)))
        with_item = np.isin(surface, [Surface.CART_FEED, Surface.POST_PURCHASE, Surface.DETAIL])
        return np.where(with_item, item, -1).astype(np.int32)

    def _organic(
        self,
        surface: NDArray[np.int8],
        user: NDArray[np.int32],
        topic: NDArray[np.int64],
        context_item: NDArray[np.int32],
        rng: np.random.Generator,
    ) -> NDArray[np.int32]:
        """Organic results: on-topic items for search and item pages, interests for feeds."""
        slots = self.organic_slots()
        width = int(slots.max()) if len(slots) else 0
        n = len(surface)
        anchor = topic.copy()
        has_item = context_item >= 0
        anchor[has_item] = self.catalog.items.category[context_item[has_item]]
        focused = (surface == Surface.SEARCH) | has_item
        category = np.repeat(anchor[:, None], width, axis=1)
        wander = ~focused[:, None] | (rng.random((n, width)) > _ON_TOPIC)
        drawn = self.users.categories(np.repeat(user, width), rng).reshape(n, width)
        category = np.where(wander, drawn, category)
        organic = self.catalog.sample_in_category(category=category, uniform=rng.random((n, width)))
        organic[np.arange(width)[None, :] >= slots[surface][:, None]] = -1
        return organic
