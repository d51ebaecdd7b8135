"""The API's request and response bodies. Requests are strict: wrong types, unknown fields,
non-finite or absurd numbers and control characters in text are refused with a 422 that says
which field and why, before anything is changed."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, model_validator

from quanzhan.domain import SURFACE_NAMES
from quanzhan.store.promotions import MAX_TRAFFIC_FACTOR, check_promotion

MAX_ID = 2**31 - 1
MAX_MONEY = 1e9
MAX_EVENTS = 1000


def _printable(text: str) -> str:
    # C0, DEL and the C1 block (U+0080-U+009F: NEL, CSI, ...), Unicode's category Cc
    if any(ord(ch) < 32 or 127 <= ord(ch) <= 159 for ch in text):
        raise ValueError("must not contain control characters")
    if not text.strip():
        raise ValueError("must not be blank")
    return text


Name = Annotated[str, Field(min_length=1, max_length=200), AfterValidator(_printable)]
Title = Annotated[str, Field(min_length=1, max_length=500), AfterValidator(_printable)]
Category = Annotated[str, Field(min_length=1, max_length=100), AfterValidator(_printable)]
Query = Annotated[str, Field(min_length=1, max_length=500), AfterValidator(_printable)]
ExternalId = Annotated[str, Field(min_length=1, max_length=128), AfterValidator(_printable)]
Id = Annotated[int, Field(ge=1, le=MAX_ID)]
Money = Annotated[float, Field(gt=0, le=MAX_MONEY)]
SurfaceName = Literal["search", "home_feed", "cart_feed", "post_purchase", "detail", "offsite"]
RoiBasisName = Literal["full_site", "ad_only"]
Status = Literal["active", "paused"]

assert set(SurfaceName.__args__) == set(SURFACE_NAMES)  # type: ignore[attr-defined]


class _Request(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, allow_inf_nan=False)


class MerchantIn(_Request):
    name: Name


class MerchantOut(BaseModel):
    id: int
    name: str
    api_key: str | None = None
    created_at: float


class ItemIn(_Request):
    title: Title
    price: Money
    category: Category


class ItemOut(BaseModel):
    id: int
    merchant_id: int
    title: str
    price: float
    category: str
    created_at: float


class CampaignIn(_Request):
    item_id: Id
    daily_budget: Money
    target_roi: Annotated[float, Field(gt=0, le=1000)]
    roi_basis: RoiBasisName = "full_site"


class CampaignPatch(_Request):
    daily_budget: Money | None = None
    target_roi: Annotated[float, Field(gt=0, le=1000)] | None = None
    roi_basis: RoiBasisName | None = None
    status: Status | None = None


class CampaignOut(BaseModel):
    id: int
    merchant_id: int
    item_id: int
    daily_budget: float
    target_roi: float
    roi_basis: str
    status: str
    created_at: float
    updated_at: float
    multiplier: float | None = None
    spend_today: float = 0.0


class PromotionIn(_Request):
    """A window of ``day`` (UTC) from ``start_hour`` to ``end_hour`` when the platform expects
    ``traffic_factor`` times an ordinary day's page views."""

    day: Annotated[str, Field(pattern=r"^\d{4}-\d{2}-\d{2}$")]
    start_hour: Annotated[float, Field(ge=0, lt=24)]
    end_hour: Annotated[float, Field(gt=0, le=24)]
    traffic_factor: Annotated[float, Field(gt=0, le=MAX_TRAFFIC_FACTOR)]

    @model_validator(mode="after")
    def _one_window(self) -> PromotionIn:
        check_promotion(
            day=self.day,
            start_hour=self.start_hour,
            end_hour=self.end_hour,
            factor=self.traffic_factor,
        )
        return self


class PromotionOut(BaseModel):
    id: int
    day: str
    start_hour: float
    end_hour: float
    traffic_factor: float
    created_at: float


class DecisionIn(_Request):
    surface: SurfaceName
    user_id: ExternalId | None = None
    query: Query | None = None
    item_id: Id | None = None
    slots: Annotated[int, Field(ge=1, le=10)] = 1


class AdOut(BaseModel):
    slot: int
    item_id: int
    campaign_id: int
    click_token: str


class DecisionOut(BaseModel):
    decision_id: str
    ads: list[AdOut]


class AdEventIn(_Request):
    type: Literal["impression", "click"]
    id: ExternalId
    click_token: Annotated[str, Field(min_length=1, max_length=2000)]
    user_id: ExternalId | None = None


class OrderEventIn(_Request):
    type: Literal["order"]
    id: ExternalId
    item_id: Id
    user_id: ExternalId | None = None
    amount: Money


class OrganicClickEventIn(_Request):
    """A click on one of the platform's own results: it teaches the shopper's profile."""

    type: Literal["organic_click"]
    id: ExternalId
    item_id: Id
    surface: SurfaceName
    user_id: ExternalId | None = None


class EventsIn(_Request):
    events: Annotated[
        list[
            Annotated[AdEventIn | OrderEventIn | OrganicClickEventIn, Field(discriminator="type")]
        ],
        Field(min_length=1, max_length=MAX_EVENTS),
    ]


class EventResultOut(BaseModel):
    id: str
    status: Literal["accepted", "duplicate", "rejected"]
    reason: str | None = None
    charged: float | None = None
    campaign_id: int | None = None


class EventsOut(BaseModel):
    accepted: int
    duplicates: int
    rejected: int
    results: list[EventResultOut]


class SurfaceFigures(BaseModel):
    impressions: int
    clicks: int
    spend: float
    orders: int
    gmv_ad: float


class HourFigures(SurfaceFigures):
    gmv_organic: float


class TodayOut(BaseModel):
    day: str
    daily_budget: float
    spend: float


class CampaignReport(BaseModel):
    campaign_id: int
    item_id: int
    roi_basis: str
    target_roi: float
    impressions: int
    clicks: int
    spend: float
    orders: int
    organic_orders: int
    gmv_ad: float
    gmv_organic: float
    gmv_total: float
    roi: float | None
    today: TodayOut
    by_surface: dict[str, SurfaceFigures]
    by_hour: dict[str, HourFigures]


class PlatformReport(BaseModel):
    gmv: float
    gmv_ad: float
    gmv_organic: float
    ad_revenue: float
    take_rate: float | None
    impressions: int
    clicks: int
    orders: int
    ad_orders: int
    active_campaigns: int


class Health(BaseModel):
    status: str
