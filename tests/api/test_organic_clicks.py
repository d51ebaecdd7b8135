"""Clicks on the platform's own results: taken once, never charged, and folded into the
shoppers' profiles at the service's next refresh, on SQLite and PostgreSQL."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import pytest
from sqlalchemy import Connection, func, select

from quanzhan.api.control import new_controller
from quanzhan.api.runtime import Runtime
from quanzhan.api.settings import ServiceSettings
from quanzhan.store import catalog
from quanzhan.store.database import Database
from quanzhan.store.events import EventResult, OrganicClickEvent, ingest
from quanzhan.store.schema import events, ledger, organic_clicks

# 2026-11-25 08:00 UTC.
MORNING = 1_795_593_600.0 + 8 * 3600


@pytest.fixture
def runtime(database_url: str) -> Iterator[Runtime]:
    settings = ServiceSettings(database_url=database_url, operator_key="k" * 32)
    service = Runtime(settings, clock=lambda: MORNING)
    service.database.migrate()
    yield service
    service.database.dispose()


def _items(db: Database) -> list[int]:
    """Two items, the first with a campaign (without one the service serves no engine)."""

    def work(connection: Connection) -> list[int]:
        merchant, _ = catalog.create_merchant(connection, name="m", now=MORNING)
        found = [
            int(catalog.create_item(connection, merchant_id=merchant, title=title, price=20.0,
                                    category=category, now=MORNING)["id"])
            for title, category in (("tea pot", "tea"), ("trail shoe", "shoes"))
        ]  # fmt: skip
        money = {"daily_budget": 50.0, "target_roi": 2.0, "roi_basis": "full_site"}
        catalog.create_campaign(
            connection, merchant_id=merchant, item_id=found[0], **money,
            controller=new_controller(policy="dual", **money, now=MORNING), now=MORNING,
        )  # fmt: skip
        return found

    return db.retrying(work)


def _take(
    db: Database, batch: list[OrganicClickEvent], *, now: float = MORNING
) -> list[EventResult]:
    return db.retrying(lambda c: ingest(c, batch, now=now, attribution_window=86_400.0))


def _count(db: Database, table: object) -> int:
    with db.read() as connection:
        return int(connection.execute(select(func.count()).select_from(table)).scalar_one())  # type: ignore[arg-type]


def test_organic_clicks_are_taken_once_and_charge_nothing(runtime: Runtime) -> None:
    db = runtime.database
    tea, shoe = _items(db)
    batch = [
        OrganicClickEvent(id="o1", item_id=tea, user_id="u-1", surface="home_feed"),
        OrganicClickEvent(id="o2", item_id=shoe, user_id=None, surface="search"),
        OrganicClickEvent(id="o3", item_id=999_999, user_id="u-1", surface="detail"),
    ]
    results = _take(db, batch)
    assert [r.status for r in results] == ["accepted", "accepted", "rejected"]
    assert results[2].reason == "unknown item 999999"
    assert all(r.charged is None and r.campaign_id is None for r in results)
    again = _take(db, batch[:1])
    assert again[0].status == "duplicate"
    assert _count(db, organic_clicks) == 2 and _count(db, events) == 2
    assert _count(db, ledger) == 0


def test_the_next_refresh_folds_them_into_the_profiles(runtime: Runtime) -> None:
    db = runtime.database
    tea, shoe = _items(db)
    runtime.start_sync()
    snapshot = runtime.decider.snapshot
    assert snapshot is not None and snapshot.engine is not None
    before = float(snapshot.engine.profiles.counts.sum())
    clicked = [
        OrganicClickEvent(id=f"t{k}", item_id=tea, user_id="u-7", surface="home_feed")
        for k in range(3)
    ]
    _take(db, [*clicked, OrganicClickEvent(id="s", item_id=shoe, user_id=None, surface="search")])
    runtime.clock = lambda: MORNING + 60.0
    runtime.refresh()
    engine = runtime.decider.snapshot.engine  # type: ignore[union-attr]
    assert engine is not None
    # Three clicks of a known shopper; a click without a shopper teaches no profile.
    assert float(engine.profiles.counts.sum()) == before + 3
    runtime.refresh()  # learned once
    assert float(engine.profiles.counts.sum()) == before + 3


def _by_category(runtime: Runtime) -> np.ndarray:
    engine = runtime.decider.snapshot.engine  # type: ignore[union-attr]
    assert engine is not None
    return np.asarray(engine.profiles.counts.sum(axis=0)).ravel()


def test_a_click_seen_after_the_refresh_that_passed_its_time_is_learned_once(
    runtime: Runtime,
) -> None:
    """A click is stamped when its batch is taken and seen when the batch commits: one stamped
    before a refresh but committed after it is learned at the next, and one stamped exactly
    at a refresh's clock is not learned twice."""
    db = runtime.database
    tea, shoe = _items(db)
    runtime.start_sync()
    engine = runtime.decider.snapshot.engine  # type: ignore[union-attr]
    assert engine is not None
    tea_column, shoe_column = (
        int(engine.items.category[runtime.decider.snapshot.item_rows[i]])  # type: ignore[union-attr]
        for i in (tea, shoe)
    )
    start = _by_category(runtime)
    refreshed = MORNING + 60.0
    on_the_edge = OrganicClickEvent(id="edge", item_id=tea, user_id="u-1", surface="home_feed")
    _take(db, [on_the_edge], now=refreshed)
    runtime.clock = lambda: refreshed
    runtime.refresh()
    # Taken ten seconds before that refresh, committed after it.
    late = [
        OrganicClickEvent(id=f"late{k}", item_id=shoe, user_id="u-2", surface="search")
        for k in range(2)
    ]
    _take(db, late, now=refreshed - 10.0)
    runtime.clock = lambda: refreshed + 60.0
    runtime.refresh()
    runtime.clock = lambda: refreshed + 600.0
    runtime.refresh()
    added = _by_category(runtime) - start
    assert added[tea_column] == 1.0
    assert added[shoe_column] == 2.0
    assert added.sum() == 3.0


def test_between_reaches_back_a_refresh_reads_only_since_the_last(runtime: Runtime) -> None:
    """Refreshes come every half second, so most read only the clicks since the last one; a
    late click waits for the next that reaches back, and is learned there once."""
    db = runtime.database
    tea, shoe = _items(db)
    runtime.start_sync()  # reaches back (a full read) at MORNING
    start = _by_category(runtime)
    on_time = OrganicClickEvent(id="now", item_id=tea, user_id="u-3", surface="home_feed")
    _take(db, [on_time], now=MORNING + 5.0)
    runtime.clock = lambda: MORNING + 10.0
    runtime.refresh()
    assert (_by_category(runtime) - start).sum() == 1.0
    late = OrganicClickEvent(id="late", item_id=shoe, user_id="u-3", surface="search")
    _take(db, [late], now=MORNING + 8.0)  # stamped before that refresh, committed after it
    runtime.clock = lambda: MORNING + 20.0
    runtime.refresh()
    assert (_by_category(runtime) - start).sum() == 1.0  # not yet: this one reads from +10 s
    runtime.clock = lambda: MORNING + 31.0
    runtime.refresh()
    runtime.clock = lambda: MORNING + 70.0
    runtime.refresh()
    assert (_by_category(runtime) - start).sum() == 2.0
