"""One service process's moving parts: the database, the decider, the control loop, and the
background work that keeps the decider's snapshot and steering current."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
from collections import Counter
from collections.abc import Callable
from functools import partial
from typing import Any

import numpy as np
from sqlalchemy import select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from quanzhan.api.control import ControlLoop
from quanzhan.api.decider import Decider, Steering
from quanzhan.api.menus import MenuCollector
from quanzhan.api.metrics import Metrics
from quanzhan.api.settings import ServiceSettings
from quanzhan.api.snapshot import Snapshot
from quanzhan.api.tokens import TokenSigner
from quanzhan.bidding.registry import POLICIES, make_policy
from quanzhan.store import catalog
from quanzhan.store.counters import SpendBoard, make_spend_board
from quanzhan.store.database import Database
from quanzhan.store.events import day_of
from quanzhan.store.menus import add_menu_samples
from quanzhan.store.schema import (
    campaign_days,
    campaigns,
    clicks,
    controllers,
    items,
    organic_clicks,
    traffic,
)

log = logging.getLogger("quanzhan.service")

_SPEND_POLL_SECONDS = 0.05

# Shoppers' interest profiles are learned from this much recent click history at most.
_PROFILE_DAYS = 30
_PROFILE_CLICKS = 1_000_000
# A click is stamped when its batch is taken (by whichever process took it, on that host's clock)
# and seen when the batch commits, a moment later. Each refresh reads the clicks since the last
# one's clock; every ``_LATE_READ_EVERY_SECONDS`` one reads this far further back instead, and
# each skips the clicks already learned.
_LATE_CLICK_SECONDS = 120.0
_LATE_READ_EVERY_SECONDS = 30.0
# Sampled menus go to the database this often (refreshes come every half second or so).
_MENU_FLUSH_SECONDS = 5.0
_MENU_CHUNK = 5_000


class Runtime:
    def __init__(self, settings: ServiceSettings, *, clock: Callable[[], float]) -> None:
        make_policy(settings.policy)  # an unknown one stops the start, not a campaign
        self.settings = settings
        self.clock = clock
        self.database = Database(settings.database_url)
        self.signer = TokenSigner(settings.token_key())
        self.metrics = Metrics()
        self.decider = Decider(
            signer=self.signer,
            token_ttl=settings.token_ttl_seconds,
            clock=clock,
            on_batch=self.metrics.count_batch,
        )
        self._menus_flushed_at = -np.inf
        self.spend_board: SpendBoard = make_spend_board(
            settings.redis_url, scope=settings.database_url
        )
        self.attribution_window = settings.engine.attribution_window_hours * 3600.0
        self.control = ControlLoop(
            database=self.database,
            tick_seconds=settings.tick_seconds,
            holder=f"{socket.gethostname()}:{os.getpid()}:{id(self)}",
            clock=clock,
            attribution_window=self.attribution_window,
            policy=settings.policy,
        )
        self._tasks: list[asyncio.Task[None]] = []
        self._clicks_learned_until = 0.0
        self._clicks_learned_lately: dict[str, float] = {}  # event id -> time, late window
        self._late_clicks_read_at = -np.inf
        self.merchant_keys: dict[str, int] = {}

    def start_sync(self) -> None:
        self.database.migrate()
        self._clicks_learned_until = self.clock()
        self.refresh()

    async def start(self) -> None:
        await asyncio.to_thread(self.start_sync)
        self.decider.start()
        self._tasks = [
            asyncio.get_running_loop().create_task(
                self._every(self.settings.refresh_seconds, self.refresh)
            ),
            asyncio.get_running_loop().create_task(
                self._every(self.settings.tick_seconds, self.control.tick)
            ),
        ]
        if self.settings.redis_url is not None:
            self._tasks.append(
                asyncio.get_running_loop().create_task(
                    self._every(_SPEND_POLL_SECONDS, self.poll_spend)
                )
            )

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await self.decider.stop()
        await asyncio.to_thread(self.flush_traffic)
        await asyncio.to_thread(self.flush_menus)
        try:
            await asyncio.to_thread(self.control.release)
        except Exception:  # shutting down: the lease lapses on its own after three ticks
            log.exception("could not release the control lease")
        self.spend_board.close()
        self.database.dispose()

    async def _every(self, seconds: float, work: Callable[[], Any]) -> None:
        while True:
            await asyncio.sleep(seconds)
            try:
                await asyncio.to_thread(work)
            except Exception:  # the loop must outlive a failed round; the next one retries
                log.exception("background work failed", extra={"work": work.__name__})

    def refresh(self) -> None:
        """Catalog, multipliers and today's spend from the database; traffic counts to it."""
        now = self.clock()
        with self.database.read() as connection:
            version = catalog.catalog_version(connection)
            snapshot = self.decider.snapshot
            if snapshot is None or snapshot.version != version:
                item_rows = [dict(r._mapping) for r in connection.execute(select(items))]
                campaign_rows = [
                    dict(r._mapping)
                    for r in connection.execute(
                        select(campaigns)
                        .where(campaigns.c.status == catalog.ACTIVE)
                        .order_by(campaigns.c.id)
                    )
                ]
                snapshot = Snapshot.build(
                    version=version,
                    item_rows_db=item_rows,
                    campaign_rows_db=campaign_rows,
                    config=self.settings.engine,
                )
                rebuilt, reach_back = True, True
                menus_wanted = _menus_wanted(connection)
                self._clicks_learned_lately = {}
                since = now - _PROFILE_DAYS * 86_400.0
            else:
                rebuilt = False
                reach_back = now - self._late_clicks_read_at >= _LATE_READ_EVERY_SECONDS
                since = self._clicks_learned_until - (_LATE_CLICK_SECONDS if reach_back else 0.0)
            learned = self._learn_clicks(
                connection, snapshot, since=since, known=self._clicks_learned_lately
            )
            if rebuilt:
                self._want_menus(menus_wanted)
                self.decider.snapshot = snapshot
            # A clock stepped back must not reopen what was read.
            self._clicks_learned_until = max(self._clicks_learned_until, now)
            self._clicks_learned_lately.update(learned)
            if reach_back:  # and forget what no read reaches any more
                self._late_clicks_read_at = now
                edge = self._clicks_learned_until - _LATE_CLICK_SECONDS
                self._clicks_learned_lately = {
                    event_id: time
                    for event_id, time in self._clicks_learned_lately.items()
                    if time >= edge
                }
            multiplier = dict(
                connection.execute(
                    select(controllers.c.campaign_id, controllers.c.multiplier)
                ).all()
            )
            spend = dict(
                connection.execute(
                    select(campaign_days.c.campaign_id, campaign_days.c.spend).where(
                        campaign_days.c.day == day_of(now)
                    )
                ).all()
            )
        for campaign_id, amount in self.spend_board.read(day_of(now)).items():
            spend[campaign_id] = max(spend.get(campaign_id, 0.0), amount)
        self.decider.steering = Steering(multiplier=multiplier, spend=spend)
        self.flush_traffic()
        if now - self._menus_flushed_at >= _MENU_FLUSH_SECONDS:
            self._menus_flushed_at = now
            self.flush_menus()

    def poll_spend(self) -> None:
        """Today's spend from the shared board, between database refreshes: a campaign another
        process just exhausted stops bidding here within a poll."""
        board = self.spend_board.read(day_of(self.clock()))
        current = self.decider.steering
        moved = {c: a for c, a in board.items() if a > current.spend.get(c, 0.0)}
        if moved:
            self.decider.steering = Steering(
                multiplier=current.multiplier, spend={**current.spend, **moved}
            )

    def _learn_clicks(
        self, connection: Any, snapshot: Snapshot, *, since: float, known: dict[str, float]
    ) -> dict[str, float]:
        """Fold the clicks since ``since`` into the shoppers' profiles, on ads and on the
        platform's own results alike, the latest ``_PROFILE_CLICKS`` of them, less those in
        ``known`` (learned at an earlier refresh). Returns every click read, learned or known,
        with its time."""
        found: list[Any] = []
        for table in (clicks, organic_clicks):
            found += connection.execute(
                select(table.c.time, table.c.event_id, table.c.user_id, table.c.item_id)
                .where(table.c.time >= since)
                .order_by(table.c.time.desc())
                .limit(_PROFILE_CLICKS)
            ).all()
        rows = sorted(found, key=lambda r: r[0], reverse=True)[:_PROFILE_CLICKS]
        new = [r for r in rows if r[1] not in known]
        if new:
            snapshot.learn_clicks([r[2] for r in new], [int(r[3]) for r in new])
        return {r[1]: float(r[0]) for r in rows}

    def flush_traffic(self) -> None:
        counts = self.decider.take_traffic()
        if not counts:
            return
        try:
            self.database.retrying(lambda c: _add_traffic(c, counts))
        except Exception:
            self.decider.give_back_traffic(counts)  # counted again at the next flush
            raise

    def _want_menus(self, wanted: bool) -> None:
        """Sample the auctions' menus while an active campaign's policy plans over them
        (whatever policy new campaigns get: a campaign keeps the one it was created under)."""
        if wanted and self.decider.menus is None:
            self.decider.menus = MenuCollector(window_seconds=self.settings.tick_seconds)
        elif not wanted and self.decider.menus is not None:
            with contextlib.suppress(Exception):  # a last flush; the rows are a sample
                self.flush_menus()
            self.decider.menus = None

    def flush_menus(self) -> None:
        """The menus sampled since the last flush, to the control loop's queue, a chunk per
        transaction (a backlog after an outage holds no write lock for long)."""
        collector = self.decider.menus
        if collector is None or not len(collector):
            return
        rows = collector.take()
        for start in range(0, len(rows), _MENU_CHUNK):
            chunk = rows.take(np.arange(start, min(start + _MENU_CHUNK, len(rows))))
            try:
                self.database.retrying(partial(add_menu_samples, rows=chunk))
            except Exception:
                collector.give_back(rows.take(np.arange(start, len(rows))))  # the next flush
                raise


def _menus_wanted(connection: Any) -> bool:
    """Whether any active campaign's controller runs a policy that plans over menus."""
    names = connection.execute(
        select(controllers.c.policy)
        .distinct()
        .join(campaigns, campaigns.c.id == controllers.c.campaign_id)
        .where(campaigns.c.status == catalog.ACTIVE)
    ).scalars()
    return any(name in POLICIES and make_policy(name).needs_menus for name in names)


def _add_traffic(connection: Any, counts: Counter[str]) -> None:
    maker = pg_insert if connection.dialect.name == "postgresql" else sqlite_insert
    for hour, n in sorted(counts.items()):
        statement = maker(traffic).values(hour=hour, requests=n)
        connection.execute(
            statement.on_conflict_do_update(
                index_elements=[traffic.c.hour],
                set_={"requests": traffic.c.requests + statement.excluded.requests},
            )
        )
