"""Properties of the ledger: ``store.events.ingest`` on a SQLite file, driven with random batches
of clicks (random prices, ads clicked again, event ids reused), impressions and orders.

Whatever the sequence: spend never passes a campaign's daily budget (the crossing click pays only
what is left), the day's spend is the sum of its ledger rows and of what the answers charged,
an ad is charged at most once, an event id is taken at most once, and an order is attributed only
to the same shopper's latest click on the same item within the window, never to a later one.
"""

from __future__ import annotations

import math
import uuid
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import select

from quanzhan.api.control import new_controller
from quanzhan.store import catalog
from quanzhan.store.database import Database
from quanzhan.store.events import AdEvent, EventResult, OrderEvent, day_of, ingest
from quanzhan.store.schema import campaign_days, clicks, events, ledger, orders

START = 1_893_450_600.0  # 2029-12-31 21:30 UTC: the batches' times run past midnight
STEP = 1800.0
WINDOW = 2 * 3600.0
TOLERANCE = 1e-9
USERS = ["ann", "bo", "cy", None]
N_EVENT_IDS = 30


@pytest.fixture(scope="module")
def database(tmp_path_factory: pytest.TempPathFactory) -> Any:
    folder: Path = tmp_path_factory.mktemp("ledger")
    db = Database(f"sqlite:///{folder / 'ledger.db'}")
    db.migrate()
    yield db
    db.dispose()


@dataclass(frozen=True)
class AdSpec:
    campaign: int  # 0 or 1; 2 names a campaign that does not exist
    user: str | None
    price: float


ads = st.builds(
    AdSpec,
    campaign=st.sampled_from([0, 0, 1, 1, 2]),
    user=st.sampled_from([*USERS, "ann", "bo"]),
    price=st.integers(1, 5000).map(lambda p: p / 10_000),
)
event_id = st.integers(0, N_EVENT_IDS - 1)
ad_events = st.tuples(
    st.sampled_from(["click", "click", "impression"]), st.integers(0, 99), event_id
)
order_events = st.tuples(
    st.just("order"),
    st.sampled_from([0, 0, 1, 1, 2, 3]),  # the two promoted items, an organic one, an unknown one
    st.sampled_from(USERS[:2]),  # two shoppers who click, mostly
    st.integers(1, 10_000).map(lambda a: a / 100),
    event_id,
)
batches = st.lists(
    st.tuples(
        st.integers(0, 10),  # the batch's time, in half hours from START
        st.lists(st.one_of(ad_events, ad_events, order_events), min_size=1, max_size=8),
    ),
    min_size=1,
    max_size=10,
)
budgets = st.lists(st.integers(1, 80).map(lambda c: c / 100), min_size=2, max_size=2)


@dataclass
class Setup:
    prefix: str
    campaign_ids: list[int]  # two real ones and a missing one
    item_ids: list[int]  # the campaigns' items, an organic item, an unknown id
    budgets: list[float]


def set_up(database: Database, budget: list[float]) -> Setup:
    def work(connection: Any) -> Setup:
        merchant_id, _ = catalog.create_merchant(connection, name="shop", now=START)
        items = [
            catalog.create_item(
                connection,
                merchant_id=merchant_id,
                title=f"thing {n}",
                price=10.0 * (n + 1),
                category="things",
                now=START,
            )["id"]
            for n in range(3)
        ]
        campaigns = [
            catalog.create_campaign(
                connection,
                merchant_id=merchant_id,
                item_id=items[n],
                daily_budget=budget[n],
                target_roi=2.0,
                roi_basis="full_site",
                controller=new_controller(
                    policy="dual",
                    daily_budget=budget[n],
                    target_roi=2.0,
                    roi_basis="full_site",
                    now=START,
                ),
                now=START,
            )["id"]
            for n in range(2)
        ]
        return Setup(
            prefix=uuid.uuid4().hex[:10],
            campaign_ids=[*campaigns, 2**31 - 1],
            item_ids=[*items, 2**31 - 2],
            budgets=budget,
        )

    return database.retrying(work)


def make_event(setup: Setup, ad_specs: list[AdSpec], raw: tuple[Any, ...]) -> AdEvent | OrderEvent:
    kind = raw[0]
    if kind == "order":
        _, item, user, amount, number = raw
        return OrderEvent(
            id=f"{setup.prefix}-e{number}",
            item_id=setup.item_ids[item],
            user_id=user,
            amount=amount,
        )
    _, ad_index, number = raw
    index = ad_index % len(ad_specs)
    spec = ad_specs[index]
    item_id = setup.item_ids[spec.campaign] if spec.campaign < 2 else setup.item_ids[0]
    return AdEvent(
        id=f"{setup.prefix}-e{number}",
        type=kind,
        decision_id=f"{setup.prefix}d{index // 3}",
        slot=index % 3,
        campaign_id=setup.campaign_ids[spec.campaign],
        item_id=item_id,
        price=spec.price,
        pcvr=0.05,
        value=0.5,
        surface="home_feed",
        user_id=spec.user,
    )


@dataclass
class Click:
    event_id: str
    campaign_id: int
    item_id: int
    user_id: str | None
    time: float


@settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
@given(budget=budgets, ad_specs=st.lists(ads, min_size=1, max_size=9), plan=batches)
def test_the_ledger_holds_its_invariants(
    database: Database,
    budget: list[float],
    ad_specs: list[AdSpec],
    plan: list[tuple[int, list[tuple[Any, ...]]]],
) -> None:
    setup = set_up(database, budget)
    budget_of = dict(zip(setup.campaign_ids, setup.budgets, strict=False))
    taken_ids: set[str] = set()
    charged_ads: set[tuple[str, int]] = set()
    shown_ads: set[tuple[str, int]] = set()
    spend: dict[tuple[int, str], float] = defaultdict(float)  # the answers' charges per day
    accepted_clicks: list[Click] = []
    charges: dict[str, float] = {}
    attributed: dict[str, str | None] = {}

    for half_hours, raw_events in plan:
        now = START + STEP * half_hours
        day = day_of(now)
        batch = [make_event(setup, ad_specs, raw) for raw in raw_events]
        results: list[EventResult] = database.retrying(
            lambda c, b=batch, t=now: ingest(c, b, now=t, attribution_window=WINDOW)
        )
        assert [r.id for r in results] == [e.id for e in batch]
        for event, result in zip(batch, results, strict=True):
            if event.id in taken_ids:
                assert result.status == "duplicate", (event, result)
            if result.status != "accepted":
                assert result.charged is None, "only an accepted click is charged"
                continue
            assert event.id not in taken_ids, "an event id was taken twice"
            taken_ids.add(event.id)
            if isinstance(event, OrderEvent):
                assert event.item_id in setup.item_ids[:3], "an order for an unknown item"
                click = expected_click(accepted_clicks, event, now=now)
                attributed[event.id] = None if click is None else click.event_id
                assert result.campaign_id == (None if click is None else click.campaign_id)
                continue
            assert event.campaign_id in setup.campaign_ids[:2], "a campaign that does not exist"
            key = (event.decision_id, event.slot)
            if event.type == "impression":
                assert key not in shown_ads, "an ad's impression counted twice"
                shown_ads.add(key)
                continue
            assert key not in charged_ads, "an ad charged twice"
            charged_ads.add(key)
            assert result.charged is not None
            left = budget_of[event.campaign_id] - spend[(event.campaign_id, day)]
            assert result.charged == pytest.approx(max(0.0, min(event.price, left)), abs=TOLERANCE)
            assert 0.0 <= result.charged <= event.price
            spend[(event.campaign_id, day)] += result.charged
            assert spend[(event.campaign_id, day)] <= budget_of[event.campaign_id] + TOLERANCE
            charges[event.id] = result.charged
            accepted_clicks.append(
                Click(event.id, event.campaign_id, event.item_id, event.user_id, now)
            )
        check_tables(database, setup, spend=spend, charges=charges, taken_ids=taken_ids)
    check_attribution(database, setup, attributed)


def expected_click(clicks_so_far: list[Click], order: OrderEvent, *, now: float) -> Click | None:
    """The shopper's latest click on the item within the window, none after the order."""
    if order.user_id is None:
        return None
    candidates = [
        c
        for c in clicks_so_far
        if c.user_id == order.user_id
        and c.item_id == order.item_id
        and now - WINDOW <= c.time <= now
    ]
    return max(candidates, key=lambda c: (c.time, c.event_id), default=None)


def check_tables(
    database: Database,
    setup: Setup,
    *,
    spend: dict[tuple[int, str], float],
    charges: dict[str, float],
    taken_ids: set[str],
) -> None:
    campaign_ids = setup.campaign_ids[:2]
    with database.read() as connection:
        days = {
            (int(c), d): float(s)
            for c, d, s in connection.execute(
                select(
                    campaign_days.c.campaign_id, campaign_days.c.day, campaign_days.c.spend
                ).where(campaign_days.c.campaign_id.in_(campaign_ids))
            )
        }
        rows = connection.execute(
            select(ledger.c.click_id, ledger.c.campaign_id, ledger.c.day, ledger.c.amount).where(
                ledger.c.campaign_id.in_(campaign_ids)
            )
        ).all()
        stored_ids = set(
            connection.execute(
                select(events.c.id).where(events.c.id.startswith(f"{setup.prefix}-"))
            ).scalars()
        )
        stored_charges = dict(
            connection.execute(
                select(clicks.c.event_id, clicks.c.charged).where(
                    clicks.c.campaign_id.in_(campaign_ids)
                )
            ).all()
        )
    assert stored_ids == taken_ids
    assert stored_charges == charges
    by_day: dict[tuple[int, str], float] = defaultdict(float)
    for click_id, campaign_id, day, amount in rows:
        assert charges.get(click_id) == amount > 0, "a ledger row that no answer charged"
        by_day[(int(campaign_id), day)] += amount
    assert len(rows) == sum(amount > 0 for amount in charges.values())
    budget_of = dict(zip(campaign_ids, setup.budgets, strict=True))
    for key in set(days) | set(spend) | set(by_day):
        assert days.get(key, 0.0) <= budget_of[key[0]] + TOLERANCE, "spend passed the budget"
        assert math.isclose(days.get(key, 0.0), by_day.get(key, 0.0), abs_tol=TOLERANCE)
        assert math.isclose(days.get(key, 0.0), spend.get(key, 0.0), abs_tol=TOLERANCE)


def check_attribution(database: Database, setup: Setup, expected: dict[str, str | None]) -> None:
    with database.read() as connection:
        stored = {
            row.event_id: row
            for row in connection.execute(
                select(orders).where(orders.c.event_id.startswith(f"{setup.prefix}-"))
            )
        }
        click_rows = {
            row.event_id: row
            for row in connection.execute(
                select(clicks).where(clicks.c.campaign_id.in_(setup.campaign_ids[:2]))
            )
        }
    assert set(stored) == set(expected)
    for event_id, order in stored.items():
        assert order.click_id == expected[event_id]
        if order.click_id is None:
            assert order.campaign_id is None and order.click_time is None
            continue
        click = click_rows[order.click_id]
        assert click.user_id is not None and click.user_id == order.user_id
        assert click.item_id == order.item_id
        assert click.time <= order.time <= click.time + WINDOW
        assert (order.campaign_id, order.click_time) == (click.campaign_id, click.time)
