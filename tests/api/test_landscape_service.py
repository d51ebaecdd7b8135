"""The landscape policy in the service, on SQLite and PostgreSQL: serving processes sample the
slot menus their auctions offered, queue them in the database, and the control loop hands each
campaign's to its policy at the next tick and drains the queue with the states it stores."""

from __future__ import annotations

import pickle
from typing import Any

import numpy as np
import pytest
from sqlalchemy import Connection, func, insert, select
from support import Clock

from quanzhan.api import runtime as runtime_module
from quanzhan.api.control import ControlLoop, _menus_by_campaign, new_controller
from quanzhan.api.decider import AdRequest
from quanzhan.api.menus import MenuCollector
from quanzhan.api.runtime import Runtime
from quanzhan.api.settings import ServiceSettings
from quanzhan.domain import Surface
from quanzhan.store import catalog
from quanzhan.store.database import Database
from quanzhan.store.menus import (
    MenuRows,
    add_menu_samples,
    delete_menu_samples,
    read_menu_samples,
)
from quanzhan.store.observations import active_controllers, day_figures
from quanzhan.store.schema import campaigns, clicks, controllers, menu_samples
from quanzhan.store.schema import orders as orders_table

# 2026-11-25 00:00 UTC, and 16:00 that day: two thirds of the day gone.
MIDNIGHT = 1_795_564_800.0
MORNING = MIDNIGHT + 16 * 3600
# 2026-11-26 00:00 UTC: the end of that day.
NEXT_MIDNIGHT = MIDNIGHT + 86_400.0


def _campaigns(db: Database, n: int, *, policy: str = "landscape") -> list[int]:
    def work(connection: Connection) -> list[int]:
        merchant, _ = catalog.create_merchant(connection, name="m", now=MORNING)
        money = {"daily_budget": 100.0, "target_roi": 2.0, "roi_basis": "full_site"}
        found = []
        for k in range(n):
            item = catalog.create_item(
                connection, merchant_id=merchant, title=f"tea pot {k}", price=20.0,
                category="tea", now=MORNING,
            )  # fmt: skip
            row = catalog.create_campaign(
                connection, merchant_id=merchant, item_id=item["id"], **money,
                controller=new_controller(policy=policy, **money, now=MORNING), now=MORNING,
            )  # fmt: skip
            found.append(int(row["id"]))
        return found

    return db.retrying(work)


def _queued(db: Database) -> int:
    with db.read() as connection:
        return int(connection.execute(select(func.count()).select_from(menu_samples)).scalar_one())


def _multiplier(db: Database, campaign_id: int) -> float:
    with db.read() as connection:
        return float(
            connection.execute(
                select(controllers.c.multiplier).where(controllers.c.campaign_id == campaign_id)
            ).scalar_one()
        )


def _rows(campaign_id: list[int], time: list[float], slots: int = 3) -> MenuRows:
    m = len(campaign_id)
    # Each slot brings 6, 4, 2 of predicted GMV for 1, 0.6, 0.2 of cost: ROI 6 to 10.
    value = np.tile([6.0, 4.0, 2.0, np.nan][: slots + 1], (m, 1))
    cost = np.tile([1.0, 0.6, 0.2, np.nan][: slots + 1], (m, 1))
    return MenuRows(
        campaign_id=np.array(campaign_id, np.int64),
        time=np.array(time),
        weight=np.full(m, 3.0),
        value=value,
        cost=cost,
    )


def test_queued_menus_come_back_as_they_went_in_and_go_once_read(database: Database) -> None:
    [campaign] = _campaigns(database, 1)
    rows = MenuRows.concat(
        [_rows([campaign] * 2, [MORNING, MORNING + 1]), _rows([campaign], [MORNING + 2], slots=1)]
    )
    database.retrying(lambda c: add_menu_samples(c, rows))
    with database.read() as connection:
        ids, back = read_menu_samples(connection)
    assert len(ids) == 3
    np.testing.assert_array_equal(back.campaign_id, rows.campaign_id)
    np.testing.assert_array_equal(back.time, rows.time)
    np.testing.assert_array_equal(back.weight, rows.weight)
    # The narrower page keeps its absent slots absent; the trailing nan column is not stored.
    np.testing.assert_array_equal(back.value, rows.value[:, :3])
    np.testing.assert_array_equal(back.cost, rows.cost[:, :3])
    # A row queued after the read stays when the rows read are deleted.
    database.retrying(lambda c: add_menu_samples(c, _rows([campaign], [MORNING + 3])))
    database.retrying(lambda c: delete_menu_samples(c, ids))
    with database.read() as connection:
        left, rest = read_menu_samples(connection)
    assert len(left) == 1 and rest.time[0] == MORNING + 3


def test_a_tick_hands_each_campaign_its_menus_and_drains_the_queue(database: Database) -> None:
    first, second = _campaigns(database, 2)
    start = _multiplier(database, first)
    clock = Clock(MORNING + 60.0)
    loop = ControlLoop(database=database, tick_seconds=60.0, holder="a", clock=clock)
    # The first campaign took part in a dozen auctions; the second in none.
    dozen = _rows([first] * 12, [MORNING + k for k in range(12)])
    database.retrying(lambda c: add_menu_samples(c, dozen))
    assert loop.tick()
    assert _queued(database) == 0
    # A landscape policy with no menus holds its multiplier; one with them plans on them
    # (which way it moves is the policy's own business, tested with it).
    assert _multiplier(database, first) != pytest.approx(start)
    assert _multiplier(database, second) == start
    with database.read() as connection:
        state = connection.execute(
            select(controllers.c.state).where(controllers.c.campaign_id == first)
        ).scalar_one()
    assert len(pickle.loads(state)._today_rows) == 12


def test_a_failed_tick_leaves_the_menus_for_the_next(
    database: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    [campaign] = _campaigns(database, 1)
    start = _multiplier(database, campaign)
    clock = Clock(MORNING + 60.0)
    loop = ControlLoop(database=database, tick_seconds=60.0, holder="a", clock=clock)
    database.retrying(lambda c: add_menu_samples(c, _rows([campaign] * 12, [MORNING] * 12)))

    def broken_write(*args: Any, **kwargs: Any) -> None:
        delete_menu_samples(args[0], args[2][0])
        raise RuntimeError("the write failed")

    monkeypatch.setattr(loop, "_write", broken_write)
    with pytest.raises(RuntimeError):
        loop.tick()
    assert _queued(database) == 12
    assert _multiplier(database, campaign) == start
    monkeypatch.undo()
    clock.now += 60.0
    assert loop.tick()
    assert _queued(database) == 0 and _multiplier(database, campaign) != pytest.approx(start)


def test_menus_of_other_campaigns_and_of_yesterday_are_left_out() -> None:
    rows = _rows([7, 9, 7, 8, 7], [MORNING, MORNING, MIDNIGHT - 60.0, MORNING, MORNING + 3600])
    first, second = _menus_by_campaign(rows, [7, 8], MIDNIGHT)
    assert first is not None and second is not None
    np.testing.assert_allclose(first.day_fraction, [16 / 24, 17 / 24])
    np.testing.assert_array_equal(first.campaign, [0, 0])
    np.testing.assert_array_equal(first.weight, [3.0, 3.0])
    assert len(second.campaign) == 1
    assert _menus_by_campaign(rows, [5], MIDNIGHT) == [None]


def _click_and_orders(
    db: Database, campaign_id: int, *, click: float, orders: list[float], organic: list[float]
) -> None:
    """An ad click of ``campaign_id`` at ``click`` with orders at ``orders``, and organic orders
    of its item at ``organic``, written as the event intake writes them."""

    def work(connection: Connection) -> None:
        item = connection.execute(
            select(campaigns.c.item_id).where(campaigns.c.id == campaign_id)
        ).scalar_one()
        click_id = f"c{campaign_id}-{click}"
        connection.execute(
            insert(clicks).values(
                event_id=click_id, decision_id=click_id, slot=0, campaign_id=campaign_id,
                item_id=item, user_id="u", surface="search", time=click, price=1.0,
                charged=1.0, pcvr=0.05, value=1.0,
            )
        )  # fmt: skip
        for k, time in enumerate(orders):
            connection.execute(
                insert(orders_table).values(
                    event_id=f"{click_id}-o{k}", item_id=item, user_id="u", amount=20.0,
                    time=time, click_id=click_id, campaign_id=campaign_id, click_time=click,
                )
            )  # fmt: skip
        for k, time in enumerate(organic):
            connection.execute(
                insert(orders_table).values(
                    event_id=f"{click_id}-g{k}", item_id=item, user_id="v", amount=20.0, time=time
                )
            )

    db.retrying(work)


def test_a_day_that_is_over_counts_its_clicks_and_orders_to_midnight(database: Database) -> None:
    [campaign] = _campaigns(database, 1)
    _click_and_orders(
        database, campaign, click=NEXT_MIDNIGHT - 120.0,
        orders=[NEXT_MIDNIGHT - 60.0, NEXT_MIDNIGHT + 60.0], organic=[NEXT_MIDNIGHT - 30.0],
    )  # fmt: skip
    # A click after midnight is the next day's, with its order and the next organic one.
    _click_and_orders(
        database, campaign, click=NEXT_MIDNIGHT + 30.0, orders=[NEXT_MIDNIGHT + 90.0],
        organic=[NEXT_MIDNIGHT + 100.0],
    )  # fmt: skip
    with database.read() as connection:
        rows = active_controllers(connection)
        closed = day_figures(
            connection, rows=rows, day="2026-11-25", day_start=MIDNIGHT, day_end=NEXT_MIDNIGHT
        )
        running = day_figures(connection, rows=rows, day="2026-11-25", day_start=MIDNIGHT)
    assert (closed.clicks[0], closed.orders[0], closed.gmv[0]) == (1, 1, 20.0)
    assert closed.gmv_organic[0] == 20.0
    np.testing.assert_array_equal(closed.click_time, [NEXT_MIDNIGHT - 120.0])
    # Without an end, everything since the start counts.
    assert (running.clicks[0], running.orders[0], running.gmv_organic[0]) == (2, 3, 40.0)


def test_the_first_tick_of_a_day_closes_the_last_with_its_last_minutes(database: Database) -> None:
    """The service ticks on the wall clock, so a day's last tick falls minutes before midnight:
    the first tick after it hands each policy the day's last minutes (their menus, clicks and
    orders), as the simulator's last tick of a day does, before the new day opens."""
    [campaign] = _campaigns(database, 1)
    clock = Clock(NEXT_MIDNIGHT - 300.0)
    loop = ControlLoop(database=database, tick_seconds=600.0, holder="a", clock=clock)
    evening = _rows([campaign] * 12, [NEXT_MIDNIGHT - 600.0 + k for k in range(12)])
    database.retrying(lambda c: add_menu_samples(c, evening))
    assert loop.tick()
    last_minutes = _rows([campaign] * 5, [NEXT_MIDNIGHT - 120.0 + k for k in range(5)])
    night = _rows([campaign] * 3, [NEXT_MIDNIGHT + 60.0 + k for k in range(3)])
    database.retrying(lambda c: add_menu_samples(c, MenuRows.concat([last_minutes, night])))
    _click_and_orders(
        database, campaign, click=NEXT_MIDNIGHT - 100.0, orders=[NEXT_MIDNIGHT - 50.0],
        organic=[],
    )  # fmt: skip
    clock.now = NEXT_MIDNIGHT + 300.0
    assert loop.tick()
    assert _queued(database) == 0
    with database.read() as connection:
        state, day = connection.execute(
            select(controllers.c.state, controllers.c.day).where(
                controllers.c.campaign_id == campaign
            )
        ).one()
    policy = pickle.loads(state)
    assert day == "2026-11-26" and policy.day == 1
    assert len(policy._yesterday_rows) == 12 + 5
    assert len(policy._today_rows) == 3
    # The order placed a minute before midnight joined the campaign's past.
    assert policy._orders_seen[0] == 1.0


def test_the_service_samples_its_auctions_for_the_landscape_policy(database_url: str) -> None:
    clock = Clock(MORNING)
    settings = ServiceSettings(
        database_url=database_url, operator_key="k" * 32, policy="landscape", tick_seconds=60.0
    )
    runtime = Runtime(settings, clock=clock)
    try:
        runtime.database.migrate()
        campaigns = _campaigns(runtime.database, 3)
        starts = [_multiplier(runtime.database, c) for c in campaigns]
        runtime.start_sync()
        assert runtime.decider.menus is not None
        surfaces = [Surface.SEARCH, Surface.HOME_FEED, Surface.DETAIL]
        for k in range(30):
            clock.now = MORNING + k
            runtime.decider.decide_now(
                [AdRequest(surface=surfaces[k % 3], user_id=f"u{k}", query="tea pot",
                           item_id=None, slots=2)]
            )  # fmt: skip
        runtime.flush_menus()
        with runtime.database.read() as connection:
            _, rows = read_menu_samples(connection)
        # Every campaign took part in every auction (three of them, two slots a page): the
        # sample stands for all 30 of each.
        assert set(rows.campaign_id.tolist()) == set(campaigns)
        for campaign in campaigns:
            assert rows.weight[rows.campaign_id == campaign].sum() == pytest.approx(30)
        assert np.all(np.isfinite(rows.value[:, :2]) & (rows.value[:, :2] > 0))
        assert np.all(rows.cost[:, :2] <= rows.value[:, :2] * 1e6)
        clock.now += 60.0
        assert runtime.control.tick()
        assert _queued(runtime.database) == 0
        moved = [_multiplier(runtime.database, c) for c in campaigns]
        assert moved != starts
    finally:
        runtime.database.dispose()


def test_menus_are_sampled_while_an_active_campaign_plans_over_them(database_url: str) -> None:
    """Whatever policy new campaigns get, a campaign keeps its own: the service samples menus
    while any active campaign's policy plans over them, and only then."""
    clock = Clock(MORNING)
    settings = ServiceSettings(database_url=database_url, operator_key="k" * 32, policy="dual")
    runtime = Runtime(settings, clock=clock)
    try:
        runtime.database.migrate()
        [plain] = _campaigns(runtime.database, 1, policy="dual")
        runtime.start_sync()
        assert runtime.decider.menus is None
        [planned] = _campaigns(runtime.database, 1, policy="landscape")
        runtime.refresh()
        assert runtime.decider.menus is not None
        runtime.database.retrying(
            lambda c: catalog.update_campaign(
                c, merchant_id=2, campaign_id=planned, changes={"status": "paused"},
                controller=None, now=MORNING,
            )
        )  # fmt: skip
        runtime.refresh()
        assert runtime.decider.menus is None
        assert plain != planned
    finally:
        runtime.database.dispose()


def test_a_controller_replaced_during_a_tick_keeps_its_menus_for_the_next(
    database: Database,
) -> None:
    first, second = _campaigns(database, 2)
    clock = Clock(MORNING + 60.0)
    loop = ControlLoop(database=database, tick_seconds=60.0, holder="a", clock=clock)
    rows = _rows([first] * 4 + [second] * 5, [MORNING + k for k in range(9)])
    database.retrying(lambda c: add_menu_samples(c, rows))
    with database.read() as connection:
        queued = read_menu_samples(connection)
        reading = loop._read(connection, clock.now, queued[1])
    assert reading is not None
    steered = loop._steer(reading, clock.now)
    # The merchant raises the first campaign's budget while the tick computes.
    money = {"daily_budget": 500.0, "target_roi": 2.0, "roi_basis": "full_site"}
    fresh = new_controller(policy="landscape", **money, now=clock.now)
    database.retrying(
        lambda c: catalog.update_campaign(
            c, merchant_id=1, campaign_id=first, changes={"daily_budget": 500.0},
            controller=fresh, now=clock.now + 1.0,
        )
    )  # fmt: skip
    database.retrying(lambda c: loop._write(c, steered, queued, clock.now + 2.0))
    with database.read() as connection:
        _, left = read_menu_samples(connection)
    np.testing.assert_array_equal(left.campaign_id, [first] * 4)


def test_a_flush_the_database_refuses_keeps_what_it_did_not_store(
    database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = ServiceSettings(database_url=database_url, operator_key="k" * 32)
    runtime = Runtime(settings, clock=Clock(MORNING))
    try:
        runtime.database.migrate()
        collector = MenuCollector(window_seconds=900.0, per_window=100)
        runtime.decider.menus = collector
        value = np.tile([3.0, 1.0], (7, 1))
        collector.add(
            campaign_ids=np.array([11, 12], np.int64), campaign=np.array([0, 1] * 3 + [0]),
            terms=lambda keep: (value[keep], value[keep] / 3.0), time=MORNING,
        )  # fmt: skip
        monkeypatch.setattr(runtime_module, "_MENU_CHUNK", 3)
        stored = runtime_module.add_menu_samples
        calls = []

        def second_fails(connection: Any, rows: MenuRows) -> None:
            calls.append(len(rows))
            if len(calls) == 2:
                raise RuntimeError("the database went away")
            stored(connection, rows)

        monkeypatch.setattr(runtime_module, "add_menu_samples", second_fails)
        with pytest.raises(RuntimeError):
            runtime.flush_menus()
        assert _queued(runtime.database) == 3 and len(collector) == 4
        runtime.flush_menus()
        assert _queued(runtime.database) == 7 and len(collector) == 0
        with runtime.database.read() as connection:
            _, rows = read_menu_samples(connection)
        np.testing.assert_array_equal(rows.campaign_id, [11, 12] * 3 + [11])
    finally:
        runtime.database.dispose()
