"""Durability: ``kill -9`` of a server in the middle of a stream of events loses nothing it
acknowledged, and the control loop carries on from the stored controllers in the next process.

A client sends batches of impressions, clicks and orders from a background thread and keeps every
answer it got; while batches are still going out the server is killed with SIGKILL (no shutdown,
no flush). A new server on the same database must then hold every acknowledged event (resending
it answers ``duplicate``), report the spend the acknowledged answers add up to, and charge the
batch that was in flight at the kill at most once, however often it is resent. The control loop
runs every second: the dead process's controller rows stay as they were, and the new process
takes the control lease over once the dead one's lapses and goes on updating them.
"""

from __future__ import annotations

import pickle
import threading
import time
from collections import defaultdict
from collections.abc import Callable, Iterator
from itertools import chain, count
from pathlib import Path
from typing import Any, TypeVar

import httpx
import pytest
from harness import OPERATOR_KEY, Api, Server, new_merchant
from sqlalchemy import Connection, create_engine, select
from sqlalchemy.pool import NullPool

from quanzhan.store.schema import (
    campaign_days,
    clicks,
    controllers,
    events,
    leases,
    ledger,
    orders,
)

pytestmark = pytest.mark.service

TOLERANCE = 1e-9
BATCH = 8
TIMEOUT = 120.0
BUDGETS = (0.6, 40.0, 40.0)  # the first runs out in the stream of clicks

T = TypeVar("T")
Event = dict[str, Any]
Answer = dict[str, Any]


def read_database(url: str, work: Callable[[Connection], T]) -> T:
    """Read the server's database directly, as another client of it."""
    engine = create_engine(url, poolclass=NullPool)
    try:
        with engine.connect() as connection:
            return work(connection)
    finally:
        engine.dispose()


def wait_for(what: str, condition: Callable[[], bool], *, timeout: float = TIMEOUT) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


def controller_rows(url: str) -> dict[int, dict[str, Any]]:
    def work(connection: Connection) -> dict[int, dict[str, Any]]:
        rows = connection.execute(select(controllers)).all()
        return {int(r.campaign_id): dict(r._mapping) for r in rows}

    return read_database(url, work)


def control_lease(url: str) -> dict[str, Any]:
    def work(connection: Connection) -> dict[str, Any]:
        return dict(
            connection.execute(select(leases).where(leases.c.name == "control")).one()._mapping
        )

    return read_database(url, work)


class Sender(threading.Thread):
    """Sends the planned batches in order, then organic orders, until the server is gone; pauses
    after ``pause_after`` batches until ``go`` is set. Keeps every answered batch."""

    def __init__(
        self, url: str, planned: list[list[Event]], *, pause_after: int, item_id: int
    ) -> None:
        super().__init__(daemon=True)
        self.url = url
        self.planned = planned
        self.pause_after = pause_after
        self.item_id = item_id
        self.go = threading.Event()
        self.answered: list[tuple[list[Event], list[Answer]]] = []
        self.in_flight: list[Event] | None = None  # the batch the kill cut off
        self.refused: list[str] = []  # answers other than 200: none expected

    def filler(self) -> Iterator[list[Event]]:
        for n in count():
            time.sleep(0.02)
            yield [
                {
                    "type": "order",
                    "id": f"walk-in-{n}-{k}",
                    "item_id": self.item_id,
                    "user_id": f"walk-in-{n}",
                    "amount": 12.5,
                }
                for k in range(3)
            ]

    def run(self) -> None:
        headers = {"Authorization": f"Bearer {OPERATOR_KEY}"}
        with httpx.Client(base_url=self.url, headers=headers, timeout=60.0) as client:
            for n, batch in enumerate(chain(self.planned, self.filler())):
                if n == self.pause_after:
                    self.go.wait(TIMEOUT)
                try:
                    response = client.post("/v1/events", json={"events": batch})
                except httpx.HTTPError:
                    self.in_flight = batch
                    return
                if response.status_code != 200:
                    self.refused.append(f"{response.status_code}: {response.text}")
                    return
                self.answered.append((batch, response.json()["results"]))


def plan_events(ads: list[dict[str, Any]], *, organic_item: int) -> list[list[Event]]:
    """Every ad shown; most clicked; half the clicks followed by an order a few events later;
    some organic orders between them. Every event is new and valid, so each is accepted the
    first time it reaches the ledger."""
    flat: list[Event] = []
    pending: list[Event] = []
    for n, ad in enumerate(ads):
        flat.append({"type": "impression", "id": f"imp-{n}", "click_token": ad["click_token"]})
        if n % 5 != 4:
            flat.append({"type": "click", "id": f"clk-{n}", "click_token": ad["click_token"]})
            if n % 2 == 0:
                pending.append(
                    {
                        "type": "order",
                        "id": f"ord-{n}",
                        "item_id": ad["item_id"],
                        "user_id": ad["user_id"],
                        "amount": 30.0 + n % 7,
                    }
                )
        if n % 6 == 0:
            flat.append(
                {
                    "type": "order",
                    "id": f"organic-{n}",
                    "item_id": organic_item,
                    "user_id": f"passer-by-{n}",
                    "amount": 9.0,
                }
            )
        if len(pending) > 3:
            flat.append(pending.pop(0))
    flat.extend(pending)
    return [flat[i : i + BATCH] for i in range(0, len(flat), BATCH)]


def set_up(operator: Api, url: str) -> tuple[Api, list[int], list[int]]:
    shop = new_merchant(operator, url)
    specs = [
        ("running shoe", 80.0, "shoes", 2.0),
        ("trail shoe", 95.0, "shoes", 3.0),
        ("rain jacket", 120.0, "coats", 4.0),
    ]
    item_ids, campaign_ids = [], []
    for (title, price, category, roi), budget in zip(specs, BUDGETS, strict=True):
        item = shop.post("/v1/items", {"title": title, "price": price, "category": category})
        assert item.status_code == 201, item.text
        item_ids.append(item.json()["id"])
        campaign = shop.post(
            "/v1/campaigns",
            {"item_id": item_ids[-1], "daily_budget": budget, "target_roi": roi},
        )
        assert campaign.status_code == 201, campaign.text
        campaign_ids.append(campaign.json()["id"])
    organic = shop.post("/v1/items", {"title": "tin mug", "price": 9.0, "category": "kitchen"})
    assert organic.status_code == 201, organic.text
    item_ids.append(organic.json()["id"])
    return shop, item_ids, campaign_ids


def collect_ads(operator: Api, campaign_ids: list[int], *, decisions: int) -> list[dict[str, Any]]:
    ads: list[dict[str, Any]] = []
    surfaces = ["home_feed", "cart_feed", "post_purchase", "detail", "offsite"]
    deadline = time.monotonic() + TIMEOUT
    while {a["campaign_id"] for a in ads} != set(campaign_ids) or len(ads) < 2 * decisions:
        assert time.monotonic() < deadline, "the campaigns never won slots"
        n = len(ads)
        user = f"shopper-{n}"
        response = operator.post(
            "/v1/decisions", {"surface": surfaces[n % len(surfaces)], "user_id": user, "slots": 3}
        )
        assert response.status_code == 200, response.text
        ads.extend({**ad, "user_id": user} for ad in response.json()["ads"])
        if not response.json()["ads"]:
            time.sleep(0.1)  # the serving snapshot takes the campaigns up within a refresh
    return ads


def resend(operator: Api, batches: list[list[Event]]) -> list[tuple[list[Event], list[Answer]]]:
    out = []
    for batch in batches:
        response = operator.post("/v1/events", {"events": batch})
        assert response.status_code == 200, response.text
        out.append((batch, response.json()["results"]))
    return out


def report_spend(operator: Api, campaign_ids: list[int]) -> dict[int, float]:
    spend = {}
    for campaign_id in campaign_ids:
        response = operator.get(f"/v1/reports/campaigns/{campaign_id}")
        assert response.status_code == 200, response.text
        spend[campaign_id] = float(response.json()["spend"])
    return spend


def test_kill_9_loses_nothing_acknowledged_and_control_resumes(
    database_url: str, tmp_path: Path
) -> None:
    first = Server(database_url, log=tmp_path / "first.log", tick_seconds=1.0)
    second = Server(database_url, log=tmp_path / "second.log", tick_seconds=1.0)
    apis: list[Api] = []
    sender: Sender | None = None
    try:
        first.start(timeout=180)
        operator = Api(first.url, OPERATOR_KEY)
        apis.append(operator)
        shop, item_ids, campaign_ids = set_up(operator, first.url)
        ads = collect_ads(operator, campaign_ids, decisions=60)
        planned = plan_events(ads, organic_item=item_ids[-1])
        sender = Sender(first.url, planned, pause_after=len(planned) // 3, item_id=item_ids[-1])
        sender.start()

        # A few batches in, let the control loop tick on them before the stream goes on.
        wait_for("the first batches", lambda: len(sender.answered) >= sender.pause_after)
        mark = time.time()
        wait_for(
            "a control tick after the first clicks and orders",
            lambda: all(r["updated_at"] > mark for r in controller_rows(database_url).values()),
        )
        sender.go.set()
        wait_for("more batches", lambda: len(sender.answered) >= sender.pause_after + 3)
        first.kill()
        sender.join(TIMEOUT)
        assert not sender.is_alive()
        assert not sender.refused, sender.refused
        assert sender.in_flight is not None, "the stream was not cut off by the kill"
        at_kill = controller_rows(database_url)
        lease_at_kill = control_lease(database_url)
        assert set(at_kill) == set(campaign_ids)

        # A new process on the same database.
        second.start(timeout=180)
        operator = Api(second.url, OPERATOR_KEY)
        apis.append(operator)
        shop = Api(second.url, shop.client.headers["Authorization"].removeprefix("Bearer "))
        apis.append(shop)
        check_stored_steering(shop, database_url, at_kill)

        answered = sender.answered
        acked = {
            event["id"]: answer
            for batch, answers in answered
            for event, answer in zip(batch, answers, strict=True)
        }
        assert all(a["status"] == "accepted" for a in acked.values()), "planned events are new"
        stored = read_database(
            database_url,
            lambda c: {
                "events": set(c.execute(select(events.c.id)).scalars()),
                "ledger": dict(c.execute(select(ledger.c.click_id, ledger.c.amount)).all()),
                "clicks": dict(c.execute(select(clicks.c.event_id, clicks.c.charged)).all()),
                "orders": dict(c.execute(select(orders.c.event_id, orders.c.campaign_id)).all()),
            },
        )
        missing = set(acked) - stored["events"]
        assert not missing, f"acknowledged events lost at the kill: {sorted(missing)[:10]}"
        for event_id, answer in acked.items():
            if event_id in stored["clicks"]:
                assert stored["clicks"][event_id] == answer["charged"]
                assert stored["ledger"].get(event_id, 0.0) == answer["charged"]
            if event_id in stored["orders"]:
                assert stored["orders"][event_id] == answer["campaign_id"]

        # The batch cut off by the kill was committed whole or not at all.
        in_flight = [e["id"] for e in sender.in_flight]
        committed = [event_id in stored["events"] for event_id in in_flight]
        assert all(committed) or not any(committed), "a batch was committed in part"
        unanswered_charges: dict[str, float] = {
            event_id: stored["ledger"][event_id]
            for event_id in in_flight
            if all(committed) and event_id in stored["ledger"]
        }

        # The report's spend is what the acknowledged answers charged (and the cut-off batch,
        # if it was committed).
        expected: dict[int, float] = defaultdict(float)
        campaign_of = read_database(
            database_url,
            lambda c: dict(c.execute(select(clicks.c.event_id, clicks.c.campaign_id)).all()),
        )
        for answer in acked.values():
            if answer["charged"]:
                expected[answer["campaign_id"]] += answer["charged"]
        for event_id, amount in unanswered_charges.items():
            expected[campaign_of[event_id]] += amount
        spend = report_spend(operator, campaign_ids)
        for campaign_id in campaign_ids:
            assert spend[campaign_id] == pytest.approx(expected[campaign_id], abs=TOLERANCE)

        # The controllers are as the dead process left them until the new one steers them.
        check_controllers(database_url, at_kill, lease_at_kill, new_pid=second.process.pid)

        # Resend everything, twice: acknowledged events are duplicates, the rest is taken once.
        sent_once = [batch for batch, _ in answered] + [sender.in_flight]
        rest = planned[len(sent_once) :] if len(sent_once) < len(planned) else []
        again = resend(operator, sent_once + rest)
        third = resend(operator, sent_once + rest)
        first_accepted: dict[str, Answer] = dict(acked)
        for batch, answers in again:
            for event, answer in zip(batch, answers, strict=True):
                if event["id"] in acked or (event["id"] in in_flight and all(committed)):
                    assert answer["status"] == "duplicate", (event, answer)
                    assert answer["charged"] is None
                else:
                    assert answer["status"] == "accepted", (event, answer)
                    assert event["id"] not in first_accepted
                    first_accepted[event["id"]] = answer
        for _, answers in third:
            assert all(a["status"] == "duplicate" for a in answers), answers

        totals: dict[int, float] = defaultdict(float)
        for answer in first_accepted.values():
            if answer["charged"]:
                totals[answer["campaign_id"]] += answer["charged"]
        for event_id, amount in unanswered_charges.items():
            totals[campaign_of[event_id]] += amount
        final = report_spend(operator, campaign_ids)
        ledger_now = read_database(
            database_url,
            lambda c: dict(c.execute(select(ledger.c.click_id, ledger.c.amount)).all()),
        )
        for campaign_id in campaign_ids:
            assert final[campaign_id] == pytest.approx(totals[campaign_id], abs=TOLERANCE)
        assert sum(ledger_now.values()) == pytest.approx(sum(final.values()), abs=TOLERANCE)
        paid = {e: a["charged"] for e, a in first_accepted.items() if a["charged"]}
        assert {**paid, **unanswered_charges} == ledger_now
        days = read_database(database_url, lambda c: c.execute(select(campaign_days)).all())
        budget = dict(zip(campaign_ids, BUDGETS, strict=True))
        for row in days:
            assert row.spend <= budget[row.campaign_id] + TOLERANCE
    finally:
        if sender is not None:
            sender.go.set()  # a failed wait must not leave it paused
        for api in apis:
            api.close()
        first.kill()
        second.stop()


def check_stored_steering(shop: Api, url: str, at_kill: dict[int, dict[str, Any]]) -> None:
    """Right after the restart, until the new process first steers, each campaign's controller
    row is as the dead process left it, and the campaign shows that multiplier."""
    before = controller_rows(url)
    shown = {c: shop.get(f"/v1/campaigns/{c}").json()["multiplier"] for c in at_kill}
    after = controller_rows(url)
    assert set(before) == set(after) == set(at_kill)
    for c in at_kill:
        if after[c]["updated_at"] == at_kill[c]["updated_at"]:  # not steered yet: as stored
            assert before[c] == after[c] == at_kill[c]
            assert shown[c] == at_kill[c]["multiplier"]


def check_controllers(
    url: str, at_kill: dict[int, dict[str, Any]], lease_at_kill: dict[str, Any], *, new_pid: int
) -> None:
    """Rows intact across the restart; the new process takes the lease over only once the dead
    holder's has lapsed, then keeps steering every campaign from its stored state."""
    holder = lease_at_kill["holder"]
    wait_for(
        "the new process to take the control lease",
        lambda: control_lease(url)["holder"] != holder,
    )
    assert f":{new_pid}:" in control_lease(url)["holder"]
    wait_for(
        "the new process to steer every campaign",
        lambda: all(
            r["updated_at"] > at_kill[c]["updated_at"] for c, r in controller_rows(url).items()
        ),
    )
    steered = controller_rows(url)
    for row in steered.values():  # the first rows the new process wrote
        assert row["updated_at"] > lease_at_kill["expires_at"], "lease taken before it lapsed"
    wait_for(
        "the new process to keep steering",
        lambda: all(
            r["updated_at"] > steered[c]["updated_at"] for c, r in controller_rows(url).items()
        ),
    )
    for c, row in controller_rows(url).items():
        assert row["policy"] == at_kill[c]["policy"]
        policy = pickle.loads(row["state"])
        assert type(policy) is type(pickle.loads(at_kill[c]["state"]))
        assert float(policy.multipliers()[0]) == row["multiplier"]
