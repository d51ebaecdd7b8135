"""The platform's side: ad decisions for page views, and the events that follow them."""

from __future__ import annotations

import json
from collections import defaultdict
from typing import Any

from fastapi import APIRouter, Request, Response
from fastapi.exceptions import RequestValidationError
from pydantic import ValidationError
from sqlalchemy.exc import IntegrityError

from quanzhan.api.auth import BEARER, Operator, RuntimeDep, require_operator
from quanzhan.api.decider import AdRequest
from quanzhan.api.schemas import (
    AdEventIn,
    DecisionIn,
    DecisionOut,
    EventResultOut,
    EventsIn,
    EventsOut,
    OrderEventIn,
    OrganicClickEventIn,
)
from quanzhan.api.tokens import TokenError
from quanzhan.domain import Surface
from quanzhan.store.events import (
    AdEvent,
    Event,
    EventResult,
    OrderEvent,
    OrganicClickEvent,
    day_of,
    ingest,
    known_event_ids,
)

router = APIRouter(prefix="/v1", tags=["platform"])
_encode = json.JSONEncoder(separators=(",", ":")).encode
_RACE_RETRIES = 8


_DECISION_BODY: dict[str, Any] = {
    **BEARER,
    "requestBody": {
        "required": True,
        "content": {"application/json": {"schema": DecisionIn.model_json_schema()}},
    },
}


@router.post(
    "/decisions",
    response_model=DecisionOut,
    openapi_extra=_DECISION_BODY,
    responses={422: {"description": "Validation Error"}},
)
async def decide(request: Request) -> Response:
    """The ads for one page view: up to ``slots`` items, each with a signed click token that the
    platform sends back with the ad's impression and click events."""
    runtime = await require_operator(request)
    # The body is validated straight from its bytes by pydantic-core, without FastAPI's
    # per-parameter machinery: the same model, the same 422, a fraction of the cost.
    try:
        body = DecisionIn.model_validate_json(await request.body())
    except ValidationError as exc:
        errors = [{**e, "loc": ("body", *e["loc"])} for e in exc.errors(include_url=False)]
        raise RequestValidationError(errors) from None
    answer = await runtime.decider.decide(
        AdRequest(
            surface=Surface.parse(body.surface),
            user_id=body.user_id,
            query=body.query,
            item_id=body.item_id,
            slots=body.slots,
        )
    )
    # The hot path: the answer is encoded directly (its shape is DecisionOut, as documented)
    # rather than validated again field by field.
    body_out = {
        "decision_id": answer.decision_id,
        "ads": [
            {
                "slot": ad.slot,
                "item_id": ad.item_id,
                "campaign_id": ad.campaign_id,
                "click_token": ad.click_token,
            }
            for ad in answer.ads
        ],
    }
    return Response(_encode(body_out), media_type="application/json")


@router.post("/events", response_model=EventsOut)
def take_events(body: EventsIn, runtime: RuntimeDep, _: Operator) -> EventsOut:
    """Impressions, clicks and orders, and clicks on the platform's own results, acknowledged
    only once committed. Each event id is taken once (resending a batch is safe); a click is
    charged once, at its auction's price, within the campaign's budget; a forged or expired
    token is rejected and charges nothing."""
    now = runtime.clock()
    results: list[EventResult | None] = []
    accepted: list[Event] = []
    for event in body.events:
        parsed = _event(runtime, event, now=now)
        if isinstance(parsed, EventResult):
            results.append(parsed)
        else:
            accepted.append(parsed)
            results.append(None)
    stored = iter(_store(runtime, accepted, now=now) if accepted else [])
    final = _taken_before([r if r is not None else next(stored) for r in results], runtime)
    charged: dict[int, float] = defaultdict(float)
    for result in final:
        if result.charged and result.campaign_id is not None:
            charged[result.campaign_id] += result.charged
    runtime.spend_board.add(day_of(now), dict(charged))
    runtime.metrics.count_events(final)
    return EventsOut(
        accepted=sum(r.status == "accepted" for r in final),
        duplicates=sum(r.status == "duplicate" for r in final),
        rejected=sum(r.status == "rejected" for r in final),
        results=[
            EventResultOut(
                id=r.id,
                status=r.status,
                reason=r.reason,
                charged=r.charged,
                campaign_id=r.campaign_id,
            )
            for r in final
        ],
    )


def _taken_before(results: list[EventResult], runtime: RuntimeDep) -> list[EventResult]:
    """``results`` with each refused event whose id was taken before answering ``duplicate``:
    a platform that got no answer resends, and a click accepted and charged then, whose token
    has expired since, is not to be told it was refused."""
    refused = [r.id for r in results if r.status == "rejected"]
    if not refused:
        return results
    with runtime.database.read() as connection:
        taken = known_event_ids(connection, refused)
    return [
        EventResult(r.id, "duplicate", "event id already taken")
        if r.status == "rejected" and r.id in taken
        else r
        for r in results
    ]


def _store(runtime: RuntimeDep, batch: list[Event], *, now: float) -> list[EventResult]:
    """Ingest ``batch`` in one transaction. A concurrent request (a resent batch, say) may commit
    one of its event ids or ads between this transaction's check and its insert: the unique key
    refuses the insert, the whole transaction rolls back, and the next try reads them as
    duplicates."""
    for attempt in range(_RACE_RETRIES):
        try:
            return runtime.database.retrying(
                lambda c: ingest(c, batch, now=now, attribution_window=runtime.attribution_window)
            )
        except IntegrityError:
            if attempt == _RACE_RETRIES - 1:
                raise
    raise AssertionError("unreachable")


def _event(
    runtime: RuntimeDep, event: AdEventIn | OrderEventIn | OrganicClickEventIn, *, now: float
) -> Event | EventResult:
    """The event to store, or the result of one refused before it reaches the database."""
    if isinstance(event, OrderEventIn):
        return OrderEvent(
            id=event.id, item_id=event.item_id, user_id=event.user_id, amount=event.amount
        )
    if isinstance(event, OrganicClickEventIn):
        return OrganicClickEvent(
            id=event.id, item_id=event.item_id, user_id=event.user_id, surface=event.surface
        )
    return _ad_event(runtime, event, now=now)


def _ad_event(runtime: RuntimeDep, event: AdEventIn, *, now: float) -> AdEvent | EventResult:
    try:
        token = runtime.signer.verify(event.click_token, now=now)
    except TokenError as exc:
        return EventResult(event.id, "rejected", str(exc))
    return AdEvent(
        id=event.id,
        type=event.type,
        decision_id=token.decision_id,
        slot=token.slot,
        campaign_id=token.campaign_id,
        item_id=token.item_id,
        price=token.price,
        pcvr=token.pcvr,
        value=token.value,
        surface=token.surface,
        user_id=token.user_id if token.user_id is not None else event.user_id,
    )
