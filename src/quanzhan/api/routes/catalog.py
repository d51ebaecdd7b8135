"""Merchants (operator), and each merchant's items and campaigns: the three-step set-up."""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Path
from sqlalchemy import Connection, select

from quanzhan.api.auth import MerchantId, Operator, RuntimeDep
from quanzhan.api.control import new_controller
from quanzhan.api.runtime import Runtime
from quanzhan.api.schemas import (
    MAX_ID,
    CampaignIn,
    CampaignOut,
    CampaignPatch,
    ItemIn,
    ItemOut,
    MerchantIn,
    MerchantOut,
)
from quanzhan.bidding.registry import POLICIES
from quanzhan.store import catalog
from quanzhan.store.events import day_of
from quanzhan.store.schema import campaign_days, controllers

router = APIRouter(prefix="/v1")
PathId = Annotated[int, Path(ge=1, le=MAX_ID)]


@router.post("/merchants", status_code=201, response_model=MerchantOut, tags=["operator"])
def create_merchant(body: MerchantIn, runtime: RuntimeDep, _: Operator) -> MerchantOut:
    """A new merchant and its API key (shown once: only its hash is kept)."""
    now = runtime.clock()
    merchant_id, key = runtime.database.retrying(
        lambda c: catalog.create_merchant(c, name=body.name, now=now)
    )
    return MerchantOut(id=merchant_id, name=body.name, api_key=key, created_at=now)


@router.get("/merchants", response_model=list[MerchantOut], tags=["operator"])
def list_merchants(runtime: RuntimeDep, _: Operator) -> list[MerchantOut]:
    with runtime.database.read() as connection:
        return [MerchantOut(**row) for row in catalog.list_merchants(connection)]


@router.post("/items", status_code=201, response_model=ItemOut, tags=["merchant"])
def create_item(body: ItemIn, runtime: RuntimeDep, merchant_id: MerchantId) -> ItemOut:
    """Step one: the item to promote."""
    now = runtime.clock()
    row = runtime.database.retrying(
        lambda c: catalog.create_item(
            c,
            merchant_id=merchant_id,
            title=body.title,
            price=body.price,
            category=body.category,
            now=now,
        )
    )
    return ItemOut(**row)


@router.get("/items", response_model=list[ItemOut], tags=["merchant"])
def list_items(runtime: RuntimeDep, merchant_id: MerchantId) -> list[ItemOut]:
    with runtime.database.read() as connection:
        return [ItemOut(**r) for r in catalog.list_items(connection, merchant_id=merchant_id)]


@router.get("/items/{item_id}", response_model=ItemOut, tags=["merchant"])
def get_item(item_id: PathId, runtime: RuntimeDep, merchant_id: MerchantId) -> ItemOut:
    with runtime.database.read() as connection:
        try:
            return ItemOut(**catalog.get_item(connection, merchant_id=merchant_id, item_id=item_id))
        except catalog.NotFoundError as exc:
            raise HTTPException(404, str(exc)) from None


@router.post("/campaigns", status_code=201, response_model=CampaignOut, tags=["merchant"])
def create_campaign(body: CampaignIn, runtime: RuntimeDep, merchant_id: MerchantId) -> CampaignOut:
    """Steps two and three: a daily budget and a target ROI for the item; the engine does the
    rest. One active campaign per item."""
    now = runtime.clock()
    controller = new_controller(
        policy=runtime.settings.policy,
        daily_budget=body.daily_budget,
        target_roi=body.target_roi,
        roi_basis=body.roi_basis,
        now=now,
    )

    def work(connection: Connection) -> dict[str, Any]:
        row = catalog.create_campaign(
            connection,
            merchant_id=merchant_id,
            item_id=body.item_id,
            daily_budget=body.daily_budget,
            target_roi=body.target_roi,
            roi_basis=body.roi_basis,
            controller=controller,
            now=now,
        )
        return _with_steering(connection, row, now=now)

    return _write_campaign(runtime, work)


@router.get("/campaigns", response_model=list[CampaignOut], tags=["merchant"])
def list_campaigns(runtime: RuntimeDep, merchant_id: MerchantId) -> list[CampaignOut]:
    now = runtime.clock()
    with runtime.database.read() as connection:
        rows = catalog.list_campaigns(connection, merchant_id=merchant_id)
        return [CampaignOut(**_with_steering(connection, r, now=now)) for r in rows]


@router.get("/campaigns/{campaign_id}", response_model=CampaignOut, tags=["merchant"])
def get_campaign(campaign_id: PathId, runtime: RuntimeDep, merchant_id: MerchantId) -> CampaignOut:
    now = runtime.clock()
    with runtime.database.read() as connection:
        try:
            row = catalog.get_campaign(connection, merchant_id=merchant_id, campaign_id=campaign_id)
        except catalog.NotFoundError as exc:
            raise HTTPException(404, str(exc)) from None
        return CampaignOut(**_with_steering(connection, row, now=now))


@router.patch("/campaigns/{campaign_id}", response_model=CampaignOut, tags=["merchant"])
def update_campaign(
    campaign_id: PathId, body: CampaignPatch, runtime: RuntimeDep, merchant_id: MerchantId
) -> CampaignOut:
    """Change the budget or target, or pause (``status: paused``) and resume (``active``).
    A new budget, target or ROI basis restarts the campaign's controller towards it."""
    now = runtime.clock()
    changes = body.model_dump(exclude_none=True)

    def work(connection: Connection) -> dict[str, Any]:
        current = catalog.get_campaign(connection, merchant_id=merchant_id, campaign_id=campaign_id)
        steered = ("daily_budget", "target_roi", "roi_basis")
        steering: dict[str, Any] = {k: changes[k] for k in steered if k in changes}
        controller = None
        if any(current[k] != v for k, v in steering.items()):
            merged = {**current, **steering}
            # A campaign keeps the policy it was created under, whatever the service's
            # setting has become since (unless that policy is no longer shipped).
            kept = connection.execute(
                select(controllers.c.policy).where(controllers.c.campaign_id == campaign_id)
            ).scalar_one_or_none()
            controller = new_controller(
                policy=kept if kept in POLICIES else runtime.settings.policy,
                daily_budget=merged["daily_budget"],
                target_roi=merged["target_roi"],
                roi_basis=merged["roi_basis"],
                now=now,
            )
        row = catalog.update_campaign(
            connection,
            merchant_id=merchant_id,
            campaign_id=campaign_id,
            changes=changes,
            controller=controller,
            now=now,
        )
        return _with_steering(connection, row, now=now)

    return _write_campaign(runtime, work)


def _write_campaign(runtime: Runtime, work: Callable[[Connection], dict[str, Any]]) -> CampaignOut:
    """Run a campaign change; the catalog's refusals become 404 (not this merchant's, or no such
    row) and 409 (a rule of the catalog)."""
    try:
        return CampaignOut(**runtime.database.retrying(work))
    except catalog.NotFoundError as exc:
        raise HTTPException(404, str(exc)) from None
    except catalog.ConflictError as exc:
        raise HTTPException(409, str(exc)) from None


def _with_steering(connection: Connection, row: dict[str, Any], *, now: float) -> dict[str, Any]:
    multiplier = connection.execute(
        select(controllers.c.multiplier).where(controllers.c.campaign_id == row["id"])
    ).scalar_one_or_none()
    spend = connection.execute(
        select(campaign_days.c.spend).where(
            campaign_days.c.campaign_id == row["id"], campaign_days.c.day == day_of(now)
        )
    ).scalar_one_or_none()
    return {**row, "multiplier": multiplier, "spend_today": float(spend or 0.0)}
