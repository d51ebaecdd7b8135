"""Bad input to every write endpoint: a 4xx that says what is wrong, never a 5xx, and nothing
changed. Every case runs against one server per database; after each, what its endpoint could
have written (the merchants, the items, the campaigns, or the platform's and the campaign's
figures) is compared with what it was before the first case, and all of it after the last."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from harness import OPERATOR_KEY, Api, Server, new_merchant
from support import created, module_server

pytestmark = pytest.mark.service

MB = 1_000_000


@dataclass(frozen=True)
class Raw:
    """A body sent as these bytes, as JSON."""

    data: bytes


@dataclass
class World:
    server: Server
    operator: Api
    shop: Api
    item: int  # has the campaign
    free_item: int  # has none
    campaign: int
    before: dict[str, Any]

    def state(self, *parts: str) -> dict[str, Any]:
        """What the service holds (``parts`` of it): merchants, items, campaigns, figures."""
        reads = {
            "merchants": (self.operator, "/v1/merchants"),
            "items": (self.shop, "/v1/items"),
            "campaigns": (self.shop, "/v1/campaigns"),
            "platform": (self.operator, "/v1/reports/platform"),
            "report": (self.shop, f"/v1/reports/campaigns/{self.campaign}"),
        }
        return {
            part: api.get(path).json()
            for part, (api, path) in reads.items()
            if part in parts or not parts
        }


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def world(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[World]:
    with module_server(request, tmp_path_factory.mktemp("bad-input")) as server:
        operator = Api(server.url, OPERATOR_KEY)
        shop = new_merchant(operator, server.url)
        item = created(
            shop.post("/v1/items", {"title": "steel water bottle", "price": 25.0, "category": "x"})
        )
        free = created(
            shop.post("/v1/items", {"title": "cotton tee", "price": 15.0, "category": "y"})
        )
        campaign = created(
            shop.post(
                "/v1/campaigns", {"item_id": item["id"], "daily_budget": 10.0, "target_roi": 2.0}
            )
        )
        order = {"type": "order", "id": "o-1", "item_id": item["id"], "amount": 25.0}
        assert operator.post("/v1/events", {"events": [order]}).status_code == 200
        built = World(server, operator, shop, item["id"], free["id"], campaign["id"], {})
        built.before = built.state()
        yield built
        operator.close()


def _send(world: World, role: str, method: str, path: str, body: Any) -> httpx.Response:
    api = world.operator if role == "operator" else world.shop
    path = path.format(item=world.item, free=world.free_item, campaign=world.campaign)
    if isinstance(body, Raw):
        data = body.data.replace(b"{item}", str(world.item).encode())
        data = data.replace(b"{free}", str(world.free_item).encode())
        headers = {"Content-Type": "application/json"}
        return api.client.request(method, path, content=data, headers=headers)
    return api.client.request(method, path, json=body)


def _check(
    world: World, response: httpx.Response, status: int, field: str | None, *parts: str
) -> None:
    """The answer is ``status`` with a ``detail`` (naming ``field``), and what ``parts`` of the
    service's state could have changed did not (all of it, without ``parts``)."""
    assert response.status_code == status, response.text
    detail = response.json()["detail"]
    if isinstance(detail, list):  # a validation error: where, and why
        assert detail and all(e["msg"] for e in detail), detail
        if field is not None:
            places = [str(part) for e in detail for part in e["loc"]]
            assert field in places, detail
    else:
        assert isinstance(detail, str) and detail
    now = world.state(*parts)
    assert now == {part: world.before[part] for part in now}


_DROP = object()


@dataclass(frozen=True)
class _Literal:
    """JSON text put into a body as is (NaN, Infinity: what json.dumps would not write)."""

    text: str


NAN, INF, NEG_INF, HUGE = (_Literal(t) for t in ("NaN", "Infinity", "-Infinity", "1e400"))


def _raw(body: dict[str, Any]) -> bytes:
    fields = (f'"{k}": {_json(v)}' for k, v in body.items() if v is not _DROP)
    return ("{" + ", ".join(fields) + "}").encode()


def _json(value: Any) -> str:
    return value.text if isinstance(value, _Literal) else json.dumps(value)


def _with(base: dict[str, Any], change: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in {**base, **change}.items() if v is not _DROP}


def _case(
    name: str, role: str, method: str, path: str, body: Any, field: str | None, status: int
) -> Any:
    return pytest.param(method, path, body, status, field, role, id=name)


def merchant(name: str, body: Any, field: str | None = None, status: int = 422) -> Any:
    return _case(f"merchant-{name}", "operator", "POST", "/v1/merchants", body, field, status)


ITEM = {"title": "good title", "price": 10.0, "category": "good"}


def item(name: str, field: str | None = None, status: int = 422, **change: Any) -> Any:
    body = Raw(_raw({**ITEM, **change})) if _literal(change) else _with(ITEM, change)
    return _case(f"item-{name}", "merchant", "POST", "/v1/items", body, field, status)


def _literal(change: dict[str, Any]) -> bool:
    return any(isinstance(v, _Literal) for v in change.values())


CAMPAIGN = {"item_id": _Literal("{free}"), "daily_budget": 10.0, "target_roi": 2.0}


def campaign(name: str, field: str | None = None, status: int = 422, **change: Any) -> Any:
    """A campaign body, by default on the item without one (``{free}``, filled in when sent)."""
    body = Raw(_raw({**CAMPAIGN, **change}))
    return _case(f"campaign-{name}", "merchant", "POST", "/v1/campaigns", body, field, status)


def patch(
    name: str, body: Any, field: str | None = None, status: int = 422, path: str = "{campaign}"
) -> Any:
    return _case(f"patch-{name}", "merchant", "PATCH", f"/v1/campaigns/{path}", body, field, status)


def get(name: str, path: str, field: str) -> Any:
    return _case(f"get-{name}", "merchant", "GET", path, None, field, 422)


def decision(name: str, field: str | None = None, **body: Any) -> Any:
    return _case(f"decision-{name}", "operator", "POST", "/v1/decisions", body, field, 422)


def batch(name: str, body: Any, field: str | None = None) -> Any:
    return _case(f"events-{name}", "operator", "POST", "/v1/events", body, field, 422)


ORDER = {"type": "order", "id": "o-new", "item_id": _Literal("{item}"), "amount": 5.0}
CLICK = {"type": "click", "id": "c-1", "click_token": "a.b"}


def event(name: str, field: str | None = None, base: dict[str, Any] = ORDER, **change: Any) -> Any:
    """A batch of one event: an order on the campaign's item unless ``base`` says otherwise."""
    body = Raw(b'{"events": [' + _raw({**base, **change}) + b"]}")
    return _case(f"event-{name}", "operator", "POST", "/v1/events", body, field, 422)


def _orders(*events: dict[str, Any]) -> dict[str, Any]:
    return {"events": list(events)}


def _order(**change: Any) -> dict[str, Any]:
    return {"type": "order", "id": "o-new", "item_id": 1, "amount": 5.0, **change}


LONG_PRICE = _Literal("9" * 5000)  # past Python's 4300-digit limit for int()

CASES = [
    merchant("missing-name", {}, "name"),
    merchant("empty-name", {"name": ""}, "name"),
    merchant("blank-name", {"name": "   "}, "name"),
    merchant("number-name", {"name": 5}, "name"),
    merchant("null-name", {"name": None}, "name"),
    merchant("list-name", {"name": ["shop"]}, "name"),
    merchant("nul", {"name": "a\x00b"}, "name"),
    merchant("newline", {"name": "a\nb"}, "name"),
    merchant("escape", {"name": "a\x1b[31mb"}, "name"),
    merchant("delete", {"name": "a\x7fb"}, "name"),
    merchant("c1-control", {"name": "a\x85b"}, "name"),
    merchant("long-name", {"name": "x" * 201}, "name"),
    merchant("unknown-field", {"name": "ok", "api_key": "mine"}, "api_key"),
    merchant("null-body", Raw(b"null")),
    merchant("list-body", Raw(b'[{"name": "ok"}]')),
    merchant("string-body", Raw(b'"ok"')),
    merchant("empty-body", Raw(b"")),
    merchant("truncated", Raw(b'{"name": "ok"')),
    merchant("trailing-comma", Raw(b'{"name": "ok",}')),
    merchant("single-quotes", Raw(b"{'name': 'ok'}")),
    merchant("lone-surrogate", Raw(b'{"name": "a\\ud800"}'), "name"),
    merchant("not-utf8", Raw(b'{"name": "caf\xe9"}'), status=400),
    item("price-string", "price", price="12"),
    item("price-negative", "price", price=-1.0),
    item("price-zero", "price", price=0),
    item("price-huge", "price", price=1e10),
    item("price-enormous", "price", price=10**30),
    item("price-bool", "price", price=True),
    item("price-null", "price", price=None),
    item("price-list", "price", price=[12]),
    item("price-missing", "price", price=_DROP),
    item("price-nan", "price", price=NAN),
    item("price-infinity", "price", price=INF),
    item("price-overflow", "price", price=HUGE),
    item("price-5000-digits", status=400, price=LONG_PRICE),
    item("title-empty", "title", title=""),
    item("title-blank", "title", title=" \u3000 "),
    item("title-nul", "title", title="shoe\x00"),
    item("title-tab", "title", title="shoe\tbag"),
    item("title-c1-control", "title", title="shoe\x9bbag"),
    item("title-long", "title", title="t" * 501),
    item("title-number", "title", title=12),
    item("title-missing", "title", title=_DROP),
    item("category-empty", "category", category=""),
    item("category-long", "category", category="c" * 101),
    item("category-control", "category", category="c\r\n"),
    item("category-missing", "category", category=_DROP),
    item("unknown-field", "stock", stock=5),
    item("merchant-field", "merchant_id", merchant_id=1),
    _case("item-list-body", "merchant", "POST", "/v1/items", [ITEM], None, 422),
    _case(
        "item-malformed", "merchant", "POST", "/v1/items", Raw(b'{"title": "t", "price'), None, 422
    ),
    campaign("item-string", "item_id", item_id=_Literal('"{free}"')),
    campaign("item-zero", "item_id", item_id=0),
    campaign("item-negative", "item_id", item_id=-1),
    campaign("item-2-31", "item_id", item_id=2**31),
    campaign("item-2-63", "item_id", item_id=2**63),
    campaign("item-fraction", "item_id", item_id=_Literal("{free}.5")),
    campaign("item-integral-float", "item_id", item_id=_Literal("{free}.0")),
    campaign("item-bool", "item_id", item_id=True),
    campaign("item-null", "item_id", item_id=None),
    campaign("item-missing", "item_id", item_id=_DROP),
    campaign("item-unknown", status=404, item_id=2147483647),
    campaign("item-taken", status=409, item_id=_Literal("{item}")),
    campaign("budget-zero", "daily_budget", daily_budget=0),
    campaign("budget-negative", "daily_budget", daily_budget=-5.0),
    campaign("budget-string", "daily_budget", daily_budget="5"),
    campaign("budget-huge", "daily_budget", daily_budget=1e10),
    campaign("budget-max-float", "daily_budget", daily_budget=1.7e308),
    campaign("budget-nan", "daily_budget", daily_budget=NAN),
    campaign("budget-infinity", "daily_budget", daily_budget=INF),
    campaign("budget-minus-infinity", "daily_budget", daily_budget=NEG_INF),
    campaign("budget-overflow", "daily_budget", daily_budget=HUGE),
    campaign("budget-bool", "daily_budget", daily_budget=True),
    campaign("budget-missing", "daily_budget", daily_budget=_DROP),
    campaign("target-zero", "target_roi", target_roi=0),
    campaign("target-negative", "target_roi", target_roi=-2.0),
    campaign("target-absurd", "target_roi", target_roi=1001.0),
    campaign("target-string", "target_roi", target_roi="2"),
    campaign("target-nan", "target_roi", target_roi=NAN),
    campaign("target-missing", "target_roi", target_roi=_DROP),
    campaign("basis-unknown", "roi_basis", roi_basis="gmv"),
    campaign("basis-upper", "roi_basis", roi_basis="FULL_SITE"),
    campaign("basis-null", "roi_basis", roi_basis=None),
    _case(
        "campaign-status-field",
        "merchant",
        "POST",
        "/v1/campaigns",
        Raw(_raw({**CAMPAIGN, "status": "paused"})),
        "status",
        422,
    ),
    campaign("unknown-field", "bid", bid=1.0),
    campaign("malformed", daily_budget=_Literal("}")),
    patch("budget-negative", {"daily_budget": -1.0}, "daily_budget"),
    patch("budget-zero", {"daily_budget": 0}, "daily_budget"),
    patch("budget-string", {"daily_budget": "10"}, "daily_budget"),
    patch("budget-huge", {"daily_budget": 1e12}, "daily_budget"),
    patch("budget-nan", Raw(b'{"daily_budget": NaN}'), "daily_budget"),
    patch("budget-infinity", Raw(b'{"daily_budget": Infinity}'), "daily_budget"),
    patch("target-zero", {"target_roi": 0.0}, "target_roi"),
    patch("target-absurd", {"target_roi": 5000}, "target_roi"),
    patch("target-string", {"target_roi": "3"}, "target_roi"),
    patch("basis-unknown", {"roi_basis": "roas"}, "roi_basis"),
    patch("status-unknown", {"status": "deleted"}, "status"),
    patch("status-upper", {"status": "PAUSED"}, "status"),
    patch("status-bool", {"status": False}, "status"),
    patch("good-and-bad", {"status": "paused", "target_roi": -1}, "target_roi"),
    patch("item-field", {"item_id": 1}, "item_id"),
    patch("merchant-field", {"merchant_id": 1}, "merchant_id"),
    patch("spend-field", {"spend_today": 0.0}, "spend_today"),
    patch("list-body", [{"status": "paused"}]),
    patch("malformed", Raw(b'{"status": "paused"')),
    patch("id-zero", {"status": "paused"}, "campaign_id", path="0"),
    patch("id-negative", {"status": "paused"}, "campaign_id", path="-1"),
    patch("id-2-31", {"status": "paused"}, "campaign_id", path=str(2**31)),
    patch("id-2-64", {"status": "paused"}, "campaign_id", path=str(2**64)),
    patch("id-word", {"status": "paused"}, "campaign_id", path="abc"),
    patch("id-fraction", {"status": "paused"}, "campaign_id", path="1.5"),
    patch("id-unknown", {"status": "paused"}, status=404, path="2147483647"),
    get("item-id-2-31", f"/v1/items/{2**31}", "item_id"),
    get("campaign-id-zero", "/v1/campaigns/0", "campaign_id"),
    get("report-id-2-31", f"/v1/reports/campaigns/{2**31}", "campaign_id"),
    decision("surface-unknown", "surface", surface="moon"),
    decision("surface-upper", "surface", surface="SEARCH"),
    decision("surface-empty", "surface", surface=""),
    decision("surface-number", "surface", surface=1),
    decision("surface-missing", "surface", slots=2),
    decision("slots-zero", "slots", surface="home_feed", slots=0),
    decision("slots-eleven", "slots", surface="home_feed", slots=11),
    decision("slots-negative", "slots", surface="home_feed", slots=-1),
    decision("slots-string", "slots", surface="home_feed", slots="2"),
    decision("slots-fraction", "slots", surface="home_feed", slots=2.5),
    decision("slots-huge", "slots", surface="home_feed", slots=10**20),
    decision("user-empty", "user_id", surface="home_feed", user_id=""),
    decision("user-control", "user_id", surface="home_feed", user_id="u\x00"),
    decision("user-long", "user_id", surface="home_feed", user_id="u" * 129),
    decision("user-number", "user_id", surface="home_feed", user_id=7),
    decision("query-empty", "query", surface="search", query=""),
    decision("query-blank", "query", surface="search", query="   "),
    decision("query-control", "query", surface="search", query="shoe\x01"),
    decision("query-long", "query", surface="search", query="q" * 501),
    decision("query-list", "query", surface="search", query=["shoe"]),
    decision("item-zero", "item_id", surface="detail", item_id=0),
    decision("item-2-31", "item_id", surface="detail", item_id=2**31),
    decision("item-string", "item_id", surface="detail", item_id="5"),
    decision("unknown-field", "page", surface="home_feed", page=2),
    _case(
        "decision-list-body",
        "operator",
        "POST",
        "/v1/decisions",
        [{"surface": "search"}],
        None,
        422,
    ),
    _case(
        "decision-malformed", "operator", "POST", "/v1/decisions", Raw(b'{"surface": '), None, 422
    ),
    batch("empty", {"events": []}, "events"),
    batch("1001", _orders(*[_order(id=f"o-{n}") for n in range(1001)]), "events"),
    batch("missing", {}, "events"),
    batch("object", {"events": _order()}, "events"),
    batch("null", {"events": None}, "events"),
    batch("bare-list", [_order()]),
    batch("unknown-field", {"events": [_order()], "batch": 1}, "batch"),
    batch("good-then-bad", _orders(_order(id="o-good"), _order(id="o-bad", amount=-3.0)), "amount"),
    batch("malformed", Raw(b'{"events": [{"type": "order", "id": "o-x", ')),
    event("type-missing", type=_DROP),
    event("type-unknown", type="view"),
    event("type-number", type=3),
    event("id-missing", "id", id=_DROP),
    event("id-empty", "id", id=""),
    event("id-control", "id", id="o\x00-1"),
    event("id-c1-control", "id", id="o\x9f-1"),
    event("id-long", "id", id="o" * 129),
    event("id-number", "id", id=17),
    event("user-control", "user_id", user_id="u\n"),
    event("amount-negative", "amount", amount=-1.0),
    event("amount-zero", "amount", amount=0),
    event("amount-string", "amount", amount="5"),
    event("amount-huge", "amount", amount=1e10),
    event("amount-nan", "amount", amount=NAN),
    event("amount-infinity", "amount", amount=INF),
    event("amount-missing", "amount", amount=_DROP),
    event("item-missing", "item_id", item_id=_DROP),
    event("item-zero", "item_id", item_id=0),
    event("item-2-31", "item_id", item_id=2**31),
    event("item-string", "item_id", item_id="1"),
    event("order-unknown-field", "price", price=3.0),
    event("token-missing", "click_token", base=CLICK, click_token=_DROP),
    event("token-empty", "click_token", base=CLICK, click_token=""),
    event("token-long", "click_token", base=CLICK, click_token="t" * 2001),
    event("token-number", "click_token", base=CLICK, click_token=5),
    event("click-unknown-field", "foo", base=CLICK, foo=1),
    event("impression-id-blank", "id", base={**CLICK, "type": "impression"}, id=" "),
]


@pytest.mark.parametrize(("method", "path", "body", "status", "field", "role"), CASES)
def test_bad_input_is_refused_and_changes_nothing(
    world: World, method: str, path: str, body: Any, status: int, field: str | None, role: str
) -> None:
    if isinstance(body, dict) and isinstance(body.get("events"), list):
        # the orders are on the world's item (1 stands for it), so only the flaw is wrong
        fill = {1: world.item}
        body = {**body, "events": [{**e, "item_id": fill[e["item_id"]]} for e in body["events"]]}
    _check(world, _send(world, role, method, path, body), status, field, *_touched(path))


def _touched(path: str) -> tuple[str, ...]:
    """The parts of the state a request to ``path`` could change if it went wrong."""
    if path.startswith("/v1/merchants"):
        return ("merchants",)
    if path.startswith("/v1/items"):
        return ("items",)
    if path.startswith(("/v1/campaigns", "/v1/reports")):
        return ("campaigns",)
    return ("platform", "report")  # decisions and events


@pytest.fixture(scope="module", autouse=True)
def nothing_changed_at_all(world: World) -> Iterator[None]:
    """After all the cases (each checked only where it could have written), the whole state."""
    yield
    assert world.state() == world.before


WRITES = [
    ("operator", "/v1/merchants", "POST"),
    ("merchant", "/v1/items", "POST"),
    ("merchant", "/v1/campaigns", "POST"),
    ("merchant", "/v1/campaigns/{campaign}", "PATCH"),
    ("operator", "/v1/decisions", "POST"),
    ("operator", "/v1/events", "POST"),
]


@pytest.mark.parametrize(("role", "path", "method"), WRITES)
def test_a_body_over_a_megabyte_is_refused(world: World, role: str, path: str, method: str) -> None:
    padding = "x" * (2 * MB)
    declared = _send(world, role, method, path, {"name": padding, "title": padding})
    _check(world, declared, 413, None)
    assert "bytes" in declared.json()["detail"]

    def chunks() -> Iterator[bytes]:  # no Content-Length: the server counts as it reads
        yield b'{"name": "'
        for _ in range(2 * MB // 65536):
            yield b"x" * 65536
        yield b'"}'

    api = world.operator if role == "operator" else world.shop
    target = path.format(campaign=world.campaign)
    streamed = api.client.request(
        method, target, content=chunks(), headers={"Content-Type": "application/json"}
    )
    assert "content-length" not in {k.lower() for k in streamed.request.headers}
    _check(world, streamed, 413, None)


def test_a_refused_batch_stored_none_of_its_events(world: World) -> None:
    mixed = _orders(
        _order(id="o-kept-back", item_id=world.item),
        _order(id="o-broken", item_id=world.item, amount=-1.0),
    )
    _check(world, _send(world, "operator", "POST", "/v1/events", mixed), 422, "amount")
    # the good event's id was not taken: sent alone, it is accepted, not a duplicate
    alone = world.operator.post(
        "/v1/events", _orders(_order(id="o-kept-back", item_id=world.item, amount=1.0))
    )
    assert alone.status_code == 200 and alone.json()["accepted"] == 1, alone.text
    assert world.state()["platform"]["orders"] == world.before["platform"]["orders"] + 1
    # put the world back as the other cases expect it: the figures must not move again
    world.before = world.state()


def test_unknown_ids_inside_valid_bodies(world: World) -> None:
    """Well-formed, but naming an item nowhere: refused (the order per event, in the answer)."""
    order = _orders(_order(id="o-nowhere", item_id=2147483647))
    answer = world.operator.post("/v1/events", order)
    assert answer.status_code == 200, answer.text
    assert answer.json()["rejected"] == 1 and answer.json()["results"][0]["reason"]
    assert world.state() == world.before
    campaign = world.shop.post(
        "/v1/campaigns", {"item_id": 2147483646, "daily_budget": 5.0, "target_roi": 2.0}
    )
    _check(world, campaign, 404, None)
