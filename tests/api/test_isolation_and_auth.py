"""Who may do what: each merchant sees and changes only its own items, campaigns and reports (the
others' ids answer 404); calls without a known key answer 401; the operator's routes refuse a
merchant's key and the merchants' routes the operator's key (403)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from harness import OPERATOR_KEY, Api, Server, new_merchant
from support import SINGLES_DAY, created, module_server, word

pytestmark = pytest.mark.service


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def shared(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Server]:
    with module_server(request, tmp_path_factory.mktemp("isolation")) as running:
        yield running


class Shop:
    """A merchant with two items, a campaign on the first, and its client."""

    def __init__(self, ops: Api, url: str) -> None:
        self.api = new_merchant(ops, url, f"shop {word()}")
        self.items = [
            created(self.api.post("/v1/items", {"title": t, "price": 50.0, "category": "misc"}))
            for t in (f"{word()} kettle", f"{word()} toaster")
        ]
        self.campaign = created(
            self.api.post(
                "/v1/campaigns",
                {"item_id": self.items[0]["id"], "daily_budget": 10.0, "target_roi": 2.0},
            )
        )

    def state(self) -> tuple[Any, Any]:
        return self.api.get("/v1/items").json(), self.api.get("/v1/campaigns").json()


def test_a_merchant_sees_only_its_own_rows(shared: Server, ops: Api) -> None:
    alice, bob = Shop(ops, shared.url), Shop(ops, shared.url)
    for me, other in ((alice, bob), (bob, alice)):
        items, campaigns = me.state()
        assert items == me.items and campaigns == [me.campaign]
        assert {i["merchant_id"] for i in items} == {me.items[0]["merchant_id"]}
        assert me.items[0]["merchant_id"] != other.items[0]["merchant_id"]
        assert not {i["id"] for i in items} & {i["id"] for i in other.items}
        for item in me.items:
            assert me.api.get(f"/v1/items/{item['id']}").json() == item
        own = me.api.get(f"/v1/reports/campaigns/{me.campaign['id']}")
        assert own.status_code == 200 and own.json()["campaign_id"] == me.campaign["id"]


def test_another_merchants_ids_answer_404_and_change_nothing(shared: Server, ops: Api) -> None:
    alice, bob = Shop(ops, shared.url), Shop(ops, shared.url)
    before = bob.state()
    theirs_item, theirs_campaign = bob.items[1]["id"], bob.campaign["id"]
    attempts = [
        alice.api.get(f"/v1/items/{theirs_item}"),
        alice.api.get(f"/v1/campaigns/{theirs_campaign}"),
        alice.api.get(f"/v1/reports/campaigns/{theirs_campaign}"),
        alice.api.patch(f"/v1/campaigns/{theirs_campaign}", {"status": "paused"}),
        alice.api.patch(f"/v1/campaigns/{theirs_campaign}", {"daily_budget": 1000.0}),
        alice.api.patch(f"/v1/campaigns/{theirs_campaign}", {"target_roi": 0.5}),
        # a campaign of one's own on the other's item (one with no campaign, and one with)
        alice.api.post(
            "/v1/campaigns", {"item_id": theirs_item, "daily_budget": 5.0, "target_roi": 2.0}
        ),
        alice.api.post(
            "/v1/campaigns",
            {"item_id": bob.items[0]["id"], "daily_budget": 5.0, "target_roi": 2.0},
        ),
    ]
    for response in attempts:
        assert response.status_code == 404, (response.request.url, response.text)
        assert isinstance(response.json()["detail"], str) and response.json()["detail"]
    # the same answer as for an id that exists nowhere: nothing tells the two apart
    nowhere = alice.api.get("/v1/campaigns/2147483647")
    assert nowhere.status_code == 404
    assert bob.state() == before
    assert alice.state() == (alice.items, [alice.campaign])


def test_calls_without_a_known_key_answer_401(shared: Server, ops: Api) -> None:
    shop = Shop(ops, shared.url)
    calls = [
        ("GET", "/v1/items", None),
        ("POST", "/v1/items", {"title": "x", "price": 1.0, "category": "y"}),
        ("GET", "/v1/campaigns", None),
        ("PATCH", f"/v1/campaigns/{shop.campaign['id']}", {"status": "paused"}),
        ("GET", f"/v1/reports/campaigns/{shop.campaign['id']}", None),
        ("GET", "/v1/reports/platform", None),
        ("POST", "/v1/merchants", {"name": "intruder"}),
        ("GET", "/v1/merchants", None),
        ("POST", "/v1/promotions", SINGLES_DAY),
        ("GET", "/v1/promotions", None),
        ("DELETE", "/v1/promotions/1", None),
        ("POST", "/v1/decisions", {"surface": "home_feed"}),
        (
            "POST",
            "/v1/events",
            {"events": [{"type": "order", "id": "x", "item_id": 1, "amount": 1}]},
        ),
    ]
    headers: list[dict[str, str]] = [
        {},
        {"Authorization": "Bearer qzm_not-a-key-of-anyone"},
        {"Authorization": f"Bearer {OPERATOR_KEY}x"},
        {"Authorization": "Bearer"},
        {"Authorization": f"Basic {OPERATOR_KEY}"},
        {"Authorization": OPERATOR_KEY},
    ]
    with httpx.Client(base_url=shared.url, timeout=30) as client:
        for header in headers:
            for method, path, body in calls:
                response = client.request(method, path, json=body, headers=header)
                assert response.status_code == 401, (header, method, path, response.text)
                assert response.json()["detail"]
        odd = client.get("/v1/items", headers={"Authorization": b"Bearer \xe9t\xe9"})
        assert odd.status_code == 401
    assert shop.state() == (shop.items, [shop.campaign])
    assert "intruder" not in [m["name"] for m in ops.get("/v1/merchants").json()]


def test_each_key_serves_only_its_own_routes(shared: Server, ops: Api) -> None:
    shop = Shop(ops, shared.url)
    merchants_before = ops.get("/v1/merchants").json()
    item_id, campaign_id = shop.items[1]["id"], shop.campaign["id"]
    order = {"type": "order", "id": f"{word()}", "item_id": item_id, "amount": 5.0}
    platform_before = ops.get("/v1/reports/platform").json()
    for method, path, body in [
        ("POST", "/v1/merchants", {"name": "made by a merchant"}),
        ("GET", "/v1/merchants", None),
        ("POST", "/v1/decisions", {"surface": "home_feed", "slots": 2}),
        ("POST", "/v1/events", {"events": [order]}),
        ("GET", "/v1/reports/platform", None),
        ("POST", "/v1/promotions", SINGLES_DAY),
        ("GET", "/v1/promotions", None),
        ("DELETE", "/v1/promotions/1", None),
    ]:
        response = shop.api.client.request(method, path, json=body)
        assert response.status_code == 403, (method, path, response.text)
        assert "operator" in response.json()["detail"]
    assert ops.get("/v1/merchants").json() == merchants_before
    assert ops.get("/v1/reports/platform").json() == platform_before
    assert ops.get("/v1/promotions").json() == []

    for method, path, body in [
        ("GET", "/v1/items", None),
        ("POST", "/v1/items", {"title": "made by the operator", "price": 1.0, "category": "y"}),
        ("GET", f"/v1/items/{item_id}", None),
        ("GET", "/v1/campaigns", None),
        ("POST", "/v1/campaigns", {"item_id": item_id, "daily_budget": 5.0, "target_roi": 2.0}),
        ("GET", f"/v1/campaigns/{campaign_id}", None),
        ("PATCH", f"/v1/campaigns/{campaign_id}", {"status": "paused"}),
    ]:
        response = ops.client.request(method, path, json=body)
        assert response.status_code == 403, (method, path, response.text)
        assert "merchant" in response.json()["detail"]
    assert shop.state() == (shop.items, [shop.campaign])

    # and each key does serve its own
    assert ops.post("/v1/decisions", {"surface": "home_feed"}).status_code == 200
    assert shop.api.get(f"/v1/campaigns/{campaign_id}").status_code == 200
