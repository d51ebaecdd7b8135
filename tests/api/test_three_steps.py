"""A merchant's three steps over HTTP, and the ads that follow them."""

from __future__ import annotations

from harness import Api, Server, new_merchant


def test_item_budget_target_and_the_item_is_advertised(server: Server, operator: Api) -> None:
    shop = new_merchant(operator, server.url)
    item = shop.post(
        "/v1/items", {"title": "trail running shoe", "price": 80.0, "category": "shoes"}
    )
    assert item.status_code == 201, item.text
    other = shop.post("/v1/items", {"title": "leather tote bag", "price": 60.0, "category": "bags"})
    assert other.status_code == 201, other.text
    campaign = shop.post(
        "/v1/campaigns", {"item_id": item.json()["id"], "daily_budget": 50.0, "target_roi": 3.0}
    )
    assert campaign.status_code == 201, campaign.text
    body = campaign.json()
    assert body["status"] == "active" and body["roi_basis"] == "full_site"
    assert body["multiplier"] is not None and body["multiplier"] > 0

    shown = None
    for _ in range(50):  # the serving snapshot picks the campaign up within a refresh
        decision = operator.post(
            "/v1/decisions", {"surface": "home_feed", "user_id": "u-1", "slots": 2}
        )
        assert decision.status_code == 200, decision.text
        if decision.json()["ads"]:
            shown = decision.json()["ads"][0]
            break
        import time

        time.sleep(0.1)
    assert shown is not None, "the new campaign never won a slot"
    assert shown["campaign_id"] == body["id"] and shown["item_id"] == item.json()["id"]
    assert shown["slot"] == 0 and shown["click_token"]
