"""Merchants, their items and campaigns: the rows a merchant sets up in three steps.

Every read and change takes the merchant it acts for, so one merchant's id never reaches
another's rows: a row of someone else's is answered as absent.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, func, insert, select, update
from sqlalchemy.exc import IntegrityError

from quanzhan.store.schema import campaigns, controllers, items, merchants

ACTIVE = "active"
PAUSED = "paused"


class ConflictError(ValueError):
    """The change would break a rule of the catalog (e.g. two active campaigns on one item)."""


class NotFoundError(LookupError):
    """No such row for this merchant."""


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def new_api_key(prefix: str) -> str:
    return f"{prefix}_{secrets.token_urlsafe(32)}"


def create_merchant(connection: Connection, *, name: str, now: float) -> tuple[int, str]:
    """A new merchant and its API key; only the key's hash is stored."""
    key = new_api_key("qzm")
    merchant_id = connection.execute(
        insert(merchants)
        .values(name=name, key_hash=hash_key(key), created_at=now)
        .returning(merchants.c.id)
    ).scalar_one()
    return int(merchant_id), key


def merchant_by_key(connection: Connection, key: str) -> int | None:
    found = connection.execute(
        select(merchants.c.id).where(merchants.c.key_hash == hash_key(key))
    ).scalar_one_or_none()
    return None if found is None else int(found)


def list_merchants(connection: Connection) -> list[dict[str, Any]]:
    rows = connection.execute(
        select(merchants.c.id, merchants.c.name, merchants.c.created_at).order_by(merchants.c.id)
    )
    return [dict(row._mapping) for row in rows]


def create_item(
    connection: Connection, *, merchant_id: int, title: str, price: float, category: str, now: float
) -> dict[str, Any]:
    row = connection.execute(
        insert(items)
        .values(
            merchant_id=merchant_id, title=title, price=price, category=category, created_at=now
        )
        .returning(*items.c)
    ).one()
    return dict(row._mapping)


def list_items(connection: Connection, *, merchant_id: int) -> list[dict[str, Any]]:
    rows = connection.execute(
        select(items).where(items.c.merchant_id == merchant_id).order_by(items.c.id)
    )
    return [dict(row._mapping) for row in rows]


def get_item(connection: Connection, *, merchant_id: int, item_id: int) -> dict[str, Any]:
    row = connection.execute(
        select(items).where(items.c.id == item_id, items.c.merchant_id == merchant_id)
    ).one_or_none()
    if row is None:
        raise NotFoundError(f"no item {item_id}")
    return dict(row._mapping)


@dataclass(frozen=True, slots=True)
class ControllerStart:
    """A new campaign's controller: its first multiplier and its policy's pickled state."""

    policy: str
    multiplier: float
    state: bytes
    day: str


def create_campaign(
    connection: Connection,
    *,
    merchant_id: int,
    item_id: int,
    daily_budget: float,
    target_roi: float,
    roi_basis: str,
    controller: ControllerStart,
    now: float,
) -> dict[str, Any]:
    get_item(connection, merchant_id=merchant_id, item_id=item_id)
    _check_no_active(connection, item_id=item_id, other_than=None)
    try:
        with connection.begin_nested():
            row = connection.execute(
                insert(campaigns)
                .values(
                    merchant_id=merchant_id,
                    item_id=item_id,
                    daily_budget=daily_budget,
                    target_roi=target_roi,
                    roi_basis=roi_basis,
                    status=ACTIVE,
                    created_at=now,
                    updated_at=now,
                )
                .returning(*campaigns.c)
            ).one()
    except IntegrityError:
        # Another request made an active campaign for the item between the check and here.
        raise ConflictError(f"item {item_id} already has an active campaign") from None
    campaign = dict(row._mapping)
    _save_controller(connection, campaign_id=campaign["id"], start=controller, now=now)
    return campaign


def list_campaigns(connection: Connection, *, merchant_id: int) -> list[dict[str, Any]]:
    rows = connection.execute(
        select(campaigns).where(campaigns.c.merchant_id == merchant_id).order_by(campaigns.c.id)
    )
    return [dict(row._mapping) for row in rows]


def get_campaign(connection: Connection, *, merchant_id: int, campaign_id: int) -> dict[str, Any]:
    row = connection.execute(
        select(campaigns).where(
            campaigns.c.id == campaign_id, campaigns.c.merchant_id == merchant_id
        )
    ).one_or_none()
    if row is None:
        raise NotFoundError(f"no campaign {campaign_id}")
    return dict(row._mapping)


def update_campaign(
    connection: Connection,
    *,
    merchant_id: int,
    campaign_id: int,
    changes: dict[str, Any],
    controller: ControllerStart | None,
    now: float,
) -> dict[str, Any]:
    """Apply ``changes`` (daily_budget, target_roi, roi_basis, status); a new ``controller``
    replaces the campaign's when what it steers towards changed."""
    current = get_campaign(connection, merchant_id=merchant_id, campaign_id=campaign_id)
    if changes.get("status") == ACTIVE and current["status"] != ACTIVE:
        _check_no_active(connection, item_id=current["item_id"], other_than=campaign_id)
    if changes:
        try:
            with connection.begin_nested():
                connection.execute(
                    update(campaigns)
                    .where(campaigns.c.id == campaign_id)
                    .values(**changes, updated_at=now, revision=campaigns.c.revision + 1)
                )
        except IntegrityError:
            raise ConflictError(
                f"item {current['item_id']} already has an active campaign"
            ) from None
    if controller is not None:
        _save_controller(connection, campaign_id=campaign_id, start=controller, now=now)
    return get_campaign(connection, merchant_id=merchant_id, campaign_id=campaign_id)


def catalog_version(connection: Connection) -> tuple[int, int, int]:
    """Moves whenever an item is added or a campaign added or changed (items and campaigns are
    never deleted, and every campaign change bumps its revision)."""
    item_count = connection.execute(select(func.count()).select_from(items)).scalar_one()
    campaign_count, revisions = connection.execute(
        select(func.count(), func.coalesce(func.sum(campaigns.c.revision), 0)).select_from(
            campaigns
        )
    ).one()
    return int(item_count), int(campaign_count), int(revisions)


def _check_no_active(connection: Connection, *, item_id: int, other_than: int | None) -> None:
    query = select(campaigns.c.id).where(
        campaigns.c.item_id == item_id, campaigns.c.status == ACTIVE
    )
    if other_than is not None:
        query = query.where(campaigns.c.id != other_than)
    existing = connection.execute(query).scalar_one_or_none()
    if existing is not None:
        raise ConflictError(f"item {item_id} already has an active campaign ({existing})")


def _save_controller(
    connection: Connection, *, campaign_id: int, start: ControllerStart, now: float
) -> None:
    values = {
        "multiplier": start.multiplier,
        "policy": start.policy,
        "state": start.state,
        "day": start.day,
        "updated_at": now,
    }
    done = connection.execute(
        update(controllers).where(controllers.c.campaign_id == campaign_id).values(**values)
    )
    if done.rowcount == 0:
        connection.execute(insert(controllers).values(campaign_id=campaign_id, **values))
