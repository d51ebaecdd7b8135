"""Reports: a campaign's results (its merchant, or the operator) and the platform's (operator)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Path
from sqlalchemy import select

from quanzhan.api.auth import AnyCaller, Operator, RuntimeDep
from quanzhan.api.schemas import MAX_ID, CampaignReport, PlatformReport
from quanzhan.store import reports
from quanzhan.store.schema import campaigns

router = APIRouter(prefix="/v1/reports", tags=["reports"])


@router.get("/campaigns/{campaign_id}", response_model=CampaignReport)
def campaign_report(
    campaign_id: Annotated[int, Path(ge=1, le=MAX_ID)], runtime: RuntimeDep, caller: AnyCaller
) -> dict[str, Any]:
    """Impressions, clicks, spend, orders, ad and total GMV and ROI, by surface and by hour."""
    with runtime.database.read() as connection:
        query = select(campaigns).where(campaigns.c.id == campaign_id)
        if caller.merchant_id is not None:
            query = query.where(campaigns.c.merchant_id == caller.merchant_id)
        row = connection.execute(query).one_or_none()
        if row is None:
            raise HTTPException(404, f"no campaign {campaign_id}")
        return reports.campaign_report(connection, dict(row._mapping), now=runtime.clock())


@router.get("/platform", response_model=PlatformReport)
def platform_report(runtime: RuntimeDep, _: Operator) -> dict[str, Any]:
    """The marketplace's GMV, ad revenue and take rate."""
    with runtime.database.read() as connection:
        return reports.platform_report(connection)
