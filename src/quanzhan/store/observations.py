"""What the control loop reads each tick: today's figures per campaign, the attributed orders'
delays, the last week's clicks and the orders they brought, and the hourly traffic of past
days."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray
from sqlalchemy import Connection, and_, func, select

from quanzhan.store.reports import hour_bucket
from quanzhan.store.schema import campaign_days, campaigns, clicks, controllers, orders, traffic

_DELAY_DAYS = 7


@dataclass(frozen=True, slots=True)
class DayFigures:
    """Today's figures, ``(n,)`` per campaign in ``campaign_ids`` order."""

    campaign_ids: list[int]
    spend: NDArray[np.float64]
    clicks: NDArray[np.float64]
    gmv_predicted: NDArray[np.float64]
    orders: NDArray[np.float64]
    gmv: NDArray[np.float64]
    gmv_organic: NDArray[np.float64]
    # Today's clicks as rows, for the orders that should have arrived by now.
    click_campaign: NDArray[np.int64]
    click_time: NDArray[np.float64]
    click_pcvr: NDArray[np.float64]


def active_controllers(connection: Connection) -> list[dict[str, Any]]:
    rows = connection.execute(
        select(
            campaigns.c.id,
            campaigns.c.item_id,
            campaigns.c.daily_budget,
            campaigns.c.target_roi,
            campaigns.c.roi_basis,
            controllers.c.policy,
            controllers.c.state,
            controllers.c.day,
            controllers.c.updated_at,
        )
        .join(controllers, controllers.c.campaign_id == campaigns.c.id)
        .where(campaigns.c.status == "active")
        .order_by(campaigns.c.id)
    )
    return [dict(r._mapping) for r in rows]


def day_figures(
    connection: Connection,
    *,
    rows: list[dict[str, Any]],
    day: str,
    day_start: float,
    day_end: float = math.inf,
) -> DayFigures:
    """The figures of ``day`` (which starts at ``day_start``) for the campaigns of ``rows``: so
    far, or, for a day that is over, as they stood at ``day_end`` (its clicks, and their orders
    and the item's organic ones placed before then)."""

    def before_end(column: Any) -> list[Any]:
        """The condition that ``column`` falls before the day's end, where it has one."""
        return [column < day_end] if math.isfinite(day_end) else []

    ids = [int(r["id"]) for r in rows]
    position = {c: i for i, c in enumerate(ids)}
    n = len(ids)
    spend, n_clicks, predicted = np.zeros(n), np.zeros(n), np.zeros(n)
    n_orders, gmv, organic = np.zeros(n), np.zeros(n), np.zeros(n)
    for cid, value in connection.execute(
        select(campaign_days.c.campaign_id, campaign_days.c.spend).where(campaign_days.c.day == day)
    ):
        if cid in position:
            spend[position[cid]] = value
    # No IN lists over campaign ids (databases cap their parameters): today's rows, filtered here.
    click_rows = [
        row
        for row in connection.execute(
            select(clicks.c.campaign_id, clicks.c.time, clicks.c.pcvr, clicks.c.value).where(
                clicks.c.time >= day_start, *before_end(clicks.c.time)
            )
        )
        if row[0] in position
    ]
    click_campaign = np.array([position[r[0]] for r in click_rows], dtype=np.int64)
    click_time = np.array([r[1] for r in click_rows], dtype=np.float64)
    click_pcvr = np.array([r[2] for r in click_rows], dtype=np.float64)
    if n:
        n_clicks = np.bincount(click_campaign, minlength=n).astype(np.float64)
        values = np.array([r[3] for r in click_rows], dtype=np.float64)
        predicted = np.bincount(click_campaign, weights=values, minlength=n).astype(np.float64)
    for cid, count, amount in connection.execute(
        select(orders.c.campaign_id, func.count(), func.sum(orders.c.amount))
        .where(
            orders.c.click_time >= day_start,
            orders.c.campaign_id.is_not(None),
            *before_end(orders.c.click_time),
            *before_end(orders.c.time),
        )
        .group_by(orders.c.campaign_id)
    ):
        if cid not in position:
            continue
        n_orders[position[cid]] = count
        gmv[position[cid]] = amount
    item_position = {int(r["item_id"]): position[int(r["id"])] for r in rows}
    for item, amount in connection.execute(
        select(orders.c.item_id, func.sum(orders.c.amount))
        .where(
            and_(
                orders.c.campaign_id.is_(None),
                orders.c.time >= day_start,
                *before_end(orders.c.time),
            )
        )
        .group_by(orders.c.item_id)
    ):
        if item in item_position:
            organic[item_position[item]] = amount
    return DayFigures(
        campaign_ids=ids,
        spend=spend,
        clicks=n_clicks,
        gmv_predicted=predicted,
        orders=n_orders,
        gmv=gmv,
        gmv_organic=organic,
        click_campaign=click_campaign,
        click_time=click_time,
        click_pcvr=click_pcvr,
    )


def order_delays(
    connection: Connection, *, now: float
) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """Click and order times of the attributed orders of the last week."""
    rows = connection.execute(
        select(orders.c.click_time, orders.c.time).where(
            orders.c.click_time.is_not(None), orders.c.time >= now - _DELAY_DAYS * 86_400.0
        )
    ).all()
    return (
        np.array([r[0] for r in rows], dtype=np.float64),
        np.array([r[1] for r in rows], dtype=np.float64),
    )


@dataclass(frozen=True, slots=True)
class OrderEvidence:
    """The last week's ad clicks and the attributed orders that came of them, per campaign
    (``orders`` is ``(c,)`` in ``campaign_ids`` order). The clicks come summed by campaign and
    hour of click (``group_campaign`` indexes ``campaign_ids``): their predicted orders
    (``group_pcvr``) and the mean click time weighted by them (``group_time``)."""

    campaign_ids: NDArray[np.int64]
    orders: NDArray[np.float64]
    group_campaign: NDArray[np.int64]
    group_time: NDArray[np.float64]
    group_pcvr: NDArray[np.float64]


def order_evidence(connection: Connection, *, now: float) -> OrderEvidence:
    """Every campaign's predicted and attributed orders of its clicks of the last week, paused
    campaigns included. Summed in the database by hour of click, so an hourly read costs
    campaigns x hours rows, not a row per click."""
    since = now - _DELAY_DAYS * 86_400.0
    hour = hour_bucket(connection, clicks.c.time)
    click_rows = connection.execute(
        select(
            clicks.c.campaign_id,
            func.sum(clicks.c.pcvr),
            func.sum(clicks.c.pcvr * clicks.c.time),
            func.min(clicks.c.time),
        )
        .where(clicks.c.time >= since)
        .group_by(clicks.c.campaign_id, hour)
    ).all()
    order_rows = connection.execute(
        select(orders.c.campaign_id, func.count())
        .where(orders.c.click_time >= since, orders.c.campaign_id.is_not(None))
        .group_by(orders.c.campaign_id)
    ).all()
    ids = np.unique(np.array([r[0] for r in click_rows] + [r[0] for r in order_rows], np.int64))
    counts = np.zeros(len(ids))
    if order_rows:
        counts[np.searchsorted(ids, [r[0] for r in order_rows])] = [r[1] for r in order_rows]
    pcvr = np.array([float(r[1] or 0.0) for r in click_rows], dtype=np.float64)
    weighted = np.array([float(r[2] or 0.0) for r in click_rows], dtype=np.float64)
    first = np.array([float(r[3]) for r in click_rows], dtype=np.float64)
    return OrderEvidence(
        campaign_ids=ids,
        orders=counts,
        group_campaign=np.searchsorted(ids, np.array([r[0] for r in click_rows], np.int64)),
        # An hour whose clicks were all predicted to bring nothing: its first click stands in.
        group_time=np.where(pcvr > 0, weighted / np.where(pcvr > 0, pcvr, 1.0), first),
        group_pcvr=pcvr,
    )


def hourly_traffic(connection: Connection, *, days: list[str]) -> dict[str, NDArray[np.float64]]:
    """Page views per hour for each of these days (UTC ``YYYY-MM-DD``), ``(24,)`` each."""
    out = {d: np.zeros(24) for d in days}
    rows = connection.execute(
        select(traffic.c.hour, traffic.c.requests).where(
            func.substr(traffic.c.hour, 1, 10).in_(days)
        )
    )
    for hour, requests in rows:
        out[hour[:10]][int(hour[11:13])] += requests
    return out
