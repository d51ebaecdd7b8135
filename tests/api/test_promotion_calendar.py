"""The promotion calendar in the control loop, on SQLite and PostgreSQL: each policy that plans
on one is handed the announced windows with days counted as it counts them, and the traffic
forecast learns an ordinary day's shape from past days with their promotions' extra page views
taken out."""

from __future__ import annotations

import pickle
from datetime import UTC, datetime

import numpy as np
import pytest
from sqlalchemy import Connection, insert, select

from quanzhan.api.calendar import ordinary_hours, policy_calendar
from quanzhan.api.control import ControlLoop, new_controller
from quanzhan.bidding.calendar import Promotion
from quanzhan.bidding.forecast import TrafficForecast
from quanzhan.bidding.landscape import LandscapePacing
from quanzhan.bidding.policy import CampaignSpec
from quanzhan.domain import RoiBasis
from quanzhan.store import catalog
from quanzhan.store.database import Database
from quanzhan.store.promotions import add_promotion, list_promotions
from quanzhan.store.schema import controllers, traffic

# 2026-11-25 08:00 UTC.
MIDNIGHT = 1_795_593_600.0
MORNING = MIDNIGHT + 8 * 3600


def _landscape_campaign(db: Database) -> int:
    def work(connection: Connection) -> int:
        merchant, _ = catalog.create_merchant(connection, name="m", now=MORNING)
        item = catalog.create_item(
            connection, merchant_id=merchant, title="tea pot", price=20.0, category="tea",
            now=MORNING,
        )  # fmt: skip
        money = {"daily_budget": 100.0, "target_roi": 2.0, "roi_basis": "full_site"}
        row = catalog.create_campaign(
            connection, merchant_id=merchant, item_id=item["id"], **money,
            controller=new_controller(policy="landscape", **money, now=MORNING), now=MORNING,
        )  # fmt: skip
        return int(row["id"])

    return db.retrying(work)


def _announce(db: Database, day: str, start: float, end: float, factor: float) -> None:
    db.retrying(
        lambda c: add_promotion(
            c, day=day, start_hour=start, end_hour=end, traffic_factor=factor, now=MORNING
        )
    )


def _calendar(db: Database, campaign: int) -> tuple[int, tuple[Promotion, ...]]:
    with db.read() as connection:
        state = connection.execute(
            select(controllers.c.state).where(controllers.c.campaign_id == campaign)
        ).scalar_one()
    policy = pickle.loads(state)
    return policy.day, policy._calendar


def test_each_policy_is_handed_the_windows_on_its_own_count_of_days(database: Database) -> None:
    campaign = _landscape_campaign(database)
    _announce(database, "2026-11-24", 20, 22, 2.0)  # yesterday: before the policy's first day
    _announce(database, "2026-11-25", 18, 24, 3.0)
    _announce(database, "2026-11-26", 0, 6, 1.5)
    loop = ControlLoop(database=database, tick_seconds=900.0, holder="a", clock=lambda: MORNING)
    assert loop.tick()
    day, calendar = _calendar(database, campaign)
    assert day == 0
    assert calendar == (Promotion(0, 0.75, 1.0, 3.0), Promotion(1, 0.0, 0.25, 1.5))
    # The next day the policy is on its day 1, and yesterday's window is its day 0.
    tomorrow = ControlLoop(
        database=database, tick_seconds=900.0, holder="a", clock=lambda: MORNING + 86_400.0
    )
    assert tomorrow.tick()
    day, calendar = _calendar(database, campaign)
    assert day == 1
    assert calendar == (Promotion(0, 0.75, 1.0, 3.0), Promotion(1, 0.0, 0.25, 1.5))


def test_the_forecast_learns_an_ordinary_day_from_a_promotion_day(database: Database) -> None:
    """Two past days of the same ordinary shape, one with a promotion that tripled its evening:
    the forecast is the same as from two ordinary days."""
    ordinary = 100.0 + 50.0 * np.sin(np.arange(24) / 24 * 2 * np.pi)
    busier = ordinary.copy()
    busier[18:22] *= 3.0
    busier[22] *= 2.0  # the window ends half-way through 22:00
    rows = [
        {"hour": f"{day}T{h:02d}", "requests": int(np.round(counts[h]))}
        for day, counts in (("2026-11-23", ordinary), ("2026-11-24", busier))
        for h in range(24)
    ]
    database.retrying(lambda c: c.execute(insert(traffic), rows))
    _announce(database, "2026-11-24", 18, 22.5, 3.0)
    midnight = datetime.fromisoformat("2026-11-25").replace(tzinfo=UTC)
    with database.read() as connection:
        learned = ControlLoop._forecast(connection, midnight, list_promotions(connection))
    expected = TrafficForecast()
    for _ in range(2):
        expected.add_day(np.round(ordinary))
    for fraction in np.linspace(0.0, 1.0, 49):
        assert learned.share_elapsed(fraction) == pytest.approx(
            expected.share_elapsed(fraction), abs=2e-3
        )


def test_an_hour_a_window_covers_in_part_is_discounted_by_that_part() -> None:
    hourly = np.full(24, 120.0)
    rows = [{"day": "2026-11-11", "start_hour": 9.25, "end_hour": 10.0, "traffic_factor": 5.0}]
    out = ordinary_hours(hourly, rows, day="2026-11-11")
    # A quarter of 09:00 at 1 and three quarters at 5: the hour's mean factor is 4.
    assert out[9] == pytest.approx(30.0)
    np.testing.assert_array_equal(np.delete(out, 9), 120.0)
    # Another day's windows leave the day as it was.
    np.testing.assert_array_equal(ordinary_hours(hourly, rows, day="2026-11-12"), hourly)


def test_windows_before_a_policys_first_day_are_left_out() -> None:
    rows = [
        {"day": "2026-11-20", "start_hour": 1.0, "end_hour": 2.0, "traffic_factor": 2.0},
        {"day": "2026-11-22", "start_hour": 12.0, "end_hour": 18.0, "traffic_factor": 3.0},
    ]
    assert policy_calendar(rows, today="2026-11-22", policy_day=1) == (
        Promotion(1, 0.5, 0.75, 3.0),
    )


def test_the_same_calendar_handed_over_again_changes_nothing() -> None:
    policy = LandscapePacing()
    policy.reset(
        campaigns=CampaignSpec(
            budget=np.array([50.0]), target_roi=np.array([2.0]),
            roi_basis=np.array([RoiBasis.FULL_SITE], dtype=np.int8),
        ),
        seed=0,
    )  # fmt: skip
    calendar = (Promotion(0, 0.5, 0.75, 3.0),)
    policy.expect_promotions(calendar)
    before = pickle.dumps(policy)
    policy.expect_promotions(list(calendar))
    assert pickle.dumps(policy) == before
