"""Ad decisions for the HTTP API: concurrent requests gathered into small batches for the engine.

Requests wait in a queue while the engine works on the batch before them, so under load each
``Engine.decide`` call serves many page views and its fixed cost is shared; an idle server
answers a lone request at once. The engine runs on the event loop itself: measured, handing each
batch to a worker thread cost more in GIL hand-overs than it won (decisions/floor 0.39 against
0.45), and the batches came out smaller. A process uses one core; ``serve --workers`` adds more.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import math
import secrets
import threading
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from quanzhan.api.menus import MenuCollector
from quanzhan.api.snapshot import MAX_SLOTS, Snapshot, user_row
from quanzhan.api.tokens import TokenSigner
from quanzhan.domain import SURFACE_NAMES, Surface
from quanzhan.engine.batch import RequestBatch
from quanzhan.store.events import hour_of

_MAX_BATCH = 512


@dataclass(frozen=True, slots=True)
class AdRequest:
    surface: Surface
    user_id: str | None
    query: str | None
    item_id: int | None
    slots: int


@dataclass(frozen=True, slots=True)
class Ad:
    slot: int
    item_id: int
    campaign_id: int
    click_token: str


@dataclass(frozen=True, slots=True)
class Answer:
    decision_id: str
    ads: list[Ad]


@dataclass(frozen=True, slots=True)
class Steering:
    """Each campaign's bid multiplier and today's spend, by database id."""

    multiplier: dict[int, float]
    spend: dict[int, float]


class Decider:
    """Holds the current snapshot and steering, and answers requests in batches."""

    def __init__(
        self,
        *,
        signer: TokenSigner,
        token_ttl: float,
        clock: Callable[[], float],
        on_batch: Callable[[int], None] = lambda _: None,
    ) -> None:
        self.on_batch = on_batch
        self.signer = signer
        self.token_ttl = token_ttl
        self.clock = clock
        self.snapshot: Snapshot | None = None
        # Where set, each batch's slot menus are sampled for the control loop's policies.
        self.menus: MenuCollector | None = None
        self.steering = Steering(multiplier={}, spend={})
        self._queue: list[tuple[AdRequest, asyncio.Future[Answer]]] = []
        self._wake: asyncio.Event | None = None
        self._task: asyncio.Task[None] | None = None
        self._lock = threading.Lock()
        self._id_prefix = secrets.token_hex(8)
        self._id_counter = itertools.count()
        self._aligned_cache: (
            tuple[Snapshot, Steering, NDArray[np.float64], NDArray[np.float64]] | None
        ) = None
        self._traffic: Counter[str] = Counter()

    def start(self) -> None:
        self._wake = asyncio.Event()
        self._task = asyncio.get_running_loop().create_task(self._run())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def decide(self, request: AdRequest) -> Answer:
        if self._wake is None:
            raise RuntimeError("the decider is not started")
        future: asyncio.Future[Answer] = asyncio.get_running_loop().create_future()
        self._queue.append((request, future))
        self._wake.set()
        return await future

    def _next_decision_id(self) -> str:
        # A random per-process prefix and a counter: unique across processes and restarts
        # without a system call per page view.
        return f"{self._id_prefix}{next(self._id_counter):016x}"

    def take_traffic(self) -> Counter[str]:
        """Page views served per hour since the last call (for the traffic forecast)."""
        with self._lock:
            counts, self._traffic = self._traffic, Counter()
        return counts

    def give_back_traffic(self, counts: Counter[str]) -> None:
        """Counts taken by ``take_traffic`` that could not be stored: kept for the next try."""
        with self._lock:
            self._traffic.update(counts)

    async def _run(self) -> None:
        assert self._wake is not None
        while True:
            await self._wake.wait()
            self._wake.clear()
            while self._queue:
                # Let the requests already read off the sockets reach the queue first, so one
                # engine call serves them all.
                await asyncio.sleep(0)
                batch, self._queue = self._queue[:_MAX_BATCH], self._queue[_MAX_BATCH:]
                try:
                    answers = self.decide_now([r for r, _ in batch])
                except Exception as exc:  # every waiter hears of it, none hangs
                    for _, future in batch:
                        if not future.done():
                            future.set_exception(exc)
                    continue
                for (_, future), answer in zip(batch, answers, strict=True):
                    if not future.done():
                        future.set_result(answer)

    def _aligned(
        self, snapshot: Snapshot, steering: Steering
    ) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
        """Multipliers and remaining budgets in the snapshot's campaign order, computed once per
        (snapshot, steering) pair rather than per batch."""
        cached = self._aligned_cache
        if cached is not None and cached[0] is snapshot and cached[1] is steering:
            return cached[2], cached[3]
        ids = snapshot.campaign_ids.tolist()
        multiplier = np.array([steering.multiplier.get(c, 0.0) for c in ids])
        spend = np.array([steering.spend.get(c, 0.0) for c in ids])
        remaining = snapshot.campaign_budget - spend
        self._aligned_cache = (snapshot, steering, multiplier, remaining)
        return multiplier, remaining

    def decide_now(self, requests: list[AdRequest]) -> list[Answer]:
        """Decide a batch synchronously (the batching loop's worker; also usable directly)."""
        now = self.clock()
        snapshot = self.snapshot
        steering = self.steering
        decision_ids = [self._next_decision_id() for _ in requests]
        with self._lock:
            self._traffic[hour_of(now)] += len(requests)
        self.on_batch(len(requests))
        if snapshot is None or snapshot.engine is None or not requests:
            return [Answer(d, []) for d in decision_ids]
        n = len(requests)
        query_terms = [snapshot.query_terms(r.query) for r in requests]
        width = max(1, max(len(t) for t in query_terms))
        query = np.full((n, width), -1, dtype=np.int32)
        for row, ids in enumerate(query_terms):
            query[row, : len(ids)] = ids
        batch = RequestBatch(
            request_id=np.arange(n, dtype=np.int64),
            time=np.full(n, now),
            surface=np.array([r.surface for r in requests], dtype=np.int8),
            user=np.array([user_row(r.user_id) for r in requests], dtype=np.int32),
            query_terms=query,
            context_item=np.array(
                [snapshot.item_rows.get(r.item_id, -1) if r.item_id else -1 for r in requests],
                dtype=np.int32,
            ),
            n_slots=np.array([min(r.slots, MAX_SLOTS) for r in requests], dtype=np.int16),
        )
        multiplier, remaining = self._aligned(snapshot, steering)
        decided = snapshot.engine.decide(
            batch,
            multiplier=multiplier,
            remaining_budget=remaining,
            with_menus=self.menus is not None,
        )
        decision = decided.decision
        if self.menus is not None and decided.menus is not None:
            engine, menus = snapshot.engine, decided.menus
            self.menus.add(
                campaign_ids=snapshot.campaign_ids,
                campaign=menus.campaign.astype(np.int64),
                terms=lambda keep: engine.menu_terms(menus.take(keep)),
                time=now,
            )
        expires = now + self.token_ttl
        # Plain lists from here on: indexing numpy arrays one scalar at a time costs more than
        # the whole engine call on a batch.
        won_campaign, won_item = decision.campaign.tolist(), decision.item.tolist()
        won_price, won_pcvr = decision.price.tolist(), decision.pcvr.tolist()
        campaign_ids, item_ids = snapshot.campaign_id_list, snapshot.item_id_list
        item_price = snapshot.item_price_list
        answers = []
        for row, request in enumerate(requests):
            ads = []
            for slot, campaign_row in enumerate(won_campaign[row]):
                if campaign_row < 0:
                    continue
                item_row = won_item[row][slot]
                pcvr = won_pcvr[row][slot]
                campaign_id, item_id = campaign_ids[campaign_row], item_ids[item_row]
                token = self.signer.sign_fields(
                    decision_ids[row],
                    slot,
                    campaign_id,
                    item_id,
                    _cents_down(won_price[row][slot]),
                    pcvr,
                    pcvr * item_price[item_row],
                    SURFACE_NAMES[request.surface],
                    request.user_id,
                    expires,
                )
                ads.append(Ad(slot, item_id, campaign_id, token))
            answers.append(Answer(decision_ids[row], ads))
        return answers


def _cents_down(price: float) -> float:
    """The price per click in hundredths of a cent, rounded down: a clean figure for the ledger
    that is never above the bid."""
    return math.floor(price * 10_000) / 10_000
