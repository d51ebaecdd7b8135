"""The HTTP contract, end to end against the real server on SQLite and PostgreSQL: merchants,
items and campaigns; ad decisions on every surface; events, charging, budgets and attribution;
campaign and platform reports."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from harness import OPERATOR_KEY, Api, Server, new_merchant
from support import (
    ad_for,
    created,
    encode_payload,
    events,
    module_server,
    no_ads_for,
    report,
    token_fields,
    word,
)

from quanzhan.api.settings import ServiceSettings
from quanzhan.api.tokens import ClickToken, TokenSigner

pytestmark = pytest.mark.service

SURFACES = ("search", "home_feed", "cart_feed", "post_purchase", "detail", "offsite")
AD_FIELDS = {"slot", "item_id", "campaign_id", "click_token"}
FIGURES = ("impressions", "clicks", "spend", "orders", "gmv_ad")


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def shared(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Server]:
    """One server for the tests below that make their own merchants (they do not see each
    other's rows, and their searches use words no other test's titles have)."""
    with module_server(request, tmp_path_factory.mktemp("contract")) as running:
        yield running


def _item(shop: Api, title: str, price: float, category: str) -> dict[str, Any]:
    return created(shop.post("/v1/items", {"title": title, "price": price, "category": category}))


def _decoy(shop: Api) -> None:
    """Another item: with a single item in the whole catalog, its title words carry no weight
    (their idf is zero) and a search finds nothing, which a test on a fresh server would hit."""
    _item(shop, f"{word()} decoy", 10.0, "decoys")


def _campaign(shop: Api, item_id: int, budget: float, target: float, **more: Any) -> dict[str, Any]:
    body = {"item_id": item_id, "daily_budget": budget, "target_roi": target, **more}
    return created(shop.post("/v1/campaigns", body))


def _click(event_id: str, token: str, **more: Any) -> dict[str, Any]:
    return {"type": "click", "id": event_id, "click_token": token, **more}


def _impression(event_id: str, token: str) -> dict[str, Any]:
    return {"type": "impression", "id": event_id, "click_token": token}


def _order(event_id: str, item_id: int, amount: float, user_id: str | None) -> dict[str, Any]:
    event: dict[str, Any] = {"type": "order", "id": event_id, "item_id": item_id, "amount": amount}
    if user_id is not None:
        event["user_id"] = user_id
    return event


def _search(query: str, user_id: str, slots: int = 3) -> dict[str, Any]:
    return {"surface": "search", "query": query, "user_id": user_id, "slots": slots}


def _not_charged(result: dict[str, Any]) -> bool:
    return result["charged"] is None or result["charged"] == 0


# -- merchants, items, campaigns ------------------------------------------------------------------


def test_merchants_are_created_with_a_key_shown_once(shared: Server, ops: Api) -> None:
    name = f"shop {word()}"
    response = ops.post("/v1/merchants", {"name": name})
    assert response.status_code == 201, response.text
    body = response.json()
    assert body["name"] == name and isinstance(body["id"], int) and body["id"] >= 1
    assert isinstance(body["api_key"], str) and len(body["api_key"]) >= 32
    listed = ops.get("/v1/merchants")
    assert listed.status_code == 200, listed.text
    mine = [m for m in listed.json() if m["id"] == body["id"]]
    assert len(mine) == 1 and mine[0]["name"] == name
    assert mine[0]["api_key"] is None, "only the key's hash is kept: a listing cannot show it"
    with httpx.Client(
        base_url=shared.url, headers={"Authorization": f"Bearer {body['api_key']}"}
    ) as c:
        assert c.get("/v1/items").status_code == 200


def test_items_are_created_listed_and_read(shared: Server, ops: Api) -> None:
    shop = new_merchant(ops, shared.url)
    assert shop.get("/v1/items").json() == []
    specs = [
        {"title": "trail running shoe", "price": 80.0, "category": "shoes"},
        {"title": "leather tote bag", "price": 59.5, "category": "bags"},
        {"title": "无线蓝牙耳机", "price": 45, "category": "audio"},  # an int price is a price
    ]
    made = [created(shop.post("/v1/items", spec)) for spec in specs]
    for spec, item in zip(specs, made, strict=True):
        assert item["title"] == spec["title"] and item["category"] == spec["category"]
        assert item["price"] == float(spec["price"])
        assert isinstance(item["id"], int) and item["id"] >= 1
    assert len({item["id"] for item in made}) == 3
    assert len({item["merchant_id"] for item in made}) == 1
    assert shop.get("/v1/items").json() == made
    for item in made:
        one = shop.get(f"/v1/items/{item['id']}")
        assert one.status_code == 200 and one.json() == item
    missing = shop.get("/v1/items/2147483647")
    assert missing.status_code == 404 and "detail" in missing.json()


def test_a_campaign_is_created_listed_read_and_changed(shared: Server, ops: Api) -> None:
    shop = new_merchant(ops, shared.url)
    w = word()
    item = _item(shop, f"{w} standing desk", 300.0, f"furniture {w}")
    _decoy(shop)
    assert shop.get("/v1/campaigns").json() == []
    campaign = _campaign(shop, item["id"], 20.0, 2.5)
    cid = campaign["id"]
    assert campaign["item_id"] == item["id"] and campaign["merchant_id"] == item["merchant_id"]
    assert campaign["daily_budget"] == 20.0 and campaign["target_roi"] == 2.5
    assert campaign["roi_basis"] == "full_site" and campaign["status"] == "active"
    assert campaign["spend_today"] == 0.0
    assert campaign["multiplier"] is not None and campaign["multiplier"] > 0
    assert shop.get("/v1/campaigns").json() == [campaign]
    assert shop.get(f"/v1/campaigns/{cid}").json() == campaign

    budget = shop.patch(f"/v1/campaigns/{cid}", {"daily_budget": 35.5})
    assert budget.status_code == 200, budget.text
    assert budget.json()["daily_budget"] == 35.5 and budget.json()["target_roi"] == 2.5
    assert budget.json()["updated_at"] >= campaign["updated_at"]

    target = shop.patch(f"/v1/campaigns/{cid}", {"target_roi": 4.0})
    assert target.status_code == 200, target.text
    assert target.json()["target_roi"] == 4.0 and target.json()["daily_budget"] == 35.5
    # a new target restarts the controller towards it: a higher target bids lower
    assert target.json()["multiplier"] < budget.json()["multiplier"]

    both = shop.patch(f"/v1/campaigns/{cid}", {"daily_budget": 12.0, "target_roi": 3.0})
    assert both.status_code == 200, both.text
    assert (both.json()["daily_budget"], both.json()["target_roi"]) == (12.0, 3.0)

    basis = shop.patch(f"/v1/campaigns/{cid}", {"roi_basis": "ad_only"})
    assert basis.status_code == 200 and basis.json()["roi_basis"] == "ad_only"

    nothing = shop.patch(f"/v1/campaigns/{cid}", {})
    assert nothing.status_code == 200
    assert {k: nothing.json()[k] for k in ("daily_budget", "target_roi", "status")} == {
        "daily_budget": 12.0,
        "target_roi": 3.0,
        "status": "active",
    }

    # an active campaign is advertised; paused, it is not; resumed, it is again
    ad_for(ops, _search(w, "u-1"), cid)
    paused = shop.patch(f"/v1/campaigns/{cid}", {"status": "paused"})
    assert paused.status_code == 200 and paused.json()["status"] == "paused"
    assert shop.get(f"/v1/campaigns/{cid}").json()["status"] == "paused"
    assert [c["status"] for c in shop.get("/v1/campaigns").json()] == ["paused"]
    no_ads_for(ops, _search(w, "u-1"), cid)
    resumed = shop.patch(f"/v1/campaigns/{cid}", {"status": "active"})
    assert resumed.status_code == 200 and resumed.json()["status"] == "active"
    assert resumed.json()["daily_budget"] == 12.0 and resumed.json()["roi_basis"] == "ad_only"
    ad_for(ops, _search(w, "u-1"), cid)
    assert shop.get("/v1/campaigns").json() == [shop.get(f"/v1/campaigns/{cid}").json()]


def test_one_active_campaign_per_item(shared: Server, ops: Api) -> None:
    shop = new_merchant(ops, shared.url)
    item = _item(shop, "oak bookshelf", 150.0, "furniture")
    other = _item(shop, "pine bookshelf", 90.0, "furniture")
    first = _campaign(shop, item["id"], 10.0, 2.0)

    second = shop.post(
        "/v1/campaigns", {"item_id": item["id"], "daily_budget": 30.0, "target_roi": 5.0}
    )
    assert second.status_code == 409, second.text
    assert "active campaign" in second.json()["detail"]
    assert shop.get("/v1/campaigns").json() == [first]

    assert shop.patch(f"/v1/campaigns/{first['id']}", {"status": "paused"}).status_code == 200
    replacement = _campaign(shop, item["id"], 30.0, 5.0)
    resume = shop.patch(f"/v1/campaigns/{first['id']}", {"status": "active"})
    assert resume.status_code == 409, resume.text
    assert "active campaign" in resume.json()["detail"]
    assert shop.get(f"/v1/campaigns/{first['id']}").json()["status"] == "paused"
    # a refused resume changes nothing else either, even with other changes in the same body
    mixed = shop.patch(f"/v1/campaigns/{first['id']}", {"status": "active", "daily_budget": 99.0})
    assert mixed.status_code == 409, mixed.text
    assert shop.get(f"/v1/campaigns/{first['id']}").json()["daily_budget"] == 10.0

    assert shop.patch(f"/v1/campaigns/{replacement['id']}", {"status": "paused"}).status_code == 200
    assert shop.patch(f"/v1/campaigns/{first['id']}", {"status": "active"}).status_code == 200
    assert _campaign(shop, other["id"], 10.0, 2.0)["status"] == "active"
    statuses = {c["id"]: c["status"] for c in shop.get("/v1/campaigns").json()}
    assert statuses[first["id"]] == "active" and statuses[replacement["id"]] == "paused"
    assert list(statuses.values()).count("active") == 2


# -- decisions ------------------------------------------------------------------------------------


def test_decisions_on_every_surface(shared: Server, ops: Api) -> None:
    shop = new_merchant(ops, shared.url)
    w = [word() for _ in range(4)]
    items = [
        _item(shop, f"{w[0]} trail running shoe", 80.0, f"shoes {w[0]}"),
        _item(shop, f"{w[1]} leather tote bag", 60.0, f"bags {w[1]}"),
        _item(shop, f"{w[2]} wireless earbuds", 45.0, f"audio {w[2]}"),
        _item(shop, f"{w[3]} espresso machine", 120.0, f"kitchen {w[3]}"),
    ]
    campaigns = {_campaign(shop, it["id"], 100.0, 2.0)["id"]: it["id"] for it in items}
    last = max(campaigns)
    # the query's words are in the first and third titles, and in no other item's anywhere
    query = f"{w[0]} {w[2]} zzunknownword"
    matching = {items[0]["id"], items[2]["id"]}
    ad_for(ops, _search(w[3], "u-7"), last)  # the snapshot has them all

    item_of: dict[int, int] = dict(campaigns)
    decision_ids = set()
    for surface in SURFACES:
        body: dict[str, Any] = {"surface": surface, "user_id": "u-7", "slots": 4}
        if surface == "search":
            body["query"] = query
        if surface == "detail":
            body["item_id"] = items[1]["id"]
        response = ops.post("/v1/decisions", body)
        assert response.status_code == 200, response.text
        answer = response.json()
        assert set(answer) == {"decision_id", "ads"}
        assert isinstance(answer["decision_id"], str) and answer["decision_id"]
        decision_ids.add(answer["decision_id"])
        ads = answer["ads"]
        assert 1 <= len(ads) <= 4, (surface, ads)
        assert [ad["slot"] for ad in ads] == sorted({ad["slot"] for ad in ads})
        assert len({ad["campaign_id"] for ad in ads}) == len(ads)
        for ad in ads:
            assert set(ad) == AD_FIELDS
            assert 0 <= ad["slot"] < 4
            if ad["campaign_id"] not in item_of:  # another test's campaign on the shared server
                item_of[ad["campaign_id"]] = report(ops, ad["campaign_id"])["item_id"]
            assert item_of[ad["campaign_id"]] == ad["item_id"]
            carried = token_fields(ad["click_token"])
            assert carried["decision_id"] == answer["decision_id"]
            assert (carried["slot"], carried["campaign_id"], carried["item_id"]) == (
                ad["slot"],
                ad["campaign_id"],
                ad["item_id"],
            )
            assert carried["surface"] == surface and carried["user_id"] == "u-7"
            assert carried["price"] > 0
            assert carried["expires_at"] > time.time() + 60
        if surface == "search":
            assert {ad["item_id"] for ad in ads} <= matching, ads
    assert len(decision_ids) == len(SURFACES)

    nothing = ops.post("/v1/decisions", _search("zzunknownword", "u-7"))
    assert nothing.status_code == 200 and nothing.json()["ads"] == []
    single = ops.post("/v1/decisions", {"surface": "offsite"})  # slots default to one, no user
    assert single.status_code == 200 and len(single.json()["ads"]) <= 1


# -- events and charging --------------------------------------------------------------------------


def test_a_click_is_charged_once_at_its_auction_price(shared: Server, ops: Api) -> None:
    shop = new_merchant(ops, shared.url)
    w = word()
    item = _item(shop, f"{w} desk lamp", 70.0, f"lighting {w}")
    _decoy(shop)
    cid = _campaign(shop, item["id"], 5.0, 2.0)["id"]
    token = ad_for(ops, _search(w, "buyer-1"), cid)["click_token"]
    price = token_fields(token)["price"]
    assert 0 < price <= 5.0

    batch = [_impression(f"{w}-i1", token), _click(f"{w}-c1", token)]
    first = events(ops, *batch)
    assert (first["accepted"], first["duplicates"], first["rejected"]) == (2, 0, 0)
    shown, clicked = first["results"]
    assert shown["status"] == "accepted" and _not_charged(shown) and shown["campaign_id"] == cid
    assert clicked["status"] == "accepted" and clicked["campaign_id"] == cid
    assert clicked["charged"] == price

    again = events(ops, *batch)  # a resent batch
    assert (again["accepted"], again["duplicates"], again["rejected"]) == (0, 2, 0)
    assert all(r["status"] == "duplicate" and _not_charged(r) for r in again["results"])
    other_ids = events(ops, _click(f"{w}-c2", token), _impression(f"{w}-i2", token))
    assert other_ids["duplicates"] == 2, other_ids
    assert all(_not_charged(r) for r in other_ids["results"])
    reused = events(ops, _click(f"{w}-i1", token))  # an impression's id is taken, too
    assert reused["results"][0]["status"] == "duplicate"

    figures = report(shop, cid)
    assert (figures["impressions"], figures["clicks"]) == (1, 1)
    assert figures["spend"] == price and figures["today"]["spend"] == price
    assert figures["today"]["daily_budget"] == 5.0
    assert figures["by_surface"]["search"]["clicks"] == 1
    assert figures["by_surface"]["search"]["spend"] == price
    assert shop.get(f"/v1/campaigns/{cid}").json()["spend_today"] == price

    charged = [price]
    for n in range(3):
        token = ad_for(ops, _search(w, f"buyer-{n}"), cid)["click_token"]
        answer = events(ops, _click(f"{w}-more-{n}", token))
        result = answer["results"][0]
        assert result["status"] == "accepted"
        assert result["charged"] == token_fields(token)["price"]
        charged.append(result["charged"])
    figures = report(shop, cid)
    assert figures["clicks"] == 4
    assert figures["spend"] == pytest.approx(sum(charged), abs=1e-9)
    assert figures["spend"] <= 5.0


def test_forged_tokens_are_rejected_and_charge_nothing(shared: Server, ops: Api) -> None:
    shop = new_merchant(ops, shared.url)
    w = word()
    item = _item(shop, f"{w} camping tent", 200.0, f"outdoor {w}")
    _decoy(shop)
    cid = _campaign(shop, item["id"], 50.0, 2.0)["id"]
    token = ad_for(ops, _search(w, "u-f"), cid)["click_token"]
    payload, signature = token.split(".")
    carried = token_fields(token)
    flipped = ("B" if signature[0] == "A" else "A") + signature[1:]
    forgeries = {
        "cheaper": f"{encode_payload({**carried, 'price': 0.0001})}.{signature}",
        "dearer": f"{encode_payload({**carried, 'price': 40.0})}.{signature}",
        "no expiry": f"{encode_payload({**carried, 'expires_at': 1e12})}.{signature}",
        "signature": f"{payload}.{flipped}",
        "other key": TokenSigner(b"not the service's secret at all").sign(ClickToken(**carried)),
        "unsigned": payload,
        "junk": "not.a-token",
    }
    batch = []
    for n, forged in enumerate(forgeries.values()):
        batch += [_impression(f"{w}-fi{n}", forged), _click(f"{w}-fc{n}", forged)]
    answer = events(ops, *batch)
    assert answer["rejected"] == len(batch) and answer["accepted"] == 0
    for result in answer["results"]:
        assert result["status"] == "rejected" and _not_charged(result) and result["reason"]
    figures = report(shop, cid)
    assert (figures["impressions"], figures["clicks"], figures["spend"]) == (0, 0, 0.0)
    assert figures["today"]["spend"] == 0.0

    # signed with the service's own secret (another deployment sharing its key, say), but for a
    # campaign or an item this database does not have
    signer = TokenSigner(ServiceSettings(operator_key=OPERATOR_KEY).token_key())
    strangers = [
        signer.sign(ClickToken(**{**carried, "campaign_id": 2_000_000_000})),
        signer.sign(ClickToken(**{**carried, "item_id": 2_000_000_000})),
    ]
    batch = []
    for n, stranger in enumerate(strangers):
        batch += [_impression(f"{w}-si{n}", stranger), _click(f"{w}-sc{n}", stranger)]
    answer = events(ops, *batch)
    assert answer["rejected"] == len(batch), answer
    assert all(_not_charged(r) for r in answer["results"])
    assert report(shop, cid)["spend"] == 0.0

    # the forgeries took nothing: the genuine token's impression and click still count, once
    genuine = events(ops, _impression(f"{w}-gi", token), _click(f"{w}-gc", token))
    assert genuine["accepted"] == 2
    assert genuine["results"][1]["charged"] == carried["price"]
    figures = report(shop, cid)
    assert (figures["impressions"], figures["clicks"]) == (1, 1)
    assert figures["spend"] == carried["price"]


def test_a_spent_budget_charges_nothing_more(shared: Server, ops: Api) -> None:
    budget = 0.5
    shop = new_merchant(ops, shared.url)
    w = word()
    item = _item(shop, f"{w} rain jacket", 90.0, f"outerwear {w}")
    _decoy(shop)
    cid = _campaign(shop, item["id"], budget, 2.0)["id"]
    tokens: list[str] = []
    while sum(token_fields(t)["price"] for t in tokens) <= budget + 0.1 or len(tokens) < 3:
        assert len(tokens) < 60, "prices too small to reach the budget"
        tokens.append(ad_for(ops, _search(w, f"u-{len(tokens)}"), cid)["click_token"])
    tokens += [ad_for(ops, _search(w, f"late-{n}"), cid)["click_token"] for n in range(3)]
    last = tokens.pop()

    half = len(tokens) // 2
    answers = events(ops, *[_click(f"{w}-c{n}", t) for n, t in enumerate(tokens[:half])])
    results = answers["results"]
    rest = events(ops, *[_click(f"{w}-c{n}", t) for n, t in enumerate(tokens) if n >= half])
    results += rest["results"]

    spent = 0.0
    for token, result in zip(tokens, results, strict=True):
        expected = max(0.0, min(token_fields(token)["price"], budget - spent))
        assert result["status"] == "accepted", result
        assert result["charged"] == pytest.approx(expected, abs=1e-9), (result, spent)
        spent += result["charged"]
    assert results[-1]["charged"] == 0 and results[-2]["charged"] == 0
    figures = report(shop, cid)
    assert figures["clicks"] == len(tokens)
    assert figures["spend"] == pytest.approx(budget, abs=1e-9) and figures["spend"] <= budget
    assert figures["today"]["spend"] == pytest.approx(budget, abs=1e-9)
    assert figures["today"]["spend"] <= budget
    assert sum(r["charged"] for r in results) == pytest.approx(figures["spend"], abs=1e-9)

    # a later click on a token handed out before the budget ran out is charged nothing
    late = events(ops, _click(f"{w}-late", last))
    assert late["results"][0]["status"] == "accepted" and late["results"][0]["charged"] == 0
    assert report(shop, cid)["spend"] == pytest.approx(budget, abs=1e-9)
    # and once the servers know the budget is spent, the campaign wins no more slots
    no_ads_for(ops, _search(w, "after"), cid)


def test_resent_batches_racing_each_other_are_taken_once(shared: Server, ops: Api) -> None:
    shop = new_merchant(ops, shared.url)
    w = word()
    item = _item(shop, f"{w} yoga mat", 30.0, f"sport {w}")
    _decoy(shop)
    cid = _campaign(shop, item["id"], 100.0, 2.0)["id"]
    token = ad_for(ops, _search(w, "u-r"), cid)["click_token"]
    batch = [_order(f"{w}-o{n}", item["id"], 10.0, f"organic-{n}") for n in range(20)]
    copies = 6
    gate = threading.Barrier(copies)
    answers: list[httpx.Response] = []

    def send(n: int) -> None:
        own = [_impression(f"{w}-i{n}", token), _click(f"{w}-c{n}", token)]
        with httpx.Client(
            base_url=shared.url, headers={"Authorization": f"Bearer {OPERATOR_KEY}"}, timeout=60
        ) as client:
            gate.wait()
            answers.append(client.post("/v1/events", json={"events": [*batch, *own]}))

    threads = [threading.Thread(target=send, args=(n,)) for n in range(copies)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert [a.status_code for a in answers] == [200] * copies, [a.text for a in answers]
    results = [r for a in answers for r in a.json()["results"]]
    for order in batch:
        statuses = sorted(r["status"] for r in results if r["id"] == order["id"])
        assert statuses == ["accepted"] + ["duplicate"] * (copies - 1)
    clicks = [r for r in results if r["id"].startswith(f"{w}-c")]
    assert sorted(r["status"] for r in clicks) == ["accepted"] + ["duplicate"] * (copies - 1)
    assert sum(r["charged"] or 0 for r in clicks) == token_fields(token)["price"]
    figures = report(shop, cid)
    assert (figures["impressions"], figures["clicks"]) == (1, 1)
    assert figures["spend"] == token_fields(token)["price"]
    assert figures["organic_orders"] == 20 and figures["gmv_organic"] == pytest.approx(200.0)


def test_an_expired_click_token_charges_nothing(database_url: str, tmp_path: Path) -> None:
    server = Server(
        database_url, log=tmp_path / "ttl.log", env={"QUANZHAN_TOKEN_TTL_SECONDS": "1"}
    ).start()
    platform = Api(server.url, OPERATOR_KEY)
    try:
        shop = new_merchant(platform, server.url)
        item = _item(shop, "glass teapot", 40.0, "kitchen")
        _decoy(shop)
        cid = _campaign(shop, item["id"], 10.0, 2.0)["id"]
        stale = ad_for(platform, _search("teapot", "u-e"), cid)["click_token"]
        assert token_fields(stale)["expires_at"] <= time.time() + 1.0
        time.sleep(1.5)
        late = events(platform, _impression("e-i1", stale), _click("e-c1", stale))
        assert late["rejected"] == 2
        for result in late["results"]:
            assert result["status"] == "rejected" and _not_charged(result)
            assert "expired" in result["reason"]
        assert report(shop, cid)["clicks"] == 0 and report(shop, cid)["spend"] == 0

        fresh = ad_for(platform, _search("teapot", "u-e"), cid)["click_token"]
        on_time = events(platform, _click("e-c2", fresh))
        assert on_time["results"][0]["charged"] == token_fields(fresh)["price"]
        figures = report(shop, cid)
        assert (figures["impressions"], figures["clicks"]) == (0, 1)
        assert figures["spend"] == token_fields(fresh)["price"]

        # The platform got no answer and resends once the token has expired: the click was
        # taken and charged, and the answer says so, not "rejected".
        time.sleep(1.5)
        resent = events(platform, _click("e-c2", fresh))
        assert resent["results"][0]["status"] == "duplicate" and _not_charged(resent["results"][0])
        assert report(shop, cid)["spend"] == figures["spend"]
    finally:
        platform.close()
        server.stop()


# -- attribution and reports ----------------------------------------------------------------------


def _check_breakdowns(figures: dict[str, Any]) -> None:
    """By surface and by hour, the figures add up to the totals."""
    assert set(figures["by_surface"]) == set(SURFACES)
    for figure in FIGURES:
        total = figures[figure]
        assert sum(s[figure] for s in figures["by_surface"].values()) == pytest.approx(total)
        assert sum(h[figure] for h in figures["by_hour"].values()) == pytest.approx(total)
    assert sum(h["gmv_organic"] for h in figures["by_hour"].values()) == pytest.approx(
        figures["gmv_organic"]
    )
    for hour in figures["by_hour"]:
        time.strptime(hour, "%Y-%m-%dT%H")


def test_orders_are_attributed_and_reported(server: Server, operator: Api) -> None:
    shop = new_merchant(operator, server.url)
    shoe = _item(shop, "trail running shoe", 80.0, "shoes")
    bag = _item(shop, "leather tote bag", 60.0, "bags")
    mug = _item(shop, "ceramic coffee mug", 12.0, "kitchen")  # no campaign
    full = _campaign(shop, shoe["id"], 50.0, 3.0)
    ad_only = _campaign(shop, bag["id"], 50.0, 2.0, roi_basis="ad_only")
    assert ad_only["roi_basis"] == "ad_only"
    for campaign in (full, ad_only):
        untouched = report(shop, campaign["id"])
        assert untouched["roi"] is None and untouched["spend"] == 0 and untouched["clicks"] == 0

    charged: dict[int, list[float]] = {full["id"]: [], ad_only["id"]: []}
    answers = []
    # the shoe: clicked by u-a on search, then on the home feed; the bag: by u-b on search
    for n, (body, campaign_id) in enumerate(
        [
            (_search("running shoe", "u-a"), full["id"]),
            ({"surface": "home_feed", "user_id": "u-a", "slots": 10}, full["id"]),
            (_search("tote bag", "u-b"), ad_only["id"]),
        ]
    ):
        token = ad_for(operator, body, campaign_id)["click_token"]
        answer = events(operator, _impression(f"i{n}", token), _click(f"c{n}", token))
        assert answer["accepted"] == 2
        charged[campaign_id].append(answer["results"][1]["charged"])
        answers.append(answer)
    assert all(c > 0 for cs in charged.values() for c in cs)

    orders = [
        (_order("o1", shoe["id"], 80.0, "u-a"), full["id"]),  # u-a clicked the shoe
        (_order("o2", shoe["id"], 80.0, "u-x"), None),  # nobody's click: organic
        (_order("o3", shoe["id"], 80.0, None), None),  # no shopper: organic
        (_order("o4", bag["id"], 60.0, "u-b"), ad_only["id"]),
        (_order("o5", bag["id"], 60.0, "u-a"), None),  # u-a clicked the shoe, not the bag
        (_order("o6", bag["id"], 60.0, "u-z"), None),
        (_order("o7", mug["id"], 12.0, "u-a"), None),
    ]
    placed = events(operator, *[event for event, _ in orders])
    assert placed["accepted"] == len(orders)
    for (_, campaign_id), result in zip(orders, placed["results"], strict=True):
        assert result["status"] == "accepted" and _not_charged(result)
        assert result["campaign_id"] == campaign_id
    assert events(operator, orders[0][0])["duplicates"] == 1  # resent: counted once

    shoe_report = report(shop, full["id"])
    spend = sum(charged[full["id"]])
    assert (shoe_report["impressions"], shoe_report["clicks"]) == (2, 2)
    assert shoe_report["spend"] == pytest.approx(spend, abs=1e-9)
    assert (shoe_report["orders"], shoe_report["organic_orders"]) == (1, 2)
    assert shoe_report["gmv_ad"] == 80.0 and shoe_report["gmv_organic"] == 160.0
    assert shoe_report["gmv_total"] == 240.0
    assert shoe_report["roi"] == pytest.approx(240.0 / spend)  # full-site ROI
    assert shoe_report["roi_basis"] == "full_site" and shoe_report["target_roi"] == 3.0
    # the order goes to u-a's last click, the home feed's
    assert shoe_report["by_surface"]["home_feed"]["orders"] == 1
    assert shoe_report["by_surface"]["home_feed"]["gmv_ad"] == 80.0
    assert shoe_report["by_surface"]["search"]["orders"] == 0
    assert shoe_report["by_surface"]["search"]["clicks"] == 1
    _check_breakdowns(shoe_report)

    bag_report = report(shop, ad_only["id"])
    bag_spend = sum(charged[ad_only["id"]])
    assert bag_report["spend"] == pytest.approx(bag_spend, abs=1e-9)
    assert (bag_report["orders"], bag_report["organic_orders"]) == (1, 2)
    assert bag_report["gmv_ad"] == 60.0 and bag_report["gmv_total"] == 180.0
    assert bag_report["roi"] == pytest.approx(60.0 / bag_spend)  # ad-only ROI
    assert bag_report["by_surface"]["search"]["orders"] == 1
    _check_breakdowns(bag_report)

    # the operator reads any campaign's report, with the same figures
    assert report(operator, full["id"]) == shoe_report

    platform = operator.get("/v1/reports/platform")
    assert platform.status_code == 200, platform.text
    figures = platform.json()
    all_charges = [r["charged"] or 0 for a in answers for r in a["results"]]
    gmv = sum(event["amount"] for event, _ in orders)
    assert figures["ad_revenue"] == pytest.approx(sum(all_charges), abs=1e-9)
    assert figures["ad_revenue"] == pytest.approx(shoe_report["spend"] + bag_report["spend"])
    assert figures["gmv"] == pytest.approx(gmv) and figures["gmv_ad"] == pytest.approx(140.0)
    assert figures["gmv_organic"] == pytest.approx(gmv - 140.0)
    assert figures["take_rate"] == pytest.approx(figures["ad_revenue"] / gmv)
    assert (figures["impressions"], figures["clicks"]) == (3, 3)
    assert (figures["orders"], figures["ad_orders"]) == (len(orders), 2)
    assert figures["active_campaigns"] == 2

    # more spend and more GMV move both reports
    token = ad_for(operator, _search("running shoe", "u-q"), full["id"])["click_token"]
    more = events(operator, _click("c-more", token), _order("o-more", shoe["id"], 80.0, "u-q"))
    assert more["results"][1]["campaign_id"] == full["id"]
    after = report(shop, full["id"])
    assert after["orders"] == 2 and after["gmv_ad"] == 160.0 and after["gmv_total"] == 320.0
    assert after["spend"] == pytest.approx(spend + more["results"][0]["charged"], abs=1e-9)
    assert after["roi"] == pytest.approx(320.0 / after["spend"])
    figures = operator.get("/v1/reports/platform").json()
    assert figures["gmv"] == pytest.approx(gmv + 80.0)
    assert figures["ad_revenue"] == pytest.approx(after["spend"] + bag_report["spend"])
    assert figures["take_rate"] == pytest.approx(figures["ad_revenue"] / figures["gmv"])


def test_organic_clicks_are_taken_and_charge_nothing(shared: Server, ops: Api) -> None:
    shop = new_merchant(ops, shared.url)
    item = _item(shop, f"{word()} kettle", 30.0, "kitchen")
    campaign = _campaign(shop, item["id"], 40.0, 2.0)
    click = {"type": "organic_click", "id": f"oc-{word()}", "item_id": item["id"],
             "surface": "home_feed", "user_id": "u-oc"}  # fmt: skip
    unknown = {**click, "id": f"oc-{word()}", "item_id": 987_654}
    answer = events(ops, click, unknown)
    assert [r["status"] for r in answer["results"]] == ["accepted", "rejected"]
    assert answer["results"][1]["reason"] == "unknown item 987654"
    assert all(r["charged"] is None for r in answer["results"])
    assert events(ops, click)["duplicates"] == 1
    untouched = report(shop, campaign["id"])
    assert (untouched["clicks"], untouched["spend"]) == (0, 0)
    bad = ops.post("/v1/events", {"events": [{**click, "surface": "nowhere"}]})
    assert bad.status_code == 422
