"""Reports read from the ledger and the event tables: one campaign's results and the platform's.

Every figure is a sum over committed rows, so a report agrees with the ledger to the cent: a
campaign's ``spend`` is the sum of its ledger rows. Hours are UTC (``YYYY-MM-DDTHH``).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import BigInteger, Connection, Integer, cast, func, select
from sqlalchemy.sql.elements import ColumnElement

from quanzhan.domain import SURFACE_NAMES
from quanzhan.store.events import day_of
from quanzhan.store.schema import campaign_days, campaigns, clicks, impressions, ledger, orders

_FIGURES = ("impressions", "clicks", "spend", "orders", "gmv_ad")


def campaign_report(
    connection: Connection, campaign: dict[str, Any], *, now: float
) -> dict[str, Any]:
    cid = campaign["id"]
    hour_imp = hour_bucket(connection, impressions.c.time)
    hour_clk = hour_bucket(connection, clicks.c.time)
    hour_led = hour_bucket(connection, ledger.c.time)
    hour_ord = hour_bucket(connection, orders.c.time)
    by_surface = {name: dict.fromkeys(_FIGURES, 0.0) for name in SURFACE_NAMES}
    by_hour: dict[int, dict[str, float]] = {}

    def add(table: dict[Any, dict[str, float]], key: Any, figure: str, value: float) -> None:
        table.setdefault(key, {**dict.fromkeys(_FIGURES, 0.0), "gmv_organic": 0.0})
        table[key][figure] += value

    for surface, hour, n in connection.execute(
        select(impressions.c.surface, hour_imp, func.count())
        .where(impressions.c.campaign_id == cid)
        .group_by(impressions.c.surface, hour_imp)
    ):
        by_surface[surface]["impressions"] += n
        add(by_hour, hour, "impressions", n)
    for surface, hour, n in connection.execute(
        select(clicks.c.surface, hour_clk, func.count())
        .where(clicks.c.campaign_id == cid)
        .group_by(clicks.c.surface, hour_clk)
    ):
        by_surface[surface]["clicks"] += n
        add(by_hour, hour, "clicks", n)
    for surface, hour, amount in connection.execute(
        select(clicks.c.surface, hour_led, func.sum(ledger.c.amount))
        .join(clicks, clicks.c.event_id == ledger.c.click_id)
        .where(ledger.c.campaign_id == cid)
        .group_by(clicks.c.surface, hour_led)
    ):
        by_surface[surface]["spend"] += float(amount)
        add(by_hour, hour, "spend", float(amount))
    for surface, hour, n, amount in connection.execute(
        select(clicks.c.surface, hour_ord, func.count(), func.sum(orders.c.amount))
        .join(clicks, clicks.c.event_id == orders.c.click_id)
        .where(orders.c.campaign_id == cid)
        .group_by(clicks.c.surface, hour_ord)
    ):
        by_surface[surface]["orders"] += n
        by_surface[surface]["gmv_ad"] += float(amount)
        add(by_hour, hour, "orders", n)
        add(by_hour, hour, "gmv_ad", float(amount))
    organic_orders = 0
    for hour, n, amount in connection.execute(
        select(hour_ord, func.count(), func.sum(orders.c.amount))
        .where(
            orders.c.campaign_id.is_(None),
            orders.c.item_id == campaign["item_id"],
            orders.c.time >= campaign["created_at"],
        )
        .group_by(hour_ord)
    ):
        organic_orders += n
        add(by_hour, hour, "gmv_organic", float(amount))

    totals = {f: sum(s[f] for s in by_surface.values()) for f in _FIGURES}
    gmv_organic = sum(h["gmv_organic"] for h in by_hour.values())
    gmv_total = totals["gmv_ad"] + gmv_organic
    basis_gmv = gmv_total if campaign["roi_basis"] == "full_site" else totals["gmv_ad"]
    spend = totals["spend"]
    today = day_of(now)
    spend_today = connection.execute(
        select(campaign_days.c.spend).where(
            campaign_days.c.campaign_id == cid, campaign_days.c.day == today
        )
    ).scalar_one_or_none()
    return {
        "campaign_id": cid,
        "item_id": campaign["item_id"],
        "roi_basis": campaign["roi_basis"],
        "target_roi": campaign["target_roi"],
        "impressions": int(totals["impressions"]),
        "clicks": int(totals["clicks"]),
        "spend": spend,
        "orders": int(totals["orders"]),
        "organic_orders": organic_orders,
        "gmv_ad": totals["gmv_ad"],
        "gmv_organic": gmv_organic,
        "gmv_total": gmv_total,
        "roi": basis_gmv / spend if spend > 0 else None,
        "today": {
            "day": today,
            "daily_budget": campaign["daily_budget"],
            "spend": float(spend_today or 0.0),
        },
        "by_surface": {name: _ints(row) for name, row in by_surface.items()},
        "by_hour": {_hour_label(h): _ints(row) for h, row in sorted(by_hour.items())},
    }


def platform_report(connection: Connection) -> dict[str, Any]:
    n_impressions = connection.execute(select(func.count()).select_from(impressions)).scalar_one()
    n_clicks = connection.execute(select(func.count()).select_from(clicks)).scalar_one()
    revenue = connection.execute(select(func.coalesce(func.sum(ledger.c.amount), 0.0))).scalar_one()
    n_orders, gmv = connection.execute(
        select(func.count(), func.coalesce(func.sum(orders.c.amount), 0.0))
    ).one()
    ad_orders, gmv_ad = connection.execute(
        select(func.count(), func.coalesce(func.sum(orders.c.amount), 0.0)).where(
            orders.c.campaign_id.is_not(None)
        )
    ).one()
    active = connection.execute(
        select(func.count()).select_from(campaigns).where(campaigns.c.status == "active")
    ).scalar_one()
    return {
        "gmv": float(gmv),
        "gmv_ad": float(gmv_ad),
        "gmv_organic": float(gmv) - float(gmv_ad),
        "ad_revenue": float(revenue),
        "take_rate": float(revenue) / float(gmv) if gmv > 0 else None,
        "impressions": int(n_impressions),
        "clicks": int(n_clicks),
        "orders": int(n_orders),
        "ad_orders": int(ad_orders),
        "active_campaigns": int(active),
    }


def hour_bucket(connection: Connection, column: Any) -> ColumnElement[Any]:
    """Whole hours since the epoch of a time column, in the connection's SQL dialect."""
    if connection.dialect.name == "postgresql":
        return cast(func.floor(column / 3600), BigInteger)
    return cast(column / 3600, Integer)  # SQLite truncates, and times are positive


def _hour_label(hour: int) -> str:
    return datetime.fromtimestamp(int(hour) * 3600, tz=UTC).strftime("%Y-%m-%dT%H")


def _ints(row: dict[str, float]) -> dict[str, float | int]:
    return {k: int(v) if k in ("impressions", "clicks", "orders") else v for k, v in row.items()}
