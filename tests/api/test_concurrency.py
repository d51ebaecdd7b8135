"""Budgets under concurrent clicks from two server processes sharing one database.

One campaign is the only bidder, so it wins every ad; hundreds of its ads are then clicked from
16 threads at once, split across two ``quanzhan serve`` processes (on PostgreSQL, with and without
Redis for the hot spend counters, and on one SQLite file). Some ads are clicked on both servers at
the same moment under different event ids, some events are sent to both servers under the same
id. The ledger must charge every ad at most once, take every event id at most once, and never let
the campaign's spend pass its daily budget: the click that crosses it pays only what is left, and
every click after it pays nothing.
"""

from __future__ import annotations

import base64
import contextlib
import json
import threading
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from harness import OPERATOR_KEY, Api, Server, new_merchant
from sqlalchemy import create_engine, select
from sqlalchemy.pool import NullPool

from quanzhan.store.schema import campaign_days, clicks, events, ledger

pytestmark = pytest.mark.service

BUDGET = 3.02  # the campaign's only bidder pays the reserve price: 60 full clicks and a partial
N_ADS = 300
N_LATE = 20  # ads kept back and clicked once the budget is spent
THREADS = 16
TOLERANCE = 1e-9


@dataclass(frozen=True)
class Ad:
    token: str
    decision_id: str
    slot: int
    campaign_id: int
    price: float


@dataclass(frozen=True)
class Sent:
    server: int
    events: list[dict[str, Any]]
    results: list[dict[str, Any]]


def token_contents(token: str) -> list[Any]:
    """The signed payload of a click token (version first, then the token's fields in order)."""
    payload = token.partition(".")[0]
    fields: list[Any] = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    return fields


def ad_of(raw: dict[str, Any]) -> Ad:
    fields = token_contents(raw["click_token"])
    _version, decision_id, slot, campaign_id, _item, price = fields[:6]
    assert (slot, campaign_id) == (raw["slot"], raw["campaign_id"])
    return Ad(raw["click_token"], decision_id, slot, campaign_id, float(price))


@contextmanager
def running(servers: list[Server]) -> Iterator[list[Server]]:
    """Start the servers side by side (each start is seconds of imports and migration)."""
    try:
        with ThreadPoolExecutor(len(servers)) as pool:
            list(pool.map(lambda s: s.start(timeout=180), servers))
        yield servers
    finally:
        with ThreadPoolExecutor(len(servers)) as pool:
            list(pool.map(lambda s: s.stop(), servers))


def collect_ads(operators: list[Api], *, campaign_id: int, n: int) -> list[Ad]:
    """``n`` ads of the campaign, from decisions spread over every server."""
    found: list[Ad] = []
    lock = threading.Lock()
    deadline = time.monotonic() + 180

    def ask(index: int) -> None:
        api = operators[index % len(operators)]
        while time.monotonic() < deadline:
            response = api.post(
                "/v1/decisions", {"surface": "home_feed", "user_id": f"u-{index}", "slots": 2}
            )
            assert response.status_code == 200, response.text
            ads = response.json()["ads"]
            if ads:  # none until this server's snapshot has the campaign (a refresh away)
                with lock:
                    found.extend(ad_of(a) for a in ads)
                return
            time.sleep(0.1)
        raise AssertionError("the campaign won no slot on one of the servers")

    with ThreadPoolExecutor(8) as pool:
        list(pool.map(ask, range(n)))
    assert {ad.campaign_id for ad in found} == {campaign_id}
    assert len({(ad.decision_id, ad.slot) for ad in found}) == len(found)
    return found[:n]


def click(event_id: str, ad: Ad, user: str = "shopper") -> dict[str, Any]:
    return {"type": "click", "id": event_id, "click_token": ad.token, "user_id": user}


def send_all(
    operators: list[Api], jobs: list[list[tuple[int, list[dict[str, Any]]]]]
) -> list[Sent]:
    """Each job is one request or a group of requests fired together (a barrier lines them up),
    run from ``THREADS`` threads."""
    sent: list[Sent] = []
    lock = threading.Lock()

    def post(server: int, batch: list[dict[str, Any]], barrier: threading.Barrier | None) -> None:
        if barrier is not None:
            with contextlib.suppress(threading.BrokenBarrierError):  # send anyway
                barrier.wait(timeout=30)
        response = operators[server].post("/v1/events", {"events": batch})
        assert response.status_code == 200, response.text
        body = response.json()
        assert [r["id"] for r in body["results"]] == [e["id"] for e in batch]
        with lock:
            sent.append(Sent(server, batch, body["results"]))

    calls: list[Callable[[], None]] = []
    for job in jobs:
        barrier = threading.Barrier(len(job)) if len(job) > 1 else None
        for server, batch in job:
            calls.append(lambda s=server, b=batch, g=barrier: post(s, b, g))  # type: ignore[misc]
    with ThreadPoolExecutor(THREADS) as pool:
        for future in [pool.submit(call) for call in calls]:
            future.result()
    return sent


def hammer(servers: list[Server], database_url: str) -> None:
    operators = [Api(s.url, OPERATOR_KEY) for s in servers]
    try:
        shop = new_merchant(operators[0], servers[0].url)
        item = shop.post("/v1/items", {"title": "wool hat", "price": 20.0, "category": "hats"})
        assert item.status_code == 201, item.text
        created = shop.post(
            "/v1/campaigns",
            {"item_id": item.json()["id"], "daily_budget": BUDGET, "target_roi": 2.0},
        )
        assert created.status_code == 201, created.text
        campaign_id = created.json()["id"]

        ads = collect_ads(operators, campaign_id=campaign_id, n=N_ADS)
        late, early = ads[:N_LATE], ads[N_LATE:]
        assert sum(ad.price for ad in early) > 2 * BUDGET, "clicks too cheap to spend the budget"

        jobs: list[list[tuple[int, list[dict[str, Any]]]]] = []
        for i in range(0, len(early), 3):
            chunk = list(enumerate(early[i : i + 3], start=i))
            if i % 4 == 0:  # each ad clicked on both servers at once, under different event ids
                for n, ad in chunk:
                    jobs.append([(0, [click(f"c{n}", ad)]), (1, [click(f"c{n}-again", ad)])])
            elif i % 4 == 1:  # the same events sent to both servers at once
                batch = [click(f"c{n}", ad) for n, ad in chunk]
                jobs.append([(0, batch), (1, batch)])
            else:
                jobs.append([(i % 2, [click(f"c{n}", ad) for n, ad in chunk])])
        first = send_all(operators, jobs)

        # Every answer is final and consistent: each ad charged once, each event id taken once.
        answers = [(e, r) for s in first for e, r in zip(s.events, s.results, strict=True)]
        check_answers(answers, ads=early)
        spend = report_spend(operators, campaign_id)
        charged = sum(r["charged"] or 0.0 for _, r in answers)
        assert spend == pytest.approx(charged, abs=TOLERANCE)
        assert spend <= BUDGET + TOLERANCE
        assert spend == pytest.approx(BUDGET, abs=TOLERANCE), "the budget was not spent"
        price = {(ad.decision_id, ad.slot): ad.price for ad in ads}
        partial = [
            r for e, r in answers if 0 < (r["charged"] or 0.0) < price[ad_key(e)] - TOLERANCE
        ]
        assert len(partial) <= 1, f"more than one click paid less than its price: {partial}"

        # Once the budget is spent, clicks are still taken, and charged nothing.
        late_jobs = [[(n % 2, [click(f"late{n}", ad)])] for n, ad in enumerate(late)]
        second = send_all(operators, late_jobs)
        for sent in second:
            assert [r["status"] for r in sent.results] == ["accepted"], sent.results
            assert [r["charged"] for r in sent.results] == [0.0], sent.results
        assert report_spend(operators, campaign_id) == pytest.approx(spend, abs=TOLERANCE)

        answers += [(e, r) for s in second for e, r in zip(s.events, s.results, strict=True)]
        check_ledger(database_url, campaign_id=campaign_id, answers=answers, spend=spend)
    finally:
        for api in operators:
            api.close()


def ad_key(event: dict[str, Any]) -> tuple[str, int]:
    fields = token_contents(event["click_token"])
    return fields[1], fields[2]


def check_answers(answers: list[tuple[dict[str, Any], dict[str, Any]]], *, ads: list[Ad]) -> None:
    price = {(ad.decision_id, ad.slot): ad.price for ad in ads}
    accepted_ids = Counter(r["id"] for _, r in answers if r["status"] == "accepted")
    assert max(accepted_ids.values()) == 1, "an event id was taken twice"
    per_ad: dict[tuple[str, int], list[dict[str, Any]]] = defaultdict(list)
    for event, result in answers:
        assert result["status"] in ("accepted", "duplicate"), result
        if result["status"] == "accepted":
            per_ad[ad_key(event)].append(result)
            assert result["charged"] is not None
            assert 0.0 <= result["charged"] <= price[ad_key(event)]
        else:
            assert not result["charged"], "a duplicate was charged"
    assert set(per_ad) == set(price), "some ad's click was never taken"
    twice = {key: taken for key, taken in per_ad.items() if len(taken) != 1}
    assert not twice, f"ads whose click was taken twice: {twice}"


def report_spend(operators: list[Api], campaign_id: int) -> float:
    spends = []
    for api in operators:  # both servers read the one ledger
        response = api.get(f"/v1/reports/campaigns/{campaign_id}")
        assert response.status_code == 200, response.text
        report = response.json()
        assert report["today"]["spend"] == pytest.approx(report["spend"], abs=TOLERANCE)
        spends.append(float(report["spend"]))
    assert spends[0] == pytest.approx(spends[1], abs=TOLERANCE)
    return spends[0]


def check_ledger(
    database_url: str,
    *,
    campaign_id: int,
    answers: list[tuple[dict[str, Any], dict[str, Any]]],
    spend: float,
) -> None:
    engine = create_engine(database_url, poolclass=NullPool)
    try:
        with engine.connect() as connection:
            rows = dict(
                connection.execute(
                    select(ledger.c.click_id, ledger.c.amount).where(
                        ledger.c.campaign_id == campaign_id
                    )
                ).all()
            )
            day_spend = connection.execute(
                select(campaign_days.c.spend).where(campaign_days.c.campaign_id == campaign_id)
            ).scalar_one()
            clicked = connection.execute(
                select(clicks.c.event_id, clicks.c.charged).where(
                    clicks.c.campaign_id == campaign_id
                )
            ).all()
            known = set(connection.execute(select(events.c.id)).scalars())
    finally:
        engine.dispose()
    charged = {r["id"]: r["charged"] for _, r in answers if r["status"] == "accepted"}
    paid = {event_id: amount for event_id, amount in charged.items() if amount > 0}
    assert rows == paid, "the ledger rows are not the clicks that were charged"
    assert sum(rows.values()) == pytest.approx(spend, abs=TOLERANCE)
    assert day_spend == pytest.approx(spend, abs=TOLERANCE)
    assert day_spend <= BUDGET + TOLERANCE
    assert dict(clicked) == charged, "the clicks stored are not the clicks taken"
    assert known == set(charged), "the event ids stored are not the events taken"


@pytest.mark.parametrize("with_redis", [False, True], ids=["postgresql", "postgresql+redis"])
def test_two_servers_on_one_postgresql_never_overspend(
    postgres_url: str, with_redis: bool, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    redis_url: str | None = request.getfixturevalue("redis_url") if with_redis else None
    servers = [
        Server(postgres_url, log=tmp_path / f"server{n}.log", redis_url=redis_url) for n in range(2)
    ]
    with running(servers):
        hammer(servers, postgres_url)


def test_two_servers_on_one_sqlite_file_never_overspend(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'shared.db'}"
    servers = [Server(url, log=tmp_path / f"server{n}.log") for n in range(2)]
    with running(servers):
        hammer(servers, url)
