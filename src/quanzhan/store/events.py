"""Taking in impressions, clicks and orders: the ledger's side of the event API.

One call takes a batch in one transaction, so a batch is committed whole or not at all, and the
caller acknowledges it only after the commit. Rules:

- every event id is taken once: a second event with the same id is a ``duplicate`` and changes
  nothing, so a platform may safely resend a batch it got no answer for;
- an ad (a decision's slot) is counted and charged once: a second click on the same ad is a
  ``duplicate`` too, whatever its event id;
- a click is charged the auction's price from its token, but never more than what is left of the
  campaign's daily budget (the crossing click pays only the rest), so spend never passes the
  budget, even with several processes charging one campaign: the campaign's day row is locked
  while it is charged;
- an order is attributed to the shopper's last click on the item within the attribution window;
  an order without one is organic and counts towards the item's full-site GMV;
- a click on one of the platform's own results (``organic_click``) charges nothing and is never
  attributed an order: it teaches the shopper's profile.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal

from sqlalchemy import Connection, insert, select, tuple_, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from quanzhan.store.schema import campaign_days, campaigns, clicks, events, impressions, items
from quanzhan.store.schema import ledger as ledger_rows
from quanzhan.store.schema import orders as order_rows
from quanzhan.store.schema import organic_clicks as organic_click_rows

Status = Literal["accepted", "duplicate", "rejected"]
_DUST = 1e-9


@dataclass(frozen=True, slots=True)
class AdEvent:
    """An impression or a click on an ad, with its verified token's contents."""

    id: str
    type: Literal["impression", "click"]
    decision_id: str
    slot: int
    campaign_id: int
    item_id: int
    price: float
    pcvr: float
    value: float
    surface: str
    user_id: str | None


@dataclass(frozen=True, slots=True)
class OrderEvent:
    id: str
    item_id: int
    user_id: str | None
    amount: float


@dataclass(frozen=True, slots=True)
class OrganicClickEvent:
    """A click on one of the platform's own results (not an ad)."""

    id: str
    item_id: int
    user_id: str | None
    surface: str


Event = AdEvent | OrderEvent | OrganicClickEvent


@dataclass(slots=True)
class EventResult:
    id: str
    status: Status
    reason: str | None = None
    charged: float | None = None
    campaign_id: int | None = None


def day_of(timestamp: float) -> str:
    """The UTC day a budget belongs to."""
    return datetime.fromtimestamp(timestamp, tz=UTC).strftime("%Y-%m-%d")


def hour_of(timestamp: float) -> str:
    return datetime.fromtimestamp(timestamp, tz=UTC).strftime("%Y-%m-%dT%H")


def ingest(
    connection: Connection,
    batch: list[Event],
    *,
    now: float,
    attribution_window: float,
) -> list[EventResult]:
    """Record a batch of events in the open transaction; one result per event, in order."""
    seen = known_event_ids(connection, [e.id for e in batch])
    day = day_of(now)
    spend = _lock_days(
        connection,
        sorted({e.campaign_id for e in batch if isinstance(e, AdEvent) and e.type == "click"}),
        day=day,
    )
    start_spend = dict(spend)
    results: list[EventResult] = []
    for event in batch:
        if event.id in seen:
            results.append(EventResult(event.id, "duplicate", "event id already taken"))
            continue
        if isinstance(event, OrderEvent):
            result = _order(connection, event, now=now, window=attribution_window)
        elif isinstance(event, OrganicClickEvent):
            result = _organic_click(connection, event, now=now)
        elif event.type == "impression":
            result = _impression(connection, event, now=now)
        else:
            result = _click(connection, event, now=now, day=day, spend=spend)
        if result.status == "accepted":
            seen.add(event.id)
            connection.execute(
                insert(events).values(id=event.id, type=_type(event), received_at=now)
            )
        results.append(result)
    for campaign_id, total in spend.items():
        if total != start_spend[campaign_id]:
            connection.execute(
                update(campaign_days)
                .where(campaign_days.c.campaign_id == campaign_id, campaign_days.c.day == day)
                .values(spend=total)
            )
    return results


def _type(event: Event) -> str:
    if isinstance(event, OrderEvent):
        return "order"
    if isinstance(event, OrganicClickEvent):
        return "organic_click"
    return event.type


def known_event_ids(connection: Connection, ids: list[str]) -> set[str]:
    """Which of ``ids`` have been taken already."""
    if not ids:
        return set()
    rows = connection.execute(select(events.c.id).where(events.c.id.in_(set(ids))))
    return {row[0] for row in rows}


def _lock_days(connection: Connection, campaign_ids: list[int], *, day: str) -> dict[int, float]:
    """Today's spend of these campaigns, their rows locked until the transaction ends (in id
    order, so two batches cannot deadlock on each other)."""
    if not campaign_ids:
        return {}
    existing = connection.execute(
        select(campaigns.c.id).where(campaigns.c.id.in_(campaign_ids))
    ).scalars()
    known = sorted(int(c) for c in existing)
    if not known:
        return {}
    rows = [{"campaign_id": c, "day": day, "spend": 0.0} for c in known]
    maker = pg_insert if connection.dialect.name == "postgresql" else sqlite_insert
    connection.execute(maker(campaign_days).values(rows).on_conflict_do_nothing())
    locked = connection.execute(
        select(campaign_days.c.campaign_id, campaign_days.c.spend)
        .where(campaign_days.c.campaign_id.in_(known), campaign_days.c.day == day)
        .order_by(campaign_days.c.campaign_id)
        .with_for_update()
    )
    return {int(c): float(s) for c, s in locked}


def _ad_taken(connection: Connection, table: Any, event: AdEvent) -> bool:
    found = connection.execute(
        select(table.c.event_id).where(
            tuple_(table.c.decision_id, table.c.slot) == (event.decision_id, event.slot)
        )
    ).first()
    return found is not None


def _budget_of(connection: Connection, event: AdEvent) -> float | EventResult:
    """The daily budget of the token's campaign, or the rejection of a token whose campaign is
    not here or does not promote its item (a token signed under this secret by another database,
    a deployment sharing the key)."""
    found = connection.execute(
        select(campaigns.c.daily_budget, campaigns.c.item_id).where(
            campaigns.c.id == event.campaign_id
        )
    ).one_or_none()
    if found is None:
        return EventResult(event.id, "rejected", "the token's campaign does not exist")
    if int(found.item_id) != event.item_id:
        return EventResult(event.id, "rejected", "the token's campaign does not promote its item")
    return float(found.daily_budget)


def _impression(connection: Connection, event: AdEvent, *, now: float) -> EventResult:
    checked = _budget_of(connection, event)
    if isinstance(checked, EventResult):
        return checked
    if _ad_taken(connection, impressions, event):
        return EventResult(event.id, "duplicate", "this ad's impression is already counted")
    connection.execute(
        insert(impressions).values(
            event_id=event.id,
            decision_id=event.decision_id,
            slot=event.slot,
            campaign_id=event.campaign_id,
            surface=event.surface,
            time=now,
        )
    )
    return EventResult(event.id, "accepted", campaign_id=event.campaign_id)


def _click(
    connection: Connection, event: AdEvent, *, now: float, day: str, spend: dict[int, float]
) -> EventResult:
    budget = _budget_of(connection, event)
    if isinstance(budget, EventResult):
        return budget
    if _ad_taken(connection, clicks, event):
        return EventResult(event.id, "duplicate", "this ad's click is already charged")
    charge = max(0.0, min(event.price, budget - spend[event.campaign_id]))
    if charge < _DUST:  # what float rounding leaves of a spent budget is not a charge
        charge = 0.0
    connection.execute(
        insert(clicks).values(
            event_id=event.id,
            decision_id=event.decision_id,
            slot=event.slot,
            campaign_id=event.campaign_id,
            item_id=event.item_id,
            user_id=event.user_id,
            surface=event.surface,
            time=now,
            price=event.price,
            charged=charge,
            pcvr=event.pcvr,
            value=event.value,
        )
    )
    if charge > 0:
        connection.execute(
            insert(ledger_rows).values(
                click_id=event.id, campaign_id=event.campaign_id, day=day, amount=charge, time=now
            )
        )
        spend[event.campaign_id] += charge
    return EventResult(event.id, "accepted", charged=charge, campaign_id=event.campaign_id)


def _item_known(connection: Connection, item_id: int) -> bool:
    found = connection.execute(select(items.c.id).where(items.c.id == item_id))
    return found.scalar_one_or_none() is not None


def _organic_click(connection: Connection, event: OrganicClickEvent, *, now: float) -> EventResult:
    if not _item_known(connection, event.item_id):
        return EventResult(event.id, "rejected", f"unknown item {event.item_id}")
    connection.execute(
        insert(organic_click_rows).values(
            event_id=event.id,
            item_id=event.item_id,
            user_id=event.user_id,
            surface=event.surface,
            time=now,
        )
    )
    return EventResult(event.id, "accepted")


def _order(connection: Connection, event: OrderEvent, *, now: float, window: float) -> EventResult:
    if not _item_known(connection, event.item_id):
        return EventResult(event.id, "rejected", f"unknown item {event.item_id}")
    click = None
    if event.user_id is not None:
        click = connection.execute(
            select(clicks.c.event_id, clicks.c.campaign_id, clicks.c.time)
            .where(
                clicks.c.user_id == event.user_id,
                clicks.c.item_id == event.item_id,
                clicks.c.time >= now - window,
                clicks.c.time <= now,
            )
            .order_by(clicks.c.time.desc(), clicks.c.event_id.desc())
            .limit(1)
        ).first()
    connection.execute(
        insert(order_rows).values(
            event_id=event.id,
            item_id=event.item_id,
            user_id=event.user_id,
            amount=event.amount,
            time=now,
            click_id=None if click is None else click.event_id,
            campaign_id=None if click is None else click.campaign_id,
            click_time=None if click is None else click.time,
        )
    )
    return EventResult(
        event.id,
        "accepted",
        campaign_id=None if click is None else int(click.campaign_id),
    )
