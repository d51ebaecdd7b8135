"""The service's control loop on a database, with a clock the test moves: it steers each active
campaign from the stored figures, keeps its state in the database, and one process at a time
holds the lease."""

from __future__ import annotations

import pickle
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from sqlalchemy import Connection, select
from support import Clock

from quanzhan.api.control import ControlLoop, new_controller
from quanzhan.api.runtime import Runtime
from quanzhan.api.settings import ServiceSettings
from quanzhan.bidding.value_prior import NO_ERROR, posterior_quantile
from quanzhan.engine.config import EngineConfig
from quanzhan.store import catalog
from quanzhan.store.database import Database
from quanzhan.store.events import AdEvent, OrderEvent, ingest
from quanzhan.store.menus import MenuRows
from quanzhan.store.schema import campaigns, controllers

# 2026-11-25 08:00 UTC: a third of the day gone.
MORNING = 1_795_593_600.0 + 8 * 3600


def _campaign(db: Database, *, budget: float, target: float, title: str = "tea pot") -> int:
    def work(connection: Connection) -> int:
        merchant, _ = catalog.create_merchant(connection, name="m", now=MORNING)
        item = catalog.create_item(
            connection,
            merchant_id=merchant,
            title=title,
            price=20.0,
            category="tea",
            now=MORNING,
        )
        row = catalog.create_campaign(
            connection,
            merchant_id=merchant,
            item_id=item["id"],
            daily_budget=budget,
            target_roi=target,
            roi_basis="full_site",
            controller=new_controller(
                policy="dual",
                daily_budget=budget,
                target_roi=target,
                roi_basis="full_site",
                now=MORNING,
            ),
            now=MORNING,
        )
        return int(row["id"])

    return db.retrying(work)


def _clicks(
    db: Database, campaign_id: int, *, n: int, price: float, value: float, now: float, tag: str
) -> None:
    events: list[AdEvent | OrderEvent] = [
        AdEvent(
            id=f"{tag}-{k}",
            type="click",
            decision_id=f"{tag}{k:030d}"[:32],
            slot=0,
            campaign_id=campaign_id,
            item_id=1,
            price=price,
            pcvr=value / 20.0,
            value=value,
            surface="search",
            user_id=f"u{k}",
        )
        for k in range(n)
    ]
    db.retrying(lambda c: ingest(c, events, now=now, attribution_window=86_400.0))


def _ingest(db: Database, events: list[AdEvent | OrderEvent], *, now: float) -> None:
    db.retrying(lambda c: ingest(c, events, now=now, attribution_window=86_400.0))


def _multiplier(db: Database, campaign_id: int) -> float:
    with db.read() as connection:
        value = connection.execute(
            select(controllers.c.multiplier).where(controllers.c.campaign_id == campaign_id)
        ).scalar_one()
    return float(value)


def test_a_campaign_buying_below_its_target_is_bid_down(database: Database) -> None:
    campaign = _campaign(database, budget=1000.0, target=3.0)
    start = _multiplier(database, campaign)
    clock = Clock(MORNING)
    loop = ControlLoop(database=database, tick_seconds=60.0, holder="a", clock=clock)
    for tick in range(12):
        clock.now += 60.0
        # Every click costs 1 and is predicted to bring 0.5 of GMV: ROI 0.5 against a target of 3.
        _clicks(database, campaign, n=5, price=1.0, value=0.5, now=clock.now, tag=f"t{tick}")
        assert loop.tick()
    assert _multiplier(database, campaign) < 0.5 * start


def test_a_campaign_buying_above_its_target_and_behind_plan_is_not_bid_down(
    database: Database,
) -> None:
    campaign = _campaign(database, budget=1000.0, target=3.0)
    start = _multiplier(database, campaign)
    clock = Clock(MORNING)
    loop = ControlLoop(database=database, tick_seconds=60.0, holder="a", clock=clock)
    for tick in range(12):
        clock.now += 60.0
        _clicks(database, campaign, n=2, price=0.1, value=3.0, now=clock.now, tag=f"t{tick}")
        assert loop.tick()
    assert _multiplier(database, campaign) >= start


def test_the_policy_state_survives_in_the_database(database: Database) -> None:
    campaign = _campaign(database, budget=1000.0, target=3.0)
    clock = Clock(MORNING)
    first = ControlLoop(database=database, tick_seconds=60.0, holder="a", clock=clock)
    for tick in range(4):
        clock.now += 60.0
        _clicks(database, campaign, n=5, price=1.0, value=0.5, now=clock.now, tag=f"t{tick}")
        first.tick()
    after_first = _multiplier(database, campaign)
    # A new process (the old one gone, its lease lapsed) carries on from the stored state: the
    # multiplier keeps falling from where it was, it does not start again from the prior.
    clock.now += 4 * 60.0
    second = ControlLoop(database=database, tick_seconds=60.0, holder="b", clock=clock)
    _clicks(database, campaign, n=5, price=1.0, value=0.5, now=clock.now, tag="late")
    assert second.tick()
    assert _multiplier(database, campaign) < after_first


def test_one_process_holds_the_lease_until_it_lapses(database: Database) -> None:
    _campaign(database, budget=100.0, target=2.0)
    clock = Clock(MORNING)
    a = ControlLoop(database=database, tick_seconds=60.0, holder="a", clock=clock)
    b = ControlLoop(database=database, tick_seconds=60.0, holder="b", clock=clock)
    assert a.tick()
    assert not b.tick()
    clock.now += 60.0
    assert a.tick() and not b.tick()
    clock.now += 3 * 60.0 + 1.0  # a missed three ticks: its lease lapsed
    assert b.tick()
    assert not a.tick()


def test_a_tick_does_not_overwrite_a_budget_changed_while_it_computed(database: Database) -> None:
    campaign = _campaign(database, budget=1000.0, target=3.0)
    clock = Clock(MORNING + 60.0)
    loop = ControlLoop(database=database, tick_seconds=60.0, holder="a", clock=clock)
    _clicks(database, campaign, n=5, price=1.0, value=0.5, now=clock.now, tag="t")
    with database.read() as connection:
        reading = loop._read(connection, clock.now, MenuRows.empty())
    assert reading is not None
    steered = loop._steer(reading, clock.now)
    # The merchant raises the budget while the tick computes: its new controller must stay.
    fresh = new_controller(
        policy="dual", daily_budget=5000.0, target_roi=3.0, roi_basis="full_site", now=clock.now
    )
    database.retrying(
        lambda c: catalog.update_campaign(
            c,
            merchant_id=1,
            campaign_id=campaign,
            changes={"daily_budget": 5000.0},
            controller=fresh,
            now=clock.now + 1.0,
        )
    )
    database.retrying(lambda c: loop._write(c, steered, ([], MenuRows.empty()), clock.now + 2.0))
    with database.read() as connection:
        state = connection.execute(
            select(controllers.c.state).where(controllers.c.campaign_id == campaign)
        ).scalar_one()
    assert state == fresh.state


def test_a_tick_computes_outside_its_read_transaction(
    database: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The policies' arithmetic and the hourly fits run with no transaction open: a snapshot
    held through them would pin old row versions (PostgreSQL) or the write-ahead log (SQLite)."""
    campaign = _campaign(database, budget=1000.0, target=3.0)
    clock = Clock(MORNING + 60.0)
    loop = ControlLoop(database=database, tick_seconds=60.0, holder="a", clock=clock)
    _clicks(database, campaign, n=5, price=1.0, value=0.5, now=clock.now, tag="t")
    reading_open = []
    read = database.read

    @contextmanager
    def watched_read() -> Iterator[Connection]:
        reading_open.append(True)
        try:
            with read() as connection:
                yield connection
        finally:
            reading_open.pop()

    steer = loop._steer
    computed_within: list[bool] = []

    def watched_steer(*args: Any, **kwargs: Any) -> Any:
        computed_within.append(bool(reading_open))
        return steer(*args, **kwargs)

    monkeypatch.setattr(database, "read", watched_read)
    monkeypatch.setattr(loop, "_steer", watched_steer)
    assert loop.tick()
    assert computed_within == [False]
    assert loop._fitted_at == clock.now  # the hourly fits ran in that computation


def test_every_campaign_change_moves_the_catalog_version(database: Database) -> None:
    first = _campaign(database, budget=100.0, target=2.0)
    with database.read() as connection:
        before = catalog.catalog_version(connection)
    # A change stamped earlier than the newest one (it waited for the lock, or a clock stepped
    # back) must still be seen by the serving processes.
    database.retrying(
        lambda c: catalog.update_campaign(
            c,
            merchant_id=1,
            campaign_id=first,
            changes={"status": "paused"},
            controller=None,
            now=MORNING - 3600.0,
        )
    )
    with database.read() as connection:
        after = catalog.catalog_version(connection)
    assert after != before


def test_the_value_prior_is_fitted_over_every_campaigns_week_and_handed_to_each_policy(
    database: Database,
) -> None:
    """Twelve campaigns, each with clicks two days ago predicted to bring ten orders, and three
    orders each came of them: campaigns here over-predict threefold. The loop learns that from
    the store, and a policy without orders of its own plans with it."""
    two_days_ago = MORNING - 2 * 86_400.0
    for n in range(12):
        campaign = _campaign(database, budget=1000.0, target=3.0)
        with database.read() as connection:
            item = connection.execute(
                select(campaigns.c.item_id).where(campaigns.c.id == campaign)
            ).scalar_one()
        batch: list[AdEvent | OrderEvent] = [
            AdEvent(
                id=f"c{n}-{k}",
                type="click",
                decision_id=f"{n:02d}{k:030d}",
                slot=0,
                campaign_id=campaign,
                item_id=item,
                price=0.5,
                pcvr=0.25,
                value=5.0,
                surface="search",
                user_id=f"c{n}u{k}",
            )
            for k in range(40)
        ]
        _ingest(database, batch, now=two_days_ago)
        bought: list[AdEvent | OrderEvent] = [
            OrderEvent(id=f"o{n}-{k}", item_id=item, user_id=f"c{n}u{k}", amount=20.0)
            for k in range(3)
        ]
        _ingest(database, bought, now=two_days_ago + 3600.0)
    clock = Clock(MORNING)
    loop = ControlLoop(database=database, tick_seconds=60.0, holder="a", clock=clock)
    assert loop.value_prior == NO_ERROR
    assert loop.tick()
    assert 0.2 < loop.value_prior.mean < 0.45
    with database.read() as connection:
        state = connection.execute(
            select(controllers.c.state).where(controllers.c.campaign_id == 1)
        ).scalar_one()
    policy = pickle.loads(state)
    # No orders of its own yet: its calibration is the prior's median, not the 0.92 of four
    # pseudo-orders at no error.
    assert policy.calibration()[0] == pytest.approx(
        posterior_quantile(loop.value_prior, realized=np.zeros(1), due=np.zeros(1), quantile=0.5)[0]
    )
    assert policy.calibration()[0] < 0.45


def test_the_service_bounds_order_delays_by_its_attribution_window(tmp_path: Path) -> None:
    """The control loop the service runs knows the engine's attribution window: a click older
    than it owes every order it was predicted to bring, and none more."""
    settings = ServiceSettings(
        database_url=f"sqlite:///{tmp_path / 'quanzhan.db'}",
        operator_key="k" * 32,
        engine=EngineConfig(attribution_window_hours=6.0),
    )
    runtime = Runtime(settings, clock=lambda: MORNING)
    delay = runtime.control.delay
    assert delay.window_seconds == 6 * 3600.0
    np.testing.assert_array_equal(delay.share_arrived(np.array([6 * 3600.0, 86_400.0])), 1.0)


def _set_state(db: Database, campaign_id: int, state: bytes) -> None:
    def work(connection: Connection) -> None:
        connection.execute(
            controllers.update().where(controllers.c.campaign_id == campaign_id).values(state=state)
        )

    db.retrying(work)


def _state_of(db: Database, campaign_id: int) -> Any:
    with db.read() as connection:
        state = connection.execute(
            select(controllers.c.state).where(controllers.c.campaign_id == campaign_id)
        ).scalar_one()
    return pickle.loads(state)


def test_a_controller_that_cannot_be_read_is_started_afresh_and_stops_no_other(
    database: Database,
) -> None:
    """One campaign's stored state is unreadable (say, written by a version whose classes are
    gone): the tick still steers every other campaign, and that one starts afresh instead of
    stopping the loop for good."""
    broken = _campaign(database, budget=100.0, target=2.0)
    sound = _campaign(database, budget=100.0, target=2.0, title="mug")
    _set_state(database, broken, b"not a pickled policy")
    clock = Clock(MORNING + 60.0)
    loop = ControlLoop(database=database, tick_seconds=60.0, holder="a", clock=clock)
    _clicks(database, sound, n=5, price=1.0, value=0.5, now=clock.now, tag="s")
    assert loop.tick()
    with database.read() as connection:
        stamps = dict(
            connection.execute(select(controllers.c.campaign_id, controllers.c.updated_at)).all()
        )
    assert stamps[broken] == clock.now and stamps[sound] == clock.now
    assert _state_of(database, broken).name == "dual"


def test_a_controller_whose_bid_is_not_a_number_is_left_as_it_was(database: Database) -> None:
    """A budget so small that the policy's arithmetic yields nan: that campaign keeps its
    stored multiplier and state, and the others are steered."""
    odd = _campaign(database, budget=5e-324, target=2.0)
    sound = _campaign(database, budget=100.0, target=2.0, title="mug")
    before = _multiplier(database, odd)
    clock = Clock(MORNING + 60.0)
    loop = ControlLoop(database=database, tick_seconds=60.0, holder="a", clock=clock)
    assert loop.tick()
    assert _multiplier(database, odd) == before
    assert np.isfinite(_multiplier(database, sound))
    with database.read() as connection:
        stamps = dict(
            connection.execute(select(controllers.c.campaign_id, controllers.c.updated_at)).all()
        )
    assert stamps[sound] == clock.now and stamps[odd] != clock.now


def test_a_changed_campaign_keeps_the_policy_it_was_created_under(
    database: Database, database_url: str
) -> None:
    """A campaign made while the service steered new campaigns with `dual`, changed once the
    setting is `landscape`: its restarted controller is still `dual`."""
    from quanzhan.api.routes.catalog import update_campaign
    from quanzhan.api.schemas import CampaignPatch

    campaign = _campaign(database, budget=10.0, target=2.0)
    settings = ServiceSettings(
        database_url=database_url,
        operator_key="k" * 32,
        policy="landscape",
    )
    runtime = Runtime(settings, clock=Clock(MORNING + 60.0))
    try:
        with database.read() as connection:
            merchant = connection.execute(
                select(campaigns.c.merchant_id).where(campaigns.c.id == campaign)
            ).scalar_one()
        changed = update_campaign(campaign, CampaignPatch(daily_budget=20.0), runtime, merchant)
        assert changed.daily_budget == 20.0
    finally:
        runtime.database.dispose()
    with database.read() as connection:
        policy = connection.execute(
            select(controllers.c.policy).where(controllers.c.campaign_id == campaign)
        ).scalar_one()
    assert policy == "dual" and _state_of(database, campaign).name == "dual"


def test_a_service_shut_down_gives_its_lease_up(database_url: str) -> None:
    """A process stopped in order (a deploy, a restart) releases the control lease: the next
    process steers at its first tick instead of three ticks later, when the lease lapses."""
    import asyncio

    clock = Clock(MORNING)
    settings = ServiceSettings(
        database_url=database_url, operator_key="k" * 32, policy="dual", tick_seconds=900.0
    )
    first = Runtime(settings, clock=clock)
    first.start_sync()
    _campaign(first.database, budget=100.0, target=2.0)
    assert first.control.tick()
    asyncio.run(first.stop())
    clock.now += 900.0
    second = Runtime(settings, clock=clock)
    try:
        second.start_sync()
        assert second.control.tick()
    finally:
        second.database.dispose()


def test_a_campaign_whose_policy_is_no_longer_shipped_is_steered_by_the_services(
    database: Database, database_url: str
) -> None:
    """A campaign's controller was stored under a policy a later version no longer ships: a
    change to its budget restarts it under the service's policy, and so does the next tick."""
    from quanzhan.api.routes.catalog import update_campaign
    from quanzhan.api.schemas import CampaignPatch

    changed, ticked = (
        _campaign(database, budget=10.0, target=2.0),
        _campaign(database, budget=10.0, target=2.0, title="mug"),
    )

    def retire(connection: Connection) -> None:
        connection.execute(controllers.update().values(policy="retired", state=b"gone"))

    database.retrying(retire)
    settings = ServiceSettings(database_url=database_url, operator_key="k" * 32, policy="dual")
    clock = Clock(MORNING + 60.0)
    runtime = Runtime(settings, clock=clock)
    try:
        with database.read() as connection:
            merchant = connection.execute(
                select(campaigns.c.merchant_id).where(campaigns.c.id == changed)
            ).scalar_one()
        update_campaign(changed, CampaignPatch(daily_budget=20.0), runtime, merchant)
        assert runtime.control.tick()
    finally:
        runtime.database.dispose()
    with database.read() as connection:
        stored = dict(
            connection.execute(select(controllers.c.campaign_id, controllers.c.policy)).all()
        )
    assert stored == {changed: "dual", ticked: "dual"}
    assert _state_of(database, changed).name == "dual"
    assert _state_of(database, ticked).name == "dual"
